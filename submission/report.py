"""The self-service run's HTML page (``DIR/report.html``): one self-contained file.

It shows the learning curve (the PNG embedded as base64, so the page needs no other
file), each model's decision (the chosen training dataset, the configuration as a table,
the selector's confidence, the fallback if any; or that none was recorded), the scores
(ALC, final NAUC, number of predictions, duration), the protocol, the model names, the
dataset, and the first predictions for the unlabelled examples. With a second model
(``--compare``) both appear side by side and both curves are drawn on one picture
(:func:`plot_curves`). Everything written into the page is HTML-escaped.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodl.plots import time_ticks
from autodl.protocol import Protocol
from autodl.records import Status, utc_now_text
from autodl.score_files import ScoreResult
from autodl.scoring import transform_time

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 20
"""Rows of each model's ``unlabelled.csv`` shown on the page."""

DECISION_FIELDS = ("chosen_dataset", "selector", "confidence", "threshold", "novelty", "fallback",
                   "configuration_source", "selection_seconds")
"""The decision's scalar fields, in the order the page shows them (``configuration`` and
``events`` are shown as a table and a list; other keys follow)."""


class ScoredMixin:
    """``alc`` and ``final_nauc`` of a run with a ``score`` and a ``status``."""

    score: ScoreResult
    status: str

    @property
    def alc(self) -> float | None:
        """The ALC, None for a model that crashed (never an ALC of 0)."""
        return None if self.status == Status.CRASHED else float(self.score.score)

    @property
    def final_nauc(self) -> float | None:
        return float(self.score.nauc_scores[-1]) if self.score.nauc_scores else None


@dataclass
class RunSummary(ScoredMixin):
    """What the page shows of one model's run."""

    model: str
    status: str
    score: ScoreResult
    decision: Mapping[str, Any] | None = None
    decision_note: str | None = None
    error: str | None = None
    out: Path | None = None
    unlabelled_csv: Path | None = None


# --- the picture with several curves ------------------------------------------------------------
def plot_curves(curves: Sequence[tuple[str, ScoreResult]], path: str | Path) -> Path:
    """Draw the learning curves of several runs of one protocol on one picture (PNG).

    Step plots of each prediction's NAUC over the transformed time
    ``log(1 + t/t0) / log(1 + T/t0)`` (T and t0 of the first run), each held to the end,
    the ALC in the legend; a second axis on top gives seconds.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T, t0 = curves[0][1].time_budget, curves[0][1].t0
    fig = Figure(figsize=(7, 5.2), dpi=100)
    ax = fig.add_subplot(111)
    x_end = 1.0
    for _, score in curves:
        for t in score.timestamps:
            x_end = max(x_end, float(transform_time(t, T, t0)) + 0.02)
    colours = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")
    for i, (label, score) in enumerate(curves):
        pts = sorted((float(transform_time(t, T, t0)), float(v)) for t, v in zip(score.timestamps,
                                                                                  score.nauc_scores, strict=True))
        xs = [0.0] + [p[0] for p in pts] + [x_end]
        ys = [0.0] + [p[1] for p in pts]
        ys.append(ys[-1])
        colour = colours[i % len(colours)]
        ax.step(xs, ys, where="post", color=colour, linewidth=1.8, marker="o", markersize=4,
                markevery=list(range(1, len(pts) + 1)), clip_on=False, label=f"{label}: ALC {score.score:.4f}")
        ax.fill_between([min(x, 1.0) for x in xs], ys, step="post", color=colour, alpha=0.08, linewidth=0)
    ax.set_xlim(0, x_end)
    lowest = min((v for _, score in curves for v in score.nauc_scores), default=0.0)
    ax.set_ylim(min(-0.01, lowest - 0.05), 1)
    ax.grid(True, alpha=0.3)
    if x_end > 1.0:
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("Transformed time  " + r"$\tilde{t} = \log(1 + t/t_0)\, /\, \log(1 + T/t_0)$")
    ax.set_ylabel("NAUC = 2 * AUC - 1")
    ax.legend(loc="lower right", fontsize=8)
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = time_ticks(T, t0)
    top.set_xticks([float(transform_time(t, T, t0)) for t in ticks])
    top.set_xticklabels([f"{t:.3g}" for t in ticks], fontsize=8)
    top.set_xlabel("Time (s)", fontsize=9)
    ax.set_title(f"Learning curves: {curves[0][1].task_name or 'task'}   (T = {T:g} s, t0 = {t0:g} s)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


# --- HTML -------------------------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return _e(value)


def _value(value: Any) -> str:
    """A decision or configuration value as HTML (numbers rounded, lists and mappings compact)."""
    if value is None:
        return "<em>none</em>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _e(f"{value:.6g}")
    if isinstance(value, Mapping | list | tuple):
        import json

        return f"<code>{_e(json.dumps(value, default=str))}</code>"
    return _e(value)


def _image(path: Path | None) -> str:
    if path is None or not Path(path).is_file():
        return "<p><em>no learning-curve picture</em></p>"
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img alt="learning curve" src="data:image/png;base64,{data}">'


def _link(path: Path | None, base: Path, text: str | None = None) -> str:
    if path is None or not Path(path).exists():
        return ""
    try:
        rel = Path(path).resolve().relative_to(base.resolve())
    except ValueError:
        rel = Path(path).resolve()
    return f'<a href="{_e(rel.as_posix())}">{_e(text or rel.as_posix())}</a>'


def _scores_table(runs: Sequence[RunSummary]) -> str:
    rows = []
    for r in runs:
        s = r.score
        status = {Status.OK: "ok", Status.TIMEOUT: "ended at the budget by the scoring side",
                  Status.CRASHED: "crashed"}.get(r.status, r.status)
        if r.error and r.status == Status.CRASHED:
            status += f": {r.error}"
        rows.append(f"<tr><td><code>{_e(r.model)}</code></td><td class=num>{_num(r.alc)}</td>"
                    f"<td class=num>{_num(r.final_nauc)}</td><td class=num>{len(s.timestamps)}</td>"
                    f"<td class=num>{s.duration:.1f}</td><td>{_e(status)}</td></tr>")
    return ("<table><tr><th>model</th><th>ALC</th><th>final NAUC</th><th>predictions</th>"
            "<th>duration (s)</th><th>status</th></tr>" + "".join(rows) + "</table>")


def _decision_html(r: RunSummary) -> str:
    head = f"<h3>Decision of <code>{_e(r.model)}</code></h3>"
    d = r.decision
    if d is None:
        return head + f"<p class=note>{_e(r.decision_note or f'no decision recorded (model {r.model})')}</p>"
    parts = [head]
    fallback = d.get("fallback")
    if fallback:
        parts.append(f"<p class=fallback>Fallback: {_e(fallback)}</p>")
    rows = []
    for key in DECISION_FIELDS:
        if key in d:
            value = "<em>none</em>" if key == "fallback" and not d[key] else _value(d[key])
            rows.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{value}</td></tr>")
    for key, value in d.items():
        if key not in DECISION_FIELDS and key not in ("configuration", "events"):
            rows.append(f"<tr><th>{_e(key.replace('_', ' '))}</th><td>{_value(value)}</td></tr>")
    parts.append("<table class=kv>" + "".join(rows) + "</table>")
    config = d.get("configuration")
    if isinstance(config, Mapping) and config:
        parts.append("<h4>Configuration</h4><table class=kv>" + "".join(
            f"<tr><th>{_e(k)}</th><td>{_value(v)}</td></tr>" for k, v in config.items()) + "</table>")
    events = d.get("events")
    if isinstance(events, list) and events:
        parts.append("<h4>Events</h4><ul>" + "".join(f"<li>{_e(ev)}</li>" for ev in events) + "</ul>")
    return "".join(parts)


def _unlabelled_html(runs: Sequence[RunSummary], unlabelled: Any, base: Path) -> str:
    if unlabelled is None:
        return "<p class=note>no unlabelled examples</p>"
    parts = [f"<p>{len(unlabelled)} unlabelled examples from {_e(', '.join(unlabelled.sources))}, predicted as "
             f"part of each model's test set (they are not scored).</p>"]
    for r in runs:
        if r.unlabelled_csv is None or not r.unlabelled_csv.is_file():
            parts.append(f"<p><code>{_e(r.model)}</code>: no prediction for the unlabelled examples</p>")
            continue
        with r.unlabelled_csv.open(newline="", encoding="utf-8") as fh:
            rows = list(csv.reader(fh))
        header, body = rows[0], rows[1:]
        shown = body[:PREVIEW_ROWS]
        more = f" (first {PREVIEW_ROWS} of {len(body)})" if len(body) > PREVIEW_ROWS else ""
        parts.append(f"<h3><code>{_e(r.model)}</code>{_e(more)}: {_link(r.unlabelled_csv, base)}, "
                     f"{_link(r.unlabelled_csv.with_name('unlabelled.predict'), base)}</h3>")
        parts.append("<table><tr>" + "".join(f"<th>{_e(h)}</th>" for h in header) + "</tr>" + "".join(
            "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in shown) + "</table>")
    return "".join(parts)


def _dataset_html(dataset: Any, data: Path, formatted: bool, class_names: Sequence[str] | None) -> str:
    rows = [("dataset", f"{dataset.name} ({dataset.root})")]
    if formatted:
        rows.append(("formatted from", f"{data} (labels.csv)"))
    for subset in dataset.subsets:
        meta = dataset.metadata(subset)
        t, h, w, c = meta.get_tensor_shape()
        dims = "x".join("?" if v < 0 else str(v) for v in (t, h, w, c))
        rows.append((subset, f"{meta.size()} examples, [T,H,W,C] = {dims}, {meta.format.lower()}"))
    output_dim = dataset.metadata("train").output_dim
    names = ""
    if class_names:
        names = ": " + ", ".join(class_names[:30]) + (" ..." if len(class_names) > 30 else "")
    rows.append(("classes", f"{output_dim}{names}"))
    return "<table class=kv>" + "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows) + "</table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; border-bottom: 1px solid #ccc; margin-top: 1.6em; }
h3 { font-size: 1.05em; } h4 { font-size: 0.95em; margin-bottom: 0.3em; }
table { border-collapse: collapse; margin: 0.5em 0; } td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; }
th { background: #f4f4f4; text-align: left; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.kv th { font-weight: normal; color: #555; }
.fallback { background: #fff3cd; border: 1px solid #e0c060; padding: 0.4em 0.8em; }
.note { color: #666; font-style: italic; } img { max-width: 100%; }
.runs { display: flex; gap: 2em; flex-wrap: wrap; } .runs > div { flex: 1; min-width: 22em; }
"""


def render_report(*, dataset: Any, data: Path, formatted: bool, protocol: Protocol, runs: Sequence[RunSummary],
                  curve_png: Path | None, unlabelled: Any = None, class_names: Sequence[str] | None = None,
                  base: Path | None = None) -> str:
    """The page as a string (see :func:`write_report`)."""
    base = base or Path(".")
    models = " vs ".join(f"<code>{_e(r.model)}</code>" for r in runs)
    files = []
    for r in runs:
        if r.out is None:
            continue
        links = [_link(r.out / "scores" / "scores.txt", base), _link(r.out / "scores" / "learning-curve.png", base),
                 _link(r.out / "ingestion.log", base), _link(r.out / "decision.json", base),
                 _link(r.out / "predictions", base, "predictions/")]
        files.append(f"<li><code>{_e(r.model)}</code>: " + ", ".join(x for x in links if x) + "</li>")
    decisions = "".join(f"<div>{_decision_html(r)}</div>" for r in runs)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>autodl-meta run: {_e(dataset.name)}</title>
<style>{_STYLE}</style></head><body>
<h1>Self-service run: {models} on {_e(dataset.name)}</h1>
<p>Protocol <b>{_e(protocol.describe())}</b>, wall clock (the organizers' local test: ingestion in a child
process, ended at the budget). Written {_e(utc_now_text())} by <code>autodl-meta run</code>.</p>
<h2>Scores</h2>
{_scores_table(runs)}
<p class=note>ALC: area under the learning curve of the NAUC (2*AUC-1) over the transformed time; a model that
crashed has no ALC.</p>
{_image(curve_png)}
<h2>Decision</h2>
<div class=runs>{decisions}</div>
<h2>Dataset</h2>
{_dataset_html(dataset, data, formatted, class_names)}
<h2>Unlabelled examples</h2>
{_unlabelled_html(runs, unlabelled, base)}
<h2>Files</h2>
<ul>{"".join(files)}</ul>
</body></html>
"""


def write_report(path: str | Path, *, dataset: Any, data: Path, formatted: bool, protocol: Protocol,
                 runs: Sequence[RunSummary], curve_png: Path | None, unlabelled: Any = None,
                 class_names: Sequence[str] | None = None) -> Path:
    """Write the self-contained HTML page of a self-service run to ``path``.

    Parameters
    ----------
    dataset
        The :class:`~autodl.dataset.AutoDLDataset` scored.
    data, formatted
        What the user gave, and whether it was a raw folder formatted on the way.
    protocol
        The protocol the runs used.
    runs
        One :class:`RunSummary` per model (the first is the main one).
    curve_png
        The learning-curve picture (embedded as base64).
    unlabelled
        The :class:`~submission.selfservice.UnlabelledSet`, or None.
    class_names
        The class names, if known.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_report(dataset=dataset, data=data, formatted=formatted, protocol=protocol, runs=runs,
                         curve_png=curve_png, unlabelled=unlabelled, class_names=class_names, base=path.parent)
    path.write_text(text, encoding="utf-8")
    logger.info("wrote %s", path)
    return path
