"""Building a portfolio from a collection, end to end, resumably: ``autodl-meta portfolio build``.

Seven steps, each skipped where its output is complete, each timed in ``manifest.json``:

1. the collection's datasets (:func:`autodl.collection_build.build_collection`) into ``--data``;
2. BOHB on every dataset (:func:`offline_bohb.local.run_local`) into ``OUT/runs/<dataset>/``,
   each run seeded by :func:`offline_bohb.run.derive_seed` of the build's seed and the
   dataset's name and warm-started with fixed configurations of the grid (:mod:`offline_bohb`);
   a run whose iterations are all done is not started again; the manifest's ``bohb`` says
   per run how many configurations BOHB sampled and how many its model picked;
3. the shared candidate pool (:func:`portfolio.pool.plan_pool`) into ``OUT/pool/pool.json``:
   the warm start's fixed configurations and the searched configurations that beat them on
   their own dataset, as many as fit in ``pool_hours`` worker-hours of step 4 (estimated from
   the runs' trial times);
4. the pool on every dataset over ``matrix_seeds`` (:func:`portfolio.pool.run_pool_matrix`,
   Dask, resumable) into ``OUT/pool/``; the BOHB trials that are such cells are copied;
5. the analysis (:func:`portfolio.pool.analyse`: seed noise, saturated datasets, the greedy
   members, the oracle against K, K by leave-one-dataset-out) into ``OUT/pool/greedy.*``,
   and the portfolio (``portfolio``: ``greedy`` or the seed paper's ``incumbents``) into
   ``OUT/portfolio.json``, over the datasets that are not saturated;
6. the cost matrix of that portfolio (:func:`portfolio.cost_matrix.run_cost_matrix`) into
   ``OUT/`` (cells, ``cost_matrix.csv``, the heatmap, the single best, the oracle and the
   headroom): its cells are the pool's, copied, so nothing is computed again unless the
   ``incumbents`` design holds an incumbent the pool left out.

Stopped anywhere (Ctrl-C, a killed machine), the same command continues where it stopped:
finished trials and cells are never computed again. ``OUT`` is what gets committed
(``portfolio/default/`` for the embedded default); the datasets are rebuilt from the
collection file. :mod:`pipeline.default_build` adds the meta-features and the selectors
(``autodl-meta portfolio build-default``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.records import code_revision, file_sha256, is_temporary, read_jsonl, utc_now, write_json_atomic

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"


DEFAULT_ITERATIONS = 3
"""BOHB brackets per dataset (after the warm start); see :mod:`offline_bohb` for why 3."""


@dataclass
class BuildSettings:
    """The scale of a portfolio build (what a cluster user turns up).

    ``seed`` seeds the evaluations (the BOHB trials and the cost matrix's first seed alike);
    each dataset's BOHB run samples with its own seed, :func:`offline_bohb.run.derive_seed`
    of ``seed`` and the dataset's name. ``warm_start``: what every run evaluates at the full
    budget before its brackets (:data:`offline_bohb.run.WARM_STARTS`): the pool's fixed
    candidates. ``bohb``: the configuration generator's settings over
    :data:`offline_bohb.run.DEFAULT_BOHB`. ``matrix_seeds``: the seeds of the pool's and the
    cost matrix's cells (the first should be ``seed``, so that the runs' full-budget trials
    are cells). ``pool_per_run``, ``pool_searched``: searched candidates per run and in all;
    ``pool_hours``: the worker-hours the pool's matrix is sized to (searched candidates whose
    cells would not fit are left out; ``None`` or 0: no limit; :func:`portfolio.pool.plan_pool`).
    The default, 8 worker-hours (4 hours on this machine's 2 workers), is sized for the whole
    default build within 12 hours of a 2-core machine with a margin for the estimate's error
    (about 20%): its BOHB runs take about 5.2 hours, the fixed candidates' second seed alone
    about 6.8 worker-hours, the selector comparison 1.4 hours at most
    (``docs/portfolio-build-log.md``). ``portfolio``: ``greedy`` (K members chosen in
    ``[k_min, k_max]``) or ``incumbents`` (:data:`portfolio.pool.DESIGNS`). ``only``: dataset
    names or ``tag:NAME`` of the collection (empty: all).
    """

    collection: str = "default"
    data: str = "data/collections/default"
    protocol: str = "mini"
    clock: str = "simulated"
    timing: str | None = None
    iterations: int = DEFAULT_ITERATIONS
    min_budget: float = 1 / 9
    max_budget: float = 1.0
    eta: int = 3
    seed: int = 0
    workers: int = 2
    matrix_seeds: tuple[int, ...] = (0, 1)
    scheduler: str | None = None
    only: tuple[str, ...] = ()
    space: str | None = None
    objective_args: dict[str, Any] = field(default_factory=dict)
    warm_start: str = "grid-core"
    bohb: dict[str, Any] = field(default_factory=dict)
    pool_per_run: int = 1
    pool_searched: int = 8
    pool_hours: float | None = 8.0
    portfolio: str = "greedy"
    k_min: int = 4
    k_max: int = 10


def run_complete(run_dir: Path, settings: BuildSettings) -> bool:
    """Whether a BOHB run folder holds a returned job for every job of its warm start and iterations."""
    from offline_bohb.run import RunFolder, planned_trials

    folder = RunFolder(run_dir)
    if not folder.run_json.is_file():
        return False
    run = folder.read_run()
    planned = planned_trials(run, max(int(run.get("iterations", 0)), settings.iterations))
    done = {(tuple(r["config_id"]), round(float(r["budget"]), 9)) for r in read_jsonl(run_dir / "trials.jsonl")}
    return len(done) >= planned


def bohb_summary(out: Path, names: list[str]) -> dict[str, Any]:
    """Per dataset and over all: BOHB's samples and model-based samples
    (:func:`offline_bohb.run.sample_counts`) and the runs' seeds, from ``out/runs/``."""
    from offline_bohb.run import RunFolder, sample_counts

    per: dict[str, Any] = {}
    for name in names:
        folder = out / "runs" / name
        if not (folder / "run.json").is_file():
            continue
        run = RunFolder(folder).read_run()
        per[name] = {"bohb_seed": run.get("bohb_seed", run.get("seed")), **sample_counts(folder)}
    total = {k: sum(int(v.get(k) or 0) for v in per.values())
             for k in ("warm_start", "samples", "model_based", "after_first", "model_based_after_first")}
    total["share_after_first"] = (round(total["model_based_after_first"] / total["after_first"], 4)
                                  if total["after_first"] else None)
    shares = [v["share_after_first"] for v in per.values() if v["share_after_first"] is not None]
    total["lowest_share_after_first"] = min(shares) if shares else None
    return {"runs": per, "all": total}


def bohb_spec(settings: BuildSettings, name: str, path: str | Path, command: str = "") -> Any:
    """The :class:`~offline_bohb.run.RunSpec` of dataset ``name``'s BOHB run in a build: the
    build's settings, the evaluation seed ``settings.seed`` and the BOHB seed
    :func:`~offline_bohb.run.derive_seed` of it and the dataset's name."""
    from offline_bohb.run import RunSpec, derive_seed

    return RunSpec(dataset=str(path), protocol=settings.protocol, clock=settings.clock, timing=settings.timing,
                   min_budget=settings.min_budget, max_budget=settings.max_budget, eta=settings.eta,
                   seed=settings.seed, bohb_seed=derive_seed(settings.seed, name),
                   bohb_seed_from={"build_seed": settings.seed, "dataset": name,
                                   "function": "offline_bohb.run.derive_seed"},
                   iterations=settings.iterations, command=command, space=settings.space,
                   objective_args=dict(settings.objective_args), warm_start=settings.warm_start,
                   bohb=dict(settings.bohb))


def rehearse_search(settings: BuildSettings, out: str | Path, *, datasets: list[tuple[str, Path]] | None = None,
                    workers: int | None = None,
                    progress: Callable[[str, Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """The build's BOHB step with the synthetic objective (:mod:`offline_bohb.synthetic`: instant
    trials) into ``out/runs/``: the same datasets (their shapes decide the spaces), seeds, warm
    start, budgets, iterations and BOHB settings, so that what the search will do (how many
    samples, how many model-based) is known before hours are spent on it.

    Parameters
    ----------
    datasets:
        ``(name, folder)`` pairs; by default the collection's datasets already built under
        ``settings.data`` (the others are left out, with a warning).
    progress:
        ``(dataset, sample counts)`` after each run.

    Returns
    -------
    dict
        :func:`bohb_summary` of the runs.
    """
    import dataclasses

    from autodl.collection import load_collection
    from offline_bohb.local import run_local

    out = Path(out)
    if datasets is None:
        wanted = [r.name for r in load_collection(settings.collection).select(list(settings.only) or None)]
        datasets = [(n, Path(settings.data) / n) for n in wanted if (Path(settings.data) / n).is_dir()]
        missing = sorted(set(wanted) - {n for n, _ in datasets})
        if missing:
            logger.warning("rehearse_search: not built under %s, left out: %s", settings.data, ", ".join(missing))
    for name, path in datasets:
        spec = dataclasses.replace(bohb_spec(settings, name, path, "rehearse_search"),
                                   objective="offline_bohb.synthetic:synthetic_evaluator",
                                   objective_args={"seconds": 0.0, **dict(settings.objective_args)})
        summary = run_local(spec, out / "runs" / name, workers=workers or settings.workers, ping_interval=1)
        if progress is not None:
            progress(name, summary.samples)
    return bohb_summary(out, [n for n, _ in datasets])


def settings_dict(settings: BuildSettings) -> dict[str, Any]:
    """The settings as the manifest records them (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in settings.__dict__.items()}


def read_manifest(out: str | Path) -> dict[str, Any]:
    """``OUT/manifest.json`` (an empty dict where there is none).

    Raises
    ------
    PortfolioError
        The file is there but is not a manifest (names the file).
    """
    from portfolio.incumbents import PortfolioError

    path = Path(out) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PortfolioError(path, f"not valid JSON ({exc}); remove it to start the manifest again") from None
    if not isinstance(data, dict) or not isinstance(data.get("steps", []), list):
        raise PortfolioError(path, "not a build manifest (expected an object with a list of steps)", field="steps")
    return data


class Manifest:
    """``manifest.json``: the steps of the build, their commands and durations, and checksums.

    ``settings`` (a :class:`BuildSettings` or a plain dict) replaces the recorded settings;
    the command is appended to the commands of the earlier builds into the same folder, with
    the code's git commit (``code``: :func:`autodl.records.code_revision`; None outside a
    checkout), since a resumed build may run from another clone at another commit.
    """

    def __init__(self, out: Path, command: str, settings: BuildSettings | Mapping[str, Any]) -> None:
        self.path = out / MANIFEST
        data = read_manifest(out)
        data.setdefault("format", "autodl-meta-portfolio-build/1")
        data.setdefault("steps", [])
        data["settings"] = settings_dict(settings) if isinstance(settings, BuildSettings) else dict(settings)
        data.setdefault("commands", []).append({"command": command, "started": utc_now(),
                                                 "code": code_revision()})
        self.data = data
        self.save()

    @property
    def command(self) -> dict[str, Any]:
        """This build's entry of ``commands`` (add to it, then :meth:`save`)."""
        return self.data["commands"][-1]

    def step(self, name: str, seconds: float, **info: Any) -> None:
        self.data["steps"].append({"step": name, "seconds": round(seconds, 1), "finished": utc_now(), **info})
        self.save()

    def checksums(self, out: Path) -> None:
        """Record the SHA-256 and size of every file of ``out`` that gets committed."""
        self.data["files"] = {p.relative_to(out).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
                              for p in committed_files(out)}
        self.save()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, self.data, newline=False, indent=1)


def committed_files(out: str | Path) -> list[Path]:
    """The files of a portfolio folder that get committed: all but the manifest, BOHB's local
    working folders and logs, nameserver credentials and the temporary files of a writer killed
    while writing (:func:`autodl.records.is_temporary`)."""
    out = Path(out)
    return [p for p in sorted(out.rglob("*")) if p.is_file() and p.name != MANIFEST and "work" not in p.parts
            and "logs" not in p.parts and not p.name.startswith("nameserver-") and not is_temporary(p)]


def build(out: str | Path, settings: BuildSettings, *, command: str = "",
          on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
          bohb_progress: Callable[[str], Callable[[Any, Mapping[str, Any]], None] | None] | None = None,
          cell_progress: Callable[[Mapping[str, Any]], None] | None = None) -> dict[str, Any]:
    """Build (or continue building) a portfolio into ``out`` (see the module docstring).

    Parameters
    ----------
    on_event:
        ``(event, info)`` at the start and end of each step and dataset (for a progress display).
    bohb_progress:
        ``dataset -> progress callback`` handed to each BOHB run (or None).
    cell_progress:
        Called after each cost-matrix cell.

    Returns
    -------
    dict
        The manifest.
    """
    out = Path(out)
    manifest = Manifest(out, command, settings)
    run_steps(out, settings, manifest, command=command, on_event=on_event, bohb_progress=bohb_progress,
              cell_progress=cell_progress)
    manifest.checksums(out)
    (on_event or (lambda event, info: None))("done", {})
    return manifest.data


def run_steps(out: Path, settings: BuildSettings, manifest: Manifest, *, command: str = "",
              on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
              bohb_progress: Callable[[str], Callable[[Any, Mapping[str, Any]], None] | None] | None = None,
              cell_progress: Callable[[Mapping[str, Any]], None] | None = None) -> list[Any]:
    """Steps 1 to 6 of :func:`build` (collection, BOHB, pool, pool matrix, portfolio, cost
    matrix), each timed in ``manifest``; returns the collection's
    :class:`~autodl.collection_build.BuildResult` list."""
    from autodl.collection import load_collection
    from autodl.collection_build import build_collection
    from offline_bohb.local import run_local
    from portfolio.cost_matrix import run_cost_matrix
    from portfolio.incumbents import incumbents_from_runs
    from portfolio.pool import (POOL_DIR, POOL_FILE, analyse, compare_designs, greedy_portfolio, incumbents_portfolio,
                                load_pool, plan_pool, run_pool_matrix, save_pool, write_analysis)

    from portfolio.pool import DESIGNS, PoolError

    if settings.portfolio not in DESIGNS:
        raise PoolError(None, f"{settings.portfolio!r}: expected one of {', '.join(DESIGNS)}", field="portfolio")
    notify = on_event or (lambda event, info: None)
    collection = load_collection(settings.collection)
    only = list(settings.only) or None

    t = time.perf_counter()
    notify("collection", {})
    built = build_collection(collection, settings.data, only=only)
    manifest.step("collection", time.perf_counter() - t, built=sum(b.status != "skipped" for b in built),
                  datasets=len(built))

    for b in built:
        run_dir = out / "runs" / b.name
        if run_complete(run_dir, settings):
            continue
        notify("bohb", {"dataset": b.name})
        t = time.perf_counter()
        spec = bohb_spec(settings, b.name, b.path, command)
        summary = run_local(spec, run_dir, workers=settings.workers,
                            progress=bohb_progress(b.name) if bohb_progress else None)
        inc = summary.incumbent()
        manifest.step(f"bohb {b.name}", time.perf_counter() - t, trials=summary.new_trials,
                      cpu_hours=round(summary.cpu_seconds / 3600, 4),
                      replayed=summary.replayed, incumbent_alc=inc[1] if inc else None,
                      bohb_seed=spec.bohb_seed, **{k: summary.samples.get(k) for k in
                                                   ("samples", "model_based", "after_first", "share_after_first")})
    manifest.data["bohb"] = bohb_summary(out, [b.name for b in built])
    manifest.save()

    names = [b.name for b in built]
    paths = {b.name: b.path for b in built}
    pool_dir = out / POOL_DIR
    pool_file = pool_dir / POOL_FILE
    notify("pool", {})
    t = time.perf_counter()
    if pool_file.is_file():
        candidates = load_pool(pool_file)
    else:
        plan = plan_pool(out / "runs", settings.warm_start, per_run=settings.pool_per_run,
                         max_searched=settings.pool_searched, budget_hours=settings.pool_hours,
                         seeds=settings.matrix_seeds, eval_seed=settings.seed)
        candidates = plan.candidates
        save_pool(candidates, pool_file, warm_start=settings.warm_start, per_run=settings.pool_per_run,
                  max_searched=settings.pool_searched, command=command, **plan.provenance())
    manifest.step("pool", time.perf_counter() - t, candidates=len(candidates),
                  searched=sum(c.origin.get("kind") == "searched" for c in candidates),
                  estimate_hours=round(sum(float(c.origin.get("matrix_hours") or 0.0) for c in candidates), 3))

    notify("pool matrix", {"cells": len(candidates) * len(built) * len(settings.matrix_seeds)})
    t = time.perf_counter()
    pool_result = run_pool_matrix(candidates, out / "runs", [(b.name, b.path) for b in built], pool_dir,
                                  seeds=settings.matrix_seeds, eval_seed=settings.seed, workers=settings.workers,
                                  scheduler=settings.scheduler, timing=settings.timing, progress=cell_progress)
    manifest.step("pool matrix", time.perf_counter() - t, computed=len(pool_result.computed),
                  cells=len(pool_result.cells), cpu_hours=round(pool_result.timings["cpu_seconds"] / 3600, 4))

    notify("portfolio", {"design": settings.portfolio})
    t = time.perf_counter()
    template = incumbents_from_runs(out / "runs", command=command)
    analysis = analyse(pool_result.cells, candidates, names, settings.matrix_seeds, k_min=settings.k_min,
                       k_max=settings.k_max)
    analysis["designs"] = compare_designs(analysis, candidates, template)
    write_analysis(analysis, pool_dir, protocol=template.protocol["name"], clock=template.clock)
    if settings.portfolio == "greedy":
        portfolio = greedy_portfolio(analysis, candidates, {n: paths[n] for n in names}, template, command=command)
    else:
        portfolio = incumbents_portfolio(out / "runs", analysis, command=command)
    portfolio.save(out / "portfolio.json")
    manifest.step("portfolio", time.perf_counter() - t, design=settings.portfolio, k=analysis["k"],
                  members=analysis["members"], saturated=analysis["saturated"], dropped=analysis["dropped"],
                  single_best=analysis["single_best"], oracle_mean_alc=analysis["oracle_mean_alc"])

    used = [b for b in built if b.name in set(analysis["used"])]
    notify("cost matrix", {"cells": len(portfolio.incumbents) * len(used) * len(settings.matrix_seeds)})
    t = time.perf_counter()
    result = run_cost_matrix(portfolio, [(b.name, b.path) for b in used], out, seeds=settings.matrix_seeds,
                             workers=settings.workers, scheduler=settings.scheduler, timing=settings.timing,
                             progress=cell_progress, known=pool_result.cells)
    manifest.step("cost matrix", time.perf_counter() - t, computed=len(result.computed),
                  single_best=result.summary.get("single_best"),
                  cpu_hours=round(result.timings["cpu_seconds"] / 3600, 4))
    return built
