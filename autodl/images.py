"""Image-array helpers of the source loaders (:mod:`autodl.sources_core`,
:mod:`autodl.sources_heldout`, :mod:`autodl.sources_training`) and of the collections'
derivations: picking examples of an array or a list of variable-size images, uint8 and RGB
conversion, resizing, and a seeded train/test split that keeps groups (e.g. one icon's
sizes) on one side."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def take(x: np.ndarray | Sequence[np.ndarray], idx: np.ndarray | Sequence[int]) -> np.ndarray | list[np.ndarray]:
    """The examples ``idx`` of ``x``: an array indexed, or a list (variable-size images) picked.

    Parameters
    ----------
    x:
        ``[N, ...]`` array, or a list of N arrays of different shapes.
    idx:
        Integer indices.
    """
    if isinstance(x, np.ndarray):
        return x[np.asarray(idx, dtype=np.int64)]
    return [x[int(i)] for i in idx]


def as_uint8(img: np.ndarray) -> np.ndarray:
    """An image as uint8: floats in [0, 1] scaled to 0..255, booleans to 0/255."""
    arr = np.asarray(img)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    scale = 255.0 if arr.size and float(arr.max()) <= 1.0 else 1.0
    return np.clip(np.rint(arr.astype(np.float64) * scale), 0, 255).astype(np.uint8)


def as_rgb(img: np.ndarray) -> np.ndarray:
    """``[H, W]`` / ``[H, W, 1|3|4]`` uint8 as ``[H, W, 3]`` (grey copied, alpha dropped)."""
    arr = as_uint8(img)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.shape[-1] == 1:
        return np.repeat(arr, 3, axis=-1)
    return np.ascontiguousarray(arr[..., :3])


def resize_image(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize ``[H, W, C]`` uint8 with Pillow (bilinear up, area-like Lanczos down)."""
    from PIL import Image

    arr = np.asarray(img)
    if arr.shape[0] == height and arr.shape[1] == width:
        return arr
    squeeze = arr.ndim == 3 and arr.shape[-1] == 1
    pil = Image.fromarray(arr[..., 0] if squeeze else arr)
    down = height * width < arr.shape[0] * arr.shape[1]
    out = np.asarray(pil.resize((width, height), Image.Resampling.LANCZOS if down else Image.Resampling.BILINEAR))
    return out[..., None] if squeeze else out


def split_by_group(groups: np.ndarray, strata: np.ndarray, test_fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train/test groups (e.g. icon names): each stratum's groups split at random, seeded.

    Returns boolean masks over the groups: every stratum with two groups or more has at
    least one in each side.
    """
    rng = np.random.default_rng(seed)
    test = np.zeros(len(groups), dtype=bool)
    for s in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == s))
        n_test = round(test_fraction * len(idx))
        if len(idx) >= 2:
            n_test = min(max(1, n_test), len(idx) - 1)
        test[idx[:n_test]] = True
    return ~test, test
