"""Reading and writing the TFRecord container without TensorFlow.

A TFRecord file is a sequence of records, each framed as::

    uint64 length (little endian)
    uint32 masked_crc32c(length)
    byte   data[length]
    uint32 masked_crc32c(data)

This module reads and writes that framing and checks both checksums, so that a truncated
or corrupted file is reported with the file, the record number and the byte offset
instead of a crash deep inside a decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import google_crc32c

from autodl.errors import FormatError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """The CRC32-C of ``data``, masked as TFRecord stores it."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: str | Path, verify: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record of a TFRecord file.

    Parameters
    ----------
    path:
        The ``.tfrecord`` file (uncompressed, as the AutoDL tools write it).
    verify:
        Check the data checksum of each record (the length checksum is always checked).

    Raises
    ------
    FormatError
        The file is truncated or a checksum does not match.
    """
    path = Path(path)
    with path.open("rb") as f:
        buf = f.read()
    offset, index, end = 0, 0, len(buf)
    while offset < end:
        if offset + _HEADER.size > end:
            raise FormatError(path, f"truncated TFRecord: record {index} at byte {offset} has an "
                                    f"incomplete header ({end - offset} of {_HEADER.size} bytes)")
        length, length_crc = _HEADER.unpack_from(buf, offset)
        if masked_crc32c(buf[offset:offset + 8]) != length_crc:
            raise FormatError(path, f"corrupted TFRecord: length checksum of record {index} at byte "
                                    f"{offset} does not match (not a TFRecord file, or damaged)")
        start = offset + _HEADER.size
        stop = start + length
        if stop + _FOOTER.size > end:
            raise FormatError(path, f"truncated TFRecord: record {index} at byte {offset} declares "
                                    f"{length} bytes but the file ends after {end - start}")
        data = buf[start:stop]
        if verify and masked_crc32c(data) != _FOOTER.unpack_from(buf, stop)[0]:
            raise FormatError(path, f"corrupted TFRecord: data checksum of record {index} at byte "
                                    f"{offset} does not match")
        yield data
        offset = stop + _FOOTER.size
        index += 1


def write_records(path: str | Path, records: Iterable[bytes]) -> int:
    """Write ``records`` to a TFRecord file; return how many were written."""
    n = 0
    with Path(path).open("wb") as f:
        for data in records:
            header = struct.pack("<Q", len(data))
            f.write(header)
            f.write(struct.pack("<I", masked_crc32c(header)))
            f.write(data)
            f.write(struct.pack("<I", masked_crc32c(data)))
            n += 1
    return n
