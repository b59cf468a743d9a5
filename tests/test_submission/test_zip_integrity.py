"""A built submission zip carries SHA-256 checksums of everything in it (``artifacts/checksums.json``:
``files`` for the artifacts, ``code`` for the rest) and of itself (``<zip>.sha256``); extracting it
checks both, and a zip changed after the build is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

import pytest

from submission.package import PackageError, build_submission, extract_submission, zip_checksum_file


@pytest.fixture(scope="module")
def built(tiny_artifacts, tmp_path_factory) -> Path:
    return build_submission(tiny_artifacts, tmp_path_factory.mktemp("zip") / "submission.zip").path


def test_the_zip_lists_every_member_and_carries_its_own_checksum(built):
    with zipfile.ZipFile(built) as zf:
        names = {n for n in zf.namelist() if not n.endswith("/")}
        table = json.loads(zf.read("artifacts/checksums.json"))
    listed = {f"artifacts/{n}" for n in table["files"]} | set(table["code"])
    assert listed == names - {"artifacts/checksums.json"}
    assert "model.py" in table["code"] and "autodl/integrity.py" in table["code"]
    line = zip_checksum_file(built).read_text().split()
    assert line == [hashlib.sha256(built.read_bytes()).hexdigest(), built.name]


def _rewrite(src: Path, dst: Path, change: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info, change.pop(info.filename, None) or zin.read(info.filename))
        for name, data in change.items():
            zout.writestr(name, data)
    return dst


@pytest.mark.parametrize("change, needle", [
    ({"model.py": b"import os\nos.system('true')\n"}, r"model\.py: SHA-256 differs"),
    ({"artifacts/portfolio.json": b"{}"}, r"artifacts/portfolio\.json: SHA-256 differs"),
    ({"sitecustomize.py": b"import os\n"}, r"sitecustomize\.py is not listed"),
])
def test_a_zip_changed_after_the_build_is_refused_before_extraction(built, tmp_path, change, needle):
    tampered = _rewrite(built, tmp_path / "tampered.zip", dict(change))
    with pytest.raises(PackageError, match=needle):
        extract_submission(tampered, tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_zip_itself_is_checked_against_its_sha256_file(built, tmp_path):
    copy = tmp_path / built.name
    copy.write_bytes(built.read_bytes())
    zip_checksum_file(copy).write_text(zip_checksum_file(built).read_text())
    assert (extract_submission(copy, tmp_path / "ok") / "model.py").is_file()
    with zipfile.ZipFile(copy, "a") as zf:
        zf.comment = b"changed after the build"
    with pytest.raises(PackageError, match="SHA-256"):
        extract_submission(copy, tmp_path / "refused")
