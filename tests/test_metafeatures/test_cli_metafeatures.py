"""Tests of ``autodl-meta metafeatures extract|show`` (autodl_meta.cli_metafeatures), on a parser of their own."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import yaml

from autodl.errors import AutoDLError
from autodl_meta import cli_metafeatures

pytestmark = pytest.mark.usefixtures("torch_threads_1")


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="autodl-meta")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_metafeatures.register(sub, argparse.ArgumentDefaultsHelpFormatter)
    args = parser.parse_args(argv)
    return args.func(args)


SMALL = ["--input-size", "32", "--train-samples", "4", "--test-samples", "2", "--device", "cpu"]


def test_extract_datasets_then_show(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from conftest import write_variant

    a, b = write_variant(tmp_path / "data", "rgb").root, write_variant(tmp_path / "data", "gray").root
    out = tmp_path / "features"
    assert run(["metafeatures", "extract", "--dataset", str(a), "--dataset", str(b), "--out", str(out), *SMALL]) == 0
    printed = capsys.readouterr().out
    assert f"features of 2 datasets in {out}" in printed and "tf_efficientnet_lite0 at 32 px" in printed
    assert (out / "rgb.npz").is_file() and (out / "gray.json").is_file()
    card = json.loads((out / "gray.json").read_text())
    assert card["card"]["spec"]["train_samples"] == 4 and card["source"] is None

    assert run(["metafeatures", "show", str(out / "gray.npz")]) == 0
    printed = capsys.readouterr().out
    assert "features gray (source None): train [4, 1280], train_labels [4, 3], test [2, 1280]" in printed
    assert "channels=1" in printed and '"spec_digest"' in printed


def test_extract_a_collection_with_the_default_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    from conftest import write_variant

    monkeypatch.chdir(tmp_path)
    write_variant(tmp_path / "data" / "collections" / "pair", "rgb")
    coll = {"name": "pair", "description": "one tiny dataset",
            "sources": [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"}],
            "datasets": [{"name": "rgb", "source": "digits", "doc": "a"}]}
    (tmp_path / "pair.yaml").write_text(yaml.safe_dump(coll))
    assert run(["metafeatures", "extract", "--collection", "pair.yaml", *SMALL]) == 0
    feats = json.loads((tmp_path / "data" / "metafeatures" / "pair" / "rgb.json").read_text())
    assert feats["source"] == "digits"
    assert "features of 1 dataset in data/metafeatures/pair" in capsys.readouterr().out


def test_extract_reports_failed_datasets(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from conftest import write_variant

    good, bad = write_variant(tmp_path / "data", "rgb").root, write_variant(tmp_path / "data", "gray").root
    rec = min((bad / "gray.data" / "train").glob("sample*"))
    rec.write_bytes(rec.read_bytes()[:30])
    out = tmp_path / "features"
    assert run(["metafeatures", "extract", "--dataset", str(good), "--dataset", str(bad), "--out", str(out),
                *SMALL]) == 1
    err = capsys.readouterr().err
    assert "features of 1 dataset in" in err and "1 failed" in err and "  gray: " in err
    assert (out / "rgb.npz").is_file()


def test_bad_arguments_are_one_line_errors(tmp_path: Path) -> None:
    from conftest import write_variant

    a = write_variant(tmp_path / "data", "rgb").root
    with pytest.raises(AutoDLError, match="--out"):
        run(["metafeatures", "extract", "--dataset", str(a)])
    with pytest.raises(AutoDLError, match="--data goes with --collection"):
        run(["metafeatures", "extract", "--dataset", str(a), "--data", "x", "--out", str(tmp_path / "o")])
    with pytest.raises(AutoDLError, match="field 'input_size'"):
        run(["metafeatures", "extract", "--dataset", str(a), "--out", str(tmp_path / "o"), "--input-size", "2"])
    with pytest.raises(AutoDLError, match="not found"):
        run(["metafeatures", "show", str(tmp_path / "nothing.npz")])
    with pytest.raises(SystemExit):  # --collection or --dataset is required
        run(["metafeatures", "extract", "--out", str(tmp_path / "o")])
