"""The ingestion loop: output folder, budget, failures, clocks."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from autodl.clock import SimulatedClock, WallClock
from autodl.ingestion import format_predictions, run_ingestion, source_of
from autodl.score_files import score_folder
from autodl.writer import write_arrays


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("ing") / "tiny"
    x = rng.integers(0, 256, (12, 6, 6, 1), dtype=np.uint8)
    xt = rng.integers(0, 256, (5, 6, 6, 1), dtype=np.uint8)
    write_arrays(root, "tiny", x, np.arange(12) % 3, xt, np.arange(5) % 3)
    return root


class StepModel:
    """Predicts the solution more and more exactly; advances a simulated clock."""

    def __init__(self, meta, clock, steps=3, seconds=10.0, fail_at=None, shape=None):
        self.meta, self.clock, self.steps, self.seconds = meta, clock, steps, seconds
        self.fail_at, self.shape = fail_at, shape
        self.calls = 0
        self.done_training = False
        self.sources = []

    def train(self, dataset, remaining_time_budget=None):
        self.sources.append(source_of(dataset))
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("boom")
        if hasattr(self.clock, "advance"):
            self.clock.advance(self.seconds)
        self.calls += 1
        self.done_training = self.calls >= self.steps

    def test(self, dataset, remaining_time_budget=None):
        n = self.meta.output_dim
        shape = self.shape or (5, n)
        return np.full(shape, 0.5) + 0.01 * self.calls


def test_output_folder_like_the_organizers(tiny, tmp_path):
    clock = SimulatedClock(start=1000.0)
    res = run_ingestion(tiny, lambda m, c: StepModel(m, c), tmp_path, time_budget=100, clock=clock)
    assert res.success and res.num_predictions == 3
    start = yaml.safe_load((tmp_path / "start.txt").read_text())
    assert start["task_name"] == "tiny" and start["time_budget"] == 100.0 and start["start_time"] == 1000.0
    assert [start[k] for k in range(3)] == [1010.0, 1020.0, 1030.0]
    end = yaml.safe_load((tmp_path / "end.txt").read_text())
    assert end["ingestion_success"] == 1 and end["ingestion_duration"] == 30.0
    rows = (tmp_path / "tiny.predict_2").read_text().splitlines()
    assert len(rows) == 5 and rows[0].split() == ["0.53"] * 3
    assert not list(tmp_path.glob("*.tmp"))
    assert score_folder(tmp_path, tiny / "tiny.solution").timestamps == [10.0, 20.0, 30.0]


def test_model_sees_tf_datasets_with_their_source(tiny, tmp_path):
    model = {}

    def factory(m, c):
        model["m"] = StepModel(m, c, steps=1)
        return model["m"]

    run_ingestion(tiny, factory, tmp_path, time_budget=100, clock=SimulatedClock())
    ds, subset = model["m"].sources[0]
    assert subset == "train" and ds.name == "tiny"


def test_budget_stops_the_loop(tiny, tmp_path):
    clock = SimulatedClock(start=0.0)
    res = run_ingestion(tiny, lambda m, c: StepModel(m, c, steps=100, seconds=30), tmp_path,
                        time_budget=100, clock=clock)
    # predictions at 30, 60, 90, 120: the loop stops once the budget is spent
    assert res.timestamps == [30.0, 60.0, 90.0, 120.0]


def test_failing_model_keeps_earlier_predictions(tiny, tmp_path):
    res = run_ingestion(tiny, lambda m, c: StepModel(m, c, steps=5, fail_at=2), tmp_path,
                        time_budget=100, clock=SimulatedClock())
    assert not res.success and "boom" in res.error
    assert sorted(p.name for p in tmp_path.glob("tiny.predict_*")) == ["tiny.predict_0", "tiny.predict_1"]
    assert yaml.safe_load((tmp_path / "end.txt").read_text())["ingestion_success"] == 0


def test_wrong_prediction_shape_is_a_failure(tiny, tmp_path):
    res = run_ingestion(tiny, lambda m, c: StepModel(m, c, shape=(4, 3)), tmp_path, time_budget=100,
                        clock=SimulatedClock())
    assert not res.success and "(4, 3)" in res.error and "(5, 3)" in res.error


def test_failing_constructor(tiny, tmp_path):
    def factory(m, c):
        raise ValueError("no")

    res = run_ingestion(tiny, factory, tmp_path, time_budget=10, clock=WallClock())
    assert not res.success and res.num_predictions == 0
    assert (tmp_path / "end.txt").is_file()


def test_format_predictions_uses_g():
    assert format_predictions(np.array([[1.0, 0.25], [1e-7, 0.123456789]])) == "1 0.25\n1e-07 0.123457\n"


def test_simulated_clock_only_moves_forward():
    c = SimulatedClock(start=5.0)
    assert c.advance(2.5) == 7.5 and c.now() == 7.5
    with pytest.raises(ValueError, match="forward"):
        c.advance(-1)
