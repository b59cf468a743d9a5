"""``autodl-meta benchmark budget``: does a model keep the time budget when the machine is not idle?

The challenge runs ingestion in a process of its own and ends it at the budget T: a prediction
made after T does not count, and a model that plans with the wrong speed loses the end of its
curve. This benchmark runs models in the organizers' way (:func:`autodl.model_runs.run_local`:
ingestion in a child process on the wall clock, ended at T, scored here) under three conditions:

* ``idle``: nothing added (whatever else the machine runs is recorded as its load average);
* ``cpu-load``: ``busy`` extra processes spinning on the CPU for the whole run (default: one
  per core), started before the child and ended after it;
* ``slow-io``: every record the child reads sleeps ``slow_io`` seconds first
  (:mod:`pipeline.benchmarks.slow_io`: the child is ``python -m pipeline.benchmarks.slow_io --slow-io S`` instead
  of ``python -m finetune.models``, otherwise the same command).

Per run it records the time of every prediction from the start of the budget, and reports
the worst overrun (the last prediction's time minus T: negative when the last one came before
T), how many predictions came after T, whether the child had to be ended at T (it had not
finished on its own), when it finished on its own, and the time to the first prediction beside
that of the ``idle`` runs of the same model. Rows go to a JSON-lines file (one per run, each with
the session it belongs to); the report covers the session just run.

No figure here is asserted by a test (the machines are shared): the tests check the mechanics
with a protocol of a few seconds.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import Status, append_jsonl, read_jsonl, repo_relative, utc_now, utc_now_text

logger = logging.getLogger(__name__)

CONDITIONS: tuple[str, ...] = ("idle", "cpu-load", "slow-io")
MODELS: tuple[str, ...] = ("submission", "baseline:default", "baseline:linear")
SLOW_IO_DEFAULT = 0.01
"""Seconds slept per record read under ``slow-io`` (100 records/s: a slow network file system)."""

_BUSY = ("import os\n"
         "parent = os.getppid()\n"
         "while os.getppid() == parent:\n"
         "    for _ in range(200000):\n"
         "        pass\n")
"""A busy loop that ends by itself once the process that started it is gone."""


@contextmanager
def busy_processes(n: int) -> Iterator[list[int]]:
    """``n`` processes spinning on the CPU while inside; each is ended (by its own id) on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", _BUSY], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(max(0, n))]
    try:
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for p in procs:
            p.wait()


def child_command(dataset: str | Path, model: str, protocol: Any, pred_dir: str | Path, *, seed: int | None,
                  slow_io: float | None = None, device: str | None = "cpu",
                  portfolio: str | Path | None = None) -> list[str]:
    """The ingestion child's argv (:func:`finetune.config_runs.ingestion_command`), through
    :mod:`pipeline.benchmarks.slow_io` when ``slow_io`` is given."""
    from finetune.config_runs import ingestion_command

    cmd = ingestion_command(dataset, model, protocol, pred_dir, device=device, seed=seed, portfolio=portfolio)
    if slow_io is None:
        return cmd
    assert cmd[1:3] == ["-m", "finetune.models"], cmd
    return [cmd[0], "-m", "pipeline.benchmarks.slow_io", "--slow-io", repr(float(slow_io))] + cmd[3:]


def _end_info(pred_dir: Path) -> dict[str, Any] | None:
    import yaml

    path = pred_dir / "end.txt"
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def run_once(model: str, dataset: str | Path, condition: str, *, protocol: Any, out: str | Path, seed: int = 0,
             busy: int | None = None, slow_io: float = SLOW_IO_DEFAULT, portfolio: str | Path = "portfolio/default",
             device: str | None = "cpu") -> dict[str, Any]:
    """One run of ``model`` on ``dataset`` under ``condition`` (see the module docstring), scored;
    never raises for what the model does (a run that cannot start is a ``failed`` row)."""
    import traceback

    from autodl.errors import AutoDLError
    from autodl.model_runs import run_local
    from finetune.models import check_model
    from portfolio.cost_matrix import learner_version

    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; known: {', '.join(CONDITIONS)}")
    busy = (os.cpu_count() or 1) if busy is None else int(busy)
    out = Path(out)
    pred_dir = out / "predictions"
    T = float(protocol.time_budget)
    row: dict[str, Any] = {"model": model, "dataset": Path(dataset).name, "condition": condition,
                           "protocol": protocol.name, "time_budget": T, "t0": float(protocol.t0), "seed": seed,
                           "busy_processes": busy if condition == "cpu-load" else 0,
                           "slow_io_s": float(slow_io) if condition == "slow-io" else None,
                           "load_before": round(os.getloadavg()[0], 2), "learner_version": learner_version(),
                           "out": repo_relative(out)}
    env: dict[str, str] = {}
    if model == "submission":
        env["AUTODL_META_ARTIFACTS"] = str(Path(portfolio).resolve())
        env["AUTODL_META_DECISION"] = str((out / "decision.json").resolve())
    t = time.perf_counter()
    try:
        check_model(model, dataset=dataset)
        out.mkdir(parents=True, exist_ok=True)
        cmd = child_command(dataset, model, protocol, pred_dir, seed=seed, device=device,
                            slow_io=slow_io if condition == "slow-io" else None)
        with busy_processes(busy if condition == "cpu-load" else 0):
            res = run_local(dataset, cmd, protocol, out, env=env)
        ts = [float(x) for x in res.score.timestamps]
        end = _end_info(pred_dir)
        row.update(status=Status.OK if ts else Status.NO_PREDICTION, alc=float(res.score.score) if ts else None,
                   final_nauc=float(res.score.nauc_scores[-1]) if ts else None, predictions=len(ts),
                   timestamps=ts, first_prediction_s=ts[0] if ts else None,
                   last_prediction_s=ts[-1] if ts else None, overrun_s=(ts[-1] - T) if ts else None,
                   after_budget=sum(1 for x in ts if x > T), killed=bool(res.killed),
                   ended_s=float(end["ingestion_duration"]) if end and "ingestion_duration" in end else None,
                   ingestion_success=res.ingestion_success, error=res.error)
        if condition == "slow-io":
            from pipeline.benchmarks.slow_io import slept_seconds

            row["slept_s"] = round(slept_seconds(res.log_file.read_text(errors="replace")), 3)
        decision = out / "decision.json"
        if decision.is_file():
            import json

            d = json.loads(decision.read_text())
            row.update(chosen=d.get("chosen_dataset"), fallback=d.get("fallback"),
                       selection_seconds=d.get("selection_seconds"))
    except AutoDLError as exc:
        row.update(status=Status.FAILED, alc=None, predictions=0, timestamps=[], error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one run failing is a row, the benchmark goes on
        row.update(status=Status.FAILED, alc=None, predictions=0, timestamps=[],
                   error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    row.update(wall_seconds=round(time.perf_counter() - t, 2), load_after=round(os.getloadavg()[0], 2),
               finished=utc_now())
    return row


def run_budget(results: str | Path, dataset: str | Path, *, models: Sequence[str] = MODELS,
               conditions: Sequence[str] = CONDITIONS, repeats: int = 1, protocol: str = "mini",
               busy: int | None = None, slow_io: float = SLOW_IO_DEFAULT, seed: int = 0,
               portfolio: str | Path = "portfolio/default", work_dir: str | Path = "runs/budget",
               device: str | None = "cpu", command: str | None = None,
               progress: Callable[[dict[str, Any], int, int], None] | None = None) -> tuple[str, list[dict[str, Any]]]:
    """Every (repetition, condition, model) run in that order (conditions interleaved, so that a
    drift of the machine's load touches them alike), each appended to ``results`` as it ends.
    Returns the session id and its rows."""
    from autodl.protocol import load_protocol

    unknown = [c for c in conditions if c not in CONDITIONS]
    if unknown:
        raise ValueError(f"unknown conditions {unknown}; known: {', '.join(CONDITIONS)}")
    proto = load_protocol(protocol)
    session = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
    plan = [(r, c, m) for r in range(repeats) for c in conditions for m in models]
    rows = []
    for i, (rep, cond, model) in enumerate(plan, 1):
        out = Path(work_dir) / session / f"{model.replace(':', '_').replace('/', '_')}-{cond}-{rep}"
        row = run_once(model, dataset, cond, protocol=proto, out=out, seed=seed, busy=busy, slow_io=slow_io,
                       portfolio=portfolio, device=device)
        row.update(session=session, repetition=rep, **({"command": command} if command else {}))
        append_jsonl(results, row)
        rows.append(row)
        if progress is not None:
            progress(row, i, len(plan))
    return session, rows


def session_rows(results: str | Path, session: str | None = None) -> list[dict[str, Any]]:
    """The rows of ``session`` in ``results`` (default: the latest session)."""
    rows = read_jsonl(results)
    if session is None and rows:
        session = rows[-1].get("session")
    return [r for r in rows if r.get("session") == session]


def _f(v: Any, fmt: str = ".2f") -> str:
    return "n/a" if v is None else format(v, fmt)


def budget_summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Per condition: the worst overrun, the predictions after T, the runs ended at T; per model
    and condition: the mean first prediction beside the idle runs'."""
    idle_first: dict[str, float] = {}
    for m in {r["model"] for r in rows}:
        v = [r["first_prediction_s"] for r in rows if r["model"] == m and r["condition"] == "idle"
             and r.get("first_prediction_s") is not None]
        if v:
            idle_first[m] = float(np.mean(v))
    out: dict[str, Any] = {"conditions": {}, "idle_first": idle_first}
    for c in CONDITIONS:
        rs = [r for r in rows if r["condition"] == c]
        if not rs:
            continue
        over = [r["overrun_s"] for r in rs if r.get("overrun_s") is not None]
        worst = max(rs, key=lambda r: r["overrun_s"]) if over else None
        firsts = {}
        for m in sorted({r["model"] for r in rs}):
            v = [r["first_prediction_s"] for r in rs if r["model"] == m and r.get("first_prediction_s") is not None]
            if v:
                firsts[m] = float(np.mean(v))
        out["conditions"][c] = {"runs": len(rs), "worst_overrun_s": max(over) if over else None,
                                "worst_model": worst["model"] if worst else None,
                                "after_budget": sum(int(r.get("after_budget") or 0) for r in rs),
                                "killed": sum(1 for r in rs if r.get("killed")),
                                "failed": sum(1 for r in rs if r.get("status") != Status.OK),
                                "first_prediction_s": firsts}
    return out


def budget_markdown(rows: Sequence[Mapping[str, Any]], *, command: str, machine: str, dataset: str,
                    note: str = "", results: str | Path = "docs/results/budget.jsonl") -> str:
    """The docs/benchmarks.md section of one session."""
    if not rows:
        return ""
    r0 = rows[0]
    s = budget_summary(rows)
    T = r0["time_budget"]
    try:
        # the session's name starts with its UTC start time
        started = _dt.datetime.strptime((r0.get("session") or "")[:15], "%Y%m%dT%H%M%S")
        when = started.strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        when = utc_now_text()
    slow = next((r["slow_io_s"] for r in rows if r.get("slow_io_s") is not None), None)
    busy = next((r["busy_processes"] for r in rows if r.get("busy_processes")), None)
    ran = r0.get("command")
    shown = f"`{ran}` (this section: `{command}`)" if ran and ran != command else f"`{command}`"
    lines = [f"## budget: the time budget under load ({when})", "",
             f"- Command: {shown}", f"- Machine: {machine}",
             f"- Protocol `{r0['protocol']}` (T={T:g} s, t0={r0['t0']:g} s), wall clock, ingestion in a child process "
             f"ended at T (the organizers' local test: `autodl.model_runs.run_local`); dataset `{dataset}`, seed "
             f"{r0['seed']}, device cpu; session `{r0.get('session')}` of `{results}`"]
    present = {r["condition"] for r in rows}
    what = {"idle": "`idle` (nothing added)",
            "cpu-load": f"`cpu-load` ({busy} busy-loop processes for the whole run)",
            "slow-io": f"`slow-io` ({_f(slow, 'g')} s slept per record read, `pipeline/benchmarks/slow_io.py`)"}
    lines.append("- Conditions: " + "; ".join(what[c] for c in CONDITIONS if c in present))
    if note:
        lines.append(f"- {note}")
    lines += ["", "| model | condition | rep | load before | predictions | first prediction s | vs idle | "
              "last prediction s | last - T s | after T | ended | ALC |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        idle = s["idle_first"].get(r["model"])
        fp = r.get("first_prediction_s")
        if r["condition"] == "idle" or idle is None or fp is None:
            vs = ""
        else:
            vs = f"{fp - idle:+.2f} s" + (f" ({fp / idle:.1f}x)" if idle > 0 else "")
        if r.get("status") == Status.FAILED:
            ended = f"failed: {r.get('error')}"
        elif r.get("killed"):
            ended = "ended at T"
        elif r.get("ended_s") is not None:
            ended = f"itself at {r['ended_s']:.1f} s"
        else:
            ended = "?"
        lines.append(f"| {r['model']} | {r['condition']} | {r.get('repetition', 0)} | {_f(r.get('load_before'))} | "
                     f"{r.get('predictions', 0)} | {_f(fp)} | {vs} | {_f(r.get('last_prediction_s'))} | "
                     f"{_f(r.get('overrun_s'), '+.2f')} | {r.get('after_budget', 0)} | {ended} | "
                     f"{_f(r.get('alc'), '.4f')} |")
    lines += ["", "| condition | runs | worst last - T s (model) | predictions after T | ended at T | "
              "mean first prediction s by model |", "|---|---:|---:|---:|---:|---|"]
    for c, v in s["conditions"].items():
        firsts = ", ".join(f"{m} {x:.2f}" for m, x in v["first_prediction_s"].items())
        lines.append(f"| {c} | {v['runs']} | {_f(v['worst_overrun_s'], '+.2f')} ({v['worst_model'] or ''}) | "
                     f"{v['after_budget']} | {v['killed']} | {firsts} |")
    slept = [r["slept_s"] for r in rows if r.get("slept_s") is not None]
    if slept:
        lines += ["", f"Under `slow-io` the children slept {', '.join(f'{x:.2f}' for x in slept)} s in all "
                      f"(reads before the budget started included)."]
    return "\n".join(lines) + "\n"
