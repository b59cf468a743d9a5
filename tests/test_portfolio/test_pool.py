"""``portfolio.pool``: the shared candidate pool from handmade BOHB runs, the greedy portfolio,
K by leave-one-dataset-out, seed noise and saturated datasets (hand-checked small matrices)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from finetune.grid import CORE, grid_config
from portfolio.pool import (
    Candidate,
    PoolError,
    analyse,
    assemble_pool,
    choose_k,
    digest,
    fixed_candidates,
    greedy,
    greedy_portfolio,
    load_pool,
    lodo_curve,
    matrix_seconds,
    oracle_curve,
    plan_pool,
    save_pool,
    trial_cells,
    write_analysis,
)
from test_incumbents import run_record


def _trial(cid: list[int], config: dict[str, Any], alc: float, budget: float = 1.0, seed: int = 0) -> dict[str, Any]:
    return {"config_id": cid, "config": config, "budget": budget, "seed": seed, "status": "ok", "alc": alc,
            "final_nauc": alc, "curve": {"timestamps": [1.0], "nauc": [alc]}, "wall_seconds": 2.0, "error": None,
            "traceback": None, "worker": "h:1", "started": "2026-01-01T00:00:00+00:00",
            "finished": "2026-01-01T00:01:00+00:00"}


def _write(root: Path, dataset: str, trials: list[dict[str, Any]]) -> None:
    """A run folder whose iteration-0 trials were its warm start (configs.jsonl names them)."""
    folder = root / dataset
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps(run_record(dataset)))
    (folder / "trials.jsonl").write_text("".join(json.dumps(t) + "\n" for t in trials))
    warm = {0: "default", 1: "lite0-96px"}
    (folder / "configs.jsonl").write_text("".join(
        json.dumps({"config_id": t["config_id"], "info": {"warm_start": warm[t["config_id"][2]]}}) + "\n"
        for t in trials if t["config_id"][0] == 0))


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    lite = grid_config("lite0-96px")
    default = grid_config("default")
    better = {**lite, "learning_rate": 0.01234}
    low_budget_best = {**lite, "learning_rate": 0.2}
    _write(root, "a", [_trial([0, 0, 0], default, 0.50), _trial([0, 0, 1], lite, 0.60),
                       _trial([1, 0, 0], better, 0.70), _trial([1, 0, 1], low_budget_best, 0.95, budget=1 / 9)])
    _write(root, "b", [_trial([0, 0, 0], default, 0.80), _trial([0, 0, 1], lite, 0.60),
                       _trial([1, 0, 0], better, 0.79)])  # the best full-budget trial is a fixed one
    _write(root, "c", [_trial([0, 0, 0], default, 0.40), _trial([0, 0, 1], lite, 0.41),
                       _trial([1, 0, 0], {**lite, "learning_rate": 0.05}, 0.45, seed=1)])  # another seed: not a cell
    return root


def test_fixed_candidates_are_the_grid_core(runs: Path) -> None:
    fixed = fixed_candidates("grid-core")
    assert [c.name for c in fixed] == [f"fixed:{n}" for n in CORE]
    assert fixed[0].config == fixed_candidates("grid")[0].config
    # with the runs: only what their warm starts evaluated
    assert [c.name for c in fixed_candidates("grid-core", runs)] == ["fixed:default", "fixed:lite0-96px"]


def test_pool_takes_searched_configurations_that_beat_the_fixed_ones(runs: Path) -> None:
    pool = assemble_pool(runs, "grid-core", per_run=2, max_searched=5)
    searched = [c for c in pool if c.origin["kind"] == "searched"]
    # a: the lr=0.01234 trial beats both fixed ones by 0.10 (the 1/9-budget one does not count);
    # b: a fixed configuration is best; c: the better trial ran under another seed but is full budget
    assert [c.name for c in searched] == ["searched:a", "searched:c"]
    assert searched[0].origin["margin"] == pytest.approx(0.10)
    assert searched[1].origin["margin"] == pytest.approx(0.04)
    assert len({digest(c.config) for c in pool}) == len(pool)
    assert [c.name for c in assemble_pool(runs, "grid-core", max_searched=1) if c.origin["kind"] == "searched"] == [
        "searched:a"]


def test_trial_cells_are_full_budget_trials_of_the_seed(runs: Path) -> None:
    rows = trial_cells(runs, 0)
    assert sorted((r["target"], r["alc"]) for r in rows) == [
        ("a", 0.5), ("a", 0.6), ("a", 0.7), ("b", 0.6), ("b", 0.79), ("b", 0.8), ("c", 0.4), ("c", 0.41)]
    lite = digest(grid_config("lite0-96px"))
    assert {r["target"] for r in rows if r["config_digest"] == lite} == {"a", "b", "c"}


def _timed(cid: list[int], config: dict[str, Any], alc: float, seconds: float) -> dict[str, Any]:
    return {**_trial(cid, config, alc), "wall_seconds": seconds}


@pytest.fixture
def timed_runs(tmp_path: Path) -> Path:
    """Two runs whose trials took known times: on ``a`` the fixed ones took 10 and 20 s and a
    searched configuration X (the larger margin) 40 s; on ``b`` the fixed ones 20 and 40 s and
    a searched Y 7.07 s (half the fixed ones' geometric mean, 28.28 s)."""
    root = tmp_path / "runs"
    lite, default = grid_config("lite0-96px"), grid_config("default")
    x, y = {**lite, "learning_rate": 0.01234}, {**lite, "learning_rate": 0.0777}
    _write(root, "a", [_timed([0, 0, 0], default, 0.50, 10.0), _timed([0, 0, 1], lite, 0.60, 20.0),
                       _timed([1, 0, 0], x, 0.90, 40.0)])
    _write(root, "b", [_timed([0, 0, 0], default, 0.50, 20.0), _timed([0, 0, 1], lite, 0.60, 40.0),
                       _timed([1, 0, 0], y, 0.70, 800 ** 0.5 / 4)])
    return root


def test_matrix_seconds_scale_a_candidate_s_own_time_by_each_dataset_s(timed_runs: Path) -> None:
    """Hand-checked: a cell that is a trial under the evaluation seed costs nothing, one whose
    trial ran costs the trial's time under another seed, any other ``r_c * s_d``."""
    plan = plan_pool(timed_runs, "grid-core", max_searched=5)
    cost = matrix_seconds(plan.candidates, timed_runs, seeds=(0, 1), eval_seed=0)
    assert cost["fixed:default"] == pytest.approx(10 + 20)  # seed 1 only, at the trials' times
    assert cost["fixed:lite0-96px"] == pytest.approx(20 + 40)
    # X: 40 s on a, where the fixed ones' geometric mean is sqrt(200): r = 2*sqrt(2); b's scale
    # sqrt(800): 80 s on b under each seed; 40 s on a under seed 1
    assert cost["searched:a"] == pytest.approx(40 + 2 * 80)
    # Y: r = 1/4; a's scale sqrt(200): 3.54 s under each seed; its own trial again under seed 1
    assert cost["searched:b"] == pytest.approx(2 * 200 ** 0.5 / 4 + 800 ** 0.5 / 4)
    # with the evaluation seed not among the matrix's seeds nothing is copied
    assert matrix_seconds(plan.candidates, timed_runs, seeds=(1,), eval_seed=0)["fixed:default"] == pytest.approx(30)
    assert [c.origin["matrix_hours"] for c in plan.candidates] == [
        pytest.approx(round(cost[c.name] / 3600, 4)) for c in plan.candidates]
    assert plan.budget_hours is None and plan.left_out == {}
    assert plan.estimate_hours == pytest.approx(sum(cost.values()) / 3600)


def test_a_searched_candidate_that_does_not_fit_the_matrix_budget_is_left_out(timed_runs: Path) -> None:
    """The budget keeps the fixed candidates, skips X (the larger margin, 200 worker-s) and
    still keeps the cheaper Y after it; the reason is recorded with the pool."""
    fixed_s, y_s = 90.0, 2 * 200 ** 0.5 / 4 + 800 ** 0.5 / 4
    plan = plan_pool(timed_runs, "grid-core", max_searched=5, budget_hours=(fixed_s + y_s + 10) / 3600)
    assert [c.name for c in plan.candidates] == ["fixed:default", "fixed:lite0-96px", "searched:b"]
    assert list(plan.left_out) == ["searched:a"] and "worker-hours" in plan.left_out["searched:a"]
    assert plan.estimate_hours == pytest.approx((fixed_s + y_s) / 3600)
    # enough for both: both, largest margin first; max_searched still applies
    both = plan_pool(timed_runs, "grid-core", max_searched=5, budget_hours=1.0)
    assert [c.name for c in both.candidates][2:] == ["searched:a", "searched:b"]
    one = plan_pool(timed_runs, "grid-core", max_searched=1, budget_hours=0)  # 0: no limit
    assert [c.name for c in one.candidates][2:] == ["searched:a"] and "largest margin" in one.left_out["searched:b"]
    # a budget below the fixed candidates' cells keeps them (they are the warm start) and no searched one
    assert [c.name for c in plan_pool(timed_runs, "grid-core", budget_hours=1e-6).candidates] == [
        "fixed:default", "fixed:lite0-96px"]
    save_pool(plan.candidates, timed_runs.parent / "pool.json", **plan.provenance())
    saved = json.loads((timed_runs.parent / "pool.json").read_text())["provenance"]
    assert saved["left_out"] == plan.left_out and saved["budget_hours"] == pytest.approx(plan.budget_hours)


def test_pool_file_round_trip(tmp_path: Path, runs: Path) -> None:
    pool = assemble_pool(runs, "grid-core")
    save_pool(pool, tmp_path / "pool.json", warm_start="grid-core")
    assert load_pool(tmp_path) == pool
    (tmp_path / "pool.json").write_text('{"format": "other"}')
    with pytest.raises(PoolError, match="format"):
        load_pool(tmp_path / "pool.json")


# --- greedy and K -----------------------------------------------------------------------------
M = np.array([[0.9, 0.5, 0.5, 0.6],    # the single best: mean 0.625
              [0.2, 0.9, 0.2, 0.2],    # covers column 1
              [0.2, 0.2, 0.8, 0.2],    # covers column 2
              [0.85, 0.45, 0.45, 0.55]])  # dominated


def test_greedy_adds_what_raises_the_mean_best() -> None:
    assert greedy(M, 10) == [0, 1, 2]  # then nothing raises it: stops
    assert greedy(M, 2) == [0, 1]
    assert oracle_curve(M, [0, 1, 2], 4) == pytest.approx([0.625, 0.725, 0.8, 0.8])


def test_lodo_scores_members_chosen_without_the_column() -> None:
    lodo = lodo_curve(M, 3)
    # without column 1, row 1 adds nothing: greedy stops after 0 and 2 (and 2 is picked when column 2 is in)
    assert lodo[0] == pytest.approx(0.625)
    assert lodo[2] <= oracle_curve(M, greedy(M, 3), 3)[2] + 1e-12
    assert choose_k([0.6, 0.7, 0.71, 0.71], noise=0.02, k_min=1, k_max=4) == 2
    assert choose_k([0.6, 0.7, 0.71, 0.71], noise=0.0, k_min=1, k_max=4) == 3
    assert choose_k([0.6, 0.7], noise=0.0, k_min=4, k_max=10) == 2  # fewer members than k_min


def _cells(alc: np.ndarray, names: list[str], targets: list[str]) -> list[dict[str, Any]]:
    return [{"source": names[i], "target": targets[j], "seed": k, "status": "ok", "alc": float(alc[i, j, k])}
            for i in range(alc.shape[0]) for j in range(alc.shape[1]) for k in range(alc.shape[2])]


def test_analyse_noise_saturation_headroom_and_assignment(tmp_path: Path) -> None:
    names, targets = ["c0", "c1", "c2"], ["t0", "t1", "t2"]
    alc = np.zeros((3, 3, 2))
    alc[:, 0] = [[0.80, 0.82], [0.40, 0.40], [0.79, 0.79]]
    alc[:, 1] = [[0.30, 0.30], [0.90, 0.90], [0.30, 0.30]]
    alc[:, 2] = [[0.95, 0.97], [0.955, 0.955], [0.96, 0.96]]  # spread 0.005 > noise 0.01 / 3: not saturated
    cands = [Candidate(n, {"learning_rate": 0.1 * (i + 1)}) for i, n in enumerate(names)]
    a = analyse(_cells(alc, names, targets), cands, targets, [0, 1], k_min=1, k_max=3)
    assert a["noise"]["t0"] == pytest.approx((0.01 + 0 + 0) / 3)
    assert a["saturated"] == []
    assert a["greedy"] == ["c1", "c0"]  # means 0.752, 0.690; then c2 raises nothing
    assert a["assignment"] == {"t0": "c0", "t1": "c1", "t2": "c0"}  # t2: c1 0.955 within noise? no: c0 0.96
    # ties within a dataset's seed noise go to the earlier member
    alc[:, 0] = [[0.812, 0.812], [0.795, 0.825], [0.40, 0.40]]  # noise 0.015 / 3 = 0.005: c0 0.812, c1 0.81
    assert analyse(_cells(alc, names, targets), cands, targets, [0, 1], k_min=1, k_max=3)["assignment"]["t0"] == "c1"
    # saturate t2: every candidate within its noise
    alc[:, 2] = [[0.95, 0.97], [0.955, 0.965], [0.96, 0.96]]
    a = analyse(_cells(alc, names, targets), cands, targets, [0, 1], k_min=1, k_max=3)
    assert a["saturated"] == ["t2"] and a["used"] == ["t0", "t1"]
    assert a["single_best"]["name"] in names and a["k"] >= 1
    assert set(a["headroom"]["beyond_noise"]) == {"t0", "t1"}
    paths = write_analysis(a, tmp_path, protocol="mini", clock="simulated")
    assert "saturated: left out" in paths["md"].read_text() and paths["png"].stat().st_size > 0
    # an incomplete matrix: a failed cell leaves its dataset out; none complete is refused
    cells = _cells(alc, names, targets)
    cells[0] = {**cells[0], "status": "failed", "alc": None}
    assert "t0" in analyse(cells, cands, targets, [0, 1], k_min=1, k_max=3)["incomplete"]
    with pytest.raises(PoolError, match="not done"):
        analyse([], cands, targets, [0, 1])


def test_greedy_portfolio_file_names_members(tmp_path: Path, runs: Path) -> None:
    from portfolio.incumbents import Portfolio, incumbents_from_runs

    pool = assemble_pool(runs, "grid-core", max_searched=2)
    names = [c.name for c in pool]
    targets = ["a", "b", "c"]
    rng = np.random.default_rng(0)
    alc = rng.uniform(0.2, 0.9, size=(len(pool), 3, 1)).repeat(2, axis=2)
    alc[:, :, 1] += 0.001
    a = analyse(_cells(alc, names, targets), pool, targets, [0, 1], k_min=1, k_max=4)
    p = greedy_portfolio(a, pool, {t: f"data/{t}" for t in targets}, incumbents_from_runs(runs, command="x"))
    p.save(tmp_path / "portfolio.json")
    back = Portfolio.load(tmp_path / "portfolio.json")
    assert [i.member for i in back.incumbents] == [a["assignment"][t] for t in back.datasets]
    assert {i.member for i in back.incumbents} <= set(a["members"])
    assert back.provenance["design"] == "greedy" and back.provenance["k"] == a["k"]


def test_greedy_md_shows_the_oracle_per_seed_and_the_single_best_against_the_fixed_ones(tmp_path: Path) -> None:
    """Seed 0 and seed 1 alone give their own oracle curves; the single best is set against
    the best fixed configuration (names ``fixed:``), or, being fixed itself, the next one."""
    from portfolio.pool import analysis_markdown, fixed_against_single_best, seed_oracle_curves

    names, targets = ["fixed:a", "fixed:b", "searched:c"], ["t0", "t1"]
    alc = np.zeros((3, 2, 2))
    alc[:, 0] = [[0.6, 0.7], [0.5, 0.5], [0.2, 0.2]]
    alc[:, 1] = [[0.4, 0.4], [0.3, 0.3], [1.0, 0.9]]
    cands = [Candidate(n, {"learning_rate": 0.1 * (i + 1)}) for i, n in enumerate(names)]
    a = analyse(_cells(alc, names, targets), cands, targets, [0, 1], k_min=1, k_max=3)
    assert a["greedy"][:2] == ["searched:c", "fixed:a"]  # mean ALC 0.575, then fixed:a raises t0
    curves = seed_oracle_curves(a)
    # K=1 (searched:c): seed 0 (0.2 + 1.0) / 2 = 0.6, seed 1 (0.2 + 0.9) / 2 = 0.55; K=2 adds fixed:a on t0
    assert curves[0][:2] == pytest.approx([0.6, 0.8]) and curves[1][:2] == pytest.approx([0.55, 0.8])
    vs = fixed_against_single_best(a)
    assert vs["best_fixed"] == "fixed:a" and vs["best_fixed_mean_alc"] == pytest.approx(0.525)
    assert vs["difference"] == pytest.approx(a["single_best"]["mean_alc"] - 0.525)
    md = analysis_markdown(a, protocol="mini", clock="simulated")
    assert "| 1 | searched:c | 0.5750 | 0.5500-0.6000 |" in md
    assert "against the best fixed configuration of the pool" in md and "`fixed:a` 0.5250" in md
    assert "| fixed:b | 0.4000 |  |" in md
    # the single best being fixed itself: the next fixed one is named
    a2 = analyse(_cells(alc[:2], names[:2], targets), cands[:2], targets, [0, 1], k_min=1, k_max=2)
    vs2 = fixed_against_single_best(a2)
    assert vs2["best_fixed"] == vs2["single_best"] == "fixed:a" and vs2["next_fixed"] == "fixed:b"
    assert "is itself the best fixed configuration" in analysis_markdown(a2, protocol="mini", clock="simulated")
    assert fixed_against_single_best({**a, "mean_alc": {"searched:c": 0.5}}) is None


def test_the_two_designs_side_by_side(tmp_path: Path, runs: Path) -> None:
    """The greedy portfolio beside each dataset's own incumbent (a: searched:a, b: fixed:default,
    c: searched:c), hand-checked on equal seeds (noise 0, nothing saturated):

        candidate          a    b    c    mean
        fixed:default     .50  .80  .40  .5667
        fixed:lite0-96px  .60  .60  .41  .5367
        searched:a        .70  .85  .30  .6167
        searched:c        .20  .20  .45  .2833

    incumbents: 3 configurations, single best searched:a .6167, oracle (.70 + .85 + .45) / 3,
    each dataset's own (.70 + .80 + .45) / 3. With one searched candidate kept in the pool,
    c's incumbent is missing and c is not scored."""
    from portfolio.incumbents import incumbents_from_runs
    from portfolio.pool import analysis_markdown, compare_designs

    pool = assemble_pool(runs, "grid-core", max_searched=2)
    names, targets = [c.name for c in pool], ["a", "b", "c"]
    assert names == ["fixed:default", "fixed:lite0-96px", "searched:a", "searched:c"]
    table = np.array([[.50, .80, .40], [.60, .60, .41], [.70, .85, .30], [.20, .20, .45]])
    a = analyse(_cells(table[:, :, None].repeat(2, axis=2), names, targets), pool, targets, [0, 1], k_min=1, k_max=4)
    d = compare_designs(a, pool, incumbents_from_runs(runs))
    inc = d["incumbents"]
    assert inc["of_dataset"] == {"a": "searched:a", "b": "fixed:default", "c": "searched:c"} and inc["missing"] == []
    assert inc["configurations"] == ["searched:a", "fixed:default", "searched:c"]
    assert inc["single_best"] == "searched:a" and inc["single_best_mean_alc"] == pytest.approx(1.85 / 3)
    assert inc["oracle_mean_alc"] == pytest.approx(2.0 / 3) and inc["own_incumbent_mean_alc"] == pytest.approx(1.95 / 3)
    g = d["greedy"]
    assert g["configurations"] == a["members"] and g["oracle_mean_alc"] == pytest.approx(a["oracle_mean_alc"])
    md = analysis_markdown({**a, "designs": d}, protocol="mini", clock="simulated")
    assert "## The two designs" in md and "| incumbents | 3 | searched:a | 0.6167 | 0.6667 | 0.6500 |" in md
    # c's incumbent left out of the pool: c is not scored by either design
    small = assemble_pool(runs, "grid-core", max_searched=1)
    keep = {c.name for c in small}
    cells = [c for c in _cells(table[:, :, None].repeat(2, axis=2), names, targets) if c["source"] in keep]
    a1 = analyse(cells, small, targets, [0, 1], k_min=1, k_max=3)
    d1 = compare_designs(a1, small, incumbents_from_runs(runs))
    assert d1["incumbents"]["missing"] == ["c"] and d1["datasets"] == ["a", "b"]
    assert d1["incumbents"]["oracle_mean_alc"] == pytest.approx((.70 + .85) / 2)
    assert "Not scored (their incumbent is not in the pool): c." in analysis_markdown({**a1, "designs": d1},
                                                                                       protocol="mini", clock="simulated")
