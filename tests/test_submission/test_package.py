"""The submission zip (:mod:`submission.package`): contents, checksums, refusals, and a run of
the unzipped submission with only its folder on the import path."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from submission.package import PackageError, build_submission, extract_submission, run_isolated

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_zip(tiny_artifacts, tmp_path_factory) -> Path:
    return build_submission(tiny_artifacts, tmp_path_factory.mktemp("zip") / "submission.zip").path


def test_zip_holds_model_py_the_code_the_artifacts_and_nothing_else(tiny_zip):
    with zipfile.ZipFile(tiny_zip) as zf:
        names = zf.namelist()
        table = json.loads(zf.read("artifacts/checksums.json"))
    assert "model.py" in names and "requirements.txt" in names
    tops = {n.split("/")[0] for n in names}
    assert tops == {"model.py", "requirements.txt", "artifacts", "autodl", "finetune", "metafeatures", "selector",
                    "submission", "configs"}
    assert not any("__pycache__" in n or n.startswith("tests/") for n in names)
    assert {"portfolio.json", "summary.json", "selector/selector.json", "selector/selector.safetensors",
            "submission.json", "weights/tf_efficientnet_lite0.pth"} <= set(table["files"])
    assert all(len(v["sha256"]) == 64 for v in table["files"].values())


@pytest.mark.slow
@pytest.mark.smoke
def test_unzipped_submission_runs_with_only_its_folder_on_the_path(tiny_zip, unseen, tmp_path):
    """The acceptance test of issue 9: unzip into an empty folder, run through (the zip's own
    copy of) ingestion on a dataset the portfolio has never seen; it predicts, never after
    T, imports nothing from the source tree, reads the zip's weights and logs its decision."""
    folder = extract_submission(tiny_zip, tmp_path / "unzipped")
    budget = 20.0
    result, log = run_isolated(folder, unseen, tmp_path / "predictions", budget, timeout=600)
    assert result["success"], log[-2000:]
    assert result["outside"] == [], result["outside"]
    assert result["timestamps"] and max(result["timestamps"]) <= budget
    assert (tmp_path / "predictions" / "stripes.predict_0").is_file()
    assert "submission ready" in log
    assert ("selected alpha" in log or "selected beta" in log or "using the single best" in log), log[-2000:]
    assert str(folder / "artifacts" / "weights" / "tf_efficientnet_lite0.pth") in log  # the zip's weights


def test_corrupted_weights_in_the_zip_are_refused_on_load(tiny_zip, unseen, tmp_path):
    """A weights file that fails its checksum is not loaded: the selector's embedder cannot be
    built, the submission says so and goes on with the single best."""
    from autodl.dataset import AutoDLDataset
    from submission.agent import MetaModel

    folder = extract_submission(tiny_zip, tmp_path / "unzipped")
    w = folder / "artifacts" / "weights" / "tf_efficientnet_lite0.pth"
    w.write_bytes(w.read_bytes()[:-16] + b"\x00" * 16)
    from finetune import weights

    saved = list(weights._WEIGHTS_DIRS)
    try:
        model = MetaModel(AutoDLDataset(unseen).metadata("train"), folder / "artifacts")
    finally:
        weights._WEIGHTS_DIRS[:] = saved
    events = " | ".join(model.decision["events"])
    assert "building the selector's embedder failed" in events and "SHA-256" in events
    assert model.selector is None and model.learner is not None


def _portfolio_with_manifest(tiny_artifacts: Path, tmp_path: Path) -> Path:
    p = Path(shutil.copytree(tiny_artifacts, tmp_path / "portfolio"))
    (p / "checksums.json").rename(p / "manifest.json")
    return p


def test_build_refuses_a_portfolio_that_fails_its_checksums(tiny_artifacts, tmp_path):
    p = _portfolio_with_manifest(tiny_artifacts, tmp_path)
    data = json.loads((p / "portfolio.json").read_text())
    data["incumbents"][0]["alc"] = 0.99
    (p / "portfolio.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match=r"portfolio\.json.*SHA-256"):
        build_submission(p, tmp_path / "s.zip")
    assert not (tmp_path / "s.zip").exists()


def test_build_refuses_a_corrupted_selector(tiny_artifacts, tmp_path):
    p = Path(shutil.copytree(tiny_artifacts, tmp_path / "portfolio"))
    (p / "checksums.json").unlink()  # only the selector's own card guards it now
    arrays = p / "selector" / "selector.safetensors"
    arrays.write_bytes(arrays.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(PackageError, match=r"selector\.safetensors.*SHA-256"):
        build_submission(p, tmp_path / "s.zip")


def test_build_refuses_a_selector_fitted_on_other_datasets(tiny_artifacts, tmp_path):
    p = Path(shutil.copytree(tiny_artifacts, tmp_path / "portfolio"))
    (p / "checksums.json").unlink()
    data = json.loads((p / "portfolio.json").read_text())
    data["incumbents"] = data["incumbents"][:1]
    (p / "portfolio.json").write_text(json.dumps(data))
    with pytest.raises(PackageError, match="without an incumbent.*beta"):
        build_submission(p, tmp_path / "s.zip")


def test_build_refuses_a_zip_over_the_limit_and_leaves_nothing(tiny_artifacts, tmp_path):
    with pytest.raises(PackageError, match="exceeds the limit"):
        build_submission(tiny_artifacts, tmp_path / "s.zip", max_bytes=1_000_000)
    assert not list(tmp_path.glob("s.zip*"))


def test_cli_build_error_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "submission", "build", "--portfolio",
                           str(tmp_path / "nothing"), "--out", str(tmp_path / "s.zip")],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "nothing" in lines[0] and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_default_portfolio_builds_a_zip_under_300_mb(tmp_path):
    """The shipped portfolio/default: its checksums hold, the zip is under the limit."""
    res = build_submission(ROOT / "portfolio" / "default", tmp_path / "default.zip")
    assert res.bytes < 300 * 1024 * 1024
    assert res.single_best and res.backbones
