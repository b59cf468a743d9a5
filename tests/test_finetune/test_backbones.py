"""Tests of ``finetune.backbones``: every registered backbone's API, the real pretrained
weights, the adaptations (classes, channels) and the errors that say what to do."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import torchvision

from finetune import backbones
from finetune.backbones import (
    RESNET18_WEIGHTS_ENV,
    Backbone,
    BackboneCfg,
    PretrainedWeightsNotFoundError,
    WeightsMismatchError,
    create_backbone,
    get_backbone_cfg,
    list_backbones,
    weights_available,
)

EFFICIENTNET_LITES = ["tf_efficientnet_lite0", "tf_efficientnet_lite1", "tf_efficientnet_lite2"]
RESNET18_FILE = "resnet18-f37072fd.pth"


@pytest.fixture(autouse=True, scope="module")
def _two_threads():
    """These machines have two cores."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def no_resnet18_weights(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache and no environment variable: the returned hub checkpoint path is absent."""
    hub = tmp_path / "hub"
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(hub))
    monkeypatch.delenv(RESNET18_WEIGHTS_ENV, raising=False)
    return hub / "checkpoints" / RESNET18_FILE


@pytest.fixture
def resnet18_file(tmp_path: Path) -> Path:
    """A torchvision ResNet-18 state dict (random weights) saved as torchvision's file would be."""
    path = tmp_path / "weights" / RESNET18_FILE
    path.parent.mkdir()
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    return path


def _finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t).all())


# --------------------------------------------------------------------------------------
# One test over every registered backbone
# --------------------------------------------------------------------------------------


# Lite1 and Lite2 load and run as Lite0 does, only larger (about a minute each here), and ResNet-18
# as well (20 s): 'slow'; the default run keeps Lite0, the scratch CNN and the linear model.
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow)
                                  if n in ("tf_efficientnet_lite1", "tf_efficientnet_lite2", "resnet18") else n
                                  for n in list_backbones()])
def test_every_backbone_offers_the_common_api(name: str) -> None:
    cfg = get_backbone_cfg(name)
    net = create_backbone(name, pretrained=weights_available(name)).eval()
    assert isinstance(net, Backbone) and isinstance(net, torch.nn.Module)
    assert net.cfg == cfg
    assert net.pretrained == weights_available(name)
    assert net.num_features == cfg.num_features == net.cfg.num_features
    sizes = [cfg.input_size[1]] if name == "linear" else [32, 64, 128]
    with torch.no_grad():
        for size in sizes:
            x = torch.randn(2, 3, size, size)
            features = net.forward_features(x)
            pooled = net.forward_head(features, pre_logits=True)
            assert pooled.shape == (2, net.num_features), size
            assert pooled.shape[-1] == net.num_features == cfg.num_features
            out = net(x)  # num_classes=0: forward returns the pooled features
            assert out.shape == (2, net.num_features)
            assert _finite(features) and _finite(pooled) and _finite(out), size
        for k in (2, 7):
            net.reset_classifier(k)
            net.eval()
            logits = net(x)
            assert logits.shape == (2, k) and net.num_classes == k and _finite(logits)
            assert net.get_classifier().out_features == k
            assert torch.allclose(net.forward_head(net.forward_features(x)), logits)
        net.reset_classifier(0)
        assert net(x).shape == (2, net.num_features)


@pytest.mark.parametrize("name", list_backbones())
def test_every_cfg_is_frozen_and_complete(name: str) -> None:
    cfg = get_backbone_cfg(name)
    assert cfg.name == name
    assert len(cfg.input_size) == 3 and len(cfg.mean) == len(cfg.std) == cfg.input_size[0] == 3
    assert cfg.weight_source and cfg.licence and cfg.architecture and cfg.classifier
    assert (name in list_backbones(pretrained_only=True)) == cfg.has_pretrained
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_features = 1  # type: ignore[misc]
    dataclasses.asdict(cfg)  # serialisable as a JSON card


def test_registry_lists_the_portfolio_from_cheap_to_strong() -> None:
    assert set(list_backbones()) == {"linear", "scratch_cnn", "resnet18", *EFFICIENTNET_LITES}
    assert set(list_backbones(pretrained_only=True)) == {"resnet18", *EFFICIENTNET_LITES}
    assert list_backbones() == sorted(list_backbones())
    for name in EFFICIENTNET_LITES:
        cfg = get_backbone_cfg(name)
        assert cfg.mean == cfg.std == (0.5, 0.5, 0.5) and cfg.num_features == 1280
        assert cfg.licence.startswith("Apache-2.0")
    assert get_backbone_cfg("resnet18").mean == (0.485, 0.456, 0.406)
    n_params = sum(p.numel() for p in create_backbone("scratch_cnn").parameters())
    assert 200_000 < n_params < 400_000


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown backbone 'resnet1'") as info:
        create_backbone("resnet1")
    for name in list_backbones():
        assert name in str(info.value)
    with pytest.raises(ValueError, match="known backbones"):
        get_backbone_cfg("nope")


def test_register_backbone_refuses_a_duplicate_name() -> None:
    with pytest.raises(ValueError, match="already registered"):
        backbones.register_backbone(get_backbone_cfg("linear"))(lambda cfg, **kw: None)


# --------------------------------------------------------------------------------------
# Backbones without pretrained weights
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["scratch_cnn", "linear"])
def test_backbones_without_weights_refuse_pretrained_true(name: str) -> None:
    assert create_backbone(name).pretrained is False  # default pretrained=None: what exists
    with pytest.raises(ValueError, match="has no pretrained weights"):
        create_backbone(name, pretrained=True)
    with pytest.raises(ValueError, match="has no pretrained weights"):
        create_backbone(name, weights_path="whatever.pth")
    assert not weights_available(name)


def test_linear_has_a_fixed_input_size_set_by_a_kwarg() -> None:
    net = create_backbone("linear", num_classes=5, in_chans=1, img_size=(8, 6)).eval()
    assert net.cfg.input_size == (1, 8, 6) and net.num_features == net.cfg.num_features == 48
    assert get_backbone_cfg("linear").input_size == (3, 32, 32)  # the registered cfg is untouched
    with torch.no_grad():
        assert net(torch.randn(2, 1, 8, 6)).shape == (2, 5)
        assert torch.equal(net.forward_features(torch.ones(2, 1, 8, 6)), torch.ones(2, 48))
    with pytest.raises(ValueError, match=r"expects inputs of shape \(B, 1, 8, 6\)"):
        net(torch.randn(2, 1, 32, 32))


def test_invalid_arguments_name_the_parameter() -> None:
    with pytest.raises(ValueError, match="num_classes"):
        create_backbone("scratch_cnn", num_classes=-1)
    with pytest.raises(ValueError, match="in_chans"):
        create_backbone("scratch_cnn", in_chans=0)
    with pytest.raises(ValueError, match="pretrained=False"):
        create_backbone("tf_efficientnet_lite0", pretrained=False, weights_path="x.pth")


# --------------------------------------------------------------------------------------
# EfficientNet-Lite: the weights are real
# --------------------------------------------------------------------------------------


def _photo(name: str, size: int) -> torch.Tensor:
    skimage_data = pytest.importorskip("skimage.data")
    image = torch.from_numpy(getattr(skimage_data, name)()).permute(2, 0, 1)[None].float() / 255.0
    image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return (image - 0.5) / 0.5  # the weights expect [-1, 1]


@pytest.mark.parametrize("name", EFFICIENTNET_LITES)  # each well under a second on 2 CPU cores
def test_efficientnet_lite_recognises_a_cat_and_an_espresso(name: str) -> None:
    net = create_backbone(name, num_classes=1000).eval()
    assert net.pretrained and net.num_classes == 1000
    size = net.cfg.input_size[1]
    x = torch.cat([_photo("chelsea", size), _photo("coffee", size)])
    with torch.no_grad():
        probs = net(x).softmax(dim=-1)
    top_prob, top_class = probs.max(dim=-1)
    assert top_class.tolist() == [285, 967]  # 'Egyptian cat', 'espresso'
    assert (top_prob > 0.5).all(), top_prob


def test_efficientnet_lite_weights_are_read_once_per_process(monkeypatch: pytest.MonkeyPatch) -> None:
    first = create_backbone("tf_efficientnet_lite0")

    def no_reading(*args, **kwargs):
        raise AssertionError("the weights file was read again")

    monkeypatch.setattr(torch, "load", no_reading)
    second = create_backbone("tf_efficientnet_lite0")
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key
    assert first.model.conv_stem.weight.data_ptr() != second.model.conv_stem.weight.data_ptr()


def test_efficientnet_lite_new_classifier_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="finetune.weights"):
        net = create_backbone("tf_efficientnet_lite0", num_classes=10)
    assert "replaced by a new, randomly initialised one with 10 outputs" in caplog.text
    assert net.get_classifier().out_features == 10


@pytest.mark.parametrize("in_chans", [1, 4])
def test_pretrained_first_conv_is_adapted_to_other_channel_counts(
        in_chans: int, caplog: pytest.LogCaptureFixture) -> None:
    rgb = create_backbone("tf_efficientnet_lite0").model.conv_stem.weight.detach()
    with caplog.at_level(logging.INFO, logger="finetune.weights"):
        net = create_backbone("tf_efficientnet_lite0", in_chans=in_chans, num_classes=3).eval()
    assert f"adapted from 3 to {in_chans} input channels" in caplog.text
    adapted = net.model.conv_stem.weight.detach()
    assert adapted.shape[1] == in_chans and net.in_chans == in_chans
    if in_chans == 1:
        assert torch.allclose(adapted, rgb.sum(dim=1, keepdim=True))
    else:
        assert torch.allclose(adapted[:, :3], rgb * 3 / in_chans)
        assert torch.allclose(adapted[:, 3], rgb[:, 0] * 3 / in_chans)
    with torch.no_grad():
        out = net(torch.randn(2, in_chans, 64, 64))
    assert out.shape == (2, 3) and _finite(out)


def test_a_weights_file_for_another_network_is_refused(tmp_path: Path) -> None:
    lite1 = backbones.find_weights("tf_efficientnet_lite1")
    with pytest.raises(WeightsMismatchError,
                       match="holds 386 tensors, but timm's tf_efficientnet_lite0 expects 296"):
        create_backbone("tf_efficientnet_lite0", weights_path=lite1)
    state = dict(torch.load(backbones.find_weights("tf_efficientnet_lite0"), weights_only=True))
    key = list(state)[6]
    state[key] = torch.zeros(7, 1, 3, 3)
    wrong = tmp_path / "wrong.pth"
    torch.save(state, wrong)
    with pytest.raises(WeightsMismatchError, match=rf"tensor #6 '{key}' has shape \(7, 1, 3, 3\)"):
        create_backbone("tf_efficientnet_lite0", weights_path=wrong)


# --------------------------------------------------------------------------------------
# ResNet-18: weights only where a copy is on disk
# --------------------------------------------------------------------------------------


def test_resnet18_without_weights_says_where_to_put_them(no_resnet18_weights: Path) -> None:
    assert not weights_available("resnet18")
    with pytest.raises(PretrainedWeightsNotFoundError) as info:
        create_backbone("resnet18")
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for needed in (str(no_resnet18_weights), "ResNet18_Weights.IMAGENET1K_V1",
                   torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url, RESNET18_WEIGHTS_ENV,
                   "weights_path", "pretrained=False"):
        assert needed in message
    assert create_backbone("resnet18", pretrained=False).pretrained is False


def test_resnet18_env_var_naming_a_missing_file_is_an_error(no_resnet18_weights: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            tmp_path: Path) -> None:
    monkeypatch.setenv(RESNET18_WEIGHTS_ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(PretrainedWeightsNotFoundError, match=f"{RESNET18_WEIGHTS_ENV}=.*missing.pth"):
        create_backbone("resnet18")


@pytest.mark.parametrize("source", ["weights_path", "env", "hub"])
def test_resnet18_loads_weights_from_a_file(source: str, resnet18_file: Path, no_resnet18_weights: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    kwargs = {}
    if source == "weights_path":
        kwargs["weights_path"] = resnet18_file
    elif source == "env":
        monkeypatch.setenv(RESNET18_WEIGHTS_ENV, str(resnet18_file))
    else:
        no_resnet18_weights.parent.mkdir(parents=True)
        resnet18_file.rename(no_resnet18_weights)
        resnet18_file = no_resnet18_weights
    assert weights_available("resnet18", kwargs.get("weights_path"))
    net = create_backbone("resnet18", num_classes=1000, **kwargs).eval()
    expected = torch.load(resnet18_file, weights_only=True)
    assert net.pretrained
    for key, value in net.model.state_dict().items():
        assert torch.equal(value, expected[key]), key
    with torch.no_grad():
        assert _finite(net(torch.randn(2, 3, 64, 64)))


@pytest.mark.parametrize("in_chans", [1, 4])
def test_resnet18_adapts_classes_and_channels(in_chans: int, resnet18_file: Path) -> None:
    net = create_backbone("resnet18", weights_path=resnet18_file, num_classes=7, in_chans=in_chans).eval()
    rgb = torch.load(resnet18_file, weights_only=True)["conv1.weight"]
    assert net.model.conv1.weight.shape == (64, in_chans, 7, 7)
    if in_chans == 1:
        assert torch.allclose(net.model.conv1.weight, rgb.sum(dim=1, keepdim=True))
    with torch.no_grad():
        out = net(torch.randn(2, in_chans, 32, 32))
    assert out.shape == (2, 7) and _finite(out)


def test_resnet18_refuses_a_file_of_another_network(tmp_path: Path) -> None:
    path = tmp_path / "scratch.pth"
    torch.save(create_backbone("scratch_cnn").state_dict(), path)
    with pytest.raises(WeightsMismatchError, match="does not fit resnet18"):
        create_backbone("resnet18", weights_path=path)


def test_backbone_cfg_validates_itself() -> None:
    good = get_backbone_cfg("scratch_cnn")
    with pytest.raises(ValueError, match="input_size"):
        dataclasses.replace(good, input_size=(3, 32))
    with pytest.raises(ValueError, match="first_conv"):
        BackboneCfg(**{**dataclasses.asdict(good), "has_pretrained": True})
