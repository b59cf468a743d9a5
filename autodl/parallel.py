"""Dask set-up shared by the offline stages that run many independent tasks (the cost
matrix's cells, the meta-features of a collection, the held-out benchmark).

A ``LocalCluster`` of single-threaded worker processes by default, its scheduler, nannies and
workers bound to loopback (``127.0.0.1``: nothing listens beyond this machine; no Bokeh
dashboard, the scheduler's plain HTTP endpoints, health and metrics, on loopback port 8787 or
a free one);
any scheduler address (e.g. one started by dask-jobqueue's ``SLURMCluster``) for a cluster.

A local cluster's workers start without Dask's ``MALLOC_TRIM_THRESHOLD_=65536`` (its default
``distributed.nanny.pre-spawn-environ``; the thread limits ``OMP_NUM_THREADS=1`` etc. are kept):
with it glibc hands every freed buffer above 64 KiB back to the system, and a PyTorch training
loop, which frees and reallocates its activations at every step, then spends as much again in
page faults. Measured (``docs/benchmarks.md``): one simulated-clock evaluation of a fine-tuning
configuration took 152 CPU seconds in a Dask worker with it, 72 without, 69 in a plain process,
with the same ALC to the last digit. Workers of a cluster started elsewhere keep the environment
their launcher gives them: give their Dask configuration the ``pre-spawn-environ`` of
:func:`worker_environ`.

Dask moves tasks and results as pickles: whoever can connect to a scheduler or a worker can
run code there. On a cluster, use TLS with certificates (:func:`tls_security`): the command
line's ``--tls-ca-file CA --tls-cert CERT --tls-key KEY`` (:func:`add_tls_arguments`) make
every client (and a local cluster: scheduler and workers) of the command speak ``tls://``,
requiring encryption and a certificate signed by the CA. Dask's own configuration works too
(``DASK_DISTRIBUTED__COMM__TLS__CA_FILE``, ``..._CLIENT__CERT``, ``..._CLIENT__KEY``,
``DASK_DISTRIBUTED__COMM__REQUIRE_ENCRYPTION=True``): a client made without explicit
settings reads it.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
"""Where a local cluster's scheduler and workers listen."""

DROPPED_WORKER_ENV = ("MALLOC_TRIM_THRESHOLD_",)
"""Variables of Dask's ``distributed.nanny.pre-spawn-environ`` a local cluster's workers start
without (see the module docstring)."""


def worker_environ() -> dict[str, Any]:
    """Dask's ``distributed.nanny.pre-spawn-environ`` without :data:`DROPPED_WORKER_ENV`."""
    import dask
    import distributed  # noqa: F401 - loads distributed's configuration defaults

    env = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    for name in DROPPED_WORKER_ENV:
        env.pop(name, None)
    return env

_DEFAULT: dict[str, Any] = {"security": None}
"""The security settings of :func:`dask_client` when none are passed (:func:`set_default_security`)."""


def tls_security(ca_file: str | Path, cert: str | Path, key: str | Path) -> Any:
    """A ``distributed.security.Security`` for TLS with one certificate for every role
    (client, scheduler, worker), signed by the CA in ``ca_file``; encryption required.

    Raises
    ------
    AutoDLError
        A file that does not exist (named, with its option).
    """
    from distributed.security import Security

    for option, path in (("--tls-ca-file", ca_file), ("--tls-cert", cert), ("--tls-key", key)):
        if not Path(path).is_file():
            raise AutoDLError(path, "not found; expected a PEM file", field=option)
    ca, c, k = str(ca_file), str(cert), str(key)
    return Security(tls_ca_file=ca, tls_client_cert=c, tls_client_key=k, tls_scheduler_cert=c,
                    tls_scheduler_key=k, tls_worker_cert=c, tls_worker_key=k, require_encryption=True)


def set_default_security(security: Any) -> None:
    """The security settings :func:`dask_client` uses when it is given none (None: Dask's own
    configuration, plain TCP unless it says otherwise)."""
    _DEFAULT["security"] = security


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-ca-file``, ``--tls-cert``, ``--tls-key``: TLS for the command's Dask traffic
    (all three or none; read back by :func:`apply_tls_arguments`)."""
    g = parser.add_argument_group("Dask TLS (all three, or none: plain TCP, or Dask's own configuration)")
    g.add_argument("--tls-ca-file", default=None, help="PEM file of the CA that signed the cluster's certificates")
    g.add_argument("--tls-cert", default=None, help="PEM certificate of this client (and of a local cluster)")
    g.add_argument("--tls-key", default=None, help="PEM private key of --tls-cert")


def apply_tls_arguments(args: argparse.Namespace) -> None:
    """Make the options of :func:`add_tls_arguments` (where the command has them and they are
    given) the default security of :func:`dask_client`.

    Raises
    ------
    AutoDLError
        Some but not all three given, or a file that does not exist.
    """
    given = {name: getattr(args, name, None) for name in ("tls_ca_file", "tls_cert", "tls_key")}
    if not any(given.values()):
        return
    missing = [f"--{n.replace('_', '-')}" for n, v in given.items() if not v]
    if missing:
        raise AutoDLError(None, f"TLS needs --tls-ca-file, --tls-cert and --tls-key together; missing "
                                f"{', '.join(missing)}", field=missing[0])
    set_default_security(tls_security(given["tls_ca_file"], given["tls_cert"], given["tls_key"]))


def _tls_address(scheduler: str) -> str:
    if scheduler.startswith("tls://"):
        return scheduler
    if "://" in scheduler:
        raise AutoDLError(None, f"{scheduler!r}: TLS settings are given, so the scheduler's address must be "
                                "tls://HOST:PORT", field="--scheduler")
    return "tls://" + scheduler


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None = None, *, what: str = "tasks",
                security: Any = None) -> Iterator[Any]:
    """A ``dask.distributed.Client``: on a new local cluster of ``workers`` processes with one
    thread each, bound to loopback, or on the existing ``scheduler``; everything started here
    is closed on exit.

    ``what`` names the tasks in the warning logged when the scheduler has no worker yet.
    ``security``: a ``distributed.security.Security`` (e.g. :func:`tls_security`; default: the
    one of :func:`set_default_security`, else Dask's configuration); with TLS a local cluster
    speaks ``tls://`` between its scheduler, workers and this client, and a ``scheduler``
    address must be ``tls://`` (a bare ``HOST:PORT`` gets it).
    """
    import dask
    from dask.distributed import Client, LocalCluster

    security = security if security is not None else _DEFAULT["security"]
    tls = security is not None and bool(getattr(security, "tls_ca_file", None))
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            # for the whole life of the cluster: a nanny reads it again when it restarts its worker
            stack.enter_context(dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}))
            kwargs: dict[str, Any] = {"n_workers": workers, "threads_per_worker": 1, "processes": True,
                                      "host": LOOPBACK, "dashboard_address": None, "silence_logs": logging.ERROR}
            if security is not None:
                kwargs["security"] = security
            if tls:
                kwargs["protocol"] = "tls://"
            cluster = stack.enter_context(LocalCluster(**kwargs))
            client = stack.enter_context(Client(cluster, security=security))
        else:
            address = _tls_address(scheduler) if tls else scheduler
            client = stack.enter_context(Client(address, security=security))
            if not client.scheduler_info().get("workers"):
                logger.warning("the scheduler at %s has no worker yet: %s wait until workers join", address, what)
        yield client
