"""The learner charges its work through its clock alone (:meth:`autodl.clock.Clock.charge`).

On a simulated clock every second the clock moves is a charge, priced from the timing
table and tallied by what was charged; on a wall or CPU clock the timing table is never
consulted (a table that fails on any use is given, and the run succeeds). The probe plan
is parsed into :class:`finetune.probe.ProbeStage` members that read as the configuration's
strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import flat_timing, write_squares

from autodl.clock import CpuClock, SimulatedClock, WallClock
from autodl.dataset import AutoDLDataset
from autodl.ingestion import run_ingestion
from finetune.learner import FineTuneLearner
from finetune.probe import ProbeStage

pytestmark = pytest.mark.usefixtures("torch_threads_1")
CONFIG = {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32, "batch_size": 16,
          "optimizer": "Adam", "learning_rate": 0.01, "probes": "raw+random+embedding", "probe_share": 0.5}
CHARGED = {"decode", "raw features", "random features fit", "random features", "ridge fit", "ridge predict",
           "forward", "train step", "write predictions"}
"""What a run of :data:`CONFIG` (every probe, then fine-tuning) charges."""


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_squares(tmp_path_factory.mktemp("clock_charges") / "squares")


class _RecordingClock(SimulatedClock):
    """A simulated clock that records every advance made other than by a charge."""

    def __init__(self) -> None:
        super().__init__()
        self.uncharged: list[float] = []
        self._charging = False

    def charge(self, what: str, cost: Any) -> None:
        self._charging = True
        try:
            super().charge(what, cost)
        finally:
            self._charging = False

    def advance(self, seconds: float) -> float:
        if not self._charging:
            self.uncharged.append(seconds)
        return super().advance(seconds)


class _NoTable:
    """A timing table that fails on any use."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the timing table was consulted ({name})")


def _ingest(dataset: Path, out: Path, clock: Any, timing: Any, budget: float) -> FineTuneLearner:
    learners: list[FineTuneLearner] = []

    def factory(meta: Any, clk: Any) -> FineTuneLearner:
        learners.append(FineTuneLearner(meta, CONFIG, clk, t0=budget / 20, timing=timing, device="cpu",
                                        seed=0))
        return learners[0]

    result = run_ingestion(AutoDLDataset(dataset), factory, out, budget, clock=clock)
    assert result.success, result.error
    assert result.num_predictions >= 2
    return learners[0]


@pytest.mark.slow
def test_every_simulated_second_is_a_charge(squares: Path, tmp_path: Path) -> None:
    clock = _RecordingClock()
    start = clock.now()
    learner = _ingest(squares, tmp_path, clock, flat_timing(0.05, 0.0005), 12.0)
    assert learner.steps_done > 0 and any(h["source"].startswith("network") for h in learner.history)
    assert clock.uncharged == []
    assert set(clock.charged) == CHARGED
    # (the clock shows seconds since the epoch: each advance rounds to about 2e-7 s)
    assert sum(clock.charged.values()) == pytest.approx(clock.now() - start, abs=1e-4)


@pytest.mark.parametrize("make", [WallClock, CpuClock])
def test_a_real_clock_never_consults_the_timing_table(make: Any, squares: Path, tmp_path: Path) -> None:
    learner = _ingest(squares, tmp_path, make(), _NoTable(), 4.0)
    assert learner.history and learner.history[0]["source"] == "ridge on raw pixels"


def test_the_probe_plan_is_made_of_stages_that_read_as_strings() -> None:
    plan = ProbeStage.plan("raw+random+embedding")
    assert plan == [ProbeStage.RAW, ProbeStage.RANDOM, ProbeStage.EMBEDDING]
    assert plan == ["raw", "random", "embedding"] and "+".join(plan) == "raw+random+embedding"
    assert ProbeStage.plan("none") == []
    assert f"{ProbeStage.EMBEDDING}" == "embedding" and "%s" % ProbeStage.QUICK == "quick"
    with pytest.raises(ValueError):
        ProbeStage("pixels")
