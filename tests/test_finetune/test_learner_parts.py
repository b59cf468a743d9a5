"""The fine-tuning learner's collaborators (:mod:`finetune.budget`, :mod:`finetune.decoded_data`,
:mod:`finetune.network_stage`, :mod:`finetune.probe_stage`) as the learner wires them together.

The learner's behaviour is tested through the ingestion loop in ``test_learner.py`` and the
tests beside it; here: what the split into modules must keep (the names callers import from
:mod:`finetune.learner`, the state they read through the learner) and must not add (a
reference cycle that would keep a dropped learner's tensors alive until the cycle collector runs).
"""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import flat_timing, write_squares

from autodl.clock import SimulatedClock
from autodl.dataset import AutoDLDataset
from finetune.budget import Budget
from finetune.learner import FineTuneLearner

pytestmark = pytest.mark.usefixtures("torch_threads_1")
TIMING = flat_timing(0.5, 0.001)
CONFIG = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16}


@pytest.fixture(scope="module")
def squares_meta(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return AutoDLDataset(write_squares(tmp_path_factory.mktemp("parts") / "squares")).metadata("train")


def _learner(meta: Any) -> FineTuneLearner:
    return FineTuneLearner(meta, CONFIG, SimulatedClock(), timing=TIMING, device="cpu", seed=0)


def test_budget_counts_the_seconds_spent_from_the_anchor_of_each_call():
    clock = SimulatedClock()
    budget = Budget(clock)
    budget.total = 100.0
    budget.start_call(100.0)
    clock.advance(3.0)
    assert budget.elapsed() == pytest.approx(3.0)
    budget.start_call(90.0)  # the ingestion's own work between the calls counts too
    clock.advance(1.0)
    assert budget.elapsed() == pytest.approx(11.0)


def test_names_that_moved_are_still_importable_from_the_learner():
    from finetune import decoded_data, learner, probe_stage

    assert learner.training_size is decoded_data.training_size
    assert learner._data_format is decoded_data.data_format  # the submission imports it from here
    assert learner.MIN_VALIDATION == decoded_data.MIN_VALIDATION
    assert learner.RANDOM_FEATURES == probe_stage.RANDOM_FEATURES
    assert learner.RAW_PROBE_EXAMPLES == probe_stage.RAW_PROBE_EXAMPLES


def test_the_collaborators_state_is_read_and_set_through_the_learner(squares_meta: Any):
    lrn = _learner(squares_meta)
    assert lrn.net is lrn.network.net and lrn.optimizer is lrn.network.optimizer
    assert lrn.x_train is None and lrn.tiny and lrn.steps_done == 0 and lrn.pending_probe is None
    lrn.multilabel = True  # e.g. a test of the multi-label loss
    assert lrn.data.multilabel
    x = np.arange(2 * 1 * 4 * 4 * 1, dtype=np.float32).reshape(2, 1, 4, 4, 1)
    lrn.x_train = lrn.data.to_tensor(x)  # dense data: scaled to [0, 1] with the first range seen
    assert tuple(lrn.data.x_train.shape) == (2, 1, 1, 4, 4)
    assert float(lrn.x_train.min()) == 0.0 and float(lrn.x_train.max()) == 1.0


def test_a_dropped_learner_is_freed_at_once(squares_meta: Any, tmp_path: Path):
    """No reference cycle between the learner and its collaborators: the submission drops the
    learners it no longer runs to free their memory (GPU memory on a GPU)."""
    ds = AutoDLDataset(write_squares(tmp_path / "squares"))
    lrn = _learner(squares_meta)
    for _ in range(3):  # the raw-pixel probe, its test pass, the random-feature probe (with the test set)
        lrn.train(SimpleNamespace(autodl_source=(ds, "train")), 20.0)
        lrn.test(SimpleNamespace(autodl_source=(ds, "test")), 20.0)
    assert lrn.x_train is not None and lrn.x_test is not None and lrn.best is not None
    ref = weakref.ref(lrn)
    gc.disable()
    try:
        del lrn
        assert ref() is None
    finally:
        gc.enable()
