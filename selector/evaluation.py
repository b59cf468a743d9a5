"""Evaluating selectors: dataset identification, leave-one-dataset-out selection, statistics, cost.

Four measurements, each a library function whose rows the comparison report
(:mod:`selector.report`) turns into tables and pictures:

- :func:`identification_accuracy`: fitted on every dataset's training embeddings, how often
  a selector names the right dataset from a batch of that dataset's held-out *test*
  embeddings, for batch sizes 1 to 1024 (the figure of the Freiburg AutoDL 2019 paper:
  Liu et al., "Winning solutions and post-challenge analyses of the ChaLearn AutoDL
  challenge 2019", TPAMI 2021, section on the meta-learned selector).
- :func:`leave_one_dataset_out`: for each dataset of the cost matrix, the selector is fitted
  on the others (a dataset's derived variants, which share its ``source``, are held out with
  it, as ZAP's folds are: Ozturk et al., "Zero-shot AutoML with pretrained models", ICML
  2022), asked about a labelled training batch of the held-out dataset, and the incumbent it
  names is scored by the cost matrix: ALC, regret against the oracle, difference to the
  single best, share of the single-best-to-oracle gap closed, Kendall tau between its
  scores of the candidate incumbents and their true ALCs.
- :func:`statistics`: mean ranks across datasets, a Friedman test with the Nemenyi critical
  difference (``autorank``, Demsar 2006) and pairwise Wilcoxon signed-rank tests with Holm's
  correction.
- :func:`selection_cost`: seconds to embed and select per batch size on this machine, and
  the ALC a first prediction delayed by that long can lose under a protocol
  (:func:`alc_delay_bound`).

Selectors are given as :class:`SelectorSpec` (a registry name, its hyperparameters and the
label the report uses), or as anything :func:`as_specs` turns into one (``"name"``,
``("name", {params})``).
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from selector.base import Selector, SelectorError, make_selector

if TYPE_CHECKING:
    from autodl.protocol import Protocol
    from portfolio.cost_matrix import CostMatrix
    from selector.members import MemberMatrix

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES: tuple[int, ...] = tuple(2 ** k for k in range(11))
"""1, 2, 4, ..., 1024: the identification figure's batch sizes."""

EVALUATION_ONLY: frozenset[str] = frozenset({"oracle"})
"""Registry names of selectors that look at the held-out dataset's own cost-matrix column
(a class may also say so with a class attribute ``evaluation_only = True``)."""

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: called with ``done = 0`` before a stage, then per step."""

_TIE = 1e-12


# --- selectors as data ------------------------------------------------------------------------
@dataclass(frozen=True)
class SelectorSpec:
    """A selector to evaluate: its registry name, hyperparameters and the label reports use.

    Attributes
    ----------
    name:
        Registry name (:func:`selector.base.list_selectors`).
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


def group_of(ds: DatasetFeatures) -> str:
    """The fold a dataset belongs to: its ``source`` (derived variants share it), else its name."""
    return ds.source or ds.name


def pick(sel: Selector, query: Query, p: np.ndarray) -> str:
    """The selector's pick given its ``p = predict_proba(query)``: the argmax, without a second
    ``predict_proba``, unless the selector has its own ``predict`` (e.g. a random draw)."""
    if type(sel).predict is Selector.predict:
        return sel.classes_[int(np.argmax(p))]
    return sel.predict(query)


def _confidence(sel: Selector, query: Query, p: np.ndarray) -> float:
    if type(sel).confidence is Selector.confidence:
        return float(np.max(p))
    return float(sel.confidence(query))


def _key(name: str) -> int:
    """A stable number for a dataset name (batches depend on the name, not on list order)."""
    return zlib.crc32(name.encode())


def _seeds(seed: int, *key: int, n: int) -> list[int]:
    return [int(s) for s in np.random.default_rng([int(seed), *map(int, key)]).integers(0, 2 ** 31 - 1, n)]


def _check_batch_sizes(batch_sizes: Sequence[int]) -> list[int]:
    out = [int(b) for b in batch_sizes]
    if not out or any(b < 1 for b in out):
        raise SelectorError(None, f"batch sizes {list(batch_sizes)!r}: expected integers >= 1")
    return sorted(set(out))


# --- identification ---------------------------------------------------------------------------
@dataclass
class Identification:
    """What :func:`identification_accuracy` measured.

    Attributes
    ----------
    rows:
        One per (selector, batch size, dataset): ``selector``, ``dataset``, ``batch_size``,
        ``batch_effective`` (the batch actually drawn: at most the samples there are),
        ``batches``, ``correct``, ``accuracy``, ``split`` (``test``, or ``train-holdout`` for
        selectors that need labels), ``classes`` (datasets it chose among), ``failed`` (batches
        it could not answer, e.g. a batch of one class for a transferability measure: they
        count as wrong; NaN accuracy when all failed), ``error`` (the first such error), ``seed``.
    table:
        One per (selector, batch size): ``accuracy`` (the mean over datasets, each dataset
        weighted equally), ``datasets``, ``chance`` (1 / the datasets it chose among), ``split``,
        ``failed_batches`` and ``batches``.
    skipped:
        Selector label -> why it was not evaluated.
    """

    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)


def _holdout_split(datasets: Sequence[DatasetFeatures], seed: int,
                   fraction: float = 0.5) -> tuple[list[DatasetFeatures], list[DatasetFeatures]]:
    """Each dataset's training embeddings split at random into a fit part and a query part."""
    fit, pool = [], []
    for d in datasets:
        n = len(d.train)
        if n < 2:
            raise SelectorError(None, f"{d.name}: {n} training embedding(s); a held-out query part needs 2 or more")
        perm = np.random.default_rng([int(seed), _key(d.name), 7]).permutation(n)
        k = min(max(1, round(n * fraction)), n - 1)
        a, b = np.sort(perm[:k]), np.sort(perm[k:])
        fit.append(DatasetFeatures(d.name, d.train[a], d.train_labels[a], None, dict(d.descriptors), d.source,
                                   dict(d.card)))
        pool.append(DatasetFeatures(d.name, d.train[b], d.train_labels[b], None, dict(d.descriptors), d.source,
                                    dict(d.card)))
    return fit, pool


def identification_accuracy(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
                            datasets: Sequence[DatasetFeatures], *,
                            batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 10,
                            split: str = "test", seed: int = 0, cost: CostMatrix | None = None,
                            progress: Progress | None = None) -> Identification:
    """Accuracy of naming the right dataset from batches of its held-out samples.

    Every selector is fitted once on all ``datasets`` (their training embeddings), then asked
    about ``n_batches`` random batches of each dataset's ``split`` embeddings per batch size;
    a batch is right when the selector names the dataset it came from.

    Protocol details:

    - A batch size larger than a dataset's held-out samples takes all of them (one batch,
      ``batch_effective`` says how many): a batch drawn with replacement would only repeat
      samples the selector has already seen in it.
    - Selectors that need labels (``needs_labels``: the transferability measures) cannot be
      asked about the unlabelled test split. For them each dataset's training embeddings are
      split at random in two halves: the selector is fitted on one, the batches are drawn
      from the other (``split = "train-holdout"`` in the rows). Their accuracies are
      therefore measured on half the training data and on training-split samples: compare
      them with each other rather than with the other selectors'.
    - Evaluation-only selectors (the oracle) and selectors that name members rather than
      datasets are skipped, and selectors that need the cost matrix are skipped when ``cost``
      is None; :attr:`Identification.skipped` says why.
    - A batch the selector cannot answer (it raises: e.g. a transferability measure given a
      batch of one class) counts as wrong and is counted in ``failed``; a selector whose fit
      or every batch fails is skipped with the error (logged); the others go on.

    Parameters
    ----------
    selectors:
        What to evaluate (see :func:`as_specs`).
    datasets:
        The training datasets' features; every one with ``split`` embeddings is queried.
    batch_sizes:
        Samples per batch.
    n_batches:
        Random batches per dataset and batch size.
    split:
        ``test`` (held out, the default) or ``train`` (the samples the selector was fitted on).
    seed:
        Seeds the batches (and a selector's ``seed`` hyperparameter where not given).
    cost:
        The cost matrix, for selectors that need it (``needs_cost``).
    progress:
        See :data:`Progress` (stage ``identification <label>``).

    Returns
    -------
    Identification
    """
    specs = as_specs(selectors)
    sizes = _check_batch_sizes(batch_sizes)
    if split not in ("train", "test"):
        raise SelectorError(None, f"split={split!r}: expected 'train' or 'test'")
    if n_batches < 1:
        raise SelectorError(None, f"n_batches={n_batches}: expected >= 1")
    if len(datasets) < 2:
        raise SelectorError(None, f"identification needs 2 or more datasets, got {len(datasets)}")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            sel = spec.make(seed)
        except SelectorError as exc:
            skipped[spec.label] = str(exc)
            logger.warning("identification: %s skipped: %s", spec.label, exc)
            continue
        if is_evaluation_only(sel):
            skipped[spec.label] = "evaluation only (it looks at the true cost-matrix column): nothing to identify"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        if outputs_members(sel):
            skipped[spec.label] = "it names portfolio members (configurations), not datasets: nothing to identify"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        if sel.needs_cost and cost is None:
            skipped[spec.label] = "needs the cost matrix and none was given"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        usable = list(datasets)
        if sel.needs_cost:
            usable = [d for d in datasets if d.name in cost.sources]
            if len(usable) < len(datasets):
                logger.info("identification: %s is fitted on the %d datasets with an incumbent", spec.label,
                            len(usable))
        if sel.needs_labels:
            fit_sets, pools = _holdout_split(usable, seed)
            q_split, label_split = "train", "train-holdout"
        else:
            fit_sets, pools, q_split, label_split = usable, list(usable), split, split
            missing = [d.name for d in pools if (d.test if split == "test" else d.train) is None]
            if missing:
                logger.warning("identification: no %s embeddings of %s; left out", split, missing)
            pools = [d for d in pools if (d.test if split == "test" else d.train) is not None]
        total = len(pools) * len(sizes)
        if progress is not None:
            progress(f"identification {spec.label}", 0, total)
        try:
            sel.fit(fit_sets, cost) if sel.needs_cost else sel.fit(fit_sets)
        except Exception as exc:  # one broken selector never ends the comparison
            skipped[spec.label] = f"fit: {type(exc).__name__}: {exc}"
            logger.warning("identification: %s failed: %s", spec.label, skipped[spec.label], exc_info=True)
            continue
        done = 0
        mine: list[dict[str, Any]] = []
        for d in pools:
            available = len(d.test if q_split == "test" else d.train)
            for b in sizes:
                eff = min(b, available)
                seeds = _seeds(seed, _key(d.name), b, n=1 if eff == available else n_batches)
                correct = failed = 0
                error = None
                for s in seeds:
                    q = d.query(eff, split=q_split, seed=s)
                    try:
                        p = np.asarray(sel.predict_proba(q), dtype=float)
                        chosen = pick(sel, q, p)
                    except Exception as exc:  # a batch it cannot answer (one class for a measure): not named
                        failed += 1
                        error = error or f"{type(exc).__name__}: {exc}"
                        continue
                    correct += int(chosen == d.name)
                mine.append({"selector": spec.label, "dataset": d.name, "batch_size": b, "batch_effective": eff,
                             "batches": len(seeds), "correct": correct,
                             "accuracy": correct / len(seeds) if failed < len(seeds) else float("nan"),
                             "failed": failed, "error": error, "split": label_split, "classes": len(fit_sets),
                             "seed": int(seed)})
                done += 1
                if progress is not None:
                    progress(f"identification {spec.label}", done, total)
        if mine and all(r["failed"] == r["batches"] for r in mine):
            skipped[spec.label] = f"every batch failed: {mine[0]['error']}"
            logger.warning("identification: %s failed: %s", spec.label, skipped[spec.label])
            continue
        bad = [r for r in mine if r["failed"]]
        if bad:
            logger.warning("identification: %s could not answer %d of %d batches (e.g. %s at batch size %d: %s); "
                           "they count as wrong", spec.label, sum(r["failed"] for r in bad),
                           sum(r["batches"] for r in mine), bad[0]["dataset"], bad[0]["batch_size"], bad[0]["error"])
        rows += mine
    return Identification(rows, identification_table(rows), skipped)


def identification_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (selector, batch size): the accuracy averaged over datasets (each weighted equally;
    with several seeds, a dataset's accuracy is first averaged over them)."""
    per: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    split: dict[str, str] = {}
    classes: dict[str, int] = {}
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        key = (r["selector"], int(r["batch_size"]))
        per[key][r["dataset"]].append(float(r["accuracy"]))
        split[r["selector"]] = r["split"]
        classes[r["selector"]] = int(r.get("classes") or 0)
        failed = r.get("failed")
        counts[key][0] += int(failed) if failed is not None and not math.isnan(failed) else 0
        counts[key][1] += int(r["batches"])
    out = []
    for (label, b), by_ds in per.items():
        accs = [_nanmean(v) for v in by_ds.values()]
        n = classes[label] or len(by_ds)
        out.append({"selector": label, "batch_size": b, "accuracy": _nanmean(accs),
                    "datasets": int(sum(not math.isnan(a) for a in accs)), "chance": 1.0 / n, "split": split[label],
                    "failed_batches": counts[(label, b)][0], "batches": counts[(label, b)][1]})
    return sorted(out, key=lambda r: (r["selector"], r["batch_size"]))


# --- leave one dataset out --------------------------------------------------------------------
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
    candidate member) and the fold's ``single_best_alc``: what :func:`fallback_threshold`
    chooses from."""
    inner_queries: list[dict[str, Any]] = field(default_factory=list)
    """With ``nested_fallback``: the same records from the inner folds, each with the
    ``outer_group`` whose training datasets alone produced it (:func:`nested_fallback`)."""


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
    if abs(gap) <= _TIE:
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


def outputs_members(sel: Selector) -> bool:
    """Whether ``sel`` scores the portfolio's members rather than the training datasets."""
    return getattr(sel, "outputs", "datasets") == "members"


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
    is scored and the figures are averaged over the batches.

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
        The member view (:func:`selector.members.load_members`); None: one member per row of
        ``cost`` (the figures of the seed design, as before members existed).
    nested_fallback:
        Also run, for every selector that reads the query and is not evaluation-only, the inner
        folds of each outer fold (the outer fold's group held out as well), recording what
        :func:`nested_fallback` chooses thresholds from: ``Lodo.inner_queries``. Fits whose
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
        ``single_best``, ``single_best_alc``, ``expected_random_alc`` (a uniformly random
        candidate dataset's member), ``regret`` (oracle - alc), ``delta_single_best``
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
            q_seeds = _seeds(seed, _key(h), 11, n=n)
            query_cache[(h, n)] = [by_name[h].query(query_size, split="train", seed=s) for s in q_seeds]
        return query_cache[(h, n)]

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
                "single_best": sb, "single_best_alc": sb_alc,
                "expected_random_alc": float(np.mean([mm.value(mm.member_of[c], h) for c in fold.candidates]))}
        queries = queries_of(h, n_queries)
        train = [by_name[c] for c in fold.candidates]
        for spec in specs:
            row = {"selector": spec.label, **base,
                   **_lodo_one(spec, train, queries, cost, fold, seed, by_name, mm, set(accept))}
            for i, rec in enumerate(row.pop("query_records", None) or []):
                query_rows.append({"selector": spec.label, "dataset": h, "group": fold.group, "seed": int(seed),
                                   "query": i, **rec, "single_best_alc": sb_alc})
            a = row["alc"]
            row.update(regret=base["oracle_alc"] - a, delta_single_best=a - sb_alc,
                       gap_closed=gap_closed(a, sb_alc, base["oracle_alc"]) if not np.isnan(a) else float("nan"))
            rows.append(row)
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
    sb = single_best_of(mm.restrict(fold.members, fold.train_targets).as_cost())
    if sb is None:  # no training column with a value: judge the single best on nothing -> the first
        sb = fold.members[0]
        logger.warning("%s: no ALC of the candidates outside its group; single best = %s", fold.target, sb)
    return sb, float(mm.value(sb, fold.target))


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
        confs.append(_confidence(sel, q, p))
        novelties.append(float(novelty(q)) if callable(novelty) else nan)
    hits = [float(m in accept) for m in members]
    return {"picks": picks, "members": members, "alcs": alcs, "expected": expected, "taus": taus, "confs": confs,
            "secs": secs, "hits": hits,
            "records": [{"confidence": c, "novelty": v, "member": m, "alc": a, "hit": x}
                        for c, v, m, a, x in zip(confs, novelties, members, alcs, hits, strict=True)]}


def _lodo_one(spec: SelectorSpec, train: Sequence[DatasetFeatures], queries: Sequence[Query], cost: CostMatrix,
              fold: _Fold, seed: int, by_name: Mapping[str, DatasetFeatures], mm: MemberMatrix,
              accept: set[str]) -> dict[str, Any]:
    """One selector on one fold: its figures (NaN with ``error`` when it raises)."""
    h = fold.target
    nan = float("nan")
    out: dict[str, Any] = {"selected": None, "selected_member": None, "selected_group": None, "distinct_picks": 0,
                           "alc": nan, "hit_rate": nan, "alc_expected": nan, "kendall_tau": nan, "confidence": nan,
                           "fit_seconds": nan, "predict_seconds": nan, "queries": len(queries), "error": None}
    try:
        t0 = time.perf_counter()
        sel = _fit(spec, train, cost, fold, seed, mm)
        out["fit_seconds"] = time.perf_counter() - t0
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
            jobs.setdefault((tuple(f.candidates), tuple(f.train_targets), tuple(f.members)), []).append((g, f))
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


def _nanmean(values: Iterable[float]) -> float:
    v = np.array([x for x in values if x is not None], dtype=float)
    v = v[~np.isnan(v)]
    return float(v.mean()) if len(v) else float("nan")


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
        row["oracle"], row["single_best"] = first["oracle"], first["single_best"]
        row["acceptable"] = first.get("acceptable") or first["oracle"]
        row["noise"] = first.get("noise", 0.0)
        picks = Counter(r["selected"] for r in ok)
        row["selected"] = picks.most_common(1)[0][0] if picks else None
        row["selected_group"] = next((r["selected_group"] for r in ok if r["selected"] == row["selected"]), None)
        members = Counter(r.get("selected_member", r["selected"]) for r in ok)
        row["selected_member"] = members.most_common(1)[0][0] if members else None
        for key in ("alc", "alc_expected", "kendall_tau", "confidence", "fit_seconds", "predict_seconds"):
            row[key] = _nanmean(r[key] for r in ok)
        row["hit_rate"] = _nanmean(r.get("hit_rate", float("nan")) for r in ok)
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
        selector), ``oracle_mean_alc``, ``single_best_mean_alc``,
        ``expected_random_alc`` (the exact mean ALC of a uniformly random pick), ``seeds``.
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
            "mean_alc": _nanmean(r["alc"] for r in ok), "mean_alc_expected": _nanmean(r["alc_expected"] for r in ok),
            "mean_regret": _nanmean(r["regret"] for r in ok),
            "mean_delta_single_best": _nanmean(r["delta_single_best"] for r in ok),
            "mean_gap_closed": _nanmean(gaps), "gap_undefined": int(sum(np.isnan(g) for g in gaps)),
            "mean_kendall_tau": _nanmean(taus), "tau_undefined": int(sum(np.isnan(t) for t in taus)),
            "mean_confidence": _nanmean(r["confidence"] for r in ok),
            "mean_hit_rate": _nanmean(r.get("hit_rate", float("nan")) for r in ok),
            "fit_seconds": _nanmean(r["fit_seconds"] for r in ok),
            "predict_seconds": _nanmean(r["predict_seconds"] for r in ok),
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
                      "alc": {r["selector"]: r["alc"] for r in rs}, "regret": {r["selector"]: r["regret"] for r in rs},
                      "selected": {r["selector"]: r["selected"] for r in rs},
                      "selected_member": {r["selector"]: r["selected_member"] for r in rs}}
    return {"selectors": labels, "datasets": datasets, "per_selector": per_sel, "per_dataset": per_ds,
            "oracle_mean_alc": _nanmean(v["oracle_alc"] for v in per_ds.values()),
            "single_best_mean_alc": _nanmean(v["single_best_alc"] for v in per_ds.values()),
            "expected_random_alc": _nanmean(v["expected_random_alc"] for v in per_ds.values()),
            "seeds": sorted({int(r["seed"]) for r in rows})}


# --- falling back to the single best ----------------------------------------------------------
def fallback_threshold(queries: Sequence[Mapping[str, Any]], selector: str) -> dict[str, Any] | None:
    """The confidence and novelty thresholds below / above which ``selector``'s pick is
    replaced by the single-best configuration, chosen by leave-one-dataset-out.

    Given the records of every fold (:attr:`Lodo.queries`), these are the thresholds to ship
    (chosen on every training dataset), but their ``mean_alc`` is optimistic as an estimate:
    the thresholds were chosen on the very folds it averages. :func:`nested_fallback` gives the
    honest figure, each fold scored with thresholds chosen without it.

    Every pair of candidate thresholds (each observed confidence, and "never"; each observed
    novelty, and "never") is scored by the mean ALC that the rule "use the pick when
    ``confidence >= c`` and ``novelty <= v``, else the fold's single best" would have got,
    each held-out dataset weighted equally (its queries averaged). The best pair wins; ties
    go to the rule that falls back least (the lowest ``c``, the highest ``v``).

    Parameters
    ----------
    queries:
        :attr:`Lodo.queries` (any seeds; the records of ``selector`` are used).
    selector:
        The selector's label.

    Returns
    -------
    dict or None
        ``confidence_threshold`` (0.0: never on confidence), ``novelty_threshold`` (None:
        never on novelty, or the selector has none), ``mean_alc`` with the rule,
        ``mean_alc_without`` (never falling back), ``mean_alc_single_best`` (always),
        ``fallback_share`` (of the queries), ``queries``, ``datasets``; None without records.
    """
    recs = [q for q in queries if q["selector"] == selector and not is_nan(q.get("alc"))]
    if not recs:
        return None
    conf = np.array([float(q["confidence"]) for q in recs])
    nov = np.array([float(q["novelty"]) if not is_nan(q.get("novelty")) else np.nan for q in recs])
    alc = np.array([float(q["alc"]) for q in recs])
    sb = np.array([float(q["single_best_alc"]) for q in recs])
    names = [q["dataset"] for q in recs]
    datasets = list(dict.fromkeys(names))
    index = np.array([datasets.index(n) for n in names])
    counts = np.bincount(index, minlength=len(datasets)).astype(float)

    def mean_alc(use: np.ndarray) -> float:
        value = np.where(use, alc, sb)
        return float(np.mean(np.bincount(index, weights=value, minlength=len(datasets)) / counts))

    conf_cands = np.unique(np.concatenate([[0.0], conf]))
    has_novelty = bool(np.isfinite(nov).any())
    nov_cands = np.unique(nov[np.isfinite(nov)])[::-1] if has_novelty else np.array([])
    best = (mean_alc(np.ones(len(recs), bool)), 0.0, None)  # never fall back
    for c in conf_cands:
        on_conf = conf >= c
        for v in [None, *nov_cands]:
            use = on_conf if v is None else on_conf & ~(nov > v)
            value = mean_alc(use)
            if value > best[0] + 1e-12:
                best = (value, float(c), None if v is None else float(v))
    value, c, v = best
    use = (conf >= c) & (np.ones(len(recs), bool) if v is None else ~(nov > v))
    return {"confidence_threshold": c, "novelty_threshold": v, "mean_alc": value,
            "mean_alc_without": mean_alc(np.ones(len(recs), bool)), "mean_alc_single_best": mean_alc(np.zeros(len(recs), bool)),
            "fallback_share": float(1.0 - use.mean()), "queries": len(recs), "datasets": len(datasets),
            "has_novelty": has_novelty}


def nested_fallback(queries: Sequence[Mapping[str, Any]], inner_queries: Sequence[Mapping[str, Any]],
                    selector: str) -> dict[str, Any] | None:
    """The fallback rule scored by nested leave-one-dataset-out: each outer fold's thresholds are
    chosen (:func:`fallback_threshold`) on its inner folds' records only (``inner_queries`` whose
    ``outer_group`` is the fold's group: selectors fitted and scored without that group), then
    applied to the outer fold's own records (``queries``). Nothing of the scored fold (its
    features, its cost-matrix column, its queries) enters the choice of its thresholds.

    A fold without inner records (a group whose removal leaves nothing to hold out) never falls
    back (``confidence >= 0``, no novelty rule).

    Parameters
    ----------
    queries:
        :attr:`Lodo.queries` (any seeds), with their ``group``.
    inner_queries:
        :attr:`Lodo.inner_queries` (``leave_one_dataset_out(..., nested_fallback=True)``).
    selector:
        The selector's label.

    Returns
    -------
    dict or None
        ``mean_alc`` (each outer dataset weighted equally, its queries averaged),
        ``mean_alc_without`` (never falling back), ``mean_alc_single_best`` (always),
        ``fallback_share``, ``thresholds`` (group -> ``confidence_threshold``,
        ``novelty_threshold``, ``inner_datasets``, ``inner_queries``), ``confidence_range``
        (lowest and highest threshold over the folds), ``folds_without_inner`` (groups with no
        inner record), ``queries``, ``datasets``; None without records of ``selector``.
    """
    recs = [q for q in queries if q["selector"] == selector and not is_nan(q.get("alc"))]
    if not recs:
        return None
    inner = [r for r in inner_queries if r["selector"] == selector and not is_nan(r.get("alc"))]
    by_group: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in inner:
        by_group[str(r["outer_group"])].append(r)
    thresholds: dict[str, dict[str, Any]] = {}
    for g in dict.fromkeys(str(q.get("group") or q["dataset"]) for q in recs):
        th = fallback_threshold(by_group.get(g, []), selector)
        thresholds[g] = {"confidence_threshold": th["confidence_threshold"] if th else 0.0,
                         "novelty_threshold": th["novelty_threshold"] if th else None,
                         "inner_datasets": th["datasets"] if th else 0, "inner_queries": th["queries"] if th else 0}
    names = [q["dataset"] for q in recs]
    datasets = list(dict.fromkeys(names))
    index = np.array([datasets.index(n) for n in names])
    counts = np.bincount(index, minlength=len(datasets)).astype(float)
    alc = np.array([float(q["alc"]) for q in recs])
    sb = np.array([float(q["single_best_alc"]) for q in recs])
    use = np.ones(len(recs), bool)
    for i, q in enumerate(recs):
        t = thresholds[str(q.get("group") or q["dataset"])]
        nov = q.get("novelty")
        use[i] = float(q["confidence"]) >= t["confidence_threshold"] and not (
            t["novelty_threshold"] is not None and not is_nan(nov) and float(nov) > t["novelty_threshold"])

    def mean_alc(mask: np.ndarray) -> float:
        value = np.where(mask, alc, sb)
        return float(np.mean(np.bincount(index, weights=value, minlength=len(datasets)) / counts))

    confs = [t["confidence_threshold"] for t in thresholds.values()]
    return {"mean_alc": mean_alc(use), "mean_alc_without": mean_alc(np.ones(len(recs), bool)),
            "mean_alc_single_best": mean_alc(np.zeros(len(recs), bool)), "fallback_share": float(1.0 - use.mean()),
            "thresholds": thresholds, "confidence_range": [float(min(confs)), float(max(confs))],
            "folds_without_inner": [g for g, t in thresholds.items() if not t["inner_queries"]],
            "queries": len(recs), "datasets": len(datasets)}


# --- statistics -------------------------------------------------------------------------------
MIN_DATASETS_FOR_TEST = 5
"""autorank's minimum: a test across fewer datasets is not attempted."""


@dataclass
class Statistics:
    """What :func:`statistics` found.

    Attributes
    ----------
    measure:
        The performance measure compared (a LODO row key; higher is better).
    selectors, datasets:
        The columns and rows of the comparison (datasets where every selector has a value).
    mean_ranks:
        Label -> mean rank over the datasets (1 = best; ties share their mean rank).
    test:
        ``omnibus`` (autorank's: ``friedman`` for 3 or more selectors, ``wilcoxon`` for 2),
        ``pvalue``, ``posthoc`` (``nemenyi``), ``cd`` (critical difference of mean ranks),
        ``alpha``; None when no test was run.
    pairwise:
        Wilcoxon signed-rank tests of every pair, with Holm-corrected p-values
        (``a``, ``b``, ``statistic``, ``pvalue``, ``pvalue_holm``, ``significant``).
    reason:
        Why there is no test (e.g. not enough datasets), else None.
    result:
        autorank's ``RankResult`` (for ``autorank.plot_stats``); not saved.
    """

    measure: str
    selectors: list[str]
    datasets: list[str]
    mean_ranks: dict[str, float]
    test: dict[str, Any] | None = None
    pairwise: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "selectors": self.selectors, "datasets": self.datasets,
                "mean_ranks": self.mean_ranks, "test": self.test, "pairwise": self.pairwise, "reason": self.reason}


def performance_frame(rows: Sequence[Mapping[str, Any]], measure: str = "alc",
                      exclude: Sequence[str] = ()) -> Any:
    """A pandas DataFrame datasets x selectors of ``measure`` (averaged over seeds); datasets
    where some selector has no value are dropped (logged)."""
    import pandas as pd

    table = per_dataset(rows)
    labels = [s for s in dict.fromkeys(r["selector"] for r in table) if s not in exclude]
    data: dict[str, dict[str, float]] = defaultdict(dict)
    for r in table:
        if r["selector"] in labels:
            data[r["selector"]][r["dataset"]] = float(r[measure])
    frame = pd.DataFrame({s: pd.Series(data[s]) for s in labels})
    incomplete = frame.index[frame.isna().any(axis=1)].tolist()
    if incomplete:
        logger.warning("statistics: %s left out (a selector has no %s there)", incomplete, measure)
    return frame.dropna(axis=0, how="any")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adj[i] = running
    return adj.tolist()


def statistics(rows: Sequence[Mapping[str, Any]], measure: str = "alc", *, alpha: float = 0.05,
               exclude: Sequence[str] = ()) -> Statistics:
    """Mean ranks, autorank's Friedman/Nemenyi test and pairwise Wilcoxon-Holm tests.

    Parameters
    ----------
    rows:
        Leave-one-dataset-out rows (:attr:`Lodo.rows`).
    measure:
        The row key compared, higher is better (``alc``; ``kendall_tau``; ...).
    alpha:
        Family-wise significance level.
    exclude:
        Selector labels left out (e.g. the oracle, a reference rather than a contender).

    Returns
    -------
    Statistics
        Never raises for too little data: with fewer than 2 selectors or fewer than
        :data:`MIN_DATASETS_FOR_TEST` datasets ``reason`` says so (mean ranks are still given
        where there is at least one dataset).
    """
    import contextlib
    import io

    from scipy.stats import rankdata, wilcoxon

    frame = performance_frame(rows, measure, exclude)
    labels, datasets = list(frame.columns), [str(i) for i in frame.index]
    ranks: dict[str, float] = {}
    if len(labels) >= 1 and len(datasets) >= 1:
        r = np.vstack([rankdata(-frame.loc[i].to_numpy(dtype=float), method="average") for i in frame.index])
        ranks = {s: float(v) for s, v in zip(labels, r.mean(axis=0), strict=True)}
    stats = Statistics(measure, labels, datasets, ranks)
    if len(labels) < 2:
        stats.reason = f"only {len(labels)} selector(s) with values: nothing to compare"
        return stats
    if len(datasets) < MIN_DATASETS_FOR_TEST:
        stats.reason = (f"not enough datasets for a test ({len(datasets)}; a Friedman or Wilcoxon test needs "
                        f"{MIN_DATASETS_FOR_TEST} or more)")
        return stats
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            d = frame[a].to_numpy(dtype=float) - frame[b].to_numpy(dtype=float)
            if np.all(np.abs(d) <= _TIE):
                stat, p = 0.0, 1.0
            else:
                res = wilcoxon(frame[a].to_numpy(dtype=float), frame[b].to_numpy(dtype=float))
                stat, p = float(res.statistic), float(res.pvalue)
            pairs.append({"a": a, "b": b, "statistic": stat, "pvalue": p,
                          "mean_difference": float(np.mean(d))})
    for pair, adj in zip(pairs, holm([q["pvalue"] for q in pairs]), strict=True):
        pair["pvalue_holm"] = adj
        pair["significant"] = bool(adj < alpha)
    stats.pairwise = pairs
    try:
        from autorank import autorank

        with contextlib.redirect_stdout(io.StringIO()):  # autorank prints its choice of test
            res = autorank(frame, alpha=alpha, verbose=False, order="descending", force_mode="nonparametric")
        stats.result = res
        stats.test = {"omnibus": res.omnibus, "pvalue": float(res.pvalue), "posthoc": res.posthoc,
                      "cd": None if res.cd is None else float(res.cd), "alpha": alpha,
                      "significant": bool(res.pvalue < alpha)}
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        stats.reason = f"autorank could not test these values: {exc}"
        logger.warning("statistics: %s", stats.reason)
    return stats


# --- the cost of selecting --------------------------------------------------------------------
def alc_delay_bound(seconds: float, protocol: Protocol | str, level: float = 1.0) -> float:
    """The most ALC a first prediction delayed by ``seconds`` can lose under ``protocol``.

    The ALC is the area under the NAUC step curve over the transformed time
    t~ = log(1 + t/t0) / log(1 + T/t0) (:func:`autodl.scoring.transform_time`); nothing is
    scored before the first prediction, so a curve at level ``level`` loses at most
    ``level * t~(seconds)``.
    """
    from autodl.protocol import load_protocol
    from autodl.scoring import transform_time

    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    if seconds < 0:
        raise ValueError(f"seconds={seconds}: expected >= 0")
    return float(level) * float(transform_time(float(seconds), proto.time_budget, proto.t0))


def synthetic_images(n: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``[n, 1, size, size, channels]`` uint8 noise: what the embedding is timed on (its cost does
    not depend on the pixels)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 1, size, size, channels), dtype=np.uint8)


def _median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up (first calls allocate, compile kernels, fill caches)
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _timing_query(d: DatasetFeatures, b: int, seed: int) -> Query:
    """A labelled training batch of ``b`` samples taken from the classes in turn (so that a batch
    of 2 or more holds 2 or more classes, as the transferability measures need), repeating
    samples beyond what there is: for timing only."""
    rng = np.random.default_rng(seed)
    y = d.train_labels.argmax(axis=1) if d.train_labels.shape[1] else np.zeros(len(d.train), int)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    idx = [int(pools[k % len(pools)][(k // len(pools)) % len(pools[k % len(pools)])]) for k in range(b)]
    return Query(d.train[idx], d.train_labels[idx], dict(d.descriptors), name=d.name)


def make_embedder(spec: Any = None, in_chans: int = 3, device: str = "cpu") -> Any:
    """:class:`metafeatures.embeddings.Embedder` for ``spec`` (default :class:`EmbeddingSpec`),
    imported here so that this module does not need PyTorch."""
    from metafeatures.embeddings import Embedder, EmbeddingSpec

    return Embedder(spec if spec is not None else EmbeddingSpec(), in_chans=in_chans, device=device)


def selection_cost(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
                   datasets: Sequence[DatasetFeatures], *, batch_sizes: Sequence[int] = (1, 8, 32, 64, 128, 1024),
                   cost: CostMatrix | None = None, embedder: Any = None, image_size: int | None = None,
                   in_chans: int = 3, repeats: int = 3, seed: int = 0, time_embedding: bool = True,
                   protocols: Sequence[str] = ("mini", "autocv"), levels: Mapping[str, float] | None = None,
                   members: MemberMatrix | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Seconds to embed and to select per batch size on this machine, and the ALC it can cost.

    Embedding: ``embedder.embed`` of a batch of synthetic images (``[B, 1, S, S, C]`` uint8,
    S = ``image_size``, default the embedder's input size), median of ``repeats`` after a
    warm-up. Selecting: ``predict_proba`` (and ``predict``) of a selector fitted on all
    ``datasets``, on a labelled training batch of the first dataset, same timing. The ALC
    bound of each total is :func:`alc_delay_bound` under each protocol, at level 1 and at the
    selector's ``levels`` entry (e.g. its mean leave-one-dataset-out ALC) where given.

    Parameters
    ----------
    embedder:
        An object with ``embed(x) -> [N, D]`` and ``card``; None: :func:`make_embedder` on the
        CPU. Where it cannot be made (no PyTorch, no weights) the embedding is not timed and
        ``embedding_error`` says why.
    time_embedding:
        False: time the selection alone.
    members:
        The member view for selectors that name members (default: one member per row of ``cost``).

    Returns
    -------
    dict
        ``rows`` (per selector and batch size: ``embed_seconds``, ``select_seconds``,
        ``total_seconds`` and ``alc_bound`` -> protocol -> ``{"level_1", "level", "level_value"}``;
        ``error`` where the selector cannot answer a batch of that size, the figures then None),
        ``embedding`` (seconds per batch size), ``embedding_card``, ``embedding_error``,
        ``protocols`` (name -> T and t0), ``skipped`` (label -> why), ``threads``.
    """
    from autodl.protocol import load_protocol

    specs = as_specs(selectors)
    sizes = _check_batch_sizes(batch_sizes)
    protos = {p: load_protocol(p) for p in protocols}
    out: dict[str, Any] = {"rows": [], "embedding": {}, "embedding_card": None, "embedding_error": None,
                           "protocols": {k: {"time_budget": v.time_budget, "t0": v.t0} for k, v in protos.items()},
                           "skipped": {}, "repeats": repeats, "threads": None}
    if not time_embedding:
        embedder = None
        out["embedding_error"] = "not timed (asked not to)"
    elif embedder is None:
        try:
            embedder = make_embedder(in_chans=in_chans)
        except Exception as exc:  # no PyTorch, no weights, metafeatures.embeddings not there
            out["embedding_error"] = f"{type(exc).__name__}: {exc}"
            logger.warning("selection cost: the embedding is not timed: %s", out["embedding_error"])
    if embedder is not None:
        try:
            import torch

            out["threads"] = torch.get_num_threads()
        except ImportError:
            pass
        card = dict(getattr(embedder, "card", {}) or {})
        out["embedding_card"] = card
        size = int(image_size or card.get("input_size") or getattr(getattr(embedder, "spec", None), "input_size", 64))
        if progress is not None:
            progress("embedding", 0, len(sizes))
        for n, b in enumerate(sizes):
            x = synthetic_images(b, size, in_chans, seed)
            out["embedding"][b] = _median_seconds(lambda x=x: embedder.embed(x), repeats)
            if progress is not None:
                progress("embedding", n + 1, len(sizes))
    if not datasets:
        raise SelectorError(None, "selection cost: no dataset to fit the selectors on")
    for spec in specs:
        try:
            sel = spec.make(seed)
            if is_evaluation_only(sel):
                out["skipped"][spec.label] = "evaluation only"
                continue
            if sel.needs_cost and cost is None:
                out["skipped"][spec.label] = "needs the cost matrix and none was given"
                continue
            fit_sets = [d for d in datasets if cost is None or not sel.needs_cost or d.name in cost.sources]
            if outputs_members(sel):
                from selector.members import trivial_members

                mm = members if members is not None else trivial_members(cost)
                fit_sets = [d for d in fit_sets if d.name in mm.member_of]
                sel.fit(fit_sets, cost, members=mm.restrict(mm.members, [d.name for d in fit_sets]))
            elif sel.needs_cost:
                sel.fit(fit_sets, cost)
            else:
                sel.fit(fit_sets)
            if progress is not None:
                progress(f"selection {spec.label}", 0, len(sizes))
            for n, b in enumerate(sizes):
                q = _timing_query(fit_sets[0], b, seed)
                embed = out["embedding"].get(b)
                try:
                    select = _median_seconds(lambda q=q, sel=sel: pick(sel, q, np.asarray(sel.predict_proba(q))),
                                             repeats)
                except Exception as exc:  # a batch it cannot answer (one sample for a measure): that size only
                    out["rows"].append({"selector": spec.label, "batch_size": b, "embed_seconds": embed,
                                        "select_seconds": None, "total_seconds": None, "alc_bound": None,
                                        "error": f"{type(exc).__name__}: {exc}"})
                    continue
                total = select + (embed or 0.0)
                level = None if levels is None else levels.get(spec.label)
                bound = {name: {"level_1": alc_delay_bound(total, p),
                                "level": None if level is None or np.isnan(level) else alc_delay_bound(total, p, level),
                                "level_value": level} for name, p in protos.items()}
                out["rows"].append({"selector": spec.label, "batch_size": b, "embed_seconds": embed,
                                    "select_seconds": select, "total_seconds": total, "alc_bound": bound,
                                    "error": None})
                if progress is not None:
                    progress(f"selection {spec.label}", n + 1, len(sizes))
        except Exception as exc:
            out["skipped"][spec.label] = f"{type(exc).__name__}: {exc}"
            logger.warning("selection cost: %s failed: %s", spec.label, out["skipped"][spec.label])
    return out


def is_nan(value: Any) -> bool:
    """True for None and float NaN (for tables)."""
    return value is None or (isinstance(value, float) and math.isnan(value))
