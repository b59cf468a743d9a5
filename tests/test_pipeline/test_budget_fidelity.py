"""``autodl-meta benchmark fidelity``: the runs' budget pairs, the configurations measured, the
summary and report, and a tiny resumable measurement on the simulated clock."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import write_tiny_halves
from pipeline.benchmarks.budget_fidelity import (data_cap, fidelity_configs, fidelity_markdown,
                                                 fidelity_summary, run_dirs, run_fidelity,
                                                 run_fidelity_measurement, runs_fidelity, runs_markdown)

CHEAP = {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw+random", "finetune": False,
         "num_predictions": 6, "input_size": 32}
CHEAP_B = {**CHEAP, "probes": "raw"}
NINTH, THIRD = 1 / 9, 1 / 3


def _trials(folder: Path, rows: list[tuple[int, float, float | None]], dataset: str = "ds") -> Path:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"dataset": {"name": dataset}}))
    (folder / "trials.jsonl").write_text("".join(
        json.dumps({"config_id": [0, 0, k], "budget": b, "status": "ok" if alc is not None else "crashed",
                    "alc": alc, "learner_version": 2}) + "\n" for k, b, alc in rows))
    return folder


def test_a_run_gives_a_spearman_only_with_enough_configurations(tmp_path: Path) -> None:
    rows = [(k, NINTH, 0.1 * k) for k in range(6)]                       # 6 at 1/9
    rows += [(k, THIRD, a) for k, a in ((1, 0.3), (2, 0.2), (3, 0.5), (4, 0.6), (5, 0.7))]  # 5 promoted
    rows += [(4, 1.0, 0.8), (5, 1.0, 0.9), (3, 1.0, None)]              # 2 at the full budget (one crashed)
    run = _trials(tmp_path / "runs" / "r1", rows, dataset="digits")
    _trials(tmp_path / "runs" / "r2", [(0, NINTH, 0.5), (0, THIRD, 0.6)])
    assert run_dirs([tmp_path / "runs"]) == [tmp_path / "runs" / "r1", tmp_path / "runs" / "r2"]
    assert run_dirs([run]) == [run]
    f = run_fidelity(run)
    assert f.dataset == "digits" and f.budgets == pytest.approx([NINTH, THIRD, 1.0]) and f.learner_versions == [2]
    stats = {(round(s.low, 3), round(s.high, 3)): s for s in f.stats}
    promo = stats[(0.111, 0.333)]
    assert promo.pairs == 5 and promo.spearman == pytest.approx(0.9)  # ranks 1,2,3,4,5 vs 2,1,3,4,5
    assert (promo.concordant, promo.discordant, promo.tied) == (9, 1, 0)
    assert stats[(0.111, 1.0)].pairs == 2 and stats[(0.111, 1.0)].spearman is None
    assert stats[(0.333, 1.0)].pairs == 2 and stats[(0.333, 1.0)].concordant == 1
    text = runs_markdown(runs_fidelity([tmp_path / "runs"]))
    assert "| r1 (digits) | 13 | 2 |" in text and "+0.90 (5 configs)" in text and "too few (2)" in text
    assert "| 1/9 vs 1/3 | 1 (mean +0.90) | 10 | 9 | 1 | 0 | 0.90 |" in text
    assert "No BOHB run folder" in runs_markdown([])


def test_configurations_are_the_core_then_seeded_samples_of_the_datasets_space(tmp_path: Path) -> None:
    from finetune.config import validate_config
    from finetune.grid import CORE
    from portfolio.cost_matrix import config_digest

    data = write_tiny_halves(tmp_path)
    a = fidelity_configs(data, 5, core=2, sample_seed=0)
    assert [n for n, _ in a] == [CORE[0], CORE[1], "sample-0", "sample-1", "sample-2"]
    assert len({config_digest(c) for _, c in a}) == 5
    for name, c in a:
        assert validate_config(c) == c, name
        assert c["temporal"] == validate_config({})["temporal"]  # images: the video options keep their default
    assert fidelity_configs(data, 5, core=2, sample_seed=0) == a
    assert fidelity_configs(data, 5, core=2, sample_seed=1)[2:] != a[2:]
    assert [n for n, _ in fidelity_configs(data, 4)] == [CORE[0], CORE[1], "sample-0", "sample-1"]
    assert len(fidelity_configs(data, 20)) == 20 and sum(n in CORE for n, _ in fidelity_configs(data, 20)) == 7


def test_data_cap() -> None:
    assert data_cap(1198, 5000, 1 / 9) == 133
    assert data_cap(20000, 5000, 1 / 3) == 1667
    assert data_cap(10, None, 0.01) == 1


def _rows() -> list[dict]:
    full = {"a": 0.9, "b": 0.5, "c": 0.7, "d": 0.2}
    ninth = {"a": 0.3, "b": 0.6, "c": 0.2, "d": 0.1}    # b best at 1/9; a best at 1
    third = {"a": 0.8, "b": 0.4, "c": 0.6, "d": 0.1}    # same order as the full budget
    data = {"a": 0.85, "b": 0.55, "c": 0.65, "d": None}
    out = []
    for fid, b, alcs in (("time", 1.0, full), ("time", NINTH, ninth), ("time", THIRD, third), ("data", NINTH, data)):
        for n, alc in alcs.items():
            out.append({"name": n, "digest": n * 4, "dataset": "ds", "fidelity": fid, "budget": b, "seed": 0,
                        "status": "ok" if alc is not None else "crashed", "alc": alc, "wall_seconds": 60 * b,
                        "error": None if alc is not None else "boom"})
    return out


def test_summary_spearman_best_and_regret() -> None:
    s = fidelity_summary(_rows())["ds"]
    lv = {(x["fidelity"], round(x["budget"], 3)): x for x in s["levels"]}
    ninth, third, data = lv[("time", 0.111)], lv[("time", 0.333)], lv[("data", 0.111)]
    assert ninth["spearman"] == pytest.approx(0.4) and ninth["low_best"] == "b" and ninth["full_best"] == "a"
    assert not ninth["same_best"] and ninth["regret"] == pytest.approx(0.4)
    assert third["spearman"] == pytest.approx(1.0) and third["same_best"] and third["regret"] == 0
    assert data["configs"] == 3 and data["spearman"] == pytest.approx(1.0)
    assert s["promotion"]["spearman"] == pytest.approx(0.4) and s["promotion"]["configs"] == 4
    text = fidelity_markdown(fidelity_summary(_rows()), _rows())
    assert "**ds** (4 configurations at the full budget" in text
    assert "| time (fraction of T) | 1/9 | 4 | +0.40 | b | a | 0.4000 |" in text
    assert "| data (fraction of the training data, full T) | 1/9 | 3 | +1.00 |" in text
    assert "BOHB's first promotion (1/9 vs 1/3 of T): Spearman +0.40 over 4 configurations." in text
    assert "1 evaluation(s) did not end `ok`" in text and "d on ds (data 1/9): crashed boom" in text


def test_tiny_measurement_resumes_and_reports(tmp_path: Path) -> None:
    """2 cheap configurations on a tiny dataset under a 4-second protocol, time at 1/3 and 1, data at
    1/3: 6 evaluations; a rerun evaluates nothing, a lost row is evaluated again."""
    from conftest import flat_timing

    data = write_tiny_halves(tmp_path)
    proto = tmp_path / "tiny.yaml"
    proto.write_text("name: tiny\ntime_budget: 4\nt0: 0.2\n")
    timing = flat_timing(0.05, 0.0005).save(tmp_path / "timing.json")
    results = tmp_path / "fid.jsonl"
    kw = dict(n_configs=2, budgets=(THIRD, 1.0), fidelities=("time", "data"), protocol=str(proto),
              timing=timing, configs=[("cheap", CHEAP), ("cheap-b", CHEAP_B)])
    rows = run_fidelity_measurement(results, [("tiny", data)], **kw)
    assert len(rows) == 6 and all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert {(r["fidelity"], round(r["budget"], 3)) for r in rows} == {("time", 0.333), ("time", 1.0), ("data", 0.333)}
    capped = [r for r in rows if r["fidelity"] == "data"]
    assert all(r["max_train_examples"] == 10 for r in capped)  # a third of 30
    assert all(r["protocol"] == "tiny" and r["learner_version"] >= 1 and r["digest"] for r in rows)
    assert run_fidelity_measurement(results, [("tiny", data)], **kw) == rows
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + "\n")
    again = run_fidelity_measurement(results, [("tiny", data)], **kw)
    assert len(again) == 6 and len(results.read_text().splitlines()) == 6
    s = fidelity_summary(again, (THIRD, 1.0))
    assert {lv["fidelity"] for lv in s["tiny"]["levels"]} == {"time", "data"}


def test_command_writes_a_section(tmp_path: Path) -> None:
    """The command with --runs only (no evaluation): a section with the runs' table."""
    from autodl_meta.cli import main

    _trials(tmp_path / "runs" / "r1", [(0, NINTH, 0.5), (0, THIRD, 0.6)])
    doc = tmp_path / "bench.md"
    assert main(["benchmark", "fidelity", "--runs", str(tmp_path / "runs"), "--doc", str(doc),
                 "--note", "a note"]) == 0
    text = doc.read_text()
    assert "## fidelity: do BOHB's low budgets rank configurations" in text and "### BOHB runs" in text
    assert "- a note" in text and "too few (1)" in text
    assert main(["benchmark", "fidelity", "--doc", ""]) == 2  # nothing to measure
    assert main(["benchmark", "fidelity", "--datasets", str(tmp_path / "nope"), "--doc", ""]) == 2
    assert main(["benchmark", "fidelity", "--datasets", str(tmp_path), "--budgets", "1/9,2", "--doc", ""]) == 2
