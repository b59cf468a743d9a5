"""The command line: one-line errors, and end-to-end runs of ingestion + scoring."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from autodl.score_files import parse_scores_txt
from autodl.scoring import alc
from autodl.writer import write_arrays


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autodl_meta.cli", *args], capture_output=True,
                          text=True, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("autodl-meta: error:")
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory) -> Path:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = np.rint(d.images * 255 / 16).astype(np.uint8)[..., None]
    root = tmp_path_factory.mktemp("cli") / "digits"
    write_arrays(root, "digits", x[:600], d.target[:600], x[1500:1700], d.target[1500:1700])
    return root


def test_help_lists_the_stages():
    proc = cli("--help")
    assert proc.returncode == 0
    for stage in ("data", "run", "score", "benchmark"):
        assert stage in proc.stdout


def test_show_missing_folder_is_one_line(tmp_path):
    assert_one_line_error(cli("data", "show", str(tmp_path / "nope")), "nope")


def test_show_bad_metadata_is_one_line(small_digits, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(small_digits, bad)
    md = bad / "digits.data" / "train" / "metadata.textproto"
    md.write_text(md.read_text().replace("output_dim: 10", "output_dim: ten"))
    assert_one_line_error(cli("data", "show", str(bad)), "metadata.textproto")


def test_show_summarises(small_digits, tmp_path):
    proc = cli("data", "show", str(small_digits), "--grid", str(tmp_path / "grid.png"))
    assert proc.returncode == 0, proc.stderr
    assert "train" in proc.stdout and "600 examples" in proc.stdout
    assert (tmp_path / "grid.png").stat().st_size > 1000


def test_unknown_model_and_protocol(small_digits, tmp_path):
    assert_one_line_error(cli("run", "--dataset", str(small_digits), "--model", "baseline:nope",
                              "--out", str(tmp_path)), "baseline:linear")
    assert_one_line_error(cli("run", "--dataset", str(small_digits), "--model", "baseline:linear",
                              "--protocol", "huge", "--out", str(tmp_path)), "mini")


def test_score_rejects_bad_predictions(small_digits, tmp_path):
    (tmp_path / "start.txt").write_text("task_name: digits\ntime_budget: 60\nstart_time: 0\n0: 1.0\n")
    (tmp_path / "digits.predict_0").write_text("0.1 0.2\n")
    assert_one_line_error(cli("score", "--predictions", str(tmp_path), "--solution",
                              str(small_digits / "digits.solution")), "digits.predict_0")


@pytest.mark.slow
@pytest.mark.smoke
def test_run_linear_end_to_end(small_digits, tmp_path):
    out = tmp_path / "run"
    proc = cli("run", "--dataset", str(small_digits), "--model", "baseline:linear", "--protocol", "mini",
               "--time-budget", "12", "--out", str(out))
    assert proc.returncode == 0, proc.stderr + (out / "ingestion.log").read_text()
    scores = parse_scores_txt(out / "scores" / "scores.txt")
    # wall clock: structure and the budget only (what the curve reaches depends on the
    # machine's load): the learning curve is consistent and inside the budget
    assert scores["timestamps"] and max(scores["timestamps"]) <= 12.0
    assert scores["score"] == pytest.approx(alc(scores["timestamps"], scores["nauc_scores"], 12.0, 3.0))
    assert (out / "scores" / "learning-curve.png").stat().st_size > 10_000
    start = yaml.safe_load((out / "predictions" / "start.txt").read_text())
    assert start["time_budget"] == 12.0
    # the baseline plans with the wall clock: on a heavily loaded machine its last step
    # can run past T, and then the scoring side must have ended it (seen with four
    # processes on two cores); otherwise it ended by itself, successfully
    end = out / "predictions" / "end.txt"
    if end.is_file():
        assert yaml.safe_load(end.read_text())["ingestion_success"] == 1
    else:
        assert "ended by the scoring side" in proc.stdout


@pytest.mark.slow
@pytest.mark.smoke
def test_scoring_side_ends_an_ingestion_that_outlives_the_budget(small_digits, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        import time
        import numpy as np

        class Model:
            def __init__(self, metadata):
                self.metadata = metadata
                self.done_training = False
                self.calls = 0

            def train(self, dataset, remaining_time_budget=None):
                if self.calls:
                    time.sleep(3600)  # never returns within the budget

            def test(self, dataset, remaining_time_budget=None):
                self.calls += 1
                return np.full((200, self.metadata.get_output_size()), 0.5)
    """))
    out = tmp_path / "run"
    proc = cli("run", "--dataset", str(small_digits), "--model", f"file:{model}", "--time-budget", "4",
               "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "ended by the scoring side" in proc.stdout
    assert not (out / "predictions" / "end.txt").exists()
    scores = parse_scores_txt(out / "scores" / "scores.txt")
    assert len(scores["timestamps"]) == 1 and scores["nauc_scores"] == [0.0]


@pytest.mark.slow
def test_end_written_in_time_is_finished_even_if_the_interpreter_is_slow_to_exit(small_digits, tmp_path):
    """end.txt written within the budget: a slow interpreter shutdown (here an atexit hook
    that outlasts the budget) is not an ingestion that outlived the budget."""
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        import atexit
        import time
        import numpy as np

        atexit.register(time.sleep, 6)  # the interpreter's shutdown ends after the budget

        class Model:
            def __init__(self, metadata):
                self.metadata = metadata
                self.done_training = False

            def train(self, dataset, remaining_time_budget=None):
                self.done_training = True

            def test(self, dataset, remaining_time_budget=None):
                return np.full((200, self.metadata.get_output_size()), 0.5)
    """))
    out = tmp_path / "run"
    proc = cli("run", "--dataset", str(small_digits), "--model", f"file:{model}", "--time-budget", "4",
               "--out", str(out), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "outlived" not in proc.stdout and "ALC 0.0000" in proc.stdout
    assert yaml.safe_load((out / "predictions" / "end.txt").read_text())["ingestion_success"] == 1


@pytest.mark.slow
def test_a_crashing_model_is_reported_as_crashed_not_as_an_alc(small_digits, tmp_path):
    model = tmp_path / "model.py"
    model.write_text(textwrap.dedent("""
        class Model:
            def __init__(self, metadata):
                self.done_training = False

            def train(self, dataset, remaining_time_budget=None):
                raise RuntimeError("the model broke")

            def test(self, dataset, remaining_time_budget=None):
                raise AssertionError("never reached")
    """))
    out = tmp_path / "run"
    proc = cli("run", "--dataset", str(small_digits), "--model", f"file:{model}", "--time-budget", "4",
               "--out", str(out), timeout=120)
    assert proc.returncode == 1
    assert "crashed" in proc.stderr and "RuntimeError: the model broke" in proc.stderr
    assert "ALC" not in proc.stdout and "Traceback" not in proc.stderr


def test_line_progress_writes_a_line_per_item_with_the_time_left_only_without_a_terminal():
    """A build in the background logs each cost-matrix cell and the time left; a terminal gets the bar only."""
    import io
    from types import SimpleNamespace

    from autodl_meta._cli_util import LineProgress, cell_text

    now = [100.0]
    out = io.StringIO()
    lines = LineProgress(SimpleNamespace(disable=True), "cost matrix", clock=lambda: now[0], out=out)
    lines.start()
    row = {"source": "fixed:a", "target": "digits", "seed": 1, "status": "ok", "alc": 0.81234}
    now[0] += 600.0  # one cell in 10 min: 3 more take 30 min
    lines.update(1, 4, cell_text(row))
    now[0] += 6600.0  # two cells in 2 h: 2 more take 2 h
    lines.update(2, 4, cell_text({**row, "alc": None, "status": "crashed"}))
    lines.update(4, 4, cell_text(row))
    text = out.getvalue().splitlines()
    assert text[0].endswith("cost matrix 1/4: fixed:a on digits seed 1: ok 0.812; about 30 min left")
    assert text[1].endswith("cost matrix 2/4: fixed:a on digits seed 1: crashed n/a; about 2.0 h left")
    assert text[2].endswith("cost matrix 4/4: fixed:a on digits seed 1: ok 0.812")
    shown = io.StringIO()
    LineProgress(SimpleNamespace(disable=False), "cost matrix", out=shown).update(1, 4, "x")
    assert shown.getvalue() == ""


def test_the_build_logs_its_cost_matrix_cells_without_a_terminal(capsys):
    from autodl_meta.cli_portfolio import _BuildProgress

    show = _BuildProgress()
    show.cell(0, 2, None)
    show.cell(1, 2, {"source": "fixed:a", "target": "digits", "seed": 0, "status": "ok", "alc": 0.5})
    show.close()
    assert "cost matrix 1/2: fixed:a on digits seed 0: ok 0.500" in capsys.readouterr().out
