"""Scoring of AutoDL predictions: NAUC, accuracy, ALC and the learning curve.

This module reimplements the scoring program of the ChaLearn AutoDL challenge
(the organizers' ``score.py``, version v20191219, from the starting kit
``autodl_starting_kit_stable``), described in

    Z. Liu, A. Pavao, Z. Xu, S. Escalera, F. Ferreira, I. Guyon, S. Hong, F. Hutter,
    R. Ji, J. C. S. Jacques Junior, G. Li, M. Lindauer, Z. Luo, M. Madadi, T. Nierhoff,
    K. Niu, C. Pan, D. Stoll, S. Treguer, J. Wang, P. Wang, C. Wu, Y. Xiong, A. Zela,
    Y. Zhang. "Winning solutions and post-challenge analyses of the ChaLearn AutoDL
    challenge 2019", IEEE TPAMI 43(9), 2021.

It reproduces, to within 1e-9 on the reference cases in ``shared/scoring_vectors``:

- the per-prediction score NAUC = 2*AUC - 1, the AUC averaged (unweighted) over the
  classes whose solution column holds both classes, each AUC computed from tied ranks
  (:func:`nauc`);
- the accuracy, reported only when every solution row is one-hot (:func:`accuracy`);
- the Area under the Learning Curve (ALC): the step function of the most recent NAUC
  over the transformed time t~ = log(1 + t/t0) / log(1 + T/t0), starting at 0 and held
  from the last prediction to t~ = 1 (:func:`alc`). Like the organizers' scorer, a
  prediction stamped after the budget T still counts: its step starts beyond t~ = 1
  and the final step then has a negative width.

This module holds the metrics and the area only; reading an ingestion output folder,
scoring it and the ``scores.txt`` the organizers write are in :mod:`autodl.score_files`,
the learning-curve figure in :mod:`autodl.plots`.

One documented difference: when no solution column holds both classes, the organizers'
scorer takes the mean of an empty array (NaN); :func:`nauc` returns 0.0 instead and
logs a warning, so that an ALC is always a number.

A second metric, ``"bac"``, is the one the organizers' first AutoDL scorer ranked by in the
beta tests of 2018 (Z. Liu et al., "AutoDL challenge design and beta tests: towards
automatic deep learning", CiML workshop at NeurIPS 2018; the scorer ``score.py``
``scoring_version = 1.0`` of ``zhengying-liu/autodl``, commit 1ee37ea "Ready for beta
testing", 2018-10-08, and its ``evaluation.html``): binary predictions, the normalized
balanced accuracy 2*BAC - 1 of each prediction (:func:`nbac`), and the area under the
curve of those scores over log time by the trapezoid rule (:func:`learning_curve_area`
with ``rule="trapezoid"``). :func:`prediction_score` (and
:func:`autodl.score_files.score_folder`) takes ``metric="alc"`` (the default, the challenge's)
or ``metric="bac"``; :data:`METRICS` lists them. The organizers replaced it by
the NAUC, the step function and ``t0`` in May 2019 (commit 922b725).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

logger = logging.getLogger(__name__)

#: The organizers' ``t0`` for the AutoCV challenges (seconds).
DEFAULT_T0 = 60.0
#: Added to the L1 norm of each prediction row before normalising (organizers' value).
ACCURACY_EPSILON = 1e-15
#: The metrics :func:`autodl.score_files.score_folder` offers: the challenge's ALC (NAUC, step
#: function) and the 2018 beta tests' area under the 2*BAC - 1 curve (trapezoid rule).
METRICS: tuple[str, ...] = ("alc", "bac")
#: How the learning curve of each metric is integrated (see :func:`learning_curve_area`).
CURVE_RULES: dict[str, str] = {"alc": "step", "bac": "trapezoid"}
#: What each metric's per-prediction score is called (figure axes, reports).
SCORE_NAMES: dict[str, str] = {"alc": "2*AUC-1", "bac": "2*BAC-1"}
#: What each metric's area is called (figure legends, the command line).
METRIC_NAMES: dict[str, str] = {"alc": "ALC", "bac": "BAC-ALC"}
#: Threshold at and above which a multi-label (or one-column) score counts as a positive
#: decision, as in the organizers' ``libscores.binarize_predictions`` and their 2018 scorer.
BINARY_THRESHOLD = 0.5


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------
def tiedrank(a: np.ndarray | Sequence[float]) -> np.ndarray:
    """Ranks (base 1) of the values of a 1-D array, ties given their average rank.

    Parameters
    ----------
    a
        A 1-D array of values.

    Returns
    -------
    numpy.ndarray
        Float ranks, same length as ``a``; ``tiedrank([3, 1, 1]) == [3, 1.5, 1.5]``.
    """
    return rankdata(np.asarray(a, dtype=np.float64).ravel(), method="average")


def as_2d(x: np.ndarray | Sequence[Any], name: str) -> np.ndarray:
    """``x`` as a float64 matrix: a 1-D ``x`` becomes one column; ValueError naming ``name``
    if it has more than two dimensions."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 1)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    return arr


def _check_shapes(solution: np.ndarray, prediction: np.ndarray) -> None:
    if solution.shape != prediction.shape:
        raise ValueError(f"prediction has shape {prediction.shape}; the solution has shape "
                         f"{solution.shape}")


def valid_columns(solution: np.ndarray) -> np.ndarray:
    """Indices of the solution columns that hold both classes.

    A column is left out when its sum is close to 0 (no positive) or to the number of rows
    (no negative), compared with :func:`numpy.isclose` as the organizers do.

    Parameters
    ----------
    solution
        ``(n_examples, n_classes)`` array of 0/1 labels.

    Returns
    -------
    numpy.ndarray
        Integer indices of the valid columns.
    """
    solution = as_2d(solution, "solution")
    col_sum = solution.sum(axis=0)
    invalid = np.isclose(col_sum, 0) | np.isclose(col_sum, solution.shape[0])
    return np.flatnonzero(~invalid)


def nauc(solution: np.ndarray, prediction: np.ndarray) -> float:
    """Normalized AUC, 2*AUC - 1, averaged over the classes that hold both labels.

    Per column, AUC = (sum of the ranks of the positives - npos*(npos+1)/2) / (npos*nneg),
    the ranks being the tied ranks of the prediction column (positives: solution == 1,
    negatives: solution < 1, as in the organizers' ``autodl_auc``). Columns whose solution
    is all 0 or all 1 are skipped (see :func:`valid_columns`).

    Parameters
    ----------
    solution
        ``(n_examples, n_classes)`` array of 0/1 labels (a 1-D array is one column).
    prediction
        Array of scores of the same shape; any real values (only their order matters).

    Returns
    -------
    float
        2 * mean(AUC) - 1 in [-1, 1]. When no column is valid the organizers' scorer
        gives NaN; this returns 0.0 (the score of a random guess) and logs a warning.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    solution = as_2d(solution, "solution")
    prediction = as_2d(prediction, "prediction")
    _check_shapes(solution, prediction)
    cols = valid_columns(solution)
    if len(cols) < solution.shape[1]:
        logger.debug("%d of %d solution columns hold only one class; they are ignored in the NAUC",
                    solution.shape[1] - len(cols), solution.shape[1])
    if len(cols) == 0:
        logger.warning("no solution column holds both classes; NAUC is undefined and taken as 0.0")
        return 0.0
    aucs = np.empty(len(cols))
    for j, c in enumerate(cols):
        ranks = tiedrank(prediction[:, c])
        s = solution[:, c]
        pos = s == 1
        npos = float(np.sum(pos))
        nneg = float(np.sum(s < 1))
        aucs[j] = (np.sum(ranks[pos]) - npos * (npos + 1) / 2) / (nneg * npos)
    return float(2 * np.mean(aucs) - 1)


def is_multiclass(solution: np.ndarray) -> bool:
    """Whether every solution row is one-hot (one entry of absolute value 1, the rest 0).

    Same test as the organizers' ``is_multiclass``: the L1 norm and the max norm of each
    row both equal 1.
    """
    solution = as_2d(solution, "solution")
    if solution.size == 0:
        return False
    a = np.abs(solution)
    return bool(np.all((a.sum(axis=1) == 1) & (a.max(axis=1) == 1)))


def accuracy(solution: np.ndarray, prediction: np.ndarray) -> float | None:
    """Soft accuracy of a multi-class prediction, or None for multi-label solutions.

    Each prediction row is divided by its L1 norm (plus ``1e-15``, the organizers'
    epsilon); the accuracy is the mean over rows of ``sum(solution * normalized)``, i.e. the
    normalized score given to the true class.

    Parameters
    ----------
    solution
        ``(n_examples, n_classes)`` array of 0/1 labels.
    prediction
        Array of scores of the same shape.

    Returns
    -------
    float or None
        The accuracy in [0, 1] for non-negative predictions; None when some solution row
        is not one-hot (the organizers do not report accuracy then).

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    solution = as_2d(solution, "solution")
    prediction = as_2d(prediction, "prediction")
    _check_shapes(solution, prediction)
    if not is_multiclass(solution):
        return None
    normalized = prediction / (np.sum(np.abs(prediction), axis=1, keepdims=True) + ACCURACY_EPSILON)
    return float(np.sum(solution * normalized) / solution.shape[0])


def check_metric(metric: str) -> str:
    """``metric`` itself; ValueError if it is not one of :data:`METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r}; expected one of {', '.join(repr(m) for m in METRICS)}")
    return metric


def binarize_predictions(prediction: np.ndarray, multiclass: bool) -> np.ndarray:
    """Turn scores into 0/1 decisions, as the organizers' ``libscores.binarize_predictions``.

    Parameters
    ----------
    prediction
        ``(n_examples, n_classes)`` array of scores (a 1-D array is one column).
    multiclass
        True for a task with exactly one label per example: each row becomes the one-hot
        vector of its largest score (ties go to the first of the tied columns, as
        :func:`numpy.argmax`). False: each score ``>= 0.5`` becomes 1, every other 0. A
        one-column prediction is always thresholded.

    Returns
    -------
    numpy.ndarray
        ``float64`` 0/1 array of the same shape.
    """
    prediction = as_2d(prediction, "prediction")
    if multiclass and prediction.shape[1] > 1:
        out = np.zeros_like(prediction)
        out[np.arange(prediction.shape[0]), np.argmax(prediction, axis=1)] = 1.0
        return out
    return (prediction >= BINARY_THRESHOLD).astype(np.float64)


def balanced_accuracy(solution: np.ndarray, prediction: np.ndarray,
                      multiclass: bool | None = None) -> float:
    """Mean balanced accuracy of binary decisions over the labels that hold both classes.

    The scores are first turned into decisions by :func:`binarize_predictions` (the argmax
    one-hot when the task is multi-class, the threshold 0.5 otherwise). Per label column,
    ``BAC = (TPR + TNR) / 2`` with ``TPR = TP / (TP + FN)`` and ``TNR = TN / (TN + FP)``
    (positives: solution == 1, negatives: the rest). The result is the unweighted mean over
    the columns that hold both a positive and a negative (for 0/1 solutions the columns of
    :func:`valid_columns`, as for the NAUC); the others are left out, where the organizers'
    2018 scorer kept them with a rate of 1 for the missing class.

    Parameters
    ----------
    solution
        ``(n_examples, n_classes)`` array of 0/1 labels (a 1-D array is one column).
    prediction
        Array of scores of the same shape.
    multiclass
        Whether each example has exactly one label; by default :func:`is_multiclass` of the
        solution.

    Returns
    -------
    float
        The mean BAC in [0, 1]; 0.5 (a random guess) with a warning when no column holds
        both classes.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    solution = as_2d(solution, "solution")
    prediction = as_2d(prediction, "prediction")
    _check_shapes(solution, prediction)
    if multiclass is None:
        multiclass = is_multiclass(solution)
    positive = solution == 1
    cols = np.flatnonzero(positive.any(axis=0) & (~positive).any(axis=0))
    if len(cols) == 0:
        logger.warning("no solution column holds both classes; the balanced accuracy is undefined "
                       "and taken as 0.5")
        return 0.5
    decisions = binarize_predictions(prediction, multiclass)[:, cols] == 1
    pos = positive[:, cols]
    tpr = np.sum(decisions & pos, axis=0) / np.sum(pos, axis=0)
    tnr = np.sum(~decisions & ~pos, axis=0) / np.sum(~pos, axis=0)
    return float(np.mean((tpr + tnr) / 2))


def nbac(solution: np.ndarray, prediction: np.ndarray, multiclass: bool | None = None) -> float:
    """Normalized balanced accuracy, 2 * :func:`balanced_accuracy` - 1, in [-1, 1].

    The per-prediction score of the ``"bac"`` metric: 0 for a random guess and for constant
    decisions, 1 for perfect ones, on the NAUC's scale. The organizers' 2018 scorer
    (``autodl_bac``) drew and integrated this normalized value (its figure's axis reads
    "score (2*BAC - 1)"), though their evaluation page speaks of the mean balanced accuracy.
    Parameters and errors as :func:`balanced_accuracy`.
    """
    return 2.0 * balanced_accuracy(solution, prediction, multiclass) - 1.0


def prediction_score(solution: np.ndarray, prediction: np.ndarray, metric: str = "alc") -> float:
    """The score one prediction adds to the learning curve of ``metric``.

    Parameters
    ----------
    solution, prediction
        As for :func:`nauc`.
    metric
        ``"alc"``: :func:`nauc`; ``"bac"``: :func:`nbac`.

    Returns
    -------
    float
        The height of the learning curve at this prediction, in [-1, 1].

    Raises
    ------
    ValueError
        If ``metric`` is unknown or the shapes differ.
    """
    if check_metric(metric) == "bac":
        return nbac(solution, prediction)
    return nauc(solution, prediction)


# --------------------------------------------------------------------------------------
# Learning curve
# --------------------------------------------------------------------------------------
def transform_time(t: float | np.ndarray, T: float, t0: float = DEFAULT_T0) -> float | np.ndarray:
    """Transformed time t~ = log(1 + t/t0) / log(1 + T/t0).

    Maps ``[0, T]`` onto ``[0, 1]``; times after ``T`` map beyond 1.

    Parameters
    ----------
    t
        Time(s) since the start of ingestion, in seconds.
    T
        The time budget in seconds (> 0).
    t0
        The time-scale constant in seconds (> 0): 60 in AutoCV, 20 in AutoCV2.
    """
    if T <= 0:
        raise ValueError(f"time budget T={T}; expected T > 0")
    if t0 <= 0:
        raise ValueError(f"t0={t0}; expected t0 > 0")
    if np.isscalar(t):
        return math.log(1 + float(t) / t0) / math.log(1 + T / t0)
    return np.log(1 + np.asarray(t, dtype=np.float64) / t0) / math.log(1 + T / t0)


def curve_points(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
                  t0: float) -> tuple[list[float], list[float]]:
    """X and Y of the organizers' step curve: origin, one point per prediction, end at 1."""
    if len(timestamps) != len(scores):
        raise ValueError(f"{len(timestamps)} timestamps but {len(scores)} scores; expected as many")
    xs = [0.0] + [float(transform_time(float(t), time_budget, t0)) for t in timestamps] + [1.0]
    ys = [0.0] + [float(s) for s in scores]
    ys.append(ys[-1])
    return xs, ys


def trapezoid_points(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
                      t0: float) -> tuple[list[float], list[float], list[tuple[float, float]]]:
    """X and Y of the 2018 scorer's piecewise-linear curve, and the (t, s) pairs left out.

    Pairs are sorted by time (stably); those stamped after ``time_budget`` are left out.
    """
    if len(timestamps) != len(scores):
        raise ValueError(f"{len(timestamps)} timestamps but {len(scores)} scores; expected as many")
    pairs = sorted(((float(t), float(v)) for t, v in zip(timestamps, scores, strict=True)),
                   key=lambda p: p[0])
    negative = [t for t, _ in pairs if t < 0]
    if negative:
        raise ValueError(f"timestamp {negative[0]} s is before the start of ingestion; expected "
                         f"seconds since the start (>= 0)")
    kept = [(t, v) for t, v in pairs if t <= time_budget]
    late = [(t, v) for t, v in pairs if t > time_budget]
    xs = [0.0] + [float(transform_time(t, time_budget, t0)) for t, _ in kept] + [1.0]
    ys = [0.0] + [v for _, v in kept]
    ys.append(ys[-1])
    return xs, ys, late


def learning_curve_area(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
                        t0: float = DEFAULT_T0, rule: str = "step") -> float:
    """Area under a learning curve over the transformed time, by the step or trapezoid rule.

    Both rules use the transformed time t~(t) = log(1 + t/t0) / log(1 + T/t0) (:func:`transform_time`),
    a curve that starts at (t~, s) = (0, 0) and the last score held until t~ = 1.

    ``rule="step"`` is the challenge's ALC (the organizers' ``auc_step``, v20191219): with
    ``X = [0, t~_1, ..., t~_n, 1]`` and ``Y = [0, s_1, ..., s_n, s_n]``, the area is
    ``sum_i (X[i+1] - X[i]) * Y[i]``, points taken in the order given; a prediction stamped
    after T still counts (its step starts beyond 1 and the closing step has a negative width).

    ``rule="trapezoid"`` is the 2018 beta tests' area: the points are sorted by time (stably),
    those stamped after T are left out (with a warning), and with X and Y built as above from
    the rest the area is ``sum_i (X[i+1] - X[i]) * (Y[i] + Y[i+1]) / 2``: the curve rises in a
    straight line from (0, 0) to the first prediction, joins consecutive predictions by
    straight lines and is flat from the last one to t~ = 1. (The 2018 scorer used t0 = 1 s and
    shifted every time by 1 s, t~ = log(t + 2) / log(T + 1); here the time axis is the ALC's.)

    Parameters
    ----------
    timestamps
        Times of the predictions in seconds since the start of ingestion, in the order the
        predictions were made.
    scores
        The score of each prediction: its NAUC for the challenge's ALC, its 2*BAC - 1
        (:func:`nbac`) for the beta tests' area; see :func:`prediction_score`.
    time_budget
        The budget T in seconds.
    t0
        The time-scale constant in seconds.
    rule
        ``"step"`` or ``"trapezoid"``.

    Returns
    -------
    float
        The area; 0.0 when there is no prediction (or, for the trapezoid, none within T).

    Raises
    ------
    ValueError
        If ``rule`` is unknown, the lengths differ, T or t0 is not positive, or (trapezoid) a
        timestamp is negative.
    """
    if rule not in ("step", "trapezoid"):
        raise ValueError(f"rule={rule!r}; expected 'step' or 'trapezoid'")
    if len(timestamps) == 0 and len(scores) == 0:
        return 0.0
    if rule == "trapezoid":
        xs, ys, late = trapezoid_points(timestamps, scores, time_budget, t0)
        if late:
            logger.warning("%d prediction(s) made after the time budget T=%g s are left out of the "
                           "trapezoid area", len(late), time_budget)
        return float(sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1)))
    if any(b < a for a, b in zip(timestamps, timestamps[1:], strict=False)):
        logger.warning("prediction timestamps are not increasing: %s", list(timestamps))
    if any(t > time_budget for t in timestamps):
        logger.warning("a prediction was made after the time budget T=%g s; it is counted, as by "
                       "the organizers' scorer", time_budget)
    xs, ys = curve_points(timestamps, scores, time_budget, t0)
    area = 0.0
    for i in range(len(xs) - 1):
        area += (xs[i + 1] - xs[i]) * ys[i]
    return float(area)


def alc(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
        t0: float = DEFAULT_T0) -> float:
    """Area under the learning curve (the challenge's score of one task).

    The curve is a step function over the transformed time: 0 before the first prediction,
    then the score of the most recent prediction, the last one held until t~ = 1. With
    ``X = [0, t~_1, ..., t~_n, 1]`` and ``Y = [0, s_1, ..., s_n, s_n]`` the area is
    ``sum_i (X[i+1] - X[i]) * Y[i]``, exactly as the organizers' ``auc_step``. A prediction
    stamped after ``time_budget`` is therefore still counted (its step starts beyond 1 and
    the closing step has a negative width), as the organizers' scorer does. Same as
    :func:`learning_curve_area` with ``rule="step"``.

    Parameters
    ----------
    timestamps
        Times of the predictions in seconds since the start of ingestion, in the order the
        predictions were made.
    scores
        The NAUC of each prediction.
    time_budget
        The budget T in seconds.
    t0
        The time-scale constant in seconds.

    Returns
    -------
    float
        The ALC; 0.0 when there is no prediction.
    """
    return learning_curve_area(timestamps, scores, time_budget, t0, rule="step")
