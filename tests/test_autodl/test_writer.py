"""Writing the AutoDL format: round trips, the organizers' record layout, refusals, clean failures.

The tf.data view of these datasets is checked in test_dataset.py (one TensorFlow module).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autodl.dataset import AutoDLDataset, read_solution
from autodl.errors import ConversionError
from autodl.metadata import read_metadata
from autodl.proto import SequenceExample
from autodl.tfrecord import read_records
from autodl.writer import SubsetData, check_max_examples, write_arrays, write_dataset

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _parsed_records(path: Path) -> list:
    out = []
    for raw in read_records(path):
        ex = SequenceExample()
        ex.ParseFromString(raw)
        out.append(ex)
    return out


def _structure(ex) -> tuple[dict[str, str], dict[str, str]]:
    """The key -> value-type structure of a record (what the organizers' readers rely on)."""
    ctx = {k: v.WhichOneof("kind") for k, v in ex.context.feature.items()}
    lists = {k: {f.WhichOneof("kind") for f in v.feature} for k, v in ex.feature_lists.feature_list.items()}
    return ctx, {k: "/".join(sorted(v)) for k, v in lists.items()}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- round trips -----------------------------------------------------------------------------

def test_round_trip_numpy(variant) -> None:
    """Same pixels (PNG is lossless) or values (DENSE) and labels after write + read."""
    ds = AutoDLDataset(variant.root)
    assert ds.name == variant.name
    assert ds.subsets == (["train", "test", "unlabelled"] if variant.unlabelled else ["train", "test"])
    for subset, ref, y in (("train", variant.train, variant.y_train), ("test", variant.test, variant.y_test)):
        arrays = ds.load_numpy(subset, solution=subset == "test")
        assert len(arrays) == len(ref) and arrays.has_labels
        if len({r.shape for r in ref}) == 1:
            assert isinstance(arrays.x, np.ndarray)
            np.testing.assert_array_equal(arrays.x, np.stack(ref))
        else:
            assert isinstance(arrays.x, list)
            for a, r in zip(arrays.x, ref, strict=True):
                np.testing.assert_array_equal(a, r)
        assert arrays.x[0].dtype == (np.float32 if variant.fmt == "DENSE" else np.uint8)
        np.testing.assert_array_equal(arrays.y, y)
    np.testing.assert_array_equal(ds.solution(), variant.y_test)


def test_round_trip_metadata(variant) -> None:
    ds = AutoDLDataset(variant.root)
    for subset, ref in (("train", variant.train), ("test", variant.test)):
        m = ds.metadata(subset)
        assert m.sample_count == len(ref) == ds.count_records(subset)
        assert m.output_dim == variant.num_classes
        assert m.format == variant.fmt
        t, h, w, c = ref[0].shape
        same = {r.shape for r in ref}
        rows = h if len({s[1] for s in same}) == 1 else -1
        cols = w if len({s[2] for s in same}) == 1 else -1
        assert m.get_tensor_shape() == (t, rows, cols, c)
        assert m.matrix_spec[0].num_channels == c  # written explicitly
        assert m.is_sequence == (t > 1) and m.sequence_size == t
        lines = (ds.subset_dir(subset) / "metadata.textproto").read_text().splitlines()
        assert [line.split(":")[0] for line in lines[:4]] == ["is_sequence", "sample_count",
                                                              "sequence_size", "output_dim"]
        assert lines[4] == "matrix_spec {"


def test_labels_as_index_lists_or_matrix_are_the_same(written) -> None:
    a, b = written["multi_lists"], written["multi_matrix"]
    ya = AutoDLDataset(a.root).load_numpy("train").y
    yb = AutoDLDataset(b.root).load_numpy("train").y
    np.testing.assert_array_equal(ya, yb)
    assert (ya.sum(1) > 1).any()  # several labels per example
    sol_a = (a.root / "multi_lists.solution").read_text()
    assert sol_a == (b.root / "multi_matrix.solution").read_text()
    assert sol_a.splitlines()[0] == "0 1 1"
    raws = list(AutoDLDataset(a.root).iter_raw("train"))
    assert raws[0].label_index == [0, 2] and raws[0].label_score == [1.0, 1.0]


def test_label_names(written) -> None:
    w = written["rgb"]
    ds = AutoDLDataset(w.root)
    assert (w.root / "rgb_label.name").read_text(encoding="utf-8") == "cat\ndog\nbird\n"
    assert ds.label_names() == ["cat", "dog", "bird"]
    for subset in ("train", "test"):
        assert ds.metadata(subset).label_to_index_map == {"cat": 0, "dog": 1, "bird": 2}
    # without names: no file and no map
    plain = AutoDLDataset(written["gray"].root)
    assert not (plain.root / "gray_label.name").exists()
    assert plain.metadata("train").label_to_index_map == {} and plain.label_names() is None


def test_unicode_label_names(tmp_path: Path) -> None:
    names = ["chat noir", "naïve ☃", "it's \"quoted\""]
    x = np.zeros((3, 2, 2, 3), np.uint8)
    root = write_arrays(tmp_path / "u", "u", x, [0, 1, 2], x[:2], [2, 0], label_names=names)
    ds = AutoDLDataset(root)
    assert ds.label_names() == names
    assert ds.metadata("train").label_names() == names


def test_solution_written_with_percent_0f(written) -> None:
    for kind in ("rgb", "multi_matrix"):
        w = written[kind]
        text = (w.root / f"{kind}.solution").read_text()
        lines = text.splitlines()
        assert text.endswith("\n") and len(lines) == len(w.test)
        for line, row in zip(lines, w.y_test, strict=True):
            assert line == " ".join("%.0f" % v for v in row)  # "0 1 0", no "0.0" or "1.000e+00"
        np.testing.assert_array_equal(read_solution(w.root / f"{kind}.solution"), w.y_test)


def test_public_info(written) -> None:
    text = (written["video"].root / "video_public.info").read_text()
    assert text == "domain : video\nsample_num : 8\nlabel_num : 3\n"
    assert "domain : image" in (written["rgb"].root / "rgb_public.info").read_text()


def test_unlabelled_subset(written) -> None:
    w, plain = written["unlabelled"], written["rgb"]
    ds = AutoDLDataset(w.root)
    arrays = ds.load_numpy("unlabelled")
    assert not arrays.has_labels and not arrays.y.any() and arrays.y.shape == (4, 3)
    np.testing.assert_array_equal(arrays.x, np.stack(w.unlabelled))
    meta = ds.metadata("unlabelled")
    assert meta.sample_count == 4 and meta.output_dim == 3
    assert meta.label_to_index_map == {"cat": 0, "dog": 1, "bird": 2}
    assert all(not r.label_index and not r.label_score for r in ds.iter_raw("unlabelled"))
    # the unlabelled set changes neither the solution nor the other subsets
    assert (w.root / "unlabelled.solution").read_text() == (plain.root / "rgb.solution").read_text()
    np.testing.assert_array_equal(ds.solution(), w.y_test)
    assert ds.metadata("test").sample_count == len(w.test)
    assert "sample_num : 8" in (w.root / "unlabelled_public.info").read_text()


def test_dense_keeps_values(written) -> None:
    w = written["dense"]
    ds = AutoDLDataset(w.root)
    x = ds.load_numpy("train").x
    assert x.dtype == np.float32 and x.min() < 0 and x.max() > 1
    np.testing.assert_array_equal(x, np.stack(w.train))
    records = _parsed_records(ds.record_files("train")[0])
    assert set(records[0].feature_lists.feature_list) == {"0_dense_input"}
    assert ds.metadata("train").get_num_channels() == 2


def test_float_images_in_0_1_are_stored_as_8_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x8 = rng.integers(0, 256, (3, 4, 5, 3), dtype=np.uint8)
    root = write_arrays(tmp_path / "f", "f", x8.astype(np.float32) / 255, [0, 1, 0], x8[:1] / 255.0, [1])
    np.testing.assert_array_equal(AutoDLDataset(root).load_numpy("train").x[:, 0], x8)


def test_jpeg_storage(tmp_path: Path) -> None:
    x = np.full((2, 8, 8, 3), 120, np.uint8)
    root = write_arrays(tmp_path / "j", "j", x, [0, 1], x, [1, 0], image_format="JPEG")
    ds = AutoDLDataset(root)
    frame = _parsed_records(ds.record_files("train")[0])[0].feature_lists.feature_list["0_compressed"]
    assert frame.feature[0].bytes_list.value[0][:3] == b"\xff\xd8\xff"
    assert np.abs(ds.load_numpy("train").x.astype(int) - 120).max() <= 2


# --- the organizers' record layout ----------------------------------------------------------

def test_record_layout_matches_miniciao(written, miniciao) -> None:
    w = written["rgb"]
    ds = AutoDLDataset(w.root)
    ours_train = _parsed_records(ds.record_files("train")[0])
    ours_test = _parsed_records(ds.record_files("test")[0])
    theirs_train = _parsed_records(miniciao.record_files("train")[0])[0]
    theirs_test = _parsed_records(miniciao.record_files("test")[0])[0]
    expected = ({"id": "int64_list", "label_index": "int64_list", "label_score": "float_list"},
                {"0_compressed": "bytes_list"})
    assert _structure(theirs_train) == expected == _structure(theirs_test)
    for ex in ours_train + ours_test:
        assert _structure(ex) == expected
    # train records carry their labels, test records empty label lists (as the organizers')
    assert list(ours_train[1].context.feature["label_index"].int64_list.value) == [1]
    assert list(ours_train[1].context.feature["label_score"].float_list.value) == [1.0]
    for ex in (ours_test[0], theirs_test):
        assert not ex.context.feature["label_index"].int64_list.value
        assert not ex.context.feature["label_score"].float_list.value
    # one frame per image, holding the PNG file bytes
    for i, ex in enumerate(ours_train):
        frames = ex.feature_lists.feature_list["0_compressed"].feature
        assert len(frames) == 1 and len(frames[0].bytes_list.value) == 1
        data = frames[0].bytes_list.value[0]
        assert data.startswith(PNG_SIGNATURE)
        np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), w.train[i][0])
    assert theirs_train.feature_lists.feature_list["0_compressed"].feature[0] \
        .bytes_list.value[0].startswith(PNG_SIGNATURE)
    # file names as the organizers'
    assert [p.name for p in ds.record_files("train")] == ["sample-rgb-train.tfrecord"]
    assert [p.name for p in ds.record_files("test")] == ["sample-rgb-test.tfrecord"]


def test_video_records_hold_one_png_per_frame(written) -> None:
    w = written["video"]
    ex = _parsed_records(AutoDLDataset(w.root).record_files("train")[0])[0]
    frames = ex.feature_lists.feature_list["0_compressed"].feature
    assert len(frames) == 4
    assert all(f.bytes_list.value[0].startswith(PNG_SIGNATURE) for f in frames)


# --- refusals and clean failures ------------------------------------------------------------

def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir()) if parent.exists() else []


def test_existing_folder_without_overwrite(tiny_written) -> None:
    root = tiny_written.root
    before = _snapshot(root)
    x = np.zeros((2, 3, 3, 3), np.uint8)
    with pytest.raises(ConversionError, match="already exists") as exc:
        write_arrays(root, "other", x, [0, 1], x, [1, 0])
    assert str(root) in str(exc.value)
    assert _snapshot(root) == before
    assert _leftovers(root.parent) == [root.name]
    # with overwrite the old dataset is replaced as a whole
    write_arrays(root, "other", x, [0, 1], x, [1, 0], overwrite=True)
    assert _leftovers(root) == ["other.data", "other.solution", "other_public.info"]
    assert AutoDLDataset(root).name == "other"
    assert _leftovers(root.parent) == [root.name]


def test_max_examples_must_be_positive() -> None:
    check_max_examples(max_train=None, max_test=1)
    with pytest.raises(ConversionError) as exc:
        check_max_examples(max_train=5, max_test=0)
    assert exc.value.field == "max_test" and "max_test=0" in str(exc.value)


def test_existing_empty_folder_is_refused_too(tmp_path: Path) -> None:
    (tmp_path / "ds").mkdir()
    x = np.zeros((2, 3, 3, 3), np.uint8)
    with pytest.raises(ConversionError, match="already exists"):
        write_arrays(tmp_path / "ds", "ds", x, [0, 1], x, [1, 0])


@pytest.mark.parametrize("case", ["train index", "test index", "x/y lengths", "not an image"])
def test_bad_arrays_write_nothing(tmp_path: Path, case: str) -> None:
    root = tmp_path / "out" / "ds"
    x = np.zeros((3, 4, 4, 3), np.uint8)
    args = {"x_train": x, "y_train": [0, 1, 2], "x_test": x[:2], "y_test": [0, 1]}
    if case == "train index":
        args["y_train"] = [0, 1, 3]
    elif case == "test index":
        args["y_test"] = [0, 5]
    elif case == "x/y lengths":
        args["y_train"] = [0, 1]
    else:
        args["x_test"] = np.zeros((2, 4), np.uint8)  # examples of one dimension
    with pytest.raises(ConversionError) as exc:
        write_arrays(root, "ds", num_classes=3, **args)
    msg = str(exc.value)
    assert str(root) in msg
    assert ("y_" if "index" in case else "x_") in msg  # names the argument at fault
    assert _leftovers(tmp_path / "out") == []


def test_failure_half_way_leaves_nothing(tmp_path: Path) -> None:
    """An error after some files were written removes the temporary folder."""
    root = tmp_path / "out"
    x = [np.zeros((3, 3, 3), np.uint8)] * 3
    frames = [[f] for f in x]
    y = np.eye(3, dtype=np.float32)
    with pytest.raises(ConversionError, match="3 examples but 2 label rows") as exc:
        write_dataset(root, "ds", {"train": SubsetData(frames, y), "test": SubsetData(frames, y[:2])}, 3)
    assert str(root) in str(exc.value)
    assert _leftovers(tmp_path) == []

    def exploding():
        yield [x[0]]
        raise RuntimeError("source broke")

    with pytest.raises(RuntimeError, match="source broke"):
        write_dataset(root, "ds", {"train": SubsetData(exploding(), y), "test": SubsetData(frames, y)}, 3)
    assert _leftovers(tmp_path) == []


def test_failed_overwrite_keeps_the_old_dataset(tiny_written) -> None:
    root = tiny_written.root
    before = _snapshot(root)
    frames = [[np.zeros((3, 3, 3), np.uint8)]] * 2
    y = np.eye(2, dtype=np.float32)
    with pytest.raises(ConversionError):
        write_dataset(root, "ds", {"train": SubsetData(frames, y), "test": SubsetData(frames, y[:1])}, 2,
                      overwrite=True)
    assert _snapshot(root) == before
    assert _leftovers(root.parent) == [root.name]


@pytest.mark.parametrize("case", ["no test", "test without labels", "bad subset", "bad format",
                                  "names count", "label columns"])
def test_write_dataset_refusals(tmp_path: Path, case: str) -> None:
    root = tmp_path / "ds"
    frames = [[np.zeros((3, 3, 3), np.uint8)]] * 2
    y = np.eye(2, dtype=np.float32)
    subsets = {"train": SubsetData(frames, y), "test": SubsetData(frames, y)}
    kwargs = {}
    if case == "no test":
        del subsets["test"]
    elif case == "test without labels":
        subsets["test"] = SubsetData(frames, None)
    elif case == "bad subset":
        subsets["valid"] = SubsetData(frames, y)
    elif case == "bad format":
        kwargs["fmt"] = "SPARSE"
    elif case == "names count":
        kwargs["label_names"] = ["a"]
    else:
        subsets["train"] = SubsetData(frames, np.ones((2, 3), np.float32))
    with pytest.raises(ConversionError) as exc:
        write_dataset(root, "ds", subsets, 2, **kwargs)
    assert str(root) in str(exc.value)
    assert _leftovers(tmp_path) == []


def test_metadata_of_written_dataset_reads_with_read_metadata(written) -> None:
    w = written["varsize"]
    m = read_metadata(w.root / "varsize.data" / "train")
    assert m.get_tensor_shape() == (1, -1, -1, 3)
    assert m.get_dataset_name() == str(w.root / "varsize.data" / "train")
