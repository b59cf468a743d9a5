"""Tests of autodl.scoring: the organizers' reference cases, hand-worked values, bad input."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import PredictionError
from autodl.scoring import (
    ScoreResult,
    accuracy,
    alc,
    load_prediction,
    nauc,
    parse_scores_txt,
    plot_learning_curve,
    read_prediction_folder,
    score_folder,
    tiedrank,
    transform_time,
    write_scores,
)

VECTORS = Path(__file__).parents[2].parent / "shared" / "scoring_vectors"
CASES = sorted(p.name for p in VECTORS.iterdir() if p.is_dir()) if VECTORS.is_dir() else []


# --------------------------------------------------------------------------------------
# The organizers' own outputs
# --------------------------------------------------------------------------------------
@pytest.mark.skipif(not CASES, reason=f"reference scoring cases not found at {VECTORS}")
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
