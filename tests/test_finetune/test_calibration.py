"""Calibrated blending of a probe's and a network's probabilities (finetune.calibration),
and the ridge probe's leave-one-out and leave-pair-out choices for datasets too small for a validation split."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autodl.scoring import nauc
from finetune.calibration import blend, calibrate, fit_temperature
from finetune.probe import RidgeProbe


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _labels(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    y = np.zeros((n, k))
    y[np.arange(n), rng.integers(0, k, n)] = 1
    return y


def test_temperature_recovers_the_sharpening_that_was_applied():
    rng = np.random.default_rng(0)
    y = _labels(400, 4, rng)
    true = _softmax(2.0 * y + rng.normal(0, 1, y.shape))  # calibrated-ish scores
    over = _softmax(np.log(true) * 5.0)  # the same ranking, five times too confident
    t = fit_temperature(over, y)
    assert 2.5 < t < 10.0  # it flattens the over-confident probabilities back
    # a row-wise renormalisation moves per-column ranks only a little
    assert nauc(y, calibrate(over, t)) == pytest.approx(nauc(y, over), abs=0.01)


def test_blend_is_not_chosen_when_the_network_alone_is_better():
    rng = np.random.default_rng(1)
    y = _labels(200, 3, rng)
    net = _softmax(6.0 * y)  # perfect on validation
    probe = _softmax(rng.normal(0, 1, y.shape))  # noise
    assert blend(net, net, probe, probe, y) is None


def test_blend_is_chosen_when_two_views_complement_each_other():
    rng = np.random.default_rng(2)
    y = _labels(300, 3, rng)
    a = _softmax(1.5 * y + rng.normal(0, 1, y.shape))
    b = _softmax(0.05 * (1.5 * y + rng.normal(0, 1, y.shape)))  # as good, far less confident
    mixed = blend(a, a, b, b, y)
    assert mixed is not None
    val, test, score = mixed
    assert score > nauc(y, a) and np.allclose(val, test) and np.allclose(val.sum(1), 1.0)


def test_plain_mean_would_be_dominated_by_the_confident_model():
    """Why calibration: the unscaled mean follows the sharper model's ranking."""
    rng = np.random.default_rng(3)
    y = _labels(300, 3, rng)
    good_but_flat = _softmax(0.02 * (3.0 * y + rng.normal(0, 1, y.shape)))
    bad_but_sharp = _softmax(20.0 * (0.3 * y + rng.normal(0, 1, y.shape)))
    plain = nauc(y, 0.5 * (good_but_flat + bad_but_sharp))
    mixed = blend(good_but_flat, good_but_flat, bad_but_sharp, bad_but_sharp, y)
    calibrated = mixed[2] if mixed is not None else nauc(y, good_but_flat)
    assert calibrated > plain + 0.05


def test_multilabel_calibration_works_per_label():
    rng = np.random.default_rng(4)
    y = (rng.random((200, 3)) < 0.4).astype(float)
    p = 1 / (1 + np.exp(-(8.0 * (y - 0.5) + rng.normal(0, 2, y.shape))))
    t = fit_temperature(p, y, multilabel=True)
    q = calibrate(p, t, multilabel=True)
    assert q.shape == p.shape and ((q > 0) & (q < 1)).all()


def test_ridge_leave_one_out_matches_refitting_without_each_example():
    """The closed-form leave-one-out predictions equal refits without each example: ridge
    with an unpenalised intercept (the features standardised once, on all examples)."""
    rng = np.random.default_rng(5)
    n, d, k = 12, 5, 3
    x = torch.from_numpy(rng.normal(0, 1, (n, d))).double()
    y = torch.zeros(n, k, dtype=torch.float64)
    y[torch.arange(n), torch.from_numpy(rng.integers(0, k, n))] = 1
    probe = RidgeProbe(alphas=(10.0,)).fit(x, y)
    z = ((x.float() - probe.mean_) / probe.scale_).double()
    yy = y * 2 - 1
    lam = 10.0 * (1 + d / n)
    for i in range(n):
        keep = torch.arange(n) != i
        zm, ym = z[keep].mean(0), yy[keep].mean(0)
        zi, yi = z[keep] - zm, yy[keep] - ym
        coef = torch.linalg.solve(zi.T @ zi + lam * torch.eye(d, dtype=torch.float64), zi.T @ yi)
        expected = torch.softmax(4 * ((z[i] - zm) @ coef + ym), 0).numpy()
        assert np.allclose(probe.loo_proba_[i], expected, atol=1e-4), i


def test_ridge_without_validation_picks_its_penalty_by_leave_one_out():
    rng = np.random.default_rng(6)
    n, d = 20, 50
    y = torch.zeros(n, 2)
    cls = torch.from_numpy(rng.integers(0, 2, n))
    y[torch.arange(n), cls] = 1
    x = torch.from_numpy(rng.normal(0, 1, (n, d))).float() + cls[:, None].float() * 0.8
    probe = RidgeProbe().fit(x, y)
    assert probe.loo_proba_.shape == (n, 2) and probe.alpha_ in RidgeProbe().alphas
    assert probe.validation_nauc_ == pytest.approx(nauc(y.numpy(), probe.loo_proba_))


def test_leave_pair_out_predictions_equal_refits_without_both_examples():
    """The closed-form leave-pair-out predictions equal refits without the pair (intercept and
    centring refitted, the standardisation kept), for every pair whose labels differ."""
    from finetune.probe import differing_pairs

    rng = np.random.default_rng(7)
    n, d, k = 10, 6, 3
    x = torch.from_numpy(rng.normal(0, 1, (n, d))).double()
    y = torch.zeros(n, k, dtype=torch.float64)
    y[torch.arange(n), torch.from_numpy(rng.integers(0, k, n))] = 1
    probe = RidgeProbe(alphas=(3.0,), pairs=True).fit(x, y)
    z = ((x.float() - probe.mean_) / probe.scale_).double()
    yy = y * 2 - 1
    lam = 3.0 * (1 + d / n)
    pairs = differing_pairs(y.numpy())
    assert np.array_equal(probe.pairs_, pairs) and len(pairs) > 0
    assert all((y[i] != y[j]).any() for i, j in pairs)  # only pairs whose labels differ
    for p, (i, j) in enumerate(pairs):
        keep = (torch.arange(n) != i) & (torch.arange(n) != j)
        zm, ym = z[keep].mean(0), yy[keep].mean(0)
        zi, yi = z[keep] - zm, yy[keep] - ym
        coef = torch.linalg.solve(zi.T @ zi + lam * torch.eye(d, dtype=torch.float64), zi.T @ yi)
        for side, e in enumerate((i, j)):
            expected = torch.softmax(4 * ((z[e] - zm) @ coef + ym), 0).numpy()
            assert np.allclose(probe.pair_proba_[p, side], expected, atol=1e-4), (i, j)


def test_leave_pair_out_is_unbiased_where_leave_one_out_is_not():
    """On features that carry no information about a few examples per class, the pooled
    leave-one-out NAUC sits far below 0 (every held-out example lowers its own class's
    intercept); the leave-pair-out one is near 0, as it should be (Airola et al. 2011)."""
    rng = np.random.default_rng(8)
    n, k, reps = 24, 8, 20
    loo, lpo = [], []
    for _ in range(reps):
        y = torch.zeros(n, k)
        y[torch.arange(n), torch.arange(n) % k] = 1  # 3 examples per class
        x = torch.from_numpy(rng.normal(0, 1, (n, 50))).float()
        loo.append(RidgeProbe(alphas=(100.0,)).fit(x, y).validation_nauc_)
        lpo.append(RidgeProbe(alphas=(100.0,), pairs=True).fit(x, y).validation_nauc_)
    assert np.mean(loo) < -0.3
    assert abs(np.mean(lpo)) < 0.1


def test_leave_pair_out_nauc_counts_ordered_pairs_per_class():
    """Per class, the share of (positive, negative) pairs whose positive scores higher, ties
    half; classes without such a pair are skipped."""
    from finetune.probe import leave_pair_out_nauc

    labels = np.array([[1, 0], [0, 1], [1, 0]])
    pairs = np.array([[0, 1], [1, 2]])
    # pair (0, 1): example 0 (class 0) scores higher on class 0, and example 1 on class 1
    # pair (1, 2): example 2 (class 0) ties example 1 on class 0, and example 1 scores lower on class 1
    proba = np.array([[[0.9, 0.1], [0.2, 0.8]], [[0.5, 0.3], [0.5, 0.6]]])
    assert leave_pair_out_nauc(pairs, proba, labels) == pytest.approx(np.mean([2 * 0.75 - 1, 2 * 0.5 - 1]))
    assert leave_pair_out_nauc(np.zeros((0, 2), dtype=int), np.zeros((0, 2, 2)), labels) == 0.0
