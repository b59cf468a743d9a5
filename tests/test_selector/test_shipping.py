"""Fitting the selector to ship (:mod:`selector.shipping`), once for ``autodl-meta selector fit``
and the default build (:func:`pipeline.default_build.fit_for_shipping`).

A hand-made portfolio of six datasets: three of small images (s1, s2, s3) whose incumbents
share one configuration, three of big ones (b1, b2, b3) sharing another; a seventh dataset
(z1) has features but no incumbent. The member view groups the rows by configuration: two
members, ``incumbent:s1`` (good on small images) and ``incumbent:b1`` (good on big ones).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from metafeatures.features import DatasetFeatures, load_features_folder
from portfolio.cost_matrix import CostMatrix
from selector.base import SelectorError
from selector.member_views import ReportError
from selector.registry import load_selector
from selector.shipping import fit_for_shipping, lodo_scores, read_summary

NAMES = ["s1", "s2", "s3", "b1", "b2", "b3"]
SIDE = {"s1": 8, "s2": 10, "s3": 12, "b1": 64, "b2": 80, "b3": 96, "z1": 40}
SMALL, BIG = [.90, .88, .85, .50, .45, .40], [.50, .55, .60, .90, .92, .95]
MEMBERS = ["incumbent:s1", "incumbent:b1"]


def features(folder: Path) -> Path:
    """One tight cluster per dataset (z1 too: features without an incumbent)."""
    for i, n in enumerate([*NAMES, "z1"]):
        rng = np.random.default_rng(i)
        c = np.array([SIDE[n] / 10, 0.1 * i, 0.0, 0.0], np.float32)
        y = np.eye(2, dtype=np.float32)[np.arange(40) % 2]
        d = {"train_samples": 1000.0, "test_samples": 100.0, "classes": 2.0, "channels": 1.0,
             "height": float(SIDE[n]), "width": float(SIDE[n]), "variable_size": 0.0, "frames": 1.0,
             "multilabel": 0.0}
        DatasetFeatures(n, c + 0.05 * rng.normal(size=(40, 4)), y, c + 0.05 * rng.normal(size=(20, 4)), d, n,
                        {"backbone": "hand-made"}).save(folder)
    return folder


def portfolio(folder: Path) -> Path:
    """``cost_matrix.csv`` (rows: the six datasets' incumbents) and ``portfolio.json``."""
    from portfolio.incumbents import Incumbent, Portfolio

    folder.mkdir(parents=True, exist_ok=True)
    rows = np.array([SMALL if n[0] == "s" else BIG for n in NAMES])
    CostMatrix(list(NAMES), list(NAMES), rows, [["ok"] * 6 for _ in NAMES], seeds=[0]).to_csv(
        folder / "cost_matrix.csv")
    Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0}, clock="simulated",
              timing={"path": None, "sha256": None}, space={"path": "s.yaml", "sha256": "0"},
              incumbents=[Incumbent(n, n, {"lr": 1 if n[0] == "s" else 2}, 0.5, 1.0, (0, 0, 0), 3, "r")
                          for n in NAMES]).save(folder)
    return folder


def summary(labels: dict[str, str]) -> dict[str, Any]:
    """A comparison's summary naming ``labels`` ({label: registry name}); the first is the choice."""
    per = {k: {"mean_alc": 0.8 - 0.01 * i, "failed": 0} for i, k in enumerate(labels)}
    return {"lodo": {"per_selector": per, "oracle_mean_alc": 0.9, "single_best_mean_alc": 0.7,
                     "expected_random_alc": 0.6},
            "settings": {"selectors": [{"label": k, "name": v, "params": {}} for k, v in labels.items()]},
            "choice": {"selector": next(iter(labels))}, "date": "2026-01-01T00:00"}


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    return features(tmp_path / "features"), portfolio(tmp_path / "portfolio")


def test_plain_and_cost_selectors_leave_out_datasets_without_an_incumbent(inputs):
    feats, folder = inputs
    fit = fit_for_shipping("nearest-centroid", {}, feats, folder, seed=0)
    assert fit.datasets == sorted(NAMES) and fit.left_out == ["z1"] and fit.without_member == []
    assert fit.selector.classes_ == sorted(NAMES) and not fit.outputs_members
    fields = fit.card_fields()
    assert fields["features"] == str(feats) and fields["portfolio"] == str(folder)
    assert fields["cost_matrix"] == str(folder / "cost_matrix.csv") and fields["clock"] == "simulated"
    assert fields["protocol"]["name"] == "mini"
    best = fit_for_shipping("single-best", None, feats, folder / "cost_matrix.csv", seed=0)  # needs the cost
    assert best.selector.classes_ == sorted(NAMES) and best.left_out == ["z1"]


def test_member_selectors_are_fitted_on_the_member_view(inputs):
    feats, folder = inputs
    fit = fit_for_shipping("member-regression", {"n_components": 0}, feats, folder, seed=3)
    assert fit.outputs_members and fit.selector.classes_ == MEMBERS and fit.selector.datasets_ == sorted(NAMES)
    assert fit.selector.get_params()["seed"] == 3
    pinned = fit_for_shipping("member-regression", {"n_components": 0, "seed": 5}, feats, folder, seed=3)
    assert pinned.selector.get_params()["seed"] == 5  # params win over the seed


def test_no_dataset_with_an_incumbent_names_the_features_folder(inputs, tmp_path):
    feats, _ = inputs
    other = tmp_path / "other"
    other.mkdir()
    CostMatrix(["q"], ["q"], np.array([[0.5]]), [["ok"]], seeds=[0]).to_csv(other / "cost_matrix.csv")
    with pytest.raises(SelectorError, match="no dataset of these features has an incumbent") as info:
        fit_for_shipping("nearest-centroid", {}, feats, other, seed=0)
    assert info.value.path == feats and info.value.field == "features"


def test_the_summary_reader_and_the_scores(tmp_path):
    s = summary({"knn": "descriptor-knn", "mlp": "precalc-mlp"})
    (tmp_path / "summary.json").write_text(json.dumps(s))
    read, path = read_summary(tmp_path)  # the report folder or the file
    assert read == s and path == tmp_path / "summary.json"
    scores = lodo_scores(read, "mlp", path)
    assert scores["summary"] == str(path) and scores["leave_one_dataset_out"]["mean_alc"] == pytest.approx(0.79)
    assert scores["reference"] == {"oracle_mean_alc": 0.9, "single_best_mean_alc": 0.7, "expected_random_alc": 0.6}
    assert scores["chosen"] is False and scores["choice"] == "knn" and scores["compared_on"] == "2026-01-01T00:00"
    with pytest.raises(ReportError, match=r"no leave-one-dataset-out figures of 'kmeans' \(it has \['knn', 'mlp'\]\)"):
        lodo_scores(read, "kmeans", path)
    with pytest.raises(ReportError, match="not found; expected the summary.json"):
        read_summary(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ReportError, match="not valid JSON"):
        read_summary(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(ReportError, match="holds a list"):
        read_summary(tmp_path / "list.json")


def test_the_build_fits_a_chosen_member_selector_the_submission_can_resolve(inputs, tmp_path):
    """The default build's fit of a member selector (the comparison may choose one): its classes
    are the portfolio's members, each of which the submission's artifacts resolve."""
    from pipeline.default_build import fit_for_shipping as build_fit
    from submission.artifacts import Artifacts

    feats, folder = inputs
    s = summary({"member-regression": "member-regression", "knn": "descriptor-knn"})
    (folder / "selection").mkdir()
    (folder / "selection" / "summary.json").write_text(json.dumps(s))
    pick = {"selector": "member-regression", "name": "member-regression", "params": {"n_components": 0}}
    key = {"selector": pick["name"], "params": pick["params"], "seed": 0, "comparison_inputs": "abc"}
    out = folder / "selector"
    card_path, fitted = build_fit(pick, feats, folder, out, summary=s, summary_path=folder / "selection" /
                                  "summary.json", seed=0, key=key, command="pytest", role="choice")
    assert fitted
    card = json.loads(card_path.read_text())
    assert card["role"] == "choice" and card["build"] == key and card["scores"]["chosen"] is True
    assert card["classes"] == MEMBERS and card["portfolio"] == str(folder) and card["clock"] == "simulated"
    sel = load_selector(out)
    assert sel.outputs == "members"
    members = Artifacts(folder).members()
    assert all(m in members for m in sel.classes_)
    assert members["incumbent:b1"] == {"lr": 2}
    b3 = next(d for d in load_features_folder(feats) if d.name == "b3")
    assert members[sel.predict(b3.query(8, split="train", seed=1))] == {"lr": 2}  # the big images' member
    # the same key: skipped; another: fitted again
    assert build_fit(pick, feats, folder, out, summary=s, summary_path=folder / "selection" / "summary.json", seed=0,
                     key=key, command="pytest", role="choice") == (card_path, False)
    assert build_fit(pick, feats, folder, out, summary=s, summary_path=folder / "selection" / "summary.json", seed=1,
                     key={**key, "seed": 1}, command="pytest", role="choice")[1]


def test_the_runner_up_may_name_members_but_not_a_trivial_baseline():
    from pipeline.default_build import runner_up

    s = summary({"single-best": "single-best", "single-best-member": "single-best-member",
                 "size-rule": "size-rule", "member-regression": "member-regression", "knn": "descriptor-knn"})
    s["outputs"] = {"single-best-member": "members", "size-rule": "members", "member-regression": "members"}
    assert runner_up(s)["selector"] == "member-regression"
    s["choice"] = {"selector": "member-regression"}
    assert runner_up(s)["selector"] == "knn"


def test_cli_fit_prints_what_it_did(inputs, tmp_path, capsys):
    from autodl_meta.cli import main

    feats, folder = inputs
    s = summary({"nearest-centroid": "nearest-centroid"})
    (tmp_path / "summary.json").write_text(json.dumps(s))
    out = tmp_path / "fitted"
    assert main(["selector", "fit", "--features", str(feats), "--portfolio", str(folder), "--selector",
                 "nearest-centroid", "--summary", str(tmp_path / "summary.json"), "--out", str(out)]) == 0
    printed = capsys.readouterr()
    assert printed.out.strip() == (f"nearest-centroid fitted on 6 datasets; wrote {out / 'selector.json'} and "
                                   f"{out / 'selector.safetensors'}")
    assert printed.err.strip() == "left out (no incumbent in the cost matrix, so never worth naming): z1"
    card = json.loads((out / "selector.json").read_text())
    assert card["classes"] == sorted(NAMES) and card["features"] == str(feats) and card["portfolio"] == str(folder)
    assert card["scores"]["chosen"] is True and card["clock"] == "simulated"

    assert main(["selector", "fit", "--features", str(feats), "--portfolio", str(folder), "--selector",
                 "member-regression", "--param", "n_components=0", "--out", str(tmp_path / "members")]) == 0
    printed = capsys.readouterr()
    assert "member-regression fitted on 6 datasets" in printed.out
    assert "names portfolio members, not training datasets" in printed.err
    assert load_selector(tmp_path / "members").classes_ == MEMBERS

    assert main(["selector", "fit", "--features", str(feats), "--portfolio", str(folder), "--selector", "kmeans",
                 "--summary", str(tmp_path), "--out", str(tmp_path / "never")]) != 0
    assert (f"{tmp_path / 'summary.json'}: field 'lodo.per_selector': has no leave-one-dataset-out figures of "
            "'kmeans' (it has ['nearest-centroid'])") in capsys.readouterr().err
    assert not (tmp_path / "never").exists()  # refused before fitting
