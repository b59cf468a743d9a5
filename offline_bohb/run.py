"""A BOHB run over one training dataset: its folder, its trials, and how it resumes.

A run folder holds:

- ``run.json``: what the run searches and how (format ``autodl-meta-bohb-run/1``): the
  dataset, the protocol, the clock and its timing table (path and SHA-256), the
  configuration space (path, SHA-256 and a description of every hyperparameter), the
  budgets (fractions of the protocol's T: ``min_budget``, ``max_budget``, ``eta``), the
  evaluation seed, the iterations asked for, the command, the package versions;
- ``trials.jsonl``: one line per finished trial, appended by the master as it finishes:
  ``config_id`` (hpbandster's ``[iteration, stage, index]``), ``config`` (a configuration of
  ``configs/space/finetune.yaml``), ``budget``, ``seed``, ``status`` (``ok``, ``crashed``,
  ``timeout``, or ``lost`` for a job whose worker died: not finished, run again on resume),
  ``alc``, ``final_nauc``, ``curve``, ``wall_seconds``, ``error``, ``traceback``, ``worker``,
  ``started``, ``finished``;
- ``configs.jsonl``: every configuration as it was sampled (config id, the encoded form BOHB
  sees, whether the model picked it), so that a resumed run replays the same iterations;
- ``nameserver-<run id>.json`` while a nameserver runs; ``logs/`` of local workers.

Running the same command over the same folder resumes: every iteration is replayed with
the configurations it sampled, finished trials are answered from ``trials.jsonl`` (and
fed to BOHB's model) instead of being run again, and the run goes on from where it
stopped. A changed dataset, protocol, clock, timing table, space, budgets or seed is
refused with the differences named.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import platform
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.dataset import dataset_fingerprint
from autodl.records import append_jsonl, file_sha256, read_jsonl
from offline_bohb.hpb import BOHBError, budget_key, plain

logger = logging.getLogger(__name__)

RUN_FORMAT = "autodl-meta-bohb-run/1"
FINISHED = ("ok", "crashed", "timeout")
"""Statuses of a finished trial (replayed on resume); ``lost`` trials run again."""

# What a resumed run must share with the run it continues.
_COMPARED = ("dataset.name", "dataset.fingerprint", "protocol", "clock", "timing.sha256", "space.sha256", "min_budget", "max_budget",
             "eta", "seed", "objective", "objective_args")

DEFAULT_OBJECTIVE = "offline_bohb.run:trial_evaluator"
"""What a trial computes: ``module:function``, a factory ``run record -> evaluate_trial``
(see :func:`trial_evaluator`, the fine-tuning evaluation; :mod:`offline_bohb.synthetic`
for testing and benchmarking the machinery; issue 8's selectors plug theirs in here)."""


def files_fingerprint(path: str | Path) -> str:
    """SHA-256 over the relative path and size of every file under ``path`` (or of the file):
    the fingerprint of an objective's data that is not an AutoDL dataset."""
    root = Path(path)
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for f in files:
        rel = f.name if f == root else f.relative_to(root).as_posix()
        h.update(f"{rel}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()


def resolve_space(ref: str | Path | None) -> Any:
    """The ConfigSpace space a run searches, from its ``space`` entry.

    ``ref`` is a configuration-space YAML file (default: the fine-tuning space; without the
    backbones whose weights are absent here, :func:`finetune.config.runnable_space`), or
    ``module:function`` / ``module:function:argument``: a function returning a
    ``ConfigurationSpace`` (e.g. ``selector.space:selector_space:precalc-mlp``), so that other
    objectives (the selectors' hyperparameters) are searched by the same machinery.
    """
    import importlib

    from finetune.config import DEFAULT_SPACE_PATH, load_space, runnable_space

    if ref is None:
        return runnable_space(load_space(DEFAULT_SPACE_PATH))
    text = str(ref)
    if not Path(text).exists() and ":" in text and not text.endswith((".yaml", ".yml")):
        module, _, rest = text.partition(":")
        attr, _, arg = rest.partition(":")
        try:
            function = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError, ValueError) as exc:
            raise BOHBError(None, f"space {text!r} cannot be imported ({exc}); expected a YAML file or "
                                  "'module:function[:argument]'", field="space") from None
        return function(arg) if arg else function()
    return runnable_space(load_space(Path(text)))


def describe_space(space: Any) -> list[dict[str, Any]]:
    """Every hyperparameter of a ConfigSpace space (type, choices or bounds, log, default)
    and every forbidden clause, as plain JSON, in a fixed order."""
    import ConfigSpace as CS

    out: list[dict[str, Any]] = []
    for hp in sorted(space.values(), key=lambda h: h.name):
        d: dict[str, Any] = {"name": hp.name, "type": type(hp).__name__}
        if isinstance(hp, CS.OrdinalHyperparameter):
            d["choices"] = plain(list(hp.sequence))
        elif isinstance(hp, CS.CategoricalHyperparameter):
            d["choices"] = plain(list(hp.choices))
        else:
            d.update(bounds=plain([hp.lower, hp.upper]), log=bool(hp.log))
        d["default"] = plain(hp.default_value)
        out.append(d)
    out += [{"forbidden": str(f)} for f in sorted(map(str, space.forbidden_clauses))]
    return out


@dataclass
class RunSpec:
    """What a BOHB run searches and how (``run.json``)."""

    dataset: str
    protocol: str = "mini"
    clock: str = "simulated"
    timing: str | None = None
    space: str | None = None
    min_budget: float = 1 / 9
    max_budget: float = 1.0
    eta: int = 3
    seed: int = 0
    iterations: int = 4
    run_id: str = ""
    command: str = ""
    bohb: dict[str, Any] = field(default_factory=dict)
    objective: str = DEFAULT_OBJECTIVE
    objective_args: dict[str, Any] = field(default_factory=dict)

    def check(self) -> None:
        """Refuse impossible budgets (named)."""
        if not 0 < self.min_budget < self.max_budget <= 1:
            raise BOHBError(None, f"budgets are fractions of the protocol's T: expected 0 < min_budget "
                                  f"({self.min_budget:g}) < max_budget ({self.max_budget:g}) <= 1",
                            field="min_budget")
        if int(self.eta) < 2:
            raise BOHBError(None, f"eta={self.eta}: expected an integer >= 2", field="eta")
        if self.iterations < 1:
            raise BOHBError(None, f"iterations={self.iterations}: expected >= 1", field="iterations")

    def record(self) -> dict[str, Any]:
        """The ``run.json`` content (resolving the dataset, protocol, timing table and space)."""
        from autodl.dataset import AutoDLDataset
        from autodl.errors import FormatError
        from autodl.protocol import load_protocol
        from finetune.config import DEFAULT_SPACE_PATH
        from finetune.evaluate import DEFAULT_TIMING

        self.check()
        try:
            name, fingerprint = AutoDLDataset(self.dataset).name, dataset_fingerprint(self.dataset)
        except FormatError:
            if self.objective == DEFAULT_OBJECTIVE or not Path(self.dataset).exists():
                raise
            # another objective's data (e.g. a selector's features folder): any file or folder
            name, fingerprint = Path(self.dataset).name, files_fingerprint(self.dataset)
        protocol = load_protocol(self.protocol)
        space_ref = self.space or str(DEFAULT_SPACE_PATH)
        space = describe_space(resolve_space(space_ref))
        timing = None
        if self.clock == "simulated":
            timing = Path(self.timing) if self.timing else DEFAULT_TIMING
        return {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "dataset": {"name": name, "path": str(Path(self.dataset).resolve()), "fingerprint": fingerprint},
            "protocol": protocol.to_dict(),
            "clock": self.clock,
            "timing": {"path": str(timing) if timing else None,
                       "sha256": file_sha256(timing) if timing else None},
            "space": {"path": space_ref, "sha256": hashlib.sha256(json.dumps(space).encode()).hexdigest(),
                      "hyperparameters": space},
            "min_budget": float(self.min_budget), "max_budget": float(self.max_budget), "eta": int(self.eta),
            "seed": int(self.seed), "iterations": int(self.iterations), "bohb": dict(self.bohb),
            "objective": self.objective, "objective_args": dict(self.objective_args),
            "created": now(), "command": self.command, "host": socket.gethostname(), "versions": versions(),
        }


def dotted_get(d: Mapping[str, Any], dotted: str) -> Any:
    """``d['a']['b']`` for ``'a.b'`` (None where a part is missing)."""
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, Mapping) else None
    return d


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two ``run.json`` records in what a resumed run must share."""
    out = []
    for key in _COMPARED:
        a, b = dotted_get(old, key), dotted_get(new, key)
        if a != b:
            if key == "space.sha256":
                oa = {h.get("name", h.get("forbidden")): h for h in old["space"].get("hyperparameters", [])}
                nb = {h.get("name", h.get("forbidden")): h for h in new["space"].get("hyperparameters", [])}
                changed = sorted(k for k in set(oa) | set(nb) if oa.get(k) != nb.get(k))
                out.append(f"space ({', '.join(map(str, changed))})")
            else:
                out.append(f"{key} ({a!r} -> {b!r})")
    return out


class RunFolder:
    """The files of one run (see the module docstring)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def trials_path(self) -> Path:
        return self.path / "trials.jsonl"

    @property
    def configs_path(self) -> Path:
        return self.path / "configs.jsonl"

    def read_run(self) -> dict[str, Any]:
        if not self.run_json.is_file():
            raise BOHBError(self.run_json, "no BOHB run here (run.json missing): start one with "
                                           "`autodl-meta bohb run` or `bohb master`", field="run.json")
        try:
            data = json.loads(self.run_json.read_text())
        except json.JSONDecodeError as exc:
            raise BOHBError(self.run_json, f"not valid JSON ({exc})") from None
        if data.get("format") != RUN_FORMAT:
            raise BOHBError(self.run_json, f"expected format {RUN_FORMAT!r}, found {data.get('format')!r}",
                            field="format")
        return data

    def start(self, spec: RunSpec) -> tuple[dict[str, Any], bool]:
        """Write ``run.json`` for a new run, or check that ``spec`` continues the run here.

        Returns
        -------
        (dict, bool)
            The run record and whether it resumes an existing run.

        Raises
        ------
        BOHBError
            The folder holds a run that ``spec`` differs from (the differences named).
        """
        new = spec.record()
        if self.run_json.is_file():
            old = self.read_run()
            diff = differences(old, new)
            if diff:
                raise BOHBError(self.run_json, "this folder holds a run with a different " + "; ".join(diff)
                                + ": resume it with the same settings, or use another --out", field="run.json")
            old["iterations"] = max(int(old.get("iterations", 0)), int(new["iterations"]))
            # the same files may live elsewhere on this machine (another checkout, another node)
            old["dataset"]["path"] = new["dataset"]["path"]
            old["timing"]["path"] = new["timing"]["path"]
            old["space"]["path"] = new["space"]["path"]
            old.setdefault("resumed", []).append({"at": now(), "command": spec.command})
            old["run_id"] = new["run_id"] or old.get("run_id", "")
            self._write_run(old)
            return old, True
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_run(new)
        return new, False

    def _write_run(self, data: Mapping[str, Any]) -> None:
        tmp = self.run_json.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.run_json)

    def trials(self) -> list[dict[str, Any]]:
        return read_jsonl(self.trials_path)

    def replay(self) -> tuple[dict[tuple[tuple[int, int, int], float], dict[str, Any]],
                              dict[tuple[int, int, int], dict[str, Any]]]:
        """The finished trials by (config id, budget) and the sampled configurations by config id."""
        finished = {}
        for t in self.trials():
            if t.get("status") in FINISHED:
                finished[(tuple(t["config_id"]), budget_key(t["budget"]))] = t
        sampled = {tuple(c["config_id"]): c["encoded"] for c in read_jsonl(self.configs_path)}
        return finished, sampled

    def append_trial(self, row: Mapping[str, Any]) -> None:
        append_jsonl(self.trials_path, row)

    def append_config(self, row: Mapping[str, Any]) -> None:
        append_jsonl(self.configs_path, row)


def trial_evaluator(run: Mapping[str, Any]) -> Callable[[dict[str, Any], float, Any], dict[str, Any]]:
    """A worker's ``(encoded config, budget, config id) -> info``: one :func:`finetune.evaluate.evaluate`
    of the run's dataset, protocol, clock, timing table and seed, with one PyTorch thread.

    The run's ``objective_args`` may hold ``fixed``: hyperparameter values given to every
    trial (BOHB then searches the rest, e.g. a space file naming a subset of the
    hyperparameters). Never raises: an evaluation that raises is a ``crashed`` info with
    its traceback.
    """
    from autodl.protocol import Protocol
    from finetune.evaluate import evaluate, torch_threads
    from offline_bohb.hpb import decode_config

    space = resolve_space(run["space"]["path"])
    protocol = Protocol(**run["protocol"])
    dataset = run["dataset"]["path"]
    timing = run["timing"]["path"]
    fixed = dict((run.get("objective_args") or {}).get("fixed") or {})

    def evaluate_trial(encoded: dict[str, Any], budget: float, config_id: Any) -> dict[str, Any]:
        started = now()
        t0 = time.perf_counter()
        try:
            config = {**fixed, **decode_config(space, encoded)}
            with torch_threads(1):
                ev = evaluate(config, dataset, protocol, clock=run["clock"], seed=int(run["seed"]), budget=budget,
                              timing=timing)
            info = {"status": ev.status, "alc": ev.alc, "final_nauc": ev.final_nauc,
                    "curve": plain(ev.curve.__dict__), "wall_seconds": ev.wall_seconds, "error": ev.error,
                    "traceback": ev.traceback}
        except Exception as exc:  # a bad configuration or dataset: recorded, the run goes on
            info = {"status": "crashed", "alc": None, "final_nauc": None, "curve": None,
                    "wall_seconds": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()}
        info.update(started=started, finished=now(), worker=f"{socket.gethostname()}:{os.getpid()}")
        logger.info("trial %s at budget %.3g: %s, ALC %s", config_id, budget, info["status"], info["alc"])
        return info

    return evaluate_trial


def load_objective(run: Mapping[str, Any]) -> Callable[[dict[str, Any], float, Any], dict[str, Any]]:
    """The run's ``evaluate_trial`` (its ``objective`` factory applied to the run record)."""
    import importlib

    name = run.get("objective") or DEFAULT_OBJECTIVE
    module, _, attr = name.partition(":")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise BOHBError(None, f"objective {name!r} cannot be imported ({exc}); expected 'module:function'",
                        field="objective") from None
    return factory(run)


def trial_row(run: Mapping[str, Any], config_id: tuple[int, int, int], config: dict[str, Any], budget: float,
              info: Mapping[str, Any]) -> dict[str, Any]:
    """The ``trials.jsonl`` line of one finished job (its configuration with the run's ``fixed`` values)."""
    fixed = dict((run.get("objective_args") or {}).get("fixed") or {})
    return {"config_id": list(config_id), "config": {**fixed, **config}, "budget": float(budget),
            "seed": int(run["seed"]),
            "status": info.get("status"), "alc": info.get("alc"), "final_nauc": info.get("final_nauc"),
            "curve": info.get("curve"), "wall_seconds": info.get("wall_seconds"), "error": info.get("error"),
            "traceback": info.get("traceback"), "worker": info.get("worker"), "started": info.get("started"),
            "finished": info.get("finished") or now()}


@dataclass
class RunSummary:
    """What a master run did: trials run now, replayed from before, the best ALC by budget."""

    run_dir: Path
    new_trials: int = 0
    replayed: int = 0
    crashed: int = 0
    lost: int = 0
    wall_seconds: float = 0.0
    best: dict[float, tuple[float, list[int]]] = field(default_factory=dict)

    def incumbent(self) -> tuple[float, float, list[int]] | None:
        """``(budget, ALC, config id)`` of the best trial at the largest budget with an ALC."""
        if not self.best:
            return None
        b = max(self.best)
        return b, self.best[b][0], self.best[b][1]


def run_master(run_dir: str | Path, nameserver: tuple[str, int], *, min_workers: int = 1,
               interface: str | None = None, ping_interval: float = 10.0,
               progress: Callable[[RunSummary, Mapping[str, Any]], None] | None = None,
               stop: Callable[[], bool] | None = None) -> RunSummary:
    """Run (or resume) the BOHB master of the run in ``run_dir`` until its iterations are done.

    ``run.json`` must exist (:meth:`RunFolder.start`). Finished trials are replayed;
    every trial that finishes now is appended to ``trials.jsonl`` before BOHB sees it.
    ``progress`` is called with the summary and the trial row after each trial.
    ``stop`` is polled while waiting; when it returns true, the master shuts down (the
    trials so far are kept).
    """
    import threading

    from offline_bohb.hpb import encode_space, make_master

    folder = RunFolder(run_dir)
    run = folder.read_run()
    space = resolve_space(run["space"]["path"])
    here = {**run, "space": {"sha256": "", "hyperparameters": describe_space(space)}}
    if here["space"]["hyperparameters"] != run["space"]["hyperparameters"]:
        raise BOHBError(folder.run_json, "the configuration space on this machine differs from the run's: "
                                         + "; ".join(differences(run, here)), field="space")
    replay, sampled = folder.replay()
    summary = RunSummary(Path(run_dir))
    start = time.perf_counter()
    lock = threading.Lock()

    def on_sample(cid: tuple[int, int, int], encoded: dict[str, Any], info: dict[str, Any]) -> None:
        from offline_bohb.hpb import decode_config

        folder.append_config({"config_id": list(cid), "encoded": encoded, "config": decode_config(space, encoded),
                              "info": info, "sampled": now()})

    def on_trial(cid: tuple[int, int, int], encoded: dict[str, Any], budget: float, info: dict[str, Any],
                 replayed: bool) -> None:
        from offline_bohb.hpb import decode_config

        with lock:
            row = dict(info) if replayed else trial_row(run, cid, decode_config(space, encoded), budget, info)
            if replayed:
                summary.replayed += 1
            else:
                folder.append_trial(row)
                summary.new_trials += 1
            status = row.get("status")
            summary.crashed += status in ("crashed", "timeout")
            summary.lost += status == "lost"
            if status == "ok" and row.get("alc") is not None:
                b = budget_key(budget)
                if b not in summary.best or row["alc"] > summary.best[b][0]:
                    summary.best[b] = (float(row["alc"]), list(cid))
            summary.wall_seconds = time.perf_counter() - start
            if progress is not None:
                progress(summary, row)

    master = make_master(encode_space(space, seed=int(run["seed"])), run_id=run["run_id"], nameserver=nameserver,
                         min_budget=run["min_budget"], max_budget=run["max_budget"], eta=run["eta"],
                         seed=int(run["seed"]), working_directory=Path(run_dir) / "work", replay=replay,
                         sampled=sampled, on_trial=on_trial, on_sample=on_sample, interface=interface,
                         ping_interval=ping_interval, bohb_kwargs=run.get("bohb"))
    if replay:
        logger.info("resuming %s: %d finished trials to replay", run_dir, len(replay))
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            master.run(n_iterations=int(run["iterations"]), min_n_workers=min_workers)
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=target, name="bohb master", daemon=True)
    thread.start()
    try:
        while not done.wait(0.5):
            if stop is not None and stop():
                logger.warning("stopping the master of %s: %d trials kept", run_dir, summary.new_trials)
                break
    finally:
        master.shutdown(shutdown_workers=True)
        summary.wall_seconds = time.perf_counter() - start
    if failure:
        raise failure[0]
    if not done.is_set():
        raise BOHBError(folder.run_json, "the run was stopped before its iterations were done; run the same "
                                         "command again to resume it", field="iterations")
    return summary


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("autodl-meta", "torch", "timm", "hpbandster", "ConfigSpace", "numpy", "Pyro4", "serpent"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def default_run_id() -> str:
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{int(time.time())}"
