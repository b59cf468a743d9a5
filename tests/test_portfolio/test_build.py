"""``portfolio build`` end to end on two tiny datasets: collection, BOHB, incumbents, cost matrix;
a second build computes nothing. Simulated clock, hand-made timing table, no wall-clock assertion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import flat_timing

from autodl.records import read_jsonl
from portfolio.build import BuildSettings, build

TINY_SPACE = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"
CHEAP = {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32, "augmentation": "none"}


@pytest.mark.slow
def test_build_a_small_portfolio_then_resume_computing_nothing(tmp_path: Path):
    collection = tmp_path / "two.yaml"
    collection.write_text(yaml.safe_dump({
        "name": "two", "description": "two tiny digits sets", "held_out": ["Monkeys", "miniciao"],
        "sources": [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"}],
        "datasets": [{"name": "digits_a", "source": "digits", "doc": "digits 0-2", "classes": [0, 1, 2],
                      "max_train": 45, "max_test": 15},
                     {"name": "digits_b", "source": "digits", "doc": "digits 5-8, rgb", "classes": [5, 6, 7, 8],
                      "max_train": 40, "max_test": 16, "color": "rgb"}]}))
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text("name: tiny\ntime_budget: 8\nt0: 0.4\n")
    timing = flat_timing(0.05, 0.0005).save(tmp_path / "timing.json")
    settings = BuildSettings(collection=str(collection), data=str(tmp_path / "data"), protocol=str(protocol),
                             timing=str(timing), iterations=1, min_budget=1 / 3, workers=2, space=str(TINY_SPACE),
                             objective_args={"fixed": CHEAP})
    out = tmp_path / "portfolio"
    events = []
    manifest = build(out, settings, command="test", on_event=lambda e, i: events.append((e, i.get("dataset"))))
    assert [e for e, _ in events] == ["collection", "bohb", "bohb", "pool", "pool matrix", "portfolio", "cost matrix",
                                      "done"]
    # the pool: each run's best full-budget trial (no fixed configuration: the tiny space has no warm start),
    # on both datasets and both seeds; the runs' own full-budget trials of seed 0 are copied, not computed
    pool = json.loads((out / "pool" / "pool.json").read_text())["candidates"]
    assert 1 <= len(pool) <= 2 and all(c["origin"]["kind"] == "searched" for c in pool)
    pool_cells = read_jsonl(out / "pool" / "cells.jsonl")
    assert len(pool_cells) == len(pool) * 2 * 2 and all(c["status"] == "ok" for c in pool_cells)
    copied = [c for c in pool_cells if str(c.get("reused_from", "")).startswith("trial:")]
    assert copied and all(c["seed"] == 0 for c in copied)
    analysis = json.loads((out / "pool" / "greedy.json").read_text())
    assert (out / "pool" / "oracle_vs_k.png").is_file() and analysis["k"] >= 1
    portfolio = json.loads((out / "portfolio.json").read_text())
    assert sorted(i["dataset"] for i in portfolio["incumbents"]) == sorted(analysis["used"])
    for inc in portfolio["incumbents"]:
        assert inc["config"]["backbone"] == "scratch_cnn" and inc["budget"] == 1.0
        assert inc["member"] in analysis["members"]
    cells = read_jsonl(out / "cells.jsonl")  # the cost matrix: every cell copied from the pool's
    assert len(cells) == len(analysis["used"]) ** 2 * 2 and all(c["status"] == "ok" and c["reused_from"] for c in cells)
    assert (out / "cost_matrix.csv").is_file() and (out / "cost_matrix.png").is_file()
    assert {"collection", "bohb digits_a", "bohb digits_b", "pool", "pool matrix", "portfolio", "cost matrix"} <= {
        s["step"] for s in manifest["steps"]}
    assert "cells.jsonl" in manifest["files"] and "runs/digits_a/trials.jsonl" in manifest["files"]
    assert "pool/greedy.md" in manifest["files"]
    # each dataset's run samples with its own seed; the manifest says how many samples its model picked
    from offline_bohb.run import derive_seed

    runs = manifest["bohb"]["runs"]
    assert {n: r["bohb_seed"] for n, r in runs.items()} == {n: derive_seed(0, n) for n in ("digits_a", "digits_b")}
    for name, r in runs.items():
        assert r["warm_start"] == 0  # no grid configuration is one of this small space with its fixed values
        assert r["samples"] == 3 and 0 <= r["model_based"] <= r["samples"]  # one bracket: 3 at 1/3, 1 at 1
        step = next(s for s in manifest["steps"] if s["step"] == f"bohb {name}")
        assert step["bohb_seed"] == r["bohb_seed"] and step["samples"] == 3
        assert step["cpu_hours"] > 0  # the trials' CPU in their workers, which sharing the machine does not inflate
    pool_step = next(s for s in manifest["steps"] if s["step"] == "pool matrix")
    # the cells computed here; a copied cell (reused_from) cost nothing in this step
    computed_cpu = sum(c["cpu_seconds"] for c in pool_cells if not c.get("reused_from"))
    assert pool_step["cpu_hours"] == pytest.approx(computed_cpu / 3600, abs=6e-5) and pool_step["cpu_hours"] > 0

    events.clear()
    again = build(out, settings, command="test again", on_event=lambda e, i: events.append((e, i.get("dataset"))))
    assert "bohb" not in [e for e, _ in events]  # complete runs are not started again
    assert read_jsonl(out / "cells.jsonl") == cells and read_jsonl(out / "pool" / "cells.jsonl") == pool_cells
    assert again["steps"][-1]["computed"] == 0
    assert next(s for s in reversed(again["steps"]) if s["step"] == "pool matrix")["computed"] == 0
