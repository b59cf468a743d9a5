"""The TFRecord container: round trip, the organizers' files, truncated and corrupted files."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from autodl.dataset import AutoDLDataset
from autodl.errors import FormatError
from autodl.tfrecord import masked_crc32c, read_records, write_records

RECORDS = [b"first", b"", bytes(range(256)) * 40, b"\x00" * 3, "ünïcode".encode()]


def _offsets(records: list[bytes]) -> list[int]:
    """Byte offset of each record's header."""
    out, pos = [], 0
    for r in records:
        out.append(pos)
        pos += 8 + 4 + len(r) + 4
    return out


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    assert write_records(path, iter(RECORDS)) == len(RECORDS)
    assert list(read_records(path)) == RECORDS
    assert path.stat().st_size == sum(16 + len(r) for r in RECORDS)
    # the framing, written out by hand
    raw = path.read_bytes()
    length = struct.pack("<Q", len(RECORDS[0]))
    assert raw[:16 + len(RECORDS[0])] == (length + struct.pack("<I", masked_crc32c(length)) + RECORDS[0]
                                          + struct.pack("<I", masked_crc32c(RECORDS[0])))


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.tfrecord"
    assert write_records(path, []) == 0
    assert path.read_bytes() == b""
    assert list(read_records(path)) == []


def test_masked_crc32c_known_values() -> None:
    # CRC-32C("123456789") = 0xE3069283 (RFC 3720); the mask rotates right by 15 and adds 0xA282EAD8
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert masked_crc32c(b"") == 0xA282EAD8


def test_organizers_files_read_and_rewrite_byte_for_byte(samples_dir: Path, tmp_path: Path) -> None:
    """TensorFlow wrote the samples: our checksums and framing must match its own."""
    for name, subset, count in (("miniciao", "train", 82), ("miniciao", "test", 18),
                                ("Monkeys", "test", 4)):
        src = samples_dir / name / f"{name}.data" / subset / f"sample-{name}-{subset}.tfrecord"
        records = list(read_records(src))
        assert len(records) == count
        copy = tmp_path / f"{name}-{subset}.tfrecord"
        write_records(copy, records)
        assert copy.read_bytes() == src.read_bytes()


@pytest.mark.parametrize("cut", [1, 4, 5, 16])
def test_truncated(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "a.tfrecord"
    write_records(path, RECORDS[:3])
    raw = path.read_bytes()
    path.write_bytes(raw[:-cut])
    with pytest.raises(FormatError, match="truncated") as exc:
        list(read_records(path))
    msg = str(exc.value)
    assert str(path) in msg and "record 2" in msg
    assert exc.value.path == path


def test_truncated_in_header(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    write_records(path, RECORDS[:2])
    path.write_bytes(path.read_bytes() + b"\x05\x00\x00")  # three bytes of a third header
    with pytest.raises(FormatError, match="incomplete header") as exc:
        list(read_records(path))
    assert str(path) in str(exc.value) and "record 2" in str(exc.value)


def test_corrupted_payload(tmp_path: Path) -> None:
    path = tmp_path / "a.tfrecord"
    write_records(path, RECORDS)
    raw = bytearray(path.read_bytes())
    pos = _offsets(RECORDS)[2] + 12 + 100  # a byte inside the payload of record 2
    raw[pos] ^= 0x40
    path.write_bytes(bytes(raw))
    reader = read_records(path)
    assert next(reader) == RECORDS[0] and next(reader) == RECORDS[1]  # the records before are fine
    with pytest.raises(FormatError, match="corrupted") as exc:
        next(reader)
    msg = str(exc.value)
    assert str(path) in msg and "record 2" in msg and "data checksum" in msg
    # without verification the damaged payload comes through (the length is still checked)
    damaged = list(read_records(path, verify=False))
    assert len(damaged) == len(RECORDS) and damaged[2] != RECORDS[2]


@pytest.mark.parametrize("byte", [0, 1, 7])
def test_corrupted_length(tmp_path: Path, byte: int) -> None:
    path = tmp_path / "a.tfrecord"
    write_records(path, RECORDS)
    raw = bytearray(path.read_bytes())
    raw[_offsets(RECORDS)[1] + byte] ^= 0x01
    path.write_bytes(bytes(raw))
    for verify in (True, False):
        with pytest.raises(FormatError, match="corrupted") as exc:
            list(read_records(path, verify=verify))
        msg = str(exc.value)
        assert str(path) in msg and "record 1" in msg and "length checksum" in msg


def test_not_a_tfrecord(tmp_path: Path) -> None:
    path = tmp_path / "sample-x.tfrecord"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    with pytest.raises(FormatError, match="record 0") as exc:
        list(read_records(path))
    assert str(path) in str(exc.value)


def test_damaged_file_in_a_dataset(tiny_written, tmp_path: Path) -> None:
    """The dataset reader passes the container's error through, naming the record file."""
    ds = AutoDLDataset(tiny_written.root)
    path = ds.record_files("train")[0]
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(FormatError, match="truncated") as exc:
        ds.load_numpy("train")
    assert str(path) in str(exc.value) and "record 4" in str(exc.value)
