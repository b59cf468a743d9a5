"""selector.report and the ``selector`` commands on a tiny hand-made collection.

The test selectors are small classes built through ``SelectorSpec(factory=...)`` (not
registered; most shared with ``test_selector_evaluation.py``, in ``selectors_for_tests.py``);
the command-line test uses the registered baselines and nearest centroid.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from selectors_for_tests import Centroid, NoState, Oracle, spec

from autodl.errors import AutoDLError
from metafeatures.features import DatasetFeatures, Query
from portfolio.cost_matrix import CostMatrix
from selector.member_views import load_cost
from selector.report import choose, compare, render

NAMES = ["d0", "d1a", "d1b", "d2", "d3", "d4"]
SOURCES = {"d1a": "d1", "d1b": "d1"}       # two variants of one source, held out together


class First(NoState):
    """Always the first training dataset."""

    name = "test-first"

    def fit(self, datasets, cost=None):
        self._set_classes(datasets)
        return self

    def predict_proba(self, query: Query) -> np.ndarray:
        p = np.zeros(len(self.classes_))
        p[0] = 1.0
        return p


class FakeEmbedder:
    card: ClassVar[dict[str, Any]] = {"backbone": "fake", "input_size": 8}

    def embed(self, x: np.ndarray) -> np.ndarray:
        return x.reshape(len(x), -1)[:, :4].astype(np.float32)


def features(dim: int = 6) -> list[DatasetFeatures]:
    out = []
    for i, name in enumerate(NAMES):
        rng = np.random.default_rng(i)
        centre = np.zeros(dim, np.float32)
        centre[i] = 4.0
        y = np.eye(3, dtype=np.float32)[np.arange(30) % 3]
        out.append(DatasetFeatures(name, centre + 0.2 * rng.normal(size=(30, dim)), y,
                                   centre + 0.2 * rng.normal(size=(12, dim)), {"classes": 3.0},
                                   SOURCES.get(name, name), {"backbone": "hand-made", "input_size": 8}))
    return out


def cost_matrix() -> CostMatrix:
    alc = np.random.default_rng(7).uniform(0.2, 0.9, (len(NAMES), len(NAMES)))
    return CostMatrix(list(NAMES), list(NAMES), alc, [["ok"] * len(NAMES) for _ in NAMES], seeds=[0])


def portfolio_folder(root: Path, cost: CostMatrix) -> Path:
    """A portfolio folder: portfolio.json (protocol mini, simulated clock) and cost_matrix.csv."""
    from portfolio.incumbents import Incumbent, Portfolio

    root.mkdir(parents=True, exist_ok=True)
    Portfolio(protocol={"name": "mini", "time_budget": 60.0, "t0": 3.0, "max_train_examples": 5000},
              clock="simulated", timing={"path": None, "sha256": None}, space={"path": "space.yaml", "sha256": "0"},
              incumbents=[Incumbent(n, f"/data/{n}", {"lr": 0.1 * (i + 1)}, 0.5, 1.0, (0, 0, 0), 3, "run")
                          for i, n in enumerate(NAMES)]
              ).save(root)
    cost.to_csv(root / "cost_matrix.csv")
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict[str, Any]]:
    root = tmp_path_factory.mktemp("report")
    folder = portfolio_folder(root / "portfolio", cost_matrix())
    summary = compare([spec(Centroid), spec(First), spec(Oracle)], features(), folder, root / "out",
                      batch_sizes=(1, 4, 16), n_batches=2, query_size=8, n_queries=2, seeds=(0, 1),
                      cost_batch_sizes=(1, 8), timing_repeats=1, embedder=FakeEmbedder(),
                      command="pytest compare")
    return root / "out", summary


def test_compare_writes_the_report(report):
    out, summary = report
    for name in ("report.md", "report.html", "accuracy.png", "regret.png", "cd.png", "embeddings.png",
                 "identification.csv", "lodo.csv", "embedding_map.csv", "summary.json"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert "`mini` (T = 60 s, t0 = 3 s)" in md and "simulated clock" in md
    assert "pytest compare" in md and summary["machine"] in md
    for pic in ("accuracy.png", "regret.png", "cd.png", "embeddings.png"):
        assert f"]({pic})" in md
    for label in ("test-centroid", "test-first", "test-oracle"):
        assert label in md
    # every selector against the bar (selector.bar), the plain picks and with the nested fallback
    from selector.bar import bar_rows

    bar = md.split("### Does selection earn its place?")[1].split("###")[0]
    rows = bar_rows(summary)
    assert {(r["selector"], r["rule"]) for r in rows} >= {("test-centroid", "pick"),
                                                          ("test-centroid", "pick, nested fallback")}
    for r in rows:
        assert f"| {r['selector']} | {r['rule']} | {r['mean_alc']:.4f} |" in bar
    assert "Clearing the bar: " in bar
    page = (out / "report.html").read_text()
    assert "<script" not in page and '<img src="cd.png"' in page and "<table>" in page
    # the choice: the best mean LODO ALC among the selectors that are not evaluation-only
    per = summary["lodo"]["per_selector"]
    best = max(("test-centroid", "test-first"), key=lambda k: per[k]["mean_alc"])
    assert summary["choice"]["selector"] == best
    assert f"**{best}**" in md and "selector fit" in md
    # two seeds x 6 held-out datasets x 4 selectors: the 3 given and the single-best baseline that
    # compare adds (not the size rule: these features have no image sizes)
    assert summary["baselines"]["added"] == ["single-best"] and "size-rule" in summary["baselines"]["not_added"]
    assert len((out / "lodo.csv").read_text().splitlines()) == 1 + 2 * 6 * 4
    assert summary["lodo"]["per_selector"]["test-oracle"]["mean_regret"] == pytest.approx(0.0)
    # d1a and d1b are held out together: neither is ever picked for the other
    saved = json.loads((out / "summary.json").read_text())
    for ds in ("d1a", "d1b"):
        assert set(saved["lodo"]["per_dataset"][ds]["selected"].values()).isdisjoint({"d1a", "d1b"})
    assert saved["selection_cost"]["embedding_card"]["backbone"] == "fake"
    assert {r["batch_size"] for r in saved["selection_cost"]["rows"]} == {1, 8}


def test_render_writes_the_same_report_again(report):
    out, _ = report
    md = (out / "report.md").read_text()
    (out / "report.md").unlink()
    (out / "regret.png").unlink()
    paths = render(out)
    assert (out / "report.md").read_text() == md
    assert paths["regret"].is_file()


def test_choose_ties_and_exclusions():
    def entry(alc: float, failed: int = 0) -> dict[str, Any]:
        return {"mean_alc": alc, "failed": failed, "predict_seconds": 0.5}

    labels = ("oracle", "lucky", "slow", "fast", "broken", "worse")
    summary = {"lodo": {"per_selector": {"oracle": entry(0.9), "lucky": entry(0.85), "slow": entry(0.7),
                                         "fast": entry(0.7), "broken": entry(0.8, failed=1), "worse": entry(0.6)}},
               "evaluation_only": ["oracle"],
               "settings": {"query_size": 64, "selectors": [{"label": k, "name": "random" if k == "lucky" else k,
                                                             "params": {}} for k in labels]},
               "selection_cost": {"rows": [{"selector": "slow", "batch_size": 64, "total_seconds": 0.9},
                                           {"selector": "fast", "batch_size": 64, "total_seconds": 0.1}]}}
    c = choose(summary)
    # the oracle is evaluation-only, "lucky" is the random baseline, "broken" failed on a dataset;
    # slow and fast tie at .7: fast wins
    assert c["selector"] == "fast" and "tied with slow" in c["reason"]
    assert c["candidates"] == ["fast", "slow", "worse"]


def test_load_cost_from_cells_while_the_matrix_is_built(tmp_path):
    from autodl.records import append_jsonl

    cost = cost_matrix()
    folder = portfolio_folder(tmp_path, cost)
    (folder / "cost_matrix.csv").unlink()
    for s, t in (("d0", "d1a"), ("d1a", "d0")):
        append_jsonl(folder / "cells.jsonl", {"source": s, "target": t, "seed": 0, "status": "ok", "alc": 0.5})
    src = load_cost(folder)
    assert src.protocol["name"] == "mini" and src.clock == "simulated"
    assert src.matrix.value("d0", "d1a") == 0.5 and src.matrix.value("d1a", "d1a") is None
    assert "cells.jsonl" in src.note
    with pytest.raises(AutoDLError, match="not found"):
        load_cost(tmp_path / "nowhere")
    (folder / "cells.jsonl").unlink()
    with pytest.raises(AutoDLError, match="no cost_matrix.csv"):
        load_cost(folder)


# --- the command line -------------------------------------------------------------------------
def parser() -> argparse.ArgumentParser:
    from autodl_meta import cli_selector

    p = argparse.ArgumentParser(prog="autodl-meta")
    sub = p.add_subparsers(dest="command", required=True)
    cli_selector.register(sub, argparse.ArgumentDefaultsHelpFormatter)
    b = sub.add_parser("benchmark")
    cli_selector.register_benchmark(b.add_subparsers(dest="benchmark_command", required=True),
                                    argparse.ArgumentDefaultsHelpFormatter)
    return p


def run(*argv: str) -> int:
    """The command as ``autodl-meta`` runs it (``sys.argv`` is what the report and card name)."""
    import sys

    args = parser().parse_args(list(argv))
    saved = sys.argv
    sys.argv = ["autodl-meta", *argv]
    try:
        return args.func(args)
    finally:
        sys.argv = saved


def test_cli_compare_fit_list(tmp_path, capsys):
    from selector.registry import load_selector

    feats = tmp_path / "features"
    for d in features():
        d.save(feats)
    cost_matrix().to_csv(tmp_path / "cost_matrix.csv")
    out = tmp_path / "report"
    assert run("selector", "compare", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
               "--selectors", "nearest-centroid,random,random-7=random,single-best,oracle", "--param", "random.seed=3",
               "--param", "random-7.seed=7",
               "--batch-sizes", "1,4", "--n-batches", "2", "--query-size", "8", "--n-queries", "2",
               "--cost-batch-sizes", "8", "--repeats", "1", "--no-embedding-timing", "--parts", str(tmp_path / "kept"),
               "--out", str(out)) == 0
    text = capsys.readouterr().out
    assert "nearest-centroid" in text and "single best" in text and f"report: {out / 'report.md'}" in text
    summary = json.loads((out / "summary.json").read_text())
    assert len(list((tmp_path / "kept").glob("*.json"))) == len(summary["settings"]["selectors"])  # one per selector
    assert summary["settings"]["selectors"][1] == {"label": "random", "name": "random", "params": {"seed": 3}}
    # a variant under its own label (LABEL=NAME), compared beside the plain one
    assert summary["settings"]["selectors"][2] == {"label": "random-7", "name": "random", "params": {"seed": 7}}
    assert "random-7" in summary["lodo"]["per_selector"]
    assert summary["lodo"]["per_selector"]["oracle"]["mean_regret"] == pytest.approx(0.0)
    assert summary["lodo"]["per_selector"]["nearest-centroid"]["failed"] == 0
    assert summary["selection_cost"]["embedding_error"] == "not timed (asked not to)"
    assert "protocol not recorded" in (out / "report.md").read_text()

    fitted = tmp_path / "shipped"
    assert run("selector", "fit", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
               "--selector", "nearest-centroid", "--summary", str(out / "summary.json"), "--out", str(fitted)) == 0
    card = json.loads((fitted / "selector.json").read_text())
    assert card["scores"]["leave_one_dataset_out"]["mean_alc"] == pytest.approx(
        summary["lodo"]["per_selector"]["nearest-centroid"]["mean_alc"])
    assert card["classes"] == NAMES and "selector fit" in card["command"]
    sel = load_selector(fitted)
    q = features()[3].query(8, split="test", seed=0)
    assert sel.predict(q) == "d2"

    # a compared label is fitted as compared (its name and parameters), its scores on its card
    variant = tmp_path / "variant"
    assert run("selector", "fit", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
               "--selector", "random-7", "--summary", str(out / "summary.json"), "--out", str(variant)) == 0
    vcard = json.loads((variant / "selector.json").read_text())
    assert vcard["scores"]["leave_one_dataset_out"] == summary["lodo"]["per_selector"]["random-7"]
    assert vcard["selector"] == "random" and vcard["params"] == {"seed": 7}
    with pytest.raises(AutoDLError, match="would fit another selector"):
        run("selector", "fit", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
            "--selector", "random-7", "--param", "seed=3", "--summary", str(out / "summary.json"),
            "--out", str(tmp_path / "v2"))
    for bad, message in (("random,random", "named twice"), ("r=nosuch", "expected a registered selector")):
        with pytest.raises(AutoDLError, match=message):
            run("selector", "compare", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
                "--selectors", bad, "--out", str(tmp_path / "z"))

    capsys.readouterr()
    assert run("selector", "list") == 0
    listed = capsys.readouterr().out
    assert "oracle" in listed and "needs cost matrix" in listed

    with pytest.raises(AutoDLError, match="not among the selectors"):
        run("selector", "compare", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
            "--selectors", "random", "--param", "kmeans.n_clusters=2", "--out", str(tmp_path / "x"))
    with pytest.raises(AutoDLError, match="no leave-one-dataset-out figures"):
        run("selector", "fit", "--features", str(feats), "--portfolio", str(tmp_path / "cost_matrix.csv"),
            "--selector", "kmeans", "--summary", str(out / "summary.json"), "--out", str(tmp_path / "y"))


def test_benchmark_report_format():
    from pipeline.benchmarks.selection_cost import selector_report

    result = {"date": "2026-01-01T00:00", "machine": "test machine", "device": "cpu", "threads": 1, "repeats": 3,
              "batch": 64, "fitted_on": "synthetic", "latency_target_s": 1.0,
              "embedder": {"backbone": "tf_efficientnet_lite0", "input_size": 64, "dim": 1280},
              "embedding": {"images": 256, "batch_size": 64, "bare_images_per_s": 100.0,
                            "extractor_images_per_s": 95.0, "ratio": 0.95, "target": 0.9, "meets_target": True},
              "selection": [{"selector": "a", "fit_seconds": 0.1, "embed_seconds": 0.5, "select_seconds": 0.01,
                             "total_seconds": 0.51, "meets_target": True},
                            {"selector": "b", "fit_seconds": 0.2, "error": "ValueError: no"}]}
    text = selector_report(result, "autodl-meta benchmark selector")
    assert "**95 %**" in text and "| a | 0.10 | 0.500 | 0.010 | 0.510 | met |" in text
    assert "failed: ValueError: no" in text and "test machine" in text
