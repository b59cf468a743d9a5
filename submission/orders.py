"""Which comes first, the first prediction or the selection? Both orders measured side by side.

A selector that embeds a batch of the new dataset costs seconds before the chosen
configuration can predict; under ``mini`` (t0 = 3 s) a first prediction one second later
loses several hundredths of ALC, under ``autocv`` (t0 = 60 s) almost nothing. The
submission can instead let the single best configuration (built outside the budget) make
the first predictions and select on the second ``train`` call
(:class:`submission.artifacts.SubmissionSettings`, ``first_prediction``).
:func:`compare_orders` runs the submission both ways on each dataset, one after the other
under one clock, and reports the ALCs; the better order is what ``submission build``
ships by default.

On the simulated clock (the default) every cost is charged from the timing table: the
selection's decoding and embedding passes included (the selector's own arithmetic, well
under a millisecond, is not); building the chosen configuration's network when it takes
over is not charged either (the same in both orders for the first learner built in the
budget; ``before-selection`` builds one only when the pick differs from the single best).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from autodl.records import repo_relative, utc_now
from submission.artifacts import FIRST_PREDICTION, SubmissionSettings

logger = logging.getLogger(__name__)


def compare_orders(datasets: Sequence[str | Path], artifacts: str | Path, *, selector: str | Path | None = None,
                   protocol: str = "mini", clock: str = "simulated", timing: str | Path | None = None,
                   seeds: Sequence[int] = (0,), orders: Sequence[str] = FIRST_PREDICTION,
                   on_result: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Evaluate the submission with each ``first_prediction`` order on each dataset and seed.

    Returns
    -------
    dict
        ``records`` (dataset, seed, order, status, ALC, final NAUC, first prediction time,
        chosen dataset, fallback, selection seconds), ``mean_alc`` per order (over the
        datasets where every order finished), ``better`` (the order with the higher mean),
        the settings and the date.
    """
    from autodl.clock import SimulatedClock, WallClock
    from autodl.model_runs import evaluate_model
    from autodl.protocol import load_protocol
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable
    from submission.agent import MetaModel

    proto = load_protocol(protocol)
    table = TimingTable.load(timing or DEFAULT_TIMING) if clock == "simulated" else None
    records = []
    for path in datasets:
        for seed in seeds:
            for order in orders:
                models: list[MetaModel] = []
                settings = SubmissionSettings(first_prediction=order, seed=seed)

                def make(meta: Any, clk: Any, settings: SubmissionSettings = settings) -> MetaModel:
                    models.append(MetaModel(meta, artifacts, selector_dir=selector, clock=clk, timing=table,
                                            settings=settings))
                    return models[-1]

                clk = SimulatedClock() if clock == "simulated" else WallClock()
                ev = evaluate_model(make, path, proto, clock=clk, clock_name=clock, seed=seed,
                                    model=f"submission first_prediction={order}")
                d = models[0].decision if models else {}
                rec = {"dataset": Path(path).name, "seed": seed, "order": order, "status": ev.status,
                       "alc": ev.alc, "final_nauc": ev.final_nauc,
                       "first_prediction_s": ev.curve.timestamps[0] if ev.curve.timestamps else None,
                       "chosen": d.get("chosen_dataset"), "fallback": d.get("fallback"),
                       "selection_seconds": d.get("selection_seconds"),
                       "configuration_source": d.get("configuration_source"), "wall_seconds": ev.wall_seconds}
                models.clear()
                records.append(rec)
                logger.info("%s seed %d %s: ALC %s", rec["dataset"], seed, order, rec["alc"])
                if on_result is not None:
                    on_result(rec)
    means = {}
    keys = {(r["dataset"], r["seed"]) for r in records}
    complete = [k for k in keys if all(any(r["alc"] is not None and (r["dataset"], r["seed"]) == k
                                           and r["order"] == o for r in records) for o in orders)]
    for o in orders:
        vals = [r["alc"] for r in records if r["order"] == o and (r["dataset"], r["seed"]) in complete]
        means[o] = sum(vals) / len(vals) if vals else None
    better = max((o for o in orders if means[o] is not None), key=lambda o: means[o], default=None)
    return {"records": records, "mean_alc": means, "better": better, "pairs": len(complete),
            "protocol": proto.to_dict(), "clock": clock,
            "timing": None if table is None else repo_relative(timing or DEFAULT_TIMING),
            "artifacts": repo_relative(artifacts), "selector": None if selector is None else repo_relative(selector),
            "seeds": list(seeds), "date": utc_now()}


def orders_report(result: dict[str, Any], command: str, machine: str) -> str:
    """The Markdown section of ``docs/benchmarks.md``."""
    p = result["protocol"]
    lines = [f"## submission: first prediction before or after selection ({result['date']})", "",
             f"- Command: `{command}`", f"- Machine: {machine}",
             f"- Protocol `{p['name']}` (T={p['time_budget']:g} s, t0={p['t0']:g} s), clock `{result['clock']}`"
             + (f" (timing table `{result['timing']}`)" if result.get("timing") else ""),
             f"- Artifacts `{result['artifacts']}`, selector `{result['selector'] or 'ARTIFACTS/selector'}`, "
             f"seeds {result['seeds']}", "",
             "| dataset | seed | order | ALC | final NAUC | first prediction s | chosen | fallback |",
             "|---|---:|---|---:|---:|---:|---|---|"]
    for r in result["records"]:
        alc = "failed" if r["alc"] is None else f"{r['alc']:.4f}"
        nauc = "" if r["final_nauc"] is None else f"{r['final_nauc']:.4f}"
        first = "" if r["first_prediction_s"] is None else f"{r['first_prediction_s']:.2f}"
        lines.append(f"| {r['dataset']} | {r['seed']} | {r['order']} | {alc} | {nauc} | {first} | "
                     f"{r['chosen'] or ''} | {(r['fallback'] or '')[:60]} |")
    means = ", ".join(f"{o} {m:.4f}" for o, m in result["mean_alc"].items() if m is not None)
    lines += ["", f"Mean ALC over {result['pairs']} (dataset, seed) pairs: {means}; "
                  f"better: **{result['better']}**."]
    return "\n".join(lines) + "\n"
