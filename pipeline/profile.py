"""Where the time of one submission run goes: a cProfile of the shipped submission on one
dataset under a protocol, on the wall clock, in this process, bucketed into the phases that
decide the ALC (decoding and resizing, selection, probes, embedding, training steps, test
passes, writing predictions), and the time to the first prediction.

The phases are functions of the learner, the submission and the ingestion; a phase's
seconds are the cumulative seconds of its functions (``cumtime``), so nested phases
overlap (the embedding pass inside a probe's fit is counted in both): the table says which
phase holds which. ``autodl-meta benchmark profile`` writes it to ``docs/benchmarks.md``.
"""

from __future__ import annotations

import cProfile
import dataclasses
import logging
import pstats
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PHASES: dict[str, tuple[tuple[str, str], ...]] = {
    "construction (outside the budget)": (("submission/agent.py", "__init__"),),
    "decode + resize (training set)": (("finetune/learner.py", "_load_train"),),
    "quick start (decode a subset of the training set + fit a probe on it)": (("finetune/learner.py", "_quick_start"),),
    "decode + resize (every load_arrays call: training and test sets)": (("finetune/data.py", "load_arrays"),),
    "selection (embed the query + select)": (("submission/agent.py", "_select"),),
    "probes: fit": (("finetune/learner.py", "_fit_probe"),),
    "probes: test predictions": (("finetune/learner.py", "_test_probe"),),
    "embedding passes (inside probes and tests)": (("finetune/network_stage.py", "embed"),),
    "training steps": (("finetune/learner.py", "_train_steps"),),
    "test passes of the network": (("finetune/learner.py", "_test_network"),),
    "writing predictions": (("autodl/ingestion.py", "write_predictions"),),
}
"""Phase -> the (file suffix, function name) pairs whose cumulative time it is."""


def _phase_seconds(stats: pstats.Stats) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    table = stats.stats  # type: ignore[attr-defined]
    for phase, funcs in PHASES.items():
        seconds, calls, found = 0.0, 0, []
        for (file, _line, name), (_cc, nc, _tt, ct, _callers) in table.items():
            for suffix, fname in funcs:
                if name == fname and file.replace("\\", "/").endswith(suffix):
                    seconds += ct
                    calls += nc
                    found.append(f"{suffix}:{fname}")
        out[phase] = {"seconds": seconds, "calls": calls, "functions": sorted(set(found))}
    return out


def profile_submission(dataset: str | Path, *, protocol: str = "mini", artifacts: str | Path = "portfolio/default",
                       seed: int = 0, top: int = 15) -> dict[str, Any]:
    """Run the submission on ``dataset`` under cProfile (wall clock, this process, the
    process's PyTorch threads) and return the phases' seconds, the time to the first
    prediction, the ALC and the ``top`` functions by own time."""
    from autodl.clock import WallClock
    from autodl.model_runs import evaluate_model
    from autodl.protocol import load_protocol
    from submission.agent import MetaModel
    from submission.artifacts import Artifacts

    proto = load_protocol(protocol)
    arts = Artifacts(artifacts)
    settings = dataclasses.replace(arts.settings(), seed=seed, device="cpu")
    models: list[Any] = []

    def make(meta: Any, clk: Any) -> Any:
        models.append(MetaModel(meta, arts, clock=clk, settings=settings))
        return models[-1]

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    ev = evaluate_model(make, dataset, proto, clock=WallClock(), clock_name="wall", seed=seed, model="submission")
    prof.disable()
    total = time.perf_counter() - t0
    decision = dict(models[0].decision) if models else {}
    models.clear()
    stats = pstats.Stats(prof)
    own = sorted(((tt, f"{Path(f).name}:{n}") for (f, _l, n), (_cc, _nc, tt, _ct, _c) in stats.stats.items()),  # type: ignore[attr-defined]
                 reverse=True)[:top]
    return {"dataset": Path(str(dataset)).name, "protocol": proto.name, "seconds": total, "alc": ev.alc,
            "status": ev.status, "first_prediction_s": ev.curve.timestamps[0] if ev.curve.timestamps else None,
            "predictions": len(ev.curve), "phases": _phase_seconds(stats),
            "top_own_time": [{"function": f, "seconds": s} for s, f in own],
            "selection_seconds": decision.get("selection_seconds"),
            "configuration_source": decision.get("configuration_source")}


def profile_markdown(result: Mapping[str, Any], command: str, machine: str) -> str:
    """The profile as a Markdown section."""
    lines = [f"## Profile of one submission run: {result['dataset']}, protocol `{result['protocol']}`, wall clock", "",
             f"- Command: `{command}`", f"- Machine: {machine}",
             f"- Run: {result['seconds']:.1f} s in all (construction included), status {result['status']}, ALC "
             f"{'n/a' if result['alc'] is None else format(result['alc'], '.4f')}, {result['predictions']} predictions, "
             f"first prediction at {result['first_prediction_s'] if result['first_prediction_s'] is None else round(result['first_prediction_s'], 3)} s; "
             f"configuration: {result.get('configuration_source')}", "",
             "Cumulative seconds per phase (cProfile `cumtime`; nested phases overlap: embedding passes run "
             "inside the probes' fits and the test passes):", "",
             "| phase | seconds | calls |", "|---|---:|---:|"]
    for phase, v in result["phases"].items():
        lines.append(f"| {phase} | {v['seconds']:.2f} | {v['calls']} |")
    lines += ["", "Largest own times (cProfile `tottime`):", "", "| function | seconds |", "|---|---:|"]
    lines += [f"| `{r['function']}` | {r['seconds']:.2f} |" for r in result["top_own_time"]]
    return "\n".join(lines) + "\n"
