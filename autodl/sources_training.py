"""More training sources: real imagery from Debian packages, and generated scenes and videos.

The training collection (``configs/collections/default.yaml``) needs data of the kinds the
AutoDL challenge holds (variable-size colour photos of 128 px and more, few-shot colour sets,
more than 50 classes, multi-label sets, videos told apart only by motion) that no held-out
dataset draws on (:mod:`autodl.sources_heldout`: other packages, other generators). What
installs from a package is *real*; what cannot be had offline is *generated* here:

Real (Debian packages, none of them used by the held-out collection):

- ``kde_wallpapers``: crops of KDE Plasma's 30 wallpapers (Debian
  ``plasma-workspace-wallpapers``: photographs and illustrations), class = the wallpaper,
  train crops from the left three quarters of each picture and test crops from the right
  quarter; variable size (longer side 128 to 256 px) or one fixed size.
- ``gnome_backgrounds``: crops of GNOME's pattern backgrounds (Debian ``gnome-backgrounds``:
  adwaita, grid, licorice, pixels, symbolic, truchet, vnc, wood), light and dark variants,
  class = the pattern, train left / test right as above.
- ``freeciv_flags``: Freeciv's national flags (Debian ``freeciv-data``, 568 flags) drawn
  turned, scaled, shifted and colour-jittered on random backgrounds, class = the flag (many
  classes, few examples).
- ``flag_grid``: multi-label: 1 to 3 of those flags in the cells of a 2x2 grid; labels =
  the flags present.
- ``oxygen_icons``: KDE's Oxygen colour icons (Debian ``oxygen-icon-theme``) on random
  backgrounds: ``task="context"``, class = the theme's context (actions, apps, devices, ...),
  each icon at 64, 128 and 256 px (variable size), test icons unseen in training; or
  ``task="icon"``, class = the icon, training drawings from its small renditions (16-48 px,
  drawn by hand for those sizes) and test drawings from its large ones (128-256 px).
- ``marble_maps``: crops of the world maps of the Marble globe (Debian ``marble-data``:
  Behaim's 1492 globe, Schagen's 1689 map, precipitation and temperature maps, SRTM relief,
  clouds; the Blue Marble and city-light photographs, NASA imagery like the held-out
  ``earth_landcover``'s, are left out), class = the map, test crops from the eastern
  quarter of the world (longitudes never seen in training).

Generated (no package; each is a generator of its own, unlike the held-out ``shape_scenes``
and ``spin_zoom``):

- ``blob_scenes``: 1 to 3 smooth random blobs filled with a procedural texture (stripes,
  checker, dots, rings, cells, zigzag, blotches, speckle) on a background of another
  texture, class = the blobs' texture family; or the texture alone filling the image.
- ``degradations``: noise and blur levels as classes: a procedural scene (or a wallpaper
  crop) blurred by one of 3 Gaussian radii and corrupted by one of 3 noise levels, class =
  the (blur, noise) pair.
- ``texture_speed``: video by motion only: a random periodic colour texture sliding in a
  random direction, class = its speed (1 to 4 px a frame). Every frame is the same
  stationary random field rolled, whatever the class.
- ``flicker``: video by time only: a random blob on a random texture whose brightness
  oscillates, class = the frequency; the phase is uniform, so a single frame has the same
  distribution in every class.

Every loader takes ``seed`` and keyword parameters and returns ``(x_train, y_train, x_test,
y_test, class names)`` as :mod:`autodl.sources` describes, deterministically for a seed; each
source's check names the Debian package to install. The sources are registered in
:data:`autodl.sources.SOURCES` when :mod:`autodl.sources` is imported.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from autodl.compose import alpha_crop, check_int, paste, random_background, scaled_rgba, shuffled
from autodl.errors import ConversionError
from autodl.images import resize_image, split_by_group
from autodl.source_types import DataSource, SourceArrays

logger = logging.getLogger(__name__)

TRAINING_PACKAGES = ("plasma-workspace-wallpapers", "gnome-backgrounds", "freeciv-data", "oxygen-icon-theme",
                     "marble-data")
"""The Debian packages this module's real sources read (``make training-data`` installs them)."""


def _check_float(key: str, value: Any, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number) or not low <= value or \
            (high is not None and value > high):
        bound = f"a number >= {low}" + (f" and <= {high}" if high is not None else "")
        raise ConversionError(None, f"{key}={value!r}: expected {bound}", field=key)
    return float(value)


def _per_class_counts(n_train_per_class: Any, n_test_per_class: Any) -> tuple[int, int]:
    """The two per-class counts, checked (integers >= 0)."""
    return (check_int("n_train_per_class", n_train_per_class, 0),
            check_int("n_test_per_class", n_test_per_class, 0))


def _load_rgb(path: Path, short_side: int | None = None) -> np.ndarray:
    """A picture file as RGB uint8, shrunk (never enlarged) so its shorter side is ``short_side``."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            if short_side is not None:  # JPEG: decode at a lower scale, still at least 4x the target
                img.draft("RGB", (4 * short_side, 4 * short_side))
            rgb = img.convert("RGB")
    except OSError as exc:
        raise ConversionError(path, f"cannot be read as a picture ({exc})") from None
    if short_side is not None and min(rgb.size) > short_side:
        scale = short_side / min(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.size[0] * scale)), max(1, round(rgb.size[1] * scale))),
                         Image.Resampling.LANCZOS)
    return np.asarray(rgb)


def _crop_out(crop: np.ndarray, rng: np.random.Generator, size: int | None, var_side: tuple[int, int]) -> np.ndarray:
    """A crop resized to ``size x size``, or (``size=None``) so that its longer side is drawn in ``var_side``."""
    if size is not None:
        return resize_image(crop, size, size)
    longer = int(rng.integers(var_side[0], var_side[1] + 1))
    h, w = crop.shape[:2]
    scale = longer / max(h, w)
    return resize_image(crop, max(1, round(h * scale)), max(1, round(w * scale)))


def _column_crops(images: dict[str, np.ndarray], seed: int, n_train_per_class: int, n_test_per_class: int,
                  size: int | None, min_crop: int, max_crop: int, var_side: tuple[int, int] = (128, 256),
                  aspect: tuple[float, float] = (0.75, 4 / 3), test_fraction: float = 0.25,
                  min_std: float = 4.0, mirror: bool = True) -> SourceArrays:
    """Crops of pictures, one class per picture: train from the left ``1 - test_fraction`` of
    each, test from the rest (no test crop overlaps a training crop).

    A crop's height is drawn in ``[min_crop, max_crop]`` pixels of the picture and its width
    by an aspect ratio in ``aspect`` (a square when ``size`` is given), then resized
    (:func:`_crop_out`). Crops flatter than ``min_std`` grey levels are drawn again (up to 20
    times); mirrored at random when ``mirror``.
    """
    check_int("n_train_per_class", n_train_per_class, 0)
    check_int("n_test_per_class", n_test_per_class, 0)
    if size is not None:
        check_int("size", size, 8)
    rng = np.random.default_rng(seed)
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for label, (name, img) in enumerate(images.items()):
        cut = int(round(img.shape[1] * (1 - test_fraction)))
        for subset, region, n in (("train", img[:, :cut], n_train_per_class), ("test", img[:, cut:], n_test_per_class)):
            h, w = region.shape[:2]
            if min(h, w) < min_crop:
                raise ConversionError(None, f"picture {name!r} ({subset} part {h}x{w}) is too small for "
                                            f"{min_crop}-pixel crops", field="min_crop")
            for _ in range(n):
                for _attempt in range(20):
                    ch = int(rng.integers(min_crop, min(max_crop, h) + 1))
                    ratio = 1.0 if size is not None else float(np.exp(rng.uniform(*np.log(aspect))))
                    cw = int(np.clip(round(ch * ratio), min_crop, w))
                    r0, c0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
                    crop = region[r0:r0 + ch, c0:c0 + cw]
                    if crop.std() >= min_std:
                        break
                crop = _crop_out(np.ascontiguousarray(crop), rng, size, var_side)
                if mirror and rng.random() < 0.5:
                    crop = np.ascontiguousarray(crop[:, ::-1])
                xs[subset].append(crop)
                ys[subset].append(label)
    out: list = []
    shape = (size or 1, size or 1, 3)
    for subset in ("train", "test"):
        out += list(shuffled(xs[subset], ys[subset], rng, size is not None, shape))
    return out[0], out[1], out[2], out[3], list(images)


# --- KDE Plasma wallpapers (photos and illustrations, variable size) ---------------------------------

WALLPAPER_DIR = Path("/usr/share/wallpapers")
WALLPAPER_PACKAGE = "plasma-workspace-wallpapers"
WALLPAPER_SHORT_SIDE = 1024
"""The wallpapers are shrunk to this shorter side before cropping (their files are up to 5120x2880)."""


def wallpaper_files(wallpaper_dir: str | Path = WALLPAPER_DIR) -> dict[str, Path]:
    """``{wallpaper: its largest raster picture}`` of the KDE wallpaper packages, sorted by name."""
    out = {}
    root = Path(wallpaper_dir)
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        pictures = [p for p in (folder / "contents" / "images").glob("*") if p.suffix.lower() in (".jpg", ".png")]
        if pictures:
            out[folder.name] = max(pictures, key=lambda p: (p.stat().st_size, p.name))
    return out


def _wallpapers_missing(wallpaper_dir: str | Path = WALLPAPER_DIR) -> str | None:
    if len(wallpaper_files(wallpaper_dir)) < 2:
        return f"no KDE wallpapers in {wallpaper_dir}; install the Debian package: apt-get install {WALLPAPER_PACKAGE}"
    return None


@lru_cache(maxsize=8)
def _wallpaper_images(names: tuple[str, ...], wallpaper_dir: str) -> dict[str, np.ndarray]:
    files = wallpaper_files(wallpaper_dir)
    return {n: _load_rgb(files[n], WALLPAPER_SHORT_SIDE) for n in names}


def _chosen_wallpapers(wallpapers: Sequence[str] | None, wallpaper_dir: str | Path) -> tuple[str, ...]:
    reason = _wallpapers_missing(wallpaper_dir)
    if reason is not None:
        raise ConversionError(wallpaper_dir, reason)
    files = wallpaper_files(wallpaper_dir)
    chosen = tuple(files) if wallpapers is None else tuple(wallpapers)
    unknown = [w for w in chosen if w not in files]
    if unknown or len(chosen) < 2:
        raise ConversionError(None, f"wallpapers={list(chosen)!r}: expected 2 or more of {', '.join(files)}",
                              field="wallpapers")
    return chosen


def load_kde_wallpapers(seed: int = 0, wallpapers: Sequence[str] | None = None, n_train_per_class: int = 20,
                        n_test_per_class: int = 8, size: int | None = None, min_crop: int = 160,
                        max_crop: int = 480, min_side: int = 128, max_side: int = 256,
                        wallpaper_dir: str | Path = WALLPAPER_DIR) -> SourceArrays:
    """Scenes: crops of KDE Plasma's wallpapers, class = the wallpaper.

    The 30 wallpapers of Debian ``plasma-workspace-wallpapers`` (KDE community artists;
    GPL-2+ according to the package's copyright file) are landscapes,
    still lifes and abstract illustrations. Each is shrunk to a shorter side of 1024 px; a
    crop is a rectangle of height ``min_crop``..``max_crop`` px and aspect 3/4..4/3, scaled so
    that its longer side is ``min_side``..``max_side`` px (variable size), or a square resized
    to ``size`` px. Training crops come from the left three quarters of each wallpaper, test
    crops from the right quarter.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[h, w, 3]`` uint8 arrays, or ``[N, size, size, 3]``), ``y_train``,
        ``x_test``, ``y_test``, the wallpapers' names.
    """
    chosen = _chosen_wallpapers(wallpapers, wallpaper_dir)
    check_int("min_side", min_side, 8)
    check_int("max_side", max_side, min_side)
    check_int("min_crop", min_crop, 8)
    check_int("max_crop", max_crop, min_crop)
    images = _wallpaper_images(chosen, str(wallpaper_dir))
    return _column_crops(images, seed, n_train_per_class, n_test_per_class, size, min_crop, max_crop,
                         var_side=(min_side, max_side))


# --- GNOME pattern backgrounds ---------------------------------------------------------------------

GNOME_BACKGROUND_DIR = Path("/usr/share/backgrounds/gnome")
GNOME_BACKGROUND_PACKAGE = "gnome-backgrounds"


def gnome_background_files(background_dir: str | Path = GNOME_BACKGROUND_DIR) -> dict[str, list[Path]]:
    """``{pattern: [its light and dark raster pictures]}`` (SVG backgrounds are left out)."""
    out: dict[str, list[Path]] = {}
    root = Path(background_dir)
    if not root.is_dir():
        return out
    for p in sorted(root.iterdir()):
        if p.suffix.lower() in (".webp", ".jpg", ".png"):
            out.setdefault(p.stem.removesuffix("-d").removesuffix("-l"), []).append(p)
    return out


def _gnome_missing(background_dir: str | Path = GNOME_BACKGROUND_DIR) -> str | None:
    if len(gnome_background_files(background_dir)) < 2:
        return (f"no GNOME backgrounds in {background_dir}; install the Debian package: "
                f"apt-get install {GNOME_BACKGROUND_PACKAGE}")
    return None


def load_gnome_backgrounds(seed: int = 0, patterns: Sequence[str] | None = None, n_train_per_class: int = 80,
                           n_test_per_class: int = 30, size: int | None = 64, min_crop: int = 96,
                           max_crop: int = 384, background_dir: str | Path = GNOME_BACKGROUND_DIR) -> SourceArrays:
    """Patterns: crops of GNOME's raster backgrounds, class = the pattern.

    Debian ``gnome-backgrounds`` (GNOME artists; CC BY-SA 3.0) holds 8 raster patterns
    (adwaita, grid, licorice, pixels, symbolic, truchet, vnc, wood, ...), each in a light
    and a dark variant. Each picture is shrunk to a shorter side of 1024 px (the small tile
    ``vnc`` is tiled up to that size first); crops of side ``min_crop``..``max_crop`` px are
    resized to ``size`` (or, with ``size=None``, kept variable at 128-256 px). Half the crops
    of a pattern come from each variant; training crops from the left three quarters, test
    crops from the right quarter.
    """
    files = gnome_background_files(background_dir)
    if len(files) < 2:
        raise ConversionError(background_dir, _gnome_missing(background_dir) or "")
    chosen = list(files) if patterns is None else list(patterns)
    unknown = [p for p in chosen if p not in files]
    if unknown or len(chosen) < 2:
        raise ConversionError(None, f"patterns={chosen!r}: expected 2 or more of {', '.join(files)}",
                              field="patterns")
    parts = []
    for k, variant in enumerate((0, 1)):
        images = {}
        for p in chosen:
            path = files[p][min(variant, len(files[p]) - 1)]
            img = _load_rgb(path, 1024)
            if min(img.shape[:2]) < 1024:  # a small tile: repeat it
                reps = (math.ceil(1024 / img.shape[0]), math.ceil(1024 / img.shape[1]), 1)
                img = np.tile(img, reps)[:1024, :1024]
            images[p] = img
        half_train = n_train_per_class // 2 + (n_train_per_class % 2 if k == 0 else 0)
        half_test = n_test_per_class // 2 + (n_test_per_class % 2 if k == 0 else 0)
        parts.append(_column_crops(images, seed + k, half_train, half_test, size, min_crop, max_crop))
    rng = np.random.default_rng(seed + 2)
    out: list = []
    for i in (0, 2):
        xs = list(parts[0][i]) + list(parts[1][i])
        ys = list(parts[0][i + 1]) + list(parts[1][i + 1])
        out += list(shuffled(xs, ys, rng, size is not None, (size or 1, size or 1, 3)))
    return out[0], out[1], out[2], out[3], chosen


# --- Freeciv flags (many classes, few examples; multi-label grid) -------------------------------------

FLAG_DIR = Path("/usr/share/games/freeciv/flags")
FLAG_PACKAGE = "freeciv-data"


def flag_files(flag_dir: str | Path = FLAG_DIR) -> dict[str, Path]:
    """``{flag: its large picture}``, one per distinct picture (flags drawn alike are kept once,
    the first in sorted order), sorted by name."""
    root = Path(flag_dir)
    if not root.is_dir():
        return {}
    seen: set[str] = set()
    out = {}
    for p in sorted(root.glob("*-large.png")):
        name = p.name.removesuffix("-large.png")
        if name.endswith("-shield"):
            continue
        digest = hashlib.sha256(p.read_bytes()).hexdigest()
        if digest in seen:
            continue
        seen.add(digest)
        out[name] = p
    return out


def _flags_missing(flag_dir: str | Path = FLAG_DIR) -> str | None:
    if not Path(flag_dir).is_dir() or not any(Path(flag_dir).glob("*-large.png")):
        return f"no Freeciv flags in {flag_dir}; install the Debian package: apt-get install {FLAG_PACKAGE}"
    return None


def _chosen_flags(n_flags: int, seed: int, flag_dir: str | Path) -> list[str]:
    reason = _flags_missing(flag_dir)
    if reason is not None:
        raise ConversionError(flag_dir, reason)
    files = flag_files(flag_dir)
    check_int("n_flags", n_flags, 2, len(files))
    picks = np.random.default_rng(seed).choice(len(files), size=n_flags, replace=False)
    return [list(files)[i] for i in sorted(picks.tolist())]


@lru_cache(maxsize=1024)
def _flag_rgba(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return alpha_crop(np.asarray(img.convert("RGBA")))


def _flag_drawing(rgba: np.ndarray, size: int, rng: np.random.Generator, background: np.ndarray | None = None
                  ) -> np.ndarray:
    """A flag turned up to 12 degrees, scaled to 55-90 % of the side, shifted, colour-jittered,
    on a random background: ``[size, size, 3]`` uint8."""
    from PIL import Image

    scale = float(rng.uniform(0.55, 0.9)) * size / max(rgba.shape[:2])
    h, w = max(1, round(rgba.shape[0] * scale)), max(1, round(rgba.shape[1] * scale))
    img = Image.fromarray(scaled_rgba(rgba, h, w), "RGBA")
    img = img.rotate(float(rng.uniform(-12, 12)), resample=Image.Resampling.BICUBIC, expand=True)
    arr = np.asarray(img).astype(np.float64)
    gain, offset = rng.uniform(0.8, 1.2), rng.uniform(-20, 20)
    arr[..., :3] = np.clip(arr[..., :3] * gain + offset, 0, 255)
    arr = np.rint(arr).astype(np.uint8)
    canvas = random_background(size, size, rng) if background is None else background
    top = (size - arr.shape[0]) // 2 + int(rng.integers(-size // 10, size // 10 + 1))
    left = (size - arr.shape[1]) // 2 + int(rng.integers(-size // 10, size // 10 + 1))
    return paste(canvas, arr, top, left)


def load_freeciv_flags(seed: int = 0, n_flags: int = 100, n_train_per_class: int = 6, n_test_per_class: int = 4,
                       size: int = 64, flag_dir: str | Path = FLAG_DIR) -> SourceArrays:
    """Flags: Freeciv's national and historical flags, class = the flag, few examples each.

    ``n_flags`` flags are drawn (seeded) from the distinct pictures of Debian ``freeciv-data``
    (Freeciv project; GPL-2+); each example is the flag's 44x30 picture turned by up to 12
    degrees, scaled to fill 55 to 90 % of a ``size`` square, shifted, brightness- and
    contrast-jittered, on a random plain or gradient background. Train and test are
    independent drawings.

    Returns
    -------
    tuple
        ``x_train [n_flags*n_train_per_class, size, size, 3]`` uint8, ``y_train``, ``x_test``,
        ``y_test``, the flags' names.
    """
    check_int("size", size, 16)
    names = _chosen_flags(n_flags, seed, flag_dir)
    files = flag_files(flag_dir)
    rng = np.random.default_rng(seed + 1)
    out: list = []
    for n in _per_class_counts(n_train_per_class, n_test_per_class):
        xs, ys = [], []
        for label, name in enumerate(names):
            for _ in range(n):
                xs.append(_flag_drawing(_flag_rgba(str(files[name])), size, rng))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], names


def load_flag_grid(seed: int = 0, n_flags: int = 20, n_train: int = 1000, n_test: int = 400, cell: int = 48,
                   grid: int = 2, max_labels: int = 3, flag_dir: str | Path = FLAG_DIR) -> SourceArrays:
    """Multi-label: which flags are on a canvas of ``grid x grid`` cells.

    Each example has 1 to ``max_labels`` distinct flags of ``n_flags`` (drawn from Debian
    ``freeciv-data`` as :func:`load_freeciv_flags` does) in distinct random cells, each drawn
    as there on the cell's own random background; the other cells hold a background only.

    Returns
    -------
    tuple
        ``x_train [n_train, grid*cell, grid*cell, 3]`` uint8, ``y_train [n_train, n_flags]``
        0/1, ``x_test``, ``y_test``, the flags' names.
    """
    check_int("cell", cell, 16)
    check_int("grid", grid, 1)
    names = _chosen_flags(n_flags, seed, flag_dir)
    check_int("max_labels", max_labels, 1, min(grid * grid, len(names)))
    files = flag_files(flag_dir)
    rng = np.random.default_rng(seed + 1)
    side = grid * cell
    out: list = []
    for n in (check_int("n_train", n_train, 0), check_int("n_test", n_test, 0)):
        x = np.zeros((n, side, side, 3), np.uint8)
        y = np.zeros((n, len(names)), np.int64)
        for i in range(n):
            k = int(rng.integers(1, max_labels + 1))
            chosen = rng.choice(len(names), size=k, replace=False)
            cells = rng.choice(grid * grid, size=k, replace=False)
            filled = dict(zip(cells.tolist(), chosen.tolist()))
            for where in range(grid * grid):
                r, c = divmod(where, grid)
                if where in filled:
                    tile = _flag_drawing(_flag_rgba(str(files[names[filled[where]]])), cell, rng)
                    y[i, filled[where]] = 1
                else:
                    tile = random_background(cell, cell, rng)
                x[i, r * cell:(r + 1) * cell, c * cell:(c + 1) * cell] = tile
        out += [x, y]
    return out[0], out[1], out[2], out[3], names


# --- Oxygen colour icons ---------------------------------------------------------------------------

OXYGEN_DIR = Path("/usr/share/icons/oxygen/base")
OXYGEN_PACKAGE = "oxygen-icon-theme"
OXYGEN_CONTEXTS = ("actions", "apps", "categories", "devices", "emotes", "mimetypes", "places", "status")
OXYGEN_SMALL_SIZES = (16, 22, 32, 48)
OXYGEN_LARGE_SIZES = (128, 256)


def oxygen_icon_files(theme_dir: str | Path = OXYGEN_DIR) -> dict[tuple[str, str], dict[int, Path]]:
    """``{(context, icon): {size: png}}`` of the Oxygen theme's PNG icons."""
    found: dict[tuple[str, str], dict[int, Path]] = {}
    root = Path(theme_dir)
    if not root.is_dir():
        return found
    for folder in sorted(root.glob("*x*")):
        try:
            s = int(folder.name.split("x")[0])
        except ValueError:
            continue
        for context_dir in sorted(p for p in folder.iterdir() if p.is_dir()):
            for png in sorted(context_dir.glob("*.png")):
                found.setdefault((context_dir.name, png.stem), {})[s] = png
    return found


def _oxygen_missing(theme_dir: str | Path = OXYGEN_DIR) -> str | None:
    if not (Path(theme_dir) / "64x64").is_dir():
        return f"no Oxygen icons in {theme_dir}; install the Debian package: apt-get install {OXYGEN_PACKAGE}"
    return None


def _icon_on_background(png: Path, side: int, rng: np.random.Generator, fill: tuple[float, float] = (0.7, 0.95)
                        ) -> np.ndarray:
    """An icon scaled to fill part of a ``side`` square, on a random background: ``[side, side, 3]``."""
    rgba = alpha_crop(_cached_icon(str(png)))
    scale = float(rng.uniform(*fill)) * side / max(rgba.shape[:2])
    h, w = max(1, round(rgba.shape[0] * scale)), max(1, round(rgba.shape[1] * scale))
    scaled = scaled_rgba(rgba, h, w)
    top = (side - h) // 2 + int(rng.integers(-side // 16, side // 16 + 1))
    left = (side - w) // 2 + int(rng.integers(-side // 16, side // 16 + 1))
    return paste(random_background(side, side, rng), scaled, top, left)


@lru_cache(maxsize=4096)
def _cached_icon(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGBA"))


def load_oxygen_icons(seed: int = 0, task: str = "context", contexts: Sequence[str] = OXYGEN_CONTEXTS,
                      sizes: Sequence[int] = (64, 128, 256), max_icons: int = 50, test_fraction: float = 1 / 3,
                      n_icons: int = 60, n_train_per_class: int = 8, n_test_per_class: int = 4, size: int = 64,
                      theme_dir: str | Path = OXYGEN_DIR) -> SourceArrays:
    """Colour pictograms: KDE's Oxygen icons (Debian ``oxygen-icon-theme``; LGPL-3+) on random backgrounds.

    - ``task="context"``: class = the theme's context folder (``contexts``); each icon (at
      most ``max_icons`` per context, a seeded choice) appears once per size of ``sizes`` that
      the theme has, at that size (variable size), filling 70-95 % of a random plain or
      gradient background. Train and test hold different icons (a seeded split by icon,
      ``test_fraction`` to test).
    - ``task="icon"``: class = the icon (``n_icons`` icons, seeded, among those the theme
      draws at every small size 16-48 px and at a large one, 128 or 256 px); training
      drawings from the small renditions (drawn by hand for those sizes, enlarged) and test
      drawings from the large ones (shrunk), each on a random background, ``size`` px.

    Returns
    -------
    tuple
        ``x_train`` (a list of ``[s, s, 3]`` arrays for ``context``, ``[N, size, size, 3]``
        for ``icon``), ``y_train``, ``x_test``, ``y_test``, the contexts' or icons' names.
    """
    reason = _oxygen_missing(theme_dir)
    if reason is not None:
        raise ConversionError(theme_dir, reason)
    if task not in ("context", "icon"):
        raise ConversionError(None, f"task={task!r}: expected 'context' or 'icon'", field="task")
    files = oxygen_icon_files(theme_dir)
    rng = np.random.default_rng(seed)
    if task == "context":
        unknown = [c for c in contexts if c not in OXYGEN_CONTEXTS]
        if unknown or len(contexts) < 2:
            raise ConversionError(None, f"contexts={list(contexts)!r}: expected 2 or more of "
                                        f"{', '.join(OXYGEN_CONTEXTS)}", field="contexts")
        keys: list[tuple[str, str]] = []
        for c in contexts:
            have = sorted(k for k in files if k[0] == c and any(s in files[k] for s in sizes))
            if len(have) < 2:
                raise ConversionError(theme_dir, f"context {c!r} has {len(have)} icons at sizes {list(sizes)}",
                                      field="contexts")
            picks = rng.choice(len(have), size=min(max_icons, len(have)), replace=False)
            keys += [have[i] for i in sorted(picks.tolist())]
        strata = np.asarray([list(contexts).index(k[0]) for k in keys])
        train_mask, test_mask = split_by_group(np.arange(len(keys)), strata, test_fraction, seed)
        out: list = []
        for mask in (train_mask, test_mask):
            xs, ys = [], []
            for i in np.flatnonzero(mask):
                for s in sizes:
                    if s in files[keys[i]]:
                        xs.append(_icon_on_background(files[keys[i]][s], s, rng))
                        ys.append(int(strata[i]))
            out += list(shuffled(xs, ys, rng, False, (1, 1, 3)))
        return out[0], out[1], out[2], out[3], list(contexts)
    check_int("size", size, 16)
    eligible = sorted(k for k, v in files.items() if k[0] in OXYGEN_CONTEXTS
                      and all(s in v for s in OXYGEN_SMALL_SIZES) and any(s in v for s in OXYGEN_LARGE_SIZES))
    check_int("n_icons", n_icons, 2, len(eligible))
    picks = rng.choice(len(eligible), size=n_icons, replace=False)
    chosen = [eligible[i] for i in sorted(picks.tolist())]
    out = []
    for group, n in ((OXYGEN_SMALL_SIZES, check_int("n_train_per_class", n_train_per_class, 0)),
                     (OXYGEN_LARGE_SIZES, check_int("n_test_per_class", n_test_per_class, 0))):
        xs, ys = [], []
        for label, key in enumerate(chosen):
            have = [s for s in group if s in files[key]]
            for j in range(n):
                xs.append(_icon_on_background(files[key][have[j % len(have)]], size, rng, fill=(0.6, 0.95)))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], [f"{c}/{n}" for c, n in chosen]


# --- Marble's world maps ------------------------------------------------------------------------------

MARBLE_DIR = Path("/usr/share/marble/data/maps/earth")
MARBLE_PACKAGE = "marble-data"
MARBLE_MAPS = {
    "behaim1492": ("tiles", 1), "schagen1689": ("file", "schagen1689.jpg"), "srtm": ("tiles", 1),
    "temp-july": ("file", "temp-july.jpg"), "precip-july": ("file", "precip-july.jpg"),
}
"""Marble's world maps used (a single picture, or the tiles of one level): Behaim's 1492 globe,
Schagen's 1689 map, SRTM relief, July temperature and precipitation. ``bluemarble``,
``citylights`` and ``sentinel2`` (satellite photographs, like the held-out Blue Marble crops)
are left out, and so are ``clouds`` (mostly black) and the December maps (too like July's)."""
MARBLE_WIDTH = 2160
"""Every map is resized to this width (and half of it in height: equirectangular)."""


def _marble_missing(maps_dir: str | Path = MARBLE_DIR) -> str | None:
    if not (Path(maps_dir) / "temp-july" / "temp-july.jpg").is_file():
        return f"no Marble maps in {maps_dir}; install the Debian package: apt-get install {MARBLE_PACKAGE}"
    return None


@lru_cache(maxsize=16)
def _marble_map(name: str, maps_dir: str) -> np.ndarray:
    """One world map as ``[MARBLE_WIDTH / 2, MARBLE_WIDTH, 3]`` uint8 (tiles assembled)."""
    kind, what = MARBLE_MAPS[name]
    folder = Path(maps_dir) / name
    if kind == "file":
        img = _load_rgb(folder / str(what))
    else:
        level = folder / str(what)
        rows = sorted(p for p in level.iterdir() if p.is_dir()) if level.is_dir() else []
        if not rows:
            raise ConversionError(level, "holds no map tiles")
        img = np.concatenate([np.concatenate([_load_rgb(t) for t in sorted(r.glob("*.jpg"))], axis=1)
                              for r in rows], axis=0)
    return resize_image(img, MARBLE_WIDTH // 2, MARBLE_WIDTH)


def load_marble_maps(seed: int = 0, maps: Sequence[str] = tuple(MARBLE_MAPS), n_train_per_class: int = 80,
                     n_test_per_class: int = 30, size: int | None = 64, min_crop: int = 64, max_crop: int = 160,
                     maps_dir: str | Path = MARBLE_DIR) -> SourceArrays:
    """Map styles: crops of the world maps of the Marble globe, class = the map.

    Debian ``marble-data`` (KDE Marble; LGPL-2.1+, its maps public domain or free: Behaim's
    1492 globe, Schagen's 1689 world map, SRTM relief, July temperature and precipitation)
    holds the maps as equirectangular pictures of the whole Earth. Crops of side
    ``min_crop``..``max_crop`` px of the 2160x1080 map are resized to ``size`` (variable
    128-256 px with ``size=None``); training crops come from longitudes 180 W to 90 E, test
    crops from 90 E to 180 E (places never seen in training).
    Not mirrored (maps have a handedness).
    """
    reason = _marble_missing(maps_dir)
    if reason is not None:
        raise ConversionError(maps_dir, reason)
    unknown = [m for m in maps if m not in MARBLE_MAPS]
    if unknown or len(maps) < 2:
        raise ConversionError(None, f"maps={list(maps)!r}: expected 2 or more of {', '.join(MARBLE_MAPS)}",
                              field="maps")
    images = {m: _marble_map(m, str(maps_dir)) for m in maps}
    return _column_crops(images, seed, n_train_per_class, n_test_per_class, size, min_crop, max_crop,
                         min_std=3.0, mirror=False)


# --- generated: procedural textures and blob scenes --------------------------------------------------

TEXTURE_FAMILIES = ("stripes", "checker", "dots", "rings", "cells", "zigzag", "blotches", "speckle")


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, scale: float) -> np.ndarray:
    """Periodic Gaussian-filtered white noise (FFT), normalised to zero mean and unit std."""
    h, w = shape
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :]
    spectrum = np.fft.fft2(rng.normal(size=shape)) * np.exp(-(fx ** 2 + fy ** 2) * (2 * np.pi * scale) ** 2 / 2)
    field = np.real(np.fft.ifft2(spectrum))
    return (field - field.mean()) / max(float(field.std()), 1e-9)


def texture_pattern(family: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A procedural texture of one family as a ``[size, size]`` float map in [0, 1] (random
    period, angle and phase)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    u = xx * np.cos(angle) + yy * np.sin(angle)
    v = -xx * np.sin(angle) + yy * np.cos(angle)
    period = rng.uniform(5, 12) * size / 64
    phase = rng.uniform(0, 2 * np.pi)
    if family == "stripes":
        return (np.sin(2 * np.pi * u / period + phase) > 0).astype(np.float64)
    if family == "checker":
        return ((np.floor(u / period + phase) + np.floor(v / period)) % 2).astype(np.float64)
    if family == "dots":
        du, dv = (u / period + phase) % 1 - 0.5, (v / period) % 1 - 0.5
        return (np.hypot(du, dv) < rng.uniform(0.2, 0.35)).astype(np.float64)
    if family == "rings":
        cy, cx = rng.uniform(-0.2, 1.2, 2) * size
        return (np.sin(2 * np.pi * np.hypot(yy - cy, xx - cx) / period + phase) > 0).astype(np.float64)
    if family == "cells":  # Voronoi borders
        n = max(4, int(rng.integers(6, 16) * (size / 64) ** 2))
        points = rng.uniform(0, size, (n, 2))
        d = np.sort(np.hypot(yy[..., None] - points[:, 0], xx[..., None] - points[:, 1]), axis=-1)
        return (d[..., 1] - d[..., 0] < rng.uniform(1.2, 2.5) * size / 64).astype(np.float64)
    if family == "zigzag":
        tri = np.abs((v / period + phase) % 2 - 1) * period
        return (np.sin(2 * np.pi * (u + tri) / period) > 0).astype(np.float64)
    if family == "blotches":
        return (_smooth_noise((size, size), rng, rng.uniform(2.5, 5) * size / 64) > 0).astype(np.float64)
    if family == "speckle":
        return (_smooth_noise((size, size), rng, 0.6) > rng.uniform(0.5, 1.2)).astype(np.float64)
    raise ConversionError(None, f"family={family!r}: expected one of {', '.join(TEXTURE_FAMILIES)}", field="family")


def _colourise(pattern: np.ndarray, rng: np.random.Generator, muted: bool = False) -> np.ndarray:
    """A [0, 1] map painted with two random colours (``[H, W, 3]`` float, 0..255)."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    while np.abs(c0 - c1).sum() < 120:  # keep the two colours apart
        c1 = rng.uniform(0, 255, 3)
    if muted:
        c0, c1 = 0.5 * c0 + 64, 0.5 * c1 + 64
    return c0 + pattern[..., None] * (c1 - c0)


def _blob_mask(size: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth random blob: a disc whose radius wobbles with the angle, ``[size, size]`` bool."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    r0 = rng.uniform(0.15, 0.32) * size
    theta = np.arctan2(yy - cy, xx - cx)
    radius = r0 * (1 + sum(rng.uniform(0, 0.25) * np.sin(k * theta + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5)))
    return np.hypot(yy - cy, xx - cx) < radius


def load_blob_scenes(seed: int = 0, families: Sequence[str] = TEXTURE_FAMILIES, n_train_per_class: int = 60,
                     n_test_per_class: int = 30, size: int = 64, scene: bool = True) -> SourceArrays:
    """Generated: blobs of a procedural texture on another texture, class = the blobs' texture family.

    With ``scene=True`` each example has 1 to 3 smooth random blobs filled with one texture
    of the class's family (random period, angle, phase and two random colours) on a
    background of another family in muted colours; with ``scene=False`` the class's texture
    fills the image. A little Gaussian noise is added.
    """
    unknown = [f for f in families if f not in TEXTURE_FAMILIES]
    if unknown or len(families) < 2 or len(set(families)) != len(families):
        raise ConversionError(None, f"families={list(families)!r}: expected 2 or more distinct of "
                                    f"{', '.join(TEXTURE_FAMILIES)}", field="families")
    check_int("size", size, 16)
    rng = np.random.default_rng(seed)
    out: list = []
    for n in _per_class_counts(n_train_per_class, n_test_per_class):
        xs, ys = [], []
        for label, family in enumerate(families):
            for _ in range(n):
                fg = _colourise(texture_pattern(family, size, rng), rng)
                if scene:
                    other = [f for f in TEXTURE_FAMILIES if f != family]
                    bg = _colourise(texture_pattern(other[int(rng.integers(len(other)))], size, rng), rng, muted=True)
                    mask = np.zeros((size, size), bool)
                    for _ in range(int(rng.integers(1, 4))):
                        mask |= _blob_mask(size, rng)
                    img = np.where(mask[..., None], fg, bg)
                else:
                    img = fg
                img = img + rng.normal(0, 4, img.shape)
                xs.append(np.clip(np.rint(img), 0, 255).astype(np.uint8))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], list(families)


# --- generated: noise and blur levels as classes ------------------------------------------------------

def _procedural_scene(size: int, rng: np.random.Generator) -> np.ndarray:
    """A crisp random scene: a two-colour gradient with 4-9 filled rectangles, ellipses and bars
    (no anti-aliasing, so that sharpness is the generator's, not the drawing's)."""
    from PIL import Image, ImageDraw

    img = Image.fromarray(random_background(size, size, rng, noise=0.0))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(4, 10))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x0, y0 = rng.uniform(-0.1, 0.9, 2) * size
        w, h = rng.uniform(0.1, 0.5, 2) * size
        kind = int(rng.integers(3))
        if kind == 0:
            draw.rectangle((x0, y0, x0 + w, y0 + h), fill=colour)
        elif kind == 1:
            draw.ellipse((x0, y0, x0 + w, y0 + h), fill=colour)
        else:
            draw.line((x0, y0, x0 + w, y0 + h * rng.choice([-1, 1])), fill=colour, width=int(rng.integers(1, 4)))
    return np.asarray(img)


def load_degradations(seed: int = 0, content: str = "procedural", blur_radii: Sequence[float] = (0.0, 1.0, 2.0),
                      noise_levels: Sequence[float] = (0.0, 8.0, 20.0), n_train_per_class: int = 80,
                      n_test_per_class: int = 30, size: int = 64,
                      wallpaper_dir: str | Path = WALLPAPER_DIR) -> SourceArrays:
    """Generated: noise and blur levels as classes.

    Each example is a picture (``content="procedural"``: a crisp random scene of rectangles,
    ellipses and bars on a gradient; ``content="wallpapers"``: a 64-256 px crop of a KDE
    wallpaper, Debian ``plasma-workspace-wallpapers``, shrunk to ``size``) blurred by a
    Gaussian of one radius of ``blur_radii`` and then corrupted by Gaussian noise of one
    standard deviation of ``noise_levels`` (grey levels); class = the (blur, noise) pair,
    ``len(blur_radii) * len(noise_levels)`` classes named ``blur<r>-noise<s>``. Wallpaper
    crops for test come from the right quarter of each wallpaper, training crops from the
    rest.
    """
    from PIL import Image, ImageFilter

    if content not in ("procedural", "wallpapers"):
        raise ConversionError(None, f"content={content!r}: expected 'procedural' or 'wallpapers'", field="content")
    radii = [_check_float("blur_radii", r, 0.0) for r in blur_radii]
    sigmas = [_check_float("noise_levels", s, 0.0) for s in noise_levels]
    if len(radii) * len(sigmas) < 2:
        raise ConversionError(None, "expected at least 2 (blur, noise) classes", field="blur_radii")
    check_int("size", size, 16)
    n_train = check_int("n_train_per_class", n_train_per_class, 0)
    n_test = check_int("n_test_per_class", n_test_per_class, 0)
    classes = [(r, s) for r in radii for s in sigmas]
    names = [f"blur{r:g}-noise{s:g}" for r, s in classes]
    rng = np.random.default_rng(seed)
    if content == "wallpapers":
        chosen = _chosen_wallpapers(None, wallpaper_dir)
        per = len(classes)
        crops = _column_crops(_wallpaper_images(chosen, str(wallpaper_dir)), seed,
                              math.ceil(n_train * per / len(chosen)), math.ceil(n_test * per / len(chosen)),
                              size, 64, 256)
        pools = [crops[0], crops[2]]
    out: list = []
    for k, n in enumerate((n_train, n_test)):
        xs, ys = [], []
        for label, (radius, sigma) in enumerate(classes):
            for j in range(n):
                if content == "wallpapers":
                    base = pools[k][(label * n + j) % len(pools[k])]
                else:
                    base = _procedural_scene(size, rng)
                img = Image.fromarray(base)
                if radius > 0:
                    img = img.filter(ImageFilter.GaussianBlur(radius))
                arr = np.asarray(img).astype(np.float64)
                if sigma > 0:
                    arr = arr + rng.normal(0, sigma, arr.shape)
                xs.append(np.clip(np.rint(arr), 0, 255).astype(np.uint8))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (size, size, 3)))
    return out[0], out[1], out[2], out[3], names


# --- generated: videos told apart by motion or time only -----------------------------------------------

def _torus_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """A periodic colour texture ``[size, size, 3]`` float 0..255: smooth noise of random scale
    mapped through two random colours, plus a finer noise layer (so that motion shows)."""
    coarse = _smooth_noise((size, size), rng, rng.uniform(1.5, 4.0))
    fine = _smooth_noise((size, size), rng, 0.8)
    pattern = 1 / (1 + np.exp(-(coarse + 0.5 * fine) * 1.5))
    return _colourise(pattern, rng)


TEXTURE_SPEEDS = (1, 2, 3, 4)
"""Classes of ``texture_speed``: pixels moved per frame."""
SPEED_DIRECTIONS = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (1, -1), (-1, 1), (-1, -1))


def load_texture_speed(seed: int = 0, speeds: Sequence[int] = TEXTURE_SPEEDS, n_train_per_class: int = 100,
                       n_test_per_class: int = 40, frames: int = 8, size: int = 48) -> SourceArrays:
    """Generated video, told apart by motion only: a texture sliding at one of ``speeds`` pixels a frame.

    A random periodic colour texture (smooth noise through two random colours) is rolled by
    ``speed * t`` pixels along one of 8 directions (the 4 axes and 4 diagonals, drawn at
    random) from a random start. The texture lives on a torus, so every frame is the same
    stationary random field, whatever the class: only the displacement between frames tells
    the speed. Training's ``moving_squares`` tells directions apart and the held-out
    ``spin_zoom`` rotation and zoom; here direction is a nuisance and speed the class.

    Returns
    -------
    tuple
        ``x_train [len(speeds)*n_train_per_class, frames, size, size, 3]`` uint8, ``y_train``,
        ``x_test``, ``y_test``, names ``1px``, ``2px``, ...
    """
    if len(speeds) < 2 or len(set(speeds)) != len(speeds):
        raise ConversionError(None, f"speeds={list(speeds)!r}: expected 2 or more distinct integers", field="speeds")
    for s in speeds:
        check_int("speeds", s, 1, size // 2)
    check_int("frames", frames, 2)
    check_int("size", size, 8)
    rng = np.random.default_rng(seed)
    out: list = []
    for n in _per_class_counts(n_train_per_class, n_test_per_class):
        xs, ys = [], []
        for label, speed in enumerate(speeds):
            for _ in range(n):
                tex = _torus_texture(size, rng)
                dy, dx = SPEED_DIRECTIONS[int(rng.integers(len(SPEED_DIRECTIONS)))]
                oy, ox = (int(v) for v in rng.integers(0, size, 2))
                clip = np.stack([np.roll(tex, (oy + dy * speed * t, ox + dx * speed * t), axis=(0, 1))
                                 for t in range(frames)])
                clip = clip + rng.normal(0, 3, clip.shape)
                xs.append(np.clip(np.rint(clip), 0, 255).astype(np.uint8))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (frames, size, size, 3)))
    return out[0], out[1], out[2], out[3], [f"{s}px" for s in speeds]


FLICKER_PERIODS = (8.0, 4.0, 8 / 3, 2.0)
"""Classes of ``flicker``: the period of the brightness oscillation, in frames."""


def load_flicker(seed: int = 0, periods: Sequence[float] = FLICKER_PERIODS, n_train_per_class: int = 100,
                 n_test_per_class: int = 40, frames: int = 8, size: int = 48, depth: float = 0.45) -> SourceArrays:
    """Generated video, told apart by time only: a blob flickering at one of ``periods`` frames.

    A random blob on a random still texture has its brightness multiplied by ``1 + depth *
    sin(2 pi t / period + phase)`` with a uniform random phase. For any one frame the phase
    term is uniform whatever the period, so a single frame has the same distribution in
    every class; only the sequence tells the frequency apart.

    Returns
    -------
    tuple
        ``x_train [len(periods)*n_train_per_class, frames, size, size, 3]`` uint8, ``y_train``,
        ``x_test``, ``y_test``, names ``period8``, ``period4``, ...
    """
    if len(periods) < 2 or len(set(periods)) != len(periods):
        raise ConversionError(None, f"periods={list(periods)!r}: expected 2 or more distinct numbers", field="periods")
    for p in periods:
        _check_float("periods", p, 2.0)
    depth = _check_float("depth", depth, 0.0, 1.0)
    check_int("frames", frames, 2)
    check_int("size", size, 8)
    rng = np.random.default_rng(seed)
    out: list = []
    t = np.arange(frames, dtype=np.float64)
    for n in _per_class_counts(n_train_per_class, n_test_per_class):
        xs, ys = [], []
        for label, period in enumerate(periods):
            for _ in range(n):
                tex = _torus_texture(size, rng)
                blob = _colourise(texture_pattern("blotches", size, rng), rng)
                mask = _blob_mask(size, rng)[..., None]
                still = np.where(mask, blob, tex * 0.8)
                gain = 1 + depth * np.sin(2 * np.pi * t / float(period) + rng.uniform(0, 2 * np.pi))
                clip = np.stack([np.where(mask, still * g, still) for g in gain])
                clip = clip + rng.normal(0, 3, clip.shape)
                xs.append(np.clip(np.rint(clip), 0, 255).astype(np.uint8))
                ys.append(label)
        out += list(shuffled(xs, ys, rng, True, (frames, size, size, 3)))
    return out[0], out[1], out[2], out[3], [f"period{p:.3g}" for p in periods]


# --- registration ------------------------------------------------------------------------------------

TRAINING_SOURCES = (
    DataSource("kde_wallpapers", "scene crops of KDE Plasma's 30 wallpapers (Debian plasma-workspace-wallpapers, "
                                 "GPL-2+), class = the wallpaper, longer side 128-256 px "
                                 "(variable) or one fixed size, test crops from the right quarter",
               "30 classes, variable HxWx3", load_kde_wallpapers, _wallpapers_missing),
    DataSource("gnome_backgrounds", "crops of GNOME's raster pattern backgrounds, light and dark variants (Debian "
                                    "gnome-backgrounds, CC BY-SA 3.0), class = the pattern, test crops from the right "
                                    "quarter", "8 classes, 64x64x3", load_gnome_backgrounds, _gnome_missing),
    DataSource("freeciv_flags", "Freeciv's flags (Debian freeciv-data, GPL-2+) turned, scaled, shifted and colour-"
                                "jittered on random backgrounds, class = the flag, few examples each",
               "100 classes, 64x64x3", load_freeciv_flags, _flags_missing),
    DataSource("flag_grid", "multi-label: 1 to 3 of 20 Freeciv flags (Debian freeciv-data, GPL-2+) in the cells of a "
                            "2x2 grid; labels = the flags present", "20 classes (multi-label), 96x96x3",
               load_flag_grid, _flags_missing),
    DataSource("oxygen_icons", "KDE Oxygen colour icons (Debian oxygen-icon-theme, LGPL-3+) on random backgrounds, "
                               "class = the context (64-256 px, unseen icons in test) or the icon (small renditions "
                               "in training, large ones in test)", "8 classes, variable sxsx3",
               load_oxygen_icons, _oxygen_missing),
    DataSource("marble_maps", "crops of the Marble globe's world maps (Debian marble-data, LGPL-2.1+: Behaim's 1492 "
                              "globe, Schagen's 1689 map, SRTM relief, July temperature and precipitation), class = "
                              "the map, test crops from longitudes 90 E-180 E", "5 classes, 64x64x3",
               load_marble_maps, _marble_missing),
    DataSource("blob_scenes", "generated: 1-3 blobs of a procedural texture (stripes, checker, dots, rings, cells, "
                              "zigzag, blotches, speckle) on another texture, class = the blobs' texture family",
               "8 classes, 64x64x3", load_blob_scenes, lambda: None),
    DataSource("degradations", "generated: procedural scenes (or KDE wallpaper crops) blurred and corrupted by noise, "
                               "class = the (blur radius, noise level) pair", "9 classes, 64x64x3",
               load_degradations, lambda: None),
    DataSource("texture_speed", "generated video by motion only: a periodic colour texture sliding in a random "
                                "direction, class = its speed (1-4 px a frame); every frame has the same "
                                "distribution in every class", "4 classes, 8x48x48x3 clips",
               load_texture_speed, lambda: None),
    DataSource("flicker", "generated video by time only: a blob flickering on a still texture, class = the period "
                          "(2-8 frames), uniform random phase; every frame has the same distribution in every class",
               "4 classes, 8x48x48x3 clips", load_flicker, lambda: None),
)
"""The extra training sources, which :mod:`autodl.sources` registers."""
