"""The transferability and dataset-distance selectors on synthetic embeddings.

Three training datasets whose embeddings are Gaussian blobs (3 classes, each dataset with
its own class centres and spread); a query is a fresh batch drawn from one of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from metafeatures.features import DatasetFeatures, Query
from selector.base import SelectorError
from selector.registry import list_selectors, load_selector, make_selector
from selector.similarity import scores_to_proba

NAMES = ("logme", "leep", "nce", "hscore", "gbc", "otdd", "task2vec")
D, K = 8, 3
_CENTRES = np.random.default_rng(0).normal(0, 3, (3, K, D))     # per dataset, per class


def _draw(i: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n samples of training dataset i: class k at centre k, deviation 1 + 0.5 i; one-hot labels."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    x = _CENTRES[i][y] + rng.normal(0, 1, (n, D)) * (1 + 0.5 * i)
    return x.astype(np.float32), np.eye(K, dtype=np.float32)[y]


@pytest.fixture(scope="module")
def datasets() -> list[DatasetFeatures]:
    card = {"backbone": "synthetic", "input_size": 0}
    return [DatasetFeatures(f"d{i}", *_draw(i, 60, seed=i), source=f"s{i}", card=card) for i in range(3)]


@pytest.fixture(scope="module")
def fitted(datasets) -> dict:
    return {name: make_selector(name).fit(datasets) for name in NAMES}


def _query(i: int, n: int = 32, seed: int = 100) -> Query:
    return Query(*_draw(i, n, seed + i), name=f"new-{i}")


def test_registered():
    assert set(NAMES) <= set(list_selectors())
    for name in NAMES:
        assert make_selector(name).needs_labels


@pytest.mark.parametrize("name", ["otdd", "task2vec", "leep", "nce"])
@pytest.mark.parametrize("target", [0, 1, 2])
def test_query_from_a_training_dataset_ranks_it_first(fitted, name, target):
    sel = fitted[name]
    q = _query(target)
    assert sel.rank(q)[0] == f"d{target}"
    assert sel.predict(q) == f"d{target}"


@pytest.mark.parametrize("name", NAMES)
def test_probabilities_confidence_and_save_load_round_trip(fitted, name, tmp_path):
    sel = fitted[name]
    q = _query(2)
    p = sel.predict_proba(q)
    assert p.shape == (3,) and np.all(p >= 0) and p.sum() == pytest.approx(1.0)
    # probabilities follow the raw scores' order
    assert list(np.argsort(-p, kind="stable")) == list(np.argsort(-sel.scores(q), kind="stable"))
    c = sel.confidence(q)
    top = np.sort(p)[::-1]
    assert c == pytest.approx(top[0] - top[1]) and 0 <= c <= 1
    sel.save(tmp_path / name)
    loaded = load_selector(tmp_path / name)
    assert type(loaded) is type(sel) and loaded.classes_ == ["d0", "d1", "d2"]
    assert loaded.get_params() == sel.get_params()
    assert np.array_equal(loaded.predict_proba(q), p)
    assert loaded.rank(q) == sel.rank(q)


@pytest.mark.parametrize("name", NAMES)
def test_query_without_labels_is_refused(fitted, name):
    q = Query(_draw(1, 16, 5)[0])
    with pytest.raises(SelectorError, match="needs the labels"):
        fitted[name].predict_proba(q)


@pytest.mark.parametrize("name", ["logme", "leep", "nce", "hscore", "gbc", "task2vec"])
def test_query_with_one_class_is_refused(fitted, name):
    x, y = _draw(1, 12, 5)
    with pytest.raises(SelectorError):
        fitted[name].predict_proba(Query(x, np.tile(y[:1], (12, 1))))


def test_singleton_classes_are_left_out_or_refused(fitted):
    x, _ = _draw(1, 3, 5)
    only_singletons = Query(x, np.eye(3, dtype=np.float32))
    with pytest.raises(SelectorError, match="no class occurs twice"):
        fitted["otdd"].predict_proba(only_singletons)
    with pytest.raises(SelectorError, match="fewer than two classes with at least two samples"):
        fitted["gbc"].predict_proba(only_singletons)
    # a batch of 32 plus one sample of a fourth class: OTDD and GBC leave that sample out
    xq, yq = _draw(2, 32, 102)
    extra = Query(np.r_[xq, x[:1]], np.c_[np.r_[yq, np.zeros((1, K), np.float32)],
                                          np.r_[np.zeros(32, np.float32), 1.0]])
    base = Query(xq, np.c_[yq, np.zeros(32, np.float32)])
    for name in ("otdd", "gbc"):
        assert np.array_equal(fitted[name].scores(extra), fitted[name].scores(base))


def test_multilabel_query_rows_use_their_argmax(fitted):
    # a second positive label in a column after the true one: argmax keeps the first, so the
    # single-label measures see the same labels
    x, y = _draw(0, 24, 7)
    multi = np.c_[y, np.ones((24, 1), np.float32)]
    for name in ("logme", "leep", "nce", "hscore", "gbc", "otdd"):
        sel = fitted[name]
        assert np.array_equal(sel.scores(Query(x, multi)), sel.scores(Query(x, np.c_[y, np.zeros((24, 1))])))


def test_wrong_embedding_size_and_bad_params(datasets, fitted):
    with pytest.raises(SelectorError, match="features"):
        fitted["leep"].predict_proba(Query(np.zeros((4, D + 1)), np.eye(2)[[0, 1, 0, 1]]))
    bad = [("gbc", {"gaussian": "full"}), ("hscore", {"shrinkage": 2.0}), ("otdd", {"covariance": "tied"}),
           ("otdd", {"method": "greedy"}), ("task2vec", {"temperature": 0}), ("leep", {"n_samples": 1})]
    for name, params in bad:
        with pytest.raises(SelectorError, match=next(iter(params))):
            make_selector(name, **params).fit(datasets)


def test_parameters_reach_the_measures(datasets):
    q = _query(1)
    plain = make_selector("hscore", shrinkage=None).fit(datasets).scores(q)
    shrunk = make_selector("hscore", shrinkage=0.5).fit(datasets).scores(q)
    assert make_selector("hscore").shrinkage == "ledoit-wolf"
    assert not np.allclose(plain, shrunk)
    diag = make_selector("gbc", gaussian="diagonal").fit(datasets).scores(q)
    sph = make_selector("gbc").fit(datasets).scores(q)
    assert not np.allclose(diag, sph)
    small = make_selector("otdd", n_samples=30).fit(datasets)
    assert all(len(x) == 30 for x in small.samples_)
    full = make_selector("otdd", covariance="full").fit(datasets)
    assert full.rank(q)[0] == "d1"


def test_scores_to_proba_hand_computed():
    # scores (1, 2, 3): mean 2, std sqrt(2/3) -> z = (-r, 0, r), r = 1/sqrt(2/3) = 1.2247...
    # softmax: (e^-r, 1, e^r) / (e^-r + 1 + e^r)
    r = 1 / np.sqrt(2 / 3)
    expected = np.array([np.exp(-r), 1.0, np.exp(r)]) / (np.exp(-r) + 1 + np.exp(r))
    assert scores_to_proba(np.array([1.0, 2.0, 3.0])) == pytest.approx(expected, abs=1e-12)
    # standardising makes it invariant to a positive affine map of the scores
    assert scores_to_proba(np.array([1.0, 2.0, 3.0]) * 7 - 40) == pytest.approx(expected, abs=1e-12)
    # temperature 2 halves z
    t2 = np.array([np.exp(-r / 2), 1.0, np.exp(r / 2)])
    assert scores_to_proba(np.array([1.0, 2.0, 3.0]), 2.0) == pytest.approx(t2 / t2.sum(), abs=1e-12)
    assert scores_to_proba(np.array([5.0, 5.0])) == pytest.approx([0.5, 0.5])
