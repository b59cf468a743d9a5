"""``autodl-meta benchmark fidelity``: do BOHB's low budgets rank configurations as the full budget does?

BOHB (``offline_bohb``) evaluates many configurations at 1/9 and 1/3 of the time budget T and
promotes the best of each stage to the next; that is only worth doing if a configuration's
rank at a low budget says something about its rank at the full budget. Two sources:

* **The runs** (:func:`runs_fidelity`): in a BOHB run folder (``trials.jsonl``), the
  configurations promoted from one budget to the next were evaluated at both. Per run and per
  pair of budgets ``(b, full)`` and ``(1/9, 1/3)``: the Spearman rank correlation over the
  configurations evaluated at both, where there are at least :data:`MIN_PAIRS`; otherwise
  the run has too few (a run of 2 brackets promotes 1 to 3 configurations per pair). Pooled
  over runs: the share of same-run configuration pairs that the two budgets order alike.
  Promoted configurations are the best of their stage, so this measures ranking among good
  configurations only.
* **A dedicated measurement** (:func:`run_fidelity`): N configurations (the grid's core,
  :data:`finetune.grid.CORE`, then random samples of the fine-tuning space built for each
  dataset's shape, drawn as BOHB draws its random samples: :func:`offline_bohb.run.resolve_space`,
  :func:`offline_bohb.hpb.encode_space`, :func:`offline_bohb.run.config_decoder`), each evaluated
  on each dataset at every budget on the simulated clock (:func:`finetune.config_runs.evaluate`,
  one PyTorch thread). Beside the time fidelity (``time``: ``budget`` = fraction of T, what
  BOHB uses), an alternative fidelity: ``data``, the full T with the training set capped at
  the fraction of its examples (``Protocol.max_train_examples``, a seeded stratified subset, as
  the learner already decodes under a cap). Per dataset and fidelity: Spearman between each low
  budget and the full budget (:func:`scipy.stats.spearmanr`, over the configurations' mean ALC
  over seeds), whether the best at the low budget is the best at the full budget, the full-budget
  ALC lost by taking the low budget's best (regret), and the mean wall seconds of an evaluation
  (what the fidelity costs: ``data`` runs the full T, so it saves little).

Rows are appended to a JSON-lines file as they finish, keyed by configuration digest
(:func:`portfolio.cost_matrix.config_digest`), dataset, fidelity, budget, seed, protocol and
learner version (:func:`portfolio.cost_matrix.learner_version`); a stopped run resumes, and rows
of another learner version are computed again, never reused.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import Status, append_jsonl, read_jsonl, repo_relative, utc_now

logger = logging.getLogger(__name__)

BUDGETS: tuple[float, ...] = (1 / 9, 1 / 3, 1.0)
"""The budgets of the default build's BOHB (eta 3, 1/9 to 1 of T)."""

FIDELITIES: tuple[str, ...] = ("time", "data")
"""``time``: the budget is the fraction of T (BOHB's fidelity); ``data``: the full T with the
training set capped at the budget's fraction of its examples."""

MIN_PAIRS = 4
"""Configurations evaluated at both budgets that a Spearman needs here (fewer: "too few")."""

DEFAULT_CONFIGS = 20
"""Configurations of the full measurement: the grid's 7 core ones and 13 random samples."""

DATASETS: tuple[str, ...] = ("digits", "textures", "fashion_3k", "photos", "emoji_animals", "moving_squares")
"""The datasets of the full measurement (``data/collections/default``): handwriting, textures,
clothing, photos, emoji and a video dataset."""


def _spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rho of ``x`` and ``y``; None when either is constant (undefined)."""
    from scipy.stats import spearmanr

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    rho = spearmanr(x, y).statistic
    return None if rho is None or math.isnan(float(rho)) else float(rho)


def _budget_label(b: float) -> str:
    for num, den in ((1, 9), (1, 3), (1, 1), (1, 27), (1, 81), (2, 3)):
        if abs(b - num / den) < 1e-6:
            return "1" if den == 1 else f"{num}/{den}"
    return f"{b:g}"


# --- (a) the BOHB runs --------------------------------------------------------------------------------
@dataclass
class PairStat:
    """Ranking agreement of two budgets over the configurations evaluated at both."""

    low: float
    high: float
    pairs: int
    spearman: float | None
    concordant: int = 0
    discordant: int = 0
    tied: int = 0


@dataclass
class RunFidelity:
    """The budget pairs of one BOHB run."""

    run: str
    dataset: str
    budgets: list[float]
    trials: int
    stats: list[PairStat] = field(default_factory=list)
    learner_versions: list[int] = field(default_factory=list)


def _concordance(a: Sequence[float], b: Sequence[float]) -> tuple[int, int, int]:
    c = d = t = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            s = np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])
            if s > 0:
                c += 1
            elif s < 0:
                d += 1
            else:
                t += 1
    return c, d, t


def run_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """The BOHB run folders under ``paths``: each path is a run folder (holding ``trials.jsonl``)
    or a folder of them."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "trials.jsonl").is_file():
            out.append(p)
        elif p.is_dir():
            out += sorted(d for d in p.iterdir() if (d / "trials.jsonl").is_file())
    return out


def run_fidelity(run_dir: str | Path, min_pairs: int = MIN_PAIRS) -> RunFidelity:
    """The budget pairs of one run: ``(b, full)`` for every lower budget ``b`` and ``(lowest, next)``."""
    run_dir = Path(run_dir)
    rows = [r for r in read_jsonl(run_dir / "trials.jsonl")
            if r.get("status") == Status.OK and r.get("alc") is not None]
    dataset = run_dir.name
    meta = run_dir / "run.json"
    if meta.is_file():
        try:
            dataset = json.loads(meta.read_text()).get("dataset", {}).get("name") or dataset
        except (json.JSONDecodeError, AttributeError):
            pass
    by: dict[tuple, dict[float, float]] = {}
    for r in rows:
        by.setdefault(tuple(r["config_id"]), {})[round(float(r["budget"]), 9)] = float(r["alc"])
    budgets = sorted({b for v in by.values() for b in v})
    out = RunFidelity(str(run_dir), dataset, budgets, len(rows),
                      learner_versions=sorted({int(r.get("learner_version") or 1) for r in rows}))
    if len(budgets) < 2:
        return out
    full = budgets[-1]
    pairs = [(b, full) for b in budgets[:-1]]
    if len(budgets) > 2:
        pairs.append((budgets[0], budgets[1]))
    for lo, hi in pairs:
        both = [(v[lo], v[hi]) for v in by.values() if lo in v and hi in v]
        a, b = [x for x, _ in both], [y for _, y in both]
        rho = _spearman(a, b) if len(both) >= min_pairs else None
        out.stats.append(PairStat(lo, hi, len(both), rho, *_concordance(a, b)))
    return out


def runs_fidelity(paths: Iterable[str | Path], min_pairs: int = MIN_PAIRS) -> list[RunFidelity]:
    """:func:`run_fidelity` of every run folder under ``paths``."""
    return [run_fidelity(d, min_pairs) for d in run_dirs(paths)]


def runs_markdown(runs: Sequence[RunFidelity], min_pairs: int = MIN_PAIRS) -> str:
    """The section on the BOHB runs: per run and budget pair, Spearman or "too few"."""
    if not runs:
        return "No BOHB run folder (with a trials.jsonl) was found.\n"
    keys = sorted({(s.low, s.high) for r in runs for s in r.stats}, key=lambda k: (k[1], k[0]))
    head = " | ".join(f"{_budget_label(lo)} vs {_budget_label(hi)}" for lo, hi in keys)
    lines = [f"| run (dataset) | trials | learner version | {head} |", "|---|---:|---|" + "---|" * len(keys)]
    for r in runs:
        cells = []
        for k in keys:
            s = next((s for s in r.stats if (s.low, s.high) == k), None)
            if s is None:
                cells.append("")
            elif s.spearman is not None:
                cells.append(f"{s.spearman:+.2f} ({s.pairs} configs)")
            elif s.pairs >= min_pairs:
                cells.append(f"undefined ({s.pairs} configs, constant ALC)")
            else:
                cells.append(f"too few ({s.pairs})")
        name = Path(r.run).name if Path(r.run).name == r.dataset else f"{Path(r.run).name} ({r.dataset})"
        versions = ",".join(map(str, r.learner_versions))
        lines.append(f"| {name} | {r.trials} | {versions} | " + " | ".join(cells) + " |")
    lines += ["", "Pooled over the runs (pairs of configurations of one run evaluated at both budgets):", "",
              "| budgets | runs with a Spearman | configuration pairs | ordered alike | ordered apart | tied |"
              " share alike |", "|---|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        stats = [s for r in runs for s in r.stats if (s.low, s.high) == k]
        c, d, t = (sum(getattr(s, a) for s in stats) for a in ("concordant", "discordant", "tied"))
        n = c + d + t
        share = f"{c / (c + d):.2f}" if c + d else "n/a"
        with_rho = [s.spearman for s in stats if s.spearman is not None]
        rho = f"{len(with_rho)} (mean {np.mean(with_rho):+.2f})" if with_rho else "0"
        lines.append(f"| {_budget_label(k[0])} vs {_budget_label(k[1])} | {rho} | {n} | {c} | {d} | {t} | {share} |")
    return "\n".join(lines) + "\n"


# --- (b) the dedicated measurement ----------------------------------------------------------------------
def fidelity_configs(dataset: str | Path, n: int, *, core: int | None = None,
                     sample_seed: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """``(name, configuration)`` of the measurement on ``dataset``: the first ``core`` of
    :data:`finetune.grid.CORE` (default: half of ``n``, at most all 7), then ``n - core`` random
    samples (``sample-<k>``) of the fine-tuning space built for the dataset's shape, as BOHB's
    random samples are drawn, with seed ``sample_seed`` (the same samples for every dataset of
    the same shape). Configurations are complete (every hyperparameter of the space) and distinct."""
    from finetune.config import data_shape
    from finetune.grid import CORE, grid_config
    from offline_bohb.hpb import encode_space
    from offline_bohb.run import config_decoder, resolve_space
    from portfolio.cost_matrix import config_digest

    if n < 1:
        raise ValueError(f"n={n}: expected at least 1 configuration")
    k = min(len(CORE), n // 2 if core is None else core, n)
    out: list[tuple[str, dict[str, Any]]] = [(name, grid_config(name)) for name in CORE[:k]]
    seen = {config_digest(c) for _, c in out}
    if len(out) < n:
        shape = data_shape(dataset).to_dict()
        space = resolve_space(None, shape)
        decode = config_decoder({"space": {"path": None, "data": shape}}, space)
        encoded = encode_space(space, seed=sample_seed)
        i = 0
        for _attempt in range(20):
            want = n - len(out)
            draws = encoded.sample_configuration(want) if want > 1 else [encoded.sample_configuration()]
            for c in draws:
                cfg = decode(dict(c))
                d = config_digest(cfg)
                if d not in seen:
                    seen.add(d)
                    out.append((f"sample-{i}", cfg))
                    i += 1
            if len(out) >= n:
                break
    return out[:n]


def train_examples(dataset: str | Path) -> int:
    from autodl.dataset import AutoDLDataset

    return int(AutoDLDataset(dataset).metadata("train").sample_count)


def data_cap(n_train: int, protocol_cap: int | None, fraction: float) -> int:
    """The training examples the ``data`` fidelity keeps at ``fraction``: that fraction of what the
    protocol lets the learner decode (at least 1)."""
    base = n_train if protocol_cap is None else min(n_train, int(protocol_cap))
    return max(1, int(round(fraction * base)))


def row_key(row: Mapping[str, Any]) -> tuple:
    from portfolio.cost_matrix import row_learner_version

    return (row["digest"], row["dataset"], row["fidelity"], round(float(row["budget"]), 6), int(row["seed"]),
            row.get("protocol"), row_learner_version(row))


def read_rows(results: str | Path, version: int | None = None) -> dict[tuple, dict[str, Any]]:
    """The last row of each evaluation in ``results`` (of learner version ``version``; default this code's)."""
    from portfolio.cost_matrix import learner_version, row_learner_version

    version = learner_version() if version is None else version
    return {row_key(r): r for r in read_jsonl(results) if row_learner_version(r) == version}


def _evaluate_task(task: Mapping[str, Any]) -> dict[str, Any]:
    """One evaluation (in this process or a worker): never raises."""
    import time
    import traceback

    from autodl.protocol import Protocol, load_protocol
    from finetune.config_runs import evaluate, torch_threads

    proto = load_protocol(task["protocol"]) if isinstance(task["protocol"], str) else Protocol(**task["protocol"])
    budget = float(task["budget"])
    row = {k: task[k] for k in ("name", "digest", "config", "dataset", "path", "fidelity", "budget", "seed",
                                "learner_version")}
    row["protocol"] = proto.name
    row["timing"] = task.get("timing")
    t = time.perf_counter()
    try:
        if task["fidelity"] == "data":
            cap = task["max_train_examples"]
            proto_run, time_budget = replace(proto, max_train_examples=cap), 1.0
            row["max_train_examples"] = cap
        else:
            proto_run, time_budget = proto, budget
        with torch_threads(1):
            ev = evaluate(task["config"], task["path"], proto_run, clock="simulated", seed=int(task["seed"]),
                          budget=time_budget, device="cpu", timing=task.get("timing"))
        row.update(status=ev.status, alc=ev.alc, final_nauc=ev.final_nauc, predictions=len(ev.curve),
                   wall_seconds=ev.wall_seconds, error=ev.error)
    except Exception as exc:  # noqa: BLE001 - a bad configuration is a row, the run goes on
        row.update(status=Status.FAILED, alc=None, final_nauc=None, predictions=0, wall_seconds=time.perf_counter() - t,
                   error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    row.update(clock="simulated", finished=utc_now())
    return row


def fidelity_tasks(datasets: Sequence[tuple[str, Path]], *, n_configs: int, core: int | None = None,
                   budgets: Sequence[float] = BUDGETS, fidelities: Sequence[str] = ("time",),
                   data_budgets: Sequence[float] | None = None, seeds: Sequence[int] = (0,),
                   protocol: str = "mini", timing: str | Path | None = None, sample_seed: int = 0,
                   configs: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """Every evaluation of the measurement, in the order they run: dataset by dataset, the
    cheapest budget first; the full budget is evaluated once and serves both fidelities.
    ``configs``: ``(name, configuration)`` to evaluate on every dataset instead of
    :func:`fidelity_configs` (validated over the fine-tuning space)."""
    from autodl.protocol import load_protocol
    from finetune.config import validate_config
    from portfolio.cost_matrix import config_digest, learner_version

    unknown = [f for f in fidelities if f not in FIDELITIES]
    if unknown:
        raise ValueError(f"unknown fidelities {unknown}; known: {', '.join(FIDELITIES)}")
    proto = load_protocol(protocol)
    full = max(budgets)
    if full != 1.0:
        raise ValueError(f"budgets {list(budgets)}: the full budget 1 must be among them (the reference)")
    version = learner_version()
    tasks = []
    for ds, path in datasets:
        chosen = fidelity_configs(path, n_configs, core=core, sample_seed=sample_seed) if configs is None \
            else [(name, validate_config(dict(c), source=name)) for name, c in configs]
        n_train = train_examples(path)
        levels = [("time", b) for b in sorted(budgets)] if "time" in fidelities else [("time", 1.0)]
        if "data" in fidelities:
            levels += [("data", b) for b in sorted(data_budgets or [b for b in budgets if b < 1])]
        for seed in seeds:
            for fid, b in levels:
                for name, cfg in chosen:
                    task = {"name": name, "digest": config_digest(cfg), "config": cfg, "dataset": ds,
                            "path": str(path), "fidelity": fid, "budget": float(b), "seed": int(seed),
                            "protocol": str(protocol), "protocol_name": proto.name,
                            "learner_version": version, "timing": None if timing is None else str(timing)}
                    if fid == "data":
                        task["max_train_examples"] = data_cap(n_train, proto.max_train_examples, b)
                    tasks.append(task)
    return tasks


def run_fidelity_measurement(results: str | Path, datasets: Sequence[tuple[str, Path]], *, n_configs: int,
                             core: int | None = None, budgets: Sequence[float] = BUDGETS,
                             fidelities: Sequence[str] = ("time",), data_budgets: Sequence[float] | None = None,
                             seeds: Sequence[int] = (0,), protocol: str = "mini", timing: str | Path | None = None,
                             sample_seed: int = 0, workers: int = 1,
                             configs: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                             progress: Callable[[dict[str, Any], int, int], None] | None = None
                             ) -> list[dict[str, Any]]:
    """Evaluate every task of :func:`fidelity_tasks` not yet in ``results`` (``workers`` processes
    side by side, one PyTorch thread each; 1: in this process), appending a row per evaluation.
    Returns the rows of ``results`` of this learner version."""
    results = Path(results)
    results.parent.mkdir(parents=True, exist_ok=True)
    done = {k: r for k, r in read_rows(results).items() if r.get("status") != Status.FAILED}
    tasks = fidelity_tasks(datasets, n_configs=n_configs, core=core, budgets=budgets, fidelities=fidelities,
                           data_budgets=data_budgets, seeds=seeds, protocol=protocol, timing=timing,
                           sample_seed=sample_seed, configs=configs)
    todo = [t for t in tasks if row_key({**t, "protocol": t["protocol_name"]}) not in done]
    logger.info("fidelity: %d evaluations done, %d to do", len(tasks) - len(todo), len(todo))
    count = [0]

    def record(row: dict[str, Any]) -> None:
        row = {**row, "path": repo_relative(row["path"])}
        if row.get("timing"):
            row["timing"] = repo_relative(row["timing"])
        append_jsonl(results, row)
        count[0] += 1
        if progress is not None:
            progress(row, count[0], len(todo))

    if workers <= 1:
        for t in todo:
            record(_evaluate_task(t))
    else:
        from autodl.workers import end_with_parent

        with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"), initializer=end_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            futures = [pool.submit(_evaluate_task, t) for t in todo]
            for f in as_completed(futures):
                record(f.result())
    return list(read_rows(results).values())


def fidelity_summary(rows: Sequence[Mapping[str, Any]], budgets: Sequence[float] = BUDGETS) -> dict[str, Any]:
    """Per dataset and fidelity: per low budget, the configurations measured at both it and the full
    budget, Spearman, whether the low budget's best is the full budget's best, the regret, and the
    mean wall seconds of an evaluation. ALCs are means over the seeds a configuration has at both."""
    by: dict[str, dict[tuple[str, float], dict[str, list[float]]]] = {}
    wall: dict[str, dict[tuple[str, float], list[float]]] = {}
    names: dict[str, dict[str, str]] = {}
    wanted = {round(float(b), 6) for b in budgets}
    for r in rows:
        ds, key = r["dataset"], (r["fidelity"], round(float(r["budget"]), 6))
        if r["fidelity"] == "time" and key[1] not in wanted:
            continue
        wall.setdefault(ds, {}).setdefault(key, []).append(float(r.get("wall_seconds") or 0.0))
        names.setdefault(ds, {})[r["digest"]] = r.get("name") or r["digest"]
        if r.get("status") == Status.OK and r.get("alc") is not None:
            by.setdefault(ds, {}).setdefault(key, {}).setdefault(r["digest"], []).append(float(r["alc"]))
    out: dict[str, Any] = {}
    for ds, levels in by.items():
        name = names[ds]
        full = {d: float(np.mean(v)) for d, v in levels.get(("time", 1.0), {}).items()}
        entry: dict[str, Any] = {"full": {name[d]: a for d, a in full.items()},
                                 "full_wall_s": _mean(wall[ds].get(("time", 1.0))), "levels": []}
        for (fid, b), cfgs in sorted(levels.items(), key=lambda kv: (FIDELITIES.index(kv[0][0]), kv[0][1])):
            if b >= 1.0:
                continue
            low = {d: float(np.mean(v)) for d, v in cfgs.items()}
            common = sorted(set(low) & set(full))
            lo, hi = [low[d] for d in common], [full[d] for d in common]
            level = {"fidelity": fid, "budget": b, "configs": len(common), "spearman": _spearman(lo, hi),
                     "wall_s": _mean(wall[ds].get((fid, b))), "alc": {name[d]: low[d] for d in cfgs}}
            if common:
                pick = common[int(np.argmax(lo))]
                best = max(hi)
                level.update(low_best=name[pick], full_best=name[common[int(np.argmax(hi))]],
                             same_best=full[pick] == best, regret=best - full[pick])
            entry["levels"].append(level)
        # BOHB's first promotion: the lowest time budget against the next
        tb = sorted(b for f, b in levels if f == "time" and b < 1.0)
        if len(tb) >= 2:
            a, c = levels[("time", tb[0])], levels[("time", tb[1])]
            common = sorted(set(a) & set(c))
            entry["promotion"] = {"low": tb[0], "high": tb[1], "configs": len(common),
                                  "spearman": _spearman([np.mean(a[d]) for d in common],
                                                        [np.mean(c[d]) for d in common])}
        out[ds] = entry
    return out


def _mean(values: Sequence[float] | None) -> float | None:
    return float(np.mean(values)) if values else None


def _f(v: float | None, fmt: str = "+.2f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _describe(config: Mapping[str, Any]) -> str:
    """The few hyperparameters that say what a configuration is."""
    c = config
    if not c:
        return "?"
    what = f"{c.get('backbone')} ({'pretrained' if c.get('pretrained') else 'random init'}), {c.get('input_size')} px, " \
           f"probes {c.get('probes')}"
    if c.get("finetune"):
        what += f", fine-tuned ({c.get('optimizer')}, lr {c.get('learning_rate'):.2g}, batch {c.get('batch_size')})"
    else:
        what += ", no fine-tuning"
    return what


def fidelity_markdown(summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> str:
    """Per dataset: one table of the low fidelities against the full budget, and the ALC of every
    configuration at every level."""
    lines: list[str] = []
    for ds, e in summary.items():
        lines += [f"**{ds}** ({len(e['full'])} configurations at the full budget, mean "
                  f"{_f(e['full_wall_s'], '.1f')} wall s each)", "",
                  "| fidelity | budget | configs | Spearman vs full | low budget's best | full budget's best | "
                  "regret (full ALC) | wall s per eval |", "|---|---|---:|---:|---|---|---:|---:|"]
        for lv in e["levels"]:
            what = "fraction of T" if lv["fidelity"] == "time" else "fraction of the training data, full T"
            lines.append(f"| {lv['fidelity']} ({what}) | {_budget_label(lv['budget'])} | {lv['configs']} | "
                         f"{_f(lv['spearman'])} | {lv.get('low_best', '')} | {lv.get('full_best', '')} | "
                         f"{_f(lv.get('regret'), '.4f')} | {_f(lv['wall_s'], '.1f')} |")
        p = e.get("promotion")
        if p:
            lines += ["", f"BOHB's first promotion ({_budget_label(p['low'])} vs {_budget_label(p['high'])} of T): "
                          f"Spearman {_f(p['spearman'])} over {p['configs']} configurations."]
        cols = [("time", 1.0)] + [(lv["fidelity"], lv["budget"]) for lv in e["levels"]]
        head = " | ".join(f"{f} {_budget_label(b)}" for f, b in cols)
        lines += ["", f"| configuration | {head} |", "|---|" + "---:|" * len(cols)]
        for name in sorted(e["full"], key=lambda n: -e["full"][n]):
            cells = [_f(e["full"].get(name), ".4f")]
            cells += [_f(lv["alc"].get(name), ".4f") for lv in e["levels"]]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        samples = {r["name"]: r.get("config") or {} for r in rows
                   if r["dataset"] == ds and str(r.get("name", "")).startswith("sample-")}
        if samples:
            lines += ["", "The random configurations: " + "; ".join(
                f"{n}: {_describe(c)}" for n, c in sorted(samples.items())) + "."]
        lines.append("")
    failed = [r for r in rows if r.get("status") != Status.OK]
    if failed:
        lines.append(f"{len(failed)} evaluation(s) did not end `ok` and are left out: "
                     + "; ".join(f"{r['name']} on {r['dataset']} ({r['fidelity']} {_budget_label(r['budget'])}): "
                                 f"{r['status']} {r.get('error') or ''}".strip() for r in failed[:5]))
        lines.append("")
    return "\n".join(lines)
