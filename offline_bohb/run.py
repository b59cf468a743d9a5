"""A BOHB run over one training dataset: its folder, its trials, and how it resumes.

A run folder holds:

- ``run.json``: what the run searches and how (format ``autodl-meta-bohb-run/1``): the
  dataset, the protocol, the clock and its timing table (path and SHA-256), the
  configuration space (path, SHA-256 and a description of every hyperparameter, condition
  and forbidden combination; ``data``: the dataset's shape the space was built for,
  ``searched``: its hyperparameters, ``dimensions``), the budgets (fractions of the
  protocol's T: ``min_budget``, ``max_budget``, ``eta``), the evaluation seed ``seed``, BOHB's
  seed ``bohb_seed`` and where it came from (``bohb_seed_from``), the configuration
  generator's settings (``bohb``), the warm start (``warm_start``: its source and the encoded
  configurations, by name), the iterations asked for (BOHB's brackets; the warm start is
  iteration 0 before them), the command, the package versions;
- ``trials.jsonl``: one line per finished trial, appended by the master as it finishes:
  ``config_id`` (hpbandster's ``[iteration, stage, index]``), ``config`` (a configuration of
  ``configs/space/finetune.yaml``, complete), ``budget``, ``seed``, ``status`` (``ok``, ``crashed``,
  ``timeout``, or ``lost`` for a job whose worker died: not finished, run again on resume),
  ``alc``, ``final_nauc``, ``curve``, ``wall_seconds``, ``error``, ``traceback``, ``worker``,
  ``started``, ``finished``;
- ``configs.jsonl``: every configuration as it was sampled (config id, ``bracket``: BOHB's
  bracket, None for the warm start; the encoded form BOHB sees; ``info``: hpbandster's
  ``model_based_pick``, why not where it is false, or the warm-start configuration's name),
  so that a resumed run replays the same iterations and :func:`sample_counts` can say how
  many samples the model picked;
- ``nameserver-<run id>.json`` while a nameserver runs; ``logs/`` of local workers.

Running the same command over the same folder resumes: every iteration is replayed with
the configurations it sampled, finished trials are answered from ``trials.jsonl`` (and
fed to BOHB's model) instead of being run again, and the run goes on from where it
stopped. A changed dataset, protocol, clock, timing table, space (or the dataset's shape),
budgets, seeds or warm start is refused with the differences named.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.dataset import dataset_fingerprint
from autodl.records import (
    FINISHED,
    Status,
    append_jsonl,
    dotted_get,
    file_sha256,
    from_repo,
    read_jsonl,
    read_versioned_json,
    repo_relative,
    utc_now,
    versions,
    write_json_atomic,
)
from offline_bohb.hpb import BOHBError, budget_key, nameserver_grace, plain

logger = logging.getLogger(__name__)

RUN_FORMAT = "autodl-meta-bohb-run/1"
"""The format of ``run.json`` (read by :mod:`portfolio.incumbents` too)."""

RUN_PACKAGES = ("autodl-meta", "torch", "timm", "hpbandster", "ConfigSpace", "numpy", "Pyro4", "serpent")
"""The packages whose versions ``run.json`` records."""

# What a resumed run must share with the run it continues.
_COMPARED = ("dataset.name", "dataset.fingerprint", "protocol", "clock", "timing.sha256", "space.sha256", "space.data", "space.searched",
             "min_budget", "max_budget", "eta", "seed", "bohb_seed", "warm_start", "objective", "objective_args")

DEFAULT_BOHB: dict[str, Any] = {"min_points_in_model": 7, "top_n_percent": 15, "num_samples": 64,
                                "random_fraction": 0.2, "bandwidth_factor": 3.0, "min_bandwidth": 1e-3}
"""The configuration generator's settings unless a run names others (``RunSpec.bohb``); see
:mod:`offline_bohb` for why these values."""

WARM_STARTS = ("grid", "grid-core", "none")
"""``RunSpec.warm_start``: the grid's configurations and ``baseline:default``
(:mod:`finetune.grid`) evaluated at the full budget before BOHB's brackets, the grid's core
(:data:`finetune.grid.CORE`, the default build's: 7 configurations), or none."""


def derive_seed(build_seed: int, dataset: str) -> int:
    """The BOHB seed of dataset ``dataset``'s run in a build seeded ``build_seed``.

    The first four bytes of SHA-256 of ``"<build_seed>:<dataset>"``, as an integer below
    2**31: the same on every machine and in every Python process (unlike ``hash``), and
    different for different datasets, so that the runs of one build sample different
    configurations.
    """
    digest = hashlib.sha256(f"{int(build_seed)}:{dataset}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % 2**31

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


def is_space_file(ref: str | Path | None) -> bool:
    """Whether a run's ``space`` entry names a configuration-space YAML file (None: the
    fine-tuning space) rather than a ``module:function`` that returns a space."""
    if ref is None:
        return True
    text = str(ref)
    return Path(text).exists() or ":" not in text or text.endswith((".yaml", ".yml"))


def declared_space(ref: str | Path | None) -> Any:
    """The whole space of a space file, as declared (for completing configurations); a relative
    path not found from here is read from the repository (:func:`autodl.records.from_repo`)."""
    from finetune.config import DEFAULT_SPACE_PATH, load_space

    if ref is None:
        return load_space(DEFAULT_SPACE_PATH)
    path = Path(str(ref))
    return load_space(path if path.exists() else from_repo(path))


def resolve_space(ref: str | Path | None, data: Mapping[str, Any] | None = None) -> Any:
    """The ConfigSpace space a run searches, from its ``space`` entry.

    ``ref`` is a configuration-space YAML file (default: the fine-tuning space; built for
    the dataset's shape ``data``, :func:`finetune.config.space_for`, and without the
    backbones whose weights are absent here, :func:`finetune.config.runnable_space`), or
    ``module:function`` / ``module:function:argument``: a function returning a
    ``ConfigurationSpace`` (e.g. ``selector.space:selector_space:precalc-mlp``), so that other
    objectives (the selectors' hyperparameters) are searched by the same machinery.
    """
    import importlib

    from finetune.config import runnable_space, space_for

    if is_space_file(ref):
        return runnable_space(space_for(data, declared_space(ref)))
    text = str(ref)
    module, _, rest = text.partition(":")
    attr, _, arg = rest.partition(":")
    try:
        function = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise BOHBError(None, f"space {text!r} cannot be imported ({exc}); expected a YAML file or "
                              "'module:function[:argument]'", field="space") from None
    return function(arg) if arg else function()


def run_space(run: Mapping[str, Any]) -> Any:
    """The space run ``run`` (its ``run.json``) searches: its space file built for its dataset."""
    return resolve_space(run["space"]["path"], run["space"].get("data"))


def config_decoder(run: Mapping[str, Any], space: Any | None = None) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """``encoded -> configuration`` of a run: BOHB's encoded configuration decoded
    (:func:`offline_bohb.hpb.decode_config`), with the run's ``fixed`` values
    (``objective_args``) under it and, for a space file, completed over the whole declared
    space (:func:`finetune.config.validate_config`): what the dataset's space leaves out
    (video options for images) and what is inactive (training options of a probes-only
    configuration) take their defaults, which the learner does not read."""
    from finetune.config import validate_config
    from offline_bohb.hpb import decode_config

    space = run_space(run) if space is None else space
    fixed = dict((run.get("objective_args") or {}).get("fixed") or {})
    ref = run["space"]["path"]
    declared = declared_space(ref) if is_space_file(ref) else None

    def decode(encoded: Mapping[str, Any]) -> dict[str, Any]:
        config = {**{k: v for k, v in fixed.items() if k not in space}, **decode_config(space, encoded)}
        if declared is not None:
            config.update(validate_config({k: v for k, v in config.items() if k in declared}, declared))
        return config

    return decode


def warm_start_configs(source: str, space_ref: str | Path | None, data: Mapping[str, Any] | None,
                       fixed: Mapping[str, Any] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """``(name, encoded configuration)`` of the warm start of a run (see :data:`WARM_STARTS`).

    ``grid``: every configuration of :data:`finetune.grid.GRID` (``baseline:default`` among
    them) that the run can evaluate exactly: its active values outside the searched space
    (other than those the dataset's shape makes irrelevant, such as video options on images)
    are the run's own (``fixed``, else the fine-tuning space's defaults, which the learner
    fills in), its values inside are legal there and not forbidden (e.g. pretrained weights
    absent here); duplicates once adapted are dropped. With the whole fine-tuning space that
    is every grid configuration; with a small test space, usually none. A space that is not
    of fine-tuning hyperparameters (a selector's) gets none. ``grid-core``: the same for the
    configurations of :data:`finetune.grid.CORE` only.
    """
    from ConfigSpace.util import deactivate_inactive_hyperparameters

    from finetune.config import active_hyperparameters, load_space, space_for, validate_config
    from finetune.grid import grid_configs, warm_start_names
    from offline_bohb.hpb import encode_config

    if source not in WARM_STARTS:
        raise BOHBError(None, f"warm_start={source!r}; expected one of {', '.join(WARM_STARTS)}", field="warm_start")
    if source == "none" or not is_space_file(space_ref):
        return []
    learner = load_space()  # what the grid's configurations and the learner's defaults are over
    searched = resolve_space(space_ref, data)
    if any(h not in learner for h in searched.keys()):
        return []  # not a space of fine-tuning hyperparameters
    for_data = set(space_for(data, learner).keys())
    fixed = dict(fixed or {})
    own = {**validate_config({k: v for k, v in fixed.items() if k in learner}, learner), **fixed}
    out: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    wanted = set(warm_start_names(source))
    for name, config in grid_configs():
        if name not in wanted:
            continue
        active = set(active_hyperparameters(config, learner))
        outside = [h for h in learner.keys() if h in active and h in for_data and h not in searched]
        if any(config[h] != own[h] for h in outside):
            logger.debug("warm start: %s differs from the run outside the searched space; left out", name)
            continue
        try:
            values = dict(deactivate_inactive_hyperparameters({h: config[h] for h in searched.keys()}, searched))
        except (ValueError, KeyError) as exc:  # not legal or forbidden in this space (e.g. weights absent here)
            logger.info("warm start: %s cannot run in this space (%s); left out", name, exc)
            continue
        encoded = plain(encode_config(searched, values))
        key = json.dumps(encoded, sort_keys=True)
        if key not in seen:
            seen.add(key)
            out.append((name, encoded))
    return out


def describe_space(space: Any) -> list[dict[str, Any]]:
    """Every hyperparameter of a ConfigSpace space (type, choices or bounds, log, default),
    every forbidden clause and every condition, as plain JSON, in a fixed order."""
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
    out += [{"condition": c} for c in sorted(map(str, space.conditions))]
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
    bohb_seed: int | None = None
    bohb_seed_from: dict[str, Any] | None = None
    warm_start: str = "grid"
    """``seed`` seeds the evaluations (the learner's splits, batches, initialisation: the same
    seed as the cost matrix's, so that an evaluation here is also that cell); ``bohb_seed``
    (default: ``seed``) seeds BOHB's sampling, and ``bohb_seed_from`` says where it came from
    (a build derives it per dataset: :func:`derive_seed`). ``warm_start``: see
    :data:`WARM_STARTS`. ``bohb``: the configuration generator's settings over
    :data:`DEFAULT_BOHB`. ``iterations``: BOHB's brackets, the warm start not counted."""

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
        if self.warm_start not in WARM_STARTS:
            raise BOHBError(None, f"warm_start={self.warm_start!r}: expected one of {', '.join(WARM_STARTS)}",
                            field="warm_start")
        unknown = sorted(set(self.bohb) - set(DEFAULT_BOHB))
        if unknown:
            raise BOHBError(None, f"bohb settings {unknown}: expected some of {', '.join(DEFAULT_BOHB)}", field="bohb")

    def record(self) -> dict[str, Any]:
        """The ``run.json`` content (resolving the dataset, protocol, timing table and space)."""
        from autodl.dataset import AutoDLDataset
        from autodl.errors import FormatError
        from autodl.protocol import load_protocol
        from finetune.config import DEFAULT_SPACE_PATH, data_shape
        from finetune.config_runs import DEFAULT_TIMING

        self.check()
        try:
            name, fingerprint = AutoDLDataset(self.dataset).name, dataset_fingerprint(self.dataset)
            if self.objective == DEFAULT_OBJECTIVE:
                AutoDLDataset(self.dataset).check()  # a damaged dataset fails here, not in every trial
        except FormatError:
            if self.objective == DEFAULT_OBJECTIVE or not Path(self.dataset).exists():
                raise
            # another objective's data (e.g. a selector's features folder): any file or folder
            name, fingerprint = Path(self.dataset).name, files_fingerprint(self.dataset)
        protocol = load_protocol(self.protocol)
        space_ref = self.space or str(DEFAULT_SPACE_PATH)
        space = describe_space(resolve_space(space_ref))
        data = None
        if is_space_file(space_ref):
            try:
                data = data_shape(self.dataset).to_dict()
            except FormatError:  # not an AutoDL dataset (another objective's data): the whole space
                data = None
        searched = resolve_space(space_ref, data)
        fixed = (self.objective_args or {}).get("fixed")
        warm = warm_start_configs(self.warm_start, space_ref, data, fixed)
        timing = None
        if self.clock == "simulated":
            timing = Path(self.timing) if self.timing else DEFAULT_TIMING
        return {
            "format": RUN_FORMAT,
            "run_id": self.run_id,
            "dataset": {"name": name, "path": repo_relative(self.dataset), "fingerprint": fingerprint},
            "protocol": protocol.to_dict(),
            "clock": self.clock,
            "timing": {"path": repo_relative(timing) if timing else None,
                       "sha256": file_sha256(timing) if timing else None},
            "space": {"path": repo_relative(space_ref) if Path(space_ref).is_file() else space_ref,
                      "sha256": hashlib.sha256(json.dumps(space).encode()).hexdigest(),
                      "hyperparameters": space, "data": data, "searched": list(searched.keys()),
                      "dimensions": len(list(searched.keys()))},
            "min_budget": float(self.min_budget), "max_budget": float(self.max_budget), "eta": int(self.eta),
            "seed": int(self.seed), "bohb_seed": int(self.seed if self.bohb_seed is None else self.bohb_seed),
            "bohb_seed_from": self.bohb_seed_from, "iterations": int(self.iterations),
            "bohb": {**DEFAULT_BOHB, **self.bohb},
            "warm_start": {"source": self.warm_start, "configs": [{"name": n, "encoded": c} for n, c in warm]},
            "objective": self.objective, "objective_args": dict(self.objective_args),
            "created": utc_now(), "command": self.command, "host": socket.gethostname(),
            "versions": versions(RUN_PACKAGES),
        }


def differences(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """What differs between two ``run.json`` records in what a resumed run must share."""
    out = []
    for key in _COMPARED:
        a, b = dotted_get(old, key), dotted_get(new, key)
        if a != b:
            if key == "space.sha256":
                def key_of(h: Mapping[str, Any]) -> Any:
                    return h.get("name") or h.get("forbidden") or h.get("condition")

                oa = {key_of(h): h for h in old["space"].get("hyperparameters", [])}
                nb = {key_of(h): h for h in new["space"].get("hyperparameters", [])}
                changed = sorted(k for k in set(oa) | set(nb) if oa.get(k) != nb.get(k))
                out.append(f"space ({', '.join(map(str, changed))})")
            elif key == "warm_start":
                def names(w: Any) -> str:
                    w = w or {}
                    return f"{w.get('source', 'none')}: {len(w.get('configs') or [])} configurations"

                out.append(f"warm_start ({names(a)} -> {names(b)}, changed)")
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
        return read_versioned_json(self.run_json, RUN_FORMAT, what="a BOHB run's record", error=BOHBError,
                                   missing="no BOHB run here (run.json missing): start one with "
                                           "`autodl-meta bohb run` or `bohb master`")

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
            old.setdefault("resumed", []).append({"at": utc_now(), "command": spec.command})
            old["run_id"] = new["run_id"] or old.get("run_id", "")
            self._write_run(old)
            return old, True
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_run(new)
        return new, False

    def _write_run(self, data: Mapping[str, Any]) -> None:
        # a full disk, a read-only folder: an OSError naming run.json, the run.json before kept
        write_json_atomic(self.run_json, data, newline=False, indent=1)

    def trials(self) -> list[dict[str, Any]]:
        return read_jsonl(self.trials_path)

    def configs(self) -> list[dict[str, Any]]:
        return read_jsonl(self.configs_path)

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
    """A worker's ``(encoded config, budget, config id) -> info``: one :func:`finetune.config_runs.evaluate`
    of the run's dataset, protocol, clock, timing table and seed, with one PyTorch thread.

    The run's ``objective_args`` may hold ``fixed``: hyperparameter values given to every
    trial (BOHB then searches the rest, e.g. a space file naming a subset of the
    hyperparameters). Never raises: an evaluation that raises is a ``crashed`` info with
    its traceback.
    """
    from autodl.protocol import Protocol
    from finetune.config_runs import evaluate, torch_threads

    decode = config_decoder(run)
    protocol = Protocol(**run["protocol"])
    dataset = str(from_repo(run["dataset"]["path"]))
    timing = None if run["timing"]["path"] is None else str(from_repo(run["timing"]["path"]))

    def evaluate_trial(encoded: dict[str, Any], budget: float, config_id: Any) -> dict[str, Any]:
        started = utc_now()
        t0, cpu0 = time.perf_counter(), time.process_time()
        try:
            config = decode(encoded)
            with torch_threads(1):
                ev = evaluate(config, dataset, protocol, clock=run["clock"], seed=int(run["seed"]), budget=budget,
                              timing=timing)
            info = {"status": ev.status, "alc": ev.alc, "final_nauc": ev.final_nauc,
                    "curve": plain(ev.curve.__dict__), "wall_seconds": ev.wall_seconds, "error": ev.error,
                    "traceback": ev.traceback}
        except Exception as exc:  # a bad configuration or dataset: recorded, the run goes on
            info = {"status": Status.CRASHED, "alc": None, "final_nauc": None, "curve": None,
                    "wall_seconds": time.perf_counter() - t0, "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc()}
        from finetune.learner import LEARNER_VERSION

        # cpu_seconds: what the trial cost this worker process's CPU, which other work on the machine
        # does not inflate (wall_seconds it does)
        info.update(started=started, finished=utc_now(), worker=f"{socket.gethostname()}:{os.getpid()}",
                    learner_version=LEARNER_VERSION, cpu_seconds=time.process_time() - cpu0)
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
    """The ``trials.jsonl`` line of one finished job (its configuration as :func:`config_decoder` makes it)."""
    return {"config_id": list(config_id), "config": dict(config), "budget": float(budget),
            "seed": int(run["seed"]),
            "status": info.get("status"), "alc": info.get("alc"), "final_nauc": info.get("final_nauc"),
            "curve": info.get("curve"), "wall_seconds": info.get("wall_seconds"), "error": info.get("error"),
            "traceback": info.get("traceback"), "worker": info.get("worker"), "started": info.get("started"),
            **({"cpu_seconds": info["cpu_seconds"]} if info.get("cpu_seconds") is not None else {}),
            "finished": info.get("finished") or utc_now(),
            **({"learner_version": info["learner_version"]} if info.get("learner_version") is not None else {})}


def warm_start_offset(run: Mapping[str, Any]) -> int:
    """1 where the run has a warm start (hpbandster's iteration 0; BOHB's bracket ``k`` is
    iteration ``k + 1``), else 0."""
    return 1 if (run.get("warm_start") or {}).get("configs") else 0


def planned_trials(run: Mapping[str, Any], iterations: int | None = None) -> int:
    """The jobs of a run's warm start and of its ``iterations`` brackets (default: the run's)."""
    from offline_bohb.hpb import bracket_sizes

    n = int(run["iterations"] if iterations is None else iterations)
    warm = len((run.get("warm_start") or {}).get("configs") or [])
    return warm + sum(k for b in bracket_sizes(run["min_budget"], run["max_budget"], run["eta"], n) for k, _ in b)


def sample_counts(run_dir: str | Path) -> dict[str, Any]:
    """How many configurations BOHB sampled in a run, and how many of them its model picked.

    Counted from ``configs.jsonl`` (each sample's ``info.model_based_pick``, as hpbandster's
    configuration generator reports it; the warm start's configurations are not samples).
    ``after_first``: the samples of the brackets after BOHB's first; ``share_after_first``:
    the model-based share among those (None without any); ``by_bracket``: samples and
    model-based samples of each bracket (``"0"`` the first).
    """
    folder = RunFolder(run_dir)
    run = folder.read_run()
    offset = warm_start_offset(run)
    rows = [c for c in folder.configs() if not (c.get("info") or {}).get("warm_start")]
    # the first sample of each config id (a resumed run replays, it does not sample again)
    firsts = {}
    for c in rows:
        firsts.setdefault(tuple(c["config_id"]), c)
    samples = list(firsts.values())
    model = [c for c in samples if (c.get("info") or {}).get("model_based_pick")]
    later = [c for c in samples if c["config_id"][0] - offset >= 1]
    later_model = [c for c in later if (c.get("info") or {}).get("model_based_pick")]
    warm = len((run.get("warm_start") or {}).get("configs") or [])
    by_bracket: dict[str, dict[str, int]] = {}
    for c in sorted(samples, key=lambda c: c["config_id"]):
        b = by_bracket.setdefault(str(c["config_id"][0] - offset), {"samples": 0, "model_based": 0})
        b["samples"] += 1
        b["model_based"] += bool((c.get("info") or {}).get("model_based_pick"))
    return {"warm_start": warm, "samples": len(samples), "model_based": len(model), "after_first": len(later),
            "model_based_after_first": len(later_model),
            "share_after_first": round(len(later_model) / len(later), 4) if later else None,
            "by_bracket": by_bracket}


@dataclass
class RunSummary:
    """What a master run did: trials run now, replayed from before, the best ALC by budget, and
    BOHB's samples (:func:`sample_counts`: how many, how many model-based)."""

    run_dir: Path
    new_trials: int = 0
    replayed: int = 0
    crashed: int = 0
    lost: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    best: dict[float, tuple[float, list[int]]] = field(default_factory=dict)
    samples: dict[str, Any] = field(default_factory=dict)

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
    declared = describe_space(resolve_space(run["space"]["path"]))
    space = run_space(run)
    here = {**run, "space": {**run["space"], "sha256": "", "hyperparameters": declared,
                             "searched": list(space.keys()) if "searched" in run["space"] else None}}
    if declared != run["space"]["hyperparameters"] or here["space"]["searched"] != run["space"].get("searched"):
        raise BOHBError(folder.run_json, "the configuration space on this machine differs from the run's: "
                                         + "; ".join(differences(run, here)), field="space")
    decode = config_decoder(run, space)
    offset = warm_start_offset(run)
    warm = [(c["name"], c["encoded"]) for c in (run.get("warm_start") or {}).get("configs") or []]
    replay, sampled = folder.replay()
    summary = RunSummary(Path(run_dir))
    start = time.perf_counter()
    lock = threading.Lock()

    unwritten: list[OSError] = []  # a trial that could not be recorded (a full disk): the master stops

    def on_sample(cid: tuple[int, int, int], encoded: dict[str, Any], info: dict[str, Any]) -> None:
        folder.append_config({"config_id": list(cid), "bracket": None if info.get("warm_start") else cid[0] - offset,
                              "encoded": encoded, "config": decode(encoded), "info": info, "sampled": utc_now()})

    def on_trial(cid: tuple[int, int, int], encoded: dict[str, Any], budget: float, info: dict[str, Any],
                 replayed: bool) -> None:
        with lock:
            row = dict(info) if replayed else trial_row(run, cid, decode(encoded), budget, info)
            if replayed:
                summary.replayed += 1
            else:
                try:
                    folder.append_trial(row)
                except OSError as exc:  # raising here would leave hpbandster waiting for this job forever
                    unwritten.append(exc)
                    return
                summary.new_trials += 1
                summary.cpu_seconds += float(row.get("cpu_seconds") or 0.0)
            status = row.get("status")
            summary.crashed += status in (Status.CRASHED, Status.TIMEOUT)
            summary.lost += status == Status.LOST
            if status == Status.OK and row.get("alc") is not None:
                b = budget_key(budget)
                if b not in summary.best or row["alc"] > summary.best[b][0]:
                    summary.best[b] = (float(row["alc"]), list(cid))
            summary.wall_seconds = time.perf_counter() - start
            if progress is not None:
                progress(summary, row)

    bohb_seed = int(run.get("bohb_seed", run["seed"]))
    master = make_master(encode_space(space, seed=bohb_seed), run_id=run["run_id"], nameserver=nameserver,
                         min_budget=run["min_budget"], max_budget=run["max_budget"], eta=run["eta"],
                         seed=bohb_seed, working_directory=Path(run_dir) / "work", replay=replay,
                         sampled=sampled, on_trial=on_trial, on_sample=on_sample, interface=interface,
                         ping_interval=ping_interval, bohb_kwargs={**DEFAULT_BOHB, **(run.get("bohb") or {})},
                         warm_start=warm)
    if replay:
        logger.info("resuming %s: %d finished trials to replay", run_dir, len(replay))
    done = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            master.run(n_iterations=int(run["iterations"]) + offset, min_n_workers=min_workers)
        except BaseException as exc:  # reported in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=target, name="bohb master", daemon=True)
    thread.start()
    why = "the run was stopped before its iterations were done; run the same command again to resume it"
    grace = nameserver_grace()
    try:
        while not done.wait(0.5):
            if stop is not None and stop():
                logger.warning("stopping the master of %s: %d trials kept", run_dir, summary.new_trials)
                break
            if unwritten:
                break
            since = getattr(master.dispatcher, "nameserver_unreachable_since", None)
            if since is not None and time.monotonic() - since >= grace:
                why = (f"the nameserver at {nameserver[0]}:{nameserver[1]} has not answered for "
                       f"{grace:.0f} s: the master stopped ({summary.new_trials} new trials kept in "
                       f"{folder.trials_path}); start the nameserver again, then the same master and workers, "
                       "to resume the run")
                logger.warning("%s", why)
                break
    finally:
        master.shutdown(shutdown_workers=True)
        summary.wall_seconds = time.perf_counter() - start
    for exc in [*unwritten, *failure]:
        if isinstance(exc, OSError) and exc.filename:
            raise BOHBError(exc.filename, f"cannot be written ({exc.strerror}): the master stopped; the "
                                          f"{summary.new_trials} trials finished before are kept; free space or make "
                                          "the folder writable, then run the same command again to resume "
                                          "the run") from exc
    if failure:
        raise failure[0]
    if not done.is_set():
        raise BOHBError(folder.run_json, why, field="iterations")
    summary.samples = sample_counts(run_dir)
    logger.info("%s: %d samples, %d model-based; after the first bracket %d of %d", run_dir,
                summary.samples["samples"], summary.samples["model_based"],
                summary.samples["model_based_after_first"], summary.samples["after_first"])
    return summary


def default_run_id() -> str:
    return f"{socket.gethostname().split('.')[0]}-{os.getpid()}-{int(time.time())}"
