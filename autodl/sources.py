"""Built-in offline data sources: real image datasets that need no download.

These machines have no internet (only package registries), so the project's own
datasets come from what installs from a package:

- ``digits``: scikit-learn's ``load_digits`` (UCI handwritten digits), 8x8x1, 10 classes;
- ``fashion_mnist``: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``,
  28x28x1, 10 classes;
- ``textures``: random crops of scikit-image's bundled textures and photos, 32x32x1,
  8 classes;
- ``glyphs``: digits rendered from the machine's TrueType fonts, 28x28x1, 10 classes;
- ``moving_squares``: synthetic video, 8-frame 16x16x1 clips of a square moving in one of
  4 directions (the class), for testing whether a model sees motion.

Each source's loader returns ``(x_train, y_train, x_test, y_test, label_names)``: uint8
images ``N x H x W x C``, int64 class indices and the class names. :func:`write_source`
writes one as an AutoDL dataset (:func:`autodl.writer.write_arrays`), optionally a
stratified subsample; :func:`list_sources` says which are available on this machine and
why not where one is not.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autodl import labels
from autodl.errors import ConversionError
from autodl.labels import stratified_subset
from autodl.writer import check_max_examples, check_output_folder, write_arrays

logger = logging.getLogger(__name__)

stratified_subsample = stratified_subset  # the name this module gave it before autodl.labels

SourceArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                       "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts",
             Path.home() / ".local/share/fonts")
FONT_PACKAGE = "fonts-dejavu-core"
FONT_EXTENSIONS = (".ttf", ".otf")
MAX_FONTS = 32

# skimage.data images that ship inside scikit-image (no pooch download), with their licences.
TEXTURE_IMAGES = {
    "brick": "brick wall, CC0Textures 'Bricks25', CC0",
    "grass": "grass, DeviantArt user linolafett 'Grass-01', CC0",
    "gravel": "gravel, CC0Textures 'Gravel04', CC0",
    "coffee": "coffee cup on wood (Rachel Michetti, Pikolo Espresso Bar), CC0",
    "coins": "Greek coins from Pompeii, Brooklyn Museum, no known copyright restrictions",
    "hubble_deep_field": "Hubble eXtreme Deep Field, NASA, public domain",
    "immunohistochemistry": "immunohistochemical staining of colonic glands, no known copyright restrictions",
    "text": "printed text (Wikipedia 'Corner.png'), public domain",
}

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


@dataclass(frozen=True)
class SourceInfo:
    """What :func:`list_sources` says about one source.

    Attributes
    ----------
    name:
        The source name (``write_source``'s argument).
    description:
        One line: what the data is, where it comes from and its licence.
    available:
        Whether the source loads on this machine.
    reason_unavailable:
        Why not, and how to fix it (``None`` when available).
    task:
        Classes and image shape, e.g. ``"10 classes, 8x8x1"``.
    """

    name: str
    description: str
    available: bool
    reason_unavailable: str | None
    task: str


@dataclass(frozen=True)
class DataSource:
    """A built-in source: its loader (``seed -> arrays``) and an availability check."""

    name: str
    description: str
    task: str
    loader: Callable[[int], SourceArrays]
    check: Callable[[], str | None]


# --- digits ------------------------------------------------------------------------------

def load_digits(seed: int = 0, train_fraction: float = 2 / 3) -> SourceArrays:
    """scikit-learn's handwritten digits, 8x8 grayscale, split stratified and seeded.

    Provenance: the test set of the UCI "Optical Recognition of Handwritten Digits" data
    (E. Alpaydin, C. Kaynak, 1998; UCI licence CC BY 4.0) as bundled with scikit-learn
    (BSD-3-Clause). 1797 images, 10 classes; values 0..16 are scaled to 0..255.

    Parameters
    ----------
    seed:
        Seed of the stratified train/test split.
    train_fraction:
        Fraction of the images in the training set.

    Returns
    -------
    tuple
        ``x_train [N, 8, 8, 1] uint8, y_train [N] int64, x_test, y_test, label_names``.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    y = bunch.target.astype(np.int64)
    n_test = len(y) - int(round(train_fraction * len(y)))
    train_idx, test_idx = labels.stratified_split(y, n_test, seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], [str(i) for i in range(10)]


def _check_sklearn() -> str | None:
    try:
        import sklearn.datasets  # noqa: F401
    except ImportError:
        return "scikit-learn is not installed: pip install scikit-learn"
    return None


# --- fashion-mnist -------------------------------------------------------------------------

def read_idx(path: str | Path) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed or not.

    The header is two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
    int32, 0x0D float32, 0x0E float64), the number of dimensions and then each dimension as
    a big-endian uint32; the values follow, big-endian.

    Parameters
    ----------
    path:
        The file (``.gz`` is decompressed).

    Returns
    -------
    numpy.ndarray
        The array, in native byte order.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise ConversionError(path, f"cannot be read ({exc})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ConversionError(path, "is not an idx file (expected two zero bytes and a type code)",
                              field="header")
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ConversionError(path, f"header names {ndim} dimensions but the file ends early", field="header")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    body = len(data) - 4 - 4 * ndim
    if body != expected:
        raise ConversionError(path, f"holds {body} bytes of data; the header {dims} says {expected}",
                              field="header")
    arr = np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def _fashion_missing(path: Path) -> str | None:
    missing = [f for f in FASHION_MNIST_FILES.values() if not (path / f).is_file()]
    if missing:
        return (f"{path} lacks {', '.join(missing)}; install the Debian package: "
                f"apt-get install {FASHION_MNIST_PACKAGE}")
    return None


def load_fashion_mnist(seed: int = 0, path: str | Path = FASHION_MNIST_DIR) -> SourceArrays:
    """Fashion-MNIST: 70000 28x28 grayscale photos of clothing, 10 classes, its official split.

    Provenance: Zalando Research (H. Xiao, K. Rasul, R. Vollgraf, 2017), MIT licence; read
    from the idx files of the Debian package ``dataset-fashion-mnist``
    (``/usr/share/datasets/fashion-mnist``).

    Parameters
    ----------
    seed:
        Unused (the split is the official one: 60000 train, 10000 test).
    path:
        The folder holding the four ``*-idx?-ubyte.gz`` files.

    Returns
    -------
    tuple
        ``x_train [60000, 28, 28, 1] uint8, y_train, x_test [10000, 28, 28, 1], y_test, names``.
    """
    del seed
    path = Path(path)
    reason = _fashion_missing(path)
    if reason is not None:
        raise ConversionError(path, reason)
    arrays = {k: read_idx(path / f) for k, f in FASHION_MNIST_FILES.items()}
    for subset in ("train", "test"):
        x, y = arrays[f"x_{subset}"], arrays[f"y_{subset}"]
        if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
            raise ConversionError(path / FASHION_MNIST_FILES[f"x_{subset}"],
                                  f"images {x.shape} and labels {y.shape} do not match", field="header")
    return (arrays["x_train"].astype(np.uint8)[..., None], arrays["y_train"].astype(np.int64),
            arrays["x_test"].astype(np.uint8)[..., None], arrays["y_test"].astype(np.int64),
            list(FASHION_MNIST_CLASSES))


# --- textures ------------------------------------------------------------------------------

def _texture_image(name: str) -> np.ndarray:
    """A skimage.data image as uint8 grayscale ``[H, W]``."""
    import skimage.data
    from PIL import Image

    img = np.asarray(getattr(skimage.data, name)())
    if img.dtype != np.uint8:
        img = np.clip(np.rint(img.astype(np.float64) * (255.0 if img.max() <= 1 else 1.0)), 0, 255)
        img = img.astype(np.uint8)
    if img.ndim == 3:
        img = np.asarray(Image.fromarray(img[..., :3]).convert("L"))
    return img


def load_textures(seed: int = 0, n_train_per_class: int = 100, n_test_per_class: int = 50,
                  size: int = 32) -> SourceArrays:
    """Texture classification: random crops of scikit-image's bundled images, one class each.

    Eight images that ship inside scikit-image (``skimage.data``; no download): brick,
    grass, gravel (CC0 textures), coffee (CC0 photo), coins (Brooklyn Museum, no known copyright
    restrictions), hubble_deep_field (NASA, public domain), immunohistochemistry (no known
    copyright restrictions) and text (public domain). Each is turned to grayscale; a crop is
    a random square of side ``size`` to ``2*size`` pixels, resized to ``size x size``, maybe
    mirrored. Training crops come from the top three quarters of each image and test crops
    from the bottom quarter, so that no test crop overlaps a training crop.

    Parameters
    ----------
    seed:
        Seed of the crops and of the order of the examples.
    n_train_per_class, n_test_per_class:
        Crops per class in each subset.
    size:
        Side of the output images.

    Returns
    -------
    tuple
        ``x_train [8*n_train_per_class, size, size, 1] uint8, y_train, x_test, y_test, names``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for label, name in enumerate(TEXTURE_IMAGES):
        img = _texture_image(name)
        cut = int(img.shape[0] * 0.75)
        parts = (("train", img[:cut], n_train_per_class), ("test", img[cut:], n_test_per_class))
        for subset, region, n in parts:
            h, w = region.shape
            top_side = min(2 * size, h, w)
            if top_side < size:
                raise ConversionError(None, f"skimage.data.{name}() is too small for {size}x{size} crops",
                                      field="size")
            for _ in range(n):
                side = int(rng.integers(size, top_side + 1))
                r0 = int(rng.integers(0, h - side + 1))
                c0 = int(rng.integers(0, w - side + 1))
                crop = Image.fromarray(np.ascontiguousarray(region[r0:r0 + side, c0:c0 + side]))
                if side != size:
                    crop = crop.resize((size, size), Image.Resampling.BILINEAR, reducing_gap=None)
                arr = np.asarray(crop)
                if rng.random() < 0.5:
                    arr = arr[:, ::-1]
                xs[subset].append(arr)
                ys[subset].append(label)
    out = []
    for subset in ("train", "test"):
        order = rng.permutation(len(ys[subset]))
        x = np.stack(xs[subset])[order][..., None] if xs[subset] else np.zeros((0, size, size, 1), np.uint8)
        out += [x.astype(np.uint8), np.asarray(ys[subset], dtype=np.int64)[order]]
    return out[0], out[1], out[2], out[3], list(TEXTURE_IMAGES)


def _check_textures() -> str | None:
    try:
        for name in TEXTURE_IMAGES:
            _texture_image(name)
    except ImportError:
        return "scikit-image is not installed: pip install scikit-image"
    except Exception as exc:  # a missing bundled file, or one that needs a download
        return f"scikit-image's bundled images do not load ({type(exc).__name__}: {exc})"
    return None


# --- glyphs --------------------------------------------------------------------------------

def find_fonts(dirs: Sequence[str | Path] | None = None) -> list[Path]:
    """TrueType/OpenType font files under ``dirs`` (default: the system font folders), sorted.

    Parameters
    ----------
    dirs:
        Folders to search recursively; default :data:`FONT_DIRS`.

    Returns
    -------
    list of pathlib.Path
        The font files found (``.ttf``, ``.otf``), in sorted order.
    """
    found: set[Path] = set()
    for d in (FONT_DIRS if dirs is None else dirs):
        d = Path(d)
        if not d.is_dir():
            continue
        for root, _, files in os.walk(d):
            found.update(Path(root) / f for f in files if f.lower().endswith(FONT_EXTENSIONS))
    return sorted(found)


def _render(font: object, char: str, canvas: int) -> np.ndarray:
    from PIL import Image, ImageDraw

    img = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(img)
    draw.text((canvas / 2, canvas / 2), char, fill=255, font=font, anchor="mm")
    return np.asarray(img)


def _glyph_fonts(font_files: Sequence[Path], characters: str, canvas: int) -> list[tuple[Path, object]]:
    """Load the fonts that draw every character (not blank, not the missing-glyph box)."""
    from PIL import ImageFont

    if len(font_files) > MAX_FONTS:  # spread the choice over the sorted list
        picks = np.linspace(0, len(font_files) - 1, MAX_FONTS).round().astype(int)
        font_files = [font_files[i] for i in sorted(set(picks.tolist()))]
    fonts = []
    for path in font_files:
        try:
            font = ImageFont.truetype(str(path), size=int(canvas * 0.6))
        except OSError as exc:
            logger.debug("skipping font %s (%s)", path, exc)
            continue
        missing = _render(font, "\U0010fffd", canvas)
        ok = all((g := _render(font, c, canvas)).any() and not np.array_equal(g, missing) for c in characters)
        if ok:
            fonts.append((path, font))
        else:
            logger.debug("skipping font %s: it lacks one of %r", path, characters)
    return fonts


def load_glyphs(seed: int = 0, characters: str = "0123456789", n_train_per_class: int = 100,
                n_test_per_class: int = 50, size: int = 28,
                font_dirs: Sequence[str | Path] | None = None) -> SourceArrays:
    """Rendered glyphs: characters drawn from the machine's fonts, one class per character.

    Each example is one character drawn white on black in a font chosen at random among
    the TrueType/OpenType fonts found (at most 32; those that lack a character are skipped),
    rotated by up to 15 degrees, scaled to fill 55 to 85 % of the image and shifted by up to
    3 pixels, like MNIST's 28x28 digits. Provenance: the installed fonts, e.g. DejaVu
    (Debian ``fonts-dejavu-core``; Bitstream Vera licence, free to use and modify).

    Parameters
    ----------
    seed:
        Seed of the fonts, rotations, scales and shifts, and of the order of the examples.
    characters:
        The classes, one per character.
    n_train_per_class, n_test_per_class:
        Examples per class in each subset.
    size:
        Side of the output images.
    font_dirs:
        Folders to search for fonts; default :data:`FONT_DIRS`.

    Returns
    -------
    tuple
        ``x_train [len(characters)*n_train_per_class, size, size, 1] uint8, y_train, x_test,
        y_test, names`` (the names are the characters).
    """
    from PIL import Image

    if not characters or len(set(characters)) != len(characters):
        raise ConversionError(None, f"characters={characters!r}: expected distinct characters",
                              field="characters")
    canvas = 96
    files = find_fonts(font_dirs)
    fonts = _glyph_fonts(files, characters, canvas) if files else []
    if not fonts:
        where = ", ".join(str(d) for d in (FONT_DIRS if font_dirs is None else font_dirs))
        raise ConversionError(None, f"no TrueType font that draws {characters!r} found in {where}; "
                                    f"install one: apt-get install {FONT_PACKAGE}", field="fonts")
    logger.info("rendering glyphs %r from %d fonts", characters, len(fonts))
    rng = np.random.default_rng(seed)

    def one(char: str) -> np.ndarray:
        _, font = fonts[int(rng.integers(len(fonts)))]
        img = Image.fromarray(_render(font, char, canvas))
        img = img.rotate(float(rng.uniform(-15, 15)), resample=Image.Resampling.BILINEAR)
        arr = np.asarray(img)
        rows, cols = np.flatnonzero(arr.any(1)), np.flatnonzero(arr.any(0))
        glyph = Image.fromarray(arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1])
        box = float(rng.uniform(0.55, 0.85)) * size
        scale = box / max(glyph.size)
        gw, gh = max(1, round(glyph.size[0] * scale)), max(1, round(glyph.size[1] * scale))
        glyph = glyph.resize((gw, gh), Image.Resampling.LANCZOS)
        out = Image.new("L", (size, size), 0)
        dx = int(np.clip((size - gw) // 2 + rng.integers(-3, 4), 0, size - gw))
        dy = int(np.clip((size - gh) // 2 + rng.integers(-3, 4), 0, size - gh))
        out.paste(glyph, (dx, dy))
        return np.asarray(out)

    result = []
    for n in (n_train_per_class, n_test_per_class):
        x = [one(c) for c in characters for _ in range(n)]
        y = np.repeat(np.arange(len(characters), dtype=np.int64), n)
        order = rng.permutation(len(y))
        xa = np.stack(x)[order][..., None] if x else np.zeros((0, size, size, 1), np.uint8)
        result += [xa.astype(np.uint8), y[order]]
    return result[0], result[1], result[2], result[3], list(characters)


def _check_fonts() -> str | None:
    files = find_fonts()
    if not files:
        return (f"no TrueType font in {', '.join(str(d) for d in FONT_DIRS)}; "
                f"install one: apt-get install {FONT_PACKAGE}")
    return None


# --- moving squares (synthetic video) --------------------------------------------------------

MOVING_SQUARES_DIRECTIONS = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}
"""Class names of ``moving_squares`` and each one's step ``(rows, columns)`` per frame."""


def load_moving_squares(seed: int = 0, n_train_per_class: int = 100, n_test_per_class: int = 50,
                        frames: int = 8, size: int = 16, square: int = 4, speed: int = 1) -> SourceArrays:
    """Synthetic video: a square moving right, left, down or up (the class), 1 channel.

    Each clip is a ``square x square`` patch of one grey level (drawn in 128..255) on a
    black background, starting at a position drawn uniformly over the image and moving
    ``speed`` pixels per frame in its class's direction. The image is a torus: what leaves
    at one edge comes back at the opposite one (frame ``t + 1`` is frame ``t`` rolled by
    ``speed`` pixels). Every frame on its own is therefore a uniformly placed square,
    whatever the class: a model that looks at frames separately (and averages over them)
    cannot do better than chance, one that sees the order of the frames can reach 100 %.

    Parameters
    ----------
    seed:
        Seed of the classes' order, start positions and grey levels.
    n_train_per_class, n_test_per_class:
        Clips per class in each subset.
    frames:
        Frames per clip.
    size:
        Side of the frames in pixels.
    square:
        Side of the square in pixels (less than ``size``).
    speed:
        Pixels moved per frame (at least 1, less than ``size``).

    Returns
    -------
    tuple
        ``x_train [4*n_train_per_class, frames, size, size, 1] uint8, y_train, x_test,
        y_test, names`` (the names are ``right``, ``left``, ``down``, ``up``).
    """
    for key, value, low, high in (("frames", frames, 1, None), ("size", size, 2, None),
                                  ("square", square, 1, size - 1), ("speed", speed, 1, size - 1),
                                  ("n_train_per_class", n_train_per_class, 0, None),
                                  ("n_test_per_class", n_test_per_class, 0, None)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low or \
                (high is not None and value > high):
            bound = f"an integer >= {low}" + (f" and <= {high}" if high is not None else "")
            raise ConversionError(None, f"{key}={value!r}: expected {bound}", field=key)
    rng = np.random.default_rng(seed)
    steps = np.asarray(list(MOVING_SQUARES_DIRECTIONS.values()))
    offsets = np.arange(square)
    result = []
    for n in (n_train_per_class, n_test_per_class):
        y = rng.permutation(np.repeat(np.arange(len(steps), dtype=np.int64), n))
        x = np.zeros((len(y), frames, size, size, 1), np.uint8)
        starts = rng.integers(0, size, (len(y), 2))
        levels = rng.integers(128, 256, len(y))
        for i, (label, (r0, c0), level) in enumerate(zip(y, starts, levels)):
            dr, dc = steps[label] * speed
            for t in range(frames):
                rows = (r0 + dr * t + offsets) % size
                cols = (c0 + dc * t + offsets) % size
                x[i, t, rows[:, None], cols[None, :], 0] = level
        result += [x, y]
    return result[0], result[1], result[2], result[3], list(MOVING_SQUARES_DIRECTIONS)


# --- registry ------------------------------------------------------------------------------

SOURCES: dict[str, DataSource] = {
    s.name: s for s in (
        DataSource("digits", "scikit-learn's handwritten digits (UCI optical digits, Alpaydin & Kaynak "
                             "1998, CC BY 4.0; bundled with scikit-learn), 1797 images, seeded 2/3-1/3 "
                             "stratified split", "10 classes, 8x8x1", load_digits, _check_sklearn),
        DataSource("fashion_mnist", "Fashion-MNIST (Zalando Research 2017, MIT licence) from the Debian "
                                    f"package {FASHION_MNIST_PACKAGE}, official 60000/10000 split",
                   "10 classes, 28x28x1", load_fashion_mnist, lambda: _fashion_missing(FASHION_MNIST_DIR)),
        DataSource("textures", "random 32x32 grayscale crops of 8 images bundled with scikit-image "
                               "(brick, grass, gravel, coffee: CC0; coins, hubble_deep_field, "
                               "immunohistochemistry, text: public domain or no known restrictions); "
                               "train and test crops from disjoint parts", "8 classes, 32x32x1",
                   load_textures, _check_textures),
        DataSource("glyphs", "digits 0-9 rendered from the installed TrueType fonts (e.g. DejaVu, "
                             f"{FONT_PACKAGE}, Bitstream Vera licence) with seeded rotation, scale and "
                             "shift", "10 classes, 28x28x1", load_glyphs, _check_fonts),
        DataSource("moving_squares", "synthetic video: a square moving right, left, down or up (the class) "
                                     "on a 16x16 torus from a seeded random start, 100/50 clips per class; "
                                     "single frames do not tell the classes apart", "4 classes, 8x16x16x1 clips",
                   load_moving_squares, lambda: None),
    )
}


def get_source(name: str) -> DataSource:
    """The built-in source called ``name``.

    Raises
    ------
    ConversionError
        When there is none of that name (the message lists the names).
    """
    try:
        return SOURCES[name]
    except KeyError:
        raise ConversionError(None, f"no built-in source {name!r}; expected one of "
                                    f"{', '.join(SOURCES)}", field="source") from None


def list_sources() -> list[SourceInfo]:
    """The built-in sources and whether each loads on this machine (cheap checks, no loading).

    Returns
    -------
    list of SourceInfo
        One per source, in a fixed order.
    """
    infos = []
    for s in SOURCES.values():
        reason = s.check()
        infos.append(SourceInfo(s.name, s.description, reason is None, reason, s.task))
    return infos


def load_source(name: str, seed: int = 0) -> SourceArrays:
    """Load a built-in source: ``(x_train, y_train, x_test, y_test, label_names)``.

    Parameters
    ----------
    name:
        A name of :func:`list_sources`.
    seed:
        Seed of the source's split or generation (where it has one).
    """
    return get_source(name).loader(seed)


def write_source(name: str, out_root: str | Path, *, max_train: int | None = None,
                 max_test: int | None = None, seed: int = 0, overwrite: bool = False,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Write a built-in source as an AutoDL dataset named ``name`` (images stored as PNG).

    Parameters
    ----------
    name:
        A name of :func:`list_sources`.
    out_root:
        The dataset folder to create.
    max_train, max_test:
        Keep at most this many examples of each subset: a seeded stratified subsample.
    seed:
        Seed of the source (split, generation) and of the subsample.
    overwrite:
        Replace an existing dataset at ``out_root``.
    progress:
        Called with 1 after each example written.

    Returns
    -------
    pathlib.Path
        ``out_root``.
    """
    source = get_source(name)
    check_max_examples(max_train=max_train, max_test=max_test)
    out_root = check_output_folder(out_root, overwrite)
    x_train, y_train, x_test, y_test, names = source.loader(seed)
    if max_train is not None:
        keep = stratified_subset(y_train, max_train, seed)
        x_train, y_train = x_train[keep], y_train[keep]
    if max_test is not None:
        keep = stratified_subset(y_test, max_test, seed + 1)
        x_test, y_test = x_test[keep], y_test[keep]
    logger.info("writing source %s to %s (train %d, test %d)", name, out_root, len(y_train), len(y_test))
    return write_arrays(out_root, name, x_train, y_train, x_test, y_test, num_classes=len(names),
                        label_names=names, overwrite=overwrite, progress=progress)
