"""The registry of model kinds (:mod:`finetune.models`): this layer's kinds, the upper layers' kinds
found through their declared entry points (never imported by this layer), and the child
``python -m finetune.models`` reporting why it failed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import finetune.models as models
from autodl.errors import AutoDLError
from finetune.models import ENTRY_POINT_GROUP, find_model_kind, known_models, register_model_kind, resolve_model

ROOT = Path(__file__).resolve().parents[2]


def test_names_find_their_kind_by_name_then_prefix_then_py():
    assert find_model_kind("baseline:linear").name == "baseline:linear"
    assert find_model_kind("config:configs/finetune/default.yaml").name == "config:"
    assert find_model_kind("file-tf1:x/model.py").name == "file-tf1:"
    assert find_model_kind("some/where/model.py").name == "file:"
    assert find_model_kind("submission:some/where/model.py").name == "submission:"  # not file:
    assert find_model_kind("baseline:nothing") is None and find_model_kind("nothing") is None
    with pytest.raises(AutoDLError, match=r"unknown model 'nothing'; known: baseline:linear, .*submission"):
        resolve_model("nothing")


def test_known_models_list_baselines_first_then_the_others_as_registered():
    assert known_models() == [
        "baseline:linear", "baseline:default", "baseline:scratch", "baseline:single-best", "baseline:oracle",
        "config:PATH.yaml", "file:PATH/model.py", "file-tf1:PATH/model.py (a TensorFlow-1-era model.py)",
        "submission", "submission:PATH (a folder holding model.py, or a .zip)"]


def test_a_name_is_registered_once(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(models, "_KINDS", dict(models._KINDS))

    def resolve(name, **kwargs):
        return lambda meta, clock: None

    kind = register_model_kind("test:", resolve, usage="test:ANYTHING", simulated_clock=False)
    assert find_model_kind("test:x") is kind and not models.reads_simulated_clock("test:x")
    assert "test:ANYTHING" in known_models()
    register_model_kind("test:", resolve)  # the same resolver again (a module imported twice): replaced
    with pytest.raises(ValueError, match="registered already"):
        register_model_kind("test:", lambda name, **kwargs: None)
    with pytest.raises(ValueError, match="expected a name"):
        register_model_kind("", resolve)


def test_the_upper_layers_kinds_come_from_their_entry_points_without_importing_them_here():
    """A fresh process: finetune.models alone imports neither portfolio nor submission; the first
    name it lacks loads the declared modules, which register their kinds."""
    code = ("import sys; from finetune.models import find_model_kind\n"
            "before = sorted(m for m in sys.modules if m.split('.')[0] in ('portfolio', 'submission'))\n"
            "kinds = [find_model_kind(n).resolve.__module__ for n in ('submission', 'submission:x', "
            "'baseline:single-best', 'baseline:oracle')]\n"
            "import json; print(json.dumps([before, kinds]))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    before, kinds = json.loads(proc.stdout.splitlines()[-1])
    assert before == []
    assert kinds == ["submission.model_kinds", "submission.model_kinds", "portfolio.baselines", "portfolio.baselines"]


def test_the_declared_entry_points_are_installed():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][ENTRY_POINT_GROUP]
    installed = {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}
    assert installed == declared, "the installed entry points are stale: run `make install` (pip install -e .)"
    assert all(not why for why in models.load_declared_model_kinds().values())


def test_the_child_reports_why_it_refused(tmp_path: Path):
    report = tmp_path / "error.json"
    proc = subprocess.run([sys.executable, "-m", "finetune.models", "--dataset", str(tmp_path), "--model", "nothing",
                           "--out", str(tmp_path / "predictions")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "AUTODL_CHILD_ERROR_FILE": str(report)})
    assert proc.returncode == 2
    data = json.loads(report.read_text())
    assert data["kind"] == "refused" and data["message"].startswith("field '--model': unknown model 'nothing'; known: baseline:linear")
    assert "submission" in data["message"]  # the declared kinds are known in the child too
    assert proc.stderr.strip().splitlines()[-1] == f"autodl-meta: error: {data['message']}"
