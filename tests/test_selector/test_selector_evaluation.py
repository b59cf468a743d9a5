"""Evaluating selectors on hand-made data: identification (selector.identification),
leave-one-dataset-out (selector.lodo), fallback (selector.fallback), statistics
(selector.significance), cost (selector.selection_timing).

The selectors here are small test-only classes built through ``SelectorSpec(factory=...)``
(some shared with ``test_report.py``, in ``selectors_for_tests.py``); they are deliberately
*not* registered, so that tests which run over every registered selector never meet them.
The cost matrix is worked out by hand below.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import pytest
from selectors_for_tests import Centroid, NoState, Oracle, spec

from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector.identification import identification_accuracy
from selector.lodo import expected_random, gap_closed, kendall_tau, leave_one_dataset_out, summarize_lodo
from selector.selection_timing import alc_delay_bound, selection_cost
from selector.significance import holm, statistics
from selector.specs import SelectorSpec


# --- test-only selectors ----------------------------------------------------------------------
class LabelledCentroid(Centroid):
    """Like Centroid, but it insists on the query's labels (a transferability measure's contract)."""

    name = "test-labelled"
    needs_labels = True

    def predict_proba(self, query: Query) -> np.ndarray:
        assert query.labels is not None
        return super().predict_proba(query)


class Priority(NoState):
    """Scores the candidates by a fixed preference order: the first of ``order`` present gets
    the most, each next one half as much (datasets not in ``order`` share the least)."""

    name = "test-priority"

    def __init__(self, order: tuple[str, ...] = ("A", "C", "B1", "B2")):
        self.order = order

    def fit(self, datasets, cost=None):
        self._set_classes(datasets)
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        self._check_query(query)
        present = [c for c in self.order if c in self.classes_]
        w = np.array([2.0 ** -(present.index(c) if c in present else len(present)) for c in self.classes_])
        return w / w.sum()


class Uniform(NoState):
    """Equal scores for all; ``predict`` draws uniformly with its own generator."""

    name = "test-uniform"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, datasets, cost=None):
        self._set_classes(datasets)
        self.rng_ = np.random.default_rng(self.seed)
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        return np.full(len(self.classes_), 1.0 / len(self.classes_))

    def predict(self, query: Query) -> str:
        return self.classes_[int(self.rng_.integers(len(self.classes_)))]


class Broken(Centroid):
    name = "test-broken"

    def predict_proba(self, query: Query) -> np.ndarray:
        raise RuntimeError("deliberately broken")


# --- hand-made data ---------------------------------------------------------------------------
NAMES = ["A", "B1", "B2", "C"]
SOURCES = {"A": "a", "B1": "b", "B2": "b", "C": "c"}   # B1 and B2: derived variants of one source
#  rows: incumbent of; columns: dataset
ALC = np.array([
    #  A     B1    B2    C
    [0.80, 0.50, 0.40, 0.30],   # A
    [0.60, 0.90, 0.70, 0.50],   # B1
    [0.75, 0.65, 0.85, 0.20],   # B2
    [0.50, 0.55, 0.45, 0.75],   # C
])
# Held out -> candidates (other groups), oracle, single best (best mean over the candidates'
# rows on the columns outside the held-out group), expected random (mean of the column):
#  A : candidates B1, B2, C; ALC on A .60 .75 .50 -> oracle B2 .75.
#      single best on columns B1, B2, C: B1 (.9+.7+.5)/3=.700, B2 (.65+.85+.2)/3=.567,
#      C (.55+.45+.75)/3=.583 -> B1, whose ALC on A is .60. Random: (.6+.75+.5)/3 = .616667.
#  B1: candidates A, C (B2 is B1's sibling); ALC on B1 .50 .55 -> oracle C .55.
#      single best on columns A, C: A (.8+.3)/2=.55, C (.5+.75)/2=.625 -> C = the oracle: no gap.
#      Random (.5+.55)/2 = .525.
#  B2: candidates A, C; ALC on B2 .40 .45 -> oracle C .45; single best C (as for B1): no gap.
#      Random .425.
#  C : candidates A, B1, B2; ALC on C .30 .50 .20 -> oracle B1 .50. single best on columns
#      A, B1, B2: A (.8+.5+.4)/3=.567, B1 (.6+.9+.7)/3=.733, B2 (.75+.65+.85)/3=.750 -> B2, .20.
#      Random (.3+.5+.2)/3 = .333333.
# Mean expected random = (.616667 + .525 + .425 + .333333) / 4 = 1.9 / 4 = .475.
_KEYS = ("oracle", "oracle_alc", "single_best", "single_best_alc", "random")
EXPECTED = {"A": dict(zip(_KEYS, ("B2", 0.75, "B1", 0.60, 0.616667), strict=True)),
            "B1": dict(zip(_KEYS, ("C", 0.55, "C", 0.55, 0.525), strict=True)),
            "B2": dict(zip(_KEYS, ("C", 0.45, "C", 0.45, 0.425), strict=True)),
            "C": dict(zip(_KEYS, ("B1", 0.50, "B2", 0.20, 0.333333), strict=True))}


def cost_matrix() -> CostMatrix:
    return CostMatrix(list(NAMES), list(NAMES), ALC.copy(),
                      [["ok"] * 4 for _ in range(4)], seeds=[0])


def features(names=NAMES, sources=SOURCES, dim: int = 4, n_train: int = 40, n_test: int = 20,
             noise: float = 0.1) -> list[DatasetFeatures]:
    """One tight cluster per dataset (centre 5 * e_i), two classes."""
    out = []
    for i, name in enumerate(names):
        rng = np.random.default_rng(i)
        centre = np.zeros(dim, np.float32)
        centre[i % dim] = 5.0 * (1 + i // dim)
        labels = np.eye(2, dtype=np.float32)[np.arange(n_train) % 2]
        out.append(DatasetFeatures(name, centre + noise * rng.normal(size=(n_train, dim)), labels,
                                   centre + noise * rng.normal(size=(n_test, dim)),
                                   {"classes": 2.0}, sources.get(name), {"backbone": "hand-made"}))
    return out


def rows_of(rows, label):
    return {r["dataset"]: r for r in rows if r["selector"] == label}


# --- leave one dataset out --------------------------------------------------------------------
def test_lodo_reference_values_and_oracle_zero_regret():
    Oracle.seen.clear()
    res = leave_one_dataset_out([spec(Oracle)], features(), cost_matrix(), query_size=8, n_queries=3)
    rows = rows_of(res.rows, "test-oracle")
    assert sorted(rows) == NAMES
    for name, exp in EXPECTED.items():
        r = rows[name]
        assert r["error"] is None
        assert r["oracle"] == exp["oracle"] and r["oracle_alc"] == pytest.approx(exp["oracle_alc"])
        assert r["single_best"] == exp["single_best"]
        assert r["single_best_alc"] == pytest.approx(exp["single_best_alc"])
        assert r["expected_random_alc"] == pytest.approx(exp["random"], abs=1e-6)
        assert r["selected"] == exp["oracle"] and r["regret"] == pytest.approx(0.0)
    s = res.summary["per_selector"]["test-oracle"]
    assert s["mean_regret"] == pytest.approx(0.0)
    assert s["mean_alc"] == pytest.approx(res.summary["oracle_mean_alc"])
    # the oracle closes the whole gap where there is one (A, C) and is undefined elsewhere
    assert rows["A"]["gap_closed"] == pytest.approx(1.0) and rows["C"]["gap_closed"] == pytest.approx(1.0)
    assert math.isnan(rows["B1"]["gap_closed"]) and math.isnan(rows["B2"]["gap_closed"])
    assert s["mean_gap_closed"] == pytest.approx(1.0) and s["gap_undefined"] == 2
    assert res.summary["expected_random_alc"] == pytest.approx(0.475, abs=1e-6)
    assert res.summary["oracle_mean_alc"] == pytest.approx((0.75 + 0.55 + 0.45 + 0.50) / 4)


def test_lodo_holds_out_a_group_together():
    Oracle.seen.clear()
    res = leave_one_dataset_out([spec(Oracle), spec(Priority)], features(), cost_matrix(), query_size=4,
                                n_queries=2)
    # one fit per fold; a fold never sees the held-out dataset's sibling
    assert sorted(map(tuple, Oracle.seen)) == sorted([("B1", "B2", "C"), ("A", "C"), ("A", "C"), ("A", "B1", "B2")])
    for r in res.rows:
        assert r["selected_group"] != r["group"], r
        assert r["selected"] not in [n for n in NAMES if SOURCES[n] == SOURCES[r["dataset"]]]
    assert {r["dataset"]: r["n_candidates"] for r in res.rows if r["selector"] == "test-oracle"} == \
        {"A": 3, "B1": 2, "B2": 2, "C": 3}


def test_lodo_gap_closed_worked_example():
    # Priority prefers A, then C, then B1, then B2:
    #  A held out: candidates B1, B2, C -> picks C: ALC .50; single best .60, oracle .75
    #     regret .25, delta -.10, gap closed (.50 - .60) / (.75 - .60) = -2/3
    #  B1: candidates A, C -> A: ALC .50; oracle .55 = single best: regret .05, delta -.05, gap NaN
    #  B2: A: ALC .40; oracle .45 = single best: regret .05, delta -.05, gap NaN
    #  C : candidates A, B1, B2 -> A: ALC .30; single best .20, oracle .50
    #     regret .20, delta +.10, gap closed (.30 - .20) / (.50 - .20) = 1/3
    # means: ALC (.5 + .5 + .4 + .3) / 4 = .425; regret (.25 + .05 + .05 + .2) / 4 = .1375;
    # gap closed over the 2 defined: (-2/3 + 1/3) / 2 = -1/6
    res = leave_one_dataset_out([spec(Priority)], features(), cost_matrix(), query_size=4, n_queries=2)
    rows = rows_of(res.rows, "test-priority")
    assert {k: r["selected"] for k, r in rows.items()} == {"A": "C", "B1": "A", "B2": "A", "C": "A"}
    assert rows["A"]["gap_closed"] == pytest.approx(-2 / 3)
    assert rows["C"]["gap_closed"] == pytest.approx(1 / 3)
    assert rows["A"]["regret"] == pytest.approx(0.25) and rows["C"]["delta_single_best"] == pytest.approx(0.10)
    s = res.summary["per_selector"]["test-priority"]
    assert s["mean_alc"] == pytest.approx(0.425)
    assert s["mean_regret"] == pytest.approx(0.1375)
    assert s["mean_delta_single_best"] == pytest.approx((-0.10 - 0.05 - 0.05 + 0.10) / 4)
    assert s["mean_gap_closed"] == pytest.approx(-1 / 6) and s["gap_undefined"] == 2
    assert gap_closed(0.3, 0.2, 0.5) == pytest.approx(1 / 3)
    assert math.isnan(gap_closed(0.5, 0.55, 0.55))


def test_kendall_tau_worked_example():
    # C held out: candidates A, B1, B2 with true ALCs .30, .50, .20.
    # Priority's scores A > B1 > B2. Pairs: (A, B1) discordant (A scored higher, worse ALC),
    # (A, B2) concordant, (B1, B2) concordant: tau = (2 - 1) / 3 = 1/3.
    assert kendall_tau([4, 2, 1], [0.30, 0.50, 0.20]) == pytest.approx(1 / 3)
    assert kendall_tau([3, 2, 1], [0.3, 0.2, 0.1]) == pytest.approx(1.0)
    assert math.isnan(kendall_tau([1, 1, 1], [0.3, 0.2, 0.1]))   # a constant score ranks nothing
    res = leave_one_dataset_out([spec(Priority)], features(), cost_matrix(), query_size=4, n_queries=2)
    rows = rows_of(res.rows, "test-priority")
    assert rows["C"]["kendall_tau"] == pytest.approx(1 / 3)
    # A held out: B1 .60, B2 .75, C .50 scored C > B1 > B2: all 3 pairs discordant: tau = -1
    assert rows["A"]["kendall_tau"] == pytest.approx(-1.0)


def test_random_gets_its_expected_value():
    cost = cost_matrix()
    assert expected_random(cost, ["A", "B1", "B2"], "C") == pytest.approx(1 / 3)
    res = leave_one_dataset_out([spec(Uniform, seed=3)], features(), cost, query_size=4, n_queries=400, seed=1)
    rows = rows_of(res.rows, "test-uniform")
    s = res.summary["per_selector"]["test-uniform"]
    # exact: the ALC expected under its (uniform) probabilities is the mean over candidates
    for name, r in rows.items():
        assert r["alc_expected"] == pytest.approx(EXPECTED[name]["random"], abs=1e-6)
        assert r["distinct_picks"] == r["n_candidates"]
        assert math.isnan(r["kendall_tau"])   # uniform scores: no ranking
    assert s["mean_alc_expected"] == pytest.approx(res.summary["expected_random_alc"], abs=1e-9)
    assert s["tau_undefined"] == 4
    # sampled: 400 draws per dataset; each column's spread is at most .125 around its mean, so
    # the standard error of the mean over 4 datasets is below .125 / sqrt(1600) = .003
    assert s["mean_alc"] == pytest.approx(0.475, abs=0.02)


def test_lodo_failures_are_rows_not_crashes():
    res = leave_one_dataset_out([spec(Broken), spec(Oracle)], features(), cost_matrix(), query_size=4, n_queries=1)
    broken = rows_of(res.rows, "test-broken")
    assert all("deliberately broken" in r["error"] for r in broken.values())
    assert all(math.isnan(r["alc"]) for r in broken.values())
    assert res.summary["per_selector"]["test-broken"]["failed"] == 4
    assert res.summary["per_selector"]["test-oracle"]["mean_regret"] == pytest.approx(0.0)


def test_lodo_seeds_average_and_missing_cells():
    cost = cost_matrix()
    cost.alc[3, 0] = np.nan                      # C's incumbent not measured on A
    res = leave_one_dataset_out([spec(Oracle)], features(), cost, query_size=4, n_queries=1)
    a = rows_of(res.rows, "test-oracle")["A"]
    assert a["n_candidates"] == 2                # B1, B2 only
    assert a["expected_random_alc"] == pytest.approx((0.60 + 0.75) / 2)
    # two seeds' rows summarise as one row per dataset
    res2 = leave_one_dataset_out([spec(Priority)], features(), cost_matrix(), query_size=4, n_queries=1, seed=5)
    res3 = leave_one_dataset_out([spec(Priority)], features(), cost_matrix(), query_size=4, n_queries=1, seed=6)
    s = summarize_lodo(res2.rows + res3.rows)
    assert s["seeds"] == [5, 6]
    assert s["per_selector"]["test-priority"]["datasets"] == 4
    assert s["per_selector"]["test-priority"]["mean_alc"] == pytest.approx(0.425)


@pytest.mark.skipif(not __import__("importlib").util.find_spec("selector.baselines"),
                    reason="selector/baselines.py (the registered oracle and random) is not there yet")
def test_registered_oracle_and_random():
    res = leave_one_dataset_out(["oracle", "single-best", SelectorSpec("random", {"seed": 0}, label="random")],
                                features(), cost_matrix(), query_size=4, n_queries=200)
    s = res.summary["per_selector"]
    assert s["oracle"]["failed"] == 0 and s["oracle"]["mean_regret"] == pytest.approx(0.0)
    # the registered single best picks this module's reference single best in every fold
    assert s["single-best"]["failed"] == 0
    assert s["single-best"]["mean_delta_single_best"] == pytest.approx(0.0)
    assert s["random"]["failed"] == 0
    assert s["random"]["mean_alc"] == pytest.approx(res.summary["expected_random_alc"], abs=0.03)


# --- identification ---------------------------------------------------------------------------
def test_identification_perfect_and_fixed():
    sizes = (1, 2, 4, 8, 16, 32, 64)            # 20 test samples: 32 and 64 take all 20, once
    ident = identification_accuracy([spec(Centroid), spec(Priority), spec(LabelledCentroid), spec(Oracle)],
                                     features(), batch_sizes=sizes, n_batches=3, cost=cost_matrix())
    table = {(r["selector"], r["batch_size"]): r for r in ident.table}
    for b in sizes:
        assert table[("test-centroid", b)]["accuracy"] == 1.0
        # Priority always names A: right on A only, 1 of 4 datasets
        assert table[("test-priority", b)]["accuracy"] == pytest.approx(0.25)
        assert table[("test-priority", b)]["chance"] == pytest.approx(0.25)
        assert table[("test-labelled", b)]["accuracy"] == 1.0
        assert table[("test-labelled", b)]["split"] == "train-holdout"
    big = [r for r in ident.rows if r["selector"] == "test-centroid" and r["batch_size"] == 64]
    assert all(r["batch_effective"] == 20 and r["batches"] == 1 for r in big)
    small = [r for r in ident.rows if r["selector"] == "test-centroid" and r["batch_size"] == 4]
    assert all(r["batch_effective"] == 4 and r["batches"] == 3 for r in small)
    # the labelled selector's held-out half: 20 of 40 training samples -> 32 takes 20
    lab = [r for r in ident.rows if r["selector"] == "test-labelled" and r["batch_size"] == 32]
    assert all(r["batch_effective"] == 20 for r in lab)
    assert "evaluation only" in ident.skipped["test-oracle"]


def test_identification_reports_a_confusable_pair_and_failures():
    # B2 is a copy of B1 under another name: the centroid selector's scores of the two tie and
    # the tie goes to the first class, B1. B1's, A's and C's batches are named right, B2's
    # never: 3 of 4 datasets, accuracy .75 at every batch size.
    feats = features()
    feats[2] = DatasetFeatures("B2", feats[1].train, feats[1].train_labels, feats[1].test, {}, "b",
                               {"backbone": "hand-made"})
    ident = identification_accuracy([spec(Centroid), spec(Broken)], feats, batch_sizes=(1, 8), n_batches=4)
    acc = {r["batch_size"]: r["accuracy"] for r in ident.table if r["selector"] == "test-centroid"}
    assert acc == {1: pytest.approx(0.75), 8: pytest.approx(0.75)}
    per = {(r["dataset"], r["batch_size"]): r["accuracy"] for r in ident.rows if r["selector"] == "test-centroid"}
    assert per[("B2", 8)] == 0.0 and per[("B1", 8)] == 1.0
    assert "deliberately broken" in ident.skipped["test-broken"]
    assert not [r for r in ident.rows if r["selector"] == "test-broken"]


# --- statistics -------------------------------------------------------------------------------
def test_statistics_degrades_with_too_few_datasets():
    res = leave_one_dataset_out([spec(Oracle), spec(Priority)], features(), cost_matrix(), query_size=4,
                                n_queries=1)
    st = statistics(res.rows)
    assert st.test is None and "not enough datasets" in st.reason
    # ranks per dataset (ALC, higher is better): A oracle .75 vs .50 -> 1, 2; B1 .55 vs .50 -> 1, 2;
    # B2 .45 vs .40 -> 1, 2; C .50 vs .30 -> 1, 2: mean ranks 1 and 2
    assert st.mean_ranks == {"test-oracle": 1.0, "test-priority": 2.0}
    one = statistics([r for r in res.rows if r["selector"] == "test-oracle"])
    assert "nothing to compare" in one.reason
    assert one.to_dict()["test"] is None


def test_statistics_with_enough_datasets():
    names = [f"d{i}" for i in range(7)]
    rng = np.random.default_rng(0)
    alc = rng.uniform(0.2, 0.9, (7, 7))
    cost = CostMatrix(names, names, alc, [["ok"] * 7 for _ in range(7)], seeds=[0])
    feats = features(names, {}, dim=7)
    res = leave_one_dataset_out([spec(Oracle), spec(Priority, order=tuple(names)), spec(Uniform)], feats, cost,
                                query_size=4, n_queries=2)
    st = statistics(res.rows)
    assert st.reason is None and st.test is not None
    assert st.test["omnibus"] == "friedman" and st.test["posthoc"] == "nemenyi" and st.test["cd"] > 0
    assert len(st.datasets) == 7
    assert sum(st.mean_ranks.values()) == pytest.approx(1 + 2 + 3)
    assert min(st.mean_ranks, key=st.mean_ranks.get) == "test-oracle"
    assert len(st.pairwise) == 3
    for p in st.pairwise:
        assert p["pvalue_holm"] >= p["pvalue"] - 1e-12
    assert st.result is not None and "result" not in st.to_dict()


def test_holm_worked_example():
    # sorted .01, .03, .04 -> .01*3 = .03; .03*2 = .06; .04*1 = .04, raised to the running max .06
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


# --- the cost of selecting --------------------------------------------------------------------
def test_alc_delay_bound_by_hand():
    # t~ = log(1 + t/t0) / log(1 + T/t0)
    # mini (T=60, t0=3), t=3: log 2 / log 21 = 0.693147 / 3.044522 = 0.227670
    assert alc_delay_bound(3.0, "mini") == pytest.approx(0.227670, abs=1e-6)
    # autocv (T=1200, t0=60), t=5: log(1 + 1/12) / log 21 = 0.080043 / 3.044522 = 0.026291 (2.6 %)
    assert alc_delay_bound(5.0, "autocv") == pytest.approx(0.026291, abs=1e-6)
    # at a curve level of .5 the loss halves; no delay loses nothing
    assert alc_delay_bound(5.0, "autocv", level=0.5) == pytest.approx(0.0131455, abs=1e-6)
    assert alc_delay_bound(0.0, "mini") == 0.0


class FakeEmbedder:
    """Stands in for metafeatures.embeddings.Embedder: a fixed random projection of the pixels."""

    card: ClassVar[dict[str, Any]] = {"backbone": "fake", "input_size": 8}

    def embed(self, x: np.ndarray) -> np.ndarray:
        flat = x.reshape(len(x), x.shape[1], -1).mean(axis=1).astype(np.float32)
        return flat[:, :4]


def test_selection_cost_rows():
    out = selection_cost([spec(Centroid), spec(Oracle)], features(), batch_sizes=(1, 64), cost=cost_matrix(),
                         embedder=FakeEmbedder(), repeats=1, levels={"test-centroid": 0.5})
    rows = {(r["selector"], r["batch_size"]): r for r in out["rows"]}
    assert set(rows) == {("test-centroid", 1), ("test-centroid", 64)}
    assert out["skipped"] == {"test-oracle": "evaluation only"}
    r = rows[("test-centroid", 64)]
    assert r["embed_seconds"] == out["embedding"][64] and r["embed_seconds"] > 0
    assert r["total_seconds"] == pytest.approx(r["embed_seconds"] + r["select_seconds"])
    for proto in ("mini", "autocv"):
        b = r["alc_bound"][proto]
        assert b["level_1"] == pytest.approx(alc_delay_bound(r["total_seconds"], proto))
        assert b["level"] == pytest.approx(0.5 * b["level_1"])
    assert out["protocols"]["autocv"] == {"time_budget": 1200, "t0": 60}


def test_fallback_threshold_worked_example():
    """Two held-out datasets, two queries each. Rule: use the pick when confidence >= c (and
    novelty <= v), else the fold's single best.

        dataset X (single best 0.6): q0 conf 0.9 ALC 0.8;  q1 conf 0.4 ALC 0.2
        dataset Y (single best 0.5): q0 conf 0.7 ALC 0.7;  q1 conf 0.5 ALC 0.3

    never falling back: X (0.8+0.2)/2 = 0.5, Y (0.7+0.3)/2 = 0.5 -> 0.5
    always the single best: (0.6 + 0.5)/2 = 0.55
    c = 0.5 (X q1 falls back): X (0.8+0.6)/2 = 0.7, Y 0.5 -> 0.6
    c = 0.7 (X q1, Y q1 fall back): X 0.7, Y (0.7+0.5)/2 = 0.6 -> 0.65   <- best
    c = 0.9 (all but X q0): X 0.7, Y 0.5 -> 0.6
    """
    from selector.fallback import fallback_threshold

    recs = [{"selector": "s", "dataset": d, "seed": 0, "query": i, "confidence": c, "novelty": float("nan"),
             "alc": a, "single_best_alc": sb}
            for d, i, c, a, sb in [("X", 0, 0.9, 0.8, 0.6), ("X", 1, 0.4, 0.2, 0.6),
                                   ("Y", 0, 0.7, 0.7, 0.5), ("Y", 1, 0.5, 0.3, 0.5)]]
    res = fallback_threshold(recs + [{**recs[0], "selector": "other"}], "s")
    assert res["confidence_threshold"] == pytest.approx(0.7) and res["novelty_threshold"] is None
    assert res["mean_alc"] == pytest.approx(0.65) and res["mean_alc_without"] == pytest.approx(0.5)
    assert res["mean_alc_single_best"] == pytest.approx(0.55) and res["fallback_share"] == pytest.approx(0.5)
    # with novelties 1, 5, 1, 9 (the observed values are the candidate thresholds v; fall back
    # when novelty > v): c = 0 and v = 5 catches Y q1 only: X 0.5, Y 0.6 -> 0.55; c = 0 and v = 1
    # catches X q1 and Y q1: X 0.7, Y 0.6 -> 0.65, found first (lowest c); c = 0.7 without a
    # novelty rule ties at 0.65 and does not replace it (a tie keeps the rule found first)
    nov = [1.0, 5.0, 1.0, 9.0]
    res = fallback_threshold([{**r, "novelty": v} for r, v in zip(recs, nov)], "s")
    assert res["mean_alc"] == pytest.approx(0.65) and res["fallback_share"] == pytest.approx(0.5)
    assert res["confidence_threshold"] == 0.0 and res["novelty_threshold"] == pytest.approx(1.0)
    assert fallback_threshold(recs, "nobody") is None
