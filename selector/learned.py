"""The learned selectors: the seed paper's meta-classifiers and ZAP's selectors.

The seed paper (Freiburg's AutoDL 2019 entry; Liu et al., "Winning solutions and
post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021) tells training
datasets apart from batches of pretrained-CNN embeddings:

- ``nearest-centroid`` and ``kmeans`` (approach 1): every query sample votes for the
  training dataset of its nearest centroid (k-means centre); the votes are the scores.
- ``mlp-vote`` (approach 1b): a two-layer perceptron (Swish, dropout) classifies single
  embeddings; the batch's per-sample probabilities are averaged (or majority-voted).
- ``precalc-mlp`` (approach 1c, the paper's best): the perceptron classifies the batch's
  statistics (:func:`metafeatures.precalc.precalc`: mean, median, std, var, skewness,
  kurtosis per feature after trimming), learnt from random batches of each training set.
- ``vae-ttest`` (approach 2): a variational autoencoder's latent means and deviations of
  the batch are compared with each training dataset's by Welch two-sample t-tests.

ZAP (Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022):

- ``descriptor-knn``: nearest training dataset by its descriptors (sizes, classes,
  channels, resolution, ...).
- ``cost-sensitive``: predicts each incumbent's ALC on the new dataset from its
  meta-features, trained on the cost matrix, and picks the best incumbent, not the
  nearest dataset (AutoFolio's idea, as ZAP-AS uses it).

All of them train on the ``train`` embeddings of the training datasets (the ``test``
embeddings stay held out for dataset identification), predict with numpy (PyTorch only
trains), save as safetensors + JSON, and report :meth:`_LearnedSelector.novelty`: how far
the query lies from every training dataset (:func:`novelty_score`), which the submission
uses to fall back to the single-best incumbent.

Scores of the voting selectors
------------------------------
``predict_proba`` of a voting selector is the vote share of each training dataset, plus
:data:`TIE_WEIGHT` (1e-6) of a score that orders the datasets by a secondary criterion
(the summed distance of the batch to each dataset, or the mean probability): datasets with
equal votes, including all those with no vote, are then ranked by it, and ``predict``,
``rank`` and ``argmax(predict_proba)`` agree. Vote shares move by less than 1e-6.
``confidence`` is the exact vote share of the winner.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from metafeatures.precalc import STATS
from selector.base import Selector, SelectorError, register_selector

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix

logger = logging.getLogger(__name__)

__all__ = ["ALL_STATS", "TIE_WEIGHT", "CostSensitiveSelector", "DescriptorKNNSelector", "KMeansSelector",
           "MLPVoteSelector", "NearestCentroidSelector", "PrecalcMLPSelector", "VAETTestSelector", "novelty_score"]

TIE_WEIGHT = 1e-6
"""Weight of the tie-breaking order in a voting selector's probabilities (module docstring)."""

ALL_STATS: tuple[str, ...] = STATS
"""The precalc statistics (:func:`metafeatures.precalc.precalc`), the seed paper's six."""

_EPS = 1e-12


# --- numerical helpers --------------------------------------------------------------------------
def _sq_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``[len(a), len(b)]`` (float64, >= 0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    d = (a * a).sum(1)[:, None] - 2.0 * a @ b.T + (b * b).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _distances(a: np.ndarray, b: np.ndarray, metric: str = "euclidean") -> np.ndarray:
    if metric == "manhattan":
        a = np.asarray(a, dtype=np.float64)
        b = np.asarray(b, dtype=np.float64)
        return np.abs(a[:, None, :] - b[None, :, :]).sum(-1)
    return np.sqrt(_sq_distances(a, b))


def _standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation (1 where a feature is constant), float64."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    return mean, np.where(scale > 1e-8, scale, 1.0)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    z = z - np.max(z, axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _silu(x: np.ndarray) -> np.ndarray:
    """Swish / SiLU, ``x * sigmoid(x)``, without overflow for large negative ``x``."""
    from scipy.special import expit

    return x * expit(x)


def _mlp_logits(w: Mapping[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The :class:`selector.nets.MLP`'s logits in numpy (float64; dropout off)."""
    h = _silu(np.asarray(x, np.float64) @ w["fc1.weight"].astype(np.float64).T + w["fc1.bias"])
    return h @ w["fc2.weight"].astype(np.float64).T + w["fc2.bias"]


def _vote_proba(votes: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Vote shares plus :data:`TIE_WEIGHT` of a ranking by ``order`` (higher first).

    The ranking score of the dataset ranked ``r``-th (0 first) of ``K`` is ``K - r``,
    normalised to sum 1; equal ``order`` values share their rank's order by index.
    """
    votes = np.asarray(votes, dtype=np.float64)
    k = len(votes)
    ranks = np.empty(k, dtype=np.float64)
    ranks[np.argsort(-np.asarray(order, dtype=np.float64), kind="stable")] = np.arange(k)
    tiebreak = (k - ranks) / (k * (k + 1) / 2)
    return (1.0 - TIE_WEIGHT) * votes / votes.sum() + TIE_WEIGHT * tiebreak


def _predicted_alc(sel: Any, f: np.ndarray) -> np.ndarray:
    """Each row's predicted ALC at the standardised meta-features ``f`` of a regression selector
    (``regressor``: ``ridge`` from ``coef_``/``intercept_``, else the inverse-distance weighted ALC
    ``train_alc_`` of the ``k`` nearest ``train_features_`` where measured; NaN where never)."""
    if sel.regressor == "ridge":
        return sel.coef_ @ f + sel.intercept_
    d = np.sqrt(_sq_distances(f[None], sel.train_features_))[0]
    pred = np.full(len(sel.train_alc_), np.nan)
    for r in range(len(sel.train_alc_)):
        known = np.flatnonzero(~np.isnan(sel.train_alc_[r]))
        if len(known):
            w = _inverse_distance_weights(d[known], min(int(sel.k), len(known)))
            pred[r] = w @ sel.train_alc_[r, known]
    return pred


def _inverse_distance_weights(d: np.ndarray, k: int) -> np.ndarray:
    """Weights over all ``len(d)`` items: ``1/d`` on the ``k`` nearest (stable order), 0
    elsewhere, normalised; where some of the ``k`` nearest lie at distance 0, they share
    the weight alone."""
    d = np.asarray(d, dtype=np.float64)
    nearest = np.argsort(d, kind="stable")[:k]
    w = np.zeros(len(d), dtype=np.float64)
    zero = d[nearest] <= _EPS
    if zero.any():
        w[nearest[zero]] = 1.0
    else:
        w[nearest] = 1.0 / d[nearest]
    return w / w.sum()


def novelty_score(centroids: np.ndarray, spreads: np.ndarray, query_embeddings: np.ndarray,
                  counts: np.ndarray | None = None) -> float:
    """How many standard errors the query's mean embedding lies from the nearest training centroid.

    If the ``B`` query samples are drawn from training dataset ``j`` (mean ``mu_j``,
    covariance ``S_j``), their mean ``m`` has ``E||m - mu_j||^2 = tr(S_j) / B``, and the
    centroid ``c_j`` of ``N_j`` training samples adds ``tr(S_j) / N_j``. ``spread_j^2`` (the
    mean squared distance of dataset ``j``'s samples to its centroid) estimates
    ``tr(S_j)``, so::

        z_j = ||m - c_j|| / (spread_j * sqrt(1/B + 1/N_j))

    is about 1 for a batch of dataset ``j`` (``z_j^2`` is a chi-square over the
    effective dimensions divided by them: close to 1 in high dimension) and grows with
    the distance otherwise. The score is ``min_j z_j``: a few at most means that the
    query looks like a sample of some training dataset; much more means that it lies
    away from all of them. It presumes a random batch: a batch of one class only, or the
    first examples of a file sorted by class, lies farther from its own dataset.

    Parameters
    ----------
    centroids:
        ``[K, D]`` the training datasets' mean embeddings.
    spreads:
        ``[K]`` their RMS distances to the centroid.
    query_embeddings:
        ``[B, D]``.
    counts:
        ``[K]`` the numbers of training samples behind each centroid; None leaves the
        centroids' own error out (``1/N_j = 0``).
    """
    q = np.asarray(query_embeddings, dtype=np.float64)
    m = q.mean(axis=0, keepdims=True)
    dist = np.sqrt(_sq_distances(m, centroids))[0]
    inv_n = 0.0 if counts is None else 1.0 / np.maximum(np.asarray(counts, np.float64), 1.0)
    se = np.maximum(np.asarray(spreads, np.float64), _EPS) * np.sqrt(1.0 / len(q) + inv_n)
    return float(np.min(dist / se))


# --- the common part --------------------------------------------------------------------------
class _LearnedSelector(Selector):
    """What every learned selector shares: parameter checks, the training datasets'
    centroids and spreads, and :meth:`novelty`.

    Attributes
    ----------
    centroids_:
        ``[K, D]`` each training dataset's mean ``train`` embedding (raw, unstandardised).
    spread_:
        ``[K]`` the RMS distance of its samples to it.
    counts_:
        ``[K]`` its number of samples.

    Files: a subclass lists its fitted arrays in ``_state_arrays`` (array name -> dtype; the
    attribute is the name plus ``_``) and, for a network, the prefix of the arrays of its
    ``weights_`` in ``_weights_prefix``; the reference arrays are saved with them.
    """

    _state_arrays: ClassVar[Mapping[str, type]] = {}
    _weights_prefix: ClassVar[str | None] = None

    def _bad(self, param: str, expected: str) -> SelectorError:
        return SelectorError(None, f"{self.name}: {param}={getattr(self, param)!r}: expected {expected}",
                             field=param)

    def _check_int(self, param: str, low: int = 1) -> int:
        value = getattr(self, param)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
            raise self._bad(param, f"an integer >= {low}")
        return int(value)

    def _check_float(self, param: str, low: float, high: float, *, low_open: bool = False,
                     high_open: bool = False) -> float:
        value = getattr(self, param)
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise self._bad(param, f"a number in {interval}") from None
        ok = math.isfinite(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        if isinstance(value, bool) or not ok:
            raise self._bad(param, f"a number in {interval}")
        return v

    def _check_choice(self, param: str, choices: Sequence[Any]) -> Any:
        """The value of ``param`` where it is one of ``choices`` (a bool only where that choice
        is a bool: 1 is not True, and choices may mix bools and strings)."""
        value = getattr(self, param)
        if not any(value == c and isinstance(value, bool) == isinstance(c, bool) for c in choices):
            raise self._bad(param, f"one of {', '.join(map(repr, choices))}")
        return value

    def _fit_reference(self, datasets: Sequence[DatasetFeatures]) -> None:
        cents, spreads, counts = [], [], []
        for d in datasets:
            x = np.asarray(d.train, dtype=np.float64)
            if len(x) == 0:
                raise SelectorError(None, f"{self.name}: training dataset {d.name!r} has no train embeddings")
            c = x.mean(axis=0)
            cents.append(c)
            spreads.append(np.sqrt(((x - c) ** 2).sum(axis=1).mean()))
            counts.append(len(x))
        self.centroids_ = np.stack(cents)
        self.spread_ = np.asarray(spreads, dtype=np.float64)
        self.counts_ = np.asarray(counts, dtype=np.int64)

    def novelty(self, query: Query) -> float:
        """:func:`novelty_score` of the query against the training datasets (about 1 for a
        random batch of one of them; large far from all). Needs the query's embeddings, even
        for a selector that reads none to choose."""
        self._check_query(query)
        if query.embeddings is None:
            raise SelectorError(None, f"{self.name}: novelty needs the query's embeddings")
        return novelty_score(self.centroids_, self.spread_, query.embeddings, self.counts_)

    def _pooled_train(self, datasets: Sequence[DatasetFeatures], standardize: bool = True) -> np.ndarray:
        """Set ``classes_`` and the reference; pool every training dataset's ``train`` embeddings
        (float64) and set ``mean_``/``scale_`` from them (0 and 1 unless ``standardize``). Returns the pool."""
        self._set_classes(datasets)
        self._fit_reference(datasets)
        x = np.concatenate([d.train for d in datasets]).astype(np.float64)
        if standardize:
            self.mean_, self.scale_ = _standardizer(x)
        else:
            self.mean_, self.scale_ = np.zeros(x.shape[1]), np.ones(x.shape[1])
        return x

    def _state_meta(self) -> dict[str, Any]:
        return {}

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {key: getattr(self, f"{key}_") for key in self._state_arrays}
        if self._weights_prefix is not None:
            arrays.update({f"{self._weights_prefix}{k}": v for k, v in self.weights_.items()})
        arrays.update({"ref.centroids": self.centroids_, "ref.spread": self.spread_, "ref.counts": self.counts_})
        return arrays, self._state_meta()

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        for key, dtype in self._state_arrays.items():
            setattr(self, f"{key}_", np.asarray(arrays[key], dtype=dtype))
        if self._weights_prefix is not None:
            prefix = self._weights_prefix
            self.weights_ = {k[len(prefix):]: np.asarray(v) for k, v in arrays.items() if k.startswith(prefix)}
        self.centroids_ = np.asarray(arrays["ref.centroids"], dtype=np.float64)
        self.spread_ = np.asarray(arrays["ref.spread"], dtype=np.float64)
        self.counts_ = np.asarray(arrays["ref.counts"], dtype=np.int64)


class _VotingSelector(_LearnedSelector):
    """A selector whose scores are votes of the query's samples (see the module docstring)."""

    def _votes(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """Votes per training dataset ``[K]`` and the tie-breaking order ``[K]`` (higher first)."""
        raise NotImplementedError

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        votes, order = self._votes(query)
        return _vote_proba(votes, order)

    def confidence(self, query: Query) -> float:
        """The vote share of the winner."""
        self._check_query(query)
        votes, _ = self._votes(query)
        return float(np.max(votes) / np.sum(votes))


# --- approach 1: nearest centroid, k-means ------------------------------------------------------
@register_selector
class NearestCentroidSelector(_VotingSelector):
    """Each query sample votes for the training dataset with the nearest centroid (approach 1).

    Ties in the votes are broken by the batch's summed distance to each centroid (smaller
    first); so are datasets without votes ordered.

    Parameters
    ----------
    metric:
        ``euclidean`` (centroid = mean) or ``manhattan`` (centroid = per-feature median, as
        scikit-learn's ``NearestCentroid`` does; the seed paper's choice).
    standardize:
        Z-score every feature with the mean and deviation over all training samples first.
    seed:
        Unused (no randomness); accepted so that every selector takes one.

    Attributes
    ----------
    centres_:
        ``[K, D]`` the voting centroids, in the standardised space.
    mean_, scale_:
        ``[D]`` the standardisation (0 and 1 where ``standardize`` is off).
    """

    name = "nearest-centroid"
    _state_arrays = {"centres": np.float64, "mean": np.float64, "scale": np.float64}

    def __init__(self, metric: str = "euclidean", standardize: bool = True, seed: int = 0):
        self.metric = metric
        self.standardize = standardize
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> NearestCentroidSelector:
        metric = self._check_choice("metric", ("euclidean", "manhattan"))
        self._check_choice("standardize", (True, False))
        self._pooled_train(datasets, standardize=self.standardize)
        centre = np.median if metric == "manhattan" else np.mean
        self.centres_ = np.stack([centre((d.train - self.mean_) / self.scale_, axis=0) for d in datasets])
        return self

    def _votes(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        z = (query.embeddings.astype(np.float64) - self.mean_) / self.scale_
        d = _distances(z, self.centres_, self.metric)
        votes = np.bincount(np.argmin(d, axis=1), minlength=len(self.classes_)).astype(np.float64)
        return votes, -d.sum(axis=0)


@register_selector
class KMeansSelector(_VotingSelector):
    """k-means per training dataset; each query sample votes for the dataset of its nearest
    centre (approach 1).

    Ties in the votes are broken by the batch's summed distance to each dataset's nearest
    centre (per sample; smaller first).

    Parameters
    ----------
    n_clusters:
        Centres per training dataset (fewer where a dataset has fewer distinct samples).
    n_init, max_iter:
        scikit-learn ``KMeans``'s restarts and iterations.
    standardize:
        Z-score every feature over all training samples first.
    seed:
        ``KMeans``'s ``random_state``.

    Attributes
    ----------
    centres_:
        ``[C, D]`` all centres (standardised space), dataset by dataset.
    centre_labels_:
        ``[C]`` the index in ``classes_`` of each centre's dataset.
    mean_, scale_:
        ``[D]`` the standardisation.
    """

    name = "kmeans"
    _state_arrays = {"centres": np.float64, "centre_labels": np.int64, "mean": np.float64, "scale": np.float64}

    def __init__(self, n_clusters: int = 8, n_init: int = 3, max_iter: int = 100, standardize: bool = True,
                 seed: int = 0):
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_iter = max_iter
        self.standardize = standardize
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> KMeansSelector:
        from sklearn.cluster import KMeans

        n_clusters = self._check_int("n_clusters")
        n_init = self._check_int("n_init")
        max_iter = self._check_int("max_iter")
        self._check_choice("standardize", (True, False))
        self._pooled_train(datasets, standardize=self.standardize)
        centres, labels = [], []
        for i, d in enumerate(datasets):
            z = (d.train.astype(np.float64) - self.mean_) / self.scale_
            k = min(n_clusters, len(np.unique(z, axis=0)))
            km = KMeans(n_clusters=k, n_init=n_init, max_iter=max_iter, random_state=int(self.seed)).fit(z)
            centres.append(km.cluster_centers_)
            labels += [i] * k
        self.centres_ = np.concatenate(centres).astype(np.float64)
        self.centre_labels_ = np.asarray(labels, dtype=np.int64)
        return self

    def _votes(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        z = (query.embeddings.astype(np.float64) - self.mean_) / self.scale_
        d = np.sqrt(_sq_distances(z, self.centres_))
        k = len(self.classes_)
        votes = np.bincount(self.centre_labels_[np.argmin(d, axis=1)], minlength=k).astype(np.float64)
        nearest = np.stack([d[:, self.centre_labels_ == i].min(axis=1) for i in range(k)], axis=1)
        return votes, -nearest.sum(axis=0)


# --- approach 1b: MLP on single embeddings + vote -------------------------------------------------
@register_selector
class MLPVoteSelector(_LearnedSelector):
    """A two-layer perceptron on single embeddings; the batch votes (approach 1b, "dl2").

    The network (:class:`selector.nets.MLP`: Linear -> Swish -> Dropout -> Linear) learns
    which training dataset one standardised embedding comes from; the cross-entropy weighs
    each dataset's samples by ``N / (K * N_k)`` so that every dataset counts alike.

    Parameters
    ----------
    neurons, dropout:
        Hidden width and dropout rate.
    lr, epochs, batch_size:
        Adam's learning rate, passes over the training samples, minibatch size.
    vote:
        ``mean``: the mean of the per-sample softmax; ``majority``: the share of samples
        whose most probable dataset each is (ties broken by the mean softmax).
    seed:
        Seeds the initialisation, dropout and minibatches.
    """

    name = "mlp-vote"
    _state_arrays = {"mean": np.float64, "scale": np.float64}
    _weights_prefix = "mlp."

    def __init__(self, neurons: int = 256, dropout: float = 0.2, lr: float = 1e-3, epochs: int = 30,
                 batch_size: int = 128, vote: str = "mean", seed: int = 0):
        self.neurons = neurons
        self.dropout = dropout
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.vote = vote
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> MLPVoteSelector:
        from selector.nets import train_classifier

        neurons, epochs, batch_size = (self._check_int(p) for p in ("neurons", "epochs", "batch_size"))
        dropout = self._check_float("dropout", 0.0, 1.0, high_open=True)
        lr = self._check_float("lr", 0.0, 10.0, low_open=True)
        self._check_choice("vote", ("mean", "majority"))
        x = self._pooled_train(datasets)
        y = np.concatenate([np.full(len(d.train), i) for i, d in enumerate(datasets)])
        n_k = np.bincount(y, minlength=len(datasets)).astype(np.float64)
        self.weights_ = train_classifier(((x - self.mean_) / self.scale_).astype(np.float32), y, len(datasets),
                                         neurons=neurons, dropout=dropout, lr=lr, epochs=epochs,
                                         batch_size=batch_size, seed=int(self.seed),
                                         class_weight=len(y) / (len(datasets) * n_k))
        return self

    def sample_proba(self, query: Query) -> np.ndarray:
        """``[B, K]`` each query sample's softmax over the training datasets."""
        self._check_query(query)
        z = (query.embeddings.astype(np.float64) - self.mean_) / self.scale_
        return _softmax(_mlp_logits(self.weights_, z))

    def predict_proba(self, query: Query) -> np.ndarray:
        p = self.sample_proba(query)
        mean = p.mean(axis=0)
        if self.vote == "majority":
            return _vote_proba(np.bincount(p.argmax(axis=1), minlength=p.shape[1]), mean)
        return mean / mean.sum()

    def confidence(self, query: Query) -> float:
        """The winner's vote share (``majority``) or mean probability (``mean``)."""
        p = self.sample_proba(query)
        if self.vote == "majority":
            return float(np.bincount(p.argmax(axis=1), minlength=p.shape[1]).max() / len(p))
        return float(p.mean(axis=0).max())


# --- approach 1c: MLP on the batch's statistics ----------------------------------------------------
@register_selector
class PrecalcMLPSelector(_LearnedSelector):
    """The two-layer perceptron on a batch's statistics (approach 1c, "precalc"; the seed paper's best).

    Training inputs are :func:`metafeatures.precalc.precalc` vectors of ``n_batches``
    random batches of each training dataset's ``train`` embeddings, standardised; the
    class is the dataset. A query is one batch, of whatever size: the precalc of all its
    samples -> softmax.

    Sampling the training batches: a dataset's features hold a few hundred samples
    (:class:`metafeatures.embeddings.EmbeddingSpec` ``train_samples``, 256 by default),
    not the seed paper's 10,000. Batches drawn *without* replacement from ``N`` samples
    vary less than fresh batches (by the factor ``sqrt(1 - B/N)``) and all centre on the
    statistics of those same ``N`` samples, so the network learns the sample's own quirks
    (a standard deviation of 1.07 instead of 1) as if they were the dataset's, and a
    held-out batch looks unfamiliar. Drawing *with* replacement (``replace=True``, the
    default: bootstrap batches) keeps the batch-to-batch spread of fresh batches. Measured
    on Gaussian blobs (4 datasets, D=8, N=120, held-out batches of 64): 0.68 accuracy
    without replacement, 0.91 with; with N=256, 0.975 and 0.99; with N >= 400 both 1.0.
    Keep ``batch_size`` well below the samples per dataset either way.

    Batch size: the statistics depend on it (a median or a kurtosis of 4 samples is far
    noisier than of 64, and the standard deviation of one sample is 0), so the network
    is most at home at the batch sizes it was trained on. The seed paper trained at one
    fixed size (``batch_size_max=None``, the default); with ``batch_size_max`` every
    training batch's size is drawn log-uniformly from ``[batch_size, batch_size_max]``,
    so that one network serves queries of any size in that range. (The spread and shape
    statistics of one sample, or of a constant feature, are 0.)

    Parameters
    ----------
    batch_size:
        The training batches' size (their smallest with ``batch_size_max``).
    batch_size_max:
        None (one size), or the largest size of the training batches.
    n_batches:
        Training batches per dataset (every dataset gets as many: balanced).
    replace:
        Draw each training batch with replacement (bootstrap; see above); without, a batch
        larger than the dataset's samples is still drawn with replacement.
    stats, p:
        Which statistics (a subset of :data:`ALL_STATS`) and the fraction trimmed from each
        tail before computing them.
    neurons, dropout, lr, epochs, sgd_batch_size:
        The perceptron and its training (Adam; ``sgd_batch_size`` precalc vectors per step).
    seed:
        Seeds the training batches, the initialisation, dropout and minibatches.
    """

    name = "precalc-mlp"
    _state_arrays = {"mean": np.float64, "scale": np.float64}
    _weights_prefix = "mlp."

    def __init__(self, batch_size: int = 64, batch_size_max: int | None = None, n_batches: int = 256,
                 replace: bool = True, stats: Sequence[str] = ALL_STATS, p: float = 0.0, neurons: int = 256,
                 dropout: float = 0.2, lr: float = 1e-3, epochs: int = 50, sgd_batch_size: int = 64, seed: int = 0):
        self.batch_size = batch_size
        self.batch_size_max = batch_size_max
        self.n_batches = n_batches
        self.replace = replace
        self.stats = stats
        self.p = p
        self.neurons = neurons
        self.dropout = dropout
        self.lr = lr
        self.epochs = epochs
        self.sgd_batch_size = sgd_batch_size
        self.seed = seed

    def _stats(self) -> tuple[str, ...]:
        stats = (self.stats,) if isinstance(self.stats, str) else tuple(self.stats)
        if not stats or any(s not in ALL_STATS for s in stats) or len(set(stats)) != len(stats):
            raise self._bad("stats", f"a non-empty subset of {', '.join(ALL_STATS)} without repeats")
        return stats

    def _precalc(self, batch: np.ndarray) -> np.ndarray:
        from metafeatures.precalc import precalc

        return precalc(batch, stats=self._stats(), p=float(self.p)).astype(np.float64)

    def batch_sizes(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` training batch sizes: all ``batch_size``, or log-uniform in [batch_size, batch_size_max]."""
        if self.batch_size_max is None:
            return np.full(n, int(self.batch_size))
        lo, hi = math.log(self.batch_size), math.log(self.batch_size_max)
        return np.clip(np.rint(np.exp(rng.uniform(lo, hi, size=n))), self.batch_size,
                       self.batch_size_max).astype(int)

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> PrecalcMLPSelector:
        from selector.nets import train_classifier

        batch_size = self._check_int("batch_size")
        if self.batch_size_max is not None and self._check_int("batch_size_max") < batch_size:
            raise self._bad("batch_size_max", f"None or an integer >= batch_size ({batch_size})")
        n_batches, neurons, epochs, sgd_batch = (self._check_int(p) for p in
                                                 ("n_batches", "neurons", "epochs", "sgd_batch_size"))
        self._stats()
        self._check_choice("replace", (True, False))
        self._check_float("p", 0.0, 0.5, high_open=True)
        dropout = self._check_float("dropout", 0.0, 1.0, high_open=True)
        lr = self._check_float("lr", 0.0, 10.0, low_open=True)
        self._set_classes(datasets)
        self._fit_reference(datasets)
        rng = np.random.default_rng(int(self.seed))
        xs, ys = [], []
        for i, d in enumerate(datasets):
            for b in self.batch_sizes(rng, n_batches):
                idx = rng.choice(len(d.train), size=int(b), replace=bool(self.replace) or b > len(d.train))
                xs.append(self._precalc(d.train[idx]))
                ys.append(i)
        x = np.stack(xs)
        self.mean_, self.scale_ = _standardizer(x)
        self.weights_ = train_classifier(((x - self.mean_) / self.scale_).astype(np.float32), np.asarray(ys),
                                         len(datasets), neurons=neurons, dropout=dropout, lr=lr, epochs=epochs,
                                         batch_size=sgd_batch, seed=int(self.seed))
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        z = (self._precalc(query.embeddings) - self.mean_) / self.scale_
        return _softmax(_mlp_logits(self.weights_, z[None]))[0]

    def _state_meta(self) -> dict[str, Any]:
        return {"stats": list(self._stats()), "p": float(self.p)}


# --- approach 2: VAE latent + two-sample t-test ---------------------------------------------------
@register_selector
class VAETTestSelector(_LearnedSelector):
    """A VAE's latent statistics of the batch against each training dataset's, by Welch t-tests (approach 2).

    A small VAE (:func:`selector.nets.train_vae`: MLP encoder and decoder, Gaussian latent
    of ``latent_dim``) is trained on all training datasets' standardised ``train``
    embeddings. Every sample is described by its posterior's means and standard
    deviations (``2 * latent_dim`` numbers). At fit, each training dataset keeps their
    per-dimension mean, variance and count (all a Welch test needs). For a query, per
    dimension ``l`` and dataset ``j``::

        t_jl = (mean_q,l - mean_j,l) / sqrt(var_q,l / B + var_j,l / N_j)

    (Welch's statistic; a query of one sample has ``var_q = 0``), aggregated as
    ``s_j = mean_l t_jl^2`` (about 1 when the batch comes from dataset ``j``, growing with
    ``B`` otherwise). The scores are ``softmax(-(s_j - mean(s)) / (std(s) * temperature))``:
    standardised across datasets, so that they compare datasets, not batch sizes;
    :meth:`ttest_statistics` gives ``s`` itself.

    How it differs from the seed paper's: the paper's VAE is trained on images (a
    DenseNet-style encoder and a PixelCNN++ decoder); this one on the pretrained
    embeddings the other selectors use. It is therefore small and cheap to train, shares
    the one embedding pass with every other selector, and compares what the pretrained
    network sees rather than pixels (so two datasets that differ only in a colour
    shift an ImageNet network ignores look alike here).

    Parameters
    ----------
    latent_dim, hidden:
        Latent dimensions and the encoder's/decoder's hidden width.
    beta:
        Weight of the KL term.
    lr, epochs, batch_size:
        Adam's learning rate, passes over the samples, minibatch size.
    temperature:
        Of the softmax over standardised statistics (the ranking does not depend on it).
    seed:
        Seeds the initialisation, reparameterisation noise and minibatches.
    """

    name = "vae-ttest"
    _state_arrays = {"mean": np.float64, "scale": np.float64, "ref_mean": np.float64, "ref_var": np.float64,
                     "ref_n": np.int64}
    _weights_prefix = "vae."

    def __init__(self, latent_dim: int = 8, hidden: int = 128, beta: float = 1.0, lr: float = 1e-3,
                 epochs: int = 30, batch_size: int = 128, temperature: float = 1.0, seed: int = 0):
        self.latent_dim = latent_dim
        self.hidden = hidden
        self.beta = beta
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.temperature = temperature
        self.seed = seed

    def _encode(self, x: np.ndarray) -> np.ndarray:
        """``[N, 2L]``: the posterior's means and standard deviations of raw embeddings ``x``."""
        from selector.nets import LOGVAR_CLAMP

        w = self.weights_
        z = (np.asarray(x, np.float64) - self.mean_) / self.scale_
        h = _silu(z @ w["enc1.weight"].astype(np.float64).T + w["enc1.bias"])
        h = h @ w["enc2.weight"].astype(np.float64).T + w["enc2.bias"]
        latent = h.shape[1] // 2
        mu, logvar = h[:, :latent], np.clip(h[:, latent:], -LOGVAR_CLAMP, LOGVAR_CLAMP)
        return np.concatenate([mu, np.exp(0.5 * logvar)], axis=1)

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> VAETTestSelector:
        from selector.nets import train_vae

        latent, hidden, epochs, batch_size = (self._check_int(p) for p in
                                              ("latent_dim", "hidden", "epochs", "batch_size"))
        beta = self._check_float("beta", 0.0, 1e6)
        lr = self._check_float("lr", 0.0, 10.0, low_open=True)
        self._check_float("temperature", 0.0, 1e6, low_open=True)
        x = self._pooled_train(datasets)
        self.weights_ = train_vae(((x - self.mean_) / self.scale_).astype(np.float32), hidden=hidden,
                                  latent_dim=latent, beta=beta, lr=lr, epochs=epochs, batch_size=batch_size,
                                  seed=int(self.seed))
        codes = [self._encode(d.train) for d in datasets]
        self.ref_mean_ = np.stack([c.mean(axis=0) for c in codes])
        self.ref_var_ = np.stack([c.var(axis=0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1]) for c in codes])
        self.ref_n_ = np.asarray([len(c) for c in codes], dtype=np.int64)
        return self

    def ttest_statistics(self, query: Query) -> np.ndarray:
        """``[K]`` the mean squared Welch t statistic against each training dataset (smaller: more alike)."""
        self._check_query(query)
        c = self._encode(query.embeddings)
        var_q = c.var(axis=0, ddof=1) if len(c) > 1 else np.zeros(c.shape[1])
        se2 = var_q[None, :] / len(c) + self.ref_var_ / self.ref_n_[:, None]
        t = (c.mean(axis=0)[None, :] - self.ref_mean_) / np.sqrt(np.maximum(se2, _EPS))
        return (t ** 2).mean(axis=1)

    def predict_proba(self, query: Query) -> np.ndarray:
        s = self.ttest_statistics(query)
        sd = s.std()
        z = (s - s.mean()) / sd if sd > 0 else np.zeros_like(s)
        return _softmax(-z / float(self.temperature))


# --- ZAP: descriptors, cost-sensitive ---------------------------------------------------------------
def _descriptors(selector: str, what: str, d: Mapping[str, float] | None) -> np.ndarray:
    from autodl.errors import AutoDLError
    from metafeatures.descriptors import descriptor_vector

    if not d:
        raise SelectorError(None, f"{selector}: {what} has no descriptors (metafeatures.descriptors.describe)",
                            field="descriptors")
    try:
        return descriptor_vector(d).astype(np.float64)
    except AutoDLError as exc:
        raise SelectorError(None, f"{selector}: {what}'s descriptors: {exc}", field="descriptors") from None


@register_selector
class DescriptorKNNSelector(_LearnedSelector):
    """The nearest training datasets by their descriptors (ZAP's meta-features).

    Descriptor vectors (:func:`metafeatures.descriptors.descriptor_vector`: log-scaled
    counts and sizes, 0/1 flags) are z-scored over the training datasets; the ``k``
    nearest datasets (Euclidean) share the probability in proportion to ``1 / distance``
    (those at distance 0, if any, share it alone); the others get :data:`TIE_WEIGHT`
    spread by their distance order. A query without descriptors is refused.

    Parameters
    ----------
    k:
        Neighbours that get a share.
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "descriptor-knn"
    reads_embeddings = False
    _state_arrays = {"descriptors": np.float64, "mean": np.float64, "scale": np.float64}

    def __init__(self, k: int = 1, seed: int = 0):
        self.k = k
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> DescriptorKNNSelector:
        self._check_int("k")
        self._set_classes(datasets)
        self._fit_reference(datasets)
        v = np.stack([_descriptors(self.name, f"training dataset {d.name!r}", d.descriptors) for d in datasets])
        self.mean_, self.scale_ = _standardizer(v)
        self.descriptors_ = (v - self.mean_) / self.scale_
        return self

    def distances(self, query: Query) -> np.ndarray:
        """``[K]`` the query's distance to each training dataset in standardised descriptor space."""
        self._check_query(query)
        q = (_descriptors(self.name, "the query", query.descriptors) - self.mean_) / self.scale_
        return np.sqrt(_sq_distances(q[None], self.descriptors_))[0]

    def predict_proba(self, query: Query) -> np.ndarray:
        d = self.distances(query)
        w = _inverse_distance_weights(d, min(int(self.k), len(d)))
        return _vote_proba(w, -d)


@register_selector
class CostSensitiveSelector(_LearnedSelector):
    """Predicts every incumbent's ALC on the new dataset and favours the best (ZAP-AS / AutoFolio).

    Unlike the similarity selectors it does not ask which dataset the query resembles
    but which incumbent will do best on it, learnt from the cost matrix. A dataset's
    meta-features are its mean ``train`` embedding projected on ``n_components``
    principal components (PCA fitted on the training datasets' mean embeddings) and,
    with ``use_descriptors``, its descriptor vector; z-scored over the training datasets.
    For each incumbent (a row of the cost matrix, one per training dataset), a regressor
    maps meta-features to its ALC, trained on the columns of the training datasets where
    that ALC is known. ``classes_`` are the training datasets, i.e. their incumbents.

    The regressor (``regressor``):

    - ``knn`` (default): the inverse-distance weighted mean of the incumbent's ALC on the
      ``k`` training datasets nearest in meta-feature space. AutoFolio and ZAP use random
      forests, which are adaptive nearest-neighbour averages; a forest cannot be stored as
      a few arrays without pickle, while k-NN regression is fully described by the
      training meta-features and the ALCs (it stays local, non-parametric and needs no
      fitting, which suits a few dozen training datasets).
    - ``ridge``: a ridge regression per incumbent (closed form; ``alpha`` on the
      standardised features; intercept not penalised): a coefficient vector and an
      intercept each. With a large ``alpha`` every prediction tends to the incumbent's
      mean ALC, i.e. to the single best.

    Scores: ``softmax(predicted ALC / temperature)``; an incumbent with no known ALC on
    any training dataset gets 0. ``temperature`` sets only how peaked they are (an ALC
    difference of ``temperature`` is a factor e); :meth:`predict_alc` gives the
    predictions themselves.

    Parameters
    ----------
    n_components:
        Principal components of the mean embeddings kept (at most ``K - 1``); 0 for none.
    use_descriptors:
        Append the descriptor vector (every training dataset and the query need descriptors).
    regressor, k, alpha:
        ``knn`` with ``k`` neighbours, or ``ridge`` with penalty ``alpha``.
    temperature:
        Of the softmax over predicted ALCs.
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "cost-sensitive"
    _state_arrays = dict.fromkeys(("pca_mean", "pca_components", "feat_mean", "feat_scale", "train_features",
                                   "train_alc", "coef", "intercept"), np.float64)
    needs_cost = True

    def __init__(self, n_components: int = 4, use_descriptors: bool = True, regressor: str = "knn", k: int = 3,
                 alpha: float = 1.0, temperature: float = 0.01, seed: int = 0):
        self.n_components = n_components
        self.use_descriptors = use_descriptors
        self.regressor = regressor
        self.k = k
        self.alpha = alpha
        self.temperature = temperature
        self.seed = seed

    def _meta_features(self, mean_embedding: np.ndarray, descriptors: np.ndarray | None) -> np.ndarray:
        """Raw (unstandardised) meta-features of datasets: ``[n, F]``."""
        parts = [(np.atleast_2d(mean_embedding) - self.pca_mean_) @ self.pca_components_.T]
        if descriptors is not None:
            parts.append(np.atleast_2d(descriptors))
        return np.concatenate(parts, axis=1)

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None) -> CostSensitiveSelector:
        from selector.baselines import cost_block

        cost = self._require_cost(self.name, cost, datasets)
        n_components = self._check_int("n_components", low=0)
        self._check_choice("use_descriptors", (True, False))
        self._check_choice("regressor", ("knn", "ridge"))
        self._check_int("k")
        self._check_float("alpha", 0.0, 1e12)
        self._check_float("temperature", 0.0, 1e6, low_open=True)
        self._set_classes(datasets)
        self._fit_reference(datasets)

        means = self.centroids_
        self.pca_mean_ = means.mean(axis=0)
        c = min(n_components, len(datasets) - 1, means.shape[1])
        if c > 0:
            _, _, vt = np.linalg.svd(means - self.pca_mean_, full_matrices=False)
            comps = vt[:c]
            signs = np.sign(comps[np.arange(c), np.argmax(np.abs(comps), axis=1)])  # a fixed sign per component
            self.pca_components_ = comps * np.where(signs == 0, 1.0, signs)[:, None]
        else:
            self.pca_components_ = np.zeros((0, means.shape[1]))
        desc = (np.stack([_descriptors(self.name, f"training dataset {d.name!r}", d.descriptors) for d in datasets])
                if self.use_descriptors else None)
        feats = self._meta_features(means, desc)
        if feats.shape[1] == 0:
            raise SelectorError(None, f"{self.name}: no meta-features (n_components={self.n_components} with "
                                      f"{len(datasets)} training datasets, use_descriptors={self.use_descriptors})",
                                field="n_components")
        self.feat_mean_, self.feat_scale_ = _standardizer(feats)
        feats = (feats - self.feat_mean_) / self.feat_scale_

        alc, columns = cost_block(cost, self.classes_, self.classes_, selector=self.name)
        if not columns or np.isnan(alc).all():
            raise SelectorError(None, f"{self.name}: the cost matrix has no ALC of these incumbents on the "
                                      f"training datasets {self.classes_}")
        self.train_features_ = feats[[self.classes_.index(t) for t in columns]]
        self.train_alc_ = alc
        self.coef_ = np.zeros((len(self.classes_), feats.shape[1]))
        self.intercept_ = np.full(len(self.classes_), np.nan)
        for r in range(len(self.classes_)):
            known = ~np.isnan(alc[r])
            if not known.any():
                logger.warning("%s: incumbent of %r has no ALC on the training datasets; it is never chosen",
                               self.name, self.classes_[r])
                continue
            x, y = self.train_features_[known], alc[r, known]
            x_mean, y_mean = x.mean(axis=0), y.mean()
            xc = x - x_mean
            gram = xc.T @ xc + float(self.alpha) * np.eye(x.shape[1])
            w = np.linalg.lstsq(gram, xc.T @ (y - y_mean), rcond=None)[0]
            self.coef_[r] = w
            self.intercept_[r] = y_mean - x_mean @ w
        return self

    def query_features(self, query: Query) -> np.ndarray:
        """``[F]`` the query's standardised meta-features."""
        self._check_query(query)
        desc = _descriptors(self.name, "the query", query.descriptors) if self.use_descriptors else None
        raw = self._meta_features(query.embeddings.astype(np.float64).mean(axis=0), desc)[0]
        return (raw - self.feat_mean_) / self.feat_scale_

    def predict_alc(self, query: Query) -> np.ndarray:
        """``[K]`` each incumbent's predicted ALC on the query's dataset (NaN: never measured)."""
        return _predicted_alc(self, self.query_features(query))

    def predict_proba(self, query: Query) -> np.ndarray:
        pred = self.predict_alc(query)
        return _softmax(np.where(np.isnan(pred), -np.inf, pred / float(self.temperature)))
