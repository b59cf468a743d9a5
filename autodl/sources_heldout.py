"""Held-out data sources: the benchmark's datasets, made from data no training collection uses.

The shipped system is judged on datasets it has never seen (``configs/collections/
heldout.yaml``, ``autodl-meta benchmark heldout``). Their sources here draw on other Debian
packages, other classes, fonts and generators than the training collection
(``configs/collections/default.yaml``), so that no training dataset is a near copy of a
held-out one:

- ``greek_letters``: Greek letters that look like no Latin letter, digit or mathematical
  symbol of the training glyphs, rendered from GNU FreeFont and the URW base35 fonts
  (Debian ``fonts-freefont-ttf``, ``fonts-urw-base35``); test fonts are typeface designs
  never drawn in training. 28x28x1.
- ``tuxpaint_stamps``: Tux Paint's colour stamps (Debian ``tuxpaint-stamps-default``, many
  photographic cut-outs) on random backgrounds, class = the stamp's category, unseen stamps
  in test, variable size with the longer side 128 to 256 pixels.
- ``gimp_patterns``: GIMP's texture patterns (Debian ``gimp-data``), class = the pattern,
  rotated and rescaled views of the tiled pattern; test views are mirror images, never
  shown in training. 32x32x3.
- ``wesnoth_portraits``: few-shot (at most 20 training examples per class): painted
  portraits of Battle for Wesnoth (Debian ``wesnoth-1.16-data``), class = the race, test
  portraits of units never seen in training. 64x64x3.
- ``shape_scenes``: multi-label: 1 to 3 coloured shapes (circle, square, triangle, star,
  cross, ring, hexagon, crescent) on noisy gradients; labels = the shapes present. 64x64x3.
- ``wesnoth_animations``: video told apart by appearance: a Wesnoth unit's own animation
  frames (attack, idle, defend, ...) drifting over a smooth background, class = the race,
  test units never seen in training. 8 frames of 48x48x3.
- ``spin_zoom``: video told apart only by motion: a random texture turning clockwise or
  anticlockwise, or zooming in or out. The texture lives on a torus in log-polar
  coordinates, where turning and zooming are shifts by whole cells, so every single frame,
  whatever the class and the frame's place, is one draw of the same stationary random field
  (identical distributions by construction); only the order of the frames tells the class.
  Training's ``moving_squares`` translates; this generator rotates and scales. 8 frames of
  32x32x1.
- ``earth_landcover``: aerial-like: crops of NASA's Blue Marble map of the Earth (Debian
  ``xplanet-images``), class = land cover (desert, tropical forest, boreal forest, steppe,
  mountains, ice, ocean) from hand-drawn regions, test crops from *other* regions of the world than
  training's (e.g. Sahara in train, Arabia and Australia in test). 32x32x3.

Every loader takes ``seed`` and keyword parameters and returns ``(x_train, y_train, x_test,
y_test, class names)`` as :mod:`autodl.sources` describes; each source's check names the
Debian package to install. The sources are registered in :data:`autodl.sources.SOURCES` when
:mod:`autodl.sources` is imported.
"""

from __future__ import annotations

import colorsys
import hashlib
import logging
import math
import re
import struct
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from autodl.compose import (
    alpha_crop,
    check_int,
    paste,
    random_background,
    read_rgba,
    scaled_rgba,
    shuffled,
    smooth_background,
)
from autodl.errors import ConversionError
from autodl.fonts import HELD_OUT_FONT_DIRS, draw_glyph, find_fonts, glyph_fonts
from autodl.images import resize_image, split_by_group
from autodl.source_types import DataSource, SourceArrays

logger = logging.getLogger(__name__)


# --- Greek letters (symbols, unseen fonts in test) ---------------------------------------------

GREEK_FONT_DIRS = HELD_OUT_FONT_DIRS
GREEK_FONT_PACKAGES = ("fonts-freefont-ttf", "fonts-urw-base35")
GREEK_LETTERS = "ΓΔΘΛΞΦΨΩαβγζηλμξστωϑ"
"""The classes of ``greek_letters``: Greek letters that look like no Latin letter, digit or
mathematical symbol of the training collection (no A, B, E, ..., no Π, Σ, π, δ, ε, near its
product and sum signs, its partial-derivative and element-of signs) nor like one another once
scaled to the image (no ψ beside Ψ, no φ beside Φ)."""


def font_family(path: str | Path) -> str:
    """A font file's family: its name without weight and slant (``FreeSerifBoldItalic`` ->
    ``FreeSerif``, ``NimbusSans-BoldItalic`` -> ``NimbusSans``)."""
    stem = Path(path).stem.split("-")[0]
    return re.sub(r"(Bold|Oblique|Italic)+$", "", stem) or stem


FONT_DESIGNS = {
    "FreeSerif": "Times", "NimbusRoman": "Times",
    "FreeSans": "Helvetica", "NimbusSans": "Helvetica", "NimbusSansNarrow": "Helvetica",
    "FreeMono": "Courier", "NimbusMonoPS": "Courier",
    "P052": "Palatino", "C059": "Century Schoolbook", "URWBookman": "Bookman", "URWGothic": "Avant Garde",
    "Z003": "Zapf Chancery", "StandardSymbolsPS": "Symbol",
}
"""The typeface design of each FreeFont / URW base35 family: GNU FreeFont grew out of the URW
fonts, so FreeSerif and Nimbus Roman are both Times, FreeSans and Nimbus Sans both Helvetica.
``greek_letters`` splits by design, so that test letters are in typefaces never seen."""


def font_design(path: str | Path) -> str:
    """A font file's typeface design (:data:`FONT_DESIGNS`; its family where not listed)."""
    family = font_family(path)
    return FONT_DESIGNS.get(family, family)


def greek_fonts(characters: str = GREEK_LETTERS, font_dirs: Sequence[str | Path] | None = None
                ) -> dict[str, list[tuple[Path, object]]]:
    """The fonts of ``font_dirs`` (default: FreeFont and URW base35 only) that draw every one
    of ``characters``, by typeface design: ``{design: [(path, font), ...]}`` (:func:`font_design`)."""
    files = find_fonts(GREEK_FONT_DIRS if font_dirs is None else font_dirs)
    designs: dict[str, list[tuple[Path, object]]] = {}
    for path in files:
        for loaded in glyph_fonts([path], characters, 96):
            designs.setdefault(font_design(path), []).append(loaded)
    return dict(sorted(designs.items()))


def split_font_families(families: Sequence[str], seed: int, test_fraction: float) -> tuple[list[str], list[str]]:
    """A seeded split of font designs (or families) into training and test ones (each non-empty
    when there are two or more)."""
    train_mask, test_mask = split_by_group(np.arange(len(families)), np.zeros(len(families)), test_fraction, seed)
    return [families[i] for i in np.flatnonzero(train_mask)], [families[i] for i in np.flatnonzero(test_mask)]


def _greek_missing(font_dirs: Sequence[str | Path] | None = None) -> str | None:
    dirs = GREEK_FONT_DIRS if font_dirs is None else font_dirs
    if not find_fonts(dirs):
        return (f"no font in {', '.join(map(str, dirs))}; install the Debian packages: "
                f"apt-get install {' '.join(GREEK_FONT_PACKAGES)}")
    return None


def load_greek_letters(seed: int = 0, characters: str = GREEK_LETTERS, n_train_per_class: int = 40,
                       n_test_per_class: int = 20, size: int = 28, test_fraction: float = 1 / 3,
                       font_dirs: Sequence[str | Path] | None = None) -> SourceArrays:
    """Greek letters drawn from fonts no training dataset uses; test fonts never seen in training.

    Each example is one letter drawn white on black as :func:`autodl.sources_core.load_glyphs` draws
    one (rotated up to 15 degrees, scaled to 55-85 % of the image, shifted up to 3 pixels), in
    a font of GNU FreeFont (Debian ``fonts-freefont-ttf``, GPL-3+ with the font exception) or
    the URW base35 fonts (``fonts-urw-base35``, AGPL-3 with the font exception). Typeface
    *designs* (e.g. Times: FreeSerif and Nimbus Roman with their bold and italic faces;
    :data:`FONT_DESIGNS`) are split at random: training letters come from some designs, test
    letters from the others, so the test asks for letters in typefaces never seen.

    Parameters
    ----------
    seed:
        Seed of the family split, the drawings and the order.
    characters:
        The classes, one per character.
    n_train_per_class, n_test_per_class:
        Drawings per letter in each subset.
    size:
        Side of the images.
    test_fraction:
        Share of the typeface designs kept for test.
    font_dirs:
        Folders to take fonts from; default :data:`GREEK_FONT_DIRS` (only these: the
        training glyphs draw from the other installed fonts).

    Returns
    -------
    tuple
        ``x_train [len(characters)*n_train_per_class, size, size, 1]`` uint8, ``y_train``,
        ``x_test``, ``y_test``, the characters.
    """
    if not characters or len(set(characters)) != len(characters):
        raise ConversionError(None, f"characters={characters!r}: expected distinct characters", field="characters")
    reason = _greek_missing(font_dirs)
    if reason is not None:
        raise ConversionError(None, reason, field="fonts")
    families = greek_fonts(characters, font_dirs)
    if len(families) < 2:
        raise ConversionError(None, f"{len(families)} typeface draws {characters!r}; expected at least 2 "
                                    f"(install {' '.join(GREEK_FONT_PACKAGES)})", field="fonts")
    train_fams, test_fams = split_font_families(list(families), seed, test_fraction)
    logger.info("greek letters: training fonts %s, test fonts %s", train_fams, test_fams)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for fams, n in ((train_fams, n_train_per_class), (test_fams, n_test_per_class)):
        fonts = [f for fam in fams for f in families[fam]]
        xs = [draw_glyph(fonts, c, size, rng)[..., None] for c in characters for _ in range(n)]
        ys = [k for k in range(len(characters)) for _ in range(n)]
        out += list(shuffled(xs, ys, rng, True, (size, size, 1)))
    return out[0], out[1], out[2], out[3], list(characters)


# --- Tux Paint stamps (colour photos and drawings of variable size) ---------------------------------

TUXPAINT_DIR = Path("/usr/share/tuxpaint/stamps")
TUXPAINT_PACKAGE = "tuxpaint-stamps-default"
TUXPAINT_CATEGORIES = ("animals", "food", "household", "plants", "seasonal", "symbols", "town", "vehicles")


def tuxpaint_files(category: str, stamps_dir: str | Path = TUXPAINT_DIR) -> list[Path]:
    """The PNG stamps of a category (all its sub-folders), sorted, byte-identical copies dropped."""
    seen: set[str] = set()
    out = []
    for png in sorted((Path(stamps_dir) / category).rglob("*.png")):
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(png)
    return out


def split_stamps(files: dict[str, list[Path]], seed: int, max_stamps: int, test_fraction: float
                 ) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per category, at most ``max_stamps`` stamps drawn at random, split into train and test files."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for k, (category, paths) in enumerate(files.items()):
        chosen = [paths[i] for i in sorted(rng.permutation(len(paths))[:max_stamps])]
        tr, te = split_by_group(np.arange(len(chosen)), np.zeros(len(chosen)), test_fraction, seed + 1 + k)
        train[category] = [chosen[i] for i in np.flatnonzero(tr)]
        test[category] = [chosen[i] for i in np.flatnonzero(te)]
    return train, test


def _stamp_example(rgba: np.ndarray, rng: np.random.Generator, min_side: int, max_side: int) -> np.ndarray:
    """A stamp on a random background: the picture's longer side drawn in ``[min_side,
    max_side]``, aspect in [3/4, 4/3], the stamp filling 60-95 % of it, maybe mirrored."""
    longer = int(rng.integers(min_side, max_side + 1))
    aspect = float(np.exp(rng.uniform(np.log(0.75), np.log(4 / 3))))
    h, w = (longer, max(min_side, round(longer / aspect))) if aspect >= 1 else (max(min_side, round(longer * aspect)),
                                                                               longer)
    stamp = alpha_crop(rgba)
    fill = float(rng.uniform(0.6, 0.95))
    scale = fill * min(h / stamp.shape[0], w / stamp.shape[1])
    sh, sw = max(1, round(stamp.shape[0] * scale)), max(1, round(stamp.shape[1] * scale))
    stamp = scaled_rgba(stamp, sh, sw)
    if rng.random() < 0.5:
        stamp = stamp[:, ::-1]
    top, left = int(rng.integers(0, h - sh + 1)), int(rng.integers(0, w - sw + 1))
    return paste(random_background(h, w, rng), stamp, top, left)


def _tuxpaint_missing(stamps_dir: str | Path = TUXPAINT_DIR) -> str | None:
    if not (Path(stamps_dir) / "animals").is_dir():
        return f"no Tux Paint stamps in {stamps_dir}; install the Debian package: apt-get install {TUXPAINT_PACKAGE}"
    return None


def load_tuxpaint_stamps(seed: int = 0, categories: Sequence[str] = TUXPAINT_CATEGORIES, max_stamps: int = 45,
                         n_train_per_class: int = 100, n_test_per_class: int = 40, test_fraction: float = 1 / 3,
                         min_side: int = 128, max_side: int = 256,
                         stamps_dir: str | Path = TUXPAINT_DIR) -> SourceArrays:
    """Colour pictures of objects by category: Tux Paint's stamps, variable size, unseen stamps in test.

    Tux Paint's default stamps (Debian ``tuxpaint-stamps-default``, GPL-2; many are
    photographs cut out of their background, others drawings) are filed by category
    (animals, food, household, plants, ...): the category is the class. Per category at most
    ``max_stamps`` PNG stamps are drawn at random and split by file (``test_fraction`` to
    test), so test pictures show things never seen in training. Each example is a stamp
    pasted, maybe mirrored, on a random plain or gradient background with a little noise;
    the picture's longer side is drawn in ``[min_side, max_side]`` and its aspect in
    [3/4, 4/3] (variable-size colour images).

    Parameters
    ----------
    seed:
        Seed of the stamps chosen, the split, the drawings and the order.
    categories:
        Top-level stamp folders used as classes.
    max_stamps:
        At most this many stamps per category (balances the classes).
    n_train_per_class, n_test_per_class:
        Pictures per category in each subset (the subset's stamps used in turn).
    test_fraction:
        Share of each category's stamps kept for test.
    min_side, max_side:
        Range of the pictures' longer side in pixels.
    stamps_dir:
        Tux Paint's stamp folder.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[h, w, 3]`` uint8 arrays), ``y_train``, ``x_test``, ``y_test``,
        the categories.
    """
    reason = _tuxpaint_missing(stamps_dir)
    if reason is not None:
        raise ConversionError(Path(stamps_dir), reason)
    check_int("max_stamps", max_stamps, 2)
    check_int("min_side", min_side, 8)
    check_int("max_side", max_side, min_side)
    files = {}
    for c in categories:
        found = tuxpaint_files(c, stamps_dir)
        if len(found) < 2:
            raise ConversionError(Path(stamps_dir) / c, f"holds {len(found)} PNG stamp(s); expected at least 2 "
                                                         f"(categories: {', '.join(TUXPAINT_CATEGORIES)})",
                                  field="categories")
        files[c] = found
    train_files, test_files = split_stamps(files, seed, max_stamps, test_fraction)
    return _paste_splits(train_files, test_files, categories, n_train_per_class, n_test_per_class, seed, min_side,
                         max_side)


def _paste_splits(train_files: dict[str, list[Path]], test_files: dict[str, list[Path]], categories: Sequence[str],
                  n_train_per_class: int, n_test_per_class: int, seed: int, min_side: int,
                  max_side: int) -> tuple[Any, ...]:
    """``n`` examples per category and split, each a picture of the split's files (in a seeded
    order, cycling) pasted on a background by :func:`_stamp_example`; shuffled. Returns
    ``x_train, y_train, x_test, y_test, classes`` (Tux Paint stamps and clip art alike)."""
    rng = np.random.default_rng(seed)
    cache: dict[Path, np.ndarray] = {}
    out: list[Any] = []
    for split, n in ((train_files, n_train_per_class), (test_files, n_test_per_class)):
        xs, ys = [], []
        for label, c in enumerate(categories):
            paths = split[c]
            order = rng.permutation(len(paths))
            for i in range(n):
                path = paths[int(order[i % len(paths)])]
                if path not in cache:
                    cache[path] = read_rgba(path, max_side=2 * max_side)
                xs.append(_stamp_example(cache[path], rng, min_side, max_side))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, False, ()))
    return out[0], out[1], out[2], out[3], list(categories)


# --- GIMP patterns (colour textures) -----------------------------------------------------------------

GIMP_PATTERN_DIR = Path("/usr/share/gimp/2.0/patterns")
GIMP_PACKAGE = "gimp-data"
GIMP_CATEGORIES = ("Animal", "Fabric", "Food", "Paper", "Plant", "Sky", "Stone", "Water", "Wood")
"""The pattern folders ``gimp_patterns`` uses by default: all but ``Legacy`` (synthetic tiles
such as stripes and grids)."""


def read_gimp_pattern(path: str | Path) -> tuple[str, np.ndarray]:
    """Read a GIMP pattern (``.pat``): its name and pixels ``[H, W, C]`` uint8.

    The format: a big-endian header of ``header_size``, ``version`` (1), ``width``,
    ``height``, ``bytes`` per pixel (1 grey, 2 grey + alpha, 3 RGB, 4 RGBA) as uint32, the
    magic ``GPAT`` and the pattern's NUL-terminated UTF-8 name, then the pixels, row by row.

    Raises
    ------
    ConversionError
        Not a pattern file, or one whose size does not match its header.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConversionError(path, f"cannot be read ({exc})") from None
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise ConversionError(path, "is not a GIMP pattern (expected the magic 'GPAT' at byte 20)", field="header")
    header_size, version, width, height, depth = struct.unpack(">5I", data[:20])
    if version != 1 or depth not in (1, 2, 3, 4) or header_size < 24 or header_size > len(data):
        raise ConversionError(path, f"unsupported pattern header (version {version}, {depth} bytes per pixel)",
                              field="header")
    expected = width * height * depth
    if len(data) - header_size < expected:
        raise ConversionError(path, f"holds {len(data) - header_size} bytes of pixels; the header says {expected}",
                              field="header")
    name = data[24:header_size].split(b"\0", 1)[0].decode("utf-8", "replace")
    pixels = np.frombuffer(data, np.uint8, count=expected, offset=header_size).reshape(height, width, depth)
    return name, pixels.copy()


def gimp_patterns(categories: Sequence[str] = GIMP_CATEGORIES, patterns_dir: str | Path = GIMP_PATTERN_DIR
                  ) -> dict[str, Path]:
    """``{"Category/stem": path}`` of the patterns in those folders, sorted."""
    out = {}
    for c in categories:
        for path in sorted((Path(patterns_dir) / c).glob("*.pat")):
            out[f"{c}/{path.stem}"] = path
    return out


def _pattern_rgb(pixels: np.ndarray) -> np.ndarray:
    """Pattern pixels as RGB (grey copied; alpha composited on mid grey)."""
    if pixels.shape[-1] in (2, 4):
        a = pixels[..., -1:].astype(np.float64) / 255.0
        colour = pixels[..., :-1].astype(np.float64)
        pixels = np.clip(np.rint(colour * a + 128 * (1 - a)), 0, 255).astype(np.uint8)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    return pixels


def _texture_view(tile: np.ndarray, rng: np.random.Generator, size: int, min_crop: int, max_crop: int,
                  mirror: bool) -> np.ndarray:
    """A view of a periodic tile: a square of side ``min_crop..max_crop`` at a random place and
    any angle, brightness and contrast jittered by up to 10 %, resized to ``size``; mirrored
    left-right when ``mirror``."""
    from PIL import Image

    side = int(rng.integers(min_crop, max_crop + 1))
    span = int(math.ceil(side * math.sqrt(2))) + 2
    reps = (span // tile.shape[0] + 2, span // tile.shape[1] + 2, 1)
    plane = np.tile(tile, reps)
    r0, c0 = int(rng.integers(0, tile.shape[0])), int(rng.integers(0, tile.shape[1]))
    big = np.ascontiguousarray(plane[r0:r0 + span, c0:c0 + span])
    turned = np.asarray(Image.fromarray(big).rotate(float(rng.uniform(0, 360)), resample=Image.Resampling.BILINEAR))
    m = (span - side) // 2
    crop = turned[m:m + side, m:m + side]
    if mirror:
        crop = crop[:, ::-1]
    view = resize_image(np.ascontiguousarray(crop), size, size).astype(np.float64)
    mean = view.mean()
    view = (view - mean) * rng.uniform(0.9, 1.1) + mean * rng.uniform(0.9, 1.1)
    return np.clip(np.rint(view), 0, 255).astype(np.uint8)


def _gimp_missing(patterns_dir: str | Path = GIMP_PATTERN_DIR) -> str | None:
    if not any(Path(patterns_dir).glob("*/*.pat")):
        return f"no GIMP patterns in {patterns_dir}; install the Debian package: apt-get install {GIMP_PACKAGE}"
    return None


def load_gimp_patterns(seed: int = 0, categories: Sequence[str] = GIMP_CATEGORIES, n_train_per_class: int = 24,
                       n_test_per_class: int = 12, size: int = 32, min_crop: int = 32, max_crop: int = 64,
                       patterns_dir: str | Path = GIMP_PATTERN_DIR) -> SourceArrays:
    """Colour texture recognition: GIMP's patterns, class = the pattern.

    The patterns of GIMP (Debian ``gimp-data``, GPL-3+; stone, wood, water, sky, paper,
    fabric, food, animal skins; the ``Legacy`` folder of synthetic tiles is left out by
    default) are periodic tiles of 50 to 156 pixels. A view is a square of side
    ``min_crop..max_crop`` of the tiled plane at a random place, turned by any angle, with
    brightness and contrast jittered by up to 10 %, resized to ``size``. Training views are
    turned only; test views are also mirrored, a transform never shown in training (the
    tiles are periodic and smaller than a view, so pixels themselves cannot be kept apart).

    Parameters
    ----------
    seed:
        Seed of the views and the order.
    categories:
        Pattern folders to use (:data:`GIMP_CATEGORIES`; ``Legacy`` exists too).
    n_train_per_class, n_test_per_class:
        Views per pattern in each subset.
    size:
        Side of the images.
    min_crop, max_crop:
        Range of the views' side in pattern pixels.
    patterns_dir:
        GIMP's pattern folder.

    Returns
    -------
    tuple
        ``x_train [n_patterns*n_train_per_class, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the names ``Category/pattern``.
    """
    reason = _gimp_missing(patterns_dir)
    if reason is not None:
        raise ConversionError(Path(patterns_dir), reason)
    check_int("min_crop", min_crop, 2)
    check_int("max_crop", max_crop, min_crop)
    patterns = gimp_patterns(categories, patterns_dir)
    if len(patterns) < 2:
        raise ConversionError(Path(patterns_dir), f"{len(patterns)} pattern(s) in {list(categories)}; expected "
                                                  f"at least 2", field="categories")
    tiles = {name: _pattern_rgb(read_gimp_pattern(path)[1]) for name, path in patterns.items()}
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for n, mirror in ((n_train_per_class, False), (n_test_per_class, True)):
        xs = [_texture_view(tile, rng, size, min_crop, max_crop, mirror) for tile in tiles.values() for _ in range(n)]
        ys = [k for k in range(len(tiles)) for _ in range(n)]
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], list(tiles)


# --- Wesnoth portraits (few-shot colour) -----------------------------------------------------------

WESNOTH_IMAGES = Path("/usr/share/games/wesnoth/1.16/data/core/images")
WESNOTH_PACKAGE = "wesnoth-1.16-data"
PORTRAIT_RACES = ("drakes", "dwarves", "elves", "goblins", "humans", "merfolk", "nagas", "orcs", "trolls", "undead")


def portrait_unit(path: str | Path) -> str:
    """The unit a portrait shows: its file name without ``+female`` and a ``-2`` variant number."""
    stem = Path(path).stem.replace("+female", "")
    return re.sub(r"-\d+$", "", stem)


def split_portraits(races: Sequence[str], seed: int, test_fraction: float, images_dir: str | Path = WESNOTH_IMAGES
                    ) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per race, the portraits split by unit (a unit's variants stay on one side)."""
    train, test = {}, {}
    for k, race in enumerate(races):
        files = sorted((Path(images_dir) / "portraits" / race).glob("*.png"))
        units = sorted({portrait_unit(f) for f in files})
        if len(units) < 2:
            raise ConversionError(Path(images_dir) / "portraits" / race,
                                  f"holds {len(units)} unit portrait(s); expected at least 2", field="races")
        tr, _te = split_by_group(np.arange(len(units)), np.zeros(len(units)), test_fraction, seed + k)
        train_units = {units[i] for i in np.flatnonzero(tr)}
        train[race] = [f for f in files if portrait_unit(f) in train_units]
        test[race] = [f for f in files if portrait_unit(f) not in train_units]
    return train, test


def _portrait_example(rgba: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """A portrait on a random background: cropped to its figure, the top 80-100 % of it kept,
    scaled to fill 80-100 % of the square, maybe mirrored."""
    fig = alpha_crop(rgba)
    keep = int(round(fig.shape[0] * rng.uniform(0.8, 1.0)))
    fig = fig[:max(1, keep)]
    fill = float(rng.uniform(0.8, 1.0)) * size
    scale = fill / max(fig.shape[:2])
    h, w = max(1, round(fig.shape[0] * scale)), max(1, round(fig.shape[1] * scale))
    fig = scaled_rgba(fig, h, w)
    if rng.random() < 0.5:
        fig = fig[:, ::-1]
    top = size - h if rng.random() < 0.7 else int(rng.integers(0, size - h + 1))  # busts mostly stand on the edge
    left = int(rng.integers(0, size - w + 1))
    return paste(random_background(size, size, rng), fig, top, left)


def _wesnoth_missing(images_dir: str | Path = WESNOTH_IMAGES) -> str | None:
    if not (Path(images_dir) / "portraits").is_dir() or not (Path(images_dir) / "units").is_dir():
        return (f"no Wesnoth images in {images_dir}; install the Debian package: "
                f"apt-get install {WESNOTH_PACKAGE}")
    return None


def load_wesnoth_portraits(seed: int = 0, races: Sequence[str] = PORTRAIT_RACES, n_train_per_class: int = 10,
                           n_test_per_class: int = 24, test_fraction: float = 0.4, size: int = 64,
                           images_dir: str | Path = WESNOTH_IMAGES) -> SourceArrays:
    """Few-shot colour: painted portraits of Battle for Wesnoth's units, class = the race.

    The portraits of Wesnoth (Debian ``wesnoth-1.16-data``, GPL-2+) are paintings of a unit's
    head and shoulders on a transparent background, filed by race (drakes, dwarves, elves,
    goblins, humans, merfolk, nagas, orcs, trolls, undead). Each race's units are split at
    random (a unit's female and numbered variants stay together): training shows
    ``n_train_per_class`` pictures (at most 20: few-shot) of some units, test shows other
    units. A picture is a portrait cropped to its figure, the lower part maybe cut, scaled,
    maybe mirrored, on a random plain or gradient background.

    Parameters
    ----------
    seed:
        Seed of the split, the drawings and the order.
    races:
        Portrait folders used as classes.
    n_train_per_class:
        Training pictures per race (1 to 20), the race's training portraits used in turn.
    n_test_per_class:
        Test pictures per race.
    test_fraction:
        Share of each race's units kept for test.
    size:
        Side of the images.
    images_dir:
        Wesnoth's ``data/core/images`` folder.

    Returns
    -------
    tuple
        ``x_train [len(races)*n_train_per_class, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the races.
    """
    reason = _wesnoth_missing(images_dir)
    if reason is not None:
        raise ConversionError(Path(images_dir), reason)
    check_int("n_train_per_class", n_train_per_class, 1, 20)
    train_files, test_files = split_portraits(races, seed, test_fraction, images_dir)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for split, n in ((train_files, n_train_per_class), (test_files, n_test_per_class)):
        xs, ys = [], []
        for label, race in enumerate(races):
            paths = split[race]
            order = rng.permutation(len(paths))
            for i in range(n):
                xs.append(_portrait_example(_cached_rgba(paths[int(order[i % len(paths)])], 4 * size), rng, size))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], list(races)


@lru_cache(maxsize=4096)
def _cached_rgba(path: Path, max_side: int | None = None) -> np.ndarray:
    arr = read_rgba(path, max_side)
    arr.setflags(write=False)
    return arr


# --- Wesnoth unit animations (video told apart by appearance) ------------------------------------

UNIT_RACES = ("drakes", "dwarves", "elves-wood", "human-loyalists", "merfolk", "nagas", "orcs", "undead-skeletal")
_FRAME_NAME = re.compile(r"^(?P<sequence>.*?)-?(?P<index>\d+)$")


def unit_animations(race: str, images_dir: str | Path = WESNOTH_IMAGES, min_frames: int = 3
                    ) -> dict[str, dict[str, list[Path]]]:
    """A race's animation sequences by unit: ``{unit: {sequence: [frame files in order]}}``.

    A sequence is the files named ``<sequence>-<n>.png`` (or ``<sequence><n>.png``), in the
    order of ``n``; its unit is the name before the first ``-`` or ``+``. Sequences of fewer
    than ``min_frames`` frames and dying animations are left out.
    """
    sequences: dict[tuple[str, str], list[tuple[int, Path]]] = {}
    for png in sorted((Path(images_dir) / "units" / race).rglob("*.png")):
        m = _FRAME_NAME.match(png.stem)
        if m is None or re.search(r"die|death|dying", png.stem):
            continue
        unit = re.split(r"[-+]", png.stem)[0]
        sequences.setdefault((unit, f"{png.parent.name}/{m['sequence']}"), []).append((int(m["index"]), png))
    out: dict[str, dict[str, list[Path]]] = {}
    for (unit, seq), frames in sorted(sequences.items()):
        if len(frames) >= min_frames:
            out.setdefault(unit, {})[seq] = [p for _, p in sorted(frames)]
    return out


def split_units(animations: dict[str, dict[str, dict[str, list[Path]]]], seed: int, test_fraction: float
                ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per race, its units split at random into training and test units."""
    train, test = {}, {}
    for k, (race, units) in enumerate(animations.items()):
        names = sorted(units)
        tr, te = split_by_group(np.arange(len(names)), np.zeros(len(names)), test_fraction, seed + k)
        train[race] = [names[i] for i in np.flatnonzero(tr)]
        test[race] = [names[i] for i in np.flatnonzero(te)]
    return train, test


def _animation_clip(files: Sequence[Path], rng: np.random.Generator, frames: int, size: int,
                    sprite: tuple[int, int], max_speed: float) -> np.ndarray:
    """One clip: the sequence played in a loop from a random frame, the sprite (its frames'
    common bounding box scaled to a side in ``sprite``) drifting at a constant random velocity
    and bouncing off the edges, over a smooth random background."""
    imgs = [_cached_rgba(p) for p in files]
    h = max(i.shape[0] for i in imgs)
    w = max(i.shape[1] for i in imgs)
    padded = []
    for i in imgs:  # frames of one sequence share their canvas; centre smaller ones
        canvas = np.zeros((h, w, 4), np.uint8)
        r, c = (h - i.shape[0]) // 2, (w - i.shape[1]) // 2
        canvas[r:r + i.shape[0], c:c + i.shape[1]] = i
        padded.append(canvas)
    alpha = np.any([p[..., 3] > 8 for p in padded], axis=0)
    rows, cols = np.flatnonzero(alpha.any(1)), np.flatnonzero(alpha.any(0))
    if len(rows):
        padded = [p[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] for p in padded]
    side = int(rng.integers(sprite[0], sprite[1] + 1))
    scale = side / max(padded[0].shape[:2])
    sh, sw = max(1, round(padded[0].shape[0] * scale)), max(1, round(padded[0].shape[1] * scale))
    sprites = [scaled_rgba(p, sh, sw) for p in padded]
    if rng.random() < 0.5:
        sprites = [s[:, ::-1] for s in sprites]
    span = np.array([max(size - sh, 0), max(size - sw, 0)], np.float64)
    pos = rng.uniform(0, 1, 2) * span
    angle = rng.uniform(0, 2 * np.pi)
    vel = np.array([np.sin(angle), np.cos(angle)]) * rng.uniform(0.5, 1.0) * max_speed
    background = smooth_background(size, size, rng)
    start = int(rng.integers(len(sprites)))
    clip = np.zeros((frames, size, size, 3), np.uint8)
    for t in range(frames):
        clip[t] = paste(background, sprites[(start + t) % len(sprites)], int(round(pos[0])), int(round(pos[1])))
        nxt = pos + vel
        for d in range(2):
            if nxt[d] < 0 or nxt[d] > span[d]:
                vel[d] = -vel[d]
                nxt[d] = pos[d] + vel[d]
        pos = np.clip(nxt, 0, span)
    return clip


def load_wesnoth_animations(seed: int = 0, races: Sequence[str] = UNIT_RACES, n_train_per_class: int = 50,
                            n_test_per_class: int = 25, frames: int = 8, size: int = 48,
                            sprite: Sequence[int] = (32, 44), max_speed: float = 2.0, test_fraction: float = 1 / 3,
                            images_dir: str | Path = WESNOTH_IMAGES) -> SourceArrays:
    """Video told apart by appearance: a Wesnoth unit's own animation, class = the race.

    Battle for Wesnoth's unit sprites (Debian ``wesnoth-1.16-data``, GPL-2+) come with
    animation frames (attacks, idling, defending, ...; dying is left out): see
    :func:`unit_animations`. A clip plays one sequence of a unit in a loop from a random
    frame while the sprite drifts over a smooth random background at a constant speed (up to
    ``max_speed`` pixels a frame), bouncing off the edges. Every frame shows the unit, so
    appearance tells the class; the motion is a nuisance. Each race's units are split at
    random: test clips show units never seen in training.

    Parameters
    ----------
    seed:
        Seed of the split, the clips and the order.
    races:
        Unit folders used as classes.
    n_train_per_class, n_test_per_class:
        Clips per race in each subset (the subset's units used in turn).
    frames:
        Frames per clip.
    size:
        Side of the frames.
    sprite:
        ``[smallest, largest]`` side of the sprite in the frame.
    max_speed:
        Largest drift in pixels per frame.
    test_fraction:
        Share of each race's units kept for test.
    images_dir:
        Wesnoth's ``data/core/images`` folder.

    Returns
    -------
    tuple
        ``x_train [len(races)*n_train_per_class, frames, size, size, 3]`` uint8, ``y_train``,
        ``x_test``, ``y_test``, the races.
    """
    reason = _wesnoth_missing(images_dir)
    if reason is not None:
        raise ConversionError(Path(images_dir), reason)
    check_int("frames", frames, 1)
    lo, hi = (int(v) for v in sprite)
    if not 1 <= lo <= hi <= size:
        raise ConversionError(None, f"sprite={list(sprite)}: expected 1 <= smallest <= largest <= size={size}",
                              field="sprite")
    animations = {race: unit_animations(race, images_dir) for race in races}
    for race, units in animations.items():
        if len(units) < 2:
            raise ConversionError(Path(images_dir) / "units" / race, f"{len(units)} animated unit(s); expected "
                                                                     f"at least 2", field="races")
    train_units, test_units = split_units(animations, seed, test_fraction)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for split, n in ((train_units, n_train_per_class), (test_units, n_test_per_class)):
        xs, ys = [], []
        for label, race in enumerate(races):
            units = split[race]
            order = rng.permutation(len(units))
            for i in range(n):
                seqs = animations[race][units[int(order[i % len(units)])]]
                files = list(seqs.values())[int(rng.integers(len(seqs)))]
                xs.append(_animation_clip(files, rng, frames, size, (lo, hi), max_speed))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (frames, size, size, 3)))
    return out[0], out[1], out[2], out[3], list(races)


# --- shape scenes (multi-label) ------------------------------------------------------------------

SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent")


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> list[tuple[float, float]]:
    if kind == "square":
        radii, n = [r * 0.85], 4
    elif kind == "triangle":
        radii, n = [r], 3
    elif kind == "hexagon":
        radii, n = [r * 0.95], 6
    elif kind == "star":
        radii, n = [r, r * 0.42], 10
    elif kind == "cross":
        a = 0.33 * r
        pts = [(a, r), (a, a), (r, a), (r, -a), (a, -a), (a, -r), (-a, -r), (-a, -a), (-r, -a), (-r, a), (-a, a),
               (-a, r)]
        ca, sa = math.cos(angle), math.sin(angle)
        return [(cx + x * ca - y * sa, cy + x * sa + y * ca) for x, y in pts]
    else:
        raise ValueError(kind)
    return [(cx + radii[k % len(radii)] * math.cos(angle + 2 * math.pi * k / n),
             cy + radii[k % len(radii)] * math.sin(angle + 2 * math.pi * k / n)) for k in range(n)]


def _shape_mask(kind: str, canvas: int, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """A shape's coverage ``[canvas, canvas]`` in 0..255."""
    from PIL import Image, ImageDraw

    mask = Image.new("L", (canvas, canvas), 0)
    draw = ImageDraw.Draw(mask)
    if kind == "circle":
        draw.ellipse([cx - r * 0.9, cy - r * 0.9, cx + r * 0.9, cy + r * 0.9], fill=255)
    elif kind == "ring":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        draw.ellipse([cx - r * 0.55, cy - r * 0.55, cx + r * 0.55, cy + r * 0.55], fill=0)
    elif kind == "crescent":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        dx, dy = 0.45 * r * math.cos(angle), 0.45 * r * math.sin(angle)
        draw.ellipse([cx + dx - r * 0.85, cy + dy - r * 0.85, cx + dx + r * 0.85, cy + dy + r * 0.85], fill=0)
    else:
        draw.polygon(_polygon(kind, cx, cy, r, angle), fill=255)
    return np.asarray(mask)


def _shape_scene(kinds: Sequence[str], size: int, rng: np.random.Generator, supersample: int = 3) -> np.ndarray:
    """Shapes of saturated random colours at random places (not overlapping much), sizes and
    angles, on a pale random gradient with noise; drawn ``supersample`` times larger, then reduced."""
    from PIL import Image

    big = size * supersample
    background = random_background(big, big, rng, noise=0.0).astype(np.float64)
    background = 0.35 * background + 0.65 * background.mean(axis=-1, keepdims=True)  # desaturated
    img = background
    placed: list[tuple[float, float, float]] = []
    for kind in kinds:
        for _ in range(50):
            r = float(rng.uniform(0.13, 0.22)) * big
            cx, cy = (float(v) for v in rng.uniform(r, big - r, 2))
            if all(math.hypot(cx - x, cy - y) > 0.85 * (r + q) for x, y, q in placed):
                break
        placed.append((cx, cy, r))
        mask = _shape_mask(kind, big, cx, cy, r, float(rng.uniform(0, 2 * math.pi)))[..., None] / 255.0
        colour = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0))) * 255
        img = img * (1 - mask) + colour * mask
    small = np.asarray(Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8)).resize(
        (size, size), Image.Resampling.LANCZOS)).astype(np.float64)
    small = small + rng.normal(0, 8.0, small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def load_shape_scenes(seed: int = 0, shapes: Sequence[str] = SHAPES, n_train: int = 1200, n_test: int = 400,
                      size: int = 64, max_labels: int = 3) -> SourceArrays:
    """Multi-label: which shapes a picture holds (procedural, colour).

    Each picture holds 1 to ``max_labels`` distinct shapes (count and kinds drawn uniformly)
    among circle, square, triangle, star, cross, ring, hexagon and crescent, each of a random
    saturated colour, size (26-44 % of the side), angle and place (overlapping little), on a
    pale random gradient with Gaussian noise; the labels are the shapes present. Generated
    here: no file is read.

    Parameters
    ----------
    seed:
        Seed of the pictures.
    shapes:
        The labels, some of :data:`SHAPES`.
    n_train, n_test:
        Pictures in each subset.
    size:
        Side of the pictures.
    max_labels:
        At most this many shapes per picture.

    Returns
    -------
    tuple
        ``x_train [n_train, size, size, 3]`` uint8, ``y_train [n_train, len(shapes)]`` int64
        0/1, ``x_test``, ``y_test``, the shape names.
    """
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or len(set(shapes)) != len(shapes) or len(shapes) < 2:
        raise ConversionError(None, f"shapes={list(shapes)!r}: expected at least 2 distinct of {', '.join(SHAPES)}",
                              field="shapes")
    check_int("max_labels", max_labels, 1, len(shapes))
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for n in (n_train, n_test):
        x = np.zeros((n, size, size, 3), np.uint8)
        y = np.zeros((n, len(shapes)), np.int64)
        for i in range(n):
            chosen = rng.choice(len(shapes), size=int(rng.integers(1, max_labels + 1)), replace=False)
            x[i] = _shape_scene([shapes[int(k)] for k in chosen], size, rng)
            y[i, chosen] = 1
        out += [x, y]
    return out[0], out[1], out[2], out[3], list(shapes)


# --- spin and zoom (video told apart only by motion) -------------------------------------------------

SPIN_ZOOM_CLASSES = ("clockwise", "anticlockwise", "zoom_in", "zoom_out")
SPIN_ZOOM_STEPS = {"clockwise": (0, -1), "anticlockwise": (0, 1), "zoom_in": (-1, 0), "zoom_out": (1, 0)}
"""Each class's shift of the log-polar texture per frame, in steps: ``(log-radius, angle)``.
With image rows pointing down, angles grow clockwise on screen, so content turning clockwise
samples the texture at a decreasing angle; content growing (zooming in) at a decreasing log-radius."""


@lru_cache(maxsize=8)
def log_polar_map(size: int, grid: tuple[int, int], periods: float, supersample: int = 3
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Where each pixel of a ``size x size`` frame samples a ``grid = (radial, angular)`` torus
    texture: integer cell indices ``(i0, j0)`` and bilinear weights ``(fu, fv)``, each
    ``[size*size*supersample**2]``. The radial axis is the logarithm of the distance to the
    centre, ``periods`` texture periods between 1 pixel and the corner."""
    n_r, n_t = grid
    offsets = (np.arange(supersample) + 0.5) / supersample
    coords = (np.arange(size)[:, None] + offsets[None, :]).ravel() - size / 2
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    r = np.maximum(np.hypot(yy, xx), 0.25)
    theta = np.mod(np.arctan2(yy, xx), 2 * np.pi)
    period = math.log(size / math.sqrt(2)) / periods
    u = np.log(r) / period * n_r
    v = theta / (2 * np.pi) * n_t
    i0, j0 = np.floor(u), np.floor(v)
    # rows of pixels: reorder [size*ss, size*ss] to [size, ss, size, ss] later for averaging
    out = (i0.astype(np.int64).ravel(), j0.astype(np.int64).ravel(), (u - i0).ravel(), (v - j0).ravel())
    for a in out:
        a.setflags(write=False)
    return out


def spin_zoom_frame(texture: np.ndarray, shift: tuple[int, int], size: int, periods: float = 2.0,
                    supersample: int = 3) -> np.ndarray:
    """One frame: the torus ``texture [radial, angular]`` shifted by whole cells ``shift``,
    seen through :func:`log_polar_map`, averaged over the supersamples. ``[size, size]`` float."""
    n_r, n_t = texture.shape
    i0, j0, fu, fv = log_polar_map(size, (n_r, n_t), periods, supersample)
    i = (i0 + shift[0]) % n_r
    j = (j0 + shift[1]) % n_t
    i1, j1 = (i + 1) % n_r, (j + 1) % n_t
    val = ((1 - fu) * (1 - fv) * texture[i, j] + fu * (1 - fv) * texture[i1, j]
           + (1 - fu) * fv * texture[i, j1] + fu * fv * texture[i1, j1])
    ss = supersample
    return val.reshape(size, ss, size, ss).mean(axis=(1, 3))


def random_torus_texture(rng: np.random.Generator, grid: tuple[int, int], smooth: float) -> np.ndarray:
    """Gaussian white noise on a ``grid`` torus, blurred circularly (FFT, sigma ``smooth`` cells)
    and standardised: a stationary random field (its distribution is the same under every
    whole-cell shift)."""
    n_r, n_t = grid
    noise = rng.normal(size=grid)
    fr = np.fft.fftfreq(n_r)[:, None]
    ft = np.fft.fftfreq(n_t)[None, :]
    kernel = np.exp(-2 * (np.pi * smooth) ** 2 * (fr ** 2 + ft ** 2))
    field = np.real(np.fft.ifft2(np.fft.fft2(noise) * kernel))
    return (field - field.mean()) / max(field.std(), 1e-12)


def spin_zoom_clip(texture: np.ndarray, start: tuple[int, int], label: int, frames: int, size: int, step: int,
                   periods: float = 2.0) -> np.ndarray:
    """A clip ``[frames, size, size, 1]`` uint8 of class ``SPIN_ZOOM_CLASSES[label]``: frame t is
    :func:`spin_zoom_frame` of ``texture`` shifted by ``start + t * step * SPIN_ZOOM_STEPS[class]``."""
    dr, dt = SPIN_ZOOM_STEPS[SPIN_ZOOM_CLASSES[label]]
    clip = np.zeros((frames, size, size, 1), np.uint8)
    for t in range(frames):
        frame = spin_zoom_frame(texture, (start[0] + t * step * dr, start[1] + t * step * dt), size, periods)
        clip[t, ..., 0] = np.clip(np.rint(128 + 48 * frame), 0, 255).astype(np.uint8)
    return clip


def load_spin_zoom(seed: int = 0, n_train_per_class: int = 100, n_test_per_class: int = 50, frames: int = 8,
                   size: int = 32, grid: Sequence[int] = (32, 64), step: int = 2, smooth: float = 1.5,
                   periods: float = 2.0) -> SourceArrays:
    """Video told apart only by motion: a random texture turning (either way) or zooming (in or out).

    Each clip draws its own texture: Gaussian noise on a torus of ``grid = (radial,
    angular)`` cells, blurred (``smooth`` cells) and standardised (:func:`random_torus_texture`).
    A frame shows it through log-polar coordinates centred in the frame (the radial cell
    index is the logarithm of the distance to the centre, ``periods`` periods between 1 pixel
    and the corner; :func:`spin_zoom_frame`), so that turning is a shift along the angular
    axis and zooming a shift along the radial one. A clip starts at a uniformly random shift
    and moves ``step`` cells per frame: clockwise, anticlockwise (360*step/angular degrees a
    frame), zooming in or out (a factor of ``exp(step*period/radial)`` a frame).

    Every frame is a whole-cell shift of a stationary random field seen through one fixed
    map, so each frame, of any class and at any place in the clip, has exactly the same
    distribution: a model that looks at frames one by one is at chance (25 %), one that
    compares consecutive frames can reach 100 %. Unlike training's ``moving_squares``
    (translation) the motion is rotation and scaling. Generated here: no file is read.

    Parameters
    ----------
    seed:
        Seed of the textures, starts and order.
    n_train_per_class, n_test_per_class:
        Clips per class in each subset.
    frames:
        Frames per clip.
    size:
        Side of the frames.
    grid:
        ``(radial, angular)`` cells of the texture.
    step:
        Cells moved per frame.
    smooth:
        Blur of the texture in cells.
    periods:
        Texture periods along the radius (between 1 pixel and the corner).

    Returns
    -------
    tuple
        ``x_train [4*n_train_per_class, frames, size, size, 1]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, :data:`SPIN_ZOOM_CLASSES`.
    """
    check_int("frames", frames, 2)
    check_int("size", size, 4)
    check_int("step", step, 1)
    n_r, n_t = (check_int("grid", int(g), 4) for g in grid)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for n in (n_train_per_class, n_test_per_class):
        y = rng.permutation(np.repeat(np.arange(len(SPIN_ZOOM_CLASSES), dtype=np.int64), n))
        x = np.zeros((len(y), frames, size, size, 1), np.uint8)
        for i, label in enumerate(y):
            texture = random_torus_texture(rng, (n_r, n_t), smooth)
            start = (int(rng.integers(n_r)), int(rng.integers(n_t)))
            x[i] = spin_zoom_clip(texture, start, int(label), frames, size, step, periods)
        out += [x, y]
    return out[0], out[1], out[2], out[3], list(SPIN_ZOOM_CLASSES)


# --- Earth land cover (aerial-like) -----------------------------------------------------------------

EARTH_IMAGE = Path("/usr/share/xplanet/images/earth.jpg")
EARTH_PACKAGE = "xplanet-images"
EARTH_REGIONS: dict[str, dict[str, tuple[tuple[float, float, float, float], ...]]] = {
    # class: {subset: ((west, east, south, north) in degrees, ...)}
    "desert": {"train": ((-5, 25, 19, 28),),                       # Sahara
               "test": ((45, 55, 17, 22), (122, 136, -28, -21))},   # Rub' al Khali, Australian interior
    "tropical_forest": {"train": ((-72, -55, -9, -1),),            # Amazon basin
                        "test": ((14, 27, -3, 3), (138, 145, -7, -4))},  # Congo basin, New Guinea
    "boreal_forest": {"train": ((90, 125, 56, 64),),               # central Siberian taiga
                      "test": ((-122, -100, 53, 59),)},             # Canadian boreal forest
    "steppe": {"train": ((55, 75, 46, 51),),                       # Kazakh steppe
               "test": ((-104, -98, 36, 44),)},                     # Great Plains
    "mountains": {"train": ((78, 98, 29, 36),),                    # Tibetan plateau and Himalaya
                  "test": ((-113, -105, 38, 46), (-70, -66, -24, -16))},  # Rocky Mountains, Andean altiplano
    "ice": {"train": ((-180, 0, -84, -76),),                       # western Antarctica
            "test": ((0, 180, -84, -76), (-44, -34, 70, 77))},      # eastern Antarctica, Greenland
    "ocean": {"train": ((-160, -125, -30, 15),),                   # Pacific
              "test": ((65, 95, -35, -10), (-30, -15, -30, -5))},   # Indian Ocean, South Atlantic
}
"""Hand-drawn regions of each land-cover class on the Blue Marble map: training crops come from
the ``train`` regions, test crops from *other* places of the world."""


def _earth_missing(path: str | Path = EARTH_IMAGE) -> str | None:
    if not Path(path).is_file():
        return f"{path} is missing; install the Debian package: apt-get install {EARTH_PACKAGE}"
    return None


@lru_cache(maxsize=2)
def _earth_pixels(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        arr = np.asarray(img.convert("RGB"))
    arr.setflags(write=False)
    return arr


def _region_box(region: tuple[float, float, float, float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    """``(west, east, south, north)`` degrees as pixel rows and columns ``(r0, r1, c0, c1)`` of an
    equirectangular map."""
    h, w = shape[:2]
    west, east, south, north = region
    c0, c1 = round((west + 180) / 360 * w), round((east + 180) / 360 * w)
    r0, r1 = round((90 - north) / 180 * h), round((90 - south) / 180 * h)
    return r0, r1, c0, c1


def load_earth_landcover(seed: int = 0, n_train_per_class: int = 100, n_test_per_class: int = 50, size: int = 32,
                         min_crop: int = 16, max_crop: int = 32, image: str | Path = EARTH_IMAGE) -> SourceArrays:
    """Aerial-like land cover: crops of NASA's Blue Marble map, class = the land cover of the region.

    The map (``earth.jpg`` of Debian ``xplanet-images``: NASA Visible Earth, not copyrighted;
    2048x1024 pixels, equirectangular, about 20 km a pixel) is cut into square crops of
    ``min_crop..max_crop`` pixels, turned by a multiple of 90 degrees, maybe mirrored and
    resized to ``size``. The classes are land covers of hand-drawn regions
    (:data:`EARTH_REGIONS`: desert, tropical forest, boreal forest, steppe, mountains, ice,
    ocean);
    training crops come from some regions (e.g. the Sahara), test crops from other places of
    the world (e.g. Arabia and Australia), as a land-cover model is asked to work on land it
    has not seen.

    Parameters
    ----------
    seed:
        Seed of the crops and the order.
    n_train_per_class, n_test_per_class:
        Crops per class in each subset (spread over the subset's regions by area).
    size:
        Side of the images.
    min_crop, max_crop:
        Range of the crops' side in map pixels.
    image:
        The map.

    Returns
    -------
    tuple
        ``x_train [7*n_train_per_class, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the land covers.
    """
    reason = _earth_missing(image)
    if reason is not None:
        raise ConversionError(Path(image), reason)
    check_int("min_crop", min_crop, 2)
    check_int("max_crop", max_crop, min_crop)
    pixels = _earth_pixels(Path(image))
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for subset, n in (("train", n_train_per_class), ("test", n_test_per_class)):
        xs, ys = [], []
        for label, regions in enumerate(EARTH_REGIONS.values()):
            boxes = [_region_box(r, pixels.shape) for r in regions[subset]]
            areas = np.array([(b[1] - b[0]) * (b[3] - b[2]) for b in boxes], np.float64)
            for _ in range(n):
                r0, r1, c0, c1 = boxes[int(rng.choice(len(boxes), p=areas / areas.sum()))]
                side = int(rng.integers(min_crop, min(max_crop, r1 - r0, c1 - c0) + 1))
                top, left = int(rng.integers(r0, r1 - side + 1)), int(rng.integers(c0, c1 - side + 1))
                crop = np.rot90(pixels[top:top + side, left:left + side], k=int(rng.integers(4)))
                if rng.random() < 0.5:
                    crop = crop[:, ::-1]
                xs.append(resize_image(np.ascontiguousarray(crop), size, size))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], list(EARTH_REGIONS)


# --- Openclipart pictures (variable-size colour clip art by category) --------------------------------

OPENCLIPART_DIR = Path("/usr/share/openclipart/png")
OPENCLIPART_PACKAGE = "openclipart-png"
OPENCLIPART_CATEGORIES = ("animals", "buildings", "computer", "food", "geography", "people", "tools",
                          "transportation")
"""The category folders ``clipart_categories`` uses by default: eight with 70 to 2,000 pictures
(``plants``, ``office``, ``recreation``, ``signs_and_symbols``, ... exist too)."""


def clipart_group(path: str | Path) -> str:
    """The drawing a clip-art file belongs to: its name without trailing numbers and
    underscores, cut to 12 characters, so that numbered variants and recolourings of one
    drawing (``cake_and_candle_anton_fr_01``, ``..._02``; ``home1``, ``home13``) stay together."""
    stem = re.sub(r"[\d_\-]+$", "", Path(path).stem.lower()) or Path(path).stem.lower()
    return stem[:12]


def clipart_files(category: str, clipart_dir: str | Path = OPENCLIPART_DIR, min_side: int = 96,
                  max_pixels: int = 16_000_000) -> list[Path]:
    """The PNG pictures of a category (all its sub-folders), sorted, byte-identical copies
    dropped, and only those whose longer side is at least ``min_side`` pixels and whose area
    is at most ``max_pixels`` (a few are posters of hundreds of megapixels)."""
    from PIL import Image

    seen: set[str] = set()
    out = []
    for png in sorted((Path(clipart_dir) / category).rglob("*.png")):
        try:
            with warnings.catch_warnings():  # only the header is read: no decompression bomb
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(png) as img:
                    w, h = img.size
        except (OSError, Image.DecompressionBombError):
            continue
        if max(w, h) < min_side or w * h > max_pixels:
            continue
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(png)
    return out


def split_clipart(files: dict[str, list[Path]], seed: int, max_pictures: int, test_fraction: float
                  ) -> tuple[dict[str, list[Path]], dict[str, list[Path]]]:
    """Per category, at most ``max_pictures`` pictures drawn at random, split into train and
    test files by drawing (:func:`clipart_group`): a drawing's variants stay on one side."""
    rng = np.random.default_rng(seed)
    train, test = {}, {}
    for k, (category, paths) in enumerate(files.items()):
        chosen = [paths[i] for i in sorted(rng.permutation(len(paths))[:max_pictures])]
        groups = sorted({clipart_group(p) for p in chosen})
        tr, _te = split_by_group(np.arange(len(groups)), np.zeros(len(groups)), test_fraction, seed + 1 + k)
        train_groups = {groups[i] for i in np.flatnonzero(tr)}
        train[category] = [p for p in chosen if clipart_group(p) in train_groups]
        test[category] = [p for p in chosen if clipart_group(p) not in train_groups]
    return train, test


def _clipart_missing(clipart_dir: str | Path = OPENCLIPART_DIR) -> str | None:
    if not (Path(clipart_dir) / "animals").is_dir():
        return (f"no Openclipart pictures in {clipart_dir}; install the Debian package: "
                f"apt-get install {OPENCLIPART_PACKAGE}")
    return None


def load_openclipart(seed: int = 0, categories: Sequence[str] = OPENCLIPART_CATEGORIES, max_pictures: int = 60,
                     n_train_per_class: int = 100, n_test_per_class: int = 40, test_fraction: float = 1 / 3,
                     min_side: int = 128, max_side: int = 256,
                     clipart_dir: str | Path = OPENCLIPART_DIR) -> SourceArrays:
    """Colour clip art by category: Openclipart's pictures, variable size, unseen drawings in test.

    The Openclipart library 0.18 (Debian ``openclipart-png``, public domain) files its
    drawings by category (animals, buildings, computer, food, geography, people, tools,
    transportation, ...): the category is the class. Per category at most ``max_pictures``
    PNG files are drawn at random (tiny icons under 96 pixels and huge posters left out,
    :func:`clipart_files`) and split by drawing (:func:`clipart_group`, ``test_fraction`` to
    test), so test pictures are other drawings than training ones. Each example is a
    picture pasted, maybe mirrored, on a random plain or gradient background with a little
    noise, as ``tuxpaint_stamps`` does; the picture's longer side is drawn in ``[min_side,
    max_side]`` and its aspect in [3/4, 4/3] (variable-size colour images).

    Parameters
    ----------
    seed:
        Seed of the pictures chosen, the split, the drawings and the order.
    categories:
        Top-level category folders used as classes.
    max_pictures:
        At most this many files per category (balances the classes).
    n_train_per_class, n_test_per_class:
        Pictures per category in each subset (the subset's files used in turn).
    test_fraction:
        Share of each category's drawings kept for test.
    min_side, max_side:
        Range of the pictures' longer side in pixels.
    clipart_dir:
        Openclipart's PNG folder.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[h, w, 3]`` uint8 arrays), ``y_train``, ``x_test``, ``y_test``,
        the categories.
    """
    reason = _clipart_missing(clipart_dir)
    if reason is not None:
        raise ConversionError(Path(clipart_dir), reason)
    check_int("max_pictures", max_pictures, 2)
    check_int("min_side", min_side, 8)
    check_int("max_side", max_side, min_side)
    files = {}
    for c in categories:
        found = clipart_files(c, clipart_dir)
        if len({clipart_group(p) for p in found}) < 2:
            raise ConversionError(Path(clipart_dir) / c, f"holds {len(found)} usable PNG picture(s) of fewer than 2 "
                                                          f"drawings; expected at least 2 (categories: "
                                                          f"{', '.join(OPENCLIPART_CATEGORIES)})", field="categories")
        files[c] = found
    train_files, test_files = split_clipart(files, seed, max_pictures, test_fraction)
    return _paste_splits(train_files, test_files, categories, n_train_per_class, n_test_per_class, seed, min_side,
                         max_side)


# --- Tango icons (few-shot colour icons by context) -------------------------------------------------

TANGO_DIR = Path("/usr/share/icons/Tango/32x32")
TANGO_PACKAGE = "tango-icon-theme"
TANGO_CONTEXTS = ("actions", "apps", "categories", "devices", "emotes", "mimetypes", "places", "status")
"""The Tango contexts ``tango_icons`` uses by default: those with at least 9 distinct icons
(``emblems`` has 7, ``animations`` 1)."""


def tango_icon_files(context: str, theme_dir: str | Path = TANGO_DIR) -> list[Path]:
    """The distinct icons of a context: its PNG files, sorted, aliases (symbolic links and
    byte-identical copies) dropped."""
    seen: set[str] = set()
    out = []
    for png in sorted((Path(theme_dir) / context).glob("*.png")):
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            out.append(png)
    return out


def _tango_missing(theme_dir: str | Path = TANGO_DIR) -> str | None:
    if not any(Path(theme_dir).glob("*/*.png")):
        return f"no Tango icons in {theme_dir}; install the Debian package: apt-get install {TANGO_PACKAGE}"
    return None


def _icon_example(rgba: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """An icon on a random background: cropped to its visible pixels, scaled so its longer
    side fills 55-90 % of the square, at a random place."""
    icon = alpha_crop(rgba)
    side = float(rng.uniform(0.55, 0.9)) * size
    scale = side / max(icon.shape[:2])
    h, w = max(1, round(icon.shape[0] * scale)), max(1, round(icon.shape[1] * scale))
    icon = scaled_rgba(icon, h, w)
    top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
    return paste(random_background(size, size, rng), icon, top, left)


def load_tango_icons(seed: int = 0, contexts: Sequence[str] = TANGO_CONTEXTS, n_train_per_class: int = 10,
                     n_test_per_class: int = 30, test_fraction: float = 0.4, size: int = 48,
                     theme_dir: str | Path = TANGO_DIR) -> SourceArrays:
    """Few-shot colour icons: the Tango icon theme, class = the icon's context, unseen icons in test.

    The Tango Desktop Project's icons (Debian ``tango-icon-theme``, public domain; drawn as
    32x32 PNG in the theme's ``32x32`` folder) are filed by context (actions, apps,
    categories, devices, emotes, mimetypes, places, status): the context is the class.
    Each context's distinct icons (aliases dropped, :func:`tango_icon_files`) are split at
    random by icon: training shows ``n_train_per_class`` pictures (at most 20: few-shot) of
    some icons, test shows other icons. A picture is an icon scaled to 55-90 % of the
    square, at a random place on a random plain or gradient background. Training's
    ``oxygen_icons`` and ``icons`` use KDE's Oxygen and GNOME's Adwaita themes, never Tango.

    Parameters
    ----------
    seed:
        Seed of the split, the drawings and the order.
    contexts:
        Context folders used as classes.
    n_train_per_class:
        Training pictures per context (1 to 20), the context's training icons used in turn.
    n_test_per_class:
        Test pictures per context.
    test_fraction:
        Share of each context's icons kept for test.
    size:
        Side of the images.
    theme_dir:
        The theme's folder of one icon size.

    Returns
    -------
    tuple
        ``x_train [len(contexts)*n_train_per_class, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the contexts.
    """
    reason = _tango_missing(theme_dir)
    if reason is not None:
        raise ConversionError(Path(theme_dir), reason)
    check_int("n_train_per_class", n_train_per_class, 1, 20)
    check_int("size", size, 8)
    train_files, test_files = {}, {}
    for k, c in enumerate(contexts):
        files = tango_icon_files(c, theme_dir)
        if len(files) < 2:
            raise ConversionError(Path(theme_dir) / c, f"holds {len(files)} distinct icon(s); expected at least 2",
                                  field="contexts")
        tr, te = split_by_group(np.arange(len(files)), np.zeros(len(files)), test_fraction, seed + k)
        train_files[c] = [files[i] for i in np.flatnonzero(tr)]
        test_files[c] = [files[i] for i in np.flatnonzero(te)]
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for split, n in ((train_files, n_train_per_class), (test_files, n_test_per_class)):
        xs, ys = [], []
        for label, c in enumerate(contexts):
            paths = split[c]
            order = rng.permutation(len(paths))
            for i in range(n):
                xs.append(_icon_example(_cached_rgba(paths[int(order[i % len(paths)])]), rng, size))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], list(contexts)


# --- Hedgewars sprite sets (multi-label) -----------------------------------------------------------

HEDGEWARS_DIR = Path("/usr/share/games/hedgewars/Data")
HEDGEWARS_PACKAGE = "hedgewars-data"
HEDGEWARS_GROUPS: dict[str, tuple[str, int | None]] = {
    # class: (files under HEDGEWARS_DIR, side of a sprite-sheet tile or None for the whole picture)
    "hats": ("Graphics/Hats/*.png", 32),
    "graves": ("Graphics/Graves/*.png", 32),
    "weapon_icons": ("Graphics/AmmoMenu/Ammos_base.png", 32),
    "hedgehogs": ("Graphics/Hedgehog/*.png", 32),
    "forts": ("Forts/*L.png", None),
    "theme_props": ("Themes/*/theme.cfg", None),
}
"""The classes of ``hedgewars_sprites``: groups of Hedgewars' sprites by the game's folders. Hats,
graves and hedgehog poses are sprite sheets of 32x32 animation frames (one frame per file is
used); the weapon icons are the 32x32 tiles of the ammunition menu's sheet; forts (left-hand
versions) and the themes' decorative props (the ``object`` and ``spray`` pictures each
``theme.cfg`` lists: trees, plants, rocks, toys, ...) are whole pictures."""
_HEDGEHOG_SKIP = re.compile(r"^(Shout|Speech|Thought)")  # speech-bubble pieces, not hedgehogs


def sprite_group(name: str) -> str:
    """The drawing a sprite belongs to: its name (``folder/file``) without trailing numbers and a
    one-letter colour suffix (``Hats/Eva_00b.png``, ``Hats/Eva_00y.png`` -> ``hats/eva``;
    ``Nature/plant1.png``, ``Nature/plant2.png`` -> ``nature/plant``), a sheet tile keeping its place."""
    stem, _, tile = name.partition("#")
    path = Path(stem)
    base = re.sub(r"[_\d]+[a-z]?$", "", path.stem.lower()) or path.stem.lower()
    base = f"{path.parent.name.lower()}/{base}" if path.parent.name else base
    return f"{base}#{tile}" if tile else base


def _hedgewars_files(group: str, data_dir: str | Path) -> list[Path]:
    """The picture files of a class, sorted (for ``theme_props``: the pictures the themes'
    ``theme.cfg`` files list as ``object`` or ``spray``)."""
    pattern = HEDGEWARS_GROUPS[group][0]
    if group != "theme_props":
        return sorted(p for p in Path(data_dir).glob(pattern)
                      if not (group == "hedgehogs" and _HEDGEHOG_SKIP.match(p.name)))
    files = set()
    for cfg in sorted(Path(data_dir).glob(pattern)):
        for line in cfg.read_text(errors="replace").splitlines():
            m = re.match(r"\s*(object|spray)\s*=\s*([^,\s]+)", line)
            if m and (cfg.parent / f"{m[2]}.png").is_file():
                files.add(cfg.parent / f"{m[2]}.png")
    return sorted(files)


def hedgewars_sprites(group: str, data_dir: str | Path = HEDGEWARS_DIR, min_pixels: int = 40
                      ) -> dict[str, np.ndarray]:
    """A class's sprites, ``{name: RGBA [h, w, 4] uint8}`` cropped to their visible pixels,
    sorted by name, identical sprites and near-empty ones (fewer than ``min_pixels`` visible
    pixels) dropped. A sheet gives its first frame (the most opaque tile of its first column
    for hedgehog poses), the weapon sheet every tile (named ``file#row,col``)."""
    tile = HEDGEWARS_GROUPS[group][1]
    out: dict[str, np.ndarray] = {}
    seen: set[str] = set()
    for path in _hedgewars_files(group, data_dir):
        rgba = read_rgba(path, max_side=None if tile else 256)
        name = f"{path.parent.name}/{path.name}"
        found: list[tuple[str, np.ndarray]] = []
        if tile is None:
            found.append((name, rgba))
        elif group == "weapon_icons":
            for r in range(rgba.shape[0] // tile):
                for c in range(rgba.shape[1] // tile):
                    found.append((f"{name}#{r},{c}", rgba[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile]))
        elif group == "hedgehogs":
            tiles = [rgba[r * tile:(r + 1) * tile, :tile] for r in range(max(1, rgba.shape[0] // tile))]
            found.append((name, max(tiles, key=lambda t: int((t[..., 3] > 8).sum()))))
        else:
            found.append((name, rgba[:tile, :tile]))
        for name, sprite in found:
            if int((sprite[..., 3] > 8).sum()) < min_pixels:
                continue
            sprite = np.ascontiguousarray(alpha_crop(sprite))
            digest = hashlib.sha256(sprite.tobytes() + str(sprite.shape).encode()).hexdigest()
            if digest not in seen:
                seen.add(digest)
                sprite.setflags(write=False)
                out[name] = sprite
    return out


def split_sprites(sprites: dict[str, dict[str, np.ndarray]], seed: int, test_fraction: float
                  ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """Per class, its sprites split at random by drawing (:func:`sprite_group`): training and
    test names."""
    train, test = {}, {}
    for k, (group, named) in enumerate(sprites.items()):
        names = sorted(named)
        groups = sorted({sprite_group(n) for n in names})
        tr, _te = split_by_group(np.arange(len(groups)), np.zeros(len(groups)), test_fraction, seed + k)
        train_groups = {groups[i] for i in np.flatnonzero(tr)}
        train[group] = [n for n in names if sprite_group(n) in train_groups]
        test[group] = [n for n in names if sprite_group(n) not in train_groups]
    return train, test


def _sprite_scene(sprites: Sequence[np.ndarray], size: int, rng: np.random.Generator,
                  side: tuple[int, int]) -> np.ndarray:
    """Sprites at random places (not overlapping much) and sizes (longer side in ``side``),
    maybe mirrored, on a smooth or gradient random background."""
    canvas = smooth_background(size, size, rng) if rng.random() < 0.5 else random_background(size, size, rng)
    placed: list[tuple[float, float, float]] = []
    for sprite in sprites:
        longer = int(rng.integers(side[0], side[1] + 1))
        scale = longer / max(sprite.shape[:2])
        h, w = max(1, round(sprite.shape[0] * scale)), max(1, round(sprite.shape[1] * scale))
        img = scaled_rgba(sprite, h, w)
        if rng.random() < 0.5:
            img = img[:, ::-1]
        for _ in range(50):
            top, left = int(rng.integers(0, size - h + 1)), int(rng.integers(0, size - w + 1))
            cy, cx, r = top + h / 2, left + w / 2, max(h, w) / 2
            if all(math.hypot(cy - y, cx - x) > 0.8 * (r + q) for y, x, q in placed):
                break
        placed.append((cy, cx, r))
        canvas = paste(canvas, img, top, left)
    return canvas


def _hedgewars_missing(data_dir: str | Path = HEDGEWARS_DIR) -> str | None:
    if not (Path(data_dir) / "Graphics" / "Hats").is_dir():
        return (f"no Hedgewars sprites in {data_dir}; install the Debian package: "
                f"apt-get install {HEDGEWARS_PACKAGE}")
    return None


def load_hedgewars_sprites(seed: int = 0, groups: Sequence[str] = tuple(HEDGEWARS_GROUPS), n_train: int = 1000,
                           n_test: int = 400, size: int = 64, sprite: Sequence[int] = (22, 38), max_labels: int = 3,
                           test_fraction: float = 1 / 3, data_dir: str | Path = HEDGEWARS_DIR) -> SourceArrays:
    """Multi-label: which kinds of Hedgewars sprites a picture holds; test sprites never seen.

    Hedgewars' graphics (Debian ``hedgewars-data``, GPL-2 and CC BY-SA / public-domain art
    as its copyright file lists) give the classes :data:`HEDGEWARS_GROUPS`: hats, graves,
    weapon icons, hedgehog poses, forts and the themes' decorative props (one frame of a
    sprite sheet, or the whole picture; :func:`hedgewars_sprites`). Each class's sprites are
    split at random by drawing (:func:`sprite_group`): training pictures use some sprites,
    test pictures only the others. A picture holds 1 to ``max_labels`` sprites of distinct
    classes (count and classes drawn uniformly), each of a random size (longer side in
    ``sprite``), maybe mirrored, at a random place (overlapping little), on a random smooth,
    plain or gradient background; the labels are the classes present.

    Parameters
    ----------
    seed:
        Seed of the split, the pictures and their order.
    groups:
        The labels, some of :data:`HEDGEWARS_GROUPS`.
    n_train, n_test:
        Pictures in each subset.
    size:
        Side of the pictures.
    sprite:
        ``[smallest, largest]`` longer side of a sprite in the picture.
    max_labels:
        At most this many sprites (classes) per picture.
    test_fraction:
        Share of each class's drawings kept for test.
    data_dir:
        Hedgewars' ``Data`` folder.

    Returns
    -------
    tuple
        ``x_train [n_train, size, size, 3]`` uint8, ``y_train [n_train, len(groups)]`` int64
        0/1, ``x_test``, ``y_test``, the class names.
    """
    reason = _hedgewars_missing(data_dir)
    if reason is not None:
        raise ConversionError(Path(data_dir), reason)
    unknown = [g for g in groups if g not in HEDGEWARS_GROUPS]
    if unknown or len(set(groups)) != len(groups) or len(groups) < 2:
        raise ConversionError(None, f"groups={list(groups)!r}: expected at least 2 distinct of "
                                    f"{', '.join(HEDGEWARS_GROUPS)}", field="groups")
    check_int("max_labels", max_labels, 1, len(groups))
    lo, hi = (int(v) for v in sprite)
    if not 4 <= lo <= hi <= size:
        raise ConversionError(None, f"sprite={list(sprite)}: expected 4 <= smallest <= largest <= size={size}",
                              field="sprite")
    sprites = {g: hedgewars_sprites(g, data_dir) for g in groups}
    for g, named in sprites.items():
        if len({sprite_group(n) for n in named}) < 2:
            raise ConversionError(Path(data_dir) / HEDGEWARS_GROUPS[g][0], f"{len(named)} sprite(s) of fewer than 2 "
                                                                           f"drawings; expected at least 2",
                                  field="groups")
    train_names, test_names = split_sprites(sprites, seed, test_fraction)
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for split, n in ((train_names, n_train), (test_names, n_test)):
        x = np.zeros((n, size, size, 3), np.uint8)
        y = np.zeros((n, len(groups)), np.int64)
        for i in range(n):
            chosen = rng.choice(len(groups), size=int(rng.integers(1, max_labels + 1)), replace=False)
            picks = []
            for k in chosen:
                names = split[groups[int(k)]]
                picks.append(sprites[groups[int(k)]][names[int(rng.integers(len(names)))]])
            x[i] = _sprite_scene(picks, size, rng, (lo, hi))
            y[i, chosen] = 1
        out += [x, y]
    return out[0], out[1], out[2], out[3], list(groups)


# --- orbit paths (video told apart only by motion) --------------------------------------------------

ORBIT_CLASSES = ("line", "circle", "zigzag", "bounce")


def orbit_offsets(label: int, rng: np.random.Generator, frames: int, size: int,
                  speed: Sequence[float] = (3.0, 6.0)) -> np.ndarray:
    """The path of class ``ORBIT_CLASSES[label]`` as whole-pixel offsets ``[frames, 2]`` (rows,
    columns) from the first frame, not yet wrapped or folded:

    - ``line``: a constant velocity, ``speed`` pixels a frame in a random direction;
    - ``circle``: around a circle, turning 36 to 60 degrees a frame either way, ``speed``
      pixels a frame along it;
    - ``zigzag``: legs of 1 or 2 frames alternating between two directions 45 to 70
      degrees either side of a random heading, ``speed`` pixels a frame;
    - ``bounce``: a constant velocity fast enough along one axis (at least ``size /
      (frames - 1)`` pixels a frame, up to 1.5 more; up to 2 along the other) to cross a
      border at least once: :func:`orbit_positions` folds it back (reflects it) there.
    """
    t = np.arange(frames, dtype=np.float64)
    name = ORBIT_CLASSES[label]
    theta = float(rng.uniform(0, 2 * np.pi))
    s = float(rng.uniform(speed[0], speed[1]))
    if name == "line":
        off = t[:, None] * s * np.array([np.sin(theta), np.cos(theta)])
    elif name == "circle":
        omega = float(rng.uniform(np.pi / 5, np.pi / 3)) * (1 if rng.random() < 0.5 else -1)
        radius = s / (2 * abs(np.sin(omega / 2)))
        angle = theta + omega * t
        off = radius * np.stack([np.sin(angle) - np.sin(theta), np.cos(angle) - np.cos(theta)], 1)
    elif name == "zigzag":
        alpha = float(rng.uniform(np.pi / 4, 7 * np.pi / 18))
        leg = int(rng.integers(1, 3))
        turns = np.where((np.arange(frames - 1) // leg) % 2 == 0, 1.0, -1.0) * (1 if rng.random() < 0.5 else -1)
        steps = s * np.stack([np.sin(theta + alpha * turns), np.cos(theta + alpha * turns)], 1)
        off = np.concatenate([np.zeros((1, 2)), np.cumsum(steps, 0)])
    else:  # bounce
        fast = size / max(frames - 1, 1) + float(rng.uniform(0, 1.5))
        v = np.array([fast, float(rng.uniform(0, 2))]) * np.where(rng.random(2) < 0.5, 1, -1)
        if rng.random() < 0.5:
            v = v[::-1]
        off = t[:, None] * v
    return np.rint(off).astype(np.int64)


def orbit_positions(label: int, start: Sequence[int], offsets: np.ndarray, size: int) -> np.ndarray:
    """The blob's centre ``[frames, 2]`` in ``[0, size)``: ``start`` (in ``[0, 2*size)``) plus the
    offsets, wrapped around the frame (``line``, ``circle``, ``zigzag``: leaving one side it
    comes back on the other) or folded (``bounce``: reflected where it meets a border). For
    any offsets, a uniform ``start`` gives a uniform place in every frame."""
    u = np.asarray(start, np.int64)[None, :] + offsets
    if ORBIT_CLASSES[label] != "bounce":
        return np.mod(u, size)
    m = np.mod(u, 2 * size)
    return np.where(m < size, m, 2 * size - 1 - m)


def orbit_blob(rng: np.random.Generator, radius: Sequence[float] = (2.5, 4.0)) -> np.ndarray:
    """A small textured blob, RGBA ``[d, d, 4]`` uint8 centred in its square: a soft-edged disc of
    random radius, a random saturated colour modulated by blurred noise."""
    r = float(rng.uniform(radius[0], radius[1]))
    half = math.ceil(radius[1]) + 1
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    alpha = np.clip(r + 0.5 - np.hypot(yy, xx), 0, 1)
    colour = np.array(colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(0.6, 1.0), rng.uniform(0.75, 1.0))) * 255
    texture = random_torus_texture(rng, alpha.shape, 0.8)[..., None]
    rgb = np.clip(colour * (1 + 0.25 * texture), 0, 255)
    return np.concatenate([rgb, alpha[..., None] * 255], -1).round().astype(np.uint8)


def orbit_background(rng: np.random.Generator, size: int, smooth: float = 1.5) -> np.ndarray:
    """A static textured background ``[size, size, 3]`` uint8: a stationary random field on the
    frame's torus (:func:`random_torus_texture`: one field for the brightness, one per channel
    for the hue) around a random muted colour."""
    base = rng.uniform(60, 190, 3)
    fields = [random_torus_texture(rng, (size, size), smooth) for _ in range(4)]
    field = 0.8 * fields[0][..., None] + 0.35 * np.stack(fields[1:], -1)
    return np.clip(np.rint(base + 22 * field), 0, 255).astype(np.uint8)


def orbit_frame(background: np.ndarray, blob: np.ndarray, centre: Sequence[int]) -> np.ndarray:
    """The blob composited on the background with its centre at ``centre``, wrapping around the
    frame's borders (the part past one border shows at the opposite one)."""
    size = background.shape[0]
    d = blob.shape[0]
    layer = np.zeros((size, size, 4), np.float64)
    layer[:d, :d] = blob
    layer = np.roll(layer, (int(centre[0]) - d // 2, int(centre[1]) - d // 2), axis=(0, 1))
    a = layer[..., 3:] / 255.0
    return np.clip(np.rint(layer[..., :3] * a + background * (1 - a)), 0, 255).astype(np.uint8)


def load_orbit_paths(seed: int = 0, n_train_per_class: int = 100, n_test_per_class: int = 50, frames: int = 8,
                     size: int = 32, speed: Sequence[float] = (3.0, 6.0)) -> SourceArrays:
    """Video told apart only by motion: a small textured blob moving along one of four paths.

    Each clip draws a static textured background (:func:`orbit_background`), a blob
    (:func:`orbit_blob`: radius 2.5-4 pixels, random colour and texture) and a path of its
    class (:func:`orbit_offsets`): a straight line, a circle, a zig-zag, or a straight line
    bouncing off the borders, with a random direction and speed (3 to 6 pixels a frame;
    bounces go fast enough to meet a border in every clip). The start is uniform; the blob
    wraps around the frame's borders in the first three classes and is reflected at them in
    the fourth (:func:`orbit_positions`), drawn wrapping there too (:func:`orbit_frame`).

    For any path, a uniform start puts the blob at a uniform place in every frame, and the
    background and blob are drawn the same way in every class: each single frame, of any
    class and at any place in the clip, has exactly the same distribution. A model that looks
    at frames one by one is at chance (25 %); only the sequence of places tells the class.
    Training's ``moving_squares`` and ``moving_digits`` tell classes apart by direction or
    appearance, not by the shape of the path. Generated here: no file is read.

    Parameters
    ----------
    seed:
        Seed of the backgrounds, blobs, paths and order.
    n_train_per_class, n_test_per_class:
        Clips per class in each subset.
    frames:
        Frames per clip.
    size:
        Side of the frames.
    speed:
        ``[slowest, fastest]`` pixels a frame of lines, circles and zig-zags.

    Returns
    -------
    tuple
        ``x_train [4*n_train_per_class, frames, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, :data:`ORBIT_CLASSES`.
    """
    check_int("frames", frames, 3)
    check_int("size", size, 12)
    lo, hi = (float(v) for v in speed)
    if not 0 < lo <= hi:
        raise ConversionError(None, f"speed={list(speed)}: expected 0 < slowest <= fastest", field="speed")
    rng = np.random.default_rng(seed)
    out: list[Any] = []
    for n in (n_train_per_class, n_test_per_class):
        y = rng.permutation(np.repeat(np.arange(len(ORBIT_CLASSES), dtype=np.int64), n))
        x = np.zeros((len(y), frames, size, size, 3), np.uint8)
        for i, label in enumerate(y):
            background = orbit_background(rng, size)
            blob = orbit_blob(rng)
            start = rng.integers(0, 2 * size, 2)
            centres = orbit_positions(int(label), start, orbit_offsets(int(label), rng, frames, size, (lo, hi)), size)
            for t in range(frames):
                x[i, t] = orbit_frame(background, blob, centres[t])
        out += [x, y]
    return out[0], out[1], out[2], out[3], list(ORBIT_CLASSES)


# --- registration ------------------------------------------------------------------------------------

HELDOUT_SOURCES = (
    DataSource("greek_letters", "20 Greek letters unlike any Latin letter, digit or maths symbol, rendered from GNU "
                                "FreeFont and URW base35 (Debian fonts-freefont-ttf, fonts-urw-base35; GPL-3+ / "
                                "AGPL-3 with font exceptions) with rotation, scale and shift; test typefaces never "
                                "seen in training", "20 classes, 28x28x1", load_greek_letters, _greek_missing),
    DataSource("tuxpaint_stamps", "Tux Paint's colour stamps (Debian tuxpaint-stamps-default, GPL-2; many "
                                  "photographic cut-outs) on random backgrounds, class = category (animals, food, "
                                  "household, ...), test stamps unseen, longer side 128-256 px",
               "8 classes, variable HxWx3", load_tuxpaint_stamps, _tuxpaint_missing),
    DataSource("gimp_patterns", "GIMP's texture patterns (Debian gimp-data, GPL-3+), class = the pattern, turned and "
                                "rescaled views of the tiled pattern; test views mirrored (a transform never "
                                "trained on)", "43 classes, 32x32x3", load_gimp_patterns, _gimp_missing),
    DataSource("wesnoth_portraits", "few-shot: Battle for Wesnoth's painted unit portraits (Debian wesnoth-1.16-data, "
                                    "GPL-2+) on random backgrounds, class = the race, 10 training pictures per race, "
                                    "test units unseen", "10 classes, 64x64x3", load_wesnoth_portraits,
               _wesnoth_missing),
    DataSource("shape_scenes", "multi-label: 1 to 3 coloured shapes (circle, square, triangle, star, cross, ring, "
                               "hexagon, crescent) on noisy pale gradients, labels = the shapes present (generated)",
               "8 classes (multi-label), 64x64x3", load_shape_scenes, lambda: None),
    DataSource("wesnoth_animations", "video by appearance: a Battle for Wesnoth unit's own animation frames (Debian "
                                     "wesnoth-1.16-data, GPL-2+) drifting over a smooth background, class = the "
                                     "race, test units unseen", "8 classes, 8x48x48x3 clips", load_wesnoth_animations,
               _wesnoth_missing),
    DataSource("spin_zoom", "video by motion only: a random log-polar texture turning clockwise or anticlockwise or "
                            "zooming in or out (generated); every single frame has the same distribution in every "
                            "class", "4 classes, 8x32x32x1 clips", load_spin_zoom, lambda: None),
    DataSource("earth_landcover", "aerial-like: crops of NASA's Blue Marble map (Debian xplanet-images, not "
                                  "copyrighted), class = land cover of hand-drawn regions (desert, forests, steppe, "
                                  "mountains, ice, ocean), test crops from other regions of the world",
               "7 classes, 32x32x3", load_earth_landcover, _earth_missing),
    DataSource("openclipart", "Openclipart's clip art (Debian openclipart-png, public domain) on random backgrounds, "
                              "class = category folder (animals, buildings, computer, food, ...), test drawings "
                              "unseen, longer side 128-256 px", "8 classes, variable HxWx3", load_openclipart,
               _clipart_missing),
    DataSource("tango_icons", "few-shot: Tango Desktop Project icons (Debian tango-icon-theme, public domain) on "
                              "random backgrounds, class = the icon's context (actions, apps, devices, places, ...), "
                              "10 training pictures per context, test icons unseen", "8 classes, 48x48x3",
               load_tango_icons, _tango_missing),
    DataSource("hedgewars_sprites", "multi-label: 1 to 3 Hedgewars sprites (Debian hedgewars-data, GPL-2 / CC BY-SA / "
                                    "public domain) of distinct groups (hats, graves, weapon icons, hedgehogs, forts, "
                                    "theme props) on random backgrounds, labels = the groups present, test sprites "
                                    "unseen", "6 classes (multi-label), 64x64x3", load_hedgewars_sprites,
               _hedgewars_missing),
    DataSource("orbit_paths", "video by motion only: a small textured blob moving along a line, a circle, a zig-zag or "
                              "bouncing off the borders over a static texture (generated); every single frame has the "
                              "same distribution in every class", "4 classes, 8x32x32x3 clips", load_orbit_paths,
               lambda: None),
)
"""The held-out sources, which :mod:`autodl.sources` registers."""
