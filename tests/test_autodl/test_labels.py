"""Tests of autodl.labels: label matrices, multi-label detection, stratified subsets and splits."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.errors import AutoDLError, ConversionError
from autodl.labels import (
    is_multilabel,
    label_strata,
    labels_to_matrix,
    stratified_split,
    stratified_subset,
)

# --- labels_to_matrix ----------------------------------------------------------------------


def test_labels_as_class_indices() -> None:
    np.testing.assert_array_equal(labels_to_matrix([2, 0, 1]), np.eye(3, dtype=np.float32)[[2, 0, 1]])
    np.testing.assert_array_equal(labels_to_matrix(np.array([1, 1]), 4),
                                  [[0, 1, 0, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(labels_to_matrix([[0, 3], [], [1]], 4),
                                  [[1, 0, 0, 1], [0, 0, 0, 0], [0, 1, 0, 0]])
    with pytest.raises(ConversionError, match="y_train holds the class index 4"):
        labels_to_matrix([0, 4], 4, "y_train")
    with pytest.raises(ConversionError, match="y_train holds the class index 4"):
        labels_to_matrix(np.array([0, 4]), 4, "y_train")
    with pytest.raises(ConversionError, match="-1"):
        labels_to_matrix([0, -1])
    with pytest.raises(ConversionError, match="-1"):
        labels_to_matrix(np.array([0, -1]))
    with pytest.raises(ConversionError, match="columns"):
        labels_to_matrix(np.zeros((2, 3)), 4)
    with pytest.raises(ConversionError, match=r"\[0, 1\]"):
        labels_to_matrix(np.full((2, 3), 2.0))


def test_labels_as_scores_and_matrices() -> None:
    y = labels_to_matrix([{0: 0.9, 2: 0.25}, {}, {1: 1.0}], 3)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.9, 0, 0.25], [0, 0, 0], [0, 1, 0]])
    np.testing.assert_array_equal(labels_to_matrix(y), y)
    assert labels_to_matrix([], 5).shape == (0, 5)
    with pytest.raises(ConversionError, match="score 1.5 for class 1"):
        labels_to_matrix([{1: 1.5}], 3, "y_test")


# --- multi-label detection ------------------------------------------------------------------

def _one_hot(n: int, classes: int = 5) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[np.arange(n) % classes]


def test_clean_one_hot_is_multiclass() -> None:
    assert not is_multilabel(_one_hot(300))


def test_one_all_zero_row_is_not_multilabel() -> None:
    y = _one_hot(300)
    y[17] = 0
    assert not is_multilabel(y)


def test_one_soft_row_is_not_multilabel() -> None:
    y = _one_hot(300)
    y[3] = [0.9, 0, 0.25, 0, 0]       # one label >= 0.5
    assert not is_multilabel(y)
    y[4] = [0.5, 0.5, 0, 0, 0]        # two labels, but a single row
    assert not is_multilabel(y)
    y[5] = [0.3, 0.3, 0.4, 0, 0]      # soft labels, none >= 0.5: still one class
    assert not is_multilabel(y)


def test_genuine_multilabel() -> None:
    y = _one_hot(300)
    y[::2, 4] = 1                     # every other example has a second label
    assert is_multilabel(y)
    assert is_multilabel(np.array([[1, 1, 0], [0, 1, 1], [1, 0, 0]]))   # 2 of 3 rows


def test_multilabel_thresholds() -> None:
    """At least 2 rows and at least 1 % of the rows must have several labels (or none)."""
    y = _one_hot(1000)
    second = (np.arange(1000) + 1) % 5  # a class each row does not have yet
    y[np.arange(9), second[:9]] = 1   # 9 rows of 1000 with two labels: below 1 %
    assert not is_multilabel(y)
    y[9, second[9]] = 1               # 10 rows: 1 %
    assert is_multilabel(y)
    small = _one_hot(50)
    small[0, 1] = 1                   # one row is not a share, even of 50
    assert not is_multilabel(small)
    small[1, 2] = 1
    assert is_multilabel(small)
    assert not is_multilabel(small, min_rows=3)
    many_empty = _one_hot(100)
    many_empty[:20] = 0               # a fifth of the rows have no class: classes not exhaustive
    assert is_multilabel(many_empty)
    assert not is_multilabel(np.zeros((0, 3)))
    with pytest.raises(AutoDLError, match=r"\[N, C\]"):
        is_multilabel(np.zeros(4))


# --- stratified subsets and splits ----------------------------------------------------------

def test_stratified_subset_proportions() -> None:
    y = np.repeat(np.arange(4), [50, 30, 15, 5])
    keep = stratified_subset(y, 20, seed=2)
    assert keep.dtype == np.int64 and len(keep) == 20 and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(np.bincount(y[keep]), [10, 6, 3, 1])
    np.testing.assert_array_equal(stratified_subset(y, 200), np.arange(100))
    assert len(stratified_subset(y, 0)) == 0


def test_stratified_subset_of_a_class_sorted_set_keeps_every_class() -> None:
    y = np.repeat(np.arange(10), 30)  # stored sorted by class: the first 20 are all class 0
    for n in (10, 20, 45):
        keep = stratified_subset(y, n, seed=0)
        assert set(y[keep].tolist()) == set(range(10))
    # as a one-hot matrix: the same subset
    np.testing.assert_array_equal(stratified_subset(np.eye(10)[y], 20, 4), stratified_subset(y, 20, 4))


def test_stratified_subset_is_seeded() -> None:
    y = np.repeat(np.arange(5), 40)
    a, b = stratified_subset(y, 30, seed=7), stratified_subset(y, 30, seed=7)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, stratified_subset(y, 30, seed=8))


def test_stratified_subset_fewer_than_classes() -> None:
    y = np.repeat(np.arange(10), 5)
    keep = stratified_subset(y, 4, seed=1)
    assert len(set(y[keep].tolist())) == 4  # four different classes


def test_label_strata() -> None:
    np.testing.assert_array_equal(label_strata([3, 1]), [3, 1])
    y = np.array([[1, 0, 1, 0],    # labels 0 and 2: 2 is rarer
                  [1, 1, 0, 0],    # labels 0 and 1: 1 is rarer (2 rows against 3)
                  [0, 1, 0, 0],
                  [1, 0, 0, 0],
                  [0.2, 0, 0.4, 0],  # soft, no label >= 0.5: its highest score
                  [0, 0, 0, 0]])   # no label
    np.testing.assert_array_equal(label_strata(y), [2, 1, 1, 0, 2, -1])
    np.testing.assert_array_equal(label_strata(np.ones((2, 3))), [0, 0])  # ties: the lower index


def test_stratified_subset_multilabel_keeps_rare_labels() -> None:
    rng = np.random.default_rng(0)
    y = np.zeros((200, 4))
    y[:, 0] = 1                         # everyone has label 0
    y[rng.permutation(200)[:40], 1] = 1
    y[np.arange(190, 200), 3] = 1       # a rare label, on the last rows
    keep = stratified_subset(y, 20, seed=3)
    assert y[keep, 3].sum() >= 1 and y[keep, 1].sum() >= 1


def test_stratified_subset_rejects_bad_n() -> None:
    with pytest.raises(AutoDLError) as exc:
        stratified_subset([0, 1], -1)
    assert exc.value.field == "n"


def test_stratified_split() -> None:
    y = np.repeat(np.arange(3), [30, 15, 6])
    train, test = stratified_split(y, 1 / 3, seed=5)
    assert len(test) == 17 and len(train) == 34
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)
    assert set(y[test].tolist()) == {0, 1, 2}
    np.testing.assert_array_equal(np.bincount(y[train]), [20, 10, 4])
    again = stratified_split(y, 1 / 3, seed=5)
    np.testing.assert_array_equal(again[1], test)
    # a number of test examples; a fraction leaves each side at least one example
    assert len(stratified_split(y, 5)[1]) == 5
    assert [len(s) for s in stratified_split([0, 1], 0.01)] == [1, 1]
    assert [len(s) for s in stratified_split([0, 1, 1], 0.99)] == [1, 2]
    for bad in (0.0, 1.0, 52, "half"):
        with pytest.raises(AutoDLError) as exc:
            stratified_split(y, bad)
        assert exc.value.field == "test_size"
