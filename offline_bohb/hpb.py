"""The one module that knows hpbandster and Pyro4 (hpbandster 0.7.4, unmaintained).

Everything BOHB-specific that the rest of the project needs goes through here:
:func:`encode_space` (the configuration space as hpbandster's BOHB accepts it),
:class:`TrialWorker` (a worker whose ``compute`` is :func:`finetune.config_runs.evaluate`),
:class:`ResumableBOHB` (the master, which replays finished trials instead of running them
again), :func:`start_nameserver` / :func:`read_credentials` (a JSON credentials file in the
shared folder, never hpbandster's pickle, readable by its owner only: it holds the run's HMAC
key).

Security: every Pyro4 message of a run (nameserver, dispatcher, workers) is authenticated with
a per-run HMAC key (:func:`new_hmac_key`, written into the credentials file with mode 0600;
:func:`use_hmac_key` makes Pyro4's message layer sign and check with it, since hpbandster
creates its proxies and daemons where no key can be handed to them); a client without the key,
or with another, is refused. Daemons accept the serpent serializer only, bind to loopback unless
an interface is named, and the nameserver answers no UDP broadcast. HMAC authenticates, it
does not encrypt: on a shared network, name an interface of a private one.

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
   that were running when the master died run again. A replayed sample is drawn again
   and dropped, so that the samples after the replay are those of the undisturbed run (for
   samples from BOHB's model, as far as the order in which results came in allows).
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
8. Its model needs ``2 (d + 1)`` results at one budget (two disjoint sets of more than ``d``
   points each; statsmodels' density refuses fewer), which no run of a portfolio build
   reaches; a candidate the space forbids makes it fall back to a random configuration;
   a lone inactive value in the first column is not imputed. :func:`make_sampler` is its
   configuration generator with the paper's rule instead, a density without that refusal
   (:class:`ProductKDE`), picks that are configurations, and the imputation fixed (the
   settings and why: :mod:`offline_bohb`).
9. A nameserver that dies (a cluster's ``bohb nameserver`` process): the dispatcher's
   discovery loop raised ``NamingError`` with its lock held, and every result after that
   waited for the lock: the master hung (checked here). :func:`_patch_dispatcher` replaces
   that loop and the dispatcher's start and shutdown with ones that survive an unreachable
   nameserver or worker; the master stops, its trials kept, when the nameserver has not
   answered for :data:`NAMESERVER_GRACE` seconds (:func:`offline_bohb.run.run_master`);
   the same commands, the nameserver's first, resume the run.

:func:`make_master` also runs a run's *warm start*: known configurations evaluated at the
full budget as iteration 0, before BOHB's brackets.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import Status, atomic_write_text, check_format, utc_now
from autodl.records import to_plain as plain  # numpy values -> Python values, recursively

logger = logging.getLogger(__name__)

CREDENTIALS_FORMAT = "autodl-meta-bohb-nameserver/2"
"""Version 2 holds the run's HMAC key (``hmac_key``); version 1 had none."""
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
    (default: the index of the default); every other hyperparameter, condition and forbidden
    clause is kept as it is (values of an ordinal parent as indices). hpbandster's BOHB
    handles conditional hyperparameters: a configuration holds only the active ones, and its
    model imputes the inactive ones (see :func:`make_sampler`).

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

    def condition(c: Any) -> Any:
        from ConfigSpace import AndConjunction, EqualsCondition, InCondition, NotEqualsCondition, OrConjunction

        if isinstance(c, AndConjunction | OrConjunction):
            return type(c)(*(condition(x) for x in c.components))
        child, parent = out[c.child.name], out[c.parent.name]
        seq = ordinals.get(c.parent.name)

        def value(v: Any) -> Any:
            return seq.index(v) if seq is not None else v

        if isinstance(c, InCondition):
            return InCondition(child, parent, [value(v) for v in c.values])
        if isinstance(c, EqualsCondition | NotEqualsCondition):
            return type(c)(child, parent, value(c.value))
        raise BOHBError(None, f"condition {c} is of a kind hpbandster's BOHB is not given here; expected "
                              "equals, not-equals, in, and/or", field="space")

    out.add([condition(c) for c in space.conditions])
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
    """Where the nameserver of run ``run_id`` writes its address and the run's HMAC key."""
    return Path(shared_dir) / f"nameserver-{run_id}.json"


# --- 3b. the run's HMAC key -----------------------------------------------------------------------
_HMAC: dict[str, bytes | None] = {"key": None}
"""The HMAC key of the run this process takes part in (:func:`use_hmac_key`)."""


def new_hmac_key() -> str:
    """A fresh per-run HMAC key (64 hex digits, :func:`secrets.token_hex`)."""
    return secrets.token_hex(32)


def _keyed_message_layer() -> None:
    """Make Pyro4 sign and check every message of this process with :data:`_HMAC`'s key where the
    proxy or daemon that sends or receives it has none of its own (idempotent).

    hpbandster creates its Pyro4 objects (the dispatcher's and the workers' daemons, their
    proxies, the nameserver lookups, the callback proxy a worker answers through) deep in its
    own code, with no way to hand them a key. Pyro4's HMAC lives in its message layer
    (``Pyro4.message.Message``: a message carries an ``HMAC`` annotation over its data, checked
    on receipt; a message without one where a key is set, or with one where none is, is
    refused); giving that layer the run's key as the default covers every object at once. The
    key never travels: a proxy that is sent over the wire carries its own key, which stays None.
    """
    import Pyro4.message

    msg = Pyro4.message.Message
    if getattr(msg, "_autodl_meta_keyed", False):
        return
    init, recv = msg.__init__, msg.recv.__func__

    def keyed_init(self: Any, msgType: int, databytes: bytes, serializer_id: int, flags: int, seq: int,
                   annotations: Any = None, hmac_key: bytes | None = None) -> None:
        init(self, msgType, databytes, serializer_id, flags, seq, annotations,
             hmac_key if hmac_key is not None else _HMAC["key"])

    def keyed_recv(cls: Any, connection: Any, requiredMsgTypes: Any = None, hmac_key: bytes | None = None) -> Any:
        return recv(cls, connection, requiredMsgTypes, hmac_key if hmac_key is not None else _HMAC["key"])

    msg.__init__ = keyed_init
    msg.recv = classmethod(keyed_recv)
    msg._autodl_meta_keyed = True


def use_hmac_key(key: str | bytes | None) -> None:
    """Authenticate this process's Pyro4 traffic with ``key`` (the run's, from its credentials):
    every message it sends is signed with it and every message it receives must be (None: no
    key, Pyro4's default). One key per process: a process takes part in one run at a time."""
    _keyed_message_layer()
    _HMAC["key"] = key.encode("ascii") if isinstance(key, str) else key


def _accept_serpent_only() -> None:
    """Pyro4 daemons of this process accept the serpent serializer only (never pickle, dill or
    marshal): serpent reads Python literals, nothing that runs code."""
    import Pyro4

    Pyro4.config.SERIALIZER = "serpent"
    Pyro4.config.SERIALIZERS_ACCEPTED = {"serpent"}


_accept_serpent_only()


class NameserverAddress(tuple):
    """``(host, port)`` of a run's nameserver, with the run's HMAC key as ``hmac_key``.

    A 2-tuple (it unpacks and compares as ``(host, port)``); the key is left out of its repr,
    so that logging an address does not log the key.
    """

    hmac_key: str | None

    def __new__(cls, host: str, port: int, hmac_key: str | None = None) -> NameserverAddress:
        self = super().__new__(cls, (str(host), int(port)))
        self.hmac_key = hmac_key
        return self


def _hmac_key_of(nameserver: Any, hmac_key: str | None) -> str | None:
    return hmac_key if hmac_key is not None else getattr(nameserver, "hmac_key", None)


@dataclass
class Nameserver:
    """A running Pyro4 nameserver (in a thread of this process), its messages authenticated with
    the run's HMAC key ``hmac_key``."""

    host: str
    port: int
    credentials: Path | None
    _daemon: Any
    _thread: threading.Thread
    hmac_key: str | None = None

    def __repr__(self) -> str:  # never the key
        return f"Nameserver({self.host}:{self.port}, credentials={self.credentials})"

    @property
    def address(self) -> NameserverAddress:
        """``(host, port)`` with the key, for :func:`make_master` / :func:`serve_worker`."""
        return NameserverAddress(self.host, self.port, self.hmac_key)

    def shutdown(self) -> None:
        """Stop it and remove its credentials file."""
        if self._daemon is not None:
            self._daemon.shutdown()
            self._thread.join(timeout=10)
            self._daemon = None
        if self.credentials is not None and self.credentials.is_file():
            self.credentials.unlink()


def start_nameserver(run_id: str, shared_dir: str | Path | None = None, *, interface: str | None = None,
                     port: int = 0, hmac_key: str | None = None) -> Nameserver:
    """Start a Pyro4 nameserver in a thread, bound to loopback unless ``interface`` is named,
    its messages authenticated with the run's HMAC key.

    ``hmac_key`` (default: a new one, :func:`new_hmac_key`) becomes this process's key too
    (:func:`use_hmac_key`: a master in the same process uses it). Writes
    ``nameserver-<run_id>.json`` (host, port, run id, the key, host name, pid, time) in
    ``shared_dir`` when one is given, readable by its owner only (mode 0600), so that workers
    on other nodes (run by the same user) find it. No UDP broadcast responder is started:
    workers find the nameserver through that file.
    """
    import Pyro4.naming

    host = interface_address(interface)
    key = hmac_key or new_hmac_key()
    use_hmac_key(key)
    _, daemon, _ = Pyro4.naming.startNS(host=host, port=port, enableBroadcast=False, hmac=key.encode("ascii"))
    host, port_s = daemon.locationStr.rsplit(":", 1)
    thread = threading.Thread(target=daemon.requestLoop, name=f"nameserver {run_id}", daemon=True)
    thread.start()
    path = None
    if shared_dir is not None:
        path = credentials_path(shared_dir, run_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # readable and writable by its owner only (mode 0600) from the moment it exists
        atomic_write_text(path, json.dumps({"format": CREDENTIALS_FORMAT, "run_id": run_id, "host": host,
                                            "port": int(port_s), "hmac_key": key, "hostname": socket.gethostname(),
                                            "pid": os.getpid(), "started": utc_now()}, indent=1), mode=0o600)
    logger.info("nameserver of run %s at %s:%s (HMAC-authenticated)", run_id, host, port_s)
    return Nameserver(host, int(port_s), path, daemon, thread, key)


def read_credentials(shared_dir: str | Path, run_id: str, *, wait: float = 0.0,
                     interval: float = 1.0) -> NameserverAddress:
    """The nameserver's ``(host, port)`` (and the run's HMAC key, ``.hmac_key``) from its
    credentials file, waiting up to ``wait`` s.

    Raises
    ------
    BOHBError
        No file (after ``wait``), another format or run id, no key, or a file that others than
        its owner can read (the key would not be secret: ``chmod 600`` it).
    """
    from autodl.integrity import private_file_mode_problem

    path = credentials_path(shared_dir, run_id)
    deadline = time.monotonic() + wait
    while True:
        if path.is_file():
            try:
                data = check_format(json.loads(path.read_text()), CREDENTIALS_FORMAT, path=path,
                                    what="a nameserver's credentials", error=BOHBError)
                if data.get("run_id") != run_id:
                    raise BOHBError(path, f"expected run id {run_id!r}, found {data.get('run_id')!r}",
                                    field="run_id")
                key = data["hmac_key"]
                if not isinstance(key, str) or len(key) < 32:
                    raise BOHBError(path, "hmac_key: expected the run's key (hex digits)", field="hmac_key")
                problem = private_file_mode_problem(path)
                if problem:
                    raise BOHBError(path, problem, field="mode")
                return NameserverAddress(data["host"], int(data["port"]), key)
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


# --- 9. a nameserver that goes away ---------------------------------------------------------------
NAMESERVER_GRACE = 30.0
"""Seconds a master waits for a nameserver that stopped answering before it stops (its trials
kept): the workers' watchdogs (:mod:`offline_bohb.local`) give up after as long. The
environment variable ``AUTODL_BOHB_NAMESERVER_GRACE`` overrides it (:func:`nameserver_grace`;
the fault tests set a few seconds)."""


def nameserver_grace() -> float:
    """:data:`NAMESERVER_GRACE`, or ``AUTODL_BOHB_NAMESERVER_GRACE`` where set to a positive number."""
    try:
        value = float(os.environ.get("AUTODL_BOHB_NAMESERVER_GRACE", ""))
    except ValueError:
        return NAMESERVER_GRACE
    return value if value > 0 else NAMESERVER_GRACE


def _locate_ns(self: Any) -> Any:
    import Pyro4

    return Pyro4.locateNS(host=self.nameserver, port=self.nameserver_port)


def _nameserver_missed(self: Any, exc: BaseException) -> None:
    if getattr(self, "nameserver_unreachable_since", None) is None:
        self.nameserver_unreachable_since = time.monotonic()
        logger.warning("the nameserver %s:%s cannot be reached (%s); the master stops if it has not answered "
                       "within %.0f s", self.nameserver, self.nameserver_port, exc, nameserver_grace())


def _robust_discover_workers(self: Any) -> None:
    """hpbandster's ``Dispatcher.discover_workers`` loop, except that a nameserver or a worker that
    cannot be reached does not end it. hpbandster's loop died with the dispatcher's lock held
    (checked here: the nameserver killed after the first trial), and every result after that
    waited for the lock forever: the master hung. Here the time since the nameserver last
    answered is kept in ``nameserver_unreachable_since`` (None while it answers), which
    :func:`offline_bohb.run.run_master` watches (:data:`NAMESERVER_GRACE`)."""
    import Pyro4.errors
    from hpbandster.core.dispatcher import Worker

    self.nameserver_unreachable_since = None
    with self.discover_cond:
        while True:
            update = False
            try:
                with _locate_ns(self) as ns:
                    worker_names = ns.list(prefix=f"hpbandster.run_{self.run_id}.worker.")
                self.nameserver_unreachable_since = None
            except Pyro4.errors.PyroError as exc:
                _nameserver_missed(self, exc)
                worker_names = {}
            for wn, uri in worker_names.items():
                if wn not in self.worker_pool:
                    w = Worker(wn, uri)
                    try:
                        if not w.is_alive():
                            continue
                    except Pyro4.errors.PyroError:
                        continue
                    update = True
                    logger.info("dispatcher: discovered worker %s", wn)
                    self.worker_pool[wn] = w
            crashed_jobs = set()
            for wn in list(self.worker_pool):
                worker = self.worker_pool[wn]
                try:
                    alive = worker.is_alive()
                    busy = alive and worker.is_busy()
                except Pyro4.errors.PyroError:
                    alive = busy = False
                if not alive:
                    logger.info("dispatcher: removing dead worker %s", wn)
                    update = True
                    if worker.runs_job is not None:
                        crashed_jobs.add(worker.runs_job)
                    del self.worker_pool[wn]
                    self.idle_workers.discard(wn)
                elif not busy:
                    self.idle_workers.add(wn)
            if update:
                if self.queue_callback is not None:
                    self.discover_cond.release()
                    try:
                        self.queue_callback(len(self.worker_pool))
                    finally:
                        self.discover_cond.acquire()
                self.runner_cond.notify()
            for job in crashed_jobs:
                self.discover_cond.release()
                try:
                    self.register_result(job, {"result": None, "exception": WORKER_DIED})
                finally:
                    self.discover_cond.acquire()
            self.discover_cond.wait(self.ping_interval)
            if self.shutdown_all_threads:
                self.runner_cond.notify()
                return


def _robust_run(self: Any) -> None:
    """hpbandster's ``Dispatcher.run``, except that a nameserver that cannot be reached when the
    dispatcher registers or unregisters is a warning (and starts the grace), not a traceback."""
    import Pyro4
    import Pyro4.errors

    with self.discover_cond:
        t1 = threading.Thread(target=self.discover_workers, name="discover_workers")
        t1.start()
        t2 = threading.Thread(target=self.job_runner, name="job_runner")
        t2.start()
        self.pyro_daemon = Pyro4.core.Daemon(host=self.host)
        uri = self.pyro_daemon.register(self, self.pyro_id)
        try:
            with _locate_ns(self) as ns:
                ns.register(self.pyro_id, uri)
        except Pyro4.errors.PyroError as exc:
            _nameserver_missed(self, exc)
    self.pyro_daemon.requestLoop()
    with self.discover_cond:
        self.shutdown_all_threads = True
        self.runner_cond.notify_all()
        self.discover_cond.notify_all()
    try:
        with _locate_ns(self) as ns:
            ns.remove(self.pyro_id)
    except Pyro4.errors.PyroError as exc:
        logger.info("dispatcher: not unregistered from the nameserver (%s)", exc)
    t1.join()
    t2.join()


def _robust_shutdown_all_workers(self: Any, rediscover: bool = False) -> None:
    """hpbandster's ``Dispatcher.shutdown_all_workers``, except that a worker that has gone
    already is skipped instead of ending the master's shutdown with an error."""
    import Pyro4.errors

    with self.discover_cond:
        for name, worker in list(self.worker_pool.items()):
            try:
                worker.shutdown()
            except Pyro4.errors.PyroError as exc:
                logger.info("worker %s not shut down (%s): gone already", name, exc)
        if rediscover:
            time.sleep(1)
            self.discover_cond.notify()


def _patch_dispatcher() -> None:
    from hpbandster.core.dispatcher import Dispatcher

    Dispatcher.job_runner = _robust_job_runner
    Dispatcher.discover_workers = _robust_discover_workers
    Dispatcher.run = _robust_run
    Dispatcher.shutdown_all_workers = _robust_shutdown_all_workers


# --- 8. the model: the paper's rule, and picks that respect forbidden clauses ----------------------
class ProductKDE:
    """statsmodels' ``KDEMultivariate(data, var_type, bw="normal_reference")`` for the variable
    types hpbandster uses (``c`` continuous in [0, 1], ``u`` unordered categories), without
    its refusal of fewer points than dimensions.

    The density is a product of one-dimensional kernels, one bandwidth per dimension
    (Scott's rule ``1.06 * std * n ** (-1 / (4 + d))``): a Gaussian kernel for ``c``, the
    Aitchison-Aitken kernel (``1 - h`` on the point's category, ``h / (levels - 1)`` on each
    other) for ``u``. Nothing in it needs more points than dimensions; statsmodels refuses
    them all the same ("The number of observations must be larger than the number of
    variables"), which is why hpbandster's model needs ``d + 1`` points in each of its two
    densities. Two differences: ``levels`` is the hyperparameter's number of choices, not
    (as in statsmodels) the number of categories present in the data, which divides by
    zero when a column holds one category; and a categorical bandwidth is at most
    ``1 - 1 / levels`` (the uniform kernel; Scott's rule applied to category codes can
    exceed 1 and make the kernel negative). ``data``, ``bw`` and ``pdf`` are what
    hpbandster's sampler reads (it clips the bandwidths below at ``min_bandwidth``).
    """

    def __init__(self, data: np.ndarray, var_type: str, levels: np.ndarray) -> None:
        self.data = np.asarray(data, dtype=float)
        self.var_type = var_type
        n, d = self.data.shape
        if n < 1 or d != len(var_type):
            raise ValueError(f"ProductKDE: {n} points of {d} dimensions for var_type {var_type!r}")
        self.continuous = np.array([t == "c" for t in var_type])
        self.levels = np.asarray(levels, dtype=float)
        bw = 1.06 * np.std(self.data, axis=0) * n ** (-1.0 / (4 + d))
        u = ~self.continuous
        bw[u] = np.minimum(bw[u], 1 - 1 / np.maximum(self.levels[u], 2))
        self.bw = bw

    def pdf(self, x: Any) -> float:
        """The density at one point ``x`` (a vector of the encoded space)."""
        x = np.asarray(x, dtype=float).reshape(-1)
        bw = self.bw
        kernel = np.empty_like(self.data)
        c = self.continuous
        kernel[:, c] = np.exp(-((self.data[:, c] - x[c]) ** 2) / (bw[c] ** 2 * 2.0)) / np.sqrt(2 * np.pi)
        u = ~c
        if u.any():
            other = bw[u] / np.maximum(self.levels[u] - 1, 1)
            same = self.data[:, u] == x[u]
            kernel[:, u] = np.where(same, 1 - bw[u], other)
        return float((kernel.prod(axis=1) / np.prod(bw[c])).sum() / len(self.data))


def _sampler_class() -> type:
    import ConfigSpace
    import scipy.stats as sps
    from ConfigSpace.util import deactivate_inactive_hyperparameters
    from hpbandster.core.base_config_generator import base_config_generator
    from hpbandster.optimizers.config_generators.bohb import BOHB as CG_BOHB

    class KDESampler(CG_BOHB):
        """hpbandster's BOHB configuration generator with three changes (see :func:`make_sampler`)."""

        def __init__(self, configspace: Any, min_points_in_model: int | None = None, **kwargs: Any) -> None:
            super().__init__(configspace, min_points_in_model=None, **kwargs)  # None: d + 1, no warning
            if min_points_in_model is not None:
                if int(min_points_in_model) < 2:
                    raise BOHBError(None, f"min_points_in_model={min_points_in_model}: expected >= 2 (a "
                                          "density of one point has no spread)", field="min_points_in_model")
                self.min_points_in_model = int(min_points_in_model)
            self._hps = list(self.configspace.values())
            self._seen: set[tuple[tuple[str, Any], ...]] = set()

        @staticmethod
        def _key(config: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
            return tuple(sorted((k, round(v, 9) if isinstance(v, float) else v) for k, v in plain(dict(config)).items()))

        # -- the model (Falkner et al. 2018, section 3.2 and Algorithm 2) --------------------------
        def new_result(self, job: Any, update_model: bool = True) -> None:
            base_config_generator.new_result(self, job)
            self._seen.add(self._key(job.kwargs["config"]))
            loss = np.inf if job.result is None or not np.isfinite(job.result["loss"]) else job.result["loss"]
            budget = job.kwargs["budget"]
            self.configs.setdefault(budget, [])
            self.losses.setdefault(budget, [])
            if max(list(self.kde_models.keys()) + [-np.inf]) > budget:
                return  # a model on a larger budget exists: it is the one sampled from
            conf = ConfigSpace.Configuration(self.configspace, values=job.kwargs["config"])
            self.configs[budget].append(conf.get_array())
            self.losses[budget].append(loss)
            n = len(self.configs[budget])
            if n < self.min_points_in_model + 2 or not update_model:
                return
            n_good = max(self.min_points_in_model, (self.top_n_percent * n) // 100)
            n_bad = max(self.min_points_in_model, n - n_good)
            order = np.argsort(np.asarray(self.losses[budget]), kind="stable")
            data = np.asarray(self.configs[budget])
            good = self.impute_conditional_data(data[order[:n_good]])
            bad = self.impute_conditional_data(data[order[-n_bad:]])
            bad_kde = ProductKDE(bad, self.kde_vartypes, self.vartypes)
            good_kde = ProductKDE(good, self.kde_vartypes, self.vartypes)
            bad_kde.bw = np.clip(bad_kde.bw, self.min_bandwidth, None)
            good_kde.bw = np.clip(good_kde.bw, self.min_bandwidth, None)
            self.kde_models[budget] = {"good": good_kde, "bad": bad_kde, "points": n}

        def impute_conditional_data(self, array: np.ndarray) -> np.ndarray:
            """hpbandster's imputation of inactive values (from another point of the same set where
            one has the value, else at random), which skipped a lone NaN in column 0."""
            out = np.empty_like(array)
            for i in range(array.shape[0]):
                datum = np.copy(array[i])
                nan = np.flatnonzero(np.isnan(datum))
                while nan.size:
                    column = nan[0]
                    valid = np.flatnonzero(np.isfinite(array[:, column]))
                    if valid.size:
                        datum[nan] = array[np.random.choice(valid), nan]
                    else:
                        t = self.vartypes[column]
                        datum[column] = np.random.rand() if t == 0 else np.random.randint(t)
                    nan = np.flatnonzero(np.isnan(datum))
                out[i] = datum
            return out

        # -- sampling -----------------------------------------------------------------------------
        def _configuration(self, vector: list[float]) -> dict[str, Any] | None:
            """The active values of ``vector``, or None where it is forbidden or not a configuration."""
            vec = np.asarray(vector, dtype=float)
            for i, hp in enumerate(self._hps):
                if isinstance(hp, ConfigSpace.CategoricalHyperparameter):
                    vec[i] = np.rint(vec[i])
            try:
                values = dict(ConfigSpace.Configuration(self.configspace, vector=vec))
                return dict(deactivate_inactive_hyperparameters(values, self.configspace))
            except (ValueError, KeyError, IndexError):  # forbidden, or an inactive parent value
                return None

        def _random(self, why: str) -> tuple[dict[str, Any], dict[str, Any]]:
            return dict(self.configspace.sample_configuration()), {"model_based_pick": False, "why": why}

        def get_config(self, budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
            if not self.kde_models:
                return self._random("no model yet")
            if np.random.rand() < self.random_fraction:
                return self._random("random fraction")
            model_budget = max(self.kde_models.keys())
            kde_good, kde_bad = self.kde_models[model_budget]["good"], self.kde_models[model_budget]["bad"]
            scored = []
            continuous = self.vartypes == 0
            bws = np.maximum(kde_good.bw, self.min_bandwidth)
            wide = self.bw_factor * bws[continuous]
            for _ in range(self.num_samples):
                # hpbandster's draw, the continuous dimensions in one call: around a good point, a
                # normal truncated to [0, 1] of bandwidth_factor times its bandwidth; a category
                # kept with probability 1 - bandwidth, else drawn uniformly
                datum = kde_good.data[np.random.randint(0, len(kde_good.data))]
                vector = np.array(datum, dtype=float)
                m = datum[continuous]
                vector[continuous] = sps.truncnorm.rvs(-m / wide, (1 - m) / wide, loc=m, scale=wide)
                for i in np.flatnonzero(~continuous):
                    if np.random.rand() >= 1 - bws[i]:
                        vector[i] = np.random.randint(self.vartypes[i])
                vector = vector.tolist()
                good, bad = kde_good.pdf(vector), kde_bad.pdf(vector)
                value = max(1e-32, bad) / max(good, 1e-32)
                if not np.isfinite(value):
                    if not np.isfinite(good):
                        continue
                    value = -np.inf  # as hpbandster: a value the bad density has never seen comes first
                scored.append((value, len(scored), vector))
            rejected = 0
            for _, _, vector in sorted(scored, key=lambda v: (v[0], v[1])):  # best ratio first
                config = self._configuration(vector)
                if config is not None and self._key(config) not in self._seen:
                    self._seen.add(self._key(config))
                    return config, {"model_based_pick": True, "model_budget": float(model_budget),
                                    "model_points": int(self.kde_models[model_budget]["points"]),
                                    "rejected_candidates": rejected}
                rejected += 1
            return self._random(f"none of {self.num_samples} candidates was a new configuration")

    return KDESampler


def make_sampler(space: Any, **settings: Any) -> Any:
    """The configuration generator of every run here: a ``KDESampler`` over the encoded space.

    ``settings``: its ``min_points_in_model``, ``top_n_percent``, ``num_samples``,
    ``random_fraction``, ``bandwidth_factor``, ``min_bandwidth`` (hpbandster's names).

    It is hpbandster's BOHB configuration generator with three changes, each tested in
    ``tests/test_offline_bohb/test_sampler.py``:

    1. *When a model exists, and on which points.* hpbandster fits the two densities of a
       budget only when the good set and the bad set, which it takes disjoint (the best
       ``max(N_min, q N)`` and the next ``max(N_min, (1-q) N)``), each have more points than
       the space has dimensions, so a model needs ``2 (d + 1)`` results at one budget (44 in
       the 21-dimensional fine-tuning space). The paper (Falkner et al. 2018, section 3.2)
       fits them once ``N_min + 2`` results exist, on the best ``N_l = max(N_min, q N)`` and
       the worst ``N_g = max(N_min, N - N_l)``; that is what this does. ``N_min``
       (``min_points_in_model``) is not raised to ``d + 1`` as hpbandster does: the
       densities are products of one-dimensional kernels with a normal-reference bandwidth
       per dimension, which need no more points than dimensions (:class:`ProductKDE`, the
       estimator of statsmodels' ``KDEMultivariate`` without that library's refusal).
    2. *Picks that are new configurations.* A candidate drawn from the good density that the
       space forbids (e.g. a backbone with pretrained weights absent here) made hpbandster
       abandon the model and return a random configuration, counted as not model-based;
       here the candidates are ranked by the ratio of the densities and the best one that
       is a configuration is picked. A candidate equal to a configuration the run has
       already sampled or evaluated is passed over too: the model's good points include
       probes-only configurations, which have only discrete values, and hpbandster picked
       them again (4 of a run's 24 samples, measured), an evaluation whose result is known.
    3. *Imputation.* An inactive value in the first column of the encoded space was left
       NaN (hpbandster's loop tests ``np.any`` of the NaN indices, false for index 0).

    ``info`` of every sample says ``model_based_pick`` and, when false, ``why`` (``no
    model yet``, ``random fraction``, or no valid candidate); when true, the budget of the
    model and its number of points.
    """
    return _sampler_class()(space, logger=logging.getLogger("hpbandster.config_generator"), **settings)


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
            loss = -float(alc) if info.get("status") == Status.OK and alc is not None else float("inf")
            return {"loss": loss, "info": info}

    return _TrialWorker


def serve_worker(run_id: str, nameserver: tuple[str, int],
                 evaluate_trial: Callable[[dict[str, Any], float, Any], dict[str, Any]], *,
                 interface: str | None = None, worker_id: str | None = None,
                 idle_timeout: float | None = None, hmac_key: str | None = None) -> None:
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
    hmac_key:
        The run's HMAC key (default: ``nameserver.hmac_key``, a :class:`NameserverAddress`
        from :func:`read_credentials`); this process's Pyro4 traffic is authenticated with it.
    """
    key = _hmac_key_of(nameserver, hmac_key)
    if key is not None:
        use_hmac_key(key)
    cls = _worker_class()
    worker = cls(evaluate_trial, run_id=run_id, nameserver=nameserver[0], nameserver_port=nameserver[1],
                 host=interface_address(interface), id=worker_id, timeout=idle_timeout,
                 logger=logging.getLogger("hpbandster.worker"))
    logger.info("worker %s of run %s serving (nameserver %s:%d)", worker.worker_id, run_id, *nameserver)
    import Pyro4.errors

    try:
        worker.run(background=False)
    except (Pyro4.errors.NamingError, RuntimeError) as exc:
        daemon = getattr(worker, "pyro_daemon", None)
        if daemon is not None and worker.worker_id in getattr(daemon, "objectsById", {}):
            # served until the master shut it down; the nameserver is gone (quirk 9)
            logger.warning("worker %s: shut down, not unregistered from the nameserver %s:%d (%s)",
                           worker.worker_id, *nameserver, exc)
            return
        if isinstance(exc, RuntimeError) and "nameserver" not in str(exc):
            raise
        raise BOHBError(None, f"the nameserver of run {run_id!r} at {nameserver[0]}:{nameserver[1]} cannot be "
                              "reached: start it (or the master with --with-nameserver) first", field="run_id") from None


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
        info.update(status=Status.LOST if died else Status.CRASHED, alc=None,
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
                | None = None, warm_start: list[tuple[str, Mapping[str, Any]]] | None = None,
                hmac_key: str | None = None) -> Any:
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
    bohb_kwargs:
        Settings of the configuration generator (:func:`make_sampler`).
    warm_start:
        ``(name, encoded config)`` evaluated at ``max_budget`` before BOHB's brackets, as an
        iteration of their own (iteration 0: config ids ``(0, 0, i)``); BOHB's bracket ``k``
        is then iteration ``k + 1``. Their results enter BOHB's model like any other.
    hmac_key:
        The run's HMAC key (default: ``nameserver.hmac_key``, as :func:`serve_worker`; None
        there too: this process's key, set by :func:`start_nameserver` in the same process).
    """
    from hpbandster.core.dispatcher import Job
    from hpbandster.optimizers import BOHB
    from hpbandster.optimizers.iterations import SuccessiveHalving

    _patch_dispatcher()
    key = _hmac_key_of(nameserver, hmac_key)
    if key is not None:
        use_hmac_key(key)
    replay = dict(replay or {})
    sampled = dict(sampled or {})
    warm = [(str(name), dict(plain(config))) for name, config in (warm_start or [])]
    offset = 1 if warm else 0
    np.random.seed(seed)  # hpbandster's config generator draws from numpy's global generator

    class _ResumableBOHB(BOHB):
        def get_next_iteration(self, iteration: int, iteration_kwargs: dict | None = None) -> Any:
            kwargs = iteration_kwargs or {}
            if warm and iteration == 0:
                it = SuccessiveHalving(HPB_iter=0, num_configs=[len(warm)], budgets=[float(self.max_budget)],
                                       config_sampler=None, **kwargs)

                def warm_sampler(budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
                    name, config = warm[it.actual_num_configs[0]]
                    return dict(config), {"model_based_pick": False, "warm_start": name}

                it.config_sampler = warm_sampler
            else:
                it = super().get_next_iteration(iteration - offset, kwargs)
                it.HPB_iter = iteration
            it.budgets = [float(b) for b in it.budgets]
            plain_sampler = it.config_sampler

            def sampler(budget: float) -> tuple[dict[str, Any], dict[str, Any]]:
                cid = (it.HPB_iter, it.stage, it.actual_num_configs[it.stage])
                if cid in sampled:
                    # draw (and drop) the sample the first run drew here, so that the generators'
                    # random streams stand where they stood and what is sampled after the
                    # replay is what the undisturbed run sampled (quirk 4)
                    replayed = dict(sampled[cid])
                    generator = getattr(self, "config_generator", None)
                    seen = set(getattr(generator, "_seen", ()))
                    plain_sampler(budget)
                    if hasattr(generator, "_seen"):
                        generator._seen = seen | {generator._key(replayed)}
                    return replayed, {"replayed": True}
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
            loss = -float(alc) if status == Status.OK and alc is not None else float("inf")
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

    settings = dict(bohb_kwargs or {})
    master = _ResumableBOHB(configspace=space, run_id=run_id, eta=eta, min_budget=float(min_budget),
                            max_budget=float(max_budget), nameserver=nameserver[0],
                            nameserver_port=nameserver[1], host=interface_address(interface),
                            working_directory=str(working_directory), ping_interval=ping_interval,
                            result_logger=_Logger(), logger=logging.getLogger("hpbandster.master"),
                            **{k: v for k, v in settings.items() if k != "min_points_in_model"})
    master.config_generator = make_sampler(space, **settings)
    master.config.update(settings)
    master.config["budgets"] = [float(b) for b in master.budgets]
    master.budgets = np.asarray([float(b) for b in master.budgets])
    return master
