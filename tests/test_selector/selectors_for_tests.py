"""Test-only selectors shared by ``test_selector_evaluation.py`` and ``test_report.py``.

They are built through ``SelectorSpec(factory=...)`` and deliberately *not* registered, so
that tests which run over every registered selector never meet them. (The test folders have
no ``__init__.py``: pytest puts this folder on ``sys.path``, so the test modules import this
one by its bare name.)
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from metafeatures.features import Query
from selector.base import Selector
from selector.specs import SelectorSpec


class NoState(Selector):
    """Shared no-op state for the test selectors."""

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    def _restore(self, arrays: Any, meta: Any) -> None:
        pass


class Centroid(NoState):
    """Nearest centroid of the batch mean: perfect on well separated clusters."""

    name = "test-centroid"

    def fit(self, datasets, cost=None):
        self._set_classes(datasets)
        self.centroids_ = np.stack([d.train.mean(axis=0) for d in datasets])
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        d = np.linalg.norm(self.centroids_ - query.embeddings.mean(axis=0), axis=1)
        w = np.exp(-(d - d.min()))
        return w / w.sum()


class Oracle(NoState):
    """The best incumbent for the query's own dataset, read from the cost matrix's column.

    ``seen`` collects the training datasets of every fit (clear it before counting).
    """

    name = "test-oracle"
    needs_cost = True
    evaluation_only = True
    seen: ClassVar[list[list[str]]] = []

    def fit(self, datasets, cost=None):
        self._set_classes(datasets)
        self.cost_ = self._require_cost(self.name, cost, datasets)
        Oracle.seen.append(list(self.classes_))
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        alc = np.array([self.cost_.value(c, query.name) for c in self.classes_])
        p = np.zeros(len(alc))
        p[int(np.argmax(alc))] = 1.0
        return p


def spec(cls: type[Selector], **params: Any) -> SelectorSpec:
    """The test selector ``cls`` with ``params``, labelled by its name alone."""
    return SelectorSpec(cls.name, params, label=cls.name, factory=cls)
