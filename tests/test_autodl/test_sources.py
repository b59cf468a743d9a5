"""Tests of autodl.sources (the registry, write_source) and autodl.sources_core (the core datasets)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from autodl import sources, sources_core
from autodl.dataset import AutoDLDataset
from autodl.errors import ConversionError
from autodl.fonts import find_fonts
from autodl.labels import stratified_subset
from autodl.sources import SourceInfo, list_sources, write_source
from autodl.sources_core import (
    FASHION_MNIST_DIR,
    load_digits,
    load_fashion_mnist,
    load_glyphs,
    load_textures,
    read_idx,
)

needs_fashion = pytest.mark.skipif(
    not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"{FASHION_MNIST_DIR} absent: apt-get install dataset-fashion-mnist")
needs_fonts = pytest.mark.skipif(not find_fonts(),
                                 reason="no TrueType font: apt-get install fonts-dejavu-core")


def _check_arrays(arrays: tuple, shape: tuple[int, int, int], n_classes: int) -> None:
    x_train, y_train, x_test, y_test, names = arrays
    for x, y in ((x_train, y_train), (x_test, y_test)):
        assert x.dtype == np.uint8 and x.ndim == 4 and x.shape[1:] == shape
        assert y.dtype == np.int64 and y.shape == (len(x),)
        assert set(np.unique(y).tolist()) == set(range(n_classes))
        assert x.max() > 100  # not an empty image set
    assert len(names) == n_classes and len(set(names)) == n_classes


def test_list_sources() -> None:
    infos = list_sources()
    assert [i.name for i in infos][:5] == ["digits", "fashion_mnist", "textures", "glyphs", "moving_squares"]
    for info in infos:
        assert isinstance(info, SourceInfo)
        assert info.description and "\n" not in info.description
        assert "classes" in info.task
        assert info.available == (info.reason_unavailable is None)
    by_name = {i.name: i for i in infos}
    assert by_name["digits"].available and by_name["digits"].task == "10 classes, 8x8x1"
    assert by_name["textures"].available


def test_fashion_unavailable_says_which_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(sources_core, "FASHION_MNIST_DIR", tmp_path / "none")
    monkeypatch.setitem(sources.SOURCES, "fashion_mnist", sources.DataSource(
        "fashion_mnist", "d", "t", load_fashion_mnist,
        lambda: sources_core._fashion_missing(tmp_path / "none")))
    info = {i.name: i for i in list_sources()}["fashion_mnist"]
    assert not info.available
    assert "apt-get install dataset-fashion-mnist" in info.reason_unavailable


def test_digits() -> None:
    arrays = load_digits()
    _check_arrays(arrays, (8, 8, 1), 10)
    x_train, y_train, x_test, y_test, names = arrays
    assert (len(x_train), len(x_test)) == (1198, 599)
    assert x_train.max() == 255 and names == [str(i) for i in range(10)]
    # stratified: every class about 2/3 in train
    frac = np.bincount(y_train) / (np.bincount(y_train) + np.bincount(y_test))
    assert np.all(np.abs(frac - 2 / 3) < 0.02)
    # seeded: the same seed gives the same split, another a different one
    again = load_digits()
    np.testing.assert_array_equal(again[0], x_train)
    assert not np.array_equal(load_digits(seed=1)[1], y_train)


def test_write_source_digits_round_trip(tmp_path: Path) -> None:
    calls: list[int] = []
    root = write_source("digits", tmp_path / "digits", max_train=30, max_test=20, progress=calls.append)
    ds = AutoDLDataset(root)
    assert ds.name == "digits" and ds.label_names() == [str(i) for i in range(10)]
    train = ds.load_numpy("train")
    assert train.x.shape == (30, 1, 8, 8, 1)
    assert set(train.y.argmax(1).tolist()) == set(range(10))  # stratified subsample
    x_train, y_train, *_ = load_digits()
    keep = stratified_subset(y_train, 30, 0)
    np.testing.assert_array_equal(train.x[:, 0], x_train[keep])  # PNG is lossless
    np.testing.assert_array_equal(train.y.argmax(1), y_train[keep])
    assert ds.solution().shape == (20, 10)
    assert len(calls) == 50
    with pytest.raises(ConversionError) as exc:
        write_source("digits", root, max_train=5, max_test=5)
    assert "already exists" in str(exc.value)


def test_write_source_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ConversionError) as exc:
        write_source("cifar", tmp_path / "x")
    assert "cifar" in str(exc.value) and "digits" in str(exc.value) and "field 'source'" in str(exc.value)
    assert not (tmp_path / "x").exists()


@needs_fashion
def test_fashion_mnist() -> None:
    arrays = load_fashion_mnist()
    _check_arrays(arrays, (28, 28, 1), 10)
    x_train, y_train, x_test, y_test, names = arrays
    assert (len(x_train), len(x_test)) == (60000, 10000)
    assert names[0] == "T-shirt/top" and names[9] == "Ankle boot"
    np.testing.assert_array_equal(np.bincount(y_test), [1000] * 10)


@needs_fashion
def test_write_source_fashion_mnist(tmp_path: Path) -> None:
    ds = AutoDLDataset(write_source("fashion_mnist", tmp_path / "f", max_train=20, max_test=10))
    assert ds.load_numpy("train").x.shape == (20, 1, 28, 28, 1)
    assert ds.label_names()[9] == "Ankle boot"
    assert ds.solution().shape == (10, 10)


def test_fashion_mnist_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConversionError) as exc:
        load_fashion_mnist(path=tmp_path / "nowhere")
    assert "apt-get install dataset-fashion-mnist" in str(exc.value)
    assert "nowhere" in str(exc.value)


def _write_idx(path: Path, arr: np.ndarray, code: int = 0x08) -> None:
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, dtype=">u4").tobytes()
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(arr.dtype.newbyteorder(">")).tobytes())


def test_read_idx(tmp_path: Path) -> None:
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.gz"), arr)
    ints = np.arange(-3, 3, dtype=np.int32)
    _write_idx(tmp_path / "b.gz", ints, code=0x0C)
    out = read_idx(tmp_path / "b.gz")
    np.testing.assert_array_equal(out, ints)
    assert out.dtype.isnative


def test_read_idx_bad_header(tmp_path: Path) -> None:
    bad = tmp_path / "bad-idx1-ubyte.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(bytes([0, 0, 0x08, 1]) + np.asarray([10], dtype=">u4").tobytes() + b"\x00" * 3)
    with pytest.raises(ConversionError) as exc:
        read_idx(bad)
    assert "bad-idx1-ubyte.gz" in str(exc.value) and "field 'header'" in str(exc.value)
    with gzip.open(bad, "wb") as fh:
        fh.write(b"PK\x03\x04rest")
    with pytest.raises(ConversionError, match="not an idx file"):
        read_idx(bad)


def test_textures() -> None:
    arrays = load_textures(n_train_per_class=6, n_test_per_class=3)
    _check_arrays(arrays, (32, 32, 1), 8)
    x_train, y_train, x_test, y_test, names = arrays
    assert (len(x_train), len(x_test)) == (48, 24)
    np.testing.assert_array_equal(np.bincount(y_train), [6] * 8)
    assert names[:3] == ["brick", "grass", "gravel"]
    # every crop has texture, not a flat patch
    assert all(x.std() > 2 for x in x_train)
    again = load_textures(n_train_per_class=6, n_test_per_class=3)
    np.testing.assert_array_equal(again[0], x_train)
    assert not np.array_equal(load_textures(seed=5, n_train_per_class=6, n_test_per_class=3)[0], x_train)


def test_write_source_textures(tmp_path: Path) -> None:
    ds = AutoDLDataset(write_source("textures", tmp_path / "t", max_train=16, max_test=8, seed=3))
    train = ds.load_numpy("train")
    assert train.x.shape == (16, 1, 32, 32, 1)
    np.testing.assert_array_equal(np.bincount(train.y.argmax(1), minlength=8), [2] * 8)
    assert ds.label_names()[0] == "brick"


@needs_fonts
def test_glyphs() -> None:
    arrays = load_glyphs(n_train_per_class=4, n_test_per_class=2)
    _check_arrays(arrays, (28, 28, 1), 10)
    x_train, y_train, x_test, _, names = arrays
    assert (len(x_train), len(x_test)) == (40, 20) and names == list("0123456789")
    # a glyph is drawn, centred-ish, with a black border like MNIST
    assert all(x.max() > 200 for x in x_train)
    assert x_train[:, 0].max() < 255 or x_train[:, -1].max() < 255
    np.testing.assert_array_equal(load_glyphs(n_train_per_class=4, n_test_per_class=2)[0], x_train)
    letters = load_glyphs(characters="AB", n_train_per_class=2, n_test_per_class=1)
    assert letters[4] == ["A", "B"] and letters[0].shape == (4, 28, 28, 1)


def test_glyphs_without_fonts(tmp_path: Path) -> None:
    with pytest.raises(ConversionError) as exc:
        load_glyphs(font_dirs=[tmp_path], n_train_per_class=1, n_test_per_class=1)
    assert "apt-get install fonts-dejavu-core" in str(exc.value) and "field 'fonts'" in str(exc.value)


@needs_fonts
def test_write_source_glyphs(tmp_path: Path) -> None:
    ds = AutoDLDataset(write_source("glyphs", tmp_path / "g", max_train=20, max_test=10))
    train = ds.load_numpy("train")
    assert train.x.shape == (20, 1, 28, 28, 1)
    assert set(train.y.argmax(1).tolist()) == set(range(10))
    assert ds.label_names() == list("0123456789")


def test_moving_squares_class_is_the_direction_of_motion(tmp_path: Path) -> None:
    from autodl.sources_core import MOVING_SQUARES_DIRECTIONS, load_moving_squares

    x, y, xt, yt, names = load_moving_squares(seed=1, n_train_per_class=5, n_test_per_class=2)
    assert x.shape == (20, 8, 16, 16, 1) and xt.shape == (8, 8, 16, 16, 1) and x.dtype == np.uint8
    assert names == list(MOVING_SQUARES_DIRECTIONS) and np.bincount(y).tolist() == [5] * 4
    for clip, label in zip(x, y):
        dr, dc = MOVING_SQUARES_DIRECTIONS[names[label]]
        for t in range(7):  # each frame is the one before rolled one pixel in the class's direction
            np.testing.assert_array_equal(clip[t + 1], np.roll(clip[t], (dr, dc), axis=(0, 1)))
    # any one frame carries no class: first frames of different classes look alike (a square)
    assert {int((clip[0] > 0).sum()) for clip in x} == {16}
    with pytest.raises(ConversionError, match="square"):
        load_moving_squares(square=16)
    ds = AutoDLDataset(write_source("moving_squares", tmp_path / "ms", max_train=12, max_test=8))
    assert ds.metadata("train").get_tensor_shape() == (8, 16, 16, 1)
    assert ds.label_names() == names


def test_register_source_makes_a_new_source_writable(tmp_path, monkeypatch):
    """Adding a source is one loader and one check (README, 'Extend it')."""
    monkeypatch.setattr(sources, "SOURCES", dict(sources.SOURCES))

    def load_squares(seed: int = 0):
        rng = np.random.default_rng(seed)
        x = rng.integers(0, 255, (30, 8, 8, 1), dtype=np.uint8)
        y = np.arange(30) % 3
        return x[:24], y[:24], x[24:], y[24:], ["a", "b", "c"]

    src = sources.register_source(sources.DataSource("noise3", "seeded noise, 3 classes", "3 classes, 8x8x1",
                                                     load_squares, lambda: None))
    assert "noise3" in [s.name for s in sources.list_sources()]
    with pytest.raises(ValueError, match="registered already"):
        sources.register_source(sources.DataSource("noise3", "", "", load_squares, lambda: None))
    assert sources.register_source(src) is src  # the same object again is fine
    root = sources.write_source("noise3", tmp_path / "noise3")
    assert AutoDLDataset(root).metadata("train").sample_count == 24
