"""``autodl-meta benchmark bohb``: what the offline machinery costs beside the evaluations.

In one run, side by side on the same machine:

1. BOHB on one dataset with 1 and then 2 worker processes (one PyTorch thread each), the same
   seed, iterations and budgets: trials per hour, full-budget evaluations per hour (the sum of
   the trials' budgets), and the share of the workers' wall time spent outside evaluations
   (process start-up, nameserver, dispatching, waiting for a Successive-Halving stage to
   finish; target < 5 %), with and without the start-up.
2. The cost matrix of the 2-worker run's incumbent on a few datasets with 1 and then 2 Dask
   worker processes: cells per hour, and the share outside evaluations.

The evaluations run on the simulated clock, so what they compute is the same in every
configuration of the benchmark; only the wall time around them is measured.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from autodl.machine import machine_description
from autodl.records import append_jsonl, utc_now

logger = logging.getLogger(__name__)


def _bohb_figures(summary: Any, rows: Sequence[Mapping[str, Any]], wall: float, first_done: float | None,
                  workers: int) -> dict[str, Any]:
    evals = sum(float(r.get("wall_seconds") or 0.0) for r in rows)
    budget = sum(float(r["budget"]) for r in rows)
    first = rows[0] if rows else None
    startup = (first_done - float(first.get("wall_seconds") or 0.0)) if first and first_done else 0.0
    return {
        "workers": workers, "trials": len(rows), "wall_seconds": round(wall, 2),
        "evaluation_seconds": round(evals, 2), "startup_seconds": round(startup, 2),
        "trials_per_hour": round(3600 * len(rows) / wall, 1),
        "full_budget_evaluations_per_hour": round(3600 * budget / wall, 2),
        "outside_share": round(1 - evals / (workers * wall), 4),
        "outside_share_after_startup": round(1 - evals / (workers * max(wall - startup, 1e-9)), 4),
        "crashed": summary.crashed, "incumbent_alc": summary.incumbent()[1] if summary.incumbent() else None,
    }


def run_bohb_benchmark(out: str | Path, dataset: str | Path, matrix_datasets: Sequence[str | Path], *,
                       iterations: int = 1, min_budget: float = 1 / 9, protocol: str = "mini",
                       timing: str | None = None, seed: int = 0, objective: str | None = None,
                       objective_args: Mapping[str, Any] | None = None,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure BOHB with 1 and 2 workers and the cost matrix with 1 and 2 Dask workers.

    Parameters
    ----------
    out:
        Working folder (emptied first): the runs and matrices are kept there for inspection.
    dataset:
        The AutoDL dataset BOHB searches on.
    matrix_datasets:
        The datasets of the cost matrix (the incumbent of the 2-worker run on each).
    objective, objective_args:
        A trial objective other than the fine-tuning evaluation (e.g. the synthetic one, to
        measure the machinery alone).

    Returns
    -------
    dict
        ``bohb``: one entry per worker count; ``cost_matrix``: one per Dask worker count;
        the machine, protocol, clock and settings.
    """
    from offline_bohb.local import run_local
    from offline_bohb.run import DEFAULT_OBJECTIVE, RunSpec
    from portfolio.cost_matrix import cells_per_hour
    from portfolio.incumbents import build_portfolio

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    result: dict[str, Any] = {"machine": machine_description(), "protocol": protocol, "clock": "simulated",
                              "dataset": str(dataset), "iterations": iterations, "min_budget": min_budget,
                              "objective": objective or DEFAULT_OBJECTIVE, "bohb": [], "cost_matrix": [],
                              "date": utc_now("minutes")}
    for workers in (1, 2):
        spec = RunSpec(dataset=str(dataset), protocol=protocol, timing=timing, min_budget=min_budget,
                       iterations=iterations, seed=seed, objective=objective or DEFAULT_OBJECTIVE,
                       objective_args=dict(objective_args or {}), command="autodl-meta benchmark bohb")
        rows: list[Mapping[str, Any]] = []
        first: list[float] = []
        start = time.perf_counter()

        def on_trial(summary: Any, row: Mapping[str, Any]) -> None:
            rows.append(row)
            if not first:
                first.append(time.perf_counter() - start)
            if progress is not None:
                progress(f"bohb {workers} worker(s): trial {len(rows)}")

        summary = run_local(spec, out / "runs" / f"workers-{workers}" / Path(dataset).name, workers=workers,
                            progress=on_trial)
        wall = time.perf_counter() - start
        result["bohb"].append(_bohb_figures(summary, rows, wall, first[0] if first else None, workers))
    portfolio = build_portfolio(out / "runs" / "workers-2", out / "portfolio.json",
                                command="autodl-meta benchmark bohb")
    for workers in (1, 2):
        if progress is not None:
            progress(f"cost matrix, {workers} Dask worker(s)")
        timings = cells_per_hour(portfolio, [str(d) for d in matrix_datasets], out / f"matrix-{workers}",
                                 workers=workers, timing=timing)
        result["cost_matrix"].append({"workers": workers, **{k: v for k, v in timings.items()}})
    return result


def bohb_report(result: Mapping[str, Any], command: str) -> str:
    """The Markdown section of ``docs/benchmarks.md``."""
    lines = [f"## bohb: the offline machinery beside its evaluations ({result['date']})", "",
             f"`{command}` on {result['machine']}. BOHB on `{Path(result['dataset']).name}`, "
             f"{result['iterations']} iteration(s), budgets {result['min_budget']:.3g} to 1 of T (eta 3), "
             f"protocol `{result['protocol']}`, {result['clock']} clock, objective `{result['objective']}`; "
             "one PyTorch thread per worker process.", "",
             "| BOHB workers | trials | wall s | in evaluations s | start-up s | trials/h | full-budget evals/h "
             "| outside evaluations | same, after start-up |", "|---|---|---|---|---|---|---|---|---|"]
    for b in result["bohb"]:
        lines.append(f"| {b['workers']} | {b['trials']} | {b['wall_seconds']:.0f} | {b['evaluation_seconds']:.0f} | "
                     f"{b['startup_seconds']:.1f} | {b['trials_per_hour']:.0f} | "
                     f"{b['full_budget_evaluations_per_hour']:.1f} | {100 * b['outside_share']:.1f} % | "
                     f"{100 * b['outside_share_after_startup']:.1f} % |")
    lines += ["", "| Dask workers | cells | wall s | start-up s | cells/h | evaluation s per cell | outside evaluations |",
              "|---|---|---|---|---|---|---|"]
    for c in result["cost_matrix"]:
        lines.append(f"| {c['workers']} | {c.get('cells')} | {c.get('wall_seconds', 0):.0f} | "
                     f"{c.get('startup_seconds', 0):.1f} | {c.get('cells_per_hour', 0):.0f} | "
                     f"{c.get('eval_seconds_per_cell', 0):.1f} | {100 * c.get('outside_evaluations', 0):.1f} % |")
    b1 = {b["workers"]: b for b in result["bohb"]}
    if 1 in b1 and 2 in b1:
        lines += ["", f"Two BOHB workers against one: {b1[2]['full_budget_evaluations_per_hour'] / max(b1[1]['full_budget_evaluations_per_hour'], 1e-9):.2f}x "
                  "the full-budget evaluations per hour. With 2 workers, part of the time outside evaluations is a "
                  "worker waiting for the other to finish a Successive-Halving stage (a stage of one trial leaves "
                  "one worker idle), not overhead of the machinery; the 1-worker row measures the machinery alone."]
    return "\n".join(lines) + "\n"


def save_result(path: str | Path, result: Mapping[str, Any]) -> None:
    """Append the result as one JSON line."""
    append_jsonl(path, json.loads(json.dumps(result, default=str)))
