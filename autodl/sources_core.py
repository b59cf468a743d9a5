"""The core sources: real and generated image data that installs with a package.

These machines have no internet (only package registries), so the project's own
datasets come from what installs from a package:

- ``digits``: scikit-learn's ``load_digits`` (UCI handwritten digits), 8x8x1, 10 classes;
- ``fashion_mnist``: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``,
  28x28x1, 10 classes;
- ``textures``: random crops of scikit-image's bundled textures and photos, 32x32x1,
  8 classes;
- ``glyphs``: digits rendered from the machine's TrueType fonts, 28x28x1, 10 classes;
- ``moving_squares``: synthetic video, 8-frame 16x16x1 clips of a square moving in one of
  4 directions (the class), for testing whether a model sees motion;
- ``photos``: colour crops of 6 photos bundled with scikit-image and scikit-learn, class =
  the photo, variable size;
- ``microscopy``: medical-looking colour crops (immunohistochemistry, fundus, micrographs);
- ``faces``: scikit-image's bundled LFW subset, faces vs background, 25x25x1;
- ``icons``: GNOME Adwaita symbolic icons (Debian ``adwaita-icon-theme``), class = the
  theme's context, sizes 16 to 96 pixels, unseen icons in test;
- ``emoji``: Noto Color Emoji (Debian ``fonts-noto-color-emoji``) drawn on random
  backgrounds, class = category, unseen emoji in test, 32x32x3;
- ``multi_glyphs``: multi-label, 1 to 3 letters rendered in a 2x2 grid, labels = the
  letters present;
- ``moving_digits``: synthetic video, a scikit-learn digit moving in the frame, class = the
  digit.

Each loader returns :data:`autodl.source_types.SourceArrays`; :mod:`autodl.sources` registers
:data:`CORE_SOURCES` first, in this order.
"""

from __future__ import annotations

import gzip
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autodl import labels
from autodl.errors import ConversionError
from autodl.fonts import FONT_PACKAGE, GLYPH_FONT_DIRS, draw_glyph, find_fonts, glyph_fonts
from autodl.images import as_rgb, as_uint8, resize_image, split_by_group
from autodl.source_types import DataSource, SourceArrays

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"
FASHION_MNIST_FILES = {"x_train": "train-images-idx3-ubyte.gz", "y_train": "train-labels-idx1-ubyte.gz",
                       "x_test": "t10k-images-idx3-ubyte.gz", "y_test": "t10k-labels-idx1-ubyte.gz"}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

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


# --- glyphs ---------------------------------------------------------------------------------

def _fonts_for(characters: str, font_dirs: Sequence[str | Path] | None, canvas: int = 96
               ) -> list[tuple[Path, object]]:
    """The fonts that draw every one of ``characters``; a ConversionError naming the fix if none."""
    files = find_fonts(GLYPH_FONT_DIRS if font_dirs is None else font_dirs)
    fonts = glyph_fonts(files, characters, canvas) if files else []
    if not fonts:
        where = ", ".join(str(d) for d in (GLYPH_FONT_DIRS if font_dirs is None else font_dirs))
        raise ConversionError(None, f"no TrueType font that draws {characters!r} found in {where}; "
                                    f"install one: apt-get install {FONT_PACKAGE}", field="fonts")
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
        Folders to search for fonts; default :data:`autodl.fonts.GLYPH_FONT_DIRS` (DejaVu).

    Returns
    -------
    tuple
        ``x_train [len(characters)*n_train_per_class, size, size, 1] uint8, y_train, x_test,
        y_test, names`` (the names are the characters).
    """
    if not characters or len(set(characters)) != len(characters):
        raise ConversionError(None, f"characters={characters!r}: expected distinct characters",
                              field="characters")
    canvas = 96
    fonts = _fonts_for(characters, font_dirs, canvas)
    logger.info("rendering glyphs %r from %d fonts", characters, len(fonts))
    rng = np.random.default_rng(seed)
    result = []
    for n in (n_train_per_class, n_test_per_class):
        x = [draw_glyph(fonts, c, size, rng, canvas) for c in characters for _ in range(n)]
        y = np.repeat(np.arange(len(characters), dtype=np.int64), n)
        order = rng.permutation(len(y))
        xa = np.stack(x)[order][..., None] if x else np.zeros((0, size, size, 1), np.uint8)
        result += [xa.astype(np.uint8), y[order]]
    return result[0], result[1], result[2], result[3], list(characters)


def _check_fonts() -> str | None:
    files = find_fonts(GLYPH_FONT_DIRS)
    if not files:
        return (f"no TrueType font in {', '.join(str(d) for d in GLYPH_FONT_DIRS)}; "
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


# --- crops of bundled images (photos, microscopy) --------------------------------------------

def _region_crops(images: dict[str, np.ndarray], seed: int, n_train_per_class: int, n_test_per_class: int,
                  size: int | None, min_side: int, max_side: int, min_std: float = 2.0) -> SourceArrays:
    """Crops of images, one class per image: train from the top three quarters, test from the rest.

    A crop is a square of side ``min_side..max_side`` resized to ``size x size``, or, with
    ``size=None``, a rectangle whose height and width are drawn apart and kept as they are
    (variable-size examples). Crops flatter than ``min_std`` grey levels are drawn again
    (up to 20 times). Mirrored at random.
    """
    for key, value in (("min_side", min_side), ("max_side", max_side)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ConversionError(None, f"{key}={value!r}: expected an integer >= 2", field=key)
    if max_side < min_side:
        raise ConversionError(None, f"max_side={max_side} < min_side={min_side}", field="max_side")
    rng = np.random.default_rng(seed)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for label, (name, img) in enumerate(images.items()):
        cut = int(img.shape[0] * 0.75)
        for subset, region, n in (("train", img[:cut], n_train_per_class), ("test", img[cut:], n_test_per_class)):
            h, w = region.shape[:2]
            top = min(max_side, h, w)
            if top < min_side:
                raise ConversionError(None, f"image {name!r} ({subset} part {h}x{w}) is too small for "
                                            f"{min_side}-pixel crops", field="min_side")
            for _ in range(n):
                for _attempt in range(20):
                    ch = int(rng.integers(min_side, top + 1))
                    cw = ch if size is not None else int(rng.integers(min_side, top + 1))
                    r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                    crop = region[r0:r0 + ch, c0:c0 + cw]
                    if crop.std() >= min_std:
                        break
                if size is not None:
                    crop = resize_image(crop, size, size)
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                xs[subset].append(np.ascontiguousarray(crop))
                ys[subset].append(label)
    out: list = []
    for subset in ("train", "test"):
        order = rng.permutation(len(ys[subset]))
        x = [xs[subset][i] for i in order]
        out += [np.stack(x) if size is not None and x else x, np.asarray(ys[subset], dtype=np.int64)[order]]
    return out[0], out[1], out[2], out[3], list(images)


# --- photos (colour, variable size) ----------------------------------------------------------

PHOTO_IMAGES = {
    "astronaut": "skimage.data.astronaut: Eileen Collins, NASA, public domain",
    "chelsea": "skimage.data.chelsea: a cat, CC0 (Stefan van der Walt)",
    "coffee": "skimage.data.coffee: a cup of coffee, CC0 (Rachel Michetti)",
    "rocket": "skimage.data.rocket: a Falcon 9 launch, SpaceX, public domain",
    "china": "sklearn china.jpg: a temple, CC BY 2.0 (danielbuechele, Flickr)",
    "flower": "sklearn flower.jpg: a flower, CC BY 2.0 (vultilion, Flickr)",
}
"""The photos of :func:`load_photos`, one class each, with their provenance and licence."""


def _photo(name: str) -> np.ndarray:
    """A photo of :data:`PHOTO_IMAGES` as ``[H, W, 3]`` uint8."""
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return as_rgb(load_sample_image(f"{name}.jpg"))
    import skimage.data

    return as_rgb(getattr(skimage.data, name)())


def load_photos(seed: int = 0, n_train_per_class: int = 120, n_test_per_class: int = 60, size: int | None = None,
                min_side: int = 32, max_side: int = 96) -> SourceArrays:
    """Colour photo crops: which photo a crop comes from (6 classes), variable size by default.

    Six colour photos that install with scikit-image and scikit-learn (no download; see
    :data:`PHOTO_IMAGES` for each one's licence). A crop is a rectangle of height and width
    ``min_side..max_side`` drawn apart (``size=None``: kept as it is, so examples vary in
    size and shape) or a square resized to ``size``; train crops come from the top three
    quarters of each photo, test crops from the bottom quarter (disjoint pixels).

    Parameters
    ----------
    seed:
        Seed of the crops and the order of the examples.
    n_train_per_class, n_test_per_class:
        Crops per photo in each subset.
    size:
        Side of square outputs; None keeps each crop's own size.
    min_side, max_side:
        Range of the crops' sides in the photo's pixels.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[h, w, 3]`` uint8 arrays, or ``[N, size, size, 3]``),
        ``y_train``, ``x_test``, ``y_test``, names.
    """
    return _region_crops({name: _photo(name) for name in PHOTO_IMAGES}, seed, n_train_per_class,
                         n_test_per_class, size, min_side, max_side)


def _check_photos() -> str | None:
    try:
        for name in PHOTO_IMAGES:
            _photo(name)
    except ImportError as exc:
        return f"{exc.name or 'a package'} is not installed: pip install scikit-image scikit-learn"
    except Exception as exc:
        return f"the bundled photos do not load ({type(exc).__name__}: {exc})"
    return None


# --- microscopy and fundus images (medical-looking, colour) ------------------------------------

MICROSCOPY_IMAGES = {
    "immunohistochemistry": ("immunohistochemistry", 1.0,
                             "IHC staining of colonic glands, no known copyright restrictions"),
    "retina": ("retina", 512 / 1411, "fundus photograph of a human retina, CC0 (Mikael Häggström)"),
    "cell": ("cell", 1.0, "cell migration microscopy (grey), CC0"),
    "microaneurysms": ("microaneurysms", 4.0, "retinal microaneurysms close-up (grey), CC0 (Andreas Maier)"),
}
"""The images of :func:`load_microscopy`: skimage.data name, scale applied, provenance and licence."""


def _microscopy_image(name: str) -> np.ndarray:
    import skimage.data

    attr, scale, _ = MICROSCOPY_IMAGES[name]
    img = as_rgb(getattr(skimage.data, attr)())
    if scale != 1.0:
        img = resize_image(img, round(img.shape[0] * scale), round(img.shape[1] * scale))
    return img


def load_microscopy(seed: int = 0, n_train_per_class: int = 150, n_test_per_class: int = 75, size: int | None = 32,
                    min_side: int = 32, max_side: int = 96) -> SourceArrays:
    """Medical-looking colour crops: which of 4 medical images a crop comes from.

    Immunohistochemistry of colonic glands, a fundus photograph of a retina (brought to
    512x512), a cell-migration micrograph and a close-up of retinal microaneurysms (grey,
    enlarged 4x), all bundled with scikit-image (see :data:`MICROSCOPY_IMAGES`; CC0 or no
    known restrictions); grey images are copied to 3 channels. The fundus photograph and the
    microaneurysm close-up are both retinas, so two classes are near each other. Crops as
    :func:`load_photos` (squares resized to ``size``, or variable with ``size=None``); flat
    crops (the black surround of the fundus) are drawn again.

    Parameters
    ----------
    seed, n_train_per_class, n_test_per_class, size, min_side, max_side:
        As :func:`load_photos`.

    Returns
    -------
    tuple
        ``x_train [4*n_train_per_class, size, size, 3]`` uint8 (a list with ``size=None``),
        ``y_train``, ``x_test``, ``y_test``, names.
    """
    return _region_crops({name: _microscopy_image(name) for name in MICROSCOPY_IMAGES}, seed, n_train_per_class,
                         n_test_per_class, size, min_side, max_side, min_std=8.0)


def _check_microscopy() -> str | None:
    try:
        for name in MICROSCOPY_IMAGES:
            _microscopy_image(name)
    except ImportError:
        return "scikit-image is not installed: pip install scikit-image"
    except Exception as exc:
        return f"scikit-image's bundled images do not load ({type(exc).__name__}: {exc})"
    return None


# --- faces (LFW subset) -----------------------------------------------------------------------

def load_faces(seed: int = 0, train_fraction: float = 2 / 3) -> SourceArrays:
    """Faces or not: scikit-image's bundled subset of Labeled Faces in the Wild, 25x25 grey.

    100 face crops drawn at random from LFW and 100 background crops of the same photos
    (``skimage.data.lfw_subset``; Huang et al. 2007, LFW is distributed for research without
    an explicit licence), split stratified and seeded.

    Parameters
    ----------
    seed:
        Seed of the split.
    train_fraction:
        Fraction of the images in the training set.

    Returns
    -------
    tuple
        ``x_train [N, 25, 25, 1] uint8, y_train, x_test, y_test, ["non-face", "face"]``.
    """
    import skimage.data

    x = as_uint8(skimage.data.lfw_subset())[..., None]
    y = np.r_[np.ones(100, np.int64), np.zeros(len(x) - 100, np.int64)]
    n_test = len(y) - round(train_fraction * len(y))
    train_idx, test_idx = labels.stratified_split(y, n_test, seed)
    return x[train_idx], y[train_idx], x[test_idx], y[test_idx], ["non-face", "face"]


def _check_faces() -> str | None:
    try:
        import skimage.data

        skimage.data.lfw_subset()
    except ImportError:
        return "scikit-image is not installed: pip install scikit-image"
    except Exception as exc:
        return f"skimage.data.lfw_subset() does not load ({type(exc).__name__}: {exc})"
    return None


# --- icons (Adwaita symbolic icons by context, variable size) ----------------------------------

ICON_THEME_DIR = Path("/usr/share/icons/Adwaita")
ICON_PACKAGE = "adwaita-icon-theme"
ICON_SIZES = (16, 24, 32, 48, 64, 96)


def _icon_files(theme_dir: Path, sizes: Sequence[int]) -> dict[tuple[str, str], dict[int, Path]]:
    """``{(context, icon name): {size: png}}`` of the theme's symbolic PNG icons."""
    found: dict[tuple[str, str], dict[int, Path]] = {}
    for s in sizes:
        folder = theme_dir / f"{s}x{s}"
        if not folder.is_dir():
            continue
        for context_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for png in sorted(context_dir.glob("*-symbolic.symbolic.png")):
                name = png.name.removesuffix(".symbolic.png")
                found.setdefault((context_dir.name, name), {})[s] = png
    return found


def _distinct_icons(files: dict[tuple[str, str], dict[int, Path]]) -> dict[tuple[str, str], dict[int, Path]]:
    """Drop icons whose drawings repeat an earlier icon's (the theme files some pictures twice,
    under two names or two contexts): the first in sorted order is kept."""
    import hashlib

    seen: set[str] = set()
    out = {}
    for key in sorted(files):
        digest = hashlib.sha256()
        for _, png in sorted(files[key].items()):
            digest.update(png.read_bytes())
        signature = digest.hexdigest()
        if signature in seen:
            logger.debug("icon %s repeats an earlier one; left out", key)
            continue
        seen.add(signature)
        out[key] = files[key]
    return out


def _icon_missing(theme_dir: Path) -> str | None:
    if not _icon_files(theme_dir, ICON_SIZES[:1]):
        return f"no symbolic PNG icons in {theme_dir}; install the Debian package: apt-get install {ICON_PACKAGE}"
    return None


def load_icons(seed: int = 0, sizes: Sequence[int] = ICON_SIZES, min_icons: int = 10, test_fraction: float = 1 / 3,
               theme_dir: str | Path = ICON_THEME_DIR) -> SourceArrays:
    """Pictograms by meaning: GNOME's Adwaita symbolic icons, class = the theme's context folder.

    Each icon (e.g. ``battery-low-symbolic``) comes in several sizes (16 to 96 pixels): every
    size is one example, so examples vary in size. The class is the context the theme files
    it under (actions, devices, emotes, mimetypes, places, status, ...; contexts with fewer
    than ``min_icons`` icons are left out). Train and test hold different icons (a seeded
    split of the icon names, stratified by context), so the task is to recognise what kind
    of thing an unseen pictogram stands for. The dark-grey-on-transparent icons are laid on
    white and stored as 1-channel images. Provenance: Debian ``adwaita-icon-theme`` (GNOME
    project; CC BY-SA 3.0 or LGPL-3).

    Parameters
    ----------
    seed:
        Seed of the split by icon and of the order of the examples.
    sizes:
        Icon sizes to take (those the theme has).
    min_icons:
        Contexts with fewer icons are left out.
    test_fraction:
        Share of each context's icons put in test.
    theme_dir:
        The icon theme's folder.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[s, s, 1]`` uint8 arrays), ``y_train``, ``x_test``,
        ``y_test``, the context names.
    """
    from PIL import Image

    theme_dir = Path(theme_dir)
    reason = _icon_missing(theme_dir)
    if reason is not None:
        raise ConversionError(theme_dir, reason)
    files = _icon_files(theme_dir, sizes)
    if not files:
        raise ConversionError(theme_dir, f"no symbolic icons of sizes {list(sizes)}; the theme has "
                                         f"{', '.join(map(str, ICON_SIZES))}", field="sizes")
    files = _distinct_icons(files)
    counts: dict[str, int] = {}
    for context, _ in files:
        counts[context] = counts.get(context, 0) + 1
    contexts = sorted(c for c, n in counts.items() if n >= min_icons)
    if len(contexts) < 2:
        raise ConversionError(theme_dir, f"only {len(contexts)} context(s) with >= {min_icons} icons",
                              field="min_icons")
    keys = sorted(k for k in files if k[0] in contexts)
    strata = np.asarray([contexts.index(k[0]) for k in keys])
    train_mask, test_mask = split_by_group(np.arange(len(keys)), strata, test_fraction, seed)
    rng = np.random.default_rng(seed + 1)
    out: list = []
    for mask in (train_mask, test_mask):
        xs, ys = [], []
        for i in np.flatnonzero(mask):
            for _, png in sorted(files[keys[i]].items()):
                with Image.open(png) as img:
                    rgba = img.convert("RGBA")
                white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                xs.append(np.asarray(Image.alpha_composite(white, rgba).convert("L"))[..., None])
                ys.append(strata[i])
        order = rng.permutation(len(ys))
        out += [[xs[j] for j in order], np.asarray(ys, dtype=np.int64)[order]]
    return out[0], out[1], out[2], out[3], contexts


# --- emoji (colour pictures of objects, by category) ---------------------------------------------

EMOJI_FONT_PACKAGE = "fonts-noto-color-emoji"
EMOJI_FONT_NAMES = ("NotoColorEmoji.ttf",)
EMOJI_FONT_SIZE = 109  # the only size of Noto Color Emoji's bitmaps
EMOJI_CATEGORIES = {
    "animal": "🐶🐱🐭🐹🐰🦊🐻🐼🐨🐯🦁🐮🐷🐸🐵🐔🐧🐦🐤🦆🦅🦉🐺🐗🐴🦄🐝🐛🦋🐌🐞🐢🐍🦎🐙🦀🐠🐟🐬🐳🐘🦒🦓🐪",
    "food": "🍏🍎🍐🍊🍋🍌🍉🍇🍓🍒🍑🍍🥥🥝🍅🍆🥑🥦🥕🌽🥔🍠🥐🍞🥖🧀🥚🍳🥞🥓🍗🍖🌭🍔🍟🍕🥪🌮🌯🍜🍝🍣🍤🍙🍩🍪🎂🍰🍫🍬🍭🍦",
    "vehicle": "🚗🚕🚙🚌🚎🚓🚑🚒🚐🚚🚛🚜🛴🚲🛵🚨🚔🚍🚘🚖🚡🚠🚟🚃🚋🚞🚝🚄🚅🚈🚂🚆🚇🚊🛫🛬🚀🛸🚁🛶🚤🛥🚢",
    "face": "😀😃😄😁😆😅😂🤣😊😇🙂🙃😉😌😍😘😗😋😛😝😜🤪🤨🧐🤓😎🤩😏😒😞😔😟😕🙁😣😖😫😩😢😭😤😠😡🤯😳😱😨😰😥😓🤗🤔🤭🤫",
    "person": "👶👧🧒👦👩🧑👨👵🧓👴👲👳👮👷💂🕵👸🤴🎅🤶🧙🧚🧛🧜🧝🧞🧟💆💇🚶🏃💃🕺👯🧖🧗🏇🏂🏌🏄🚣🏊🚴🚵🤸🤼🤽🤾🤹",
    "plant": "🌵🎄🌲🌳🌴🌱🌿🍀🎍🎋🍃🍂🍁🍄🌾💐🌷🌹🥀🌺🌸🌼🌻",
    "building": "🏠🏡🏘🏚🏗🏭🏢🏬🏣🏤🏥🏦🏨🏪🏫🏩💒🏛⛪🕌🕍🕋⛩🗼🗽🏰🏯🏟",
    "sport": "⚽🏀🏈⚾🎾🏐🏉🎱🏓🏸🥅🏒🏑🏏⛳🏹🎣🥊🥋🎿🛷🥌🎯🎳🏆🏅🥇",
}
"""Emoji by category (:func:`load_emoji`'s classes); those the font cannot draw are left out."""


def find_emoji_font(dirs: Sequence[str | Path] | None = None) -> Path | None:
    """The colour emoji font file (Noto Color Emoji), or None."""
    for path in find_fonts(dirs):
        if path.name in EMOJI_FONT_NAMES:
            return path
    return None


def _emoji_missing() -> str | None:
    if find_emoji_font() is None:
        return f"no colour emoji font found; install the Debian package: apt-get install {EMOJI_FONT_PACKAGE}"
    return None


def _emoji_bitmaps(font_path: Path, characters: Sequence[str]) -> dict[str, np.ndarray]:
    """Each character drawn once in colour, cropped to its bounding box: ``{char: [h, w, 4]}``.

    Characters the font lacks (blank, or drawn as the missing-glyph box) are left out.
    """
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.truetype(str(font_path), EMOJI_FONT_SIZE)
    canvas = int(EMOJI_FONT_SIZE * 1.6)

    def draw(char: str) -> np.ndarray:
        img = Image.new("RGBA", (canvas, canvas), (0, 0, 0, 0))
        ImageDraw.Draw(img).text((canvas / 2, canvas / 2), char, font=font, anchor="mm", embedded_color=True)
        return np.asarray(img)

    missing = draw("\U0010fffd")
    out = {}
    for char in characters:
        arr = draw(char)
        alpha = arr[..., 3]
        if not alpha.any() or np.array_equal(arr, missing):
            logger.debug("emoji %r not in %s", char, font_path)
            continue
        rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
        out[char] = arr[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return out


def _emoji_example(bitmap: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """One picture: the emoji rotated (up to 20 degrees), scaled to 55-90 % of the side, shifted,
    on a random plain background colour. ``[size, size, 3]`` uint8."""
    from PIL import Image

    img = Image.fromarray(bitmap).rotate(float(rng.uniform(-20, 20)), resample=Image.Resampling.BICUBIC,
                                         expand=True)
    box = float(rng.uniform(0.55, 0.9)) * size
    scale = box / max(img.size)
    w, h = max(1, round(img.size[0] * scale)), max(1, round(img.size[1] * scale))
    img = img.resize((w, h), Image.Resampling.LANCZOS)
    background = Image.new("RGBA", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)) + (255,))
    dx = int(np.clip((size - w) // 2 + rng.integers(-size // 8, size // 8 + 1), 0, size - w))
    dy = int(np.clip((size - h) // 2 + rng.integers(-size // 8, size // 8 + 1), 0, size - h))
    background.alpha_composite(img, (dx, dy))
    return np.asarray(background.convert("RGB"))


def load_emoji(seed: int = 0, task: str = "category", categories: Sequence[str] | None = None,
               renders_per_emoji: int = 8, test_fraction: float = 1 / 3, n_train_per_class: int = 60,
               n_test_per_class: int = 30, size: int = 32,
               font_dirs: Sequence[str | Path] | None = None) -> SourceArrays:
    """Colour pictures of objects, animals, food, people and places: emoji of Noto Color Emoji.

    Each example is one emoji drawn in colour, rotated by up to 20 degrees, scaled to fill 55
    to 90 % of the image, shifted, on a random plain background colour.

    - ``task="category"``: the class is the emoji's category (animal, food, vehicle, face,
      person, plant, building, sport: :data:`EMOJI_CATEGORIES`), and test holds *other* emoji
      than train (a seeded split of each category's emoji, ``test_fraction`` to test), each
      drawn ``renders_per_emoji`` times: recognising what kind of thing an unseen picture
      shows, where knowledge of objects helps.
    - ``task="emoji"``: the class is the emoji itself (those of ``categories``), with
      ``n_train_per_class`` / ``n_test_per_class`` drawings each.

    Provenance: Debian ``fonts-noto-color-emoji`` (Google, SIL Open Font Licence 1.1 / Apache-2.0).

    Parameters
    ----------
    seed:
        Seed of the split, the drawings and the order of the examples.
    task:
        ``category`` or ``emoji``.
    categories:
        Categories to use (default: all).
    renders_per_emoji, test_fraction:
        For ``task="category"``.
    n_train_per_class, n_test_per_class:
        For ``task="emoji"``.
    size:
        Side of the output images.
    font_dirs:
        Folders to search for the font; default :data:`autodl.fonts.FONT_DIRS`.

    Returns
    -------
    tuple
        ``x_train [N, size, size, 3]`` uint8, ``y_train``, ``x_test``, ``y_test``, names.
    """
    if task not in ("category", "emoji"):
        raise ConversionError(None, f"task={task!r}: expected 'category' or 'emoji'", field="task")
    chosen = list(EMOJI_CATEGORIES) if categories is None else list(categories)
    unknown = [c for c in chosen if c not in EMOJI_CATEGORIES]
    if unknown or not chosen:
        raise ConversionError(None, f"categories={chosen!r}: expected some of {', '.join(EMOJI_CATEGORIES)}",
                              field="categories")
    font_path = find_emoji_font(font_dirs)
    if font_path is None:
        raise ConversionError(None, f"no colour emoji font found; install the Debian package: "
                                    f"apt-get install {EMOJI_FONT_PACKAGE}", field="fonts")
    by_category = {c: list(dict.fromkeys(EMOJI_CATEGORIES[c])) for c in chosen}
    bitmaps = _emoji_bitmaps(font_path, [e for c in chosen for e in by_category[c]])
    by_category = {c: [e for e in es if e in bitmaps] for c, es in by_category.items()}
    rng = np.random.default_rng(seed)
    plan: dict[str, list[tuple[str, int]]] = {"train": [], "test": []}
    if task == "category":
        names = chosen
        for label, c in enumerate(chosen):
            es = by_category[c]
            if len(es) < 2:
                raise ConversionError(font_path, f"the font draws {len(es)} emoji of category {c!r}; "
                                                 f"expected at least 2", field="categories")
            train_mask, test_mask = split_by_group(np.arange(len(es)), np.zeros(len(es)), test_fraction,
                                                    seed + label)
            plan["train"] += [(es[i], label) for i in np.flatnonzero(train_mask) for _ in range(renders_per_emoji)]
            plan["test"] += [(es[i], label) for i in np.flatnonzero(test_mask) for _ in range(renders_per_emoji)]
    else:
        names = [e for c in chosen for e in by_category[c]]
        for label, e in enumerate(names):
            plan["train"] += [(e, label)] * n_train_per_class
            plan["test"] += [(e, label)] * n_test_per_class
    logger.info("drawing %d emoji (%s task) from %s", len(bitmaps), task, font_path)
    out: list = []
    for subset in ("train", "test"):
        x = [_emoji_example(bitmaps[e], size, rng) for e, _ in plan[subset]]
        y = np.asarray([label for _, label in plan[subset]], dtype=np.int64)
        order = rng.permutation(len(y))
        xa = np.stack(x)[order] if x else np.zeros((0, size, size, 3), np.uint8)
        out += [xa, y[order]]
    return out[0], out[1], out[2], out[3], names


# --- multi-label glyphs ---------------------------------------------------------------------------

def load_multi_glyphs(seed: int = 0, characters: str = "ABCDEFGH", n_train: int = 1200, n_test: int = 400,
                      cell: int = 24, grid: int = 2, max_labels: int = 3,
                      font_dirs: Sequence[str | Path] | None = None) -> SourceArrays:
    """Multi-label: which characters are on a canvas of several glyphs.

    The canvas is a ``grid x grid`` arrangement of ``cell``-pixel cells; each example has 1
    to ``max_labels`` distinct characters (count and characters drawn uniformly), each
    drawn as :func:`load_glyphs` draws one (random font, rotation, scale, shift) in a
    distinct random cell; the others stay black. The labels are the characters present.

    Parameters
    ----------
    seed:
        Seed of the contents, drawings and cells.
    characters:
        The labels, one per character.
    n_train, n_test:
        Examples in each subset.
    cell:
        Side of a cell in pixels (the canvas is ``grid * cell``).
    grid:
        Cells per side.
    max_labels:
        At most this many characters per example (at most ``grid**2`` and ``len(characters)``).
    font_dirs:
        Folders to search for fonts; default :data:`autodl.fonts.FONT_DIRS`.

    Returns
    -------
    tuple
        ``x_train [n_train, grid*cell, grid*cell, 1]`` uint8, ``y_train [n_train,
        len(characters)]`` int64 0/1 (several ones per row), ``x_test``, ``y_test``, names.
    """
    if not characters or len(set(characters)) != len(characters):
        raise ConversionError(None, f"characters={characters!r}: expected distinct characters",
                              field="characters")
    if not 1 <= max_labels <= min(grid * grid, len(characters)):
        raise ConversionError(None, f"max_labels={max_labels}: expected 1 to "
                                    f"{min(grid * grid, len(characters))}", field="max_labels")
    fonts = _fonts_for(characters, font_dirs)
    rng = np.random.default_rng(seed)
    side = grid * cell
    out: list = []
    for n in (n_train, n_test):
        x = np.zeros((n, side, side, 1), np.uint8)
        y = np.zeros((n, len(characters)), np.int64)
        for i in range(n):
            k = int(rng.integers(1, max_labels + 1))
            chars = rng.choice(len(characters), size=k, replace=False)
            cells = rng.choice(grid * grid, size=k, replace=False)
            for c, where in zip(chars, cells):
                r, col = divmod(int(where), grid)
                x[i, r * cell:(r + 1) * cell, col * cell:(col + 1) * cell, 0] = \
                    draw_glyph(fonts, characters[int(c)], cell, rng)
                y[i, int(c)] = 1
        out += [x, y]
    return out[0], out[1], out[2], out[3], list(characters)


# --- moving digits (synthetic video whose class is the content) -----------------------------------

def load_moving_digits(seed: int = 0, n_train_per_class: int = 60, n_test_per_class: int = 30, frames: int = 8,
                       size: int = 24, digit: int = 12, max_speed: int = 2) -> SourceArrays:
    """Synthetic video: a handwritten digit moving across the frame, class = the digit.

    A scikit-learn digit (8x8, enlarged to ``digit`` pixels; train clips from the training
    part of :func:`load_digits`' split, test clips from its test part) starts at a random
    place and moves with a random constant velocity (up to ``max_speed`` pixels a frame in
    each direction), bouncing off the edges. Unlike ``moving_squares`` every frame shows the
    class; the motion is a nuisance, as in Moving MNIST.

    Parameters
    ----------
    seed:
        Seed of the digits drawn, starts, velocities and order.
    n_train_per_class, n_test_per_class:
        Clips per digit in each subset.
    frames:
        Frames per clip.
    size:
        Side of the frames.
    digit:
        Side of the digit in the frame (less than ``size``).
    max_speed:
        Largest step per frame in each direction (a zero velocity is drawn again).

    Returns
    -------
    tuple
        ``x_train [10*n_train_per_class, frames, size, size, 1]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the names ``0`` to ``9``.
    """
    if not 1 <= digit < size:
        raise ConversionError(None, f"digit={digit}: expected 1 <= digit < size={size}", field="digit")
    if max_speed < 1:
        raise ConversionError(None, f"max_speed={max_speed}: expected >= 1", field="max_speed")
    x_tr, y_tr, x_te, y_te, names = load_digits(seed)
    rng = np.random.default_rng(seed)
    span = size - digit
    out: list = []
    for images, ys, n in ((x_tr, y_tr, n_train_per_class), (x_te, y_te, n_test_per_class)):
        big = np.stack([resize_image(img, digit, digit) for img in images]).reshape(len(images), digit, digit)
        labels_out = rng.permutation(np.repeat(np.arange(10, dtype=np.int64), n))
        clips = np.zeros((len(labels_out), frames, size, size, 1), np.uint8)
        for i, label in enumerate(labels_out):
            img = big[int(rng.choice(np.flatnonzero(ys == label)))]
            pos = rng.integers(0, span + 1, 2).astype(np.int64)
            vel = np.zeros(2, np.int64)
            while not vel.any():
                vel = rng.integers(-max_speed, max_speed + 1, 2)
            for t in range(frames):
                clips[i, t, pos[0]:pos[0] + digit, pos[1]:pos[1] + digit, 0] = img
                nxt = pos + vel
                for d in range(2):  # bounce off the edges
                    if nxt[d] < 0 or nxt[d] > span:
                        vel[d] = -vel[d]
                        nxt[d] = pos[d] + vel[d]
                pos = np.clip(nxt, 0, span)
        out += [clips, labels_out]
    return out[0], out[1], out[2], out[3], names


# --- the core sources (autodl.sources registers them first, in this order) --------------------------------

CORE_SOURCES = (
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
    DataSource("photos", "colour crops of 6 photos bundled with scikit-image and scikit-learn (astronaut, "
                         "chelsea, coffee, rocket: public domain or CC0; china, flower: CC BY 2.0), class = "
                         "the photo, variable size 32-96 px, train and test from disjoint parts",
               "6 classes, variable HxWx3", load_photos, _check_photos),
    DataSource("microscopy", "medical-looking colour crops of 4 images bundled with scikit-image "
                             "(immunohistochemistry, fundus photograph, cell micrograph, retinal "
                             "microaneurysms; CC0 or no known restrictions), class = the image",
               "4 classes, 32x32x3", load_microscopy, _check_microscopy),
    DataSource("faces", "faces vs background crops: scikit-image's bundled LFW subset (Huang et al. 2007; "
                        "research use, no explicit licence), 200 images, seeded 2/3-1/3 split",
               "2 classes, 25x25x1", load_faces, _check_faces),
    DataSource("icons", "GNOME Adwaita symbolic icons (Debian adwaita-icon-theme, CC BY-SA 3.0 or LGPL-3) "
                        "at sizes 16-96 px, class = the theme's context folder, test icons unseen in train",
               "10 classes, variable sxsx1", load_icons, lambda: _icon_missing(ICON_THEME_DIR)),
    DataSource("emoji", "colour emoji of Noto Color Emoji (Debian fonts-noto-color-emoji, OFL-1.1/Apache-2.0) "
                        "drawn rotated, scaled and shifted on random backgrounds; class = category "
                        "(animal, food, vehicle, ...), test emoji unseen in train",
               "8 classes, 32x32x3", load_emoji, _emoji_missing),
    DataSource("multi_glyphs", "multi-label: 1 to 3 of the letters A-H rendered from the installed fonts "
                               f"({FONT_PACKAGE}) in the cells of a 2x2 grid; labels = the letters present",
               "8 classes (multi-label), 48x48x1", load_multi_glyphs, _check_fonts),
    DataSource("moving_digits", "synthetic video: a scikit-learn digit (UCI, CC BY 4.0) moving and bouncing "
                                "in a 24x24 frame, class = the digit; every frame shows the class",
               "10 classes, 8x24x24x1 clips", load_moving_digits, _check_sklearn),
)
"""The core sources, in the order :data:`autodl.sources.SOURCES` lists them first."""
