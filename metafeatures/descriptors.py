"""Simple descriptors of a dataset: sizes, classes, channels, resolution, sequence length.

ZAP's meta-features (Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022,
section 4: number of training examples, classes, channels, image height and width, with
the number of test examples and the sequence length of AutoDL's video sets), read from the
metadata and the training labels alone: no frame is decoded except, for a dataset whose
image size varies, the headers of a small seeded sample of training examples; the test
labels (the ``.solution`` file) are never read.

:func:`describe` returns them as a dict; :func:`descriptor_vector` turns one into a
fixed-order vector for a selector (counts and sizes ``log1p``-scaled, flags 0/1).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)

__all__ = ["COUNT_KEYS", "DESCRIPTOR_KEYS", "FLAG_KEYS", "SIZE_SAMPLE", "describe", "describe_new", "descriptor_vector"]

DESCRIPTOR_KEYS: tuple[str, ...] = ("train_samples", "test_samples", "classes", "channels", "height", "width",
                                    "variable_size", "frames", "multilabel")
"""The keys of :func:`describe`, in the order of :func:`descriptor_vector`."""
COUNT_KEYS: frozenset[str] = frozenset({"train_samples", "test_samples", "classes", "channels", "height",
                                        "width", "frames"})
"""Counts and sizes: ``log1p``-scaled in :func:`descriptor_vector`."""
FLAG_KEYS: frozenset[str] = frozenset({"variable_size", "multilabel"})
"""0/1 flags: kept as they are."""
SIZE_SAMPLE = 32
"""Training examples whose frame headers are read when the image size or clip length varies."""


def _frame_hw(frame: Any) -> tuple[int, int]:
    """``(H, W)`` of an encoded frame (its header only) or of a dense frame array."""
    if isinstance(frame, bytes):
        from PIL import Image

        with Image.open(io.BytesIO(frame)) as img:
            return img.size[1], img.size[0]
    return int(frame.shape[0]), int(frame.shape[1])


def _median_shape(ds: Any, seed: int = 0, subset: str = "train") -> tuple[int, int, int]:
    """Median ``(T, H, W)`` over a seeded sample of :data:`SIZE_SAMPLE` examples of ``subset``."""
    n = ds.metadata(subset).sample_count
    chosen = set(np.random.default_rng(seed).choice(n, size=min(SIZE_SAMPLE, n), replace=False).tolist())
    shapes = []
    for i, r in enumerate(ds.iter_raw(subset)):
        if i in chosen:
            shapes.append((len(r.frames), *_frame_hw(r.frames[0])))
    return _median(shapes)


def _median(shapes: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    med = np.median(np.asarray(shapes, dtype=np.float64), axis=0) if shapes else np.ones(3)
    return round(med[0]), round(med[1]), round(med[2])


def describe(dataset: str | Path | Any) -> dict[str, float]:
    """ZAP's descriptors of an AutoDL dataset, from its metadata and training labels.

    Parameters
    ----------
    dataset:
        An AutoDL dataset folder, or an open :class:`autodl.dataset.AutoDLDataset`.

    Returns
    -------
    dict
        ``train_samples``, ``test_samples`` (0 without a test subset), ``classes``
        (``output_dim``), ``channels``, ``height`` and ``width`` (the stored size; where it
        varies, the median over a seeded sample of :data:`SIZE_SAMPLE` training examples,
        read from their headers), ``variable_size`` (1 where the size varies), ``frames``
        (the sequence length: 1 for images; the sample's median where it varies) and
        ``multilabel`` (1 where several training rows have more than one label, or none:
        :func:`autodl.labels.is_multilabel`), all as floats.

    Raises
    ------
    AutoDLError
        A folder that is not an AutoDL dataset, or records that do not parse.
    """
    from autodl.dataset import AutoDLDataset

    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    meta = ds.metadata("train")
    median = _median_shape(ds) if _varies(meta) else None
    if median is not None:
        logger.debug("%s: size varies; median of a sample: T=%d, H=%d, W=%d", ds.name, *median)
    test = float(ds.metadata("test").sample_count) if "test" in ds.subsets else 0.0
    return _descriptors(meta, float(meta.sample_count), test, float(meta.output_dim), median, ds.labels("train"))


def _varies(meta: Any) -> bool:
    """Whether the metadata lacks the frame size or the clip length (they vary between examples)."""
    rows, cols = meta.get_matrix_size(0)
    return rows < 1 or cols < 1 or meta.get_sequence_size() < 1


def _descriptors(meta: Any, train: float, test: float, classes: float, median: tuple[int, int, int] | None,
                 labels: np.ndarray) -> dict[str, float]:
    """The descriptor dict: sizes from the metadata, each one it lacks from ``median`` ``(T, H, W)``."""
    from autodl.labels import is_multilabel

    rows, cols = meta.get_matrix_size(0)
    frames = meta.get_sequence_size()
    variable = rows < 1 or cols < 1
    if median is not None:
        t, h, w = median
        rows = h if rows < 1 else rows
        cols = w if cols < 1 else cols
        frames = t if frames < 1 else frames
    return {"train_samples": train, "test_samples": test, "classes": classes,
            "channels": float(meta.get_num_channels(0)), "height": float(rows), "width": float(cols),
            "variable_size": 1.0 if variable else 0.0, "frames": float(frames),
            "multilabel": 1.0 if is_multilabel(labels) else 0.0}


def describe_new(metadata: Any, dataset: Any) -> tuple[dict[str, float], int]:
    """:func:`describe`'s descriptors of a new dataset as a submission sees it: its training
    metadata and the ``tf.data`` set ingestion hands over, nothing else.

    Where the image size or clip length varies, the median is taken over the stored sizes of
    the examples :func:`describe` would read (their headers, the same seeded sample) for a
    set from this project's ingestion, and over the first :data:`SIZE_SAMPLE` decoded
    examples of any other pipeline (the organizers' ingestion); never over frames already
    resized for a network. ``multilabel`` is read from all training labels (this project's
    ingestion) or from those first examples'. ``test_samples`` is not known when ``train``
    is first called: it is taken as ``train_samples / 2``, about the median ratio of the
    training collection's datasets.

    So for a dataset from this project's ingestion every descriptor but ``test_samples``
    equals :func:`describe`'s of the same dataset, as the selectors were fitted on.

    Returns
    -------
    tuple
        The descriptors, and the number of examples whose frames were read (headers or
        decoded; 0 where the metadata held the sizes): the cost a simulated clock charges.
    """
    from autodl.ingestion import source_of

    n = float(metadata.size())
    read, median = 0, None
    src = source_of(dataset)
    if src is not None:
        ds, subset = src
        labels = ds.labels(subset)
        if _varies(metadata):
            median = _median_shape(ds, subset=subset)
            read = min(SIZE_SAMPLE, ds.metadata(subset).sample_count)
    else:
        shapes, ys = [], []
        for i, (x, y) in enumerate(dataset.as_numpy_iterator()):
            if i >= SIZE_SAMPLE:
                break
            shape = np.shape(x)
            shapes.append((int(shape[0]), int(shape[1]), int(shape[2])))
            ys.append(np.asarray(y, dtype=np.float32))
        labels = np.stack(ys) if ys else np.zeros((0, 0), np.float32)
        read = len(shapes)
        median = _median(shapes)
    return _descriptors(metadata, n, float(round(n / 2)), float(metadata.get_output_size()), median, labels), read


def descriptor_vector(d: Mapping[str, float]) -> np.ndarray:
    """A descriptor dict as a float32 vector in :data:`DESCRIPTOR_KEYS` order.

    Counts and sizes (:data:`COUNT_KEYS`) are ``log1p``-scaled, so that a dataset ten times
    larger is one step away, not ten; flags (:data:`FLAG_KEYS`) stay 0/1.

    Raises
    ------
    AutoDLError
        A missing key, a value that is not a number, a negative count or a flag other than
        0 or 1 (the message names the key).
    """
    out = np.empty(len(DESCRIPTOR_KEYS), dtype=np.float32)
    for i, key in enumerate(DESCRIPTOR_KEYS):
        if key not in d:
            raise AutoDLError(None, f"missing; descriptors need {', '.join(DESCRIPTOR_KEYS)}", field=key)
        try:
            value = float(d[key])
        except (TypeError, ValueError):
            raise AutoDLError(None, f"{d[key]!r} is not a number", field=key) from None
        if key in FLAG_KEYS:
            if value not in (0.0, 1.0):
                raise AutoDLError(None, f"{value!r}: expected a 0/1 flag", field=key)
            out[i] = value
        else:
            if not np.isfinite(value) or value < 0:
                raise AutoDLError(None, f"{value!r}: expected a count >= 0", field=key)
            out[i] = np.log1p(value)
    return out
