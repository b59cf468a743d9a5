"""Meta-features of a whole collection: one features file per dataset, in parallel, cached.

:func:`extract_collection` runs :func:`metafeatures.embeddings.extract_features` on every
dataset of a collection and writes ``<out>/<name>.npz`` + ``<out>/<name>.json``
(:meth:`metafeatures.features.DatasetFeatures.save`). A dataset whose features are there
already, made with the same :class:`~metafeatures.embeddings.EmbeddingSpec` (its
:meth:`~metafeatures.embeddings.EmbeddingSpec.digest`) from the same data (the dataset's
fingerprint: :func:`autodl.dataset.dataset_fingerprint`) and with the same source, is
skipped; any other is computed again, and the log says why (so is one extracted before the
raw-pixel features, ``train_raw``, were stored).

Datasets are embedded in parallel with Dask (``distributed``), as the cost matrix's cells
are (:mod:`portfolio.cost_matrix`): a ``LocalCluster(n_workers=N, threads_per_worker=1,
processes=True)`` on this machine, or any running scheduler (``scheduler=ADDRESS``, e.g. a
dask-jobqueue ``SLURMCluster``'s; the workers must see the datasets and the output folder
at the same paths). Each worker embeds with one PyTorch thread and writes its dataset's
files itself, so that only small dicts travel. With ``workers <= 1`` and no scheduler
everything runs in this process, one dataset after the other. A dataset that fails is
logged and named once all the others have finished; their features are kept.
"""

from __future__ import annotations

import json
import logging
import os
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodl.records import Status
from metafeatures.embeddings import Embedder, EmbeddingSpec, ExtractionError

logger = logging.getLogger(__name__)

__all__ = ["CollectionExtractionError", "Progress", "cache_state", "extract_collection"]

Progress = Callable[[int, int, str], None]
"""``progress(done, total, name)``: called once per dataset as it is finished (or found cached)."""


class CollectionExtractionError(ExtractionError):
    """Some datasets of a collection failed; the others' features were written.

    Attributes
    ----------
    paths:
        The ``.npz`` files of the datasets that succeeded (or were cached).
    failures:
        ``{name: error}`` of the datasets that failed.
    """

    def __init__(self, out: Path, paths: list[Path], failures: dict[str, str]) -> None:
        self.paths = paths
        self.failures = failures
        names = "; ".join(f"{n}: {e}" for n, e in failures.items())
        super().__init__(out, f"{len(failures)} of {len(paths) + len(failures)} datasets failed (the others' "
                              f"features were written): {names}")


# --- the cache -------------------------------------------------------------------------------
def cache_state(out: str | Path, name: str, spec: EmbeddingSpec, fingerprint: str,
                source: str | None) -> str | None:
    """Why ``<out>/<name>`` must be computed, or None when it is cached and unchanged.

    Reads the ``.json`` card only (not the arrays).
    """
    out = Path(out)
    npz, js = out / f"{name}.npz", out / f"{name}.json"
    if not npz.is_file() or not js.is_file():
        return "not extracted yet"
    try:
        stored = json.loads(js.read_text())
        card = stored["card"]
        digest, stored_fp = card["spec_digest"], card["dataset_fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"its card {js} is unreadable ({type(exc).__name__}: {exc})"
    if digest != spec.digest():
        return f"made with another embedding spec ({card.get('spec')}, digest {digest}; now {spec.digest()})"
    if stored_fp != fingerprint:
        return "the dataset's files changed (fingerprint differs)"
    if stored.get("source") != source:
        return f"its source changed ({stored.get('source')!r}, now {source!r})"
    if "train_raw" not in (stored.get("shapes") or {}):
        return "extracted before the raw-pixel features (train_raw) were stored"
    return None


# --- one dataset, in a worker ------------------------------------------------------------------
_EMBEDDERS: dict[tuple[Any, ...], Embedder] = {}
_MAX_EMBEDDERS = 4


def _embedder(spec: EmbeddingSpec, in_chans: int, device: str | None) -> Embedder:
    """An embedder per (spec, channels, device), kept for the next dataset of this process."""
    key = (spec, in_chans, device)
    if key not in _EMBEDDERS:
        if len(_EMBEDDERS) >= _MAX_EMBEDDERS:
            _EMBEDDERS.pop(next(iter(_EMBEDDERS)))
        _EMBEDDERS[key] = Embedder(spec, in_chans, device=device)
    return _EMBEDDERS[key]


def extract_task(task: dict[str, Any]) -> dict[str, Any]:
    """Embed one dataset and write its features: a Dask task (plain values in, plain values out).

    Never raises: a failure is ``{"status": "failed", "error": ..., "traceback": ...}``.

    Parameters
    ----------
    task:
        ``name``, ``path``, ``source``, ``spec`` (a dict), ``out``, ``device`` and
        ``threads`` (PyTorch threads inside the task; None leaves them as they are).
    """
    start = time.perf_counter()
    row: dict[str, Any] = {"name": task["name"], "status": Status.FAILED, "path": None, "error": None,
                           "traceback": None, "worker": os.getpid()}
    try:
        from autodl.dataset import AutoDLDataset
        from finetune.config_runs import torch_threads
        from metafeatures.embeddings import extract_features

        spec = EmbeddingSpec(**task["spec"])
        with torch_threads(task.get("threads")):
            in_chans = AutoDLDataset(task["path"]).metadata("train").get_num_channels(0)
            feats = extract_features(task["path"], spec, name=task["name"], source=task["source"],
                                     embedder=_embedder(spec, in_chans, task.get("device")))
        row.update(status=Status.OK, path=str(feats.save(task["out"])))
    except Exception as exc:  # noqa: BLE001 (one bad dataset never ends the collection)
        row.update(error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    row["seconds"] = time.perf_counter() - start
    return row


@dataclass
class _Run:
    total: int
    progress: Progress | None
    done: int = 0

    def step(self, name: str) -> None:
        self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, name)


def _run_dask(tasks: list[dict[str, Any]], record: Callable[[dict[str, Any]], None], *, workers: int,
              scheduler: str | None) -> None:
    from dask.distributed import as_completed

    from autodl.parallel import dask_client

    with dask_client(workers, scheduler, what="datasets") as client:
        futures = {client.submit(extract_task, t, key=f"metafeatures-{t['name']}-{os.urandom(4).hex()}",
                                 pure=False): t for t in tasks}
        for future in as_completed(list(futures)):
            task = futures.pop(future)
            if future.status == "finished":
                record(future.result())
            else:  # the worker died (after Dask's retries) or the scheduler went away
                exc = future.exception() if future.status == "error" else None
                record({"name": task["name"], "status": Status.FAILED, "path": None,
                        "error": f"{type(exc).__name__}: {exc}" if exc else f"task {future.status}",
                        "traceback": "".join(traceback.format_exception(exc)) if exc else None})
            future.release()


def extract_collection(datasets: Sequence[tuple[str, str | Path, str | None]], spec: EmbeddingSpec,
                       out: str | Path, *, workers: int = 1, scheduler: str | None = None,
                       progress: Progress | None = None, device: str | None = None) -> list[Path]:
    """Embed every dataset of a collection into ``<out>/<name>.npz`` + ``.json``, skipping cached ones.

    Parameters
    ----------
    datasets:
        ``(name, folder, source)`` per dataset (e.g. :func:`autodl.collection.collection_datasets`); names
        must differ.
    spec:
        How to embed.
    out:
        Output folder (created).
    workers:
        Dask worker processes of a ``LocalCluster`` (one PyTorch thread each); ``<= 1``
        embeds in this process, one dataset after the other, with the process's threads.
        Ignored with ``scheduler``.
    scheduler:
        The address of a running Dask scheduler instead of a ``LocalCluster``.
    progress:
        ``progress(done, total, name)`` after each dataset (cached ones first).
    device:
        ``cpu`` or ``cuda`` for the embeddings (default: CUDA where available).

    Returns
    -------
    list of Path
        The ``.npz`` file of every dataset, in the order given.

    Raises
    ------
    ExtractionError
        Before anything runs: two datasets of one name, a folder that is not an AutoDL
        dataset, a bad ``workers``.
    CollectionExtractionError
        After all the others finished: the datasets that failed (their errors; the
        tracebacks are in the log).
    """
    from autodl.dataset import AutoDLDataset, dataset_fingerprint

    out = Path(out)
    if scheduler is None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ExtractionError(None, f"{workers!r}: expected a number of worker processes", field="workers")
    items = [(str(n), Path(p), s) for n, p, s in datasets]
    seen: dict[str, Path] = {}
    for name, path, _ in items:
        if name in seen:
            raise ExtractionError(path, f"dataset name {name!r} is also {seen[name]}", field="datasets")
        seen[name] = path
        AutoDLDataset(path)  # a clear error now rather than a failed task later
    out.mkdir(parents=True, exist_ok=True)
    run = _Run(total=len(items), progress=progress)
    paths: dict[str, Path] = {}
    tasks = []
    for name, path, source in items:
        reason = cache_state(out, name, spec, dataset_fingerprint(path), source)
        if reason is None:
            logger.info("%s: cached and unchanged, skipped", name)
            paths[name] = out / f"{name}.npz"
            run.step(name)
            continue
        logger.info("%s: to compute: %s", name, reason)
        tasks.append({"name": name, "path": str(path), "source": source, "spec": spec.to_dict(),
                      "out": str(out), "device": device, "threads": None})
    failures: dict[str, str] = {}

    def record(row: dict[str, Any]) -> None:
        if row["status"] == Status.OK:
            paths[row["name"]] = Path(row["path"])
        else:
            failures[row["name"]] = row["error"]
            logger.error("%s: extraction failed: %s", row["name"], row["error"])
            logger.info("%s: the traceback of the failure:\n%s", row["name"], row.get("traceback") or "")
        run.step(row["name"])

    logger.info("meta-features of %d datasets: %d cached, %d to compute (spec %s)", len(items),
                len(items) - len(tasks), len(tasks), spec.digest())
    if tasks and scheduler is None and workers <= 1:
        for task in tasks:
            record(extract_task(task))
    elif tasks:
        for task in tasks:
            task["threads"] = 1
        _run_dask(tasks, record, workers=workers, scheduler=scheduler)
    done = [paths[name] for name, _, _ in items if name in paths]
    if failures:
        raise CollectionExtractionError(out, done, failures)
    return done
