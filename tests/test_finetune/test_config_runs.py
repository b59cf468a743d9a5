"""``finetune.config_runs.evaluate``: one configuration on one dataset, as a record that can be trusted.

Every evaluation here runs on the simulated clock with the hand-made timing table of
``tests/conftest.py`` (:func:`conftest.flat_timing`), so that its results depend on the
seed alone: the comparisons below give the same numbers on every machine and every load.
"""

from __future__ import annotations

import gc
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import flat_timing, write_squares

from autodl.errors import AutoDLError
from autodl.protocol import Protocol
from autodl.sources import write_source
from finetune.config_runs import evaluate
from finetune.learner import FineTuneLearner
from finetune.timing import TimingError, TimingTable

PROTO = Protocol("test", time_budget=12.0, t0=0.6)
TIMING = flat_timing(0.05, 0.0005)
CHEAP = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
         "learning_rate": 0.01, "pretrained": False, "augmentation": "none"}


pytestmark = pytest.mark.usefixtures("torch_threads_1")


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 training and 24 test 16x16 RGB images: a bright square whose position is the class."""
    return write_squares(tmp_path_factory.mktemp("evaluate") / "squares")


def _run(dataset: Path, config: dict[str, Any] | None = None, **kwargs: Any):
    return evaluate({**CHEAP, **(config or {})}, dataset, kwargs.pop("protocol", PROTO),
                    timing=kwargs.pop("timing", TIMING), device="cpu", **kwargs)


@pytest.mark.slow
def test_two_simulated_evaluations_are_identical(squares: Path):
    first, second = _run(squares, seed=3), _run(squares, seed=3)
    assert first.status == second.status == "ok", first.error
    assert first.clock == "simulated" and first.seed == 3
    assert first.alc == second.alc and 0.0 < first.alc <= 1.0
    assert first.curve == second.curve
    assert len(first.curve) >= 3
    assert first.history == [{**h} for h in second.history]
    # the learner's decisions are the clock's: steps per chunk did not depend on the machine
    assert [h["steps"] for h in first.history] == [h["steps"] for h in second.history]
    other = _run(squares, seed=4)
    assert other.curve != first.curve


@pytest.mark.slow
def test_evaluation_changes_no_process_state_and_frees_the_learner(squares: Path):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    threads = torch.get_num_threads()
    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    result = _run(squares, seed=1)
    assert result.ok
    assert root.handlers == handlers and root.level == level
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), torch_state)  # the global generator is untouched
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    gc.collect()
    assert not [o for o in gc.get_objects() if isinstance(o, FineTuneLearner)]


def test_a_crash_is_a_crashed_result_with_its_traceback(squares: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(self: FineTuneLearner, dataset: Any, remaining_time_budget: float | None = None) -> None:
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(FineTuneLearner, "train", broken)
    result = _run(squares)
    assert result.status == "crashed" and not result.ok
    assert result.alc is None  # never an ALC of 0 that would look like a (bad) result
    assert "RuntimeError: out of memory, say" in result.error
    assert "in broken" in result.traceback
    assert "crashed" in result.summary()


def test_a_model_that_never_advances_the_simulated_clock_is_stopped(squares: Path,
                                                                    monkeypatch: pytest.MonkeyPatch):
    def idle(self: FineTuneLearner, dataset: Any, remaining_time_budget: float | None = None) -> None:
        return None  # no work, no cost: the simulated clock stands still

    monkeypatch.setattr(FineTuneLearner, "train", idle)
    monkeypatch.setattr(FineTuneLearner, "test", lambda self, dataset, remaining_time_budget=None:
                        np.full((24, 3), 1 / 3, np.float32))
    result = _run(squares)
    assert result.status == "timeout"
    assert "advance" in result.error


def test_shortened_evaluation_uses_a_fraction_of_the_budget(squares: Path):
    result = _run(squares, budget=0.5)
    assert result.ok and result.budget == 0.5
    assert result.protocol["time_budget"] == pytest.approx(6.0) and result.protocol["t0"] == PROTO.t0
    assert max(result.curve.timestamps) <= 6.0


@pytest.mark.slow
def test_the_hackathon_metric_is_offered(squares: Path):
    alc, bac = _run(squares, seed=2), _run(squares, seed=2, metric="bac")
    assert alc.ok and bac.ok and bac.metric == "bac"
    assert alc.curve.timestamps == bac.curve.timestamps  # the same run, scored two ways
    assert bac.alc != alc.alc


def test_refusals_happen_before_anything_runs(squares: Path):
    # a configuration the table cannot price: the missing entry is named
    data = TIMING.to_dict()
    del data["backbones"]["scratch_cnn"]
    with pytest.raises(TimingError, match="scratch_cnn"):
        _run(squares, timing=TimingTable.from_dict(data))
    # a model that reads the wall clock cannot run on the simulated one
    with pytest.raises(AutoDLError, match="wall clock"):
        evaluate("baseline:linear", squares, PROTO, timing=TIMING)
    with pytest.raises(AutoDLError, match="clock"):
        _run(squares, clock="sundial")
    with pytest.raises(AutoDLError):
        _run(squares, budget=0.0)


def test_tiny_datasets_choose_probes_by_leave_pair_out(monkeys: Any, tmp_path: Path):
    """The organizers' Monkeys (26 training examples): no validation split, so no
    fine-tuning; every prediction comes from a ridge probe chosen by its leave-pair-out
    NAUC on the training examples, and a probe that scores worse there is not returned."""
    result = evaluate("baseline:default", monkeys, Protocol("mini", 60.0, 3.0), timing=TIMING, device="cpu")
    assert result.ok, result.error
    history = result.history
    assert all(h["steps"] == 0 for h in history)
    tested = [h for h in history if not h["source"].startswith("unchanged")]
    assert len(tested) == 3 and all(h["source"].startswith("ridge on") for h in tested)
    best = -np.inf
    for h in tested:
        assert h["val_nauc"] is not None  # a leave-pair-out score, not "no score"
        assert h["returned"] == ("this" if h["val_nauc"] >= best else "earlier best")
        best = max(best, h["val_nauc"])
    # the curve no longer swings: each returned prediction is the best by leave-pair-out
    assert min(result.curve.nauc) >= 0.5 * max(result.curve.nauc)


@pytest.fixture(scope="module")
def moving_squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("motion") / "moving_squares"
    return write_source("moving_squares", root, max_train=160, max_test=80, seed=0)


@pytest.mark.slow
def test_video_motion_is_seen_by_frame_differences_not_by_averaging(moving_squares: Path):
    """The class of ``moving_squares`` is the direction of motion; any single frame is a
    uniformly placed square. Averaging per-frame outputs stays near chance, frame
    differences (and temporal shifts) see the direction."""
    config = {"probes": "none", "frames_per_clip": 4, "batch_size": 16, "input_size": 32,
              "learning_rate": 0.003, "lr_schedule": "cosine"}
    # about 120 training steps of 16 clips: a step of 64 frames is priced 0.04 s
    proto = Protocol("motion", time_budget=6.0, t0=0.3)
    timing = flat_timing(0.01, 0.0001)
    final = {mode: evaluate({**CHEAP, **config, "temporal": mode}, moving_squares, proto, timing=timing,
                            device="cpu").final_nauc for mode in ("average", "difference")}
    assert final["average"] < 0.3, final
    assert final["difference"] > 0.8, final
