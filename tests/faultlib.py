"""Helpers of the fault tests (``pytest -m faults``): processes killed on an event, a full disk,
a read-only folder, a full disk at the moment a given file is written (:func:`fill_when_written`),
the test's own Dask scheduler and worker processes (:func:`dask`).

Every wait polls the file system (or a process) against a deadline, never a fixed sleep, and
fails naming what it waited for. A process is signalled only after checking that it belongs
to the process tree the test started (:func:`kill_in_tree`). Mounts (:func:`small_disk`,
:func:`read_only`) need root and ``mount`` (and ``mkfs.ext4``); the tests that use them skip with the reason
where either is missing, and every mount is undone on exit.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def wait_for(what: str, predicate: Callable[[], Any], *, timeout: float = 240.0, interval: float = 0.05,
             procs: tuple[subprocess.Popen, ...] = (), logs: tuple[Path, ...] = ()) -> Any:
    """Poll ``predicate`` until it returns something true (returned), failing after ``timeout``
    seconds or when one of ``procs`` exits first (its log in the message)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        for p in procs:
            if p.poll() is not None:
                pytest.fail(f"waiting for {what}: process {p.args[:6]} exited ({p.returncode}) first\n"
                            + tail(*logs))
        if time.monotonic() > deadline:
            pytest.fail(f"waiting for {what}: not within {timeout:.0f} s\n" + tail(*logs))
        time.sleep(interval)


def tail(*paths: Path, chars: int = 3000) -> str:
    out = []
    for p in paths:
        try:
            out.append(f"--- {p}\n" + Path(p).read_text(errors="replace")[-chars:])
        except OSError:
            pass
    return "\n".join(out)


def cli(*args: str, log: Path, **kwargs: Any) -> subprocess.Popen:
    """``python -m autodl_meta.cli ARGS`` with its output appended to ``log`` (never a pipe
    that could fill up)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-m", "autodl_meta.cli", *args], env=env, stdout=f,
                                stderr=subprocess.STDOUT, **kwargs)


def python(code: str, *args: str, log: Path) -> subprocess.Popen:
    """``python -c CODE ARGS`` in the repository, output appended to ``log``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")]), "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=f, stderr=subprocess.STDOUT,
                                cwd=REPO)


def dask(*args: str, log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """``dask ARGS`` (``scheduler``, ``worker``) of this environment, a child of the test (so that
    :func:`kill_in_tree` may signal it and what it starts), the repository on its
    ``PYTHONPATH`` (the workers import the tasks' functions), output appended to ``log``."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with open(log, "ab") as f:
        return subprocess.Popen([str(Path(sys.executable).with_name("dask")), *args], env=env, stdout=f,
                                stderr=subprocess.STDOUT, cwd=cwd or REPO)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (for a scheduler that must come back on the same address)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def finish(p: subprocess.Popen, log: Path, timeout: float = 300.0) -> int:
    """Wait for ``p`` (killing it, and failing, after ``timeout``); its exit code."""
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        pytest.fail(f"{p.args[:6]} did not finish within {timeout:.0f} s\n" + tail(log))


# --- processes ------------------------------------------------------------------------------------
def _ppid(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])


def descendants(root: int) -> set[int]:
    """The process ids below ``root`` (children, their children, ...), read from /proc."""
    parents = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            pp = _ppid(int(d.name))
            if pp is not None:
                parents[int(d.name)] = pp
    out: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, pp in parents.items() if pp in frontier and pid not in out}
        out |= frontier
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_in_tree(root: subprocess.Popen | int, pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` after checking that it is ``root`` or one of its descendants (a
    process this test started), so that nothing else on the machine is ever signalled."""
    root_pid = root if isinstance(root, int) else root.pid
    assert pid == root_pid or pid in descendants(root_pid), f"{pid} is not in the process tree of {root_pid}"
    os.kill(pid, sig)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


# --- records --------------------------------------------------------------------------------------
def jsonl_lines(path: Path) -> int:
    """Complete JSON lines in ``path`` (0 where it is absent)."""
    try:
        text = path.read_text()
    except OSError:
        return 0
    n = 0
    for line in text.splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            json.loads(line)
            n += 1
    return n


def assert_every_line_is_json(path: Path) -> list[dict[str, Any]]:
    """Every line of ``path`` parses (no half-written line) and the file ends with a newline."""
    text = path.read_text()
    assert not text or text.endswith("\n"), f"{path}: the last line is cut"
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# --- a full disk, a read-only folder --------------------------------------------------------------
def _mount(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["mount", *args], capture_output=True, text=True)


def _unmount(path: Path, timeout: float = 60.0) -> None:
    """Unmount ``path``, waiting (up to ``timeout`` s) while processes of the test that used it
    still hold it (a killed command's workers exit a few seconds after it), then lazily."""
    deadline = time.monotonic() + timeout
    while True:
        r = subprocess.run(["umount", str(path)], capture_output=True, text=True)
        if r.returncode == 0 or "not mounted" in r.stderr or "no mount point" in r.stderr:
            return
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(path)], capture_output=True)
            return
        time.sleep(0.5)


def _need_mount() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (a full disk) or a read-only bind mount")
    if shutil.which("mount") is None:
        pytest.skip("needs the mount command")


@contextlib.contextmanager
def small_disk(path: Path, size_mb: int = 4) -> Iterator[Path]:
    """A file system of ``size_mb`` MiB mounted on ``path`` (created), unmounted on exit: ext4
    with 1 KiB blocks in a loop-mounted image beside it. Not a tmpfs: a tmpfs allocates whole
    4 KiB pages, so that a full one still takes several more lines into the last page of a
    ``.jsonl`` file and a test cannot know when the first write fails; here the slack is under
    1 KiB, less than three of the records' lines."""
    _need_mount()
    if shutil.which("mkfs.ext4") is None:
        pytest.skip("needs mkfs.ext4 (e2fsprogs) for a small loop-mounted disk")
    image = path.with_name(path.name + ".img")
    with open(image, "wb") as f:
        f.truncate(size_mb << 20)
    r = subprocess.run(["mkfs.ext4", "-q", "-F", "-b", "1024", "-m", "0", "-O", "^has_journal", str(image)],
                       capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mkfs.ext4 failed here ({r.stderr.strip()})")
    path.mkdir(parents=True, exist_ok=True)
    r = _mount("-o", "loop", str(image), str(path))
    if r.returncode:
        pytest.skip(f"cannot loop-mount a small disk here ({r.stderr.strip()}); a full disk is not tested")
    try:
        yield path
    finally:
        _unmount(path)
        image.unlink(missing_ok=True)


def fill(folder: Path, name: str = "filler") -> Path:
    """Fill the file system of ``folder`` to the last byte with one file (returned)."""
    filler = folder / name
    block = b"\0" * 65536
    with open(filler, "wb", buffering=0) as f:
        while True:
            try:
                f.write(block)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    return filler


def fill_when_written(disk: str | Path, target: str | Path) -> None:
    """In this process, fill the file system of ``disk`` (:func:`fill`, file ``filler``) at the
    moment ``target`` is first opened for writing, itself or the temporary name an atomic
    writer gives it beside it (``.NAME.*.tmp*``, :func:`autodl.records.atomic_path`): the
    full disk hits exactly that whole-file write, whatever the program wrote before. An audit
    hook (``sys.addaudithook``, event ``open``), so that neither the program nor the library is
    changed; once only. :data:`WRITE_FAULT` runs a command under it."""
    disk, target = Path(disk), Path(os.path.abspath(target))
    state = {"done": False}

    def hook(event: str, args: tuple) -> None:
        if event != "open" or state["done"] or not isinstance(args[0], (str, bytes, os.PathLike)):
            return
        mode, flags = args[1], args[2] or 0
        writing = (any(c in mode for c in "wax+") if isinstance(mode, str)
                   else bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)))
        path = Path(os.path.abspath(os.fsdecode(args[0])))
        if not writing or path.parent != target.parent:
            return
        if path.name == target.name or (path.name.startswith(f".{target.name}.") and ".tmp" in path.name):
            state["done"] = True
            fill(disk)
            print(f"faults: {disk} filled as {path.name} is opened for writing", file=sys.stderr, flush=True)

    sys.addaudithook(hook)


WRITE_FAULT = r"""
import runpy, sys
from faultlib import fill_when_written
disk, target, *argv = sys.argv[1:]
fill_when_written(disk, target)
sys.argv = argv
runpy.run_module(argv[0], run_name="__main__", alter_sys=True)
"""
"""``python -c WRITE_FAULT DISK TARGET MODULE ARGS``: ``python -m MODULE ARGS`` (the command line,
``autodl_meta.cli``; or a script's module) with the disk of ``DISK`` filled as ``TARGET`` is
written (:func:`fill_when_written`); run with :func:`python`."""



def assert_stopped_by_full_disk(proc: subprocess.Popen, log: Path, target: Path, timeout: float = 300.0) -> None:
    """``proc`` ended with exit 2 and one last line naming ``target`` as full, without a traceback."""
    assert finish(proc, log, timeout=timeout) == 2, tail(log)
    lines = log.read_text().strip().splitlines()
    assert lines[-1] == f"autodl-meta: error: {target}: No space left on device", tail(log)
    assert not any("Traceback" in line for line in lines), tail(log)

@contextlib.contextmanager
def read_only(path: Path) -> Iterator[Path]:
    """``path`` made read-only for everyone, root included: a read-only bind mount of itself
    (``chmod 0555`` does not stop root), undone on exit."""
    _need_mount()
    r = _mount("--bind", str(path), str(path))
    if r.returncode:
        pytest.skip(f"cannot bind-mount here ({r.stderr.strip()}); a read-only folder is not tested")
    try:
        r = _mount("-o", "remount,ro,bind", str(path))
        if r.returncode:
            pytest.skip(f"cannot remount read-only here ({r.stderr.strip()})")
        probe = path / ".write-probe"
        with contextlib.suppress(OSError):
            probe.write_text("x")
            probe.unlink()
            pytest.skip("a read-only bind mount is still writable here")
        yield path
    finally:
        _unmount(path)
