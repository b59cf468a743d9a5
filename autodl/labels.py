"""Labels: label matrices, multi-label detection, stratified subsets and splits.

Every part of the project that turns labels into a matrix, asks whether a dataset is
multi-label, draws a subset of examples or splits examples into train and test does it
here, so that the writer, the converters, the built-in sources, the dataset reader and
the learners agree.

- :func:`labels_to_matrix`: class indices, lists of indices (multi-label), ``{index:
  score}`` mappings or a matrix, as the float32 ``[N, C]`` matrix the AutoDL format stores
  (``label_index`` / ``label_score`` per record, the rows of the ``.solution`` file).
- :func:`is_multilabel`: whether a label matrix is multi-label, robust to a stray empty or
  soft row (the organizers' test, "some row does not sum to 1", flips a whole dataset on
  one such row).
- :func:`stratified_subset` and :func:`stratified_split`: seeded subsets in which every
  class keeps its share. AutoDL datasets are often stored sorted by class, so "the first
  ``n`` records" may hold only the first classes.

Multi-label rows are stratified by their rarest label, the idea of iterative
stratification (Sechidis, Tsoumakas and Vlahavas, "On the stratification of multi-label
data", ECML PKDD 2011) in its simplest, one-pass form.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence

import numpy as np

from autodl.errors import AutoDLError, ConversionError

logger = logging.getLogger(__name__)

LabelsLike = np.ndarray | Sequence[int] | Sequence[Sequence[int]] | Sequence[Mapping[int, float]]
"""What :func:`labels_to_matrix` accepts."""

POSITIVE = 0.5
"""A label score at or above this is a label the example has."""
MULTILABEL_MIN_ROWS = 2
"""At least this many rows must have two or more labels (or none) for :func:`is_multilabel`."""
MULTILABEL_MIN_SHARE = 0.01
"""... and at least this share of the rows."""


def labels_to_matrix(labels: LabelsLike, num_classes: int | None = None,
                     name: str = "labels") -> np.ndarray:
    """Turn labels into a float32 ``[N, num_classes]`` matrix.

    Parameters
    ----------
    labels:
        One of: class indices ``[N]``; a list per example of class indices (multi-label,
        an empty list for no label); a mapping per example ``{class index: score}``
        (scores in [0, 1]; the ``label_index`` / ``label_score`` of a record); or a label
        matrix ``[N, C]`` of values in [0, 1].
    num_classes:
        The number of columns; default: the largest class index plus one (or the
        matrix's width).
    name:
        What the labels are called in error messages (e.g. ``"y_train"``).

    Returns
    -------
    numpy.ndarray
        ``float32 [N, num_classes]``: 1 (or the score) where an example has a class.

    Raises
    ------
    ConversionError
        A negative class index, one ``>= num_classes``, a score or matrix value outside
        [0, 1], or a matrix of another width.
    """
    if isinstance(labels, np.ndarray) and labels.ndim == 1 and labels.dtype.kind in "iu":
        labels = labels.astype(np.int64)  # class indices: no per-row work
        n = num_classes if num_classes is not None else int(labels.max(initial=-1)) + 1
        if labels.size and labels.min() < 0:
            raise ConversionError(None, f"{name} holds the class index {labels.min()}; expected indices >= 0")
        if labels.size and labels.max() >= n:
            raise ConversionError(None, f"{name} holds the class index {labels.max()}; expected "
                                        f"< num_classes={n}")
        mat = np.zeros((len(labels), max(n, 1)), dtype=np.float32)
        mat[np.arange(len(labels)), labels] = 1.0
        return mat
    if isinstance(labels, np.ndarray) and labels.ndim == 2:
        mat = labels.astype(np.float32)
        if num_classes is not None and mat.shape[1] != num_classes:
            raise ConversionError(None, f"{name} has {mat.shape[1]} columns; expected {num_classes}")
        if mat.size and not (mat.min() >= 0 and mat.max() <= 1):
            raise ConversionError(None, f"{name}: a label matrix holds values in [0, 1]")
        return mat
    rows: list[Mapping[int, float]] = []
    for r in labels:
        if isinstance(r, Mapping):
            rows.append(r)
        else:
            rows.append(dict.fromkeys(np.atleast_1d(np.asarray(r)).astype(np.int64).tolist(), 1.0))
    top = max((max(r) for r in rows if r), default=-1)
    low = min((min(r) for r in rows if r), default=0)
    if low < 0:
        raise ConversionError(None, f"{name} holds the class index {low}; expected indices >= 0")
    n = num_classes if num_classes is not None else top + 1
    if top >= n:
        raise ConversionError(None, f"{name} holds the class index {top}; expected < num_classes={n}")
    mat = np.zeros((len(rows), max(n, 1)), dtype=np.float32)
    for i, r in enumerate(rows):
        for j, score in r.items():
            if not 0.0 <= score <= 1.0:
                raise ConversionError(None, f"{name}: example {i} has the score {score!r} for class {j}; "
                                            f"expected a number in [0, 1]")
            mat[i, j] = score
    return mat


def _as_matrix(y: np.ndarray | Sequence[Sequence[float]], name: str = "y") -> np.ndarray:
    y = np.asarray(y, dtype=np.float64)
    if y.ndim != 2:
        raise AutoDLError(None, f"a label matrix [N, C] expected, got shape {y.shape}", field=name)
    return y


def is_multilabel(y: np.ndarray, *, min_rows: int = MULTILABEL_MIN_ROWS,
                  min_share: float = MULTILABEL_MIN_SHARE) -> bool:
    """Whether a label matrix is multi-label (independent classes) rather than multi-class.

    A row is *not one-hot* when it has two or more labels with a score ``>= 0.5``, or no
    label at all (all zeros). The matrix is multi-label when at least ``min_rows`` rows
    **and** at least ``min_share`` of the rows are not one-hot (defaults: 2 rows and 1 %).

    So a stray all-zero row, or a soft row such as ``[0.9, 0, 0.25]`` (one label >= 0.5),
    does not turn a multi-class dataset into a multi-label one, as the organizers' test
    (any row whose sum is not 1) would; a real share of rows with several labels does. A
    real share of rows with no label at all also makes the matrix multi-label: the
    classes are then not exhaustive, which a softmax cannot express. A row whose scores
    are all below 0.5 but not all zero (soft labels) counts as one-hot.

    Parameters
    ----------
    y:
        Labels ``[N, C]`` (0/1 or scores in [0, 1]).
    min_rows, min_share:
        The thresholds above.

    Returns
    -------
    bool
        True for multi-label.
    """
    y = _as_matrix(y)
    if not len(y):
        return False
    counts = (y >= POSITIVE).sum(axis=1)
    several = int((counts >= 2).sum())
    empty = int((~y.any(axis=1)).sum())
    needed = max(min_rows, math.ceil(min_share * len(y)))
    multi = several >= needed or empty >= needed
    if not multi and (several or empty):
        logger.debug("%d rows with several labels and %d without a label in %d: multi-class "
                     "(multi-label needs %d)", several, empty, len(y), needed)
    return multi


def label_strata(y: np.ndarray | Sequence[int]) -> np.ndarray:
    """The stratum (a class index, or -1) of each example, for stratified sampling.

    Parameters
    ----------
    y:
        Class indices ``[N]`` (their own strata) or a label matrix ``[N, C]``.

    Returns
    -------
    numpy.ndarray
        int64 ``[N]``. For a label matrix: a row with labels (scores ``>= 0.5``) goes to
        its rarest label (the one fewest rows have; the lowest index on ties), so that
        subsets keep rare labels of multi-label data; for one-hot rows that is their
        class. A row without such a label goes to its highest score (soft labels), and
        an all-zero row (no label, or the unknown labels of a test subset) to -1.
    """
    arr = np.asarray(y)
    if arr.ndim == 1:
        return arr.astype(np.int64)
    y = _as_matrix(arr)
    if not y.size:
        return np.full(len(y), -1, dtype=np.int64)
    positive = y >= POSITIVE
    frequency = positive.sum(axis=0)
    # rarest positive label: the positive column of smallest frequency (argmin takes the lowest index)
    key = np.where(positive, frequency[None, :], np.iinfo(np.int64).max)
    strata = np.where(positive.any(axis=1), key.argmin(axis=1), y.argmax(axis=1))
    strata[~y.any(axis=1)] = -1
    return strata.astype(np.int64)


def stratified_subset(y: np.ndarray | Sequence[int], n: int, seed: int = 0) -> np.ndarray:
    """Indices of ``n`` examples drawn at random (seeded), each class in proportion.

    Parameters
    ----------
    y:
        Class indices ``[N]`` or a label matrix ``[N, C]`` (strata as
        :func:`label_strata` says: multi-label rows by their rarest label, all-zero rows
        together).
    n:
        How many to keep (all when ``n >= N``).
    seed:
        Seed of the draw; the same seed and labels give the same subset.

    Returns
    -------
    numpy.ndarray
        int64 indices, sorted (the examples keep their stored order).

    Notes
    -----
    Every stratum keeps at least one example once ``n`` is at least the number of
    strata (the number of classes, for one-hot labels); below that, the strata kept are
    drawn at random. Otherwise each stratum keeps about ``n * size / N`` examples: each
    example is ranked by its position in a random order of its stratum divided by the
    stratum's size, and the ``n`` lowest ranks are kept (ties broken at random).
    """
    strata = label_strata(y)
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
        raise AutoDLError(None, f"n={n!r}: expected a number of examples >= 0", field="n")
    if n >= len(strata):
        return np.arange(len(strata), dtype=np.int64)
    rng = np.random.default_rng(seed)
    rank = np.empty(len(strata), dtype=np.float64)
    for c in np.unique(strata):
        idx = np.flatnonzero(strata == c)
        rank[rng.permutation(idx)] = np.arange(len(idx)) / len(idx)
    order = np.lexsort((rng.random(len(strata)), rank))
    return np.sort(order[:n]).astype(np.int64)


def stratified_split(y: np.ndarray | Sequence[int], test_size: float | int,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Split examples into train and test at random (seeded), each class in proportion.

    Parameters
    ----------
    y:
        Class indices ``[N]`` or a label matrix ``[N, C]`` (see :func:`stratified_subset`).
    test_size:
        The test side: a fraction in (0, 1) of the examples (rounded; with two examples
        or more, each side then gets at least one), or a number of examples.
    seed:
        Seed of the split.

    Returns
    -------
    tuple of numpy.ndarray
        ``(train, test)`` int64 indices, each sorted; together every index once.

    Notes
    -----
    The train side is the :func:`stratified_subset` of ``N - n_test`` examples, so every
    class is in train before any is in test; the test side is the rest.
    """
    n = len(label_strata(y))
    if isinstance(test_size, bool) or not isinstance(test_size, int | float | np.integer | np.floating):
        raise AutoDLError(None, f"test_size={test_size!r}: expected a fraction in (0, 1) or a number "
                                f"of examples", field="test_size")
    if isinstance(test_size, float | np.floating):
        if not 0.0 < test_size < 1.0:
            raise AutoDLError(None, f"test_size={test_size}: expected a fraction in (0, 1)",
                              field="test_size")
        n_test = round(test_size * n)
        if n >= 2:
            n_test = min(max(1, n_test), n - 1)
    else:
        if not 0 <= test_size <= n:
            raise AutoDLError(None, f"test_size={test_size}: expected 0 to {n} examples", field="test_size")
        n_test = int(test_size)
    train = stratified_subset(y, n - n_test, seed)
    mask = np.ones(n, dtype=bool)
    mask[train] = False
    return train, np.flatnonzero(mask).astype(np.int64)
