"""Tests of metafeatures.descriptors on the tiny datasets of tests/conftest.py."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import AutoDLError
from metafeatures.descriptors import DESCRIPTOR_KEYS, describe, describe_new, descriptor_vector


def test_describe_rgb(written: dict) -> None:
    # conftest's 'rgb': 5 train and 3 test examples of 5x7 RGB images, 3 classes, one label each
    assert describe(written["rgb"].root) == {
        "train_samples": 5.0, "test_samples": 3.0, "classes": 3.0, "channels": 3.0, "height": 5.0, "width": 7.0,
        "variable_size": 0.0, "frames": 1.0, "multilabel": 0.0}


@pytest.mark.parametrize("kind, expected", [
    ("gray2d", {"channels": 1.0}),
    ("rgba", {"channels": 4.0}),
    ("video", {"frames": 4.0, "channels": 3.0}),
    ("multi_lists", {"multilabel": 1.0}),
    ("multi_matrix", {"multilabel": 1.0}),
    ("dense", {"channels": 2.0, "multilabel": 0.0}),
    # train sizes (5,7) (9,4) (6,6) (3,8) (5,7): median height of 5,9,6,3,5 is 5, width of 7,4,6,8,7 is 7
    ("varsize", {"variable_size": 1.0, "height": 5.0, "width": 7.0}),
])
def test_describe_variants(written: dict, kind: str, expected: dict) -> None:
    d = describe(written[kind].root)
    assert list(d) == list(DESCRIPTOR_KEYS)
    assert all(isinstance(v, float) for v in d.values())
    assert {k: d[k] for k in expected} == expected


@pytest.mark.parametrize("kind", ["rgb", "video", "multi_lists", "varsize"])
@pytest.mark.parametrize("through", ["this project's ingestion", "a plain tf.data pipeline"])
def test_describe_new_sees_what_describe_saw(written: dict, kind: str, through: str) -> None:
    """What a submission describes of a new dataset (its training metadata and the tf.data set
    ingestion hands over) equals describe()'s of the same folder, on which the selectors were
    fitted, but for test_samples (unknown in train: half the training examples). Stored sizes,
    never the sizes of frames resized for a network."""
    from autodl.dataset import AutoDLDataset

    ds = AutoDLDataset(written[kind].root)
    d_train = ds.tf_dataset("train")
    if through == "this project's ingestion":
        d_train.autodl_source = (ds, "train")
    got, read = describe_new(ds.metadata("train"), d_train)
    want = describe(written[kind].root)
    assert got == {**want, "test_samples": float(round(want["train_samples"] / 2))}
    if through == "this project's ingestion":  # frames read only where the metadata lacks the size
        assert read == (5 if kind == "varsize" else 0)
    else:  # the organizers' pipeline: the first examples decoded (their labels are needed)
        assert read == 5


def test_describe_never_reads_the_solution(tiny_written, monkeypatch: pytest.MonkeyPatch) -> None:
    import autodl.dataset

    def refuse(*args, **kwargs):
        raise AssertionError("the .solution file was read")

    monkeypatch.setattr(autodl.dataset, "read_solution", refuse)
    tiny_written.root.joinpath("rgb.solution").unlink()
    assert describe(tiny_written.root)["test_samples"] == 3.0


def test_describe_refuses_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(AutoDLError, match="<name>.data"):
        describe(tmp_path)


def test_descriptor_vector_order_and_scaling() -> None:
    d = {"multilabel": 1.0, "frames": 1.0, "variable_size": 0.0, "width": 31.0, "height": 15.0, "channels": 3.0,
         "classes": 9.0, "test_samples": 0.0, "train_samples": 999.0}
    v = descriptor_vector(d)
    assert v.dtype == np.float32 and v.shape == (9,)
    # order train, test, classes, channels, height, width, variable_size, frames, multilabel;
    # log1p(999) = log(1000), log1p(0) = 0, log1p(9) = log(10), log1p(3) = log(4), log1p(15) = log(16), ...
    expected = [math.log(1000), 0.0, math.log(10), math.log(4), math.log(16), math.log(32), 0.0, math.log(2), 1.0]
    np.testing.assert_allclose(v, expected, rtol=1e-6)


def test_descriptor_vector_of_describe(written: dict) -> None:
    v = descriptor_vector(describe(written["video"].root))
    assert v[DESCRIPTOR_KEYS.index("frames")] == pytest.approx(math.log(5))


@pytest.mark.parametrize("change, field", [
    ({"classes": None}, "classes"),
    ({"multilabel": 0.5}, "multilabel"),
    ({"height": -1.0}, "height"),
    ({"width": "wide"}, "width"),
])
def test_descriptor_vector_refuses_bad_values(change: dict, field: str) -> None:
    d = dict.fromkeys(DESCRIPTOR_KEYS, 1.0)
    d.update(change)
    if change[field] is None:
        del d[field]
    with pytest.raises(AutoDLError, match=f"field '{field}'"):
        descriptor_vector(d)
