"""Faults in a BOHB run (``pytest -m faults``): a worker killed in the middle of a trial, the
master killed, the nameserver killed, a full disk (as a trial is appended, and as ``run.json``
is written at the start of a new run and of a resumed one), a read-only run folder.

After each fault the same command (or commands, on a cluster) finishes the run; every finished
trial is in ``trials.jsonl`` once; the finished trials and the incumbent are those of an
undisturbed run with the same seed (the synthetic objective, :mod:`offline_bohb.synthetic`,
is a function of the configuration and the budget, and BOHB's samples a function of the seed).
Processes are killed when an event is seen on disk (a trial's start marker, a line in
``trials.jsonl``), never after a fixed sleep. ``tests/test_offline_bohb/test_bohb_runs.py``
has the other kill tests (a worker killed after a trial, the master killed and resumed without
duplicates, Ctrl-C); docs/reliability.md has the matrix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import write_squares
from faultlib import (WRITE_FAULT, alive, assert_every_line_is_json, assert_stopped_by_full_disk, cli,
                      cmdline, descendants, fill, finish, jsonl_lines, kill_in_tree, python, read_only,
                      small_disk, tail, wait_for)

from autodl.records import read_jsonl
from offline_bohb.local import run_local
from offline_bohb.run import FINISHED, RunSpec
from portfolio.incumbents import select_incumbent

pytestmark = [pytest.mark.faults, pytest.mark.slow]

TINY_SPACE = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"
SYNTHETIC = "offline_bohb.synthetic:synthetic_evaluator"


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_squares(tmp_path_factory.mktemp("faults") / "squares")


def _search_args(dataset: Path, objective_args: dict[str, Any]) -> list[str]:
    return ["--dataset", str(dataset), "--iterations", "2", "--min-budget", "1/3", "--space", str(TINY_SPACE),
            "--objective", SYNTHETIC, "--objective-args", json.dumps(objective_args), "--ping-interval", "1",
            "--warm-start", "none"]


def _run_args(dataset: Path, out: Path, **objective_args: Any) -> list[str]:
    return ["bohb", "run", "--out", str(out), "--workers", "2", *_search_args(dataset, objective_args)]


@pytest.fixture(scope="module")
def undisturbed(squares: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """The trials of the undisturbed run the faulty ones must end equal to (instant trials)."""
    spec = RunSpec(dataset=str(squares), space=str(TINY_SPACE), objective=SYNTHETIC, objective_args={"seconds": 0.0},
                   min_budget=1 / 3, max_budget=1.0, eta=3, iterations=2, warm_start="none")
    out = tmp_path_factory.mktemp("undisturbed") / "run"
    run_local(spec, out, workers=2, ping_interval=1)
    rows = read_jsonl(out / "trials.jsonl")
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows)
    return rows


def _key(r: dict[str, Any]) -> tuple:
    return tuple(r["config_id"]), round(float(r["budget"]), 9)


def _finished(rows: list[dict[str, Any]]) -> dict[tuple, tuple]:
    """(config id, budget) -> (configuration, status, ALC) of the finished trials, checking that
    none is there twice."""
    done = [r for r in rows if r["status"] in FINISHED]
    keys = [_key(r) for r in done]
    assert len(keys) == len(set(keys)), f"finished trials recorded twice: {sorted(k for k in keys if keys.count(k) > 1)}"
    return {_key(r): (json.dumps(r["config"], sort_keys=True), r["status"], r["alc"]) for r in done}


def _incumbent(rows: list[dict[str, Any]]) -> tuple:
    best = select_incumbent(rows)
    return tuple(best["config_id"]), best["budget"], json.dumps(best["config"], sort_keys=True), best["alc"]


def _assert_same_as_undisturbed(rows: list[dict[str, Any]], undisturbed: list[dict[str, Any]]) -> None:
    assert _finished(rows) == _finished(undisturbed)
    assert _incumbent(rows) == _incumbent(undisturbed)


def _workers_of(proc) -> list[int]:
    return [pid for pid in descendants(proc.pid) if "offline_bohb.local worker" in cmdline(pid)]


def _marker(cid: tuple, budget: float) -> str:
    return f"{'-'.join(map(str, cid))}@{budget:.6f}.started"


@pytest.mark.timeout(600)
def test_a_worker_killed_mid_trial_is_lost_and_the_same_command_completes_the_run(squares: Path, tmp_path: Path,
                                                                                   undisturbed):
    # the victim: the stage-0 trial of the configuration the undisturbed run promoted to the full
    # budget in the first bracket, the trial whose loss changes what the run does next
    promoted = next(tuple(r["config_id"]) for r in undisturbed if r["config_id"][0] == 0 and r["budget"] == 1.0)
    started, out, log = tmp_path / "started", tmp_path / "run", tmp_path / "bohb.log"
    started.mkdir()
    args = _run_args(squares, out, seconds=3.0, started_dir=str(started))
    first = cli(*args, log=log)
    mark = started / _marker(promoted, 1 / 3)
    wait_for(f"trial {promoted} at budget 1/3 to start", mark.is_file, procs=(first,), logs=(log,))
    victim = int(mark.read_text())
    assert victim in _workers_of(first)
    kill_in_tree(first, victim)
    assert finish(first, log) == 0, tail(log)  # the run goes on with the other worker
    rows = read_jsonl(out / "trials.jsonl")
    lost = [r for r in rows if r["status"] == "lost"]
    assert [_key(r) for r in lost] == [(promoted, round(1 / 3, 9))] and lost[0]["error"] == "Worker died unexpectedly."

    again = cli(*args, log=log)  # the same command: the lost trial runs again, nothing finished does
    assert finish(again, log) == 0, tail(log)
    rows = read_jsonl(out / "trials.jsonl")
    finished = _finished(rows)  # no duplicate
    reference = _finished(undisturbed)
    assert {k: finished[k] for k in reference} == reference
    # beyond the undisturbed run's trials, only what the first pass promoted instead of the lost
    # configuration: a finished trial of its own, not a duplicate
    extra = set(finished) - set(reference)
    assert all(k[0][0] == 0 and k[1] == 1.0 for k in extra) and len(extra) <= 1
    assert _incumbent(rows) == _incumbent(undisturbed)


@pytest.mark.timeout(600)
def test_a_killed_master_resumes_to_the_undisturbed_runs_trials(squares: Path, tmp_path: Path, undisturbed):
    # test_bohb_runs.py checks that a resumed master repeats no finished trial; this checks that it
    # also samples what the undisturbed run sampled (the replay draws the samples it replays)
    started, out, log = tmp_path / "started", tmp_path / "run", tmp_path / "bohb.log"
    started.mkdir()
    args = _run_args(squares, out, seconds=3.0, started_dir=str(started))
    first = cli(*args, log=log)
    # the second bracket has sampled and started its first configuration
    wait_for("the second bracket's first trial to start", (started / _marker((1, 0, 0), 1.0)).is_file,
             procs=(first,), logs=(log,))
    workers = _workers_of(first)
    assert len(workers) == 2
    kill_in_tree(first, first.pid)
    first.wait()
    before = read_jsonl(out / "trials.jsonl")
    assert 1 <= len(before) < 6
    # its workers notice that their parent is gone and exit on their own
    wait_for("the killed master's workers to exit", lambda: not any(alive(p) and "offline_bohb.local" in cmdline(p)
                                                                    for p in workers), timeout=60, interval=0.2)

    again = cli(*args, log=log)
    assert finish(again, log) == 0, tail(log)
    rows = read_jsonl(out / "trials.jsonl")
    assert rows[:len(before)] == before
    _assert_same_as_undisturbed(rows, undisturbed)


@pytest.mark.timeout(600)
def test_a_killed_nameserver_stops_the_master_and_the_same_commands_resume(squares: Path, tmp_path: Path,
                                                                          undisturbed, monkeypatch):
    # a cluster run (offline_bohb/slurm): nameserver, master and 2 workers as their own processes
    monkeypatch.setenv("AUTODL_BOHB_NAMESERVER_GRACE", "4")
    shared = tmp_path / "shared"
    log, ns_log, w_logs = tmp_path / "master.log", tmp_path / "nameserver.log", [tmp_path / f"w{i}.log" for i in (0, 1)]
    common = ["--shared-dir", str(shared), "--run-id", "faults"]
    credentials = shared / "nameserver-faults.json"

    def start_all() -> tuple:
        nameserver = cli("bohb", "nameserver", *common, log=ns_log)
        wait_for("the nameserver's credentials",
                 lambda: credentials.is_file() and json.loads(credentials.read_text() or "{}").get("pid")
                 == nameserver.pid, procs=(nameserver,), logs=(ns_log,))
        workers = [cli("bohb", "worker", *common, "--wait", "120", log=w_log) for w_log in w_logs]
        master = cli("bohb", "master", *common, "--min-workers", "2",
                     *_search_args(squares, {"seconds": 6.0}), log=log)
        return nameserver, workers, master

    nameserver, workers, master = start_all()
    procs = (nameserver, master, *workers)
    try:
        wait_for("the first trial", lambda: jsonl_lines(shared / "trials.jsonl") >= 1, procs=procs,
                 logs=(log, ns_log, *w_logs))
        kill_in_tree(nameserver, nameserver.pid)
        nameserver.wait()
        assert finish(master, log) == 2, tail(log)
        last = log.read_text().strip().splitlines()[-1]
        assert last.startswith("autodl-meta: error: ") and "the nameserver at" in last and "has not answered" in last
        for w, w_log in zip(workers, w_logs):  # the stopping master shut them down
            assert finish(w, w_log, timeout=60) == 0, tail(w_log)
        before = read_jsonl(shared / "trials.jsonl")
        assert 1 <= len(before) < 6

        nameserver, workers, master = start_all()  # the same commands, the nameserver's first
        procs = (nameserver, master, *workers)
        assert finish(master, log) == 0, tail(log, ns_log, *w_logs)
        for w, w_log in zip(workers, w_logs):
            assert finish(w, w_log, timeout=60) == 0, tail(w_log)
    finally:
        for p in procs:
            if p.poll() is None:
                kill_in_tree(p, p.pid)
                p.wait()
    rows = read_jsonl(shared / "trials.jsonl")
    assert rows[:len(before)] == before
    _assert_same_as_undisturbed(rows, undisturbed)


@pytest.mark.timeout(600)
def test_a_full_disk_stops_the_run_naming_the_file_and_keeps_every_finished_trial(squares: Path, tmp_path: Path,
                                                                                  undisturbed):
    log = tmp_path / "bohb.log"
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "run"
        args = _run_args(squares, out, seconds=1.5)
        first = cli(*args, log=log)
        wait_for("two trials", lambda: jsonl_lines(out / "trials.jsonl") >= 2, procs=(first,), logs=(log,))
        filler = fill(disk)
        kept = (out / "trials.jsonl").read_bytes()
        assert finish(first, log) == 2, tail(log)
        last = log.read_text().strip().splitlines()[-1]
        assert last.startswith(f"autodl-meta: error: {out}/") and "No space left on device" in last, last
        assert ".jsonl" in last  # names the record it could not append to
        rows = assert_every_line_is_json(out / "trials.jsonl")  # no half-written line
        assert (out / "trials.jsonl").read_bytes() == kept and len(rows) >= 2
        assert_every_line_is_json(out / "configs.jsonl")

        filler.unlink()  # space again: the same command finishes the run
        again = cli(*args, log=log)
        assert finish(again, log) == 0, tail(log)
        rows = read_jsonl(out / "trials.jsonl")
    _assert_same_as_undisturbed(rows, undisturbed)


@pytest.mark.timeout(600)
def test_a_full_disk_as_run_json_is_written_names_it_and_keeps_the_one_before(squares: Path, tmp_path: Path,
                                                                              undisturbed):
    # run.json is the run's one file written whole, at the start of a new run and of a resumed one
    log = tmp_path / "bohb.log"
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "run"
        run_json = out / "run.json"
        first = [*_run_args(squares, out, seconds=0.0), "--iterations", "1"]  # the first bracket: 4 trials
        args = _run_args(squares, out, seconds=0.0)  # both brackets: resumes the run of `first`

        def fails_at_run_json(command: list[str]) -> None:
            log.write_text("")
            faulty = python(WRITE_FAULT, str(disk), str(run_json), "autodl_meta.cli", *command, log=log)
            assert_stopped_by_full_disk(faulty, log, run_json)
            assert not [p.name for p in out.iterdir() if ".tmp" in p.name]  # no temporary file left
            (disk / "filler").unlink()  # space again

        fails_at_run_json(first)  # a new run: stopped before anything of it is written
        assert sorted(p.name for p in out.iterdir()) == []
        assert finish(cli(*first, log=log), log) == 0, tail(log)  # the same command
        files = {p: p.read_bytes() for p in out.iterdir() if p.is_file()}
        kept = read_jsonl(out / "trials.jsonl")
        assert len(kept) == 4

        fails_at_run_json(args)  # a resumed run: run.json, the trials and the samples as they were
        assert {p: p.read_bytes() for p in out.iterdir() if p.is_file()} == files
        assert finish(cli(*args, log=log), log) == 0, tail(log)  # the same command
        rows = read_jsonl(out / "trials.jsonl")
    assert rows[:4] == kept
    _assert_same_as_undisturbed(rows, undisturbed)


@pytest.mark.smoke  # the representative fault test of the default run: one short run, no process killed
@pytest.mark.timeout(300)
def test_a_read_only_run_folder_is_refused_naming_the_file_and_left_as_it_was(squares: Path, tmp_path: Path):
    log = tmp_path / "bohb.log"
    folder = tmp_path / "ro"
    folder.mkdir()
    out = folder / "run"
    args = _run_args(squares, out, seconds=0.0)
    assert finish(cli(*args, log=log), log) == 0, tail(log)
    files = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with read_only(folder):
        log.write_text("")
        assert finish(cli(*args, log=log), log) == 2, tail(log)
        lines = log.read_text().strip().splitlines()
        assert lines[-1] == f"autodl-meta: error: {out / 'run.json'}: Read-only file system", tail(log)
        assert not any("Traceback" in line for line in lines)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == files
