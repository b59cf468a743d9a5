"""``autodl-meta benchmark grid``: does the configuration space give selection something to choose?

A grid of configurations (:data:`finetune.grid.GRID`, about 20, spanning the anytime knobs of
``configs/space/finetune.yaml`` as well as the networks and their training) is evaluated
on datasets of different kinds (:data:`GRID_DATASETS`) with several seeds, on the
simulated clock (results independent of the machine's load, so the evaluations may run
side by side). Per dataset the report gives best minus worst configuration, best minus
``baseline:default``, and beside them the spread over seeds (so that a difference between
configurations can be told from noise). If every dataset had the same best configuration,
or the differences were within the seed spread, there would be nothing to select.

Evaluations are appended to a JSON-lines file as they finish, seed by seed (all pairs of
seed 0 first), and a stopped run resumes where it stopped.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from autodl.machine import machine_description
from autodl.records import Status, append_jsonl, read_jsonl, utc_now, utc_now_text
from autodl.workers import end_with_parent
from pipeline.benchmarks.clock_agreement import prepare_dataset
from finetune.grid import GRID  # the configurations live in the library (BOHB's warm start uses them)

logger = logging.getLogger(__name__)

GRID_DATASETS: tuple[str, ...] = ("Monkeys", "miniciao", "digits", "textures", "moving_squares", "fmnist3k")
"""Natural photos of varying size with 26 training examples, CIFAR-like photos (82
training examples), handwriting (8 px), textures (32 px), synthetic video whose class is
motion, clothing (28 px; 3000 training examples). In this order, the cheapest and most
varied first, so that a run stopped early has the most informative part."""

SEEDS: tuple[int, ...] = (0, 1, 2)


def _key(row: dict[str, Any]) -> tuple[str, str, int]:
    return row["config"], row["dataset"], int(row["seed"])


def _read(results: Path) -> dict[tuple[str, str, int], dict[str, Any]]:
    return {_key(row): row for row in read_jsonl(results)}


def read_grid(results: str | Path) -> list[dict[str, Any]]:
    """The rows of a grid results file (the last row of each evaluation)."""
    return list(_read(Path(results)).values())


def _evaluate_one(config_name: str, dataset_name: str, path: str, seed: int, protocol: str,
                  timing: str | None) -> dict[str, Any]:
    """One grid cell, in a worker process with one PyTorch thread."""
    from finetune.config_runs import evaluate, torch_threads

    with torch_threads(1):
        ev = evaluate(GRID[config_name], path, protocol, clock="simulated", seed=seed, device="cpu",
                      timing=timing)
    return {"config": config_name, "dataset": dataset_name, "seed": seed, "status": ev.status, "alc": ev.alc,
            "final_nauc": ev.final_nauc, "predictions": len(ev.curve), "wall_seconds": ev.wall_seconds,
            "timestamps": ev.curve.timestamps, "nauc": ev.curve.nauc, "error": ev.error, "protocol": protocol,
            "clock": "simulated", "when": utc_now()}


def run_grid(results: str | Path, data_dir: str | Path, *, configs: Sequence[str] | None = None,
             datasets: Sequence[str] = GRID_DATASETS, seeds: Sequence[int] = SEEDS, protocol: str = "mini",
             workers: int = 1, timing: str | Path | None = None,
             progress: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every (configuration, dataset, seed) not yet in ``results``, ``workers`` at a
    time (each a process with one PyTorch thread), appending a JSON line per evaluation.
    Returns all rows of ``results``."""
    results, data_dir = Path(results), Path(data_dir)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = _read(results)
    names = list(configs or GRID)
    unknown = [c for c in names if c not in GRID]
    if unknown:
        from autodl.errors import AutoDLError

        raise AutoDLError(None, f"unknown grid configuration(s) {unknown}; known: {', '.join(GRID)}",
                          field="configs")
    paths = {d: prepare_dataset(d, data_dir) for d in datasets}
    todo = [(c, d, s) for s in seeds for d in datasets for c in names
            if paths[d] is not None and (c, d, s) not in done]
    logger.info("grid: %d evaluations done, %d to do", len(done), len(todo))
    timing_arg = None if timing is None else str(timing)
    if workers <= 1:
        for c, d, s in todo:
            _record(results, done, _evaluate_one(c, d, str(paths[d]), s, protocol, timing_arg), progress)
        return list(done.values())
    # "spawn": fresh interpreters, nothing inherited from this process's PyTorch state
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=end_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_evaluate_one, c, d, str(paths[d]), s, protocol, timing_arg) for c, d, s in todo]
        for future in as_completed(futures):
            _record(results, done, future.result(), progress)
    return list(done.values())


def _record(results: Path, done: dict, row: dict[str, Any], progress: Callable | None) -> None:
    append_jsonl(results, row)
    done[_key(row)] = row
    logger.info("%s / %s / seed %d: %s ALC %s", row["config"], row["dataset"], row["seed"], row["status"], row["alc"])
    if progress is not None:
        progress(row)


def grid_table(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per dataset: mean ALC of each configuration over its seeds, and the summary figures."""
    by: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["alc"] is not None:
            by.setdefault(r["dataset"], {}).setdefault(r["config"], []).append(float(r["alc"]))
    out = {}
    for ds, cfgs in by.items():
        means = {c: float(np.mean(v)) for c, v in cfgs.items()}
        spreads = [float(np.max(v) - np.min(v)) for v in cfgs.values() if len(v) > 1]
        best = max(means, key=means.get)
        worst = min(means, key=means.get)
        out[ds] = {"means": means, "seeds": {c: len(v) for c, v in cfgs.items()}, "best": best, "worst": worst,
                   "best_minus_worst": means[best] - means[worst],
                   "best_minus_default": means[best] - means["default"] if "default" in means else None,
                   "seed_range_mean": float(np.mean(spreads)) if spreads else None,
                   "seed_range_max": float(np.max(spreads)) if spreads else None}
    return out


def grid_report(rows: Sequence[dict[str, Any]], command: str) -> str:
    """The Markdown report: the summary per dataset, then the mean ALC of every cell."""
    table = grid_table(rows)
    datasets = [d for d in GRID_DATASETS if d in table] + sorted(set(table) - set(GRID_DATASETS))
    seen = {c for d in datasets for c in table[d]["means"]}
    configs = [c for c in GRID if c in seen] + sorted(seen - set(GRID))
    proto = rows[0]["protocol"] if rows else "?"
    crashed = [r for r in rows if r["status"] != Status.OK]
    when = utc_now_text()
    seeds = sorted({int(r["seed"]) for r in rows})

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.4f}"

    lines = [f"## grid: {len(configs)} configurations x {len(datasets)} datasets, simulated clock ({when})", "",
             f"- Command: `{command}`",
             f"- Machine: {machine_description()} (the simulated clock's table "
             "`configs/timing/` prices the costs; the results do not depend on the load)",
             f"- Protocol `{proto}`; seeds {seeds}; {len(rows)} evaluations, {len(crashed)} not ok",
             "- Seed range: max minus min ALC over the seeds of one (configuration, dataset), "
             "averaged (and the largest) over the configurations of the dataset", "",
             "| dataset | configurations | best (mean ALC) | worst (mean ALC) | best - worst | best - default | "
             "seed range mean | seed range max |",
             "|---|---:|---|---|---:|---:|---:|---:|"]
    for d in datasets:
        t = table[d]
        lines.append(f"| {d} | {len(t['means'])} of {len(configs)} | {t['best']} ({t['means'][t['best']]:.4f}) | {t['worst']} "
                     f"({t['means'][t['worst']]:.4f}) | {t['best_minus_worst']:.4f} | "
                     f"{f(t['best_minus_default'])} | {f(t['seed_range_mean'])} | {f(t['seed_range_max'])} |")
    lines += ["", "Mean ALC over the seeds (the number of seeds where fewer than all):", "",
              "| configuration | " + " | ".join(datasets) + " |", "|---|" + "---:|" * len(datasets)]
    for c in configs:
        cells = []
        for d in datasets:
            m = table[d]["means"].get(c)
            n = table[d]["seeds"].get(c, 0)
            cells.append("" if m is None else f"{m:.4f}" + ("" if n == len(seeds) else f" ({n})"))
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if crashed:
        lines += ["", "Not ok: " + "; ".join(f"{r['config']} on {r['dataset']} seed {r['seed']}: {r['status']} "
                                             f"({(r.get('error') or '')[:80]})" for r in crashed[:10])]
    return "\n".join(lines) + "\n"


def grid_heatmap(rows: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """A picture of the grid: mean ALC of each configuration (rows) on each dataset
    (columns), each column's best framed; cells not yet measured are blank."""
    from autodl.plots import alc_heatmap

    table = grid_table(rows)
    datasets = [d for d in GRID_DATASETS if d in table] + sorted(set(table) - set(GRID_DATASETS))
    seen = {c for d in datasets for c in table[d]["means"]}
    configs = [c for c in GRID if c in seen] + sorted(seen - set(GRID))
    values = np.full((len(configs), len(datasets)), np.nan)
    for j, d in enumerate(datasets):
        for i, c in enumerate(configs):
            values[i, j] = table[d]["means"].get(c, np.nan)
    framed = [(configs.index(table[d]["best"]), j) for j, d in enumerate(datasets)]
    return alc_heatmap(values, configs, datasets, path, framed=framed, colorbar="mean ALC over seeds",
                       title="configuration grid (simulated clock); red: best per dataset", row_height=0.35)

