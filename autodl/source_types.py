"""What an offline data source is (:class:`DataSource`), what its loader returns
(:data:`SourceArrays`) and what :func:`autodl.sources.list_sources` says about it
(:class:`SourceInfo`): the types the registry (:mod:`autodl.sources`) and the loader modules
(:mod:`autodl.sources_core`, :mod:`autodl.sources_heldout`, :mod:`autodl.sources_training`)
share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

SourceArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]
"""What a loader returns: ``(x_train, y_train, x_test, y_test, label_names)``."""


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`autodl.sources.list_sources` says about one source.

    Attributes
    ----------
    name:
        The source name (``write_source``'s argument).
    description:
        One line: what the data is, where it comes from and its licence.
    available:
        Whether the source loads on this machine.
    reason_unavailable:
        Why not, and how to fix it (``None`` when available).
    task:
        Classes and image shape, e.g. ``"10 classes, 8x8x1"``.
    """

    name: str
    description: str
    available: bool
    reason_unavailable: str | None
    task: str


@dataclass(frozen=True)
class DataSource:
    """A built-in source: its loader (``seed -> arrays``) and an availability check."""

    name: str
    description: str
    task: str
    loader: Callable[[int], SourceArrays]
    check: Callable[[], str | None]
