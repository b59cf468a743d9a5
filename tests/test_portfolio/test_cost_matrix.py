"""``portfolio.cost_matrix``: every incumbent on every dataset with Dask, resumable cell by cell;
single best, oracle and headroom; the model names ``baseline:single-best`` / ``baseline:oracle``.

Evaluations run on the simulated clock with the hand-made timing table of ``tests/conftest.py``
under a 6-second protocol on datasets of a dozen 8x8 images, so that a cell costs well under
a second once the worker has imported PyTorch, and results depend on nothing but the seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import flat_timing

from autodl.errors import AutoDLError
from autodl.protocol import Protocol
from autodl.records import read_jsonl
from autodl.writer import write_arrays
from finetune.learner import LEARNER_VERSION
from portfolio.cost_matrix import (
    CELLS_FILE,
    CostMatrix,
    CostMatrixError,
    config_digest,
    dataset_collection,
    matrix_from_cells,
    run_cost_matrix,
    summarize,
)
from portfolio.incumbents import Incumbent, Portfolio

PROTO = Protocol("tiny", time_budget=6.0, t0=0.3)
CHEAP = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
         "learning_rate": 0.01, "pretrained": False, "augmentation": "none"}
CONFIGS = {"bars": {**CHEAP, "probes": "raw"}, "dots": {**CHEAP, "probes": "raw+random"},
           "rings": {**CHEAP, "finetune": False}}

pytestmark = pytest.mark.usefixtures("torch_threads_1")


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of three tiny datasets (12 training, 6 test 8x8 grey images, 2 classes)."""
    root = tmp_path_factory.mktemp("collection")
    for k, name in enumerate(CONFIGS):
        rng = np.random.default_rng(k)

        def images(n: int) -> tuple[np.ndarray, np.ndarray]:
            y = rng.permutation(np.arange(n) % 2)
            x = rng.integers(0, 90, (n, 8, 8, 1)).astype(np.uint8)
            for i, c in enumerate(y):
                x[i, 4 * c:4 * c + 4, k:k + 4] = 230
            return x, y

        write_arrays(root / name, name, *images(12), *images(6), num_classes=2)
    (root / "notes").mkdir()  # not a dataset: skipped
    return root


@pytest.fixture(scope="module")
def timing_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return flat_timing(0.05, 0.0005).save(tmp_path_factory.mktemp("timing") / "flat.json")


def make_portfolio(collection: Path, timing_file: Path, configs: dict[str, dict[str, Any]] = CONFIGS) -> Portfolio:
    sha = hashlib.sha256(timing_file.read_bytes()).hexdigest()
    incumbents = [Incumbent(dataset=name, dataset_path=str(collection / name), config=dict(config), alc=0.5,
                            budget=1.0, config_id=(0, 0, i), trials=3, run_id=f"run-{name}")
                  for i, (name, config) in enumerate(configs.items())]
    return Portfolio(protocol=PROTO.to_dict(), clock="simulated", timing={"path": str(timing_file), "sha256": sha},
                     space={"path": "configs/space/finetune.yaml", "sha256": "00" * 32}, incumbents=incumbents,
                     provenance={"versions": {}, "seeds": {}, "date": "2026-01-01", "command": "test"})


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


# --- with Dask ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_three_by_three_with_a_two_worker_local_cluster_then_nothing_new(collection: Path, timing_file: Path,
                                                                         tmp_path: Path):
    portfolio = make_portfolio(collection, timing_file)
    calls: list[tuple[int, int, Any]] = []
    result = run_cost_matrix(portfolio, collection, tmp_path / "cm", workers=2, device="cpu",
                             progress=lambda done, total, row: calls.append((done, total, row)))
    rows = read_jsonl(tmp_path / "cm" / CELLS_FILE)
    assert len(rows) == 9 and len(result.computed) == 9
    assert {(r["source"], r["target"]) for r in rows} == {(s, t) for s in CONFIGS for t in CONFIGS}
    assert all(r["status"] == "ok" for r in rows), [r["error"] for r in rows]
    assert all(0 < r["alc"] <= 1 for r in rows)
    assert all(int(r["worker"].rsplit(":", 1)[1]) != os.getpid() for r in rows)  # computed in the workers
    assert calls[0] == (0, 9, None) and calls[-1][:2] == (9, 9)
    table = read_csv(result.paths["csv"])
    assert table[0] == ["source", "bars", "dots", "rings"]
    assert [r[0] for r in table[1:]] == ["bars", "dots", "rings"]
    assert all(v != "" for r in table[1:] for v in r[1:])
    assert result.paths["heatmap"].stat().st_size > 0
    summary = json.loads(result.paths["summary_json"].read_text())
    assert summary["single_best"]["source"] in CONFIGS and set(summary["oracle"]) == set(CONFIGS)
    assert "Single best" in result.paths["summary_md"].read_text()
    t = result.timings
    assert t["cells"] == 9 and t["workers"] == 2 and t["eval_seconds_per_cell"] > 0 and t["cells_per_hour"] > 0

    before = (tmp_path / "cm" / CELLS_FILE).read_text()
    calls.clear()
    again = run_cost_matrix(tmp_path / "cm" / "portfolio.json", collection, tmp_path / "cm", workers=2,
                            progress=lambda done, total, row: calls.append((done, total, row)))
    assert again.computed == [] and again.timings["cells"] == 0 and calls == [(0, 0, None)]
    assert (tmp_path / "cm" / CELLS_FILE).read_text() == before
    np.testing.assert_array_equal(again.matrix.alc, result.matrix.alc)


@pytest.mark.slow
def test_a_cell_whose_evaluation_raises_in_the_worker_is_failed(collection: Path, timing_file: Path,
                                                                tmp_path: Path):
    """On a running cluster (``scheduler=``, as with dask-jobqueue): one incumbent cannot run."""
    from dask.distributed import LocalCluster

    configs = {"bars": CONFIGS["bars"], "dots": {**CHEAP, "backbone": "no_such_network"}}
    portfolio = make_portfolio(collection, timing_file, configs)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        result = run_cost_matrix(portfolio, [("bars", collection / "bars")], tmp_path / "cm", device="cpu",
                                 scheduler=cluster.scheduler_address)
    assert result.timings["scheduler"] == cluster.scheduler_address and result.timings["workers"] == 1
    by = {r["source"]: r for r in read_jsonl(tmp_path / "cm" / CELLS_FILE)}
    assert by["bars"]["status"] == "ok"
    bad = by["dots"]
    assert bad["status"] == "failed" and bad["alc"] is None  # never an ALC of 0
    assert "no_such_network" in bad["error"] and "backbone" in bad["error"] and bad["traceback"]
    assert int(bad["worker"].rsplit(":", 1)[1]) != os.getpid()  # it raised in the Dask worker
    assert read_csv(result.paths["csv"])[2] == ["dots", ""]
    assert result.matrix.status[1][0] == "failed"
    assert result.summary["single_best"] is None and result.summary["oracle"]["bars"]["source"] == "bars"
    assert "failed" in result.paths["summary_md"].read_text()
    # re-running does not retry it unless asked
    assert run_cost_matrix(portfolio, [("bars", collection / "bars")], tmp_path / "cm", workers=0).computed == []


# --- in this process (workers=0): resuming, crashes --------------------------------------------
def test_a_crashing_model_is_crashed_and_resuming_computes_only_what_is_missing(
        collection: Path, timing_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from finetune.learner import FineTuneLearner

    portfolio = make_portfolio(collection, timing_file, {"bars": CONFIGS["bars"]})
    targets = [f"{n}={collection / n}" for n in ("bars", "dots")]
    first = run_cost_matrix(portfolio, targets, tmp_path / "cm", workers=0, device="cpu")
    assert [r["status"] for r in first.computed] == ["ok", "ok"]
    assert all(r["cpu_seconds"] > 0 for r in first.computed)  # the worker's CPU, summed in the timings
    assert first.timings["cpu_seconds"] == pytest.approx(sum(r["cpu_seconds"] for r in first.computed))

    def broken(self: Any, dataset: Any, remaining_time_budget: float | None = None) -> None:
        raise RuntimeError("out of memory, say")

    monkeypatch.setattr(FineTuneLearner, "train", broken)
    more = run_cost_matrix(portfolio, targets + [str(collection / "rings")], tmp_path / "cm", seeds=[0, 1],
                           workers=0, device="cpu")
    assert sorted((r["target"], r["seed"]) for r in more.computed) == [
        ("bars", 1), ("dots", 1), ("rings", 0), ("rings", 1)]
    assert all(r["status"] == "crashed" and r["alc"] is None for r in more.computed)
    assert "out of memory" in more.computed[0]["error"]
    assert read_csv(more.paths["csv"]) == [["source", "bars", "dots", "rings"], ["bars", "", "", ""]]
    assert more.matrix.status == [["crashed", "crashed", "crashed"]]

    # a changed incumbent is a new row of cells; the unchanged cells stay
    monkeypatch.undo()
    changed = make_portfolio(collection, timing_file, {"bars": {**CONFIGS["bars"], "learning_rate": 0.02}})
    redo = run_cost_matrix(changed, targets, tmp_path / "cm", workers=0, device="cpu")
    assert len(redo.computed) == 2 and redo.computed[0]["config_digest"] == config_digest(changed.incumbents[0].config)


def test_incumbents_of_the_same_configuration_share_one_evaluation_per_cell(collection: Path, timing_file: Path,
                                                                          tmp_path: Path):
    """Under the simulated clock an evaluation depends on the configuration, the dataset and the
    seed only: "dots" and "rings" below are the same configuration, so each cell is evaluated once
    and copied for the other (``reused_from``), also when resuming a matrix that lacks the copy."""
    same = {"bars": CONFIGS["bars"], "dots": CONFIGS["dots"], "rings": dict(CONFIGS["dots"])}
    portfolio = make_portfolio(collection, timing_file, same)
    targets = [f"{n}={collection / n}" for n in ("bars", "dots")]
    first = run_cost_matrix(make_portfolio(collection, timing_file, {"dots": CONFIGS["dots"]}), targets,
                            tmp_path / "cm", workers=0, device="cpu")
    assert len(first.computed) == 2
    res = run_cost_matrix(portfolio, targets, tmp_path / "cm", workers=0, device="cpu")
    assert sorted((r["source"], r["target"]) for r in res.computed) == [("bars", "bars"), ("bars", "dots")]
    rings = {r["target"]: r for r in res.cells if r["source"] == "rings"}
    dots = {r["target"]: r for r in res.cells if r["source"] == "dots"}
    assert {t: r["reused_from"] for t, r in rings.items()} == {"bars": "dots", "dots": "dots"}
    assert all(rings[t]["alc"] == dots[t]["alc"] for t in rings)
    np.testing.assert_array_equal(res.matrix.alc[1], res.matrix.alc[2])
    # a fresh matrix: one evaluation per (configuration, dataset), the copy recorded as it comes
    fresh = run_cost_matrix(portfolio, targets, tmp_path / "fresh", workers=0, device="cpu")
    assert len(fresh.computed) == 4 and len(fresh.cells) == 6
    assert sum(1 for r in fresh.cells if r.get("reused_from")) == 2


def test_cells_of_another_learner_version_are_computed_again_and_never_reused(collection: Path, timing_file: Path,
                                                                            tmp_path: Path):
    """A cell records the learner version that computed it; a cell (or a known evaluation) of
    another version, or without the field (version 1), is not counted, nor copied: computed again."""
    assert LEARNER_VERSION > 1
    portfolio = make_portfolio(collection, timing_file, {"bars": CONFIGS["bars"]})
    targets = [f"bars={collection / 'bars'}"]
    first = run_cost_matrix(portfolio, targets, tmp_path / "cm", workers=0, device="cpu")
    assert [r["learner_version"] for r in first.computed] == [LEARNER_VERSION]
    cell = first.computed[0]
    old = {k: v for k, v in cell.items() if k != "learner_version"}
    (tmp_path / "cm" / CELLS_FILE).write_text(json.dumps(old) + "\n")
    again = run_cost_matrix(portfolio, targets, tmp_path / "cm", workers=0, device="cpu")
    assert len(again.computed) == 1 and [r["learner_version"] for r in again.cells] == [LEARNER_VERSION]
    assert again.computed[0]["alc"] == cell["alc"]
    # a known evaluation (e.g. a BOHB trial) is copied only where the same learner version made it
    trial = {**cell, "source": "trial:bars:0.0.0"}
    stale = run_cost_matrix(portfolio, targets, tmp_path / "stale", workers=0, device="cpu",
                            known=[{**trial, "learner_version": 1}])
    assert len(stale.computed) == 1 and not stale.cells[0].get("reused_from")
    same = run_cost_matrix(portfolio, targets, tmp_path / "same", workers=0, device="cpu", known=[trial])
    assert same.computed == [] and same.cells[0]["reused_from"] == "trial:bars:0.0.0"


def test_refusals_before_anything_runs(collection: Path, timing_file: Path, tmp_path: Path):
    portfolio = make_portfolio(collection, timing_file, {"bars": CONFIGS["bars"]})
    run_cost_matrix(portfolio, [("bars", collection / "bars")], tmp_path / "cm", workers=0, device="cpu")
    other = make_portfolio(collection, timing_file, {"bars": CONFIGS["bars"]})
    other.protocol = {**other.protocol, "time_budget": 12.0}
    with pytest.raises(CostMatrixError, match="different protocol"):
        run_cost_matrix(other, collection, tmp_path / "cm", workers=0)
    stale = make_portfolio(collection, timing_file, {"bars": CONFIGS["bars"]})
    stale.timing = {"path": str(timing_file), "sha256": "11" * 32}
    with pytest.raises(CostMatrixError, match="changed since the BOHB runs"):
        run_cost_matrix(stale, collection, tmp_path / "other", workers=0)
    with pytest.raises(CostMatrixError, match="holds no AutoDL dataset"):
        run_cost_matrix(portfolio, tmp_path / "cm", tmp_path / "third", workers=0)
    with pytest.raises(CostMatrixError, match="also"):
        dataset_collection([collection, f"bars={collection / 'dots'}"])


# --- single best, oracle, headroom --------------------------------------------------------------
def test_single_best_oracle_and_headroom_worked_by_hand():
    nan = np.nan
    matrix = CostMatrix(sources=["a", "b", "c"], targets=["a", "b", "c", "d"],
                        alc=np.array([[0.9, 0.2, 0.5, 0.5],
                                      [0.6, 0.7, 0.6, nan],
                                      [0.3, 0.4, 0.8, 0.9]]))
    s = summarize(matrix)
    # means over the complete columns a, b, c: a 1.6/3, b 1.9/3, c 1.5/3
    assert s["complete_targets"] == ["a", "b", "c"] and s["incomplete_targets"] == {"d": ["b"]}
    assert s["mean_alc"] == pytest.approx({"a": 1.6 / 3, "b": 1.9 / 3, "c": 1.5 / 3})
    assert s["single_best"] == {"source": "b", "mean_alc": pytest.approx(1.9 / 3)}
    assert {t: (o["source"], o["alc"]) for t, o in s["oracle"].items()} == {
        "a": ("a", 0.9), "b": ("b", 0.7), "c": ("c", 0.8), "d": ("c", 0.9)}
    assert s["oracle"]["d"]["complete"] is False
    # headroom: a 0.9 - 0.6, b 0.7 - 0.7, c 0.8 - 0.6; mean 0.5 / 3
    assert s["headroom"]["per_dataset"] == pytest.approx({"a": 0.3, "b": 0.0, "c": 0.2})
    assert s["headroom"]["mean"] == pytest.approx(0.5 / 3)
    assert s["oracle_mean_alc"] == pytest.approx(2.4 / 3)
    assert s["own_incumbent"] == {"a": {"alc": 0.9, "is_oracle": True}, "b": {"alc": 0.7, "is_oracle": True},
                                  "c": {"alc": 0.8, "is_oracle": True}}
    tie = summarize(CostMatrix(["x", "y"], ["t"], np.array([[0.5], [0.5]])))
    assert tie["single_best"]["source"] == "x" and tie["oracle"]["t"]["source"] == "x"  # ties: the earlier row


def test_matrix_means_over_seeds_and_marks_what_is_not_ok():
    def cell(s: str, t: str, seed: int, status: str = "ok", alc: float | None = None) -> dict[str, Any]:
        return {"source": s, "target": t, "seed": seed, "status": status, "alc": alc}

    rows = [cell("a", "x", 0, alc=0.4), cell("a", "x", 1, alc=0.6), cell("a", "y", 0, alc=0.5),
            cell("a", "y", 1, "crashed"), cell("b", "x", 0, alc=0.1), cell("b", "y", 0, "failed"),
            cell("b", "y", 1, "timeout")]
    m = matrix_from_cells(rows, ["a", "b"], ["x", "y"], [0, 1])
    assert m.alc[0, 0] == pytest.approx(0.5) and np.isnan(m.alc[0, 1]) and np.isnan(m.alc[1, 0])
    assert m.status == [["ok", "crashed"], ["partial", "failed"]]


def test_cost_matrix_csv_round_trip(tmp_path: Path):
    m = CostMatrix(["a", "b"], ["x", "y"], np.array([[0.25, np.nan], [0.5, 0.125]]))
    back = CostMatrix.read_csv(m.to_csv(tmp_path / "m.csv"))
    assert back.sources == ["a", "b"] and back.targets == ["x", "y"]
    np.testing.assert_array_equal(back.alc, m.alc)


# --- model names --------------------------------------------------------------------------------
@pytest.fixture
def portfolio_dir(collection: Path, timing_file: Path, tmp_path: Path) -> Path:
    """A finished 3 x 3 portfolio folder from handmade cells (nothing is evaluated): the single
    best is the incumbent of 'dots'; the oracle of 'rings' is the incumbent of 'bars'."""
    portfolio = make_portfolio(collection, timing_file)
    alcs = {"bars": [0.9, 0.5, 0.8], "dots": [0.8, 0.8, 0.7], "rings": [0.1, 0.2, 0.3]}
    out = tmp_path / "pf"
    out.mkdir()
    with (out / CELLS_FILE).open("w") as f:
        for inc in portfolio.incumbents:
            for target, alc in zip(CONFIGS, alcs[inc.dataset], strict=True):
                f.write(json.dumps({"source": inc.dataset, "target": target, "seed": 0, "status": "ok", "alc": alc,
                                    "config_digest": config_digest(inc.config), "wall_seconds": 1.0,
                                    "learner_version": LEARNER_VERSION}) + "\n")
    result = run_cost_matrix(portfolio, collection, out, workers=0)
    assert result.computed == [] and result.summary["single_best"]["source"] == "dots"
    assert result.summary["oracle"]["rings"]["source"] == "bars"
    return out


def test_single_best_and_oracle_model_names(portfolio_dir: Path, collection: Path, tmp_path: Path):
    from finetune.config import validate_config
    from finetune.models import known_models, resolve_model

    assert {"baseline:single-best", "baseline:oracle"} <= set(known_models())
    single = resolve_model("baseline:single-best", portfolio=portfolio_dir)
    assert single.config == validate_config(CONFIGS["dots"])
    oracle = resolve_model("baseline:oracle", portfolio=portfolio_dir / "portfolio.json",
                           dataset=collection / "rings")
    assert oracle.config == validate_config(CONFIGS["bars"])
    assert resolve_model("baseline:oracle", portfolio=portfolio_dir, dataset=collection / "dots").config == \
        validate_config(CONFIGS["dots"])
    with pytest.raises(AutoDLError, match="needs a portfolio"):
        resolve_model("baseline:single-best")
    write_arrays(tmp_path / "elsewhere", "elsewhere", np.zeros((4, 8, 8, 1), np.uint8), [0, 1, 0, 1],
                 np.zeros((2, 8, 8, 1), np.uint8), [0, 1], num_classes=2)
    with pytest.raises(AutoDLError) as info:
        resolve_model("baseline:oracle", portfolio=portfolio_dir, dataset=tmp_path / "elsewhere")
    assert "'elsewhere' is not a column" in str(info.value) and "bars, dots, rings" in str(info.value)
    with pytest.raises(AutoDLError, match="summary.json"):
        resolve_model("baseline:single-best", portfolio=tmp_path)


def test_evaluate_and_cli_run_with_a_portfolio(portfolio_dir: Path, collection: Path, timing_file: Path,
                                               tmp_path: Path):
    from finetune.config_runs import evaluate

    ev = evaluate("baseline:oracle", collection / "rings", PROTO, timing=timing_file, device="cpu",
                  portfolio=portfolio_dir)
    assert ev.status == "ok" and ev.model == "baseline:oracle"
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "run", "--dataset", str(collection / "bars"),
                           "--model", "baseline:single-best", "--portfolio", str(portfolio_dir), "--clock",
                           "simulated", "--timing", str(timing_file), "--time-budget", "6", "--t0", "0.3",
                           "--device", "cpu", "--threads", "1", "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "ALC" in proc.stdout


def test_cli_cost_matrix_reports_a_finished_matrix(portfolio_dir: Path, collection: Path):
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "portfolio", "cost-matrix", "--portfolio",
                           str(portfolio_dir), "--datasets", str(collection), "--out", str(portfolio_dir),
                           "--workers", "0"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "0 cells computed now" in proc.stdout and "single best: the incumbent of dots" in proc.stdout
