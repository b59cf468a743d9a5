"""The held-out benchmark: which methods it runs, shared evaluations, derived methods,
wins/ties/losses, resuming, and the report (simulated clock, fixed seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.heldout import (
    ORACLE,
    RANDOM_MEMBER,
    SINGLE_BEST,
    SUBMISSION,
    MethodSet,
    build_methods,
    config_digest,
    portfolio_members,
    read_results,
    run_heldout,
    simulated_tasks,
    submission_unit,
)
from pipeline.heldout_report import clock_agreement, heldout_html, heldout_markdown, heldout_summary, verdict

ROOT = Path(__file__).resolve().parents[2]
CHEAP = {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw+random", "finetune": False,
         "num_predictions": 6, "input_size": 32}
CHEAP_B = {**CHEAP, "probes": "raw"}


def _portfolio(folder: Path, incumbents: list[tuple[str, dict]], single: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "portfolio.json").write_text(json.dumps(
        {"format": "autodl-meta-portfolio/1", "incumbents": [{"dataset": d, "config": c, "alc": 0.5}
                                                             for d, c in incumbents]}))
    (folder / "summary.json").write_text(json.dumps({"single_best": {"source": single, "mean_alc": 0.5}}))
    return folder


def test_members_are_distinct_configurations_and_single_best_is_one_of_them(tmp_path: Path) -> None:
    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B), ("c", CHEAP)], single="c")
    members, single = portfolio_members(port)
    assert list(members) == ["member:a", "member:b"]
    assert single == "member:a"  # c's incumbent is a's configuration


def test_greedy_portfolio_members_are_named_by_the_pool(tmp_path: Path) -> None:
    """A greedy portfolio (portfolio.pool) lists its K members; each dataset names its member."""
    folder = _portfolio(tmp_path / "p", [], single="b")
    port = {"format": "autodl-meta-portfolio/1",
            "incumbents": [{"dataset": "a", "config": CHEAP, "member": "fixed:lite0"},
                           {"dataset": "b", "config": CHEAP_B, "member": "searched:x"}],
            "provenance": {"members": [{"name": "fixed:lite0", "config": CHEAP}, {"name": "searched:x", "config": CHEAP_B},
                                       {"name": "searched:y", "config": {**CHEAP, "input_size": 64}}]}}
    (folder / "portfolio.json").write_text(json.dumps(port))
    members, single = portfolio_members(folder)
    assert list(members) == ["fixed:lite0", "searched:x", "searched:y"]  # a member no dataset got counts too
    assert single == "searched:x"


def test_single_best_outside_the_members_is_refused(tmp_path: Path) -> None:
    from autodl.errors import AutoDLError

    port = _portfolio(tmp_path / "p", [("a", CHEAP)], single="zzz")
    with pytest.raises(AutoDLError, match="single_best"):
        portfolio_members(port)


def test_methods_share_one_evaluation_per_configuration(tmp_path: Path) -> None:
    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a")
    grid = {"cheap": CHEAP, "default": "baseline:default"}
    rows = [{"config": c, "dataset": d, "seed": 0, "alc": v} for c, d, v in
            (("cheap", "x", 0.9), ("cheap", "y", 0.8), ("default", "x", 0.5), ("default", "y", 0.6))]
    methods = build_methods(port, grid=grid, grid_rows=rows)
    assert methods.grid_best == "cheap"
    names = [m.name for m in methods.methods]
    assert names[:2] == [SUBMISSION, SINGLE_BEST] and ORACLE in names and RANDOM_MEMBER in names
    tasks = simulated_tasks(methods, [("x", tmp_path)], [0, 1], protocol={"name": "mini"}, timing={})
    units = {t["unit"] for t in tasks}
    # members a, b; default, scratch; the grid's best equals member a, the single best too; the submission
    assert len(units) == 5
    assert len(tasks) == 10
    by = methods.by_name()
    assert by[SINGLE_BEST].unit == by["grid:cheap"].unit == f"config:{config_digest(methods.members['member:a'])}"


def _rows(values: dict[str, dict[str, list[float]]], methods: MethodSet) -> list[dict]:
    """Rows of the simulated clock from {unit-or-method: {dataset: [ALC per seed]}}."""
    units = {m.name: (m.unit if m.kind == "config" else submission_unit(m, methods))
             for m in methods.methods if m.kind != "derived"}
    units.update(methods.member_units())
    rows = []
    for name, per in values.items():
        for ds, alcs in per.items():
            for seed, a in enumerate(alcs):
                rows.append({"clock": "simulated", "unit": units[name], "dataset": ds, "seed": seed, "status": "ok",
                             "alc": a, "final_nauc": a + 0.1, "timestamps": [0.2, 10.0], "nauc": [a, a + 0.1],
                             "first_prediction_s": 0.2, "selection_seconds": 0.0})
    return rows


@pytest.fixture()
def two_members(tmp_path: Path) -> MethodSet:
    return build_methods(_portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a"))


def test_oracle_random_member_and_wins_ties_losses(two_members: MethodSet) -> None:
    m = two_members
    vals = {"member:a": {"x": [0.50, 0.52, 0.54], "y": [0.90, 0.90, 0.90]},
            "member:b": {"x": [0.70, 0.70, 0.70], "y": [0.60, 0.62, 0.64]},
            SUBMISSION: {"x": [0.69, 0.71, 0.70], "y": [0.95, 0.95, 0.95]},
            "baseline:default": {"x": [0.30, 0.30, 0.30], "y": [0.99, 0.99, 0.99]},
            "baseline:scratch": {"x": [0.72, 0.72, 0.72], "y": [0.10, 0.10, 0.10]}}
    s = heldout_summary(_rows(vals, m), m, ["x", "y"], seeds=(0, 1, 2))
    x = s["simulated"]["x"]
    assert x[ORACLE].mean == pytest.approx(0.70) and x[ORACLE].chosen == ["member:b"]
    assert s["simulated"]["y"][ORACLE].chosen == ["member:a"]
    assert x[RANDOM_MEMBER].alcs == pytest.approx([0.60, 0.61, 0.62])
    assert x[SINGLE_BEST].mean == pytest.approx(0.52)
    ov = s["overall"]["simulated"]
    assert ov["datasets"] == ["x", "y"]
    # against the single best: x +0.18 (win), y +0.05 (win)
    assert ov["vs"][SINGLE_BEST] == {**ov["vs"][SINGLE_BEST], "wins": 2, "ties": 0, "losses": 0}
    # against scratch: x -0.02 within the submission's range 0.02 (tie), y win
    assert (ov["vs"]["baseline:scratch"]["wins"], ov["vs"]["baseline:scratch"]["ties"]) == (1, 1)
    # against the default: x win, y loss
    assert (ov["vs"]["baseline:default"]["wins"], ov["vs"]["baseline:default"]["losses"]) == (1, 1)
    assert ov["share_of_oracle"] == pytest.approx(np.mean([0.70, 0.95]) / np.mean([0.70, 0.90]))
    assert ov["rank"][SUBMISSION] < ov["rank"][RANDOM_MEMBER]
    v = verdict(s)
    assert v["not_worse_than_single_best"] and v["minus_single-best"] == pytest.approx((0.18 + 0.05) / 2)
    # against every fixed configuration: submission 0.825; single best 0.71, default 0.645, scratch 0.41
    bar = v["fixed_bar"][SUBMISSION]
    assert set(bar["minus"]) == {SINGLE_BEST, "baseline:default", "baseline:scratch"}
    assert bar["closest"] == SINGLE_BEST and bar["smallest"] == pytest.approx(0.115) and bar["clears"]
    from pipeline.heldout_report import fixed_bar

    assert not fixed_bar({SUBMISSION: 0.70, SINGLE_BEST: 0.695, "grid:g": 0.5}, SUBMISSION)["clears"]  # +0.005
    assert fixed_bar({SUBMISSION: 0.70, ORACLE: 0.9}, SUBMISSION) == {
        "margin": 0.01, "minus": {}, "closest": None, "smallest": None, "clears": False}


def test_oracle_waits_for_every_member_and_incomplete_datasets_leave_the_means(two_members: MethodSet) -> None:
    m = two_members
    vals = {"member:a": {"x": [0.5], "y": [0.4]}, "member:b": {"x": [0.6]},
            SUBMISSION: {"x": [0.6], "y": [0.4]}, "baseline:default": {"x": [0.1], "y": [0.1]},
            "baseline:scratch": {"x": [0.1], "y": [0.1]}}
    s = heldout_summary(_rows(vals, m), m, ["x", "y"], seeds=(0,))
    assert ORACLE not in s["simulated"]["y"]
    assert s["overall"]["simulated"]["datasets"] == ["x"]


def test_report_has_every_part_and_the_clocks_are_compared(two_members: MethodSet, tmp_path: Path) -> None:
    m = two_members
    vals = {"member:a": {"x": [0.5, 0.5]}, "member:b": {"x": [0.6, 0.6]}, SUBMISSION: {"x": [0.55, 0.56]},
            "baseline:default": {"x": [0.4, 0.4]}, "baseline:scratch": {"x": [0.3, 0.3]}}
    from pipeline.heldout import wall_methods

    rows = [{**r, "task_seconds": 360.0, "cpu_seconds": 180.0} for r in _rows(vals, m)]
    unit = {w.name: w.unit for w in wall_methods(m, baselines=("baseline:default",))}
    assert unit["baseline:default"] == "baseline:default" and unit[SUBMISSION].startswith(f"{SUBMISSION}@")
    assert unit[SINGLE_BEST] == f"{SINGLE_BEST}@{m.member_units()[m.single_best]}"
    for name, a in ((SUBMISSION, 0.50), (SINGLE_BEST, 0.45), ("baseline:default", 0.41), ("kit:linear", 0.2)):
        rows.append({"clock": "wall", "unit": unit.get(name, name), "dataset": "x", "seed": 0, "status": "ok",
                     "alc": a, "final_nauc": a, "timestamps": [1.0], "nauc": [a], "first_prediction_s": 1.0,
                     "wall_seconds": 90.0})
    # another portfolio's submission and single best, and rows from before the units named theirs: not this one's
    for stale in (f"{SUBMISSION}@0123456789ab", f"{SINGLE_BEST}@config:0123456789abcdef", SUBMISSION, SINGLE_BEST):
        rows.append({"clock": "wall", "unit": stale, "dataset": "x", "seed": 0, "status": "ok", "alc": 0.99,
                     "final_nauc": 0.99, "timestamps": [1.0], "nauc": [0.99], "first_prediction_s": 1.0,
                     "wall_seconds": 90.0})
    # an organizers' model that crashed on every dataset leaves the wall-clock means alone
    rows.append({"clock": "wall", "unit": "kit:3dcnn", "dataset": "x", "seed": 0, "status": "crashed", "alc": None,
                 "final_nauc": None, "timestamps": [], "nauc": [], "wall_seconds": 5.0})
    s = heldout_summary(rows, m, ["x"], seeds=(0, 1))
    assert s["wall"]["x"][SUBMISSION].alcs == [0.50] and s["wall"]["x"][SINGLE_BEST].alcs == [0.45]
    assert s["overall"]["wall"]["datasets"] == ["x"] and s["overall"]["wall"]["mean"][SUBMISSION] == 0.50
    assert "kit:3dcnn" not in s["overall"]["wall"]["mean"]
    # 5 units x 2 seeds x 360 s = 1 worker-hour; 4 wall runs x 90 s = 0.1 h
    # and 10 x 180 CPU seconds = 0.5 CPU-hours: 0.25 h on 2 idle workers, + 0.1 h of wall runs
    assert s["compute"]["simulated"] == {"evaluations": 10, "timed": 10, "seconds": 3600.0, "cpu_timed": 10,
                                         "cpu_seconds": 1800.0, "expected": 10}
    assert s["compute"]["wall"] == {"evaluations": 5, "timed": 5, "seconds": 365.0, "cpu_timed": 0,
                                    "cpu_seconds": 0.0}
    ag = clock_agreement(s)
    assert ag["per_dataset"]["x"]["simulated_order"] == [SUBMISSION, SINGLE_BEST, "baseline:default"]
    assert ag["per_dataset"]["x"]["same_winner"]
    text = heldout_markdown(s, m, command="autodl-meta benchmark heldout", machine="test machine",
                            versions={"torch": "x"}, protocol="mini", seeds=(0, 1), wall_seeds=(0,), datasets=["x"],
                            figures={"x": "heldout/x.png"}, descriptions={"x": "a test set"})
    for part in ("## Verdict", "## Mean ALC and mean rank", "## ALC per dataset", "Final NAUC",
                 "first prediction", "## Wall clock", "kit:linear", "same winner on 1 of 1", "![x](heldout/x.png)",
                 "a test set", "autodl-meta benchmark heldout", "## Machine time", "1.00 worker-hours",
                 "about 0.60 h on this machine", "0.50 CPU-hours, so about 0.35 h in all on an otherwise idle"):
        assert part in text, part
    page = heldout_html(text)
    assert page.count("<table>") >= 4 and "<img" in page
    assert "Not complete" not in text
    # a run not finished yet says so: its totals are partial
    partial = heldout_summary(rows[1:], m, ["x"], seeds=(0, 1))
    assert partial["compute"]["simulated"]["evaluations"] == 9
    text = heldout_markdown(partial, m, command="c", machine="m", versions={}, protocol="mini", seeds=(0, 1),
                            wall_seeds=(0,), datasets=["x"], results="docs/results/other.jsonl")
    assert "**Not complete**: 9 of the 10 simulated evaluations are done" in text
    assert "the evaluations are in `docs/results/other.jsonl`" in text  # the file the report was made from
    assert text.index("**This run is not complete**: 9 of its 10") < text.index("## Verdict")


def test_run_resumes_and_evaluates_each_unit_once(tmp_path: Path) -> None:
    """A real (tiny) run on the simulated clock: 2 members, the default and scratch baselines
    and the submission (its selector: the single best) on one dataset, 1 seed; then a rerun
    evaluates nothing, and a lost row is evaluated again."""
    from autodl.writer import write_arrays

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 2
    x[y == 1, :4] = 255
    data = write_arrays(tmp_path / "tiny", "tiny", x[:30], y[:30], x[30:], y[30:], num_classes=2)
    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a")
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text("name: tiny\ntime_budget: 4\nt0: 0.2\n")
    methods = build_methods(port)
    methods.methods = [mm for mm in methods.methods if not mm.name.startswith("baseline:")]
    results = tmp_path / "res.jsonl"
    rows = run_heldout(results, [("tiny", data)], methods, protocol=str(protocol), seeds=(0,), workers=0)
    assert len(rows) == 3  # member a (= the single best), member b, the submission
    assert all(r["status"] == "ok" for r in rows), [r.get("error") for r in rows]
    assert all(0 < r["cpu_seconds"] for r in rows)  # what each cost the worker's CPU, recorded
    assert run_heldout(results, [("tiny", data)], methods, protocol=str(protocol), seeds=(0,), workers=0) == rows
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:-1]) + "\n")
    again = run_heldout(results, [("tiny", data)], methods, protocol=str(protocol), seeds=(0,), workers=0)
    assert len(again) == 3 and len(results.read_text().splitlines()) == 3
    s = heldout_summary(list(read_results(results).values()), methods, ["tiny"], seeds=(0,))
    assert s["simulated"]["tiny"][SUBMISSION].mean is not None
    assert s["simulated"]["tiny"][ORACLE].mean >= s["simulated"]["tiny"][SINGLE_BEST].mean

    # rows of an earlier learner version (rows without learner_version count as version 1) are
    # neither reused nor read back: the run computes them again
    from finetune.learner import LEARNER_VERSION

    assert LEARNER_VERSION > 1
    old = [json.loads(line) for line in results.read_text().splitlines()]
    assert {r["learner_version"] for r in old} == {LEARNER_VERSION}
    results.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "learner_version"}) + "\n"
                               for r in old))
    assert read_results(results) == {} and len(read_results(results, 1)) == 3
    fresh = run_heldout(results, [("tiny", data)], methods, protocol=str(protocol), seeds=(0,), workers=0)
    assert len(fresh) == 3 and all(r["learner_version"] == LEARNER_VERSION for r in fresh)
    assert len(results.read_text().splitlines()) == 6 and len(read_results(results, all_versions=True)) == 6
    assert [r["alc"] for r in fresh] == [r["alc"] for r in again]  # the tiny set gets no quick start


def test_hedged_variants_are_their_own_units_and_carry_their_settings(tmp_path: Path) -> None:
    from pipeline.heldout import wall_methods

    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a")
    methods = build_methods(port, hedge=[2, 3])
    by = methods.by_name()
    assert by[f"{SUBMISSION}+hedge2"].settings == {"hedge": 2} and by[f"{SUBMISSION}+hedge3"].settings == {"hedge": 3}
    units = {submission_unit(by[n], methods) for n in (SUBMISSION, f"{SUBMISSION}+hedge2", f"{SUBMISSION}+hedge3")}
    assert len(units) == 3
    tasks = simulated_tasks(methods, [("x", tmp_path)], [0], protocol={"name": "mini"}, timing={})
    assert {t["label"]: t.get("settings") for t in tasks if t["config"] is None} == {
        SUBMISSION: None, f"{SUBMISSION}+hedge2": {"hedge": 2}, f"{SUBMISSION}+hedge3": {"hedge": 3}}
    assert [w.name for w in wall_methods(methods, baselines=())] == [SUBMISSION, SINGLE_BEST]  # variants: asked
    env = {w.name: w.env for w in wall_methods(methods, baselines=(), variants=True)}
    assert json.loads(env[f"{SUBMISSION}+hedge2"]["AUTODL_META_SETTINGS"]) == {"hedge": 2}
    assert "AUTODL_META_SETTINGS" not in env[SUBMISSION]


def test_a_new_agent_version_is_a_new_unit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows of a submission are keyed by its artifacts and the agent's version: the same
    artifacts run by an agent that decides differently are run again, not read back."""
    import submission.agent
    from pipeline.heldout import wall_methods

    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a")
    methods = build_methods(port)
    sub = methods.by_name()[SUBMISSION]
    now = submission_unit(sub, methods)
    assert now.endswith(f"+agent{submission.agent.AGENT_VERSION}")
    wall = {w.name: w.unit for w in wall_methods(methods, baselines=())}[SUBMISSION]
    monkeypatch.setattr(submission.agent, "AGENT_VERSION", submission.agent.AGENT_VERSION + 1)
    assert submission_unit(sub, methods) != now
    assert {w.name: w.unit for w in wall_methods(methods, baselines=())}[SUBMISSION] != wall


def test_hedge_below_one_is_refused_and_one_is_pure_selection(tmp_path: Path) -> None:
    from autodl.errors import AutoDLError

    port = _portfolio(tmp_path / "p", [("a", CHEAP)], single="a")
    for bad in (0, "1sb", "x", "2s", "sb"):
        with pytest.raises(AutoDLError, match="hedge") as err:
            build_methods(port, hedge=[bad])
        assert err.value.field == "--hedge"
    # a portfolio shipped hedged (submission.json) is also measured without the race
    assert build_methods(port, hedge=[1]).by_name()[f"{SUBMISSION}+hedge1"].settings == {"hedge": 1}
    # Nsb: the single best races second; its own unit beside the plain race of the same size
    by = build_methods(port, hedge=["2", "2SB"]).by_name()
    assert by[f"{SUBMISSION}+hedge2sb"].settings == {"hedge": 2, "hedge_with_single_best": True}
    assert "the single best race" in by[f"{SUBMISSION}+hedge2sb"].description
    assert submission_unit(by[f"{SUBMISSION}+hedge2sb"], build_methods(port, hedge=["2sb"])) != submission_unit(
        by[f"{SUBMISSION}+hedge2"], build_methods(port, hedge=[2]))


def test_the_submission_is_described_with_its_shipped_race(tmp_path: Path) -> None:
    port = _portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a")
    assert "no race, as shipped" in build_methods(port).by_name()[SUBMISSION].description
    (port / "submission.json").write_text(json.dumps({"hedge": 2, "hedge_with_single_best": True}))
    described = build_methods(port).by_name()[SUBMISSION].description
    assert "its pick and the single best racing, the pick leading, as shipped" in described
    (port / "submission.json").write_text(json.dumps({"hedge": 3}))
    assert "its top 3 racing, as shipped" in build_methods(port).by_name()[SUBMISSION].description


def test_each_report_has_its_own_json_summary() -> None:
    from pipeline.heldout_report import summary_path_for

    assert summary_path_for("docs/results/heldout.jsonl", "docs/heldout.md") == Path(
        "docs/results/heldout.summary.json")
    assert summary_path_for("docs/results/heldout.jsonl", "docs/heldout-final.md") == Path(
        "docs/results/heldout-final.summary.json")


def test_the_choice_of_what_ships_leaves_the_final_split_out(tmp_path: Path) -> None:
    """The hedged variant wins on the choice split and ships; the final split's figures are
    reported apart (there it loses: the unbiased figure may disagree)."""
    m = build_methods(_portfolio(tmp_path / "p", [("a", CHEAP), ("b", CHEAP_B)], single="a"), hedge=[2])
    hedged = f"{SUBMISSION}+hedge2"
    vals = {"member:a": {"x": [0.5], "y": [0.5], "z": [0.5]}, "member:b": {"x": [0.4], "y": [0.4], "z": [0.6]},
            SUBMISSION: {"x": [0.5], "y": [0.5], "z": [0.6]}, hedged: {"x": [0.6], "y": [0.55], "z": [0.3]},
            "baseline:default": {"x": [0.1], "y": [0.1], "z": [0.1]},
            "baseline:scratch": {"x": [0.1], "y": [0.1], "z": [0.1]}}
    s = heldout_summary(_rows(vals, m), m, ["x", "y", "z"], seeds=(0,), final=["z"])
    assert s["final"] == ["z"] and s["overall"]["choice"]["datasets"] == ["x", "y"]
    v = verdict(s)
    assert v["split"] == "choice" and v["ships"] == hedged
    assert v["minus_single-best"] == pytest.approx(0.0)  # the plain submission: the single best on x, y
    assert v["final"]["ships_mean"] == pytest.approx(0.3) and v["final"]["ships_minus_single-best"] == pytest.approx(-0.2)
    text = heldout_markdown(s, m, command="c", machine="m", versions={}, protocol="mini", seeds=(0,), wall_seeds=(),
                            datasets=["x", "y", "z"])
    assert "Final test split (z" in text and f"`{hedged}`" in text
    assert f"`{hedged}` is +0.0750 from the closest, `{SINGLE_BEST}`; it **clears** the bar" in text
    assert v["final"]["fixed_bar"][hedged]["smallest"] == pytest.approx(-0.2)
    # the bar is also judged on the final split and over all datasets: (0.6+0.55+0.3)/3 - 0.5 = -0.0167
    assert v["all"]["datasets"] == 3 and v["all"]["fixed_bar"][hedged]["smallest"] == pytest.approx(-0.05 / 3)
    assert (f"The bar on the final test split, 1 dataset: `{hedged}` is -0.2000 from the closest fixed "
            f"configuration, `{SINGLE_BEST}`: it does **not** clear it.") in text
    assert f"The bar on all 3 datasets: `{hedged}` is -0.0167" in text
    # without a final split every dataset chooses
    assert verdict(heldout_summary(_rows(vals, m), m, ["x", "y", "z"], seeds=(0,)))["split"] == "all"


def test_a_pool_s_candidates_are_precomputed_as_the_units_a_later_portfolio_shares(tmp_path: Path) -> None:
    """``--candidates``: the pool's configurations and the fixed methods, no submission; the
    units are those a portfolio drawn from the pool evaluates (same digests)."""
    from autodl.errors import AutoDLError
    from pipeline.heldout import candidate_methods
    from portfolio.pool import Candidate, save_pool

    pool = save_pool([Candidate("fixed:a", CHEAP), Candidate("searched:b", CHEAP_B),
                      Candidate("searched:c", {**CHEAP, "input_size": 64})], tmp_path / "pool" / "pool.json")
    pre = candidate_methods(pool.parent, ["searched:b", "fixed:a"])
    assert list(pre.members) == ["searched:b", "fixed:a"]
    assert {m.kind for m in pre.methods} == {"config"}  # the baselines; no submission, nothing derived
    tasks = simulated_tasks(pre, [("x", tmp_path)], [0], protocol={"name": "mini"}, timing={})
    assert all(t["config"] is not None for t in tasks) and len(tasks) == 4  # b, a, default, scratch
    later = build_methods(_portfolio(tmp_path / "p", [("d1", CHEAP), ("d2", CHEAP_B)], single="d1"))
    assert set(later.member_units().values()) <= {t["unit"] for t in tasks}
    assert len(candidate_methods(pool).members) == 3  # all, in the pool's order
    with pytest.raises(AutoDLError, match="searched:zzz: not candidates") as err:
        candidate_methods(pool, ["searched:zzz"])
    assert err.value.field == "--candidates"


def test_signed_rank_tests_and_where_the_fixed_choices_differ(two_members: MethodSet) -> None:
    """Six datasets: the submission above the default on every one (exact two-sided Wilcoxon p =
    2/64), equal to member a everywhere (p = 1); member b wins on half the datasets by 0.3."""
    m = two_members
    ds = [f"d{i}" for i in range(6)]
    a = [0.50, 0.55, 0.60, 0.65, 0.70, 0.75]
    b = [v + (0.3 if i % 2 else -0.3) for i, v in enumerate(a)]
    vals = {"member:a": {d: [v] for d, v in zip(ds, a)}, "member:b": {d: [v] for d, v in zip(ds, b)},
            SUBMISSION: {d: [v] for d, v in zip(ds, a)},
            "baseline:default": {d: [v - 0.1 - 0.01 * i] for i, (d, v) in enumerate(zip(ds, a))},
            "baseline:scratch": {d: [0.4] for d in ds}}
    s = heldout_summary(_rows(vals, m), m, ds, seeds=(0,))
    vs = s["overall"]["simulated"]["vs"]
    assert vs["baseline:default"]["wilcoxon_p"] == pytest.approx(2 / 64)
    assert vs[SINGLE_BEST]["wilcoxon_p"] == 1.0  # the single best is member a: no difference anywhere
    ps = {n: v["wilcoxon_p"] for n, v in vs.items()}
    holm_default = vs["baseline:default"]["holm_p"]
    assert holm_default >= ps["baseline:default"] and holm_default <= min(1.0, len(ps) * ps["baseline:default"])
    fr = s["overall"]["simulated"]["friedman"]
    assert fr["datasets"] == 6 and fr["methods"] == len(s["methods"]) - 1 and 0 <= fr["pvalue"] < 0.05
    from pipeline.heldout_report import fixed_spread

    spread = fixed_spread(s, list(m.members))
    assert spread["d1"]["best"] == "member:b" and spread["d1"]["range"] == pytest.approx(0.85 - 0.4)
    assert spread["d0"]["best"] == "member:a" or spread["d0"]["best"] == SINGLE_BEST
    text = heldout_markdown(s, m, command="c", machine="m", versions={}, protocol="mini", seeds=(0,), wall_seeds=(),
                            datasets=ds)
    assert "## Where the fixed choices differ" in text and "0.1 ALC or more above the worst on 6 of 6" in text
    assert "Friedman test over" in text and "0.0312 (" in text


def test_too_few_datasets_for_a_signed_rank_test(two_members: MethodSet) -> None:
    m = two_members
    vals = {"member:a": {"x": [0.5]}, "member:b": {"x": [0.6]}, SUBMISSION: {"x": [0.6]},
            "baseline:default": {"x": [0.1]}, "baseline:scratch": {"x": [0.1]}}
    s = heldout_summary(_rows(vals, m), m, ["x"], seeds=(0,))
    ov = s["overall"]["simulated"]
    assert ov["vs"]["baseline:default"]["wilcoxon_p"] is None and "holm_p" not in ov["vs"]["baseline:default"]
    assert ov["friedman"] is None
    text = heldout_markdown(s, m, command="c", machine="m", versions={}, protocol="mini", seeds=(0,), wall_seeds=(),
                            datasets=["x"])
    assert "not run with fewer than 5 datasets" in text
