"""Selecting members, not datasets: the member view, labels with ties, member selectors, the
nested fallback and the trivial baselines, on a small hand-made portfolio.

Six datasets, each its own group: three of small images (s1, s2, s3: 8, 10, 12 px) and three of
big ones (b1, b2, b3: 64, 80, 96 px). Three members (fixed configurations): ``small`` is good on
small images, ``big`` on big ones, ``mid`` middling everywhere. Seed noise 0.02 everywhere.

              s1    s2    s3    b1    b2    b3
    small    .90   .88   .85   .50   .45   .40
    big      .50   .55   .60   .90   .92   .95
    mid      .70   .70   .84   .70   .70   .70      (mid is within the noise of small on s3)

The portfolio file assigns s* to ``small`` and b* to ``big`` (the cost matrix's rows).

Single best of each leave-one-dataset-out fold (best mean over the other 5 columns):
    s1: small (.88+.84... no: .88+.85+.50+.45+.40)/5 = .616, big (.55+.60+.90+.92+.95)/5 = .784,
        mid (.70+.84+.70+.70+.70)/5 = .728 -> big, ALC on s1 .50
    s2: small .620, big .774, mid .728 -> big .55
    s3: small .626, big .764, mid .700 -> big .60
    b1: small .696, big .704, mid .728 -> mid .70
    b2: small .706, big .700, mid .728 -> mid .70
    b3: small .716, big .694, mid .728 -> mid .70
    mean (.50 + .55 + .60 + .70 + .70 + .70) / 6 = 3.75 / 6 = .625
Oracle (best member on the held-out column): .90 .88 .85 .90 .92 .95, mean 5.40 / 6 = .90.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from selectors_for_tests import Centroid, NoState, spec

from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector.base import SelectorError
from selector.fallback import fallback_threshold, nested_fallback
from selector.identification import identification_accuracy
from selector.lodo import leave_one_dataset_out
from selector.member_views import load_members, members_from_cost
from selector.members import (
    MemberMatrix,
    acceptable_members,
    member_labels,
    preferred_member,
    seed_noise,
    trivial_members,
)
from selector.registry import load_selector, make_selector

NAMES = ["s1", "s2", "s3", "b1", "b2", "b3"]
SIDE = {"s1": 8, "s2": 10, "s3": 12, "b1": 64, "b2": 80, "b3": 96}
MEMBERS = ["small", "big", "mid"]
ALC = np.array([[.90, .88, .85, .50, .45, .40],
                [.50, .55, .60, .90, .92, .95],
                [.70, .70, .84, .70, .70, .70]])
SINGLE_BEST = {"s1": ("big", .50), "s2": ("big", .55), "s3": ("big", .60), "b1": ("mid", .70), "b2": ("mid", .70),
               "b3": ("mid", .70)}


def descriptors(name: str, train: float = 1000.0) -> dict[str, float]:
    return {"train_samples": train, "test_samples": 100.0, "classes": 2.0, "channels": 1.0,
            "height": float(SIDE[name]), "width": float(SIDE[name]), "variable_size": 0.0, "frames": 1.0,
            "multilabel": 0.0}


def features(shift: dict[str, float] | None = None) -> list[DatasetFeatures]:
    """One tight cluster per dataset at (side / 10, 0.1 * i, 0, 0): the small-image datasets lie
    near each other, the big ones too. ``shift`` moves a dataset's cluster along the first axis."""
    out = []
    for i, n in enumerate(NAMES):
        rng = np.random.default_rng(i)
        c = np.array([SIDE[n] / 10 + (shift or {}).get(n, 0.0), 0.1 * i, 0.0, 0.0], np.float32)
        y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
        out.append(DatasetFeatures(n, c + 0.05 * rng.normal(size=(40, 4)), y, c + 0.05 * rng.normal(size=(20, 4)),
                                   descriptors(n), n, {"backbone": "hand-made"}))
    return out


def member_matrix(alc: np.ndarray = ALC, noise: float = 0.02) -> MemberMatrix:
    return MemberMatrix(list(MEMBERS), list(NAMES), alc.copy(), dict.fromkeys(NAMES, noise),
                        {n: "small" if n[0] == "s" else "big" for n in NAMES}, {m: [] for m in MEMBERS},
                        source="pool", seeds=[0, 1])


def cost_matrix(alc: np.ndarray = ALC) -> CostMatrix:
    """Rows: the training datasets, each with its member's ALCs."""
    rows = np.array([alc[0 if n[0] == "s" else 1] for n in NAMES])
    return CostMatrix(list(NAMES), list(NAMES), rows, [["ok"] * 6 for _ in NAMES], seeds=[0, 1])


def rows_of(rows, label):
    return {r["dataset"]: r for r in rows if r["selector"] == label}


# --- labels -----------------------------------------------------------------------------------
def test_member_labels_keep_ties_within_the_noise():
    mm = member_matrix()
    labels = member_labels(mm)
    # s3: small .85, mid .84 (within .02), big .60 -> small and mid, in member order
    assert labels["s3"] == ["small", "mid"]
    assert labels["s1"] == ["small"] and labels["b3"] == ["big"]
    # without seed noise only the best is acceptable; a wider tolerance takes in more
    assert acceptable_members(member_matrix(noise=0.0), "s3") == ["small"]
    assert acceptable_members(mm, "s3", tolerance=0.3) == ["small", "big", "mid"]
    # among candidates only (big and mid on s3: mid .84 is best, big .60 is not within .02)
    assert acceptable_members(mm, "s3", ["big", "mid"]) == ["mid"]
    # one label out of a tie: the better mean ALC (mid 4.34 / 6 = .723 over all six, small 3.98 / 6 = .663)
    assert preferred_member(["small", "mid"], dict(zip(MEMBERS, mm.mean_alc(), strict=True)), MEMBERS) == "mid"


def test_seed_noise_is_pools_definition():
    # two rows, one column, two seeds: half ranges .05 and .01 -> noise .03; a row with a
    # missing seed is left out
    a = np.array([[[0.5, 0.6]], [[0.7, 0.72]], [[0.9, np.nan]]])
    assert seed_noise(a)[0] == pytest.approx(0.03)
    assert seed_noise(a[:, :, :1])[0] == 0.0


def test_members_from_cost_groups_rows_by_configuration(tmp_path):
    from portfolio.incumbents import Incumbent, Portfolio

    names = ["d0", "d1", "d2", "d3"]
    configs = [{"lr": 1}, {"lr": 1}, {"lr": 2}, {"lr": 3}]
    alc = np.array([[.8, .7, .6, .5], [.8, .7, .6, .5], [.1, .2, .3, .4], [.5, .5, .5, .9]])
    cost = CostMatrix(names, names, alc, [["ok"] * 4] * 4, seeds=[0])
    portfolio = Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0}, clock="simulated",
                          timing={"path": None, "sha256": None}, space={"path": "s.yaml", "sha256": "0"},
                          incumbents=[Incumbent(n, n, c, 0.5, 1.0, (0, 0, 0), 3, "r")
                                      for n, c in zip(names, configs, strict=True)])
    mm = members_from_cost(cost, portfolio)
    assert mm.members == ["incumbent:d0", "incumbent:d2", "incumbent:d3"]
    assert mm.member_of == {"d0": "incumbent:d0", "d1": "incumbent:d0", "d2": "incumbent:d2", "d3": "incumbent:d3"}
    assert mm.value("incumbent:d0", "d3") == pytest.approx(0.5) and mm.source == "cost-matrix"
    assert mm.origins["incumbent:d0"] is None        # available only through d0 or d1
    assert mm.noise_of("d0") == 0.0 and "one seed" in mm.note
    # two seeds in the cells: noise per column = mean over members of half their range
    cells = [{"source": s, "target": t, "seed": k, "status": "ok", "alc": float(alc[i, j]) + (0.02 if k else 0.0)}
             for i, s in enumerate(names) for j, t in enumerate(names) for k in (0, 1)]
    mm2 = members_from_cost(cost, portfolio, cells)
    assert mm2.noise_of("d2") == pytest.approx(0.01) and mm2.seeds == [0, 1]
    # a folder without portfolio.json: one member per row
    cost.to_csv(tmp_path / "cost_matrix.csv")
    assert load_members(tmp_path).members == names and load_members(tmp_path).source == "rows"
    portfolio.save(tmp_path)
    assert load_members(tmp_path).members == mm.members


def test_members_from_the_pool(tmp_path):
    """A greedy portfolio folder: pool/pool.json, pool/cells.jsonl (2 seeds), portfolio.json."""
    from autodl.records import append_jsonl
    from portfolio.incumbents import Incumbent, Portfolio
    from portfolio.pool import Candidate, save_pool

    cands = [Candidate("fixed:a", {"lr": 1}, {"kind": "fixed"}),
             Candidate("searched:t2", {"lr": 2}, {"kind": "searched", "dataset": "t2"}),
             Candidate("fixed:c", {"lr": 3}, {"kind": "fixed"})]
    save_pool(cands, tmp_path / "pool" / "pool.json")
    # ALC(candidate, target, seed): a .6/.8 on t1 (noise .1), .5/.5 on t2; b .9/.9 on t1, .7/.9 on t2;
    # c (not a member) .2/.4 on t1 and .3/.3 on t2
    vals = {("fixed:a", "t1"): (.6, .8), ("fixed:a", "t2"): (.5, .5), ("searched:t2", "t1"): (.9, .9),
            ("searched:t2", "t2"): (.7, .9), ("fixed:c", "t1"): (.2, .4), ("fixed:c", "t2"): (.3, .3)}
    for (s, t), v in vals.items():
        for k, a in enumerate(v):
            append_jsonl(tmp_path / "pool" / "cells.jsonl", {"source": s, "target": t, "seed": k, "status": "ok",
                                                             "alc": a})
    Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0}, clock="simulated",
              timing={"path": None, "sha256": None}, space={"path": "s.yaml", "sha256": "0"},
              incumbents=[Incumbent("t1", "t1", {"lr": 2}, .9, 1.0, (0, 0, 0), 0, "x", member="searched:t2"),
                          Incumbent("t2", "t2", {"lr": 2}, .8, 1.0, (0, 0, 0), 0, "x", member="searched:t2")],
              provenance={"design": "greedy", "members": [c.to_dict() for c in cands[:2]]}).save(tmp_path)
    CostMatrix(["t1", "t2"], ["t1", "t2"], np.array([[.9, .8], [.9, .8]]), [["ok"] * 2] * 2,
               seeds=[0, 1]).to_csv(tmp_path / "cost_matrix.csv")
    mm = load_members(tmp_path)
    assert mm.source == "pool" and mm.members == ["fixed:a", "searched:t2"] and mm.seeds == [0, 1]
    assert mm.value("fixed:a", "t1") == pytest.approx(0.7) and mm.value("searched:t2", "t2") == pytest.approx(0.8)
    # noise over every candidate of the pool: t1 (.1 + 0 + .1) / 3, t2 (0 + .1 + 0) / 3
    assert mm.noise_of("t1") == pytest.approx(0.2 / 3) and mm.noise_of("t2") == pytest.approx(0.1 / 3)
    assert mm.origins == {"fixed:a": [], "searched:t2": ["t2"]}
    assert mm.member_of == {"t1": "searched:t2", "t2": "searched:t2"}


# --- leave one dataset out over members ----------------------------------------------------------
class Always(NoState):
    """A member selector that always names ``member``, its confidence the query's mean first
    coordinate over 10 (about side / 100: small images .08-.12, big ones .64-.96)."""

    name = "test-always"
    outputs: ClassVar[str] = "members"
    needs_cost = True

    def __init__(self, member: str = "mid"):
        self.member = member

    def fit(self, datasets, cost=None, members=None):
        self._set_classes(datasets)
        self.datasets_ = list(self.classes_)
        self.classes_ = list(members.members)
        self.seen_ = (list(self.datasets_), list(members.targets))
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        p = np.full(len(self.classes_), 0.1)
        p[self.classes_.index(self.member)] = 1.0
        return p / p.sum()

    def confidence(self, query: Query) -> float:
        return float(np.clip(query.embeddings[:, 0].mean() / 10, 0, 1))


def test_lodo_scores_members_and_hits():
    res = leave_one_dataset_out([spec(Always), spec(Centroid), "single-best", "oracle"], features(), cost_matrix(),
                                members=member_matrix(), query_size=8, n_queries=2)
    for name, (sb, sb_alc) in SINGLE_BEST.items():
        r = rows_of(res.rows, "test-always")[name]
        assert r["single_best"] == sb and r["single_best_alc"] == pytest.approx(sb_alc)
        assert r["n_members"] == 3 and r["n_candidates"] == 5
    assert res.summary["single_best_mean_alc"] == pytest.approx(0.625)
    assert res.summary["oracle_mean_alc"] == pytest.approx(0.90)
    # the all-data single best (every dataset, the held-out one too): big, 4.42 / 6 (mid 4.34 / 6,
    # small 3.98 / 6), where the folds of b1-b3 (trained on s1-s3 only) name mid
    mm = member_matrix()
    for name in NAMES:
        r = rows_of(res.rows, "test-always")[name]
        assert r["all_data_single_best"] == "big" and r["all_data_single_best_alc"] == pytest.approx(mm.value("big", name))
    assert res.summary["all_data_single_best_mean_alc"] == pytest.approx(4.42 / 6)
    always = rows_of(res.rows, "test-always")
    # mid everywhere: .70 but .84 on s3, where it is acceptable (within .02 of small's .85)
    assert always["s3"]["alc"] == pytest.approx(0.84) and always["s3"]["hit_rate"] == 1.0
    assert always["s3"]["acceptable"] == "small;mid" and always["s3"]["n_acceptable"] == 2
    assert always["s1"]["hit_rate"] == 0.0 and always["s1"]["selected_member"] == "mid"
    assert res.summary["per_selector"]["test-always"]["mean_hit_rate"] == pytest.approx(1 / 6)
    # the nearest dataset's member: s1 -> s2 (small) .90, b1 -> b2 (big) .90, ...: the oracle here
    centroid = rows_of(res.rows, "test-centroid")
    assert {k: r["selected_member"] for k, r in centroid.items()} == {
        "s1": "small", "s2": "small", "s3": "small", "b1": "big", "b2": "big", "b3": "big"}
    assert res.summary["per_selector"]["test-centroid"]["mean_alc"] == pytest.approx(0.90)
    assert centroid["s1"]["selected"] in ("s2", "s3")           # it names a dataset
    # the registered single best (a dataset selector) picks a dataset whose member is the best
    # mean among the rows' members (small, big: mid is no row's), so it differs where mid wins
    sb = rows_of(res.rows, "single-best")
    assert sb["s1"]["alc"] == pytest.approx(0.50) and sb["b1"]["selected_member"] in ("small", "big")
    assert res.summary["per_selector"]["oracle"]["mean_alc"] == pytest.approx(0.90)


def test_member_selectors_never_see_the_held_out_column():
    Always_seen = []

    class Spy(Always):
        def fit(self, datasets, cost=None, members=None):
            super().fit(datasets, cost, members)
            Always_seen.append(self.seen_)
            return self

    leave_one_dataset_out([spec(Spy)], features(), cost_matrix(), members=member_matrix(), query_size=4, n_queries=1)
    assert len(Always_seen) == 6
    for train, columns in Always_seen:
        held = (set(NAMES) - set(train)).pop()
        assert held not in columns and sorted(columns) == sorted(train)


def test_trivial_members_give_the_old_figures():
    """Without a member view (one member per row) the figures are those of the seed design; a view
    from distinct configurations is the same, only named apart."""
    from portfolio.incumbents import Incumbent, Portfolio

    alc = np.random.default_rng(3).uniform(0.2, 0.9, (6, 6))
    cost = CostMatrix(list(NAMES), list(NAMES), alc, [["ok"] * 6 for _ in NAMES], seeds=[0])
    portfolio = Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0}, clock="simulated",
                          timing={"path": None, "sha256": None}, space={"path": "s.yaml", "sha256": "0"},
                          incumbents=[Incumbent(n, n, {"lr": i}, 0.5, 1.0, (0, 0, 0), 3, "r")
                                      for i, n in enumerate(NAMES)])
    a = leave_one_dataset_out([spec(Centroid), "single-best"], features(), cost, query_size=4, n_queries=2)
    b = leave_one_dataset_out([spec(Centroid), "single-best"], features(), cost, query_size=4, n_queries=2,
                              members=members_from_cost(cost, portfolio))
    c = leave_one_dataset_out([spec(Centroid), "single-best"], features(), cost, query_size=4, n_queries=2,
                              members=trivial_members(cost))
    for x in (b, c):
        for label in ("test-centroid", "single-best"):
            assert x.summary["per_selector"][label]["mean_alc"] == pytest.approx(
                a.summary["per_selector"][label]["mean_alc"])
        assert x.summary["single_best_mean_alc"] == pytest.approx(a.summary["single_best_mean_alc"])
        assert x.summary["oracle_mean_alc"] == pytest.approx(a.summary["oracle_mean_alc"])
    assert a.rows[0]["oracle"] in NAMES and b.rows[0]["oracle"].startswith("incumbent:")


def test_identification_skips_member_selectors():
    ident = identification_accuracy([spec(Centroid), "member-regression"], features(), batch_sizes=(4,),
                                    n_batches=1, cost=cost_matrix())
    assert "members" in ident.skipped["member-regression"]
    assert {r["selector"] for r in ident.table} == {"test-centroid"}


# --- the nested fallback ------------------------------------------------------------------------
def test_nested_fallback_worked_example():
    """Outer records of two held-out datasets X (group gx) and Y (group gy), one query each;
    inner records per outer group (made on the other group's inner folds).

        outer X: conf .3, ALC .2, single best .6;   outer Y: conf .8, ALC .9, single best .5
        inner of gx (from Y's data, X never seen): conf .8 ALC .9 sb .5; conf .3 ALC .1 sb .5
            -> c = .8 (fall back on .3: (.9 + .5) / 2 = .7 > never .5) -> X falls back: .6
        inner of gy (from X's data): conf .3 ALC .8 sb .4 -> never falling back is best: c = 0
            -> Y uses its pick: .9
        nested mean (.6 + .9) / 2 = .75; never falling back (.2 + .9) / 2 = .55; always .55
    Chosen on the outer records themselves (optimistic): c in (.3, .8] -> (.6 + .9) / 2 = .75 too,
    here; the point is where the thresholds come from, tested below.
    """
    outer = [{"selector": "s", "dataset": "X", "group": "gx", "seed": 0, "query": 0, "confidence": .3,
              "novelty": float("nan"), "alc": .2, "single_best_alc": .6},
             {"selector": "s", "dataset": "Y", "group": "gy", "seed": 0, "query": 0, "confidence": .8,
              "novelty": float("nan"), "alc": .9, "single_best_alc": .5}]
    inner = [{"selector": "s", "outer_group": "gx", "dataset": "Y", "query": 0, "confidence": .8,
              "novelty": float("nan"), "alc": .9, "single_best_alc": .5},
             {"selector": "s", "outer_group": "gx", "dataset": "Y", "query": 1, "confidence": .3,
              "novelty": float("nan"), "alc": .1, "single_best_alc": .5},
             {"selector": "s", "outer_group": "gy", "dataset": "X", "query": 0, "confidence": .3,
              "novelty": float("nan"), "alc": .8, "single_best_alc": .4}]
    res = nested_fallback(outer, inner, "s")
    assert res["thresholds"]["gx"]["confidence_threshold"] == pytest.approx(0.8)
    assert res["thresholds"]["gy"]["confidence_threshold"] == 0.0
    assert res["mean_alc"] == pytest.approx(0.75) and res["mean_alc_without"] == pytest.approx(0.55)
    assert res["fallback_share"] == pytest.approx(0.5) and res["confidence_range"] == [0.0, 0.8]
    assert res["per_dataset"] == {"X": {"alc": pytest.approx(0.6), "single_best_alc": pytest.approx(0.6)},
                                  "Y": {"alc": pytest.approx(0.9), "single_best_alc": pytest.approx(0.5)}}
    # a group without inner records never falls back
    res = nested_fallback(outer, inner[:2], "s")
    assert res["folds_without_inner"] == ["gy"] and res["mean_alc"] == pytest.approx(0.75)
    assert nested_fallback(outer, inner, "nobody") is None


def test_nested_fallback_reports_the_novelty_thresholds_of_the_folds():
    """Inner records of gx pay for a novelty rule (the far query's pick is poor), gy's do not: one
    fold of two falls back by novelty, and the report's range names it (confidence stays 0)."""
    outer = [{"selector": "s", "dataset": "X", "group": "gx", "seed": 0, "query": 0, "confidence": 1.0,
              "novelty": 20.0, "alc": .2, "single_best_alc": .6},
             {"selector": "s", "dataset": "Y", "group": "gy", "seed": 0, "query": 0, "confidence": 1.0,
              "novelty": 20.0, "alc": .9, "single_best_alc": .5}]
    inner = [{"selector": "s", "outer_group": "gx", "dataset": "Y", "query": 0, "confidence": 1.0,
              "novelty": 1.0, "alc": .9, "single_best_alc": .5},
             {"selector": "s", "outer_group": "gx", "dataset": "Y", "query": 1, "confidence": 1.0,
              "novelty": 9.0, "alc": .1, "single_best_alc": .5},
             {"selector": "s", "outer_group": "gy", "dataset": "X", "query": 0, "confidence": 1.0,
              "novelty": 9.0, "alc": .8, "single_best_alc": .4}]
    res = nested_fallback(outer, inner, "s")
    gx = res["thresholds"]["gx"]["novelty_threshold"]
    assert gx is not None and 1.0 <= gx < 9.0 and res["thresholds"]["gy"]["novelty_threshold"] is None
    assert res["novelty_folds"] == 1 and res["novelty_range"] == [gx, gx] and res["confidence_range"] == [0.0, 0.0]
    assert res["per_dataset"]["X"]["alc"] == pytest.approx(0.6) and res["per_dataset"]["Y"]["alc"] == pytest.approx(0.9)
    no_novelty = nested_fallback(outer, inner[:1] + inner[2:], "s")
    assert no_novelty["novelty_range"] is None and no_novelty["novelty_folds"] == 0


def test_nested_thresholds_never_see_the_scored_fold():
    """Change s1's data (its ALC column and its embeddings): the thresholds chosen for s1's fold
    stay the same, while s1's own figures, and the optimistic threshold chosen on every fold, move.

    The selector always names small, with confidence side / 100 (s* .08-.12, b* .64-.96). As
    given, falling back never pays on the scored folds (small beats the folds' single best on
    s*, and a threshold that sends b* to the single best sends s* too): optimistic threshold 0.
    Changed: on s1 small is poor (.10) and big, s1's single best, excellent (.95), and s1's
    embeddings move to confidence 0: a threshold just above 0 sends s1 alone to the single best,
    so the optimistic threshold (which sees s1's records) rises above 0."""
    stages: dict[str, int] = {}

    def run(alc: np.ndarray, shift: dict[str, float]) -> Any:
        return leave_one_dataset_out([spec(Always, member="small")], features(shift), cost_matrix(alc),
                                     members=member_matrix(alc), query_size=8, n_queries=2, nested_fallback=True,
                                     progress=lambda stage, done, total: stages.__setitem__(stage, total))

    base = run(ALC, {})
    # one inner fit per pair of groups, shared by the two outer folds it serves: 6 * 5 / 2
    assert stages["nested fallback test-always"] == 15
    changed_alc = ALC.copy()
    changed_alc[:, 0] = [.10, .95, .70]
    changed = run(changed_alc, {"s1": -1.0})
    th0 = nested_fallback(base.queries, base.inner_queries, "test-always")
    th1 = nested_fallback(changed.queries, changed.inner_queries, "test-always")
    assert th0["thresholds"]["s1"] == th1["thresholds"]["s1"]
    assert th0["thresholds"]["s1"]["inner_datasets"] == 5
    # every inner record of s1's outer fold is about another dataset, from a fit without s1
    assert {r["dataset"] for r in base.inner_queries if r["outer_group"] == "s1"} == set(NAMES) - {"s1"}
    # ... while s1's own records did change, and so did the threshold chosen on all folds
    s1 = [q for q in changed.queries if q["dataset"] == "s1"]
    assert all(q["alc"] == pytest.approx(0.10) and q["confidence"] == 0.0 for q in s1)
    opt0 = fallback_threshold(base.queries, "test-always")
    opt1 = fallback_threshold(changed.queries, "test-always")
    assert opt0["confidence_threshold"] == 0.0 and opt1["confidence_threshold"] > 0.0
    # (the other folds' nested thresholds may move: their inner folds train on s1)


# --- the member selectors -------------------------------------------------------------------------
def _query(name: str, shift: float = 0.0) -> Query:
    return features({name: shift})[NAMES.index(name)].query(8, split="train", seed=1)


@pytest.mark.parametrize("name", ["member-regression", "member-pairwise", "member-ranking", "size-rule"])
def test_member_selectors_pick_by_image_size_and_save(name, tmp_path):
    """Fitted on s1, s2, b1, b2, they name small for s3 and big for b3; they save and load."""
    train = [d for d in features() if d.name in ("s1", "s2", "b1", "b2")]
    mm = member_matrix().restrict(MEMBERS, ["s1", "s2", "b1", "b2"])
    params = {"min_samples_leaf": 1} if name == "size-rule" else {"n_components": 0}
    sel = make_selector(name, **params).fit(train, cost_matrix(), members=mm)
    assert sel.outputs == "members" and sel.classes_ == MEMBERS and sel.datasets_ == ["s1", "s2", "b1", "b2"]
    assert sel.predict(_query("s3")) == "small" and sel.predict(_query("b3")) == "big"
    p = sel.predict_proba(_query("b3"))
    assert p.shape == (3,) and p.sum() == pytest.approx(1.0)
    sel.save(tmp_path / name)
    back = load_selector(tmp_path / name)
    assert back.classes_ == MEMBERS and back.datasets_ == sel.datasets_
    assert np.allclose(back.predict_proba(_query("b3")), p)


def test_size_rule_by_hand():
    """Labels: s* small, b* big (s3's tie small/mid resolves to mid, the better mean over the six:
    .723 vs .663); the tree splits the side between 12 and 64 px (log2: 3.585 and 6, midpoint 4.79,
    27.7 px); each leaf names the best mean ALC of its datasets: small-image leaf s1, s2, s3:
    small (.90+.88+.85)/3 = .877 beats mid (.70+.70+.84)/3 = .747; big-image leaf: big."""
    sel = make_selector("size-rule").fit(features(), cost_matrix(), members=member_matrix())
    assert sel.rule() == "if side <= 27.7 px:\n  -> small\nelse:\n  -> big"
    assert sel.predict(_query("s1")) == "small" and sel.predict(_query("b1")) == "big"
    # a rule needs image sizes
    bare = [DatasetFeatures(d.name, d.train, d.train_labels, None, {"classes": 2.0}, d.source, d.card)
            for d in features()]
    with pytest.raises(Exception, match="height, width and train_samples"):
        make_selector("size-rule").fit(bare, cost_matrix(), members=member_matrix())


def test_pairwise_drops_ties_within_the_noise():
    """mid and small lie within .02 of each other on s3 only; elsewhere they differ by .14 or
    more. With the noise at .3, every pair is a tie on every dataset but big-vs-small on the
    b* and s* sets (.30-.55 apart), so mid's pairs stay at 1/2."""
    sel = make_selector("member-pairwise", n_components=0).fit(features(), cost_matrix(),
                                                               members=member_matrix(noise=0.3))
    w = sel.win_probabilities(_query("s1"))
    assert w[2, 0] == pytest.approx(0.5) and w[2, 1] == pytest.approx(0.5)
    assert w[0, 1] > 0.5          # small beats big on small images
    sel2 = make_selector("member-pairwise", n_components=0).fit(features(), cost_matrix(), members=member_matrix())
    assert sel2.win_probabilities(_query("s1"))[0, 2] > 0.5


def test_member_regression_with_a_large_penalty_is_the_single_best():
    sel = make_selector("member-regression", n_components=0, alpha=1e9).fit(features(), cost_matrix(),
                                                                            members=member_matrix())
    pred = sel.predict_alc(_query("s1"))
    assert pred == pytest.approx(ALC.mean(axis=1), abs=1e-6)
    # the best mean ALC over the six: big 4.42 / 6 = .737 (mid .723, small .663)
    assert sel.predict(_query("s1")) == "big"


def test_member_selectors_without_a_member_view_use_the_rows():
    sel = make_selector("member-regression", n_components=0).fit(features(), cost_matrix())
    assert sel.classes_ == NAMES and sel.predict(_query("b3")) in ("b1", "b2", "b3")


# --- the report --------------------------------------------------------------------------------
def test_compare_shows_members_baselines_and_both_fallback_figures(tmp_path):
    from selector.report import compare, render

    summary = compare([spec(Centroid), spec(Always, member="big"), "member-regression"], features(),
                      cost_matrix(), tmp_path / "out", batch_sizes=(1, 4), n_batches=1, query_size=8, n_queries=2,
                      cost_batch_sizes=(8,), timing_repeats=1, time_embedding=False, members=member_matrix(),
                      command="pytest members")
    # the members are fixed configurations, available in every fold: the member-level single best
    assert summary["baselines"]["added"] == ["single-best-member", "size-rule"]
    per = summary["lodo"]["per_selector"]
    assert per["single-best-member"]["mean_alc"] == pytest.approx(0.625)
    assert per["size-rule"]["mean_alc"] == pytest.approx(0.90) and per["size-rule"]["failed"] == 0
    assert summary["outputs"]["member-regression"] == "members" and summary["outputs"]["test-centroid"] == "datasets"
    against = summary["against_baselines"]
    # the nearest dataset's member vs the size rule: equal on all six; vs the single best
    # member of each fold (.625 mean): +.275, six wins
    assert against["size-rule"]["test-centroid"]["ties"] == 6
    assert against["single-best-member"]["test-centroid"]["wins"] == 6
    assert against["single-best-member"]["test-centroid"]["mean_difference"] == pytest.approx(0.275)
    assert summary["fallback_nested"]["test-always"]["thresholds"].keys() == set(NAMES)
    assert summary["fallback_nested"]["single-best-member"] is None   # it never reads a query
    # member selectors are candidates to ship too (the submission looks members up in portfolio.json)
    cands = summary["choice"]["candidates"]
    assert "member-regression" in cands and "size-rule" not in cands  # a trivial baseline: compared, never shipped
    assert summary["choice"]["mean_alc"] == pytest.approx(max(per[k]["mean_alc"] for k in cands))
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Against the trivial baselines" in md and "| size-rule |" in md
    assert "with the rule, optimistic" in md and "with the rule, nested" in md
    assert "Portfolio members: 3" in md and "dataset -> member" in md
    saved = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert saved["members"]["noise"]["s3"] == pytest.approx(0.02)
    (tmp_path / "out" / "report.md").unlink()
    render(tmp_path / "out")
    assert (tmp_path / "out" / "report.md").read_text() == md
    assert (tmp_path / "out" / "lodo_inner_queries.csv").stat().st_size > 0
    assert math.isfinite(summary["fallback_nested"]["test-always"]["mean_alc"])


def test_cli_fit_of_a_member_selector(tmp_path, capsys):
    """``selector fit`` fits a member selector on the folder's member view and says the submission
    looks the member up in portfolio.json."""
    import argparse
    import sys

    from autodl_meta import cli_selector
    from portfolio.incumbents import Incumbent, Portfolio

    feats = tmp_path / "features"
    for d in features():
        d.save(feats)
    folder = tmp_path / "portfolio"
    folder.mkdir()
    cost_matrix().to_csv(folder / "cost_matrix.csv")
    Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0}, clock="simulated",
              timing={"path": None, "sha256": None}, space={"path": "s.yaml", "sha256": "0"},
              incumbents=[Incumbent(n, n, {"lr": 1 if n[0] == "s" else 2}, 0.5, 1.0, (0, 0, 0), 3, "r")
                          for n in NAMES]).save(folder)
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    cli_selector.register(sub, argparse.ArgumentDefaultsHelpFormatter)
    argv = ["selector", "fit", "--features", str(feats), "--portfolio", str(folder), "--selector", "size-rule",
            "--out", str(tmp_path / "fitted")]
    args = p.parse_args(argv)
    saved, sys.argv = sys.argv, ["autodl-meta", *argv]
    try:
        assert args.func(args) == 0
    finally:
        sys.argv = saved
    assert "looks the member up in portfolio.json" in capsys.readouterr().err
    sel = load_selector(tmp_path / "fitted")
    assert sel.classes_ == ["incumbent:s1", "incumbent:b1"]
    assert sel.predict(_query("b3")) == "incumbent:b1"


def test_members_load_from_the_default_portfolio():
    """The committed default portfolio (21 incumbents, 4 distinct configurations, one seed)."""
    folder = Path(__file__).resolve().parents[2] / "portfolio" / "default"
    if not (folder / "cost_matrix.csv").is_file():
        pytest.skip("no default portfolio here")
    mm = load_members(folder)
    assert mm.source in ("cost-matrix", "pool")
    if mm.source == "cost-matrix":
        assert len(mm.members) == 4 and len(mm.member_of) == 21
        # the rows of one configuration share their cells: the member's ALC is theirs
        cost = CostMatrix.read_csv(folder / "cost_matrix.csv")
        for d, m in mm.member_of.items():
            row = cost.alc[cost.sources.index(d)]
            assert np.allclose(mm.alc[mm.members.index(m)], row, atol=1e-6, equal_nan=True)


def test_embedding_probe_score_tells_separable_from_not():
    from metafeatures.probe import embedding_probe_score

    rng = np.random.default_rng(0)
    y = np.eye(3, dtype=np.float32)[np.arange(90) % 3]
    separable = y @ (3 * np.eye(3, 8)) + 0.3 * rng.normal(size=(90, 8))
    noise = rng.normal(size=(90, 8))
    assert embedding_probe_score(separable, y) > 0.9
    assert abs(embedding_probe_score(noise, y)) < 0.3
    assert embedding_probe_score(separable[:2], y[:2]) == 0.0  # too few rows: a random guess's score
    assert embedding_probe_score(separable, y) == embedding_probe_score(separable, y)  # seeded sample


def test_the_probe_meta_feature_picks_where_nothing_else_differs(tmp_path):
    """Equal means and descriptors; only how separable the embeddings are differs, and with it
    the best member: the probe's score alone lets the member regression tell them apart."""
    rng = np.random.default_rng(1)
    y = np.eye(2, dtype=np.float32)[np.arange(60) % 2]

    def dataset(name: str, separable: bool) -> DatasetFeatures:
        x = rng.normal(size=(60, 4)) + (np.outer(2 * y[:, 0] - 1, [2.0, 0, 0, 0]) if separable else 0.0)
        return DatasetFeatures(name, x, y, None, descriptors("s1"), name, {"backbone": "hand-made"})

    names = ["p1", "p2", "p3", "n1", "n2", "n3"]
    data = [dataset(n, n[0] == "p") for n in names]
    alc = np.array([[0.8 if n[0] == "p" else 0.5 for n in names], [0.6 if n[0] == "p" else 0.7 for n in names]])
    mm = MemberMatrix(["probes", "tune"], names, alc, dict.fromkeys(names, 0.01),
                      {n: "probes" if n[0] == "p" else "tune" for n in names}, {"probes": [], "tune": []},
                      source="pool", seeds=[0, 1])
    train = [d for d in data if d.name not in ("p3", "n3")]
    fitted = mm.restrict(["probes", "tune"], [d.name for d in train])
    sel = make_selector("member-regression", n_components=0, use_descriptors=False, use_probe=True, alpha=0.1)
    sel.fit(train, None, members=fitted)
    p3, n3 = (d.query(64, split="train", seed=0) for d in data if d.name in ("p3", "n3"))
    assert sel.predict(p3) == "probes" and sel.predict(n3) == "tune"
    sel.save(tmp_path / "s")
    assert load_selector(tmp_path / "s").predict(n3) == "tune"
    with pytest.raises(SelectorError, match="labels"):
        sel.predict(Query(n3.embeddings))


def _probe_world(seed: int = 2) -> tuple[list[DatasetFeatures], MemberMatrix]:
    """Six datasets whose embeddings and descriptors are alike: only their raw pixels differ, by
    how well they separate the classes (p*: by brightness; n*: not at all); ``probes`` is the
    best member where they do, ``tune`` where they do not."""
    from metafeatures.probe import raw_probe_features

    rng = np.random.default_rng(seed)
    y = np.eye(2, dtype=np.float32)[np.arange(60) % 2]

    def dataset(name: str) -> DatasetFeatures:
        levels = np.where(y[:, 0] > 0, 80.0, 170.0) if name[0] == "p" else np.full(60, 128.0)
        clips = np.clip(rng.normal(size=(60, 1, 16, 16, 1)) * 30 + levels[:, None, None, None, None], 0, 255)
        return DatasetFeatures(name, rng.normal(size=(60, 4)), y, None, descriptors("s1"), name,
                               {"backbone": "hand-made"}, raw_probe_features(clips.astype(np.uint8)))

    names = ["p1", "p2", "p3", "n1", "n2", "n3"]
    alc = np.array([[0.8 if n[0] == "p" else 0.5 for n in names], [0.6 if n[0] == "p" else 0.7 for n in names]])
    mm = MemberMatrix(["probes", "tune"], names, alc, dict.fromkeys(names, 0.01),
                      {n: "probes" if n[0] == "p" else "tune" for n in names}, {"probes": [], "tune": []},
                      source="pool", seeds=[0, 1])
    return [dataset(n) for n in names], mm


@pytest.mark.parametrize("kind", ["member-regression", "member-pairwise", "member-ranking"])
@pytest.mark.parametrize("use_probe", ["raw", "both"])
def test_the_raw_probe_picks_where_only_the_pixels_differ(tmp_path, kind, use_probe):
    data, mm = _probe_world()
    train = [d for d in data if d.name not in ("p3", "n3")]
    sel = make_selector(kind, n_components=0, use_descriptors=False, use_probe=use_probe, alpha=0.1)
    sel.fit(train, None, members=mm.restrict(["probes", "tune"], [d.name for d in train]))
    assert sel.feat_mean_.shape == ((2,) if use_probe == "both" else (1,))  # one column per probe
    p3, n3 = (d.query(64, split="train", seed=0) for d in data if d.name in ("p3", "n3"))
    assert p3.raw is not None and p3.raw.shape == (60, 256)
    assert sel.predict(p3) == "probes" and sel.predict(n3) == "tune"
    sel.save(tmp_path / "s")
    back = load_selector(tmp_path / "s")
    assert back.use_probe == use_probe
    np.testing.assert_allclose(back.predict_proba(n3), sel.predict_proba(n3))
    with pytest.raises(SelectorError, match="raw-pixel features of the query") as info:
        sel.predict(Query(n3.embeddings, n3.labels))  # a query without its raw features
    assert info.value.field == "raw"


def test_use_probe_true_is_the_embedding_probe():
    data, mm = _probe_world()
    members = mm.restrict(["probes", "tune"], [d.name for d in data])
    q = data[2].query(32, seed=1)
    fitted = [make_selector("member-regression", n_components=1, use_probe=value).fit(data, None, members=members)
              for value in (True, "embedding")]
    np.testing.assert_array_equal(fitted[0].train_features_, fitted[1].train_features_)
    np.testing.assert_array_equal(fitted[0].predict_proba(q), fitted[1].predict_proba(q))
    both = make_selector("member-regression", n_components=1, use_probe="both").fit(data, None, members=members)
    # "both": the embedding probe's column, then the raw probe's
    np.testing.assert_array_equal(both.feat_mean_[:-1], fitted[0].feat_mean_)


def test_the_raw_probe_needs_raw_features_and_a_known_value():
    data, mm = _probe_world()
    members = mm.restrict(["probes", "tune"], [d.name for d in data])
    old = [DatasetFeatures(d.name, d.train, d.train_labels, None, d.descriptors, d.source, d.card)
           if d.name in ("p2", "n1") else d for d in data]  # features extracted before train_raw existed
    for value in ("raw", "both"):
        with pytest.raises(SelectorError, match=r"p2, n1 were extracted before.*autodl-meta metafeatures "
                                                r"extract") as info:
            make_selector("member-ranking", use_probe=value).fit(old, None, members=members)
        assert info.value.field == "train_raw"
    # the embedding probe does without them
    make_selector("member-ranking", use_probe="embedding").fit(old, None, members=members)
    for bad in ("pixels", 1, None):
        with pytest.raises(SelectorError, match="use_probe=.*expected one of False, True, 'embedding', 'raw', "
                                                "'both'") as info:
            make_selector("member-regression", use_probe=bad).fit(data, None, members=members)
        assert info.value.field == "use_probe"


# --- the cost-sensitive rule on kinds of data -------------------------------------------------------
def test_alc_tree_splits_where_the_alc_gain_beats_the_noise():
    """Four datasets on one feature (0, 1, 2, 3); A is good on the first two, B on the last two.
    Unsplit, either member sums 2.8; split at 1.5 the leaves sum 1.8 + 1.8 = 3.6, minus the noise
    of the four datasets (4 x .01): 3.56 > 2.8, so it splits. Where the members differ by .01 only
    (A .90 .90 .89 .89, B .89 .89 .90 .90) the split gains .02, less than the .04 of noise: no split
    (with no noise it splits). ``min_samples_leaf=3`` leaves no split of four datasets."""
    from selector.member_selectors import alc_tree

    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    apart = np.array([[.9, .9, .5, .5], [.5, .5, .9, .9]])
    feature, threshold, left, right, leaves = alc_tree(x, apart, np.full(4, .01), max_depth=2, min_samples_leaf=1)
    assert feature.tolist() == [0.0, -2.0, -2.0] and threshold.tolist() == [1.5, -2.0, -2.0]
    assert left.tolist() == [1.0, -1.0, -1.0] and right.tolist() == [2.0, -1.0, -1.0]
    assert leaves.tolist() == [1, 1, 2, 2]
    close = np.array([[.90, .90, .89, .89], [.89, .89, .90, .90]])
    assert alc_tree(x, close, np.full(4, .01), max_depth=2, min_samples_leaf=1)[0].tolist() == [-2.0]
    assert alc_tree(x, close, np.zeros(4), max_depth=2, min_samples_leaf=1)[0].tolist() == [0.0, -2.0, -2.0]
    assert alc_tree(x, apart, np.zeros(4), max_depth=2, min_samples_leaf=3)[4].tolist() == [0, 0, 0, 0]


def _kind_datasets() -> list[DatasetFeatures]:
    """m1, m2 multi-label, n1, n2 not; all 32 px with 1000 training examples (a rule on size
    cannot tell them apart)."""
    out = []
    for i, n in enumerate(["m1", "m2", "n1", "n2"]):
        rng = np.random.default_rng(i)
        d = {"train_samples": 1000.0, "test_samples": 100.0, "classes": 5.0, "channels": 3.0, "height": 32.0,
             "width": 32.0, "variable_size": 0.0, "frames": 1.0, "multilabel": float(n[0] == "m")}
        y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
        out.append(DatasetFeatures(n, rng.normal(size=(40, 4)).astype(np.float32), y,
                                   rng.normal(size=(20, 4)).astype(np.float32), d, n, {"backbone": "hand-made"}))
    return out


def test_kind_rule_tells_multi_label_apart_where_the_size_rule_cannot(tmp_path):
    names = ["m1", "m2", "n1", "n2"]
    alc = np.array([[.80, .82, .50, .52], [.60, .58, .90, .88]])  # multi, single
    mm = MemberMatrix(["multi", "single"], names, alc, dict.fromkeys(names, .01),
                      {n: "multi" if n[0] == "m" else "single" for n in names}, {"multi": [], "single": []},
                      source="pool", seeds=[0, 1])
    cost = CostMatrix(names, names, np.array([alc[0 if n[0] == "m" else 1] for n in names]),
                      [["ok"] * 4 for _ in names], seeds=[0, 1])
    data = _kind_datasets()
    sel = make_selector("kind-rule").fit(data, cost, members=mm)
    assert sel.rule() == "if not multi-label:\n  -> single\nelse:\n  -> multi"
    assert sel.predict(data[0].query(8, split="train", seed=1)) == "multi"
    assert sel.predict(data[2].query(8, split="train", seed=1)) == "single"
    size = make_selector("size-rule").fit(data, cost, members=mm)
    assert size.rule().count("->") == 1  # one leaf: side and size are the same everywhere
    sel.save(tmp_path / "kind")
    back = load_selector(tmp_path / "kind")
    assert back.get_params()["criterion"] == "alc" and back.rule() == sel.rule()
    bare = [DatasetFeatures(d.name, d.train, d.train_labels, d.test, {k: v for k, v in d.descriptors.items()
                                                                      if k != "classes"}, d.source, d.card)
            for d in data]
    with pytest.raises(SelectorError, match="classes, multilabel, frames and channels"):
        make_selector("kind-rule").fit(bare, cost, members=mm)
    with pytest.raises(SelectorError, match="criterion"):
        make_selector("size-rule", criterion="entropy").fit(data, cost, members=mm)
