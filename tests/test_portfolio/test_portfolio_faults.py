"""Faults in the cost matrix and the default build (``pytest -m faults``): a Dask worker killed in
the middle of a cell, an external Dask scheduler killed, a nanny killed with its worker, a full
disk (as a cell is appended, and as each file written whole is written: the CSV, the heatmap,
the summaries, the build's greedy analysis and its figure), a read-only output folder;
``portfolio.build.build`` stopped between two steps and killed inside its BOHB and pool-matrix
steps.

After each fault the same command finishes; every finished cell (trial) is recorded once, and
the cells, the incumbents and the portfolio equal those of an undisturbed run (simulated clock,
the hand-made timing table of ``tests/conftest.py``: an evaluation is a function of the
configuration, the dataset and the seed). Processes are killed when an event is seen on disk
(a line in ``cells.jsonl`` or ``trials.jsonl``) or at a build event, never after a fixed
sleep. docs/reliability.md has the matrix.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import flat_timing
from faultlib import (WRITE_FAULT, alive, assert_every_line_is_json, assert_stopped_by_full_disk, cli, dask,
                      descendants, fill, finish, free_port, jsonl_lines, kill_in_tree, python, read_only,
                      small_disk, tail, wait_for)

from autodl.protocol import Protocol
from autodl.records import read_jsonl
from autodl.writer import write_arrays
from portfolio.cost_matrix import CSV_FILE, HEATMAP_FILE, SUMMARY_JSON, SUMMARY_MD, run_cost_matrix
from portfolio.incumbents import Incumbent, Portfolio

pytestmark = [pytest.mark.faults, pytest.mark.slow, pytest.mark.usefixtures("torch_threads_1")]

PROTO = Protocol("tiny", time_budget=6.0, t0=0.3)
CHEAP = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
         "learning_rate": 0.01, "pretrained": False, "augmentation": "none"}
CONFIGS = {"bars": {**CHEAP, "probes": "raw"}, "dots": {**CHEAP, "probes": "raw+random"},
           "rings": {**CHEAP, "finetune": False}}
TINY_SPACE = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"


# --- the cost matrix --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def matrix_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(portfolio.json, collection folder): three incumbents, three datasets of a dozen 8x8 images."""
    root = tmp_path_factory.mktemp("matrix")
    for k, name in enumerate(CONFIGS):
        rng = np.random.default_rng(k)

        def images(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.permutation(np.arange(n) % 2)
            x = rng.integers(0, 90, (n, 8, 8, 1)).astype(np.uint8)
            for i, c in enumerate(y):
                x[i, 4 * c:4 * c + 4, k:k + 4] = 230
            return x, y

        write_arrays(root / "data" / name, name, *images(12), *images(6), num_classes=2)
    timing = flat_timing(0.05, 0.0005).save(root / "timing.json")
    sha = hashlib.sha256(timing.read_bytes()).hexdigest()
    incumbents = [Incumbent(dataset=name, dataset_path=str(root / "data" / name), config=dict(config), alc=0.5,
                            budget=1.0, config_id=(0, 0, i), trials=3, run_id=f"run-{name}")
                  for i, (name, config) in enumerate(CONFIGS.items())]
    portfolio = Portfolio(protocol=PROTO.to_dict(), clock="simulated", timing={"path": str(timing), "sha256": sha},
                          space={"path": "configs/space/finetune.yaml", "sha256": "00" * 32}, incumbents=incumbents,
                          provenance={"versions": {}, "seeds": {}, "date": "2026-01-01", "command": "test"})
    return portfolio.save(root / "portfolio.json"), root / "data"


def _cells(rows: list[dict[str, Any]]) -> dict[tuple, tuple]:
    """(source, target, seed) -> (status, ALC), checking that no cell is there twice."""
    keys = [(r["source"], r["target"], int(r["seed"])) for r in rows]
    assert len(keys) == len(set(keys)), f"cells recorded twice: {sorted(k for k in keys if keys.count(k) > 1)}"
    return {(r["source"], r["target"], int(r["seed"])): (r["status"], r["alc"]) for r in rows}


@pytest.fixture(scope="module")
def undisturbed_cells(matrix_inputs, tmp_path_factory: pytest.TempPathFactory) -> dict[tuple, tuple]:
    portfolio, data = matrix_inputs
    result = run_cost_matrix(portfolio, data, tmp_path_factory.mktemp("undisturbed"), workers=0, device="cpu")
    cells = _cells(result.cells)
    assert len(cells) == 9 and all(status == "ok" for status, _ in cells.values())
    return cells


def _matrix_args(matrix_inputs, out: Path, *extra: str) -> list[str]:
    portfolio, data = matrix_inputs
    return ["portfolio", "cost-matrix", "--portfolio", str(portfolio), "--datasets", str(data), "--out", str(out),
            "--device", "cpu", *extra]


@pytest.mark.timeout(600)
def test_a_dask_worker_killed_mid_cell_is_retried_and_the_matrix_is_the_undisturbed_one(matrix_inputs, tmp_path,
                                                                                       undisturbed_cells):
    out, log = tmp_path / "matrix", tmp_path / "matrix.log"
    args = _matrix_args(matrix_inputs, out, "--workers", "2")
    first = cli(*args, log=log)
    cells = out / "cells.jsonl"

    def workers_seen() -> list[int]:
        return list(dict.fromkeys(int(r["worker"].rsplit(":", 1)[1]) for r in read_jsonl(cells)))

    # both Dask workers have finished a cell (their process ids are in the rows): each is now busy
    wait_for("a cell from each Dask worker", lambda: len(workers_seen()) >= 2, procs=(first,), logs=(log,))
    n = jsonl_lines(cells)
    wait_for("the next cell", lambda: jsonl_lines(cells) > n, procs=(first,), logs=(log,))
    rows = read_jsonl(cells)
    just = int(rows[-1]["worker"].rsplit(":", 1)[1])
    # the other one is in the middle of its cell (9 cells for 2 workers: none is idle before the end)
    victim = next(pid for pid in workers_seen() if pid != just)
    assert len(rows) < 9, "the matrix finished before a worker could be killed"
    kill_in_tree(first, victim)
    assert finish(first, log) == 0, tail(log)  # the nanny starts a new worker; Dask runs the cell again
    rows = read_jsonl(cells)
    assert victim not in {int(r["worker"].rsplit(":", 1)[1]) for r in rows[n + 1:]}
    assert _cells(rows) == undisturbed_cells

    log.write_text("")
    again = cli(*args, log=log)  # the same command: nothing left to compute
    assert finish(again, log) == 0, tail(log)
    assert "0 cells computed now" in log.read_text()
    assert _cells(read_jsonl(cells)) == undisturbed_cells


@pytest.mark.timeout(600)
def test_a_full_disk_stops_the_matrix_naming_the_file_and_keeps_every_cell(matrix_inputs, tmp_path,
                                                                           undisturbed_cells):
    log = tmp_path / "matrix.log"
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "matrix"
        args = _matrix_args(matrix_inputs, out, "--workers", "0")
        first = cli(*args, log=log)
        cells = out / "cells.jsonl"
        wait_for("the first cell", lambda: jsonl_lines(cells) >= 1, procs=(first,), logs=(log,))
        filler = fill(disk)
        assert finish(first, log) == 2, tail(log)
        last = log.read_text().strip().splitlines()[-1]
        assert last.startswith(f"autodl-meta: error: {cells}: cannot be written (No space left on device)"), last
        rows = assert_every_line_is_json(cells)  # no half-written line; what was recorded is kept
        assert 1 <= len(rows) < 9
        kept = {k: v for k, v in _cells(rows).items()}
        assert kept == {k: undisturbed_cells[k] for k in kept}

        filler.unlink()
        again = cli(*args, log=log)
        assert finish(again, log) == 0, tail(log)
        assert _cells(read_jsonl(cells)) == undisturbed_cells


@pytest.mark.timeout(300)
def test_a_read_only_matrix_folder_is_refused_naming_the_file_and_left_as_it_was(matrix_inputs, tmp_path):
    portfolio, data = matrix_inputs
    folder = tmp_path / "ro"
    out = folder / "matrix"
    run_cost_matrix(portfolio, [("bars", data / "bars")], out, workers=0, device="cpu")  # 3 of 9 cells
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    log = tmp_path / "matrix.log"
    with read_only(folder):
        assert finish(cli(*_matrix_args(matrix_inputs, out, "--workers", "0"), log=log), log) == 2, tail(log)
        lines = log.read_text().strip().splitlines()
        assert lines[-1].startswith(f"autodl-meta: error: {out}/") and "Read-only file system" in lines[-1], tail(log)
        assert not any("Traceback" in line for line in lines)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files


def _temporary(folder: Path) -> list[str]:
    """What an atomic writer left behind in ``folder`` (its temporary names hold ``.tmp``)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".tmp" in p.name)


@pytest.mark.timeout(900)
def test_a_full_disk_as_each_file_written_whole_is_written_names_it_and_keeps_the_one_before(matrix_inputs, tmp_path,
                                                                                             undisturbed_cells):
    # the CSV, the heatmap (matplotlib), summary.json and summary.md, in the order the command
    # writes them: each run of the same command meets a full disk at the next one
    portfolio, data = matrix_inputs
    log = tmp_path / "matrix.log"
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "matrix"
        cells = out / "cells.jsonl"
        run_cost_matrix(portfolio, [("bars", data / "bars")], out, workers=0, device="cpu")  # 3 of 9 cells
        whole = [out / name for name in (CSV_FILE, HEATMAP_FILE, SUMMARY_JSON, SUMMARY_MD)]
        partial = {p: p.read_bytes() for p in whole}  # the versions before: a matrix of one dataset
        args = _matrix_args(matrix_inputs, out, "--workers", "0")
        for target in whole:
            before = target.read_bytes()
            log.write_text("")
            faulty = python(WRITE_FAULT, str(disk), str(target), "autodl_meta.cli", *args, log=log)
            assert_stopped_by_full_disk(faulty, log, target)
            assert target.read_bytes() == before, f"{target.name}: not the version before"
            assert _temporary(out) == []
            # the 6 cells the first faulty run computed before its summaries are recorded, whole
            assert _cells(assert_every_line_is_json(cells)) == undisturbed_cells
            (disk / "filler").unlink()  # space again: the same command

        log.write_text("")
        assert finish(cli(*args, log=log), log) == 0, tail(log)
        assert "0 cells computed now" in log.read_text()
        assert _cells(read_jsonl(cells)) == undisturbed_cells
        assert all(p.read_bytes() != partial[p] for p in whole)  # each failed write would have changed its file
        assert json.loads((out / SUMMARY_JSON).read_text())["cells"] == {"ok": 3 * 3}
        assert (out / HEATMAP_FILE).read_bytes().startswith(b"\x89PNG")
        assert _temporary(out) == []


# --- an external Dask cluster: its scheduler killed, a nanny killed with its worker ----------------
class _Cluster:
    """A Dask scheduler on ``127.0.0.1:port`` and ``n`` ``dask worker`` processes (a nanny each,
    which starts one single-threaded worker process), all children of the test."""

    def __init__(self, tmp: Path, port: int, n: int = 2) -> None:
        self.address = f"tcp://127.0.0.1:{port}"
        self.log = tmp / "scheduler.log"
        self.scheduler = dask("scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard",
                              log=self.log, cwd=tmp)
        self.worker_logs = [tmp / f"worker-{i}.log" for i in range(n)]
        wait_for(f"the scheduler at {self.address}", lambda: "Scheduler at:" in self.log.read_text(),
                 procs=(self.scheduler,), logs=(self.log,), timeout=120)
        self.workers = []
        for i, w_log in enumerate(self.worker_logs):
            start = len(w_log.read_text()) if w_log.is_file() else 0
            self.workers.append(dask("worker", self.address, "--nworkers", "1", "--nthreads", "1", "--host",
                                     "127.0.0.1", "--no-dashboard", "--memory-limit", "0", "--local-directory",
                                     str(tmp / f"dask-{i}"), log=w_log, cwd=tmp))
            wait_for(f"worker {i} to register", lambda w_log=w_log, start=start: "Registered to"
                     in w_log.read_text()[start:], procs=(self.workers[-1],), logs=(w_log,), timeout=120)

    def logs(self) -> tuple[Path, ...]:
        return (self.log, *self.worker_logs)

    def stop(self) -> None:
        """SIGKILL what is left of it, the workers' processes before their nannies (a worker process
        whose nanny died first is no longer in the test's tree)."""
        for root in (*self.workers, self.scheduler):
            if root.poll() is None:
                for pid in sorted(descendants(root.pid), reverse=True):
                    if alive(pid):
                        kill_in_tree(root, pid)
                kill_in_tree(root, root.pid)
            root.wait()


def _computed_now(log: Path) -> int:
    return int(re.search(r"(\d+) cells computed now", log.read_text()).group(1))


@pytest.mark.timeout(900)
def test_a_killed_dask_scheduler_stops_the_matrix_with_one_line_and_a_new_one_computes_the_rest(matrix_inputs,
                                                                                               tmp_path,
                                                                                               undisturbed_cells):
    out, log = tmp_path / "matrix", tmp_path / "matrix.log"
    cells = out / "cells.jsonl"
    port = free_port()
    args = _matrix_args(matrix_inputs, out, "--scheduler", f"tcp://127.0.0.1:{port}")
    cluster = _Cluster(tmp_path, port)
    try:
        first = cli(*args, log=log)
        wait_for("the first cell", lambda: jsonl_lines(cells) >= 1, procs=(first,), logs=(log, *cluster.logs()))
        kill_in_tree(cluster.scheduler, cluster.scheduler.pid)
        cluster.scheduler.wait()
        killed = time.monotonic()
        assert finish(first, log, timeout=180) == 2, tail(log)
        # at once (2 s measured), not after Dask's 30 s of trying to reconnect
        assert time.monotonic() - killed < 20, f"stopped {time.monotonic() - killed:.0f} s after the kill"
        lines = log.read_text().strip().splitlines()
        assert not any("Traceback" in line for line in lines), tail(log)
        assert lines[-1].startswith(f"autodl-meta: error: {cells}: ") and "scheduler" in lines[-1], tail(log)
        rows = assert_every_line_is_json(cells)
        kept = _cells(rows)
        assert 1 <= len(kept) < 9 and kept == {k: undisturbed_cells[k] for k in kept}
    finally:
        cluster.stop()

    # a new scheduler on the same address, new workers: the same command computes the rest
    cluster = _Cluster(tmp_path, port)
    try:
        log.write_text("")
        assert finish(cli(*args, log=log), log) == 0, tail(log, *cluster.logs())
    finally:
        cluster.stop()
    assert _computed_now(log) == 9 - len(kept)
    after = read_jsonl(cells)
    assert after[:len(rows)] == rows
    assert _cells(after) == undisturbed_cells


@pytest.mark.timeout(900)
def test_a_nanny_killed_with_its_worker_mid_cell_leaves_the_matrix_to_the_other_worker(matrix_inputs, tmp_path,
                                                                                      undisturbed_cells):
    out, log = tmp_path / "matrix", tmp_path / "matrix.log"
    cells = out / "cells.jsonl"
    cluster = _Cluster(tmp_path, free_port())
    try:
        first = cli(*_matrix_args(matrix_inputs, out, "--scheduler", cluster.address), log=log)

        def workers_seen() -> list[int]:
            return list(dict.fromkeys(int(r["worker"].rsplit(":", 1)[1]) for r in read_jsonl(cells)))

        # both workers have finished a cell; at the next cell the other one is in the middle of its own
        wait_for("a cell from each Dask worker", lambda: len(workers_seen()) >= 2, procs=(first,),
                 logs=(log, *cluster.logs()))
        n = jsonl_lines(cells)
        wait_for("the next cell", lambda: jsonl_lines(cells) > n, procs=(first,), logs=(log,))
        rows = read_jsonl(cells)
        assert len(rows) < 9, "the matrix finished before a worker could be killed"
        victim = next(pid for pid in workers_seen() if pid != int(rows[-1]["worker"].rsplit(":", 1)[1]))
        nanny = next(w for w in cluster.workers if victim in descendants(w.pid))  # its ``dask worker`` process
        kill_in_tree(nanny, victim)
        kill_in_tree(nanny, nanny.pid)
        nanny.wait()
        assert finish(first, log) == 0, tail(log, *cluster.logs())  # the scheduler gives the cell to the other
    finally:
        cluster.stop()
    rows = read_jsonl(cells)
    assert victim not in {int(r["worker"].rsplit(":", 1)[1]) for r in rows[n + 1:]}
    assert _cells(rows) == undisturbed_cells


# --- the build ------------------------------------------------------------------------------------------
BUILD = r"""
import json, os, signal, sys
from portfolio.build import BuildSettings, build
cfg = json.loads(open(sys.argv[1]).read())
settings = BuildSettings(**{**cfg["settings"], "matrix_seeds": tuple(cfg["settings"]["matrix_seeds"])})
stop_at = sys.argv[2] if len(sys.argv) > 2 else None

def on_event(event, info):
    print("event", event, info.get("dataset") or "", flush=True)
    if event == stop_at:  # between two steps: the last step's output is written, the next not begun
        os.kill(os.getpid(), signal.SIGKILL)

build(cfg["out"], settings, command="faults", on_event=on_event)
print("built", flush=True)
"""


def _build_config(tmp: Path, out: Path) -> Path:
    collection = tmp / "two.yaml"
    collection.write_text(yaml.safe_dump({
        "name": "two", "description": "two tiny digits sets", "held_out": ["Monkeys", "miniciao"],
        "sources": [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"}],
        "datasets": [{"name": "digits_a", "source": "digits", "doc": "digits 0-2", "classes": [0, 1, 2],
                      "max_train": 45, "max_test": 15},
                     {"name": "digits_b", "source": "digits", "doc": "digits 5-8, rgb", "classes": [5, 6, 7, 8],
                      "max_train": 40, "max_test": 16, "color": "rgb"}]}))
    protocol = tmp / "tiny.yaml"
    protocol.write_text("name: tiny\ntime_budget: 8\nt0: 0.4\n")
    timing = flat_timing(0.05, 0.0005).save(tmp / "timing.json")
    settings = {"collection": str(collection), "data": str(tmp / "data"), "protocol": str(protocol),
                "timing": str(timing), "iterations": 1, "min_budget": 1 / 3, "workers": 2, "space": str(TINY_SPACE),
                "objective_args": {"fixed": {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32,
                                             "augmentation": "none"}},
                "matrix_seeds": [0, 1]}
    path = tmp / "build.json"
    path.write_text(json.dumps({"out": str(out), "settings": settings}))
    return path


def _build_results(out: Path) -> dict[str, Any]:
    """What a build decided, from its files, checking that no trial or cell is there twice."""
    runs = {}
    for run in sorted((out / "runs").iterdir()):
        rows = [r for r in read_jsonl(run / "trials.jsonl") if r["status"] in ("ok", "crashed", "timeout")]
        keys = [(tuple(r["config_id"]), round(r["budget"], 9)) for r in rows]
        assert len(keys) == len(set(keys)), f"{run.name}: trials recorded twice"
        runs[run.name] = {k: (json.dumps(r["config"], sort_keys=True), r["status"], r["alc"])
                          for k, r in zip(keys, rows)}
    portfolio = json.loads((out / "portfolio.json").read_text())
    pool = [{**c, "origin": {k: v for k, v in c["origin"].items() if k != "run_id"}}  # host-pid-time of a run
            for c in json.loads((out / "pool" / "pool.json").read_text())["candidates"]]
    return {"runs": runs, "pool": pool,
            "pool cells": _cells(read_jsonl(out / "pool" / "cells.jsonl")), "cells": _cells(read_jsonl(out / "cells.jsonl")),
            "incumbents": [{k: i[k] for k in ("dataset", "config", "member", "budget")} for i in portfolio["incumbents"]],
            "greedy": {k: json.loads((out / "pool" / "greedy.json").read_text())[k] for k in ("members", "k", "used")}}


@pytest.fixture(scope="module")
def undisturbed_build_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The output folder of an undisturbed build (its settings in ``build.json`` beside it)."""
    tmp = tmp_path_factory.mktemp("undisturbed_build")
    out = tmp / "portfolio"
    config = _build_config(tmp, out)
    log = tmp / "build.log"
    assert finish(python(BUILD, str(config), log=log), log, timeout=1200) == 0, tail(log)
    return out


@pytest.fixture(scope="module")
def undisturbed_build(undisturbed_build_folder: Path) -> dict[str, Any]:
    return _build_results(undisturbed_build_folder)


def _kill_build_when(build, log: Path, what: str, event) -> None:
    """SIGKILL the build process when ``event()`` is true; wait for the processes it started (BOHB
    workers, Dask workers) to exit on their own (failing, and ending them, where they do not)."""
    wait_for(what, event, procs=(build,), logs=(log,))
    children = descendants(build.pid)
    kill_in_tree(build, build.pid)
    build.wait()
    leftover = [pid for pid in children if alive(pid)]
    try:
        wait_for("the killed build's worker processes to exit",
                 lambda: not any(alive(pid) for pid in leftover), timeout=90, interval=0.2)
    finally:
        for pid in leftover:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)  # recorded as the build's own before it was killed


def _whole_but_the_last(out: Path) -> None:
    """What a killed build wrote reads back: a line cut by the kill can only be the last of its
    file (read_jsonl skips it; the next append starts on a line of its own)."""
    for records in out.rglob("*.jsonl"):
        for line in records.read_text().splitlines()[:-1]:
            json.loads(line)


@pytest.mark.timeout(2400)
def test_a_build_stopped_inside_bohb_between_steps_and_inside_the_pool_matrix_ends_as_the_undisturbed_one(
        tmp_path: Path, undisturbed_build):
    # one build stopped three times, each time continued by the same command (one build's cost
    # instead of three): killed inside the BOHB step, killed between two steps, killed inside the
    # pool matrix (Dask); then it finishes, equal to the undisturbed build
    out = tmp_path / "portfolio"
    config = _build_config(tmp_path, out)
    log = tmp_path / "build.log"

    # 1. inside the BOHB step: killed once the first dataset's run has a trial
    first = python(BUILD, str(config), log=log)
    _kill_build_when(first, log, "a BOHB trial", lambda: jsonl_lines(out / "runs" / "digits_a" / "trials.jsonl") >= 1)
    assert not (out / "pool").exists(), "the build was killed after its BOHB step"
    _whole_but_the_last(out)

    # 2. between steps: the same command, killed as the pool matrix starts (the pool is written, no cell)
    second = python(BUILD, str(config), "pool matrix", log=log)
    assert finish(second, log, timeout=1200) == -signal.SIGKILL, tail(log)
    assert (out / "pool" / "pool.json").is_file() and not (out / "pool" / "cells.jsonl").exists()
    _whole_but_the_last(out)

    # 3. inside the pool matrix: the same command, killed once the pool matrix has computed a cell
    # (not one copied from a BOHB trial): the other Dask worker is in the middle of one
    third = python(BUILD, str(config), log=log)
    _kill_build_when(third, log, "a computed pool cell",
                     lambda: any(not r.get("reused_from") for r in read_jsonl(out / "pool" / "cells.jsonl")))
    assert not (out / "portfolio.json").exists(), "the build was killed after its pool matrix"
    _whole_but_the_last(out)

    # the same command finishes the build: what was computed is not computed again
    log.write_text("")
    last = python(BUILD, str(config), log=log)
    assert finish(last, log, timeout=1200) == 0, tail(log)
    assert "built" in log.read_text() and "event bohb" not in log.read_text()
    assert _build_results(out) == undisturbed_build


BUILD_FULL_DISK = ("import sys\nfrom faultlib import fill_when_written\n"
                   "fill_when_written(sys.argv.pop(1), sys.argv.pop(1))  # -c CODE DISK TARGET CONFIG\ntry:\n"
                   + textwrap.indent(BUILD, "    ")
                   + "except OSError as exc:  # one line, exit 2, as autodl_meta.cli.main prints it\n"
                     "    print(f'autodl-meta: error: {exc.filename}: {exc.strerror}', flush=True)\n"
                     "    sys.exit(2)\n")
"""``BUILD`` with the disk of DISK filled as the file TARGET is written (``faultlib.fill_when_written``)."""


@pytest.mark.timeout(2400)
def test_a_full_disk_as_the_build_writes_greedy_and_summaries_names_the_file_and_keeps_the_one_before(
        tmp_path: Path, undisturbed_build_folder: Path, undisturbed_build):
    # a finished build continued by the same command computes nothing and writes its files whole
    # again: the pool's greedy analysis, its figure, the cost matrix's summaries; each run meets a
    # full disk at the next one of them
    from autodl.records import is_temporary

    size = sum(p.stat().st_size for p in undisturbed_build_folder.rglob("*") if p.is_file())
    with small_disk(tmp_path / "disk", max(4, 2 * (size >> 20) + 8)) as disk:
        out = disk / "portfolio"
        shutil.copytree(undisturbed_build_folder, out)
        config = tmp_path / "build.json"
        config.write_text(json.dumps({**json.loads((undisturbed_build_folder.parent / "build.json").read_text()),
                                      "out": str(out)}))
        log = tmp_path / "build.log"
        records = {p: p.read_bytes() for p in out.rglob("*.jsonl")}  # every trial and cell
        targets = [out / "pool" / "greedy.json", out / "pool" / "greedy.md", out / "pool" / "oracle_vs_k.png",
                   out / SUMMARY_JSON, out / SUMMARY_MD]
        for target in targets:
            before = target.read_bytes()
            log.write_text("")
            faulty = python(BUILD_FULL_DISK, str(disk), str(target), str(config), log=log)
            assert_stopped_by_full_disk(faulty, log, target, timeout=1200)
            assert "event bohb" not in log.read_text()
            assert target.read_bytes() == before, f"{target.name}: not the version before"
            assert [p for p in out.rglob("*") if is_temporary(p)] == []
            assert {p: p.read_bytes() for p in out.rglob("*.jsonl")} == records
            (disk / "filler").unlink()  # space again: the same command

        log.write_text("")
        assert finish(python(BUILD, str(config), log=log), log, timeout=1200) == 0, tail(log)
        assert "built" in log.read_text() and "event bohb" not in log.read_text()
        assert {p: p.read_bytes() for p in out.rglob("*.jsonl")} == records
        assert [p for p in out.rglob("*") if is_temporary(p)] == []
        assert _build_results(out) == undisturbed_build
