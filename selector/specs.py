"""Selectors as data, and what every measurement of selectors shares.

A selector to evaluate is a :class:`SelectorSpec` (a registry name, its hyperparameters and
the label the report uses), or anything :func:`as_specs` turns into one (``"name"``,
``("name", {params})``). The measurements (:mod:`selector.identification`,
:mod:`selector.lodo`, :mod:`selector.fallback`, :mod:`selector.significance`,
:mod:`selector.selection_timing`) share from here how a selector's kind and pick are read
(:func:`is_evaluation_only`, :func:`outputs_members`, :func:`pick`), the fold a dataset belongs
to (:func:`group_of`), the seeds of query batches, the progress callback and NaN-aware means.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from selector.base import Selector, SelectorError
from selector.registry import make_selector

EVALUATION_ONLY: frozenset[str] = frozenset({"oracle"})
"""Registry names of selectors that look at the held-out dataset's own cost-matrix column
(a class may also say so with a class attribute ``evaluation_only = True``)."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called with ``done = 0`` before a stage, then per step."""

TIE = 1e-12
"""ALC differences at most this large are ties."""


@dataclass(frozen=True)
class SelectorSpec:
    """A selector to evaluate: its registry name, hyperparameters and the label reports use.

    Attributes
    ----------
    name:
        Registry name (:func:`selector.registry.list_selectors`).
    params:
        Hyperparameters handed to the class (``make_selector(name, **params)``).
    label:
        The name in tables and pictures (default: ``name``, or ``name(k=v, ...)`` with params).
    factory:
        Builds the selector instead of the registry (tests, selectors defined elsewhere);
        called with ``params``.
    """

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    factory: Callable[..., Selector] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.label:
            text = self.name if not self.params else \
                f"{self.name}({', '.join(f'{k}={v}' for k, v in sorted(self.params.items()))})"
            object.__setattr__(self, "label", text)

    def make(self, seed: int | None = None) -> Selector:
        """A new, unfitted selector; a ``seed`` hyperparameter not given in ``params`` is set to
        ``seed`` (so that repeated runs with other seeds vary the selector too)."""
        params = dict(self.params)
        sel = self.factory(**params) if self.factory is not None else make_selector(self.name, **params)
        if seed is not None and "seed" not in params and "seed" in sel.get_params():
            sel.set_params(seed=int(seed))
        return sel


def as_specs(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]]) -> list[SelectorSpec]:
    """Specs from ``SelectorSpec``, ``"name"`` or ``("name", {params})``; labels must differ."""
    out: list[SelectorSpec] = []
    for s in selectors:
        if isinstance(s, SelectorSpec):
            out.append(s)
        elif isinstance(s, str):
            out.append(SelectorSpec(s))
        elif isinstance(s, tuple) and len(s) == 2 and isinstance(s[0], str):
            out.append(SelectorSpec(s[0], dict(s[1] or {})))
        else:
            raise SelectorError(None, f"{s!r}: expected a selector name, (name, params) or a SelectorSpec")
    labels = [s.label for s in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise SelectorError(None, f"selectors named twice: {dup}; give them labels apart")
    if not out:
        raise SelectorError(None, "no selector to evaluate")
    return out


def is_evaluation_only(sel: Selector) -> bool:
    """Whether ``sel`` uses the held-out dataset's true cost-matrix column (the oracle)."""
    return bool(getattr(sel, "evaluation_only", False)) or sel.name in EVALUATION_ONLY


def outputs_members(sel: Selector) -> bool:
    """Whether ``sel`` scores the portfolio's members rather than the training datasets."""
    return getattr(sel, "outputs", "datasets") == "members"


def group_of(ds: DatasetFeatures) -> str:
    """The fold a dataset belongs to: its ``source`` (derived variants share it), else its name."""
    return ds.source or ds.name


def pick(sel: Selector, query: Query, p: np.ndarray) -> str:
    """The selector's pick given its ``p = predict_proba(query)``: the argmax, without a second
    ``predict_proba``, unless the selector has its own ``predict`` (e.g. a random draw)."""
    if type(sel).predict is Selector.predict:
        return sel.classes_[int(np.argmax(p))]
    return sel.predict(query)


def dataset_key(name: str) -> int:
    """A stable number for a dataset name (batches depend on the name, not on list order)."""
    return zlib.crc32(name.encode())


def batch_seeds(seed: int, *key: int, n: int) -> list[int]:
    return [int(s) for s in np.random.default_rng([int(seed), *map(int, key)]).integers(0, 2 ** 31 - 1, n)]


def check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    out = [int(b) for b in batch_sizes]
    if not out or any(b < 1 for b in out):
        raise SelectorError(None, f"batch sizes {list(batch_sizes)!r}: expected integers >= 1")
    return sorted(set(out))


def nanmean(values: Iterable[float]) -> float:
    """The mean of the values that are neither None nor NaN (NaN when there is none)."""
    v = np.array([x for x in values if x is not None], dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


def is_nan(value: Any) -> bool:
    """True for None and float NaN (for tables)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
