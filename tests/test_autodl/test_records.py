"""The shared record helpers of :mod:`autodl.records`: statuses, UTC time stamps, versions, versioned
JSON files and atomic writes (their behaviour under a full disk or a read-only folder:
``test_records_faults.py``)."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest

from autodl import records
from autodl.errors import AutoDLError
from autodl.records import (
    FINISHED,
    Status,
    atomic_folder,
    atomic_path,
    atomic_write_bytes,
    atomic_write_text,
    check_format,
    dotted_get,
    read_versioned_json,
    utc_now,
    utc_now_text,
    versions,
    write_json_atomic,
)


class ThingError(AutoDLError):
    """A caller's own error type."""


# --- statuses ---------------------------------------------------------------------------------
def test_statuses_are_the_strings_records_hold():
    assert Status.OK == "ok" and Status("crashed") is Status.CRASHED and "timeout" in FINISHED
    assert json.dumps({"status": Status.LOST}) == '{"status": "lost"}'
    assert f"{Status.OK}" == str(Status.OK) == "ok" and f"{Status.FAILED:8s}|" == "failed  |"
    old_row = json.loads('{"status": "ok"}')  # a row of a file written before the enum
    assert old_row["status"] == Status.OK and old_row["status"] in FINISHED
    assert Status.LOST not in FINISHED and {Status.OK: 1}["ok"] == 1


# --- time stamps and versions -----------------------------------------------------------------
def test_utc_now_is_iso_8601_in_utc_to_the_second():
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    stamp = utc_now()
    after = dt.datetime.now(dt.UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", stamp), stamp
    when = dt.datetime.fromisoformat(stamp)
    assert when.utcoffset() == dt.timedelta(0) and before <= when <= after
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d\+00:00", utc_now("minutes"))
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", utc_now_text())


def test_versions_start_with_python_and_leave_out_what_is_not_installed():
    got = versions(["numpy", "no-such-package-at-all"])
    assert list(got) == ["python", "numpy"] and got["numpy"].count(".") >= 1
    assert {"python", "numpy"} <= set(versions())  # the build's dependencies


def test_dotted_get():
    record = {"space": {"sha256": "ab", "data": None}, "seed": 3}
    assert dotted_get(record, "space.sha256") == "ab" and dotted_get(record, "seed") == 3
    assert dotted_get(record, "space.data.x") is None and dotted_get(record, "nope.x") is None


# --- versioned JSON files ---------------------------------------------------------------------
def test_read_versioned_json_returns_the_object(tmp_path: Path):
    path = write_json_atomic(tmp_path / "thing.json", {"format": "thing/2", "x": 1})
    assert read_versioned_json(path, "thing/2", what="a thing") == {"format": "thing/2", "x": 1}
    assert read_versioned_json(path, ("thing/1", "thing/2"), what="a thing")["x"] == 1


@pytest.mark.parametrize("text, field, words", [
    (None, None, ["not found; expected a thing"]),
    ('{"format": "thing/2",', None, ["not valid JSON"]),
    (b"\xff\xfe{}", None, ["cannot be read"]),
    ("[1, 2]", "format", ["holds a JSON list", "expected a thing (an object)"]),
    ('{"x": 1}', "format", ["format is None", "expected 'thing/2'"]),
    ('{"format": "thing/1"}', "format", ["format is 'thing/1'", "expected 'thing/2'"]),
])
def test_read_versioned_json_errors_name_the_file_and_the_field(tmp_path: Path, text, field, words):
    path = tmp_path / "thing.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ThingError) as info:
        read_versioned_json(path, "thing/2", what="a thing", error=ThingError)
    message = str(info.value)
    assert info.value.path == path and message.startswith(f"{path}: ")
    assert info.value.field == field and (field is None or f"field '{field}'" in message)
    assert all(w in message for w in words), message


def test_read_versioned_json_says_what_makes_a_missing_file(tmp_path: Path):
    with pytest.raises(AutoDLError, match=r"no thing here \(`make-thing` writes it\)"):
        read_versioned_json(tmp_path / "thing.json", "thing/2", what="a thing",
                            missing="no thing here (`make-thing` writes it)")


def test_check_format_names_every_format_it_takes():
    with pytest.raises(ThingError, match=r"expected one of 'thing/1', 'thing/2'") as info:
        check_format({"format": "thing/3"}, ["thing/1", "thing/2"], path=None, what="a thing",
                     error=ThingError)
    assert info.value.path is None and info.value.field == "format"


# --- atomic writes ----------------------------------------------------------------------------
def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_writes_leave_no_temporary_file(tmp_path: Path):
    assert atomic_write_text(tmp_path / "a.txt", "é\n").read_bytes() == "é\n".encode()
    assert atomic_write_bytes(tmp_path / "b.bin", b"\0\1").read_bytes() == b"\0\1"
    write_json_atomic(tmp_path / "c.json", {"b": 1, "a": [1.5]}, indent=1, sort_keys=True)
    assert (tmp_path / "c.json").read_text() == json.dumps({"a": [1.5], "b": 1}, indent=1) + "\n"
    write_json_atomic(tmp_path / "d.json", {"a": 1}, newline=False)
    assert (tmp_path / "d.json").read_text() == '{"a": 1}'
    write_json_atomic(tmp_path / "c.json", {"again": True})  # replaces the file there
    assert json.loads((tmp_path / "c.json").read_text()) == {"again": True}
    assert _names(tmp_path) == ["a.txt", "b.bin", "c.json", "d.json"]


def test_a_private_file_is_its_owners_only_whatever_the_umask(tmp_path: Path):
    old = os.umask(0)
    try:
        path = atomic_write_text(tmp_path / "key.json", "{}", mode=0o600)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_writer_that_raises_leaves_the_file_before_and_no_half_file(tmp_path: Path):
    path = atomic_write_text(tmp_path / "run.json", "before")
    with pytest.raises(RuntimeError, match="killed mid-write"):
        with atomic_path(path) as tmp, tmp.open("w") as f:
            f.write("half of the new")
            raise RuntimeError("killed mid-write")
    with pytest.raises(TypeError):  # not JSON: fails before any file is touched
        write_json_atomic(path, {"x": object()})
    assert path.read_text() == "before" and _names(tmp_path) == ["run.json"]


def test_a_failed_rename_names_the_file_and_keeps_the_one_before(tmp_path: Path, monkeypatch):
    path = atomic_write_text(tmp_path / "run.json", "before")

    def refuse(src: Path, dst: Path) -> None:
        raise OSError(30, "Read-only file system", str(src))

    monkeypatch.setattr(records.os, "replace", refuse)
    with pytest.raises(OSError, match="Read-only file system") as info:
        write_json_atomic(path, {"x": 1})
    assert info.value.filename == str(path)
    assert path.read_text() == "before" and _names(tmp_path) == ["run.json"]


def test_atomic_folder_replaces_the_folder_or_leaves_it_as_it_was(tmp_path: Path):
    dest = tmp_path / "dataset"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(ValueError, match="bad example"):
        with atomic_folder(dest) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("half")
            raise ValueError("bad example")
    assert _names(tmp_path) == ["dataset"] and _names(dest) == ["old.txt"]
    with atomic_folder(dest) as tmp:
        tmp.mkdir()
        assert not dest.joinpath("new.txt").exists() and tmp.name.startswith(".dataset.")
        (tmp / "new.txt").write_text("new")
    assert _names(tmp_path) == ["dataset"] and _names(dest) == ["new.txt"]


def test_code_revision_names_the_commit_and_whether_tracked_files_differ(tmp_path):
    import shutil
    import subprocess

    from autodl.records import code_revision

    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    assert code_revision(tmp_path) is None  # not a checkout
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"}

    def git(*args):
        return subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True, text=True,
                              env={**os.environ, **env}).stdout.strip()

    git("init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git("add", "a.py")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    assert code_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "b.py").write_text("untracked\n")  # untracked files do not count
    assert code_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "portfolio" / "default").mkdir(parents=True)  # an output the build writes over: not code
    (tmp_path / "portfolio" / "default" / "portfolio.json").write_text("{}\n")
    (tmp_path / "portfolio" / "build.py").write_text("y = 1\n")
    git("add", "portfolio")
    git("commit", "-q", "-m", "two")
    head = git("rev-parse", "HEAD")
    (tmp_path / "portfolio" / "default" / "portfolio.json").write_text('{"rebuilt": true}\n')
    assert code_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "portfolio" / "timed" / "runs").mkdir(parents=True)  # any build folder under portfolio/
    (tmp_path / "portfolio" / "timed" / "runs" / "m.json").write_text("{}\n")
    git("add", "portfolio")
    git("commit", "-q", "-m", "three")
    head = git("rev-parse", "HEAD")
    (tmp_path / "portfolio" / "timed" / "runs" / "m.json").write_text('{"resumed": true}\n')
    assert code_revision(tmp_path) == {"commit": head, "dirty": False}
    (tmp_path / "portfolio" / "build.py").write_text("y = 2\n")
    assert code_revision(tmp_path) == {"commit": head, "dirty": True}
    (tmp_path / "portfolio" / "build.py").write_text("y = 1\n")
    (tmp_path / "a.py").write_text("x = 2\n")
    assert code_revision(tmp_path) == {"commit": head, "dirty": True}


def test_recorded_paths_are_relative_inside_and_beside_the_repository(tmp_path) -> None:
    """Artifacts record paths inside the checkout relative to it, a sibling folder's (such as
    ``../shared``) as ``../NAME/...``, anything else absolute; :func:`from_repo` reads each back."""
    from autodl.records import REPOSITORY_ROOT, from_repo, repo_relative

    inside = REPOSITORY_ROOT / "configs" / "timing" / "x.json"
    beside = REPOSITORY_ROOT.parent / "shared" / "autodl_samples" / "Monkeys"
    assert repo_relative(inside) == "configs/timing/x.json"
    assert repo_relative(beside) == "../shared/autodl_samples/Monkeys"
    assert from_repo(repo_relative(inside)) == inside and from_repo(repo_relative(beside)).resolve() == beside.resolve()
    far = Path("/") / "nowhere-near" / "x"
    if REPOSITORY_ROOT.parent != Path("/"):
        assert repo_relative(far) == str(far) and from_repo(repo_relative(far)) == far
