"""The learner's quick start (:data:`finetune.learner.QUICK_START_PER_CLASS`) on the simulated clock.

On a training set that is costly to decode (large colour images), the first prediction comes
from a raw-pixel probe fitted on a small stratified subset, before the whole training set is
decoded; the next ``train`` call decodes the rest, and from then on the learner sees the whole
training set exactly as it does without the quick start: the same arrays, the same models, the
same predictions (only later). Everything is charged to the simulated clock and a fixed seed
gives the same run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import flat_timing

import finetune.decoded_data as decoded_data_module
import finetune.learner as learner_module
from autodl.clock import SimulatedClock
from autodl.dataset import AutoDLDataset
from autodl.ingestion import run_ingestion
from autodl.score_files import load_prediction
from autodl.writer import write_arrays
from finetune.learner import FineTuneLearner
from finetune.timing import TimingTable

pytestmark = pytest.mark.usefixtures("torch_threads_1")

SIDE, CLASSES, N_TRAIN, N_TEST = 96, 4, 160, 40
CONFIG = {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32, "finetune": False,
          "probes": "raw+random"}
MEGAPIXEL_S = 0.03
"""Decoding cost per million stored values (as the learner charges it), besides the flat table's
per-example cost: large images are costly to decode, as PNGs are on the reference CPU."""


def _timing() -> TimingTable:
    data = flat_timing().to_dict()
    for fmt in data["decode"]:
        data["decode"][fmt]["megapixel_s"] = MEGAPIXEL_S
    return TimingTable.from_dict(data)


TIMING = _timing()


@pytest.fixture(scope="module")
def large_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 training and 40 test 96x96 colour PNGs, 4 classes: a bright square whose position is the class."""
    rng = np.random.default_rng(0)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % CLASSES)
        x = rng.integers(0, 90, (n, SIDE, SIDE, 3)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = divmod(int(k), 2)
            x[i, 48 * r + 8:48 * r + 40, 48 * c + 8:48 * c + 40] = 230
        return x, y

    root = tmp_path_factory.mktemp("quick_start")
    return write_arrays(root / "large", "large", *images(N_TRAIN), *images(N_TEST), num_classes=CLASSES)


def _run(path: Path, out: Path, *, quick: bool = True, monkeypatch: pytest.MonkeyPatch | None = None) -> dict[str, Any]:
    """Ingest ``path`` with the probes-only configuration on the simulated clock (seed 0)."""
    learners: list[FineTuneLearner] = []
    decoded: list[int] = []  # examples per training-set decoding call, in order

    def factory(meta: Any, clock: Any) -> FineTuneLearner:
        learner = FineTuneLearner(meta, CONFIG, clock, t0=1.0, timing=TIMING, device="cpu", seed=0)
        learners.append(learner)
        return learner

    with pytest.MonkeyPatch.context() as mp:
        if not quick:
            mp.setattr(learner_module, "QUICK_START_MEGAVALUES", float("inf"))
        original = decoded_data_module.load_arrays  # the learner's data decodes through it

        def load_arrays(dataset: Any, *args: Any, **kwargs: Any) -> tuple[np.ndarray, np.ndarray]:
            x, y = original(dataset, *args, **kwargs)
            if dataset.autodl_source[1] == "train":
                decoded.append(len(x))
            return x, y

        mp.setattr(decoded_data_module, "load_arrays", load_arrays)
        result = run_ingestion(AutoDLDataset(path), factory, out, 20.0, clock=SimulatedClock())
    assert result.success, result.error
    predictions = [load_prediction(out / f"{result.task_name}.predict_{k}") for k in range(result.num_predictions)]
    return {"result": result, "learner": learners[0], "predictions": predictions, "decoded": decoded}


@pytest.fixture(scope="module")
def runs(large_images: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("quick_start_runs")
    return {"quick": _run(large_images, out / "quick"), "again": _run(large_images, out / "again"),
            "plain": _run(large_images, out / "plain", quick=False)}


def test_the_first_prediction_comes_before_the_training_set_is_decoded(runs: dict[str, dict[str, Any]]) -> None:
    quick, plain = runs["quick"], runs["plain"]
    full_decoding = TIMING.decode_s("png", N_TRAIN, N_TRAIN * SIDE * SIDE * 3 / 1e6)
    first = quick["result"].timestamps[0]
    assert first < full_decoding < plain["result"].timestamps[0]
    # a real model: a ridge probe fitted on a few examples per class, which predicts the test set
    history = quick["learner"].history
    assert "quick start" in history[0]["source"] and history[0]["val_nauc"] is None
    assert quick["predictions"][0].shape == (N_TEST, CLASSES)
    assert len(np.unique(quick["predictions"][0].argmax(1))) > 1
    # the subset first (5 per class), the rest by the next call; without the quick start, all at once
    assert quick["decoded"] == [5 * CLASSES, N_TRAIN - 5 * CLASSES]
    assert plain["decoded"] == [N_TRAIN]


def test_afterwards_the_whole_training_set_is_used_as_without_the_quick_start(runs: dict[str, dict[str, Any]]) -> None:
    quick, plain = runs["quick"]["learner"], runs["plain"]["learner"]
    assert quick.n_examples == plain.n_examples == N_TRAIN
    assert len(quick.x_train) + len(quick.x_val) == N_TRAIN
    assert torch.equal(quick.x_train, plain.x_train) and torch.equal(quick.y_train, plain.y_train)
    assert torch.equal(quick.x_val, plain.x_val) and np.array_equal(quick.y_val, plain.y_val)
    assert quick.data.part is None and quick.probing.quick_probe is None  # the subset is not kept apart
    # the same models, in the same order, each as good on validation; the same predictions, later
    later = quick.history[1:]
    assert [h["source"] for h in later] == [h["source"] for h in plain.history]
    assert [h["val_nauc"] for h in later] == [h["val_nauc"] for h in plain.history]
    assert all(a["elapsed"] > b["elapsed"] for a, b in zip(later, plain.history, strict=True))
    assert len(runs["quick"]["predictions"]) == len(runs["plain"]["predictions"]) + 1
    for a, b in zip(runs["quick"]["predictions"][1:], runs["plain"]["predictions"]):
        np.testing.assert_array_equal(a, b)


def test_a_fixed_seed_gives_the_same_run(runs: dict[str, dict[str, Any]]) -> None:
    a, b = runs["quick"], runs["again"]
    assert a["result"].timestamps == b["result"].timestamps
    for x, y in zip(a["predictions"], b["predictions"], strict=True):
        np.testing.assert_array_equal(x, y)


def test_no_quick_start_where_decoding_is_cheap(tmp_path: Path) -> None:
    """A few small images: decoded at once, as before (the first prediction is the full raw probe)."""
    rng = np.random.default_rng(1)
    y = np.arange(N_TRAIN) % CLASSES
    x = rng.integers(0, 255, (N_TRAIN, 16, 16, 3)).astype(np.uint8)
    path = write_arrays(tmp_path / "small", "small", x, y, x[:8], y[:8], num_classes=CLASSES)
    run = _run(path, tmp_path / "out")
    assert run["decoded"] == [N_TRAIN]
    assert "quick start" not in run["learner"].history[0]["source"]
