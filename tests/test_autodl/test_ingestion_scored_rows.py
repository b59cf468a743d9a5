"""Ingestion's ``scored_rows`` (the scored test rows, the rest to ``unlabelled.predict``) and the
environment ``run_local`` hands its child."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from autodl.clock import SimulatedClock
from autodl.errors import AutoDLError
from autodl.ingestion import UNLABELLED_PREDICT, run_ingestion
from autodl.model_runs import run_local
from autodl.protocol import Protocol
from autodl.score_files import load_prediction, score_folder
from autodl.writer import write_arrays

N_TEST, N_UNLABELLED, K = 4, 3, 3


@pytest.fixture(scope="module")
def appended(tmp_path_factory):
    """A dataset whose test set is 4 test examples followed by 3 'unlabelled' ones (7 records)."""
    rng = np.random.default_rng(1)
    root = tmp_path_factory.mktemp("scored") / "app"
    x = rng.integers(0, 256, (9, 5, 5, 1), dtype=np.uint8)
    xt = rng.integers(0, 256, (N_TEST + N_UNLABELLED, 5, 5, 1), dtype=np.uint8)
    write_arrays(root, "app", x, np.arange(9) % K, xt, np.arange(N_TEST + N_UNLABELLED) % K)
    return root


class RowModel:
    """Predicts row i of call c as ``c + i / 100`` in every column; advances a simulated clock."""

    def __init__(self, meta, clock, calls=3, fail_at=None):
        self.clock, self.calls, self.fail_at = clock, calls, fail_at
        self.n = 0
        self.done_training = False

    def train(self, dataset, remaining_time_budget=None):
        if self.n == self.fail_at:
            raise RuntimeError("boom")
        self.clock.advance(5.0)
        self.n += 1
        self.done_training = self.n >= self.calls

    def test(self, dataset, remaining_time_budget=None):
        rows = N_TEST + N_UNLABELLED
        return np.repeat((self.n + np.arange(rows) / 100)[:, None], K, axis=1) / 10


def test_scored_rows_keeps_the_test_rows_in_the_prediction_files_and_the_rest_apart(appended, tmp_path):
    res = run_ingestion(appended, RowModel, tmp_path, time_budget=100, clock=SimulatedClock(),
                        scored_rows=N_TEST)
    assert res.success and res.num_predictions == 3
    for k in range(3):
        pred = load_prediction(tmp_path / f"app.predict_{k}")
        assert pred.shape == (N_TEST, K)  # only what is scored
        np.testing.assert_allclose(pred[:, 0], (k + 1 + np.arange(N_TEST) / 100) / 10)
    rest = load_prediction(tmp_path / UNLABELLED_PREDICT)
    assert rest.shape == (N_UNLABELLED, K)  # one row per unlabelled example, of the last prediction
    np.testing.assert_allclose(rest[:, 0], (3 + np.arange(N_TEST, N_TEST + N_UNLABELLED) / 100) / 10)
    # the prediction folder scores against a solution of the test rows only
    score = score_folder(tmp_path, np.eye(K)[np.arange(N_TEST) % K], t0=3.0)
    assert score.num_predictions == 3


def test_unlabelled_rows_survive_a_crash_and_stale_ones_go(appended, tmp_path):
    (tmp_path / UNLABELLED_PREDICT).write_text("stale\n")
    res = run_ingestion(appended, lambda m, c: RowModel(m, c, fail_at=2), tmp_path, time_budget=100,
                        clock=SimulatedClock(), scored_rows=N_TEST)
    assert res.status == "crashed" and res.num_predictions == 2
    rest = load_prediction(tmp_path / UNLABELLED_PREDICT)
    np.testing.assert_allclose(rest[:, 0], (2 + np.arange(N_TEST, N_TEST + N_UNLABELLED) / 100) / 10)
    # without scored_rows every row is scored and no unlabelled file is left
    res = run_ingestion(appended, RowModel, tmp_path, time_budget=100, clock=SimulatedClock())
    assert load_prediction(tmp_path / "app.predict_0").shape == (N_TEST + N_UNLABELLED, K)
    assert not (tmp_path / UNLABELLED_PREDICT).exists()


@pytest.mark.parametrize("bad", [0, N_TEST + N_UNLABELLED + 1, 2.5])
def test_scored_rows_outside_the_test_set_is_refused_before_the_model_is_built(appended, tmp_path, bad):
    built = []
    with pytest.raises(AutoDLError, match="scored_rows"):
        run_ingestion(appended, lambda m, c: built.append(1), tmp_path, time_budget=10, clock=SimulatedClock(),
                      scored_rows=bad)
    assert not built


def test_run_local_hands_the_child_extra_environment_variables(appended, tmp_path):
    """The child sees ``env`` beside this process's environment (the self-service run names the
    decision file this way)."""
    script = textwrap.dedent("""
        import os, sys, time
        out = sys.argv[1]
        now = time.time()
        open(os.path.join(out, "start.txt"), "w").write(f"task_name: app\\ntime_budget: 5\\nstart_time: {now}\\n")
        open(os.path.join(out, "app.predict_0"), "w").write("1 0 0\\n0 1 0\\n0 0 1\\n1 0 0\\n0 1 0\\n0 0 1\\n1 0 0\\n")
        open(os.path.join(out, "start.txt"), "a").write(f"0: {now + 0.1}\\n")
        open(os.path.join(out, "env.txt"), "w").write(os.environ.get("AUTODL_META_TEST_VAR", "unset") + " "
                                                      + os.environ.get("PATH", "")[:1])
        open(os.path.join(out, "end.txt"), "w").write("ingestion_duration: 0.1\\ningestion_success: 1\\nend_time: 0\\n")
    """)
    out = tmp_path / "run"
    (out / "predictions").mkdir(parents=True)
    res = run_local(appended, [sys.executable, "-c", script, str(out / "predictions")],
                    Protocol("t", 5.0, 1.0), out, env={"AUTODL_META_TEST_VAR": "hello"})
    assert res.ingestion_success and res.score.num_predictions == 1
    value, path_head = (out / "predictions" / "env.txt").read_text().split(" ")
    assert value == "hello" and path_head  # the rest of the environment is kept
