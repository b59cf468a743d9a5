"""The baselines every selector is compared with: random, single-best, oracle.

As ASlib and ZAP (Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022)
report them: a selector is worth something only where it beats the *single-best*
incumbent (the best mean ALC over the training datasets) and closes part of the gap to the
*oracle* (the best incumbent of each dataset, known only in hindsight); *random* is the
expected score of picking an incumbent blindly.

- ``random``: uniform probabilities; :meth:`RandomSelector.predict` and ``rank`` draw a
  random order with a numpy ``Generator`` seeded from ``seed`` and the query's content, so
  that asking twice about one query gives one answer, while different queries (or seeds)
  get independent draws.
- ``single-best`` (needs the cost matrix): probability 1 on the incumbent with the best
  mean ALC over the columns of the datasets it is fitted on (only those: in a
  leave-one-dataset-out fold the held-out dataset's column is never seen).
- ``oracle`` (needs the cost matrix; evaluation only): probability 1 on the best
  incumbent, among those it was fitted with, of the cost-matrix column named
  ``query.name``; a query whose name is not a column is refused.

They keep what they need of the cost matrix as arrays, so they save and load like every
selector (:meth:`selector.base.Selector.save`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from selector.base import Selector, SelectorError, register_selector

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix

logger = logging.getLogger(__name__)

__all__ = ["OracleSelector", "RandomSelector", "SingleBestSelector", "cost_block"]


def cost_block(cost: CostMatrix, sources: Sequence[str], targets: Sequence[str], *,
               selector: str = "selector") -> tuple[np.ndarray, list[str]]:
    """The ALCs of the incumbents ``sources`` (rows) on those of ``targets`` that are columns.

    Parameters
    ----------
    cost:
        The cost matrix (rows: incumbents by source dataset; columns: datasets).
    sources:
        Row names, all of which must be rows of ``cost``.
    targets:
        Wanted column names; those that are not columns of ``cost`` are left out (logged).
    selector:
        The asking selector's name, for messages.

    Returns
    -------
    (alc, columns)
        ``alc`` ``[len(sources), len(columns)]`` (float64, NaN where missing) and the
        column names kept, in the order of ``targets``.
    """
    missing_rows = [s for s in sources if s not in cost.sources]
    if missing_rows:
        raise SelectorError(None, f"{selector}: the cost matrix has no incumbent of {missing_rows}")
    columns = [t for t in targets if t in cost.targets]
    left_out = [t for t in targets if t not in cost.targets]
    if left_out:
        logger.warning("%s: datasets %s are not columns of the cost matrix; left out", selector, left_out)
    rows = [cost.sources.index(s) for s in sources]
    cols = [cost.targets.index(t) for t in columns]
    alc = np.asarray(cost.alc, dtype=np.float64)[np.ix_(rows, cols)]
    return alc, columns


def _one_hot(k: int, n: int) -> np.ndarray:
    p = np.zeros(n, dtype=np.float64)
    p[k] = 1.0
    return p


@register_selector
class RandomSelector(Selector):
    """Picks a training dataset's incumbent at random (uniform probabilities).

    Parameters
    ----------
    seed:
        With the query's content (a SHA-256 of its embeddings), seeds the draw of
        :meth:`predict` and :meth:`rank`: one query always gets one answer; the expected
        score over queries or seeds is the mean over the incumbents.
    """

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> RandomSelector:
        self._set_classes(datasets)
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        n = len(self.classes_)
        return np.full(n, 1.0 / n)

    def _generator(self, query: Query) -> np.random.Generator:
        x = np.ascontiguousarray(query.embeddings, dtype=np.float32)
        digest = hashlib.sha256(repr(x.shape).encode() + x.tobytes()).digest()
        return np.random.default_rng([int(self.seed), int.from_bytes(digest[:8], "little")])

    def rank(self, query: Query) -> list[str]:
        """A random order of the training datasets (seeded by ``seed`` and the query)."""
        self._check_query(query)
        order = self._generator(query).permutation(len(self.classes_))
        return [self.classes_[i] for i in order]

    def predict(self, query: Query) -> str:
        """The first of :meth:`rank`: a uniform random draw, the same for the same query."""
        return self.rank(query)[0]

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        pass


class _CostBaseline(Selector):
    """A baseline read off the cost matrix.

    Parameters
    ----------
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    needs_cost = True

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _start_fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None) -> CostMatrix:
        """The checked cost matrix, once ``classes_`` is set."""
        cost = self._require_cost(self.name, cost, datasets)
        self._set_classes(datasets)
        return cost


@register_selector
class SingleBestSelector(_CostBaseline):
    """Always the incumbent with the best mean ALC over the training datasets' columns.

    The mean is taken over the columns (of the datasets :meth:`fit` is given) where every
    incumbent has an ALC, so that all are compared on the same datasets, as
    :mod:`portfolio.cost_matrix` does; where no such column exists, over each incumbent's
    own known cells (logged). Ties go to the first in ``classes_``.

    Its one parameter, ``seed``, is unused (see :class:`_CostBaseline`).

    Attributes
    ----------
    mean_alc_:
        ``[n_classes]`` each incumbent's mean ALC (NaN where it has none).
    best_:
        The index of the single best in ``classes_``.
    """

    name = "single-best"
    needs_query = False

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> SingleBestSelector:
        cost = self._start_fit(datasets, cost)
        alc, columns = cost_block(cost, self.classes_, self.classes_, selector=self.name)
        if not columns:
            raise SelectorError(None, f"{self.name}: none of the training datasets {self.classes_} is a column "
                                      "of the cost matrix")
        complete = ~np.isnan(alc).any(axis=0)
        if complete.any():
            mean = alc[:, complete].mean(axis=1)
        else:
            logger.warning("%s: no column has every incumbent's ALC; each incumbent's mean is over its own "
                           "known cells", self.name)
            with np.errstate(all="ignore"):
                known = ~np.isnan(alc)
                mean = np.where(known.any(axis=1), np.nansum(alc, axis=1) / np.maximum(known.sum(axis=1), 1),
                                np.nan)
        if np.isnan(mean).all():
            raise SelectorError(None, f"{self.name}: no incumbent has an ALC on the training datasets")
        self.mean_alc_ = mean
        self.best_ = int(np.nanargmax(mean))
        return self

    def predict_proba(self, query: Query | None) -> np.ndarray:
        if query is not None:
            self._check_query(query)
        elif not hasattr(self, "classes_"):
            raise SelectorError(None, f"{self.name}: not fitted; call fit first")
        return _one_hot(self.best_, len(self.classes_))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"mean_alc": self.mean_alc_}, {"best": self.best_}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.mean_alc_ = np.asarray(arrays["mean_alc"], dtype=np.float64)
        self.best_ = int(meta["best"])


@register_selector
class OracleSelector(_CostBaseline):
    """The best incumbent for the query's own dataset, looked up in the cost matrix.

    Evaluation only: it reads the answer from the cost-matrix column named
    ``query.name`` (the held-out dataset), which no real selector can do. Only the
    incumbents of the datasets it is fitted on compete (the held-out dataset's own
    incumbent is not among them in a leave-one-dataset-out fold).

    Its one parameter, ``seed``, is unused (see :class:`_CostBaseline`).

    Attributes
    ----------
    alc_:
        ``[n_classes, n_targets]`` the incumbents' ALCs on every column of the cost matrix.
    targets_:
        The column names.
    """

    name = "oracle"

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> OracleSelector:
        cost = self._start_fit(datasets, cost)
        self.alc_, self.targets_ = cost_block(cost, self.classes_, list(cost.targets), selector=self.name)
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        if query.name not in self.targets_:
            raise SelectorError(None, f"{self.name}: the query's name {query.name!r} is not a column of the cost "
                                      "matrix; the oracle is for evaluation on datasets of the cost matrix only",
                                field="name")
        column = self.alc_[:, self.targets_.index(query.name)]
        if np.isnan(column).all():
            raise SelectorError(None, f"{self.name}: no incumbent of {self.classes_} has an ALC on "
                                      f"{query.name!r} in the cost matrix", field="name")
        return _one_hot(int(np.nanargmax(column)), len(self.classes_))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"alc": self.alc_}, {"targets": list(self.targets_)}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.alc_ = np.asarray(arrays["alc"], dtype=np.float64)
        self.targets_ = [str(t) for t in meta["targets"]]
