"""Converting raw data into the AutoDL format ("format your own dataset").

Two converters, after the organizers' ``autodl-contrib`` tools (``format_image``,
``format_video``):

- :func:`convert_image_folder`: a folder of image files (or videos, or folders of video
  frames) with a ``labels.csv`` naming each file and its labels. Image files are stored
  as their original encoded bytes, never re-encoded; video files are decoded with PyAV
  and their frames stored as JPEG.
- :func:`convert_tfds`: a dataset of tensorflow-datasets (``tfds.load``), images stored
  as PNG.

Numpy arrays are written by :func:`autodl.writer.write_arrays`; the built-in offline
datasets are in :mod:`autodl.sources`.

``labels.csv`` (one row per example, a header row first)::

    FileName,Labels[,subset]                  Labels: space-separated class indices
    FileName,LabelConfidencePairs[,subset]    pairs "index confidence", space-separated

``FileName`` is relative to the folder; an empty label cell means "no label". ``subset``
(``train``, ``test`` or ``unlabelled``) places each row; without it the labelled rows are
split at random (seeded and stratified by label, :func:`autodl.labels.stratified_split`)
and the rows without labels become the unlabelled subset. An
optional ``label.name`` file (one class name per line) names the classes and fixes
``output_dim``; without it ``output_dim`` is the largest class index plus one.

Every row is checked before anything is written, and the dataset is written into a
temporary folder and renamed into place (:func:`autodl.writer.write_dataset`), so a bad
input leaves nothing behind. Each image is decoded once on the way (a JPEG at reduced
scale), so that a damaged file is refused here; images above :data:`MAX_IMAGE_PIXELS`
are refused. A row that repeats an earlier one (same file, labels and subset) is dropped
with a warning; a file listed again with other labels or another subset is refused, and
so are labelled rows that all have the same single class. Greyscale, RGB and RGBA images
may be mixed: the dataset then has 3 channels (each image converted when it is read).
"""

from __future__ import annotations

import csv
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import ConversionError
from autodl.labels import labels_to_matrix, stratified_split, stratified_subset
from autodl.writer import SubsetData, check_max_examples, check_output_folder, encode_frame, write_dataset

logger = logging.getLogger(__name__)

LABELS_CSV = "labels.csv"
LABEL_NAME_FILE = "label.name"
SUBSET_VALUES = ("train", "test", "unlabelled")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
VIDEO_EXTENSIONS = (".avi", ".mp4", ".mov", ".mkv")
LABEL_COLUMNS = ("Labels", "LabelConfidencePairs")
VIDEO_FRAME_FORMAT = "JPEG"
MAX_IMAGE_PIXELS = 89_478_485
"""Images above this many pixels are refused (Pillow's default decompression-bomb limit,
``PIL.Image.MAX_IMAGE_PIXELS``: a 10000x10000 PNG of one colour is a few KB on disk but
300 MB decoded)."""

# Pillow image mode -> channels after decoding (palette images decode to RGB).
_MODE_CHANNELS = {"1": 1, "L": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1, "LA": 2,
                  "La": 2, "P": 3, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3, "CMYK": 3,
                  "RGBA": 4, "RGBa": 4, "PA": 4}


@dataclass
class _Row:
    """One checked row of ``labels.csv``."""

    number: int                     # 1-based data row number (the header is not counted)
    line: int                       # line of labels.csv the row ends on
    file_name: str
    path: Path
    kind: str = "image"             # image, video (a video file) or frames (a folder of frames)
    labels: dict[int, float] = field(default_factory=dict)
    subset: str | None = None
    frame_paths: list[Path] = field(default_factory=list)
    channels: int = 3

    def where(self) -> str:
        return f"row {self.number} (line {self.line})"


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``frame2`` before ``frame10`` (equal to plain order when zero-padded)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _import_av(path: Path) -> Any:
    try:
        import av
    except ImportError:
        raise ConversionError(path, "is a video file; reading videos needs PyAV: pip install av "
                                    "(or pip install autodl-meta[video])", field="FileName") from None
    return av


def read_label_names(path: str | Path) -> list[str]:
    """Read class names from a ``label.name`` file (one per line, blank lines skipped).

    Parameters
    ----------
    path:
        The file to read.

    Returns
    -------
    list of str
        The names in index order.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConversionError(path, "is not UTF-8 text; expected one class name per line") from None
    names = [line.strip() for line in text.splitlines() if line.strip()]
    if not names:
        raise ConversionError(path, "holds no class name; expected one class name per line")
    return names


def _parse_label_cell(text: str, column: str, row: _Row, csv_path: Path,
                      num_names: int | None) -> dict[int, float]:
    """Parse a ``Labels`` or ``LabelConfidencePairs`` cell into ``{index: score}``."""
    tokens = text.replace(",", " ").split()
    if column == "Labels":
        pairs = [(t, "1") for t in tokens]
    else:
        if len(tokens) % 2:
            raise ConversionError(csv_path, f"{row.where()}: {text!r} for {row.file_name!r} has "
                                            f"{len(tokens)} values; expected pairs 'index confidence'",
                                  field=column)
        pairs = list(zip(tokens[0::2], tokens[1::2], strict=True))
    labels: dict[int, float] = {}
    for idx_text, score_text in pairs:
        try:
            idx = int(idx_text)
        except ValueError:
            raise ConversionError(csv_path, f"{row.where()}: the label {idx_text!r} of {row.file_name!r} "
                                            f"is not an integer class index", field=column) from None
        if idx < 0:
            raise ConversionError(csv_path, f"{row.where()}: the label {idx} of {row.file_name!r} is "
                                            f"negative; expected a class index >= 0", field=column)
        if num_names is not None and idx >= num_names:
            raise ConversionError(csv_path, f"{row.where()}: the label {idx} of {row.file_name!r} is "
                                            f">= {num_names}, the number of class names in "
                                            f"{LABEL_NAME_FILE}", field=column)
        try:
            score = float(score_text)
        except ValueError:
            score = math.nan
        if not 0.0 <= score <= 1.0:
            raise ConversionError(csv_path, f"{row.where()}: the confidence {score_text!r} of label "
                                            f"{idx} of {row.file_name!r} is not a number in [0, 1]",
                                  field=column)
        labels[idx] = max(labels.get(idx, 0.0), score)
    return labels


def _resolve(folder: Path, name: str, row: _Row, csv_path: Path) -> Path:
    """The path of ``name`` inside ``folder``; rejects absolute paths and escapes without reading."""
    if not name:
        raise ConversionError(csv_path, f"{row.where()}: empty file name", field="FileName")
    if Path(name).is_absolute() or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise ConversionError(csv_path, f"{row.where()}: {name!r} is an absolute path; file names "
                                        f"are relative to {folder}", field="FileName")
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # symlink loops
        inside = False
    if not inside:
        raise ConversionError(csv_path, f"{row.where()}: {name!r} points outside {folder}; file "
                                        f"names must stay inside the folder", field="FileName")
    if not path.exists():
        raise ConversionError(csv_path, f"{row.where()}: the file {name!r} does not exist in {folder}",
                              field="FileName")
    return path


def _image_channels(path: Path, row: _Row, csv_path: Path) -> int:
    """Check that the image decodes (a JPEG at reduced scale) and is at most
    :data:`MAX_IMAGE_PIXELS`; return its channel count after decoding."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, in one line
            with Image.open(path) as img:
                mode, (width, height) = img.mode, img.size
                if width * height > MAX_IMAGE_PIXELS:
                    raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} is {width}x{height} pixels, "
                                                    f"more than {MAX_IMAGE_PIXELS} (Pillow's decompression-bomb "
                                                    f"limit); resize it first", field="FileName")
                transparent = mode == "P" and "transparency" in img.info
                img.draft(mode, (64, 64))  # a JPEG decodes at 1/8 scale, still reading all of its data
                img.load()  # a truncated or damaged file fails here, not in a model's first epoch
    except ConversionError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} is not an image Pillow can "
                                        f"read ({exc})", field="FileName") from None
    return 4 if transparent else _MODE_CHANNELS.get(mode, 3)


def _label_text(labels: dict[int, float]) -> str:
    return " ".join(str(i) if s == 1.0 else f"{i} {s:g}" for i, s in sorted(labels.items())) or "none"


def _is_repeat(row: _Row, seen: dict[Path, _Row], csv_path: Path, label_column: str) -> bool:
    """Whether ``row`` names a file an earlier row named with the same labels and subset (it is
    then dropped, with a warning); a file named again with other labels or another subset is refused."""
    key = row.path.resolve()
    first = seen.setdefault(key, row)
    if first is row:
        return False
    if first.labels == row.labels and first.subset == row.subset:
        logger.warning("%s %s: %r repeats %s; the duplicate row is dropped", csv_path, row.where(), row.file_name,
                       first.where())
        return True
    if first.labels != row.labels:
        raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} is listed again with the label "
                                        f"{_label_text(row.labels)!r}, {first.where()} gives "
                                        f"{_label_text(first.labels)!r}; a file is one example with one set of "
                                        f"labels", field=label_column)
    raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} is listed again in subset {row.subset!r}, "
                                    f"{first.where()} puts it in {first.subset!r}; a file is one example in one "
                                    f"subset", field="subset")


def _check_media(row: _Row, csv_path: Path) -> None:
    """Classify the row's file (image, video file, folder of frames) and check it opens."""
    path = row.path
    if path.is_dir():
        frames = sorted((p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                         and p.suffix.lower() in IMAGE_EXTENSIONS), key=lambda p: natural_key(p.name))
        if not frames:
            raise ConversionError(csv_path, f"{row.where()}: the folder {row.file_name!r} holds no image "
                                            f"file ({', '.join(IMAGE_EXTENSIONS)}); a folder is one "
                                            f"video, its frames in sorted order", field="FileName")
        root = csv_path.parent.resolve()
        outside = [p for p in frames if not p.resolve().is_relative_to(root)]
        if outside:  # a frame that is a symbolic link leading out of the dataset's folder
            raise ConversionError(csv_path, f"{row.where()}: the frame {outside[0].name!r} of {row.file_name!r} "
                                            f"points outside {root}; file names must stay inside the folder",
                                  field="FileName")
        row.kind, row.frame_paths = "frames", frames
        channels = {_image_channels(p, row, csv_path) for p in frames}
        row.channels = channels.pop() if len(channels) == 1 else 3
    elif path.suffix.lower() in VIDEO_EXTENSIONS:
        row.kind, row.channels = "video", 3
        av = _import_av(path)
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} has no video "
                                                    f"stream", field="FileName")
        except ConversionError:
            raise
        except Exception as exc:  # av's errors differ between versions
            raise ConversionError(csv_path, f"{row.where()}: {row.file_name!r} does not open as a "
                                            f"video ({exc})", field="FileName") from None
    else:
        row.kind = "image"
        row.channels = _image_channels(path, row, csv_path)


def decode_video(path: str | Path) -> Iterator[np.ndarray]:
    """Decode the frames of a video file with PyAV.

    Parameters
    ----------
    path:
        A video file (``.avi``, ``.mp4``, ``.mov``, ``.mkv``, ...).

    Yields
    ------
    numpy.ndarray
        Each frame as ``uint8 [H, W, 3]`` (RGB), in order.
    """
    path = Path(path)
    av = _import_av(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
    except ConversionError:
        raise
    except Exception as exc:
        raise ConversionError(path, f"does not decode as a video ({exc})", field="FileName") from None


def read_labels_csv(csv_path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and ``(line, cells)`` of each non-empty row of ``labels.csv``."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = [h.strip() for h in next(reader, [])]
            rows = [(reader.line_num, cells) for cells in reader if any(c.strip() for c in cells)]
    except UnicodeDecodeError:
        raise ConversionError(csv_path, "is not UTF-8 text") from None
    except csv.Error as exc:
        raise ConversionError(csv_path, f"is not a valid CSV file ({exc})") from None
    return header, rows


def _example_frames(row: _Row) -> list[bytes]:
    if row.kind == "image":
        return [row.path.read_bytes()]
    if row.kind == "frames":
        return [p.read_bytes() for p in row.frame_paths]
    frames = [encode_frame(f, VIDEO_FRAME_FORMAT) for f in decode_video(row.path)]
    if not frames:
        raise ConversionError(row.path, "holds no video frame", field="FileName")
    return frames


def _check_test_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ConversionError(None, f"test_fraction={test_fraction}: expected a number in (0, 1)",
                              field="test_fraction")


def convert_image_folder(folder: str | Path, out_root: str | Path, name: str | None = None, *,
                         test_fraction: float = 0.2, seed: int = 42, overwrite: bool = False,
                         progress: Callable[[int], None] | None = None) -> Path:
    """Convert a folder of images (or videos) with a ``labels.csv`` into an AutoDL dataset.

    Parameters
    ----------
    folder:
        The folder holding the files and ``labels.csv`` (columns ``FileName`` and
        ``Labels`` or ``LabelConfidencePairs``, optionally ``subset``), and optionally
        ``label.name``.
    out_root:
        The dataset folder to create (``out_root/<name>.data``, ``out_root/<name>.solution``).
    name:
        The dataset name; default: the folder's name.
    test_fraction:
        Without a ``subset`` column, the fraction of the labelled rows that become the test
        subset (at least one row each for train and test).
    seed:
        Seed of that random split (stratified by label).
    overwrite:
        Replace an existing dataset at ``out_root``.
    progress:
        Called with 1 after each example written.

    Returns
    -------
    pathlib.Path
        ``out_root``.

    Raises
    ------
    ConversionError
        On any problem with the input, naming the file, the row and the column; nothing is
        written then.

    Notes
    -----
    A ``FileName`` with a video extension (``.avi``, ``.mp4``, ``.mov``, ``.mkv``) is decoded
    with PyAV (``pip install av``) and each frame re-encoded as JPEG; a ``FileName`` that is a
    folder is one video whose frames are its image files in (natural) sorted order, stored
    as they are. Images and videos cannot be mixed in one dataset.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ConversionError(folder, "is not a folder; expected a folder holding the files and "
                                      f"{LABELS_CSV}")
    folder = folder.resolve()
    out_root = check_output_folder(out_root, overwrite)
    name = name or folder.name
    _check_test_fraction(test_fraction)

    csv_path = folder / LABELS_CSV
    if not csv_path.is_file():
        raise ConversionError(csv_path, f"not found; expected a {LABELS_CSV} with the columns "
                                        f"FileName,Labels (or FileName,LabelConfidencePairs) and "
                                        f"optionally subset", field="FileName")
    names_path = folder / LABEL_NAME_FILE
    label_names = read_label_names(names_path) if names_path.is_file() else None

    header, raw_rows = read_labels_csv(csv_path)
    expected = "FileName and one of Labels, LabelConfidencePairs (optional: subset)"
    if "FileName" not in header:
        raise ConversionError(csv_path, f"no column 'FileName'; found columns {header}, expected "
                                        f"{expected}", field="FileName")
    label_column = next((c for c in reversed(LABEL_COLUMNS) if c in header), None)
    if label_column is None:
        raise ConversionError(csv_path, f"no label column; found columns {header}, expected "
                                        f"{expected}", field="Labels")
    col = {c: header.index(c) for c in ("FileName", label_column, "subset") if c in header}
    has_subset = "subset" in col
    if not raw_rows:
        raise ConversionError(csv_path, "has no data row; expected one row per example", field="FileName")

    rows: list[_Row] = []
    seen: dict[Path, _Row] = {}
    for number, (line, cells) in enumerate(raw_rows, start=1):
        def cell(c: str, cells: list[str] = cells) -> str:
            i = col[c]
            return cells[i].strip() if i < len(cells) else ""

        row = _Row(number=number, line=line, file_name=cell("FileName"), path=folder)
        row.path = _resolve(folder, row.file_name, row, csv_path)
        row.labels = _parse_label_cell(cell(label_column), label_column, row, csv_path,
                                       len(label_names) if label_names is not None else None)
        if has_subset:
            value = cell("subset").lower()
            if value not in SUBSET_VALUES:
                raise ConversionError(csv_path, f"{row.where()}: subset {cell('subset')!r} for "
                                                f"{row.file_name!r}; expected one of "
                                                f"{', '.join(SUBSET_VALUES)}", field="subset")
            row.subset = value
        if _is_repeat(row, seen, csv_path, label_column):
            continue
        _check_media(row, csv_path)
        rows.append(row)

    kinds = {r.kind for r in rows}
    if "image" in kinds and len(kinds) > 1:
        img = next(r for r in rows if r.kind == "image")
        vid = next(r for r in rows if r.kind != "image")
        raise ConversionError(csv_path, f"mixes images and videos ({img.where()}: {img.file_name!r} is an "
                                        f"image, {vid.where()}: {vid.file_name!r} a video); convert "
                                        f"them as separate datasets", field="FileName")

    # --- place rows into subsets ---------------------------------------------------------
    if has_subset:
        for r in rows:
            if r.subset == "unlabelled" and r.labels:
                logger.warning("%s %s: %r is in the unlabelled subset; its labels are ignored",
                               csv_path, r.where(), r.file_name)
        subsets = {s: [r for r in rows if r.subset == s] for s in SUBSET_VALUES}
        for s in ("train", "test"):
            if not any(r.labels for r in subsets[s]):
                raise ConversionError(csv_path, f"no labelled row has subset '{s}'; train and test "
                                                f"both need labelled rows", field="subset")
            empty = sum(1 for r in subsets[s] if not r.labels)
            if empty:
                logger.warning("%s: %d %s rows have no label (all-zero label vectors)", csv_path, empty, s)
    else:
        labelled = [i for i, r in enumerate(rows) if r.labels]
        if len(labelled) < 2:
            raise ConversionError(csv_path, f"{len(labelled)} labelled rows; a random train/test split "
                                            f"needs at least 2 (or give a subset column)",
                                  field=label_column)
        y_labelled = labels_to_matrix([rows[i].labels for i in labelled])
        _, test_pos = stratified_split(y_labelled, test_fraction, seed)
        test_ids = {labelled[i] for i in test_pos}
        subsets = {"train": [r for i, r in enumerate(rows) if r.labels and i not in test_ids],
                   "test": [r for i, r in enumerate(rows) if i in test_ids],
                   "unlabelled": [r for r in rows if not r.labels]}

    used = sorted({i for s in ("train", "test") for r in subsets[s] for i in r.labels})
    if len(used) == 1:
        raise ConversionError(csv_path, f"every labelled row has the class {used[0]}; a classification dataset "
                                        f"needs at least 2 classes", field=label_column)
    if label_names is not None:
        output_dim = len(label_names)
    else:
        output_dim = 1 + max(i for s in ("train", "test") for r in subsets[s] for i in r.labels)
    channels = {r.channels for r in rows}
    num_channels = channels.pop() if len(channels) == 1 else 3
    video = kinds != {"image"}

    data = {}
    for s in SUBSET_VALUES:
        members = subsets[s]
        if s == "unlabelled" and not members:
            continue
        y = None if s == "unlabelled" else labels_to_matrix([r.labels for r in members], output_dim)
        data[s] = SubsetData((_example_frames(r) for r in members), y, size=len(members))
    logger.info("converting %s: %s (output_dim=%d, %s)", folder,
                ", ".join(f"{s}: {len(subsets[s])}" for s in SUBSET_VALUES), output_dim,
                "video" if video else "image")
    return write_dataset(out_root, name, data, output_dim, label_names=label_names,
                         num_channels=num_channels, domain="video" if video else "image",
                         overwrite=overwrite, progress=progress)


# --- tensorflow-datasets ------------------------------------------------------------------

def _tfds_class_names(feature: Any) -> list[str] | None:
    """Class names of a ``ClassLabel`` feature (or a ``Sequence`` of one), else None."""
    inner = getattr(feature, "feature", None)
    for f in (feature, inner):
        names = getattr(f, "names", None)
        if names and type(f).__name__ == "ClassLabel":
            return [str(n) for n in names]
    return None


def _tfds_labels(value: Any) -> list[int]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"a label of dtype {arr.dtype}; expected integer class indices")
    return sorted({int(v) for v in arr.ravel()})


def _tfds_frames(image: Any) -> list[bytes]:
    arr = np.asarray(image)
    if arr.ndim == 4:  # a video [T, H, W, C]
        return [encode_frame(f, "PNG") for f in arr]
    return [encode_frame(arr, "PNG")]


def convert_tfds(name: str, out_root: str | Path, *, split_train: str = "train",
                 split_test: str | None = "test", image_key: str = "image", label_key: str = "label",
                 max_train: int | None = None, max_test: int | None = None,
                 data_dir: str | Path | None = None, test_fraction: float = 0.2, seed: int = 42,
                 overwrite: bool = False, progress: Callable[[int], None] | None = None) -> Path:
    """Convert a tensorflow-datasets dataset into an AutoDL dataset.

    Parameters
    ----------
    name:
        The tfds name (e.g. ``"mnist"``, ``"cifar10:3.0.2"``), as ``tfds.load`` takes it.
    out_root:
        The dataset folder to create.
    split_train, split_test:
        The splits to read. ``split_test=None``, or a dataset whose (known) splits lack
        ``split_test``, splits ``split_train`` at random, stratified by label
        (``test_fraction``, ``seed``).
    image_key, label_key:
        The feature names of the image (``[H, W, C]``, or a video ``[T, H, W, C]``) and the
        label (a ``ClassLabel`` index, or a sequence of indices for multi-label data).
    max_train, max_test:
        Keep at most this many examples of each subset: the first ones of a tfds split
        (tfds stores its splits shuffled), a seeded stratified subsample of each side of a
        split made here. A split made here with both caps reads the first
        ``max_train + max_test`` examples and gives ``max_test`` of them to test.
    data_dir:
        tfds' data folder (default: its own, ``~/tensorflow_datasets``).
    test_fraction, seed:
        The random split (stratified by label) used when there is no test split (the
        fraction is ignored when both caps are given).
    overwrite:
        Replace an existing dataset at ``out_root``.
    progress:
        Called with 1 after each example written.

    Returns
    -------
    pathlib.Path
        ``out_root``.

    Notes
    -----
    Frames are stored as PNG (lossless); class names come from the label's ``ClassLabel``
    feature when the dataset has one. tfds downloads and prepares the data on first use
    where it can; offline, prepare it beforehand into ``data_dir``.
    """
    out_root = check_output_folder(out_root, overwrite)
    check_max_examples(max_train=max_train, max_test=max_test)
    _check_test_fraction(test_fraction)
    from autodl.dataset import configure_tensorflow

    configure_tensorflow(threads=2)
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ConversionError(None, "reading tensorflow-datasets needs the package: "
                                    "pip install tensorflow-datasets") from None
    data_dir = None if data_dir is None else str(data_dir)
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as exc:
        raise ConversionError(None, f"tensorflow-datasets has no dataset {name!r} ({exc})",
                              field="name") from None
    info = builder.info
    features = info.features
    for what, key in (("image_key", image_key), ("label_key", label_key)):
        if key not in features:
            raise ConversionError(None, f"{name}: no feature {key!r} ({what}); its features are "
                                        f"{sorted(features.keys())}", field=what)
    label_names = _tfds_class_names(features[label_key])
    known_splits = set(info.splits.keys()) if info.splits else set()
    if split_test is not None and known_splits and split_test not in known_splits:
        logger.info("%s has no split %r (splits: %s); splitting %r", name, split_test,
                    sorted(known_splits), split_train)
        split_test = None

    def read(split: str, limit: int | None) -> tuple[list[list[bytes]], list[list[int]]]:
        try:
            ds = tfds.load(name, split=split, data_dir=data_dir, as_supervised=False, shuffle_files=False)
        except Exception as exc:
            raise ConversionError(None, f"tensorflow-datasets cannot load {name!r} split {split!r} "
                                        f"({type(exc).__name__}: {exc})", field="split") from None
        if limit is not None:
            ds = ds.take(limit)
        frames, labels = [], []
        for i, ex in enumerate(tfds.as_numpy(ds)):
            try:
                labels.append(_tfds_labels(ex[label_key]))
            except ValueError as exc:
                raise ConversionError(None, f"{name} {split} example {i}: {exc}", field="label_key") from None
            frames.append(_tfds_frames(ex[image_key]))
        logger.info("read %d examples of %s %s", len(frames), name, split)
        return frames, labels

    if split_test is not None:
        x_train, y_train = read(split_train, max_train)
        x_test, y_test = read(split_test, max_test)
    else:
        limit = max_train + max_test if max_train is not None and max_test is not None else None
        x_all, y_all = read(split_train, limit)
        if len(x_all) < 2:
            raise ConversionError(None, f"{name} split {split_train!r} has {len(x_all)} examples; "
                                        f"a train/test split needs at least 2", field="split_train")
        # with both caps, exactly max_test of the examples read go to test; else test_fraction
        test_size = test_fraction if limit is None else min(max_test, len(x_all) - 1)
        train_ids, test_ids = stratified_split(labels_to_matrix(y_all), test_size, seed)
        # each side capped at its maximum by a stratified subsample, not its first examples
        if max_train is not None:
            train_ids = train_ids[stratified_subset(labels_to_matrix([y_all[i] for i in train_ids]),
                                                    max_train, seed)]
        if max_test is not None:
            test_ids = test_ids[stratified_subset(labels_to_matrix([y_all[i] for i in test_ids]),
                                                  max_test, seed + 1)]
        x_train, y_train = [x_all[i] for i in train_ids], [y_all[i] for i in train_ids]
        x_test, y_test = [x_all[i] for i in test_ids], [y_all[i] for i in test_ids]
    for split, x in ((split_train, x_train), (split_test or split_train, x_test)):
        if not x:
            raise ConversionError(None, f"{name} split {split!r} has no example", field="split")

    top = max((i for r in y_train + y_test for i in r), default=0)
    output_dim = len(label_names) if label_names else top + 1
    if top >= output_dim:
        raise ConversionError(None, f"{name}: class index {top} >= {output_dim} class names",
                              field="label_key")

    video = len(tuple(getattr(features[image_key], "shape", ()) or ())) == 4
    dataset_name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name.split(":")[0]).strip("_") or "tfds"
    subsets = {"train": SubsetData(iter(x_train), labels_to_matrix(y_train, output_dim), size=len(x_train)),
               "test": SubsetData(iter(x_test), labels_to_matrix(y_test, output_dim), size=len(x_test))}
    return write_dataset(out_root, dataset_name, subsets, output_dim, label_names=label_names,
                         domain="video" if video else "image", overwrite=overwrite, progress=progress)
