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
  and the final step then has a negative width;
- the ``scores.txt`` the organizers write (keys ``score``, ``Duration``, ``timestamps``,
  ``nauc_scores`` and, for multi-class tasks, ``accuracy``; :func:`write_scores`).

The learning-curve figure (:func:`plot_learning_curve`) follows the organizers' layout
(transformed time on x with a second axis in seconds, 2*AUC-1 on y, step plot, ALC in the
legend) but is not meant to be pixel-identical.

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
with ``rule="trapezoid"``). :func:`score_folder` takes ``metric="alc"`` (the default, the
challenge's) or ``metric="bac"``; :data:`METRICS` lists them. The organizers replaced it by
the NAUC, the step function and ``t0`` in May 2019 (commit 922b725).
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from scipy.stats import rankdata

from autodl.errors import PredictionError

logger = logging.getLogger(__name__)

#: The organizers' ``t0`` for the AutoCV challenges (seconds).
DEFAULT_T0 = 60.0
#: Added to the L1 norm of each prediction row before normalising (organizers' value).
ACCURACY_EPSILON = 1e-15
#: The metrics :func:`score_folder` offers: the challenge's ALC (NAUC, step function) and
#: the 2018 beta tests' area under the 2*BAC - 1 curve (trapezoid rule).
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

_PREDICT_RE = re.compile(r"^(?P<task>.+)\.predict_(?P<k>\d+)$")
_NP_WRAPPER_RE = re.compile(r"np\.(?:float|int)(?:16|32|64|128)?\(([^()]*)\)")


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


def _as_2d(x: np.ndarray | Sequence[Any], name: str) -> np.ndarray:
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
    solution = _as_2d(solution, "solution")
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
    solution = _as_2d(solution, "solution")
    prediction = _as_2d(prediction, "prediction")
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
    solution = _as_2d(solution, "solution")
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
    solution = _as_2d(solution, "solution")
    prediction = _as_2d(prediction, "prediction")
    _check_shapes(solution, prediction)
    if not is_multiclass(solution):
        return None
    normalized = prediction / (np.sum(np.abs(prediction), axis=1, keepdims=True) + ACCURACY_EPSILON)
    return float(np.sum(solution * normalized) / solution.shape[0])


def _check_metric(metric: str) -> str:
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
    prediction = _as_2d(prediction, "prediction")
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
    solution = _as_2d(solution, "solution")
    prediction = _as_2d(prediction, "prediction")
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
    if _check_metric(metric) == "bac":
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


def _curve_points(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
                  t0: float) -> tuple[list[float], list[float]]:
    """X and Y of the organizers' step curve: origin, one point per prediction, end at 1."""
    if len(timestamps) != len(scores):
        raise ValueError(f"{len(timestamps)} timestamps but {len(scores)} scores; expected as many")
    xs = [0.0] + [float(transform_time(float(t), time_budget, t0)) for t in timestamps] + [1.0]
    ys = [0.0] + [float(s) for s in scores]
    ys.append(ys[-1])
    return xs, ys


def _trapezoid_points(timestamps: Sequence[float], scores: Sequence[float], time_budget: float,
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
        xs, ys, late = _trapezoid_points(timestamps, scores, time_budget, t0)
        if late:
            logger.warning("%d prediction(s) made after the time budget T=%g s are left out of the "
                           "trapezoid area", len(late), time_budget)
        return float(sum((xs[i + 1] - xs[i]) * (ys[i] + ys[i + 1]) / 2 for i in range(len(xs) - 1)))
    if any(b < a for a, b in zip(timestamps, timestamps[1:], strict=False)):
        logger.warning("prediction timestamps are not increasing: %s", list(timestamps))
    if any(t > time_budget for t in timestamps):
        logger.warning("a prediction was made after the time budget T=%g s; it is counted, as by "
                       "the organizers' scorer", time_budget)
    xs, ys = _curve_points(timestamps, scores, time_budget, t0)
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


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreResult:
    """The score of one task's predictions.

    Attributes
    ----------
    task_name
        The task (dataset) name, as in ``start.txt``.
    time_budget
        The budget T in seconds.
    t0
        The time-scale constant of the transformed time, in seconds.
    start_time
        Absolute start of ingestion (seconds since the epoch), from ``start.txt``.
    timestamps
        Times of the scored predictions in seconds since ``start_time``.
    nauc_scores
        NAUC (2*AUC - 1) of each scored prediction.
    accuracy
        Accuracy of each scored prediction, or None when the task is not multi-class.
    score
        The area under the learning curve of ``metric``: the ALC for ``"alc"``, the area
        under the 2*BAC - 1 curve (trapezoid rule) for ``"bac"``.
    duration
        The last relative timestamp, 0.0 without predictions (the organizers' ``Duration``).
    ingestion_success
        ``ingestion_success`` from ``end.txt``; None when there is no ``end.txt``.
    metric
        Which metric ``score`` is, one of :data:`METRICS`.
    nbac_scores
        2*BAC - 1 (:func:`nbac`) of each scored prediction when ``metric`` is ``"bac"``,
        else None.
    """

    task_name: str
    time_budget: float
    t0: float
    start_time: float
    timestamps: list[float]
    nauc_scores: list[float]
    accuracy: list[float] | None
    score: float
    duration: float
    ingestion_success: bool | None = None
    metric: str = "alc"
    nbac_scores: list[float] | None = None

    def __post_init__(self) -> None:
        _check_metric(self.metric)
        if self.metric == "bac" and self.nbac_scores is None:
            raise ValueError("metric='bac' needs nbac_scores (the 2*BAC-1 of each prediction)")

    @property
    def num_predictions(self) -> int:
        """How many predictions were scored."""
        return len(self.timestamps)

    @property
    def curve_scores(self) -> list[float]:
        """The per-prediction scores whose learning curve ``score`` is the area of."""
        if self.metric == "bac":
            assert self.nbac_scores is not None
            return self.nbac_scores
        return self.nauc_scores

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of all fields (plain Python floats and lists)."""
        d = asdict(self)
        d["timestamps"] = [float(t) for t in self.timestamps]
        d["nauc_scores"] = [float(s) for s in self.nauc_scores]
        d["accuracy"] = None if self.accuracy is None else [float(a) for a in self.accuracy]
        d["nbac_scores"] = None if self.nbac_scores is None else [float(v) for v in self.nbac_scores]
        return d


# --------------------------------------------------------------------------------------
# Reading ingestion output
# --------------------------------------------------------------------------------------
def _load_yaml(path: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())  # one line
        raise PredictionError(path, f"is not valid YAML ({where}{what}); expected 'key: value' lines") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PredictionError(path, "expected 'key: value' lines (a YAML mapping)")
    return data


def read_prediction_folder(pred_dir: str | Path) -> tuple[dict[str, Any], list[tuple[int, float, Path]]]:
    """Read what ingestion wrote in a prediction folder.

    Parameters
    ----------
    pred_dir
        The folder holding ``start.txt``, ``<task>.predict_<k>`` and (once ingestion has
        ended) ``end.txt``.

    Returns
    -------
    start_info : dict
        The named fields of ``start.txt`` (``ingestion_pid``, ``task_name``,
        ``time_budget``, ``start_time``, as present), plus ``end_info``: the fields of
        ``end.txt`` (``ingestion_duration``, ``ingestion_success``, ``end_time``) or None
        when there is no ``end.txt``. When ``start.txt`` has no ``task_name`` it is taken
        from the ``*.predict_<k>`` files if they all share one.
    predictions : list of (k, timestamp, path)
        One entry per ``k: timestamp`` line of ``start.txt``, sorted by ``k``; ``timestamp``
        is absolute (seconds since the epoch) and ``path`` is
        ``<pred_dir>/<task>.predict_<k>``, which may not exist yet while ingestion runs.
        Files that do not end in ``.predict_<int>`` (e.g. ingestion's temporary files) are
        ignored; a ``.predict_<k>`` file with no timestamp is ignored with a warning.

    Raises
    ------
    PredictionError
        If ``pred_dir`` or ``start.txt`` is missing, or ``start.txt`` is malformed.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PredictionError(pred_dir, "not a folder; expected ingestion's prediction folder")
    start_path = pred_dir / "start.txt"
    if not start_path.is_file():
        raise PredictionError(start_path, "not found; ingestion writes it when it starts, so "
                                          "this folder holds no ingestion output (yet)")
    raw = _load_yaml(start_path)

    start_info: dict[str, Any] = {}
    stamps: dict[int, float] = {}
    for key, value in raw.items():
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                stamps[key] = float(value)
            except (TypeError, ValueError):
                raise PredictionError(start_path, f"timestamp {value!r} is not a number",
                                      field=str(key)) from None
        else:
            start_info[str(key)] = value

    if "start_time" not in start_info:
        raise PredictionError(start_path, "has no start_time", field="start_time")
    for name in ("start_time", "time_budget"):
        if name in start_info:
            try:
                start_info[name] = float(start_info[name])
            except (TypeError, ValueError):
                raise PredictionError(start_path, f"{start_info[name]!r} is not a number",
                                      field=name) from None

    files: dict[str, dict[int, Path]] = {}
    for p in pred_dir.iterdir():
        m = _PREDICT_RE.match(p.name)
        if m and p.is_file():
            files.setdefault(m["task"], {})[int(m["k"])] = p

    task = start_info.get("task_name")
    if task is None:
        if len(files) == 1:
            task = next(iter(files))
            logger.info("%s has no task_name; using %r from the prediction files", start_path, task)
        elif stamps:
            found = ", ".join(sorted(files)) or "none"
            raise PredictionError(start_path, f"has no task_name and the prediction files do not "
                                              f"name one task (found: {found})", field="task_name")
        else:
            task = ""
    task = str(task)
    start_info["task_name"] = task

    predictions = [(k, stamps[k], pred_dir / f"{task}.predict_{k}") for k in sorted(stamps)]
    unlisted = sorted(set(files.get(task, {})) - set(stamps))
    if unlisted:
        logger.warning("%s: prediction files %s have no timestamp in start.txt; ignored", pred_dir,
                       [files[task][k].name for k in unlisted])

    end_path = pred_dir / "end.txt"
    start_info["end_info"] = _load_yaml(end_path) if end_path.is_file() else None
    return start_info, predictions


def load_prediction(path: str | Path, n_rows: int | None = None, n_cols: int | None = None) -> np.ndarray:
    """Read one prediction file: one row of space-separated numbers per test example.

    Parameters
    ----------
    path
        The ``<task>.predict_<k>`` file.
    n_rows, n_cols
        The expected shape (the solution's); None skips that check.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_rows, n_cols)``.

    Raises
    ------
    PredictionError
        Naming the file, when it is missing or empty, rows differ in length, a value is not
        a number or is NaN/infinite, or the row or column count differs from the expected.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PredictionError(path, "not found") from None
    except UnicodeDecodeError:
        raise PredictionError(path, "is not a text file of space-separated numbers") from None
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise PredictionError(path, "is empty; expected one row of space-separated scores per "
                                    "test example")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise PredictionError(path, f"row {i + 1} has {len(r)} values; row 1 has {width}")
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except ValueError:
        for i, r in enumerate(rows):
            for v in r:
                try:
                    float(v)
                except ValueError:
                    raise PredictionError(path, f"row {i + 1} holds {v!r}, which is not a "
                                                f"number") from None
        raise PredictionError(path, "holds a value that is not a number") from None
    if not np.all(np.isfinite(arr)):
        i, j = np.argwhere(~np.isfinite(arr))[0]
        raise PredictionError(path, f"row {i + 1}, column {j + 1} is {arr[i, j]}; expected finite "
                                    f"scores")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise PredictionError(path, f"{arr.shape[0]} rows; the solution has {n_rows}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise PredictionError(path, f"{arr.shape[1]} columns; the solution has {n_cols}")
    return arr


def score_folder(pred_dir: str | Path, solution: np.ndarray | str | Path,
                 time_budget: float | None = None, t0: float = DEFAULT_T0,
                 partial_ok: bool = False, metric: str = "alc") -> ScoreResult:
    """Score the predictions in an ingestion output folder, as the organizers' scorer does.

    Parameters
    ----------
    pred_dir
        The folder with ``start.txt``, ``<task>.predict_<k>`` and optionally ``end.txt``.
    solution
        The test labels, as an array or the path of a ``.solution`` file.
    time_budget
        The budget T in seconds; by default the ``time_budget`` of ``start.txt``.
    t0
        The time-scale constant in seconds (the organizers' 60 by default).
    partial_ok
        Skip, with a warning, predictions listed in ``start.txt`` whose file is missing
        (use while ingestion is still running). When False they are an error.
    metric
        ``"alc"`` (default): the challenge's ALC, the step-function area of the NAUCs.
        ``"bac"``: the 2018 beta tests' area, the trapezoid-rule area of the 2*BAC - 1 of
        binary decisions (:func:`nbac`, :func:`learning_curve_area`). NAUC and accuracy are
        computed for both.

    Returns
    -------
    ScoreResult
        Every prediction listed in ``start.txt`` whose file exists, scored in ``k`` order;
        its ``metric`` says what its ``score`` is.

    Raises
    ------
    PredictionError
        If ``start.txt`` is missing or malformed, no time budget is known, a listed
        prediction is missing (unless ``partial_ok``) or a prediction file is malformed or
        of the wrong shape.
    autodl.errors.FormatError
        If the ``.solution`` file cannot be read.
    ValueError
        If ``metric`` is not one of :data:`METRICS`.
    """
    from autodl.dataset import read_solution

    _check_metric(metric)
    pred_dir = Path(pred_dir)
    if isinstance(solution, (str, Path)):
        sol_path = Path(solution)
        sol = read_solution(sol_path)
    else:
        sol_path = None
        sol = _as_2d(solution, "solution")
    if sol.size == 0:
        raise PredictionError(sol_path, "the solution has no rows; nothing can be scored")

    info, predictions = read_prediction_folder(pred_dir)
    if time_budget is None:
        if "time_budget" not in info:
            raise PredictionError(pred_dir / "start.txt", "has no time_budget and none was given",
                                  field="time_budget")
        time_budget = info["time_budget"]
    time_budget = float(time_budget)
    start_time = float(info["start_time"])

    multiclass = is_multiclass(sol)
    n_valid = len(valid_columns(sol))
    if n_valid < sol.shape[1]:
        logger.info("%d of %d solution columns hold only one class; the NAUC ignores them",
                    sol.shape[1] - n_valid, sol.shape[1])
    timestamps: list[float] = []
    naucs: list[float] = []
    accs: list[float] = []
    nbacs: list[float] = []
    for k, stamp, path in predictions:
        if not path.is_file():
            if partial_ok:
                logger.warning("%s is listed in start.txt but not written yet; skipped", path)
                continue
            raise PredictionError(path, f"not found, but start.txt lists prediction {k}")
        pred = load_prediction(path, sol.shape[0], sol.shape[1])
        timestamps.append(stamp - start_time)
        naucs.append(nauc(sol, pred))
        if multiclass:
            acc = accuracy(sol, pred)
            assert acc is not None
            accs.append(acc)
        if metric == "bac":
            nbacs.append(nbac(sol, pred, multiclass=multiclass))
        logger.debug("%s: t=%.2f s, NAUC=%.4f", path.name, timestamps[-1], naucs[-1])

    end_info = info.get("end_info")
    success = None
    if end_info is not None and end_info.get("ingestion_success") is not None:
        success = bool(end_info["ingestion_success"])
    result = ScoreResult(
        task_name=info["task_name"],
        time_budget=time_budget,
        t0=float(t0),
        start_time=start_time,
        timestamps=timestamps,
        nauc_scores=naucs,
        accuracy=accs if multiclass else None,
        score=learning_curve_area(timestamps, nbacs if metric == "bac" else naucs, time_budget, t0,
                                  rule=CURVE_RULES[metric]),
        duration=timestamps[-1] if timestamps else 0.0,
        ingestion_success=success,
        metric=metric,
        nbac_scores=nbacs if metric == "bac" else None,
    )
    logger.info("%s: %d predictions, %s=%.4f", result.task_name, len(timestamps), METRIC_NAMES[metric],
                result.score)
    return result


# --------------------------------------------------------------------------------------
# Writing and reading scores
# --------------------------------------------------------------------------------------
def _float_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def write_scores(result: ScoreResult, out_dir: str | Path) -> Path:
    """Write ``scores.txt`` (the organizers' keys and order) and ``scores.json``.

    ``scores.txt`` holds ``score`` (the ALC), ``Duration``, ``timestamps``,
    ``nauc_scores`` and, for multi-class tasks, ``accuracy``, as plain Python floats (so
    the file is YAML; read it back with :func:`parse_scores_txt`). For ``metric="bac"``,
    ``score`` is the 2*BAC - 1 area and two keys follow: ``metric: bac`` and
    ``nbac_scores``. ``scores.json`` holds :meth:`ScoreResult.to_dict`.

    Parameters
    ----------
    result
        What :func:`score_folder` returned.
    out_dir
        The folder to write to (created if needed).

    Returns
    -------
    pathlib.Path
        The path of ``scores.txt``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"score: {float(result.score)!r}",
        f"Duration: {float(result.duration)!r}",
        f"timestamps: {_float_list(result.timestamps)}",
        f"nauc_scores: {_float_list(result.nauc_scores)}",
    ]
    if result.accuracy is not None:
        lines.append(f"accuracy: {_float_list(result.accuracy)}")
    if result.metric != "alc":
        lines.append(f"metric: {result.metric}")
        lines.append(f"nbac_scores: {_float_list(result.curve_scores)}")
    path = out_dir / "scores.txt"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "scores.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    logger.debug("wrote %s (%s=%.4f)", path, METRIC_NAMES[result.metric], result.score)
    return path


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [] if not inner else [_parse_value(v) for v in inner.split(",")]
    try:
        return float(text)
    except ValueError:
        value = yaml.safe_load(text)
        return value


def parse_scores_txt(path: str | Path) -> dict[str, Any]:
    """Read a ``scores.txt`` written by :func:`write_scores` or by the organizers' scorer.

    The organizers' files may hold values such as ``[np.float64(0.06), ...]`` (numpy 2's
    repr); the ``np.float64( )`` wrappers are stripped. Numbers (including ``1e-05``,
    ``nan``, ``inf``) become floats, ``[...]`` lists of floats; any other value is read as
    YAML.

    Parameters
    ----------
    path
        The ``scores.txt`` file.

    Returns
    -------
    dict
        Key to value, in the file's order.

    Raises
    ------
    PredictionError
        If a non-empty line is not ``key: value``.
    """
    path = Path(path)
    out: dict[str, Any] = {}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PredictionError(path, f"line {i + 1} is not 'key: value': {line!r}")
        value = _NP_WRAPPER_RE.sub(r"\1", value)
        out[key.strip()] = _parse_value(value)
    return out


# --------------------------------------------------------------------------------------
# Learning-curve figure
# --------------------------------------------------------------------------------------
_NICE_SECONDS = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 10800, 14400,
                 21600, 43200, 86400)


def time_ticks(T: float, t0: float, min_gap: float = 0.07) -> list[float]:
    """Ticks in seconds for the top axis: 0, t0, round values and T, not crowded."""
    must = [0.0, float(T)] + ([float(t0)] if 0 < t0 < T else [])
    ticks = sorted(must)
    pos = {t: float(transform_time(t, T, t0)) for t in ticks}
    for t in _NICE_SECONDS:
        if 0 < t < T:
            x = float(transform_time(t, T, t0))
            if all(abs(x - p) >= min_gap for p in pos.values()):
                pos[float(t)] = x
    return sorted(pos)


def _format_seconds(t: float) -> str:
    return f"{t:g}"


def plot_learning_curve(result: ScoreResult, path: str | Path) -> Path:
    """Draw the learning curve of a scored task and save it as a PNG.

    For the ALC (``result.metric == "alc"``): a step plot (``where='post'``) of the NAUC over
    the transformed time in [0, 1]. For ``"bac"``: the 2*BAC - 1 scores joined by straight
    lines from (0, 0), as the trapezoid rule integrates them. Either way the area is filled
    lightly, each prediction marked, a second x axis on top gives seconds, the legend holds
    the area and the title the task name and T/t0. Predictions made after T are drawn beyond
    t~ = 1, right of a dashed line at T (the ALC counts them; the BAC area does not, and
    they are drawn as open circles).

    Parameters
    ----------
    result
        What :func:`score_folder` returned.
    path
        Where to write the PNG (its folder is created if needed).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure  # no pyplot: no global state, thread-safe

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    T, t0 = result.time_budget, result.t0
    step = CURVE_RULES[result.metric] == "step"
    late: list[tuple[float, float]] = []
    if step:
        xs, ys = _curve_points(result.timestamps, result.curve_scores, T, t0)
    else:
        xs, ys, late = _trapezoid_points(result.timestamps, result.curve_scores, T, t0)
    late_xy = [(float(transform_time(t, T, t0)), v) for t, v in late]
    x_max = max([1.0, *xs, *(x for x, _ in late_xy)])
    if x_max > 1.0:  # a late prediction: leave room right of it
        x_max += 0.02

    fig = Figure(figsize=(7, 5.2), dpi=100)
    ax = fig.add_subplot(111)
    ax.set_xlim(0, x_max)
    ax.set_ylim(-0.01, 1)
    ax.grid(True, alpha=0.3)
    ax.set_xlabel("Transformed time  " + r"$\tilde{t} = \log(1 + t/t_0)\, /\, \log(1 + T/t_0)$")
    ax.set_ylabel(SCORE_NAMES[result.metric])

    label = f"{METRIC_NAMES[result.metric]} = {result.score:.4f}"
    # Curve: origin, predictions (drawn in time order), held to the end of the axis.
    pts = sorted(zip(xs[1:-1], ys[1:-1], strict=True))
    cx = [0.0] + [p[0] for p in pts] + [x_max if step else 1.0]
    cy = [0.0] + [p[1] for p in pts]
    cy.append(cy[-1])
    fill_x = [min(x, 1.0) for x in cx]
    if step:
        ax.fill_between(fill_x, cy, step="post", color="tab:blue", alpha=0.15, linewidth=0)
        ax.step(cx, cy, where="post", color="tab:blue", linewidth=1.8, marker="o", markersize=5,
                markevery=list(range(1, len(pts) + 1)), clip_on=False, label=label)
    else:
        ax.fill_between(fill_x, cy, color="tab:blue", alpha=0.15, linewidth=0)
        ax.plot(cx, cy, color="tab:blue", linewidth=1.8, marker="o", markersize=5,
                markevery=list(range(1, len(pts) + 1)), clip_on=False, label=label)
        if late_xy:
            ax.plot([x for x, _ in late_xy], [v for _, v in late_xy], linestyle="none", marker="o",
                    markersize=5, markerfacecolor="none", color="tab:blue", clip_on=False,
                    label="after T (not counted)")
    if pts:
        last_x, last_y = pts[-1]
        ax.annotate(f"{last_y:.4f}", (last_x, last_y), textcoords="offset points",
                    xytext=(5, -13 if last_y > 0.9 else 5), fontsize=8, color="tab:blue")
    if x_max > 1.0:
        ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
        ax.text(1.0, 0.97, "T ", color="grey", fontsize=9, ha="right", va="top")
    ax.legend(loc="lower right")

    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = time_ticks(T, t0)
    top.set_xticks([float(transform_time(t, T, t0)) for t in ticks])
    top.set_xticklabels([_format_seconds(t) for t in ticks], fontsize=8)
    top.set_xlabel("Time (s)", fontsize=9)

    ax.set_title(f"Learning curve: {result.task_name or 'task'}   (T = {T:g} s, t0 = {t0:g} s)",
                 fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    logger.debug("wrote learning curve %s", path)
    return path
