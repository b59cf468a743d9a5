"""The shared candidate pool and the greedy portfolio: steps 3-5 of ``autodl-meta portfolio build``.

The seed design keeps one configuration per training dataset (its BOHB incumbent). A
portfolio built that way holds as many members as datasets, many of them near-copies, and
says nothing about which member covers what the others miss. Auto-sklearn 2.0 (Feurer et
al., JMLR 2022) and ZAP (Ozturk et al., ICML 2022) build it instead from a *shared pool*
evaluated on every training dataset, greedily: start empty, add the candidate that most
raises the mean over datasets of the best member's ALC, stop at K. This module does that.

The pool (:func:`plan_pool`)
    The fixed configurations every BOHB run starts from (its warm start: the grid's
    configurations and ``baseline:default``, :mod:`finetune.grid`), then from every run the
    full-budget trials that beat every fixed configuration on that run's own dataset (at most
    ``per_run`` of them, best first), ranked over all runs by that margin, at most
    ``max_searched`` of them, and only those whose matrix cells fit in the worker-hours left of
    the build's budget for the matrix (:func:`plan_pool`, estimated from the runs' own trial
    times by :func:`matrix_seconds`); configurations equal once validated are kept once.
The pool's matrix (:func:`run_pool_matrix`)
    Every candidate on every training dataset, at full budget, over ``seeds`` (the cost
    matrix's machinery, :func:`portfolio.cost_matrix.run_cost_matrix`, Dask, resumable,
    cells shared where configurations are equal). A BOHB trial at the full budget under the
    build's evaluation seed *is* that cell (the same configuration, dataset, seed, protocol,
    clock and timing table): it is copied, with ``reused_from`` naming the trial, not
    computed again. So the warm start of every run is the pool's first seed of its fixed
    candidates, paid once.
Seed noise, saturated datasets, headroom (:func:`analyse`)
    A dataset's seed noise is the mean over candidates of half the range of their ALCs
    over seeds. A dataset on which every candidate is within its seed noise of the best is
    *saturated*: nothing can be selected there, and it is left out of the portfolio and of
    the selectors' training set (it stays in the report). Headroom (oracle minus single best)
    counts per dataset only where it exceeds the seed noise.
The greedy portfolio (:func:`greedy`, :func:`choose_k`)
    The curve of the oracle's mean ALC against K, in sample and leave-one-dataset-out (the
    members chosen without a dataset, scored on it). K is the smallest in ``[k_min, k_max]``
    whose leave-one-dataset-out oracle is within the mean seed noise of the best K's: more
    members only give a selector more ways to be wrong.
The portfolio file (:func:`greedy_portfolio`)
    Still one configuration per training dataset, so that the selectors, the submission and
    the cost matrix read it as before: each non-saturated dataset gets the member that is
    best on it, the earliest member winning among those within the dataset's seed noise of
    the best (the single best, member 1, wherever it is as good as any). ``member`` names it.

``--portfolio incumbents`` keeps the seed paper's design (each dataset's own incumbent), on
the same non-saturated datasets, so the two compare in one report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import Status, atomic_path, atomic_write_text, read_jsonl, read_versioned_json, write_json_atomic
from portfolio.incumbents import Incumbent, Portfolio, PortfolioError, find_runs, incumbents_from_runs

logger = logging.getLogger(__name__)

POOL_FORMAT = "autodl-meta-pool/1"
POOL_DIR = "pool"
"""The pool's folder inside a build's ``OUT``."""
POOL_FILE = "pool.json"
ANALYSIS_FILE = "greedy.json"
ANALYSIS_MD = "greedy.md"
CURVE_FILE = "oracle_vs_k.png"
DESIGNS = ("greedy", "incumbents")
"""``portfolio=`` of a build: the greedy portfolio over the pool, or the per-dataset incumbents."""


class PoolError(PortfolioError):
    """A pool that cannot be assembled, read or analysed (names the file and the field)."""


# --- the pool ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Candidate:
    """One configuration of the pool.

    Attributes
    ----------
    name
        ``fixed:<grid name>`` or ``searched:<dataset>`` (``searched:<dataset>#2`` for a run's second).
    config
        The configuration, validated (:func:`finetune.config.validate_config`: every key).
    origin
        ``kind`` (``fixed`` or ``searched``); for searched ones ``dataset``, ``run_id``,
        ``config_id``, ``alc`` (in the run) and ``margin`` (over the best fixed configuration
        in that run).
    """

    name: str
    config: dict[str, Any]
    origin: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "config": dict(self.config), "origin": dict(self.origin)}


def canonical(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` validated over the fine-tuning space (every key, defaults filled), so that
    equal configurations have equal digests wherever they come from."""
    from finetune.config import validate_config

    return dict(validate_config(dict(config)))


def digest(config: Mapping[str, Any]) -> str:
    """The cost matrix's digest of the canonical configuration."""
    from portfolio.cost_matrix import config_digest

    return config_digest(canonical(config))


def fixed_candidates(warm_start: str, runs: str | Path | Iterable[str | Path] | None = None) -> list[Candidate]:
    """The fixed configurations of a build's warm start (:func:`finetune.grid.warm_start_names`);
    with ``runs``, only those some run evaluated as its warm start (none where the runs searched a
    space that is not the fine-tuning space's, as tests do)."""
    from finetune.grid import grid_config, warm_start_names

    names = list(warm_start_names(warm_start))
    if runs is not None:
        from offline_bohb.run import RunFolder

        seen = {c.get("info", {}).get("warm_start") for run in find_runs(runs) for c in RunFolder(run.folder).configs()}
        names = [n for n in names if n in seen]
    return [Candidate(f"fixed:{name}", canonical(grid_config(name)), {"kind": "fixed", "grid": name})
            for name in names]


def _full_ok(trials: Iterable[Mapping[str, Any]], max_budget: float, seed: int | None = None) -> list[Mapping[str, Any]]:
    return [t for t in trials if t.get("status") == Status.OK and t.get("alc") is not None
            and math.isclose(float(t["budget"]), max_budget, rel_tol=1e-9)
            and (seed is None or int(t.get("seed", -1)) == seed)]


def searched_candidates(runs: str | Path | Iterable[str | Path], fixed: Sequence[Candidate], *,
                        per_run: int = 1) -> list[Candidate]:
    """Per run, the full-budget trials that beat every fixed configuration evaluated in that run
    (best first, at most ``per_run``), each with its margin; equal configurations kept once
    (the larger margin). A run whose best full-budget trial is a fixed configuration adds none."""
    fixed_digests = {digest(c.config) for c in fixed}
    found: dict[str, Candidate] = {}
    for run in find_runs(runs):
        max_budget = float(run.record.get("max_budget", 1.0))
        full = _full_ok(run.trials, max_budget)
        if not full:
            continue
        by_digest = [(digest(t["config"]), t) for t in full]
        fixed_best = max((float(t["alc"]) for d, t in by_digest if d in fixed_digests), default=-math.inf)
        better = sorted(((d, t) for d, t in by_digest if d not in fixed_digests and float(t["alc"]) > fixed_best),
                        key=lambda dt: -float(dt[1]["alc"]))
        seen: set[str] = set()
        rank = 0
        for d, t in better:
            if d in seen:
                continue
            seen.add(d)
            rank += 1
            if rank > per_run:
                break
            margin = float(t["alc"]) - fixed_best if math.isfinite(fixed_best) else None
            name = f"searched:{run.dataset}" + ("" if rank == 1 else f"#{rank}")
            cand = Candidate(name, canonical(t["config"]),
                             {"kind": "searched", "dataset": run.dataset, "run_id": run.run_id,
                              "config_id": list(t["config_id"]), "alc": float(t["alc"]), "margin": margin})
            old = found.get(d)
            if old is None or (margin or 0.0) > (old.origin.get("margin") or 0.0):
                found[d] = cand
    return sorted(found.values(), key=lambda c: (-(c.origin.get("margin") or 0.0), c.name))


def geomean(values: Iterable[float]) -> float | None:
    """The geometric mean of the positive ``values`` (None where there is none)."""
    v = [math.log(x) for x in values if x > 0]
    return math.exp(sum(v) / len(v)) if v else None


def matrix_seconds(candidates: Sequence[Candidate], runs: str | Path | Iterable[str | Path], *,
                   seeds: Sequence[int], eval_seed: int) -> dict[str, float]:
    """Per candidate, the worker-seconds its pool-matrix cells should take (an estimate from the
    runs' own clock, made before any cell is computed).

    What the runs measured: the wall seconds of every full-budget trial under ``eval_seed``
    (each on the same workers as the matrix). A cell that is such a trial is copied, not
    computed (:func:`trial_cells`): it costs nothing. A cell whose configuration a run
    evaluated on that dataset under another seed costs what the trial took. Any other cell
    costs ``r_c * s_d``: ``s_d`` is the dataset's scale, the geometric mean of the fixed
    candidates' trials on it (of all its full-budget trials where no fixed one ran), ``r_c``
    the candidate's relative cost, the geometric mean of its trials' seconds over their
    datasets' scales (1 where it has none). So a searched configuration that took three
    times the fixed ones' time on its own dataset is expected to take three times theirs on
    every other dataset.
    """
    folders = find_runs(runs)
    datasets = [run.dataset for run in folders]
    known: dict[tuple[str, str], float] = {}
    for run in folders:
        for t in _full_ok(run.trials, float(run.record.get("max_budget", 1.0)), eval_seed):
            if t.get("wall_seconds") is not None:
                known[(digest(t["config"]), run.dataset)] = float(t["wall_seconds"])
    digests = {c.name: digest(c.config) for c in candidates}
    fixed = {digests[c.name] for c in candidates if c.origin.get("kind") == "fixed"}
    scale: dict[str, float] = {}
    for d in datasets:
        own = [sec for (g, dd), sec in known.items() if dd == d]
        s = geomean(sec for (g, dd), sec in known.items() if dd == d and g in fixed) or geomean(own)
        if s is not None:
            scale[d] = s
    fallback = float(np.median(list(scale.values()))) if scale else 1.0
    out: dict[str, float] = {}
    for c in candidates:
        g = digests[c.name]
        rel = geomean(sec / scale.get(d, fallback) for (gg, d), sec in known.items() if gg == g) or 1.0
        total = 0.0
        for d in datasets:
            measured = known.get((g, d))
            for seed in seeds:
                if measured is not None and seed == eval_seed:
                    continue
                total += measured if measured is not None else rel * scale.get(d, fallback)
        out[c.name] = total
    return out


@dataclass(frozen=True)
class PoolPlan:
    """The pool a build evaluates (:func:`plan_pool`).

    ``candidates``: the fixed ones, then the searched ones kept (largest margin first), each
    with ``origin["matrix_hours"]``, its estimated worker-hours (:func:`matrix_seconds`);
    ``left_out``: searched candidates not kept, each with why; ``budget_hours``: the
    worker-hours the matrix was sized to (``None``: no limit); ``estimate_hours``: what the
    kept candidates' cells should take.
    """

    candidates: list[Candidate]
    left_out: dict[str, str]
    budget_hours: float | None
    estimate_hours: float

    def provenance(self) -> dict[str, Any]:
        return {"budget_hours": self.budget_hours, "estimate_hours": round(self.estimate_hours, 3),
                "left_out": dict(self.left_out)}


def plan_pool(runs: str | Path | Iterable[str | Path], warm_start: str, *, per_run: int = 1, max_searched: int = 9,
              budget_hours: float | None = None, seeds: Sequence[int] = (0, 1), eval_seed: int = 0) -> PoolPlan:
    """The pool: the fixed configurations, then the searched ones (:func:`searched_candidates`)
    in order of their margin, at most ``max_searched``, each kept only where its cells fit
    in what is left of ``budget_hours`` worker-hours of the pool matrix over ``seeds`` (after
    the fixed candidates' cells, which are always kept; see :func:`matrix_seconds`). A
    candidate that does not fit is skipped and a cheaper one after it may still be kept: two
    searched configurations that fine-tune a larger network at 96 px took half of the first
    rebuild's matrix (``docs/portfolio-build-log.md``)."""
    fixed = fixed_candidates(warm_start, runs)
    searched = searched_candidates(runs, fixed, per_run=per_run)
    cost = matrix_seconds(fixed + searched, runs, seeds=seeds, eval_seed=eval_seed) if fixed or searched else {}
    budget = None if budget_hours is None or budget_hours <= 0 else float(budget_hours) * 3600.0
    spent = sum(cost[c.name] for c in fixed)
    if budget is not None and spent > budget:
        logger.warning("pool: the fixed candidates' cells alone should take %.2f worker-hours, over the budget of "
                       "%.2f; no searched candidate is kept", spent / 3600, budget / 3600)
    kept: list[Candidate] = []
    left_out: dict[str, str] = {}
    for c in searched:
        hours = cost[c.name] / 3600
        if len(kept) >= max_searched:
            left_out[c.name] = f"beyond the {max_searched} with the largest margin"
        elif budget is not None and spent + cost[c.name] > budget:
            left_out[c.name] = (f"its cells should take {hours:.2f} worker-hours; {max(budget - spent, 0) / 3600:.2f} "
                                f"of the {budget / 3600:g} were left")
        else:
            kept.append(c)
            spent += cost[c.name]
    if left_out:
        logger.info("pool: %d searched candidates kept, %d left out (%s)", len(kept), len(left_out),
                    "; ".join(f"{k}: {v}" for k, v in left_out.items()))

    def costed(c: Candidate) -> Candidate:
        return Candidate(c.name, c.config, {**c.origin, "matrix_hours": round(cost[c.name] / 3600, 4)})

    return PoolPlan([costed(c) for c in fixed + kept], left_out, None if budget is None else budget / 3600,
                    spent / 3600)


def assemble_pool(runs: str | Path | Iterable[str | Path], warm_start: str, *, per_run: int = 1,
                  max_searched: int = 9, budget_hours: float | None = None, seeds: Sequence[int] = (0, 1),
                  eval_seed: int = 0) -> list[Candidate]:
    """The candidates of :func:`plan_pool`."""
    return plan_pool(runs, warm_start, per_run=per_run, max_searched=max_searched, budget_hours=budget_hours,
                     seeds=seeds, eval_seed=eval_seed).candidates


def save_pool(candidates: Sequence[Candidate], path: str | Path, **provenance: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_json_atomic(path, {"format": POOL_FORMAT, "candidates": [c.to_dict() for c in candidates],
                                    "provenance": provenance}, indent=1, allow_nan=False)


def load_pool(path: str | Path) -> list[Candidate]:
    """Read ``pool.json``; errors name the file and the field."""
    path = Path(path)
    if path.is_dir():
        path = path / POOL_FILE
    data = read_versioned_json(path, POOL_FORMAT, what="a candidate pool", error=PoolError,
                               missing="no pool here (`autodl-meta portfolio build` writes OUT/pool/pool.json)")
    out = []
    for i, c in enumerate(data.get("candidates") or []):
        if not (isinstance(c, dict) and isinstance(c.get("name"), str) and isinstance(c.get("config"), dict)):
            raise PoolError(path, "expected an object with a name and a config", field=f"candidates[{i}]")
        out.append(Candidate(c["name"], dict(c["config"]), dict(c.get("origin") or {})))
    return out


def pool_portfolio(candidates: Sequence[Candidate], template: Portfolio,
                   known: Sequence[Mapping[str, Any]] = ()) -> Portfolio:
    """The pool as a :class:`~portfolio.incumbents.Portfolio` whose rows are the candidates
    (what :func:`~portfolio.cost_matrix.run_cost_matrix` evaluates): protocol, clock, timing
    table and space are the runs' (``template``). A row's ``alc`` is a searched candidate's
    ALC in its run, a fixed one's mean over the ``known`` trials of it (the runs' warm starts;
    0 where none)."""
    by_digest: dict[str, list[float]] = {}
    for r in known:
        by_digest.setdefault(r["config_digest"], []).append(float(r["alc"]))

    def alc(c: Candidate) -> float:
        if "alc" in c.origin:
            return float(c.origin["alc"])
        got = by_digest.get(digest(c.config))
        return float(np.mean(got)) if got else 0.0

    rows = [Incumbent(dataset=c.name, dataset_path=str(c.origin.get("dataset", "")), config=dict(c.config),
                      alc=alc(c), budget=1.0,
                      config_id=tuple(c.origin.get("config_id", (0, 0, i))),  # type: ignore[arg-type]
                      trials=0, run_id=str(c.origin.get("run_id", "fixed"))) for i, c in enumerate(candidates)]
    return Portfolio(protocol=dict(template.protocol), clock=template.clock, timing=dict(template.timing),
                     space=dict(template.space), incumbents=rows,
                     provenance={"pool": [c.to_dict() for c in candidates]})


def trial_cells(runs: str | Path | Iterable[str | Path], seed: int) -> list[dict[str, Any]]:
    """The BOHB trials that are cost-matrix cells: ``ok`` at the full budget under evaluation
    seed ``seed``, as ``known`` rows for :func:`~portfolio.cost_matrix.run_cost_matrix`
    (keyed by the canonical configuration's digest, the run's dataset and the seed; the trial's
    ``learner_version``, 1 where it predates the field: the matrix copies only its own version's)."""
    rows = []
    for run in find_runs(runs):
        for t in _full_ok(run.trials, float(run.record.get("max_budget", 1.0)), seed):
            rows.append({"source": f"trial:{run.dataset}:{'.'.join(map(str, t['config_id']))}",
                         "target": run.dataset, "seed": int(seed), "config_digest": digest(t["config"]),
                         "target_path": run.record["dataset"]["path"], "status": Status.OK, "alc": float(t["alc"]),
                         "final_nauc": t.get("final_nauc"),
                         "predictions": len((t.get("curve") or {}).get("timestamps") or []),
                         "wall_seconds": t.get("wall_seconds"), "task_seconds": t.get("wall_seconds"),
                         "error": None, "traceback": None, "worker": t.get("worker"), "finished": t.get("finished"),
                         "learner_version": int(t.get("learner_version") or 1)})
    return rows


def run_pool_matrix(candidates: Sequence[Candidate], runs: str | Path, datasets: Sequence[tuple[str, Path]],
                    out: str | Path, *, seeds: Sequence[int], eval_seed: int, workers: int = 2,
                    scheduler: str | None = None, timing: str | Path | None = None, progress: Any = None) -> Any:
    """Every candidate on every dataset over ``seeds`` into ``out`` (a cost-matrix folder whose
    rows are candidates); the runs' full-budget trials under ``eval_seed`` are copied, not
    computed. Returns the :class:`~portfolio.cost_matrix.CostMatrixResult`."""
    from portfolio.cost_matrix import run_cost_matrix

    template = incumbents_from_runs(runs, command="")
    known = trial_cells(runs, eval_seed) if eval_seed in seeds else []
    pool = pool_portfolio(candidates, template, known)
    return run_cost_matrix(pool, list(datasets), out, seeds=seeds, workers=workers, scheduler=scheduler,
                           timing=timing, progress=progress, known=known)


# --- the analysis -----------------------------------------------------------------------------
def seed_alcs(cells: Sequence[Mapping[str, Any]], sources: Sequence[str], targets: Sequence[str],
              seeds: Sequence[int]) -> np.ndarray:
    """ALCs as an array ``[source, target, seed]`` (NaN where the cell is not ``ok``; the last row
    of a cell counts)."""
    a = np.full((len(sources), len(targets), len(seeds)), np.nan)
    si, ti, ki = ({s: i for i, s in enumerate(sources)}, {t: j for j, t in enumerate(targets)},
                  {int(s): k for k, s in enumerate(seeds)})
    for r in cells:
        i, j, k = si.get(r.get("source")), ti.get(r.get("target")), ki.get(int(r.get("seed", -1)))
        if i is None or j is None or k is None:
            continue
        a[i, j, k] = float(r["alc"]) if r.get("status") == Status.OK and r.get("alc") is not None else np.nan
    return a


def greedy(alc: np.ndarray, k_max: int) -> list[int]:
    """Row indices added one by one, each the one that most raises the mean over columns of the
    best ALC so far (ties to the earlier row); stops at ``k_max`` rows or when none raises it.
    ``alc``: ``[row, column]`` without NaN."""
    members: list[int] = []
    if alc.shape[1] == 0:
        return members
    best = np.full(alc.shape[1], -np.inf)
    for _ in range(min(k_max, alc.shape[0])):
        gains = [np.maximum(best, alc[i]).mean() if i not in members else -np.inf for i in range(alc.shape[0])]
        i = int(np.argmax(gains))
        if members and gains[i] <= best.mean() + 1e-12:
            break
        members.append(i)
        best = np.maximum(best, alc[i])
    return members


def oracle_curve(alc: np.ndarray, members: Sequence[int], k_max: int) -> list[float]:
    """Mean over columns of the best of the first k members, k = 1..k_max (flat after the last member)."""
    out, best = [], np.full(alc.shape[1], -np.inf)
    for k in range(k_max):
        if k < len(members):
            best = np.maximum(best, alc[members[k]])
        out.append(float(best.mean()))
    return out


def lodo_curve(alc: np.ndarray, k_max: int) -> list[float]:
    """Leave one column out: the greedy members chosen on the other columns, the best of the
    first k of them on the left-out column, mean over columns, k = 1..k_max."""
    n = alc.shape[1]
    if n < 2:  # nothing to choose members on without the one dataset
        return [float("nan")] * k_max
    per = np.zeros((n, k_max))
    for j in range(n):
        rest = np.delete(alc, j, axis=1)
        members = greedy(rest, k_max)
        best = -np.inf
        for k in range(k_max):
            if k < len(members):
                best = max(best, float(alc[members[k], j]))
            per[j, k] = best
    return [float(v) for v in per.mean(axis=0)]


def choose_k(lodo: Sequence[float], noise: float, k_min: int, k_max: int) -> int:
    """The smallest K in ``[k_min, k_max]`` whose leave-one-dataset-out oracle is within ``noise``
    of the best K's."""
    k_max = min(k_max, len(lodo))
    k_min = min(k_min, k_max)
    if any(math.isnan(v) for v in lodo):
        return k_min
    best = max(lodo[k_min - 1:k_max])
    return next(k for k in range(k_min, k_max + 1) if lodo[k - 1] >= best - noise)


def analyse(cells: Sequence[Mapping[str, Any]], candidates: Sequence[Candidate], targets: Sequence[str],
            seeds: Sequence[int], *, k_min: int = 4, k_max: int = 10) -> dict[str, Any]:
    """Seed noise, saturated datasets, the greedy members, the oracle against K (in sample and
    leave-one-dataset-out), the chosen K and the headroom that exceeds the noise.

    Raises
    ------
    PoolError
        No dataset where every candidate has every seed ``ok``.
    """
    names = [c.name for c in candidates]
    a = seed_alcs(cells, names, targets, seeds)
    complete = [j for j in range(len(targets)) if not np.isnan(a[:, j, :]).any()]
    incomplete = [targets[j] for j in range(len(targets)) if j not in complete]
    if not complete:
        raise PoolError(None, "no dataset has every candidate on every seed ok: the pool's matrix is not done",
                        field="cells")
    mean = a.mean(axis=2)  # [candidate, target]
    half_range = (a.max(axis=2) - a.min(axis=2)) / 2.0
    noise = {targets[j]: float(np.mean(half_range[:, j])) for j in complete}
    spread = {targets[j]: float(mean[:, j].max() - mean[:, j].min()) for j in complete}
    saturated = [targets[j] for j in complete if spread[targets[j]] <= noise[targets[j]]]
    used = [j for j in complete if targets[j] not in saturated]
    if len(used) < 2:
        logger.warning("pool: %d of %d complete datasets are saturated; too few would be left, so none is left out",
                       len(saturated), len(complete))
        used = list(complete)
    m = mean[:, used]
    k_cap = min(k_max, len(names))
    members = greedy(m, k_cap)
    curve = oracle_curve(m, members, k_cap)
    lodo = lodo_curve(m, k_cap)
    mean_noise = float(np.mean([noise[targets[j]] for j in used]))
    k = choose_k(lodo, mean_noise, k_min, k_cap)
    chosen = members[:k]
    used_names = [targets[j] for j in used]
    sb = members[0]
    oracle_alc = m[chosen].max(axis=0)
    headroom = {t: float(oracle_alc[c] - m[sb, c]) for c, t in enumerate(used_names)}
    counted = {t: (h if h > noise[t] else 0.0) for t, h in headroom.items()}
    assign = {}
    for c, t in enumerate(used_names):
        top = float(m[chosen, c].max())
        assign[t] = names[next(i for i in chosen if m[i, c] >= top - noise[t])]
    return {
        "seeds": [int(s) for s in seeds], "candidates": names, "datasets": list(targets),
        "incomplete": incomplete, "saturated": saturated, "used": used_names,
        "dropped": [t for t in saturated if t not in used_names],
        "noise": noise, "spread": spread, "mean_noise": mean_noise,
        "mean_alc": {names[i]: float(m[i].mean()) for i in range(len(names))},
        "greedy": [names[i] for i in members], "oracle_vs_k": curve, "lodo_oracle_vs_k": lodo,
        "k_range": [k_min, k_max], "k": k, "members": [names[i] for i in chosen],
        "single_best": {"name": names[sb], "mean_alc": float(m[sb].mean())},
        "oracle_mean_alc": float(oracle_alc.mean()),
        "headroom": {"per_dataset": headroom, "mean": float(np.mean(list(headroom.values()))),
                     "beyond_noise": counted, "mean_beyond_noise": float(np.mean(list(counted.values())))},
        "assignment": assign,
        "cells": {names[i]: {targets[j]: [None if np.isnan(v) else float(v) for v in a[i, j]]
                             for j in range(len(targets))} for i in range(len(names))},
    }


def compare_designs(analysis: Mapping[str, Any], candidates: Sequence[Candidate], incumbents: Portfolio) -> dict[str, Any]:
    """The greedy portfolio beside the seed paper's design (each dataset's BOHB incumbent), on the
    pool's cells of the datasets the analysis used (mean over its seeds).

    Every incumbent is looked up in the pool by configuration digest; one the pool lacks (a
    searched configuration beyond ``max_searched``) cannot be scored here and is listed in
    ``incumbents.missing``, its datasets left out of that design's figures.

    Returns
    -------
    dict
        ``greedy`` and ``incumbents``, each ``configurations`` (distinct), ``single_best`` and
        ``single_best_mean_alc``, ``oracle_mean_alc`` (in sample); ``incumbents`` also
        ``own_incumbent_mean_alc`` (each dataset run with its own run's incumbent, what the seed
        paper's selector earns when it names the query's nearest dataset right; optimistic, as
        BOHB chose each incumbent on seed 0 of that very dataset), ``of_dataset`` (dataset ->
        candidate) and ``missing``; ``datasets`` (those scored).
    """
    by_digest = {digest(c.config): c.name for c in candidates}
    used = list(analysis["used"])
    of_dataset = {inc.dataset: by_digest.get(digest(inc.config)) for inc in incumbents.incumbents
                  if inc.dataset in used}
    missing = sorted(d for d, c in of_dataset.items() if c is None)
    scored = [d for d in used if of_dataset.get(d)]

    def alc(name: str, dataset: str) -> float:
        return float(np.mean([v for v in analysis["cells"][name][dataset] if v is not None]))

    def figures(members: Sequence[str]) -> dict[str, Any]:
        means = {m: float(np.mean([alc(m, d) for d in scored])) for m in members}
        sb = max(members, key=lambda m: (means[m], -list(members).index(m)))
        return {"configurations": list(members), "single_best": sb, "single_best_mean_alc": means[sb],
                "oracle_mean_alc": float(np.mean([max(alc(m, d) for m in members) for d in scored]))}

    distinct = list(dict.fromkeys(c for c in (of_dataset.get(d) for d in scored) if c))
    inc = figures(distinct) if scored else {}
    if scored:
        inc["own_incumbent_mean_alc"] = float(np.mean([alc(of_dataset[d], d) for d in scored]))
    return {"datasets": scored, "greedy": figures(list(analysis["members"])) if scored else {},
            "incumbents": {**inc, "of_dataset": of_dataset, "missing": missing}}


def _designs_markdown(designs: Mapping[str, Any]) -> list[str]:
    g, i = designs.get("greedy") or {}, designs.get("incumbents") or {}
    if not g or "oracle_mean_alc" not in i:
        return []
    lines = ["", "## The two designs", "",
             f"The greedy portfolio beside the seed paper's (each dataset's own BOHB incumbent; "
             f"`--portfolio incumbents`), on the pool's cells of the {len(designs['datasets'])} datasets used "
             "(mean over the seeds). \"each dataset's own\": every dataset run with its own incumbent, what the seed "
             "paper's selector earns when it names the query's dataset right (optimistic: BOHB chose each incumbent "
             "on that dataset).", "",
             "| design | configurations | single best | single best mean ALC | oracle (in sample) | each dataset's own |",
             "|---|---|---|---|---|---|",
             f"| greedy (K = {len(g['configurations'])}) | {len(g['configurations'])} | {g['single_best']} | "
             f"{g['single_best_mean_alc']:.4f} | {g['oracle_mean_alc']:.4f} | - |",
             f"| incumbents | {len(i['configurations'])} | {i['single_best']} | {i['single_best_mean_alc']:.4f} | "
             f"{i['oracle_mean_alc']:.4f} | {i['own_incumbent_mean_alc']:.4f} |"]
    if i.get("missing"):
        lines += ["", "Not scored (their incumbent is not in the pool): " + ", ".join(i["missing"]) + "."]
    return lines


def greedy_portfolio(analysis: Mapping[str, Any], candidates: Sequence[Candidate],
                     paths: Mapping[str, str | Path], template: Portfolio, *, command: str = "") -> Portfolio:
    """The portfolio file of the greedy design: each used (non-saturated) dataset with the member
    :func:`analyse` assigned it (``member`` names it; ``alc``: the member's mean ALC there)."""
    by_name = {c.name: c for c in candidates}
    rows = []
    for t in analysis["used"]:
        cand = by_name[analysis["assignment"][t]]
        alcs = [v for v in analysis["cells"][cand.name][t] if v is not None]
        rows.append(Incumbent(dataset=t, dataset_path=str(paths.get(t, "")), config=dict(cand.config),
                              alc=float(np.mean(alcs)), budget=1.0,
                              config_id=tuple(cand.origin.get("config_id", (0, 0, 0))),  # type: ignore[arg-type]
                              trials=0, run_id=str(cand.origin.get("run_id", "fixed")), member=cand.name))
    provenance = {**template.provenance, "design": "greedy", "command": command,
                  "members": [by_name[n].to_dict() for n in analysis["members"]],
                  "single_best": analysis["single_best"], "k": analysis["k"],
                  "saturated": analysis["saturated"], "seeds": analysis["seeds"]}
    return Portfolio(protocol=dict(template.protocol), clock=template.clock, timing=dict(template.timing),
                     space=dict(template.space), incumbents=sorted(rows, key=lambda r: r.dataset),
                     provenance=provenance)


def incumbents_portfolio(runs: str | Path, analysis: Mapping[str, Any], *, command: str = "") -> Portfolio:
    """The seed paper's design on the same datasets as the greedy one (saturated ones left out)."""
    import dataclasses

    full = incumbents_from_runs(runs, command=command)
    used = set(analysis["used"])
    # canonical configurations, so that the pool's cells of the same configuration are found
    full.incumbents = [dataclasses.replace(inc, config=canonical(inc.config)) for inc in full.incumbents
                       if inc.dataset in used]
    full.provenance.update(design="incumbents", saturated=analysis["saturated"])
    return full


# --- the report -------------------------------------------------------------------------------
def curve_figure(analysis: Mapping[str, Any], path: str | Path) -> Path:
    """The oracle's mean ALC against K, in sample and leave-one-dataset-out, with the mean seed
    noise as a band around the leave-one-dataset-out curve and the chosen K marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = np.arange(1, len(analysis["oracle_vs_k"]) + 1)
    lodo = np.asarray(analysis["lodo_oracle_vs_k"])
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(ks, analysis["oracle_vs_k"], "o-", label="oracle of the first K (in sample)")
    ax.plot(ks, lodo, "s-", label="leave one dataset out")
    ax.fill_between(ks, lodo - analysis["mean_noise"], lodo + analysis["mean_noise"], alpha=0.2,
                    label=f"+- mean seed noise ({analysis['mean_noise']:.3f})")
    ax.axvline(analysis["k"], color="grey", ls="--", label=f"chosen K = {analysis['k']}")
    ax.set_xlabel("K (members, greedy order)")
    ax.set_ylabel("mean ALC of the best member")
    ax.set_title(f"greedy portfolio over {len(analysis['candidates'])} candidates, {len(analysis['used'])} datasets")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    try:  # written beside and renamed: a full disk leaves the picture before as it was
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=110, format=path.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return path


def seed_oracle_curves(analysis: Mapping[str, Any]) -> list[list[float]]:
    """The oracle mean ALC against K on each seed alone: ``[seed][K-1]``, the greedy members
    in their order, over the used datasets (the spread between seeds is the curve's seed noise)."""
    used, greedy_order = analysis["used"], analysis["greedy"]
    out = []
    for s in range(len(analysis["seeds"])):
        a = np.array([[analysis["cells"][m][t][s] for t in used] for m in greedy_order], dtype=float)
        out.append([float(np.max(a[:k], axis=0).mean()) for k in range(1, len(greedy_order) + 1)])
    return out


def fixed_against_single_best(analysis: Mapping[str, Any], prefix: str = "fixed:") -> dict[str, Any] | None:
    """The single best against the best fixed configuration of the pool (names starting with
    ``prefix``: the grid's configurations and ``baseline:default``), mean ALC over the used
    datasets, and against the best fixed one other than itself (``next_fixed``); None where
    the pool has no fixed configuration."""
    fixed = {n: v for n, v in analysis["mean_alc"].items() if n.startswith(prefix)}
    if not fixed:
        return None
    order = sorted(fixed, key=lambda n: -fixed[n])
    sb = analysis["single_best"]
    out = {"single_best": sb["name"], "single_best_mean_alc": float(sb["mean_alc"]), "best_fixed": order[0],
           "best_fixed_mean_alc": float(fixed[order[0]]), "difference": float(sb["mean_alc"] - fixed[order[0]])}
    other = [n for n in order if n != sb["name"]]
    if other:  # where the single best is a fixed configuration itself: the best of the others
        out.update(next_fixed=other[0], next_fixed_mean_alc=float(fixed[other[0]]),
                   next_difference=float(sb["mean_alc"] - fixed[other[0]]))
    return out


def analysis_markdown(analysis: Mapping[str, Any], *, protocol: str, clock: str) -> str:
    """``greedy.md``: members, the oracle against K (with its seed noise), every candidate's mean
    ALC against the best fixed one, noise, saturated datasets, headroom."""
    per_seed = seed_oracle_curves(analysis)
    lines = ["# The greedy portfolio", "",
             f"Protocol `{protocol}`, {clock} clock, full budget, seeds {analysis['seeds']}; "
             f"{len(analysis['candidates'])} candidates on {len(analysis['datasets'])} datasets "
             f"({len(analysis['used'])} used, {len(analysis['saturated'])} saturated, "
             f"{len(analysis['incomplete'])} incomplete).", "",
             f"K = {analysis['k']} (smallest in {analysis['k_range']} whose leave-one-dataset-out oracle is within "
             f"the mean seed noise {analysis['mean_noise']:.4f} of the best K's; picture `{CURVE_FILE}`). Per seed: "
             "the in-sample oracle of the same members on each seed alone, lowest and highest (its seed noise).", "",
             "| K | member added | oracle mean ALC (in sample) | per seed | leave one dataset out |",
             "|---|---|---|---|---|"]
    for k, (o, lo) in enumerate(zip(analysis["oracle_vs_k"], analysis["lodo_oracle_vs_k"]), 1):
        name = analysis["greedy"][k - 1] if k <= len(analysis["greedy"]) else "(none raises it)"
        seeds = [c[k - 1] for c in per_seed if k <= len(c)]
        spread = f"{min(seeds):.4f}-{max(seeds):.4f}" if seeds else "-"
        lines.append(f"| {k} | {name} | {o:.4f} | {spread} | {lo:.4f} |")
    h = analysis["headroom"]
    lines += ["", f"Single best: `{analysis['single_best']['name']}`, mean ALC "
                  f"{analysis['single_best']['mean_alc']:.4f}; oracle of the K members {analysis['oracle_mean_alc']:.4f}; "
                  f"headroom {h['mean']:.4f}, of which beyond seed noise {h['mean_beyond_noise']:.4f}."]
    vs = fixed_against_single_best(analysis)
    if vs:
        if vs["best_fixed"] == vs["single_best"]:
            text = (f"`{vs['single_best']}` ({vs['single_best_mean_alc']:.4f}) is itself the best fixed configuration "
                    "of the pool (the grid's and `baseline:default`)")
        else:
            text = (f"The single best `{vs['single_best']}` {vs['single_best_mean_alc']:.4f} against the best fixed "
                    f"configuration of the pool (the grid's and `baseline:default`), `{vs['best_fixed']}` "
                    f"{vs['best_fixed_mean_alc']:.4f} ({vs['difference']:+.4f})")
        if vs.get("next_fixed", vs["best_fixed"]) != vs["best_fixed"]:
            text += (f"; the next fixed one: `{vs['next_fixed']}` {vs['next_fixed_mean_alc']:.4f} "
                     f"({vs['next_difference']:+.4f} to the single best)")
        lines += ["", text + ". Same datasets, protocol, clock and seeds.", "",
                  "| candidate | mean ALC | member |", "|---|---|---|"]
        members = set(analysis["members"])
        for n, v in sorted(analysis["mean_alc"].items(), key=lambda kv: -kv[1]):
            lines.append(f"| {n} | {v:.4f} | {'yes' if n in members else ''} |")
    lines += ["", "| dataset | seed noise | spread of the pool | headroom | beyond noise | member |",
              "|---|---|---|---|---|---|"]
    for t in analysis["datasets"]:
        if t in analysis["used"]:
            lines.append(f"| {t} | {analysis['noise'][t]:.4f} | {analysis['spread'][t]:.4f} | "
                         f"{h['per_dataset'][t]:.4f} | {h['beyond_noise'][t]:.4f} | {analysis['assignment'][t]} |")
        elif t in analysis["saturated"]:
            lines.append(f"| {t} | {analysis['noise'][t]:.4f} | {analysis['spread'][t]:.4f} | - | - | "
                         "saturated: left out |")
        else:
            lines.append(f"| {t} | - | - | - | - | incomplete: left out |")
    lines += _designs_markdown(analysis.get("designs") or {})
    return "\n".join(lines) + "\n"


def write_analysis(analysis: Mapping[str, Any], out: str | Path, *, protocol: str, clock: str) -> dict[str, Path]:
    """``greedy.json``, ``greedy.md`` and the picture into ``out``, each written whole (a full disk,
    a read-only folder: an ``OSError`` naming the file, the one before left as it was)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / ANALYSIS_FILE, "md": out / ANALYSIS_MD, "png": out / CURVE_FILE}
    write_json_atomic(paths["json"], analysis, indent=1, allow_nan=False)
    atomic_write_text(paths["md"], analysis_markdown(analysis, protocol=protocol, clock=clock))
    curve_figure(analysis, paths["png"])
    return paths


def read_cells(folder: str | Path) -> list[dict[str, Any]]:
    """The cells of a pool folder (``cells.jsonl``)."""
    from portfolio.cost_matrix import CELLS_FILE

    return read_jsonl(Path(folder) / CELLS_FILE)
