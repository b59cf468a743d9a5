"""The selector interface, its registration and its files.

A selector is fitted on the training datasets' features (:class:`DatasetFeatures`, and
for the cost-sensitive ones the cost matrix) and, given a :class:`Query` (a batch of
samples of one new dataset), scores every training dataset: the highest score names the
dataset whose incumbent is fine-tuned. Selectors follow scikit-learn's conventions:
hyperparameters are ``__init__`` arguments stored unchanged (``get_params`` /
``set_params`` work), ``fit`` returns ``self``, fitted state ends in ``_``.

Adding a selector is one class::

    @register_selector
    class MySelector(Selector):
        name = "my-selector"

        def __init__(self, k: int = 3):
            self.k = k

        def fit(self, datasets, cost=None):
            self._set_classes(datasets)
            ...
            return self

        def predict_proba(self, query):
            ...  # one probability per training dataset, in the order of classes_

The class registers itself when its module is imported; :mod:`selector.registry` imports
the modules of the built-in selectors and looks them up by name (``selector_class``,
``list_selectors``, ``make_selector``). This module imports none of them: they import it.

Files (never pickles): ``<folder>/selector.json`` (the card: selector name, its
hyperparameters, the training datasets, the embedding card, what ``_state`` returns as
metadata, scores added by the caller) and ``<folder>/selector.safetensors`` (its arrays),
written by :meth:`Selector.save` and read back by :func:`selector.registry.load_selector`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from autodl.errors import AutoDLError
from autodl.records import (
    atomic_write_bytes,
    file_sha256,
    to_plain,
    utc_now,
    write_json_atomic,
)
from metafeatures.features import DatasetFeatures, Query

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix

SELECTOR_FORMAT = "autodl-meta-selector/1"
CARD_FILE = "selector.json"
ARRAYS_FILE = "selector.safetensors"


class SelectorError(AutoDLError):
    """A selector that cannot be built, fitted, used or read (names the file or the selector)."""


class Selector(BaseEstimator):
    """Base class of every selector (see the module docstring).

    Attributes
    ----------
    name:
        The registry name (class attribute).
    needs_labels:
        Whether :meth:`predict_proba` needs the query's labels (transferability measures).
    needs_cost:
        Whether :meth:`fit` needs the cost matrix (cost-sensitive selectors, baselines).
    reads_embeddings:
        Whether :meth:`predict_proba` reads the query's embeddings (false for a selector of
        the descriptors alone, e.g. ``descriptor-knn``: it accepts a query without, and a
        submission shipping it decodes no batch and runs no network to select).
    needs_query:
        Whether :meth:`predict_proba` reads the query at all (``single-best`` does not:
        it accepts None, and a submission shipping it embeds nothing).
    outputs:
        What the scores are over: ``datasets`` (the training datasets; a pick stands for the
        dataset's configuration in the portfolio, i.e. its member) or ``members`` (the
        portfolio's members themselves: :mod:`selector.member_selectors`, fitted with
        ``fit(datasets, cost, members=MemberMatrix)``, see :mod:`selector.members`).
    classes_:
        The training datasets' names, in the order of the scores (set by :meth:`fit`); for a
        selector whose ``outputs`` are ``members``, the members' names (its training datasets
        are then ``datasets_``).
    embedding_card_:
        How the training datasets' embeddings were made (from their features' card):
        a query must be embedded the same way.
    """

    name: ClassVar[str] = ""
    needs_labels: ClassVar[bool] = False
    needs_cost: ClassVar[bool] = False
    needs_query: ClassVar[bool] = True
    reads_embeddings: ClassVar[bool] = True
    outputs: ClassVar[str] = "datasets"

    # --- to implement -------------------------------------------------------------------------
    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> Selector:
        raise NotImplementedError

    def predict_proba(self, query: Query) -> np.ndarray:
        """One non-negative score per training dataset (order of ``classes_``), summing to 1."""
        raise NotImplementedError

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The fitted state beyond ``classes_``: arrays (saved as safetensors) and JSON metadata."""
        raise NotImplementedError

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Set the fitted state from what :meth:`_state` returned."""
        raise NotImplementedError

    # --- derived ------------------------------------------------------------------------------
    def predict(self, query: Query) -> str:
        """The training dataset whose incumbent to use (the member, for ``outputs = "members"``)."""
        return self.classes_[int(np.argmax(self.predict_proba(query)))]

    def rank(self, query: Query) -> list[str]:
        """Training datasets, most suitable first (ties keep the order of ``classes_``)."""
        p = self.predict_proba(query)
        return [self.classes_[i] for i in np.argsort(-p, kind="stable")]

    def confidence(self, query: Query) -> float:
        """How sure the selector is, in [0, 1]: by default the top probability (a vote share
        for the voting selectors). Selectors with a better notion override it."""
        return float(np.max(self.predict_proba(query)))

    def confidence_from(self, query: Query, proba: np.ndarray) -> float:
        """:meth:`confidence` when ``proba = self.predict_proba(query)`` is already in hand (the
        leave-one-dataset-out comparison has it): read off ``proba`` where the confidence is
        the default top probability, else :meth:`confidence`. A selector whose confidence is
        another function of the probabilities overrides this too, to skip the second
        ``predict_proba``."""
        if type(self).confidence is Selector.confidence:
            return float(np.max(proba))
        return float(self.confidence(query))

    # --- helpers for subclasses ----------------------------------------------------------------
    def _set_classes(self, datasets: Sequence[DatasetFeatures]) -> None:
        if not datasets:
            raise SelectorError(None, f"{self.name}: fit needs at least one training dataset")
        names = [d.name for d in datasets]
        if len(set(names)) != len(names):
            raise SelectorError(None, f"{self.name}: training datasets named twice: {sorted(names)}")
        dims = {d.dim for d in datasets}
        if len(dims) != 1:
            raise SelectorError(None, f"{self.name}: training embeddings differ in size {sorted(dims)}; "
                                      "extract them all with one backbone and input size")
        self.classes_ = names
        self.n_features_in_ = dims.pop()
        self.embedding_card_ = dict(datasets[0].card)

    def _check_query(self, query: Query) -> Query:
        if not hasattr(self, "classes_"):
            raise SelectorError(None, f"{self.name}: not fitted; call fit first")
        if query.embeddings is None:
            if self.reads_embeddings:
                raise SelectorError(None, f"{self.name}: needs the query's embeddings (a query of descriptors "
                                          "alone serves only a selector that reads nothing else)")
        elif query.embeddings.shape[1] != self.n_features_in_:
            raise SelectorError(None, f"{self.name}: the query's embeddings have {query.embeddings.shape[1]} "
                                      f"features, the training datasets' {self.n_features_in_}: embed it with "
                                      f"the card's backbone ({self.embedding_card_.get('backbone')})")
        if self.needs_labels and query.labels is None:
            raise SelectorError(None, f"{self.name}: needs the labels of the query's batch (a labelled training "
                                      "batch of the new dataset)")
        return query

    @staticmethod
    def _require_cost(name: str, cost: CostMatrix | None, datasets: Sequence[DatasetFeatures]) -> CostMatrix:
        if cost is None:
            raise SelectorError(None, f"{name}: needs the cost matrix (fit(datasets, cost))")
        missing = [d.name for d in datasets if d.name not in cost.sources]
        if missing:
            raise SelectorError(None, f"{name}: the cost matrix has no incumbent of {missing}")
        return cost

    # --- files --------------------------------------------------------------------------------
    def save(self, folder: str | Path, extra: Mapping[str, Any] | None = None) -> Path:
        """Write the card and the arrays to ``folder``; returns the card's path."""
        from safetensors.numpy import save

        if not hasattr(self, "classes_"):
            raise SelectorError(folder, f"{self.name}: not fitted; nothing to save")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays, meta = self._state()
        arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}
        atomic_write_bytes(folder / ARRAYS_FILE, save(arrays))
        card = {"format": SELECTOR_FORMAT, "selector": self.name, "params": to_plain(self.get_params()),
                "classes": list(self.classes_), "n_features_in": int(self.n_features_in_),
                "embedding": self.embedding_card_, "state": to_plain(meta),
                "arrays_sha256": file_sha256(folder / ARRAYS_FILE),
                "saved": utc_now(),
                **dict(extra or {})}
        return write_json_atomic(folder / CARD_FILE, card, indent=1, sort_keys=True)


# --- registry ---------------------------------------------------------------------------------
_REGISTRY: dict[str, type[Selector]] = {}


def register_selector(cls: type[Selector]) -> type[Selector]:
    """Class decorator: make ``cls`` available by its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"selector name {cls.name!r} is taken by {_REGISTRY[cls.name].__name__}")
    _REGISTRY[cls.name] = cls
    return cls
