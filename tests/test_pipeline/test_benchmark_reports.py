"""The clock and grid benchmarks' bookkeeping: agreement figures, grid summaries, resuming.

No evaluation runs here: rows are made by hand (or by a stand-in for ``evaluate``), so
the figures are exact.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.benchmarks import config_grid
from pipeline.benchmarks.clock_agreement import agreement, clock_report
from pipeline.benchmarks.config_grid import grid_heatmap, grid_report, grid_table, run_grid


def _row(config: str, dataset: str, clock: str, alc: float | None, status: str = "ok") -> dict:
    return {"config": config, "dataset": dataset, "clock": clock, "alc": alc, "status": status, "seed": 0,
            "protocol": "mini", "predictions": 3}


def test_agreement_with_the_wall_clock():
    wall = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.2}
    other = {"a": 0.92, "b": 0.45, "c": 0.71, "d": 0.25}
    rows = [_row(k, "ds", "wall", v) for k, v in wall.items()] + [_row(k, "ds", "sim", v) for k, v in other.items()]
    rows.append(_row("e", "ds", "wall", 0.4))
    rows.append(_row("e", "ds", "sim", None, status="crashed"))  # left out: no ALC to compare
    a = agreement(rows, "sim")
    assert a.pairs == 4 and a.spearman == pytest.approx(1.0)
    assert a.mean_abs_diff == pytest.approx((0.02 + 0.05 + 0.01 + 0.05) / 4)
    assert a.worst_abs_diff == pytest.approx(0.05)
    assert agreement(rows[:2] + rows[4:6], "sim") is None  # fewer than 3 pairs
    report = clock_report(rows, "autodl-meta benchmark clocks", ["sim"])
    assert "| a | ds | 0.9000 | 0.9200 | +0.0200 |" in report and "| e | ds | 0.4000 | crashed | n/a |" in report


def test_grid_summary_per_dataset(tmp_path: Path):
    rows = []
    for seed, (d, g, s) in enumerate([(0.50, 0.70, 0.40), (0.54, 0.74, 0.40)]):
        for config, alc in (("default", d), ("good", g), ("scratch", s)):
            rows.append({**_row(config, "photos", "simulated", alc), "seed": seed})
    rows.append({**_row("good", "photos", "simulated", None, status="crashed"), "seed": 2})
    t = grid_table(rows)["photos"]
    assert t["best"] == "good" and t["worst"] == "scratch"
    assert t["best_minus_worst"] == pytest.approx(0.72 - 0.40)
    assert t["best_minus_default"] == pytest.approx(0.72 - 0.52)
    assert t["seed_range_mean"] == pytest.approx((0.04 + 0.04 + 0.0) / 3)
    assert t["seed_range_max"] == pytest.approx(0.04)
    report = grid_report(rows, "autodl-meta benchmark grid")
    assert grid_heatmap(rows, Path(tmp_path) / "grid.png").stat().st_size > 5_000
    assert "1 not ok" in report and "| photos | 3 of 3 | good (0.7200) | scratch (0.4000) | 0.3200 | 0.2000 |" in report


def test_grid_resumes_where_it_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    calls = []

    def fake(config, dataset, path, seed, protocol, timing):
        calls.append((config, dataset, seed))
        return {"config": config, "dataset": dataset, "seed": seed, "status": "ok", "alc": 0.5, "protocol": protocol,
                "error": None}

    monkeypatch.setattr(config_grid, "_evaluate_one", fake)
    monkeypatch.setattr(config_grid, "prepare_dataset", lambda name, data_dir: tmp_path / name)
    results = tmp_path / "grid.jsonl"
    rows = run_grid(results, tmp_path, configs=["default", "scratch"], datasets=["digits"], seeds=[0, 1])
    assert len(rows) == len(calls) == 4
    # a run killed while writing leaves a cut line: it is skipped and evaluated again
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:10])
    calls.clear()
    rows = run_grid(results, tmp_path, configs=["default", "scratch"], datasets=["digits"], seeds=[0, 1])
    assert calls == [("scratch", "digits", 1)] and len(rows) == 4
    assert all(json.loads(line) for line in results.read_text().splitlines()[-1:])
    with pytest.raises(Exception, match="unknown grid configuration"):
        run_grid(results, tmp_path, configs=["nonsense"])


def test_every_phase_of_the_profile_names_a_function_that_exists() -> None:
    """``benchmark profile`` attributes time by (file, function name): a function moved or renamed
    would silently count 0 s, so every pair must name a function defined in that file."""
    import ast

    from pipeline.profile import PHASES

    root = Path(__file__).resolve().parents[2]
    for phase, pairs in PHASES.items():
        for file, func in pairs:
            tree = ast.parse((root / file).read_text())
            names = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            assert func in names, f"{phase}: {file} defines no function {func!r}"
