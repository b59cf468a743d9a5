"""Reading AutoDL datasets: the organizers' samples, the numpy and tf.data views, bad datasets.

The tf.data tests (TensorFlow takes seconds to import) are kept in this module and few.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autodl import dataset as dataset_module
from autodl.dataset import AutoDLDataset, read_solution
from autodl.errors import AutoDLError, FormatError
from autodl.proto import SequenceExample
from autodl.tfrecord import read_records, write_records

# --- the organizers' samples: numpy view ---------------------------------------------------


def test_miniciao_files_and_counts(miniciao: AutoDLDataset, samples_dir: Path) -> None:
    assert miniciao.name == "miniciao"
    assert miniciao.subsets == ["train", "test"]
    assert miniciao.solution_path == samples_dir / "miniciao" / "miniciao.solution"
    assert [p.name for p in miniciao.record_files("train")] == ["sample-miniciao-train.tfrecord"]
    assert miniciao.count_records("train") == 82 and miniciao.count_records("test") == 18
    assert AutoDLDataset(samples_dir / "miniciao" / "miniciao.data").root == miniciao.root
    assert miniciao.metadata("train").get_dataset_name() == str(miniciao.data_dir / "train")


def test_miniciao_numpy(miniciao: AutoDLDataset) -> None:
    train = miniciao.load_numpy("train")
    assert isinstance(train.x, np.ndarray)
    assert train.x.shape == (82, 1, 32, 32, 3) and train.x.dtype == np.uint8
    assert train.y.shape == (82, 10) and train.y.dtype == np.float32
    assert train.has_labels and len(train) == 82
    np.testing.assert_array_equal(train.y.sum(1), 1)  # one-hot
    test = miniciao.load_numpy("test")
    assert test.x.shape == (18, 1, 32, 32, 3)
    # test records carry no labels: a model sees none; the .solution is read only when asked
    assert not test.has_labels and test.y.shape == (18, 10) and not test.y.any()
    assert all(not r.label_index for r in miniciao.iter_raw("test"))
    scored = miniciao.load_numpy("test", solution=True)
    assert scored.has_labels
    np.testing.assert_array_equal(scored.y, miniciao.solution())
    np.testing.assert_array_equal(scored.x, test.x)
    small = miniciao.load_numpy("train", size=24, limit=5)
    assert small.x.shape == (5, 1, 24, 24, 3)
    np.testing.assert_array_equal(small.y, train.y[:5])


def test_monkeys_numpy(monkeys: AutoDLDataset) -> None:
    train = monkeys.load_numpy("train")
    assert isinstance(train.x, list) and len(train.x) == 26
    shapes = {x.shape for x in train.x}
    assert len(shapes) > 1  # sizes vary
    assert all(s[0] == 1 and s[3] == 3 for s in shapes)
    assert train.y.shape == (26, 10)
    np.testing.assert_array_equal(train.y.sum(1), 1)
    resized = monkeys.load_numpy("test", size=24)
    assert isinstance(resized.x, np.ndarray) and resized.x.shape == (4, 1, 24, 24, 3)
    resized2 = monkeys.load_numpy("train", size=(20, 30), limit=3)
    assert resized2.x.shape == (3, 1, 20, 30, 3)
    summary = monkeys.shape_summary("train")
    assert summary["examples_seen"] == 26 and summary["channels"] == 3
    assert summary["min"] <= summary["median"] <= summary["max"]


@pytest.mark.parametrize("name, n_test", [("miniciao", 18), ("Monkeys", 4)])
def test_solution_matches_test_records(samples_dir: Path, name: str, n_test: int) -> None:
    ds = AutoDLDataset(samples_dir / name)
    sol = ds.solution()
    assert sol.shape == (n_test, 10)
    assert sol.shape[0] == ds.metadata("test").sample_count == ds.count_records("test")
    assert set(np.unique(sol)) <= {0.0, 1.0}
    np.testing.assert_array_equal(sol.sum(1), 1)  # one-hot for these two
    np.testing.assert_array_equal(read_solution(ds.solution_path), sol)


def test_miniciao_label_names(miniciao: AutoDLDataset, samples_dir: Path) -> None:
    names = (samples_dir / "miniciao" / "miniciao_label.name").read_text().split()
    assert len(names) == 10
    assert miniciao.label_names() == names
    for subset in ("train", "test"):
        assert miniciao.metadata(subset).label_to_index_map == {n: i for i, n in enumerate(names)}
        assert miniciao.metadata(subset).label_names() == names


def test_monkeys_has_no_label_names(monkeys: AutoDLDataset) -> None:
    assert monkeys.label_names() is None


# --- subsets: labels read first, only the chosen records decoded ---------------------------

def test_labels_without_decoding(miniciao: AutoDLDataset, monkeypatch: pytest.MonkeyPatch) -> None:
    full = miniciao.load_numpy("train")
    test_x = miniciao.load_numpy("test").x

    def no_frames(*args: object, **kwargs: object) -> None:
        raise AssertionError("labels() parsed or decoded a frame")

    monkeypatch.setattr(dataset_module, "parse_record", no_frames)
    monkeypatch.setattr(dataset_module, "decode_frame", no_frames)
    y = miniciao.labels("train")
    assert y.dtype == np.float32 and y.shape == (82, 10)
    np.testing.assert_array_equal(y, full.y)
    assert miniciao.labels("test").shape == (18, 10) and not miniciao.labels("test").any()
    assert len(test_x) == 18


def test_load_numpy_decodes_only_the_chosen_records(miniciao: AutoDLDataset,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    full = miniciao.load_numpy("train")
    decoded: list[int] = []
    real_decode = dataset_module.decode_frame

    def counting_decode(data: bytes, channels: int, size: object = None, *, path: object = "",
                        index: int = 0) -> np.ndarray:
        decoded.append(index)
        return real_decode(data, channels, size, path=path, index=index)

    monkeypatch.setattr(dataset_module, "decode_frame", counting_decode)
    picked = miniciao.load_numpy("train", indices=[40, 0, 81])
    assert sorted(decoded) == [0, 40, 81]  # record positions, as errors name them
    np.testing.assert_array_equal(picked.x, full.x[[40, 0, 81]])  # in the order asked
    np.testing.assert_array_equal(picked.y, full.y[[40, 0, 81]])
    assert picked.has_labels
    assert len(miniciao.load_numpy("train", indices=np.array([], dtype=np.int64))) == 0
    test = miniciao.load_numpy("test", indices=np.array([3, 17]), solution=True)
    np.testing.assert_array_equal(test.y, miniciao.solution()[[3, 17]])


def test_load_numpy_indices_of_varying_sizes(monkeys: AutoDLDataset) -> None:
    full = monkeys.load_numpy("train", size=24)
    picked = monkeys.load_numpy("train", size=24, indices=[25, 3])
    np.testing.assert_array_equal(picked.x, full.x[[25, 3]])
    raw = monkeys.load_numpy("train", indices=[3])
    assert isinstance(raw.x, np.ndarray) and raw.x.shape[0] == 1  # one example: uniform


@pytest.mark.parametrize("kwargs, match", [
    ({"indices": [0, 5]}, "index 5 is out of range"),
    ({"indices": [-1]}, "index -1 is out of range"),
    ({"indices": [1, 1]}, "twice"),
    ({"indices": [[0, 1]]}, "record positions"),
    ({"indices": [0], "limit": 1}, "not both"),
])
def test_load_numpy_bad_indices(tiny_written, kwargs: dict, match: str) -> None:
    ds = AutoDLDataset(tiny_written.root)
    with pytest.raises(AutoDLError, match=match) as exc:
        ds.load_numpy("train", **kwargs)
    assert exc.value.field == "indices"


def test_solution_only_for_the_test_subset(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    with pytest.raises(AutoDLError) as exc:
        ds.load_numpy("train", solution=True)
    assert exc.value.field == "solution" and str(ds.solution_path) in str(exc.value)
    ds.solution_path.unlink()
    assert not ds.load_numpy("test").y.any()  # the model side does not need it
    with pytest.raises(FormatError, match="not found"):
        ds.load_numpy("test", solution=True)  # asked for: a missing solution is an error


def test_class_sorted_subset_keeps_every_class(tmp_path: Path) -> None:
    from autodl.labels import stratified_subset
    from autodl.writer import write_arrays

    y = np.repeat(np.arange(6), 8)  # stored sorted by class
    x = np.arange(len(y), dtype=np.uint8)[:, None, None, None].repeat(2, 1).repeat(2, 2)
    ds = AutoDLDataset(write_arrays(tmp_path / "sorted", "sorted", x, y, x[:3], y[:3]))
    assert set(ds.load_numpy("train", limit=12).y.argmax(1).tolist()) == {0, 1}  # the first records
    keep = stratified_subset(ds.labels("train"), 12, seed=0)
    subset = ds.load_numpy("train", indices=keep)
    np.testing.assert_array_equal(np.bincount(subset.y.argmax(1)), [2] * 6)
    np.testing.assert_array_equal(subset.x[:, 0, 0, 0, 0], keep)  # pixel value = stored position


# --- tf.data view (few tests: TensorFlow is slow to import) --------------------------------

def _tf_items(ds: AutoDLDataset, subset: str) -> tuple[list[np.ndarray], np.ndarray, object]:
    tfds = ds.tf_dataset(subset)
    xs, ys = [], []
    for x, y in tfds.as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return xs, np.asarray(ys), tfds.element_spec


@pytest.mark.parametrize("name, fixed", [("miniciao", True), ("Monkeys", False)])
def test_tf_view_of_samples(samples_dir: Path, name: str, fixed: bool) -> None:
    import tensorflow as tf

    ds = AutoDLDataset(samples_dir / name)
    for subset in ("train", "test"):
        xs, ys, spec = _tf_items(ds, subset)
        x_spec, y_spec = spec
        assert x_spec.dtype == tf.float32 and y_spec.dtype == tf.float32
        assert x_spec.shape.as_list() == ([1, 32, 32, 3] if fixed else [1, None, None, 3])
        assert y_spec.shape.as_list() == [10]
        arrays = ds.load_numpy(subset)
        assert len(xs) == len(arrays) == ds.metadata(subset).sample_count
        for i, x in enumerate(xs):
            assert x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
            ref = np.asarray(arrays.x[i]).astype(np.float32) / 255
            assert x.shape == ref.shape
            diff = np.abs(x - ref)
            if fixed:  # PNG: lossless, the same up to float rounding
                assert diff.max() < 1e-6
            else:      # JPEG: Pillow's and TensorFlow's decoders round differently
                assert diff.max() <= 8 / 255 and diff.mean() < 2 / 255
        if subset == "train":
            np.testing.assert_array_equal(ys, arrays.y)
        else:          # what a model sees at test time: all zeros
            assert ys.shape == (len(xs), 10) and not ys.any()


def test_tf_view_of_written(variant) -> None:
    """Every written variant reads back through tf.data as written."""
    ds = AutoDLDataset(variant.root)
    xs, ys, (x_spec, y_spec) = _tf_items(ds, "train")
    ref = variant.train
    shapes = {r.shape for r in ref}
    fixed = [d if len({s[j] for s in shapes}) == 1 else None for j, d in enumerate(ref[0].shape)]
    assert x_spec.shape.as_list() == fixed
    assert y_spec.shape.as_list() == [variant.num_classes]
    assert len(xs) == len(ref)
    for x, r in zip(xs, ref, strict=True):
        if variant.fmt == "DENSE":
            np.testing.assert_array_equal(x, r)  # values unchanged
        else:
            np.testing.assert_allclose(x, r.astype(np.float32) / 255, atol=1e-6)
    np.testing.assert_array_equal(ys, variant.y_train)
    xs_test, ys_test, _ = _tf_items(ds, "test")
    assert len(xs_test) == len(variant.test) and not ys_test.any()


# --- bad datasets ------------------------------------------------------------------------------

def _record(label_index: list[int], frames: list[bytes]) -> bytes:
    ex = SequenceExample()
    ex.context.feature["id"].int64_list.value.append(0)
    ex.context.feature["label_index"].int64_list.value.extend(label_index)
    ex.context.feature["label_score"].float_list.value.extend([1.0] * len(label_index))
    fl = ex.feature_lists.feature_list["0_compressed"]
    for f in frames:
        fl.feature.add().bytes_list.value.append(f)
    return ex.SerializeToString()


def _replace_record(ds: AutoDLDataset, subset: str, index: int, record: bytes) -> Path:
    path = ds.record_files(subset)[0]
    records = list(read_records(path))
    records[index] = record
    write_records(path, records)
    return path


def _png_of(ds: AutoDLDataset, subset: str, index: int = 0) -> bytes:
    ex = SequenceExample()
    ex.ParseFromString(list(read_records(ds.record_files(subset)[0]))[index])
    return ex.feature_lists.feature_list["0_compressed"].feature[0].bytes_list.value[0]


@pytest.mark.parametrize("count", [4, 6])
def test_sample_count_disagrees_with_records(tiny_written, count: int) -> None:
    ds = AutoDLDataset(tiny_written.root)
    md = ds.subset_dir("train") / "metadata.textproto"
    md.write_text(md.read_text().replace("sample_count: 5", f"sample_count: {count}"))
    for read in (ds.load_numpy, ds.labels):
        with pytest.raises(FormatError) as exc:
            read("train")
        msg = str(exc.value)
        assert str(md) in msg and "sample_count" in msg and "5 records" in msg
        assert exc.value.field == "sample_count"


def test_label_index_out_of_range_in_a_record(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    path = _replace_record(ds, "train", 1, _record([3], [_png_of(ds, "train")]))  # output_dim is 3
    for read in (ds.load_numpy, ds.labels):
        with pytest.raises(FormatError) as exc:
            read("train")
        msg = str(exc.value)
        assert str(path) in msg and "label_index" in msg and "record 1" in msg and "3" in msg
        assert exc.value.field == "label_index"


def test_label_scores_do_not_match_indices(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    ex = SequenceExample()
    ex.ParseFromString(_record([0, 1], [_png_of(ds, "train")]))
    del ex.context.feature["label_score"].float_list.value[1:]
    path = _replace_record(ds, "train", 2, ex.SerializeToString())
    with pytest.raises(FormatError) as exc:
        ds.load_numpy("train")
    assert str(path) in str(exc.value) and "label_score" in str(exc.value)


@pytest.mark.parametrize("garbage", [b"this is not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 30])
def test_frame_that_does_not_decode(tiny_written, garbage: bytes) -> None:
    ds = AutoDLDataset(tiny_written.root)
    path = _replace_record(ds, "train", 3, _record([0], [garbage]))
    list(ds.iter_raw("train"))  # parsing alone is fine
    ds.labels("train")
    ds.load_numpy("train", indices=[0, 4])  # so is decoding the other records
    with pytest.raises(FormatError) as exc:
        ds.load_numpy("train")
    msg = str(exc.value)
    assert str(path) in msg and "0_compressed" in msg and "record 3" in msg


def test_record_that_is_not_a_sequence_example(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    path = _replace_record(ds, "train", 0, b"\xff\xff\xff\xff")
    for read in (ds.load_numpy, ds.labels):
        with pytest.raises(FormatError) as exc:
            read("train")
        assert str(path) in str(exc.value) and "record 0" in str(exc.value)


def test_record_without_frames_key(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    ex = SequenceExample()
    ex.context.feature["label_index"].int64_list.value.append(0)
    path = _replace_record(ds, "train", 0, ex.SerializeToString())
    with pytest.raises(FormatError) as exc:
        ds.load_numpy("train")
    assert str(path) in str(exc.value) and "0_compressed" in str(exc.value)


@pytest.mark.parametrize("change", ["drop a row", "add a row", "drop a column"])
def test_solution_rows_differ_from_test_count(tiny_written, change: str) -> None:
    ds = AutoDLDataset(tiny_written.root)
    lines = ds.solution_path.read_text().splitlines()
    if change == "drop a row":
        lines = lines[:-1]
    elif change == "add a row":
        lines = lines + [lines[0]]
    else:
        lines = [line.rsplit(" ", 1)[0] for line in lines]
    ds.solution_path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as exc:
        ds.solution()
    assert str(ds.solution_path) in str(exc.value)
    with pytest.raises(FormatError):
        ds.load_numpy("test", solution=True)
    assert len(ds.load_numpy("test")) == 3  # the model side never reads the solution


def test_label_score_outside_0_1_in_a_record(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    ex = SequenceExample()
    ex.ParseFromString(_record([1], [_png_of(ds, "train")]))
    ex.context.feature["label_score"].float_list.value[0] = 3.0
    _replace_record(ds, "train", 2, ex.SerializeToString())
    for read in (ds.labels, ds.load_numpy):
        with pytest.raises(FormatError) as exc:
            read("train")
        assert exc.value.field == "label_score" and str(ds.subset_dir("train")) in str(exc.value)


def test_ragged_or_non_numeric_solution(tmp_path: Path) -> None:
    path = tmp_path / "x.solution"
    path.write_text("0 1\n1\n")
    with pytest.raises(FormatError, match="row 2") as exc:
        read_solution(path)
    assert str(path) in str(exc.value)
    path.write_text("0 1\n1 x\n")
    with pytest.raises(FormatError, match="not a number"):
        read_solution(path)
    with pytest.raises(FormatError, match="not found"):
        read_solution(tmp_path / "missing.solution")


def test_not_a_dataset_folder(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as exc:
        AutoDLDataset(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(exc.value)
    (tmp_path / "a.data").mkdir()
    (tmp_path / "b.data").mkdir()
    with pytest.raises(FormatError, match="a.data, b.data"):
        AutoDLDataset(tmp_path)


def test_missing_subset_and_records(tiny_written) -> None:
    ds = AutoDLDataset(tiny_written.root)
    with pytest.raises(FormatError, match="not found") as exc:
        ds.metadata("unlabelled")
    assert "unlabelled" in str(exc.value)
    ds.record_files("test")[0].unlink()
    with pytest.raises(FormatError, match="no sample") as exc:
        ds.load_numpy("test")
    assert str(ds.subset_dir("test")) in str(exc.value)


def test_sparse_records_read_in_both_views(tmp_path: Path) -> None:
    """SPARSE bundles (row, col, channel indices + values per frame) densify identically."""
    from autodl.metadata import AutoDLMetadata, MatrixSpec, write_metadata
    from autodl.proto import SequenceExample
    from autodl.tfrecord import write_records

    root = tmp_path / "sp"
    expected = []
    for subset, n in (("train", 3), ("test", 2)):
        d = root / "sp.data" / subset
        d.mkdir(parents=True)
        records = []
        for i in range(n):
            dense = np.zeros((2, 4, 5, 2), dtype=np.float32)  # T, H, W, C
            msg = SequenceExample()
            msg.context.feature["label_index"].int64_list.value.append(i % 3)
            lists = msg.feature_lists.feature_list
            for t in range(2):
                r, c, ch, v = [t + 1, 3], [i, 4], [0, 1], [0.5 + i, -2.0]
                dense[t, r, c, ch] = v
                for key, vals in (("0_sparse_row_index", r), ("0_sparse_col_index", c),
                                  ("0_sparse_channel_index", ch)):
                    lists[key].feature.add().int64_list.value.extend(vals)
                lists["0_sparse_value"].feature.add().float_list.value.extend(v)
            records.append(msg.SerializeToString())
            if subset == "train":
                expected.append(dense)
        write_records(d / f"sample-sp-{subset}.tfrecord", records)
        write_metadata(AutoDLMetadata(sample_count=n, output_dim=3, sequence_size=2, is_sequence=True,
                                      matrix_spec=(MatrixSpec(4, 5, 2, format="SPARSE"),)), d)
    np.savetxt(root / "sp.solution", np.eye(3)[:2], fmt="%.0f")
    ds = AutoDLDataset(root)
    arr = ds.load_numpy("train")
    np.testing.assert_array_equal(arr.x, np.stack(expected))
    np.testing.assert_array_equal(arr.y.argmax(1), [0, 1, 2])
    views = [x for x, _ in ds.tf_dataset("train").as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(views), np.stack(expected))
