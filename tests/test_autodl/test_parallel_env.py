"""The environment of a local Dask cluster's worker processes (:func:`autodl.parallel.dask_client`)."""

from __future__ import annotations

import os


def _env(names: list[str]) -> dict[str, str | None]:
    return {n: os.environ.get(n) for n in names}


NAMES = ["MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]


def test_local_workers_start_without_malloc_trim_and_keep_the_thread_limits(monkeypatch):
    """Dask's MALLOC_TRIM_THRESHOLD_=65536 doubles the CPU a PyTorch training loop costs in a
    worker (docs/benchmarks.md): a local cluster's workers start without it, also after their
    nanny restarts them, and keep one thread each; Dask's configuration is left as it was."""
    import dask
    import distributed  # noqa: F401 - its configuration defaults

    from autodl.parallel import dask_client

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    before = dict(dask.config.get("distributed.nanny.pre-spawn-environ"))
    assert before.get("MALLOC_TRIM_THRESHOLD_") == 65536  # what Dask would give its workers
    with dask_client(1) as client:
        want = {"MALLOC_TRIM_THRESHOLD_": None, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        assert client.submit(_env, NAMES, pure=False).result() == want
        client.restart()
        assert client.submit(_env, NAMES, pure=False).result() == want
    assert dict(dask.config.get("distributed.nanny.pre-spawn-environ")) == before
