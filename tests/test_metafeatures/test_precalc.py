"""Tests of metafeatures.precalc: batch statistics after trimming, against values worked by hand."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from metafeatures.precalc import STATS, precalc, precalc_batches, trim_count

# A 5 x 2 batch. With p = 0.2, floor(0.2 * 5) = 1 value is dropped from each tail of each column:
#   column 0: sorted [1, 2, 3, 4, 100] -> [2, 3, 4]
#   column 1: sorted [0, 1, 1, 5, 7]   -> [1, 1, 5]
BATCH = np.array([[1.0, 5.0],
                  [100.0, 0.0],
                  [3.0, 1.0],
                  [4.0, 1.0],
                  [2.0, 7.0]])


def test_precalc_matches_hand_computed_values() -> None:
    out = precalc(BATCH, p=0.2)
    assert out.shape == (6 * 2,) and out.dtype == np.float32
    # column 0, [2, 3, 4]: mean 3, median 3; deviations -1, 0, 1:
    #   m2 = (1 + 0 + 1) / 3 = 2/3 (var), std = sqrt(2/3) = 0.81650
    #   m3 = (-1 + 0 + 1) / 3 = 0 -> skew 0
    #   m4 = (1 + 0 + 1) / 3 = 2/3; m4 / m2^2 = (2/3) / (4/9) = 1.5 -> excess kurtosis 1.5 - 3 = -1.5
    # column 1, [1, 1, 5]: mean 7/3, median 1; deviations -4/3, -4/3, 8/3:
    #   m2 = (16/9 + 16/9 + 64/9) / 3 = 32/9 = 3.5556, std = sqrt(32/9) = 1.8856
    #   m3 = (-64/27 - 64/27 + 512/27) / 3 = 128/27; skew = (128/27) / (32/9)^1.5
    #      = 128 / 32^1.5 = 4 / sqrt(32) = 1 / sqrt(2) = 0.70711
    #   m4 = (256/81 + 256/81 + 4096/81) / 3 = 1536/81; m4 / m2^2 = 1536 / 1024 = 1.5 -> kurt -1.5
    expected = {
        "mean": [3.0, 7 / 3],
        "median": [3.0, 1.0],
        "std": [math.sqrt(2 / 3), math.sqrt(32 / 9)],
        "var": [2 / 3, 32 / 9],
        "skew": [0.0, 1 / math.sqrt(2)],
        "kurt": [-1.5, -1.5],
    }
    for s, name in enumerate(STATS):  # statistic by statistic, each over the 2 features
        np.testing.assert_allclose(out[2 * s:2 * s + 2], expected[name], rtol=1e-6, atol=1e-6, err_msg=name)


def test_precalc_without_trimming_keeps_every_value() -> None:
    out = precalc(BATCH, stats=("mean", "median", "var"), p=0.0)
    # column 0: (1 + 100 + 3 + 4 + 2) / 5 = 22, median 3; column 1: (5 + 0 + 1 + 1 + 7) / 5 = 2.8, median 1
    # var column 1: deviations 2.2, -2.8, -1.8, -1.8, 4.2 -> (4.84 + 7.84 + 3.24 + 3.24 + 17.64) / 5 = 7.36
    np.testing.assert_allclose(out[:4], [22.0, 2.8, 3.0, 1.0], rtol=1e-6)
    assert out[5] == pytest.approx(7.36, rel=1e-6)


def test_precalc_orders_output_by_the_stats_given() -> None:
    out = precalc(BATCH, stats=("kurt", "mean"), p=0.2)
    np.testing.assert_allclose(out, [-1.5, -1.5, 3.0, 7 / 3], rtol=1e-6)


def test_precalc_agrees_with_scipy_on_random_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.gamma(2.0, size=(40, 3))
    out = precalc(x, p=0.1).reshape(6, 3)
    # scipy's trim_mean also cuts int(0.1 * 40) = 4 values from each end
    np.testing.assert_allclose(out[0], sps.trim_mean(x, 0.1, axis=0), rtol=1e-5)
    kept = np.sort(x, axis=0)[4:36]
    np.testing.assert_allclose(out[4], sps.skew(kept, axis=0, bias=True), rtol=1e-5)
    np.testing.assert_allclose(out[5], sps.kurtosis(kept, axis=0, bias=True), rtol=1e-5)
    np.testing.assert_allclose(out[2], kept.std(axis=0), rtol=1e-5)


def test_constant_columns_give_zero_skew_and_kurtosis_without_warnings() -> None:
    x = np.array([[1.0, 0.3], [2.0, 0.3], [4.0, 0.3], [8.0, 0.3]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = precalc(x, stats=("std", "skew", "kurt")).reshape(3, 2)
    assert np.isfinite(out).all()
    assert out[0, 1] == 0 and out[1, 1] == 0 and out[2, 1] == 0
    assert out[1, 0] != 0  # the other column is skewed


def test_a_single_row_is_a_valid_batch() -> None:
    out = precalc(np.array([[1.0, -2.0]]))
    np.testing.assert_allclose(out, [1, -2, 1, -2, 0, 0, 0, 0, 0, 0, 0, 0])


def test_trim_count() -> None:
    assert trim_count(5, 0.2) == 1
    assert trim_count(100, 0.29) == 29  # 0.29 * 100 = 28.999999999999996 in floating point
    assert trim_count(3, 0.4) == 1      # floor(1.2) = 1 from each tail: 1 value left
    assert trim_count(1, 0.49) == 0


@pytest.mark.parametrize("p", [0.5, -0.1, 1.0, "0.1", True])
def test_p_out_of_range_is_refused(p: object) -> None:
    with pytest.raises(ValueError, match="p="):
        precalc(BATCH, p=p)  # type: ignore[arg-type]


def test_unknown_statistics_are_refused_with_the_known_ones() -> None:
    with pytest.raises(ValueError, match="'entropy'.*mean, median, std, var, skew, kurt"):
        precalc(BATCH, stats=("mean", "entropy"))
    with pytest.raises(ValueError, match="twice"):
        precalc(BATCH, stats=("mean", "mean"))
    with pytest.raises(ValueError, match="empty"):
        precalc(BATCH, stats=())


def test_bad_batches_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        precalc(np.zeros(5))
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        precalc(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        precalc(np.array([[1.0], [np.nan]]))


def test_precalc_batches_shapes_and_seeding() -> None:
    x = np.random.default_rng(1).normal(size=(20, 4)).astype(np.float32)
    a = precalc_batches(x, 8, 5, rng=3, stats=("mean", "std"), p=0.125)
    assert a.shape == (5, 2 * 4) and a.dtype == np.float32
    np.testing.assert_array_equal(a, precalc_batches(x, 8, 5, rng=np.random.default_rng(3), stats=("mean", "std"),
                                                     p=0.125))
    assert not np.allclose(a, precalc_batches(x, 8, 5, rng=4, stats=("mean", "std"), p=0.125))
    assert len({tuple(row) for row in a}) == 5  # independent batches


def test_precalc_batches_draw_without_replacement_within_a_batch() -> None:
    x = np.arange(12, dtype=np.float64).reshape(6, 2)
    # a batch of all 6 rows without replacement is a permutation of x: its mean is x's mean
    out = precalc_batches(x, 6, 4, rng=0, stats=("mean",))
    np.testing.assert_allclose(out, np.tile(x.mean(axis=0), (4, 1)))


def test_precalc_batches_with_replacement_when_the_batch_is_larger() -> None:
    x = np.arange(6, dtype=np.float64).reshape(3, 2)
    out = precalc_batches(x, 10, 3, rng=0, stats=("mean", "median"))
    assert out.shape == (3, 4) and np.isfinite(out).all()
    assert not np.allclose(out[:, :2], x.mean(axis=0))  # some rows drawn more often than others


def test_precalc_batches_refuses_bad_arguments() -> None:
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match="batch_size"):
        precalc_batches(x, 0, 3)
    with pytest.raises(ValueError, match="n_batches"):
        precalc_batches(x, 2, 0)
    with pytest.raises(ValueError, match="non-empty"):
        precalc_batches(np.zeros((0, 2)), 2, 1)
    with pytest.raises(ValueError, match="unknown"):
        precalc_batches(x, 2, 1, stats=("mode",))
