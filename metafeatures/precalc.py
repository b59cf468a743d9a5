"""Batch statistics of embeddings ("precalc"): what the precalc-MLP selector sees of a batch.

Approach 1c of the Freiburg meta-learner (the AutoDL 2019 entry; Liu et al., "Winning
solutions and post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021):
instead of voting over single embeddings, a perceptron classifies a whole batch of a
dataset's embeddings from per-feature statistics of the batch: mean, median, standard
deviation, variance, skewness and kurtosis, each computed after trimming a fraction ``p`` of
each tail. Which statistics and ``p`` are hyperparameters (the paper tuned them with BOHB).

Definitions (per feature column of a batch ``[B, D]``): sort the column, drop ``floor(p * B)``
values from each end, then on the ``n`` values left

- ``mean``, ``median``;
- ``var`` and ``std``: the population variance ``m2 = mean((x - mean)^2)`` (``ddof=0``) and its
  square root;
- ``skew``: ``m3 / m2^1.5`` and ``kurt``: the excess (Fisher) kurtosis ``m4 / m2^2 - 3``, with
  ``mk = mean((x - mean)^k)`` (``scipy.stats.skew`` / ``kurtosis`` with ``bias=True``). A column
  whose values left are all equal (or so close that the moments are lost to rounding, where
  SciPy returns NaN) has skewness and kurtosis 0, not NaN.

:func:`precalc` summarises one batch; :func:`precalc_batches` draws random batches of one
dataset's embeddings and summarises each (the precalc-MLP's training examples).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_STATS", "STATS", "precalc", "precalc_batches", "trim_count"]

STATS: tuple[str, ...] = ("mean", "median", "std", "var", "skew", "kurt")
"""The statistics :func:`precalc` knows."""
DEFAULT_STATS: tuple[str, ...] = STATS
"""All of them, in this order (the paper's set)."""


def _check_stats(stats: Sequence[str]) -> tuple[str, ...]:
    if isinstance(stats, str):
        stats = (stats,)
    stats = tuple(stats)
    if not stats:
        raise ValueError(f"stats is empty; expected one or more of {', '.join(STATS)}")
    unknown = [s for s in stats if s not in STATS]
    if unknown:
        raise ValueError(f"unknown statistic(s) {', '.join(map(repr, unknown))}; expected some of "
                         f"{', '.join(STATS)}")
    if len(set(stats)) != len(stats):
        raise ValueError(f"stats={list(stats)!r} names a statistic twice")
    return stats


def trim_count(batch_size: int, p: float) -> int:
    """Values dropped from *each* tail of a column of ``batch_size`` values: ``floor(p * B)``.

    Raises
    ------
    ValueError
        ``p`` outside [0, 0.5), or so large that no value would be left.
    """
    if isinstance(p, bool) or not isinstance(p, int | float | np.floating | np.integer) or not 0.0 <= p < 0.5:
        raise ValueError(f"p={p!r}: expected a fraction of each tail in [0, 0.5)")
    # p * B in floating point may fall just below an integer (0.29 * 100 = 28.999999999999996)
    k = math.floor(p * batch_size + 1e-9)
    if batch_size - 2 * k < 1:
        raise ValueError(f"p={p!r} trims {k} values from each tail of a batch of {batch_size}: none left; "
                         f"use a smaller p or a larger batch")
    return k


def precalc(batch: np.ndarray, stats: Sequence[str] = DEFAULT_STATS, p: float = 0.0) -> np.ndarray:
    """Per-feature statistics of a batch of embeddings, after trimming a fraction ``p`` of each tail.

    Parameters
    ----------
    batch:
        Embeddings ``[B, D]``.
    stats:
        Which statistics, in the order wanted (see :data:`STATS` and the module docstring).
    p:
        Fraction of each tail trimmed per feature: ``floor(p * B)`` values from each end.

    Returns
    -------
    numpy.ndarray
        float32 ``[len(stats) * D]``: statistic by statistic, each over the D features
        (``out[s * D + j]`` is statistic ``stats[s]`` of feature ``j``).

    Raises
    ------
    ValueError
        A batch that is not a non-empty ``[B, D]`` array of finite values, an unknown
        statistic (the message lists the known ones), or ``p`` out of range.
    """
    stats = _check_stats(stats)
    x = np.asarray(batch, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"batch of shape {x.shape}: expected a non-empty [B, D] array of embeddings")
    if not np.isfinite(x).all():
        raise ValueError("batch holds NaN or infinite values")
    k = trim_count(x.shape[0], p)
    if k:
        x = np.sort(x, axis=0)[k:x.shape[0] - k]
    mean = x.mean(axis=0)
    var = ((x - mean) ** 2).mean(axis=0)
    out = []
    for s in stats:
        if s == "mean":
            out.append(mean)
        elif s == "median":
            out.append(np.median(x, axis=0))
        elif s == "var":
            out.append(var)
        elif s == "std":
            out.append(np.sqrt(var))
        else:
            out.append(_shape_stat(x, s))
    return np.concatenate(out).astype(np.float32)


def _shape_stat(x: np.ndarray, stat: str) -> np.ndarray:
    """Skewness or excess kurtosis per column (SciPy, ``bias=True``); 0 for constant columns."""
    from scipy import stats as sps

    constant = np.ptp(x, axis=0) == 0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # SciPy's precision-loss warning, handled below
        if stat == "skew":
            value = sps.skew(x, axis=0, bias=True)
        else:
            value = sps.kurtosis(x, axis=0, fisher=True, bias=True)
    value = np.asarray(value, dtype=np.float64)
    # SciPy gives NaN where the variance is lost to rounding (a nearly constant column)
    return np.where(constant | ~np.isfinite(value), 0.0, value)


def precalc_batches(x: np.ndarray, batch_size: int, n_batches: int, rng: np.random.Generator | int | None = None,
                    stats: Sequence[str] = DEFAULT_STATS, p: float = 0.0) -> np.ndarray:
    """:func:`precalc` of ``n_batches`` random batches of one dataset's embeddings.

    Parameters
    ----------
    x:
        Embeddings ``[N, D]`` of one dataset.
    batch_size:
        Embeddings per batch: drawn without replacement within a batch, or with
        replacement when ``batch_size > N``.
    n_batches:
        How many batches (each drawn independently).
    rng:
        A NumPy generator, or a seed for one.
    stats, p:
        As :func:`precalc`.

    Returns
    -------
    numpy.ndarray
        float32 ``[n_batches, len(stats) * D]``.

    Raises
    ------
    ValueError
        An empty or ill-shaped ``x``, a batch size or count below 1, or what
        :func:`precalc` refuses.
    """
    stats = _check_stats(stats)
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 1:
        raise ValueError(f"x of shape {x.shape}: expected a non-empty [N, D] array of embeddings")
    for name, value in (("batch_size", batch_size), ("n_batches", n_batches)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    trim_count(int(batch_size), p)  # fail before drawing anything
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    replace = batch_size > len(x)
    out = np.empty((int(n_batches), len(stats) * x.shape[1]), dtype=np.float32)
    for i in range(int(n_batches)):
        idx = gen.choice(len(x), size=int(batch_size), replace=replace)
        out[i] = precalc(x[idx], stats, p)
    return out
