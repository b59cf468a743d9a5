"""metadata.textproto: the organizers' samples, round trips, field order, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodl.errors import FormatError
from autodl.metadata import (
    COMPRESSED,
    DENSE,
    SPARSE,
    AutoDLMetadata,
    MatrixSpec,
    format_metadata,
    parse_metadata,
    read_metadata,
    write_metadata,
)

MINICIAO_LABELS = {"airplane": 0, "automobile": 1, "bird": 2, "cat": 3, "deer": 4, "dog": 5,
                   "frog": 6, "horse": 7, "ship": 8, "truck": 9}

GOOD = """\
is_sequence: false
sample_count: 3
sequence_size: 1
output_dim: 2
matrix_spec {
  col_count: 4
  row_count: 5
  num_channels: 3
  format: COMPRESSED
}
label_to_index_map {
  key: 'a'
  value: 0
}
"""


def _write(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "train"
    d.mkdir(exist_ok=True)
    (d / "metadata.textproto").write_text(text, encoding="utf-8")
    return d


# --- the organizers' samples ----------------------------------------------------------------

def test_miniciao_every_field(samples_dir: Path) -> None:
    for subset, count in (("train", 82), ("test", 18)):
        d = samples_dir / "miniciao" / "miniciao.data" / subset
        m = read_metadata(d)
        assert m.sample_count == count and m.size() == count and m.get_num_examples() == count
        assert m.output_dim == 10 and m.get_output_size() == 10
        assert m.is_sequence is False
        assert m.sequence_size == 1 and m.get_sequence_size() == 1
        assert m.matrix_spec == (MatrixSpec(row_count=32, col_count=32, num_channels=3, format=COMPRESSED,
                                            is_sequence_col=False, is_sequence_row=False,
                                            has_locality_col=True, has_locality_row=True,
                                            is_sparse=False),)
        assert m.get_bundle_size() == 1
        assert m.is_compressed() and not m.is_sparse() and m.format == COMPRESSED
        assert m.get_matrix_size() == (32, 32)
        assert m.get_num_channels() == 3
        assert m.get_tensor_size() == (32, 32, 3)
        assert m.get_tensor_shape() == (1, 32, 32, 3)
        assert m.label_to_index_map == MINICIAO_LABELS
        assert m.get_label_to_index_map() == MINICIAO_LABELS
        assert m.feature_to_index_map == {} and m.channel_to_index_map == {}
        assert m.label_names() == sorted(MINICIAO_LABELS, key=MINICIAO_LABELS.get)
        assert m.get_dataset_name() == str(d)


def test_monkeys_sizes_vary(samples_dir: Path) -> None:
    for subset, count in (("train", 26), ("test", 4)):
        d = samples_dir / "Monkeys" / "Monkeys.data" / subset
        m = read_metadata(d)
        assert m.size() == count and m.get_output_size() == 10
        spec = m.matrix_spec[0]
        assert (spec.row_count, spec.col_count, spec.num_channels) == (-1, -1, -1)
        assert m.get_matrix_size() == (-1, -1)
        assert m.get_num_channels() == 3  # not given: 3 for compressed data
        assert m.get_tensor_shape() == (1, -1, -1, 3)
        assert m.get_label_to_index_map() == {} and m.label_names() is None
        assert m.get_dataset_name() == str(d)


def test_samples_round_trip_and_same_text_as_organizers(samples_dir: Path) -> None:
    """Our writer reproduces the organizers' text up to the maps (whose order is a hash order)."""
    for name in ("miniciao", "Monkeys"):
        for subset in ("train", "test"):
            path = samples_dir / name / f"{name}.data" / subset / "metadata.textproto"
            text = path.read_text()
            m = parse_metadata(text, path)
            ours = format_metadata(m)
            assert parse_metadata(ours, path) == m
            head = text.split("label_to_index_map")[0].rstrip() + "\n"
            assert ours.startswith(head)


# --- round trips and field order -------------------------------------------------------------

def _full_metadata() -> AutoDLMetadata:
    labels = {"plain": 0, "it's": 1, 'say "hi"': 2, "naïve ☃ 猫": 3, "back\\slash": 4,
              "tab\there": 5, "new\nline": 6, "": 7}
    return AutoDLMetadata(
        sample_count=12, output_dim=8, is_sequence=True, sequence_size=-1,
        matrix_spec=(MatrixSpec(row_count=-1, col_count=16, num_channels=-1, format=COMPRESSED,
                                is_sequence_col=True, has_locality_row=False),
                     MatrixSpec(row_count=3, col_count=4, num_channels=2, format=DENSE,
                                is_sequence_row=True, has_locality_col=False),
                     MatrixSpec(row_count=10, col_count=1, num_channels=1, format=SPARSE,
                                is_sparse=True)),
        label_to_index_map=labels, feature_to_index_map={"f'1": 0, "é": 3},
        channel_to_index_map={"red": 0, "grün": 1}, dataset_name="/somewhere/train")


def test_round_trip_every_field(tmp_path: Path) -> None:
    meta = _full_metadata()
    text = format_metadata(meta)
    back = parse_metadata(text, "/somewhere/train/metadata.textproto")
    assert back == meta
    assert format_metadata(back) == text
    # through a file too
    d = tmp_path / "train"
    d.mkdir()
    path = write_metadata(meta, d)
    assert path == d / "metadata.textproto"
    assert read_metadata(d) == meta.replace(dataset_name=str(d))


def test_labels_with_quotes_and_unicode_survive(tmp_path: Path) -> None:
    meta = _full_metadata()
    d = tmp_path / "train"
    d.mkdir()
    write_metadata(meta, d)
    raw = (d / "metadata.textproto").read_bytes()
    assert "naïve ☃ 猫".encode() in raw  # written as UTF-8, not as octal escapes
    back = read_metadata(d)
    assert back.label_to_index_map == meta.label_to_index_map
    assert back.label_names() == list(meta.label_to_index_map)


def test_field_order() -> None:
    text = format_metadata(_full_metadata())
    top = [line.split(":")[0].split(" {")[0] for line in text.splitlines()
           if line and not line.startswith((" ", "}"))]
    first = ["is_sequence", "sample_count", "sequence_size", "output_dim"]
    assert top[:4] == first
    rest = top[4:]
    assert rest[:3] == ["matrix_spec"] * 3
    maps = rest[3:]
    assert maps == sorted(maps, key=["label_to_index_map", "feature_to_index_map",
                                     "channel_to_index_map"].index)
    assert len(maps) == 8 + 2 + 2
    # sample_count is on the second line, where some readers take it from
    assert text.splitlines()[1] == "sample_count: 12"


def test_defaults_and_dense_channels() -> None:
    m = parse_metadata("sample_count: 2\noutput_dim: 3\nmatrix_spec { row_count: 4 col_count: 5 }\n",
                       "x/metadata.textproto")
    assert m.sequence_size == 1 and m.is_sequence is False
    assert m.format == DENSE  # the proto's default
    assert m.get_num_channels() == 1  # not given: 1 for data that is not compressed
    assert m.get_tensor_shape() == (1, 4, 5, 1)
    m2 = parse_metadata("sample_count: 2\noutput_dim: 3\nmatrix_spec { }\n", "x/metadata.textproto")
    assert m2.get_matrix_size() == (-1, -1)  # absent sizes vary


# --- bad files --------------------------------------------------------------------------------

BAD = {
    "missing sample_count": (GOOD.replace("sample_count: 3\n", ""), "sample_count"),
    "missing output_dim": (GOOD.replace("output_dim: 2\n", ""), "output_dim"),
    "missing matrix_spec": (GOOD.split("matrix_spec")[0], "matrix_spec"),
    "typo in a field name": (GOOD.replace("sample_count", "sample_cuont"), "sample_cuont"),
    "not a number": (GOOD.replace("sample_count: 3", "sample_count: three"), "sample_count"),
    "float for an int": (GOOD.replace("output_dim: 2", "output_dim: 2.5"), "output_dim"),
    "unknown format": (GOOD.replace("format: COMPRESSED", "format: PNG"), "format"),
    "unclosed block": (GOOD.replace("}\nlabel", "\nlabel", 1), "MatrixSpec"),
    "output_dim 0": (GOOD.replace("output_dim: 2", "output_dim: 0"), "output_dim"),
    "row_count 0": (GOOD.replace("row_count: 5", "row_count: 0"), "row_count"),
    "col_count -2": (GOOD.replace("col_count: 4", "col_count: -2"), "col_count"),
    "num_channels 0": (GOOD.replace("num_channels: 3", "num_channels: 0"), "num_channels"),
    "negative sample_count": (GOOD.replace("sample_count: 3", "sample_count: -1"), "sample_count"),
    "sequence_size 0": (GOOD.replace("sequence_size: 1", "sequence_size: 0"), "sequence_size"),
    "label index >= output_dim": (GOOD.replace("value: 0", "value: 2"), "label_to_index_map"),
    "negative label index": (GOOD.replace("value: 0", "value: -1"), "label_to_index_map"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_metadata_names_file_and_field(tmp_path: Path, case: str) -> None:
    text, field = BAD[case]
    d = _write(tmp_path, text)
    with pytest.raises(FormatError) as exc:
        read_metadata(d)
    msg = str(exc.value)
    assert str(d / "metadata.textproto") in msg
    assert field in msg
    assert exc.value.path == d / "metadata.textproto"


@pytest.mark.parametrize("case", ["missing sample_count", "missing output_dim", "missing matrix_spec",
                                  "output_dim 0", "label index >= output_dim"])
def test_bad_metadata_sets_field(tmp_path: Path, case: str) -> None:
    text, field = BAD[case]
    with pytest.raises(FormatError) as exc:
        read_metadata(_write(tmp_path, text))
    assert exc.value.field == field


def test_row_count_0_field_names_the_block(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as exc:
        read_metadata(_write(tmp_path, BAD["row_count 0"][0]))
    assert exc.value.field == "matrix_spec[0].row_count"


def test_missing_and_undecodable_file(tmp_path: Path) -> None:
    with pytest.raises(FormatError, match="not found") as exc:
        read_metadata(tmp_path)
    assert str(tmp_path / "metadata.textproto") in str(exc.value)
    d = tmp_path / "train"
    d.mkdir()
    (d / "metadata.textproto").write_bytes(b"sample_count: 3\n\xff\xfe")
    with pytest.raises(FormatError, match="UTF-8") as exc:
        read_metadata(d)
    assert str(d / "metadata.textproto") in str(exc.value)


def test_good_text_parses(tmp_path: Path) -> None:
    m = read_metadata(_write(tmp_path, GOOD))
    assert (m.sample_count, m.output_dim, m.get_tensor_shape()) == (3, 2, (1, 5, 4, 3))
    assert m.label_to_index_map == {"a": 0}
    assert m.label_names() is None  # the map does not cover both classes
