"""Nothing this project reads from elsewhere can make it read or write outside the folder it
belongs to: a submission zip (zip-slip: ``..``, absolute names, symbolic-link entries, a link
already in the destination), ``labels.csv`` and the data's ``unlabelled/`` folder, a collection
file (dataset names, source parameters, a built dataset that is a link), a portfolio (dataset
names) and a folder of submission artifacts (``..``, absolute paths, links leading out).

Each zip test also checks that nothing was written, inside or outside.
"""

from __future__ import annotations

import json
import stat
import types
import zipfile
from pathlib import Path

import pytest

from autodl.errors import AutoDLError
from autodl.integrity import IntegrityError, extract_zip, inside, name_problem, zip_member_problems

ROOT = Path(__file__).resolve().parents[2]


def _zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def _nothing_in(folder: Path) -> bool:
    return not folder.exists() or not any(folder.rglob("*"))


EVIL = {
    "dot-dot": {"../escaped.txt": b"x"},
    "nested dot-dot": {"artifacts/../../escaped.txt": b"x"},
    "absolute": {"/tmp/autodl-meta-escaped.txt": b"x"},
    "drive": {"C:/escaped.txt": b"x"},
    "backslash": {"..\\escaped.txt": b"x"},
}


@pytest.mark.parametrize("case", sorted(EVIL) + ["symlink entry", "link in the destination"])
def test_a_submission_zip_cannot_write_outside_its_folder(tmp_path, case):
    from submission.model_kinds import unpack_submission
    from submission.package import PackageError, extract_submission

    outside = tmp_path / "outside"
    outside.mkdir()
    members = {"model.py": b"class Model: pass\n", **EVIL.get(case, {})}
    links = {"artifacts/weights": str(outside)} if case == "symlink entry" else None
    dest = tmp_path / "unzipped"
    if case == "link in the destination":
        dest.mkdir()
        (dest / "artifacts").symlink_to(outside)  # left there by someone else
        members["artifacts/portfolio.json"] = b"{}"
    archive = _zip(tmp_path / "s.zip", members, links)
    with pytest.raises(PackageError, match="refused"):
        extract_submission(archive, dest)
    assert not (dest / "model.py").exists()
    if case == "link in the destination":  # unpack_submission empties its folder first: the link is gone
        assert (unpack_submission(archive, dest) / "artifacts" / "portfolio.json").is_file()
        assert not (dest / "artifacts").is_symlink()
    else:
        with pytest.raises(AutoDLError, match="refused"):
            unpack_submission(archive, tmp_path / "unpacked")
        assert not (tmp_path / "unpacked" / "model.py").exists()
    assert _nothing_in(outside) and not (tmp_path / "escaped.txt").exists()
    assert not Path("/tmp/autodl-meta-escaped.txt").exists()


def test_unpacking_into_a_link_is_refused(tmp_path):
    from submission.model_kinds import unpack_submission

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    (tmp_path / "dest").symlink_to(elsewhere)
    archive = _zip(tmp_path / "s.zip", {"model.py": b""})
    with pytest.raises(AutoDLError, match="symbolic link"):
        unpack_submission(archive, tmp_path / "dest")
    assert (elsewhere / "keep.txt").read_text() == "mine"  # not emptied through the link


def test_a_zip_bomb_is_refused_before_extraction(tmp_path):
    archive = _zip(tmp_path / "s.zip", {"model.py": b"", "big.bin": b"\x00" * 4096})
    with zipfile.ZipFile(archive) as zf:
        assert zip_member_problems(zf, tmp_path / "d", max_bytes=1024)
    with pytest.raises(IntegrityError, match="uncompressed"):
        extract_zip(archive, tmp_path / "d", max_bytes=1024)
    assert _nothing_in(tmp_path / "d")


def test_a_well_formed_zip_is_extracted(tmp_path):
    archive = _zip(tmp_path / "s.zip", {"model.py": b"x", "artifacts/a.json": b"{}"})
    extract_zip(archive, tmp_path / "d")
    assert (tmp_path / "d" / "artifacts" / "a.json").read_bytes() == b"{}"


# --- the zip's checksums, checked before extraction ------------------------------------------------
def _signed_zip(path: Path, members: dict[str, bytes], *, tamper: dict[str, bytes] | None = None,
                extra: dict[str, bytes] | None = None) -> Path:
    import hashlib

    def sha(b: bytes) -> dict:
        return {"sha256": hashlib.sha256(b).hexdigest(), "bytes": len(b)}

    table = {"format": "autodl-meta-submission-checksums/1",
             "files": {n.removeprefix("artifacts/"): sha(b) for n, b in members.items() if n.startswith("artifacts/")},
             "code": {n: sha(b) for n, b in members.items() if not n.startswith("artifacts/")}}
    written = {**members, **(tamper or {}), **(extra or {}), "artifacts/checksums.json": json.dumps(table).encode()}
    return _zip(path, written)


MEMBERS = {"model.py": b"class Model: pass\n", "autodl/x.py": b"X = 1\n", "artifacts/portfolio.json": b"{}"}


@pytest.mark.parametrize("what", ["code", "artifact", "added member"])
def test_a_zip_whose_members_differ_from_its_checksums_is_refused_before_extraction(tmp_path, what):
    from submission.model_kinds import unpack_submission
    from submission.package import PackageError, extract_submission

    good = _signed_zip(tmp_path / "good.zip", MEMBERS)
    assert (extract_submission(good, tmp_path / "ok") / "autodl" / "x.py").read_bytes() == b"X = 1\n"
    tamper = {"code": {"autodl/x.py": b"import os\n"}, "artifact": {"artifacts/portfolio.json": b"[]"}}.get(what)
    extra = {"autodl/sitecustomize.py": b"import os\n"} if what == "added member" else None
    bad = _signed_zip(tmp_path / "bad.zip", MEMBERS, tamper=tamper, extra=extra)
    needle = "not listed" if what == "added member" else "SHA-256 differs"
    with pytest.raises(PackageError, match=needle):
        extract_submission(bad, tmp_path / "d")
    with pytest.raises(AutoDLError, match=needle):
        unpack_submission(bad, tmp_path / "u")
    assert _nothing_in(tmp_path / "d") and _nothing_in(tmp_path / "u")


def test_a_zip_that_differs_from_its_sha256_file_is_refused(tmp_path):
    from autodl.integrity import write_sha256_file
    from submission.model_kinds import unpack_submission
    from submission.package import PackageError, extract_submission, zip_checksum_file

    archive = _signed_zip(tmp_path / "s.zip", MEMBERS)
    assert write_sha256_file(archive) == zip_checksum_file(archive)
    extract_submission(archive, tmp_path / "ok")
    with zipfile.ZipFile(archive, "a") as zf:  # changed after its checksum was written
        zf.comment = b"changed"
    with pytest.raises(PackageError, match=r"s\.zip.*SHA-256.*s\.zip\.sha256"):
        extract_submission(archive, tmp_path / "d")
    with pytest.raises(AutoDLError, match="SHA-256"):
        unpack_submission(archive, tmp_path / "u")
    assert _nothing_in(tmp_path / "d")


# --- a folder of submission artifacts ----------------------------------------------------------------
def test_artifacts_cannot_be_read_from_outside_their_folder(tmp_path):
    from submission.artifacts import ArtifactError, Artifacts, checksum_table

    art = tmp_path / "artifacts"
    art.mkdir()
    (tmp_path / "secret.json").write_text("{}")
    (art / "portfolio.json").write_text("{}")
    (art / "link.json").symlink_to(tmp_path / "secret.json")
    table = checksum_table(art, [art / "portfolio.json"])
    table["../secret.json"] = {"sha256": "0" * 64}  # a table that points outside
    (art / "checksums.json").write_text(json.dumps({"files": table}))
    arts = Artifacts(art)
    assert arts.read_json("portfolio.json") == {}
    for relative, needle in (("../secret.json", "climbs out"), (str(tmp_path / "secret.json"), "absolute"),
                             ("link.json", "symbolic link")):
        with pytest.raises(ArtifactError, match=needle):
            arts.checked(relative)
    assert any("climbs out" in p for p in arts.verify())


# --- labels.csv and the data's unlabelled/ folder -------------------------------------------------------
def _png(path: Path) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (10, 20, 30)).save(path)


def test_a_video_folder_of_labels_csv_cannot_hold_a_frame_from_outside(tmp_path):
    from autodl.convert import convert_image_folder
    from autodl.errors import ConversionError

    data = tmp_path / "data"
    for i in range(2):
        _png(data / f"clip{i}" / "f0.png")
    _png(tmp_path / "secret.png")
    (data / "clip1" / "f1.png").symlink_to(tmp_path / "secret.png")
    (data / "labels.csv").write_text("FileName,Labels\nclip0,0\nclip1,1\n")
    with pytest.raises(ConversionError, match=r"f1\.png.*points outside"):
        convert_image_folder(data, tmp_path / "out")


def test_the_unlabelled_folder_cannot_lead_outside_the_data(tmp_path):
    from submission.selfservice import find_unlabelled

    data = tmp_path / "data"
    _png(data / "a.png")
    (data / "labels.csv").write_text("FileName,Labels\na.png,0\n")
    _png(tmp_path / "secret.png")
    (data / "unlabelled").mkdir()
    (data / "unlabelled" / "u.png").symlink_to(tmp_path / "secret.png")
    with pytest.raises(AutoDLError, match="points outside"):
        find_unlabelled(data, types.SimpleNamespace(subsets=("train", "test")), raw=True)


# --- collections --------------------------------------------------------------------------------------
def _collection(tmp_path: Path, entry: dict) -> Path:
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "description": "a test collection",
                                    "sources": [{"name": "digits", "origin": "scikit-learn", "licence": "CC BY 4.0"}],
                                    "datasets": [{"name": "d", "source": "digits", "doc": "digits", **entry}]}))
    return path


@pytest.mark.parametrize("entry, needle", [
    ({"name": ".."}, "not starting with '.'"),
    ({"name": "../x"}, "expected letters"),
    ({"name": "/tmp/x"}, "expected letters"),
    ({"name": ".hidden"}, "not starting with '.'"),
    ({"params": {"path": "/etc"}}, "names a place on disk"),
    ({"params": {"theme_dir": "/home"}}, "names a place on disk"),
    ({"params": {"font_dirs": ["/root"]}}, "names a place on disk"),
])
def test_a_collection_file_cannot_name_places_outside_its_output(tmp_path, entry, needle):
    from autodl.collection import CollectionError, load_collection

    assert load_collection(_collection(tmp_path, {})).datasets[0].name == "d"
    with pytest.raises(CollectionError, match=needle):
        load_collection(_collection(tmp_path, entry))


def test_a_built_dataset_that_is_a_link_is_refused(tmp_path):
    from autodl.collection import CollectionError, load_collection
    from autodl.collection_build import build_dataset

    collection = load_collection(_collection(tmp_path, {}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "keep.txt").write_text("mine")
    out = tmp_path / "out"
    out.mkdir()
    (out / "d").symlink_to(elsewhere)
    with pytest.raises(CollectionError, match="symbolic link"):
        build_dataset(collection.datasets[0], collection, out, overwrite=True)
    assert (elsewhere / "keep.txt").read_text() == "mine"


# --- portfolios -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../x", "a/b", "..", "/etc", "", "a\\b", "x\x00"])
def test_a_portfolio_cannot_name_a_dataset_that_is_a_path(name):
    from portfolio.incumbents import Portfolio, PortfolioError

    data = json.loads((ROOT / "portfolio" / "default" / "portfolio.json").read_text())
    Portfolio.from_dict(data)
    data["incumbents"][0]["dataset"] = name
    with pytest.raises(PortfolioError, match=r"incumbents\[0\]\.dataset"):
        Portfolio.from_dict(data)


# --- the helpers themselves ---------------------------------------------------------------------------------
def test_inside_and_name_problem(tmp_path):
    (tmp_path / "sub").mkdir()
    assert inside(tmp_path, "sub/x.json") == tmp_path / "sub" / "x.json"
    for bad in ("../x", "sub/../../x", "/etc/passwd", "C:\\x", ""):
        with pytest.raises(IntegrityError):
            inside(tmp_path, bad)
    (tmp_path / "out").symlink_to("/")
    with pytest.raises(IntegrityError, match="symbolic link"):
        inside(tmp_path, "out/etc/passwd")
    assert name_problem("fashion_3k") is None and name_problem("my data.v2") is None
    assert all(name_problem(n) for n in ("", ".", "..", "a/b", "a\\b", "C:x", "x\x00", None))
