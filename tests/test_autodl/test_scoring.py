"""Tests of autodl.scoring, autodl.score_files and the learning curve of autodl.plots: the
organizers' reference cases, hand-worked values, bad input."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import PredictionError
from autodl.plots import plot_learning_curve
from autodl.score_files import (
    ScoreResult,
    load_prediction,
    parse_scores_txt,
    read_prediction_folder,
    score_folder,
    write_scores,
)
from autodl.scoring import (
    METRICS,
    accuracy,
    alc,
    balanced_accuracy,
    binarize_predictions,
    learning_curve_area,
    nauc,
    nbac,
    prediction_score,
    tiedrank,
    transform_time,
)

# The organizers' scorer's outputs on small prediction folders (tests/data/README.md).
VECTORS = Path(__file__).resolve().parents[1] / "data" / "scoring_vectors"
CASES = sorted(p.name for p in VECTORS.iterdir() if p.is_dir())


# --------------------------------------------------------------------------------------
# The organizers' own outputs
# --------------------------------------------------------------------------------------
def test_reference_vectors_are_shipped() -> None:
    assert CASES == ["binary_preds_ties", "late_prediction", "multiclass_3preds", "multilabel_skipcol",
                     "short_budget_T20", "single_early"]


@pytest.mark.parametrize("case", CASES)
def test_reference_vectors(case: str) -> None:
    d = VECTORS / case
    result = score_folder(d / "predictions", d / "solution" / "task.solution")
    expected = parse_scores_txt(d / "expected" / "scores.txt")
    assert result.score == pytest.approx(expected["score"], abs=1e-9)
    assert result.duration == pytest.approx(expected["Duration"], abs=1e-9)
    assert result.timestamps == pytest.approx(expected["timestamps"], abs=1e-9)
    assert result.nauc_scores == pytest.approx(expected["nauc_scores"], abs=1e-9)
    if "accuracy" in expected:
        assert result.accuracy is not None
        assert result.accuracy == pytest.approx(expected["accuracy"], abs=1e-9)
    else:
        assert result.accuracy is None
    assert result.ingestion_success is True
    assert result.metric == "alc" and result.nbac_scores is None


@pytest.mark.parametrize("case", CASES)
def test_reference_vectors_bac_metric(case: str) -> None:
    # The "bac" metric changes only the score: NAUC and accuracy stay the organizers'.
    d = VECTORS / case
    result = score_folder(d / "predictions", d / "solution" / "task.solution", metric="bac")
    expected = parse_scores_txt(d / "expected" / "scores.txt")
    assert result.metric == "bac"
    assert result.nauc_scores == pytest.approx(expected["nauc_scores"], abs=1e-9)
    assert result.nbac_scores is not None and len(result.nbac_scores) == len(result.timestamps)
    assert all(-1.0 <= v <= 1.0 for v in result.nbac_scores)
    assert result.score == learning_curve_area(result.timestamps, result.nbac_scores, result.time_budget,
                                               60.0, rule="trapezoid")


# --------------------------------------------------------------------------------------
# NAUC and accuracy, worked by hand
# --------------------------------------------------------------------------------------
SOL = np.array([[1], [0], [1], [0]], dtype=float)


def test_tiedrank_averages_ties() -> None:
    assert tiedrank([3.0, 1.0, 1.0, 2.0]).tolist() == [4.0, 1.5, 1.5, 3.0]


def test_nauc_perfect_inverted_and_tied() -> None:
    assert nauc(SOL, np.array([[0.9], [0.1], [0.8], [0.2]])) == pytest.approx(1.0)
    assert nauc(SOL, np.array([[0.1], [0.9], [0.2], [0.8]])) == pytest.approx(-1.0)
    assert nauc(SOL, np.full((4, 1), 0.3)) == pytest.approx(0.0)
    # ranks of [0.5, 0.5, 0.9, 0.1] are [2.5, 2.5, 4, 1]; positives rows 0 and 2:
    # AUC = (2.5 + 4 - 2*3/2) / (2*2) = 0.875, NAUC = 0.75
    assert nauc(SOL, np.array([[0.5], [0.5], [0.9], [0.1]])) == pytest.approx(0.75)


def test_nauc_skips_single_class_columns() -> None:
    good = np.array([[0.5], [0.5], [0.9], [0.1]])
    sol = np.hstack([SOL, np.zeros((4, 1)), np.ones((4, 1))])
    pred = np.hstack([good, np.array([[0.9], [0.8], [0.1], [0.7]]), np.array([[0.1], [0.2], [0.3], [0.4]])])
    assert nauc(sol, pred) == pytest.approx(0.75)


def test_nauc_without_valid_column_is_zero(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="autodl.scoring"):
        assert nauc(np.zeros((3, 2)), np.random.default_rng(0).random((3, 2))) == 0.0
    assert "undefined" in caplog.text


def test_nauc_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        nauc(SOL, np.zeros((3, 1)))


def test_accuracy_multiclass_and_multilabel() -> None:
    sol = np.array([[1, 0], [0, 1]], dtype=float)
    pred = np.array([[3, 1], [1, 1]], dtype=float)
    assert accuracy(sol, pred) == pytest.approx((0.75 + 0.5) / 2)
    multilabel = np.array([[1, 1], [0, 1]], dtype=float)
    assert accuracy(multilabel, pred) is None


# --------------------------------------------------------------------------------------
# ALC, worked by hand
# --------------------------------------------------------------------------------------
def test_transform_time_ends() -> None:
    assert transform_time(0.0, 1200, 60) == 0.0
    assert transform_time(1200.0, 1200, 60) == pytest.approx(1.0)
    assert transform_time(3.0, 60, 3) == pytest.approx(math.log(2) / math.log(21))


def test_alc_single_prediction_at_start_equals_its_score() -> None:
    assert alc([0.0], [0.7], time_budget=1200) == pytest.approx(0.7)


def test_alc_two_steps() -> None:
    # T=60, t0=3: t~(3) = log 2 / log 21, t~(21) = log 8 / log 21 = 3 log 2 / log 21
    r = math.log(2) / math.log(21)
    expected = (3 * r - r) * 0.5 + (1 - 3 * r) * 0.8
    assert alc([3.0, 21.0], [0.5, 0.8], time_budget=60, t0=3) == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.8 - 1.4 * r)


def test_alc_no_predictions() -> None:
    assert alc([], [], time_budget=60, t0=3) == 0.0


def test_alc_late_prediction_counts_like_the_organizers() -> None:
    # t~(93) = log 32 / log 21 = 5 log 2 / log 21 > 1: the last step has negative width.
    r = math.log(2) / math.log(21)
    expected = (5 * r - r) * 0.5 + (1 - 5 * r) * 1.0
    got = alc([3.0, 93.0], [0.5, 1.0], time_budget=60, t0=3)
    assert got == pytest.approx(expected, abs=1e-12)
    assert got != pytest.approx(alc([3.0], [0.5], time_budget=60, t0=3))


def test_learning_curve_area_step_is_the_alc() -> None:
    ts, ss = [2.0, 9.5, 30.0, 75.0], [0.41, 0.83, 0.9, 0.95]
    assert learning_curve_area(ts, ss, 60.0, 3.0) == alc(ts, ss, 60.0, 3.0)
    assert learning_curve_area(ts, ss, 60.0, 3.0, rule="step") == alc(ts, ss, 60.0, 3.0)


# --------------------------------------------------------------------------------------
# The 2018 beta tests' metric: balanced accuracy of binary decisions, trapezoid area
# --------------------------------------------------------------------------------------
def test_binarize_threshold_and_argmax_ties() -> None:
    scores = np.array([[0.5, 0.49], [0.3, 0.3], [0.1, 0.7]])
    # threshold: >= 0.5 is a positive (0.5 included), 0.49 is not
    assert binarize_predictions(scores, multiclass=False).tolist() == [[1, 0], [0, 0], [0, 1]]
    # argmax: one 1 per row, a tie goes to the first tied column (numpy.argmax)
    assert binarize_predictions(scores, multiclass=True).tolist() == [[1, 0], [1, 0], [0, 1]]
    # one column: always the threshold
    assert binarize_predictions(np.array([0.2, 0.5]), multiclass=True).tolist() == [[0], [1]]


def test_balanced_accuracy_binary_with_a_score_at_the_threshold() -> None:
    # solution [1, 0, 1, 0], scores [0.9, 0.5, 0.7, 0.1] -> decisions [1, 1, 1, 0]
    # (0.5 counts as positive): TP = 2, FN = 0 -> TPR = 1; negatives rows 1, 3: FP = 1, TN = 1
    # -> TNR = 1/2. BAC = (1 + 1/2) / 2 = 0.75, NBAC = 2 * 0.75 - 1 = 0.5.
    pred = np.array([[0.9], [0.5], [0.7], [0.1]])
    assert balanced_accuracy(SOL, pred) == pytest.approx(0.75)
    assert nbac(SOL, pred) == pytest.approx(0.5)
    assert balanced_accuracy(SOL, np.array([[1.0], [0.0], [1.0], [0.0]])) == 1.0
    assert nbac(SOL, np.full((4, 1), 0.9)) == 0.0  # all positive: TPR = 1, TNR = 0


MC_SOLUTION = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
MC_PRED = np.array([[0.4, 0.4, 0.2],    # tie of columns 0 and 1 -> class 0 (right)
                    [0.2, 0.3, 0.5],    # -> class 2 (wrong: 1)
                    [0.1, 0.1, 0.8],    # -> class 2 (right)
                    [0.3, 0.3, 0.4]])   # -> class 2 (wrong: 0); every score below 0.5


def test_balanced_accuracy_multiclass_argmax_with_ties() -> None:
    # Decisions (one-hot of the argmax): classes [0, 2, 2, 2].
    # column 0: positives rows 0, 3 -> TP 1, FN 1, TPR 1/2; negatives rows 1, 2 -> TN 2, TNR 1;
    #           BAC 3/4
    # column 1: positive row 1 -> TPR 0; negatives rows 0, 2, 3 -> TNR 1; BAC 1/2
    # column 2: positive row 2 -> TPR 1; negatives rows 0, 1, 3 -> FP 2, TN 1, TNR 1/3; BAC 2/3
    # mean = (3/4 + 1/2 + 2/3) / 3 = (9 + 6 + 8) / 36 = 23/36; NBAC = 46/36 - 1 = 5/18
    assert balanced_accuracy(MC_SOLUTION, MC_PRED) == pytest.approx(23 / 36)
    assert nbac(MC_SOLUTION, MC_PRED) == pytest.approx(5 / 18)
    assert prediction_score(MC_SOLUTION, MC_PRED, "bac") == pytest.approx(5 / 18)
    assert prediction_score(MC_SOLUTION, MC_PRED, "alc") == nauc(MC_SOLUTION, MC_PRED)
    # Thresholded at 0.5 instead: decisions rows [0 0 0], [0 0 1], [0 0 1], [0 0 0].
    # column 0: TPR 0, TNR 1 -> 1/2; column 1: TPR 0, TNR 1 -> 1/2;
    # column 2: TPR 1, negatives rows 0, 1, 3 -> FP 1 (row 1), TNR 2/3 -> 5/6
    # mean = (1/2 + 1/2 + 5/6) / 3 = 11/18
    assert balanced_accuracy(MC_SOLUTION, MC_PRED, multiclass=False) == pytest.approx(11 / 18)


def test_balanced_accuracy_multilabel_skips_single_class_columns() -> None:
    # Multi-label (row 0 has three labels). Column 2 has no positive, column 3 no negative:
    # both are left out, whatever is predicted there.
    sol = np.array([[1, 1, 0, 1],
                    [0, 1, 0, 1],
                    [1, 0, 0, 1],
                    [0, 0, 0, 1]], dtype=float)
    pred = np.array([[0.8, 0.3, 0.9, 0.2],
                     [0.6, 0.7, 0.1, 0.9],
                     [0.2, 0.4, 0.2, 0.7],
                     [0.1, 0.2, 0.3, 0.8]])
    # column 0: solution [1 0 1 0], decisions [1 1 0 0] -> TPR 1/2, TNR 1/2 -> BAC 1/2
    # column 1: solution [1 1 0 0], decisions [0 1 0 0] -> TPR 1/2, TNR 1   -> BAC 3/4
    # mean over the two valid columns = 5/8; NBAC = 1/4
    assert balanced_accuracy(sol, pred) == pytest.approx(5 / 8)
    assert nbac(sol, pred) == pytest.approx(0.25)
    flipped = pred.copy()
    flipped[:, 2:] = 1 - flipped[:, 2:]
    assert balanced_accuracy(sol, flipped) == pytest.approx(5 / 8)


def test_balanced_accuracy_without_valid_column_and_bad_shape(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="autodl.scoring"):
        assert balanced_accuracy(np.zeros((3, 2)), np.ones((3, 2))) == 0.5
    assert "undefined" in caplog.text
    with pytest.raises(ValueError, match="shape"):
        balanced_accuracy(SOL, np.zeros((3, 1)))
    with pytest.raises(ValueError, match="metric='auc'"):
        prediction_score(SOL, np.zeros((4, 1)), "auc")


def test_trapezoid_two_predictions() -> None:
    # T=60, t0=3, r = log 2 / log 21: t~(3) = r, t~(21) = 3r. Points (0, 0), (r, 0.5),
    # (3r, 0.8), (1, 0.8): area = r * 0.5/2 + 2r * (0.5 + 0.8)/2 + (1 - 3r) * 0.8
    #                           = 0.25r + 1.3r + 0.8 - 2.4r = 0.8 - 0.85r
    r = math.log(2) / math.log(21)
    got = learning_curve_area([3.0, 21.0], [0.5, 0.8], 60, 3, rule="trapezoid")
    assert got == pytest.approx(0.8 - 0.85 * r, abs=1e-12)
    # the step rule on the same points: 0.8 - 1.4r (test_alc_two_steps)
    assert learning_curve_area([3.0, 21.0], [0.5, 0.8], 60, 3, rule="step") == \
        pytest.approx(0.8 - 1.4 * r, abs=1e-12)
    # points are sorted by time first
    assert learning_curve_area([21.0, 3.0], [0.8, 0.5], 60, 3, rule="trapezoid") == pytest.approx(got)


def test_trapezoid_ends_and_ties() -> None:
    r = math.log(2) / math.log(21)
    # a prediction at t = 0: (0, 0) -> (0, 0.7) has no width; held flat to 1
    assert learning_curve_area([0.0], [0.7], 60, 3, rule="trapezoid") == pytest.approx(0.7)
    # a prediction exactly at T: the ramp (0, 0) -> (1, 0.9) is a triangle, 0.45
    assert learning_curve_area([60.0], [0.9], 60, 3, rule="trapezoid") == pytest.approx(0.45)
    # two predictions at the same time: a vertical segment, then the later score held:
    # r * 0.2/2 + 0 + (1 - r) * 0.6 = 0.6 - 0.5r
    assert learning_curve_area([3.0, 3.0], [0.2, 0.6], 60, 3, rule="trapezoid") == \
        pytest.approx(0.6 - 0.5 * r, abs=1e-12)
    assert learning_curve_area([], [], 60, 3, rule="trapezoid") == 0.0


def test_trapezoid_leaves_out_late_predictions(caplog: pytest.LogCaptureFixture) -> None:
    # t = 93 > T = 60 is left out: (0, 0), (r, 0.5), (1, 0.5) -> 0.25r + (1 - r) * 0.5 = 0.5 - 0.25r
    r = math.log(2) / math.log(21)
    with caplog.at_level(logging.WARNING, logger="autodl.scoring"):
        got = learning_curve_area([3.0, 93.0], [0.5, 1.0], 60, 3, rule="trapezoid")
    assert got == pytest.approx(0.5 - 0.25 * r, abs=1e-12)
    assert "left out" in caplog.text
    assert learning_curve_area([61.0], [1.0], 60, 3, rule="trapezoid") == 0.0


def test_learning_curve_area_bad_arguments() -> None:
    with pytest.raises(ValueError, match="rule='simpson'"):
        learning_curve_area([1.0], [0.5], 60, 3, rule="simpson")
    with pytest.raises(ValueError, match="before the start"):
        learning_curve_area([-1.0], [0.5], 60, 3, rule="trapezoid")
    with pytest.raises(ValueError, match="as many"):
        learning_curve_area([1.0, 2.0], [0.5], 60, 3, rule="trapezoid")


# --------------------------------------------------------------------------------------
# Prediction folders
# --------------------------------------------------------------------------------------
def _write_folder(tmp_path: Path, preds: dict[int, str], stamps: dict[int, float] | None = None,
                  task: str = "mytask", budget: float = 60.0, end: bool = True) -> Path:
    d = tmp_path / "predictions"
    d.mkdir()
    stamps = stamps if stamps is not None else {k: 1000.0 + 5 * (k + 1) for k in preds}
    lines = ["ingestion_pid: 1", f"task_name: {task}", f"time_budget: {budget}", "start_time: 1000.0"]
    lines += [f"{k}: {t}" for k, t in sorted(stamps.items())]
    (d / "start.txt").write_text("\n".join(lines) + "\n")
    for k, text in preds.items():
        (d / f"{task}.predict_{k}").write_text(text)
    if end:
        (d / "end.txt").write_text("ingestion_duration: 20.0\ningestion_success: 1\nend_time: 1020.0\n")
    return d


GOOD = "0.9 0.1\n0.2 0.8\n0.7 0.3\n"
SOLUTION = np.array([[1, 0], [0, 1], [1, 0]], dtype=float)


def test_score_folder_small(tmp_path: Path) -> None:
    d = _write_folder(tmp_path, {0: "0.5 0.5\n0.5 0.5\n0.5 0.5\n", 1: GOOD})
    (d / "mytask.predict_2.tmp").write_text("garbage")  # ingestion's temporary file
    result = score_folder(d, SOLUTION, t0=3)
    assert result.task_name == "mytask"
    assert result.timestamps == [5.0, 10.0]
    assert result.nauc_scores == pytest.approx([0.0, 1.0])
    assert result.accuracy == pytest.approx([0.5, (0.9 + 0.8 + 0.7) / 3])
    assert result.score == pytest.approx(1 - transform_time(10.0, 60, 3))
    assert result.duration == 10.0
    assert result.ingestion_success is True
    # time budget override
    assert score_folder(d, SOLUTION, time_budget=120, t0=3).time_budget == 120.0


def test_score_folder_bac_metric(tmp_path: Path) -> None:
    d = _write_folder(tmp_path, {0: "0.5 0.5\n0.5 0.5\n0.5 0.5\n", 1: GOOD})
    result = score_folder(d, SOLUTION, t0=3, metric="bac")
    # prediction 0 (t = 5 s): all tied -> argmax column 0 for every row. Column 0: TPR 1,
    # TNR 0 -> 1/2; column 1: TPR 0, TNR 1 -> 1/2. BAC 1/2, NBAC 0.
    # prediction 1 (t = 10 s): right everywhere, NBAC 1.
    assert result.metric == "bac" and result.curve_scores == result.nbac_scores
    assert result.nbac_scores == pytest.approx([0.0, 1.0])
    assert result.nauc_scores == pytest.approx([0.0, 1.0])
    assert result.accuracy == pytest.approx([0.5, (0.9 + 0.8 + 0.7) / 3])
    # a = t~(5), b = t~(10): (0, 0), (a, 0), (b, 1), (1, 1) -> (b - a)/2 + (1 - b) = 1 - (a + b)/2
    a, b = transform_time(5.0, 60, 3), transform_time(10.0, 60, 3)
    assert result.score == pytest.approx(1 - (a + b) / 2, abs=1e-12)
    assert score_folder(d, SOLUTION, t0=3).score == pytest.approx(1 - b)  # the ALC, for comparison
    with pytest.raises(ValueError, match="metric='auc'"):
        score_folder(d, SOLUTION, metric="auc")


def test_read_prediction_folder(tmp_path: Path) -> None:
    d = _write_folder(tmp_path, {0: GOOD}, stamps={0: 1005.0, 1: 1010.0}, end=False)
    info, preds = read_prediction_folder(d)
    assert info["task_name"] == "mytask" and info["time_budget"] == 60.0
    assert info["start_time"] == 1000.0 and info["end_info"] is None
    assert [(k, t, p.name) for k, t, p in preds] == [(0, 1005.0, "mytask.predict_0"),
                                                     (1, 1010.0, "mytask.predict_1")]


def test_missing_start_txt(tmp_path: Path) -> None:
    with pytest.raises(PredictionError, match="start.txt"):
        score_folder(tmp_path, SOLUTION)


def test_listed_prediction_missing(tmp_path: Path) -> None:
    d = _write_folder(tmp_path, {0: GOOD}, stamps={0: 1005.0, 1: 1010.0}, end=False)
    with pytest.raises(PredictionError, match=r"mytask\.predict_1"):
        score_folder(d, SOLUTION)
    result = score_folder(d, SOLUTION, partial_ok=True)
    assert result.timestamps == [5.0] and result.ingestion_success is None


def test_solution_from_file(tmp_path: Path) -> None:
    d = _write_folder(tmp_path, {0: GOOD})
    sol = tmp_path / "mytask.solution"
    np.savetxt(sol, SOLUTION, fmt="%.0f")
    assert score_folder(d, sol).nauc_scores == pytest.approx([1.0])


@pytest.mark.parametrize(("text", "message"), [
    ("0.9 0.1\nnan 0.8\n0.7 0.3\n", "finite"),
    ("0.9 0.1\n0.2 0.8\n", "2 rows; the solution has 3"),
    ("0.9 0.1 0\n0.2 0.8 0\n0.7 0.3 0\n", "3 columns; the solution has 2"),
    ("0.9 0.1\n0.2 abc\n0.7 0.3\n", "not a number"),
    ("0.9 0.1\n0.2\n0.7 0.3\n", "row 2 has 1 values"),
    ("", "empty"),
])
def test_bad_prediction(tmp_path: Path, text: str, message: str) -> None:
    d = _write_folder(tmp_path, {0: text})
    with pytest.raises(PredictionError, match=message) as info:
        score_folder(d, SOLUTION)
    assert "mytask.predict_0" in str(info.value)


def test_load_prediction_without_shape(tmp_path: Path) -> None:
    p = tmp_path / "x.predict_0"
    p.write_text("1 2\n3 4\n")
    assert load_prediction(p).tolist() == [[1.0, 2.0], [3.0, 4.0]]


# --------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------
def _result() -> ScoreResult:
    ts, ns = [2.0, 9.5, 30.0], [0.41, 0.83, 1e-05 + 0.9]
    return ScoreResult(task_name="mytask", time_budget=60.0, t0=3.0, start_time=1000.0,
                       timestamps=ts, nauc_scores=ns, accuracy=[0.3, 0.6, 0.7],
                       score=alc(ts, ns, 60.0, 3.0), duration=30.0, ingestion_success=True)


def test_write_scores_round_trip(tmp_path: Path) -> None:
    result = _result()
    path = write_scores(result, tmp_path / "out")
    assert path.name == "scores.txt"
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == \
        ["score", "Duration", "timestamps", "nauc_scores", "accuracy"]
    parsed = parse_scores_txt(path)
    assert parsed["score"] == result.score
    assert parsed["Duration"] == result.duration
    assert parsed["timestamps"] == result.timestamps
    assert parsed["nauc_scores"] == result.nauc_scores
    assert parsed["accuracy"] == result.accuracy
    assert json.loads((tmp_path / "out" / "scores.json").read_text()) == result.to_dict()


def test_write_scores_bac_round_trip(tmp_path: Path) -> None:
    r = _result()
    nbacs = [0.2, 0.6, 0.7]
    result = ScoreResult(task_name=r.task_name, time_budget=60.0, t0=3.0, start_time=1000.0,
                         timestamps=r.timestamps, nauc_scores=r.nauc_scores, accuracy=None,
                         score=learning_curve_area(r.timestamps, nbacs, 60.0, 3.0, rule="trapezoid"),
                         duration=30.0, metric="bac", nbac_scores=nbacs)
    path = write_scores(result, tmp_path)
    assert [line.split(":")[0] for line in path.read_text().splitlines()] == \
        ["score", "Duration", "timestamps", "nauc_scores", "metric", "nbac_scores"]
    parsed = parse_scores_txt(path)
    assert parsed["metric"] == "bac" and parsed["nbac_scores"] == nbacs
    assert parsed["score"] == result.score
    assert json.loads((tmp_path / "scores.json").read_text()) == result.to_dict()
    assert plot_learning_curve(result, tmp_path / "bac.png").stat().st_size > 1000


def test_score_result_metric_checked() -> None:
    assert METRICS == ("alc", "bac")
    with pytest.raises(ValueError, match="metric='auc'"):
        ScoreResult("t", 60.0, 3.0, 0.0, [], [], None, 0.0, 0.0, metric="auc")
    with pytest.raises(ValueError, match="nbac_scores"):
        ScoreResult("t", 60.0, 3.0, 0.0, [], [], None, 0.0, 0.0, metric="bac")


def test_write_scores_without_accuracy(tmp_path: Path) -> None:
    result = ScoreResult("t", 60.0, 3.0, 0.0, [], [], None, 0.0, 0.0)
    parsed = parse_scores_txt(write_scores(result, tmp_path))
    assert parsed == {"score": 0.0, "Duration": 0.0, "timestamps": [], "nauc_scores": []}


def test_parse_organizers_format(tmp_path: Path) -> None:
    p = tmp_path / "scores.txt"
    p.write_text("score: 0.5\nDuration: 1.0\ntimestamps: [1.0]\n"
                 "nauc_scores: [np.float64(0.0620671482051689), np.float64(1e-05)]\n")
    assert parse_scores_txt(p)["nauc_scores"] == [0.0620671482051689, 1e-05]


def test_plot_learning_curve(tmp_path: Path) -> None:
    path = plot_learning_curve(_result(), tmp_path / "fig" / "curve.png")
    data = path.read_bytes()
    assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_learning_curve_late_and_empty(tmp_path: Path) -> None:
    late = ScoreResult("late", 60.0, 3.0, 0.0, [3.0, 93.0], [0.5, 1.0], None,
                       alc([3.0, 93.0], [0.5, 1.0], 60.0, 3.0), 93.0)
    assert plot_learning_curve(late, tmp_path / "late.png").stat().st_size > 0
    empty = ScoreResult("empty", 60.0, 3.0, 0.0, [], [], None, 0.0, 0.0)
    assert plot_learning_curve(empty, tmp_path / "empty.png").stat().st_size > 0
    late_bac = ScoreResult("late", 60.0, 3.0, 0.0, [3.0, 93.0], [0.5, 1.0], None,
                           learning_curve_area([3.0, 93.0], [0.4, 0.9], 60.0, 3.0, rule="trapezoid"), 93.0,
                           metric="bac", nbac_scores=[0.4, 0.9])
    assert plot_learning_curve(late_bac, tmp_path / "late-bac.png").stat().st_size > 0
    empty_bac = ScoreResult("empty", 60.0, 3.0, 0.0, [], [], None, 0.0, 0.0, metric="bac", nbac_scores=[])
    assert plot_learning_curve(empty_bac, tmp_path / "empty-bac.png").stat().st_size > 0
