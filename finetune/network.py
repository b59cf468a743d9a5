"""The network that is fine-tuned: input adaptation, a registered backbone, a new head.

Any dataset is adapted to the backbone (Freiburg's AutoDL 2019 recipe, extended):

* uint8 frames are scaled to [0, 1] (dense float data arrives already scaled).
* **Channels** (``channel_adapter``): 3 channels pass; 1 channel is copied to 3 (a grey
  image as the RGB network saw grey images; exact whatever the normalisation, see
  below); any other count C goes, by default (``stem``), through the backbone's own
  first convolution adapted to C channels as timm adapts ``in_chans``
  (:func:`finetune.backbones.adapt_input_channels`: channel ``k`` gets the pretrained
  RGB kernel of channel ``k mod 3``, scaled by ``3 / C``), so that the first layer
  starts from the pretrained filters and the embeddings of such data are not random
  projections; ``conv3x3`` keeps the former learned 3x3 convolution from C channels to 3
  (randomly initialised) in front of the unchanged RGB stem.
* Values are normalised with the mean and std the backbone's weights expect; input
  channel ``k`` takes the statistics of RGB channel ``k mod 3`` (the channel whose
  kernel it was given), so C/3 copies of an RGB image give exactly the RGB network's
  output. Copying a grey image to 3 channels and summing the RGB kernel over channels
  (timm's 1-channel rule, what ``create_backbone(name, in_chans=1)`` loads) agree
  exactly only when the three channels share one mean and std (EfficientNet-Lite,
  ``scratch_cnn``: 0.5); with ImageNet's per-channel statistics (ResNet-18) the sum is
  off by a constant per filter (and more at the borders), which is why 1 channel is
  copied. A backbone built for 1 channel is still accepted: its channel is normalised
  with the mean of the three channels' statistics (logged where that is inexact).
* **Video** (``temporal``): clips ``[B, T, C, H, W]`` run the 2-D network on each of
  their T frames. Images (T = 1) take the same path under every option, with the same
  numbers: the options only act when T > 1.

  - ``average``: logits averaged over the frames (the consensus of Temporal Segment
    Networks, Wang et al., "Temporal segment networks: towards good practices for deep
    action recognition", ECCV 2016). It sees which frames a clip holds, not their order:
    a clip and the same clip played backwards get the same prediction.
  - ``difference``: each frame also brings its difference to the next frame
    (``x[t+1] - x[t]``, the last frame reusing the previous difference), TSN's "RGB
    difference" modality fused early: a second, zero-initialised convolution over the
    difference channels with the first convolution's geometry is added to the first
    convolution's output (:class:`MotionStem`), so the network starts as ``average``
    does and learns local motion filters. Cheap: one more first convolution per frame
    (C input channels); the rest of the network is unchanged.
  - ``tsm``: the Temporal Shift Module (Lin, Gan & Han, "TSM: Temporal shift module for
    efficient video understanding", ICCV 2019): before every ungrouped convolution after
    the first, 1/8 of the channels are taken from the next frame and 1/8 from the
    previous one (zero at the clip's ends), so every layer mixes neighbouring frames at
    no multiply-add; the convolution's own input is shifted while a residual connection
    keeps the unshifted tensor (TSM's residual shift). It starts from the pretrained
    2-D weights, as TSM does.
  A late temporal head over the per-frame pooled features (a depthwise temporal
  convolution, as TRN, Zhou et al., ECCV 2018, models relations of pooled frame
  features) was tried and left out: pooled features say *what* is seen, hardly *where*,
  and on the moving-squares clips (:func:`autodl.sources_core.load_moving_squares`) it stayed
  at chance (test accuracy 0.28 after 100 steps, where ``difference`` and ``tsm``
  reached 1.00).

  Full 3-D or (2+1)-D networks pretrained on Kinetics, as DeepWisdom's MC3 (Tran et al.,
  "A closer look at spatiotemporal convolutions for action recognition", CVPR 2018;
  DeepWisdom won AutoCV2/AutoDL 2019 with it on video), need weights these machines do
  not have and several times the cost of a 2-D network per frame on a CPU; the options
  above keep the ImageNet-pretrained 2-D backbones.

The head is dropout followed by a new linear classifier on the backbone's pooled
features, which are also what :meth:`FineTuneNet.embed` returns (per frame, without the
temporal options).

**Partial fine-tuning** (``train_layers``, :meth:`FineTuneNet.set_train_layers`): ``all``
trains every parameter; ``head`` the classifier and what the network adds without
pretrained weights (the ``conv3x3`` adapter, the motion convolution of ``difference``);
``bn_head`` also the BatchNorm layers; ``last_blocks`` also the backbone's last stage(s)
(:func:`finetune.backbones.get_last_blocks`). Frozen BatchNorm layers stay in eval mode.
"""

from __future__ import annotations

import copy
import logging

import torch
from torch import nn

from finetune import embedding_cache
from finetune.backbones import Backbone, adapt_input_channels, get_first_conv, get_last_blocks, set_first_conv

logger = logging.getLogger(__name__)

__all__ = [
    "CHANNEL_ADAPTERS",
    "TEMPORAL_MODES",
    "TRAIN_LAYERS",
    "ChannelAdapter",
    "FineTuneNet",
    "MotionStem",
    "TemporalShift",
]

CHANNEL_ADAPTERS: tuple[str, ...] = ("stem", "conv3x3")
"""Choices of ``channel_adapter`` (hyperparameter of ``configs/space/finetune.yaml``)."""
TEMPORAL_MODES: tuple[str, ...] = ("average", "difference", "tsm")
"""Choices of ``temporal`` (hyperparameter of ``configs/space/finetune.yaml``)."""
TRAIN_LAYERS: tuple[str, ...] = ("all", "last_blocks", "bn_head", "head")
"""Choices of ``train_layers`` (hyperparameter of ``configs/space/finetune.yaml``): see
:meth:`FineTuneNet.set_train_layers`."""



def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {', '.join(choices)}")
    return str(value)


def _cyclic(values: tuple[float, ...], n: int) -> torch.Tensor:
    """``values`` repeated cyclically to ``n`` entries, shaped ``(1, n, 1, 1)``."""
    return torch.tensor([values[k % len(values)] for k in range(n)], dtype=torch.float32).view(1, n, 1, 1)


class ChannelAdapter(nn.Module):
    """Maps the data's channels to those the backbone takes.

    Parameters
    ----------
    in_chans:
        Channels of the data.
    mode:
        ``pass`` (the backbone takes ``in_chans``), ``copy`` (1 channel copied to 3) or
        ``conv3x3`` (a learned 3x3 convolution to 3 channels).
    """

    def __init__(self, in_chans: int, mode: str = "pass") -> None:
        super().__init__()
        self.in_chans = in_chans
        self.mode = _check_choice("mode", mode, ("pass", "copy", "conv3x3"))
        if mode == "copy" and in_chans != 1:
            raise ValueError(f"mode='copy' copies 1 channel to 3; got in_chans={in_chans}")
        self.conv = nn.Conv2d(in_chans, 3, 3, padding=1) if mode == "conv3x3" else None
        self.out_chans = in_chans if mode == "pass" else 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "copy":
            return x.expand(-1, 3, -1, -1)
        if self.conv is None:
            return x
        return self.conv(x)

    def extra_repr(self) -> str:
        return f"in_chans={self.in_chans}, mode={self.mode!r}, out_chans={self.out_chans}"


class MotionStem(nn.Module):
    """The first convolution plus a convolution of the frame differences (``temporal='difference'``).

    ``forward(x)`` takes the appearance channels, optionally followed by the difference
    channels: ``appearance(x[:, :A]) + motion(x[:, A:])``, i.e. one convolution over the
    concatenated channels. Without difference channels (images, per-frame embeddings) it
    is the first convolution alone, unchanged.

    Parameters
    ----------
    appearance:
        The backbone's first convolution (kept as it is, pretrained weights included).
    motion_chans:
        Number of difference channels.
    """

    def __init__(self, appearance: nn.Conv2d, motion_chans: int) -> None:
        super().__init__()
        if not isinstance(appearance, nn.Conv2d) or appearance.groups != 1:
            raise ValueError(f"MotionStem needs a plain (ungrouped) Conv2d, got {appearance!r}")
        self.appearance = appearance
        self.appearance_chans = appearance.in_channels
        self.motion_chans = motion_chans
        motion = copy.deepcopy(appearance)  # same class (timm's Conv2dSame pads itself), stride, padding
        weight = appearance.weight
        motion.weight = nn.Parameter(torch.zeros((weight.shape[0], motion_chans, *weight.shape[2:]),
                                                 dtype=weight.dtype, device=weight.device))
        motion.register_parameter("bias", None)
        motion.in_channels = motion_chans
        self.motion = motion

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == self.appearance_chans:
            return self.appearance(x)
        if x.shape[1] != self.appearance_chans + self.motion_chans:
            raise ValueError(f"MotionStem expects {self.appearance_chans} appearance channels, optionally "
                             f"followed by {self.motion_chans} difference channels; got {x.shape[1]}")
        a = self.appearance_chans
        return self.appearance(x[:, :a]) + self.motion(x[:, a:])


class TemporalShift(nn.Module):
    """A module whose input is shifted along time first (TSM, Lin et al., ICCV 2019).

    The input ``[B*T, C, H, W]`` holds the frames of B clips; of its channels, the first
    ``C // fold_div`` take the next frame's values and the next ``C // fold_div`` the
    previous frame's (zeros past the clip's ends); the rest stay. ``frames`` is set by
    :class:`FineTuneNet` for each forward pass; with ``frames == 1`` nothing is shifted.

    Parameters
    ----------
    module:
        The module to run on the shifted input (a convolution).
    fold_div:
        1 / the share of channels shifted each way (TSM's 8).
    """

    def __init__(self, module: nn.Module, fold_div: int = 8) -> None:
        super().__init__()
        self.module = module
        self.fold_div = fold_div
        self.frames = 1

    @staticmethod
    def shift(x: torch.Tensor, frames: int, fold_div: int = 8) -> torch.Tensor:
        """``x [B*T, C, H, W]`` shifted along time (a new tensor; ``x`` is not modified)."""
        bt, c = x.shape[:2]
        fold = c // fold_div
        if frames <= 1 or fold == 0:
            return x
        v = x.view(bt // frames, frames, *x.shape[1:])
        out = v.clone()
        out[:, :-1, :fold] = v[:, 1:, :fold]  # from the next frame
        out[:, -1, :fold] = 0
        out[:, 1:, fold:2 * fold] = v[:, :-1, fold:2 * fold]  # from the previous frame
        out[:, 0, fold:2 * fold] = 0
        return out.view_as(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(self.shift(x, self.frames, self.fold_div))

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}"


class FineTuneNet(nn.Module):
    """Adapter + backbone + dropout + linear classifier, for images and video clips.

    Parameters
    ----------
    backbone:
        A registered backbone created with ``num_classes=0``, for 3 input channels (it is
        adapted here as ``channel_adapter`` says) or already for ``in_chans`` (e.g.
        ``create_backbone(name, in_chans=C)``; ``channel_adapter`` must then be ``stem``).
        It is modified in place by ``channel_adapter='stem'`` and ``temporal`` options
        ``difference`` and ``tsm``.
    in_chans:
        Channels of the data.
    num_classes:
        Outputs (the dataset's ``output_dim``).
    dropout:
        Dropout probability before the classifier.
    channel_adapter:
        ``stem`` (default): a channel count other than 1 and 3 goes through the
        backbone's first convolution adapted to it; ``conv3x3``: through a learned 3x3
        convolution to 3 channels. 1 channel is copied to 3 under both. A backbone
        without a first convolution (``linear``) falls back to ``conv3x3`` (logged).
    temporal:
        How clips use their frames: ``average`` (default), ``difference`` or ``tsm``
        (see the module docstring). Images (T = 1) are unaffected.
    frames:
        Frames per clip the network will be given, if known: with 1 (images) the
        temporal option builds nothing at all (``temporal`` then reads ``average``).
        ``None`` (default): build what ``temporal`` asks; a batch with T = 1 still
        computes exactly what ``average`` does.

    Raises
    ------
    ValueError
        An unknown option, a backbone whose channel count fits neither 3 nor
        ``in_chans``, or ``difference``/``tsm`` with a backbone that has no first
        convolution.
    """

    def __init__(self, backbone: Backbone, in_chans: int, num_classes: int, dropout: float = 0.0, *,
                 channel_adapter: str = "stem", temporal: str = "average", frames: int | None = None) -> None:
        super().__init__()
        self.train_layers = "all"
        self._frozen_norms: list[nn.Module] = []  # BatchNorm layers kept in eval mode (set_train_layers)
        channel_adapter = _check_choice("channel_adapter", channel_adapter, CHANNEL_ADAPTERS)
        temporal = _check_choice("temporal", temporal, TEMPORAL_MODES)
        if frames is not None and (isinstance(frames, bool) or not isinstance(frames, int) or frames < 1):
            raise ValueError(f"frames must be None or an integer >= 1, got {frames!r}")
        if isinstance(in_chans, bool) or not isinstance(in_chans, int) or in_chans < 1:
            raise ValueError(f"in_chans must be an integer >= 1, got {in_chans!r}")
        self.temporal = "average" if frames == 1 else temporal
        self.in_chans = in_chans
        mode = self._channel_mode(backbone, in_chans, channel_adapter)
        if mode == "stem":
            adapt_input_channels(backbone, in_chans)
            mode = "pass"
        self.channel_adapter = "conv3x3" if mode == "conv3x3" else "stem"
        self.adapter = ChannelAdapter(in_chans, mode)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)
        cfg = backbone.cfg
        # one channel reaching the backbone as one (a backbone built for 1 channel) takes
        # the mean of the three channels' statistics
        single = (sum(cfg.mean) / len(cfg.mean),), (sum(cfg.std) / len(cfg.std),)
        mean, std = single if self.adapter.out_chans == 1 else (cfg.mean, cfg.std)
        if self.adapter.out_chans == 1 and (len(set(cfg.mean)) > 1 or len(set(cfg.std)) > 1):
            logger.info("%s was built for 1 channel (RGB kernel summed): normalised with the mean of its "
                        "channels' statistics, which differ (copying to 3 channels would be exact)", cfg.name)
        self.register_buffer("mean", _cyclic(mean, self.adapter.out_chans), persistent=False)
        self.register_buffer("std", _cyclic(std, self.adapter.out_chans), persistent=False)
        # after the classifier and without drawing random numbers: images get the same
        # initial weights (and dropout masks) whatever the temporal option
        if self.temporal == "difference":
            # differences have mean 0: only divided by the std (of channel k mod 3; the mean
            # std for a single channel)
            motion_std = single[1] if in_chans == 1 else cfg.std
            self.register_buffer("motion_std", _cyclic(motion_std, in_chans), persistent=False)
            set_first_conv(backbone, MotionStem(self._first_conv(backbone), in_chans))
        elif self.temporal == "tsm":
            self._insert_temporal_shifts(backbone)

    # --- construction -----------------------------------------------------------------------
    @staticmethod
    def _channel_mode(backbone: Backbone, in_chans: int, channel_adapter: str) -> str:
        """How the data's channels reach the backbone: pass, copy, conv3x3 or stem (to adapt)."""
        name = backbone.cfg.name
        if backbone.in_chans not in (3, in_chans):
            raise ValueError(f"{name}: the backbone takes {backbone.in_chans} channels; FineTuneNet needs one "
                             f"built for 3 channels or for the data's {in_chans}")
        if backbone.in_chans == in_chans:
            if in_chans != 3 and channel_adapter == "conv3x3":
                raise ValueError(f"{name}: channel_adapter='conv3x3' needs a backbone built for 3 channels; "
                                 f"this one was built for {in_chans} (channel_adapter='stem')")
            return "pass"
        if in_chans == 1:
            return "copy"
        if channel_adapter == "conv3x3":
            return "conv3x3"
        if backbone.cfg.first_conv is None:
            logger.warning("%s has no first convolution to adapt to %d channels: channel_adapter='stem' "
                           "falls back to a learned 3x3 convolution to 3 channels (conv3x3)", name, in_chans)
            return "conv3x3"
        return "stem"

    def _first_conv(self, backbone: Backbone) -> nn.Conv2d:
        try:
            conv = get_first_conv(backbone)
        except ValueError as err:
            raise ValueError(f"temporal={self.temporal!r}: {err}") from None
        if not isinstance(conv, nn.Conv2d):
            raise ValueError(f"temporal={self.temporal!r}: {backbone.cfg.name}'s first convolution is {conv!r}")
        return conv

    def _insert_temporal_shifts(self, backbone: Backbone) -> None:
        """Wrap every ungrouped convolution after the first in a :class:`TemporalShift`."""
        first = self._first_conv(backbone)
        targets = [name for name, m in backbone.named_modules()
                   if isinstance(m, nn.Conv2d) and m is not first and m.groups == 1 and m.in_channels >= 8]
        for name in targets:
            parent_name, _, child = name.rpartition(".")
            parent = backbone.get_submodule(parent_name) if parent_name else backbone
            setattr(parent, child, TemporalShift(getattr(parent, child)))
        logger.info("%s: temporal shift (TSM) before %d convolutions", backbone.cfg.name, len(targets))

    # --- what is trained --------------------------------------------------------------------
    def set_train_layers(self, train_layers: str) -> FineTuneNet:
        """Choose the parameters that are fine-tuned (the configuration's ``train_layers``).

        Parameters
        ----------
        train_layers:
            ``all``: every parameter (what a network built here trains by default).
            ``head``: the classifier ``fc``, plus what this network adds that has no
            pretrained weights: the learned ``conv3x3`` channel adapter and the motion
            convolution of ``temporal='difference'`` (zero-initialised, so that frozen it
            would never act). The first convolution adapted to an unusual channel count
            (``channel_adapter='stem'``) starts from pretrained kernels and stays frozen
            with the rest of the backbone.
            ``bn_head``: also every BatchNorm layer of the backbone (affine parameters
            trained, running statistics updated in training mode).
            ``last_blocks``: also the backbone's last stage(s), BatchNorm layers included
            (:func:`finetune.backbones.get_last_blocks`: EfficientNet-Lite's last two block
            stages with ``conv_head`` and ``bn2``, ResNet-18's ``layer4``; the whole
            backbone for ``scratch_cnn``, which has no pretrained weights to keep, so that
            there ``last_blocks`` trains what ``all`` does).

        Returns
        -------
        FineTuneNet
            ``self``. Frozen parameters have ``requires_grad=False`` (give the optimizer
            :meth:`trainable_parameters` only); a BatchNorm layer outside what is trained
            stays in eval mode under :meth:`train`, so that it normalises with, and keeps,
            its pretrained running statistics.

        Raises
        ------
        ValueError
            ``train_layers`` is not one of :data:`TRAIN_LAYERS`, or the backbone's
            ``cfg.last_blocks`` names no module.
        """
        mode = _check_choice("train_layers", train_layers, TRAIN_LAYERS)
        norms = [m for m in self.backbone.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if mode == "all":
            trained: list[nn.Module] = [self]
        else:
            motion = [m.motion for m in self.backbone.modules() if isinstance(m, MotionStem)]
            trained = [self.fc, self.adapter, *motion]
            if mode == "bn_head":
                trained += norms
            elif mode == "last_blocks":
                trained += get_last_blocks(self.backbone)
        for p in self.parameters():
            p.requires_grad_(False)
        for module in trained:
            for p in module.parameters():
                p.requires_grad_(True)
        inside = {id(m) for module in trained for m in module.modules()}
        self._frozen_norms = [m for m in norms if id(m) not in inside]
        self.train_layers = mode
        self.train(self.training)  # frozen BatchNorm layers to eval mode now
        n_all = sum(p.numel() for p in self.parameters())
        n_trained = sum(p.numel() for p in self.trainable_parameters())
        logger.info("train_layers=%s: %d of %d parameters trained (%.1f%%), %d of %d BatchNorm layers frozen",
                    mode, n_trained, n_all, 100.0 * n_trained / max(1, n_all), len(self._frozen_norms),
                    len(norms))
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters that are fine-tuned (``requires_grad``), in :meth:`parameters`' order."""
        return [p for p in self.parameters() if p.requires_grad]

    def train(self, mode: bool = True) -> FineTuneNet:
        """As :meth:`torch.nn.Module.train`, except that the BatchNorm layers frozen by
        :meth:`set_train_layers` stay in eval mode."""
        super().train(mode)
        for module in self._frozen_norms:
            module.train(False)
        return self

    # --- forward ----------------------------------------------------------------------------
    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if x.is_cuda:  # the network is channels_last on CUDA: hand it its layout
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.adapter(x)
        return (x - self.mean) / self.std

    def _differences(self, clips: torch.Tensor) -> torch.Tensor:
        """``x[t+1] - x[t]`` of clips ``[B, T, C, H, W]`` (T > 1) as frames ``[B*T, C, H, W]``, scaled."""
        x = clips.float().div(255.0) if clips.dtype == torch.uint8 else clips
        d = torch.diff(x, dim=1)
        d = torch.cat([d, d[:, -1:]], dim=1)  # the last frame reuses the previous difference
        d = d.flatten(0, 1) / self.motion_std
        if d.is_cuda:
            d = d.contiguous(memory_format=torch.channels_last)
        return d

    def _set_frames(self, frames: int) -> None:
        for module in self.backbone.modules():
            if isinstance(module, TemporalShift):
                module.frames = frames

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_head(self.backbone.forward_features(x), pre_logits=True)

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of frames ``[B, C, H, W]``, each frame on its own.

        Inside :func:`finetune.embedding_cache.caching` (the simulated clock's evaluations), a
        result this process already computed for the same state and input is reused.
        """
        if not embedding_cache.usable(self, frames):
            return self._features(self._prepare(frames))
        key = (embedding_cache.state_digest(self), embedding_cache.input_digest(frames))
        cache = embedding_cache.process_cache()
        out = cache.get(key)
        if out is None:
            out = self._features(self._prepare(frames))
            cache.put(key, out)
        return out

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits of clips ``[B, T, C, H, W]`` (T = 1 for images)."""
        b, t = clips.shape[:2]
        x = self._prepare(clips.flatten(0, 1))
        if t > 1 and self.temporal == "difference":
            x = torch.cat([x, self._differences(clips)], dim=1)
        if self.temporal != "tsm" or t == 1:
            feats = self._features(x)
        else:
            self._set_frames(t)
            try:
                feats = self._features(x)
            finally:
                self._set_frames(1)
        return self.fc(self.dropout(feats)).view(b, t, -1).mean(1)

    def extra_repr(self) -> str:
        return (f"in_chans={self.in_chans}, channel_adapter={self.channel_adapter!r}, "
                f"temporal={self.temporal!r}, train_layers={self.train_layers!r}")
