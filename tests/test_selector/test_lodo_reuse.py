"""selector.lodo: what leave-one-dataset-out saves gives the rows it gave without saving.

- One fit per training set (:class:`selector.lodo._SharedFits`): folds of one group with the
  same training datasets, columns and members share a registered selector's fit. That is sound
  because every registered selector fits deterministically given its seed and its predictions
  leave it as they found it (checked below for each), and the rows with shared fits are those of a
  fit per fold (all registered selectors on a collection with two groups of two datasets).
- The confidence read off the probabilities already computed (:meth:`selector.base.Selector.confidence_from`)
  is the selector's own ``confidence``, with one ``predict_proba`` per query.
- The probes of training datasets kept by :func:`selector.measures.fit_softmax_probe` (``reuse``)
  are those a fit gives, copied out, and the cache holds no more than its bound.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector import lodo, measures
from selector.members import trivial_members
from selector.registry import list_selectors
from selector.specs import SelectorSpec

pytestmark = pytest.mark.usefixtures("torch_threads_1")

NAMES = ["a1", "a2", "b1", "b2", "c", "d", "e"]
SOURCES = {"a1": "a", "a2": "a", "b1": "b", "b2": "b"}   # two groups of two: 7 folds, 5 training sets
SMALL: dict[str, dict[str, Any]] = {   # quick settings for the selectors that train networks or cluster
    "kmeans": {"n_clusters": 2, "n_init": 1, "max_iter": 20},
    "mlp-vote": {"neurons": 8, "epochs": 3, "batch_size": 16, "lr": 1e-2},
    "precalc-mlp": {"batch_size": 8, "n_batches": 16, "neurons": 16, "epochs": 3, "sgd_batch_size": 16},
    "vae-ttest": {"latent_dim": 2, "hidden": 8, "epochs": 3, "batch_size": 16, "lr": 1e-2},
    "cost-sensitive": {"n_components": 2},
    "otdd": {"n_samples": 24},
}


def specs() -> list[SelectorSpec]:
    return [SelectorSpec(n, SMALL.get(n, {}), label=n) for n in list_selectors()]


def features(dim: int = 6) -> list[DatasetFeatures]:
    """One cluster per dataset (siblings near each other), three classes, descriptors."""
    out = []
    for i, name in enumerate(NAMES):
        rng = np.random.default_rng(i)
        centre = np.zeros(dim, np.float32)
        centre[i % dim] = 3.0 + i // dim
        if name.endswith("2"):
            centre[(i - 1) % dim] = 1.0
        labels = np.eye(3, dtype=np.float32)[np.arange(36) % 3]
        side = 16 * (1 + i % 3)
        desc = {"train_samples": 100 * (i + 1), "test_samples": 50, "classes": 3 + i, "height": side,
                "width": side, "channels": 3 if i % 2 else 1, "variable_size": 0, "frames": 1 + (i == 4),
                "multilabel": 0}
        out.append(DatasetFeatures(name, centre + rng.normal(size=(36, dim)).astype(np.float32), labels,
                                   centre + rng.normal(size=(12, dim)).astype(np.float32), desc,
                                   SOURCES.get(name, name), {"backbone": "hand-made"}))
    return out


def cost_matrix() -> CostMatrix:
    alc = np.random.default_rng(5).uniform(0.2, 0.9, (len(NAMES), len(NAMES)))
    return CostMatrix(list(NAMES), list(NAMES), alc, [["ok"] * len(NAMES) for _ in NAMES], seeds=[0])


def queries(data: list[DatasetFeatures]) -> list[Query]:
    return [d.query(12, split="train", seed=s) for d in data for s in (1, 2, 3)]


def snapshot(obj: Any, depth: int = 0) -> Any:
    """A selector's state as plain, comparable values (arrays by their bytes, generators by their
    state, other objects by their attributes)."""
    if depth > 8:
        return repr(type(obj))
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes())
    if isinstance(obj, np.random.Generator):
        return ("generator", snapshot(obj.bit_generator.state, depth + 1))
    if isinstance(obj, float) and np.isnan(obj):
        return "nan"
    if isinstance(obj, (str, bytes, int, float, bool, type(None), np.generic)):
        return obj
    if isinstance(obj, dict):
        return {str(k): snapshot(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [snapshot(v, depth + 1) for v in obj]
    if hasattr(obj, "__dict__"):
        return (type(obj).__name__, snapshot(vars(obj), depth + 1))
    return repr(obj)


def answers(sel: Any, qs: list[Query]) -> list[Any]:
    """Everything leave-one-dataset-out asks a fitted selector, as plain values."""
    out = []
    novelty = getattr(sel, "novelty", None)
    for q in qs:
        out.append([snapshot(np.asarray(sel.predict_proba(q), dtype=float)), sel.predict(q), sel.rank(q),
                    sel.confidence(q), float(novelty(q)) if callable(novelty) else None])
    return out


@pytest.mark.parametrize("spec", specs(), ids=lambda s: s.label)
def test_registered_selectors_fit_deterministically_and_predict_purely(spec, monkeypatch):
    """What sharing a fit relies on (:func:`selector.lodo._reusable`): two fits with one seed are
    the same state, and asking a fitted selector changes nothing in it (asked again, in another
    order, it answers the same). Every probe is fitted anew (a cache that keeps nothing)."""
    monkeypatch.setattr(measures, "_PROBES", measures._ProbeCache(max_bytes=0))
    data, cost = features(), cost_matrix()
    train, held = [d for d in data if d.source != "a"], [d for d in data if d.name == "a1"]
    sel, again = (lodo._fit(spec, train, cost, lodo.lodo_folds(data, cost)[0][0], 3, trivial_members(cost))
                  for _ in range(2))
    assert snapshot(vars(sel)) == snapshot(vars(again))
    qs = queries(held)
    before = snapshot(vars(sel))
    first = answers(sel, qs)
    assert snapshot(vars(sel)) == before, f"{spec.label}: asking it changed its state"
    assert answers(sel, qs[::-1])[::-1] == first and answers(again, qs) == first


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows without their timings; NaN as a string (NaN != NaN)."""
    return [{k: "nan" if isinstance(v, float) and np.isnan(v) else v for k, v in r.items()
             if "seconds" not in k} for r in rows]


def test_shared_fits_give_the_rows_of_a_fit_per_fold(monkeypatch):
    data, cost = features(), cost_matrix()
    calls: list[str] = []
    real_fit = lodo._fit

    def counting_fit(spec, *args, **kwargs):
        calls.append(spec.label)
        return real_fit(spec, *args, **kwargs)

    monkeypatch.setattr(lodo, "_fit", counting_fit)
    args = {"query_size": 12, "n_queries": 2, "seed": 1}
    shared = lodo.leave_one_dataset_out(specs(), data, cost, **args)
    shared_calls = list(calls)
    calls.clear()
    with monkeypatch.context() as m:  # a fit per fold, every probe fitted anew (a cache that keeps nothing)
        m.setattr(lodo, "_reusable", lambda spec, sel: False)
        m.setattr(measures, "_PROBES", measures._ProbeCache(max_bytes=0))
        apart = lodo.leave_one_dataset_out(specs(), data, cost, **args)
    assert len(calls) == len(NAMES) * len(specs())
    # the siblings a1, a2 (and b1, b2) share a training set: 5 fits instead of 7, the oracle
    # (evaluation-only: its fit reads the held-out column) fitted for every fold
    assert shared_calls.count("oracle") == len(NAMES)
    assert {shared_calls.count(s.label) for s in specs() if s.label != "oracle"} == {5}
    assert not [r for r in shared.rows if r["error"]], [r["error"] for r in shared.rows if r["error"]]
    assert _plain(shared.rows) == _plain(apart.rows)
    assert _plain(shared.queries) == _plain(apart.queries)
    assert shared.summary["per_selector"].keys() == apart.summary["per_selector"].keys()
    # a shared fit keeps the seconds of its one fit
    for label in ("logme", "mlp-vote"):
        secs = {r["dataset"]: r["fit_seconds"] for r in shared.rows if r["selector"] == label}
        assert secs["a1"] == secs["a2"] and secs["b1"] == secs["b2"] and secs["a1"] > 0


def test_shared_fits_are_dropped_after_their_last_fold():
    data, cost = features(), cost_matrix()
    mm = trivial_members(cost)
    folds = lodo.lodo_folds(data, cost)[0]
    fits = lodo._SharedFits(folds)
    spec = SelectorSpec("nearest-centroid")
    by_name = {d.name: d for d in data}
    for fold in folds:
        sel, _ = fits.fit(spec, [by_name[c] for c in fold.candidates], cost, fold, 0, mm)
        if fold.target in ("a1", "b1"):
            assert len(fits._fits) == 1 and fits.fit(spec, [], cost, fold, 0, mm)[0] is sel
        fits.done(fold)
        assert not fits._fits or fold.target in ("a1", "b1")
    assert not fits._fits


@pytest.mark.parametrize("spec", specs(), ids=lambda s: s.label)
def test_confidence_from_the_probabilities_is_the_selectors_own(spec, monkeypatch):
    data, cost = features(), cost_matrix()
    train, held = [d for d in data if d.source != "a"], [d for d in data if d.name == "a1"]
    sel = lodo._fit(spec, train, cost, lodo.lodo_folds(data, cost)[0][0], 0, trivial_members(cost))
    for q in queries(held):
        p = np.asarray(sel.predict_proba(q), dtype=float)
        assert sel.confidence_from(q, p) == sel.confidence(q)
    if spec.name in ("logme", "leep", "nce", "hscore", "gbc", "otdd", "task2vec"):
        # the measures' margin is read off p: one predict_proba per query, none for the confidence
        asked = []
        real = type(sel).predict_proba
        monkeypatch.setattr(type(sel), "predict_proba", lambda self, q: asked.append(q) or real(self, q))
        fold = lodo.lodo_folds(data, cost)[0][0]
        qs = queries(held)
        lodo._ask(sel, spec.label, qs, fold, trivial_members(cost), set())
        assert len(asked) == len(qs)


def test_kept_probes_are_those_a_fit_gives(monkeypatch):
    monkeypatch.setattr(measures, "_PROBES", measures._ProbeCache(max_bytes=2 ** 20))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5)).astype(np.float32)
    y = np.eye(3, dtype=np.float32)[np.arange(40) % 3]
    cold = measures.fit_softmax_probe(x, y, l2=0.1, max_iter=50)
    assert measures.probe_seconds_saved() == 0.0 and not measures._PROBES._probes  # reuse is asked for
    first = measures.fit_softmax_probe(x, y, l2=0.1, max_iter=50, reuse=True)
    (_, _, seconds), = measures._PROBES._probes.values()
    first[0][:] = 0.0  # the caller's arrays are its own
    again = measures.fit_softmax_probe(x, y, l2=0.1, max_iter=50, reuse=True)
    assert measures.probe_seconds_saved() == seconds > 0
    for a, b in zip(again, cold, strict=True):
        assert a.tobytes() == b.tobytes()
    # other inputs are other probes
    measures.fit_softmax_probe(x, y, l2=0.2, max_iter=50, reuse=True)
    measures.fit_softmax_probe(x[::-1].copy(), y, l2=0.1, max_iter=50, reuse=True)
    assert len(measures._PROBES._probes) == 3 and measures.probe_seconds_saved() == seconds
    e = measures.task2vec(x, y, reuse=True)
    assert measures.task2vec(x, y, reuse=True).tobytes() == e.tobytes() == measures.task2vec(x, y).tobytes()


def test_the_probe_cache_is_bounded():
    cache = measures._ProbeCache(max_bytes=3 * (4 * 5 + 4) * 8)  # three probes of 4 classes in 5 features
    probes = {bytes([i]): (np.full((4, 5), float(i)), np.full(4, float(i))) for i in range(5)}
    for k in list(probes)[:3]:
        cache.put(k, *probes[k], seconds=1.0)
    assert cache.get(b"\x00") is not None  # used: the least recently used is now b"\x01"
    cache.put(b"\x03", *probes[b"\x03"], seconds=1.0)
    assert list(cache._probes) == [b"\x02", b"\x00", b"\x03"] and cache.get(b"\x01") is None
    cache.put(b"\x04", np.zeros((40, 5)), np.zeros(40), seconds=1.0)  # larger than the bound: not kept
    assert len(cache._probes) == 3 and cache._bytes <= cache.max_bytes
    assert measures._ProbeCache.key(np.array([object()]), np.zeros(1), 0.1, 10) is None
