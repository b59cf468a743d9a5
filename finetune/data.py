"""Getting a dataset handed over by ingestion into memory, decoded once.

Ingestion hands a model ``tf.data.Dataset`` objects. When they come from this project's
ingestion they carry their source (:func:`autodl.ingestion.source_of`) and are read
through the fast numpy path, resized on the way; otherwise (the organizers' own
ingestion) the ``tf.data`` pipeline is iterated once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from autodl.dataset import _PIL_MODES, _resize_float
from autodl.ingestion import source_of

logger = logging.getLogger(__name__)


def fixed_frames(clip: np.ndarray, frames: int) -> np.ndarray:
    """``frames`` frames of ``clip [T, H, W, C]``, evenly spaced (repeated when T < frames)."""
    t = clip.shape[0]
    if t == frames:
        return clip
    idx = np.linspace(0, t - 1, frames).round().astype(int)
    return clip[idx]


def _resize_uint8(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    from PIL import Image

    if img.shape[:2] == size:
        return img
    c = img.shape[-1]
    if c in _PIL_MODES and img.dtype == np.uint8:
        out = Image.fromarray(img if c > 1 else img[..., 0]).resize((size[1], size[0]),
                                                                   Image.Resampling.BILINEAR)
        return np.asarray(out).reshape(size[0], size[1], c)
    return _resize_float(img.astype(np.float32), size).astype(img.dtype)


def load_arrays(dataset: Any, size: tuple[int, int] | None, frames: int = 1,
                limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``dataset`` into ``(x [N, frames, H, W, C], y [N, output_dim])``.

    ``x`` is uint8 for compressed images and float32 for dense data. ``size=None`` keeps
    the stored size (all examples must then share it).
    """
    src = source_of(dataset)
    if src is not None:
        ds, subset = src
        arr = ds.load_numpy(subset, size=size, limit=limit)
        xs, y = arr.x, arr.y
    else:
        xs_list, ys = [], []
        for i, (x, y1) in enumerate(dataset.as_numpy_iterator()):
            if limit is not None and i >= limit:
                break
            clip = np.asarray(x)
            if clip.dtype != np.uint8 and clip.size and clip.max() <= 1.0:
                clip = np.clip(np.rint(clip * 255), 0, 255).astype(np.uint8)
            if size is not None:
                clip = np.stack([_resize_uint8(f, size) for f in clip])
            xs_list.append(clip)
            ys.append(y1)
        xs, y = xs_list, np.asarray(ys, dtype=np.float32)
    clips = [fixed_frames(np.asarray(c), frames) for c in xs]
    shapes = {c.shape for c in clips}
    if len(shapes) > 1:
        raise ValueError(f"examples differ in shape ({sorted(shapes)[:3]} ...); give a size to resize to")
    return np.stack(clips) if clips else np.zeros((0, frames, 1, 1, 1), np.uint8), y


def target_size(shape: tuple[int, int, int, int], default: int, cap: int) -> tuple[int, int]:
    """``(H, W)`` to train at: the stored size capped at ``cap``, or ``default`` when it varies."""
    _, h, w, _ = shape
    if h <= 0 or w <= 0:
        return default, default
    scale = min(1.0, cap / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))
