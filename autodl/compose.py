"""Picture composition shared by the offline sources (:mod:`autodl.sources_heldout`,
:mod:`autodl.sources_training`): seeded backgrounds, RGBA reading, cropping, scaling and pasting,
a seeded shuffle of examples, and the integer checks of a recipe's parameters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import ConversionError


def check_int(key: str, value: Any, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low or \
            (high is not None and value > high):
        bound = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
        raise ConversionError(None, f"{key}={value!r}: expected {bound}", field=key)
    return int(value)


def shuffled(xs: list[np.ndarray], ys: list[Any], rng: np.random.Generator, stack: bool,
              empty_shape: tuple[int, ...]) -> tuple[Any, np.ndarray]:
    """Examples and labels in a seeded random order (an array when ``stack``, else a list)."""
    order = rng.permutation(len(ys))
    y = np.asarray(ys, dtype=np.int64)[order] if ys else np.zeros((0,), np.int64)
    if not stack:
        return [xs[i] for i in order], y
    x = np.stack([xs[i] for i in order]) if xs else np.zeros((0, *empty_shape), np.uint8)
    return x.astype(np.uint8), y


def random_background(height: int, width: int, rng: np.random.Generator, noise: float = 6.0) -> np.ndarray:
    """A random background ``[height, width, 3]`` uint8: a plain colour or a linear gradient of
    two colours in a random direction, with a little Gaussian noise."""
    c0 = rng.integers(0, 256, 3).astype(np.float64)
    if rng.random() < 0.5:
        img = np.broadcast_to(c0, (height, width, 3)).astype(np.float64)
    else:
        c1 = rng.integers(0, 256, 3).astype(np.float64)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:height, 0:width]
        proj = (xx * np.cos(angle) + yy * np.sin(angle)).astype(np.float64)
        proj = (proj - proj.min()) / max(np.ptp(proj), 1.0)
        img = c0 + proj[..., None] * (c1 - c0)
    img = img + rng.normal(0, noise, (height, width, 3))
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def smooth_background(height: int, width: int, rng: np.random.Generator, cells: int = 3,
                       noise: float = 5.0) -> np.ndarray:
    """A smooth random field of muted colours: ``cells x cells`` random colours enlarged bicubically."""
    from PIL import Image

    base = rng.integers(20, 236, (cells, cells, 3)).astype(np.float64)
    base = 0.4 * base + 0.6 * base.mean(axis=-1, keepdims=True)  # muted colours, like terrain
    img = np.asarray(Image.fromarray(np.rint(base).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC))
    img = img.astype(np.float64)
    img = img + rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def alpha_crop(rgba: np.ndarray) -> np.ndarray:
    """An RGBA array cropped to the bounding box of its visible pixels (alpha > 8)."""
    alpha = rgba[..., 3] > 8
    if not alpha.any():
        return rgba
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    return rgba[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def read_rgba(path: Path, max_side: int | None = None) -> np.ndarray:
    """A picture file as RGBA uint8 ``[H, W, 4]``, shrunk so its longer side is at most ``max_side``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            rgba = img.convert("RGBA")
    except OSError as exc:
        raise ConversionError(path, f"cannot be read as a picture ({exc})") from None
    if max_side is not None and max(rgba.size) > max_side:
        rgba.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return np.asarray(rgba)


def paste(canvas: np.ndarray, rgba: np.ndarray, top: int, left: int) -> np.ndarray:
    """``rgba`` alpha-composited onto ``canvas`` (``[H, W, 3]`` uint8) at ``(top, left)``, clipped."""
    out = canvas.astype(np.float64)
    h, w = rgba.shape[:2]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if r1 <= r0 or c1 <= c0:
        return canvas
    part = rgba[r0 - top:r1 - top, c0 - left:c1 - left].astype(np.float64)
    a = part[..., 3:4] / 255.0
    out[r0:r1, c0:c1] = part[..., :3] * a + out[r0:r1, c0:c1] * (1 - a)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def scaled_rgba(rgba: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize RGBA with premultiplied alpha (no dark fringes), Lanczos down, bilinear up."""
    from PIL import Image

    img = Image.fromarray(rgba, "RGBA")
    down = height * width < rgba.shape[0] * rgba.shape[1]
    method = Image.Resampling.LANCZOS if down else Image.Resampling.BILINEAR
    return np.asarray(img.convert("RGBa").resize((max(1, width), max(1, height)), method).convert("RGBA"))
