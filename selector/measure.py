"""Identification and leave-one-dataset-out of many selectors, one after the other or side by side.

What :func:`selector.report.compare` measures per seed: :func:`selector.identification.identification_accuracy`
and :func:`selector.lodo.leave_one_dataset_out` of every selector. Each selector's figures depend
on that selector, the features, the cost matrix and the seed alone (its batches are seeded by
dataset and size, its fits by the seed), so the selectors can be measured in separate processes
and their rows put back in the order one process gives them: identification rows selector by
selector, leave-one-dataset-out rows fold by fold and within a fold selector by selector, the
nested fallback's records selector by selector.

With ``workers > 1`` the (seed, selector) jobs run in ``workers`` processes (``spawn``), each with
one PyTorch and BLAS thread (:func:`autodl.workers.single_threaded_worker`). The selectors trained
with PyTorch or fitted with threaded BLAS may then differ from a one-process run (which uses the
machine's threads) in the last bits, as any change of thread count does; everything else is the
same rows. The leave-one-dataset-out of the old default build took 6,228 s in one process
(21 datasets, 17 selectors, 2 cores), most of it in three selectors (``mlp-vote``, ``vae-ttest``,
``precalc-mlp``): side by side the slowest selector bounds the wall time instead of the sum.

With ``parts`` (a folder) every (seed, selector) job's rows are kept there as JSON once measured,
named by a digest of the job and of the data it reads (the features, the cost matrix, the member
view); a later call measures only the jobs not kept, so an interrupted comparison resumes
(:func:`selector.report.compare`'s ``parts``). A kept job gives the rows it gave when measured:
JSON keeps every float to the last bit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import to_plain, write_json_atomic
from autodl.workers import single_threaded_worker
from metafeatures.features import DatasetFeatures
from selector.base import SelectorError
from selector.identification import identification_accuracy
from selector.lodo import leave_one_dataset_out
from selector.specs import Progress, SelectorSpec

logger = logging.getLogger(__name__)

PART_FORMAT = "autodl-meta-selector-part-1"
"""The format of one kept (seed, selector) job (``parts``)."""


@dataclass
class Measured:
    """The rows of every selector and seed, in the order one process gives them."""

    identification: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    lodo: list[dict[str, Any]] = field(default_factory=list)
    queries: list[dict[str, Any]] = field(default_factory=list)
    inner_queries: list[dict[str, Any]] = field(default_factory=list)

    def extend(self, other: Measured) -> None:
        """Append ``other``'s rows (the next seed's)."""
        self.identification += other.identification
        self.skipped.update(other.skipped)
        self.lodo += other.lodo
        self.queries += other.queries
        self.inner_queries += other.inner_queries

    def to_dict(self) -> dict[str, Any]:
        return {f.name: to_plain(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measured:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls)})


def _feed(h: Any, obj: Any, depth: int = 0) -> None:
    """Feed ``obj`` (arrays, dataclasses, mappings, sequences, scalars) into the hash ``h``."""
    if depth > 12:
        raise SelectorError(None, f"a {type(obj).__name__} nested too deep to fingerprint", field="parts")
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"array{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes() if a.dtype != object else repr(a.tolist()).encode())
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        h.update(f"<{type(obj).__name__}>".encode())
        for f in dataclasses.fields(obj):
            h.update(f.name.encode())
            _feed(h, getattr(obj, f.name), depth + 1)
    elif isinstance(obj, Mapping):
        h.update(b"{")
        for k in sorted(obj, key=str):
            h.update(repr(str(k)).encode())
            _feed(h, obj[k], depth + 1)
        h.update(b"}")
    elif isinstance(obj, (list, tuple)):
        h.update(b"[")
        for v in obj:
            _feed(h, v, depth + 1)
        h.update(b"]")
    else:
        h.update(repr(to_plain(obj)).encode())


def data_digest(datasets: Sequence[DatasetFeatures], cost: Any, members: Any) -> str:
    """SHA-256 of everything the measurements read besides the selector and the seed."""
    h = hashlib.sha256()
    _feed(h, [list(datasets), cost, members])
    return h.hexdigest()


def _part_path(folder: Path, spec: SelectorSpec, seed: int, data: str, ident_args: Mapping[str, Any],
               lodo_args: Mapping[str, Any]) -> tuple[Path, dict[str, Any]]:
    key = {"format": PART_FORMAT, "selector": {"label": spec.label, "name": spec.name, "params": dict(spec.params)},
           "seed": int(seed), "data": data, "identification": dict(ident_args), "lodo": dict(lodo_args)}
    key = to_plain(key)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.label)[:40]
    return folder / f"{safe}-seed{int(seed)}-{digest}.json", key


def _read_part(path: Path, key: Mapping[str, Any]) -> Measured | None:
    """The kept job at ``path`` if it is whole and for ``key``; None otherwise (measured again)."""
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("key") != key:
            return None
        return Measured.from_dict(data["measured"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        logger.warning("%s: not a whole measurement (%s); measured again", path, exc)
        return None


def _one(specs: Sequence[SelectorSpec], datasets: Sequence[DatasetFeatures], cost: Any, members: Any, seed: int,
         ident_args: Mapping[str, Any], lodo_args: Mapping[str, Any], progress: Progress | None = None) -> Measured:
    ident = identification_accuracy(specs, datasets, seed=seed, cost=cost, progress=progress, **ident_args)
    lodo = leave_one_dataset_out(specs, datasets, cost, seed=seed, members=members, progress=progress, **lodo_args)
    return Measured(ident.rows, dict(ident.skipped), lodo.rows, lodo.queries, lodo.inner_queries)


_SHARED: dict[str, Any] = {}
"""In a worker: the features, cost matrix and member view, sent once when it starts (not with every job)."""


def _start_worker(parent: int, datasets: Sequence[DatasetFeatures], cost: Any, members: Any) -> None:
    single_threaded_worker(parent)
    _SHARED.update(datasets=datasets, cost=cost, members=members)


def _one_in_worker(spec: SelectorSpec, seed: int, ident_args: Mapping[str, Any],
                   lodo_args: Mapping[str, Any]) -> Measured:
    return _one([spec], _SHARED["datasets"], _SHARED["cost"], _SHARED["members"], seed, ident_args, lodo_args)


def _by_name(specs: Sequence[SelectorSpec]) -> bool:
    """Whether every selector is built from the registry by name (a worker builds it the same way);
    a spec with its own ``factory`` (tests, selectors defined elsewhere) is measured in this process."""
    return all(s.factory is None for s in specs)


def _merge(seed_parts: Sequence[Measured], specs: Sequence[SelectorSpec]) -> Measured:
    """One seed's per-selector parts (in ``specs`` order) as one process gives them."""
    out = Measured()
    for part in seed_parts:
        out.identification += part.identification
        out.skipped.update(part.skipped)
        out.inner_queries += part.inner_queries
    folds: list[str] = []
    for part in seed_parts:
        for r in part.lodo:
            if r["dataset"] not in folds:
                folds.append(r["dataset"])
    fold_of = {d: i for i, d in enumerate(folds)}
    rank = {s.label: i for i, s in enumerate(specs)}

    def key(r: Mapping[str, Any]) -> tuple[int, int]:
        return fold_of[r["dataset"]], rank[r["selector"]]

    out.lodo = sorted((r for p in seed_parts for r in p.lodo), key=key)  # stable: a part's own order kept
    out.queries = sorted((r for p in seed_parts for r in p.queries), key=key)
    return out


def measure(specs: Sequence[SelectorSpec], datasets: Sequence[DatasetFeatures], cost: Any, members: Any, *,
            seeds: Sequence[int], ident_args: Mapping[str, Any], lodo_args: Mapping[str, Any], workers: int = 1,
            progress: Progress | None = None, parts: str | Path | None = None) -> Measured:
    """Identification and leave-one-dataset-out of ``specs`` for each seed.

    Parameters
    ----------
    cost, members:
        The cost matrix and the member view (see :func:`selector.lodo.leave_one_dataset_out`).
    ident_args, lodo_args:
        Keyword arguments of :func:`identification_accuracy` (``batch_sizes``, ``n_batches``)
        and :func:`leave_one_dataset_out` (``query_size``, ``n_queries``, ``nested_fallback``,
        ``inner_queries``).
    workers:
        Processes side by side (one selector and seed each at a time); 1: this process, with
        the stage-by-stage progress of the measurements.
    progress:
        ``progress(stage, done, total)``; side by side (or with ``parts``) the stage is
        ``selectors``, one step per (seed, selector).
    parts:
        A folder where each (seed, selector) job is kept once measured, and read instead of
        measured again (resuming an interrupted comparison); None: nothing kept.
    """
    seeds = [int(s) for s in seeds]
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SelectorError(None, f"workers={workers!r}: expected 1 or more processes", field="workers")
    if parts is not None:
        return _measure_kept(specs, datasets, cost, members, seeds=seeds, ident_args=ident_args,
                             lodo_args=lodo_args, workers=workers, progress=progress, folder=Path(parts))
    if workers == 1 or len(specs) < 2 or not _by_name(specs):
        if workers > 1:
            logger.info("selectors measured in this process: a selector with its own factory is not sent to a worker")
        out = Measured()
        for seed in seeds:
            out.extend(_one(specs, datasets, cost, members, seed, ident_args, lodo_args, progress))
        return out
    jobs = [(seed, i) for seed in seeds for i in range(len(specs))]
    done: dict[tuple[int, int], Measured] = {}
    if progress is not None:
        progress("selectors", 0, len(jobs))

    def record(job: tuple[int, int], measured: Measured) -> None:
        done[job] = measured
        _measured(specs, job, len(done), len(jobs), progress)

    _side_by_side(jobs, specs, datasets, cost, members, ident_args, lodo_args, workers, record)
    return _merged(done, specs, seeds)


def _measured(specs: Sequence[SelectorSpec], job: tuple[int, int], n: int, total: int,
              progress: Progress | None) -> None:
    """Log and report that ``job`` (seed, selector index) was measured, the ``n``-th of ``total``."""
    logger.info("selectors: %s (seed %d) measured (%d of %d)", specs[job[1]].label, job[0], n, total)
    if progress is not None:
        progress("selectors", n, total)


def _side_by_side(jobs: Sequence[tuple[int, int]], specs: Sequence[SelectorSpec],
                  datasets: Sequence[DatasetFeatures], cost: Any, members: Any, ident_args: Mapping[str, Any],
                  lodo_args: Mapping[str, Any], workers: int,
                  on_done: Callable[[tuple[int, int], Measured], None]) -> None:
    """Measure each (seed, selector index) of ``jobs`` in ``workers`` processes; ``on_done(job, rows)``
    as each finishes."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"),
                             initializer=_start_worker, initargs=(os.getpid(), datasets, cost, members)) as pool:
        futures = {pool.submit(_one_in_worker, specs[i], seed, dict(ident_args), dict(lodo_args)): (seed, i)
                   for seed, i in jobs}
        for future in as_completed(futures):
            on_done(futures[future], future.result())


def _merged(done: Mapping[tuple[int, int], Measured], specs: Sequence[SelectorSpec], seeds: Sequence[int]) -> Measured:
    """The per-job parts, seed by seed, as one process gives them."""
    out = Measured()
    for seed in seeds:
        out.extend(_merge([done[(seed, i)] for i in range(len(specs))], specs))
    return out


def _measure_kept(specs: Sequence[SelectorSpec], datasets: Sequence[DatasetFeatures], cost: Any, members: Any, *,
                  seeds: Sequence[int], ident_args: Mapping[str, Any], lodo_args: Mapping[str, Any], workers: int,
                  progress: Progress | None, folder: Path) -> Measured:
    """:func:`measure` with each (seed, selector) job kept in ``folder`` (see ``parts``)."""
    folder.mkdir(parents=True, exist_ok=True)
    data = data_digest(datasets, cost, members)
    jobs = [(seed, i) for seed in seeds for i in range(len(specs))]
    where = {job: _part_path(folder, specs[job[1]], job[0], data, ident_args, lodo_args) for job in jobs}
    done: dict[tuple[int, int], Measured] = {}
    for job in jobs:
        kept = _read_part(*where[job])
        if kept is not None:
            done[job] = kept
    todo = [job for job in jobs if job not in done]
    if done:
        logger.info("selectors: %d of %d (seed, selector) measurements kept in %s; %d to measure",
                    len(done), len(jobs), folder, len(todo))
    if progress is not None:
        progress("selectors", len(done), len(jobs))

    def keep(job: tuple[int, int], measured: Measured) -> None:
        path, key = where[job]
        write_json_atomic(path, {"key": key, "measured": measured.to_dict()}, indent=None)
        done[job] = measured
        _measured(specs, job, len(done), len(jobs), progress)

    if workers == 1 or len(todo) < 2 or not _by_name(specs):
        for seed, i in todo:
            keep((seed, i), _one([specs[i]], datasets, cost, members, seed, ident_args, lodo_args))
    else:
        _side_by_side(todo, specs, datasets, cost, members, ident_args, lodo_args, workers, keep)
    return _merged(done, specs, seeds)
