"""``autodl-meta benchmark tiny``: the probe chosen without a validation split, leave-one-out
against leave-pair-out, on tiny draws of stored meta-feature samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from autodl.errors import AutoDLError
from pipeline.benchmarks.tiny_probes import PROBES, draw_tiny, run_tiny_probes, tiny_markdown


def _features(folder: Path, name: str, *, classes: int = 4, per_class: int = 12, multilabel: bool = False,
              raw: bool = True, seed: int = 0) -> None:
    """Embeddings that separate the classes, raw pixels that are noise."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(classes), per_class)
    labels = np.eye(classes, dtype=np.float32)[y]
    if multilabel:
        labels[::3, 0] = 1
    centres = rng.normal(0, 3, (classes, 16))
    emb = (centres[y] + rng.normal(0, 1, (len(y), 16))).astype(np.float32)
    arrays = {"train": emb, "train_labels": labels}
    if raw:
        arrays["train_raw"] = rng.normal(0, 1, (len(y), 12)).astype(np.float32)
    np.savez(folder / f"{name}.npz", **arrays)


def test_draws_are_tiny_stratified_and_disjoint():
    labels = np.eye(5, dtype=np.float32)[np.repeat(np.arange(5), [10, 10, 10, 4, 2])]
    draw = draw_tiny(labels, per_class=3, classes=3, rng=np.random.default_rng(0))
    assert len(draw.classes) == 3 and set(draw.classes) <= {0, 1, 2, 3}  # class 4 has too few
    y = labels.argmax(1)
    assert np.bincount(y[draw.train], minlength=5)[draw.classes].tolist() == [3, 3, 3]
    assert not set(draw.train) & set(draw.test) and set(y[draw.test]) == set(draw.classes)
    assert draw_tiny(labels[:12], per_class=3, classes=3, rng=np.random.default_rng(0)) is None  # one class


def test_informative_embeddings_are_chosen_and_both_criteria_reported(tmp_path: Path):
    _features(tmp_path, "separable")
    _features(tmp_path, "multi", multilabel=True)
    rows = run_tiny_probes(tmp_path, draws=3, per_class=3, classes=4)
    assert {r["dataset"] for r in rows} == {"separable"}  # the multi-label one is left out
    assert len(rows) == 6 and {r["criterion"] for r in rows} == {"loo", "lpo"}
    for r in rows:
        assert r["n_train"] == 12 < 30 and r["n_test"] == 36 and r["chosen"] in PROBES
        assert r["chosen_test"] == r[f"test_{r['chosen']}"]
    lpo = [r for r in rows if r["criterion"] == "lpo"]
    assert all(r["chosen"] == "embedding" and r["test_embedding"] > 0.9 > r["test_raw"] for r in lpo)
    text = tiny_markdown(rows)
    assert "| separable | 3 |" in text and "all (mean of datasets)" in text and "wins" in text


def test_bad_features_are_refused_with_the_file_and_field(tmp_path: Path):
    with pytest.raises(AutoDLError, match="metafeatures extract"):
        run_tiny_probes(tmp_path)
    _features(tmp_path, "old", raw=False)
    with pytest.raises(AutoDLError, match="train_raw"):
        run_tiny_probes(tmp_path)
    with pytest.raises(AutoDLError, match="no such"):
        run_tiny_probes(tmp_path, datasets=["nope"])


def test_command_writes_rows_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    from autodl_meta.cli import main

    _features(tmp_path, "separable")
    doc, csv = tmp_path / "bench.md", tmp_path / "tiny.csv"
    assert main(["benchmark", "tiny", "--features", str(tmp_path), "--draws", "2", "--per-class", "3",
                 "--doc", str(doc), "--results", str(csv)]) == 0
    assert "leave-pair-out" in doc.read_text() and "Command: `autodl-meta" in doc.read_text()
    assert len(csv.read_text().splitlines()) == 1 + 4
    assert main(["benchmark", "tiny", "--features", str(tmp_path / "none"), "--doc", ""]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metafeatures extract" in err[0]
