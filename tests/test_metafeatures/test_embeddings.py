"""Tests of metafeatures.embeddings: the spec, the embedder (channels, clips, resizing, the
learner's preprocessing) and extract_features on a tiny dataset (test labels never read)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import AutoDLError
from metafeatures.embeddings import Embedder, EmbeddingSpec, ExtractionError, extract_features, sample_indices
from metafeatures.features import DatasetFeatures

pytestmark = pytest.mark.usefixtures("torch_threads_1")

SPEC = EmbeddingSpec(input_size=32, train_samples=12, test_samples=6, frames=3, batch_size=4)


@pytest.fixture(scope="module")
def embedders(torch_threads_1: None) -> dict[int, Embedder]:
    """One embedder per channel count (1, 3, 4), on the CPU."""
    return {c: Embedder(SPEC, c, device="cpu") for c in (1, 3, 4)}


def pixels(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- the spec ------------------------------------------------------------------------------------

def test_spec_round_trip_and_digest() -> None:
    spec = EmbeddingSpec(input_size=48, seed=3)
    assert EmbeddingSpec.from_dict(spec.to_dict()) == spec
    assert spec.digest() == EmbeddingSpec(input_size=48, seed=3).digest() and len(spec.digest()) == 16
    assert spec.digest() != EmbeddingSpec(input_size=64, seed=3).digest()
    assert spec.digest() != EmbeddingSpec(input_size=48, seed=4).digest()
    # the batch size does not change the embeddings: same digest
    assert spec.digest() == EmbeddingSpec(input_size=48, seed=3, batch_size=7).digest()


@pytest.mark.parametrize("field, value", [("input_size", 4), ("train_samples", 0), ("frames", 1.5),
                                          ("test_samples", -1), ("batch_size", True), ("backbone", "")])
def test_spec_refuses_bad_fields(field: str, value: object) -> None:
    with pytest.raises(ExtractionError, match=f"field '{field}'"):
        EmbeddingSpec(**{field: value})


def test_spec_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ExtractionError, match="field 'size'"):
        EmbeddingSpec.from_dict({"size": 32})


# --- the embedder --------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", [1, 3, 4])
def test_embed_images_of_each_channel_count(embedders: dict, channels: int) -> None:
    emb = embedders[channels]
    x = pixels(3, 1, 20, 24, channels)
    a = emb.embed(x)
    assert a.shape == (3, emb.dim) and a.dtype == np.float32 and emb.dim == 1280
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, emb.embed(x))  # deterministic
    assert not np.allclose(a[0], a[1])  # different images, different embeddings
    # [N, H, W, C] is taken as images; float in [0, 1] is the same as uint8 / 255
    np.testing.assert_allclose(emb.embed(x[:, 0]), a, atol=1e-5)
    np.testing.assert_allclose(emb.embed(x.astype(np.float32) / 255), a, atol=1e-5)


def test_embeddings_are_what_the_learner_sees(embedders: dict) -> None:
    """Same network, weights and preprocessing as finetune's FineTuneNet.embed at the input size."""
    import torch

    from finetune.backbones import create_backbone
    from finetune.network import FineTuneNet

    x = pixels(2, 1, 32, 32, 1, seed=5)
    net = FineTuneNet(create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=0), 1, 1).eval()
    with torch.no_grad():
        ref = net.embed(torch.from_numpy(x[:, 0].transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(embedders[1].embed(x), ref, atol=1e-5)


def test_clip_frames_are_evenly_spaced_and_averaged(embedders: dict) -> None:
    emb = embedders[3]
    clips = pixels(2, 6, 32, 32, 3, seed=1)
    # spec.frames = 3 of T = 6: positions linspace(0, 5, 3) = [0, 2.5, 5], rounded half to even: [0, 2, 5]
    per_frame = emb.embed(clips[:, [0, 2, 5]].reshape(6, 1, 32, 32, 3)).reshape(2, 3, -1)
    np.testing.assert_allclose(emb.embed(clips), per_frame.mean(axis=1), atol=1e-5)
    # a clip shorter than spec.frames: every frame once (T = 2: frames 0 and 1), none repeated
    short = clips[:, :2]
    per_frame = emb.embed(short.reshape(4, 1, 32, 32, 3)).reshape(2, 2, -1)
    np.testing.assert_allclose(emb.embed(short), per_frame.mean(axis=1), atol=1e-5)


def test_frames_are_resized_to_the_input_size(embedders: dict) -> None:
    emb = embedders[3]
    # a constant colour stays that colour at any size: the same embedding from 12x20 and 80x50
    small = np.full((1, 1, 12, 20, 3), (200, 40, 90), dtype=np.uint8)
    large = np.full((1, 1, 80, 50, 3), (200, 40, 90), dtype=np.uint8)
    np.testing.assert_allclose(emb.embed(small), emb.embed(large), atol=1e-4)
    # a textured image is not constant: shrinking it changes what the network sees, but it still embeds
    assert np.isfinite(emb.embed(pixels(2, 1, 80, 50, 3))).all()


def test_a_list_of_clips_of_different_shapes(embedders: dict) -> None:
    emb = embedders[3]
    clips = [pixels(1, 20, 20, 3, seed=2), pixels(5, 40, 28, 3, seed=3), pixels(1, 20, 20, 3, seed=4)]
    out = emb.embed(clips)
    assert out.shape == (3, emb.dim)
    for i, c in enumerate(clips):
        np.testing.assert_allclose(out[i], emb.embed(c[None])[0], atol=1e-5)


def test_embed_refuses_the_wrong_channels_or_dtype(embedders: dict) -> None:
    with pytest.raises(ExtractionError, match="in_chans=3"):
        embedders[3].embed(pixels(2, 1, 8, 8, 1))
    with pytest.raises(ExtractionError, match="int32"):
        embedders[3].embed(np.zeros((2, 1, 8, 8, 3), dtype=np.int32))
    with pytest.raises(ExtractionError, match="clips"):
        embedders[3].embed(np.zeros((2, 8, 3)))


def test_card_names_backbone_weights_and_preprocessing(embedders: dict) -> None:
    from finetune.backbones import find_weights

    card = embedders[4].card
    assert card["backbone"] == "tf_efficientnet_lite0" and card["input_size"] == 32 and card["frames"] == 3
    assert card["in_chans"] == 4 and "first convolution adapted" in card["preprocessing"]
    assert "1 channel copied to 3" in embedders[1].card["preprocessing"]
    path = find_weights("tf_efficientnet_lite0")
    assert card["weights"]["file"] == path.name
    assert card["weights"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert set(card["versions"]) == {"torch", "timm"} and card["mean"] == [0.5, 0.5, 0.5]


def test_backbones_that_cannot_embed_are_refused() -> None:
    with pytest.raises(ExtractionError, match="unknown backbone 'resnet19'"):
        Embedder(EmbeddingSpec(backbone="resnet19"), 3, device="cpu")
    with pytest.raises(ExtractionError, match="no pretrained weights.*tf_efficientnet_lite0"):
        Embedder(EmbeddingSpec(backbone="scratch_cnn"), 3, device="cpu")


def test_resnet18_without_its_weights_says_how_to_provide_them(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from finetune.backbones import RESNET18_WEIGHTS_ENV

    monkeypatch.setenv(RESNET18_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(ExtractionError, match=f"resnet18.*{RESNET18_WEIGHTS_ENV}") as info:
        Embedder(EmbeddingSpec(backbone="resnet18"), 3, device="cpu")
    assert isinstance(info.value, AutoDLError) and info.value.field == "backbone"


# --- one dataset ---------------------------------------------------------------------------------

@pytest.fixture
def squares(tmp_path: Path) -> Path:
    from conftest import write_squares

    return write_squares(tmp_path / "squares", n_train=30, n_test=12)


def test_extract_features_never_reads_the_test_labels(squares: Path, embedders: dict,
                                                      monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import autodl.dataset

    def refuse(*args, **kwargs):
        raise AssertionError("the .solution file was read")

    monkeypatch.setattr(autodl.dataset, "read_solution", refuse)
    (squares / "squares.solution").unlink()
    feats = extract_features(squares, SPEC, source="synthetic", embedder=embedders[3])
    assert feats.name == "squares" and feats.source == "synthetic"
    assert feats.train.shape == (12, 1280) and feats.test.shape == (6, 1280)
    # 30 training examples, 10 per class: a stratified 12 keeps 4 of each class
    assert feats.train_labels.shape == (12, 3)
    np.testing.assert_array_equal(feats.train_labels.sum(axis=0), [4, 4, 4])
    assert feats.descriptors["train_samples"] == 30 and feats.descriptors["classes"] == 3
    card = feats.card
    assert card["spec"] == SPEC.to_dict() and card["spec_digest"] == SPEC.digest()
    assert card["samples"]["train"] == 12 and card["samples"]["test"] == 6 and card["samples"]["test_total"] == 12
    assert len(card["dataset_fingerprint"]) == 64 and card["backbone"] == "tf_efficientnet_lite0"

    # the embeddings are those of the examples sample_indices names, labels included
    from autodl.dataset import AutoDLDataset

    ds = AutoDLDataset(squares)
    train_idx, test_idx = sample_indices(ds, SPEC)
    arr = ds.load_numpy("train", size=32, indices=train_idx)
    np.testing.assert_allclose(feats.train, embedders[3].embed(arr.x), atol=1e-5)
    np.testing.assert_array_equal(feats.train_labels, arr.y)
    # and so are the raw-pixel features: the learner's raw_features of the same clips, row for row
    import torch

    from finetune.probe import raw_features

    learner_view = raw_features(torch.from_numpy(np.ascontiguousarray(arr.x.transpose(0, 1, 4, 2, 3))))
    assert feats.train_raw.shape == (12, 3 * 16 * 16) and feats.train_raw.dtype == np.float32
    np.testing.assert_allclose(feats.train_raw, learner_view.numpy(), atol=1e-4)
    assert "raw_features" in card["train_raw"]
    assert len(set(test_idx.tolist())) == 6 and test_idx.max() < 12

    # round trip through the files
    path = feats.save(tmp_path / "features")
    back = DatasetFeatures.load(path)
    np.testing.assert_array_equal(back.train, feats.train)
    np.testing.assert_array_equal(back.test, feats.test)
    np.testing.assert_array_equal(back.train_labels, feats.train_labels)
    np.testing.assert_array_equal(back.train_raw, feats.train_raw)
    assert back.card == feats.card and back.descriptors == feats.descriptors and back.source == "synthetic"


def test_extract_features_is_seeded(squares: Path, embedders: dict) -> None:
    a = extract_features(squares, SPEC, embedder=embedders[3])
    b = extract_features(squares, SPEC, embedder=embedders[3])
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test, b.test)
    other = EmbeddingSpec(**{**SPEC.to_dict(), "seed": 1})
    c = extract_features(squares, other, embedder=Embedder(other, 3, device="cpu"))
    assert not np.array_equal(a.train, c.train)


def test_extract_features_without_test_samples(squares: Path, embedders: dict) -> None:
    spec = EmbeddingSpec(**{**SPEC.to_dict(), "test_samples": 0, "train_samples": 100})
    feats = extract_features(squares, spec, name="sq", device="cpu")
    assert feats.name == "sq" and feats.test is None and feats.train.shape == (30, 1280)


def test_extract_features_of_dense_and_video_data(written: dict, embedders: dict) -> None:
    video = extract_features(written["video"].root, SPEC, embedder=embedders[3])
    assert video.train.shape == (5, 1280) and video.descriptors["frames"] == 4
    assert video.train_raw.shape == (5, 3 * 16 * 16)
    dense = extract_features(written["dense"].root, SPEC, device="cpu")  # 2 channels of float values
    assert dense.train.shape == (5, 1280) and np.isfinite(dense.train).all()
    # raw pixels of dense data: scaled to [0, 1] as the embedded clips were
    assert dense.train_raw.shape == (5, 2 * 16 * 16) and 0.0 <= dense.train_raw.min() <= dense.train_raw.max() <= 1.0
    assert "dense_scaling" in dense.card and dense.card["in_chans"] == 2


def test_an_embedder_for_another_channel_count_is_refused(squares: Path, embedders: dict) -> None:
    with pytest.raises(ExtractionError, match="in_chans=3"):
        extract_features(squares, SPEC, embedder=embedders[1])
