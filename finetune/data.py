"""Getting a dataset handed over by ingestion into memory, decoded once.

Ingestion hands a model ``tf.data.Dataset`` objects. When they come from this project's
ingestion they carry their source (:func:`autodl.ingestion.source_of`) and are read
through the fast numpy path, resized on the way; otherwise (the organizers' own
ingestion) the ``tf.data`` pipeline is iterated once. A capped number of examples is a
seeded stratified subset, never the first records; the test labels (the ``.solution``
file) are never read.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from autodl.dataset import _PIL_MODES, _resize_float
from autodl.ingestion import source_of
from autodl.labels import stratified_subset

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


def decoded_indices(dataset: Any, limit: int | None = None, seed: int = 0) -> np.ndarray | None:
    """The records (positions in record order, ascending) that :func:`load_arrays` with
    ``limit`` and ``seed`` decodes from ``dataset``; None where the dataset does not come from
    this project's ingestion (no ``autodl_source``: its records cannot be chosen before
    decoding). Reads the labels only."""
    src = source_of(dataset)
    if src is None:
        return None
    ds, subset = src
    count = ds.metadata(subset).sample_count
    if limit is not None and limit < count:
        return np.asarray(stratified_subset(ds.labels(subset), limit, seed), dtype=np.int64)
    return np.arange(count, dtype=np.int64)


def load_arrays(dataset: Any, size: tuple[int, int] | None, frames: int = 1,
                limit: int | None = None, seed: int = 0,
                indices: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``dataset`` into ``(x [N, frames, H, W, C], y [N, output_dim])``.

    Parameters
    ----------
    dataset:
        A ``tf.data.Dataset`` handed over by ingestion: ``(example, labels)`` elements,
        with this project's ``autodl_source`` where it comes from our ingestion.
    size:
        ``(H, W)`` to resize every frame to; None keeps the stored size (all examples
        must then share it).
    frames:
        Frames per example (evenly spaced; see :func:`fixed_frames`).
    limit:
        Keep at most this many examples: a seeded stratified subset
        (:func:`autodl.labels.stratified_subset`, every class kept where ``limit`` allows),
        not the first records, which in a dataset stored sorted by class would be the
        first classes only. The examples kept stay in their stored order.
    seed:
        Seed of that subset.
    indices:
        Decode exactly these records instead (positions in record order, rows in the order
        given; e.g. part of :func:`decoded_indices`, to decode a set in pieces: each record
        is decoded and resized on its own, so the pieces put together are the whole).
        Only for datasets from this project's ingestion; not with ``limit``.

    Returns
    -------
    tuple of numpy.ndarray
        ``x`` (uint8 for compressed images, float32 for dense data) and ``y``: the
        labels the dataset hands a model (all zeros for a test set: the ``.solution``
        file is never read).

    Notes
    -----
    Through ``autodl_source`` the labels are read first (no frame decoded) and only the
    chosen records are decoded. A plain ``tf.data`` pipeline (the organizers' ingestion)
    cannot be read without decoding, so every example is decoded and resized once and the
    subset drawn afterwards: memory holds the whole set at ``size`` for a moment.
    """
    src = source_of(dataset)
    if indices is not None and (src is None or limit is not None):
        raise ValueError("indices need a dataset from this project's ingestion (autodl_source), and no limit")
    if src is not None:
        ds, subset = src
        if indices is not None:
            indices = np.asarray(indices, dtype=np.int64)
        elif limit is not None and limit < ds.metadata(subset).sample_count:
            indices = stratified_subset(ds.labels(subset), limit, seed)
        arr = ds.load_numpy(subset, size=size, indices=indices)
        xs, y = arr.x, arr.y
    else:
        xs_list, ys = [], []
        for x, y1 in dataset.as_numpy_iterator():
            clip = np.asarray(x)
            if clip.dtype != np.uint8 and clip.size and clip.max() <= 1.0:
                clip = np.clip(np.rint(clip * 255), 0, 255).astype(np.uint8)
            if size is not None:
                clip = np.stack([_resize_uint8(f, size) for f in clip])
            xs_list.append(clip)
            ys.append(np.asarray(y1, dtype=np.float32))
        xs = xs_list
        y = np.stack(ys) if ys else np.zeros((0, 0), np.float32)
        if limit is not None and limit < len(xs):
            keep = stratified_subset(y, limit, seed)
            xs, y = [xs[i] for i in keep], y[keep]
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
