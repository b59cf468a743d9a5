"""Selectors that name a portfolio member (a configuration), not a training dataset.

The seed paper's selectors name the most similar training dataset and use its configuration;
the leave-one-dataset-out evaluation (:mod:`selector.lodo`) scores them through the
dataset's member. The selectors here learn the members' ALCs themselves, from the member
view of the portfolio (:class:`selector.members.MemberMatrix`: members x training datasets),
and score every member (``outputs = "members"``; ``classes_`` are the members, the training
datasets ``datasets_``). They are fitted with ``fit(datasets, cost, members=...)``; without
``members`` each row of ``cost`` is its own member (the per-dataset portfolio).

Cost-sensitive selection (AutoFolio, Lindauer et al., JAIR 2015; ZAP, Ozturk et al., ICML
2022), three ways, all on the same meta-features (a dataset's mean ``train`` embedding
projected on ``n_components`` principal components of the training datasets' means, and with
``use_descriptors`` its descriptor vector, with ``use_probe`` the cheap probes' scores; z-scored
over the training datasets), as
``cost-sensitive`` (:class:`selector.learned.CostSensitiveSelector`, which predicts each
training dataset's incumbent) uses:

- ``member-regression``: each member's ALC regressed on the meta-features (ridge, closed
  form, or k-NN); the member with the best predicted ALC wins.
- ``member-pairwise``: AutoFolio's pairwise cost-sensitive classification: for each pair of
  members, a logistic regression predicts which is better, each training dataset weighted by
  their ALC difference (pairs within the dataset's seed noise are ties: left out); each
  member gets the summed probability of beating the others (soft votes).
- ``member-ranking``: ZAP-HPO's idea of learning to rank rather than to regress: a linear
  score per member trained with a listwise ranking loss (ListNet, Cao et al., ICML 2007: the
  cross-entropy between the softmax of the scores and the softmax of the true ALCs at
  ``target_temperature``). ZAP-HPO ranks with a neural network over (meta-features,
  hyperparameters); with a handful of members and a few dozen datasets a linear score per
  member is what the data can carry.

``use_probe`` adds the leave-one-out NAUC of the learner's ridge probe on 64 labelled
examples (:mod:`metafeatures.probe`; a query must then carry labels): ``False`` (default) none;
``True`` or ``"embedding"`` the probe on their embeddings
(:func:`~metafeatures.probe.embedding_probe_score`); ``"raw"`` the probe on their raw pixels
(:func:`~metafeatures.probe.raw_probe_score`, on the training datasets' ``train_raw`` and the
query's ``raw``: features extracted before ``train_raw`` was stored must be extracted again);
``"both"`` the two, as two columns (embedding, then raw).

And the trivial baselines every similarity and transferability measure is compared with:

- ``single-best-member``: the member with the best mean ALC over the training datasets (the
  registered ``single-best`` names a training dataset, so it can only reach members that some
  training dataset is assigned to; on a per-dataset portfolio the two are the same).
- ``size-rule``: a small decision tree on the image side (the geometric mean of height and
  width) and the number of training examples, both log-scaled, from the descriptors: it is
  grown (scikit-learn's CART, ``max_depth``, ``min_samples_leaf``) on each training dataset's
  preferred acceptable member (:func:`selector.members.preferred_member`: among those within
  the dataset's seed noise of the best, the one with the best mean ALC), and each leaf names
  the member with the best mean ALC over the leaf's training datasets. Stored as arrays (the
  tree's nodes), not a pickle.

All predict with numpy and save as safetensors + JSON like every selector. A submission ships
them like any other: it looks a member up by name in the portfolio's ``provenance.members``
(:meth:`submission.artifacts.Artifacts.members`), a dataset selector's pick in ``portfolio.json``'s rows.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from metafeatures.probe import embedding_probe_score, raw_probe_score
from selector.base import SelectorError, register_selector
from selector.learned import (
    TIE_WEIGHT,
    _descriptors,
    _LearnedSelector,
    _predicted_alc,
    _softmax,
    _standardizer,
    _vote_proba,
)

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix
    from selector.members import MemberMatrix

logger = logging.getLogger(__name__)

__all__ = ["KIND_FEATURES", "KindRuleSelector", "MemberPairwiseSelector", "MemberRankingSelector",
           "MemberRegressionSelector", "SingleBestMemberSelector", "SizeRuleSelector", "alc_tree", "kind_features",
           "rule_features"]

PROBE_CHOICES: tuple[Any, ...] = (False, True, "embedding", "raw", "both")
"""The values of the member selectors' ``use_probe`` (see the module docstring)."""

_PROBE_KINDS: dict[Any, tuple[str, ...]] = {False: (), True: ("embedding",), "embedding": ("embedding",),
                                             "raw": ("raw",), "both": ("embedding", "raw")}

_INTERCEPT_PENALTY = 1e-2
"""The logistic regressions' penalty on the intercept (keeps it finite where one member always wins)."""


def _sigmoid(z: np.ndarray) -> np.ndarray:
    from scipy.special import expit

    return expit(z)


class _MemberSelector(_LearnedSelector):
    """What the member selectors share: the member view, the training ALCs, the meta-features.

    Attributes
    ----------
    datasets_:
        The training datasets' names.
    classes_:
        The members' names (what the scores are over).
    train_alc_:
        ``[n_members, n_columns]`` the members' ALCs on the training datasets that are columns
        (``columns_``; NaN where not measured).
    noise_:
        ``[n_columns]`` those datasets' seed noise.
    mean_alc_:
        ``[n_members]`` each member's mean ALC over them (ties and empty leaves go to the best).
    """

    outputs: ClassVar[str] = "members"
    needs_cost = True
    _member_arrays: ClassVar[tuple[str, ...]] = ("train_alc", "noise", "mean_alc")

    def _start_member_fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None,
                          members: MemberMatrix | None) -> MemberMatrix:
        """Check the inputs, set ``datasets_``, ``classes_``, the reference and the training ALCs."""
        from selector.members import trivial_members

        if members is None:
            cost = self._require_cost(self.name, cost, datasets)
            names = [d.name for d in datasets]
            members = trivial_members(cost).restrict([n for n in names if n in cost.sources], names)
        if not members.members:
            raise SelectorError(None, f"{self.name}: no member to choose among")
        self._set_classes(datasets)
        self._fit_reference(datasets)
        self.datasets_ = list(self.classes_)
        self.classes_ = list(members.members)
        self.columns_ = [d for d in self.datasets_ if d in members.targets]
        if not self.columns_:
            raise SelectorError(None, f"{self.name}: none of the training datasets {self.datasets_} is a column of "
                                      "the member matrix")
        sub = members.restrict(members.members, self.columns_)
        if np.isnan(sub.alc).all():
            raise SelectorError(None, f"{self.name}: no member has an ALC on the training datasets")
        self.train_alc_ = sub.alc
        self.noise_ = np.array([sub.noise_of(t) for t in self.columns_], dtype=np.float64)
        self.mean_alc_ = np.where(np.isnan(m := sub.mean_alc()), -np.inf, m)
        return sub

    # meta-features: as CostSensitiveSelector's
    def _fit_meta_features(self, datasets: Sequence[DatasetFeatures]) -> np.ndarray:
        """``[n_columns, F]`` the standardised meta-features of the training datasets that are columns."""
        n_components = self._check_int("n_components", low=0)
        self._check_choice("use_descriptors", (True, False))
        kinds = self._probe_kinds()
        lacking = [d.name for d in datasets if d.train_raw is None] if "raw" in kinds else []
        if lacking:
            raise SelectorError(None, f"{self.name}: use_probe={self.use_probe!r} needs the raw-pixel features "
                                      f"(train_raw) of every training dataset; the features of {', '.join(lacking)} "
                                      "were extracted before they were stored: extract them again with "
                                      "'autodl-meta metafeatures extract'", field="train_raw")
        means = self.centroids_
        self.pca_mean_ = means.mean(axis=0)
        c = min(n_components, len(datasets) - 1, means.shape[1])
        if c > 0:
            _, _, vt = np.linalg.svd(means - self.pca_mean_, full_matrices=False)
            comps = vt[:c]
            signs = np.sign(comps[np.arange(c), np.argmax(np.abs(comps), axis=1)])
            self.pca_components_ = comps * np.where(signs == 0, 1.0, signs)[:, None]
        else:
            self.pca_components_ = np.zeros((0, means.shape[1]))
        desc = (np.stack([_descriptors(self.name, f"training dataset {d.name!r}", d.descriptors) for d in datasets])
                if self.use_descriptors else None)
        probe = (np.array([self._probe_scores(kinds, d.train, d.train_raw, d.train_labels) for d in datasets])
                 if kinds else None)
        feats = self._raw_features(means, desc, probe)
        if feats.shape[1] == 0:
            raise SelectorError(None, f"{self.name}: no meta-features (n_components={self.n_components} with "
                                      f"{len(datasets)} training datasets, use_descriptors={self.use_descriptors})",
                                field="n_components")
        self.feat_mean_, self.feat_scale_ = _standardizer(feats)
        feats = (feats - self.feat_mean_) / self.feat_scale_
        return feats[[self.datasets_.index(t) for t in self.columns_]]

    def _probe_kinds(self) -> tuple[str, ...]:
        """The probes ``use_probe`` asks for (``embedding``, ``raw``), in column order."""
        return _PROBE_KINDS[self._check_choice("use_probe", PROBE_CHOICES)]

    def _probe_scores(self, kinds: Sequence[str], embeddings: np.ndarray, raw: np.ndarray | None,
                      labels: np.ndarray) -> list[float]:
        """The probes' scores of one dataset (a training dataset's or the query's batch), one per kind
        (``raw`` checked by the caller)."""
        return [embedding_probe_score(embeddings, labels, seed=self.seed) if kind == "embedding"
                else raw_probe_score(raw, labels, seed=self.seed) for kind in kinds]

    def _raw_features(self, mean_embedding: np.ndarray, descriptors: np.ndarray | None,
                      probe: np.ndarray | None = None) -> np.ndarray:
        parts = [(np.atleast_2d(mean_embedding) - self.pca_mean_) @ self.pca_components_.T]
        if descriptors is not None:
            parts.append(np.atleast_2d(descriptors))
        if probe is not None:
            parts.append(np.atleast_2d(probe))
        return np.concatenate(parts, axis=1)

    def query_features(self, query: Query) -> np.ndarray:
        """``[F]`` the query's standardised meta-features."""
        self._check_query(query)
        desc = _descriptors(self.name, "the query", query.descriptors) if self.use_descriptors else None
        probe = None
        kinds = self._probe_kinds() if hasattr(self, "use_probe") else ()
        if kinds:
            if query.labels is None:
                raise SelectorError(None, f"{self.name}: use_probe needs the query's labels (a probe is fitted on "
                                          "them)", field="labels")
            if "raw" in kinds and query.raw is None:
                raise SelectorError(None, f"{self.name}: use_probe={self.use_probe!r} needs the raw-pixel features "
                                          "of the query's batch (Query.raw: metafeatures.probe.raw_probe_features "
                                          "of its decoded clips), which it lacks", field="raw")
            probe = np.array(self._probe_scores(kinds, query.embeddings, query.raw, query.labels))
        raw = self._raw_features(query.embeddings.astype(np.float64).mean(axis=0), desc, probe)[0]
        return (raw - self.feat_mean_) / self.feat_scale_

    # files
    _feature_arrays: ClassVar[tuple[str, ...]] = ("pca_mean", "pca_components", "feat_mean", "feat_scale")

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays, meta = super()._state()
        for key in self._member_arrays:
            arrays[key] = np.asarray(getattr(self, f"{key}_"), dtype=np.float64)
        return arrays, {**meta, "datasets": list(self.datasets_), "columns": list(self.columns_)}

    def _restore(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        super()._restore(arrays, meta)
        for key in self._member_arrays:
            setattr(self, f"{key}_", np.asarray(arrays[key], dtype=np.float64))
        self.datasets_ = [str(d) for d in meta["datasets"]]
        self.columns_ = [str(d) for d in meta["columns"]]


@register_selector
class MemberRegressionSelector(_MemberSelector):
    """Predicts every member's ALC from the dataset's meta-features and favours the best (regression).

    One regressor per member, trained on the training datasets where its ALC is known:
    ``ridge`` (default; closed form on the standardised meta-features, intercept not
    penalised: a large ``alpha`` tends to the single best) or ``knn`` (the inverse-distance
    weighted mean of its ALC on the ``k`` nearest training datasets). Scores:
    ``softmax(predicted ALC / temperature)``; a member never measured gets 0.

    Parameters
    ----------
    n_components, use_descriptors:
        The meta-features (see the module docstring).
    use_probe:
        The probes' scores among them: ``False`` (none), ``True`` or ``"embedding"`` (the
        ridge probe on embeddings), ``"raw"`` (on raw pixels: the training datasets' features
        need ``train_raw``, the query ``raw``), ``"both"`` (two columns).
    regressor, k, alpha:
        ``ridge`` with penalty ``alpha``, or ``knn`` with ``k`` neighbours.
    temperature:
        Of the softmax over predicted ALCs (only how peaked the scores are).
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "member-regression"
    _state_arrays = dict.fromkeys((*_MemberSelector._feature_arrays, "train_features", "coef", "intercept"),
                                  np.float64)

    def __init__(self, n_components: int = 4, use_descriptors: bool = True, regressor: str = "ridge", k: int = 3,
                 alpha: float = 1.0, temperature: float = 0.01, seed: int = 0, use_probe: bool | str = False):
        self.n_components = n_components
        self.use_descriptors = use_descriptors
        self.use_probe = use_probe
        self.regressor = regressor
        self.k = k
        self.alpha = alpha
        self.temperature = temperature
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None,
            members: MemberMatrix | None = None) -> MemberRegressionSelector:
        self._check_choice("regressor", ("ridge", "knn"))
        self._check_int("k")
        self._check_float("alpha", 0.0, 1e12)
        self._check_float("temperature", 0.0, 1e6, low_open=True)
        self._start_member_fit(datasets, cost, members)
        self.train_features_ = self._fit_meta_features(datasets)
        x_all, alc = self.train_features_, self.train_alc_
        self.coef_ = np.zeros((len(self.classes_), x_all.shape[1]))
        self.intercept_ = np.full(len(self.classes_), np.nan)
        for r in range(len(self.classes_)):
            known = ~np.isnan(alc[r])
            if not known.any():
                logger.warning("%s: member %r has no ALC on the training datasets; it is never chosen", self.name,
                               self.classes_[r])
                continue
            x, y = x_all[known], alc[r, known]
            x_mean, y_mean = x.mean(axis=0), y.mean()
            xc = x - x_mean
            gram = xc.T @ xc + float(self.alpha) * np.eye(x.shape[1])
            w = np.linalg.lstsq(gram, xc.T @ (y - y_mean), rcond=None)[0]
            self.coef_[r] = w
            self.intercept_[r] = y_mean - x_mean @ w
        return self

    def predict_alc(self, query: Query) -> np.ndarray:
        """``[n_members]`` each member's predicted ALC on the query's dataset (NaN: never measured)."""
        return _predicted_alc(self, self.query_features(query))

    def predict_proba(self, query: Query) -> np.ndarray:
        pred = self.predict_alc(query)
        return _softmax(np.where(np.isnan(pred), -np.inf, pred / float(self.temperature)))


def _weighted_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float,
                       max_iter: int = 100) -> tuple[np.ndarray, float]:
    """Weighted, L2-penalised logistic regression by Newton's method: minimises
    ``sum_i w_i * logloss(y_i, sigmoid(x_i . coef + b)) + alpha/2 |coef|^2 + c/2 b^2`` with the
    small :data:`_INTERCEPT_PENALTY` ``c`` (finite where one class is all there is)."""
    n, f = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pen = np.r_[np.full(f, float(alpha)), _INTERCEPT_PENALTY]
    theta = np.zeros(f + 1)
    for _ in range(max_iter):
        p = _sigmoid(xb @ theta)
        grad = xb.T @ (w * (p - y)) + pen * theta
        hess = (xb * (w * p * (1 - p))[:, None]).T @ xb + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-10:
            break
    return theta[:f], float(theta[f])


@register_selector
class MemberPairwiseSelector(_MemberSelector):
    """For each pair of members, which is better on the dataset (AutoFolio's pairwise classification).

    Per pair (i, j), a weighted logistic regression on the meta-features predicts
    P(i beats j); each training dataset where both are measured is an example with label
    ``ALC_i > ALC_j`` and weight ``|ALC_i - ALC_j|`` (normalised to mean 1 per pair), except
    where the difference is within the dataset's seed noise (a tie: no example). A pair with
    no example stays at 1/2. Scores: each member's summed probability of beating the others
    (soft votes), normalised, with :data:`~selector.learned.TIE_WEIGHT` of the members'
    mean ALC to order equal votes (the single best first).

    Parameters
    ----------
    n_components, use_descriptors:
        The meta-features (see the module docstring).
    use_probe:
        The probes' scores among them: ``False`` (none), ``True`` or ``"embedding"`` (the
        ridge probe on embeddings), ``"raw"`` (on raw pixels: the training datasets' features
        need ``train_raw``, the query ``raw``), ``"both"`` (two columns).
    alpha:
        L2 penalty of the coefficients.
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "member-pairwise"
    _state_arrays = dict.fromkeys((*_MemberSelector._feature_arrays, "coef", "intercept", "pairs"), np.float64)

    def __init__(self, n_components: int = 4, use_descriptors: bool = True, alpha: float = 1.0, seed: int = 0,
                 use_probe: bool | str = False):
        self.n_components = n_components
        self.use_descriptors = use_descriptors
        self.use_probe = use_probe
        self.alpha = alpha
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None,
            members: MemberMatrix | None = None) -> MemberPairwiseSelector:
        self._check_float("alpha", 0.0, 1e12)
        self._start_member_fit(datasets, cost, members)
        x = self._fit_meta_features(datasets)
        a = self.train_alc_
        m = len(self.classes_)
        pairs = [(i, j) for i in range(m) for j in range(i + 1, m)]
        self.pairs_ = np.array(pairs, dtype=np.float64).reshape(-1, 2)
        self.coef_ = np.zeros((len(pairs), x.shape[1]))
        self.intercept_ = np.zeros(len(pairs))
        for p, (i, j) in enumerate(pairs):
            d = a[i] - a[j]
            use = ~np.isnan(d) & (np.abs(d) > self.noise_ + 1e-12)
            if not use.any():
                continue
            w = np.abs(d[use])
            self.coef_[p], self.intercept_[p] = _weighted_logistic(x[use], (d[use] > 0).astype(np.float64),
                                                                   w / w.mean(), float(self.alpha))
        return self

    def win_probabilities(self, query: Query) -> np.ndarray:
        """``[n_members, n_members]``: P(row beats column) (1/2 on the diagonal)."""
        f = self.query_features(query)
        m = len(self.classes_)
        out = np.full((m, m), 0.5)
        p = _sigmoid(self.coef_ @ f + self.intercept_) if len(self.intercept_) else np.zeros(0)
        for (i, j), q in zip(self.pairs_.astype(int), p, strict=True):
            out[i, j], out[j, i] = q, 1.0 - q
        return out

    def votes(self, query: Query) -> np.ndarray:
        """``[n_members]`` each member's summed probability of beating the others."""
        w = self.win_probabilities(query)
        return w.sum(axis=1) - 0.5  # the diagonal's 1/2 is no vote

    def predict_proba(self, query: Query) -> np.ndarray:
        v = self.votes(query)
        if len(v) == 1 or v.sum() <= 0:
            return _vote_proba(np.ones(len(v)), self.mean_alc_)
        return _vote_proba(np.maximum(v, 0.0), self.mean_alc_)

    def confidence(self, query: Query) -> float:
        """The winner's share of the votes."""
        v = np.maximum(self.votes(query), 0.0)
        return float(v.max() / v.sum()) if v.sum() > 0 else 1.0 / len(v)


@register_selector
class MemberRankingSelector(_MemberSelector):
    """A linear score per member, learnt to rank the members on each training dataset (ListNet).

    ``score_m(x) = coef_m . x + intercept_m`` on the meta-features ``x``; trained by minimising
    over the training datasets the cross-entropy between ``softmax(ALC / target_temperature)``
    and ``softmax(score)`` over the members measured there, plus ``alpha/2 |coef|^2``
    (L-BFGS, from zero: deterministic). Scores: ``softmax(score)``; a member never measured
    gets 0.

    Parameters
    ----------
    n_components, use_descriptors:
        The meta-features (see the module docstring).
    use_probe:
        The probes' scores among them: ``False`` (none), ``True`` or ``"embedding"`` (the
        ridge probe on embeddings), ``"raw"`` (on raw pixels: the training datasets' features
        need ``train_raw``, the query ``raw``), ``"both"`` (two columns).
    alpha:
        L2 penalty of the coefficients.
    target_temperature:
        How sharply the true ALCs rank the members (an ALC difference of this much is a factor e).
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "member-ranking"
    _state_arrays = dict.fromkeys((*_MemberSelector._feature_arrays, "coef", "intercept"), np.float64)

    def __init__(self, n_components: int = 4, use_descriptors: bool = True, alpha: float = 1.0,
                 target_temperature: float = 0.02, seed: int = 0, use_probe: bool | str = False):
        self.n_components = n_components
        self.use_descriptors = use_descriptors
        self.use_probe = use_probe
        self.alpha = alpha
        self.target_temperature = target_temperature
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None,
            members: MemberMatrix | None = None) -> MemberRankingSelector:
        from scipy.optimize import minimize

        self._check_float("alpha", 0.0, 1e12)
        self._check_float("target_temperature", 0.0, 1e6, low_open=True)
        self._start_member_fit(datasets, cost, members)
        x = self._fit_meta_features(datasets)
        a = self.train_alc_.T  # [datasets, members]
        known = ~np.isnan(a)
        use = known.sum(axis=1) >= 2  # a dataset with one measured member ranks nothing
        x, a, known = x[use], a[use], known[use]
        m, f = len(self.classes_), x.shape[1]
        never = ~(~np.isnan(self.train_alc_)).any(axis=1)
        if not len(x):
            logger.warning("%s: no training dataset with two members measured: scores by mean ALC", self.name)
            self.coef_ = np.zeros((m, f))
            self.intercept_ = np.where(never, np.nan, np.where(np.isfinite(self.mean_alc_), self.mean_alc_, 0.0)
                                       / float(self.target_temperature))
            return self
        target = _softmax(np.where(known, np.nan_to_num(a) / float(self.target_temperature), -np.inf))
        alpha = float(self.alpha)

        def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
            w, b = theta[:m * f].reshape(m, f), theta[m * f:]
            s = np.where(known, x @ w.T + b, -np.inf)
            top = np.max(s, axis=1, keepdims=True)
            lse = top + np.log(np.exp(s - top).sum(axis=1, keepdims=True))
            logp = np.where(known, s - lse, 0.0)
            p = np.where(known, np.exp(logp), 0.0)
            value = -float(np.sum(target * logp)) + 0.5 * alpha * float(np.sum(w * w))
            g = np.where(known, p - target, 0.0)
            grad = np.concatenate([(g.T @ x + alpha * w).ravel(), g.sum(axis=0)])
            return value, grad

        res = minimize(loss, np.zeros(m * f + m), jac=True, method="L-BFGS-B",
                       options={"maxiter": 500, "gtol": 1e-9})
        self.coef_ = res.x[:m * f].reshape(m, f)
        self.intercept_ = np.where(never, np.nan, res.x[m * f:])
        return self

    def scores(self, query: Query) -> np.ndarray:
        """``[n_members]`` the linear ranking scores (NaN: never measured)."""
        return self.coef_ @ self.query_features(query) + self.intercept_

    def predict_proba(self, query: Query) -> np.ndarray:
        s = self.scores(query)
        return _softmax(np.where(np.isnan(s), -np.inf, s))


@register_selector
class SingleBestMemberSelector(_MemberSelector):
    """Always the member with the best mean ALC over the training datasets (a trivial baseline).

    The mean is over the training columns where every member is measured (else over each
    member's own values), ties to the earlier member: the single best of
    :func:`selector.lodo.leave_one_dataset_out`'s folds.

    Parameters
    ----------
    seed:
        Unused (no randomness); accepted so that every selector takes one.
    """

    name = "single-best-member"
    needs_query = False

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None,
            members: MemberMatrix | None = None) -> SingleBestMemberSelector:
        self._start_member_fit(datasets, cost, members)
        return self

    def predict_proba(self, query: Query | None) -> np.ndarray:
        if query is not None:
            self._check_query(query)
        elif not hasattr(self, "classes_"):
            raise SelectorError(None, f"{self.name}: not fitted; call fit first")
        p = np.zeros(len(self.classes_))
        p[int(np.argmax(self.mean_alc_))] = 1.0
        return p


def rule_features(selector: str, what: str, descriptors: Mapping[str, float] | None) -> np.ndarray:
    """``[log2 image side, log10 training examples]`` from a dataset's descriptors (side: the
    geometric mean of ``height`` and ``width``)."""
    d = dict(descriptors or {})
    try:
        h, w, n = float(d["height"]), float(d["width"]), float(d["train_samples"])
    except (KeyError, TypeError, ValueError):
        raise SelectorError(None, f"{selector}: {what} needs the descriptors height, width and train_samples "
                                  "(metafeatures.descriptors.describe)", field="descriptors") from None
    if not all(math.isfinite(v) and v >= 0 for v in (h, w, n)):
        raise SelectorError(None, f"{selector}: {what}'s height, width, train_samples {h}, {w}, {n}: expected "
                                  "numbers >= 0", field="descriptors")
    return np.array([math.log2(max(1.0, math.sqrt(h * w))), math.log10(max(1.0, n))])


KIND_FEATURES: tuple[str, ...] = ("log2 side", "log10 training examples", "log2 classes", "multi-label", "video",
                                   "colour")
"""The columns of :func:`kind_features` (``kind-rule``'s, and ``size-rule``'s with ``features="kind"``)."""


def kind_features(selector: str, what: str, descriptors: Mapping[str, float] | None) -> np.ndarray:
    """:func:`rule_features` plus what tells kinds of data apart: ``log2 classes``, and 0/1 for
    multi-label, video (more than one frame) and colour (three channels or more)."""
    size = rule_features(selector, what, descriptors)
    d = dict(descriptors or {})
    try:
        c, ml, f, ch = (float(d[k]) for k in ("classes", "multilabel", "frames", "channels"))
    except (KeyError, TypeError, ValueError):
        raise SelectorError(None, f"{selector}: {what} needs the descriptors classes, multilabel, frames and "
                                  "channels (metafeatures.descriptors.describe)", field="descriptors") from None
    if not all(math.isfinite(v) and v >= 0 for v in (c, ml, f, ch)):
        raise SelectorError(None, f"{selector}: {what}'s classes, multilabel, frames, channels {c}, {ml}, {f}, {ch}: "
                                  "expected numbers >= 0", field="descriptors")
    return np.array([*size, math.log2(max(1.0, c)), float(ml > 0), float(f > 1), float(ch >= 3)])


_RULE_FEATURES = {"size": rule_features, "kind": kind_features}


def alc_tree(x: np.ndarray, alc: np.ndarray, noise: np.ndarray, *, max_depth: int,
             min_samples_leaf: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The axis-aligned tree that maximises the summed ALC of each leaf's best member, found by
    exhaustive search up to ``max_depth``; each split must gain more than the seed noise summed
    over the datasets it splits (so no split is made on differences the seeds already make).

    A cost-sensitive tree: CART (``criterion="gini"``) splits on the labels alone and a label
    that wins by 0.001 counts as much as one that wins by 0.1; here the splits are judged by the
    ALC they give, as the leaves are.

    Parameters
    ----------
    x:
        ``[n, F]`` the datasets' rule features.
    alc:
        ``[members, n]`` their ALCs (no NaN: the caller fills them).
    noise:
        ``[n]`` their seed noise.

    Returns
    -------
    feature, threshold, left, right:
        Per node, as scikit-learn's ``tree_`` arrays (a leaf: ``left = right = -1``).
    leaves:
        ``[n]`` the leaf each dataset falls in.
    """
    n_features = x.shape[1]

    def best(rows: np.ndarray, depth: int) -> tuple[float, int, Any]:
        """(penalised summed ALC, leaves, tree) of the best tree on ``rows``; of equal ALC the one
        with fewer leaves."""
        value = float(alc[:, rows].sum(axis=1).max())
        if depth == 0 or len(rows) < 2 * min_samples_leaf:
            return value, 1, None
        top: tuple[float, int, Any] = (value, 1, None)
        cost = float(noise[rows].sum())
        for f in range(n_features):
            col = x[rows, f]
            vals = np.unique(col)
            for lo, hi in itertools.pairwise(vals):
                thr = (lo + hi) / 2.0
                left, right = rows[col <= thr], rows[col > thr]
                if len(left) < min_samples_leaf or len(right) < min_samples_leaf:
                    continue
                sl, nl, tl = best(left, depth - 1)
                sr, nr, tr = best(right, depth - 1)
                score = sl + sr - cost
                if score > top[0] + 1e-9 or (score >= top[0] - 1e-9 and nl + nr < top[1]):
                    top = (score, nl + nr, (f, thr, tl, tr))
        return top

    feature: list[float] = []
    threshold: list[float] = []
    left_of: list[float] = []
    right_of: list[float] = []
    leaves = np.zeros(x.shape[0], dtype=int)

    def emit(tree: Any, rows: np.ndarray) -> int:
        node = len(feature)
        feature.append(-2.0)
        threshold.append(-2.0)
        left_of.append(-1.0)
        right_of.append(-1.0)
        if tree is None:
            leaves[rows] = node
            return node
        f, thr, tl, tr = tree
        feature[node], threshold[node] = float(f), float(thr)
        left_of[node] = float(emit(tl, rows[x[rows, f] <= thr]))
        right_of[node] = float(emit(tr, rows[x[rows, f] > thr]))
        return node

    all_rows = np.arange(x.shape[0])
    emit(best(all_rows, int(max_depth))[2], all_rows)
    return (np.array(feature), np.array(threshold), np.array(left_of), np.array(right_of), leaves)


@register_selector
class SizeRuleSelector(_MemberSelector):
    """A baseline: a small decision rule on image side and training size names the member.

    See the module docstring. The tree's split thresholds are in ``log2(side)`` and
    ``log10(training examples)``; ``rule()`` prints it.

    Parameters
    ----------
    max_depth:
        Of the tree (2: at most 4 leaves).
    min_samples_leaf:
        Training datasets per leaf at least.
    seed:
        scikit-learn's ``random_state`` (which of equally good splits is taken).
    features:
        ``"size"`` (side and training examples: the trivial baseline) or ``"kind"`` (also the
        number of classes, multi-label, video and colour: :data:`KIND_FEATURES`).
    criterion:
        ``"gini"``: scikit-learn's CART grown on each training dataset's preferred acceptable
        member; ``"alc"``: the cost-sensitive tree of :func:`alc_tree` (splits judged by the
        summed ALC of the leaves' members, each worth more than the seed noise it splits).
    """

    name = "size-rule"
    reads_embeddings = False
    _member_arrays = (*_MemberSelector._member_arrays, "feature", "threshold", "left", "right", "leaf_member",
                      "train_features")

    def __init__(self, max_depth: int = 2, min_samples_leaf: int = 2, seed: int = 0, features: str = "size",
                 criterion: str = "gini"):
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.seed = seed
        self.features = features
        self.criterion = criterion

    def _rule_features(self, what: str, descriptors: Mapping[str, float] | None) -> np.ndarray:
        return _RULE_FEATURES[self._check_choice("features", tuple(_RULE_FEATURES))](self.name, what, descriptors)

    def fit(self, datasets: Sequence[DatasetFeatures], cost: CostMatrix | None = None,
            members: MemberMatrix | None = None) -> SizeRuleSelector:
        from selector.members import acceptable_members, preferred_member

        self._check_int("max_depth")
        self._check_int("min_samples_leaf")
        criterion = self._check_choice("criterion", ("gini", "alc"))
        sub = self._start_member_fit(datasets, cost, members)
        by_name = {d.name: d for d in datasets}
        feats = np.stack([self._rule_features(f"training dataset {t!r}", by_name[t].descriptors)
                          for t in self.columns_])
        mean = {m: float(v) for m, v in zip(self.classes_, self.mean_alc_, strict=True)}
        rows, labels = [], []
        for c, t in enumerate(self.columns_):
            acc = acceptable_members(sub, t)
            if acc:
                rows.append(c)
                labels.append(self.classes_.index(preferred_member(acc, mean, self.classes_)))
        if not rows:
            raise SelectorError(None, f"{self.name}: no training dataset with a measured member")
        self.train_features_ = feats
        x, y = feats[rows], np.asarray(labels)
        if criterion == "alc":
            alc = self.train_alc_[:, rows]
            with np.errstate(all="ignore"):  # an unmeasured member counts as the worst measured one there
                alc = np.where(np.isnan(alc), np.nanmin(alc, axis=0, keepdims=True), alc)
            self.feature_, self.threshold_, self.left_, self.right_, leaves = alc_tree(
                x, alc, np.nan_to_num(self.noise_[rows]), max_depth=int(self.max_depth),
                min_samples_leaf=int(self.min_samples_leaf))
        elif len(set(labels)) > 1:
            import warnings

            from sklearn.tree import DecisionTreeClassifier

            with warnings.catch_warnings():  # few datasets, many labels: scikit-learn suspects a regression
                warnings.simplefilter("ignore", UserWarning)
                tree = DecisionTreeClassifier(max_depth=int(self.max_depth),
                                              min_samples_leaf=int(self.min_samples_leaf),
                                              random_state=int(self.seed)).fit(x, y)
            t = tree.tree_
            self.feature_ = t.feature.astype(np.float64)
            self.threshold_ = t.threshold.astype(np.float64)
            self.left_ = t.children_left.astype(np.float64)
            self.right_ = t.children_right.astype(np.float64)
            leaves = tree.apply(x)
        else:  # one label everywhere: a single leaf
            self.feature_ = np.array([-2.0])
            self.threshold_ = np.array([-2.0])
            self.left_ = self.right_ = np.array([-1.0])
            leaves = np.zeros(len(rows), dtype=int)
        self.leaf_member_ = np.full(len(self.feature_), -1.0)
        cols = np.asarray(rows)
        for node in np.unique(leaves):
            here = cols[leaves == node]
            with np.errstate(all="ignore"):
                leaf_mean = np.nanmean(self.train_alc_[:, here], axis=1)
            leaf_mean = np.where(np.isnan(leaf_mean), -np.inf, leaf_mean)
            best = leaf_mean.max()
            tied = [i for i in range(len(self.classes_)) if leaf_mean[i] >= best - 1e-12]
            self.leaf_member_[node] = float(min(tied, key=lambda i: (-self.mean_alc_[i], i)))
        return self

    def _leaf(self, x: np.ndarray) -> int:
        node = 0
        while self.left_[node] >= 0:
            node = int(self.left_[node] if x[int(self.feature_[node])] <= self.threshold_[node] else self.right_[node])
        return node

    def predict_member(self, query: Query) -> str:
        self._check_query(query)
        return self.classes_[int(self.leaf_member_[self._leaf(self._rule_features("the query", query.descriptors))])]

    def predict_proba(self, query: Query) -> np.ndarray:
        k = self.classes_.index(self.predict_member(query))
        onehot = np.zeros(len(self.classes_))
        onehot[k] = 1.0
        return _vote_proba(onehot, self.mean_alc_)

    def confidence(self, query: Query) -> float:
        return 1.0 - TIE_WEIGHT

    def rule(self) -> str:
        """The tree as nested if/else lines (thresholds back in pixels and examples)."""
        def show(node: int, depth: int) -> list[str]:
            pad = "  " * depth
            if self.left_[node] < 0:
                return [f"{pad}-> {self.classes_[int(self.leaf_member_[node])]}"]
            f, t = int(self.feature_[node]), float(self.threshold_[node])
            shown = (f"side <= {2 ** t:.1f} px", f"training examples <= {10 ** t:.0f}", f"classes <= {2 ** t:.1f}",
                     "not multi-label", "not video", "not colour")[f]
            return ([f"{pad}if {shown}:"] + show(int(self.left_[node]), depth + 1) + [f"{pad}else:"]
                    + show(int(self.right_[node]), depth + 1))
        return "\n".join(show(0, 0))


@register_selector
class KindRuleSelector(SizeRuleSelector):
    """A cost-sensitive decision rule on what kind of data it is (side, training examples,
    classes, multi-label, video, colour) names the member.

    ``size-rule`` with ``features="kind"`` and ``criterion="alc"`` (see :func:`alc_tree`): a
    learned selector, not a trivial baseline; ``rule()`` prints it.
    """

    name = "kind-rule"

    def __init__(self, max_depth: int = 2, min_samples_leaf: int = 2, seed: int = 0, features: str = "kind",
                 criterion: str = "alc"):
        super().__init__(max_depth=max_depth, min_samples_leaf=min_samples_leaf, seed=seed, features=features,
                         criterion=criterion)
