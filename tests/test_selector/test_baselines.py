"""The baselines (selector.baselines): random, single-best and oracle on hand-made cost matrices."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone

from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector.base import SelectorError
from selector.registry import load_selector, make_selector

NAMES = ["A", "B", "C"]

# rows: incumbents found on A, B, C; columns: datasets A, B, C and Z (a dataset with no incumbent)
ALC = np.array([[0.5, 0.4, 0.45, 0.3],
                [1.0, 0.5, 0.5, 0.1],
                [0.2, 0.6, 0.6, 0.8]])


def features(names: list[str]) -> list[DatasetFeatures]:
    rng = np.random.default_rng(0)
    return [DatasetFeatures(n, rng.normal(size=(10, 4)), np.ones((10, 1))) for n in names]


def matrix(alc: np.ndarray = ALC) -> CostMatrix:
    targets = [*NAMES, "Z"]
    return CostMatrix(list(NAMES), targets, alc.copy(), [["ok"] * len(targets) for _ in NAMES])


def query(name: str | None = None, seed: int = 0) -> Query:
    return Query(np.random.default_rng(seed).normal(size=(5, 4)), name=name)


def test_single_best_is_the_best_mean_over_the_training_columns() -> None:
    # fitted on A, B, C: means over columns A, B, C (Z is no training dataset)
    #   A (0.5 + 0.4 + 0.45) / 3 = 0.45, B (1.0 + 0.5 + 0.5) / 3 = 0.667, C (0.2 + 0.6 + 0.6) / 3 = 0.467 -> B
    sel = make_selector("single-best").fit(features(NAMES), matrix())
    assert np.allclose(sel.mean_alc_, [0.45, 2 / 3, 1.4 / 3])
    assert sel.predict(query()) == "B"
    assert np.array_equal(sel.predict_proba(query()), [0.0, 1.0, 0.0])
    assert sel.confidence(query()) == 1.0
    # fitted on B and C only (A held out): rows B, C over columns B, C
    #   B (0.5 + 0.5) / 2 = 0.5, C (0.6 + 0.6) / 2 = 0.6 -> C (with column A, B would win)
    sel = make_selector("single-best").fit(features(["B", "C"]), matrix())
    assert sel.classes_ == ["B", "C"] and sel.predict(query()) == "C"


def test_single_best_uses_complete_columns_only() -> None:
    alc = ALC.copy()
    alc[2, 0] = np.nan  # C has no ALC on A: column A is left out
    # means over columns B, C: A (0.4 + 0.45) / 2 = 0.425, B (0.5 + 0.5) / 2 = 0.5, C (0.6 + 0.6) / 2 = 0.6 -> C
    sel = make_selector("single-best").fit(features(NAMES), matrix(alc))
    assert np.allclose(sel.mean_alc_, [0.425, 0.5, 0.6])
    assert sel.predict(query()) == "C"


def test_oracle_picks_the_best_row_of_the_query_column() -> None:
    sel = make_selector("oracle").fit(features(NAMES), matrix())
    assert sel.predict(query("A")) == "B"   # column A: 0.5, 1.0, 0.2
    assert sel.predict(query("Z")) == "C"   # column Z: 0.3, 0.1, 0.8
    # fitted without B: only A's and C's incumbents compete (column A: 0.5, 0.2; B's 1.0 is out)
    held_out = make_selector("oracle").fit(features(["A", "C"]), matrix())
    assert held_out.predict(query("A")) == "A"
    assert np.array_equal(held_out.predict_proba(query("A")), [1.0, 0.0])
    for bad in ("unknown", None):
        with pytest.raises(SelectorError, match="not a column"):
            sel.predict_proba(query(bad))


def test_oracle_refuses_a_column_without_alc() -> None:
    alc = ALC.copy()
    alc[:, 3] = np.nan
    sel = make_selector("oracle").fit(features(NAMES), matrix(alc))
    with pytest.raises(SelectorError, match="no incumbent"):
        sel.predict_proba(query("Z"))


@pytest.mark.parametrize("name", ["single-best", "oracle"])
def test_cost_baselines_need_the_cost_matrix(name: str) -> None:
    with pytest.raises(SelectorError, match="cost matrix"):
        make_selector(name).fit(features(NAMES))
    with pytest.raises(SelectorError, match="no incumbent of"):
        make_selector(name).fit(features(["A", "Q"]), matrix())


def test_random_is_reproducible_per_query_and_uniform_over_queries() -> None:
    sel = make_selector("random", seed=3).fit(features(NAMES))
    q = query(seed=1)
    assert np.allclose(sel.predict_proba(q), [1 / 3] * 3)
    assert sel.predict(q) == sel.predict(query(seed=1)) == sel.rank(q)[0]
    assert sorted(sel.rank(q)) == NAMES
    picks = [sel.predict(query(seed=s)) for s in range(300)]
    counts = [picks.count(n) for n in NAMES]
    # binomial(300, 1/3): mean 100, standard deviation 8.2; [60, 140] is more than 4.8 deviations
    assert all(60 <= c <= 140 for c in counts), counts
    other = make_selector("random", seed=4).fit(features(NAMES))
    assert [other.predict(query(seed=s)) for s in range(30)] != picks[:30]


@pytest.mark.parametrize("name", ["random", "single-best", "oracle"])
def test_save_load_predicts_the_same(name: str, tmp_path) -> None:
    sel = make_selector(name, seed=2).fit(features(NAMES), matrix())
    sel.save(tmp_path)
    back = load_selector(tmp_path)
    assert type(back) is type(sel) and back.classes_ == NAMES and back.get_params() == sel.get_params()
    for target in ("A", "B", "Z"):
        q = query(target, seed=len(target))
        assert np.array_equal(back.predict_proba(q), sel.predict_proba(q))
        assert back.predict(q) == sel.predict(q) and back.rank(q) == sel.rank(q)
    copy = clone(sel)
    assert not hasattr(copy, "classes_") and copy.get_params() == {"seed": 2}
