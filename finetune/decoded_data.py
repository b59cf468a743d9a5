"""The fine-tuning learner's data: the training, validation and test sets, each decoded once.

:class:`DecodedData` is the part of :class:`finetune.learner.FineTuneLearner` that decodes the
data (:func:`finetune.data.load_arrays`), charges the decoding to the clock at the timing table's
price, splits off the validation split (stratified, at most 256 examples; none below
:data:`MIN_VALIDATION`) and keeps the three sets as tensors on the device, ``[N, T, C, H, W]``
(uint8 for compressed data, float32 in [0, 1] for dense data). Where the learner's quick start
applies (:data:`finetune.learner.QUICK_START_PER_CLASS`), a subset of the training records is
decoded first (:meth:`DecodedData.load_part`) and the rest by :meth:`DecodedData.load_train`,
which puts the whole training set together in the order it would have had at once.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from autodl.clock import Clock
from autodl.metadata import AutoDLMetadata
from finetune.data import load_arrays

logger = logging.getLogger(__name__)

MIN_VALIDATION = 30
"""Below this many training examples there is no validation split (see :mod:`finetune.learner`)."""


def median_shape(metadata: AutoDLMetadata, dataset: Any) -> tuple[int, int, int]:
    """``(frames, H, W)`` of the stored examples: the metadata's, or the median of the first
    examples where it varies."""
    t, h, w, _ = metadata.get_tensor_shape()
    if h > 0 and w > 0 and t > 0:
        return t, h, w
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        return tuple(int(v) for v in src[0].shape_summary(src[1], limit=64)["median"])  # type: ignore[return-value]
    shapes = [np.asarray(x).shape[:3] for x, _ in dataset.take(64).as_numpy_iterator()]
    return tuple(int(v) for v in np.median(np.asarray(shapes), 0))  # type: ignore[return-value]


def training_size(h: int, w: int, cap: int, floor: int = 32) -> tuple[int, int]:
    """``(H, W)`` to train at: the larger side brought into ``[min(floor, cap), cap]``, aspect
    ratio kept. Pretrained networks see little in an 8x8 image, so small images are
    enlarged to ``floor`` (the configuration's ``min_input_size``); large ones shrunk to
    ``cap`` (its ``input_size``)."""
    side = max(h, w)
    scale = min(cap, max(min(floor, cap), side)) / side
    return max(8, round(h * scale)), max(8, round(w * scale))


def data_format(metadata: AutoDLMetadata, dataset: Any) -> str:
    """``png``, ``jpeg`` or ``dense``: what decoding the data costs like."""
    if not metadata.is_compressed():
        return "dense"
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        for raw in src[0].iter_raw(src[1], limit=1):
            return "jpeg" if raw.frames[0][:2] == b"\xff\xd8" else "png"
    return "jpeg"


class DecodedData:
    """The training, validation and test sets of one learner, decoded once and kept on the device.

    Parameters
    ----------
    metadata:
        The train set's metadata.
    clock, timing:
        Decoding is charged to ``clock`` at ``timing``'s price (see :mod:`finetune.learner`).
    device:
        The torch device the tensors are kept on.
    frames:
        Frames per clip (1 for images).
    input_size, min_input_size:
        The configuration's largest and smallest training side (:func:`training_size`).
    max_train_examples:
        Training examples decoded at most (a seeded subset stratified by class beyond).
    validation_fraction:
        Share of the training examples held out (at most 256).
    seed:
        Seed of the training subset and of the validation split.
    """

    def __init__(self, metadata: AutoDLMetadata, clock: Clock, timing: Any, *, device: Any, frames: int,
                 input_size: int, min_input_size: int, max_train_examples: int | None,
                 validation_fraction: float, seed: int):
        self.metadata = metadata
        self.clock = clock
        self.timing = timing
        self.device = device
        self.frames = frames
        self.in_chans = metadata.get_num_channels()
        self.input_size = input_size
        self.min_input_size = min_input_size
        self.max_train_examples = max_train_examples
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.size: tuple[int, int] | None = None
        self.source_shape: tuple[int, int, int] | None = None
        self.data_format = "png"
        self.x_train: Any = None
        self.y_train: Any = None
        self.x_val: Any = None
        self.y_val: np.ndarray | None = None
        self.x_test: Any = None
        self.n_examples = 0
        self.multilabel = False
        self._dense_range: tuple[float, float] | None = None
        # the quick start's part of the training set: (records the training set is decoded from,
        # positions of the part among them, its decoded x and y), until the rest is decoded
        self.part: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    @property
    def tiny(self) -> bool:
        """Too few examples for a validation split."""
        return self.x_val is None

    def inspect(self, dataset: Any) -> None:
        """The stored shape, the size to train at and the storage format of the training set."""
        self.source_shape = median_shape(self.metadata, dataset)
        self.size = training_size(*self.source_shape[1:], cap=self.input_size, floor=self.min_input_size)
        self.data_format = data_format(self.metadata, dataset)

    def megavalues(self, n: int) -> float:
        """Millions of values stored in ``n`` examples of the stored shape (frames x H x W x channels)."""
        t, h, w = self.source_shape
        return n * t * h * w * self.in_chans / 1e6

    def charge_decoding(self, n: int) -> None:
        """Charge decoding ``n`` examples of the stored shape and format."""
        self.clock.charge("decode", lambda: self.timing.decode_s(self.data_format, n, self.megavalues(n)))

    def load_part(self, dataset: Any, records: np.ndarray, part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decode the training examples ``records[part]`` first (the quick start's subset; after
        :meth:`inspect`) and keep them until :meth:`load_train` decodes the rest of ``records``."""
        x, y = load_arrays(dataset, self.size, self.frames, indices=records[part])
        self.charge_decoding(len(x))
        self.part = (records, part, x, y)
        return x, y

    def load_train(self, dataset: Any) -> None:
        """Decode the training set (the rest of it after :meth:`load_part`), split off the
        validation split and keep both on the device."""
        import torch

        from autodl.labels import is_multilabel, stratified_split

        if self.part is None:
            if self.size is None:  # (the quick start may have looked and found it does not apply)
                self.inspect(dataset)
            x, y = load_arrays(dataset, self.size, self.frames, limit=self.max_train_examples, seed=self.seed)
            self.charge_decoding(len(x))
        else:  # the quick start decoded part of it: decode the rest, put the whole together
            records, part, x_part, y_part = self.part
            self.part = None
            rest = np.setdiff1d(np.arange(len(records)), part)
            x_rest, y_rest = load_arrays(dataset, self.size, self.frames, indices=records[rest])
            self.charge_decoding(len(x_rest))
            x = np.empty((len(records), *x_part.shape[1:]), x_part.dtype)
            y = np.empty((len(records), *y_part.shape[1:]), y_part.dtype)
            x[part], y[part], x[rest], y[rest] = x_part, y_part, x_rest, y_rest
        self.multilabel = is_multilabel(y)
        n = self.n_examples = len(x)
        n_val = min(256, int(round(n * self.validation_fraction))) if n >= MIN_VALIDATION else 0
        if n_val:  # stratified, so that a rare class is not left out of training
            train, val = stratified_split(y, n_val, seed=self.seed)
        else:
            train, val = np.arange(n), np.arange(0)
        self.x_train, self.y_train = self.to_tensor(x[train]), torch.from_numpy(y[train]).to(self.device)
        if n_val:
            self.x_val, self.y_val = self.to_tensor(x[val]), y[val]
        else:
            logger.info("%d training examples (< %d): no validation split; probes chosen by leave-pair-out, "
                        "no fine-tuning", n, MIN_VALIDATION)
        logger.info("train %d, validation %d examples at %dx%d, %d frame(s), %s", len(train), n_val,
                    *self.size, self.frames, "multi-label" if self.multilabel else "multi-class")

    def load_test(self, dataset: Any) -> None:
        """Decode the test set, the first time only."""
        if self.x_test is None:
            x, _ = load_arrays(dataset, self.size, self.frames)
            self.charge_decoding(len(x))
            self.x_test = self.to_tensor(x)

    def to_tensor(self, x: np.ndarray) -> Any:
        """``[N, T, H, W, C]`` numpy -> ``[N, T, C, H, W]`` tensor on the device (uint8 kept)."""
        import torch

        if x.dtype != np.uint8:  # dense data: scale to [0, 1] with the training range
            if self._dense_range is None:
                lo, hi = float(x.min()), float(x.max())
                self._dense_range = (lo, hi - lo if hi > lo else 1.0)
            x = ((x - self._dense_range[0]) / self._dense_range[1]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))).to(self.device)
