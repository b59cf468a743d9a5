"""Tests of autodl.convert: image folders with labels.csv, videos, tensorflow-datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autodl.convert import convert_image_folder, convert_tfds
from autodl.dataset import AutoDLDataset
from autodl.errors import ConversionError


def _save(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (6, 5),
          fmt: str | None = None, mode: str = "RGB") -> bytes:
    """Write a small image (PNG or JPEG by suffix) and return its file bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(sum(color))
    arr = (rng.integers(0, 40, size=(size[1], size[0], 3)) + np.asarray(color) // 2).astype(np.uint8)
    img = Image.fromarray(arr)
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt)
    return path.read_bytes()


def _csv(folder: Path, text: str) -> None:
    (folder / "labels.csv").write_text(text.strip() + "\n", encoding="utf-8")


def _images(folder: Path, n: int, suffix: str = ".png") -> dict[str, bytes]:
    return {f"img{i}{suffix}": _save(folder / f"img{i}{suffix}", (20 * i, 10, 200 - 10 * i))
            for i in range(n)}


def _raw(ds: AutoDLDataset, subset: str) -> list:
    return list(ds.iter_raw(subset))


def _assert_error(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    for needle in needles:
        assert needle in msg, f"{needle!r} not in {msg!r}"


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An output path whose parent does not exist yet, so that any write shows."""
    return tmp_path / "out" / "ds"


def _nothing_written(out: Path) -> None:
    assert not out.parent.exists(), list(out.parent.rglob("*"))


# --- round trips --------------------------------------------------------------------------

def test_round_trip_with_subset_column(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "pets"
    files = {"a.png": _save(folder / "a.png", (200, 0, 0)),
             "b.jpg": _save(folder / "b.jpg", (0, 200, 0), size=(9, 7)),
             "sub/c.png": _save(folder / "sub" / "c.png", (0, 0, 200)),
             "d.jpeg": _save(folder / "d.jpeg", (90, 90, 0)),
             "e.png": _save(folder / "e.png", (10, 90, 90)),
             "f.png": _save(folder / "f.png", (40, 40, 40))}
    (folder / "label.name").write_text("cat\ndog\nbird\n")
    _csv(folder, """
FileName,Labels,subset
a.png,0,train
b.jpg,1,test
sub/c.png,2,train
d.jpeg,1,train
e.png,,unlabelled
f.png,0,test
""")
    root = convert_image_folder(folder, out)
    assert root == out
    ds = AutoDLDataset(out)
    assert ds.name == "pets"
    assert ds.subsets == ["train", "test", "unlabelled"]
    assert ds.label_names() == ["cat", "dog", "bird"]
    assert ds.metadata("train").output_dim == 3
    assert ds.metadata("train").get_num_channels() == 3
    assert ds.metadata("train").get_label_to_index_map() == {"cat": 0, "dog": 1, "bird": 2}

    train = _raw(ds, "train")
    assert [r.frames for r in train] == [[files["a.png"]], [files["sub/c.png"]], [files["d.jpeg"]]]
    assert [r.label_index for r in train] == [[0], [2], [1]]
    test = _raw(ds, "test")
    assert [r.frames for r in test] == [[files["b.jpg"]], [files["f.png"]]]
    assert all(r.label_index == [] for r in test)
    np.testing.assert_array_equal(ds.solution(), [[0, 1, 0], [1, 0, 0]])
    unl = _raw(ds, "unlabelled")
    assert [r.frames for r in unl] == [[files["e.png"]]]
    info = (out / "pets_public.info").read_text()
    assert "domain : image" in info and "sample_num : 5" in info
    # decodes through the numpy path too (images of different sizes -> a list)
    arr = ds.load_numpy("test")
    assert arr.x[0].shape == (1, 7, 9, 3)


def test_random_split_without_subset_column(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "data"
    files = _images(folder, 11)
    rows = [f"img{i}.png,{i % 3}" for i in range(10)] + ["img10.png,"]
    _csv(folder, "FileName,Labels\n" + "\n".join(rows))
    convert_image_folder(folder, out, name="mine", test_fraction=0.2, seed=3)
    ds = AutoDLDataset(out)
    assert ds.name == "mine"
    train, test, unl = _raw(ds, "train"), _raw(ds, "test"), _raw(ds, "unlabelled")
    assert (len(train), len(test), len(unl)) == (8, 2, 1)
    assert unl[0].frames == [files["img10.png"]]
    by_bytes = {v: k for k, v in files.items()}
    train_names = [by_bytes[r.frames[0]] for r in train]
    test_names = [by_bytes[r.frames[0]] for r in test]
    assert sorted(train_names + test_names) == sorted(f"img{i}.png" for i in range(10))
    # CSV order kept within each subset
    assert train_names == sorted(train_names, key=lambda n: int(n[3:-4]))
    for name, r in zip(train_names, train, strict=True):
        assert r.label_index == [int(name[3:-4]) % 3]
    sol = ds.solution()
    for name, row in zip(test_names, sol, strict=True):
        assert row.tolist() == np.eye(3)[int(name[3:-4]) % 3].tolist()
    assert ds.label_names() is None or ds.label_names() == []
    # the split is seeded: the same seed gives the same split
    convert_image_folder(folder, tmp_path / "again", name="mine", test_fraction=0.2, seed=3)
    again = AutoDLDataset(tmp_path / "again")
    assert [r.frames for r in _raw(again, "test")] == [r.frames for r in test]


def test_random_split_is_stratified(tmp_path: Path, out: Path) -> None:
    """Rows listed sorted by class: every class reaches the test subset, in proportion."""
    folder = tmp_path / "sorted"
    _images(folder, 20)
    _csv(folder, "FileName,Labels\n" + "\n".join(f"img{i}.png,{i // 5}" for i in range(20)))
    convert_image_folder(folder, out, test_fraction=0.2, seed=0)
    ds = AutoDLDataset(out)
    np.testing.assert_array_equal(ds.solution().sum(0), [1, 1, 1, 1])
    np.testing.assert_array_equal(ds.labels("train").sum(0), [4, 4, 4, 4])


def test_multi_label(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "ml"
    _images(folder, 4)
    _csv(folder, """
FileName,Labels,subset
img0.png,0 2,train
img1.png,1,train
img2.png,1 3,test
img3.png,0 1 2,test
""")
    convert_image_folder(folder, out)
    ds = AutoDLDataset(out)
    assert ds.metadata("train").output_dim == 4
    assert [r.label_index for r in _raw(ds, "train")] == [[0, 2], [1]]
    np.testing.assert_array_equal(ds.solution(), [[0, 1, 0, 1], [1, 1, 1, 0]])
    y = ds.load_numpy("train").y
    np.testing.assert_array_equal(y, [[1, 0, 1, 0], [0, 1, 0, 0]])


def test_label_confidence_pairs(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "conf"
    _images(folder, 3)
    _csv(folder, """
FileName,LabelConfidencePairs,subset
img0.png,0 0.9 2 0.25,train
img1.png,1 1,train
img2.png,2 1 0 1,test
""")
    convert_image_folder(folder, out)
    ds = AutoDLDataset(out)
    train = _raw(ds, "train")
    assert train[0].label_index == [0, 2]
    np.testing.assert_allclose(train[0].label_score, [0.9, 0.25], rtol=1e-6)
    assert train[1].label_index == [1] and train[1].label_score == [1.0]
    np.testing.assert_array_equal(ds.solution(), [[1, 0, 1]])
    np.testing.assert_allclose(ds.load_numpy("train").y[0], [0.9, 0, 0.25], rtol=1e-6)


def test_grayscale_and_palette_channels(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "gray"
    for i in range(3):
        _save(folder / f"g{i}.png", (30 * i, 60, 90), mode="L")
    _csv(folder, "FileName,Labels\ng0.png,0\ng1.png,1\ng2.png,0")
    convert_image_folder(folder, out)
    assert AutoDLDataset(out).metadata("train").get_num_channels() == 1


def test_folder_of_frames_is_one_video(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "clips"
    clips = {}
    for c, n in (("walk", 3), ("run", 2), ("jump", 12)):
        # frame names out of plain lexical order: frame2 must come before frame10
        clips[c] = [_save(folder / c / f"frame{i}.png", (10 * i, 20 * len(c), 5)) for i in range(n)]
        (folder / c / ".DS_Store").write_bytes(b"junk")
    _csv(folder, "FileName,Labels,subset\nwalk,0,train\njump,0,train\nrun,1,test")
    convert_image_folder(folder, out)
    ds = AutoDLDataset(out)
    train = _raw(ds, "train")
    assert train[0].frames == clips["walk"]
    assert train[1].frames == clips["jump"]
    assert _raw(ds, "test")[0].frames == clips["run"]
    meta = ds.metadata("train")
    assert meta.is_sequence and meta.sequence_size == -1
    assert "domain : video" in (out / "clips_public.info").read_text()
    x = ds.load_numpy("train").x
    assert [v.shape[0] for v in x] == [3, 12]


def _make_video(path: Path, n_frames: int, size: tuple[int, int] = (32, 24)) -> list[np.ndarray]:
    av = pytest.importorskip("av")
    frames = []
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(n_frames):
            arr = np.full((size[1], size[0], 3), 40 * i, dtype=np.uint8)
            arr[:, : size[0] // 2, 0] = 255
            frames.append(arr)
            for packet in stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames


def test_video_file(tmp_path: Path, out: Path) -> None:
    pytest.importorskip("av")
    folder = tmp_path / "vids"
    folder.mkdir()
    _make_video(folder / "a.avi", 4)
    _make_video(folder / "b.avi", 3)
    _csv(folder, "FileName,Labels,subset\na.avi,1,train\nb.avi,0,test")
    convert_image_folder(folder, out)
    ds = AutoDLDataset(out)
    train = _raw(ds, "train")
    assert len(train[0].frames) == 4
    assert all(f[:2] == b"\xff\xd8" for f in train[0].frames)  # JPEG
    x = ds.load_numpy("train").x
    assert x.shape == (1, 4, 24, 32, 3)
    # left half red, right half darker: survived decoding and JPEG
    assert x[0, 0, :, :8, 0].mean() > 200 and x[0, 0, :, -8:, 0].mean() < 60
    assert len(_raw(ds, "test")[0].frames) == 3
    assert ds.metadata("test").is_sequence


def test_video_without_pyav(tmp_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "vids"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(b"not really a video")
    (folder / "b.mp4").write_bytes(b"not really a video")
    _csv(folder, "FileName,Labels\na.mp4,0\nb.mp4,1")
    monkeypatch.setitem(sys.modules, "av", None)  # import av -> ImportError
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "a.mp4", "FileName", "pip install av", "autodl-meta[video]")
    _nothing_written(out)


def test_overwrite(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, "FileName,Labels\nimg0.png,0\nimg1.png,1\nimg2.png,0")
    convert_image_folder(folder, out)
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "already exists")
    convert_image_folder(folder, out, overwrite=True)
    assert len(_raw(AutoDLDataset(out), "train")) == 2


def test_progress_called_per_example(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 4)
    _csv(folder, "FileName,Labels\nimg0.png,0\nimg1.png,1\nimg2.png,0\nimg3.png,")
    calls: list[int] = []
    convert_image_folder(folder, out, progress=calls.append)
    assert calls == [1, 1, 1, 1]


# --- errors: each names the file and the field, and writes nothing -------------------------

def test_error_labels_csv_missing(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "not found", "FileName")
    _nothing_written(out)


@pytest.mark.parametrize(("header", "missing"), [("File,Labels", "FileName"),
                                                 ("FileName,Label,subset", "Labels")])
def test_error_missing_column(tmp_path: Path, out: Path, header: str, missing: str) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    _csv(folder, f"{header}\nimg0.png,0\nimg1.png,1")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", f"field '{missing}'", f"found columns {header.split(',')}",
                  "LabelConfidencePairs")
    _nothing_written(out)


def test_error_file_does_not_exist(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, "FileName,Labels\nimg0.png,0\nimg1.png,1\nmissing.png,1\nimg2.png,0")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'FileName'", "row 3", "missing.png", "does not exist")
    _nothing_written(out)


def test_error_absolute_path(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    outside = tmp_path / "outside.png"
    _save(outside, (1, 2, 3))
    _csv(folder, f"FileName,Labels\nimg0.png,0\n{outside},1\nimg1.png,1")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'FileName'", "row 2", str(outside), "absolute")
    _nothing_written(out)


@pytest.mark.parametrize("name", ["../outside.png", "sub/../../outside.png", "link.png"])
def test_error_path_escapes_folder(tmp_path: Path, out: Path, name: str) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    (folder / "sub").mkdir()
    _save(tmp_path / "outside.png", (1, 2, 3))
    (folder / "link.png").symlink_to(tmp_path / "outside.png")
    _csv(folder, f"FileName,Labels\nimg0.png,0\nimg1.png,1\n{name},1")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'FileName'", "row 3", name, "outside")
    _nothing_written(out)


@pytest.mark.parametrize("label", ["cat", "1.5", "-1"])
def test_error_label_not_an_index(tmp_path: Path, out: Path, label: str) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, f"FileName,Labels\nimg0.png,0\nimg1.png,1 {label}\nimg2.png,0")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'Labels'", "row 2", "img1.png", label)
    _nothing_written(out)


def test_error_label_beyond_label_names(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    (folder / "label.name").write_text("cat\ndog\n")
    _csv(folder, "FileName,Labels\nimg0.png,0\nimg1.png,1\nimg2.png,2")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'Labels'", "row 3", "img2.png", "label.name", ">= 2")
    _nothing_written(out)


@pytest.mark.parametrize("cell", ["0 0.5 1", "0 high", "0 1.5"])
def test_error_bad_confidence_pairs(tmp_path: Path, out: Path, cell: str) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    _csv(folder, f"FileName,LabelConfidencePairs\nimg0.png,0 1\nimg1.png,{cell}")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'LabelConfidencePairs'", "row 2", "img1.png")
    _nothing_written(out)


def test_error_bad_subset_value(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, "FileName,Labels,subset\nimg0.png,0,train\nimg1.png,1,validation\nimg2.png,0,test")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'subset'", "row 2", "validation", "train, test, unlabelled")
    _nothing_written(out)


@pytest.mark.parametrize(("subsets", "empty"), [(["train", "train", "unlabelled"], "test"),
                                                (["test", "unlabelled", "test"], "train")])
def test_error_no_labelled_rows_in_a_subset(tmp_path: Path, out: Path, subsets: list[str],
                                            empty: str) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, "FileName,Labels,subset\n" + "\n".join(f"img{i}.png,{i % 2},{s}"
                                                        for i, s in enumerate(subsets)))
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'subset'", f"subset '{empty}'")
    _nothing_written(out)


def test_error_no_labelled_rows_to_split(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 3)
    _csv(folder, "FileName,Labels\nimg0.png,\nimg1.png,1\nimg2.png,")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'Labels'", "1 labelled rows")
    _nothing_written(out)


def test_error_not_an_image(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    (folder / "notes.png").write_text("hello")
    _csv(folder, "FileName,Labels\nimg0.png,0\nimg1.png,1\nnotes.png,0")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'FileName'", "row 3", "notes.png", "not an image")
    _nothing_written(out)


def test_error_mixed_images_and_videos(tmp_path: Path, out: Path) -> None:
    folder = tmp_path / "d"
    _images(folder, 2)
    _save(folder / "clip" / "f0.png", (1, 2, 3))
    _csv(folder, "FileName,Labels\nimg0.png,0\nclip,1\nimg1.png,1")
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out)
    _assert_error(exc, "labels.csv", "field 'FileName'", "mixes images and videos", "img0.png", "clip")
    _nothing_written(out)


def test_error_checks_every_row_before_writing(tmp_path: Path, out: Path) -> None:
    """A bad last row stops the conversion before any example is written."""
    folder = tmp_path / "d"
    _images(folder, 30)
    rows = [f"img{i}.png,{i % 2}" for i in range(30)] + ["img30.png,1"]
    _csv(folder, "FileName,Labels\n" + "\n".join(rows))
    calls: list[int] = []
    with pytest.raises(ConversionError) as exc:
        convert_image_folder(folder, out, progress=calls.append)
    _assert_error(exc, "row 31", "img30.png")
    assert calls == []
    _nothing_written(out)


# --- tensorflow-datasets (offline, with tfds.testing.mock_data) ----------------------------

@pytest.fixture(scope="module")
def tfds():
    return pytest.importorskip("tensorflow_datasets")


def test_tfds_mock_round_trip(tmp_path: Path, tfds) -> None:
    with tfds.testing.mock_data(num_examples=6):
        root = convert_tfds("mnist", tmp_path / "mnist", max_train=4)
        expected = [ex for ex in tfds.as_numpy(tfds.load("mnist", split="train").take(4))]
        expected_test = [ex for ex in tfds.as_numpy(tfds.load("mnist", split="test"))]
    ds = AutoDLDataset(root)
    assert ds.name == "mnist"
    assert ds.label_names() == [str(i) for i in range(10)]
    train = ds.load_numpy("train")
    assert train.x.shape == (4, 1, 28, 28, 1)
    assert ds.metadata("test").sample_count == 6
    raw = _raw(ds, "train")
    assert all(r.frames[0][:8] == b"\x89PNG\r\n\x1a\n" for r in raw)
    # lossless PNG: the stored pixels and labels are tfds' own
    np.testing.assert_array_equal(train.x[:, 0], np.stack([e["image"] for e in expected]))
    assert [r.label_index for r in raw] == [[int(e["label"])] for e in expected]
    np.testing.assert_array_equal(ds.solution().argmax(1), [int(e["label"]) for e in expected_test])


def test_tfds_split_train_when_no_test_split(tmp_path: Path, tfds) -> None:
    with tfds.testing.mock_data(num_examples=10):
        root = convert_tfds("mnist", tmp_path / "m", split_test=None, seed=1)
        labels = [int(ex["label"]) for ex in tfds.as_numpy(tfds.load("mnist", split="train"))]
    ds = AutoDLDataset(root)
    assert ds.metadata("train").sample_count == 8
    assert ds.metadata("test").sample_count == 2
    got = [r.label_index[0] for r in _raw(ds, "train")] + ds.solution().argmax(1).tolist()
    assert sorted(got) == sorted(labels)


def test_tfds_split_train_caps_are_stratified_subsamples(tmp_path: Path, tfds) -> None:
    with tfds.testing.mock_data(num_examples=30):
        root = convert_tfds("mnist", tmp_path / "m", split_test=None, max_train=6, max_test=4,
                            test_fraction=0.5, seed=2)
        first = [int(ex["label"]) for ex in tfds.as_numpy(tfds.load("mnist", split="train").take(10))]
    ds = AutoDLDataset(root)
    assert ds.metadata("train").sample_count == 6 and ds.metadata("test").sample_count == 4
    got = ds.labels("train").argmax(1).tolist() + ds.solution().argmax(1).tolist()
    assert not set(got) - set(first)  # drawn from the max_train + max_test examples read
    assert len(set(got)) >= min(len(set(first)), 6)  # not the first classes only


def test_tfds_unknown_feature(tmp_path: Path, tfds) -> None:
    with tfds.testing.mock_data(num_examples=2), pytest.raises(ConversionError) as exc:
        convert_tfds("mnist", tmp_path / "m", image_key="pixels")
    _assert_error(exc, "pixels", "field 'image_key'", "'image'")
    assert not (tmp_path / "m").exists()


def test_tfds_unknown_dataset(tmp_path: Path, tfds) -> None:
    with pytest.raises(ConversionError) as exc:
        convert_tfds("no_such_dataset_xyz", tmp_path / "m")
    _assert_error(exc, "no_such_dataset_xyz", "field 'name'")
    assert not (tmp_path / "m").exists()

