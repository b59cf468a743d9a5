"""The seed paper's claim on real data, small: nearest centroid and the precalc MLP name the
dataset of held-out batches of 32 well above chance, on built-in datasets embedded by the
pretrained backbone (EfficientNet-Lite0, offline weights)."""

from __future__ import annotations

import numpy as np
import pytest

from autodl.sources import cap_examples, load_source
from autodl.writer import write_arrays
from metafeatures.embeddings import EmbeddingSpec, extract_features
from selector.registry import make_selector

pytestmark = [pytest.mark.slow, pytest.mark.smoke, pytest.mark.usefixtures("torch_threads_1")]

SOURCES = {"digits": {}, "textures": {}, "letters": {"characters": "ABCDEFGH"}}


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> list:
    root = tmp_path_factory.mktemp("builtin")
    out = []
    for name, params in SOURCES.items():
        source = "glyphs" if name == "letters" else name
        xtr, ytr, xte, yte, names = cap_examples(load_source(source, seed=0, **params), 160, 96, seed=0)
        path = write_arrays(root / name, name, xtr, ytr, xte, yte, label_names=names)
        out.append(extract_features(path, EmbeddingSpec(input_size=32, train_samples=160, test_samples=96),
                                    name=name, device="cpu"))
    return out


@pytest.mark.parametrize("selector, params", [("nearest-centroid", {}),
                                              ("precalc-mlp", {"batch_size": 32, "n_batches": 64, "epochs": 20})])
def test_held_out_batches_of_32_are_identified_well_above_chance(features: list, selector: str, params: dict):
    sel = make_selector(selector, **params).fit(features)
    right = total = 0
    for d in features:
        for seed in range(8):
            right += sel.predict(d.query(32, split="test", seed=seed)) == d.name
            total += 1
    accuracy = right / total
    assert accuracy >= 0.8, f"{selector}: {accuracy:.2f} of {total} batches (chance 1/3)"
    assert np.isfinite(sel.predict_proba(features[0].query(32, split="test"))).all()
