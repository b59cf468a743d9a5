"""The unzipped submission under the AutoDL organizers' own 2019 ingestion program
(:func:`submission.package.run_under_organizers_ingestion`).

The end-to-end test needs a checkout of the organizers' starting kit (not part of this
project): set ``AUTODL_STARTING_KIT`` to it, e.g. a clone of
github.com/zhengying-liu/autodl_starting_kit_stable. Without it, it is skipped.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from submission.package import (
    PackageError,
    build_submission,
    extract_submission,
    find_organizers_ingestion,
    run_under_organizers_ingestion,
)

KIT = os.environ.get("AUTODL_STARTING_KIT")


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
@pytest.mark.skipif(not KIT, reason="AUTODL_STARTING_KIT does not name a checkout of the organizers' starting kit")
def test_the_unzipped_submission_runs_under_the_organizers_ingestion(tiny_artifacts, unseen, tmp_path):
    zip_path = build_submission(tiny_artifacts, tmp_path / "submission.zip").path
    folder = extract_submission(zip_path, tmp_path / "unzipped")
    run = run_under_organizers_ingestion(folder, unseen, KIT, tmp_path / "predictions", time_budget=20,
                                         timeout=600)
    log = run.log.read_text(errors="replace")
    assert run.returncode == 0, log[-3000:]
    assert run.success and (run.output_dir / "end.txt").is_file(), log[-3000:]
    assert run.predictions >= 1 and (run.output_dir / "stripes.predict_0").is_file()
    assert run.version == "v20191204"
    assert "submission ready" in log
    assert "selected alpha" in log or "selected beta" in log or "using the single best" in log, log[-3000:]
    assert Path(KIT).exists()
