"""Dask set-up shared by the offline stages that run many independent tasks (the cost
matrix's cells, the meta-features of a collection).

A ``LocalCluster`` of single-threaded worker processes by default; any scheduler address
(e.g. one started by dask-jobqueue's ``SLURMCluster``) for a cluster.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def dask_client(workers: int, scheduler: str | None = None, *, what: str = "tasks") -> Iterator[Any]:
    """A ``dask.distributed.Client``: on a new local cluster of ``workers`` processes with one
    thread each, or on the existing ``scheduler``; everything started here is closed on exit.

    ``what`` names the tasks in the warning logged when the scheduler has no worker yet.
    """
    from dask.distributed import Client, LocalCluster

    with contextlib.ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                       dashboard_address=None, silence_logs=logging.ERROR))
            client = stack.enter_context(Client(cluster))
        else:
            client = stack.enter_context(Client(scheduler))
            if not client.scheduler_info().get("workers"):
                logger.warning("the scheduler at %s has no worker yet: %s wait until workers join", scheduler, what)
        yield client
