"""Append-only JSON-lines files: the results of long computations that resume where they stopped.

Every finished evaluation (a benchmark row, a BOHB trial, a cost-matrix cell) is one line,
written and flushed to disk as it comes. A run killed while writing leaves at most one
cut line: :func:`read_jsonl` skips it (with a warning) so that the evaluation is done
again, and :func:`append_jsonl` starts the next row on a line of its own.

Beside them, what the records of every layer need: :func:`to_plain` (numpy values ->
Python values that ``json.dumps`` writes) and :func:`file_sha256` (the checksum of a file
a record names).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)


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
    counts as inside), else absolute. Read it back with :func:`from_repo`."""
    p = Path(os.path.abspath(path))
    try:
        return p.relative_to(REPOSITORY_ROOT).as_posix()
    except ValueError:
        return str(p)


def from_repo(path: str | Path) -> Path:
    """A recorded path (:func:`repo_relative`) as a path here: relative ones under :data:`REPOSITORY_ROOT`."""
    p = Path(path)
    return p if p.is_absolute() else REPOSITORY_ROOT / p
