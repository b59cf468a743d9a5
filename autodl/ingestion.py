"""The time-budgeted ingestion loop, as the organizers' ``ingestion.py`` runs it.

1. Build the train and test ``tf.data`` datasets and construct ``Model(metadata)``
   (not charged to the budget).
2. ``start = now``; write ``start.txt`` (YAML: ``ingestion_pid``, ``task_name``,
   ``time_budget``, ``start_time``).
3. While not ``model.done_training``: ``train``; ``test``; append ``"<k>: <timestamp>"``
   to ``start.txt``; write ``<task>.predict_<k>`` (rows of ``'{0:g}'`` values, written
   under a temporary name and renamed). Stop when the budget is spent. Train and test
   are never interrupted here: the scoring side ends an ingestion that outlives the
   budget (see ``autodl-meta run``).
4. Write ``end.txt`` (YAML: ``ingestion_duration``, ``ingestion_success``, ``end_time``).

A model that raises keeps the predictions it already made and the run is marked
``ingestion_success: 0`` with status ``crashed`` and the traceback kept. Time is read
from a :class:`~autodl.clock.Clock`, so the same loop runs on any clock. Two guards stop
a model that would never end in-process (the organizers' scoring program kills it
instead): a wall-time limit (``wall_limit``: the model is stopped at its next clock read
or between calls, through :class:`~autodl.clock.WatchedClock`), and, on a simulated
clock, ``max_idle_cycles`` train/test cycles in a row that do not advance the clock.
Either ends the run with status ``timeout``; the predictions made before it count.

Scored rows and unlabelled examples (``scored_rows``): ingestion can run a test set
whose first ``scored_rows`` examples are the real test examples and whose remaining
examples are unlabelled ones appended for prediction (the self-service run,
:mod:`submission.selfservice`, builds such a copy of a dataset). Each prediction file
then holds only the first ``scored_rows`` rows (what the scorer compares with the
``.solution``), and the remaining rows of the latest prediction go to
``unlabelled.predict`` in the same folder (the organizers' prediction format: one row of
class probabilities per unlabelled example). That file is rewritten after every
prediction (atomically), so a run the scoring side ends at the budget keeps the rows of
its last prediction; writing it costs what writing those rows into the prediction file
would, as the organizers' ingestion would on a test set that held them. The model sees
the unlabelled examples, unlabelled, as part of its test set: every test call predicts
them too, so its test time grows with them.

Datasets handed to the model are ``tf.data.Dataset`` objects with the challenge's
element structure. Each also carries an ``autodl_source`` attribute,
``(AutoDLDataset, subset)``: this project's learners use it to take the fast numpy path
(:func:`source_of`); a model written for the challenge never sees the difference.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.clock import Clock, ClockTimeout, WallClock, WatchedClock
from autodl.dataset import AutoDLDataset
from autodl.errors import AutoDLError, PredictionError
from autodl.metadata import AutoDLMetadata
from autodl.records import Status, atomic_write_text

logger = logging.getLogger(__name__)

UNLABELLED_PREDICT = "unlabelled.predict"
"""The file, in the predictions folder, that holds the unscored rows of the latest
prediction (see ``scored_rows``)."""

ModelFactory = Callable[[AutoDLMetadata, Clock], Any]


def source_of(dataset: Any) -> tuple[AutoDLDataset, str] | None:
    """The ``(AutoDLDataset, subset)`` a dataset handed over by ingestion was built from."""
    src = getattr(dataset, "autodl_source", None)
    if isinstance(src, tuple) and len(src) == 2 and isinstance(src[0], AutoDLDataset):
        return src
    return None


def format_predictions(predictions: np.ndarray) -> str:
    """Rows of space-separated ``'{0:g}'`` values, as the organizers' ``data_io.write``."""
    return "".join(" ".join(f"{v:g}" for v in row) + "\n" for row in predictions)


def write_predictions(path: Path, predictions: np.ndarray) -> None:
    """Write a prediction file atomically (temporary name, then rename)."""
    atomic_write_text(path, format_predictions(predictions))


def _yaml_lines(items: dict[str, Any]) -> str:
    return "".join(f"{k}: {v}\n" for k, v in items.items())


@dataclass
class IngestionResult:
    """What an ingestion run did."""

    output_dir: Path
    task_name: str
    start_time: float
    timestamps: list[float] = field(default_factory=list)
    status: str = Status.OK
    error: str | None = None
    traceback: str | None = None
    duration: float = 0.0

    @property
    def success(self) -> bool:
        """Whether the model ended on its own without an error (``ingestion_success``)."""
        return self.status == Status.OK

    @property
    def num_predictions(self) -> int:
        return len(self.timestamps)


def check_predictions(predictions: Any, n_test: int, output_dim: int) -> np.ndarray:
    """Check a model's test output: ``(n_test, output_dim)``, finite."""
    arr = np.asarray(predictions, dtype=np.float64)
    if arr.shape != (n_test, output_dim):
        raise PredictionError(None, f"model.test returned shape {arr.shape}; expected "
                                    f"({n_test}, {output_dim}) (test examples, output_dim)")
    if not np.all(np.isfinite(arr)):
        raise PredictionError(None, "model.test returned NaN or infinite values")
    return arr


def run_ingestion(dataset: AutoDLDataset | str | Path, model_factory: ModelFactory,
                  output_dir: str | Path, time_budget: float = 1200.0, *,
                  clock: Clock | None = None, task_name: str | None = None,
                  on_prediction: Callable[[int, float], None] | None = None,
                  wall_limit: float | None = None, cpu_limit: float | None = None,
                  max_idle_cycles: int = 5, scored_rows: int | None = None) -> IngestionResult:
    """Run a model on ``dataset`` under ``time_budget`` seconds and write the output folder.

    Parameters
    ----------
    dataset:
        The AutoDL dataset (folder or :class:`AutoDLDataset`).
    model_factory:
        ``factory(train_metadata, clock) -> model`` with the challenge's ``Model``
        interface (``train``, ``test``, ``done_training``).
    output_dir:
        Where ``start.txt``, ``<task>.predict_<k>`` and ``end.txt`` go; created if
        missing; earlier prediction files in it are removed first.
    time_budget:
        The budget T in seconds.
    clock:
        What "now" is (default: the wall clock).
    task_name:
        The prefix of the prediction files (default: the dataset name).
    on_prediction:
        Called with ``(k, seconds since start)`` after each prediction is written.
    wall_limit:
        Wall seconds (from the start of the budget) after which the model is stopped
        with status ``timeout``; None: no limit.
    cpu_limit:
        CPU seconds of this process (from the start of the budget) after which the model
        is stopped with status ``timeout`` (needs ``wall_limit``); None: no CPU limit.
    max_idle_cycles:
        On a simulated clock, train/test cycles in a row that leave the clock where it
        was before the run is stopped with status ``timeout``.
    scored_rows:
        Write only the first ``scored_rows`` rows of each prediction into
        ``<task>.predict_<k>`` and the remaining rows of the latest prediction into
        :data:`UNLABELLED_PREDICT` (see the module docstring); None: every row is scored.
        The model is still asked for, and checked on, every example of the test set.

    Raises
    ------
    AutoDLError
        ``scored_rows`` outside ``[1, test sample_count]`` (before the model is built).
    """
    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    clock = clock or WallClock()
    watched = WatchedClock(clock, wall_limit, cpu_limit) if wall_limit is not None else None
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = [out / "start.txt", out / "end.txt", out / UNLABELLED_PREDICT]
    for old in list(out.glob("*.predict_*")) + stale:
        old.unlink(missing_ok=True)
    task = task_name or ds.name

    train_meta = ds.metadata("train")
    test_meta = ds.metadata("test")
    if scored_rows is not None and not (isinstance(scored_rows, int | np.integer)
                                        and 1 <= scored_rows <= test_meta.sample_count):
        raise AutoDLError(ds.subset_dir("test"), f"scored_rows={scored_rows!r}: expected a number of rows in "
                                                 f"[1, {test_meta.sample_count}] (the test set's sample_count)",
                          field="scored_rows")
    d_train = ds.tf_dataset("train")
    d_test = ds.tf_dataset("test")
    d_train.autodl_source = (ds, "train")
    d_test.autodl_source = (ds, "test")

    result = IngestionResult(output_dir=out, task_name=task, start_time=0.0)
    try:
        model = model_factory(train_meta, watched or clock)
    except Exception as exc:
        _record_failure(result, Status.CRASHED, exc, "constructing the model failed")
        now = clock.now()
        result.start_time = now
        _write_start(out, task, time_budget, now)
        _write_end(out, 0.0, False, now)
        return result

    start = clock.now()
    result.start_time = start
    _write_start(out, task, time_budget, start)
    if watched is not None:
        watched.arm()
    k = 0
    idle = 0
    try:
        while not getattr(model, "done_training", False):
            remaining = start + time_budget - clock.now()
            if remaining <= 0:
                break
            before = clock.now()
            model.train(d_train, remaining_time_budget=remaining)
            remaining = start + time_budget - clock.now()
            predictions = model.test(d_test, remaining_time_budget=remaining)
            if watched is not None:
                watched.check()
            if getattr(clock, "simulated", False) and clock.now() == before:
                idle += 1
                if idle >= max_idle_cycles:
                    raise _Stalled(f"the model did not advance the simulated clock in {idle} train/test "
                                   f"cycles in a row (it never charges its work to the clock)")
            else:
                idle = 0
            if predictions is None:  # a model may decline to predict (e.g. out of time)
                if getattr(model, "done_training", False):
                    break
                continue
            stamp = clock.now()
            arr = check_predictions(predictions, test_meta.sample_count, test_meta.output_dim)
            write_predictions(out / f"{task}.predict_{k}", arr if scored_rows is None else arr[:scored_rows])
            with (out / "start.txt").open("a") as f:
                f.write(f"{k}: {stamp}\n")
            if scored_rows is not None and scored_rows < len(arr):
                write_predictions(out / UNLABELLED_PREDICT, arr[scored_rows:])
            result.timestamps.append(stamp - start)
            logger.info("prediction %d at %.2f s (%.2f s left)", k, stamp - start,
                        start + time_budget - stamp)
            if on_prediction is not None:
                on_prediction(k, stamp - start)
            k += 1
            if start + time_budget - clock.now() <= 0:
                break
    except (ClockTimeout, _Stalled) as exc:
        _record_failure(result, Status.TIMEOUT, exc, f"the model was stopped after {k} predictions")
    except Exception as exc:
        _record_failure(result, Status.CRASHED, exc, f"the model failed after {k} predictions")
    del model  # memory goes back before the caller scores
    end = clock.now()
    result.duration = end - start
    _write_end(out, result.duration, result.success, end)
    return result


class _Stalled(Exception):
    """A model that never advances a simulated clock."""


def _record_failure(result: IngestionResult, status: Status, exc: BaseException, what: str) -> None:
    result.status = status
    result.error = f"{type(exc).__name__}: {exc}" if status == Status.CRASHED else str(exc)
    result.traceback = traceback.format_exc()
    log = logger.error if status == Status.CRASHED else logger.warning
    log("%s: %s", what, result.error)
    logger.debug("%s", result.traceback)


def _write_start(out: Path, task: str, time_budget: float, start: float) -> None:
    (out / "start.txt").write_text(_yaml_lines({"ingestion_pid": os.getpid(), "task_name": task,
                                                "time_budget": float(time_budget), "start_time": start}))


def _write_end(out: Path, duration: float, success: bool, end_time: float) -> None:
    (out / "end.txt").write_text(_yaml_lines({"ingestion_duration": duration,
                                              "ingestion_success": int(success),
                                              "end_time": end_time}))
