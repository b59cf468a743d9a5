"""Helpers of the fault tests (``pytest -m faults``): processes killed on an event, a full disk,
a read-only folder.

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
