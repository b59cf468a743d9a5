"""Ingestion and scoring side by side, like the organizers' local test (``run_local_test.py``).

Ingestion runs in a child process (``autodl-meta ingest``); this process plays the
scoring side: it waits for ``start.txt``, follows the predictions as they appear, ends
an ingestion that outlives the time budget (the whole process group), then scores the
output folder and draws the learning curve.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from autodl.dataset import AutoDLDataset
from autodl.errors import AutoDLError
from autodl.protocol import Protocol
from autodl.scoring import ScoreResult, plot_learning_curve, score_folder, write_scores

logger = logging.getLogger(__name__)


@dataclass
class RunResult:
    """Where a run's outputs went and how it scored."""

    score: ScoreResult
    predictions_dir: Path
    scores_dir: Path
    learning_curve: Path
    log_file: Path
    killed: bool


def _read_start(path: Path) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) and "start_time" in data else None


def run_simulated(dataset: str | Path, model: str, protocol: Protocol, out: str | Path, timing: str | Path,
                  *, device: str | None = None) -> RunResult:
    """Run ``model`` in this process on a simulated clock driven by the timing table ``timing``.

    Nothing is killed here: the learner advances the clock by the table's costs and stops
    itself at the budget; the learning curve is reproducible whatever the machine's load.
    """
    from autodl.clock import SimulatedClock
    from autodl.ingestion import run_ingestion
    from autodl_meta.models import resolve_model
    from finetune.timing import TimingTable

    if model.startswith("file:") or model.endswith(".py") or model == "baseline:linear":
        raise AutoDLError(None, f"{model} reads the wall clock; a simulated clock runs the "
                                f"fine-tuning learner only (baseline:default|scratch, config:PATH)", field="--model")
    ds = AutoDLDataset(dataset)
    solution = ds.solution()
    out = Path(out)
    pred_dir, score_dir = out / "predictions", out / "scores"
    score_dir.mkdir(parents=True, exist_ok=True)
    kwargs = {"t0": protocol.t0, "timing": TimingTable.load(timing), "device": device,
              "max_train_examples": protocol.max_train_examples}
    factory = resolve_model(model, **{k: v for k, v in kwargs.items() if v is not None})
    log_file = out / "ingestion.log"
    handler = logging.FileHandler(log_file, mode="w")
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(min(old_level, logging.INFO))
    try:
        run_ingestion(ds, factory, pred_dir, time_budget=protocol.time_budget, clock=SimulatedClock())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
    result = score_folder(pred_dir, solution, time_budget=protocol.time_budget, t0=protocol.t0)
    write_scores(result, score_dir)
    curve = plot_learning_curve(result, score_dir / "learning-curve.png")
    return RunResult(result, pred_dir, score_dir, curve, log_file, killed=False)


def run_local(dataset: str | Path, model: str, protocol: Protocol, out: str | Path, *,
              setup_timeout: float = 1200.0, poll: float = 0.1,
              on_tick: Callable[[float, int], None] | None = None, device: str | None = None) -> RunResult:
    """Run ``model`` on ``dataset`` under ``protocol`` and score it.

    Parameters
    ----------
    dataset:
        The AutoDL dataset folder.
    model:
        A ``--model`` name (see :mod:`autodl_meta.models`).
    protocol:
        Time budget and t0.
    out:
        Output folder: ``predictions/``, ``scores/`` (``scores.txt``, ``scores.json``,
        ``learning-curve.png``) and ``ingestion.log``.
    setup_timeout:
        Seconds allowed before ``start.txt`` appears (model construction, not charged to
        the budget; the organizers allow 20 minutes).
    on_tick:
        Called with ``(seconds since start, predictions so far)`` while ingestion runs.
    """
    ds = AutoDLDataset(dataset)
    solution = ds.solution()  # fail early on a bad solution, before spending the budget
    out = Path(out)
    pred_dir, score_dir = out / "predictions", out / "scores"
    pred_dir.mkdir(parents=True, exist_ok=True)
    score_dir.mkdir(parents=True, exist_ok=True)
    (pred_dir / "start.txt").unlink(missing_ok=True)
    log_file = out / "ingestion.log"
    cmd = [sys.executable, "-m", "autodl_meta.cli", "-v", "ingest", "--dataset", str(ds.root),
           "--model", model, "--time-budget", str(protocol.time_budget), "--t0", str(protocol.t0),
           "--out", str(pred_dir)]
    if device:
        cmd += ["--device", device]
    if protocol.max_train_examples:
        cmd += ["--max-train-examples", str(protocol.max_train_examples)]
    killed = False
    with log_file.open("w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            t_launch = time.time()
            start = None
            while start is None:
                start = _read_start(pred_dir / "start.txt")
                if start is None:
                    if proc.poll() is not None:
                        break
                    if time.time() - t_launch > setup_timeout:
                        raise AutoDLError(log_file, f"ingestion did not start within {setup_timeout:g} s")
                    time.sleep(poll)
            if start is not None:
                deadline = float(start["start_time"]) + protocol.time_budget
                while proc.poll() is None:
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
            proc.wait()
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if start is None:
        tail = [ln for ln in log_file.read_text().splitlines() if ln.strip()]
        reason = tail[-1] if tail else f"exit code {proc.returncode}"
        raise AutoDLError(log_file, f"ingestion failed before starting: {reason}")
    result = score_folder(pred_dir, solution, time_budget=protocol.time_budget, t0=protocol.t0,
                          partial_ok=True)
    write_scores(result, score_dir)
    curve = plot_learning_curve(result, score_dir / "learning-curve.png")
    return RunResult(result, pred_dir, score_dir, curve, log_file, killed)
