"""How an ingestion child process tells the process that started it why it failed: one JSON file.

The organizers' local test runs ingestion in a child process (:func:`autodl.model_runs.run_local`);
when the child fails, the parent reports why in one line. The child does not print that line for
the parent to find in its log: it writes a small JSON file, whose path the parent puts into the
child's environment (:data:`ERROR_FILE_ENV`); this module defines the file, writes it
(:func:`report_child_error`, called by the child: ``python -m finetune.models``) and reads it
(:func:`read_child_error`, called by the parent), and nothing else knows its format::

    {"format": "autodl-meta-child-error/1", "kind": "refused", "message": "..."}

``kind`` is one of :data:`KINDS`: ``refused`` (bad input, before or while running: an
:class:`~autodl.errors.AutoDLError`), ``model failed`` (ingestion ran and the model failed:
``ingestion_success`` false) or ``crashed`` (an exception nobody caught: :func:`exception_line`).
:meth:`ChildError.line` is the one line the parent reports, the line the child also writes to its
log for a person reading it. A child that reports nothing (another program, or one killed before
it could) leaves the parent with its exit code and its log.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

ERROR_FILE_ENV = "AUTODL_CHILD_ERROR_FILE"
"""The environment variable naming the file a failing child writes (set by the parent)."""
FORMAT = "autodl-meta-child-error/1"
KINDS = ("refused", "model failed", "crashed")
"""What went wrong: bad input (refused), the model failed under ingestion, an uncaught exception."""
_PREFIX = {"refused": "autodl-meta: error: ", "model failed": "model failed: ", "crashed": ""}


@dataclass(frozen=True)
class ChildError:
    """Why a child failed (see the module's docstring)."""

    kind: str
    message: str

    def line(self) -> str:
        """The one line that says it: ``autodl-meta: error: ...`` (refused), ``model failed: ...``
        or the exception's last traceback line (crashed)."""
        return _PREFIX[self.kind] + self.message


def exception_line(exc: BaseException) -> str:
    """An exception in one line, as the last line of its traceback writes it: ``ValueError: bad``,
    ``autodl.errors.AutoDLError: ...`` (the first line of a message of several)."""
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__qualname__}"
    text = str(exc).strip().splitlines()
    return f"{name}: {text[0]}" if text else name


def report_child_error(kind: str, message: str) -> ChildError:
    """In the child: write why it failed to the file the parent named (``$AUTODL_CHILD_ERROR_FILE``;
    nothing is written without one). Returns the report, whose :meth:`~ChildError.line` the child
    also prints for its log."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")
    report = ChildError(kind, str(message))
    path = os.environ.get(ERROR_FILE_ENV)
    if path:
        try:
            Path(path).write_text(json.dumps({"format": FORMAT, "kind": report.kind, "message": report.message}))
        except OSError as exc:  # the log still has the line
            logger.warning("cannot write the error report %s: %s", path, exc)
    return report


def read_child_error(path: str | Path) -> ChildError | None:
    """In the parent: the child's report at ``path`` (None if the child wrote none, or wrote
    something that is not a report, which is logged)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s: the child's error report cannot be read (%s)", path, exc)
        return None
    if (not isinstance(data, dict) or data.get("format") != FORMAT or data.get("kind") not in KINDS
            or not isinstance(data.get("message"), str)):
        logger.warning("%s: not a child error report (%s): %.200r", path, FORMAT, data)
        return None
    return ChildError(data["kind"], data["message"])
