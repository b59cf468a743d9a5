"""``autodl-meta score``: the metric option, run in-process on a shipped reference case."""

from __future__ import annotations

from pathlib import Path

import pytest

from autodl.score_files import parse_scores_txt
from autodl.scoring import learning_curve_area
from autodl_meta.cli import main

CASE = Path(__file__).resolve().parents[1] / "data" / "scoring_vectors" / "multiclass_3preds"


def _score(tmp_path: Path, *extra: str) -> dict:
    rc = main(["score", "--predictions", str(CASE / "predictions"), "--solution",
               str(CASE / "solution" / "task.solution"), "--out", str(tmp_path), *extra])
    assert rc == 0
    assert (tmp_path / "learning-curve.png").stat().st_size > 1000
    return parse_scores_txt(tmp_path / "scores.txt")


def test_score_default_is_the_alc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = _score(tmp_path)
    expected = parse_scores_txt(CASE / "expected" / "scores.txt")
    assert scores["score"] == pytest.approx(expected["score"], abs=1e-9)
    assert "metric" not in scores
    assert capsys.readouterr().out.startswith("ALC ")


def test_score_metric_bac(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scores = _score(tmp_path, "--metric", "bac")
    expected = parse_scores_txt(CASE / "expected" / "scores.txt")
    assert scores["metric"] == "bac"
    assert scores["nauc_scores"] == pytest.approx(expected["nauc_scores"], abs=1e-9)
    assert scores["score"] == pytest.approx(learning_curve_area(scores["timestamps"], scores["nbac_scores"],
                                                                1200.0, 60.0, rule="trapezoid"))
    assert capsys.readouterr().out.startswith("BAC-ALC ")


def test_score_rejects_an_unknown_metric(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["score", "--predictions", ".", "--solution", "x.solution", "--metric", "auc"])
    assert info.value.code == 2
    assert "invalid choice: 'auc'" in capsys.readouterr().err
