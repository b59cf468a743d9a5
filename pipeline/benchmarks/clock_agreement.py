"""``autodl-meta benchmark clocks``: how well each clock agrees with the wall clock.

Offline work (BOHB, the cost matrix) ranks configurations by ALCs measured on a clock
that is not the wall clock of an idle machine: a simulated clock (costs from a timing
table) or the process's CPU time. A clock is only as good as its agreement with the wall
clock, across configurations and datasets. This benchmark evaluates (configuration,
dataset) pairs on the wall clock of an otherwise idle machine and on every other clock,
one after the other in one run, with one PyTorch thread per evaluation (as offline
workers run), and reports per pair and overall: the Spearman rank correlation of the
ALCs across pairs, and the mean and worst absolute ALC difference. Targets: Spearman
>= 0.9, mean |difference| <= 0.02.

Every evaluation is appended to a JSON-lines file as it finishes; a run that is stopped
resumes where it stopped (pairs and clocks already measured are skipped).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodl.machine import machine_description
from autodl.records import append_jsonl, read_jsonl, utc_now, utc_now_text

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "autodl_samples"

DATASETS: dict[str, dict[str, Any]] = {
    "digits": {"source": "digits"},
    "fmnist3k": {"source": "fashion_mnist", "max_train": 3000, "max_test": 1000},
    "glyphs": {"source": "glyphs"},
    "textures": {"source": "textures"},
    "moving_squares": {"source": "moving_squares"},
    "miniciao": {"sample": "miniciao"},
    "Monkeys": {"sample": "Monkeys"},
}
"""The datasets of the benchmark: built-in sources (formatted once into the data folder)
and the organizers' samples (read from ``../shared/autodl_samples``)."""

CONFIGS: dict[str, str | dict[str, Any]] = {
    "default": "baseline:default",
    "scratch": "baseline:scratch",
    "probes-only": {"backbone": "tf_efficientnet_lite0", "finetune": False, "probe_examples": 512},
    "no-probes-adam": {"backbone": "tf_efficientnet_lite0", "probes": "none", "optimizer": "Adam",
                       "learning_rate": 1e-3, "batch_size": 32, "input_size": 64},
    "lite0-64px": {"backbone": "tf_efficientnet_lite0", "min_input_size": 64, "input_size": 64,
                   "optimizer": "SGD", "learning_rate": 0.025, "weight_decay": 2.5e-4, "augmentation": "flip"},
    "scratch-cnn": {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw", "optimizer": "Adam",
                    "learning_rate": 3e-3, "batch_size": 64},
}
"""The configurations, by a short name: model names or configurations (space defaults fill the rest)."""

PAIRS: tuple[tuple[str, str], ...] = (
    ("default", "digits"), ("scratch", "digits"), ("no-probes-adam", "digits"),
    ("default", "fmnist3k"), ("scratch-cnn", "fmnist3k"), ("lite0-64px", "fmnist3k"),
    ("default", "glyphs"), ("probes-only", "glyphs"),
    ("default", "miniciao"), ("scratch", "miniciao"), ("lite0-64px", "miniciao"),
    ("default", "Monkeys"), ("probes-only", "textures"), ("no-probes-adam", "textures"),
    ("default", "moving_squares"), ("scratch-cnn", "moving_squares"),
)
"""The (configuration, dataset) pairs evaluated by default (16; at least 12 are asked for)."""


@dataclass(frozen=True)
class Agreement:
    """How one clock's ALCs agree with the wall clock's over the pairs both measured."""

    clock: str
    pairs: int
    spearman: float
    mean_abs_diff: float
    worst_abs_diff: float
    worst_pair: str


def prepare_dataset(name: str, data_dir: Path) -> Path | None:
    """The folder of benchmark dataset ``name``, formatted into ``data_dir`` if needed;
    None when it cannot be had here (a sample folder or a source that is absent)."""
    from autodl import sources

    spec = DATASETS[name]
    if "sample" in spec:
        path = SAMPLES_DIR / spec["sample"]
        return path if path.is_dir() else None
    path = data_dir / name
    if (path / f"{name}.solution").is_file():
        return path
    known = {s.name: s for s in sources.list_sources()}
    info = known.get(spec["source"])
    if info is None or not info.available:
        logger.warning("benchmark dataset %s skipped: source %s unavailable", name, spec["source"])
        return None
    return sources.write_source(spec["source"], path, max_train=spec.get("max_train"),
                                max_test=spec.get("max_test"), seed=0, overwrite=True)


def _done(results: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(row["config"], row["dataset"], row["clock"]): row for row in read_jsonl(results)}


def run_clock_benchmark(results: str | Path, data_dir: str | Path, *, pairs: Sequence[tuple[str, str]] = PAIRS,
                        clocks: Sequence[str] = ("wall", "cpu", "simulated"), protocol: str = "mini",
                        threads: int = 1, timing: str | Path | None = None, seed: int = 0,
                        progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Evaluate every pair on every clock (skipping those already in ``results``), appending
    one JSON line per evaluation to ``results``. Returns all rows."""
    from finetune.config_runs import evaluate, torch_threads

    results, data_dir = Path(results), Path(data_dir)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = _done(results)
    for cfg_name, ds_name in pairs:
        path = prepare_dataset(ds_name, data_dir)
        if path is None:
            continue
        for clock in clocks:
            if (cfg_name, ds_name, clock) in done:
                continue
            if progress is not None:
                progress(f"{cfg_name} on {ds_name}, {clock} clock")
            with torch_threads(threads):
                ev = evaluate(CONFIGS[cfg_name], path, protocol, clock=clock, seed=seed, device="cpu",
                              timing=timing)
            row = {"config": cfg_name, "dataset": ds_name, "clock": clock, "status": ev.status, "alc": ev.alc,
                   "final_nauc": ev.final_nauc, "predictions": len(ev.curve), "wall_seconds": ev.wall_seconds,
                   "timestamps": ev.curve.timestamps, "nauc": ev.curve.nauc, "error": ev.error,
                   "threads": threads, "protocol": protocol, "seed": seed,
                   "when": utc_now()}
            append_jsonl(results, row)
            done[(cfg_name, ds_name, clock)] = row
            logger.info("%s / %s / %s: %s ALC %s", cfg_name, ds_name, clock, ev.status, ev.alc)
    return list(done.values())


def agreement(rows: Sequence[dict[str, Any]], clock: str) -> Agreement | None:
    """Spearman and |ALC difference| of ``clock`` against the wall clock over the pairs where
    both evaluations are ``ok``."""
    from scipy.stats import spearmanr

    by = {(r["config"], r["dataset"], r["clock"]): r for r in rows}
    wall, other, names = [], [], []
    for (cfg, ds, clk), r in by.items():
        w = by.get((cfg, ds, "wall"))
        if clk != clock or w is None or r["alc"] is None or w["alc"] is None:
            continue
        wall.append(w["alc"])
        other.append(r["alc"])
        names.append(f"{cfg} on {ds}")
    if len(wall) < 3:
        return None
    diff = np.abs(np.asarray(other) - np.asarray(wall))
    rho = float(spearmanr(wall, other).statistic)
    return Agreement(clock, len(wall), rho, float(diff.mean()), float(diff.max()), names[int(diff.argmax())])


def clock_report(rows: Sequence[dict[str, Any]], command: str, clocks: Sequence[str] = ("cpu", "simulated")) -> str:
    """The Markdown report: per pair, the ALC on each clock; overall agreement."""
    by = {(r["config"], r["dataset"], r["clock"]): r for r in rows}
    pairs = sorted({(r["config"], r["dataset"]) for r in rows}, key=lambda p: (p[1], p[0]))
    proto = rows[0]["protocol"] if rows else "?"
    when = utc_now_text()
    head = "| configuration | dataset | wall ALC | " + " | ".join(f"{c} ALC | {c} - wall" for c in clocks) + " |"
    lines = [f"## clocks: agreement with the wall clock ({when})", "",
             f"- Command: `{command}`",
             f"- Machine: {machine_description()}; otherwise idle; one PyTorch thread per evaluation; "
             f"evaluations one after the other in one process",
             f"- Protocol `{proto}`; seed {rows[0]['seed'] if rows else 0}; ALC of each evaluation "
             "(`finetune.config_runs.evaluate`), the wall clock in-process (no child process)",
             "", head, "|---|---|---:|" + "---:|---:|" * len(clocks)]
    for cfg, ds in pairs:
        w = by.get((cfg, ds, "wall"))
        cells = [cfg, ds, _fmt(w)]
        for c in clocks:
            r = by.get((cfg, ds, c))
            cells.append(_fmt(r))
            cells.append(f"{r['alc'] - w['alc']:+.4f}" if r and w and r["alc"] is not None
                         and w["alc"] is not None else "n/a")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| clock | pairs | Spearman vs wall | mean abs diff | worst abs diff (pair) |",
              "|---|---:|---:|---:|---|"]
    for c in clocks:
        a = agreement(rows, c)
        if a is not None:
            lines.append(f"| {c} | {a.pairs} | {a.spearman:.3f} | {a.mean_abs_diff:.4f} | "
                         f"{a.worst_abs_diff:.4f} ({a.worst_pair}) |")
    return "\n".join(lines) + "\n"


def _fmt(row: dict[str, Any] | None) -> str:
    if row is None:
        return "n/a"
    if row["alc"] is None:
        return row["status"]
    return f"{row['alc']:.4f}"
