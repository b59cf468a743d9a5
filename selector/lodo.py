"""Leave-one-dataset-out (LODO) selection, scored by the cost matrix.

:func:`leave_one_dataset_out`: for each dataset of the cost matrix, the selector is fitted on
the others (a dataset's derived variants, which share its ``source``, are held out with it, as
ZAP's folds are: Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022), asked
about a labelled training batch of the held-out dataset, and the incumbent it names is scored
by the cost matrix: ALC, regret against the oracle, difference to the single best, share of the
single-best-to-oracle gap closed, Kendall tau between its scores of the candidate incumbents
and their true ALCs. :func:`lodo_folds` makes the folds; :func:`per_dataset` and
:func:`summarize_lodo` average the rows. The records of every query batch are what
:mod:`selector.fallback` chooses its thresholds from.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from selector import measures
from selector.base import Selector, SelectorError
from selector.specs import (
    TIE,
    Progress,
    SelectorSpec,
    as_specs,
    batch_seeds,
    dataset_key,
    group_of,
    is_evaluation_only,
    nanmean,
    outputs_members,
    pick,
)

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix
    from selector.members import MemberMatrix

logger = logging.getLogger(__name__)


@dataclass
class Lodo:
    """What :func:`leave_one_dataset_out` measured: ``rows`` (one per selector, held-out
    dataset and seed; see :func:`leave_one_dataset_out`) and their :func:`summarize_lodo`."""

    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    queries: list[dict[str, Any]] = field(default_factory=list)
    """One record per (selector, held-out dataset, seed, query batch): ``group`` (the fold's),
    ``confidence``, ``novelty`` (NaN for a selector without :meth:`novelty`), ``member`` picked,
    ``alc`` of the pick, ``hit`` (the pick is within the dataset's seed noise of the best
    candidate member) and the fold's ``single_best_alc``: what :func:`selector.fallback.fallback_threshold`
    chooses from."""
    inner_queries: list[dict[str, Any]] = field(default_factory=list)
    """With ``nested_fallback``: the same records from the inner folds, each with the
    ``outer_group`` whose training datasets alone produced it (:func:`selector.fallback.nested_fallback`)."""


def restrict(cost: CostMatrix, sources: Sequence[str], targets: Sequence[str]) -> CostMatrix:
    """A new :class:`CostMatrix` with only these rows and columns (in this order)."""
    from portfolio.cost_matrix import CostMatrix

    ri = [cost.sources.index(s) for s in sources]
    ci = [cost.targets.index(t) for t in targets]
    alc = cost.alc[np.ix_(ri, ci)].copy() if ri and ci else np.full((len(ri), len(ci)), np.nan)
    status = [[cost.status[i][j] for j in ci] for i in ri] if cost.status else CostMatrix.value_statuses(alc)
    return CostMatrix(list(sources), list(targets), alc, status, list(cost.seeds))


def single_best_of(cost: CostMatrix) -> str | None:
    """The row with the best mean ALC over the complete columns (every row measured; ties to
    the earlier row, as :func:`portfolio.cost_matrix.summarize`); without a complete column,
    the best mean over the values there are. None without any value."""
    from portfolio.cost_matrix import summarize

    sb = summarize(cost)["single_best"]
    if sb is not None:
        return str(sb["source"])
    if not len(cost.sources) or np.isnan(cost.alc).all():
        return None
    with np.errstate(all="ignore"):
        means = np.nanmean(np.where(np.isnan(cost.alc), np.nan, cost.alc), axis=1)
    means = np.where(np.isnan(means), -np.inf, means)
    logger.info("no complete column: the single best is the best mean over the measured cells")
    return cost.sources[int(np.argmax(means))]


def expected_random(cost: CostMatrix, candidates: Sequence[str], target: str) -> float:
    """The exact expected ALC on ``target`` of an incumbent drawn uniformly from ``candidates``:
    the mean of their ALCs there (what a random selector earns on average)."""
    vals = [cost.value(c, target) for c in candidates]
    if not vals or any(v is None for v in vals):
        raise SelectorError(None, f"{target}: no ALC for some of {list(candidates)}")
    return float(np.mean(vals))


def gap_closed(alc: float, single_best: float, oracle: float) -> float:
    """(alc - single_best) / (oracle - single_best): 1 is the oracle, 0 the single best,
    negative worse than the single best; NaN when the oracle is the single best (no gap)."""
    gap = oracle - single_best
    if abs(gap) <= TIE:
        return float("nan")
    return float((alc - single_best) / gap)


def kendall_tau(scores: Sequence[float], alcs: Sequence[float]) -> float:
    """Kendall's tau-b between a selector's scores of the candidate incumbents and their true
    ALCs (ties kept as ties); NaN when either is constant or there are fewer than 2."""
    from scipy.stats import kendalltau

    s, a = np.asarray(scores, dtype=float), np.asarray(alcs, dtype=float)
    if len(s) < 2 or np.ptp(s) == 0 or np.ptp(a) == 0:
        return float("nan")
    return float(kendalltau(s, a).statistic)


@dataclass
class _Fold:
    target: str
    group: str
    candidates: list[str]
    """The fold's training datasets: other groups, with features, a row and a member measured on
    the target."""
    train_targets: list[str]
    """The candidates that are columns: what a cost-aware selector sees."""
    members: list[str] = field(default_factory=list)
    """The candidate members: those of the candidates, then the members available without one
    (a fixed configuration, one searched on a dataset outside the held-out groups)."""
    blocked: frozenset[str] = frozenset()
    """The groups held out (the target's, and for an inner fold the outer fold's)."""


def _available(origins: list[str] | None, groups: Mapping[str, str], blocked: Iterable[str]) -> bool:
    if origins is None:  # it stands for the datasets assigned to it
        return False
    if not origins:  # a fixed configuration
        return True
    return any(groups.get(o, o) not in blocked for o in origins)


def lodo_folds(datasets: Sequence[DatasetFeatures], cost: CostMatrix, members: MemberMatrix | None = None, *,
               exclude_groups: Iterable[str] = ()) -> tuple[list[_Fold], dict[str, str]]:
    """The folds: one per dataset with features and a column, outside ``exclude_groups``.
    Candidates are the datasets of other groups (and not of ``exclude_groups``) with features,
    a row of the cost matrix and a member with an ALC on the held-out column: the fold's
    training datasets. Their columns are the fold's training columns (what a cost-aware
    selector sees, and where the single best is judged). Candidate members: see :class:`_Fold`.
    ``members`` None: one member per row (:func:`selector.members.trivial_members`).

    Returns the folds and, per dataset left out, why.
    """
    from selector.members import trivial_members

    mm = members if members is not None else trivial_members(cost)
    groups = {d.name: group_of(d) for d in datasets}
    excluded = frozenset(exclude_groups)
    left_out: dict[str, str] = {}
    folds = []
    for d in datasets:
        g = groups[d.name]
        if g in excluded:
            continue
        if d.name not in mm.targets:
            left_out[d.name] = "not a column of the cost matrix"
            continue
        blocked = excluded | {g}
        cands = [e.name for e in datasets if groups[e.name] not in blocked and e.name in cost.sources]
        unmapped = [c for c in cands if c not in mm.member_of]
        if unmapped:
            logger.info("%s: %s have no member; they are not candidates", d.name, unmapped)
        missing = [c for c in cands if c in mm.member_of and mm.value(mm.member_of[c], d.name) is None]
        if missing:
            logger.info("%s: no ALC of the incumbents of %s on it; they are not candidates", d.name, missing)
        cands = [c for c in cands if c in mm.member_of and c not in missing]
        if len(cands) < 1:
            left_out[d.name] = "no candidate incumbent from another group with an ALC on it"
            continue
        via = list(dict.fromkeys(mm.member_of[c] for c in cands))
        free = [m for m in mm.members if m not in via and mm.value(m, d.name) is not None
                and _available(mm.origins.get(m), groups, blocked)]
        folds.append(_Fold(d.name, g, cands, [c for c in cands if c in mm.targets], via + free, blocked))
    return folds, left_out


def leave_one_dataset_out(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
                          datasets: Sequence[DatasetFeatures], cost: CostMatrix, *, query_size: int = 64,
                          n_queries: int = 10, seed: int = 0, members: MemberMatrix | None = None,
                          nested_fallback: bool = False, inner_queries: int | None = None,
                          progress: Progress | None = None) -> Lodo:
    """Leave-one-dataset-out selection scored by the portfolio's members.

    For each dataset ``h`` with features and a column, every selector is fitted on the
    *candidates*: the other datasets that have a row of the cost matrix and whose member has an
    ALC on ``h``, leaving out every dataset of ``h``'s group (:func:`group_of`: derived variants
    of one source are held out together, so a sibling's incumbent is never a candidate).
    Selectors that need the cost matrix get it restricted to the candidates' rows and columns;
    an evaluation-only selector (the oracle) also gets ``h``'s column. Selectors whose outputs
    are members (:func:`outputs_members`) also get the member matrix restricted to the fold's
    candidate members and training columns (``fit(datasets, cost, members=...)``).
    A pick is worth its member's ALC on ``h``: a dataset selector's pick is the training dataset
    whose member (configuration) is used (the seed paper's design: the nearest dataset, then its
    configuration), a member selector's pick is the member. The single best of the fold is the
    candidate member with the best mean ALC over the candidates' columns (:func:`single_best_of`);
    the oracle the best candidate member on ``h``; the *acceptable* members those within ``h``'s
    seed noise of the oracle (:func:`selector.members.acceptable_members`).
    The selector is asked about ``n_queries`` random labelled batches of ``query_size``
    samples of ``h``'s training split (a new dataset's training data is labelled); each pick
    is scored and the figures are averaged over the batches. Folds fitted on the same training
    datasets, columns and members (siblings of one group, mostly) share one fit of a registered
    selector (:class:`_SharedFits`), and the measures reuse the probes of training datasets fitted
    before (:func:`selector.measures.fit_softmax_probe`'s ``reuse``): the rows are those of a fit
    per fold, ``fit_seconds`` that of one cold fit.

    Parameters
    ----------
    selectors:
        What to evaluate (see :func:`as_specs`).
    datasets:
        Features of the datasets (their ``source`` gives the groups).
    cost:
        The cost matrix: rows are training datasets (each standing for its configuration),
        columns datasets.
    query_size, n_queries:
        Samples per query batch and batches per held-out dataset.
    seed:
        Seeds the batches (and a selector's ``seed`` hyperparameter where not given).
    members:
        The member view (:func:`selector.member_views.load_members`); None: one member per row of
        ``cost`` (the figures of the seed design, as before members existed).
    nested_fallback:
        Also run, for every selector that reads the query and is not evaluation-only, the inner
        folds of each outer fold (the outer fold's group held out as well), recording what
        :func:`selector.fallback.nested_fallback` chooses thresholds from: ``Lodo.inner_queries``. Fits whose
        inner training datasets coincide are shared (an inner fold of outer group ``a`` holding
        out ``b`` is fitted on what the inner fold of ``b`` holding out ``a`` is).
    inner_queries:
        Query batches per inner held-out dataset (default ``n_queries``).
    progress:
        See :data:`Progress` (stage ``leave-one-dataset-out``, one step per fold; ``nested
        fallback <label>``, one step per inner fit).

    Returns
    -------
    Lodo
        ``rows``: per (selector, held-out dataset): ``selector``, ``dataset``, ``group``,
        ``seed``, ``n_candidates`` (training datasets), ``n_members`` (candidate members),
        ``selected`` (the most frequent pick: a dataset, or a member), ``selected_member``,
        ``selected_group`` (a dataset pick's group), ``distinct_picks``, ``alc`` (mean ALC of
        the picks), ``hit_rate`` (share of picks among the acceptable members),
        ``alc_expected`` (mean over the batches of the ALC expected under the selector's
        probabilities, sum of p_i * ALC_i), ``oracle``, ``oracle_alc``, ``acceptable``
        (``;``-joined), ``n_acceptable``, ``noise`` (the dataset's seed noise),
        ``single_best``, ``single_best_alc``, ``all_data_single_best`` and
        ``all_data_single_best_alc`` (the member with the best mean over every dataset, this one
        included: the shipped single best, an in-sample reference), ``expected_random_alc`` (a
        uniformly random candidate dataset's member), ``regret`` (oracle - alc), ``delta_single_best``
        (alc - single best), ``gap_closed`` (:func:`gap_closed`), ``kendall_tau`` (mean over
        the batches, :func:`kendall_tau`), ``confidence`` (mean), ``fit_seconds``,
        ``predict_seconds`` (per batch), ``queries``, ``error`` (None, or why the selector
        failed on this fold: its figures are then NaN). ``summary``: :func:`summarize_lodo`.
    """
    from selector.members import acceptable_members, trivial_members

    specs = as_specs(selectors)
    if query_size < 1 or n_queries < 1:
        raise SelectorError(None, f"query_size={query_size}, n_queries={n_queries}: expected >= 1")
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise SelectorError(None, f"datasets named twice: {sorted(names)}")
    mm = members if members is not None else trivial_members(cost)
    folds, left_out = lodo_folds(datasets, cost, mm)
    for name, why in left_out.items():
        logger.warning("leave-one-dataset-out: %s left out: %s", name, why)
    if not folds:
        raise SelectorError(None, "no dataset to hold out: the features and the cost matrix share no dataset "
                                  "with a candidate incumbent from another group")
    by_name = {d.name: d for d in datasets}
    rows: list[dict[str, Any]] = []
    query_rows: list[dict[str, Any]] = []
    query_cache: dict[tuple[str, int], list[Query]] = {}

    def queries_of(h: str, n: int) -> list[Query]:
        if (h, n) not in query_cache:
            q_seeds = batch_seeds(seed, dataset_key(h), 11, n=n)
            query_cache[(h, n)] = [by_name[h].query(query_size, split="train", seed=s) for s in q_seeds]
        return query_cache[(h, n)]

    overall = _all_data_single_best(mm)
    fits = _SharedFits(folds)
    if progress is not None:
        progress("leave-one-dataset-out", 0, len(folds))
    for k, fold in enumerate(folds):
        h = fold.target
        true = np.array([mm.value(m, h) for m in fold.members], dtype=float)
        oracle_i = int(np.argmax(true))
        sb, sb_alc = _fold_single_best(mm, fold)
        accept = acceptable_members(mm, h, fold.members)
        base = {"dataset": h, "group": fold.group, "seed": int(seed), "n_candidates": len(fold.candidates),
                "n_members": len(fold.members), "oracle": fold.members[oracle_i], "oracle_alc": float(true[oracle_i]),
                "acceptable": ";".join(accept), "n_acceptable": len(accept), "noise": mm.noise_of(h),
                "single_best": sb, "single_best_alc": sb_alc, "all_data_single_best": overall,
                "all_data_single_best_alc": float(mm.value(overall, h)) if overall else float("nan"),
                "expected_random_alc": float(np.mean([mm.value(mm.member_of[c], h) for c in fold.candidates]))}
        queries = queries_of(h, n_queries)
        train = [by_name[c] for c in fold.candidates]
        for spec in specs:
            row = {"selector": spec.label, **base,
                   **_lodo_one(spec, train, queries, cost, fold, seed, by_name, mm, set(accept), fits)}
            for i, rec in enumerate(row.pop("query_records", None) or []):
                query_rows.append({"selector": spec.label, "dataset": h, "group": fold.group, "seed": int(seed),
                                   "query": i, **rec, "single_best_alc": sb_alc})
            a = row["alc"]
            row.update(regret=base["oracle_alc"] - a, delta_single_best=a - sb_alc,
                       gap_closed=gap_closed(a, sb_alc, base["oracle_alc"]) if not np.isnan(a) else float("nan"))
            rows.append(row)
        fits.done(fold)
        if progress is not None:
            progress("leave-one-dataset-out", k + 1, len(folds))
    inner: list[dict[str, Any]] = []
    if nested_fallback:
        n_inner = int(inner_queries or n_queries)
        if n_inner < 1:
            raise SelectorError(None, f"inner_queries={inner_queries}: expected >= 1")
        inner = _inner_records(specs, datasets, cost, mm, folds, lambda h: queries_of(h, n_inner), seed, by_name,
                               progress)
    return Lodo(rows, summarize_lodo(rows), query_rows, inner)


def _fold_single_best(mm: MemberMatrix, fold: _Fold) -> tuple[str, float]:
    """The fold's single best member (best mean over its training columns) and its ALC on the target."""
    from selector.member_views import member_cost

    sb = single_best_of(member_cost(mm.restrict(fold.members, fold.train_targets)))
    if sb is None:  # no training column with a value: judge the single best on nothing -> the first
        sb = fold.members[0]
        logger.warning("%s: no ALC of the candidates outside its group; single best = %s", fold.target, sb)
    return sb, float(mm.value(sb, fold.target))


def _all_data_single_best(mm: MemberMatrix) -> str | None:
    """The member with the best mean ALC over every dataset, the held-out ones included: the
    single best a build ships (in-sample, so not a leave-one-dataset-out figure; a reference the
    fold's own single best can fall below where the members' means lie within noise)."""
    from selector.member_views import member_cost

    return single_best_of(member_cost(mm))


def _fit(spec: SelectorSpec, train: Sequence[DatasetFeatures], cost: CostMatrix, fold: _Fold, seed: int,
         mm: MemberMatrix) -> Selector:
    """``spec``'s selector fitted on the fold's training datasets (see :func:`leave_one_dataset_out`)."""
    sel = spec.make(seed)
    h = fold.target
    extra = [h] if is_evaluation_only(sel) and h not in fold.train_targets else []
    cost_targets = [t for t in fold.train_targets + extra if t in cost.targets]
    if outputs_members(sel):
        sel.fit(train, restrict(cost, fold.candidates, cost_targets),
                members=mm.restrict(fold.members, fold.train_targets + extra))
        expected = fold.members
    else:
        if sel.needs_cost:
            sel.fit(train, restrict(cost, fold.candidates, cost_targets))
        else:
            sel.fit(train)
        expected = fold.candidates
    classes = list(sel.classes_)
    if sorted(classes) != sorted(expected):
        raise SelectorError(None, f"{spec.label}: fitted classes {classes} are not the candidates {expected}")
    return sel


def _fit_key(fold: _Fold) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """What a fold's fit reads besides the selector and the seed (see :func:`_fit`): its training
    datasets, training columns and candidate members (and, for an evaluation-only selector alone,
    the target's column: see :func:`_reusable`)."""
    return tuple(fold.candidates), tuple(fold.train_targets), tuple(fold.members)


def _reusable(spec: SelectorSpec, sel: Selector) -> bool:
    """Whether one fit of ``spec`` may answer every fold with its training set.

    A registered selector fits deterministically given its seed and its predictions leave it as
    they found it (``tests/test_selector/test_lodo_reuse.py`` checks every registered one), so
    one fit per training set gives the rows a fit per fold gives. Not reused: an evaluation-only
    selector (its fit reads the held-out dataset's column, so no two folds share one) and a
    selector built by ``spec.factory`` (code not checked there: the tests' ``test-uniform``, for
    one, draws its picks from a generator made at fit, so a second fold would continue the
    first's draws).
    """
    return spec.factory is None and not is_evaluation_only(sel)


class _SharedFits:
    """Fitted selectors shared by the folds whose training sets coincide (:func:`_fit_key`).

    Folds of one group holding several datasets (derived variants of one source) are usually
    fitted on the same datasets, columns and members: the first fits, the others reuse the fit
    with the seconds it took (``fit_seconds`` stays the time of one fit). A fit is kept only while
    a later fold has its key, and dropped after the last (:meth:`done`); a fit that fails is not
    kept (the next fold tries again, and fails as the first did).
    """

    def __init__(self, folds: Sequence[_Fold]):
        self._left = Counter(_fit_key(f) for f in folds)
        self._fits: dict[tuple[str, int, tuple[Any, ...]], tuple[Selector, float]] = {}

    def fit(self, spec: SelectorSpec, train: Sequence[DatasetFeatures], cost: CostMatrix, fold: _Fold,
            seed: int, mm: MemberMatrix) -> tuple[Selector, float]:
        """``spec`` fitted on the fold (:func:`_fit`) and the seconds that fit took."""
        key = (spec.label, int(seed), _fit_key(fold))  # labels differ between specs (as_specs)
        if key in self._fits:
            return self._fits[key]
        saved, t0 = measures.probe_seconds_saved(), time.perf_counter()
        sel = _fit(spec, train, cost, fold, seed, mm)
        # a cold fit's seconds: with those of the probes the measures' cache answered
        seconds = time.perf_counter() - t0 + measures.probe_seconds_saved() - saved
        if self._left[key[2]] > 1 and _reusable(spec, sel):
            self._fits[key] = (sel, seconds)
        return sel, seconds

    def done(self, fold: _Fold) -> None:
        """The fold is measured: drop the fits no later fold uses."""
        k = _fit_key(fold)
        self._left[k] -= 1
        if self._left[k] <= 0:
            for key in [key for key in self._fits if key[2] == k]:
                del self._fits[key]


def _ask(sel: Selector, label: str, queries: Sequence[Query], fold: _Fold, mm: MemberMatrix,
         accept: set[str]) -> dict[str, Any]:
    """The fitted ``sel`` asked about ``queries`` of the fold's target: picks, their members and
    ALCs, and the per-query figures."""
    h = fold.target
    nan = float("nan")
    classes = list(sel.classes_)
    as_member = (lambda c: c) if outputs_members(sel) else (lambda c: mm.member_of[c])
    alc_of = np.array([mm.value(as_member(c), h) for c in classes], dtype=float)
    picks, members, alcs, expected, taus, confs, secs, novelties = [], [], [], [], [], [], [], []
    novelty = getattr(sel, "novelty", None)
    for q in queries:
        t1 = time.perf_counter()
        p = np.asarray(sel.predict_proba(q), dtype=float)
        chosen = pick(sel, q, p)
        secs.append(time.perf_counter() - t1)
        if p.shape != (len(classes),) or not np.isfinite(p).all():
            raise SelectorError(None, f"{label}: predict_proba returned shape {p.shape} with "
                                      f"{int((~np.isfinite(p)).sum())} non-finite values; expected "
                                      f"{len(classes)} finite scores")
        picks.append(chosen)
        members.append(as_member(chosen))
        alcs.append(float(mm.value(members[-1], h)))
        w = p / p.sum() if p.sum() > 0 else np.full(len(p), 1.0 / len(p))
        expected.append(float(w @ alc_of))
        taus.append(kendall_tau(p, alc_of))
        confs.append(sel.confidence_from(q, p))
        novelties.append(float(novelty(q)) if callable(novelty) else nan)
    hits = [float(m in accept) for m in members]
    return {"picks": picks, "members": members, "alcs": alcs, "expected": expected, "taus": taus, "confs": confs,
            "secs": secs, "hits": hits,
            "records": [{"confidence": c, "novelty": v, "member": m, "alc": a, "hit": x}
                        for c, v, m, a, x in zip(confs, novelties, members, alcs, hits, strict=True)]}


def _lodo_one(spec: SelectorSpec, train: Sequence[DatasetFeatures], queries: Sequence[Query], cost: CostMatrix,
              fold: _Fold, seed: int, by_name: Mapping[str, DatasetFeatures], mm: MemberMatrix,
              accept: set[str], fits: _SharedFits) -> dict[str, Any]:
    """One selector on one fold: its figures (NaN with ``error`` when it raises); the fit from
    ``fits`` (shared with the folds of the same training set)."""
    h = fold.target
    nan = float("nan")
    out: dict[str, Any] = {"selected": None, "selected_member": None, "selected_group": None, "distinct_picks": 0,
                           "alc": nan, "hit_rate": nan, "alc_expected": nan, "kendall_tau": nan, "confidence": nan,
                           "fit_seconds": nan, "predict_seconds": nan, "queries": len(queries), "error": None}
    try:
        sel, out["fit_seconds"] = fits.fit(spec, train, cost, fold, seed, mm)
        got = _ask(sel, spec.label, queries, fold, mm, accept)
        most = Counter(got["picks"]).most_common(1)[0][0]
        with np.errstate(all="ignore"):
            tau = float(np.nanmean(got["taus"])) if not np.isnan(got["taus"]).all() else nan
        out.update(selected=most, selected_member=Counter(got["members"]).most_common(1)[0][0],
                   selected_group=None if outputs_members(sel) else group_of(by_name[most]),
                   distinct_picks=len(set(got["picks"])), alc=float(np.mean(got["alcs"])),
                   hit_rate=float(np.mean(got["hits"])), alc_expected=float(np.mean(got["expected"])),
                   kendall_tau=tau, confidence=float(np.mean(got["confs"])),
                   predict_seconds=float(np.mean(got["secs"])), query_records=got["records"])
    except Exception as exc:  # one broken selector never ends the comparison
        out["error"] = f"{type(exc).__name__}: {exc}"
        logger.warning("leave-one-dataset-out: %s on %s failed: %s", spec.label, h, out["error"],
                       exc_info=not isinstance(exc, SelectorError))
    return out


def _inner_records(specs: Sequence[SelectorSpec], datasets: Sequence[DatasetFeatures], cost: CostMatrix,
                   mm: MemberMatrix, folds: Sequence[_Fold], queries_of: Callable[[str], list[Query]], seed: int,
                   by_name: Mapping[str, DatasetFeatures], progress: Progress | None) -> list[dict[str, Any]]:
    """The query records of every outer fold's inner folds (see :func:`leave_one_dataset_out`)."""
    from selector.members import acceptable_members

    outer_groups = list(dict.fromkeys(f.group for f in folds))
    inner_folds = {g: lodo_folds(datasets, cost, mm, exclude_groups=[g])[0] for g in outer_groups}
    jobs: dict[tuple[Any, ...], list[tuple[str, _Fold]]] = {}
    for g, fs in inner_folds.items():
        for f in fs:
            jobs.setdefault(_fit_key(f), []).append((g, f))
    out: list[dict[str, Any]] = []
    for spec in specs:
        try:
            probe = spec.make(seed)
        except SelectorError as exc:
            logger.warning("nested fallback: %s skipped: %s", spec.label, exc)
            continue
        if is_evaluation_only(probe) or not probe.needs_query:
            continue
        stage = f"nested fallback {spec.label}"
        if progress is not None:
            progress(stage, 0, len(jobs))
        failed = 0
        for n, items in enumerate(jobs.values()):
            first = items[0][1]
            try:
                sel = _fit(spec, [by_name[c] for c in first.candidates], cost, first, seed, mm)
            except Exception as exc:  # a fold it cannot fit gives no record; the others go on
                failed += 1
                logger.info("nested fallback: %s cannot be fitted without %s: %s", spec.label,
                            sorted(first.blocked), exc)
                continue
            for g, f in items:
                _, sb_alc = _fold_single_best(mm, f)
                try:
                    got = _ask(sel, spec.label, queries_of(f.target), f, mm, set(acceptable_members(mm, f.target,
                                                                                                   f.members)))
                except Exception as exc:
                    failed += 1
                    logger.info("nested fallback: %s on %s (outer %s): %s", spec.label, f.target, g, exc)
                    continue
                for i, rec in enumerate(got["records"]):
                    out.append({"selector": spec.label, "outer_group": g, "dataset": f.target, "group": f.group,
                                "seed": int(seed), "query": i, **rec, "single_best_alc": sb_alc})
            if progress is not None:
                progress(stage, n + 1, len(jobs))
        if failed:
            logger.warning("nested fallback: %s failed on %d inner fits or folds (they give no records)", spec.label,
                           failed)
    return out


def per_dataset(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows averaged over seeds: one per (selector, held-out dataset), with regret, delta
    and gap closed computed again from the averaged ALCs."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["selector"], r["dataset"])].append(r)
    out = []
    for (label, ds), rs in groups.items():
        ok = [r for r in rs if not r.get("error")]
        first = rs[0]
        row: dict[str, Any] = {"selector": label, "dataset": ds, "group": first["group"], "seeds": len(rs),
                               "failed": len(rs) - len(ok), "n_candidates": first["n_candidates"],
                               "n_members": first.get("n_members", first["n_candidates"]),
                               "error": next((r["error"] for r in rs if r.get("error")), None)}
        for key in ("oracle_alc", "single_best_alc", "expected_random_alc"):
            row[key] = float(np.mean([r[key] for r in rs]))
        # rows kept by an older comparison (selector compare --parts) have no all-data single best
        row["all_data_single_best_alc"] = float(np.mean([r.get("all_data_single_best_alc", np.nan) for r in rs]))
        row["oracle"], row["single_best"] = first["oracle"], first["single_best"]
        row["all_data_single_best"] = first.get("all_data_single_best")
        row["acceptable"] = first.get("acceptable") or first["oracle"]
        row["noise"] = first.get("noise", 0.0)
        picks = Counter(r["selected"] for r in ok)
        row["selected"] = picks.most_common(1)[0][0] if picks else None
        row["selected_group"] = next((r["selected_group"] for r in ok if r["selected"] == row["selected"]), None)
        members = Counter(r.get("selected_member", r["selected"]) for r in ok)
        row["selected_member"] = members.most_common(1)[0][0] if members else None
        for key in ("alc", "alc_expected", "kendall_tau", "confidence", "fit_seconds", "predict_seconds"):
            row[key] = nanmean(r[key] for r in ok)
        row["hit_rate"] = nanmean(r.get("hit_rate", float("nan")) for r in ok)
        a, o, s = row["alc"], row["oracle_alc"], row["single_best_alc"]
        row["regret"] = o - a
        row["delta_single_best"] = a - s
        row["gap_closed"] = gap_closed(a, s, o) if not np.isnan(a) else float("nan")
        out.append(row)
    return out


def summarize_lodo(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Means per selector (over held-out datasets, each weighted equally) and per dataset.

    Returns
    -------
    dict
        ``selectors`` (in the rows' order), ``datasets``, ``per_selector`` (label ->
        ``mean_alc``, ``mean_alc_expected``, ``mean_regret``, ``mean_delta_single_best``,
        ``mean_gap_closed`` (over the datasets where the gap is not 0), ``gap_undefined``
        (datasets where it is), ``mean_kendall_tau`` (over the defined ones), ``tau_undefined``,
        ``mean_confidence``, ``mean_hit_rate`` (share of picks among the acceptable members),
        ``fit_seconds``, ``predict_seconds``, ``datasets``, ``failed``, ``errors``),
        ``per_dataset`` (dataset -> ``group``, ``n_candidates``, ``n_members``, ``oracle``,
        ``oracle_alc``, ``acceptable``, ``noise``, ``single_best``, ``single_best_alc``,
        ``expected_random_alc``, ``alc``, ``regret``, ``selected`` and ``selected_member`` per
        selector, and ``all_data_single_best`` with its ``all_data_single_best_alc``),
        ``oracle_mean_alc``, ``single_best_mean_alc``, ``expected_random_alc`` (the exact mean
        ALC of a uniformly random pick), ``all_data_single_best_mean_alc`` (the member with the
        best mean over every dataset, in-sample: the single best a build ships), ``seeds``.
    """
    table = per_dataset(rows)
    labels = list(dict.fromkeys(r["selector"] for r in rows))
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    per_sel: dict[str, Any] = {}
    for label in labels:
        rs = [r for r in table if r["selector"] == label]
        ok = [r for r in rs if not np.isnan(r["alc"])]
        gaps = [r["gap_closed"] for r in ok]
        taus = [r["kendall_tau"] for r in ok]
        per_sel[label] = {
            "mean_alc": nanmean(r["alc"] for r in ok), "mean_alc_expected": nanmean(r["alc_expected"] for r in ok),
            "mean_regret": nanmean(r["regret"] for r in ok),
            "mean_delta_single_best": nanmean(r["delta_single_best"] for r in ok),
            "mean_gap_closed": nanmean(gaps), "gap_undefined": int(sum(np.isnan(g) for g in gaps)),
            "mean_kendall_tau": nanmean(taus), "tau_undefined": int(sum(np.isnan(t) for t in taus)),
            "mean_confidence": nanmean(r["confidence"] for r in ok),
            "mean_hit_rate": nanmean(r.get("hit_rate", float("nan")) for r in ok),
            "fit_seconds": nanmean(r["fit_seconds"] for r in ok),
            "predict_seconds": nanmean(r["predict_seconds"] for r in ok),
            "datasets": len(ok), "failed": len(rs) - len(ok),
            "errors": {r["dataset"]: r["error"] for r in rs if r["error"]}}
    per_ds: dict[str, Any] = {}
    for ds in datasets:
        rs = [r for r in table if r["dataset"] == ds]
        f = rs[0]
        per_ds[ds] = {"group": f["group"], "n_candidates": f["n_candidates"], "n_members": f["n_members"],
                      "oracle": f["oracle"], "oracle_alc": f["oracle_alc"], "acceptable": f["acceptable"],
                      "noise": f["noise"], "single_best": f["single_best"],
                      "single_best_alc": f["single_best_alc"], "expected_random_alc": f["expected_random_alc"],
                      "all_data_single_best": f["all_data_single_best"],
                      "all_data_single_best_alc": f["all_data_single_best_alc"],
                      "alc": {r["selector"]: r["alc"] for r in rs}, "regret": {r["selector"]: r["regret"] for r in rs},
                      "selected": {r["selector"]: r["selected"] for r in rs},
                      "selected_member": {r["selector"]: r["selected_member"] for r in rs}}
    return {"selectors": labels, "datasets": datasets, "per_selector": per_sel, "per_dataset": per_ds,
            "oracle_mean_alc": nanmean(v["oracle_alc"] for v in per_ds.values()),
            "single_best_mean_alc": nanmean(v["single_best_alc"] for v in per_ds.values()),
            "expected_random_alc": nanmean(v["expected_random_alc"] for v in per_ds.values()),
            "all_data_single_best_mean_alc": nanmean(v["all_data_single_best_alc"] for v in per_ds.values()),
            "seeds": sorted({int(r["seed"]) for r in rows})}
