"""Fixtures of the submission tests: an unseen tiny dataset and a small folder of artifacts.

The artifacts are real: two tiny training datasets are embedded with EfficientNet-Lite0 (at
32 px, a few seconds), a nearest-centroid selector is fitted on them, and each dataset's
"incumbent" is a cheap configuration (probes only), so that a submission built on them
runs in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from .submission_helpers import CHEAP, CHEAP_B, write_stripes


@pytest.fixture(scope="session")
def unseen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny 3-class RGB dataset no portfolio has seen."""
    return write_stripes(tmp_path_factory.mktemp("unseen") / "stripes", "stripes", seed=7)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of artifacts: portfolio.json, summary.json, a fitted nearest-centroid selector
    (Lite0 embeddings at 32 px) and a checksum table."""
    from metafeatures.embeddings import EmbeddingSpec, extract_features
    from selector.registry import make_selector
    from submission.artifacts import CHECKSUMS, CHECKSUMS_FORMAT, checksum_table

    base = tmp_path_factory.mktemp("artifacts")
    spec = EmbeddingSpec(input_size=32, train_samples=24, test_samples=0, frames=1)
    feats = []
    for name, seed, channels in (("alpha", 1, 3), ("beta", 2, 3)):
        root = write_stripes(base / "data" / name, name, n_train=30, n_test=6, seed=seed, channels=channels,
                             classes=2 if name == "beta" else 3)
        feats.append(extract_features(root, spec, name=name, device="cpu"))
    art = base / "artifacts"
    art.mkdir()
    portfolio = {"format": "autodl-meta-portfolio/1",
                 "incumbents": [{"dataset": "alpha", "config": CHEAP, "alc": 0.5},
                                {"dataset": "beta", "config": CHEAP_B, "alc": 0.4}]}
    (art / "portfolio.json").write_text(json.dumps(portfolio))
    (art / "summary.json").write_text(json.dumps({"single_best": {"source": "alpha", "mean_alc": 0.5}}))
    make_selector("nearest-centroid").fit(feats).save(art / "selector")
    files = [p for p in art.rglob("*") if p.is_file()]
    (art / CHECKSUMS).write_text(json.dumps({"format": CHECKSUMS_FORMAT, "files": checksum_table(art, files)}))
    return art


@pytest.fixture()
def artifacts_copy(tiny_artifacts: Path, tmp_path: Path) -> Path:
    """A copy of :func:`tiny_artifacts` the test may damage."""
    return Path(shutil.copytree(tiny_artifacts, tmp_path / "artifacts"))
