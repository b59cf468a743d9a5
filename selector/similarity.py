"""Selectors built on transferability measures and dataset distances (:mod:`selector.measures`).

Each needs the labels of the new dataset's batch (``needs_labels``: a labelled training
batch), scores every training dataset (higher: a better choice), and turns the scores into
probabilities the same way (below).

Transferability selectors: ``"logme"``, ``"leep"``, ``"nce"``, ``"hscore"``, ``"gbc"``
---------------------------------------------------------------------------------------------
In the papers (You et al. 2021; Nguyen et al. 2020; Tran et al. 2019; Bao et al. 2019;
Pandy et al. 2022) a *source* is a pretrained network and the measure says how well it
transfers to a labelled target. Here the candidates are training *datasets* (whose incumbents
will be fine-tuned), all seen through one fixed backbone, so this project makes each training
dataset a source of its own (this adaptation is ours, not the papers'):

- at ``fit``, per training dataset, a *source head*: a linear softmax classifier
  (multinomial logistic regression, L2 penalty ``l2`` (default 0.1, on standardised
  embeddings: a weaker penalty lets the head predict with certainty), L-BFGS from zero weights:
  :func:`selector.measures.fit_softmax_probe`) on a seeded subsample (``n_samples``) of its
  training embeddings, predicting its own classes (those present in the subsample;
  multi-label rows are spread evenly over their classes). Its ``W [Z_i, D]`` and
  ``b [Z_i]`` are the fitted state (saved as arrays);
- for a query batch, the head's logits ``L_i = X W_i^T + b_i`` (``[B, Z_i]``) and
  class probabilities ``P_i = softmax(L_i)`` stand for "the source network's output on the
  target": LEEP uses ``P_i``; NCE uses the source labels ``argmax P_i``; LogME, H-score and
  GBC use the logits ``L_i`` as the source's features (the embeddings projected through the
  head: what the source dataset's classes make of the new samples);
- the query's labels: multi-label rows are reduced to their first largest label (argmax)
  for these single-label measures; rows without a positive label are left out. A batch
  needs at least two classes (with one, every measure is constant); GBC needs two samples
  of a class for its Gaussian, so GBC leaves out the samples of classes seen once.

A source head whose classes carve the new samples along the new labels transfers well:
that is what every measure rewards.

Distance selectors: ``"otdd"``, ``"task2vec"``
----------------------------------------------
Distances between the query (embeddings, labels) and each training dataset, score =
``-distance``:

- ``"otdd"``: Alvarez-Melis and Fusi 2020 (:func:`selector.measures.otdd`, Gaussian
  label distances, ``covariance="diagonal"`` by default since embeddings have ~1000
  dimensions) against a stored seeded subsample (``n_samples`` rows, labels by argmax) of each
  training dataset's training embeddings. Each class needs two samples for its covariance:
  samples of classes seen once are left out (of the subsample at ``fit``, of the query at
  prediction); a query left with no sample is refused. With many classes and a small batch
  that leaves little: give OTDD batches with repeated classes.
- ``"task2vec"``: Achille et al. 2019 (:func:`selector.measures.task2vec`): each training
  dataset's task embedding (diagonal Fisher of a linear probe fitted on a seeded subsample)
  is computed at ``fit`` and stored; the query's is computed from its batch;
  the distance is Task2Vec's normalised cosine distance.

Scores to probabilities, confidence
-----------------------------------
The measures live on different scales (nats, traces, distances), so the scores ``s`` over the
training datasets are standardised (``z = (s - mean(s)) / std(s)``; all equal: uniform) and
``predict_proba = softmax(z / temperature)``: the order is the measure's, the spread is
comparable between measures. ``confidence`` is the margin between the two highest
probabilities (1 with a single training dataset): a measure that cannot tell its two best
candidates apart is not sure. :meth:`scores` gives the raw scores.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from selector import measures
from selector.base import Selector, SelectorError, register_selector

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix

logger = logging.getLogger(__name__)


def scores_to_proba(scores: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``softmax(standardise(scores) / temperature)``; uniform when every score is equal."""
    s = np.asarray(scores, np.float64)
    std = s.std()
    z = (s - s.mean()) / std if std > 0 and np.isfinite(std) else np.zeros_like(s)
    return measures.softmax((z / temperature)[None, :])[0]


def margin(p: np.ndarray) -> float:
    """The measures' confidence given their probabilities ``p``: the margin between the two
    highest (1 with a single training dataset)."""
    q = np.sort(np.asarray(p, np.float64))[::-1]
    return 1.0 if len(q) < 2 else float(q[0] - q[1])


def _labelled_rows(labels: np.ndarray) -> np.ndarray:
    return np.flatnonzero(np.asarray(labels).max(axis=1) > 0)


def _subsample(d: DatasetFeatures, n: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded subsample (at most ``n``, sorted) of ``d``'s labelled training rows: (embeddings, labels)."""
    rows = _labelled_rows(d.train_labels)
    if n is not None and len(rows) > n:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=n, replace=False))
    return d.train[rows], d.train_labels[rows]


def _drop_singleton_classes(y: np.ndarray) -> np.ndarray:
    """Indices of the rows whose class occurs at least twice."""
    counts = np.bincount(y)
    return np.flatnonzero(counts[y] >= 2)


class _PairedState:
    """Fitted state of two lists of arrays, a pair per training dataset, for :meth:`Selector.save`.

    ``_pair_attrs`` names the two list attributes, ``_pair_keys`` their array names (formatted
    with the dataset's index), ``_count_key`` the metadata entry holding their number and
    ``_pair_what`` what they are (in the error when that number is not the training datasets').
    """

    _pair_attrs: tuple[str, str]
    _pair_keys: tuple[str, str]
    _count_key: str
    _pair_what: str

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        first, second = (getattr(self, a) for a in self._pair_attrs)
        arrays = {}
        for i, (a, b) in enumerate(zip(first, second)):
            arrays[self._pair_keys[0].format(i)] = a
            arrays[self._pair_keys[1].format(i)] = b
        return arrays, {self._count_key: len(first)}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        n = int(meta[self._count_key])
        if n != len(self.classes_):
            raise ValueError(f"{n} {self._pair_what} for {len(self.classes_)} training datasets")
        for attr, key in zip(self._pair_attrs, self._pair_keys):
            setattr(self, attr, [np.asarray(arrays[key.format(i)]) for i in range(n)])


class _MeasureSelector(Selector):
    """Shared by every selector of this module: scores -> probabilities, margin confidence."""

    needs_labels = True

    def scores(self, query: Query) -> np.ndarray:
        """The raw score of every training dataset (order of ``classes_``; higher is better)."""
        with measures.single_blas_thread():
            out = self._scores(self._check_query(query))
        bad = [c for c, v in zip(self.classes_, out) if not np.isfinite(v)]
        if bad:
            raise SelectorError(None, f"{self.name}: the measure is not finite for {bad}")
        return out

    def _scores(self, query: Query) -> np.ndarray:
        raise NotImplementedError

    def predict_proba(self, query: Query) -> np.ndarray:
        return scores_to_proba(self.scores(query), self.temperature)

    def confidence(self, query: Query) -> float:
        """Margin between the two highest probabilities (1 with one training dataset): :func:`margin`."""
        return margin(self.predict_proba(query))

    def confidence_from(self, query: Query, proba: np.ndarray) -> float:
        return margin(proba)

    def _check_common_params(self) -> None:
        if not (isinstance(self.temperature, (int, float)) and self.temperature > 0):
            raise SelectorError(None, f"{self.name}: temperature={self.temperature!r}; expected a number > 0")
        n = getattr(self, "n_samples", None)
        if n is not None and not (isinstance(n, (int, np.integer)) and n >= 2):
            raise SelectorError(None, f"{self.name}: n_samples={n!r}; expected an integer >= 2 or None (all)")

    def _query_labels(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """(rows with a positive label, their argmax class) of a checked query."""
        rows = _labelled_rows(query.labels)
        if len(rows) == 0:
            raise SelectorError(None, f"{self.name}: no sample of the query's batch has a positive label")
        return rows, np.argmax(query.labels[rows], axis=1)


class _ProbeSelector(_MeasureSelector):
    """The hyperparameters of a selector that fits an L2-penalised linear softmax probe
    (:func:`selector.measures.fit_softmax_probe`) on a seeded subsample of each dataset."""

    def __init__(self, n_samples: int | None = 256, l2: float = 0.1, max_iter: int = 200, seed: int = 0,
                 temperature: float = 1.0):
        self.n_samples = n_samples
        self.l2 = l2
        self.max_iter = max_iter
        self.seed = seed
        self.temperature = temperature


# --- transferability of per-dataset source heads ------------------------------------------------

class _SourceHeadSelector(_PairedState, _ProbeSelector):
    """A linear softmax source head per training dataset; a measure scores each on the query."""

    _pair_attrs = ("head_weights_", "head_biases_")
    _pair_keys = ("head_{}_W", "head_{}_b")
    _count_key = "heads"
    _pair_what = "source heads"

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> _SourceHeadSelector:
        self._check_common_params()
        self._set_classes(datasets)
        self.head_weights_, self.head_biases_ = [], []
        for d in datasets:
            x, y = _subsample(d, self.n_samples, self.seed)
            if len(x) == 0:
                raise SelectorError(None, f"{self.name}: training dataset {d.name!r} has no labelled sample")
            try:
                w, b = measures.fit_softmax_probe(x, y[:, y.sum(axis=0) > 0], l2=self.l2,
                                                  max_iter=self.max_iter, reuse=True)
            except ValueError as exc:
                raise SelectorError(None, f"{self.name}: source head of {d.name!r}: {exc}") from None
            self.head_weights_.append(w)
            self.head_biases_.append(b)
            logger.debug("%s: source head of %s: %d classes from %d samples", self.name, d.name, len(b), len(x))
        return self

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        raise NotImplementedError

    def _scores(self, query: Query) -> np.ndarray:
        rows, y = self._query_labels(query)
        if len(np.unique(y)) < 2:
            raise SelectorError(None, f"{self.name}: the query's batch holds one class only; a transferability "
                                      "measure needs at least two")
        x = np.asarray(query.embeddings[rows], np.float64)
        out = np.empty(len(self.classes_))
        for i, (w, b) in enumerate(zip(self.head_weights_, self.head_biases_)):
            try:
                out[i] = self._measure(x @ w.T + b, y)
            except ValueError as exc:
                raise SelectorError(None, f"{self.name}: scoring source {self.classes_[i]!r}: {exc}") from None
        logger.debug("%s scores: %s", self.name, dict(zip(self.classes_, np.round(out, 4).tolist())))
        return out


@register_selector
class LogMESelector(_SourceHeadSelector):
    """LogME (You et al. 2021) of each training dataset's source-head logits on the query's labels."""

    name = "logme"

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return measures.logme(logits, labels)


@register_selector
class LEEPSelector(_SourceHeadSelector):
    """LEEP (Nguyen et al. 2020) of each training dataset's source-head probabilities."""

    name = "leep"

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return measures.leep(measures.softmax(logits), labels)


@register_selector
class NCESelector(_SourceHeadSelector):
    """NCE (Tran et al. 2019) between each source head's predicted labels and the query's labels."""

    name = "nce"

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return measures.nce(np.argmax(logits, axis=1), labels)


@register_selector
class HScoreSelector(_SourceHeadSelector):
    """H-score (Bao et al. 2019) of the source-head logits, by default shrinkage-regularised.

    ``shrinkage="ledoit-wolf"`` (the default here) is the regularised H-score of Ibrahim et
    al. 2022; ``None`` is Bao et al.'s original. With a batch of tens of samples and heads of
    up to ~100 classes the original's covariance is nearly singular and its value saturates
    near (number of classes - 1) for every wide head: on the 21 datasets of the default
    collection (EfficientNet-Lite0 embeddings, held-out labelled batches of 64) it named the
    right dataset 2 times in 41, the Ledoit-Wolf variant 18 times.
    """

    name = "hscore"

    def __init__(self, n_samples: int | None = 256, l2: float = 0.1, max_iter: int = 200, seed: int = 0,
                 temperature: float = 1.0, shrinkage: float | str | None = "ledoit-wolf"):
        super().__init__(n_samples=n_samples, l2=l2, max_iter=max_iter, seed=seed, temperature=temperature)
        self.shrinkage = shrinkage

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> HScoreSelector:
        s = self.shrinkage
        if not (s is None or s == "ledoit-wolf" or (isinstance(s, (int, float)) and 0 <= s <= 1)):
            raise SelectorError(None, f"{self.name}: shrinkage={s!r}; expected None, a number in [0, 1] "
                                      "or 'ledoit-wolf'")
        super().fit(datasets, cost)
        return self

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        return measures.hscore(logits, labels, shrinkage=self.shrinkage)


@register_selector
class GBCSelector(_SourceHeadSelector):
    """GBC (Pandy et al. 2022) of the source-head logits; classes seen once in the batch are left out.

    ``gaussian="spherical"`` by default (the paper's reference implementation's default;
    on the default collection's held-out batches of 64 it named the right dataset 16 times in
    41, ``"diagonal"`` 2 times: with few samples per class, per-feature variances of wide heads
    are noisy).
    """

    name = "gbc"

    def __init__(self, n_samples: int | None = 256, l2: float = 0.1, max_iter: int = 200, seed: int = 0,
                 temperature: float = 1.0, gaussian: str = "spherical"):
        super().__init__(n_samples=n_samples, l2=l2, max_iter=max_iter, seed=seed, temperature=temperature)
        self.gaussian = gaussian

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> GBCSelector:
        if self.gaussian not in ("diagonal", "spherical"):
            raise SelectorError(None, f"{self.name}: gaussian={self.gaussian!r}; expected 'diagonal' or 'spherical'")
        super().fit(datasets, cost)
        return self

    def _measure(self, logits: np.ndarray, labels: np.ndarray) -> float:
        keep = _drop_singleton_classes(labels)
        if len(np.unique(labels[keep])) < 2:
            raise ValueError("fewer than two classes with at least two samples in the batch (GBC fits a "
                             "Gaussian per class): give a larger batch")
        return measures.gbc(logits[keep], labels[keep], gaussian=self.gaussian)


# --- dataset distances ----------------------------------------------------------------------------

@register_selector
class OTDDSelector(_PairedState, _MeasureSelector):
    """OTDD (Alvarez-Melis and Fusi 2020) between the query and a stored subsample of each training dataset."""

    name = "otdd"
    _pair_attrs = ("samples_", "sample_labels_")
    _pair_keys = ("samples_{}", "labels_{}")
    _count_key = "datasets"
    _pair_what = "stored subsamples"

    def __init__(self, n_samples: int | None = 256, covariance: str = "diagonal", method: str = "exact",
                 eps: float = 0.05, label_weight: float = 1.0, seed: int = 0, temperature: float = 1.0):
        self.n_samples = n_samples
        self.covariance = covariance
        self.method = method
        self.eps = eps
        self.label_weight = label_weight
        self.seed = seed
        self.temperature = temperature

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> OTDDSelector:
        self._check_common_params()
        if self.covariance not in ("full", "diagonal"):
            raise SelectorError(None, f"{self.name}: covariance={self.covariance!r}; expected 'full' or 'diagonal'")
        if self.method not in ("exact", "sinkhorn"):
            raise SelectorError(None, f"{self.name}: method={self.method!r}; expected 'exact' or 'sinkhorn'")
        self._set_classes(datasets)
        self.samples_, self.sample_labels_ = [], []
        for d in datasets:
            x, labels = _subsample(d, self.n_samples, self.seed)
            y = np.argmax(labels, axis=1).astype(np.int64)
            keep = _drop_singleton_classes(y)
            if len(keep) == 0:
                raise SelectorError(None, f"{self.name}: training dataset {d.name!r}: no class has two samples in "
                                          f"its subsample of {len(x)}; raise n_samples")
            self.samples_.append(np.ascontiguousarray(x[keep], dtype=np.float32))
            self.sample_labels_.append(y[keep])
        return self

    def _scores(self, query: Query) -> np.ndarray:
        rows, y = self._query_labels(query)
        keep = _drop_singleton_classes(y)
        if len(keep) == 0:
            raise SelectorError(None, f"{self.name}: no class occurs twice in the query's batch of {len(query)} "
                                      "(OTDD fits a Gaussian per class): give a larger batch")
        if len(keep) < len(y):
            logger.info("%s: left out %d of %d query samples (classes seen once)", self.name,
                        len(y) - len(keep), len(y))
        x, y = query.embeddings[rows][keep], y[keep]
        out = np.empty(len(self.classes_))
        for i, (xs, ys) in enumerate(zip(self.samples_, self.sample_labels_)):
            out[i] = -measures.otdd(x, y, xs, ys, covariance=self.covariance, method=self.method, eps=self.eps,
                                    label_weight=self.label_weight)
        logger.debug("%s distances: %s", self.name, dict(zip(self.classes_, np.round(-out, 4).tolist())))
        return out


@register_selector
class Task2VecSelector(_ProbeSelector):
    """Task2Vec (Achille et al. 2019) distance between the query's task embedding and each training dataset's."""

    name = "task2vec"

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> Task2VecSelector:
        self._check_common_params()
        self._set_classes(datasets)
        rows = []
        for d in datasets:
            x, labels = _subsample(d, self.n_samples, self.seed)
            try:
                rows.append(measures.task2vec(x, labels, l2=self.l2, max_iter=self.max_iter, reuse=True))
            except ValueError as exc:
                raise SelectorError(None, f"{self.name}: training dataset {d.name!r}: {exc}") from None
        self.task_embeddings_ = np.stack(rows)
        return self

    def _scores(self, query: Query) -> np.ndarray:
        rows, _ = self._query_labels(query)
        try:
            e = measures.task2vec(query.embeddings[rows], query.labels[rows], l2=self.l2, max_iter=self.max_iter)
        except ValueError as exc:
            raise SelectorError(None, f"{self.name}: the query's batch: {exc}") from None
        return -np.array([measures.task2vec_distance(e, t) for t in self.task_embeddings_])

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"task_embeddings": self.task_embeddings_}, {}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        e = np.asarray(arrays["task_embeddings"])
        if e.shape != (len(self.classes_), self.n_features_in_):
            raise ValueError(f"task_embeddings has shape {e.shape}, expected "
                             f"({len(self.classes_)}, {self.n_features_in_})")
        self.task_embeddings_ = e
