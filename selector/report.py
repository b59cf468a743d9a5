"""The comparison report: selectors and similarity measures side by side.

:func:`compare` runs every measurement of selectors (dataset identification,
:mod:`selector.identification`; leave-one-dataset-out selection scored by the cost matrix,
:mod:`selector.lodo`, with its fallback rule, :mod:`selector.fallback`; statistics across
datasets, :mod:`selector.significance`; the cost of selecting, :mod:`selector.selection_timing`),
writes the results beside the report so that it can be
written again without running anything (:func:`render`), and renders:

- ``report.md`` and ``report.html`` (plain HTML, no script; the pictures are linked, so
  keep the folder together),
- the pictures (drawn by :mod:`selector.report_figures`): ``accuracy.png`` (identification
  accuracy against batch size, one line per selector), ``regret.png`` (regret per dataset and
  selector), ``cd.png`` (the critical-difference diagram of autorank, Demsar 2006),
  ``embeddings.png`` (a PCA map of the datasets' embeddings, centroids labelled),
- ``identification.csv``, ``lodo.csv``, ``embedding_map.csv`` and ``summary.json`` (the
  settings, the summaries, the statistics, the selection cost, the choice).

The report names the protocol and clock of the cost matrix, the machine, the command, and
the selector chosen for shipping (:func:`choose`): the best mean leave-one-dataset-out ALC,
ties to the faster one.
"""

from __future__ import annotations

import csv
import html
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import read_versioned_json, to_plain, utc_now
from metafeatures.features import DatasetFeatures, load_features_folder
from selector.fallback import fallback_threshold, nested_fallback
from selector.identification import DEFAULT_BATCH_SIZES, identification_table
from selector.lodo import per_dataset, summarize_lodo
from selector.measure import measure
from selector.member_views import CostSource, ReportError, load_cost, load_members
from selector.report_figures import plot_accuracy, plot_cd, plot_embeddings, plot_regret
from selector.significance import statistics
from selector.specs import EVALUATION_ONLY, Progress, SelectorSpec, as_specs, outputs_members

logger = logging.getLogger(__name__)

SUMMARY_FORMAT = "autodl-meta-selector-comparison/1"
REPORT_MD, REPORT_HTML, SUMMARY_JSON = "report.md", "report.html", "summary.json"
IDENT_CSV, LODO_CSV, MAP_CSV = "identification.csv", "lodo.csv", "embedding_map.csv"
LODO_QUERIES_CSV = "lodo_queries.csv"
LODO_INNER_CSV = "lodo_inner_queries.csv"
BASELINES = ("single-best", "single-best-member", "size-rule")
"""The trivial baselines every selector is compared with (:func:`compare` adds them unless told
not to): the member with the best mean ALC (``single-best``, or ``single-best-member`` where some
member is available without a training dataset assigned to it, which ``single-best`` cannot
name), and a decision rule on image side and training size."""
RULE_DESCRIPTORS = ("height", "width", "train_samples")
TABLE_BATCH_SIZES = (1, 8, 32, 128, 1024)
"""The identification table's columns (the picture shows every batch size measured)."""
_TIE = 1e-9


# --- inputs -----------------------------------------------------------------------------------
def load_datasets(features: str | Path | Sequence[DatasetFeatures],
                  names: Sequence[str] | None = None) -> tuple[list[DatasetFeatures], str | None]:
    """The features of a folder (or given), and the folder; ``names``: only these datasets."""
    if isinstance(features, (str, Path)):
        return load_features_folder(features, None if names is None else sorted(names)), str(features)
    wanted = None if names is None else set(names)
    return [d for d in features if wanted is None or d.name in wanted], None


# --- the comparison ---------------------------------------------------------------------------
def compare(selectors: Sequence[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
            features: str | Path | Sequence[DatasetFeatures], cost: Any, out: str | Path, *,
            batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 10, query_size: int = 64,
            n_queries: int = 10, seeds: Sequence[int] = (0,),
            cost_batch_sizes: Sequence[int] | None = None, timing_repeats: int = 3, time_embedding: bool = True,
            embedder: Any = None, command: str | None = None, members: Any = "auto",
            nested: bool = True, inner_queries: int | None = None, baselines: bool = True,
            workers: int = 1, names: Sequence[str] | None = None,
            progress: Progress | None = None, parts: str | Path | None = None) -> dict[str, Any]:
    """Compare selectors on a collection's features and a portfolio's cost matrix; write the report.

    Every selector is scored through the portfolio's members (:mod:`selector.members`, the view
    built by :mod:`selector.member_views`): a dataset selector's pick by its dataset's member, a
    member selector's pick directly; the single best and the oracle are members. The fallback
    rule of each selector is scored twice: with thresholds chosen on the folds it is scored on
    (``fallback``: optimistic, and what a fitted selector ships with) and by nested
    leave-one-dataset-out (``fallback_nested``: each fold scored with thresholds chosen on its
    training datasets only).

    Parameters
    ----------
    selectors:
        What to compare (:func:`selector.specs.as_specs`). Include ``oracle``,
        ``single-best`` and ``random`` as references.
    features:
        A folder of ``<name>.npz`` features (``autodl-meta metafeatures extract``) or the
        :class:`DatasetFeatures` themselves.
    cost:
        A portfolio folder, a ``cost_matrix.csv`` or a :class:`CostMatrix` (:func:`load_cost`).
    out:
        The report folder (created; files of an earlier report are replaced).
    batch_sizes, n_batches:
        Identification: batch sizes and random batches per dataset and size.
    query_size, n_queries:
        Leave-one-dataset-out: samples per query batch and batches per held-out dataset.
    seeds:
        Each measurement is repeated per seed (batches, and selectors' ``seed``); figures are
        averaged over them.
    cost_batch_sizes:
        Batch sizes of the selection cost (default: 1, 8, 32, ``query_size``, 128, 1024).
    timing_repeats:
        Timed repetitions (median) of each embedding and selection.
    time_embedding:
        Time the embedding with the features' backbone (needs PyTorch and its weights);
        False: selection only.
    embedder:
        An embedder to time instead of the one the features' card describes.
    command:
        The command line to name in the report.
    members:
        The member view: ``"auto"`` (:func:`selector.member_views.load_members` of the portfolio
        folder: the pool's cells where there are, else the cost matrix's rows grouped by
        configuration), a :class:`~selector.members.MemberMatrix`, or None (one member per row).
    nested:
        Score the fallback rule by nested leave-one-dataset-out (one more fit per pair of
        groups and selector that reads the query).
    inner_queries:
        Query batches per inner held-out dataset (default ``n_queries``).
    baselines:
        Add the trivial baselines of :data:`BASELINES` that ``selectors`` lack (``size-rule``
        only where every dataset has the descriptors it reads).
    workers:
        Measure the selectors side by side in this many processes (:mod:`selector.measure`: the
        same rows, in the same order; the selection-cost table is always timed in this process,
        alone).
    names:
        Only these datasets of ``features`` (a features folder shared by several collections or
        builds may hold others).
    progress:
        ``progress(stage, done, total)``.
    parts:
        A folder where each (seed, selector) measurement is kept once made
        (:func:`selector.measure.measure`): a comparison interrupted and started again with the
        same folder measures only what is not kept there. None: nothing kept.

    Returns
    -------
    dict
        The summary written to ``summary.json``, with ``paths`` added.
    """
    from autodl.machine import machine_description
    from selector.selection_timing import selection_cost

    specs = as_specs(selectors)
    datasets, features_path = load_datasets(features, names)
    src = load_cost(cost)
    mm = _members_for(src, members)
    added, not_added, baseline_labels = [], {}, []
    if baselines:
        specs, baseline_labels, added, not_added = _with_baselines(specs, datasets, mm)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in seeds] or [0]
    measured = measure(specs, datasets, src.matrix, mm, seeds=seeds, workers=workers, progress=progress, parts=parts,
                       ident_args={"batch_sizes": batch_sizes, "n_batches": n_batches},
                       lodo_args={"query_size": query_size, "n_queries": n_queries, "nested_fallback": nested,
                                  "inner_queries": inner_queries})
    ident_rows, skipped = measured.identification, measured.skipped
    lodo_rows, query_rows, inner_rows = measured.lodo, measured.queries, measured.inner_queries
    lodo_summary = summarize_lodo(lodo_rows)
    levels = {k: v["mean_alc"] for k, v in lodo_summary["per_selector"].items()}
    if cost_batch_sizes is None:
        cost_batch_sizes = sorted({1, 8, 32, int(query_size), 128, 1024})
    emb, emb_error = (embedder, None) if embedder is not None or not time_embedding else _embedder_for(datasets)
    sel_cost = selection_cost(specs, datasets, batch_sizes=cost_batch_sizes, cost=src.matrix, embedder=emb,
                              repeats=timing_repeats, seed=seeds[0], levels=levels, progress=progress,
                              time_embedding=emb is not None, members=mm)
    if emb_error:
        sel_cost["embedding_error"] = emb_error
    card = dict(datasets[0].card) if datasets else {}
    evaluation_only = [s.label for s in specs if s.name in EVALUATION_ONLY
                       or getattr(s.factory, "evaluation_only", False)]
    outputs = {s.label: _outputs(s) for s in specs}
    fallback_specs = [s for s in specs if s.label not in evaluation_only]
    summary: dict[str, Any] = {
        "format": SUMMARY_FORMAT,
        "date": utc_now(),
        "command": command, "machine": machine_description(),
        "protocol": src.protocol, "clock": src.clock,
        "cost_matrix": {"path": src.path, "portfolio": src.folder, "note": src.note, "sources": len(src.matrix.sources),
                        "targets": len(src.matrix.targets),
                        "cells": int((~np.isnan(src.matrix.alc)).sum()),
                        "cells_total": int(src.matrix.alc.size)},
        "features": {"path": features_path, "datasets": [d.name for d in datasets],
                     "groups": {d.name: d.source or d.name for d in datasets},
                     "backbone": card.get("backbone"), "input_size": card.get("input_size"),
                     "train_samples": int(np.median([len(d.train) for d in datasets])) if datasets else None,
                     "test_samples": int(np.median([0 if d.test is None else len(d.test) for d in datasets]))
                     if datasets else None},
        "settings": {"selectors": [{"label": s.label, "name": s.name, "params": dict(s.params)} for s in specs],
                     "batch_sizes": sorted({int(b) for b in batch_sizes}), "n_batches": n_batches,
                     "query_size": query_size, "n_queries": n_queries, "seeds": seeds,
                     "cost_batch_sizes": list(cost_batch_sizes), "timing_repeats": timing_repeats,
                     "nested_fallback": bool(nested), "inner_queries": int(inner_queries or n_queries),
                     "workers": int(workers)},
        "evaluation_only": evaluation_only,
        "outputs": outputs,
        "members": mm.summary(),
        "baselines": {"labels": baseline_labels, "added": added, "not_added": not_added},
        "identification": {"table": identification_table(ident_rows), "skipped": skipped},
        "lodo": lodo_summary,
        "statistics": statistics(lodo_rows, "alc").to_dict(),
        "selection_cost": sel_cost,
        "fallback": {s.label: fallback_threshold(query_rows, s.label) for s in fallback_specs},
        "fallback_nested": ({s.label: nested_fallback(query_rows, inner_rows, s.label) if _reads_query(s) else None
                             for s in fallback_specs} if nested else {}),
    }
    summary["against_baselines"] = against_baselines(lodo_rows, summary["baselines"]["labels"])
    summary["choice"] = choose(summary)
    _write_csv(out / IDENT_CSV, ident_rows)
    _write_csv(out / LODO_CSV, lodo_rows)
    _write_csv(out / LODO_QUERIES_CSV, query_rows)
    _write_csv(out / LODO_INNER_CSV, inner_rows)
    _write_csv(out / MAP_CSV, embedding_map(datasets))
    (out / SUMMARY_JSON).write_text(json.dumps(_jsonable(summary), indent=1, allow_nan=False) + "\n")
    paths = render(out)
    return {**summary, "paths": {k: str(v) for k, v in paths.items()}}


def _members_for(src: CostSource, members: Any) -> Any:
    """The member view :func:`compare` scores with (see its ``members``)."""
    from selector.members import MemberMatrix, trivial_members

    if isinstance(members, MemberMatrix):
        return members
    if members is None or src.folder is None:
        return trivial_members(src.matrix)
    if members != "auto":
        raise ReportError(None, f"members={members!r}: expected 'auto', None or a MemberMatrix", field="members")
    return load_members(src.folder, src.matrix)


def _outputs(spec: SelectorSpec) -> str:
    """``members`` or ``datasets``: what ``spec``'s selector scores (``datasets`` where it cannot be made)."""
    try:
        return "members" if outputs_members(spec.make()) else "datasets"
    except Exception:  # a selector that cannot be built fails in the measurements, with the reason
        return "datasets"


def _reads_query(spec: SelectorSpec) -> bool:
    """Whether ``spec``'s selector reads the query (the single best does not: no fallback rule to nest)."""
    try:
        return bool(spec.make().needs_query)
    except Exception:
        return True


def _with_baselines(specs: list[SelectorSpec], datasets: Sequence[DatasetFeatures], mm: Any
                    ) -> tuple[list[SelectorSpec], list[str], list[str], dict[str, str]]:
    """``specs`` with the trivial baselines they lack (by registry name; see :data:`BASELINES`),
    the baselines' labels, the labels added and why any was not."""
    free = any(o is not None for o in mm.origins.values()) or bool(set(mm.members) - set(mm.member_of.values()))
    wanted = ("single-best-member" if free else "single-best", "size-rule")
    labels = {s.label for s in specs}
    added, not_added, baseline_labels = [], {}, []
    out = list(specs)
    for name in wanted:
        mine = next((s for s in specs if s.name == name), None)
        if mine is not None:
            baseline_labels.append(mine.label)
            continue
        if name == "size-rule":
            lacking = [d.name for d in datasets if any(k not in (d.descriptors or {}) for k in RULE_DESCRIPTORS)]
            if lacking:
                not_added[name] = (f"the descriptors {', '.join(RULE_DESCRIPTORS)} are missing for "
                                   f"{', '.join(lacking[:5])}{' ...' if len(lacking) > 5 else ''}")
                logger.warning("baseline %s not added: %s", name, not_added[name])
                continue
        label = name if name not in labels else f"{name} (baseline)"
        out.append(SelectorSpec(name, {}, label=label))
        added.append(label)
        baseline_labels.append(label)
    if added:
        logger.info("trivial baselines added to the comparison: %s", ", ".join(added))
    return out, baseline_labels, added, not_added


def against_baselines(rows: Sequence[Mapping[str, Any]], baselines: Sequence[str]) -> dict[str, Any]:
    """Each selector against each trivial baseline, per held-out dataset (averaged over seeds):
    mean ALC difference, and wins / ties / losses where a tie is a difference within the
    dataset's seed noise (or 1e-9)."""
    table = per_dataset(rows)
    alc = {(r["selector"], r["dataset"]): r["alc"] for r in table}
    noise = {r["dataset"]: float(r.get("noise") or 0.0) for r in table}
    labels = list(dict.fromkeys(r["selector"] for r in table))
    out: dict[str, Any] = {}
    for b in baselines:
        if b not in labels:
            continue
        per: dict[str, Any] = {}
        for label in labels:
            if label == b:
                continue
            diffs, w, t, lose = [], 0, 0, 0
            for ds in noise:
                a, c = alc.get((label, ds)), alc.get((b, ds))
                if _isnan(a) or _isnan(c):
                    continue
                d = float(a) - float(c)
                diffs.append(d)
                tol = max(noise[ds], _TIE)
                w, t, lose = w + (d > tol), t + (abs(d) <= tol), lose + (d < -tol)
            per[label] = {"mean_difference": float(np.mean(diffs)) if diffs else float("nan"), "wins": int(w),
                          "ties": int(t), "losses": int(lose), "datasets": len(diffs)}
        out[b] = per
    return out


def _embedder_for(datasets: Sequence[DatasetFeatures]) -> tuple[Any, str | None]:
    """The embedder the features' card describes, on the CPU; or (None, why) where it cannot be
    made (no PyTorch, no weights, an unknown backbone): the selection is then timed alone."""
    try:
        from metafeatures.embeddings import EmbeddingSpec
        from selector.selection_timing import make_embedder

        card = dict(datasets[0].card) if datasets else {}
        spec = EmbeddingSpec.from_dict(card["spec"]) if isinstance(card.get("spec"), dict) else EmbeddingSpec()
        return make_embedder(spec, in_chans=3, device="cpu"), None
    except Exception as exc:  # whatever stops the embedder, the comparison goes on without its timing
        why = f"{type(exc).__name__}: {exc}"
        logger.warning("the embedding is not timed: %s", why)
        return None, why


NOT_SHIPPED = frozenset({"random", "size-rule"})
"""References that are never chosen for shipping (beside the evaluation-only oracle): a random
pick's ALC in a comparison is luck; the size rule is a trivial baseline."""


def choose(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The selector to ship: the best mean leave-one-dataset-out ALC among those that are not
    references (evaluation-only, :data:`NOT_SHIPPED`) and ran on every dataset, whether they
    name training datasets or portfolio members (the submission looks either up in
    ``portfolio.json``); ties (within 1e-9) go to the one with fewer seconds per selection
    (embedding and selection at the query size, else its mean LODO prediction time)."""
    per = summary["lodo"]["per_selector"]
    names = {s["label"]: s["name"] for s in summary["settings"]["selectors"]}
    excluded = set(summary.get("evaluation_only") or []) | {k for k in per if names.get(k, k) in NOT_SHIPPED}
    pool = {k: v for k, v in per.items() if k not in excluded and v.get("mean_alc") is not None
            and not _isnan(v["mean_alc"])}
    complete = {k: v for k, v in pool.items() if not v.get("failed")}
    pool = complete or pool
    if not pool:
        return None
    q = summary["settings"]["query_size"]
    seconds = {}
    for k, v in pool.items():
        row = next((r for r in summary["selection_cost"]["rows"] if r["selector"] == k and r["batch_size"] == q
                    and r.get("total_seconds") is not None), None)
        seconds[k] = row["total_seconds"] if row else (v.get("predict_seconds") or math.inf)
    best = max(v["mean_alc"] for v in pool.values())
    tied = [k for k, v in pool.items() if v["mean_alc"] >= best - _TIE]
    pick = min(tied, key=lambda k: (seconds[k], k))
    spec = next((s for s in summary["settings"]["selectors"] if s["label"] == pick), {"name": pick, "params": {}})
    reason = "the best mean leave-one-dataset-out ALC"
    if len(tied) > 1:
        reason += f" (tied with {', '.join(t for t in tied if t != pick)}; fewer seconds per selection)"
    if not complete:
        reason += "; every candidate failed on some dataset, so the means are over different datasets"
    return {"selector": pick, "name": spec["name"], "params": spec["params"], "mean_alc": per[pick]["mean_alc"],
            "seconds": seconds[pick] if math.isfinite(seconds[pick]) else None, "reason": reason,
            "candidates": sorted(pool)}


def embedding_map(datasets: Sequence[DatasetFeatures], per_dataset_max: int = 200, seed: int = 0) -> list[dict]:
    """2-D PCA coordinates of (at most ``per_dataset_max``) training embeddings per dataset."""
    if not datasets:
        return []
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    parts, names = [], []
    for d in datasets:
        n = len(d.train)
        idx = np.sort(rng.choice(n, size=min(n, per_dataset_max), replace=False))
        parts.append(d.train[idx])
        names += [d.name] * len(idx)
    x = np.concatenate(parts).astype(np.float64)
    k = min(2, x.shape[0], x.shape[1])
    xy = PCA(n_components=k, random_state=seed).fit_transform(x) if k >= 1 else np.zeros((len(x), 0))
    if xy.shape[1] < 2:
        xy = np.hstack([xy, np.zeros((len(x), 2 - xy.shape[1]))])
    return [{"dataset": n, "x": float(a), "y": float(b)} for n, (a, b) in zip(names, xy, strict=True)]


# --- files ------------------------------------------------------------------------------------
def _isnan(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _json_leaf(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, Path):
        return str(v)
    return v


def _jsonable(v: Any) -> Any:
    """:func:`autodl.records.to_plain`, with NaN and infinities as ``None`` and paths as strings."""
    return to_plain(v, _json_leaf)


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow({k: "" if _isnan(r.get(k)) else r.get(k) for k in keys})
    return path


_TEXT_COLUMNS = {"selector", "dataset", "group", "selected", "selected_group", "oracle", "single_best", "error",
                 "split", "selected_member", "acceptable", "member", "outer_group"}


def read_csv_rows(path: str | Path) -> list[dict[str, Any]]:
    """Rows written by :func:`compare` (numbers back as numbers, empty cells as NaN / None)."""
    out = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            r: dict[str, Any] = {}
            for k, v in row.items():
                if k in _TEXT_COLUMNS:
                    r[k] = v if v != "" else None
                elif v == "":
                    r[k] = float("nan")
                else:
                    try:
                        r[k] = int(v)
                    except ValueError:
                        try:
                            r[k] = float(v)
                        except ValueError:
                            r[k] = v
            out.append(r)
    return out


# --- the report -------------------------------------------------------------------------------
def _f(v: Any, digits: int = 4, signed: bool = False) -> str:
    if _isnan(v):
        return "n/a"
    return f"{v:+.{digits}f}" if signed else f"{v:.{digits}f}"


def _seconds(v: Any) -> str:
    if _isnan(v):
        return "n/a"
    return f"{v * 1000:.2f} ms" if v < 1 else f"{v:.2f} s"


class _Doc:
    """Blocks rendered to Markdown and to HTML alike."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, Any]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def items(self, lines: Sequence[str]) -> None:
        self.blocks.append(("ul", list(lines)))

    def table(self, header: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None) -> None:
        self.blocks.append(("table", (list(header), [list(r) for r in rows], align)))

    def img(self, path: Path | None, alt: str) -> None:
        if path is not None:
            self.blocks.append(("img", (path.name, alt)))

    def markdown(self) -> str:
        out = []
        for kind, v in self.blocks:
            if kind == "h":
                out.append("#" * v[0] + " " + v[1])
            elif kind == "p":
                out.append(v)
            elif kind == "ul":
                out.append("\n".join(f"- {x}" for x in v))
            elif kind == "table":
                header, rows, align = v
                align = align or "l" + "r" * (len(header) - 1)
                sep = ["---:" if a == "r" else "---" for a in align]
                out.append("\n".join("| " + " | ".join(r) + " |" for r in [header, sep, *rows]))
            elif kind == "img":
                out.append(f"![{v[1]}]({v[0]})")
        return "\n\n".join(out) + "\n"

    def html(self, title: str) -> str:
        import jinja2

        body = []
        for kind, v in self.blocks:
            if kind == "h":
                body.append(f"<h{v[0]}>{_inline(v[1])}</h{v[0]}>")
            elif kind == "p":
                body.append(f"<p>{_inline(v)}</p>")
            elif kind == "ul":
                body.append("<ul>" + "".join(f"<li>{_inline(x)}</li>" for x in v) + "</ul>")
            elif kind == "table":
                header, rows, align = v
                align = align or "l" + "r" * (len(header) - 1)
                head = "".join(f"<th>{_inline(x)}</th>" for x in header)
                trs = "".join("<tr>" + "".join(f'<td class="{"num" if a == "r" else ""}">{_inline(x)}</td>'
                                               for x, a in zip(r, align, strict=False)) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "img":
                body.append(f'<figure><img src="{html.escape(v[0])}" alt="{html.escape(v[1])}">'
                            f"<figcaption>{html.escape(v[1])}</figcaption></figure>")
        from markupsafe import Markup

        env = jinja2.Environment(autoescape=True)
        # the body is built from escaped pieces above (_inline, html.escape)
        return env.from_string(_HTML).render(title=title, body=Markup("\n".join(body)))


def _inline(text: str) -> str:
    """Markdown's `code`, **bold** and [links](url) in escaped HTML."""
    t = html.escape(text, quote=False)
    t = re.sub(r"`([^`]+)`", r"<code>\1</code>", t)
    t = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", t)
    return re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r'<a href="\2">\1</a>', t)


_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; padding: 0 1em; line-height: 1.4; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; }
code { background: #f5f5f5; padding: 0 0.2em; }
</style></head>
<body>
{{ body }}
</body></html>
"""


def render(out: str | Path) -> dict[str, Path]:
    """Write the pictures, ``report.md`` and ``report.html`` from the files :func:`compare` saved
    in ``out`` (nothing is measured again; the choice is made again by :func:`choose`, and
    ``summary.json`` updated where it changes)."""
    out = Path(out)
    path = out / SUMMARY_JSON
    summary = read_versioned_json(path, SUMMARY_FORMAT, what="a selector comparison's summary", error=ReportError,
                                  missing="not found; expected a folder written by selector.report.compare")
    choice = choose(summary)  # derived: the rule of this version of choose() applies
    if choice != summary.get("choice"):
        summary["choice"] = choice
        path.write_text(json.dumps(_jsonable(summary), indent=1, allow_nan=False) + "\n")
    ident_rows = read_csv_rows(out / IDENT_CSV) if (out / IDENT_CSV).stat().st_size > 1 else []
    lodo_rows = read_csv_rows(out / LODO_CSV) if (out / LODO_CSV).stat().st_size > 1 else []
    points = read_csv_rows(out / MAP_CSV) if (out / MAP_CSV).is_file() and (out / MAP_CSV).stat().st_size > 1 else []
    ident_table = identification_table(ident_rows)
    table = per_dataset(lodo_rows)
    stats = statistics(lodo_rows, "alc")
    pictures = {"accuracy": plot_accuracy(ident_table, out / "accuracy.png"),
                "regret": plot_regret(table, out / "regret.png"),
                "cd": plot_cd(stats, out / "cd.png"),
                "embeddings": plot_embeddings(points, out / "embeddings.png")}
    for name, p in pictures.items():
        stale = out / f"{name}.png"
        if p is None and stale.is_file():
            stale.unlink()
    doc = _report(summary, ident_rows, ident_table, table, stats, pictures, out)
    md = out / REPORT_MD
    md.write_text(doc.markdown())
    page = out / REPORT_HTML
    page.write_text(doc.html("Selector comparison"))
    return {"markdown": md, "html": page, "summary": path, **{k: v for k, v in pictures.items() if v is not None}}


def _percent(v: Any) -> str:
    return "n/a" if _isnan(v) else f"{round(100 * float(v))}%"  # an int: no "-0%"


def _members_line(members: Mapping[str, Any]) -> str:
    n = len(members.get("members") or [])
    where = {"pool": "the pool's cells", "cost-matrix": "the cost matrix's rows grouped by configuration",
             "rows": "one per row of the cost matrix"}.get(str(members.get("source")), str(members.get("source")))
    note = members.get("note")
    return f"Portfolio members: {n}, from {where}" + (f" ({note})" if note else "")


def _baselines_section(doc: _Doc, summary: Mapping[str, Any]) -> None:
    """Every selector against the trivial baselines (single best, size rule)."""
    against = summary.get("against_baselines") or {}
    base = summary.get("baselines") or {}
    if not against:
        if base.get("not_added"):
            doc.p("Trivial baselines not compared: " + "; ".join(f"{k} ({v})" for k, v in base["not_added"].items()))
        return
    doc.h(3, "Against the trivial baselines")
    doc.p("Each selector's mean ALC minus a trivial baseline's, and on how many held-out datasets it wins, ties or "
          "loses (a tie: within the dataset's seed noise): the single best (the member with the best mean ALC over "
          "the fold's training datasets) and `size-rule` (a depth-2 decision tree on image side and number of training "
          "examples, fitted on the fold's training datasets, naming a member). A similarity or transferability "
          "measure earns its place only where it beats both.")
    names = list(against)
    per_label = list(dict.fromkeys(k for v in against.values() for k in v))
    rows = []
    for label in per_label:
        line = [label]
        for b in names:
            v = against[b].get(label)
            line += ["" if v is None else _f(v["mean_difference"], signed=True),
                     "" if v is None else f"{v['wins']}/{v['ties']}/{v['losses']}"]
        rows.append(line)
    head = ["selector"]
    for b in names:
        head += [f"vs {b}", "W/T/L"]
    doc.table(head, rows, align="l" + "rl" * len(names))
    if base.get("added"):
        doc.p(f"Added to the comparison as baselines: {', '.join(base['added'])}.")
    if base.get("not_added"):
        doc.p("Not added: " + "; ".join(f"{k} ({v})" for k, v in base["not_added"].items()) + ".")


def _bar_section(doc: _Doc, summary: Mapping[str, Any]) -> None:
    """Each selector against the bar selection must clear (:mod:`selector.bar`)."""
    from selector.bar import Bar, bar_rows

    bar = Bar()
    rows = [r for r in bar_rows(summary, bar) if r["datasets"]]
    if not rows:
        return
    doc.h(3, "Does selection earn its place?")
    doc.p(f"Against the single best, leave-one-dataset-out: mean ALC at least {bar.min_gain:g} above it, at least "
          f"{100 * bar.min_gap_share:.0f}% of the single-best-to-oracle gap closed (of the means), and no dataset "
          f"lost by more than {bar.max_loss:g}. Where the comparison scored the fallback nested, the selector is "
          "also measured with it (thresholds chosen on the training folds only): the honest figure of what a "
          "fitted selector ships with.")
    table = []
    for r in rows:
        c = r["checks"]
        mark = {True: "yes", False: "**no**"}
        table.append([r["selector"], r["rule"], _f(r["mean_alc"]),
                      _f(r["gain"], signed=True) + f" ({mark[c['gain']]})",
                      _percent(r["gap_share"]) + f" ({mark[c['gap_share']]})",
                      f"{_f(r['worst_delta'], 3, signed=True)} {r['worst_dataset']} ({mark[c['max_loss']]})",
                      str(len(r["losses_beyond"])), "**passes**" if r["passes"] else "fails",
                      _f(r.get("vs_random"), signed=True), _f(r.get("vs_all_data_single_best"), signed=True)])
    doc.table(["selector", "rule", "mean ALC", "vs single best", "gap closed", "worst dataset vs single best",
               f"losses > {bar.max_loss:g}", "bar", "vs random member", "vs all-data single best"], table,
              align="llrrrlrlrr")
    passing = [f"{r['selector']} ({r['rule']})" for r in rows if r["passes"]]
    doc.p("Clearing the bar: " + (", ".join(passing) if passing else "none") + ".")
    lodo = summary["lodo"]
    sb, rnd, overall = (lodo.get(k) for k in ("single_best_mean_alc", "expected_random_alc",
                                               "all_data_single_best_mean_alc"))
    if sb is not None and rnd is not None:
        ref = f" and the all-data single best's {_f(overall)}" if not _isnan(overall) else ""
        doc.p(f"Beside the bar, not part of it: a uniformly random member (exact expectation, {_f(rnd)} mean ALC) "
              f"and the member with the best mean over every dataset{ref} (what a build ships as `single-best`; "
              "chosen on the held-out dataset too, so in-sample). "
              + ("**Here the fold's single best lies below a random member**: the members' means are within noise of "
                 "each other, so the bar's reference is a noisy choice, and a selector's gain over it overstates "
                 "what selection adds; the two columns on the right are the stricter reading." if sb < rnd else ""))


def _fallback_section(doc: _Doc, summary: Mapping[str, Any]) -> None:
    """The fallback rule: chosen on the scored folds (optimistic) and nested (honest)."""
    fallback = {k: v for k, v in (summary.get("fallback") or {}).items() if v}
    if not fallback:
        return
    nested = summary.get("fallback_nested") or {}
    doc.h(3, "Falling back to the single best when unsure")
    doc.p("Per selector, the confidence threshold (and, where the selector measures it, the novelty threshold: "
          "the query's mean embedding's distance to the nearest training dataset in standard errors) below / above "
          "which the submission uses the single-best configuration instead of the pick, chosen to maximise the "
          "leave-one-dataset-out mean ALC of that rule. Two figures: **optimistic**, the thresholds chosen on the "
          "very folds they are scored on (these thresholds are what a fitted selector ships with); **nested**, each "
          "held-out dataset scored with thresholds chosen by an inner leave-one-dataset-out on its fold's training "
          "datasets only, never on it: the honest estimate of the rule.")
    rows = []
    for lab, v in fallback.items():
        n = nested.get(lab)
        rng = "n/a" if not n else (f"{_f(n['confidence_range'][0], 3)}-{_f(n['confidence_range'][1], 3)}")
        nov = "n/a" if not n else ("never" if not n.get("novelty_range") else
                                   f"{_f(n['novelty_range'][0], 2)}-{_f(n['novelty_range'][1], 2)} "
                                   f"({n['novelty_folds']} of {len(n['thresholds'])} folds)")
        rows.append([lab, _f(v["confidence_threshold"], 3),
                     "never" if v["novelty_threshold"] is None else _f(v["novelty_threshold"], 2),
                     _f(v["mean_alc"]), _f(n["mean_alc"]) if n else ("not run" if not nested else "n/a"), rng, nov,
                     f"{100 * n['fallback_share']:.0f}%" if n else "n/a",
                     _f(v["mean_alc_without"]), _f(v["mean_alc_single_best"]), f"{100 * v['fallback_share']:.0f}%"])
    doc.table(["selector", "confidence >= (shipped)", "novelty <= (shipped)", "with the rule, optimistic",
               "with the rule, nested", "nested confidence >= (range)", "nested novelty <= (range)",
               "nested fallback share", "never falling back", "always single best", "optimistic fallback share"],
              rows, align="l" + "r" * 10)
    if not nested:
        doc.p("The nested figure was not computed (`--no-nested-fallback`, or a comparison made before it existed): "
              "the optimistic one overstates the rule.")


def _report(summary: Mapping[str, Any], ident_rows: Sequence[Mapping[str, Any]],
            ident_table: Sequence[Mapping[str, Any]],
            table: Sequence[Mapping[str, Any]], stats: Any, pictures: Mapping[str, Path | None], out: Path) -> _Doc:
    doc = _Doc()
    s = summary["settings"]
    lodo = summary["lodo"]
    proto = summary.get("protocol")
    cm = summary["cost_matrix"]
    feats = summary["features"]
    proto_text = (f"`{proto['name']}` (T = {proto['time_budget']:g} s, t0 = {proto['t0']:g} s)" if proto
                  else "not recorded (a bare cost_matrix.csv)")
    doc.h(1, f"Selector comparison: {len(s['selectors'])} selectors on {len(lodo['datasets'])} datasets")
    note = f". Note: {cm['note']}" if cm.get("note") else ""
    doc.items([
        f"Command: `{summary.get('command') or 'selector.report.compare (Python)'}`",
        f"Date: {summary['date']}; machine: {summary['machine']}",
        (f"Cost matrix: `{cm['path']}`, {cm['sources']} incumbents x {cm['targets']} datasets, {cm['cells']} of "
         f"{cm['cells_total']} cells measured; protocol {proto_text}, {summary.get('clock') or 'unknown'} clock"
         f"{note}"),
        (f"Features: {'`' + feats['path'] + '`' if feats.get('path') else '(given in memory)'}: "
         f"{len(feats['datasets'])} datasets, backbone `{feats.get('backbone')}` "
         f"at {feats.get('input_size')} px, about {feats.get('train_samples')} training and "
         f"{feats.get('test_samples')} test embeddings per dataset"),
        (f"Seeds {s['seeds']}; identification: {s['n_batches']} batches per dataset and batch size; "
         f"leave-one-dataset-out: {s['n_queries']} labelled training batches of {s['query_size']} per held-out "
         "dataset"),
        *([_members_line(summary["members"])] if summary.get("members") else [])])
    choice = summary.get("choice")
    doc.h(2, "The choice for shipping")
    if choice:
        params = " ".join(f"--param {k}={v}" for k, v in choice["params"].items())
        doc.p(f"**{choice['selector']}**: {choice['reason']} ({_f(choice['mean_alc'])}; one selection "
              f"{_seconds(choice['seconds'])} at batch {s['query_size']}). Fit it on the whole collection with "
              f"`autodl-meta selector fit --features {feats.get('path') or 'FEATURES'} "
              f"--portfolio {cm.get('portfolio') or 'PORTFOLIO'} "
              f"--selector {choice['name']}{' ' + params if params else ''} --summary {out / SUMMARY_JSON} --out DIR`.")
    else:
        doc.p("No selector could be chosen: none has a leave-one-dataset-out ALC.")

    # leave one dataset out
    doc.h(2, "Leave-one-dataset-out selection")
    doc.p("Each dataset is held out with its derived variants (same source); the selector is fitted on the other "
          "datasets and asked about labelled training batches of the held-out one; its pick is scored by the ALC of "
          "the portfolio member it stands for: a similarity selector names a training dataset and that dataset's "
          "member is used (picks: `dataset -> member`), a member selector names the member (picks: `member`). "
          "The oracle and the single best are members. Regret = oracle ALC - ALC; gap closed = (ALC - single best) / "
          "(oracle - single best), undefined where the oracle is the single best (counted, left out of the mean); "
          "acceptable picks: the share of picks within the held-out dataset's seed noise of the oracle (ties "
          "kept as ties); Kendall tau between the selector's scores and the true ALCs of what it scores "
          "(undefined for constant scores). Expected ALC: under the selector's probabilities.")
    doc.p(f"References: oracle mean ALC {_f(lodo['oracle_mean_alc'])}; single best (per fold) "
          f"{_f(lodo['single_best_mean_alc'])}; uniformly random pick (exact expectation) "
          f"{_f(lodo['expected_random_alc'])}.")
    rows = []
    per = lodo["per_selector"]
    outputs = summary.get("outputs") or {}
    for label in sorted(per, key=lambda k: -(per[k]["mean_alc"] if not _isnan(per[k]["mean_alc"]) else -9)):
        v = per[label]
        rows.append([label, "member" if outputs.get(label) == "members" else "dataset -> member",
                     _f(v["mean_alc"]), _f(v["mean_alc_expected"]), _f(v["mean_regret"]),
                     _f(v["mean_delta_single_best"], signed=True),
                     f"{_f(v['mean_gap_closed'], 3)} ({v['gap_undefined']} undef.)",
                     _percent(v.get("mean_hit_rate")),
                     f"{_f(v['mean_kendall_tau'], 3)} ({v['tau_undefined']} undef.)", _f(v["mean_confidence"], 3),
                     _seconds(v["fit_seconds"]), _seconds(v["predict_seconds"]),
                     f"{v['datasets']}" + (f" ({v['failed']} failed)" if v["failed"] else "")])
    doc.table(["selector", "picks", "mean ALC", "expected ALC", "regret", "vs single best", "gap closed",
               "acceptable picks", "Kendall tau", "confidence", "fit", "select", "datasets"], rows, align="ll" + "r" * 11)
    doc.img(pictures.get("regret"), "regret per held-out dataset and selector")
    _bar_section(doc, summary)
    _baselines_section(doc, summary)
    _fallback_section(doc, summary)
    labels = list(per)
    datasets = lodo["datasets"]
    pd_rows = []
    for ds in datasets:
        d = lodo["per_dataset"][ds]
        accept = str(d.get("acceptable") or d["oracle"]).split(";")
        pd_rows.append([ds, d["group"], str(d["n_candidates"]), str(d.get("n_members", d["n_candidates"])),
                        f"{d['oracle']} {_f(d['oracle_alc'], 3)}",
                        f"{len(accept)} (noise {_f(d.get('noise'), 3)})",
                        f"{d['single_best']} {_f(d['single_best_alc'], 3)}",
                        *[_f(d["regret"].get(lab), 3) for lab in labels]])
    doc.h(3, "Regret per dataset")
    doc.p("Candidates: the training datasets of the fold; members: the members they stand for (and those available "
          "without one); acceptable: the members within the dataset's seed noise of the oracle.")
    doc.table(["dataset", "group", "candidates", "members", "oracle (member, ALC)", "acceptable", "single best (ALC)",
               *labels], pd_rows, align="llrrllr" + "r" * len(labels))
    errors = {lab: v["errors"] for lab, v in per.items() if v.get("errors")}
    if errors:
        doc.p("Failures: " + "; ".join(f"{lab} on {', '.join(f'{d} ({e[:120]})' for d, e in errs.items())}"
                                         for lab, errs in errors.items()))

    # statistics
    doc.h(2, "Statistics across datasets")
    if stats.mean_ranks:
        order = sorted(stats.mean_ranks, key=stats.mean_ranks.get)
        doc.p("Mean rank of the selected incumbent's ALC over "
              f"{len(stats.datasets)} datasets (1 = best): "
              + ", ".join(f"{k} {stats.mean_ranks[k]:.2f}" for k in order) + ".")
    if stats.test is not None:
        t = stats.test
        doc.p(f"autorank: {t['omnibus']} test p = {t['pvalue']:.4g} ({'significant' if t['significant'] else 'not significant'} "
              f"at alpha = {t['alpha']})" + (f"; {t['posthoc']} critical difference {t['cd']:.3f}" if t.get("cd") else "")
              + ". Selectors joined by a bar in the diagram are not significantly different.")
        doc.img(pictures.get("cd"), "critical-difference diagram (Friedman + Nemenyi, autorank)")
        pairs = stats.pairwise
        chosen = (choice or {}).get("selector")
        if len(pairs) > 28:  # more than 8 selectors: the chosen one's pairs and the significant ones
            pairs = [p for p in pairs if p["significant"] or chosen in (p["a"], p["b"])]
            doc.p(f"Pairwise Wilcoxon signed-rank tests (Holm-corrected) of {chosen} and the significant pairs; "
                  f"all {len(stats.pairwise)} pairs are in `{SUMMARY_JSON}` (`statistics.pairwise`).")
        else:
            doc.p("Pairwise Wilcoxon signed-rank tests, Holm-corrected:")
        if pairs:
            doc.table(["A", "B", "mean ALC A - B", "Wilcoxon p", "Holm p", "significant"],
                      [[p["a"], p["b"], _f(p["mean_difference"], signed=True), f"{p['pvalue']:.4g}",
                        f"{p['pvalue_holm']:.4g}", "yes" if p["significant"] else "no"] for p in pairs],
                      align="llrrrl")
    if stats.reason:
        doc.p(f"No test: {stats.reason}.")

    # identification
    doc.h(2, "Dataset identification")
    doc.p("Fitted on every dataset's training embeddings; a batch of a dataset's held-out test embeddings is right "
          "when the selector names that dataset. A batch larger than the held-out samples takes them all. "
          "Selectors that need labels are fitted on a random half of each dataset's training embeddings and asked "
          "about batches of the other half (dashed lines).")
    labels_i = list(dict.fromkeys(r["selector"] for r in ident_table))
    measured = sorted({r["batch_size"] for r in ident_table})
    cols = [b for b in TABLE_BATCH_SIZES if b in measured] or measured[:5]
    acc = {(r["selector"], r["batch_size"]): r for r in ident_table}
    doc.table(["selector", *[f"batch {b}" for b in cols], "split"],
              [[lab, *[_f(acc[(lab, b)]["accuracy"], 3) if (lab, b) in acc else "n/a" for b in cols],
                acc[(lab, measured[0])]["split"]] for lab in labels_i], align="l" + "r" * len(cols) + "l")
    if ident_table:
        doc.p(f"Chance: {min(r['chance'] for r in ident_table):.3f}.")
    notes = []
    for lab in labels_i:
        bad = [r for r in ident_table if r["selector"] == lab and r.get("failed_batches")]
        if bad:
            err = next((r.get("error") for r in ident_rows if r["selector"] == lab and r.get("error")), None)
            notes.append(f"{lab}: " + ", ".join(f"{r['failed_batches']} of {r['batches']} at batch {r['batch_size']}"
                                                 for r in bad) + (f" ({err[:140]})" if err else ""))
    if notes:
        doc.p("Batches a selector could not answer (counted as wrong; n/a where none could be answered): "
              + "; ".join(notes) + ".")
    doc.img(pictures.get("accuracy"), "identification accuracy against batch size")
    skipped = summary["identification"].get("skipped") or {}
    if skipped:
        doc.p("Not identified: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()))

    # cost
    sc = summary["selection_cost"]
    doc.h(2, "The cost of selecting")
    emb_card = sc.get("embedding_card") or {}
    doc.p("Seconds on this machine's CPU"
          + (f" ({sc['threads']} PyTorch threads)" if sc.get("threads") else "")
          + ", median of " + f"{sc.get('repeats', '?')} after a warm-up: embedding a batch of synthetic images"
          + (f" with `{emb_card.get('backbone')}` at {emb_card.get('input_size')} px" if emb_card.get("backbone") else "")
          + " plus the selector's prediction. A first prediction that waits t seconds loses at most "
            "s * log(1 + t/t0) / log(1 + T/t0) of the ALC for a learning curve at level s (the ALC integrates "
            "over that transformed time): shown at s = 1 and at s = the selector's mean leave-one-dataset-out ALC."
          + (f" Embedding not timed: {sc['embedding_error']}." if sc.get("embedding_error") else ""))
    protos = list(sc.get("protocols") or {})
    head = ["selector", "batch", "embed", "select", "total"]
    for p in protos:
        pr = sc["protocols"][p]
        head += [f"{p} (T={pr['time_budget']:g}, t0={pr['t0']:g}) loss, s=1", f"{p} loss, s=ALC"]
    crow = []
    cost_errors = []
    for r in sc["rows"]:
        line = [r["selector"], str(r["batch_size"]), _seconds(r["embed_seconds"]), _seconds(r["select_seconds"]),
                _seconds(r["total_seconds"])]
        for p in protos:
            b = (r.get("alc_bound") or {}).get(p) or {}
            line += [_f(b.get("level_1")), _f(b.get("level"))]
        crow.append(line)
        if r.get("error"):
            cost_errors.append(f"{r['selector']} at batch {r['batch_size']} ({r['error'][:140]})")
    doc.table(head, crow)
    if cost_errors:
        doc.p("Could not select: " + "; ".join(cost_errors) + ".")
    if sc.get("skipped"):
        doc.p("Not timed: " + "; ".join(f"{k} ({v})" for k, v in sc["skipped"].items()))

    doc.h(2, "The datasets' embeddings")
    doc.img(pictures.get("embeddings"), "training embeddings of each dataset on their first two principal components")
    doc.p(f"Data: `{IDENT_CSV}`, `{LODO_CSV}`, `{MAP_CSV}`, `{SUMMARY_JSON}` (written again into this report by "
          "`selector.report.render`).")
    return doc

