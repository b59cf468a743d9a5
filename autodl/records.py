"""Append-only JSON-lines files: the results of long computations that resume where they stopped.

Every finished evaluation (a benchmark row, a BOHB trial, a cost-matrix cell) is one line,
written and flushed to disk as it comes. A run killed while writing leaves at most one
cut line: :func:`read_jsonl` skips it (with a warning) so that the evaluation is done
again, and :func:`append_jsonl` starts the next row on a line of its own.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    """Append ``row`` as one JSON line and flush it to disk."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cut = False
    if path.is_file() and path.stat().st_size:
        with path.open("rb") as f:
            f.seek(-1, os.SEEK_END)
            cut = f.read(1) != b"\n"
    with path.open("a") as f:
        f.write(("\n" if cut else "") + json.dumps(dict(row)) + "\n")
        f.flush()
        os.fsync(f.fileno())
