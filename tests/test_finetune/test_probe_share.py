"""The probes' share of the budget (``probe_share``) under the simulated clock.

The runs use ``scratch_cnn`` (cheap on a CPU) and a hand-made timing table whose forward
pass is dear (0.05 s per image), so that the embedding probe of 84 examples costs about
4 s of a 20 s budget while the raw-pixel and random-feature probes cost hundredths: a cap
of 5% (1 s) skips the embedding probe only. Everything depends on the seed alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import flat_timing, write_squares

from autodl.clock import SimulatedClock
from autodl.dataset import AutoDLDataset
from autodl.ingestion import run_ingestion
from finetune.learner import FineTuneLearner

pytestmark = pytest.mark.usefixtures("torch_threads_1")
TIMING = flat_timing(0.5, 0.05)
BUDGET, T0 = 20.0, 1.0
CONFIG = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "learning_rate": 0.01,
          "probes": "raw+random+embedding"}


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_squares(tmp_path_factory.mktemp("probe_share") / "squares")


def _run(dataset: Path, out: Path, **config: Any) -> tuple[FineTuneLearner, list[list[Any]]]:
    """One simulated run; also ``[stage, estimated seconds, clock at its fit, clock after its test]``
    of every probe fitted."""
    learners: list[FineTuneLearner] = []
    probes: list[list[Any]] = []

    def factory(meta: Any, clock: Any) -> FineTuneLearner:
        lrn = FineTuneLearner(meta, {**CONFIG, **config}, clock, t0=T0, timing=TIMING, device="cpu", seed=0)
        fit, test = lrn._fit_probe, lrn.test

        def fit_probe(stage: str) -> None:
            probes.append([stage, lrn._probe_estimate(stage), clock.now(), None])
            fit(stage)

        def test_call(dataset: Any, remaining_time_budget: float | None = None) -> Any:
            pending = lrn.pending_probe
            out = test(dataset, remaining_time_budget)
            if pending is not None:
                probes[-1][3] = clock.now()
            return out

        lrn._fit_probe, lrn.test = fit_probe, test_call  # type: ignore[method-assign]
        learners.append(lrn)
        return lrn

    result = run_ingestion(AutoDLDataset(dataset), factory, out, BUDGET, clock=SimulatedClock())
    assert result.success, result.error
    return learners[0], probes


def _first_network_test(learner: FineTuneLearner) -> float:
    return next(h["elapsed"] for h in learner.history if h["source"].startswith("network"))


def test_a_small_share_skips_the_later_probes_and_fine_tunes_sooner(squares: Path, tmp_path: Path) -> None:
    free, free_probes = _run(squares, tmp_path / "free")  # default 1.0: no cap, as before the knob
    capped, capped_probes = _run(squares, tmp_path / "capped", probe_share=0.05)
    assert [p[0] for p in free_probes] == ["raw", "random", "embedding"]
    assert [p[0] for p in capped_probes] == ["raw", "random"]  # the embedding probe would end after 1 s
    assert not any("embeddings" in h["source"] for h in capped.history)
    assert any("embeddings" in h["source"] for h in free.history)
    assert _first_network_test(capped) < _first_network_test(free)
    assert capped.steps_done > free.steps_done
    # the probes kept ended within the share; the one skipped was estimated to end after it
    assert [h["elapsed"] for h in capped.history if h["source"].startswith("ridge")][-1] <= 0.05 * BUDGET
    assert free_probes[2][1] > 0.05 * BUDGET
    # the estimate of a probe after the first (the test set then decoded) is what it is charged (up to
    # the rounding of a clock that reads 1.7e9 s)
    for stage, estimate, start, end in free_probes[1:]:
        assert estimate == pytest.approx(end - start, abs=1e-5), stage


def test_the_share_is_ignored_without_fine_tuning(squares: Path, tmp_path: Path) -> None:
    # probes only: probe_share is inactive (the space's condition), every probe of the plan runs
    _, probes = _run(squares, tmp_path / "probes_only", finetune=False, probe_share=0.05)
    assert [p[0] for p in probes] == ["raw", "random", "embedding"]


def test_the_first_probe_always_runs(squares: Path, tmp_path: Path) -> None:
    learner, probes = _run(squares, tmp_path / "embedding_first", probes="embedding", probe_share=0.05)
    assert [p[0] for p in probes] == ["embedding"]  # over the share, but it gives the first prediction
    assert learner.history[0]["source"] == "ridge on embeddings"
