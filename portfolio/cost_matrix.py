"""The cost matrix: every incumbent of a portfolio evaluated on every dataset of a collection.

Row ``i``, column ``j`` holds the ALC of dataset ``i``'s incumbent (:mod:`portfolio.incumbents`)
fine-tuned on dataset ``j`` at full budget, under the portfolio's protocol and clock, averaged
over seeds: the Freiburg AutoDL 2019 entry's meta-dataset (Liu et al., TPAMI 2021), also
ZAP's (Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022). From it:

- the *single-best* configuration: the incumbent with the best mean ALC over the datasets.
  This, not a hand-picked configuration, is the "single best" a selector must beat;
- the *oracle* per dataset: the incumbent with the best ALC on it (what a perfect selector
  would pick);
- the *headroom*: oracle minus single-best, per dataset and on average: what selection can win.

Means, single-best and headroom are taken over the *complete* columns only (every incumbent
measured, every seed ``ok``), so that every incumbent is compared on the same datasets; the
columns left out are named in the summary.

Under the simulated clock an evaluation is a function of the configuration, the dataset and
the seed (the protocol and timing table are the matrix's): incumbents that are the same
configuration (BOHB runs often end on the same one) share one evaluation per cell, recorded
for each with ``reused_from`` naming the incumbent it was measured under. A cell records the
version of the fine-tuning learner that computed it (``learner_version``,
:data:`finetune.learner.LEARNER_VERSION`; 1 where a row predates the field): cells of another
version are neither counted nor reused, they are computed again.

Cells are evaluated in parallel with Dask (``distributed``), each in a worker process with
one PyTorch thread (:func:`evaluate_cell`, a module-level function: only a small plain dict
travels to the worker). By default a ``LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)`` runs on this machine; ``scheduler=ADDRESS`` uses a running cluster instead.
On SLURM, start one with dask-jobqueue (``pip install dask-jobqueue``) in a Python session
that stays up while the matrix is computed, e.g.::

    from dask_jobqueue import SLURMCluster

    # one evaluation per job: one core, one thread, one process
    cluster = SLURMCluster(queue="cpu", cores=1, processes=1, memory="8GB", walltime="12:00:00",
                           job_extra_directives=["--cpus-per-task=1"],
                           job_script_prologue=["source /path/to/autodl-meta/.venv/bin/activate"],
                           worker_extra_args=["--nthreads", "1"])
    cluster.scale(jobs=32)          # or cluster.adapt(minimum_jobs=0, maximum_jobs=64)
    print(cluster.scheduler_address)   # tcp://10.1.2.3:8786

and run ``autodl-meta portfolio cost-matrix ... --scheduler tcp://10.1.2.3:8786`` (or
:func:`run_cost_matrix` with ``scheduler=``) on a node that can reach it. The workers must
see the datasets at the paths given (a shared file system) and have this project installed;
the timing table travels with each task. Workers may come and go: a cell whose worker is
lost is retried by Dask on another; one that still fails is recorded as ``failed``.

Resumable cell by cell: every finished cell is appended as one JSON line to ``cells.jsonl``
in the output folder as it finishes (:func:`autodl.records.append_jsonl`); a cell already
there (same incumbent configuration, dataset and seed) is not computed again, so running
the same command again computes nothing new. A cell whose evaluation raises is recorded as
``failed``, a model that crashes as ``crashed`` (with the reason), never as an ALC of 0.

An output folder holds ``portfolio.json`` (a copy of the portfolio it was computed for),
``cells.jsonl``, ``cost_matrix.csv`` (rows: incumbents by source dataset; columns: datasets;
mean ALC over seeds, empty where not every seed is ``ok``), ``cost_matrix.png`` (a heatmap),
``summary.json`` and ``summary.md``: together a portfolio folder, which is what
``autodl-meta run --portfolio DIR`` and the model names ``baseline:single-best`` /
``baseline:oracle`` read (:mod:`portfolio.baselines` reads ``portfolio.json`` and the keys
``single_best.source`` and ``oracle.<dataset>.source`` of ``summary.json``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import socket
import time
import traceback
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import (FINISHED, Status, append_jsonl, atomic_path, atomic_write_text, file_sha256, read_jsonl,
                            utc_now, write_json_atomic)
from portfolio.incumbents import PORTFOLIO_FILE, Portfolio, PortfolioError, portfolio_file

logger = logging.getLogger(__name__)

CELLS_FILE = "cells.jsonl"
CSV_FILE = "cost_matrix.csv"
HEATMAP_FILE = "cost_matrix.png"
SUMMARY_JSON = "summary.json"
SUMMARY_MD = "summary.md"
SUMMARY_FORMAT = "autodl-meta-cost-matrix-summary/1"

CELL_STATUSES = (*FINISHED, Status.FAILED)
"""A cell's status: the evaluation's (``ok``, ``crashed``, ``timeout``), or ``failed`` when
the evaluation itself raised (a configuration or dataset refused, a worker lost)."""

Progress = Callable[[int, int, "dict[str, Any] | None"], None]
"""``progress(done, total, row)``: once before anything runs (``row`` None), then after each
cell computed now (``done`` counts the cells computed now, ``total`` those to compute)."""


class CostMatrixError(PortfolioError):
    """The cost matrix cannot be computed as asked (the file, the field, what was expected)."""


# --- the collection ---------------------------------------------------------------------------
def dataset_collection(specs: str | Path | Sequence[str | Path | tuple[str, str | Path]]) -> list[tuple[str, Path]]:
    """The (name, folder) pairs of the datasets a cost matrix is computed on.

    Parameters
    ----------
    specs
        A folder of AutoDL datasets (each sub-folder holding ``<name>.data/`` is one; others
        are skipped), one AutoDL dataset folder, ``name=path`` strings, ``(name, path)``
        pairs, or a list mixing them. A dataset's name is its ``<name>.data`` folder's
        unless ``name=`` gives one.

    Returns
    -------
    list of (str, Path)
        In the order given (a folder's datasets by name).

    Raises
    ------
    CostMatrixError
        A path that is neither a dataset nor a folder of datasets, or two datasets of one name.
    """
    from autodl.dataset import AutoDLDataset
    from autodl.errors import FormatError

    items = [specs] if isinstance(specs, str | Path) else list(specs)
    out: list[tuple[str, Path]] = []
    for item in items:
        if isinstance(item, tuple):
            name, path = str(item[0]), Path(item[1])
            out.append((name, AutoDLDataset(path).root))
            continue
        text = str(item)
        if "=" in text and not Path(text).exists():
            name, _, path = text.partition("=")
            out.append((name.strip(), AutoDLDataset(path.strip()).root))
            continue
        path = Path(text)
        if not path.is_dir():
            raise CostMatrixError(path, "not a folder; expected an AutoDL dataset, a folder of AutoDL datasets "
                                        "or name=path", field="datasets")
        try:
            ds = AutoDLDataset(path)
            out.append((ds.name, ds.root))
            continue
        except FormatError:
            pass
        found = []
        for sub in sorted(p for p in path.iterdir() if p.is_dir()):
            try:
                ds = AutoDLDataset(sub)
            except FormatError:
                logger.debug("%s: not an AutoDL dataset, skipped", sub)
                continue
            found.append((ds.name, ds.root))
        if not found:
            raise CostMatrixError(path, "holds no AutoDL dataset (no sub-folder with one <name>.data/)",
                                  field="datasets")
        out += found
    seen: dict[str, Path] = {}
    for name, path in out:
        if name in seen:
            raise CostMatrixError(path, f"dataset name {name!r} is also {seen[name]}; name them apart with "
                                        "name=path", field="datasets")
        seen[name] = path
    return out


# --- one cell, in a Dask worker ---------------------------------------------------------------
def config_digest(config: Mapping[str, Any]) -> str:
    """A short hash of a configuration (its sorted-key JSON): a cell is the same cell only
    for the same incumbent configuration."""
    text = json.dumps(dict(config), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def learner_version() -> int:
    """The version of the fine-tuning learner this code runs (:data:`finetune.learner.LEARNER_VERSION`)."""
    from finetune.learner import LEARNER_VERSION

    return int(LEARNER_VERSION)


def row_learner_version(row: Mapping[str, Any]) -> int:
    """The learner version a stored evaluation (a cell, a held-out row) was computed with: its
    ``learner_version``, 1 for rows written before rows recorded it."""
    return int(row.get("learner_version") or 1)


def _cell_row(task: Mapping[str, Any]) -> dict[str, Any]:
    return {"source": task["source"], "target": task["target"], "seed": int(task["seed"]),
            "config_digest": task["config_digest"], "target_path": task["target_path"],
            "protocol": task["protocol"]["name"], "clock": task["clock"], "budget": 1.0,
            "learner_version": learner_version()}


def failed_row(task: Mapping[str, Any], error: str, *, trace: str | None = None,
               wall_seconds: float = 0.0, worker: str | None = None) -> dict[str, Any]:
    """The ``failed`` row of a cell whose evaluation raised or whose worker was lost."""
    return {**_cell_row(task), "status": Status.FAILED, "alc": None, "final_nauc": None, "predictions": 0,
            "wall_seconds": wall_seconds, "task_seconds": wall_seconds, "error": error, "traceback": trace,
            "worker": worker, "finished": utc_now()}


def evaluate_cell(task: Mapping[str, Any]) -> dict[str, Any]:
    """One cell: the incumbent ``task["config"]`` on ``task["target_path"]`` at full budget.

    Runs in a Dask worker process (or in this process with ``workers=0``) with one PyTorch
    thread. Never raises: an evaluation that raises is a ``failed`` row with the error and
    its traceback; a model that crashes is the evaluation's ``crashed``.

    Parameters
    ----------
    task
        Plain values only: ``source``, ``target``, ``target_path``, ``seed``, ``config``,
        ``config_digest``, ``protocol`` (a dict), ``clock``, ``timing`` (the table as a dict,
        or None), ``device``, ``wall_limit``.

    Returns
    -------
    dict
        The ``cells.jsonl`` row: source, target, seed, status, alc, final_nauc,
        predictions, wall_seconds (inside the evaluation), task_seconds (the whole call),
        cpu_seconds (the worker process's CPU over the call: what other work on the machine
        does not inflate), error, traceback, worker (``host:pid``), finished.
    """
    start, cpu = time.perf_counter(), time.process_time()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    try:
        from autodl.protocol import Protocol
        from finetune.config_runs import evaluate, torch_threads
        from finetune.timing import TimingTable

        timing = TimingTable.from_dict(task["timing"]) if task.get("timing") is not None else None
        with torch_threads(1):
            ev = evaluate(dict(task["config"]), task["target_path"], Protocol(**task["protocol"]),
                          clock=task["clock"], seed=int(task["seed"]), budget=1.0, device=task.get("device"),
                          timing=timing, wall_limit=task.get("wall_limit"))
        row = {**_cell_row(task), "status": ev.status, "alc": ev.alc, "final_nauc": ev.final_nauc,
               "predictions": len(ev.curve), "wall_seconds": ev.wall_seconds,
               "task_seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
               "error": ev.error, "traceback": ev.traceback, "worker": worker, "finished": utc_now()}
    except Exception as exc:  # one bad cell never ends the matrix
        elapsed = time.perf_counter() - start
        row = failed_row(task, f"{type(exc).__name__}: {exc}", trace=traceback.format_exc(),
                         wall_seconds=elapsed, worker=worker)
    logger.info("cell %s -> %s seed %d: %s, ALC %s", row["source"], row["target"], row["seed"], row["status"],
                row["alc"])
    return row


# --- the matrix -------------------------------------------------------------------------------
@dataclass
class CostMatrix:
    """Mean ALC of each incumbent (row, by source dataset) on each dataset (column).

    Attributes
    ----------
    sources, targets
        Row and column names.
    alc
        ``len(sources) x len(targets)``; NaN where not every seed is ``ok``.
    status
        Per cell: ``ok``, a non-ok status (``failed``, ``crashed``, ``timeout``: the worst of
        its seeds), ``partial`` (some seeds not yet computed) or ``missing``.
    seeds
        The seeds averaged over.
    """

    sources: list[str]
    targets: list[str]
    alc: np.ndarray
    status: list[list[str]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])

    @staticmethod
    def value_statuses(alc: np.ndarray) -> list[list[Status]]:
        """The statuses of a matrix known by its values only: ``ok`` where there is a value, else
        ``missing``."""
        return [[Status.MISSING if np.isnan(v) else Status.OK for v in row] for row in alc]

    def value(self, source: str, target: str) -> float | None:
        v = self.alc[self.sources.index(source), self.targets.index(target)]
        return None if np.isnan(v) else float(v)

    def to_csv(self, path: str | Path) -> Path:
        """Rows: ``source`` then one column per dataset; empty where there is no mean ALC. Written
        whole (a full disk: an ``OSError`` naming the file, the one before left as it was)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        f = io.StringIO(newline="")
        writer = csv.writer(f)
        writer.writerow(["source", *self.targets])
        for i, source in enumerate(self.sources):
            writer.writerow([source, *("" if np.isnan(v) else f"{v:.6f}" for v in self.alc[i])])
        return atomic_write_text(path, f.getvalue())

    @classmethod
    def read_csv(cls, path: str | Path) -> CostMatrix:
        """A matrix from ``cost_matrix.csv`` (statuses are ``ok`` or ``missing``; seeds unknown)."""
        path = Path(path)
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows or not rows[0] or rows[0][0] != "source":
            raise CostMatrixError(path, "expected a header row 'source,<dataset>,...'", field="source")
        targets = rows[0][1:]
        sources, values = [], []
        for n, row in enumerate(rows[1:], 2):
            if len(row) != len(targets) + 1:
                raise CostMatrixError(path, f"line {n} has {len(row)} fields, expected {len(targets) + 1}")
            sources.append(row[0])
            try:
                values.append([float(v) if v.strip() else np.nan for v in row[1:]])
            except ValueError as exc:
                raise CostMatrixError(path, f"line {n}: {exc}", field=row[0]) from None
        alc = np.array(values, dtype=float).reshape(len(sources), len(targets))
        return cls(sources, targets, alc, cls.value_statuses(alc), seeds=[])


_SEVERITY = {Status.FAILED: 3, Status.CRASHED: 2, Status.TIMEOUT: 1}


def matrix_from_cells(rows: Sequence[Mapping[str, Any]], sources: Sequence[str], targets: Sequence[str],
                      seeds: Sequence[int]) -> CostMatrix:
    """The matrix of the cells ``rows`` (the last row of each (source, target, seed) counts)."""
    last: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for row in rows:
        last[(row["source"], row["target"], int(row["seed"]))] = row
    alc = np.full((len(sources), len(targets)), np.nan)
    status = [[Status.MISSING] * len(targets) for _ in sources]
    for i, s in enumerate(sources):
        for j, t in enumerate(targets):
            got = [last[(s, t, int(seed))] for seed in seeds if (s, t, int(seed)) in last]
            bad = [r["status"] for r in got if r["status"] != Status.OK]
            if bad:
                status[i][j] = max(bad, key=lambda b: _SEVERITY.get(b, 4))
            elif len(got) == len(seeds) and got:
                alc[i, j] = float(np.mean([float(r["alc"]) for r in got]))
                status[i][j] = Status.OK
            elif got:
                status[i][j] = Status.PARTIAL
    return CostMatrix(list(sources), list(targets), alc, status, [int(s) for s in seeds])


def summarize(matrix: CostMatrix) -> dict[str, Any]:
    """Single-best, oracle and headroom of a cost matrix.

    Means are over the *complete* columns (every row has a value), so that all incumbents
    are compared on the same datasets. Ties go to the earlier row.

    Returns
    -------
    dict
        ``sources``, ``targets``, ``complete_targets``, ``incomplete_targets`` (column ->
        rows without a value), ``mean_alc`` (row -> mean over complete columns),
        ``single_best`` (``{"source", "mean_alc"}`` or None without a complete column),
        ``oracle`` (column -> ``{"source", "alc", "complete"}`` for every column with a
        value), ``oracle_mean_alc``, ``headroom`` (``{"per_dataset": column -> oracle minus
        single-best, "mean"}`` over complete columns), ``own_incumbent`` (column -> the ALC
        of that dataset's own incumbent, where it is a row, and whether it is the oracle:
        as good as the best row, so that a tie with another incumbent of the same
        configuration counts; a tied oracle is named by the column's own incumbent).
    """
    a = matrix.alc
    sources, targets = matrix.sources, matrix.targets
    complete = [j for j in range(len(targets)) if len(sources) and not np.isnan(a[:, j]).any()]
    incomplete = {targets[j]: [sources[i] for i in range(len(sources)) if np.isnan(a[i, j])]
                  for j in range(len(targets)) if j not in complete}
    oracle = {}
    for j, t in enumerate(targets):
        col = a[:, j]
        if len(col) and not np.isnan(col).all():
            i = int(np.nanargmax(col))
            if t in sources and col[sources.index(t)] == col[i]:  # a tie (the same configuration): its own
                i = sources.index(t)
            oracle[t] = {"source": sources[i], "alc": float(col[i]), "complete": j in complete}
    out: dict[str, Any] = {
        "format": SUMMARY_FORMAT, "seeds": list(matrix.seeds), "sources": list(sources), "targets": list(targets),
        "complete_targets": [targets[j] for j in complete], "incomplete_targets": incomplete,
        "mean_alc": {}, "single_best": None, "oracle": oracle, "oracle_mean_alc": None,
        "headroom": {"per_dataset": {}, "mean": None}, "own_incumbent": {}}
    for j, t in enumerate(targets):
        if t in sources:
            v = a[sources.index(t), j]
            out["own_incumbent"][t] = {"alc": None if np.isnan(v) else float(v),
                                       "is_oracle": bool(t in oracle and not np.isnan(v) and v >= oracle[t]["alc"])}
    if not complete:
        return out
    sub = a[:, complete]
    means = sub.mean(axis=1)
    best = int(np.argmax(means))
    out["mean_alc"] = {s: float(m) for s, m in zip(sources, means, strict=True)}
    out["single_best"] = {"source": sources[best], "mean_alc": float(means[best])}
    per = {targets[j]: float(a[:, j].max() - a[best, j]) for j in complete}
    out["headroom"] = {"per_dataset": per, "mean": float(np.mean(list(per.values())))}
    out["oracle_mean_alc"] = float(sub.max(axis=0).mean())
    return out


def _f(v: float | None) -> str:
    return "" if v is None else f"{v:.4f}"


def summary_markdown(summary: Mapping[str, Any], matrix: CostMatrix, *, protocol: str, clock: str,
                     cells: Sequence[Mapping[str, Any]] = ()) -> str:
    """A short Markdown report of :func:`summarize`'s result."""
    sb = summary["single_best"]
    lines = [f"# Cost matrix: {len(matrix.sources)} incumbents x {len(matrix.targets)} datasets",
             "", f"Protocol `{protocol}`, {clock} clock, full budget, seeds {list(matrix.seeds)}; "
                 f"mean ALC over seeds (`{CSV_FILE}`, picture `{HEATMAP_FILE}`).", ""]
    if sb is None:
        lines += ["No complete column yet: no single-best configuration and no headroom.", ""]
    else:
        lines += [f"- Single best: the incumbent of **{sb['source']}**, mean ALC {sb['mean_alc']:.4f} over "
                  f"{len(summary['complete_targets'])} datasets",
                  f"- Oracle mean ALC {summary['oracle_mean_alc']:.4f}; mean headroom (oracle - single best) "
                  f"{summary['headroom']['mean']:.4f}"]
        own = [t for t, o in summary["own_incumbent"].items() if o["is_oracle"]]
        if summary["own_incumbent"]:
            lines.append(f"- A dataset's own incumbent is its oracle (or ties with it) on {len(own)} of "
                         f"{len(summary['own_incumbent'])} datasets")
        digests = {r["source"]: r.get("config_digest") for r in cells or [] if r.get("config_digest")}
        if digests and len(set(digests.values())) < len(digests):
            groups: dict[str, list[str]] = {}
            for source, digest in digests.items():
                groups.setdefault(digest, []).append(source)
            lines.append(f"- The {len(digests)} incumbents are {len(groups)} distinct configurations: "
                         + "; ".join(", ".join(sorted(g)) for g in sorted(groups.values(), key=lambda g: -len(g))))
        lines.append("")
    if summary["incomplete_targets"]:
        lines += ["Left out of the means (not every incumbent measured): "
                  + "; ".join(f"{t} (no value for {', '.join(s)})"
                              for t, s in summary["incomplete_targets"].items()), ""]
    lines += ["| dataset | oracle (incumbent of) | oracle ALC | single-best ALC | headroom | own incumbent ALC |",
              "|---|---|---:|---:|---:|---:|"]
    for t in matrix.targets:
        o = summary["oracle"].get(t)
        single = matrix.value(sb["source"], t) if sb else None
        head = summary["headroom"]["per_dataset"].get(t)
        own = summary["own_incumbent"].get(t, {}).get("alc")
        lines.append(f"| {t} | {o['source'] if o else ''} | {_f(o['alc'] if o else None)} | {_f(single)} | "
                     f"{_f(head)} | {_f(own)} |")
    bad = [c for c in cells if c["status"] != Status.OK]
    if bad:
        lines += ["", f"Cells not ok ({len(bad)}):", ""]
        lines += [f"- {c['source']} on {c['target']}, seed {c['seed']}: {c['status']} "
                  f"({(c.get('error') or '').splitlines()[0][:160] if c.get('error') else 'no reason given'})"
                  for c in bad[:50]]
        if len(bad) > 50:
            lines.append(f"- ... and {len(bad) - 50} more (see `{CELLS_FILE}`)")
    return "\n".join(lines) + "\n"


def heatmap(matrix: CostMatrix, path: str | Path, summary: Mapping[str, Any] | None = None,
            title: str | None = None) -> Path:
    """A PNG of the matrix (:func:`autodl.plots.alc_heatmap`, the style of ``docs/grid.png``):
    values in the cells, each column's oracle framed in red, the single-best row named;
    cells without a value are grey, with their status written."""
    from autodl.plots import alc_heatmap

    summary = summary if summary is not None else summarize(matrix)
    sb = (summary.get("single_best") or {}).get("source")
    rows = [f"{s} (single best)" if s == sb else s for s in matrix.sources]
    status = matrix.status or CostMatrix.value_statuses(matrix.alc)
    empty = [[("" if status[i][j] == Status.MISSING else status[i][j])
              for j in range(len(matrix.targets))] for i in range(len(matrix.sources))]
    framed = [(matrix.sources.index(o["source"]), matrix.targets.index(t)) for t, o in summary.get("oracle", {}).items()]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # written beside and renamed (a full disk leaves the picture before as it was); the temporary
    # name keeps ``.png``, from which matplotlib takes the format
    with atomic_path(path, keep_suffix=True) as tmp:
        alc_heatmap(matrix.alc, rows, matrix.targets, tmp, framed=framed, empty_text=empty,
                    title=title or "cost matrix; red: oracle per dataset",
                    colorbar=f"mean ALC over seeds {list(matrix.seeds)}", xlabel="dataset", ylabel="incumbent of",
                    row_height=0.45)
    return path


# --- computing it -----------------------------------------------------------------------------
@dataclass
class CostMatrixResult:
    """What :func:`run_cost_matrix` computed and wrote.

    Attributes
    ----------
    out
        The output folder.
    matrix, summary
        The cost matrix and :func:`summarize` of it.
    cells
        The current row of every cell of the matrix (computed now or before).
    computed
        The rows computed by this call (none when everything was there).
    timings
        ``wall_seconds`` (the whole call), ``startup_seconds`` (cluster start and
        connection), ``compute_seconds`` (first task sent to last result), ``cells``
        (computed now), ``workers``, ``eval_seconds_per_cell`` (mean wall seconds inside
        the evaluations), ``task_seconds_per_cell`` (mean of the whole worker call),
        ``cells_per_hour`` (cells / compute seconds), ``outside_evaluations`` (share of the
        workers' time not spent inside an evaluation), ``cpu_seconds`` (the computed cells'
        CPU seconds in their workers, summed).
    paths
        ``cells``, ``csv``, ``heatmap``, ``summary_json``, ``summary_md``, ``portfolio``.
    """

    out: Path
    matrix: CostMatrix
    summary: dict[str, Any]
    cells: list[dict[str, Any]]
    computed: list[dict[str, Any]]
    timings: dict[str, Any]
    paths: dict[str, Path]


def resolve_timing(portfolio: Portfolio, timing: str | Path | None = None) -> Any:
    """The timing table the cells are priced with (a :class:`~finetune.timing.TimingTable`,
    or None off the simulated clock).

    ``timing`` overrides the portfolio's table (a warning names a difference). Otherwise the
    portfolio's recorded table is looked for at its path (as given, from the current folder,
    beside the portfolio file, under this project) and, failing that, among this project's
    ``configs/timing/*.json`` by its SHA-256.

    Raises
    ------
    CostMatrixError
        The recorded table is not found here, or its file has changed since the BOHB runs
        (its SHA-256 differs): the ALCs would not compare; pass ``timing`` to use another.
    """
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable

    if portfolio.clock != "simulated":
        return None
    want = portfolio.timing.get("sha256")
    if timing is not None:
        table = TimingTable.load(timing)
        if want and file_sha256(Path(timing)) != want:
            logger.warning("timing table %s is not the one the BOHB runs used (%s, sha256 %s...): the cost "
                           "matrix is priced on another clock than the incumbents were found on", timing,
                           portfolio.timing.get("path"), want[:12])
        return table
    recorded = portfolio.timing.get("path")
    if recorded is None:
        return TimingTable.load(DEFAULT_TIMING)
    project = DEFAULT_TIMING.parents[2]
    candidates = [Path(recorded)]
    if not Path(recorded).is_absolute():
        if portfolio.path is not None:
            candidates.append(portfolio.path.parent / recorded)
        candidates.append(project / recorded)
    existing = [p for p in candidates if p.is_file()]
    if want is None and existing:
        return TimingTable.load(existing[0])
    for p in existing + sorted((project / "configs" / "timing").glob("*.json")):
        if p.is_file() and file_sha256(p) == want:
            return TimingTable.load(p)
    where = portfolio.path or "portfolio"
    if existing:
        raise CostMatrixError(where, f"the timing table {existing[0]} has changed since the BOHB runs (sha256 "
                                     f"{want[:12]}... recorded): its ALCs would not compare; pass --timing/timing= "
                                     "to price the cost matrix with it anyway", field="timing")
    raise CostMatrixError(where, f"the timing table {recorded} (sha256 {str(want)[:12]}...) the BOHB runs used is "
                                 "not here: copy it there, or pass --timing/timing= to use another", field="timing")


def _prepare_out(out: Path, portfolio: Portfolio) -> Path:
    """Keep ``out/portfolio.json`` in step with ``portfolio``; refuse a folder computed under
    another protocol, clock or timing table."""
    out.mkdir(parents=True, exist_ok=True)
    copy = out / PORTFOLIO_FILE
    if copy.is_file():
        old = Portfolio.load(copy)
        diff = [f"{k} ({a!r} vs {b!r})" for k, a, b in (
            ("protocol", old.protocol, portfolio.protocol), ("clock", old.clock, portfolio.clock),
            ("timing.sha256", old.timing.get("sha256"), portfolio.timing.get("sha256"))) if a != b]
        if diff:
            raise CostMatrixError(copy, "this folder holds a cost matrix of a portfolio with a different "
                                        + "; ".join(diff) + ": use another --out", field="portfolio")
        if portfolio.path is not None and portfolio.path.resolve() == copy.resolve():
            return copy
        if old.to_dict()["incumbents"] != portfolio.to_dict()["incumbents"]:
            logger.info("%s: the portfolio's incumbents changed; cells of changed incumbents are computed again",
                        copy)
    path = portfolio.path
    portfolio.save(copy)
    portfolio.path = path  # the caller's portfolio still names its own file
    return copy


def _order_targets(sources: Sequence[str], collection: Sequence[tuple[str, Path]]) -> list[tuple[str, Path]]:
    """Datasets that have an incumbent first, in row order (the diagonal is the diagonal)."""
    rank = {s: i for i, s in enumerate(sources)}
    return sorted(collection, key=lambda c: (0, rank[c[0]], "") if c[0] in rank else (1, 0, c[0]))


def run_cost_matrix(portfolio: Portfolio | str | Path,
                    datasets: str | Path | Sequence[str | Path | tuple[str, str | Path]],
                    out: str | Path, *, seeds: Sequence[int] = (0,), workers: int = 2,
                    scheduler: str | None = None, timing: str | Path | None = None, device: str | None = None,
                    wall_limit: float | None = None, retry_failed: bool = False,
                    progress: Progress | None = None,
                    known: Sequence[Mapping[str, Any]] = ()) -> CostMatrixResult:
    """Evaluate every incumbent of ``portfolio`` on every dataset at full budget, in parallel.

    Parameters
    ----------
    portfolio
        A :class:`~portfolio.incumbents.Portfolio`, or its ``portfolio.json`` (or folder).
    datasets
        The collection: see :func:`dataset_collection` (a folder of datasets, ``name=path``, ...).
    out
        The output folder (see the module docstring); cells already in its ``cells.jsonl``
        are not computed again.
    seeds
        The evaluation seeds; the matrix holds the mean ALC over them.
    workers
        Dask worker processes of the ``LocalCluster`` (one thread each); 0 computes the
        cells one after the other in this process, without Dask (for debugging).
        Ignored with ``scheduler``.
    scheduler
        The address of a running Dask scheduler (e.g. a dask-jobqueue ``SLURMCluster``'s,
        see the module docstring) instead of a ``LocalCluster``.
    timing
        Price the cells with this timing table instead of the portfolio's (simulated clock).
    device
        ``cpu`` or ``cuda`` for the evaluations (default: CUDA where available).
    wall_limit
        Wall seconds after which an evaluation is stopped (``timeout``); default evaluate's.
    retry_failed
        Compute again the cells recorded as ``failed`` (e.g. after a lost worker).
    progress
        ``progress(done, total, row)``: see :data:`Progress`.
    known
        Evaluations made elsewhere under this matrix's protocol, clock and timing table (e.g.
        BOHB trials at the full budget, :func:`portfolio.pool.trial_cells`): ``ok`` rows with
        ``config_digest``, ``target``, ``seed``, ``source`` (what they were measured as) and
        the cell's fields. A missing cell of the same configuration, dataset and seed is
        copied from one (``reused_from`` names its source) instead of computed (simulated
        clock only), where it was computed by the same learner version (``learner_version``,
        1 where absent; see :data:`finetune.learner.LEARNER_VERSION`).

    Returns
    -------
    CostMatrixResult
        The matrix, its summary, the cells, and the timings (for ``benchmark bohb``).

    Raises
    ------
    PortfolioError
        Before anything runs: an unreadable portfolio or dataset, an output folder of a
        portfolio with another protocol, clock or timing table, a timing table that
        changed since the BOHB runs.
    CostMatrixError
        While it runs, naming ``cells.jsonl``: a cell that cannot be recorded (a full disk, a
        read-only folder), or the connection to the Dask scheduler lost (the scheduler
        killed); the cells recorded before are kept, and the same command computes the rest.
    OSError
        A file written whole (the CSV, the heatmap, the summaries) that cannot be written,
        naming it; the one before is left as it was, and the cells are recorded.
    """
    t_start = time.perf_counter()
    if not isinstance(portfolio, Portfolio):
        portfolio = Portfolio.load(portfolio_file(portfolio))
    if not portfolio.incumbents:
        raise CostMatrixError(portfolio.path, "the portfolio holds no incumbent", field="incumbents")
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise CostMatrixError(None, f"{seeds!r}: expected distinct integers", field="seeds")
    if scheduler is None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise CostMatrixError(None, f"{workers!r}: expected 0 (this process) or more worker processes",
                              field="workers")
    out = Path(out)
    sources = portfolio.datasets
    collection = _order_targets(sources, dataset_collection(datasets))
    targets = [name for name, _ in collection]
    table = resolve_timing(portfolio, timing)
    copy = _prepare_out(out, portfolio)
    cells_path = out / CELLS_FILE
    digests = {inc.dataset: config_digest(inc.config) for inc in portfolio.incumbents}
    version = learner_version()  # cells of another learner version are computed again, never reused

    def current(row: Mapping[str, Any]) -> bool:
        return (row.get("source") in digests and row.get("config_digest") == digests[row["source"]]
                and row.get("target") in targets and int(row.get("seed", -1)) in seeds
                and row_learner_version(row) == version)

    done = {(r["source"], r["target"], int(r["seed"])): r for r in read_jsonl(cells_path) if current(r)}
    if retry_failed:
        done = {k: r for k, r in done.items() if r["status"] != Status.FAILED}
    paths = dict(collection)
    base = {"protocol": dict(portfolio.protocol), "clock": portfolio.clock,
            "timing": None if table is None else table.to_dict(), "device": device, "wall_limit": wall_limit}
    missing = [{**base, "source": inc.dataset, "target": t, "target_path": str(paths[t]), "seed": seed,
                "config": dict(inc.config), "config_digest": digests[inc.dataset]}
               for seed in seeds for inc in portfolio.incumbents for t in targets
               if (inc.dataset, t, seed) not in done]
    # Under the simulated clock an evaluation is a function of (configuration, dataset, seed)
    # (with the protocol and timing table shared by the whole matrix): incumbents that are the
    # same configuration share one evaluation per cell, copied with ``reused_from``.
    shared = portfolio.clock == "simulated"
    measured = {(r["config_digest"], r["target"], int(r["seed"])): r for r in known
                if r.get("status") == Status.OK and r.get("target") in targets
                and row_learner_version(r) == version} if shared else {}
    measured.update({(r["config_digest"], r["target"], int(r["seed"])): r for r in done.values()
                     if r["status"] == Status.OK and not r.get("reused_from")} if shared else {})
    tasks: list[dict[str, Any]] = []
    waiting: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for task in missing:
        key = (task["config_digest"], task["target"], int(task["seed"]))
        if key in waiting:
            waiting[key].append(task)
        elif key not in measured:
            tasks.append(task)
            if shared:
                waiting[key] = []
    logger.info("cost matrix %d x %d x %d seed(s): %d cells done, %d to compute, %d shared with an incumbent of "
                "the same configuration", len(sources), len(targets), len(seeds), len(done), len(tasks),
                len(missing) - len(tasks))
    if progress is not None:
        progress(0, len(missing), None)
    computed: list[dict[str, Any]] = []
    recorded: list[dict[str, Any]] = []

    def write(row: dict[str, Any]) -> None:
        try:
            append_jsonl(cells_path, row)
        except OSError as exc:  # a full disk, a read-only folder: what is recorded stays as it is
            raise CostMatrixError(cells_path, f"cannot be written ({exc.strerror}): stopped; the {len(done)} cells "
                                              "recorded before are kept; free space or make the folder writable, "
                                              "then run the same command again to compute the rest") from exc
        done[(row["source"], row["target"], int(row["seed"]))] = row
        recorded.append(row)
        if progress is not None:
            progress(len(recorded), len(missing), row)

    def reuse(row: Mapping[str, Any], task: Mapping[str, Any]) -> None:
        write({**row, "source": task["source"], "target_path": task["target_path"], "reused_from": row["source"],
               "finished": utc_now()})

    def record(row: dict[str, Any]) -> None:
        computed.append(row)
        write(row)
        siblings = waiting.pop((row["config_digest"], row["target"], int(row["seed"])), [])
        if row["status"] == Status.OK:
            for task in siblings:
                reuse(row, task)
        elif siblings:
            logger.warning("cell %s -> %s: %s; the %d incumbents of the same configuration are left for a re-run",
                           row["source"], row["target"], row["status"], len(siblings))

    for task in missing:  # cells whose evaluation is already measured under another incumbent
        key = (task["config_digest"], task["target"], int(task["seed"]))
        if key in measured and (task["source"], task["target"], int(task["seed"])) not in done:
            reuse(measured[key], task)

    startup = compute = 0.0
    n_workers = 0
    if tasks and scheduler is None and workers == 0:
        n_workers = 1
        t0 = time.perf_counter()
        for task in tasks:
            record(evaluate_cell(task))
        compute = time.perf_counter() - t0
    elif tasks:
        try:
            startup, compute, n_workers = _run_dask(tasks, record, workers=workers, scheduler=scheduler)
        except _SchedulerLost as lost:  # at once: Dask cancels the futures as the connection closes
            raise CostMatrixError(cells_path, f"the connection to the Dask scheduler at {lost.address} was lost with "
                                              f"{lost.pending} cells not computed: stopped; the {len(done)} cells "
                                              "recorded are kept; start a scheduler and its workers again, then run "
                                              "the same command to compute the rest") from None
    cells = [done[k] for k in sorted(done, key=lambda k: (k[2], sources.index(k[0]), targets.index(k[1])))]
    matrix = matrix_from_cells(cells, sources, targets, seeds)
    summary = summarize(matrix)
    summary.update(protocol=portfolio.protocol["name"], clock=portfolio.clock,
                   timing_table=None if table is None or table.path is None else str(table.path),
                   date=utc_now(), cells=dict(Counter(matrix.status[i][j] for i in range(len(sources))
                                                   for j in range(len(targets)))))
    written = {"cells": cells_path, "portfolio": copy, "csv": matrix.to_csv(out / CSV_FILE),
               "heatmap": heatmap(matrix, out / HEATMAP_FILE, summary,
                                  title=f"cost matrix ({portfolio.protocol['name']}, {portfolio.clock} clock); "
                                        "red: oracle per dataset")}
    # each written whole: a full disk or a read-only folder raises an OSError naming the file and
    # leaves the one before as it was (the cells are recorded already)
    written["summary_json"] = write_json_atomic(out / SUMMARY_JSON, summary, indent=1, allow_nan=False)
    written["summary_md"] = atomic_write_text(out / SUMMARY_MD, summary_markdown(
        summary, matrix, protocol=portfolio.protocol["name"], clock=portfolio.clock, cells=cells))
    evals = [float(r.get("wall_seconds") or 0.0) for r in computed]
    task_s = [float(r.get("task_seconds") or 0.0) for r in computed]
    timings = {"wall_seconds": time.perf_counter() - t_start, "startup_seconds": startup,
               "compute_seconds": compute, "cells": len(computed), "workers": n_workers,
               "scheduler": scheduler or ("LocalCluster" if workers else "this process"),
               "eval_seconds_per_cell": float(np.mean(evals)) if evals else None,
               "task_seconds_per_cell": float(np.mean(task_s)) if task_s else None,
               "cpu_seconds": float(sum(float(r.get("cpu_seconds") or 0.0) for r in computed)),
               "cells_per_hour": 3600.0 * len(computed) / compute if computed and compute > 0 else None,
               "outside_evaluations": (1.0 - sum(evals) / (compute * n_workers))
               if computed and compute > 0 and n_workers else None}
    return CostMatrixResult(out, matrix, summary, cells, computed, timings, written)


class _SchedulerLost(Exception):
    """The Dask client lost its scheduler while cells were in flight (their futures cancelled)."""

    def __init__(self, address: str, pending: int) -> None:
        super().__init__(address, pending)
        self.address, self.pending = address, pending


def _run_dask(tasks: Sequence[dict[str, Any]], record: Callable[[dict[str, Any]], None], *, workers: int,
              scheduler: str | None) -> tuple[float, float, int]:
    """Compute ``tasks`` on a Dask cluster, calling ``record`` with each row as it finishes.

    Returns (startup seconds, compute seconds, workers seen). Raises :class:`_SchedulerLost` as
    soon as a future is cancelled (the client lost its scheduler); the rows recorded stay.
    """
    from dask.distributed import as_completed

    from autodl.parallel import dask_client

    t0 = time.perf_counter()
    client_log = logging.getLogger("distributed.client")
    level = client_log.level
    try:
        with dask_client(workers, scheduler, what="cells") as client:
            n_workers = len(client.scheduler_info().get("workers", {}))
            startup = time.perf_counter() - t0
            t1 = time.perf_counter()
            futures = {}
            for task in tasks:
                key = f"cost-matrix-cell-{task['source']}-{task['target']}-{task['seed']}-{os.urandom(4).hex()}"
                futures[client.submit(evaluate_cell, task, key=key, pure=False)] = task
            for future in as_completed(list(futures)):
                task = futures.pop(future)
                if future.status == "finished":
                    record(future.result())
                elif future.status == "error":  # the worker process died (dask retried it) or the task broke
                    exc = future.exception()
                    record(failed_row(task, f"{type(exc).__name__}: {exc}",
                                      trace="".join(traceback.format_exception(exc))))
                else:  # cancelled: the client lost its scheduler (killed, its machine gone), which cancels
                    # every future at once: no result comes any more, so stop instead of writing a matrix
                    # with holes as if it were done (a re-run computes what is missing). Closing the
                    # client (at once, on the way out) aborts its attempt to reconnect, which distributed
                    # logs as errors with tracebacks: quiet while it closes
                    client_log.setLevel(logging.CRITICAL)
                    raise _SchedulerLost(getattr(client.scheduler, "address", None) or scheduler or "?",
                                         len(futures) + 1)
                future.release()
            compute = time.perf_counter() - t1
            n_workers = max(n_workers, len(client.scheduler_info().get("workers", {})))
    finally:
        client_log.setLevel(level)
    return startup, compute, n_workers


def cells_per_hour(portfolio: Portfolio | str | Path,
                   datasets: str | Path | Sequence[str | Path | tuple[str, str | Path]],
                   out: str | Path, *, workers: int, seeds: Sequence[int] = (0,),
                   timing: str | Path | None = None, device: str | None = "cpu") -> dict[str, Any]:
    """Measure the cost matrix's throughput with ``workers`` Dask worker processes.

    Computes the matrix into ``out``, which must hold no cells yet (a resumed matrix computes
    nothing and measures nothing), and returns :attr:`CostMatrixResult.timings` (with
    ``cells_per_hour`` and ``eval_seconds_per_cell``). ``autodl-meta benchmark bohb`` calls
    it with 1 and 2 workers, each into its own folder.
    """
    out = Path(out)
    if (out / CELLS_FILE).is_file() and (out / CELLS_FILE).stat().st_size:
        raise CostMatrixError(out / CELLS_FILE, "holds cells already: a benchmark needs an empty folder",
                              field="out")
    result = run_cost_matrix(portfolio, datasets, out, seeds=seeds, workers=workers, timing=timing, device=device)
    return {**result.timings, "matrix": [len(result.matrix.sources), len(result.matrix.targets), len(seeds)]}

