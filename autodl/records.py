"""The records every layer writes, and the helpers they share.

Append-only JSON-lines files hold the results of long computations that resume where they
stopped. Every finished evaluation (a benchmark row, a BOHB trial, a cost-matrix cell) is
one line, written and flushed to disk as it comes. A run killed while writing leaves at
most one cut line: :func:`read_jsonl` skips it (with a warning) so that the evaluation is done
again, and :func:`append_jsonl` starts the next row on a line of its own.

Beside them, what the records of every layer need, written once here and imported
everywhere:

- :class:`Status`: the status of an evaluation, a BOHB trial or a cost-matrix cell (a
  ``str`` enum: records keep writing ``"ok"``, and rows read back from files compare equal);
- :func:`utc_now` (the time stamp of a record: ISO 8601, UTC, seconds) and
  :func:`utc_now_text` (the same time as a report's heading shows it);
- :func:`versions`: Python and the versions of the packages results depend on;
- :func:`to_plain` (numpy values -> Python values that ``json.dumps`` writes),
  :func:`dotted_get` (``record["a"]["b"]`` for ``"a.b"``) and :func:`file_sha256` (the
  checksum of a file a record names);
- :func:`check_format` and :func:`read_versioned_json`: a JSON file whose ``format`` field
  says what it is and which version, read with errors that name the file and the field;
- :func:`atomic_write_text`, :func:`atomic_write_bytes`, :func:`write_json_atomic`,
  :func:`atomic_path` and :func:`atomic_folder`: a file (or folder) written beside its
  place and renamed into it, so that a reader never sees half of it and a writer that fails
  leaves the one before as it was (:func:`is_temporary` tells their temporary names).
"""

from __future__ import annotations

import datetime as _dt
import enum
import hashlib
import json
import logging
import os
import platform
import shutil
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)


class Status(enum.StrEnum):
    """The status of an evaluation, a BOHB trial, a cost-matrix cell or a benchmark run, as records
    write it.

    A ``str`` enum: ``Status.OK == "ok"``, ``json.dumps`` writes ``"ok"``, and the rows of
    files written before (plain strings) compare equal to its members.
    """

    OK = "ok"
    """Finished: the model ran to its end (or to the budget) and was scored."""
    CRASHED = "crashed"
    """The model raised (the record keeps the error and its traceback)."""
    TIMEOUT = "timeout"
    """The model was stopped: past its wall-time limit, or it never advanced a simulated clock."""
    LOST = "lost"
    """A BOHB trial whose worker died: not finished, run again when the run resumes."""
    FAILED = "failed"
    """A task that raised outside the model's evaluation, or whose worker was lost (a cost-matrix
    cell, a held-out or benchmark row, a feature extraction)."""
    MISSING = "missing"
    """A cost-matrix cell with no value (not evaluated yet)."""
    PARTIAL = "partial"
    """A cost-matrix cell with some of its seeds evaluated."""
    NO_PREDICTION = "no-prediction"
    """A run of the organizers' local test that ended without a prediction (the budget benchmark)."""


FINISHED: tuple[Status, ...] = (Status.OK, Status.CRASHED, Status.TIMEOUT)
"""The statuses an evaluation ends with: a BOHB trial with one of them is finished (replayed on
resume, counted as a trial); ``lost`` trials run again."""


def utc_now(timespec: str = "seconds") -> str:
    """Now, in UTC, as ISO 8601 (``2026-01-31T12:00:00+00:00``): the time stamp of every record.

    ``timespec`` as :meth:`datetime.datetime.isoformat` takes it (``"minutes"``, ...).
    """
    return _dt.datetime.now(_dt.UTC).isoformat(timespec=timespec)


def utc_now_text() -> str:
    """Now, in UTC, as a report's heading shows it (``2026-01-31 12:00 UTC``)."""
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


DEPENDENCIES = ("autodl-meta", "torch", "torchvision", "timm", "numpy", "scipy", "scikit-learn", "hpbandster",
                "ConfigSpace", "dask", "distributed", "safetensors", "autorank", "POT", "tensorflow-cpu",
                "protobuf", "Pillow", "matplotlib")
"""The packages the offline build's results depend on (:func:`versions` records theirs)."""


def versions(packages: Iterable[str] = DEPENDENCIES) -> dict[str, str]:
    """Python's version and those of ``packages`` that are installed, in that order.

    Parameters
    ----------
    packages
        Distribution names (as ``pip`` knows them); one not installed is left out.
    """
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


ARTIFACT_FOLDERS = ("docs", "portfolio/*/**")
"""Committed outputs, not code (git pathspec globs): a build writing into a folder of
``portfolio/`` (``portfolio/default``, a timed rebuild's folder; the package itself has no
sub-folders) or a benchmark into ``docs`` does not make the code it runs ``dirty``
(:func:`code_revision`)."""


def code_revision(root: str | Path | None = None) -> dict[str, Any] | None:
    """The git commit of the code that runs (``commit``, and ``dirty`` when tracked files outside
    :data:`ARTIFACT_FOLDERS` differ from it), or None outside a git checkout (an installed
    package) or without ``git``.

    ``root``: the checkout (default: the one this module lies in). A long build run from a clone
    at a fixed commit records it per command, so that its artifacts name the code that made them.
    """
    import subprocess

    root = Path(root) if root is not None else Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", ".",
                                 *(f":(exclude,glob){f}" for f in ARTIFACT_FOLDERS)],
                                capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(status.strip())}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """The rows of ``path`` (none if it does not exist); unreadable lines are skipped."""
    path = Path(path)
    rows = []
    if path.is_file():
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                logger.warning("%s:%d: unreadable line skipped (a run stopped while writing it?)", path, n)
    return rows


def append_jsonl(path: str | Path, row: Mapping[str, Any]) -> None:
    """Append ``row`` as one JSON line and flush it to disk.

    Raises
    ------
    OSError
        The line cannot be written (a full disk, a read-only folder), with ``filename`` set to
        ``path``; the file is cut back to its size before the call, so that no half-written
        line is left behind and every line before stays as it was.
    """
    path = Path(path)
    line = json.dumps(dict(row)) + "\n"  # a row that cannot be written as JSON fails before the file is touched
    size = 0
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut = False
        if path.is_file():
            size = path.stat().st_size
            if size:
                with path.open("rb") as f:
                    f.seek(-1, os.SEEK_END)
                    cut = f.read(1) != b"\n"
        with path.open("a") as f:
            f.write(("\n" if cut else "") + line)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        try:
            if path.is_file() and path.stat().st_size > size:
                os.truncate(path, size)
        except OSError:
            pass
        raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc


def to_plain(value: Any, leaf: Callable[[Any], Any] | None = None) -> Any:
    """``value`` with numpy scalars/arrays turned into Python values, recursively.

    Mappings become dicts with ``str`` keys, lists and tuples become lists, numpy arrays
    lists and numpy scalars Python scalars; anything else is kept. With ``leaf``, every
    value that is not a container (the elements of arrays included) is passed through it
    after that conversion.
    """
    if isinstance(value, Mapping):
        return {str(k): to_plain(v, leaf) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v, leaf) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist() if leaf is None else to_plain(value.tolist(), leaf)
    if isinstance(value, np.generic):
        value = value.item()
    return value if leaf is None else leaf(value)


def dotted_get(record: Mapping[str, Any], dotted: str) -> Any:
    """``record['a']['b']`` for ``'a.b'`` (None where a part is missing)."""
    value: Any = record
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def file_sha256(path: str | Path) -> str:
    """The SHA-256 of the file's content (hex), read in blocks of 1 MiB."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


REPOSITORY_ROOT = Path(__file__).resolve().parents[1]
"""The root of this checkout: artifacts record paths inside it relative to it."""


def repo_relative(path: str | Path) -> str:
    """``path`` as an artifact records it: relative to :data:`REPOSITORY_ROOT` where it lies inside
    it (judged before symbolic links are followed, so a ``data`` link into another checkout still
    counts as inside), ``../NAME/...`` where it lies beside it (a sibling folder such as
    ``../shared``), else absolute. Read it back with :func:`from_repo`."""
    p = Path(os.path.abspath(path))
    for base, prefix in ((REPOSITORY_ROOT, Path()), (REPOSITORY_ROOT.parent, Path(".."))):
        try:
            return (prefix / p.relative_to(base)).as_posix()
        except ValueError:
            continue
    return str(p)


def from_repo(path: str | Path) -> Path:
    """A recorded path (:func:`repo_relative`) as a path here: relative ones under :data:`REPOSITORY_ROOT`."""
    p = Path(path)
    return p if p.is_absolute() else REPOSITORY_ROOT / p


# --- versioned JSON files ---------------------------------------------------------------------
def check_format(data: Any, formats: str | Collection[str], *, path: str | Path | None, what: str,
                 error: type[AutoDLError] = AutoDLError) -> dict[str, Any]:
    """``data`` (a file's JSON) if it is an object whose ``format`` is one of ``formats``.

    Parameters
    ----------
    data
        The parsed JSON.
    formats
        The format this reader understands (``"autodl-meta-pool/1"``), or several.
    path
        The file it was read from, named by the error (None for data not read from a file).
    what
        What the file holds, for the error (``"the selector's card"``).
    error
        The error type to raise: the caller's subclass of :class:`~autodl.errors.AutoDLError`.

    Raises
    ------
    AutoDLError
        (``error``) with field ``format``: ``data`` is not an object, or its format is another.
    """
    wanted = (formats,) if isinstance(formats, str) else tuple(formats)
    expected = repr(wanted[0]) if len(wanted) == 1 else "one of " + ", ".join(map(repr, wanted))
    if not isinstance(data, Mapping):
        raise error(path, f"holds a JSON {type(data).__name__}; expected {what} (an object)", field="format")
    if data.get("format") not in wanted:
        raise error(path, f"format is {data.get('format')!r}, expected {expected}", field="format")
    return dict(data)


def read_versioned_json(path: str | Path, formats: str | Collection[str], *, what: str,
                        error: type[AutoDLError] = AutoDLError, missing: str | None = None) -> dict[str, Any]:
    """The JSON object in ``path``, checked by :func:`check_format`.

    Parameters
    ----------
    path
        The file.
    formats, what, error
        As :func:`check_format` takes them.
    missing
        What the error says when there is no file (default: ``not found; expected`` ``what``):
        say which command writes it.

    Raises
    ------
    AutoDLError
        (``error``) naming ``path``: no file, one that cannot be read, is not valid JSON, is not
        an object or has another format (the last two with field ``format``).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, missing or f"not found; expected {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, f"cannot be read ({exc})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(path, f"not valid JSON ({exc})") from None
    return check_format(data, formats, path=path, what=what, error=error)


# --- atomic writes ----------------------------------------------------------------------------
def _beside(path: Path, suffix: str = "") -> Path:
    """The temporary name a file or folder is written under before it is renamed to ``path``:
    hidden, in the same folder (a rename within one file system), one per process, ending in
    ``.tmp`` then ``suffix``."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp{suffix}")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is a temporary name of :func:`atomic_path` or :func:`atomic_folder` (one left
    by a process killed while writing: never a result)."""
    name = Path(path).name
    return name.endswith(".tmp") or (name.startswith(".") and ".tmp." in name)


@contextmanager
def atomic_path(path: str | Path, *, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary file name beside ``path`` for a writer that wants a name (safetensors, numpy,
    matplotlib): renamed onto ``path`` when the block ends, removed when it raises.

    Parameters
    ----------
    keep_suffix
        The temporary name ends with ``path``'s suffix too (``.cost_matrix.png.PID.tmp.png``),
        for a writer that picks the format from the name (matplotlib's ``savefig``).

    Raises
    ------
    OSError
        Raised about the temporary file (or without a file name: a full disk), it names ``path``
        instead; the file before at ``path`` is left as it was.
    """
    path = Path(path)
    tmp = _beside(path, path.suffix if keep_suffix else "")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        if isinstance(exc, OSError) and (exc.filename is None or str(exc.filename) == str(tmp)):
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def atomic_write_bytes(path: str | Path, data: bytes, *, mode: int | None = None) -> Path:
    """Write ``data`` to ``path`` through :func:`atomic_path`; return ``path``.

    Parameters
    ----------
    mode
        The file's permissions whatever the umask (``0o600``: its owner only, from the
        moment it exists); default: as any new file.
    """
    with atomic_path(path) as tmp:
        if mode is None:
            tmp.write_bytes(data)
        else:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
            try:
                os.fchmod(fd, mode)  # whatever the umask, and a file left by an earlier try
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(data)
            finally:
                os.close(fd)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, mode: int | None = None) -> Path:
    """Write ``text`` (UTF-8) to ``path`` through :func:`atomic_path`; return ``path``."""
    return atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def write_json_atomic(path: str | Path, data: Any, *, newline: bool = True, mode: int | None = None,
                      **json_kwargs: Any) -> Path:
    """Write ``json.dumps(data, **json_kwargs)`` to ``path`` through :func:`atomic_path`, ending
    in a newline unless ``newline`` is false; return ``path``. A value ``json.dumps`` cannot
    write fails before any file is touched."""
    text = json.dumps(data, **json_kwargs) + ("\n" if newline else "")
    return atomic_write_text(path, text, mode=mode)


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder name beside ``path`` (not made yet: the block makes it and fills it)
    that replaces ``path`` (the folder there before removed) when the block ends; it is removed
    when the block raises, and the folder before is then left as it was."""
    path = Path(path)
    tmp = _beside(path)
    shutil.rmtree(tmp, ignore_errors=True)  # left by a process of the same id that was killed
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
