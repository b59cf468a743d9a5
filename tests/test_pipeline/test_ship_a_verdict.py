"""Shipping the runner-up selector and a hedging setting by a verdict (pipeline.shipping)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autodl.errors import AutoDLError
from autodl.records import file_sha256
from pipeline.shipping import ship


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "portfolio"
    for folder, name, role in (("selector", "cost-sensitive", "choice"), ("selector-runner-up", "descriptor-knn",
                                                                           "runner-up")):
        (root / folder).mkdir(parents=True)
        (root / folder / "selector.json").write_text(json.dumps(
            {"selector": name, "role": role, "scores": {"chosen": role == "choice", "fallback": {}}}))
        (root / folder / "selector.safetensors").write_bytes(name.encode())
    (root / "portfolio.json").write_text("{}")
    (root / "manifest.json").write_text(json.dumps(
        {"settings": {"seed": 0}, "commands": [{"command": "build"}],
         "selectors": {"choice": {"selector": "cost-sensitive", "folder": "selector", "mean_alc": 0.72},
                       "runner-up": {"selector": "descriptor-knn", "folder": "selector-runner-up", "mean_alc": 0.71}}}))
    return root


def test_the_runner_up_ships_hedged_and_the_checksums_hold(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    res = ship(root, swap=True, settings={"hedge": 2}, reason="held-out verdict", command="autodl-meta portfolio ship")
    assert res == {"shipped": "descriptor-knn", "runner_up": "cost-sensitive", "settings": {"hedge": 2}}
    card = json.loads((root / "selector" / "selector.json").read_text())
    other = json.loads((root / "selector-runner-up" / "selector.json").read_text())
    assert card["selector"] == "descriptor-knn" and card["role"] == "choice" and card["scores"]["chosen"] is True
    assert card["shipped"]["reason"] == "held-out verdict" and card["shipped"]["folder_before"] == "selector-runner-up"
    assert other["selector"] == "cost-sensitive" and other["role"] == "runner-up" and not other["scores"]["chosen"]
    assert (root / "selector" / "selector.safetensors").read_bytes() == b"descriptor-knn"  # the arrays moved along
    assert json.loads((root / "submission.json").read_text()) == {"hedge": 2}
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["selectors"]["choice"] == {"selector": "descriptor-knn", "folder": "selector", "mean_alc": 0.71,
                                               "shipped": manifest["selectors"]["choice"]["shipped"]}
    assert manifest["selectors"]["runner-up"]["selector"] == "cost-sensitive"
    assert manifest["commands"][-1]["command"] == "autodl-meta portfolio ship"
    assert manifest["commands"][-1]["reason"] == "held-out verdict" and manifest["submission_settings"] == {"hedge": 2}
    for name, entry in manifest["files"].items():
        assert file_sha256(root / name) == entry["sha256"], name
    assert "submission.json" in manifest["files"]
    # swapping back restores the first roles; the hedge setting stays
    assert ship(root, swap=True, reason="undo")["shipped"] == "cost-sensitive"
    assert json.loads((root / "submission.json").read_text()) == {"hedge": 2}


def test_a_bad_setting_or_a_missing_card_changes_nothing(tmp_path: Path) -> None:
    root = _folder(tmp_path)
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    with pytest.raises(AutoDLError, match="hedge"):
        ship(root, swap=True, settings={"hedge": 99}, reason="x")
    with pytest.raises(AutoDLError, match="unknown setting"):
        ship(root, swap=True, settings={"hedges": 2}, reason="x")
    (root / "selector-runner-up" / "selector.json").rename(root / "moved.json")
    with pytest.raises(AutoDLError, match="selector-runner-up/selector.json: not found"):
        ship(root, swap=True, reason="x")
    (root / "moved.json").rename(root / "selector-runner-up" / "selector.json")
    assert {p: p.read_bytes() for p in root.rglob("*") if p.is_file()} == before


def test_the_command_line_ships_and_refuses_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from autodl_meta.cli import main

    root = _folder(tmp_path)
    assert main(["portfolio", "ship", "--portfolio", str(root), "--reason", "x"]) == 2
    assert "nothing to change" in capsys.readouterr().err
    assert main(["portfolio", "ship", "--portfolio", str(root), "--swap", "--hedge", "0", "--reason", "x"]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hedge" in err and "Traceback" not in err
    assert main(["portfolio", "ship", "--portfolio", str(root), "--swap", "--hedge", "2", "--reason", "x"]) == 0
    assert "ships descriptor-knn (runner-up cost-sensitive)" in capsys.readouterr().out
    assert main(["portfolio", "ship", "--portfolio", str(root), "--hedge", "2sb", "--reason", "y"]) == 0
    shipped = json.loads((root / "submission.json").read_text())
    assert shipped["hedge"] == 2 and shipped["hedge_with_single_best"] is True
