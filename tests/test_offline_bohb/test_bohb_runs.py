"""BOHB runs on this machine: 2 worker processes, resume, crashed trials, killed workers and masters.

The synthetic objective (offline_bohb.synthetic) tests the machinery without training; one
run evaluates the real fine-tuning learner on a tiny dataset under the simulated clock.
No assertion reads the wall clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import flat_timing, write_squares

from autodl.records import read_jsonl
from offline_bohb.hpb import BOHBError, bracket_sizes
from offline_bohb.local import run_local
from offline_bohb.run import FINISHED, RunFolder, RunSpec

TINY_SPACE = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"
SYNTHETIC = "offline_bohb.synthetic:synthetic_evaluator"
CHEAP = {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32, "augmentation": "none"}


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 training and 24 test 16x16 RGB images: a bright square whose position is the class."""
    return write_squares(tmp_path_factory.mktemp("bohb") / "squares")


def _synthetic(dataset: Path, **kwargs) -> RunSpec:
    args = {"seconds": kwargs.pop("seconds", 0.0), **kwargs.pop("objective_args", {})}
    return RunSpec(dataset=str(dataset), space=str(TINY_SPACE), objective=SYNTHETIC, objective_args=args,
                   **{"min_budget": 1 / 3, "max_budget": 1.0, "eta": 3, "iterations": 2, **kwargs})


def _planned(spec: RunSpec) -> int:
    return sum(n for b in bracket_sizes(spec.min_budget, spec.max_budget, spec.eta, spec.iterations) for n, _ in b)


def _finished_keys(rows: list[dict]) -> list[tuple]:
    return [(tuple(r["config_id"]), round(r["budget"], 9)) for r in rows if r["status"] in FINISHED]


def test_a_changed_run_is_refused_with_the_differences_named(squares: Path, tmp_path: Path):
    folder = RunFolder(tmp_path / "run")
    _, resumed = folder.start(_synthetic(squares, seed=0))
    assert not resumed
    _, resumed = folder.start(_synthetic(squares, seed=0, iterations=5))
    assert resumed and folder.read_run()["iterations"] == 5
    with pytest.raises(BOHBError, match=r"seed \(0 -> 1\)"):
        folder.start(_synthetic(squares, seed=1))
    with pytest.raises(BOHBError, match=r"eta \(3 -> 2\).*"):
        folder.start(_synthetic(squares, eta=2))
    with pytest.raises(BOHBError, match=r"space \(.*backbone"):
        folder.start(RunSpec(dataset=str(squares), objective=SYNTHETIC, objective_args={"seconds": 0.0},
                             min_budget=1 / 3, iterations=2))
    with pytest.raises(BOHBError, match="min_budget"):
        RunFolder(tmp_path / "other").start(_synthetic(squares, min_budget=1.0))


def test_two_workers_finish_a_run_and_a_rerun_repeats_nothing(squares: Path, tmp_path: Path):
    spec = _synthetic(squares, seconds=0.5, objective_args={"crash_if": {"optimizer": "SGD", "probes": "none"}})
    seen = []
    summary = run_local(spec, tmp_path / "run", workers=2, ping_interval=1,
                        progress=lambda s, row: seen.append(row))
    rows = read_jsonl(tmp_path / "run" / "trials.jsonl")
    assert len(rows) == len(seen) == summary.new_trials == _planned(spec) == 6
    assert len({r["worker"] for r in rows}) == 2  # both worker processes evaluated trials
    assert summary.incumbent() is not None and summary.incumbent()[0] == 1.0
    crashed = [r for r in rows if r["status"] == "crashed"]
    for r in crashed:  # a trial that raises is recorded with its traceback and the run goes on
        assert r["config"]["optimizer"] == "SGD" and r["config"]["probes"] == "none"
        assert "SyntheticCrash" in r["traceback"] and r["alc"] is None
    assert all(r["alc"] is not None for r in rows if r["status"] == "ok")
    configs = read_jsonl(tmp_path / "run" / "configs.jsonl")
    assert {tuple(c["config_id"]) for c in configs} >= {tuple(r["config_id"]) for r in rows}

    again = run_local(spec, tmp_path / "run", workers=2, ping_interval=1)
    assert again.new_trials == 0 and again.replayed == len(rows)
    assert read_jsonl(tmp_path / "run" / "trials.jsonl") == rows


def test_crashing_configurations_are_recorded_and_the_run_goes_on(squares: Path, tmp_path: Path):
    spec = _synthetic(squares, iterations=1, objective_args={"crash_if": {"probes": "raw"}})
    summary = run_local(spec, tmp_path / "run", workers=2, ping_interval=1)
    rows = read_jsonl(tmp_path / "run" / "trials.jsonl")
    assert {r["status"] for r in rows} <= {"ok", "crashed"}
    assert summary.crashed == sum(r["config"]["probes"] == "raw" for r in rows) == sum(r["status"] == "crashed"
                                                                                      for r in rows)
    assert len(rows) >= 4  # a whole bracket ran


def test_killing_one_worker_does_not_stop_the_run(squares: Path, tmp_path: Path):
    spec = _synthetic(squares, seconds=1.5, iterations=1)
    procs: list[subprocess.Popen] = []
    killed = []

    def kill_one(summary, row) -> None:
        # kill the worker that did not just finish: most likely in the middle of a job (a
        # "lost" trial), else idle (hpbandster's dispatcher would then hang; see hpb quirk 7)
        if not killed:
            victim = next(p for p in procs if not row["worker"].endswith(f":{p.pid}"))
            victim.send_signal(signal.SIGKILL)
            killed.append(victim)

    summary = run_local(spec, tmp_path / "run", workers=2, ping_interval=1, on_workers=procs.extend,
                        progress=kill_one)
    rows = read_jsonl(tmp_path / "run" / "trials.jsonl")
    assert killed and killed[0].poll() is not None
    assert len(rows) == _planned(spec)  # every job came back: finished, or lost with the killed worker
    assert summary.incumbent() is not None
    survivor = next(p for p in procs if p is not killed[0])
    late = [r for r in rows[2:] if r["status"] != "lost"]
    assert late and all(r["worker"].endswith(f":{survivor.pid}") for r in late)
    for r in rows:
        if r["status"] == "lost":
            assert r["error"] == "Worker died unexpectedly."


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.Popen([sys.executable, "-m", "autodl_meta.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kwargs)


@pytest.mark.slow
def test_a_killed_master_resumes_without_repeating_finished_trials(squares: Path, tmp_path: Path):
    out = tmp_path / "run"
    args = ["bohb", "run", "--dataset", str(squares), "--out", str(out), "--workers", "2", "--iterations", "2",
            "--min-budget", "1/3", "--space", str(TINY_SPACE), "--objective", SYNTHETIC,
            "--objective-args", json.dumps({"seconds": 1.0}), "--ping-interval", "1"]
    master = _cli(*args)
    trials = out / "trials.jsonl"
    deadline = time.monotonic() + 300
    while len(read_jsonl(trials)) < 3:
        assert master.poll() is None, master.stdout.read().decode()
        assert time.monotonic() < deadline, "no trials from the first master"
        time.sleep(0.2)
    master.send_signal(signal.SIGKILL)
    master.wait()
    before = read_jsonl(trials)
    assert 3 <= len(before) < 6

    spec = _synthetic(squares, seconds=1.0)
    summary = run_local(spec, out, workers=2, ping_interval=1)
    rows = read_jsonl(trials)
    keys = _finished_keys(rows)
    assert len(keys) == len(set(keys))  # nothing that finished ran twice
    assert rows[:len(before)] == before
    assert summary.replayed == len(_finished_keys(before))
    assert len(set(keys)) == _planned(spec)
    # the killed master's workers noticed and exited on their own
    time.sleep(0)
    leftovers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).count(str(out)) and
                 "offline_bohb.local" in _cmdline(p)]
    deadline = time.monotonic() + 60
    while leftovers and time.monotonic() < deadline:
        time.sleep(1)
        leftovers = [p for p in leftovers if p.exists() and "offline_bohb.local" in _cmdline(p)]
    assert not leftovers


def _cmdline(p: Path) -> str:
    try:
        return (p / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.slow
def test_bohb_on_the_fine_tuning_learner_yields_an_incumbent(squares: Path, tmp_path: Path):
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text("name: tiny\ntime_budget: 12\nt0: 0.6\n")
    timing = flat_timing(0.05, 0.0005).save(tmp_path / "timing.json")
    spec = RunSpec(dataset=str(squares), protocol=str(protocol), timing=str(timing), space=str(TINY_SPACE),
                   min_budget=1 / 3, iterations=1, objective_args={"fixed": CHEAP})
    summary = run_local(spec, tmp_path / "run", workers=2, ping_interval=1)
    rows = read_jsonl(tmp_path / "run" / "trials.jsonl")
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert {round(r["budget"], 6) for r in rows} == {round(1 / 3, 6), 1.0}
    for r in rows:
        assert r["config"]["backbone"] == "scratch_cnn" and r["config"]["batch_size"] in (16, 32)
        assert 0 < r["alc"] <= 1 and r["curve"]["timestamps"] and r["seed"] == 0
        # a shortened evaluation stops within its budget's share of T
        assert r["curve"]["timestamps"][-1] <= r["budget"] * 12 + 1e-6
    budget, alc, cid = summary.incumbent()
    assert budget == 1.0 and alc == max(r["alc"] for r in rows if r["budget"] == 1.0)
    # what each trial cost its worker's CPU, and the run's sum (the build's manifest reports it)
    assert all(r["cpu_seconds"] > 0 for r in rows)
    assert summary.cpu_seconds == pytest.approx(sum(r["cpu_seconds"] for r in rows))
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["clock"] == "simulated" and run["timing"]["sha256"] and run["protocol"]["time_budget"] == 12


@pytest.mark.slow
def test_cluster_commands_master_and_two_workers_meet_through_the_shared_folder(squares: Path, tmp_path: Path):
    # what offline_bohb/slurm/bohb_array.sh starts, here on one node and on loopback
    shared = tmp_path / "shared"
    common = ["--shared-dir", str(shared), "--run-id", "c1"]
    workers = [_cli("bohb", "worker", *common, "--wait", "120") for _ in range(2)]  # workers may start first
    master = _cli("bohb", "master", *common, "--with-nameserver", "--dataset", str(squares), "--iterations", "1",
                  "--min-budget", "1/3", "--space", str(TINY_SPACE), "--objective", SYNTHETIC,
                  "--objective-args", json.dumps({"seconds": 0.3}), "--ping-interval", "1", "--min-workers", "2")
    try:
        out, _ = master.communicate(timeout=300)
        assert master.returncode == 0, out.decode()
        assert b"incumbent: config" in out
        for w in workers:
            assert w.wait(timeout=60) == 0  # the master shut them down
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
    rows = read_jsonl(shared / "trials.jsonl")
    assert len(rows) == 4 and len({r["worker"] for r in rows}) == 2
    assert not (shared / "nameserver-c1.json").exists()  # removed on shutdown


def test_ctrl_c_shuts_down_the_master_the_workers_and_the_nameserver(squares: Path, tmp_path: Path):
    out = tmp_path / "run"
    # long enough (about 10 trials of 2-10 s per worker) that the run cannot end before the
    # signal on a loaded machine (the first trial's 2 s are what the test waits for)
    # a test run started in the background (nohup make test &) inherits SIGINT ignored, and
    # Python then keeps ignoring it: the master gets the disposition a terminal would give it
    master = _cli("bohb", "run", "--dataset", str(squares), "--out", str(out), "--workers", "2", "--iterations", "4",
                  "--min-budget", "1/3", "--space", str(TINY_SPACE), "--objective", SYNTHETIC,
                  "--objective-args", json.dumps({"seconds": 6.0}), "--ping-interval", "1",
                  preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 300
    while len(read_jsonl(out / "trials.jsonl")) < 1:
        assert master.poll() is None, master.stdout.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.2)
    workers = [p for p in Path("/proc").iterdir() if p.name.isdigit() and str(out) in _cmdline(p)
               and "offline_bohb.local" in _cmdline(p)]
    assert len(workers) == 2
    master.send_signal(signal.SIGINT)
    output, _ = master.communicate(timeout=120)
    assert master.returncode == 130, output.decode()
    assert b"Traceback" not in output
    deadline = time.monotonic() + 60
    while any(p.exists() and "offline_bohb.local" in _cmdline(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not any(p.exists() and "offline_bohb.local" in _cmdline(p) for p in workers)
    assert not list(out.glob("nameserver-*.json"))
    assert read_jsonl(out / "trials.jsonl")  # what finished is kept
