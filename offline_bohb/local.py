"""Running BOHB: all of it on this machine (:func:`run_local`), or its parts on a cluster.

- :func:`run_local`: a Pyro4 nameserver (a thread of this process, bound to loopback, its
  traffic authenticated with the run's HMAC key from the credentials file, as on a cluster),
  N worker processes (``python -m offline_bohb.local worker``, one PyTorch thread each) and
  the master (this process). Every trial is appended to ``trials.jsonl`` as it finishes;
  on return, on an error or on Ctrl-C the master, the workers and the nameserver are shut
  down. A worker that dies does not stop the run; when all have died the run stops (its
  trials kept) with an error. Workers exit by themselves when this process dies.
- Cluster (``autodl-meta bohb nameserver|master|worker --shared-dir DIR --run-id ID``):
  :func:`serve_nameserver` writes ``nameserver-<run id>.json`` into the shared folder;
  :func:`serve_run_worker` waits for it and for ``run.json`` and serves trials; the master
  is :func:`offline_bohb.run.run_master`. See ``offline_bohb/slurm/README.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from offline_bohb.hpb import BOHBError, read_credentials, serve_worker, start_nameserver
from offline_bohb.run import RunFolder, RunSpec, RunSummary, default_run_id, load_objective, run_master

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 5.0
"""Seconds between a worker's checks that its parent (local) or nameserver (cluster) lives."""


def _watchdog(parent_pid: int | None, nameserver: tuple[str, int], interval: float = WATCH_INTERVAL,
              misses: int = 6) -> None:
    """Exit this worker process when its parent dies, or when the nameserver has not answered
    ``misses`` checks in a row (the master's run is over or gone)."""
    import Pyro4

    failed = 0
    while True:
        time.sleep(interval)
        if parent_pid is not None and os.getppid() != parent_pid:
            logger.warning("worker %d: parent %d is gone; exiting", os.getpid(), parent_pid)
            os._exit(0)
        try:
            with Pyro4.locateNS(host=nameserver[0], port=nameserver[1],
                                hmac_key=_key_bytes(getattr(nameserver, "hmac_key", None))) as ns:
                ns.ping()
            failed = 0
        except Exception:  # any failure to reach it counts as a miss
            failed += 1
            if failed >= misses:
                logger.warning("worker %d: the nameserver %s:%d has not answered for %.0f s; exiting", os.getpid(),
                               *nameserver, failed * interval)
                os._exit(0)


def _key_bytes(key: str | None) -> bytes | None:
    return key.encode("ascii") if key else None


def serve_run_worker(shared_dir: str | Path, run_id: str, *, interface: str | None = None, wait: float = 600.0,
                     parent_pid: int | None = None, idle_timeout: float | None = None) -> None:
    """Serve the trials of run ``run_id`` in ``shared_dir`` until the master shuts the worker down.

    Waits up to ``wait`` seconds for the nameserver's credentials and for ``run.json``.
    """
    nameserver = read_credentials(shared_dir, run_id, wait=wait)
    folder = RunFolder(shared_dir)
    deadline = time.monotonic() + wait
    while not folder.run_json.is_file():
        if time.monotonic() > deadline:
            folder.read_run()  # raises, naming the file
        time.sleep(1.0)
    run = folder.read_run()
    evaluate_trial = load_objective(run)
    threading.Thread(target=_watchdog, args=(parent_pid, nameserver), daemon=True, name="watchdog").start()
    serve_worker(run_id, nameserver, evaluate_trial, interface=interface, idle_timeout=idle_timeout)


def serve_nameserver(shared_dir: str | Path, run_id: str, *, interface: str | None = None,
                     stop: Callable[[], bool] | None = None) -> None:
    """Run a nameserver for ``run_id`` (credentials in ``shared_dir``) until ``stop()`` or Ctrl-C."""
    ns = start_nameserver(run_id, shared_dir, interface=interface)
    try:
        while not (stop is not None and stop()):
            time.sleep(1.0)
    finally:
        ns.shutdown()


def _worker_command(shared_dir: Path, run_id: str) -> list[str]:
    return [sys.executable, "-m", "offline_bohb.local", "worker", "--shared-dir", str(shared_dir), "--run-id", run_id,
            "--parent-pid", str(os.getpid())]


def run_local(spec: RunSpec, out: str | Path, workers: int = 2, *, ping_interval: float = 10.0,
              progress: Callable[[RunSummary, Mapping[str, Any]], None] | None = None,
              on_workers: Callable[[list[subprocess.Popen]], None] | None = None) -> RunSummary:
    """Run (or resume) BOHB on this machine: nameserver, ``workers`` worker processes, master.

    Parameters
    ----------
    spec:
        What to search (:class:`~offline_bohb.run.RunSpec`); over an existing run folder it
        must match the run there (it then resumes).
    out:
        The run folder (``run.json``, ``trials.jsonl``, ``configs.jsonl``, ``logs/``).
    workers:
        Worker processes (one evaluation and one PyTorch thread each).
    ping_interval:
        Seconds between the master's checks for new and dead workers.
    progress:
        Called after every trial with the summary so far and the trial's row.
    on_workers:
        Called with the worker processes once started (tests kill one).
    """
    if workers < 1:
        raise BOHBError(None, f"workers={workers}: expected at least 1", field="workers")
    out = Path(out).resolve()
    spec.run_id = spec.run_id or default_run_id()
    RunFolder(out).start(spec)
    ns = start_nameserver(spec.run_id, out)
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1])]
                                         + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    procs: list[subprocess.Popen] = []
    stopped_by: list[str] = []
    try:
        for i in range(workers):
            log = open(logs / f"worker-{i}.log", "ab")
            procs.append(subprocess.Popen(_worker_command(out, spec.run_id), stdout=log, stderr=subprocess.STDOUT,
                                          env=env, start_new_session=True))
            log.close()
        if on_workers is not None:
            on_workers(procs)

        def all_dead() -> bool:
            dead = all(p.poll() is not None for p in procs)
            stopped_by.extend(["workers"] if dead else [])
            return dead

        summary = run_master(out, ns.address, min_workers=1, ping_interval=ping_interval,
                             progress=progress, stop=all_dead)
        return summary
    except BOHBError as exc:
        if stopped_by:  # not when the master stopped for another reason and shut them down
            raise BOHBError(logs, f"every worker process exited (see the logs in {logs}); {exc.message} ",
                            field="workers") from None
        raise
    finally:
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
        ns.shutdown()


def main(argv: list[str] | None = None) -> int:
    """``python -m offline_bohb.local worker --shared-dir DIR --run-id ID``: one worker process."""
    p = argparse.ArgumentParser(prog="python -m offline_bohb.local")
    sub = p.add_subparsers(dest="what", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--shared-dir", required=True)
    w.add_argument("--run-id", required=True)
    w.add_argument("--interface")
    w.add_argument("--parent-pid", type=int)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("hpbandster").setLevel(logging.WARNING)
    logging.getLogger("Pyro4").setLevel(logging.WARNING)
    serve_run_worker(args.shared_dir, args.run_id, interface=args.interface, parent_pid=args.parent_pid)
    return 0


if __name__ == "__main__":
    sys.exit(main())
