"""Tests of finetune.data.load_arrays: the learners' data path.

A capped load is a seeded stratified subset (never "the first records", which in a
dataset stored sorted by class are the first classes only), on both paths: the numpy
path of this project's ingestion (``autodl_source``) and a plain ``tf.data`` pipeline (the
organizers' ingestion). The test labels (the ``.solution`` file) are never read.
"""

from __future__ import annotations

import builtins
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from autodl import dataset as dataset_module
from autodl.dataset import AutoDLDataset
from autodl.writer import write_arrays
from finetune.data import fixed_frames, load_arrays, target_size

CLASSES, PER_CLASS = 5, 12


@pytest.fixture(scope="module")
def sorted_dataset(tmp_path_factory: pytest.TempPathFactory) -> AutoDLDataset:
    """Train examples stored sorted by class; each image's pixels hold its stored position."""
    y = np.repeat(np.arange(CLASSES), PER_CLASS)
    x = np.broadcast_to(np.arange(len(y), dtype=np.uint8)[:, None, None, None], (len(y), 4, 6, 3)).copy()
    root = tmp_path_factory.mktemp("data") / "sorted"
    return AutoDLDataset(write_arrays(root, "sorted", x, y, x[:7], y[:7], num_classes=CLASSES))


def _ingested(ds: AutoDLDataset, subset: str) -> Any:
    """What this project's ingestion hands a model, as far as load_arrays looks (its source)."""
    return SimpleNamespace(autodl_source=(ds, subset))


def _positions(x: np.ndarray) -> list[int]:
    return x[:, 0, 0, 0, 0].astype(int).tolist()


def test_limit_keeps_every_class_of_a_class_sorted_dataset(sorted_dataset: AutoDLDataset) -> None:
    x, y = load_arrays(_ingested(sorted_dataset, "train"), (4, 6), limit=10)
    assert x.shape == (10, 1, 4, 6, 3) and x.dtype == np.uint8 and y.shape == (10, CLASSES)
    np.testing.assert_array_equal(np.bincount(y.argmax(1), minlength=CLASSES), [2] * CLASSES)
    positions = _positions(x)
    assert positions == sorted(positions)  # stored order kept
    np.testing.assert_array_equal(y.argmax(1), np.asarray(positions) // PER_CLASS)  # x and y match


def test_same_seed_same_subset(sorted_dataset: AutoDLDataset) -> None:
    src = _ingested(sorted_dataset, "train")
    a, _ = load_arrays(src, (4, 6), limit=15, seed=3)
    b, _ = load_arrays(src, (4, 6), limit=15, seed=3)
    c, _ = load_arrays(src, (4, 6), limit=15, seed=4)
    assert _positions(a) == _positions(b)
    assert _positions(a) != _positions(c)


def test_no_limit_or_a_large_one_reads_everything(sorted_dataset: AutoDLDataset) -> None:
    n = CLASSES * PER_CLASS
    for limit in (None, n, n + 5):
        x, y = load_arrays(_ingested(sorted_dataset, "train"), None, limit=limit)
        assert _positions(x) == list(range(n))
        assert y.sum() == n


def test_tf_path_draws_the_same_subset(sorted_dataset: AutoDLDataset) -> None:
    """A plain tf.data pipeline (the organizers' ingestion, no autodl_source) gives the same
    subset, pixels and labels as the numpy path."""
    plain = sorted_dataset.tf_dataset("train")
    assert getattr(plain, "autodl_source", None) is None
    for limit in (10, None):
        x_tf, y_tf = load_arrays(plain, (4, 6), limit=limit, seed=1)
        x_np, y_np = load_arrays(_ingested(sorted_dataset, "train"), (4, 6), limit=limit, seed=1)
        np.testing.assert_array_equal(x_tf, x_np)  # PNG: lossless in both decoders
        np.testing.assert_array_equal(y_tf, y_np)
    assert len(set(y_tf.argmax(1).tolist())) == CLASSES


def test_the_test_path_never_opens_the_solution(sorted_dataset: AutoDLDataset, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The learner's data path on a test subset reads the records only: the .solution file
    is replaced by garbage and every way to open it raises."""
    ds = AutoDLDataset(write_arrays(tmp_path / "t", "t", np.zeros((4, 3, 3, 1), np.uint8), [0, 1, 2, 3],
                                    np.full((6, 3, 3, 1), 9, np.uint8), [3, 2, 1, 0, 1, 2]))
    solution = ds.solution_path.resolve()
    solution.write_text("not a solution\n")
    solution.chmod(0)

    def guard(opener: Any) -> Any:
        def open_unless_solution(file: Any, *args: Any, **kwargs: Any) -> Any:
            if isinstance(file, str | Path) and Path(file).resolve() == solution:
                raise AssertionError(f"{file} was opened")
            return opener(file, *args, **kwargs)
        return open_unless_solution

    def forbidden(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the solution was read")

    monkeypatch.setattr(builtins, "open", guard(builtins.open))
    monkeypatch.setattr(io, "open", guard(io.open))
    monkeypatch.setattr(dataset_module, "read_solution", forbidden)
    monkeypatch.setattr(AutoDLDataset, "solution", forbidden)
    for limit in (None, 3):
        x, y = load_arrays(_ingested(ds, "test"), (3, 3), limit=limit)
        assert len(x) == len(y) == (6 if limit is None else 3)
        assert (x == 9).all() and y.shape[1] == 4 and not y.any()  # labels as a model sees them
    with pytest.raises(AssertionError, match="was read"):
        ds.load_numpy("test", solution=True)  # the guard works


def test_fixed_frames_and_target_size() -> None:
    clip = np.arange(5)[:, None, None, None] * np.ones((5, 2, 2, 1))
    assert fixed_frames(clip, 3)[:, 0, 0, 0].tolist() == [0, 2, 4]
    assert fixed_frames(clip[:2], 4)[:, 0, 0, 0].tolist() == [0, 0, 1, 1]
    assert target_size((1, 200, 100, 3), 32, 64) == (64, 32)
    assert target_size((1, -1, -1, 3), 32, 64) == (32, 32)
