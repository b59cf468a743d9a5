"""Fonts and glyphs drawn from them, for the sources of rendered characters (``glyphs``,
``multi_glyphs`` of :mod:`autodl.sources_core`, ``greek_letters`` of
:mod:`autodl.sources_heldout`): where each takes its fonts (training and held-out typefaces
never meet), which fonts draw a set of characters, and one glyph drawn as MNIST draws a digit."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FONT_DIRS = (Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".fonts",
             Path.home() / ".local/share/fonts")
FONT_PACKAGE = "fonts-dejavu-core"
GLYPH_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"),)
"""Where the training sources ``glyphs`` and ``multi_glyphs`` take their fonts by default: the
DejaVu faces (Debian fonts-dejavu-core, fonts-dejavu-extra) the committed training collection
was built from, whatever else a machine has installed (other packages pull in Lato, Droid,
...), and never the held-out collection's typefaces (:data:`HELD_OUT_FONT_DIRS`)."""
HELD_OUT_FONT_DIRS = (Path("/usr/share/fonts/truetype/freefont"), Path("/usr/share/fonts/opentype/urw-base35"))
"""The typefaces of the held-out collection (``greek_letters``: GNU FreeFont, URW base35)."""
FONT_EXTENSIONS = (".ttf", ".otf")
MAX_FONTS = 32


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


def glyph_fonts(font_files: Sequence[Path], characters: str, canvas: int) -> list[tuple[Path, object]]:
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


def draw_glyph(fonts: Sequence[tuple[Path, object]], char: str, size: int, rng: np.random.Generator,
                canvas: int = 96) -> np.ndarray:
    """One glyph as MNIST draws a digit: ``[size, size]`` uint8, white on black.

    A font is drawn from ``fonts``, the character rotated by up to 15 degrees, scaled to
    fill 55 to 85 % of the image and shifted by up to 3 pixels (in this order of draws
    from ``rng``, which :func:`autodl.sources_core.load_glyphs`' outputs depend on).
    """
    from PIL import Image

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
