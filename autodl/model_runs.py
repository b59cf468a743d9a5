"""One model on one dataset under a protocol, run by ingestion and scored: an :class:`Evaluation`.

Everything offline is made of evaluations: BOHB's trials, the cost matrix's cells, the
selectors' leave-one-dataset-out scores, the benchmark rows. :func:`evaluate_model` runs
any model factory (the challenge's ``Model`` interface) in this process on a clock,
scores its predictions and returns a plain record; it never raises for what the model
does: a model that raises is a ``crashed`` evaluation with its traceback, one that runs
far past its budget in wall time, or never advances a simulated clock, a ``timeout``.
The fine-tuning configurations are evaluated through :func:`finetune.config_runs.evaluate`,
which builds the model factory and the clock and calls this.

:func:`run_local` is the organizers' local test instead: ingestion in a child process on
the wall clock, followed and ended at the budget by this process, which plays the
scoring side.

Shortened (multi-fidelity) evaluations
--------------------------------------
``budget`` is the fraction of the protocol's T that an evaluation may use. A shortened
evaluation runs under ``T' = budget * T`` with the protocol's ``t0`` unchanged, and its
ALC is the challenge's ALC of that shortened protocol:
``ALC' = (1 / log(1 + T'/t0)) * integral over [0, T'] of s(t) / (t + t0) dt``.
It lies in [0, 1] like the full ALC and weighs the first seconds exactly as the full
protocol does (the same ``t0``), so that a configuration that is good early is good at
every budget; what a longer budget adds is the later part of the curve. BOHB compares
configurations within one budget only (successive halving), so ALCs of different
budgets are never compared with each other; a learner plans its test calls from the
remaining time it is given, so it plans for ``T'``.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from autodl.child_error import ERROR_FILE_ENV, read_child_error
from autodl.clock import Clock
from autodl.dataset import AutoDLDataset
from autodl.errors import AutoDLError
from autodl.ingestion import ModelFactory, run_ingestion
from autodl.plots import plot_learning_curve
from autodl.protocol import Protocol
from autodl.records import Status, to_plain
from autodl.score_files import ScoreResult, score_folder, write_scores

logger = logging.getLogger(__name__)

WALL_LIMIT_FACTOR = 3.0
"""By default a model is stopped (status ``timeout``) after this many times its budget
in wall seconds, plus :data:`WALL_LIMIT_GRACE`."""

WALL_LIMIT_GRACE = 60.0

SIMULATED_CPU_LIMIT_FACTOR = 10.0
"""Under the simulated clock, whose results must not depend on the machine's load, the
model is stopped after this many times its budget in *CPU* seconds of the evaluating
process (plus :data:`WALL_LIMIT_GRACE`): a loaded machine stretches the wall time of the
same simulated run several-fold (measured: 2 cost-matrix workers beside 6 other busy
processes on 2 cores took 560-660 s of wall time for evaluations of about 60 s, and a
wall limit of 10 T + 60 s stopped one), but not its CPU time. A model that never advances
the clock is caught at once (see :class:`autodl.clock.WatchedClock`)."""

SIMULATED_WALL_LIMIT_FACTOR = 60.0
"""Under the simulated clock, the wall-time limit (times the budget, plus the grace) that
still stops a model which blocks without using the CPU."""


@dataclass(frozen=True)
class LearningCurve:
    """The predictions of an evaluation: seconds since the start, NAUC and accuracy of each."""

    timestamps: list[float]
    nauc: list[float]
    accuracy: list[float] | None = None

    def __len__(self) -> int:
        return len(self.timestamps)


@dataclass
class Evaluation:
    """The result of one evaluation.

    Attributes
    ----------
    status
        ``ok``; ``crashed`` (the model raised: ``error`` and ``traceback`` say what);
        ``timeout`` (stopped: it ran past its wall-time limit, or never advanced a
        simulated clock).
    alc
        The learning-curve area of the predictions (the challenge's ALC unless
        ``metric`` says otherwise), under the shortened protocol when ``budget < 1``.
        None unless the status is ``ok``: a crash is not an ALC of 0, and the timestamps
        of a model stopped for never advancing a simulated clock mean nothing (the curve
        of what was predicted is kept all the same).
    final_nauc
        NAUC of the last prediction (None without predictions).
    curve
        Timestamps, NAUC and accuracy of every prediction.
    wall_seconds
        Wall time of the whole evaluation (set-up, ingestion and scoring).
    clock
        The clock the budget was measured on (``simulated``, ``cpu``, ``wall``).
    protocol
        The protocol's fields, with ``time_budget`` the (shortened) T used.
    budget
        The fraction of the protocol's T used.
    metric
        Which area ``alc`` is (``alc``: the challenge's step-function ALC).
    model
        What was evaluated (a model name or a configuration).
    seed
        The seed the model was given (None where it takes none).
    dataset
        The dataset's folder.
    history
        The learner's own record of its test calls, where it keeps one.
    """

    status: str
    alc: float | None
    final_nauc: float | None
    curve: LearningCurve
    wall_seconds: float
    clock: str
    protocol: dict[str, Any]
    budget: float = 1.0
    metric: str = "alc"
    model: Any = None
    seed: int | None = None
    dataset: str = ""
    error: str | None = None
    traceback: str | None = None
    history: list[dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of every field."""
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), default=_jsonable)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        data = dict(data)
        data["curve"] = LearningCurve(**data["curve"])
        return cls(**data)

    def summary(self) -> str:
        """One line: status, ALC, final NAUC, predictions, clock."""
        alc = "n/a" if self.alc is None else f"{self.alc:.4f}"
        nauc = "n/a" if self.final_nauc is None else f"{self.final_nauc:.4f}"
        what = f"{self.metric.upper()} {alc}, final NAUC {nauc}, {len(self.curve)} predictions"
        extra = f" ({self.error})" if self.error else ""
        return f"{self.status}: {what}, {self.clock} clock{extra}"


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def shortened(protocol: Protocol, budget: float) -> Protocol:
    """The protocol with ``T' = budget * T`` (same ``t0``); see the module docstring."""
    if not (isinstance(budget, int | float) and 0 < budget <= 1):
        raise AutoDLError(None, f"budget={budget!r}: expected a fraction of the protocol's T in (0, 1]",
                          field="budget")
    if budget == 1:
        return protocol
    return replace(protocol, name=f"{protocol.name}@{budget:g}", time_budget=protocol.time_budget * budget)


class _ThreadFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread


LOGGERS = ("autodl", "finetune")
"""The loggers whose records an evaluation's log file collects (the model's own calls)."""


@contextmanager
def capture_log(path: str | Path | None, level: int = logging.INFO) -> Iterator[None]:
    """Write this thread's records of the library's loggers to ``path`` while inside.

    Nothing is added to the root logger; the handlers and levels are restored on exit.
    """
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, mode="w")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_ThreadFilter())
    handler.setLevel(level)
    saved = []
    for name in LOGGERS:
        lg = logging.getLogger(name)
        saved.append((lg, lg.level))
        if lg.getEffectiveLevel() > level:
            lg.setLevel(level)
        lg.addHandler(handler)
    try:
        yield
    finally:
        for lg, old in saved:
            lg.removeHandler(handler)
            lg.setLevel(old)
        handler.close()


def evaluate_model(factory: ModelFactory, dataset: str | Path | AutoDLDataset, protocol: Protocol, *,
                   clock: Clock, clock_name: str, budget: float = 1.0, metric: str = "alc",
                   out: str | Path | None = None, wall_limit: float | None = None,
                   model: Any = None, seed: int | None = None) -> Evaluation:
    """Run ``factory``'s model on ``dataset`` under ``protocol`` in this process and score it.

    Parameters
    ----------
    factory
        ``factory(train_metadata, clock) -> model`` (the challenge's ``Model`` interface).
    dataset
        The AutoDL dataset.
    protocol
        T and t0; ``budget`` shortens T (see the module docstring).
    clock
        The clock the model and the ingestion read; ``clock_name`` names it in the result.
    metric
        ``alc`` (the challenge's) or another area known to :func:`autodl.score_files.score_folder`.
    out
        Folder for ``predictions/``, ``scores/`` and ``ingestion.log``; None: a temporary
        folder, removed afterwards.
    wall_limit
        Wall seconds after which the model is stopped (``timeout``); default
        ``WALL_LIMIT_FACTOR * T' + WALL_LIMIT_GRACE`` (``SIMULATED_WALL_LIMIT_FACTOR`` under
        the simulated clock, where ``SIMULATED_CPU_LIMIT_FACTOR * T' + WALL_LIMIT_GRACE``
        CPU seconds stop it too).
    model, seed
        Recorded in the result (what was evaluated).

    Returns
    -------
    Evaluation
        Never raises for what the model does; bad arguments or a bad dataset raise
        :class:`~autodl.errors.AutoDLError` before anything runs.
    """
    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    proto = shortened(protocol, budget)
    ds.check()  # a damaged or empty subset fails here, in one line, before anything runs or is written
    solution = ds.solution()  # a bad solution fails here, before the budget is spent
    simulated = clock_name == "simulated"
    factor = SIMULATED_WALL_LIMIT_FACTOR if simulated else WALL_LIMIT_FACTOR
    limit = wall_limit if wall_limit is not None else factor * proto.time_budget + WALL_LIMIT_GRACE
    cpu_limit = SIMULATED_CPU_LIMIT_FACTOR * proto.time_budget + WALL_LIMIT_GRACE if simulated else None
    t_wall = time.perf_counter()
    tmp = None
    if out is None:
        tmp = out = tempfile.mkdtemp(prefix="autodl-eval-")
    out = Path(out)
    pred_dir = out / "predictions"
    models: list[Any] = []

    def keep(meta: Any, clk: Clock) -> Any:
        models.append(factory(meta, clk))
        return models[-1]

    try:
        out.mkdir(parents=True, exist_ok=True)
        with capture_log(out / "ingestion.log" if tmp is None else None):
            ing = run_ingestion(ds, keep, pred_dir, time_budget=proto.time_budget, clock=clock,
                                wall_limit=limit, cpu_limit=cpu_limit)
        history = getattr(models[0], "history", None) if models else None
        models.clear()  # the model (network, data on the device) goes now
        score = score_folder(pred_dir, solution, time_budget=proto.time_budget, t0=proto.t0,
                             partial_ok=True, metric=metric)
        if tmp is None:
            write_scores(score, out / "scores")
            plot_learning_curve(score, out / "scores" / "learning-curve.png")
    finally:
        models.clear()
        gc.collect()
        _empty_device_cache()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return Evaluation(
        status=ing.status,
        alc=float(score.score) if ing.status == Status.OK else None,
        final_nauc=float(score.nauc_scores[-1]) if score.nauc_scores else None,
        curve=LearningCurve([float(t) for t in score.timestamps], [float(s) for s in score.nauc_scores],
                            None if score.accuracy is None else [float(a) for a in score.accuracy]),
        wall_seconds=time.perf_counter() - t_wall, clock=clock_name, protocol=proto.to_dict(),
        budget=float(budget), metric=metric, model=model, seed=seed, dataset=str(ds.root),
        error=ing.error, traceback=ing.traceback, history=to_plain(history))


def _empty_device_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


# --- the organizers' local test: ingestion in a child process --------------------------------
@dataclass
class RunResult:
    """Where a local run's outputs went and how it scored."""

    score: ScoreResult
    predictions_dir: Path
    scores_dir: Path
    learning_curve: Path
    log_file: Path
    killed: bool
    ingestion_success: bool | None = None
    end_written: bool = False
    error: str | None = None

    @property
    def status(self) -> Status:
        """``ok`` (the model ended on its own), ``timeout`` (ended at the budget by the scoring
        side) or ``crashed``."""
        if self.ingestion_success:
            return Status.OK
        return Status.TIMEOUT if self.killed else Status.CRASHED


def _read_yaml(path: Path, key: str) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and key in data else None


def _child_error(error_file: Path, log_file: Path) -> str | None:
    """Why the child failed: the line of its error report (:mod:`autodl.child_error`; the file is
    removed once read), else, for a child that reports nothing (another program, or one killed
    before it could), the last line of its log that looks like an error (a logged ``ERROR``, a
    traceback's ``...Error: ...``)."""
    report = read_child_error(error_file)
    error_file.unlink(missing_ok=True)
    if report is not None:
        return report.line()
    lines = [ln.strip() for ln in log_file.read_text(errors="replace").splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("ERROR") or "Error:" in line:
            return line
    return None


def run_local(dataset: str | Path, command: Sequence[str], protocol: Protocol, out: str | Path, *,
              setup_timeout: float = 1200.0, poll: float = 0.1,
              on_tick: Callable[[float, int], None] | None = None,
              env: Mapping[str, str] | None = None) -> RunResult:
    """Run ingestion as a child process (``command``) on the wall clock and score it.

    This is the organizers' local test (``run_local_test.py``): the child writes
    ``start.txt``, the prediction files and ``end.txt`` into ``out/predictions``; this
    process follows them, ends the child's whole process group once the budget has
    passed without ``end.txt`` (an ``end.txt`` written in time counts as finished even if
    the interpreter is still shutting down), then scores the folder and draws the curve.

    Parameters
    ----------
    dataset
        The AutoDL dataset folder (its solution is read here, never by the child).
    command
        The child's argv; it must write into ``out/predictions`` (see
        :func:`finetune.config_runs.ingestion_command`).
    setup_timeout
        Seconds allowed before ``start.txt`` appears (model construction is not charged
        to the budget; the organizers allow 20 minutes).
    on_tick
        Called with ``(seconds since start, predictions so far)`` while ingestion runs.
    env
        Variables added to the child's environment (which is this process's otherwise). The
        child also gets ``$AUTODL_CHILD_ERROR_FILE`` (``out/ingestion-error.json``), where it
        reports why it failed (:mod:`autodl.child_error`).
    """
    ds = AutoDLDataset(dataset)
    ds.check()  # a damaged or empty subset fails here, in one line, before anything runs or is written
    solution = ds.solution()  # fail early on a bad solution, before spending the budget
    out = Path(out)
    pred_dir, score_dir = out / "predictions", out / "scores"
    pred_dir.mkdir(parents=True, exist_ok=True)
    score_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("start.txt", "end.txt"):
        (pred_dir / stale).unlink(missing_ok=True)
    log_file, error_file = out / "ingestion.log", out / "ingestion-error.json"
    error_file.unlink(missing_ok=True)
    killed = False
    start = None
    with log_file.open("w") as log:
        proc = subprocess.Popen(list(command), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1",
                                     ERROR_FILE_ENV: str(error_file.resolve())})
        try:
            t_launch = time.time()
            while start is None:
                start = _read_yaml(pred_dir / "start.txt", "start_time")
                if start is None:
                    if proc.poll() is not None:
                        break
                    if time.time() - t_launch > setup_timeout:
                        raise AutoDLError(log_file, f"ingestion did not start within {setup_timeout:g} s")
                    time.sleep(poll)
            if start is not None:
                deadline = float(start["start_time"]) + protocol.time_budget
                while proc.poll() is None:
                    if (pred_dir / "end.txt").is_file():
                        # ingestion has finished its work; its interpreter is shutting down
                        try:
                            proc.wait(timeout=30)
                        except subprocess.TimeoutExpired:
                            pass
                        break
                    now = time.time()
                    if now > deadline:
                        logger.warning("ingestion outlived the budget of %g s: ending it", protocol.time_budget)
                        os.killpg(proc.pid, signal.SIGKILL)
                        proc.wait()
                        killed = True
                        break
                    if on_tick is not None:
                        n = len(list(pred_dir.glob("*.predict_*[0-9]")))
                        on_tick(now - float(start["start_time"]), n)
                    time.sleep(poll)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if start is None:
        reason = _child_error(error_file, log_file) or f"exit code {proc.returncode}"
        raise AutoDLError(log_file, f"ingestion failed before starting: {reason}")
    end = _read_yaml(pred_dir / "end.txt", "ingestion_success")
    success = None if end is None else bool(end["ingestion_success"])
    result = score_folder(pred_dir, solution, time_budget=protocol.time_budget, t0=protocol.t0,
                          partial_ok=True)
    write_scores(result, score_dir)
    curve = plot_learning_curve(result, score_dir / "learning-curve.png")
    error = _child_error(error_file, log_file) if success is False else None
    return RunResult(result, pred_dir, score_dir, curve, log_file, killed, success, end is not None, error)
