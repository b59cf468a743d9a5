"""The learned selectors (selector.learned) and their spaces (selector.space), on synthetic embeddings.

Training datasets are Gaussian blobs in D=8 with well separated means (dataset ``j`` has
mean 3 on feature ``j``); their ``test`` embeddings are held out for identification.
Networks train for a few epochs at tiny sizes, with one PyTorch thread.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector.base import SelectorError
from selector.learned import _inverse_distance_weights, _vote_proba, novelty_score
from selector.registry import load_selector, make_selector
from selector.space import params_from_config, selector_space, tunable_selectors

pytestmark = pytest.mark.usefixtures("torch_threads_1")

D = 8
NAMES = ["d0", "d1", "d2", "d3"]

# small settings so that every fit takes well under a second
SMALL = {
    "nearest-centroid": {},
    "kmeans": {"n_clusters": 3, "n_init": 1, "max_iter": 20},
    "mlp-vote": {"neurons": 16, "epochs": 5, "batch_size": 32, "lr": 1e-2},
    "precalc-mlp": {"batch_size": 32, "n_batches": 64, "neurons": 128, "epochs": 10, "sgd_batch_size": 32,
                    "lr": 3e-3},
    "vae-ttest": {"latent_dim": 2, "hidden": 16, "epochs": 5, "batch_size": 32, "lr": 1e-2},
    "descriptor-knn": {},
    "cost-sensitive": {"n_components": 2},
}
LEARNED = list(SMALL)
EMBEDDING_BASED = ["nearest-centroid", "kmeans", "mlp-vote", "precalc-mlp", "vae-ttest"]


def descriptors(train: int, classes: int, height: int) -> dict[str, float]:
    return {"train_samples": train, "test_samples": 100, "classes": classes, "channels": 3, "height": height,
            "width": height, "variable_size": 0, "frames": 1, "multilabel": 0}


def blob(name: str, mean: np.ndarray, rng: np.random.Generator, desc: dict[str, float] | None,
         n_train: int = 200, n_test: int = 96) -> DatasetFeatures:
    labels = np.eye(2, dtype=np.float32)[rng.integers(0, 2, n_train)]
    return DatasetFeatures(name, rng.normal(mean, 1.0, (n_train, len(mean))), labels,
                           rng.normal(mean, 1.0, (n_test, len(mean))), descriptors=desc or {}, source=name)


@pytest.fixture(scope="module")
def datasets() -> list[DatasetFeatures]:
    rng = np.random.default_rng(0)
    out = []
    for j, name in enumerate(NAMES):
        mean = np.zeros(D)
        mean[j] = 3.0
        out.append(blob(name, mean, rng, descriptors(100 * 4 ** j, 2 + 3 * j, 16 * 2 ** j)))
    return out


@pytest.fixture(scope="module")
def cost() -> CostMatrix:
    # rows: incumbents found on d0..d3; columns: datasets; each incumbent best on its own dataset
    alc = np.array([[0.8, 0.5, 0.4, 0.3],
                    [0.5, 0.8, 0.4, 0.4],
                    [0.3, 0.4, 0.8, 0.6],
                    [0.2, 0.3, 0.6, 0.8]])
    return CostMatrix(list(NAMES), list(NAMES), alc, [["ok"] * 4 for _ in NAMES])


@pytest.fixture(scope="module")
def fitted(datasets: list[DatasetFeatures], cost: CostMatrix) -> dict:
    return {name: make_selector(name, **params).fit(datasets, cost) for name, params in SMALL.items()}


def test_novelty_score_by_hand() -> None:
    centroids = np.array([[0.0, 0.0], [10.0, 0.0]])
    spreads = np.array([1.0, 2.0])
    query = np.array([[3.0, 4.0]])  # B = 1
    # distances: to (0,0) 5; to (10,0) sqrt(49 + 16) = sqrt(65) = 8.0623
    # without counts: z = 5 / 1 = 5 and 8.0623 / 2 = 4.0311 -> min 4.0311
    assert novelty_score(centroids, spreads, query) == pytest.approx(np.sqrt(65) / 2)
    # counts 3: standard errors 1 * sqrt(1 + 1/3) = 1.1547 and 2 * 1.1547 = 2.3094
    # z = 4.3301 and 3.4911 -> min 3.4911
    assert novelty_score(centroids, spreads, query, counts=np.array([3, 3])) == pytest.approx(
        np.sqrt(65) / (2 * np.sqrt(4 / 3)))


def test_vote_proba_breaks_ties_by_order() -> None:
    p = _vote_proba(np.array([2.0, 0.0, 2.0, 0.0]), order=np.array([-5.0, -1.0, -3.0, -9.0]))
    assert p.sum() == pytest.approx(1.0)
    assert np.allclose(p, [0.5, 0.0, 0.5, 0.0], atol=1e-6)
    # equal votes: dataset 2 (order -3) before dataset 0 (-5); no votes: 1 (-1) before 3 (-9)
    assert list(np.argsort(-p)) == [2, 0, 1, 3]


def test_inverse_distance_weights_by_hand() -> None:
    # k = 2 nearest of distances 4, 1, 2: weights 1/1 and 1/2 -> 2/3 and 1/3
    assert np.allclose(_inverse_distance_weights(np.array([4.0, 1.0, 2.0]), 2), [0.0, 2 / 3, 1 / 3])
    # an exact match takes all the weight
    assert np.allclose(_inverse_distance_weights(np.array([0.0, 1.0, 2.0]), 2), [1.0, 0.0, 0.0])


@pytest.mark.parametrize("name", EMBEDDING_BASED)
def test_identifies_held_out_batches(name: str, fitted: dict, datasets: list[DatasetFeatures]) -> None:
    sel = fitted[name]
    hits = []
    for j, d in enumerate(datasets):
        for seed in range(5):
            q = d.query(32, split="test", seed=seed)
            hits.append(sel.predict(q) == d.name)
        # a query from dataset j names j
        assert sel.predict(d.query(32, split="test", seed=0)) == d.name
    # chance is 1/4
    assert np.mean(hits) >= 0.9


@pytest.mark.parametrize("name", LEARNED)
def test_scores_are_probabilities(name: str, fitted: dict, datasets: list[DatasetFeatures]) -> None:
    sel = fitted[name]
    q = datasets[1].query(16, split="test")
    p = sel.predict_proba(q)
    assert p.shape == (4,) and (p >= 0).all() and p.sum() == pytest.approx(1.0)
    assert sel.rank(q)[0] == sel.predict(q) == NAMES[int(np.argmax(p))]
    assert 0.0 <= sel.confidence(q) <= 1.0


@pytest.mark.parametrize("name", LEARNED)
def test_save_load_predicts_the_same(name: str, fitted: dict, datasets: list[DatasetFeatures], tmp_path) -> None:
    sel = fitted[name]
    sel.save(tmp_path / name)
    back = load_selector(tmp_path / name)
    assert type(back) is type(sel) and back.classes_ == sel.classes_
    assert json.loads(json.dumps(back.get_params())) == json.loads(json.dumps(sel.get_params()))
    for d in datasets:
        for n in (1, 7, 32):
            q = d.query(n, split="test", seed=n)
            assert np.array_equal(back.predict_proba(q), sel.predict_proba(q))
            assert back.confidence(q) == sel.confidence(q)
            assert back.novelty(q) == sel.novelty(q)


@pytest.mark.parametrize("name", LEARNED)
def test_clone_and_params(name: str, fitted: dict) -> None:
    sel = fitted[name]
    copy = clone(sel)
    assert not hasattr(copy, "classes_")
    assert copy.get_params() == sel.get_params()
    copy.set_params(seed=7)
    assert copy.seed == 7 and sel.seed == 0


@pytest.mark.parametrize("name", ["kmeans", "mlp-vote", "precalc-mlp", "vae-ttest"])
def test_fit_is_deterministic_given_seed(name: str, fitted: dict, datasets: list[DatasetFeatures],
                                         cost: CostMatrix) -> None:
    import torch

    state = torch.random.get_rng_state()
    again = make_selector(name, **SMALL[name]).fit(datasets, cost)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random state is left alone
    q = datasets[2].query(20, split="test")
    assert np.array_equal(again.predict_proba(q), fitted[name].predict_proba(q))
    arrays, other_arrays = fitted[name]._state()[0], make_selector(name, **SMALL[name], seed=1).fit(
        datasets, cost)._state()[0]
    assert all(np.array_equal(again._state()[0][k], v) for k, v in arrays.items())
    assert not all(np.array_equal(other_arrays[k], v) for k, v in arrays.items())


def test_nearest_centroid_ties_by_summed_distance() -> None:
    a = DatasetFeatures("a", np.array([[-1.0, 0.0], [1.0, 0.0]]), np.ones((2, 1)))  # centroid (0, 0)
    b = DatasetFeatures("b", np.array([[9.0, 0.0], [11.0, 0.0]]), np.ones((2, 1)))  # centroid (10, 0)
    sel = make_selector("nearest-centroid", standardize=False).fit([a, b])
    # (1, 0) votes a, (8, 0) votes b: 1 vote each; summed distances a: 1 + 8 = 9, b: 9 + 2 = 11
    q = Query(np.array([[1.0, 0.0], [8.0, 0.0]]))
    assert np.allclose(sel.predict_proba(q), [0.5, 0.5], atol=1e-6)
    assert sel.predict(q) == "a" and sel.rank(q) == ["a", "b"]
    assert sel.confidence(q) == 0.5


def test_novelty_is_small_for_own_batches_and_large_far_away(fitted: dict, datasets: list[DatasetFeatures]) -> None:
    sel = fitted["nearest-centroid"]
    own = [sel.novelty(d.query(32, split="test", seed=s)) for d in datasets for s in range(3)]
    # a batch of a training dataset lies within a few standard errors of its centroid
    assert max(own) < 3.0
    far = Query(np.random.default_rng(5).normal(0.0, 1.0, (32, D)) + 6.0)
    assert sel.novelty(far) > 10.0


def test_precalc_mlp_batch_size_range(datasets: list[DatasetFeatures]) -> None:
    sel = make_selector("precalc-mlp", batch_size=4, batch_size_max=256)
    sizes = sel.batch_sizes(np.random.default_rng(0), 2000)
    assert sizes.min() >= 4 and sizes.max() <= 256
    # log-uniform: about as many sizes in [4, 32) as in [32, 256]
    assert 0.4 < np.mean(sizes < 32) < 0.6
    with pytest.raises(SelectorError, match="batch_size_max"):
        make_selector("precalc-mlp", batch_size=64, batch_size_max=8).fit(datasets)


@pytest.mark.parametrize("name, params, field", [
    ("mlp-vote", {"vote": "median"}, "vote"),
    ("precalc-mlp", {"stats": ("mean", "mode")}, "stats"),
    ("precalc-mlp", {"p": 0.5}, "p"),
    ("kmeans", {"n_clusters": 0}, "n_clusters"),
    ("nearest-centroid", {"metric": "cosine"}, "metric"),
    ("cost-sensitive", {"regressor": "forest"}, "regressor"),
])
def test_bad_parameters_are_named(name: str, params: dict, field: str, datasets: list[DatasetFeatures],
                                  cost: CostMatrix) -> None:
    with pytest.raises(SelectorError, match=field) as info:
        make_selector(name, **params).fit(datasets, cost)
    assert info.value.field == field


def test_descriptor_knn_needs_descriptors(fitted: dict, datasets: list[DatasetFeatures]) -> None:
    sel = fitted["descriptor-knn"]
    q = datasets[2].query(8, split="test")
    assert sel.predict(q) == "d2"  # the same descriptors: distance 0
    with pytest.raises(SelectorError, match="descriptors"):
        sel.predict_proba(Query(q.embeddings))
    bare = [DatasetFeatures(d.name, d.train, d.train_labels) for d in datasets]
    with pytest.raises(SelectorError, match="descriptors"):
        make_selector("descriptor-knn").fit(bare)


def test_a_query_of_descriptors_alone_serves_only_the_selectors_that_read_nothing_else(
        fitted: dict, datasets: list[DatasetFeatures]) -> None:
    """A query without embeddings (what a submission shipping descriptor-knn builds: no batch
    decoded, no network run) gives descriptor-knn the same scores as the full query; a selector
    that reads embeddings refuses it by name, and so does the novelty that needs them."""
    full = datasets[1].query(8, split="test")
    bare = Query(None, descriptors=full.descriptors)
    assert len(bare) == 0
    knn = fitted["descriptor-knn"]
    assert not knn.reads_embeddings
    np.testing.assert_array_equal(knn.predict_proba(bare), knn.predict_proba(full))
    assert knn.predict(bare) == "d1" and knn.confidence(bare) == knn.confidence(full)
    with pytest.raises(SelectorError, match="novelty needs the query's embeddings"):
        knn.novelty(bare)
    for name in EMBEDDING_BASED + ["cost-sensitive"]:
        assert fitted[name].reads_embeddings
        with pytest.raises(SelectorError, match="needs the query's embeddings"):
            fitted[name].predict_proba(bare)
    with pytest.raises(ValueError, match="embeddings or descriptors"):
        Query(None)


def test_cost_sensitive_picks_best_incumbent_not_nearest_dataset() -> None:
    """Two families of datasets (x near feature 0, y near feature 1): the incumbent of y1
    is the best on both y datasets, y2's own incumbent is mediocre. A new dataset just
    beside y2 should get y1's incumbent (nearest centroid says y2)."""
    rng = np.random.default_rng(1)

    def at(*coords: tuple[int, float]) -> np.ndarray:
        m = np.zeros(D)
        for i, v in coords:
            m[i] = v
        return m

    means = {"x1": at((0, 4)), "x2": at((0, 4), (2, 1)), "y1": at((1, 4)), "y2": at((1, 4), (3, 1))}
    small, large = descriptors(500, 10, 32), descriptors(5000, 100, 128)
    train = [blob(n, m, rng, small if n[0] == "x" else large) for n, m in means.items()]
    names = list(means)
    alc = np.array([[0.9, 0.8, 0.3, 0.3],     # x1's incumbent
                    [0.7, 0.7, 0.4, 0.4],     # x2's
                    [0.3, 0.3, 0.9, 0.85],    # y1's: best on y1 and y2
                    [0.4, 0.4, 0.6, 0.6]])    # y2's
    cost = CostMatrix(names, names, alc, [["ok"] * 4 for _ in names])
    new = blob("z", at((1, 4), (3, 1.2)), rng, large)
    q = new.query(64)
    assert make_selector("nearest-centroid").fit(train).predict(q) == "y2"
    for params in ({"regressor": "knn", "k": 3}, {"regressor": "ridge", "alpha": 1.0}):
        sel = make_selector("cost-sensitive", n_components=2, **params).fit(train, cost)
        assert sel.predict(q) == "y1", params
        pred = sel.predict_alc(q)
        assert pred[names.index("y1")] > pred[names.index("y2")]
    with pytest.raises(SelectorError, match="cost matrix"):
        make_selector("cost-sensitive").fit(train)


def test_cost_sensitive_ignores_incumbent_without_alc() -> None:
    rng = np.random.default_rng(2)
    train = [blob(n, np.full(D, float(i)), rng, descriptors(100, 2, 16)) for i, n in enumerate(["a", "b", "c"])]
    alc = np.array([[0.5, 0.5, 0.5], [np.nan, np.nan, np.nan], [0.6, 0.4, np.nan]])
    cost = CostMatrix(["a", "b", "c"], ["a", "b", "c"], alc, [])
    sel = make_selector("cost-sensitive", n_components=1, use_descriptors=False).fit(train, cost)
    p = sel.predict_proba(train[0].query(16))
    assert p[1] == 0.0 and p.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("name", tunable_selectors())
def test_space_configurations_build_selectors(name: str, datasets: list[DatasetFeatures], cost: CostMatrix) -> None:
    space = selector_space(name, seed=0)
    assert name in LEARNED
    defaults = params_from_config(name, space.get_default_configuration())
    init = make_selector(name).get_params()
    assert all(init[k] == v for k, v in defaults.items())  # the space's defaults are the selector's
    for config in space.sample_configuration(5):
        params = params_from_config(name, config)
        assert all(not isinstance(v, np.generic) for v in params.values())
        sel = make_selector(name, **params)
        # keep the fit short: budgets (epochs) and training-set size are not tuned here
        shrink = {k: v for k, v in {"epochs": 1, "n_batches": 4}.items() if k in sel.get_params()}
        sel.set_params(**shrink).fit(datasets, cost)
        assert sel.predict_proba(datasets[0].query(16, split="test")).sum() == pytest.approx(1.0)


def test_space_of_unknown_selector() -> None:
    with pytest.raises(SelectorError, match="no hyperparameter space"):
        selector_space("random")
