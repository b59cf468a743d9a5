"""selector.tuning: BOHB over a learned selector's hyperparameters through offline_bohb's workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autodl.errors import AutoDLError
from metafeatures.features import DatasetFeatures
from portfolio.cost_matrix import CostMatrix
from selector.base import SelectorError
from selector.tuning import best_params, trial_params, tune_selector

NAMES = ["a1", "a2", "b1", "c1"]
SOURCES = ["a", "a", "b", "c"]


def _features(folder: Path) -> Path:
    """Four datasets of 8-dimensional Gaussian blobs around distinct means (a1, a2 share source a)."""
    rng = np.random.default_rng(0)
    for i, (name, source) in enumerate(zip(NAMES, SOURCES)):
        mean = np.zeros(8)
        mean[i] = 4.0
        x = rng.normal(mean, 1.0, size=(60, 8))
        labels = np.eye(2)[rng.integers(0, 2, 60)]
        DatasetFeatures(name, x[:40], labels[:40], test=x[40:], source=source,
                        descriptors={"train_samples": 40.0, "classes": 2.0}).save(folder)
    return folder


def _cost(path: Path) -> Path:
    # each row is an incumbent found on that dataset; a2's incumbent is best on b1 and c1
    alc = np.array([[0.9, 0.8, 0.3, 0.2],
                    [0.8, 0.9, 0.6, 0.7],
                    [0.2, 0.3, 0.9, 0.5],
                    [0.4, 0.1, 0.4, 0.9]])
    CostMatrix(NAMES, NAMES, alc, [["ok"] * 4 for _ in NAMES]).to_csv(path)
    return path


def test_trial_params_scale_the_budget_parameter_or_the_queries():
    params, share = trial_params("mlp-vote", {"neurons": 32, "dropout": 0.1, "lr": 1e-3}, 1 / 3, full_budget=30)
    assert params["epochs"] == 10 and share == 1.0
    params, share = trial_params("nearest-centroid", {}, 1 / 3)
    assert "epochs" not in params and share == pytest.approx(1 / 3)


def test_an_unknown_or_untunable_selector_is_refused(tmp_path: Path):
    with pytest.raises(SelectorError, match="no hyperparameter space"):
        tune_selector("oracle", tmp_path, tmp_path / "cost.csv", tmp_path / "run")
    with pytest.raises(AutoDLError, match="not found"):
        tune_selector("kmeans", tmp_path, tmp_path / "cost.csv", tmp_path / "run")


@pytest.mark.slow
def test_bohb_tunes_a_selector_with_a_worker_process_and_resumes(tmp_path: Path):
    features = _features(tmp_path / "features")
    cost = _cost(tmp_path / "cost_matrix.csv")
    out = tmp_path / "run"
    summary = tune_selector("nearest-centroid", features, cost, out, workers=1, iterations=1, min_budget=1 / 3,
                            query_size=8, n_queries=3)
    assert summary.new_trials == 4  # one bracket with eta 3: 3 configurations at 1/3, the best at 1
    best = best_params(out)
    assert best is not None
    params, alc = best
    # every held-out dataset of these blobs is told apart: the selector picks the nearest
    # other group's incumbent; the mean ALC is a value of the hand-made matrix, in [0, 1]
    assert 0.0 <= alc <= 1.0 and set(params) == {"metric", "standardize"}
    # the tuned hyperparameters go into the shipped selector's card
    from autodl_meta.cli import main
    from selector.registry import load_selector

    assert main(["selector", "fit", "--features", str(features), "--portfolio", str(cost), "--selector",
                 "nearest-centroid", "--tuned", str(out), "--out", str(tmp_path / "fitted")]) == 0
    fitted = load_selector(tmp_path / "fitted")
    assert {k: fitted.get_params()[k] for k in params} == params
    assert main(["selector", "fit", "--features", str(features), "--portfolio", str(cost), "--selector",
                 "kmeans", "--tuned", str(out), "--out", str(tmp_path / "x")]) != 0  # tuned another selector
    again = tune_selector("nearest-centroid", features, cost, out, workers=1, iterations=1, min_budget=1 / 3,
                          query_size=8, n_queries=3)
    assert again.new_trials == 0 and again.replayed == 4
    _cost(cost).write_text(cost.read_text().replace("0.9", "0.95", 1))  # the matrix changed: refused
    with pytest.raises(AutoDLError, match="objective_args"):
        tune_selector("nearest-centroid", features, cost, out, workers=1, iterations=1, min_budget=1 / 3,
                      query_size=8, n_queries=3)
