"""Partial fine-tuning (``train_layers``): what is trained, what stays as it was.

``FineTuneNet.set_train_layers`` is checked on EfficientNet-Lite0 and ResNet-18 built from
random weights (the pattern does not depend on the weights; nothing is downloaded), and on
``scratch_cnn``; the learner end to end on Lite0 with its pretrained weights (skipped where
they are absent) under the simulated clock of a hand-made timing table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import flat_timing, write_squares
from torch import nn

from autodl.clock import SimulatedClock
from autodl.dataset import AutoDLDataset
from autodl.ingestion import run_ingestion
from finetune.backbones import create_backbone, get_last_blocks, weights_available
from finetune.learner import FineTuneLearner
from finetune.network import TRAIN_LAYERS, FineTuneNet

pytestmark = pytest.mark.usefixtures("torch_threads_1")
LITE0 = "tf_efficientnet_lite0"
LAST_BLOCKS = {LITE0: ("model.blocks.5.", "model.blocks.6.", "model.conv_head.", "model.bn2."),
               "resnet18": ("model.layer4.",)}
"""The parameter-name prefixes (under ``backbone.``) of each family's last stage(s)."""


def _net(name: str, in_chans: int = 3, **kwargs: Any) -> FineTuneNet:
    return FineTuneNet(create_backbone(name, pretrained=False, num_classes=0), in_chans, 5, 0.2, **kwargs)


def _norm_names(net: FineTuneNet) -> set[str]:
    return {name for name, m in net.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}


def _trained(net: FineTuneNet) -> set[str]:
    return {name for name, p in net.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("name", [LITE0, "resnet18"])
@pytest.mark.parametrize("mode", TRAIN_LAYERS)
def test_requires_grad_and_batchnorm_modes_follow_train_layers(name: str, mode: str) -> None:
    net = _net(name).set_train_layers(mode)
    params = dict(net.named_parameters())
    norms = _norm_names(net)
    in_norm = {p for p in params if p.rpartition(".")[0] in norms}
    in_last = {p for p in params if p.startswith(tuple("backbone." + s for s in LAST_BLOCKS[name]))}
    head = {"fc.weight", "fc.bias"}
    expected = {"all": set(params), "head": head, "bn_head": head | in_norm,
                "last_blocks": head | in_last}[mode]
    assert _trained(net) == expected
    assert in_norm and in_last and not in_last - {p for p in params if p.startswith("backbone.")}
    # the optimizer gets the trained parameters only
    assert [id(p) for p in net.trainable_parameters()] == [id(params[p]) for p in params if p in expected]
    # in training mode a frozen BatchNorm layer normalises with (and keeps) its running statistics
    net.train()
    modules = dict(net.named_modules())
    for norm in norms:
        trained = f"{norm}.weight" in expected
        assert modules[norm].training is trained, (mode, norm)
    assert net.training and net.fc.training and net.dropout.training
    net.eval()
    assert not any(m.training for m in net.modules())


def test_last_blocks_of_each_family() -> None:
    lite = create_backbone(LITE0, pretrained=False, num_classes=0)
    assert get_last_blocks(lite) == [lite.model.blocks[5], lite.model.blocks[6], lite.model.conv_head,
                                     lite.model.bn2]
    resnet = create_backbone("resnet18", pretrained=False, num_classes=0)
    assert get_last_blocks(resnet) == [resnet.model.layer4]
    # a network without pretrained weights has no stages worth freezing: last_blocks trains all of it
    scratch = create_backbone("scratch_cnn", num_classes=0)
    assert get_last_blocks(scratch) == [scratch]
    net = _net("scratch_cnn").set_train_layers("last_blocks")
    assert _trained(net) == {name for name, _ in net.named_parameters()}


def test_what_the_network_adds_without_pretrained_weights_always_trains() -> None:
    # a learned 3x3 adapter for 4 channels, and the zero-initialised motion convolution of clips
    net = _net(LITE0, in_chans=4, channel_adapter="conv3x3", temporal="difference").set_train_layers("head")
    assert _trained(net) == {"fc.weight", "fc.bias", "adapter.conv.weight", "adapter.conv.bias",
                             "backbone.model.conv_stem.motion.weight"}
    # the first convolution adapted to 6 channels starts from the pretrained kernels: frozen with the rest
    net = _net(LITE0, in_chans=6).set_train_layers("head")
    assert _trained(net) == {"fc.weight", "fc.bias"}


def test_frozen_layers_are_unchanged_by_a_training_step() -> None:
    torch.manual_seed(0)
    x = torch.randint(0, 256, (8, 1, 3, 32, 32), dtype=torch.uint8)
    y = torch.arange(8) % 5
    for mode in ("head", "bn_head"):
        net = _net(LITE0).set_train_layers(mode)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        opt = torch.optim.SGD(net.trainable_parameters(), lr=0.1)
        net.train()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        after = net.state_dict()
        changed = {k for k in before if not torch.equal(before[k], after[k])}
        assert {"fc.weight", "fc.bias"} <= changed
        conv = "backbone.model.conv_head.weight"
        stats = "backbone.model.bn2.running_mean"
        assert conv not in changed
        if mode == "head":  # nothing of the backbone moves, its BatchNorm statistics included
            assert not {k for k in changed if k.startswith("backbone.")}
        else:  # BatchNorm affine parameters trained, running statistics updated
            assert {stats, "backbone.model.bn2.weight"} <= changed
            assert all(k.rpartition(".")[0] in _norm_names(net) for k in changed if k.startswith("backbone."))


def test_an_unknown_value_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="train_layers='backbone': expected one of all, last_blocks"):
        _net("scratch_cnn").set_train_layers("backbone")


# --- the learner ------------------------------------------------------------------------------

TIMING = flat_timing(0.5, 0.001)
T0 = 1.0
BUDGET = 12.0


@pytest.fixture(scope="module")
def squares(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_squares(tmp_path_factory.mktemp("train_layers") / "squares")


def test_the_learner_applies_train_layers_only_where_it_is_active(squares: Path) -> None:
    meta = AutoDLDataset(squares).metadata("train")

    def learner(**config: Any) -> FineTuneLearner:
        return FineTuneLearner(meta, {"backbone": LITE0, "input_size": 32, **config}, SimulatedClock(),
                               timing=TIMING, device="cpu")

    def trained_share(lrn: FineTuneLearner) -> float:
        params = list(lrn.net.parameters())
        return sum(p.requires_grad for p in params) / len(params)

    # from random weights (and scratch_cnn, which has none) everything trains, whatever the value kept
    assert trained_share(learner(pretrained=False, train_layers="head")) == 1.0
    assert trained_share(learner(backbone="scratch_cnn", train_layers="head")) == 1.0
    if not weights_available(LITE0):
        pytest.skip("EfficientNet-Lite0's pretrained weights are not on this machine")
    assert trained_share(learner(finetune=False, train_layers="head")) == 1.0  # probes only
    head = learner(train_layers="head")
    assert head.net.train_layers == "head"
    optimized = [p for group in head.optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in optimized] == [id(head.net.fc.weight), id(head.net.fc.bias)]
    # the default: every parameter in the optimizer, as before the knob existed
    default = learner()
    assert trained_share(default) == 1.0 and default.net.train_layers == "all"
    optimized = [p for group in default.optimizer.param_groups for p in group["params"]]
    assert [id(p) for p in optimized] == [id(p) for p in default.net.parameters()]


@pytest.mark.skipif(not weights_available(LITE0), reason="EfficientNet-Lite0's pretrained weights are absent")
def test_head_leaves_the_pretrained_backbone_unchanged_after_training(squares: Path, tmp_path: Path) -> None:
    learners: list[FineTuneLearner] = []
    before: dict[str, torch.Tensor] = {}

    def factory(meta: Any, clock: Any) -> FineTuneLearner:
        config = {"backbone": LITE0, "train_layers": "head", "input_size": 32, "batch_size": 16,
                  "probes": "raw", "learning_rate": 0.01}
        lrn = FineTuneLearner(meta, config, clock, t0=T0, timing=TIMING, device="cpu", seed=0)
        before.update({k: v.clone() for k, v in lrn.net.state_dict().items()})
        learners.append(lrn)
        return lrn

    result = run_ingestion(AutoDLDataset(squares), factory, tmp_path, BUDGET, clock=SimulatedClock())
    assert result.success, result.error
    lrn = learners[0]
    assert lrn.steps_done > 0 and any(h["source"].startswith("network") for h in lrn.history)
    after = lrn.net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed == {"fc.weight", "fc.bias"}  # BatchNorm statistics of the backbone included
