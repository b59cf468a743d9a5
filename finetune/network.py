"""The network that is fine-tuned: input adaptation, a registered backbone and a new head.

Any dataset is adapted to the backbone (Freiburg's AutoDL 2019 recipe):

* uint8 frames are scaled to [0, 1] (dense float data arrives already scaled);
* 1 channel is copied to 3; 3 channels pass; any other count goes through a learned
  3x3 convolution to 3 channels;
* values are normalised with the mean and std the backbone's weights expect;
* video clips ``[B, T, C, H, W]`` run the 2-D network on every frame and average the
  logits over the T frames (frame averaging).

The head is dropout followed by a new linear classifier on the backbone's pooled
features, which are also what :meth:`FineTuneNet.embed` returns.
"""

from __future__ import annotations

import torch
from torch import nn

from finetune.backbones import Backbone


class ChannelAdapter(nn.Module):
    """Maps ``in_chans`` channels to the 3 a pretrained backbone expects."""

    def __init__(self, in_chans: int):
        super().__init__()
        self.in_chans = in_chans
        self.conv = nn.Conv2d(in_chans, 3, 3, padding=1) if in_chans not in (1, 3) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.in_chans == 1:
            return x.expand(-1, 3, -1, -1)
        if self.conv is None:
            return x
        return self.conv(x)


class FineTuneNet(nn.Module):
    """Adapter + backbone + dropout + linear classifier, for images and video clips.

    Parameters
    ----------
    backbone:
        A registered backbone created with ``num_classes=0``.
    in_chans:
        Channels of the data.
    num_classes:
        Outputs (the dataset's ``output_dim``).
    dropout:
        Dropout probability before the classifier.
    """

    def __init__(self, backbone: Backbone, in_chans: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.adapter = ChannelAdapter(in_chans)
        self.backbone = backbone
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(backbone.num_features, num_classes)
        mean = torch.tensor(backbone.cfg.mean, dtype=torch.float32).view(1, -1, 1, 1)
        std = torch.tensor(backbone.cfg.std, dtype=torch.float32).view(1, -1, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        if x.is_cuda:  # the network is channels_last on CUDA: hand it its layout
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.adapter(x)
        return (x - self.mean) / self.std

    def embed(self, frames: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features of frames ``[B, C, H, W]``."""
        feats = self.backbone.forward_features(self._prepare(frames))
        return self.backbone.forward_head(feats, pre_logits=True)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        """Logits of clips ``[B, T, C, H, W]`` (T=1 for images), averaged over frames."""
        b, t = clips.shape[:2]
        feats = self.embed(clips.flatten(0, 1))
        logits = self.fc(self.dropout(feats))
        return logits.view(b, t, -1).mean(1)
