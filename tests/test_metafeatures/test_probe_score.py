"""Tests of metafeatures.probe (the cheap probes' scores) and of the raw-pixel features that
:class:`~metafeatures.features.DatasetFeatures` and :class:`~metafeatures.features.Query` carry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from metafeatures.features import DatasetFeatures, FeaturesError, Query, load_features_folder
from metafeatures.probe import embedding_probe_score, raw_probe_features, raw_probe_score

pytestmark = pytest.mark.usefixtures("torch_threads_1")


def _images(levels: np.ndarray, seed: int, channels: int = 1) -> np.ndarray:
    """uint8 images ``[N, 1, 32, 32, C]``: noise around each example's grey level."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(len(levels), 1, 32, 32, channels)) * 40 + levels[:, None, None, None, None]
    return np.clip(x, 0, 255).astype(np.uint8)


def test_raw_probe_score_tells_intensity_classes_from_look_alike_ones():
    """Classes that differ by brightness are separable in raw pixels; classes drawn alike are not."""
    y = np.eye(3, dtype=np.float32)[np.arange(120) % 3]
    by_intensity = raw_probe_features(_images(np.array([60.0, 128.0, 196.0])[np.arange(120) % 3], seed=0))
    alike = raw_probe_features(_images(np.full(120, 128.0), seed=1))
    assert raw_probe_score(by_intensity, y) > 0.9
    assert abs(raw_probe_score(alike, y)) < 0.3
    assert raw_probe_score(by_intensity, y, seed=3) == raw_probe_score(by_intensity, y, seed=3)  # seeded sample
    assert raw_probe_score(by_intensity[:2], y[:2]) == 0.0  # too few rows: a random guess's score
    # the same probe as the embedding score's, on the same sample
    assert raw_probe_score(by_intensity, y) == embedding_probe_score(by_intensity, y)
    with pytest.raises(ValueError, match="raw-pixel features"):
        raw_probe_score(by_intensity[:, :, None], y)


def test_scores_are_computed_once_per_input_and_cleared_for_timing(monkeypatch):
    """The same inputs give the cached score without a second probe; other labels, another seed
    or a cleared cache compute again, and the cached score is the computed one."""
    from metafeatures import probe

    y = np.eye(3, dtype=np.float32)[np.arange(120) % 3]
    x = raw_probe_features(_images(np.array([60.0, 128.0, 196.0])[np.arange(120) % 3], seed=0))
    probe.clear_score_cache()
    first = raw_probe_score(x, y)
    fits = []
    real = probe._probe_score
    monkeypatch.setattr(probe, "_probe_score", lambda *a, **k: fits.append(1) or real(*a, **k))
    assert raw_probe_score(x, y) == first and embedding_probe_score(x.copy(), y) == first and not fits
    raw_probe_score(x, y, seed=1)
    raw_probe_score(x, y[:, ::-1].copy())
    assert len(fits) == 2
    probe.clear_score_cache()
    assert raw_probe_score(x, y) == first and len(fits) == 3


def test_raw_probe_features_are_the_learners_raw_features():
    import torch

    from finetune.probe import raw_features

    x = _images(np.linspace(0, 255, 6), seed=2, channels=3)
    clips = np.concatenate([x, x[:, :, ::-1]], axis=1)  # 2 frames
    feats = raw_probe_features(clips)
    learner = raw_features(torch.from_numpy(np.ascontiguousarray(clips.transpose(0, 1, 4, 2, 3))))
    assert feats.shape == (6, 3 * 16 * 16) and feats.dtype == np.float32
    np.testing.assert_allclose(feats, learner.numpy(), rtol=1e-6)
    np.testing.assert_allclose(raw_probe_features(x[:, 0]), raw_probe_features(x))  # images [N, H, W, C]
    # clips of different lengths: each averaged over its own frames
    ragged = raw_probe_features([clips[0], x[1]])
    np.testing.assert_allclose(ragged, feats[[0]].tolist() + raw_probe_features(x[[1]]).tolist(), rtol=1e-6)
    with pytest.raises(ValueError, match=r"expected \[T, H, W, C\]"):
        raw_probe_features([np.zeros((4, 4))])


# --- the raw features in the features files and the query ---------------------------------------

def _features(name: str = "toy", raw: bool = True) -> DatasetFeatures:
    rng = np.random.default_rng(0)
    y = np.eye(2, dtype=np.float32)[np.arange(10) % 2]
    return DatasetFeatures(name, rng.normal(size=(10, 8)), y, rng.normal(size=(4, 8)), {"classes": 2.0}, "src",
                           {"backbone": "hand-made"}, rng.normal(size=(10, 16)) if raw else None)


def test_train_raw_is_saved_checked_and_queried(tmp_path: Path):
    feats = _features()
    npz = feats.save(tmp_path)
    card = json.loads((tmp_path / "toy.json").read_text())
    assert card["shapes"]["train_raw"] == [10, 16]
    with np.load(npz, allow_pickle=False) as z:
        assert sorted(z.files) == ["test", "train", "train_labels", "train_raw"]
    back = DatasetFeatures.load(npz)
    np.testing.assert_array_equal(back.train_raw, feats.train_raw)
    q = back.query(6, seed=1)
    rows = [int(np.flatnonzero((feats.train == e).all(axis=1))[0]) for e in q.embeddings]
    np.testing.assert_array_equal(q.raw, feats.train_raw[rows])  # row for row with the embeddings
    assert back.query(split="test").raw is None

    # the checksum covers the raw array: another train_raw in the same file is refused
    arrays = {"train": feats.train, "train_labels": feats.train_labels, "test": feats.test,
              "train_raw": feats.train_raw + 1}
    with npz.open("wb") as f:
        np.savez_compressed(f, **arrays)
    with pytest.raises(FeaturesError, match="SHA-256") as info:
        DatasetFeatures.load(npz)
    assert info.value.field == "npz_sha256"


def test_features_without_train_raw_still_load(tmp_path: Path):
    """Files written before train_raw existed (no array, no shape on the card) load unchanged."""
    old = _features(raw=False)
    old.save(tmp_path)
    card = json.loads((tmp_path / "toy.json").read_text())
    assert "train_raw" not in card["shapes"]
    [back] = load_features_folder(tmp_path)
    assert back.train_raw is None and back.train.shape == (10, 8)
    assert back.query(4).raw is None


def test_bad_raw_shapes_are_refused(tmp_path: Path):
    with pytest.raises(ValueError, match="train_raw must be"):
        DatasetFeatures("toy", np.zeros((3, 2)), np.zeros((3, 2)), train_raw=np.zeros((2, 5)))
    with pytest.raises(ValueError, match="raw features must be"):
        Query(np.zeros((3, 2)), raw=np.zeros((3,)))
    # a file whose train_raw disagrees with its train rows names the file
    feats = _features()
    npz = feats.save(tmp_path)
    with npz.open("wb") as f:
        np.savez_compressed(f, train=feats.train, train_labels=feats.train_labels, train_raw=feats.train_raw[:3])
    card = json.loads((tmp_path / "toy.json").read_text())
    card.pop("npz_sha256")
    (tmp_path / "toy.json").write_text(json.dumps(card))
    with pytest.raises(FeaturesError, match=r"toy\.json.*train_raw must be"):
        DatasetFeatures.load(npz)
