"""A synthetic objective: the BOHB machinery tested and benchmarked without training anything.

``objective = "offline_bohb.synthetic:synthetic_evaluator"`` in a run makes every trial a
deterministic function of the configuration and the budget (a smooth bowl over the
numeric hyperparameters, a fixed bonus per categorical choice, better with more budget;
the configuration as a real trial gets it: decoded, with the run's ``fixed`` values, and
for a space file completed over the whole space),
after sleeping ``seconds * budget`` wall seconds (what the machinery's overhead is measured
against). ``objective_args``:

- ``seconds``: wall seconds a full-budget trial sleeps (default 0);
- ``crash_if``: ``{hyperparameter: value}``: a trial of a configuration with all of these
  values raises (recorded as ``crashed`` with its traceback).
- ``started_dir``: a folder where every trial writes ``<i>-<j>-<k>@<budget>.started`` (its
  config id and budget; the worker's process id inside) as it starts, before it sleeps: what
  the fault tests wait for to kill a worker in the middle of a trial.
"""

from __future__ import annotations

import hashlib
import math
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autodl.records import Status, atomic_write_text, utc_now


class SyntheticCrash(RuntimeError):
    """Raised by a trial that ``crash_if`` names."""


def synthetic_alc(config: Mapping[str, Any], budget: float) -> float:
    """The synthetic ALC of ``config`` at ``budget`` (in [0, 1], deterministic)."""
    score = 0.0
    for name in sorted(config):
        value = config[name]
        if isinstance(value, bool) or isinstance(value, str):
            digest = hashlib.sha256(f"{name}={value}".encode()).digest()
            score += digest[0] / 255.0 * 0.1
        elif isinstance(value, (int, float)):
            x = math.log10(value) if value > 0 else float(value)
            score += 0.1 * math.exp(-((x - round(x)) ** 2))
    base = 5.0 * score / max(len(config), 1)
    return max(0.0, min(1.0, base * (0.5 + 0.5 * budget)))


def synthetic_evaluator(run: Mapping[str, Any]) -> Callable[[dict[str, Any], float, Any], dict[str, Any]]:
    """The synthetic objective's ``evaluate_trial`` for a run record (see the module docstring)."""
    from offline_bohb.run import config_decoder

    args = dict(run.get("objective_args") or {})
    seconds = float(args.get("seconds", 0.0))
    crash_if = dict(args.get("crash_if") or {})
    decode = config_decoder(run)
    started_dir = args.get("started_dir")

    def evaluate_trial(encoded: dict[str, Any], budget: float, config_id: Any) -> dict[str, Any]:
        started, t0 = utc_now(), time.perf_counter()
        config = decode(encoded)
        if started_dir:
            mark = Path(started_dir) / f"{'-'.join(map(str, config_id))}@{budget:.6f}.started"
            atomic_write_text(mark, str(os.getpid()))
        time.sleep(seconds * budget)
        info: dict[str, Any] = {"status": Status.OK, "error": None, "traceback": None, "final_nauc": None,
                                "curve": None}
        try:
            if crash_if and all(config.get(k) == v for k, v in crash_if.items()):
                raise SyntheticCrash(f"crash_if {crash_if} matches this configuration")
            info["alc"] = synthetic_alc(config, budget)
            info["final_nauc"] = info["alc"]
        except SyntheticCrash as exc:
            info.update(status=Status.CRASHED, alc=None, error=f"{type(exc).__name__}: {exc}",
                        traceback=traceback.format_exc())
        info.update(wall_seconds=time.perf_counter() - t0, started=started, finished=utc_now(),
                    worker=f"{socket.gethostname()}:{os.getpid()}")
        return info

    return evaluate_trial
