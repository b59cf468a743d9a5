"""Errors raised on bad input.

Every error names the file, the field (where there is one) and what was expected, so
that the command line can print it as one line without a traceback.
"""

from __future__ import annotations

from pathlib import Path


class AutoDLError(Exception):
    """Base class of the errors this project raises on bad input.

    Parameters
    ----------
    path:
        The file (or folder) the problem was found in, if any.
    message:
        What was wrong and what was expected.
    field:
        The field (metadata key, record feature, CSV column, ...) if any.
    """

    def __init__(self, path: str | Path | None, message: str, field: str | None = None):
        self.path = None if path is None else Path(path)
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        parts = []
        if self.path is not None:
            parts.append(str(self.path))
        if self.field:
            parts.append(f"field '{self.field}'")
        prefix = ": ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class FormatError(AutoDLError):
    """A dataset on disk does not follow the AutoDL format."""


class PredictionError(AutoDLError):
    """A prediction file or output folder cannot be scored."""


class ConversionError(AutoDLError):
    """Raw data cannot be converted into the AutoDL format."""
