"""The unzipped submission under the AutoDL organizers' own 2019 ingestion program
(:func:`submission.package.run_under_organizers_ingestion`).

The end-to-end test needs the organizers' starting kit (not part of this project): the
``starting_kit`` fixture finds it at ``AUTODL_STARTING_KIT`` or ``../shared/autodl_kit``
(e.g. a clone of github.com/zhengying-liu/autodl_starting_kit_stable); without either it
is skipped.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from submission.package import (
    PackageError,
    build_submission,
    extract_submission,
    find_organizers_ingestion,
    run_under_organizers_ingestion,
)

def test_a_folder_that_is_not_a_kit_is_refused_naming_it(tmp_path):
    (tmp_path / "AutoDL_scoring_program").mkdir()
    with pytest.raises(PackageError, match="not an AutoDL starting kit: expected "
                                           "AutoDL_ingestion_program/ingestion.py") as err:
        run_under_organizers_ingestion(tmp_path, tmp_path, tmp_path, tmp_path / "out", time_budget=10)
    assert str(tmp_path) in str(err.value)
    assert not (tmp_path / "out").exists()


def test_an_old_data_pb2_without_grpc_tools_says_what_to_install(tmp_path, monkeypatch):
    """A kit whose generated protobuf module does not import, and no protoc to regenerate it."""
    import importlib.util

    kit = tmp_path / "kit" / "AutoDL_ingestion_program"
    kit.mkdir(parents=True)
    (kit / "ingestion.py").write_text("VERSION = 'v20191204'\n")
    (kit / "data.proto").write_text('syntax = "proto2";\n')
    (kit / "data_pb2.py").write_text("raise TypeError('Descriptors cannot be created directly.')\n")
    assert find_organizers_ingestion(kit.parent) == kit and find_organizers_ingestion(kit) == kit
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "grpc_tools" else real(name, *a))
    with pytest.raises(PackageError, match="pip install grpcio-tools"):
        run_under_organizers_ingestion(tmp_path, tmp_path, kit.parent, tmp_path / "out", time_budget=10)
    assert (kit / "data_pb2.py").read_text().startswith("raise TypeError")  # the kit is left untouched


@pytest.mark.slow
@pytest.mark.smoke
def test_the_unzipped_submission_runs_under_the_organizers_ingestion(starting_kit, tiny_artifacts, unseen,
                                                                     tmp_path):
    kit_files = sorted(p.relative_to(starting_kit) for p in starting_kit.rglob("*") if p.is_file())
    zip_path = build_submission(tiny_artifacts, tmp_path / "submission.zip").path
    folder = extract_submission(zip_path, tmp_path / "unzipped")
    run = run_under_organizers_ingestion(folder, unseen, starting_kit, tmp_path / "predictions", time_budget=20,
                                         timeout=600)
    log = run.log.read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    assert run.success and (run.output_dir / "end.txt").is_file(), log[-3000:]
    assert run.predictions >= 1 and (run.output_dir / "stripes.predict_0").is_file()
    assert run.version == "v20191204"
    assert "submission ready" in log
    assert "selected alpha" in log or "selected beta" in log or "using the single best" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
    assert sorted(p.relative_to(starting_kit) for p in starting_kit.rglob("*") if p.is_file()) == kit_files


def test_the_compatibility_names_reach_the_organizers_program_from_a_copy_of_autodl_tf1_compat(tmp_path):
    """The ``sitecustomize.py`` written for the organizers' program applies
    :func:`autodl.tf1_compat.apply_for_organizers_ingestion` from a verbatim copy of that module,
    importing nothing of this project, and leaves eager execution on."""
    import os
    import subprocess
    import sys

    import autodl.tf1_compat as compat
    from autodl.tf1_compat import write_sitecustomize

    shim = tmp_path / "shim"
    write_sitecustomize(shim, "apply_for_organizers_ingestion")
    assert (shim / f"{compat.COPY_NAME}.py").read_bytes() == Path(compat.__file__).read_bytes()
    probe = ("import sys, tensorflow as tf; from tensorflow import app, flags, gfile, logging; "
             "import pip; assert pip.get_installed_distributions() == []; "
             "assert tf.Session is tf.compat.v1.Session and tf.executing_eagerly(); "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('autodl', 'finetune', 'submission')))")
    env = {**os.environ, "PYTHONPATH": str(shim), "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "[]"
