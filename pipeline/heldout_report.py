"""The held-out benchmark's report: the rows of :mod:`pipeline.heldout` aggregated per dataset and
method (mean and range over the seeds, both clocks), the verdict, the machine time behind the
figures, and the Markdown, HTML and learning-curve pictures written from them.

A tie (wins/ties/losses) is a difference of mean ALC no larger than the larger seed range
(max minus min over the seeds) of the two methods on that dataset.
"""

from __future__ import annotations

import dataclasses
import html
import json
import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import Status, atomic_write_text, repo_relative, utc_now, utc_now_text, versions
from pipeline.heldout import (
    FINAL_TEST,
    ORACLE,
    RANDOM_MEMBER,
    SEEDS,
    SINGLE_BEST,
    SUBMISSION,
    MethodSet,
    submission_unit,
    wall_name,
    wall_names,
)
from selector.significance import holm

logger = logging.getLogger(__name__)


# --- aggregation --------------------------------------------------------------------------------
@dataclass
class Cell:
    """One method on one dataset: mean and range over the seeds, and the seeds' values."""

    alcs: list[float]
    naucs: list[float]
    status: list[str]
    first_prediction_s: list[float] = field(default_factory=list)
    selection_seconds: list[float] = field(default_factory=list)
    chosen: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.alcs)) if self.alcs else None

    @property
    def spread(self) -> float:
        return float(np.max(self.alcs) - np.min(self.alcs)) if len(self.alcs) > 1 else 0.0

    @property
    def nauc(self) -> float | None:
        return float(np.mean(self.naucs)) if self.naucs else None


def _cell(rows: Sequence[Mapping[str, Any]]) -> Cell:
    ok = [r for r in rows if r.get("alc") is not None]
    return Cell(alcs=[float(r["alc"]) for r in ok],
                naucs=[float(r["final_nauc"]) for r in ok if r.get("final_nauc") is not None],
                status=[str(r.get("status")) for r in rows],
                first_prediction_s=[float(r["first_prediction_s"]) for r in ok if r.get("first_prediction_s") is not None],
                selection_seconds=[float(r["selection_seconds"]) for r in rows if r.get("selection_seconds") is not None],
                chosen=[str(r["chosen"]) for r in rows if r.get("chosen")])


def heldout_summary(rows: Sequence[Mapping[str, Any]], methods: MethodSet, datasets: Sequence[str],
                    seeds: Sequence[int] = SEEDS, final: Sequence[str] = ()) -> dict[str, Any]:
    """Per clock, dataset and method the :class:`Cell`; the derived methods; means, ranks,
    the submission's differences, share of the oracle and wins/ties/losses.

    Only rows of units this method set names count (a results file may hold older units).
    Where ``final`` names some of ``datasets`` (the final test split, :data:`FINAL_TEST`), the
    simulated clock's overall figures are also given over the choice split (the others:
    ``overall["choice"]``) and over the final split (``overall["final"]``).
    """
    sim_rows = [r for r in rows if r["clock"] == "simulated" and int(r["seed"]) in set(seeds)]
    by_unit: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in sim_rows:
        by_unit.setdefault((r["unit"], r["dataset"]), []).append(r)
    units = {m.name: (m.unit if m.kind == "config" else submission_unit(m, methods))
             for m in methods.methods if m.kind != "derived"}
    member_units = methods.member_units()
    sim: dict[str, dict[str, Cell]] = {}
    member_cells: dict[str, dict[str, Cell]] = {}
    for ds in datasets:
        cells = {name: _cell(by_unit.get((u, ds), [])) for name, u in units.items()}
        members = {name: _cell(by_unit.get((u, ds), [])) for name, u in member_units.items()}
        complete = [c for c in members.values() if c.alcs]
        if complete and len(complete) == len(members):
            # random member: per seed that every member has, the mean over the members of that
            # seed's ALC (the expectation of a uniform pick)
            by_seed = {name: {int(r["seed"]): float(r["alc"]) for r in by_unit.get((u, ds), [])
                              if r.get("alc") is not None} for name, u in member_units.items()}
            common = sorted(set.intersection(*(set(v) for v in by_seed.values())))
            if common:
                cells[RANDOM_MEMBER] = Cell(alcs=[float(np.mean([v[s] for v in by_seed.values()])) for s in common],
                                            naucs=[], status=[Status.OK] * len(common))
            best = max(members, key=lambda n: members[n].mean)
            cells[ORACLE] = dataclasses.replace(members[best], chosen=[best])
        sim[ds] = cells
        member_cells[ds] = {name: c for name, c in members.items() if c.alcs}
    wall_rows: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    names_of = wall_names(methods)
    for r in rows:
        name = wall_name(r["unit"], names_of) if r["clock"] == "wall" else None
        if name is not None:  # rows of another portfolio's submission or single best are not this one's
            wall_rows.setdefault(r["dataset"], {}).setdefault(name, []).append(r)
    wall: dict[str, dict[str, Cell]] = {ds: {m: _cell(rs) for m, rs in by.items()} for ds, by in wall_rows.items()}
    names = [m.name for m in methods.methods]
    counted = set(units.values()) | set(member_units.values())
    compute = {"simulated": {**_compute([r for r in sim_rows if r["unit"] in counted and r["dataset"] in set(datasets)]),
                             "expected": len(counted) * len(datasets) * len(set(seeds))},
               "wall": _compute([r for ds, by in wall_rows.items() if ds in set(datasets) for rs in by.values()
                                 for r in rs])}
    overall = {"simulated": _overall(sim, names), "wall": _overall(wall, _wall_names(wall))}
    held = [ds for ds in datasets if ds in set(final)]
    if held and len(held) < len(datasets):
        overall["choice"] = _overall({ds: c for ds, c in sim.items() if ds not in held}, names)
        overall["final"] = _overall({ds: c for ds, c in sim.items() if ds in held}, names)
    return {"simulated": sim, "wall": wall, "methods": names, "final": held, "overall": overall, "compute": compute,
            "member_cells": member_cells}


def _compute(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How long the evaluations behind a report took: their count and the sum of their seconds
    (``task_seconds`` of a simulated evaluation, in its worker, start-up included; ``wall_seconds``
    of a wall-clock run, its child process included; rows without either are counted apart), and
    the sum of their CPU seconds (``cpu_seconds``, where recorded: ``cpu_timed`` rows)."""
    timed = [float(r.get("task_seconds", r.get("wall_seconds"))) for r in rows
             if r.get("task_seconds", r.get("wall_seconds")) is not None]
    cpu = [float(r["cpu_seconds"]) for r in rows if r.get("cpu_seconds") is not None]
    return {"evaluations": len(rows), "timed": len(timed), "seconds": float(sum(timed)),
            "cpu_timed": len(cpu), "cpu_seconds": float(sum(cpu))}


def _wall_names(wall: Mapping[str, Mapping[str, Cell]]) -> list[str]:
    """The wall-clock methods with an ALC on at least one dataset (one that failed everywhere, an
    organizers' model that cannot run on this data, would leave no dataset for the means)."""
    seen: list[str] = []
    for cells in wall.values():
        seen += [m for m, c in cells.items() if m not in seen and c.mean is not None]
    return seen


def _overall(table: Mapping[str, Mapping[str, Cell]], names: Sequence[str]) -> dict[str, Any]:
    """Mean ALC and mean rank over the datasets where every method has a value; the
    submission's differences, share of the oracle and wins/ties/losses."""
    complete = [ds for ds, cells in table.items()
                if all(cells.get(n) is not None and cells[n].mean is not None for n in names)]
    out: dict[str, Any] = {"datasets": complete, "mean": {}, "rank": {}, "vs": {}}
    if not complete or not names:
        return out
    means = np.array([[table[ds][n].mean for n in names] for ds in complete])
    from scipy.stats import rankdata

    ranks = np.array([rankdata(-np.round(row, 9)) for row in means])  # equal up to float noise: one rank
    out["mean"] = {n: float(means[:, j].mean()) for j, n in enumerate(names)}
    out["rank"] = {n: float(ranks[:, j].mean()) for j, n in enumerate(names)}
    if SUBMISSION in names:
        sub = names.index(SUBMISSION)
        for j, n in enumerate(names):
            if j == sub:
                continue
            w = t = lo = 0
            diffs = []
            for ds in complete:
                a, b = table[ds][SUBMISSION], table[ds][n]
                d = a.mean - b.mean
                diffs.append(d)
                if abs(d) <= max(a.spread, b.spread) + 1e-9:
                    t += 1
                elif d > 0:
                    w += 1
                else:
                    lo += 1
            out["vs"][n] = {"wins": w, "ties": t, "losses": lo, "mean_difference": float(np.mean(diffs)),
                            "differences": dict(zip(complete, map(float, diffs))), "wilcoxon_p": _wilcoxon(diffs)}
        tested = [n for n, vs in out["vs"].items() if vs["wilcoxon_p"] is not None]
        for n, adj in zip(tested, holm([out["vs"][n]["wilcoxon_p"] for n in tested]), strict=True):
            out["vs"][n]["holm_p"] = adj
        if ORACLE in names and out["mean"][ORACLE] > 0:
            out["share_of_oracle"] = out["mean"][SUBMISSION] / out["mean"][ORACLE]
    out["friedman"] = _friedman(means[:, [j for j, n in enumerate(names) if n != ORACLE]])
    return out


MIN_DATASETS_FOR_TEST = 5
"""Fewer held-out datasets than this: no signed-rank or Friedman test (a two-sided Wilcoxon test on
4 datasets cannot reach p < 0.05)."""


def _wilcoxon(diffs: Sequence[float]) -> float | None:
    """Two-sided Wilcoxon signed-rank p-value of the per-dataset differences of mean ALC (zero
    differences dropped, exact where scipy can); 1.0 where every difference is zero, None with
    fewer than :data:`MIN_DATASETS_FOR_TEST` datasets."""
    from scipy.stats import wilcoxon

    d = np.round(np.asarray(diffs, dtype=float), 9)
    if len(d) < MIN_DATASETS_FOR_TEST:
        return None
    if not np.any(d):
        return 1.0
    return float(wilcoxon(d, zero_method="wilcox").pvalue)


def _friedman(means: np.ndarray) -> dict[str, Any] | None:
    """Friedman's test over the datasets (rows) of the methods (columns, the oracle left out):
    whether any method ranks differently from the others; None with fewer than 3 methods or
    :data:`MIN_DATASETS_FOR_TEST` datasets, or where every dataset ties them all."""
    from scipy.stats import friedmanchisquare

    if means.ndim != 2 or means.shape[1] < 3 or means.shape[0] < MIN_DATASETS_FOR_TEST:
        return None
    rounded = np.round(means, 9)
    if all(len(set(row)) == 1 for row in rounded):
        return None
    res = friedmanchisquare(*rounded.T)
    return {"statistic": float(res.statistic), "pvalue": float(res.pvalue), "methods": int(means.shape[1]),
            "datasets": int(means.shape[0])}


def fixed_spread(summary: Mapping[str, Any], members: Sequence[str] = ()) -> dict[str, dict[str, Any]]:
    """Per dataset (simulated clock), how far apart the fixed choices land: the best and the worst
    of the fixed configurations (:func:`is_fixed`) and the portfolio members (``members``, read
    from the summary's ``member_cells``), their mean ALCs and the range between them. Where the
    winner changes from dataset to dataset by a wide range, a selector has something to find."""
    out: dict[str, dict[str, Any]] = {}
    for ds, cells in summary["simulated"].items():
        pool = {n: c for n, c in cells.items() if is_fixed(n) and c.mean is not None}
        pool.update({n: c for n, c in (summary.get("member_cells", {}).get(ds) or {}).items()
                     if n in set(members) and c.mean is not None})
        if len(pool) < 2:
            continue
        best = max(pool, key=lambda n: pool[n].mean)
        worst = min(pool, key=lambda n: pool[n].mean)
        out[ds] = {"best": best, "best_alc": pool[best].mean, "worst": worst, "worst_alc": pool[worst].mean,
                   "range": pool[best].mean - pool[worst].mean, "choices": len(pool)}
    return out


def clock_agreement(summary: Mapping[str, Any]) -> dict[str, Any]:
    """How the two clocks order the methods run on both: Kendall tau of the mean ALCs over the
    datasets both have, per dataset and overall."""
    from scipy.stats import kendalltau

    sim, wall = summary["simulated"], summary["wall"]
    per = {}
    pooled_s, pooled_w = [], []
    common_names: list[str] = []
    for ds, wcells in wall.items():
        names = [n for n in wcells if n in sim.get(ds, {}) and sim[ds][n].mean is not None
                 and wcells[n].mean is not None]
        common_names += [n for n in names if n not in common_names]
        if len(names) >= 2:
            s = [sim[ds][n].mean for n in names]
            w = [wcells[n].mean for n in names]
            pooled_s += s
            pooled_w += w
            order_s = sorted(names, key=lambda n: -sim[ds][n].mean)
            order_w = sorted(names, key=lambda n: -wcells[n].mean)
            tau = kendalltau(s, w).statistic if len(names) > 2 else (1.0 if order_s == order_w else -1.0)
            per[ds] = {"methods": names, "simulated_order": order_s, "wall_order": order_w,
                       "kendall_tau": None if tau is None or math.isnan(tau) else float(tau),
                       "same_winner": order_s[0] == order_w[0]}
    pooled = kendalltau(pooled_s, pooled_w).statistic if len(pooled_s) > 2 else None
    return {"per_dataset": per, "methods": common_names,
            "pooled_kendall_tau": None if pooled is None or math.isnan(pooled) else float(pooled),
            "same_winner": sum(v["same_winner"] for v in per.values()), "datasets": len(per)}


def verdict(summary: Mapping[str, Any]) -> dict[str, Any]:
    """Whether the shipped submission is not worse than the single best (simulated clock mean
    ALC over the complete datasets), by how much against the single best and the default, and
    what to ship.

    With a final test split (:func:`heldout_summary`'s ``final``) every figure that chooses is
    taken over the choice split only (``split``: ``choice``; else ``all``). ``ships``: the
    submission (shipped, another selector, hedged) with the best mean ALC there among those
    not worse than the single best, else the single best. ``final``: the same figures over
    the final split, for the submission and for what ``ships`` (unbiased by the choice).
    """
    split = "choice" if "choice" in summary["overall"] else "all"
    ov = summary["overall"]["choice" if split == "choice" else "simulated"]
    out: dict[str, Any] = {"split": split, **_figures(ov, SUBMISSION)}
    if "minus_single-best" in out:
        out["not_worse_than_single_best"] = out["minus_single-best"] >= 0
    means = ov.get("mean", {})
    variants = {n: means[n] for n in means if n.startswith((SUBMISSION + "[", SUBMISSION + "+"))}
    if variants and SINGLE_BEST in means:
        out["variants_minus_single_best"] = {n: v - means[SINGLE_BEST] for n, v in variants.items()}
    if SINGLE_BEST in means:
        fine = {n: v for n, v in {SUBMISSION: means.get(SUBMISSION), **variants}.items()
                if v is not None and v >= means[SINGLE_BEST]}
        out["ships"] = max(fine, key=lambda n: (fine[n], n == SUBMISSION)) if fine else SINGLE_BEST
    named = [SUBMISSION, *([out["ships"]] if out.get("ships") not in (None, SUBMISSION, SINGLE_BEST) else [])]
    out["fixed_bar"] = {n: fixed_bar(means, n) for n in named if n in means}
    if split == "choice":
        fin = summary["overall"]["final"]
        out["final"] = {**_figures(fin, SUBMISSION), "ships": out.get("ships"),
                        "ships_mean": fin.get("mean", {}).get(out.get("ships"))}
        if out.get("ships") and SINGLE_BEST in fin.get("mean", {}) and out["final"]["ships_mean"] is not None:
            out["final"]["ships_minus_single-best"] = out["final"]["ships_mean"] - fin["mean"][SINGLE_BEST]
        out["final"]["fixed_bar"] = {n: fixed_bar(fin.get("mean", {}), n) for n in named if n in fin.get("mean", {})}
        every = summary["overall"]["simulated"]
        out["all"] = {"datasets": len(every.get("datasets", [])),
                      "fixed_bar": {n: fixed_bar(every.get("mean", {}), n) for n in named
                                    if n in every.get("mean", {})}}
    return out


FIXED_BAR = 0.01
"""How far above every fixed configuration's mean ALC a submission must be to count as selection
that pays (:func:`fixed_bar`)."""


def is_fixed(name: str) -> bool:
    """Whether a method of the benchmark is one fixed configuration for every dataset (the single
    best, the baselines that fine-tune, the grid's best)."""
    return name == SINGLE_BEST or name.startswith(("baseline:", "grid:"))


def fixed_bar(means: Mapping[str, float], name: str, margin: float = FIXED_BAR) -> dict[str, Any]:
    """``name``'s mean ALC minus every fixed configuration's (:func:`is_fixed`), the smallest of
    them and whether it is at least ``margin`` (``clears``)."""
    diffs = {f: float(means[name] - v) for f, v in means.items() if is_fixed(f) and f != name and v is not None}
    worst = min(diffs, key=lambda f: diffs[f]) if diffs else None
    return {"margin": margin, "minus": diffs, "closest": worst,
            "smallest": diffs[worst] if worst else None, "clears": bool(diffs) and diffs[worst] >= margin}


def _figures(ov: Mapping[str, Any], name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"datasets": len(ov.get("datasets", [])), "submission": ov.get("mean", {}).get(name)}
    for n in (SINGLE_BEST, "baseline:default", ORACLE):
        if n in ov.get("vs", {}):
            out[f"minus_{n}"] = ov["vs"][n]["mean_difference"]
    return out


# --- the report -------------------------------------------------------------------------------
def _compute_lines(compute: Mapping[str, Mapping[str, Any]], workers: int = 2) -> list[str]:
    """The report's account of the machine time behind its figures (the 4-hour target of issue 10)."""
    sim, wall = compute.get("simulated") or {}, compute.get("wall") or {}
    if not sim.get("evaluations") and not wall.get("evaluations"):
        return []
    sim_h, wall_h = sim.get("seconds", 0.0) / 3600, wall.get("seconds", 0.0) / 3600
    lines = ["## Machine time", ""]
    if sim.get("expected") and sim.get("evaluations", 0) < sim["expected"]:
        lines.append(f"- **Not complete**: {sim.get('evaluations', 0)} of the {sim['expected']} simulated evaluations "
                     "are done; every total below is of those done so far")
    lines += [f"- Simulated clock: {sim.get('evaluations', 0)} evaluations, {sim_h:.2f} worker-hours "
              f"({sim_h / workers:.2f} h with {workers} workers side by side)",
              f"- Wall clock: {wall.get('evaluations', 0)} runs one at a time, {wall_h:.2f} h",
              f"- In all: about {sim_h / workers + wall_h:.2f} h on this machine (the sum of the evaluations' own "
              "seconds, start-up in the worker included; a run resumed over several sittings adds them up; "
              "whatever else ran on the machine meanwhile lengthens them)"]
    if sim.get("evaluations") and sim.get("cpu_timed") == sim.get("evaluations"):
        cpu_h = sim["cpu_seconds"] / 3600
        lines.append(f"- CPU time of the simulated evaluations (every one recorded it): {cpu_h:.2f} CPU-hours, "
                     f"so about {cpu_h / workers + wall_h:.2f} h in all on an otherwise idle machine with "
                     f"{workers} workers (one PyTorch thread each) and the wall-clock runs as they took")
    elif sim.get("cpu_timed"):
        lines.append(f"- CPU time recorded by {sim['cpu_timed']} of the {sim['evaluations']} simulated evaluations "
                     f"only ({sim['cpu_seconds'] / 3600:.2f} CPU-hours): no idle-machine total")
    untimed = sim.get("evaluations", 0) - sim.get("timed", 0) + wall.get("evaluations", 0) - wall.get("timed", 0)
    if untimed:
        lines.append(f"- {untimed} evaluations recorded no time and are not in these sums")
    return lines + [""]


def _f(v: float | None, nd: int = 4) -> str:
    return "n/a" if v is None else f"{v:.{nd}f}"


def _cell_text(c: Cell | None) -> str:
    if c is None or c.mean is None:
        return ""
    return f"{c.mean:.3f} ± {c.spread / 2:.3f}" if len(c.alcs) > 1 else f"{c.mean:.3f}"


def heldout_markdown(summary: Mapping[str, Any], methods: MethodSet, *, command: str, machine: str,
                     versions: Mapping[str, str], protocol: str, seeds: Sequence[int], wall_seeds: Sequence[int],
                     datasets: Sequence[str], figures: Mapping[str, str] | None = None,
                     descriptions: Mapping[str, str] | None = None,
                     results: str = "docs/results/heldout.jsonl") -> str:
    """The Markdown report (``docs/heldout.md``) of the evaluations in ``results``."""
    names = list(summary["methods"])
    sim, ov = summary["simulated"], summary["overall"]["simulated"]
    when = utc_now_text()
    v = verdict(summary)
    lines = ["# Held-out benchmark", "",
             "Written by `autodl-meta benchmark heldout` (`pipeline/heldout.py`, `pipeline/heldout_report.py`); "
             f"the evaluations are in `{results}`.", "",
             f"- Command: `{command}`", f"- Date: {when}", f"- Machine: {machine}",
             f"- Protocol `{protocol}`; simulated clock (timing table `configs/timing/`) with seeds {list(seeds)}; "
             f"wall clock (ingestion in a child process, ended at T, one run at a time) with seeds {list(wall_seeds)}",
             f"- Portfolio: `{repo_relative(methods.portfolio)}` ({len(methods.members)} distinct members; single best "
             f"`{methods.single_best}`); grid's best fixed configuration: `{methods.grid_best}`",
             "- Versions: " + ", ".join(f"{k} {val}" for k, val in versions.items()), "",
             "Cells: mean ALC over the seeds ± half the range (max - min). A tie is a difference of means within "
             "the larger seed range of the two methods.", ""]
    done = (summary.get("compute") or {}).get("simulated") or {}
    if done.get("expected") and done.get("evaluations", 0) < done["expected"]:
        lines += [f"**This run is not complete**: {done.get('evaluations', 0)} of its {done['expected']} simulated "
                  "evaluations are done; every figure below is of those done so far (run the same command "
                  "without `--report-only` to go on).", ""]
    lines += ["## Verdict (simulated clock)", ""]
    if v.get("submission") is None:
        lines += ["Not enough evaluations yet for a verdict.", ""]
    else:
        lines += [f"Over {v['datasets']} datasets ({v['split']} split): the submission's mean ALC {_f(v['submission'])}; minus the single "
                  f"best {_f(v.get('minus_single-best'))}; minus `baseline:default` {_f(v.get('minus_baseline:default'))}; "
                  f"share of the oracle {_f(summary['overall'][v['split'] if v['split'] == 'choice' else 'simulated'].get('share_of_oracle'), 3)}. "
                  + ("The submission is **not worse** than the single best." if v.get("not_worse_than_single_best")
                     else "The submission is **worse** than the single best."), ""]
        for n, d in (v.get("variants_minus_single_best") or {}).items():
            lines.append(f"- `{n}` minus the single best: {d:+.4f}")
        if v.get("variants_minus_single_best"):
            lines.append("")
        if v.get("ships"):
            lines += [f"What to ship by this benchmark: `{v['ships']}` (the best mean ALC among the submissions not "
                      f"worse than the single best, else the single best), chosen over the {v['split']} split.", ""]
        for n, b in (v.get("fixed_bar") or {}).items():
            if b["closest"] is not None:
                lines += [f"Against every fixed configuration ({', '.join(f'`{x}`' for x in b['minus'])}): `{n}` is "
                          f"{b['smallest']:+.4f} from the closest, `{b['closest']}`; it "
                          + ("**clears**" if b["clears"] else "does **not** clear")
                          + f" the bar of {b['margin']:+.2f} above each ({v['split']} split).", ""]
        f = v.get("final")
        if f:
            lines += [f"Final test split ({', '.join(summary.get('final', []))}; kept out of the choice above, whose "
                      "figures are optimistic by the choice): over "
                      f"{f['datasets']} datasets the submission's mean ALC {_f(f['submission'])}, minus the single best "
                      f"{_f(f.get('minus_single-best'))}, minus `baseline:default` "
                      f"{_f(f.get('minus_baseline:default'))}; `{f.get('ships')}` {_f(f.get('ships_mean'))}"
                      + (f" ({f['ships_minus_single-best']:+.4f} against the single best)"
                         if f.get("ships_minus_single-best") is not None else "") + ".", ""]
            n_final = f["datasets"]
            for where, part in ((f"the final test split, {n_final} dataset{'' if n_final == 1 else 's'}", f),
                                (f"all {(v.get('all') or {}).get('datasets')} datasets", v.get("all") or {})):
                for n, b in (part.get("fixed_bar") or {}).items():
                    if b["closest"] is not None:
                        lines += [f"- The bar on {where}: `{n}` is {b['smallest']:+.4f} from the closest fixed "
                                  f"configuration, `{b['closest']}`: it "
                                  + ("**clears**" if b["clears"] else "does **not** clear") + " it."]
            lines.append("")
    lines += _compute_lines(summary.get("compute") or {})
    lines += ["## Methods", ""]
    for m in methods.methods:
        lines.append(f"- `{m.name}`: {m.description}")
    lines += ["", "## Mean ALC and mean rank (simulated clock)", "",
              f"Over the datasets where every method has a value ({len(ov.get('datasets', []))} of {len(datasets)}).", "",
              "| method | mean ALC | mean rank | submission W/T/L | submission minus | Wilcoxon p (Holm) |",
              "|---|---:|---:|---|---:|---:|"]
    for n in names:
        vs = ov.get("vs", {}).get(n)
        wtl = f"{vs['wins']}/{vs['ties']}/{vs['losses']}" if vs else ""
        test = (f"{vs['wilcoxon_p']:.3g} ({vs['holm_p']:.3g})" if vs and vs.get("wilcoxon_p") is not None else "")
        lines.append(f"| {n} | {_f(ov.get('mean', {}).get(n))} | {_f(ov.get('rank', {}).get(n), 2)} | {wtl} | "
                     f"{_f(vs['mean_difference']) if vs else ''} | {test} |")
    lines += ["", "Wilcoxon: two-sided signed-rank test of the submission's per-dataset mean ALC against the method's, "
              "Holm-corrected over the methods; "
              + (f"not run with fewer than {MIN_DATASETS_FOR_TEST} datasets." if len(ov.get("datasets", [])) < MIN_DATASETS_FOR_TEST
                 else "with this few datasets a p-value above 0.05 says the benchmark cannot tell, not that the methods are equal.")]
    fr = ov.get("friedman")
    if fr:
        lines.append(f"Friedman test over the {fr['methods']} methods (the oracle left out) and {fr['datasets']} datasets: "
                     f"chi-square {fr['statistic']:.2f}, p = {fr['pvalue']:.3g}"
                     + (" (some method ranks apart)." if fr["pvalue"] < 0.05 else " (no method ranks apart at 0.05)."))
    spread = fixed_spread(summary, list(methods.members))
    if spread:
        wide = [ds for ds, r in spread.items() if r["range"] >= 0.1]
        winners = sorted({r["best"] for r in spread.values()})
        lines += ["", "## Where the fixed choices differ (simulated clock)", "",
                  "Per dataset, the best and the worst of the fixed configurations (single best, baselines, the grid's "
                  "best) and the portfolio's members: the headroom a selector exists for.", "",
                  f"The best fixed choice is one of {len(winners)} ({', '.join(f'`{w}`' for w in winners)}); it is "
                  f"0.1 ALC or more above the worst on {len(wide)} of {len(spread)} datasets.", "",
                  "| dataset | best fixed choice | ALC | worst | ALC | range | oracle minus single best |",
                  "|---|---|---:|---|---:|---:|---:|"]
        for ds, r in spread.items():
            cells = sim.get(ds, {})
            head = (cells[ORACLE].mean - cells[SINGLE_BEST].mean if ORACLE in cells and SINGLE_BEST in cells
                    and cells[SINGLE_BEST].mean is not None else None)
            lines.append(f"| {ds} | {r['best']} | {_f(r['best_alc'], 3)} | {r['worst']} | {_f(r['worst_alc'], 3)} | "
                         f"{_f(r['range'], 3)} | {_f(head, 3)} |")
    lines += ["", "## ALC per dataset (simulated clock)", "",
              "| dataset | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for ds in datasets:
        cells = sim.get(ds, {})
        lines.append(f"| {ds} | " + " | ".join(_cell_text(cells.get(n)) for n in names) + " |")
    lines += ["", "Final NAUC (mean over seeds):", "", "| dataset | " + " | ".join(names) + " |",
              "|---|" + "---:|" * len(names)]
    for ds in datasets:
        cells = sim.get(ds, {})
        lines.append(f"| {ds} | " + " | ".join(_f(cells[n].nauc, 3) if n in cells and cells[n].nauc is not None
                                                else "" for n in names) + " |")
    lines += ["", "## The submission: speed and decisions (simulated clock)", "",
              "| dataset | first prediction (s, median) | selection (s, mean) | chosen | oracle member |",
              "|---|---:|---:|---|---|"]
    firsts = []
    for ds in datasets:
        c = sim.get(ds, {}).get(SUBMISSION)
        o = sim.get(ds, {}).get(ORACLE)
        if c is None:
            continue
        fp = float(np.median(c.first_prediction_s)) if c.first_prediction_s else None
        if fp is not None:
            firsts.append(fp)
        sel = float(np.mean(c.selection_seconds)) if c.selection_seconds else None
        lines.append(f"| {ds} | {_f(fp, 3)} | {_f(sel, 3)} | {', '.join(sorted(set(c.chosen))) or 'single best'} | "
                     f"{(o.chosen[0] if o and o.chosen else '')} |")
    if firsts:
        lines += ["", f"Median first prediction over the datasets: {np.median(firsts):.3f} s (goal: at most 0.25 s)."]
    wall = summary["wall"]
    if wall:
        wnames = _wall_names(wall)
        wov = summary["overall"]["wall"]
        lines += ["", "## Wall clock", "", "| dataset | " + " | ".join(wnames) + " |", "|---|" + "---:|" * len(wnames)]
        for ds in datasets:
            if ds in wall:
                lines.append(f"| {ds} | " + " | ".join(_cell_text(wall[ds].get(n)) for n in wnames) + " |")
        if wov.get("mean"):
            lines += ["", "| method | mean ALC (wall) | mean rank (wall) |", "|---|---:|---:|"]
            lines += [f"| {n} | {_f(wov['mean'][n])} | {_f(wov['rank'][n], 2)} |" for n in wnames]
        ag = clock_agreement(summary)
        if ag["per_dataset"]:
            lines += ["", "How the two clocks order the methods run on both "
                          f"({', '.join(ag['methods'])}): the same winner on {ag['same_winner']} of {ag['datasets']} "
                          f"datasets; Kendall tau of the pooled (dataset, method) means "
                          f"{_f(ag['pooled_kendall_tau'], 3)}.", "",
                      "| dataset | simulated order | wall order |", "|---|---|---|"]
            for ds, a in ag["per_dataset"].items():
                lines.append(f"| {ds} | {' > '.join(a['simulated_order'])} | {' > '.join(a['wall_order'])} |")
        fails = [(ds, n, c.status) for ds, cells in wall.items() for n, c in cells.items() if not c.alcs]
        if fails:
            lines += ["", "Wall-clock runs without an ALC: " + "; ".join(f"{n} on {ds} ({', '.join(s)})"
                                                                        for ds, n, s in fails)]
    if descriptions:
        lines += ["", "## Datasets", ""] + [f"- `{ds}`: {descriptions[ds]}" for ds in datasets if ds in descriptions]
    if figures:
        lines += ["", "## Learning curves", "",
                  "Simulated clock, seed 0 (solid); wall clock, first seed (dashed).", ""]
        lines += [f"![{ds}]({path})" for ds, path in figures.items()]
    return "\n".join(lines) + "\n"


def curve_figures(rows: Sequence[Mapping[str, Any]], methods: MethodSet, datasets: Sequence[str], out_dir: str | Path,
                  *, protocol: str = "mini") -> dict[str, Path]:
    """One PNG per dataset: every method's learning curve (NAUC over the ALC's transformed
    time), simulated seed 0 solid, wall clock dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from autodl.plots import time_ticks
    from autodl.protocol import load_protocol
    from autodl.scoring import transform_time

    proto = load_protocol(protocol)
    T, t0 = proto.time_budget, proto.t0
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    units = {m.name: (m.unit if m.kind == "config" else submission_unit(m, methods))
             for m in methods.methods if m.kind != "derived"}
    names_of = wall_names(methods)
    index = {(r["clock"], r["unit"] if r["clock"] != "wall" else wall_name(r["unit"], names_of), r["dataset"],
              int(r["seed"])): r for r in rows}
    wall_seed = min((int(r["seed"]) for r in rows if r["clock"] == "wall"), default=0)
    paths = {}
    for ds in datasets:
        curves = []
        for name, unit in methods.member_units().items():
            r = index.get(("simulated", unit, ds, 0))
            if r and r.get("timestamps") and unit not in units.values():
                curves.append(("other portfolio members" if not curves else None, ":", "0.6", r))
        for i, (name, unit) in enumerate(units.items()):
            r = index.get(("simulated", unit, ds, 0))
            if r and r.get("timestamps"):
                curves.append((name, "-", f"C{i % 10}", r))
        walls = {wall_name(r["unit"], names_of) for r in rows if r["clock"] == "wall" and r["dataset"] == ds}
        for j, name in enumerate(sorted(walls - {None})):
            r = index.get(("wall", name, ds, wall_seed))
            if r and r.get("timestamps"):
                color = f"C{list(units).index(name) % 10}" if name in units else f"C{(len(units) + j) % 10}"
                curves.append((f"{name} (wall)", "--", color, r))
        if not curves:
            continue
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
        for label, style, color, r in curves:
            x = [0.0] + [float(transform_time(min(t, T), T, t0)) for t in r["timestamps"]] + [1.0]
            y = [0.0] + list(r["nauc"]) + [r["nauc"][-1]]
            alc = r.get("alc")
            text = None if label is None else (label if color == "0.6" else
                                               f"{label} ({'n/a' if alc is None else f'{alc:.3f}'})")
            ax.step(x, y, where="post", linestyle=style, color=color, linewidth=1.0 if color == "0.6" else 1.4,
                    label=text)
        ticks = time_ticks(T, t0)
        ax.set_xticks([float(transform_time(t, T, t0)) for t in ticks])
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"seconds (log-scaled as the ALC weighs them: T={T:g}, t0={t0:g})")
        ax.set_ylabel("NAUC")
        ax.set_title(f"{ds}: learning curves (legend: ALC)")
        ax.legend(fontsize=7, loc="lower right", ncol=2)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{ds}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths[ds] = path
    return paths


def heldout_html(markdown: str, title: str = "Held-out benchmark") -> str:
    """A self-contained HTML page of the report (tables and pictures; no external assets)."""
    out = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1200px;margin:2em auto}table{border-collapse:collapse;"
           "font-size:13px}td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}td:first-child,"
           "th:first-child{text-align:left}code{background:#f4f4f4}</style></head><body>"]
    in_table = False
    for line in markdown.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if all(set(c) <= set("-:") for c in cells):
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
                out.append("<tr>" + "".join(f"<th>{_inline(c)}</th>" for c in cells) + "</tr>")
            else:
                out.append("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in cells) + "</tr>")
            continue
        if in_table:
            out.append("</table>")
            in_table = False
        if line.startswith("# "):
            out.append(f"<h1>{_inline(line[2:])}</h1>")
        elif line.startswith("## "):
            out.append(f"<h2>{_inline(line[3:])}</h2>")
        elif line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            out.append(f"<p><img alt='{html.escape(alt)}' src='{html.escape(src.rstrip(')'))}'></p>")
        elif line.startswith("- "):
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def _inline(text: str) -> str:
    import re

    s = html.escape(text)
    s = re.sub(r"`([^`]+)`", r"<code>\1</code>", s)
    return re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", s)


# --- one call for the CLI -----------------------------------------------------------------------
def summary_path_for(results: str | Path, doc: str | Path) -> Path:
    """Where the JSON twin of the report ``doc`` goes: beside the evaluations ``results``, named
    after the report (``docs/results/heldout.summary.json`` for ``docs/heldout.md``), so that a
    second report of the same evaluations (a split, a seed) never overwrites the first one's."""
    return Path(results).parent / f"{Path(doc).stem}.summary.json"


def write_report(rows: Sequence[Mapping[str, Any]], methods: MethodSet, datasets: Sequence[str], *,
                 doc: str | Path, command: str, protocol: str, seeds: Sequence[int], wall_seeds: Sequence[int],
                 descriptions: Mapping[str, str] | None = None, html_path: str | Path | None = None,
                 summary_path: str | Path | None = None, final: Sequence[str] = FINAL_TEST,
                 results: str = "docs/results/heldout.jsonl") -> dict[str, Any]:
    """Aggregate ``rows`` (read from ``results``) and write the Markdown report ``doc``, its pictures
    (``<doc stem>/`` beside it), the HTML page and a JSON summary (``final``: the final test split,
    :func:`verdict`). Returns the summary."""
    from autodl.machine import machine_description
    doc = Path(doc)
    summary = heldout_summary(rows, methods, datasets, seeds, final=final)
    figures = curve_figures(rows, methods, datasets, doc.parent / doc.stem, protocol=protocol)
    rel = {ds: os.path.relpath(p, doc.parent) for ds, p in figures.items()}
    text = heldout_markdown(summary, methods, command=command, machine=machine_description(), versions=versions(),
                            protocol=protocol, seeds=seeds, wall_seeds=wall_seeds, datasets=datasets,
                            figures=rel, descriptions=descriptions, results=results)
    doc.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(doc, text)
    if html_path is not None:
        Path(html_path).write_text(heldout_html(text))
    plain = {"verdict": verdict(summary), "overall": summary["overall"], "clock_agreement": clock_agreement(summary),
             "methods": [dataclasses.asdict(m) for m in methods.methods], "single_best": methods.single_best,
             "members": list(methods.members), "grid_best": methods.grid_best, "portfolio": repo_relative(methods.portfolio),
             "datasets": list(datasets), "final": summary["final"], "seeds": list(seeds),
             "fixed_spread": fixed_spread(summary, list(methods.members)),
             "wall_seeds": list(wall_seeds), "command": command,
             "protocol": protocol, "date": utc_now(),
             "cells": {clock: {ds: {n: {"alcs": c.alcs, "mean": c.mean, "spread": c.spread, "final_nauc": c.nauc}
                                    for n, c in cells.items()} for ds, cells in summary[clock].items()}
                       for clock in ("simulated", "wall")}}
    if summary_path is not None:
        Path(summary_path).write_text(json.dumps(plain, indent=1, default=float) + "\n")
    return plain
