"""Data augmentation on batches of clips ``[B, T, C, H, W]`` already on the device.

* ``none``: the batch as it is.
* ``flip``: random horizontal flips.
* ``fast_autoaugment``: a light policy in the spirit of the one AutoCLINT (the AutoDL
  2019 winner) found with Fast AutoAugment (Lim et al., NeurIPS 2019) and used for its
  short budgets: horizontal flip, a random crop after reflection padding by 1/8 of the
  side, and mild brightness/contrast jitter. It is not AutoCLINT's searched policy itself.

Augmentations apply to every frame of a clip alike and keep the input's dtype (uint8
batches stay uint8).
"""

from __future__ import annotations

from typing import Any

import numpy as np

POLICIES = ("none", "flip", "fast_autoaugment")


def augment(x: Any, policy: str, rng: np.random.Generator) -> Any:
    """Augment a batch ``x [B, T, C, H, W]`` with ``policy`` (one of :data:`POLICIES`)."""
    import torch
    import torch.nn.functional as F

    if policy == "none":
        return x
    if policy not in POLICIES:
        raise ValueError(f"augmentation={policy!r}: expected one of {POLICIES}")
    b = x.shape[0]
    flip = torch.from_numpy(rng.random(b) < 0.5).to(x.device)
    x = torch.where(flip.view(b, 1, 1, 1, 1), torch.flip(x, dims=[-1]), x)
    if policy == "flip":
        return x
    dtype = x.dtype
    xf = x.float()
    _, t, c, h, w = xf.shape
    pad_h, pad_w = max(1, h // 8), max(1, w // 8)
    padded = F.pad(xf.flatten(0, 1), (pad_w, pad_w, pad_h, pad_h), mode="reflect").view(b, t, c, h + 2 * pad_h,
                                                                                       w + 2 * pad_w)
    dy = rng.integers(0, 2 * pad_h + 1, b)
    dx = rng.integers(0, 2 * pad_w + 1, b)
    xf = torch.stack([padded[i, :, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])
    scale = 255.0 if dtype == torch.uint8 else 1.0
    brightness = torch.from_numpy(rng.uniform(-0.1, 0.1, b).astype(np.float32)).to(x.device) * scale
    contrast = torch.from_numpy(rng.uniform(0.85, 1.15, b).astype(np.float32)).to(x.device)
    mean = xf.mean(dim=(1, 2, 3, 4), keepdim=True)
    xf = (xf - mean) * contrast.view(b, 1, 1, 1, 1) + mean + brightness.view(b, 1, 1, 1, 1)
    if dtype == torch.uint8:
        return xf.clamp_(0, 255).round_().to(torch.uint8)
    return xf.clamp_(0, 1).to(dtype)
