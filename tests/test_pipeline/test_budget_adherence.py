"""``autodl-meta benchmark budget``: the mechanics (child process ended at T, busy processes,
slowed reads, rows and report) with a protocol of a few seconds. No timing is asserted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import write_tiny_halves
from pipeline.benchmarks.budget_adherence import (budget_markdown, budget_summary, busy_processes,
                                                  child_command, session_rows)
from pipeline.benchmarks.slow_io import install, slept_seconds


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.is_file() and stat.read_text().split(")")[-1].split()[0] == "Z")


def test_busy_processes_spin_and_are_ended() -> None:
    with busy_processes(2) as pids:
        assert len(pids) == 2 and all(_alive(p) for p in pids)
    assert not any(_alive(p) for p in pids)
    with busy_processes(0) as none:
        assert none == []


def test_slow_io_sleeps_per_record_and_logs_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    import autodl.dataset as dataset_module
    from autodl.dataset import AutoDLDataset

    data = write_tiny_halves(tmp_path)
    monkeypatch.setattr(dataset_module, "read_records", dataset_module.read_records)  # restored afterwards
    log = io.StringIO()
    install(0.001, log=log)
    labels = AutoDLDataset(data).labels("train")
    assert labels.shape == (30, 2)
    assert "slow-io:" in log.getvalue() and "30 records" in log.getvalue()
    assert slept_seconds(log.getvalue()) == pytest.approx(0.03)
    assert slept_seconds("INFO other\nslow-io: a: 2 records, 0.500 s slept\nslow-io: b: 1 records, 0.250 s slept\n") \
        == pytest.approx(0.75)


def test_child_command_goes_through_the_slow_reader_only_under_slow_io(tmp_path: Path) -> None:
    from autodl.protocol import Protocol

    proto = Protocol("tiny", 4.0, 0.2)
    plain = child_command(tmp_path, "baseline:linear", proto, tmp_path / "p", seed=0)
    slow = child_command(tmp_path, "baseline:linear", proto, tmp_path / "p", seed=0, slow_io=0.02)
    assert plain[1:3] == ["-m", "finetune.models"]
    assert slow[1:5] == ["-m", "pipeline.benchmarks.slow_io", "--slow-io", "0.02"] and slow[5:] == plain[3:]


def _row(model: str, condition: str, first: float, last: float, T: float = 60.0, **kw: object) -> dict:
    return {"model": model, "condition": condition, "protocol": "mini", "time_budget": T, "t0": 3.0, "seed": 0,
            "status": "ok", "predictions": 3, "first_prediction_s": first, "last_prediction_s": last,
            "overrun_s": last - T, "after_budget": int(last > T), "killed": last > T, "ended_s": None if last > T
            else last + 0.1, "alc": 0.5, "session": "s1", "repetition": 0, "load_before": 2.0,
            "busy_processes": 2 if condition == "cpu-load" else 0,
            "slow_io_s": 0.01 if condition == "slow-io" else None, **kw}


def test_summary_and_report_format() -> None:
    rows = [_row("submission", "idle", 0.5, 58.0), _row("baseline:linear", "idle", 0.2, 30.0),
            _row("submission", "cpu-load", 1.5, 60.3), _row("baseline:linear", "cpu-load", 0.4, 31.0),
            _row("submission", "slow-io", 2.5, 59.0, slept_s=3.0)]
    s = budget_summary(rows)
    assert s["idle_first"] == {"submission": 0.5, "baseline:linear": 0.2}
    load = s["conditions"]["cpu-load"]
    assert load["worst_overrun_s"] == pytest.approx(0.3) and load["worst_model"] == "submission"
    assert load["after_budget"] == 1 and load["killed"] == 1
    assert s["conditions"]["idle"]["worst_overrun_s"] == pytest.approx(-2.0)
    text = budget_markdown(rows, command="autodl-meta benchmark budget", machine="a machine", dataset="demo/x",
                           note="loaded by a build")
    assert text.startswith("## budget: the time budget under load")
    assert "T=60 s" in text and "loaded by a build" in text and "2 busy-loop processes" in text
    assert "| submission | cpu-load | 0 | 2.00 | 3 | 1.50 | +1.00 s (3.0x) | 60.30 | +0.30 | 1 | ended at T |" in text
    assert "| cpu-load | 2 | +0.30 (submission) | 1 | 1 |" in text
    assert "slept 3.00 s" in text
    assert budget_markdown([], command="", machine="", dataset="") == ""


def test_session_rows_take_the_latest_session(tmp_path: Path) -> None:
    f = tmp_path / "budget.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in [{"session": "a", "x": 1}, {"session": "b", "x": 2},
                                                         {"session": "b", "x": 3}]))
    assert [r["x"] for r in session_rows(f)] == [2, 3]
    assert [r["x"] for r in session_rows(f, "a")] == [1]


@pytest.mark.slow
def test_command_runs_every_condition_with_a_tiny_protocol(tmp_path: Path) -> None:
    """The command end to end: baseline:linear on a tiny dataset under a 4-second protocol in each
    condition (one busy process, 1 ms per record): rows with prediction times, a report added to the
    doc, and no busy process left behind. The figures are not checked (a shared machine)."""
    from autodl_meta.cli import main

    data = write_tiny_halves(tmp_path)
    proto = tmp_path / "tiny.yaml"
    proto.write_text("name: tiny\ntime_budget: 4\nt0: 0.2\n")
    results, doc = tmp_path / "budget.jsonl", tmp_path / "bench.md"
    rc = main(["benchmark", "budget", "--data", str(data), "--models", "baseline:linear", "--repeats", "1",
               "--protocol", str(proto), "--busy", "1", "--slow-io", "0.001", "--work", str(tmp_path / "runs"),
               "--results", str(results), "--doc", str(doc), "--note", "test"])
    assert rc == 0
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [r["condition"] for r in rows] == ["idle", "cpu-load", "slow-io"]
    for r in rows:
        assert r["status"] == "ok", r.get("error")
        assert r["predictions"] >= 1 and r["time_budget"] == 4.0
        assert r["first_prediction_s"] <= r["last_prediction_s"]
        assert r["overrun_s"] == pytest.approx(r["last_prediction_s"] - 4.0)
        assert r["after_budget"] == sum(1 for t in r["timestamps"] if t > 4.0)
        assert isinstance(r["killed"], bool)
        assert len({x["session"] for x in rows}) == 1
    assert rows[1]["busy_processes"] == 1 and rows[0]["busy_processes"] == 0
    assert rows[2]["slow_io_s"] == 0.001 and rows[2]["slept_s"] > 0
    text = doc.read_text()
    assert "## budget: the time budget under load" in text and text.count("| baseline:linear |") == 3
