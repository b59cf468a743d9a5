"""``autodl.records``' JSON-lines files under faults: a line cut by a killed process, a full disk, a
read-only folder. Every record of the offline build (BOHB trials, cost-matrix cells) is written
by :func:`append_jsonl` and read by :func:`read_jsonl`; the files written whole (``run.json``,
``portfolio.json``, the manifests) by :func:`write_json_atomic`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from faultlib import fill, read_only, small_disk

from autodl.records import append_jsonl, read_jsonl, write_json_atomic

pytestmark = pytest.mark.faults

ROWS = [{"config_id": [0, 0, i], "budget": 1.0, "alc": 0.5 + i / 10} for i in range(3)]


def test_a_line_cut_by_a_killed_writer_is_skipped_and_the_next_row_starts_a_line(tmp_path: Path, caplog):
    path = tmp_path / "trials.jsonl"
    for row in ROWS[:2]:
        append_jsonl(path, row)
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(ROWS[2]).encode()[:17])  # killed in the middle of the third line
    with caplog.at_level(logging.WARNING, logger="autodl.records"):
        assert read_jsonl(path) == ROWS[:2]
    assert "trials.jsonl:3: unreadable line skipped" in caplog.text
    append_jsonl(path, ROWS[2])  # the resumed run writes it again, on a line of its own
    assert read_jsonl(path) == ROWS
    assert path.read_bytes().startswith(whole) and path.read_bytes().endswith(b"\n")


def test_a_row_that_is_not_json_leaves_the_file_as_it_was(tmp_path: Path):
    path = tmp_path / "cells.jsonl"
    append_jsonl(path, ROWS[0])
    before = path.read_bytes()
    with pytest.raises(TypeError):
        append_jsonl(path, {"alc": object()})
    assert path.read_bytes() == before


def test_a_full_disk_names_the_file_and_leaves_no_half_written_line(tmp_path: Path):
    with small_disk(tmp_path / "disk", 2) as disk:
        path = disk / "trials.jsonl"
        for row in ROWS[:2]:
            append_jsonl(path, row)
        before = path.read_bytes()
        fill(disk)
        big = {**ROWS[2], "curve": "x" * 8192}  # more than the last block's slack: cut by the full disk
        with pytest.raises(OSError, match="No space left on device") as info:
            append_jsonl(path, big)
        assert info.value.filename == str(path)
        assert path.read_bytes() == before  # cut back: every line before kept, none half-written
        assert read_jsonl(path) == ROWS[:2]


def test_a_read_only_folder_names_the_file_and_changes_nothing(tmp_path: Path):
    folder = tmp_path / "ro"
    path = folder / "cells.jsonl"
    append_jsonl(path, ROWS[0])
    with read_only(folder):
        with pytest.raises(OSError, match="Read-only file system") as info:
            append_jsonl(path, ROWS[1])
        assert info.value.filename == str(path)
        with pytest.raises(OSError) as info:
            append_jsonl(folder / "new" / "cells.jsonl", ROWS[1])
        assert str(folder / "new") in str(info.value.filename)
    assert read_jsonl(path) == ROWS[:1]


def test_an_atomic_write_on_a_full_disk_names_the_file_and_keeps_the_one_before(tmp_path: Path):
    with small_disk(tmp_path / "disk", 2) as disk:
        path = write_json_atomic(disk / "run.json", {"iterations": 1}, indent=1)
        before = path.read_bytes()
        fill(disk)
        with pytest.raises(OSError, match="No space left on device") as info:
            write_json_atomic(path, {"iterations": 2, "note": "x" * 8192}, indent=1)
        assert info.value.filename == str(path)
        assert path.read_bytes() == before
        assert not [p.name for p in disk.iterdir() if p.name.endswith(".tmp")]


def test_an_atomic_write_in_a_read_only_folder_names_the_file_and_changes_nothing(tmp_path: Path):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = write_json_atomic(folder / "run.json", {"iterations": 1})
    with read_only(folder):
        with pytest.raises(OSError, match="Read-only file system") as info:
            write_json_atomic(path, {"iterations": 2})
        assert info.value.filename == str(path)
    assert path.read_text() == '{"iterations": 1}\n'
    assert sorted(p.name for p in folder.iterdir()) == ["run.json"]
