"""``portfolio.incumbents``: each run's incumbent from handmade BOHB run folders, and
``portfolio.json`` (round trip, validation errors that name the file and the field)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from portfolio.incumbents import (
    PORTFOLIO_FORMAT,
    Portfolio,
    PortfolioError,
    build_portfolio,
    incumbents_from_runs,
    select_incumbent,
)

PROTOCOL = {"name": "mini", "time_budget": 60.0, "t0": 3.0, "max_train_examples": 3000}


def run_record(dataset: str, **changes: Any) -> dict[str, Any]:
    record = {"format": "autodl-meta-bohb-run/1", "run_id": f"run-{dataset}",
              "dataset": {"name": dataset, "path": f"/data/{dataset}"}, "protocol": dict(PROTOCOL),
              "clock": "simulated", "timing": {"path": "configs/timing/t.json", "sha256": "ab" * 32},
              "space": {"path": "configs/space/finetune.yaml", "sha256": "cd" * 32},
              "min_budget": 1 / 9, "max_budget": 1.0, "eta": 3, "iterations": 2, "seed": 0,
              "created": "2026-01-01T00:00:00+00:00", "command": f"autodl-meta bohb run --dataset /data/{dataset}",
              "versions": {"python": "3.11.2", "torch": "2.14.1"}, "objective": "offline_bohb.run:trial_evaluator"}
    record.update(changes)
    return record


def trial(config_id: list[int], lr: float, budget: float, status: str = "ok", alc: float | None = None,
          finished: str = "2026-01-01T01:00:00+00:00") -> dict[str, Any]:
    return {"config_id": config_id, "config": {"backbone": "scratch_cnn", "learning_rate": lr}, "budget": budget,
            "seed": 0, "status": status, "alc": alc if status == "ok" else None,
            "final_nauc": None, "curve": {"timestamps": [], "nauc": [], "accuracy": None}, "wall_seconds": 1.0,
            "error": None if status == "ok" else "RuntimeError: boom", "traceback": None, "worker": "h:1",
            "started": "2026-01-01T00:59:00+00:00", "finished": finished}


def write_run(root: Path, dataset: str, trials: list[dict[str, Any]], *, cut_tail: bool = False,
              **changes: Any) -> Path:
    folder = root / dataset
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run_record(dataset, **changes)))
    text = "".join(json.dumps(t) + "\n" for t in trials)
    if cut_tail:
        text += '{"config_id": [9, 0, 0], "config": {"backbone": "scr'  # a run stopped while writing
    (folder / "trials.jsonl").write_text(text)
    return folder


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    # alpha: the best ALC of all is at a small budget, which does not count; at full budget two
    # trials tie at 0.70 and the one that finished first wins
    write_run(root, "alpha", [
        trial([0, 0, 0], 0.1, 1 / 9, alc=0.95),
        trial([0, 0, 1], 0.2, 1 / 3, alc=0.80),
        trial([0, 0, 2], 0.3, 1.0, alc=0.70, finished="2026-01-01T03:00:00+00:00"),
        trial([0, 0, 3], 0.4, 1.0, alc=0.70, finished="2026-01-01T02:00:00+00:00"),
        trial([0, 0, 4], 0.5, 1.0, alc=0.60),
        trial([0, 0, 5], 0.6, 1.0, status="lost"),
    ], cut_tail=True)
    # beta: every full-budget trial crashed; the largest budget with an ok trial is 1/3
    write_run(root, "beta", [
        trial([0, 0, 0], 0.1, 1 / 9, alc=0.50),
        trial([0, 0, 1], 0.2, 1 / 3, alc=0.40),
        trial([0, 0, 2], 0.3, 1 / 3, alc=0.45),
        trial([0, 0, 1], 0.2, 1.0, status="crashed"),
        trial([0, 0, 2], 0.3, 1.0, status="timeout"),
    ])
    # gamma: no ok trial at all
    write_run(root, "gamma", [trial([0, 0, 0], 0.1, 1 / 9, status="crashed"),
                              trial([0, 0, 1], 0.2, 1 / 9, status="crashed"),
                              trial([0, 0, 2], 0.3, 1 / 9, status="lost")], seed=7)
    (root / "not-a-run").mkdir()
    return root


def test_incumbent_of_each_run_and_runs_without_one(runs: Path, caplog: pytest.LogCaptureFixture):
    with caplog.at_level("WARNING"):
        portfolio = incumbents_from_runs(runs, command="test")
    assert portfolio.datasets == ["alpha", "beta"]
    alpha, beta = portfolio.incumbents
    assert alpha.config_id == (0, 0, 3) and alpha.alc == 0.70 and alpha.budget == 1.0  # earliest of the tie
    assert alpha.config == {"backbone": "scratch_cnn", "learning_rate": 0.4}
    assert alpha.trials == 5  # the lost trial is not a finished one; the cut line is skipped
    assert alpha.run_id == "run-alpha" and alpha.dataset_path == "/data/alpha"
    assert beta.config_id == (0, 0, 2) and beta.alc == 0.45 and beta.budget == pytest.approx(1 / 3)
    assert beta.trials == 5
    [gamma] = portfolio.without_incumbent
    assert gamma["dataset"] == "gamma" and gamma["statuses"] == {"crashed": 2, "lost": 1}
    assert "no ok trial" in gamma["reason"]
    assert "gamma" in caplog.text and "not-a-run" in caplog.text  # reported, not silently dropped
    assert portfolio.protocol == PROTOCOL and portfolio.clock == "simulated"
    assert portfolio.timing == {"path": "configs/timing/t.json", "sha256": "ab" * 32}
    assert portfolio.space == {"path": "configs/space/finetune.yaml", "sha256": "cd" * 32}
    prov = portfolio.provenance
    assert prov["seeds"] == {"alpha": 0, "beta": 0, "gamma": 7}
    assert prov["versions"] == {"python": "3.11.2", "torch": "2.14.1"}
    assert prov["command"] == "test" and prov["date"]
    assert [r["run_id"] for r in prov["runs"]] == ["run-alpha", "run-beta", "run-gamma"]


def test_select_incumbent_without_ok_trial_is_none():
    assert select_incumbent([]) is None
    assert select_incumbent([trial([0, 0, 0], 0.1, 1.0, status="crashed")]) is None


def test_portfolio_json_round_trip(runs: Path, tmp_path: Path):
    portfolio = build_portfolio(runs, tmp_path / "out" / "portfolio.json", command="test")
    assert portfolio.path == tmp_path / "out" / "portfolio.json"
    data = json.loads(portfolio.path.read_text())
    assert data["format"] == PORTFOLIO_FORMAT
    assert set(data["incumbents"][0]) == {"dataset", "dataset_path", "config", "alc", "budget", "config_id",
                                          "trials", "run_id"}
    assert set(data["provenance"]) >= {"versions", "seeds", "date", "command"}
    loaded = Portfolio.load(tmp_path / "out")  # a folder holding portfolio.json
    assert loaded == portfolio
    assert loaded.incumbent("beta").alc == 0.45
    with pytest.raises(PortfolioError, match="alpha, beta"):
        loaded.incumbent("gamma")
    assert not list((tmp_path / "out").glob("*.pkl"))


@pytest.mark.parametrize("change, field, message", [
    (lambda d: d.update(format="something/1"), "format", "autodl-meta-portfolio/1"),
    (lambda d: d["incumbents"][1].pop("config"), "incumbents[1].config", "missing"),
    (lambda d: d["incumbents"][0].update(alc="high"), "incumbents[0].alc", "expected"),
    (lambda d: d["incumbents"][0].update(alc=True), "incumbents[0].alc", "expected"),
    (lambda d: d["incumbents"][0].update(budget=2.0), "incumbents[0].budget", "(0, 1]"),
    (lambda d: d["incumbents"][0].update(config_id=[1, 2]), "incumbents[0].config_id", "three integers"),
    (lambda d: d["incumbents"][1].update(dataset="alpha"), "incumbents[1].dataset", "twice"),
    (lambda d: d["protocol"].pop("t0"), "protocol.t0", "missing"),
    (lambda d: d["protocol"].update(time_budget=-1), "protocol", "time_budget"),
    (lambda d: d.update(clock="sundial"), "clock", "sundial"),
    (lambda d: d.pop("provenance"), "provenance", "missing"),
    (lambda d: d.update(extra=1), None, "unknown keys"),
])
def test_portfolio_validation_names_file_and_field(runs: Path, tmp_path: Path, change, field, message):
    path = build_portfolio(runs, tmp_path / "portfolio.json").path
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    with pytest.raises(PortfolioError) as info:
        Portfolio.load(path)
    text = str(info.value)
    assert str(path) in text and message in text
    if field:
        assert info.value.field == field and f"field '{field}'" in text


def test_unreadable_portfolio_files(tmp_path: Path):
    with pytest.raises(PortfolioError, match="not found"):
        Portfolio.load(tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(PortfolioError, match="not valid JSON"):
        Portfolio.load(bad)


@pytest.mark.parametrize("key, value, shown", [
    ("protocol", {**PROTOCOL, "time_budget": 1200.0}, "protocol"),
    ("clock", "wall", "clock"),
    ("space", {"path": "configs/space/finetune.yaml", "sha256": "ef" * 32}, "space.sha256"),
    ("timing", {"path": "configs/timing/t.json", "sha256": "00" * 32}, "timing.sha256"),
])
def test_runs_with_different_settings_are_refused(tmp_path: Path, key: str, value: Any, shown: str):
    root = tmp_path / "runs"
    write_run(root, "alpha", [trial([0, 0, 0], 0.1, 1.0, alc=0.5)])
    write_run(root, "beta", [trial([0, 0, 0], 0.1, 1.0, alc=0.5)], **{key: value})
    with pytest.raises(PortfolioError) as info:
        incumbents_from_runs(root)
    text = str(info.value)
    assert shown in text and "run-alpha" in text and "run-beta" in text


def test_bad_runs_folders(tmp_path: Path):
    with pytest.raises(PortfolioError, match="not a folder"):
        incumbents_from_runs(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PortfolioError, match="no BOHB run"):
        incumbents_from_runs(tmp_path / "empty")
    root = tmp_path / "runs"
    folder = write_run(root, "alpha", [trial([0, 0, 0], 0.1, 1.0, alc=0.5)])
    (folder / "trials.jsonl").write_text(json.dumps({**trial([0, 0, 0], 0.1, 1.0), "alc": None}) + "\n")
    with pytest.raises(PortfolioError) as info:
        incumbents_from_runs(root)
    assert "trials.jsonl" in str(info.value) and info.value.field == "trial 1.alc"
    record = run_record("alpha")
    del record["clock"]
    (folder / "run.json").write_text(json.dumps(record))
    with pytest.raises(PortfolioError) as info:
        incumbents_from_runs(root)
    assert "run.json" in str(info.value) and info.value.field == "clock"


def test_two_runs_of_one_dataset_are_refused(tmp_path: Path):
    write_run(tmp_path / "runs", "alpha", [trial([0, 0, 0], 0.1, 1.0, alc=0.5)])
    other = write_run(tmp_path / "runs", "alpha-again", [trial([0, 0, 0], 0.1, 1.0, alc=0.5)])
    (other / "run.json").write_text(json.dumps(run_record("alpha", run_id="second")))
    with pytest.raises(PortfolioError, match="also searched"):
        incumbents_from_runs(tmp_path / "runs")


def test_cli_portfolio_incumbents(runs: Path, tmp_path: Path):
    out = tmp_path / "p.json"
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "portfolio", "incumbents", "--runs", str(runs),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "alpha" in proc.stdout and "gamma" in proc.stderr and "no incumbent" in proc.stderr
    portfolio = Portfolio.load(out)
    assert portfolio.datasets == ["alpha", "beta"]
    assert portfolio.provenance["command"].startswith("autodl-meta portfolio incumbents --runs")
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "portfolio", "incumbents", "--runs",
                           str(tmp_path / "nope"), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("autodl-meta: error:")
    assert "Traceback" not in proc.stderr
