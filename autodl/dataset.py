"""Reading an AutoDL dataset: two views of the same records.

A dataset on disk is ``<root>/<name>.data/{train,test[,unlabelled]}/`` (each with a
``metadata.textproto`` and ``sample*`` TFRecord files of ``SequenceExample`` records)
and ``<root>/<name>.solution`` (the test labels). :class:`AutoDLDataset` opens it and
offers

1. :meth:`AutoDLDataset.tf_dataset`: a ``tf.data.Dataset`` of ``(example, labels)``
   exactly as the challenge's ingestion hands it to a model (``float32 [T, H, W, C]``,
   compressed frames decoded to ``[0, 1]``, ``None`` for sizes that vary; test labels
   all zeros);
2. :meth:`AutoDLDataset.load_numpy`: a fast numpy path for our own training code. It
   parses the records without TensorFlow, decodes every frame once (Pillow, several
   threads) and can resize on the way, so that no later code decodes per epoch. It
   decodes the whole subset, or only chosen records (``indices``: e.g. a stratified
   subset of :meth:`AutoDLDataset.labels`, which reads the labels without touching a
   frame).

The model side never reads the ``.solution`` file: a test subset's labels are what its
records carry (none), as in the challenge. Only :meth:`AutoDLDataset.solution` and
``load_numpy(..., solution=True)``, for the scoring side and tests, read it.

Records are validated as they are read: a label index out of range, a frame that does
not decode, a record count that disagrees with ``sample_count`` or a solution with the
wrong number of rows is a :class:`~autodl.errors.FormatError` naming the file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError, ConversionError, FormatError
from autodl.labels import labels_to_matrix
from autodl.metadata import AutoDLMetadata, read_metadata
from autodl.proto import SequenceExample
from autodl.tfrecord import read_records

logger = logging.getLogger(__name__)

SUBSETS = ("train", "test", "unlabelled")
_PIL_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


@dataclass
class RawExample:
    """One record, parsed but not decoded.

    ``frames`` holds the encoded file bytes of each frame (compressed format) or one
    float32 array per frame (dense and sparse formats, already shaped ``[H, W, C]``).
    """

    frames: list[Any]
    label_index: list[int]
    label_score: list[float]


@dataclass
class ArraySubset:
    """A decoded subset held in memory.

    ``x`` is ``uint8 [N, T, H, W, C]`` for compressed images (divide by 255 for the
    challenge's [0, 1] values) or ``float32`` for dense data, when every example has
    the same shape; otherwise a list of per-example arrays. ``y`` is ``float32
    [N, output_dim]`` (all zeros where labels are unknown).
    """

    x: np.ndarray | list[np.ndarray]
    y: np.ndarray
    metadata: AutoDLMetadata
    has_labels: bool

    def __len__(self) -> int:
        return len(self.y)


def parse_record(raw: bytes, metadata: AutoDLMetadata, path: Path, index: int) -> RawExample:
    """Parse one ``SequenceExample`` record of bundle 0 into a :class:`RawExample`."""
    ex = _parse_message(raw, path, index)
    label_index, label_score = _parse_labels(ex.context.feature, metadata, path, index)
    lists = ex.feature_lists.feature_list
    spec = metadata.matrix_spec[0]
    rows, cols = spec.row_count, spec.col_count
    channels = metadata.get_num_channels(0)
    if spec.format == "COMPRESSED":
        if "0_compressed" not in lists:
            raise FormatError(path, f"record {index} has no feature list '0_compressed' "
                                    f"(metadata says format: COMPRESSED)", field="0_compressed")
        frames = [f.bytes_list.value[0] for f in lists["0_compressed"].feature]
    elif spec.format == "DENSE":
        if "0_dense_input" not in lists:
            raise FormatError(path, f"record {index} has no feature list '0_dense_input' "
                                    f"(metadata says format: DENSE)", field="0_dense_input")
        if rows < 1 or cols < 1:
            raise FormatError(path, "dense data needs fixed row_count and col_count, got -1",
                              field="matrix_spec")
        frames = []
        for f in lists["0_dense_input"].feature:
            values = np.asarray(f.float_list.value, dtype=np.float32)
            if values.size != rows * cols * channels:
                raise FormatError(path, f"record {index}: a frame has {values.size} values; expected "
                                        f"row*col*channels = {rows}*{cols}*{channels}",
                                  field="0_dense_input")
            frames.append(values.reshape(rows, cols, channels))
    else:
        frames = _parse_sparse(lists, rows, cols, channels, path, index)
    if not frames:
        raise FormatError(path, f"record {index} has no frames", field=f"0_{spec.format.lower()}")
    return RawExample(frames, label_index, label_score)


def _parse_labels(ctx: Any, metadata: AutoDLMetadata, path: Path,
                  index: int) -> tuple[list[int], list[float]]:
    """``label_index`` and ``label_score`` of a record's context features, checked."""
    label_index = list(ctx["label_index"].int64_list.value) if "label_index" in ctx else []
    label_score = list(ctx["label_score"].float_list.value) if "label_score" in ctx else []
    for li in label_index:
        if not 0 <= li < metadata.output_dim:
            raise FormatError(path, f"record {index} has label index {li}; expected 0 <= index < "
                                    f"output_dim={metadata.output_dim}", field="label_index")
    if label_score and len(label_score) != len(label_index):
        raise FormatError(path, f"record {index} has {len(label_score)} scores for "
                                f"{len(label_index)} label indices", field="label_score")
    return label_index, label_score


def parse_labels(raw: bytes, metadata: AutoDLMetadata, path: Path,
                 index: int) -> tuple[list[int], list[float]]:
    """``(label_index, label_score)`` of one ``SequenceExample`` record, checked; frames untouched.

    The record is parsed by the protobuf runtime (its frames stay bytes or packed
    floats: measured as fast as skipping them), and no frame is converted or decoded.
    """
    return _parse_labels(_parse_message(raw, path, index).context.feature, metadata, path, index)


def _parse_message(raw: bytes, path: Path, index: int) -> Any:
    ex = SequenceExample()
    try:
        ex.ParseFromString(raw)
    except Exception:  # protobuf's DecodeError differs between backends
        raise FormatError(path, f"record {index} is not a SequenceExample") from None
    return ex


def _parse_sparse(lists: Any, rows: int, cols: int, channels: int, path: Path,
                  index: int) -> list[np.ndarray]:
    keys = ["0_sparse_row_index", "0_sparse_col_index", "0_sparse_channel_index", "0_sparse_value"]
    for k in keys:
        if k not in lists:
            raise FormatError(path, f"record {index} has no feature list '{k}' (metadata says "
                                    f"format: SPARSE)", field=k)
    if rows < 1 or cols < 1:
        raise FormatError(path, "sparse data needs fixed row_count and col_count, got -1",
                          field="matrix_spec")
    frames = []
    for r, c, ch, v in zip(*(lists[k].feature for k in keys), strict=False):
        ri = np.asarray(r.int64_list.value)
        ci = np.asarray(c.int64_list.value)
        chi = np.asarray(ch.int64_list.value)
        vals = np.asarray(v.float_list.value, dtype=np.float32)
        dense = np.zeros((rows, cols, channels), dtype=np.float32)
        if not (len(ri) == len(ci) == len(chi) == len(vals)):
            raise FormatError(path, f"record {index}: sparse index and value lists differ in length",
                              field="0_sparse_value")
        if len(vals) and (ri.max() >= rows or ci.max() >= cols or chi.max() >= channels):
            raise FormatError(path, f"record {index}: a sparse index is outside "
                                    f"[{rows}, {cols}, {channels}]", field="0_sparse_row_index")
        dense[ri, ci, chi] = vals
        frames.append(dense)
    return frames


def decode_frame(data: bytes, channels: int, size: tuple[int, int] | None = None,
                 *, path: Path | str = "", index: int = 0) -> np.ndarray:
    """Decode one encoded image (PNG, JPEG, ...) to ``uint8 [H, W, channels]``.

    With ``size=(H, W)`` the image is resized (bilinear, antialiased) on the way; JPEG
    decoding is then done at reduced scale where Pillow can (``draft``).
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if size is not None and img.format == "JPEG":
                img.draft(img.mode, (size[1], size[0]))
            if img.mode.startswith("I"):  # 16/32-bit greyscale: keep the high byte
                arr = np.asarray(img).astype(np.uint32)
                shift = 8 if arr.max(initial=0) > 255 else 0
                img = Image.fromarray((arr >> shift).astype(np.uint8))
            mode = _PIL_MODES.get(channels)
            if mode is None:
                raise FormatError(path, f"record {index}: num_channels={channels}; compressed frames "
                                        f"decode to 1, 2, 3 or 4 channels", field="num_channels")
            if img.mode != mode:
                img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise FormatError(path, f"record {index}: a frame does not decode as an image ({exc})",
                          field="0_compressed") from None
    return arr.reshape(arr.shape[0], arr.shape[1], channels)


def _resize_float(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == size:
        return frame
    from PIL import Image

    chans = [np.asarray(Image.fromarray(frame[..., c]).resize((size[1], size[0]),
                                                              Image.Resampling.BILINEAR))
             for c in range(frame.shape[-1])]
    return np.stack(chans, axis=-1).astype(np.float32)


def read_solution(path: str | Path) -> np.ndarray:
    """Read a ``.solution`` file: one row of space-separated labels per test example."""
    path = Path(path)
    try:
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        raise FormatError(path, "not found") from None
    if not rows:
        return np.zeros((0, 0), dtype=np.float64)
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise FormatError(path, f"row {i + 1} has {len(r)} values; row 1 has {width}")
    try:
        return np.asarray(rows, dtype=np.float64)
    except ValueError:
        raise FormatError(path, "holds a value that is not a number") from None


class AutoDLDataset:
    """An AutoDL dataset folder (``<root>/<name>.data`` and ``<root>/<name>.solution``).

    Parameters
    ----------
    root:
        The dataset folder, or its ``<name>.data`` folder.
    """

    def __init__(self, root: str | Path):
        root = Path(root)
        if root.name.endswith(".data") and root.is_dir():
            root = root.parent
        if not root.is_dir():
            raise FormatError(root, "not a folder; expected an AutoDL dataset folder holding <name>.data/")
        data_dirs = sorted(p for p in root.iterdir() if p.is_dir() and p.name.endswith(".data"))
        if len(data_dirs) != 1:
            found = ", ".join(p.name for p in data_dirs) or "none"
            raise FormatError(root, f"expected exactly one <name>.data folder, found {found}")
        self.root = root
        self.data_dir = data_dirs[0]
        self.name = self.data_dir.name[: -len(".data")]

    def __repr__(self) -> str:
        return f"AutoDLDataset({str(self.root)!r})"

    # --- files ------------------------------------------------------------------------
    def subset_dir(self, subset: str) -> Path:
        if subset not in SUBSETS:
            raise ValueError(f"subset={subset!r}: expected one of {SUBSETS}")
        return self.data_dir / subset

    @property
    def subsets(self) -> list[str]:
        return [s for s in SUBSETS if (self.data_dir / s).is_dir()]

    @property
    def solution_path(self) -> Path:
        return self.root / f"{self.name}.solution"

    def record_files(self, subset: str) -> list[Path]:
        d = self.subset_dir(subset)
        files = sorted(p for p in d.glob("sample*") if p.is_file())
        if not files:
            raise FormatError(d, "holds no sample* TFRecord file")
        return files

    def metadata(self, subset: str = "train") -> AutoDLMetadata:
        if subset not in self._metadata:
            d = self.subset_dir(subset)
            if not d.is_dir():
                raise FormatError(d, f"not found; this dataset has {self.subsets}")
            meta = read_metadata(d)
            if subset != "train" and (self.data_dir / "train").is_dir():
                train = self.metadata("train")
                if meta.output_dim != train.output_dim:
                    raise FormatError(d / "metadata.textproto",
                                      f"{meta.output_dim}, but the train subset's says {train.output_dim}; every "
                                      f"subset has the same classes", field="output_dim")
            self._metadata[subset] = meta
        return self._metadata[subset]

    @cached_property
    def _metadata(self) -> dict[str, AutoDLMetadata]:
        return {}

    def label_names(self) -> list[str] | None:
        """Class names from ``<name>_label.name``, else from the label map, else None."""
        path = self.root / f"{self.name}_label.name"
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                raise FormatError(path, "not UTF-8 text; expected one class name per line") from None
            return [line.strip() for line in text.splitlines() if line.strip()]
        return self.metadata("train").label_names()

    def solution(self) -> np.ndarray:
        """The test labels, checked against the test metadata."""
        sol = read_solution(self.solution_path)
        meta = self.metadata("test")
        if sol.shape[0] != meta.sample_count:
            raise FormatError(self.solution_path, f"{sol.shape[0]} rows; the test subset has "
                                                  f"sample_count={meta.sample_count}")
        if sol.size and sol.shape[1] != meta.output_dim:
            raise FormatError(self.solution_path, f"{sol.shape[1]} columns; expected "
                                                  f"output_dim={meta.output_dim}")
        return sol

    # --- raw records --------------------------------------------------------------------
    def _records(self, subset: str, limit: int | None = None) -> Iterator[tuple[Path, int, bytes]]:
        """``(file, position, record bytes)`` of each record of ``subset`` in order.

        Checks the count against ``sample_count`` at the end, unless ``limit`` stops early.
        """
        meta = self.metadata(subset)
        n = 0
        last = None
        for path in self.record_files(subset):
            last = path
            for raw in read_records(path):
                if limit is not None and n >= limit:
                    return
                yield path, n, raw
                n += 1
        if n != meta.sample_count:
            md = self.subset_dir(subset) / "metadata.textproto"
            raise FormatError(md, f"says {meta.sample_count} but {last.parent if last else ''} holds "
                                  f"{n} records", field="sample_count")

    def iter_raw(self, subset: str, limit: int | None = None) -> Iterator[RawExample]:
        """Parse the records of ``subset`` in order (no decoding), checking the count."""
        meta = self.metadata(subset)
        for path, i, raw in self._records(subset, limit):
            yield parse_record(raw, meta, path, i)

    def count_records(self, subset: str) -> int:
        return sum(1 for p in self.record_files(subset) for _ in read_records(p, verify=False))

    def labels(self, subset: str = "train") -> np.ndarray:
        """The labels the records of ``subset`` carry, read without converting or decoding a frame.

        Cheap enough to call before choosing which records to decode (``load_numpy(...,
        indices=...)``).

        Parameters
        ----------
        subset:
            ``train``, ``test`` or ``unlabelled``.

        Returns
        -------
        numpy.ndarray
            ``float32 [sample_count, output_dim]``: 1 (or the record's ``label_score``) at
            each ``label_index``. Test records carry no labels: all zeros there (the test
            labels are in the ``.solution`` file, which this never reads; see
            :meth:`solution`).

        Raises
        ------
        FormatError
            A record that does not parse, a label index out of range, or a record count
            that disagrees with ``sample_count``.
        """
        meta = self.metadata(subset)
        return self._label_matrix(subset, [parse_labels(raw, meta, path, i)
                                           for path, i, raw in self._records(subset)])

    def _label_matrix(self, subset: str, labels: Sequence[tuple[list[int], list[float]]]) -> np.ndarray:
        """The ``[N, output_dim]`` matrix of records' ``(label_index, label_score)``."""
        rows = [dict(zip(index, score or [1.0] * len(index), strict=True)) for index, score in labels]
        try:
            return labels_to_matrix(rows, self.metadata(subset).output_dim)
        except ConversionError as exc:  # a score outside [0, 1]; indices are checked when parsed
            raise FormatError(self.subset_dir(subset), exc.message, field="label_score") from None

    # --- numpy view ---------------------------------------------------------------------
    def load_numpy(self, subset: str = "train", size: int | tuple[int, int] | None = None,
                   limit: int | None = None, num_threads: int | None = None, *,
                   indices: Sequence[int] | np.ndarray | None = None,
                   solution: bool = False) -> ArraySubset:
        """Decode ``subset``, or some of its examples, once into memory.

        Parameters
        ----------
        subset:
            ``train``, ``test`` or ``unlabelled``.
        size:
            Resize every frame to ``(H, W)`` (an int means square) on the way; ``None``
            keeps the stored size.
        limit:
            Read only the first ``limit`` examples (the count is then not checked). For a
            representative subset use ``indices`` (e.g. from
            :func:`autodl.labels.stratified_subset` of :meth:`labels`).
        num_threads:
            Decoding threads (default: the CPU count, at most 8).
        indices:
            Decode only the examples at these positions (0-based, in record order), in
            the order given; the other records are read but neither parsed nor decoded.
        solution:
            Take the test labels from the ``.solution`` file (``subset="test"`` only).
            Only the scoring side and tests may ask for them; by default a test subset's
            ``y`` is what its records carry (all zeros), as a model sees it.

        Returns
        -------
        ArraySubset
            ``x``, ``y`` (rows in the order of ``indices``), the metadata and whether
            ``y`` holds labels.

        Raises
        ------
        FormatError
            A record or frame that does not parse or decode, a count that disagrees
            with ``sample_count``, or (with ``solution``) a bad ``.solution`` file.
        AutoDLError
            ``indices`` out of range or repeated, ``indices`` with ``limit``, or
            ``solution`` for a subset other than ``test``.
        """
        meta = self.metadata(subset)
        if isinstance(size, int):
            size = (size, size)
        if solution and subset != "test":
            raise AutoDLError(self.solution_path, f"holds the test labels; solution=True was asked "
                                                  f"for subset={subset!r}", field="solution")
        if indices is None:
            records = [(path, i, parse_record(raw, meta, path, i))
                       for path, i, raw in self._records(subset, limit)]
        else:
            if limit is not None:
                raise AutoDLError(None, "give either limit (the first examples) or indices, not both",
                                  field="indices")
            wanted = self._check_indices(subset, indices)
            chosen = {}
            for path, i, raw in self._records(subset):
                if i in wanted:
                    chosen[i] = (path, i, parse_record(raw, meta, path, i))
            records = [chosen[i] for i in np.asarray(indices, dtype=np.int64).tolist()]
        raws = [r for _, _, r in records]
        channels = meta.get_num_channels(0)
        y = self._label_matrix(subset, [(r.label_index, r.label_score) for r in raws])
        has_labels = subset == "train" or any(r.label_index for r in raws)
        if solution:
            sol = self.solution()
            positions = [i for _, i, _ in records]
            y = sol[positions].astype(np.float32).reshape(len(records), meta.output_dim)
            has_labels = True

        if meta.is_compressed(0):
            def decode(k: int) -> np.ndarray:
                path, i, raw = records[k]
                return np.stack([decode_frame(f, channels, size, path=path, index=i) for f in raw.frames])
            threads = num_threads or min(8, os.cpu_count() or 1)
            sizes = [len(r.frames[0]) for r in raws[:64]]
            # measured on 2 cores: threads pay off only for large files (photos), not 32x32 PNGs
            small = num_threads is None and sizes and sum(sizes) / len(sizes) < 16384
            if threads > 1 and len(raws) > 64 and not small:  # tiny files decode faster in one thread
                # one task per chunk of examples: a future per image costs more than
                # decoding a small image (Pillow releases the GIL while it decodes)
                step = max(32, -(-len(raws) // (4 * threads)))
                chunks = [range(i, min(i + step, len(raws))) for i in range(0, len(raws), step)]
                with ThreadPoolExecutor(threads) as pool:
                    xs = [x for part in pool.map(lambda c: [decode(k) for k in c], chunks) for x in part]
            else:
                xs = [decode(k) for k in range(len(raws))]
        else:
            xs = [np.stack([f if size is None else _resize_float(f, size) for f in r.frames])
                  for r in raws]
        return ArraySubset(x=_stack_if_uniform(xs), y=y, metadata=meta, has_labels=has_labels)

    def _check_indices(self, subset: str, indices: Sequence[int] | np.ndarray) -> set[int]:
        arr = np.asarray(indices)
        where = self.subset_dir(subset)
        count = self.metadata(subset).sample_count
        if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
            raise AutoDLError(where, f"indices of shape {arr.shape} and dtype {arr.dtype}; expected "
                                     f"a list of record positions", field="indices")
        if arr.size and (arr.min() < 0 or arr.max() >= count):
            bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
            raise AutoDLError(where, f"index {bad} is out of range; expected 0 <= index < "
                                     f"sample_count={count}", field="indices")
        wanted = set(arr.tolist())
        if len(wanted) != arr.size:
            raise AutoDLError(where, "holds a record position twice in indices; expected distinct "
                                     "positions", field="indices")
        return wanted

    def shape_summary(self, subset: str = "train", limit: int = 100, *,
                      check_metadata: bool = False) -> dict[str, Any]:
        """Median, min and max frame shape over the first ``limit`` examples (decoded headers only).

        ``(T, H, W)`` each; ``None`` for a subset without examples. A frame whose header does
        not read as an image is a :class:`FormatError`; with ``check_metadata``, so is a
        frame whose size contradicts a fixed ``row_count`` / ``col_count`` of the metadata.
        """
        from PIL import Image, UnidentifiedImageError

        meta = self.metadata(subset)
        rows, cols = meta.get_matrix_size(0)
        md = self.subset_dir(subset) / "metadata.textproto"
        shapes = []
        for path, i, raw in self._records(subset, limit):
            r = parse_record(raw, meta, path, i)
            f = r.frames[0]
            if isinstance(f, bytes):
                try:
                    with Image.open(io.BytesIO(f)) as img:
                        shape = (len(r.frames), img.size[1], img.size[0])
                except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
                    raise FormatError(path, f"record {i}: a frame does not decode as an image ({exc})",
                                      field="0_compressed") from None
            else:
                shape = (len(r.frames), *f.shape[:2])
            if check_metadata:
                for name, fixed, got in (("row_count", rows, shape[1]), ("col_count", cols, shape[2])):
                    if fixed > 0 and got != fixed:
                        raise FormatError(md, f"{fixed}, but record {i} of {path.name} has a frame of {shape[1]}x"
                                              f"{shape[2]} pixels (rows x columns)", field=f"matrix_spec[0].{name}")
            shapes.append(shape)
        if not shapes:
            return {"examples_seen": 0, "median": None, "min": None, "max": None,
                    "channels": meta.get_num_channels(0)}
        arr = np.asarray(shapes)
        return {"examples_seen": len(shapes), "median": tuple(int(v) for v in np.median(arr, 0)),
                "min": tuple(int(v) for v in arr.min(0)), "max": tuple(int(v) for v in arr.max(0)),
                "channels": meta.get_num_channels(0)}

    def check(self, subsets: Sequence[str] = ("train", "test"), *, solution: bool = True) -> dict[str, int]:
        """Read every record of ``subsets`` (those present; train and test are required) and,
        with ``solution``, the solution, without decoding a frame, before a model is run on
        the dataset.

        Checks each TFRecord's framing and checksums, that every record parses and its labels
        are in range, that the counts agree with ``sample_count``, that train and test are not
        empty, and the ``.solution`` against the test subset. Returns the record count of
        each subset checked.

        Raises
        ------
        FormatError
            The first problem found, naming the file and the field.
        """
        counts = {}
        for subset in subsets:
            if subset not in ("train", "test") and subset not in self.subsets:
                continue  # an optional subset (unlabelled) this dataset does not have
            meta = self.metadata(subset)
            counts[subset] = 0
            for path, i, raw in self._records(subset):  # framing, checksums and, at the end, the count
                parse_labels(raw, meta, path, i)  # the record parses and its labels are in range
                counts[subset] += 1
            if subset in ("train", "test") and counts[subset] == 0:
                raise FormatError(self.subset_dir(subset) / "metadata.textproto",
                                  f"0 examples in the {subset} subset; a model needs at least one "
                                  f"{'training' if subset == 'train' else 'test'} example", field="sample_count")
        if solution and "test" in counts:
            self.solution()
        return counts

    # --- tf.data view -------------------------------------------------------------------
    def tf_dataset(self, subset: str = "train") -> Any:
        """The ``tf.data.Dataset`` the challenge's ingestion hands a model for ``subset``."""
        return make_tf_dataset(self.record_files(subset), self.metadata(subset))


def _stack_if_uniform(xs: Sequence[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    if not xs:
        return np.zeros((0, 1, 1, 1, 1), dtype=np.uint8)
    first = xs[0].shape
    if all(x.shape == first for x in xs):
        return np.stack(xs)
    return list(xs)


def configure_tensorflow(threads: int = 1) -> Any:
    """Import TensorFlow quietly, with few threads and no GPU (it only decodes here)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules and "triton" not in sys.modules \
            and importlib.util.find_spec("triton") is not None:
        # triton's native library (loaded by torch's optimizers through torch._dynamo)
        # segfaults when it is loaded after TensorFlow's in one process (clashing LLVM
        # symbols); loaded before, both work. Measured with torch 2.14.1 / TF 2.21.
        import triton  # noqa: F401
    import tensorflow as tf

    try:
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # already initialised: keep what is set
        pass
    return tf


def make_tf_dataset(files: Sequence[Path], meta: AutoDLMetadata) -> Any:
    """Build the challenge's ``tf.data.Dataset`` of ``(example, labels)`` for TFRecord ``files``.

    Mirrors the organizers' ``AutoDLDataset._parse_function``: compressed frames decoded
    with ``tf.image.decode_image`` to ``num_channels`` and converted to float32 in [0, 1],
    dense frames reshaped to ``[T, H, W, C]``, sparse frames scattered into a dense
    tensor, labels densified from ``label_index``/``label_score``.
    """
    tf = configure_tensorflow()
    spec = meta.matrix_spec[0]
    rows = spec.row_count if spec.row_count > 0 else None
    cols = spec.col_count if spec.col_count > 0 else None
    channels = meta.get_num_channels(0)
    seq = meta.sequence_size if meta.sequence_size > 0 else None
    output_dim = meta.output_dim

    if spec.format == "COMPRESSED":
        seq_features = {"0_compressed": tf.io.VarLenFeature(tf.string)}
    elif spec.format == "DENSE":
        if rows is None or cols is None:
            raise FormatError(files[0], "dense data needs fixed row_count and col_count",
                              field="matrix_spec")
        seq_features = {"0_dense_input": tf.io.FixedLenSequenceFeature([rows * cols * channels],
                                                                       dtype=tf.float32)}
    else:
        if rows is None or cols is None:
            raise FormatError(files[0], "sparse data needs fixed row_count and col_count",
                              field="matrix_spec")
        seq_features = {k: tf.io.VarLenFeature(tf.int64) for k in
                        ("0_sparse_row_index", "0_sparse_col_index", "0_sparse_channel_index")}
        seq_features["0_sparse_value"] = tf.io.VarLenFeature(tf.float32)

    def decode(data: Any) -> Any:
        img = tf.io.decode_image(data, channels=channels, dtype=tf.float32, expand_animations=False)
        img.set_shape([None, None, channels])
        return img

    def parse(proto: Any) -> tuple[Any, Any]:
        context, features = tf.io.parse_single_sequence_example(
            proto,
            context_features={"label_index": tf.io.VarLenFeature(tf.int64),
                              "label_score": tf.io.VarLenFeature(tf.float32)},
            sequence_features=seq_features)
        if spec.format == "COMPRESSED":
            frames = features["0_compressed"].values
            x = tf.map_fn(decode, frames, fn_output_signature=tf.TensorSpec([None, None, channels],
                                                                            tf.float32))
        elif spec.format == "DENSE":
            x = tf.reshape(features["0_dense_input"], [-1, rows, cols, channels])
        else:
            ri = features["0_sparse_row_index"]
            idx = tf.stack([ri.indices[:, 0], ri.values,
                            features["0_sparse_col_index"].values,
                            features["0_sparse_channel_index"].values], axis=1)
            n_frames = tf.cast(ri.dense_shape[0], tf.int64)
            x = tf.scatter_nd(idx, features["0_sparse_value"].values,
                              tf.stack([n_frames, rows, cols, channels]))
        x.set_shape([seq, rows, cols, channels])
        index = context["label_index"].values
        score = context["label_score"].values
        score = tf.cond(tf.size(score) > 0, lambda: score, lambda: tf.ones_like(index, tf.float32))
        y = tf.scatter_nd(tf.expand_dims(index, 1), score, [output_dim])
        return x, y

    ds = tf.data.TFRecordDataset([str(f) for f in files])
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def dataset_fingerprint(path: str | Path) -> str:
    """SHA-256 over the relative path and size of the data files of an AutoDL dataset folder
    (``*.data/`` and ``*.solution``; notes written beside them do not count): the same dataset
    in another folder or on another machine has the same fingerprint."""
    root = Path(path)
    h = hashlib.sha256()
    files = [p for p in root.rglob("*") if p.is_file() and (p.suffix == ".solution" or any(
        part.endswith(".data") for part in p.relative_to(root).parts[:-1]))]
    for f in sorted(files):
        h.update(f"{f.relative_to(root).as_posix()}\0{f.stat().st_size}\n".encode())
    return h.hexdigest()
