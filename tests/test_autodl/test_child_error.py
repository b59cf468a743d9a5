"""How an ingestion child tells ``run_local`` why it failed (:mod:`autodl.child_error`): a JSON report
in the file the parent names, not a line the parent looks for in the child's log."""

from __future__ import annotations

import json
import sys
import textwrap

import numpy as np
import pytest

from autodl.child_error import (
    ERROR_FILE_ENV,
    ChildError,
    exception_line,
    read_child_error,
    report_child_error,
)
from autodl.errors import AutoDLError
from autodl.model_runs import run_local
from autodl.protocol import Protocol
from autodl.writer import write_arrays


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("child") / "tiny"
    write_arrays(root, "tiny", rng.integers(0, 256, (6, 4, 4, 1), dtype=np.uint8), np.arange(6) % 2,
                 rng.integers(0, 256, (4, 4, 4, 1), dtype=np.uint8), np.arange(4) % 2)
    return root


def test_a_report_is_written_where_the_parent_says_and_read_back(tmp_path, monkeypatch):
    path = tmp_path / "error.json"
    monkeypatch.setenv(ERROR_FILE_ENV, str(path))
    report = report_child_error("refused", "data/x: not found")
    assert report.line() == "autodl-meta: error: data/x: not found"
    assert json.loads(path.read_text())["kind"] == "refused"
    assert read_child_error(path) == report
    assert ChildError("model failed", "boom").line() == "model failed: boom"
    assert read_child_error(tmp_path / "absent.json") is None
    (tmp_path / "other.json").write_text('{"kind": "refused"}')  # not a report: ignored
    assert read_child_error(tmp_path / "other.json") is None
    with pytest.raises(ValueError, match="kind"):
        report_child_error("odd", "x")


def test_without_a_file_named_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(ERROR_FILE_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert report_child_error("crashed", "ValueError: x").line() == "ValueError: x"
    assert list(tmp_path.iterdir()) == []


def test_an_exception_is_one_line_as_its_traceback_ends():
    assert exception_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert exception_line(AutoDLError(None, "no")) == "autodl.errors.AutoDLError: no"
    assert exception_line(KeyError()) == "KeyError"


def _child(body: str) -> str:
    return textwrap.dedent("""
        import os, sys, time
        from autodl.child_error import report_child_error
        out = sys.argv[1]
    """) + textwrap.dedent(body)


def test_run_local_reports_the_childs_report_and_not_its_log(tiny, tmp_path):
    # refused before starting: the report's line, though the log says something else last
    script = _child("""
        print("ERROR something logged", file=sys.stderr)
        report_child_error("refused", "bad input")
        print("ValueError: a misleading last line", file=sys.stderr)
        sys.exit(2)
    """)
    out = tmp_path / "refused"
    (out / "predictions").mkdir(parents=True)
    with pytest.raises(AutoDLError, match="ingestion failed before starting: autodl-meta: error: bad input$"):
        run_local(tiny, [sys.executable, "-c", script, str(out / "predictions")], Protocol("t", 5.0, 1.0), out)
    assert not (out / "ingestion-error.json").exists()  # read, then removed

    # ran, and the model failed: the report's line is the run's error
    script = _child("""
        now = time.time()
        open(os.path.join(out, "start.txt"), "w").write(f"task_name: tiny\\ntime_budget: 5\\nstart_time: {now}\\n")
        open(os.path.join(out, "tiny.predict_0"), "w").write("1 0\\n0 1\\n1 0\\n0 1\\n")
        open(os.path.join(out, "start.txt"), "a").write(f"0: {now + 0.1}\\n")
        open(os.path.join(out, "end.txt"), "w").write("ingestion_duration: 0.1\\ningestion_success: 0\\nend_time: 0\\n")
        report_child_error("model failed", "RuntimeError: boom")
        print("model failed: RuntimeError: boom", file=sys.stderr)
        sys.exit(1)
    """)
    out = tmp_path / "failed"
    (out / "predictions").mkdir(parents=True)
    res = run_local(tiny, [sys.executable, "-c", script, str(out / "predictions")], Protocol("t", 5.0, 1.0), out)
    assert res.ingestion_success is False and res.error == "model failed: RuntimeError: boom"


def test_a_child_that_reports_nothing_is_judged_by_its_log(tiny, tmp_path):
    script = "import sys\nprint('Traceback (most recent call last):', file=sys.stderr)\n" \
             "print('OSError: disk gone', file=sys.stderr)\nsys.exit(1)\n"
    out = tmp_path / "silent"
    (out / "predictions").mkdir(parents=True)
    with pytest.raises(AutoDLError, match="before starting: OSError: disk gone$"):
        run_local(tiny, [sys.executable, "-c", script, str(out / "predictions")], Protocol("t", 5.0, 1.0), out)
