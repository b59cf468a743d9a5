"""Putting two models' probabilities on one scale before blending them.

A ridge probe's scores and a network's softmax are calibrated differently (the probe's
are squashed by a fixed factor, the network's sharpened or flattened by its temperature
``tau`` and by training), so the plain mean of the two is dominated by whichever is more
confident, not by whichever is right. Each is first recalibrated by a single
temperature fitted on the validation split, minimising the negative log-likelihood
(temperature scaling: Guo, Pleiss, Sun & Weinberger, "On calibration of modern neural
networks", ICML 2017), applied to log-probabilities so that it serves any model that
outputs probabilities: ``p_T ∝ p ** (1 / T)`` (per label, on the log-odds, for
multi-label outputs). The blend is the mean of the two calibrated probabilities, and it
is used only when its validation NAUC is strictly higher than the network's alone.
"""

from __future__ import annotations

import numpy as np

TEMPERATURES = np.exp(np.linspace(np.log(0.05), np.log(20.0), 49))
"""The temperatures tried (log-spaced, 0.05 to 20)."""

_EPS = 1e-7


def _log_scores(p: np.ndarray, multilabel: bool) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p / (1 - p)) if multilabel else np.log(p)


def _apply(scores: np.ndarray, temperature: float, multilabel: bool) -> np.ndarray:
    z = scores / temperature
    if multilabel:
        return 1.0 / (1.0 + np.exp(-z))
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(p: np.ndarray, y: np.ndarray, multilabel: bool) -> float:
    p = np.clip(p, _EPS, 1 - _EPS)
    if multilabel:
        return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())
    y = y / np.maximum(y.sum(axis=1, keepdims=True), _EPS)
    return float(-(y * np.log(p)).sum(axis=1).mean())


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray, multilabel: bool = False) -> float:
    """The temperature (among :data:`TEMPERATURES`) that minimises the negative
    log-likelihood of ``labels`` under the recalibrated ``probabilities``."""
    scores = _log_scores(probabilities, multilabel)
    y = np.asarray(labels, dtype=np.float64)
    losses = [_nll(_apply(scores, t, multilabel), y, multilabel) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def calibrate(probabilities: np.ndarray, temperature: float, multilabel: bool = False) -> np.ndarray:
    """``probabilities`` recalibrated by ``temperature``."""
    return _apply(_log_scores(probabilities, multilabel), temperature, multilabel)


def blend(net_val: np.ndarray, net_test: np.ndarray, probe_val: np.ndarray, probe_test: np.ndarray,
          y_val: np.ndarray, multilabel: bool = False) -> tuple[np.ndarray, np.ndarray, float] | None:
    """The mean of the network's and the probe's calibrated probabilities, if it is better.

    Returns
    -------
    (validation probabilities, test probabilities, validation NAUC) of the blend when its
    validation NAUC is strictly higher than the network's alone; None otherwise.
    """
    from autodl.scoring import nauc

    t_net = fit_temperature(net_val, y_val, multilabel)
    t_probe = fit_temperature(probe_val, y_val, multilabel)
    val = 0.5 * (calibrate(net_val, t_net, multilabel) + calibrate(probe_val, t_probe, multilabel))
    score = nauc(y_val, val)
    if not score > nauc(y_val, net_val):
        return None
    test = 0.5 * (calibrate(net_test, t_net, multilabel) + calibrate(probe_test, t_probe, multilabel))
    return val, test, score
