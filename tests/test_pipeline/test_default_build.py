"""``portfolio build-default``'s own steps (meta-features, the selector comparison, the fitted selectors),
the manifest, resuming, refusing changed settings and the size limit.

The fast tests build a real tiny collection (three small datasets of three sources) and embed it
for real (EfficientNet-Lite0 at 32 px, a few samples); steps 2 to 4 (BOHB, incumbents, cost matrix)
are replaced by a portfolio written by hand (:func:`fake_steps`), since ``tests/test_portfolio/test_build.py`` runs them.
The slow test runs everything, BOHB included, and resumes it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from autodl.errors import AutoDLError
from metafeatures.embeddings import EmbeddingSpec
from pipeline import default_build
from pipeline.default_build import (
    DEFAULT_ONLY,
    DefaultBuildError,
    DefaultBuildSettings,
    SelectionSettings,
    build_default,
    check_settings,
    reproduce_command,
    runner_up,
)
from portfolio.build import DEFAULT_ITERATIONS, BuildSettings, read_manifest

pytestmark = pytest.mark.usefixtures("torch_threads_1")

NAMES = ["digits_a", "glyphs_a", "textures_a"]
SPEC = EmbeddingSpec(input_size=32, train_samples=8, test_samples=4, batch_size=8)
SELECTION = SelectionSettings(selectors=("single-best", "random", "oracle", "nearest-centroid", "descriptor-knn"),
                              params={"nearest-centroid": {"metric": "euclidean"}}, batch_sizes=(1, 4), n_batches=2,
                              query_size=4, n_queries=2, timing_repeats=1, time_embedding=False)


def write_collection(folder: Path) -> Path:
    path = folder / "three.yaml"
    path.write_text(yaml.safe_dump({
        "name": "three", "description": "three tiny datasets of three sources", "held_out": ["Monkeys", "miniciao"],
        "sources": [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"},
                    {"name": "glyphs", "origin": "installed fonts", "licence": "DejaVu"},
                    {"name": "textures", "origin": "scikit-image", "licence": "CC0"}],
        "datasets": [{"name": "digits_a", "source": "digits", "doc": "digits 0-2", "classes": [0, 1, 2],
                      "max_train": 24, "max_test": 9},
                     {"name": "glyphs_a", "source": "glyphs", "doc": "A-C",
                      "params": {"characters": "ABC", "n_train_per_class": 6, "n_test_per_class": 3}},
                     {"name": "textures_a", "source": "textures", "doc": "texture crops", "max_train": 24,
                      "max_test": 9}]}))
    return path


def fake_steps(out: Path, settings: BuildSettings, manifest: Any, **_: Any) -> list[Any]:
    """Steps 1-4 without BOHB: the collection built for real, a hand-made portfolio and cost matrix."""
    from autodl.collection_build import build_collection
    from portfolio.cost_matrix import CostMatrix
    from portfolio.incumbents import Incumbent, Portfolio

    built = build_collection(settings.collection, settings.data)
    manifest.step("collection", 0.0, built=len(built), datasets=len(built))
    names = [b.name for b in built]
    if not (out / "portfolio.json").is_file():
        Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0, "max_train_examples": 5000},
                  clock="simulated", timing={"path": None, "sha256": None}, space={"path": "space.yaml", "sha256": "0"},
                  incumbents=[Incumbent(n, str(b.path), {"lr": 0.1 * (i + 1)}, 0.5, 1.0, (0, 0, i), 3, "run")
                              for i, (n, b) in enumerate(zip(names, built, strict=True))]).save(out)
    if not (out / "cost_matrix.csv").is_file():
        alc = np.array([[0.9, 0.5, 0.6], [0.7, 0.8, 0.4], [0.6, 0.55, 0.85]])
        CostMatrix(names, names, alc, [["ok"] * 3 for _ in names], seeds=[0]).to_csv(out / "cost_matrix.csv")
        (out / "cells.jsonl").write_text("")
    manifest.step("cost matrix", 0.0, computed=0)
    return built


def settings_for(root: Path, **changes: Any) -> DefaultBuildSettings:
    """The tiny build's settings, its folders under ``root``; the collection file is the one of the first
    build, wherever the folders are (a moved collection file is another setting)."""
    build = BuildSettings(**{"collection": str(COLLECTION[0]), "data": str(root / "data"), "workers": 1,
                             **changes.pop("build", {})})
    return DefaultBuildSettings(**{"build": build, "features": str(root / "features"), "embedding": SPEC,
                                   "selection": SELECTION, "device": "cpu", **changes})


COLLECTION: list[Path] = []


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """A first build: (root, OUT, manifest)."""
    root = tmp_path_factory.mktemp("default")
    COLLECTION[:] = [write_collection(root)]
    events: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(default_build, "run_steps", fake_steps)
        manifest = build_default(root / "out", settings_for(root), command="pytest build-default",
                                 on_event=lambda e, i: events.append(e))
    assert events == ["meta-features", "selection", "fit", "fit", "done"]
    return root, root / "out", manifest


@pytest.fixture
def copy(built: tuple[Path, Path, dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the built folder (and its features and data) to change; steps 1-4 faked."""
    root, _, _ = built
    for name in ("out", "features", "data"):
        shutil.copytree(root / name, tmp_path / name)
    monkeypatch.setattr(default_build, "run_steps", fake_steps)
    return tmp_path


def test_the_new_steps_write_the_comparison_the_selectors_and_the_manifest(built):
    from selector.registry import load_selector

    root, out, manifest = built
    steps = {s["step"]: s for s in manifest["steps"]}
    assert steps["meta-features"]["computed"] == 3 and steps["meta-features"]["cached"] == 0
    assert sorted(p.stem for p in (root / "features").glob("*.npz")) == NAMES
    assert steps["selection"]["computed"] is True
    for name in ("report.md", "report.html", "summary.json", "inputs.json", "lodo.csv", "regret.png"):
        assert (out / "selection" / name).is_file(), name
    summary = json.loads((out / "selection" / "summary.json").read_text())
    assert summary["command"] == manifest["reproduce"]
    assert summary["settings"]["n_queries"] == 2 and summary["features"]["datasets"] == NAMES
    choice, second = summary["choice"]["selector"], runner_up(summary)
    assert second["selector"] in ("nearest-centroid", "descriptor-knn") and second["selector"] != choice
    assert second["params"] == ({"metric": "euclidean"} if second["selector"] == "nearest-centroid" else {})
    assert manifest["selectors"] == {
        "choice": {"selector": choice, "folder": "selector", "mean_alc": summary["choice"]["mean_alc"]},
        "runner-up": {"selector": second["selector"], "folder": "selector-runner-up", "mean_alc": second["mean_alc"]}}
    for folder, name, role in (("selector", choice, "choice"), ("selector-runner-up", second["selector"], "runner-up")):
        card = json.loads((out / folder / "selector.json").read_text())
        assert card["selector"] == name and card["role"] == role and sorted(card["classes"]) == NAMES
        assert card["scores"]["chosen"] == (role == "choice") and card["scores"]["choice"] == choice
        assert load_selector(out / folder).classes_ == card["classes"]
    assert steps["fit choice"]["fitted"] and steps["fit runner-up"]["fitted"]
    # the manifest: versions, seed, times, the command, checksums of every file
    assert {"python", "torch", "numpy", "timm", "hpbandster"} <= set(manifest["versions"])
    assert manifest["seed"] == 0 and manifest["total_seconds"] > 0 and manifest["commands"][-1]["seconds"] > 0
    assert manifest["commands"][-1]["command"] == "pytest build-default"
    from autodl.records import code_revision

    assert manifest["commands"][-1]["code"] == code_revision()  # the commit of this checkout (None outside one)
    assert manifest["settings"]["features"]["spec"]["train_samples"] == 8
    assert manifest["settings"]["selection"]["selectors"] == list(SELECTION.selectors)
    files = set(manifest["files"])
    assert {"selection/summary.json", "selector/selector.safetensors", "selector-runner-up/selector.json",
            "cost_matrix.csv", "portfolio.json"} <= files
    from autodl.records import file_sha256

    assert all(file_sha256(out / f) == v["sha256"] for f, v in manifest["files"].items())
    assert 0 < manifest["bytes"] - sum(v["bytes"] for v in manifest["files"].values()) < 100_000  # + the manifest


def test_a_second_build_skips_every_finished_step(copy):
    out = copy / "out"
    before = json.loads((out / "manifest.json").read_text())["files"]
    # a features folder shared with another build holds other datasets: not compared, not an input
    for ext in ("npz", "json"):
        shutil.copy(copy / "features" / f"digits_a.{ext}", copy / "features" / f"elsewhere.{ext}")
    events: list[str] = []
    manifest = build_default(out, settings_for(copy), command="again", on_event=lambda e, i: events.append(e))
    new = manifest["steps"][-5:]
    assert [s["step"] for s in new] == ["cost matrix", "meta-features", "selection", "fit choice", "fit runner-up"]
    assert new[1]["computed"] == 0 and new[1]["cached"] == 3
    assert new[2]["computed"] is False and not new[3]["fitted"] and not new[4]["fitted"]
    assert sorted(json.loads((out / "selection" / "inputs.json").read_text())["features"]) == NAMES
    after = manifest["files"]
    for name in ("selection/summary.json", "selection/report.md", "selector/selector.json",
                 "selector-runner-up/selector.safetensors"):
        assert after[name] == before[name], name
    assert [c["command"] for c in manifest["commands"]] == ["pytest build-default", "again"]
    assert manifest["total_seconds"] >= sum(s["seconds"] for s in new)

    # a changed cost matrix is a changed input, not a changed setting: compared and fitted again
    csv = out / "cost_matrix.csv"
    csv.write_text(csv.read_text().replace("0.9", "0.3"))
    manifest = build_default(out, settings_for(copy), command="after a new matrix")
    assert manifest["steps"][-3]["computed"] is True and manifest["steps"][-2]["fitted"]
    assert json.loads((out / "selection" / "summary.json").read_text())["features"]["datasets"] == NAMES


def test_an_interrupted_comparison_resumes_with_the_measurements_kept(copy, monkeypatch: pytest.MonkeyPatch):
    from selector import measure

    out = copy / "out"
    before = json.loads((out / "selection" / "summary.json").read_text())
    assert not (out / "work" / "selection-parts").exists()  # deleted once the comparison finished
    shutil.rmtree(out / "selection")
    real, calls = measure._one, []

    def interrupted(specs, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(specs[0].label)
        return real(specs, *args, **kwargs)

    monkeypatch.setattr(measure, "_one", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_default(out, settings_for(copy), command="interrupted")
    kept = sorted((out / "work" / "selection-parts").glob("*.json"))
    assert len(kept) == 2
    monkeypatch.setattr(measure, "_one", lambda specs, *a, **k: calls.append(specs[0].label) or real(specs, *a, **k))
    build_default(out, settings_for(copy), command="resumed")
    n = len(before["settings"]["selectors"]) * len(before["settings"]["seeds"])
    assert len(calls) == n and len(set(calls[:2]) & set(calls[2:])) == 0  # the kept two are not measured again
    after = json.loads((out / "selection" / "summary.json").read_text())
    def untimed(per):
        return {k: {f: v for f, v in row.items() if "seconds" not in f} for k, row in per.items()}

    assert untimed(after["lodo"]["per_selector"]) == untimed(before["lodo"]["per_selector"])
    assert after["choice"]["selector"] == before["choice"]["selector"]
    assert not (out / "work" / "selection-parts").exists()


def test_changed_settings_are_refused_unless_the_step_output_is_absent(copy):
    out = copy / "out"
    changed = DEFAULT_ITERATIONS + 1
    with pytest.raises(DefaultBuildError, match=rf"iterations \({DEFAULT_ITERATIONS} -> {changed}; BOHB runs") as info:
        build_default(out, settings_for(copy, build={"iterations": changed, "seed": 1}))
    assert isinstance(info.value, AutoDLError) and "seed (0 -> 1" in str(info.value) and "manifest.json" in str(info.value)
    other = SelectionSettings(**{**SELECTION.__dict__, "n_queries": 3})
    with pytest.raises(DefaultBuildError, match=r"n_queries \(2 -> 3; selector comparison"):
        check_settings(out, settings_for(copy, selection=other))
    with pytest.raises(DefaultBuildError, match=r"input_size \(32 -> 40; features"):
        check_settings(out, settings_for(copy, embedding=EmbeddingSpec(**{**SPEC.to_dict(), "input_size": 40})))
    # the pool's budget is a setting once a pool is there (this tiny build has none)
    check_settings(out, settings_for(copy, build={"pool_hours": 1.5}))
    (out / "pool").mkdir()
    (out / "pool" / "pool.json").write_text("{}")
    with pytest.raises(DefaultBuildError, match=r"pool_hours \(8\.0 -> 1\.5; pool"):
        check_settings(out, settings_for(copy, build={"pool_hours": 1.5}))
    shutil.rmtree(out / "pool")
    # the batch size and the paths are not settings
    check_settings(out, settings_for(copy, embedding=EmbeddingSpec(**{**SPEC.to_dict(), "batch_size": 2})))
    check_settings(out, settings_for(copy, build={"workers": 2, "data": str(copy / "elsewhere")}))
    # without the comparison's output, its settings may change: it is made again with them
    shutil.rmtree(out / "selection")
    manifest = build_default(out, settings_for(copy, selection=other))
    assert json.loads((out / "selection" / "summary.json").read_text())["settings"]["n_queries"] == 3
    assert manifest["steps"][-3]["computed"] is True
    assert manifest["settings"]["selection"]["n_queries"] == 3


def test_an_out_over_the_size_limit_is_refused_naming_the_largest_files(copy):
    out = copy / "out"
    (out / "runs" / "big").mkdir(parents=True)
    (out / "runs" / "big" / "trials.jsonl").write_bytes(b"x" * 5_000_000)
    with pytest.raises(DefaultBuildError, match=r"over the limit of 4 MB.*largest files: runs/big/trials.jsonl "
                                                r"\(5.00 MB\)"):
        build_default(out, settings_for(copy, max_bytes=4_000_000))
    assert read_manifest(out)["files"]["runs/big/trials.jsonl"]["bytes"] == 5_000_000  # written before refusing


def test_runner_up_is_the_best_learned_selector_besides_the_choice():
    def row(alc: float, failed: int = 0) -> dict[str, Any]:
        return {"mean_alc": alc, "failed": failed}

    summary = {"lodo": {"per_selector": {"oracle": row(0.9), "single-best": row(0.8), "random": row(0.85),
                                         "knn": row(0.7), "mlp": row(0.75, failed=1), "logme": row(0.7)}},
               "settings": {"selectors": [{"label": k, "name": k, "params": {}} for k in
                                          ("oracle", "single-best", "random", "knn", "mlp", "logme")]},
               "evaluation_only": ["oracle"], "choice": {"selector": "single-best"}}
    assert runner_up(summary)["selector"] == "knn"  # mlp failed on a dataset; knn and logme tie: by name
    summary["choice"] = {"selector": "knn"}
    assert runner_up(summary)["selector"] == "logme"
    for k in ("knn", "logme"):
        summary["lodo"]["per_selector"][k]["failed"] = 2
    assert runner_up(summary)["selector"] == "mlp"  # all failed somewhere: the best of them
    summary["lodo"]["per_selector"] = {"oracle": row(0.9), "single-best": row(0.8)}
    assert runner_up(summary) is None


def test_the_command_that_reproduces_a_build():
    assert reproduce_command(DefaultBuildSettings()) == "autodl-meta portfolio build-default --workers 2"
    s = DefaultBuildSettings(build=BuildSettings(iterations=10, seed=3, workers=8, data="/scratch/d", only=DEFAULT_ONLY),
                             features="/scratch/f")
    assert reproduce_command(s, "/scratch/p") == ("autodl-meta portfolio build-default --workers 8 --out /scratch/p "
                                                  "--data /scratch/d --features /scratch/f --iterations 10 --seed 3")
    s = DefaultBuildSettings(embedding=SPEC)
    assert "# library settings: embedding=" in reproduce_command(s)
    for hours, flag in ((None, "--pool-hours 0"), (12.5, "--pool-hours 12.5")):
        assert reproduce_command(DefaultBuildSettings(build=BuildSettings(pool_hours=hours))).endswith(flag)


def test_the_command_line_prints_how_to_reproduce(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path):
    from autodl_meta.cli import main

    seen: dict[str, Any] = {}

    def fake(out, settings, **kwargs):
        seen.update(out=out, settings=settings)
        kwargs["on_event"]("meta-features", {"datasets": 3})
        kwargs["features_progress"](1, 3, "a")
        for stage, done in (("identification", 0), ("identification", 1), ("lodo", 0), ("lodo", 2)):
            kwargs["selection_progress"](stage, done, 2)
        kwargs["on_event"]("fit", {"selector": "single-best", "role": "choice", "folder": "x/selector"})
        return {"commands": [{"command": "c", "started": "2000", "seconds": 3.0}],
                "steps": [{"step": "selection", "seconds": 2.0, "finished": "2001"}],
                "selectors": {"choice": {"selector": "single-best", "folder": "selector", "mean_alc": 0.74}},
                "bytes": 2_500_000, "files": {"a": {}}, "total_seconds": 7200.0,
                "reproduce": "autodl-meta portfolio build-default --workers 1 --out x"}

    monkeypatch.setattr(default_build, "build_default", fake)
    assert main(["portfolio", "build-default", "--workers", "1", "--out", str(tmp_path / "x"),
                 "--iterations", "5"]) == 0
    text = capsys.readouterr().out
    assert seen["settings"].build.iterations == 5 and seen["settings"].build.workers == 1
    assert seen["settings"].build.only == ("tag:core",) and seen["settings"].build.portfolio == "greedy"
    assert seen["settings"].features_dir == Path("data/metafeatures/default")
    assert f"reproduce with: autodl-meta portfolio build-default --workers 1 --out {tmp_path / 'x'} --iterations 5" \
        in text
    assert "choice: single-best (mean leave-one-dataset-out ALC 0.7400)" in text and "2.50 MB" in text
    assert "fit the choice single-best into x/selector" in text


@pytest.mark.slow
def test_build_default_end_to_end_with_bohb_then_resume(tmp_path: Path):
    """Everything for real on the tiny collection: BOHB, the cost matrix, the features, the comparison,
    the selectors; the second build computes nothing."""
    from conftest import flat_timing

    COLLECTION[:] = [write_collection(tmp_path)]
    protocol = tmp_path / "tiny.yaml"
    protocol.write_text("name: tiny\ntime_budget: 8\nt0: 0.4\n")
    timing = flat_timing(0.05, 0.0005).save(tmp_path / "timing.json")
    space = Path(__file__).resolve().parents[1] / "data" / "space-tiny.yaml"
    settings = settings_for(tmp_path, build={
        "protocol": str(protocol), "timing": str(timing), "iterations": 1, "min_budget": 1 / 3, "space": str(space),
        "objective_args": {"fixed": {"backbone": "scratch_cnn", "pretrained": False, "input_size": 32,
                                     "augmentation": "none"}}})
    settings.build.workers = 2
    out = tmp_path / "out"
    events: list[str] = []
    manifest = build_default(out, settings, command="first", on_event=lambda e, i: events.append(e))
    assert events.count("bohb") == 3 and events[-4:] == ["selection", "fit", "fit", "done"]
    assert len(json.loads((out / "portfolio.json").read_text())["incumbents"]) == 3
    assert (out / "selector" / "selector.json").is_file() and (out / "selection" / "report.md").is_file()
    assert "runs/digits_a/trials.jsonl" in manifest["files"]
    events.clear()
    again = build_default(out, settings, command="again", on_event=lambda e, i: events.append(e))
    assert "bohb" not in events
    new = {s["step"]: s for s in again["steps"][-7:]}
    assert new["cost matrix"]["computed"] == 0 and new["meta-features"]["computed"] == 0
    assert new["selection"]["computed"] is False and not new["fit choice"]["fitted"]
