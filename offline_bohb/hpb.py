"""The one module that knows hpbandster and Pyro4 (hpbandster 0.7.4, unmaintained).

Everything BOHB-specific that the rest of the project needs goes through here:
:func:`encode_space` (the configuration space as hpbandster's BOHB accepts it),
:class:`TrialWorker` (a worker whose ``compute`` is :func:`finetune.evaluate.evaluate`),
:class:`ResumableBOHB` (the master, which replays finished trials instead of running them
again), :func:`start_nameserver` / :func:`read_credentials` (a JSON credentials file in the
shared folder, never hpbandster's pickle).

hpbandster's known quirks, each handled here and tested in ``tests/test_offline_bohb``:

1. With numpy >= 2, serpent (Pyro4's serializer) writes a ``numpy.float64`` budget as the
   text ``np.float64(0.33)``, which the worker cannot read back: the job is lost and the run
   hangs without an error. With ConfigSpace 1.x, sampled configurations hold
   ``numpy.str_``/``numpy.int64`` values that serpent refuses outright. Fix:
   :func:`install_serializers` registers a serpent class serializer that writes every numpy
   scalar as the Python value (``.item()``); it runs on import of this module, so in the
   master, the nameserver and every worker. Budgets are also made plain floats.
2. hpbandster's BOHB rejects ordinal hyperparameters: :func:`encode_space` turns each into
   an integer index over its ordered choices (the kernel density estimate keeps the order)
   and :func:`decode_config` maps it back.
3. Workers on a cluster announce ``127.0.0.1`` unless they are given an address: every
   daemon here (nameserver, dispatcher, worker) binds to loopback unless a network interface
   is named (``interface=``), and then to that interface's IPv4 address.
4. A master that dies loses its running jobs, and hpbandster cannot resume: the trials are
   written as they finish (by the caller's ``on_trial``), and :class:`ResumableBOHB` replays
   a finished run: each iteration gets the configurations it sampled before (by config id)
   and the jobs that finished are answered from the record instead of being run; jobs
   that were running when the master died run again.
5. Warm-starting from results holding crashed trials fails (their loss is ``None``, which
   ``np.isfinite`` refuses): crashed trials are handed to BOHB with a loss of ``+inf``,
   as hpbandster itself does for a job that raised.
6. A worker that dies mid-job: the dispatcher notices it at the next ping
   (``ping_interval``) and reports the job with the exception "Worker died
   unexpectedly."; the trial is recorded as ``lost`` (not finished: a resumed run runs it
   again) and the run goes on with the other workers.
7. A worker that dies while idle: hpbandster's dispatcher hands it the next job anyway;
   the call fails with a Pyro4 ``CommunicationError`` that ends the dispatcher's job
   thread, and the run hangs with no error (checked here: one of two workers killed
   between jobs). :func:`_patch_dispatcher` replaces that thread's loop with one that drops
   the unreachable worker and gives the job to the next idle one.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import to_plain as plain  # numpy values -> Python values, recursively

logger = logging.getLogger(__name__)

CREDENTIALS_FORMAT = "autodl-meta-bohb-nameserver/1"
LOOPBACK = "127.0.0.1"
WORKER_DIED = "Worker died unexpectedly."


class BOHBError(AutoDLError):
    """A BOHB run cannot start or go on (named file/field and what was expected)."""


# --- 1. serpent and numpy --------------------------------------------------------------------
def _serialize_numpy_scalar(obj: Any, serializer: Any, outputstream: Any, indentlevel: int) -> None:
    serializer._serialize(obj.item(), outputstream, indentlevel)


def _serialize_numpy_array(obj: Any, serializer: Any, outputstream: Any, indentlevel: int) -> None:
    serializer._serialize(obj.tolist(), outputstream, indentlevel)


def install_serializers() -> None:
    """Make serpent write numpy scalars and arrays as plain Python values (idempotent)."""
    import serpent

    serpent.register_class(np.generic, _serialize_numpy_scalar)
    serpent.register_class(np.ndarray, _serialize_numpy_array)


install_serializers()


# --- 2. ordinal hyperparameters ----------------------------------------------------------------
def encode_space(space: Any, seed: int | None = None) -> Any:
    """The configuration space as hpbandster's BOHB accepts it.

    Ordinal hyperparameters become integer indices ``0..n-1`` over their ordered choices
    (default: the index of the default); every other hyperparameter and forbidden clause is
    kept as it is.

    Parameters
    ----------
    space:
        A ``ConfigSpace.ConfigurationSpace`` (e.g. :func:`finetune.config.runnable_space`).
    seed:
        Seed of the returned space's sampler.
    """
    import ConfigSpace as CS
    from ConfigSpace import ForbiddenAndConjunction, ForbiddenEqualsClause, ForbiddenInClause

    out = CS.ConfigurationSpace(name=space.name, seed=seed)
    ordinals = {}
    for hp in space.values():
        if isinstance(hp, CS.OrdinalHyperparameter):
            seq = list(hp.sequence)
            ordinals[hp.name] = seq
            out.add(CS.UniformIntegerHyperparameter(hp.name, 0, len(seq) - 1,
                                                   default_value=seq.index(hp.default_value)))
        else:
            out.add(hp)

    def clause(c: Any) -> Any:
        if isinstance(c, ForbiddenAndConjunction):
            return ForbiddenAndConjunction(*(clause(x) for x in c.components))
        name = c.hyperparameter.name
        hp = out[name]
        if name in ordinals:
            seq = ordinals[name]
            if isinstance(c, ForbiddenEqualsClause):
                return ForbiddenEqualsClause(hp, seq.index(c.value))
            return ForbiddenInClause(hp, [seq.index(v) for v in c.values])
        if isinstance(c, ForbiddenEqualsClause):
            return ForbiddenEqualsClause(hp, c.value)
        return ForbiddenInClause(hp, list(c.values))

    for f in space.forbidden_clauses:
        out.add(clause(f))
    return out


def decode_config(space: Any, encoded: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration of ``space`` (plain Python values) from its :func:`encode_space` form."""
    import ConfigSpace as CS

    out = {}
    for name, value in plain(encoded).items():
        hp = space[name]
        if isinstance(hp, CS.OrdinalHyperparameter):
            value = plain(hp.sequence[int(value)])
        out[name] = value
    return out


def encode_config(space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`decode_config`."""
    import ConfigSpace as CS

    out = {}
    for name, value in plain(config).items():
        hp = space[name]
        out[name] = list(hp.sequence).index(value) if isinstance(hp, CS.OrdinalHyperparameter) else value
    return out


# --- 3. addresses and credentials ---------------------------------------------------------------
def interface_address(interface: str | None) -> str:
    """The IPv4 address of the network interface ``interface`` (loopback when None)."""
    if interface is None:
        return LOOPBACK
    try:
        import netifaces
    except ImportError:
        raise BOHBError(None, "naming a network interface needs the package netifaces "
                              "(pip install netifaces)", field="interface") from None
    if interface not in netifaces.interfaces():
        raise BOHBError(None, f"no network interface {interface!r} on {socket.gethostname()}; "
                              f"expected one of {', '.join(netifaces.interfaces())}", field="interface")
    addrs = netifaces.ifaddresses(interface).get(netifaces.AF_INET) or []
    if not addrs:
        raise BOHBError(None, f"network interface {interface!r} has no IPv4 address", field="interface")
    return addrs[0]["addr"]


def credentials_path(shared_dir: str | Path, run_id: str) -> Path:
    """Where the nameserver of run ``run_id`` writes its address."""
    return Path(shared_dir) / f"nameserver-{run_id}.json"


@dataclass
class Nameserver:
    """A running Pyro4 nameserver (in a thread of this process)."""

    host: str
    port: int
    credentials: Path | None
    _daemon: Any
    _thread: threading.Thread

    def shutdown(self) -> None:
        """Stop it and remove its credentials file."""
        if self._daemon is not None:
            self._daemon.shutdown()
            self._thread.join(timeout=10)
            self._daemon = None
        if self.credentials is not None and self.credentials.is_file():
            self.credentials.unlink()


def start_nameserver(run_id: str, shared_dir: str | Path | None = None, *, interface: str | None = None,
                     port: int = 0) -> Nameserver:
    """Start a Pyro4 nameserver in a thread, bound to loopback unless ``interface`` is named.

    Writes ``nameserver-<run_id>.json`` (host, port, run id, host name, pid, time) in
    ``shared_dir`` when one is given, so that workers on other nodes find it.
    """
    import Pyro4.naming

    host = interface_address(interface)
    _, daemon, _ = Pyro4.naming.startNS(host=host, port=port)
    host, port_s = daemon.locationStr.rsplit(":", 1)
    thread = threading.Thread(target=daemon.requestLoop, name=f"nameserver {run_id}", daemon=True)
    thread.start()
    path = None
    if shared_dir is not None:
        path = credentials_path(shared_dir, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"format": CREDENTIALS_FORMAT, "run_id": run_id, "host": host,
                                   "port": int(port_s), "hostname": socket.gethostname(), "pid": os.getpid(),
                                   "started": _now()}, indent=1))
        tmp.replace(path)
    logger.info("nameserver of run %s at %s:%s", run_id, host, port_s)
    return Nameserver(host, int(port_s), path, daemon, thread)


def read_credentials(shared_dir: str | Path, run_id: str, *, wait: float = 0.0,
                     interval: float = 1.0) -> tuple[str, int]:
    """The nameserver's ``(host, port)`` from its credentials file, waiting up to ``wait`` s."""
    path = credentials_path(shared_dir, run_id)
    deadline = time.monotonic() + wait
    while True:
        if path.is_file():
            try:
                data = json.loads(path.read_text())
                if data.get("format") != CREDENTIALS_FORMAT:
                    raise BOHBError(path, f"expected format {CREDENTIALS_FORMAT!r}, found "
                                          f"{data.get('format')!r}", field="format")
                if data.get("run_id") != run_id:
                    raise BOHBError(path, f"expected run id {run_id!r}, found {data.get('run_id')!r}",
                                    field="run_id")
                return str(data["host"]), int(data["port"])
            except (json.JSONDecodeError, KeyError) as exc:
                if time.monotonic() >= deadline:
                    raise BOHBError(path, f"unreadable nameserver credentials ({exc})", field="host") from None
        elif time.monotonic() >= deadline:
            raise BOHBError(path, f"no nameserver credentials for run {run_id!r} (start the nameserver or "
                                  "the master first, with the same --shared-dir and --run-id)",
                            field="run_id")
        time.sleep(interval)


# --- 7. a dispatcher that survives a dead worker ---------------------------------------------------
def _robust_job_runner(self: Any) -> None:
    """hpbandster's ``Dispatcher.job_runner`` loop, except that a worker that cannot be reached
    is dropped from the pool and its job goes back to the queue instead of ending the loop."""
    import Pyro4.errors

    with self.runner_cond:
        while True:
            while self.waiting_jobs.empty() or not self.idle_workers:
                self.runner_cond.wait()
                if self.shutdown_all_threads:
                    self.discover_cond.notify()
                    return
            job = self.waiting_jobs.get()
            name = self.idle_workers.pop()
            worker = self.worker_pool[name]
            job.time_it("started")
            worker.runs_job = job.id
            try:
                worker.proxy.start_computation(self, job.id, **job.kwargs)
            except Pyro4.errors.CommunicationError as exc:
                logger.warning("worker %s cannot be reached (%s): dropped; job %s goes to another worker", name,
                               exc, job.id)
                worker.runs_job = None
                self.worker_pool.pop(name, None)
                self.waiting_jobs.put(job)
                continue
            job.worker_name = name
            self.running_jobs[job.id] = job


def _patch_dispatcher() -> None:
    from hpbandster.core.dispatcher import Dispatcher

    Dispatcher.job_runner = _robust_job_runner


# --- the worker ------------------------------------------------------------------------------
def _worker_class() -> type:
    from hpbandster.core.worker import Worker

    class _TrialWorker(Worker):
        """An hpbandster worker whose ``compute`` is one evaluation (see :class:`TrialWorker`)."""

        def __init__(self, evaluate_trial: Callable[[dict[str, Any], float, Any], dict[str, Any]],
                     **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self._evaluate_trial = evaluate_trial

        def compute(self, config_id: Any, config: dict[str, Any], budget: float, working_directory: str,
                    **_: Any) -> dict[str, Any]:
            info = plain(self._evaluate_trial(plain(config), float(budget), plain(config_id)))
            info.setdefault("worker", f"{socket.gethostname()}:{os.getpid()}")
            alc = info.get("alc")
            loss = -float(alc) if info.get("status") == "ok" and alc is not None else float("inf")
            return {"loss": loss, "info": info}

    return _TrialWorker


def serve_worker(run_id: str, nameserver: tuple[str, int],
                 evaluate_trial: Callable[[dict[str, Any], float, Any], dict[str, Any]], *,
                 interface: str | None = None, worker_id: str | None = None,
                 idle_timeout: float | None = None) -> None:
    """Serve trials of run ``run_id`` in this process until the master shuts the worker down.

    Parameters
    ----------
    run_id:
        The run's identifier (the same for master, nameserver and workers).
    nameserver:
        ``(host, port)`` of the nameserver (:func:`read_credentials`).
    evaluate_trial:
        ``(encoded config, budget, config id) -> info``: a mapping with at least ``status``
        and ``alc``; it becomes the trial's record (it must not raise: a crash is a status).
    interface:
        Network interface whose address the worker announces (loopback when None).
    worker_id:
        Distinguishes several workers in one process.
    idle_timeout:
        Shut down after this many seconds without a job (None: wait for the master).
    """
    cls = _worker_class()
    worker = cls(evaluate_trial, run_id=run_id, nameserver=nameserver[0], nameserver_port=nameserver[1],
                 host=interface_address(interface), id=worker_id, timeout=idle_timeout,
                 logger=logging.getLogger("hpbandster.worker"))
    logger.info("worker %s of run %s serving (nameserver %s:%d)", worker.worker_id, run_id, *nameserver)
    worker.run(background=False)


# --- the master ----------------------------------------------------------------------------------
def bracket_sizes(min_budget: float, max_budget: float, eta: int, iterations: int) -> list[list[tuple[int, float]]]:
    """The (number of configurations, budget) of each stage of each of ``iterations`` brackets,
    as hpbandster's BOHB schedules them."""
    max_sh = -int(np.log(min_budget / max_budget) / np.log(eta)) + 1
    budgets = max_budget * np.power(float(eta), -np.linspace(max_sh - 1, 0, max_sh))
    out = []
    for it in range(iterations):
        s = max_sh - 1 - (it % max_sh)
        n0 = int(np.floor(max_sh / (s + 1)) * eta ** s)
        ns = [max(int(n0 * eta ** (-i)), 1) for i in range(s + 1)]
        out.append([(n, float(b)) for n, b in zip(ns, budgets[-s - 1:])])
    return out


def budget_key(budget: float) -> float:
    """A budget rounded so that the same budget always compares equal (JSON round trips)."""
    return round(float(budget), 9)


def _job_info(job: Any) -> dict[str, Any]:
    result = job.result or {}
    info = dict(result.get("info") or {})
    if job.result is None:
        died = (job.exception or "").strip() == WORKER_DIED
        info.update(status="lost" if died else "crashed", alc=None,
                    error=WORKER_DIED if died else "the worker raised", traceback=job.exception)
    return info


def make_master(space: Any, *, run_id: str, nameserver: tuple[str, int], min_budget: float,
                max_budget: float, eta: int, seed: int, working_directory: str | Path,
                replay: Mapping[tuple[tuple[int, int, int], float], Mapping[str, Any]] | None = None,
                sampled: Mapping[tuple[int, int, int], Mapping[str, Any]] | None = None,
                on_trial: Callable[[tuple[int, int, int], dict[str, Any], float, dict[str, Any], bool], None]
                | None = None,
                on_sample: Callable[[tuple[int, int, int], dict[str, Any], dict[str, Any]], None] | None = None,
                interface: str | None = None, ping_interval: float = 10.0, bohb_kwargs: Mapping[str, Any]
                | None = None) -> Any:
    """An hpbandster BOHB master that resumes a finished or stopped run.

    Parameters
    ----------
    space:
        The encoded configuration space (:func:`encode_space`).
    replay:
        Finished trials by ``(config id, budget_key(budget))``: their info mapping (``status``,
        ``alc``, ...). Such jobs are answered from it instead of being sent to a worker.
    sampled:
        Configurations sampled before, by config id (encoded form): an iteration that samples
        a configuration with such an id gets this one.
    on_trial:
        ``(config id, encoded config, budget, info, replayed)``, called for every finished job
        (under the master's lock, in order).
    on_sample:
        ``(config id, encoded config, info)``, called for every newly sampled configuration.
    seed:
        Seeds BOHB's sampling (hpbandster draws from numpy's global generator and the space's).
    """
    from hpbandster.core.dispatcher import Job
    from hpbandster.optimizers import BOHB

    _patch_dispatcher()
    replay = dict(replay or {})
    sampled = dict(sampled or {})
    np.random.seed(seed)  # hpbandster's config generator draws from numpy's global generator

    class _ResumableBOHB(BOHB):
        def get_next_iteration(self, iteration: int, iteration_kwargs: dict | None = None) -> Any:
            it = super().get_next_iteration(iteration, iteration_kwargs or {})
            it.budgets = [float(b) for b in it.budgets]
            plain_sampler = it.config_sampler

            def sampler(budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
                cid = (it.HPB_iter, it.stage, it.actual_num_configs[it.stage])
                if cid in sampled:
                    return dict(sampled[cid]), {"replayed": True}
                config, info = plain_sampler(budget)
                config, info = plain(config), plain(info)
                if on_sample is not None:
                    on_sample(cid, config, info)
                return config, info

            it.config_sampler = sampler
            return it

        def _submit_job(self, config_id: Any, config: dict[str, Any], budget: float) -> None:
            key = (tuple(int(i) for i in config_id), budget_key(budget))
            record = replay.pop(key, None)
            if record is None:
                super()._submit_job(config_id, config, float(budget))
                return
            job = Job(config_id, config=config, budget=budget, working_directory=str(self.working_directory))
            for stamp in ("submitted", "started", "finished"):
                job.time_it(stamp)
            status = record.get("status")
            alc = record.get("alc")
            loss = -float(alc) if status == "ok" and alc is not None else float("inf")
            job.result = {"loss": loss, "info": dict(record)}
            job.exception = record.get("traceback")
            job.replayed = True
            with self.thread_cond:
                self.num_running_jobs += 1
            self.job_callback(job)

    def result_logger(job: Any) -> None:
        if on_trial is not None:
            on_trial(tuple(int(i) for i in job.id), plain(job.kwargs["config"]), float(job.kwargs["budget"]),
                     plain(_job_info(job)), bool(getattr(job, "replayed", False)))

    class _Logger:
        def __call__(self, job: Any) -> None:
            result_logger(job)

        def new_config(self, *args: Any, **kwargs: Any) -> None:  # hpbandster calls it per config
            pass

    master = _ResumableBOHB(configspace=space, run_id=run_id, eta=eta, min_budget=float(min_budget),
                            max_budget=float(max_budget), nameserver=nameserver[0],
                            nameserver_port=nameserver[1], host=interface_address(interface),
                            working_directory=str(working_directory), ping_interval=ping_interval,
                            result_logger=_Logger(), logger=logging.getLogger("hpbandster.master"),
                            **dict(bohb_kwargs or {}))
    master.config["budgets"] = [float(b) for b in master.budgets]
    master.budgets = np.asarray([float(b) for b in master.budgets])
    return master


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
