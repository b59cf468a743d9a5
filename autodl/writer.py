"""Writing the AutoDL format ("format your own dataset").

The output follows the organizers' ``autodl-contrib`` format tools: one
``sample-<name>-<subset>.tfrecord`` of ``SequenceExample`` records per subset with the
same feature keys and types (context ``id``, ``label_index``, ``label_score``; feature
list ``0_compressed`` holding the encoded file bytes of each frame, or
``0_dense_input``), a ``metadata.textproto`` in the documented field order, the
``<name>.solution`` of the test labels (``%.0f``), and ``<name>_label.name`` /
``<name>_public.info`` beside them.

A dataset is written into a temporary folder and renamed into place at the end, so an
error half-way leaves nothing behind and never damages an existing dataset.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.dataset import RawExample
from autodl.errors import ConversionError
from autodl.labels import LabelsLike, labels_to_matrix
from autodl.metadata import COMPRESSED, DENSE, AutoDLMetadata, MatrixSpec, write_metadata
from autodl.proto import SequenceExample
from autodl.records import atomic_folder
from autodl.tfrecord import write_records

logger = logging.getLogger(__name__)


def check_output_folder(root: str | Path, overwrite: bool) -> Path:
    """Refuse an output folder that exists, unless ``overwrite``; return it as a Path.

    Writers and converters call this before any slow work, so that a run that would be
    refused at the end is refused at once (and :func:`write_dataset` calls it again).

    Raises
    ------
    ConversionError
        ``root`` exists (even empty) and ``overwrite`` is false.
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise ConversionError(root, "already exists; choose another output folder or pass overwrite")
    return root


def check_max_examples(**limits: int | None) -> None:
    """Check example caps such as ``max_train=...``, ``max_test=...``: None or a positive number.

    Raises
    ------
    ConversionError
        A cap below 1, naming the argument.
    """
    for key, value in limits.items():
        if value is not None and value < 1:
            raise ConversionError(None, f"{key}={value}: expected a positive number or None", field=key)


def encode_frame(frame: np.ndarray, image_format: str = "PNG") -> bytes:
    """Encode ``[H, W, C]`` (uint8, or float in [0, 1]) as PNG or JPEG bytes."""
    from PIL import Image

    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    buf = io.BytesIO()
    kwargs: dict[str, Any] = {"quality": 95} if image_format.upper() in ("JPEG", "JPG") else {"compress_level": 3}
    Image.fromarray(arr).save(buf, format=image_format.upper().replace("JPG", "JPEG"), **kwargs)
    return buf.getvalue()


def frame_shape(frame: bytes | np.ndarray) -> tuple[int, int, int | None]:
    """``(H, W, C)`` of an encoded or decoded frame (C is None where the file does not say)."""
    if isinstance(frame, bytes | bytearray):
        from PIL import Image

        with Image.open(io.BytesIO(frame)) as img:
            if img.mode == "P":  # a palette decodes to RGB, or RGBA with transparency
                bands = 4 if "transparency" in img.info else 3
            else:
                bands = len(img.getbands())
            return img.size[1], img.size[0], bands
    arr = np.asarray(frame)
    return arr.shape[0], arr.shape[1], (arr.shape[2] if arr.ndim == 3 else 1)


def serialize_example(ex: RawExample, index: int, fmt: str) -> bytes:
    """The ``SequenceExample`` bytes of one example, with the organizers' feature keys."""
    msg = SequenceExample()
    ctx = msg.context.feature
    ctx["id"].int64_list.value.append(index)
    ctx["label_index"].int64_list.value.extend(ex.label_index)
    ctx["label_score"].float_list.value.extend(ex.label_score)
    if fmt == COMPRESSED:
        fl = msg.feature_lists.feature_list["0_compressed"]
        for f in ex.frames:
            fl.feature.add().bytes_list.value.append(bytes(f))
    else:
        fl = msg.feature_lists.feature_list["0_dense_input"]
        for f in ex.frames:
            fl.feature.add().float_list.value.extend(np.asarray(f, dtype=np.float32).ravel().tolist())
    return msg.SerializeToString()


@dataclass
class _ShapeTracker:
    rows: set[int] = field(default_factory=set)
    cols: set[int] = field(default_factory=set)
    channels: set[int] = field(default_factory=set)
    frames: set[int] = field(default_factory=set)
    count: int = 0

    def add(self, ex: RawExample) -> None:
        self.frames.add(len(ex.frames))
        for f in ex.frames[:1] if len(ex.frames) > 8 else ex.frames:
            h, w, c = frame_shape(f)
            self.rows.add(h)
            self.cols.add(w)
            if c is not None:
                self.channels.add(c)
        self.count += 1

    @staticmethod
    def fixed(values: set[int]) -> int:
        return next(iter(values)) if len(values) == 1 else -1


def write_subset(subset_dir: Path, name: str, subset: str, examples: Iterable[RawExample],
                 output_dim: int, fmt: str = COMPRESSED, num_channels: int | None = None,
                 label_to_index_map: dict[str, int] | None = None,
                 on_example: Callable[[], None] | None = None,
                 is_sequence: bool | None = None) -> AutoDLMetadata:
    """Write one subset folder (records + metadata) and return its metadata."""
    subset_dir.mkdir(parents=True, exist_ok=True)
    shapes = _ShapeTracker()

    def records() -> Iterator[bytes]:
        for i, ex in enumerate(examples):
            for li in ex.label_index:
                if not 0 <= li < output_dim:
                    raise ConversionError(None, f"{subset} example {i} has the class index {li}; "
                                                f"expected 0 <= index < {output_dim}")
            shapes.add(ex)
            if on_example is not None:
                on_example()
            yield serialize_example(ex, i, fmt)

    write_records(subset_dir / f"sample-{name}-{subset}.tfrecord", records())
    channels = num_channels if num_channels is not None else _ShapeTracker.fixed(shapes.channels)
    seq = _ShapeTracker.fixed(shapes.frames) if shapes.count else 1
    spec = MatrixSpec(row_count=_ShapeTracker.fixed(shapes.rows), col_count=_ShapeTracker.fixed(shapes.cols),
                      num_channels=channels, format=fmt, is_sequence_col=False, is_sequence_row=False,
                      has_locality_col=True, has_locality_row=True)
    meta = AutoDLMetadata(sample_count=shapes.count, output_dim=output_dim, matrix_spec=(spec,),
                          is_sequence=(seq != 1) if is_sequence is None else is_sequence,
                          sequence_size=seq,
                          label_to_index_map=dict(label_to_index_map or {}),
                          dataset_name=str(subset_dir))
    write_metadata(meta, subset_dir)
    return meta


def _labelled(frames_iter: Iterable[list[Any]], y: np.ndarray | None) -> Iterator[RawExample]:
    for i, frames in enumerate(frames_iter):
        if y is None:
            yield RawExample(frames, [], [])
        else:
            idx = np.flatnonzero(y[i]).tolist()
            yield RawExample(frames, idx, [float(y[i, j]) for j in idx])


@dataclass
class SubsetData:
    """What to write for one subset: per-example frames and an optional label matrix.

    ``frames`` yields, for each example, a list of frames (encoded bytes, or ``[H, W, C]``
    arrays). ``y`` is ``[N, output_dim]``; ``None`` for unlabelled data. For the test
    subset, ``y`` goes to the ``.solution`` file and the records carry no labels.
    """

    frames: Iterable[list[Any]]
    y: np.ndarray | None
    size: int | None = None


def write_dataset(root: str | Path, name: str, subsets: dict[str, SubsetData], output_dim: int,
                  *, label_names: Sequence[str] | None = None, fmt: str = COMPRESSED,
                  num_channels: int | None = None, domain: str = "image", overwrite: bool = False,
                  progress: Callable[[int], None] | None = None) -> Path:
    """Write a complete AutoDL dataset to ``root`` (``root/<name>.data``, ``root/<name>.solution``).

    Parameters
    ----------
    root:
        The dataset folder to create.
    name:
        The dataset name (file names use it).
    subsets:
        ``train`` and ``test`` are required, ``unlabelled`` optional.
    output_dim:
        The number of classes.
    label_names:
        Class names in index order (written to ``<name>_label.name`` and the label map).
    fmt:
        ``COMPRESSED`` (frames stored as encoded files) or ``DENSE`` (float values).
    overwrite:
        Replace an existing dataset at ``root``.
    progress:
        Called with 1 after each example (e.g. a progress bar's ``update``).
    """
    root = Path(root)
    for required in ("train", "test"):
        if required not in subsets:
            raise ConversionError(root, f"no '{required}' subset given; train and test are required")
    unknown = set(subsets) - {"train", "test", "unlabelled"}
    if unknown:
        raise ConversionError(root, f"unknown subsets {sorted(unknown)}; expected train, test, unlabelled")
    if subsets["test"].y is None:
        raise ConversionError(root, "the test subset needs labels (they become the .solution file)")
    check_output_folder(root, overwrite)
    if fmt not in (COMPRESSED, DENSE):
        raise ConversionError(root, f"format {fmt!r}: expected COMPRESSED or DENSE")
    if label_names is not None and len(label_names) != output_dim:
        raise ConversionError(root, f"{len(label_names)} label names for output_dim={output_dim}")
    label_map = {n: i for i, n in enumerate(label_names)} if label_names is not None else {}

    root.parent.mkdir(parents=True, exist_ok=True)
    with atomic_folder(root) as tmp:
        tmp.mkdir(mode=0o700)  # owner-only, as the writer has always made dataset folders (mkdtemp)
        data_dir = tmp / f"{name}.data"
        counts = {}
        for subset in ("train", "test", "unlabelled"):
            if subset not in subsets:
                continue
            sd = subsets[subset]
            y = sd.y
            if y is not None and y.shape[1] != output_dim:
                raise ConversionError(root, f"{subset} labels have {y.shape[1]} columns; "
                                            f"expected output_dim={output_dim}")
            record_y = y if subset == "train" else None
            meta = write_subset(data_dir / subset, name, subset, _labelled(sd.frames, record_y),
                                output_dim, fmt=fmt, num_channels=num_channels,
                                label_to_index_map=label_map,
                                on_example=(lambda: progress(1)) if progress else None,
                                is_sequence=True if domain == "video" else None)
            if y is not None and meta.sample_count != len(y):
                raise ConversionError(root, f"{subset}: {meta.sample_count} examples but {len(y)} label rows")
            counts[subset] = meta.sample_count
            if subset == "test":
                np.savetxt(tmp / f"{name}.solution", y, fmt="%.0f", delimiter=" ")
        if label_names is not None:
            (tmp / f"{name}_label.name").write_text("".join(f"{n}\n" for n in label_names), encoding="utf-8")
        (tmp / f"{name}_public.info").write_text(
            f"domain : {domain}\nsample_num : {counts['train'] + counts['test']}\nlabel_num : {output_dim}\n")
    logger.info("wrote %s (%s)", root, ", ".join(f"{k}: {v}" for k, v in counts.items()))
    return root


def _encoded_frames(x: np.ndarray | Sequence[np.ndarray], image_format: str, threads: int,
                    chunk: int = 256) -> Iterator[list[bytes]]:
    """Encode the frames of every example, in order, a chunk at a time on ``threads`` threads."""
    def encode_example(ex: np.ndarray) -> list[bytes]:
        ex = np.asarray(ex)
        clip = ex if ex.ndim == 4 else ex[None]
        return [encode_frame(f, image_format) for f in clip]

    with ThreadPoolExecutor(max(1, threads)) as pool:
        for start in range(0, len(x), chunk):
            yield from pool.map(encode_example, [x[i] for i in range(start, min(start + chunk, len(x)))])


def _dense_frames(x: np.ndarray | Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
    for ex in x:
        ex = np.asarray(ex, dtype=np.float32)
        clip = ex if ex.ndim == 4 else ex[None]
        yield [f if f.ndim == 3 else f[..., None] for f in clip]


def _check_images(x: np.ndarray | Sequence[np.ndarray], what: str, fmt: str) -> None:
    """Shapes (of the first examples), channel counts and value ranges a format can store."""
    for i, ex in enumerate(x):
        ex = np.asarray(ex)
        if ex.ndim not in (2, 3, 4):
            raise ConversionError(None, f"{what}[{i}] has {ex.ndim} dimensions; expected an image "
                                        f"[H, W] / [H, W, C] or a video [T, H, W, C]")
        if fmt == COMPRESSED:
            if ex.ndim >= 3 and ex.shape[-1] not in (1, 2, 3, 4):
                raise ConversionError(None, f"{what}[{i}] has {ex.shape[-1]} channels; compressed "
                                            f"frames hold 1, 2, 3 or 4 (use DENSE for more)")
            if ex.dtype != np.uint8 and ex.size and (ex.min() < 0 or ex.max() > 1):
                raise ConversionError(None, f"{what}[{i}] holds values in [{ex.min():g}, {ex.max():g}]; "
                                            f"compressed frames take uint8 or floats in [0, 1] "
                                            f"(use DENSE to store other values as they are)")
        if i >= 8:
            break


def write_arrays(root: str | Path, name: str, x_train: np.ndarray | Sequence[np.ndarray],
                 y_train: LabelsLike, x_test: np.ndarray | Sequence[np.ndarray], y_test: LabelsLike,
                 *, x_unlabelled: np.ndarray | Sequence[np.ndarray] | None = None,
                 num_classes: int | None = None, label_names: Sequence[str] | None = None,
                 fmt: str = COMPRESSED, image_format: str = "PNG", overwrite: bool = False,
                 threads: int | None = None, progress: Callable[[int], None] | None = None) -> Path:
    """Write numpy images (``N x H x W x C``) or videos (``N x T x H x W x C``) as an AutoDL dataset.

    Examples may also be a list of arrays of different sizes. Labels are class indices,
    lists of indices (multi-label) or a 0/1 matrix. Images are uint8, or floats in [0, 1]
    (``COMPRESSED``; stored as PNG, lossless, or JPEG); ``DENSE`` stores float values as
    they are.
    """
    if num_classes is None:
        if label_names is not None:
            num_classes = len(label_names)
        elif isinstance(y_train, np.ndarray) and y_train.ndim == 2:
            num_classes = y_train.shape[1]
        else:
            all_rows = [np.atleast_1d(r) for r in list(y_train) + list(y_test)]
            num_classes = int(max((r.max() for r in all_rows if r.size), default=0)) + 1
    try:
        ytr = labels_to_matrix(y_train, num_classes, "y_train")
        yte = labels_to_matrix(y_test, num_classes, "y_test")
        parts = {"train": (x_train, ytr), "test": (x_test, yte)}
        if x_unlabelled is not None:
            parts["unlabelled"] = (x_unlabelled, None)
        for subset, (x, y) in parts.items():
            _check_images(x, f"x_{subset}", fmt)
            if y is not None and len(x) != len(y):
                raise ConversionError(None, f"x_{subset} has {len(x)} examples but y_{subset} has {len(y)}")
    except ConversionError as exc:  # name the dataset being written
        if exc.path is not None:
            raise
        raise ConversionError(root, exc.message, exc.field) from None
    threads = threads or min(8, os.cpu_count() or 1)
    subsets = {}
    for subset, (x, y) in parts.items():
        frames = _encoded_frames(x, image_format, threads) if fmt == COMPRESSED else _dense_frames(x)
        subsets[subset] = SubsetData(frames, y, size=len(x))
    return write_dataset(root, name, subsets, num_classes, label_names=label_names, fmt=fmt,
                         overwrite=overwrite, progress=progress,
                         domain="video" if np.ndim(x_train[0]) == 4 else "image")
