"""Tests of autodl.sources_heldout: the held-out collection's sources (shapes, determinism,
unseen items in test, the motion-only video's frames, the packages named when data is absent)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import same_source_arrays

from autodl import sources
from autodl import sources_heldout as sh
from autodl.errors import ConversionError

needs_greek_fonts = pytest.mark.skipif(sh._greek_missing() is not None,
                                       reason="apt-get install fonts-freefont-ttf fonts-urw-base35")
needs_tuxpaint = pytest.mark.skipif(sh._tuxpaint_missing() is not None,
                                    reason="apt-get install tuxpaint-stamps-default")
needs_gimp = pytest.mark.skipif(sh._gimp_missing() is not None, reason="apt-get install gimp-data")
needs_wesnoth = pytest.mark.skipif(sh._wesnoth_missing() is not None, reason="apt-get install wesnoth-1.16-data")
needs_earth = pytest.mark.skipif(sh._earth_missing() is not None, reason="apt-get install xplanet-images")
needs_clipart = pytest.mark.skipif(sh._clipart_missing() is not None, reason="apt-get install openclipart-png")
needs_tango = pytest.mark.skipif(sh._tango_missing() is not None, reason="apt-get install tango-icon-theme")
needs_hedgewars = pytest.mark.skipif(sh._hedgewars_missing() is not None, reason="apt-get install hedgewars-data")

TRAINING_SOURCES = {"digits", "glyphs", "multi_glyphs", "icons", "fashion_mnist", "emoji", "photos", "textures",
                    "faces", "microscopy", "moving_squares", "moving_digits"}


def _check(arrays: tuple, shape: tuple[int, ...], n_classes: int, n_train: int, n_test: int) -> None:
    x, y, xt, yt, names = arrays
    assert len(names) == n_classes == len(set(names))
    for xs, ys, n in ((x, y, n_train), (xt, yt, n_test)):
        assert xs.dtype == np.uint8 and xs.shape == (n, *shape)
        assert ys.dtype == np.int64 and ys.shape == (n,)
        assert np.bincount(ys, minlength=n_classes).tolist() == [n // n_classes] * n_classes
        assert xs.max() > 100


def test_registered_and_none_is_a_training_source() -> None:
    infos = {i.name: i for i in sources.list_sources()}
    names = {s.name for s in sh.HELDOUT_SOURCES}
    assert len(names) == 12 and names <= set(infos) and not names & TRAINING_SOURCES
    for name in names:
        assert sources.SOURCES[name] is next(s for s in sh.HELDOUT_SOURCES if s.name == name)
        assert "\n" not in infos[name].description and "classes" in infos[name].task
        assert infos[name].available == (infos[name].reason_unavailable is None)


@pytest.mark.parametrize("check, package", [
    (sh._greek_missing, "fonts-freefont-ttf fonts-urw-base35"),
    (sh._tuxpaint_missing, "tuxpaint-stamps-default"),
    (sh._gimp_missing, "gimp-data"),
    (sh._wesnoth_missing, "wesnoth-1.16-data"),
    (sh._earth_missing, "xplanet-images"),
    (sh._clipart_missing, "openclipart-png"),
    (sh._tango_missing, "tango-icon-theme"),
    (sh._hedgewars_missing, "hedgewars-data"),
])
def test_absent_data_names_the_debian_package(check, package: str, tmp_path: Path) -> None:
    arg = [tmp_path] if check is sh._greek_missing else tmp_path / "none"
    assert f"apt-get install {package}" in check(arg)


def test_loaders_refuse_absent_data_naming_the_package(tmp_path: Path) -> None:
    for call, package in ((lambda: sh.load_tuxpaint_stamps(stamps_dir=tmp_path), "tuxpaint-stamps-default"),
                          (lambda: sh.load_gimp_patterns(patterns_dir=tmp_path), "gimp-data"),
                          (lambda: sh.load_wesnoth_portraits(images_dir=tmp_path), "wesnoth-1.16-data"),
                          (lambda: sh.load_wesnoth_animations(images_dir=tmp_path), "wesnoth-1.16-data"),
                          (lambda: sh.load_earth_landcover(image=tmp_path / "earth.jpg"), "xplanet-images"),
                          (lambda: sh.load_greek_letters(font_dirs=[tmp_path]), "fonts-urw-base35"),
                          (lambda: sh.load_openclipart(clipart_dir=tmp_path), "openclipart-png"),
                          (lambda: sh.load_tango_icons(theme_dir=tmp_path), "tango-icon-theme"),
                          (lambda: sh.load_hedgewars_sprites(data_dir=tmp_path), "hedgewars-data")):
        with pytest.raises(ConversionError, match=f"apt-get install .*{package}"):
            call()


# --- Greek letters ----------------------------------------------------------------------------------

@needs_greek_fonts
def test_greek_letters_unseen_typefaces_in_test() -> None:
    params = {"characters": "ΓΔΨω", "n_train_per_class": 3, "n_test_per_class": 2}
    arrays = sh.load_greek_letters(seed=1, **params)
    _check(arrays, (28, 28, 1), 4, 12, 8)
    assert same_source_arrays(arrays, sh.load_greek_letters(seed=1, **params))
    assert not same_source_arrays(arrays, sh.load_greek_letters(seed=2, **params))
    families = sh.greek_fonts("ΓΔΨω")
    roots = tuple(str(d) for d in sh.GREEK_FONT_DIRS)
    assert len(families) >= 4 and all(str(p).startswith(roots) for fs in families.values() for p, _ in fs)
    assert all(sh.font_design(p) == design for design, fs in families.items() for p, _ in fs)
    train, test = sh.split_font_families(list(families), 1, 1 / 3)
    assert train and test and not set(train) & set(test) and set(train) | set(test) == set(families)
    train_files = {p.name for d in train for p, _ in families[d]}
    assert not train_files & {p.name for d in test for p, _ in families[d]}


def test_font_family() -> None:
    assert sh.font_family("FreeSerifBoldItalic.ttf") == "FreeSerif"
    assert sh.font_family("/x/NimbusSansNarrow-BoldOblique.otf") == "NimbusSansNarrow"
    assert sh.font_family("C059-Roman.otf") == "C059" and sh.font_family("FreeMono.ttf") == "FreeMono"
    assert sh.font_family("NimbusRoman-Regular.otf") == "NimbusRoman"
    assert sh.font_design("FreeSerifItalic.ttf") == sh.font_design("NimbusRoman-Bold.otf") == "Times"


def test_greek_classes_are_no_training_character() -> None:
    from autodl.collection import load_collection

    training = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
    for d in load_collection("default", check_links=False).datasets:
        training |= set(d.params.get("characters", ""))
    assert len(sh.GREEK_LETTERS) == 20 and not set(sh.GREEK_LETTERS) & training
    assert not set(sh.GREEK_LETTERS) & set("ΑΒΕΖΗΙΚΜΝΟΡΤΥΧΠΣπδεοφψ")  # Latin look-alikes, maths signs, case pairs


# --- Tux Paint stamps ---------------------------------------------------------------------------------

@needs_tuxpaint
def test_tuxpaint_stamps_variable_size_and_unseen_stamps() -> None:
    params = {"categories": ("food", "vehicles"), "max_stamps": 6, "n_train_per_class": 4, "n_test_per_class": 2,
              "min_side": 128, "max_side": 160}
    x, y, xt, yt, names = arrays = sh.load_tuxpaint_stamps(**params)
    assert names == ["food", "vehicles"] and isinstance(x, list) and len(x) == 8 and len(xt) == 4
    assert np.bincount(y).tolist() == [4, 4] and np.bincount(yt).tolist() == [2, 2]
    for a in x + xt:
        assert a.dtype == np.uint8 and a.shape[2] == 3 and 128 <= max(a.shape[:2]) <= 160 and min(a.shape[:2]) >= 96
    assert len({a.shape for a in x}) > 1
    assert same_source_arrays(arrays, sh.load_tuxpaint_stamps(**params))
    files = {c: sh.tuxpaint_files(c) for c in ("food", "vehicles")}
    train, test = sh.split_stamps(files, 0, 6, 1 / 3)
    for c in files:
        assert train[c] and test[c] and not set(train[c]) & set(test[c]) and len(train[c]) + len(test[c]) == 6


# --- GIMP patterns -------------------------------------------------------------------------------------

def _write_pat(path: Path, pixels: np.ndarray, name: str = "Test", magic: bytes = b"GPAT") -> None:
    h, w, depth = pixels.shape
    raw_name = name.encode() + b"\0"
    header = struct.pack(">5I", 24 + len(raw_name), 1, w, h, depth) + magic + raw_name
    path.write_bytes(header + pixels.tobytes())


def test_read_gimp_pattern(tmp_path: Path) -> None:
    pixels = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    _write_pat(tmp_path / "a.pat", pixels, "Stripes")
    name, read = sh.read_gimp_pattern(tmp_path / "a.pat")
    assert name == "Stripes" and np.array_equal(read, pixels)
    _write_pat(tmp_path / "b.pat", pixels, magic=b"XXXX")
    with pytest.raises(ConversionError, match="not a GIMP pattern"):
        sh.read_gimp_pattern(tmp_path / "b.pat")
    (tmp_path / "c.pat").write_bytes((tmp_path / "a.pat").read_bytes()[:-10])
    with pytest.raises(ConversionError, match="header says"):
        sh.read_gimp_pattern(tmp_path / "c.pat")


def test_gimp_patterns_from_a_folder(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for cat, n in (("Stone", 2), ("Wood", 1)):
        (tmp_path / cat).mkdir()
        for k in range(n):
            _write_pat(tmp_path / cat / f"p{k}.pat", rng.integers(0, 256, (20, 24, 1 + 2 * k), dtype=np.uint8))
    params = {"categories": ("Stone", "Wood"), "n_train_per_class": 2, "n_test_per_class": 1, "size": 16,
              "min_crop": 16, "max_crop": 24, "patterns_dir": tmp_path}
    arrays = sh.load_gimp_patterns(**params)
    _check(arrays, (16, 16, 3), 3, 6, 3)
    assert arrays[4] == ["Stone/p0", "Stone/p1", "Wood/p0"] and same_source_arrays(arrays, sh.load_gimp_patterns(**params))


@needs_gimp
def test_gimp_patterns_installed() -> None:
    arrays = sh.load_gimp_patterns(categories=("Sky", "Water"), n_train_per_class=2, n_test_per_class=1, size=24)
    _check(arrays, (24, 24, 3), 7, 14, 7)
    assert len(sh.gimp_patterns()) >= 40


# --- Wesnoth portraits and animations ----------------------------------------------------------------------

@needs_wesnoth
def test_wesnoth_portraits_few_shot_unseen_units() -> None:
    params = {"races": ("drakes", "trolls"), "n_train_per_class": 3, "n_test_per_class": 2, "size": 32}
    arrays = sh.load_wesnoth_portraits(**params)
    _check(arrays, (32, 32, 3), 2, 6, 4)
    assert same_source_arrays(arrays, sh.load_wesnoth_portraits(**params))
    train, test = sh.split_portraits(("drakes", "dwarves", "trolls"), 0, 0.4)
    for race in train:
        train_units = {sh.portrait_unit(p) for p in train[race]}
        assert train[race] and test[race] and not train_units & {sh.portrait_unit(p) for p in test[race]}
    with pytest.raises(ConversionError, match="n_train_per_class=21"):
        sh.load_wesnoth_portraits(n_train_per_class=21)
    assert sh.portrait_unit("humans/mage-arch+female.png") == "mage-arch" and sh.portrait_unit("x/rouser-2.png") == "rouser"


@needs_wesnoth
def test_wesnoth_animations_clips_of_unseen_units() -> None:
    params = {"races": ("trolls", "merfolk"), "n_train_per_class": 2, "n_test_per_class": 1, "frames": 4, "size": 32,
              "sprite": (20, 28)}
    x, y, xt, yt, names = arrays = sh.load_wesnoth_animations(**params)
    assert x.shape == (4, 4, 32, 32, 3) and xt.shape == (2, 4, 32, 32, 3) and names == ["trolls", "merfolk"]
    assert np.bincount(y).tolist() == [2, 2] and same_source_arrays(arrays, sh.load_wesnoth_animations(**params))
    assert any(not np.array_equal(x[i, 0], x[i, 1]) for i in range(len(x)))  # it moves
    animations = {r: sh.unit_animations(r) for r in ("trolls", "merfolk")}
    for units in animations.values():
        for seqs in units.values():
            assert all(len(f) >= 3 and not any("die" in p.stem for p in f) for f in seqs.values())
    train, test = sh.split_units(animations, 0, 1 / 3)
    for race in animations:
        assert train[race] and test[race] and not set(train[race]) & set(test[race])


# --- shape scenes (multi-label) ------------------------------------------------------------------------

def test_shape_scenes_multilabel() -> None:
    x, y, xt, yt, names = arrays = sh.load_shape_scenes(n_train=24, n_test=8, size=32)
    assert x.shape == (24, 32, 32, 3) and xt.shape == (8, 32, 32, 3) and names == list(sh.SHAPES)
    assert y.dtype == np.int64 and y.shape == (24, 8) and set(np.unique(y)) == {0, 1}
    assert y.sum(1).min() >= 1 and y.sum(1).max() <= 3 and (y.sum(1) > 1).any()
    assert same_source_arrays(arrays, sh.load_shape_scenes(n_train=24, n_test=8, size=32))
    from autodl.labels import is_multilabel

    assert is_multilabel(np.concatenate([y, yt]).astype(np.float32))
    with pytest.raises(ConversionError, match="field 'shapes'"):
        sh.load_shape_scenes(shapes=("circle", "blob"))


# --- spin and zoom (motion only) ------------------------------------------------------------------------

def _motion_guess(clip: np.ndarray, step_degrees: float, factor: float) -> int:
    """The class whose motion best maps each frame onto the next (in an annulus), as an index of
    SPIN_ZOOM_CLASSES: a model that compares consecutive frames."""
    from PIL import Image

    size = clip.shape[1]
    c = size / 2
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    ring = (np.hypot(yy - c, xx - c) > 4) & (np.hypot(yy - c, xx - c) < size / 2 - 2)

    def moved(frame: np.ndarray, k: int) -> np.ndarray:
        img = Image.fromarray(frame)
        if k < 2:  # PIL turns anticlockwise for a positive angle
            return np.asarray(img.rotate(-step_degrees if k == 0 else step_degrees, resample=Image.BILINEAR))
        s = 1 / factor if k == 2 else factor  # zoom in: each output pixel looks closer to the centre
        return np.asarray(img.transform(img.size, Image.AFFINE, (s, 0, c - s * c, 0, s, c - s * c),
                                        resample=Image.BILINEAR))

    errors = np.zeros(4)
    for t in range(len(clip) - 1):
        a, b = clip[t, ..., 0], clip[t + 1, ..., 0].astype(np.float64)
        for k in range(4):
            errors[k] += ((moved(a, k).astype(np.float64) - b)[ring] ** 2).mean()
    return int(np.argmin(errors))


def test_spin_zoom_single_frames_carry_no_class_but_the_order_does() -> None:
    from sklearn.linear_model import RidgeClassifier

    x, y, xt, yt, names = sh.load_spin_zoom(seed=3, n_train_per_class=40, n_test_per_class=25, size=24)
    assert names == list(sh.SPIN_ZOOM_CLASSES) and x.shape == (160, 8, 24, 24, 1) and xt.shape == (100, 8, 24, 24, 1)
    # frame by frame: a linear probe on the pixels of single frames, and one on per-frame
    # statistics, are near chance (0.25) on the test clips
    frames = x[:, :, ..., 0].reshape(-1, 24 * 24).astype(np.float64) / 255
    frames_t = xt[:, :, ..., 0].reshape(-1, 24 * 24).astype(np.float64) / 255
    y_frames, yt_frames = np.repeat(y, 8), np.repeat(yt, 8)
    probe = RidgeClassifier(alpha=10.0).fit(frames, y_frames)
    assert probe.score(frames, y_frames) > 0.4  # it does fit the training frames...
    assert probe.score(frames_t, yt_frames) < 0.36  # ...but what it learns does not carry over

    def stats(f: np.ndarray) -> np.ndarray:
        img = f.reshape(-1, 24, 24)
        return np.stack([img.mean((1, 2)), img.std((1, 2)), np.abs(np.diff(img, axis=1)).mean((1, 2)),
                         np.abs(np.diff(img, axis=2)).mean((1, 2))], 1)

    probe = RidgeClassifier(alpha=1e-3).fit(stats(frames), y_frames)
    assert probe.score(stats(frames_t), yt_frames) < 0.36
    # consecutive frames: comparing each frame with the next tells the class
    step, factor = 360 * 2 / 64, float(np.exp(2 * np.log(24 / np.sqrt(2)) / 2.0 / 32))
    guesses = np.array([_motion_guess(c, step, factor) for c in xt[:40]])
    assert (guesses == yt[:40]).mean() > 0.9
    # the same clips played backwards turn the other way / zoom the other way
    swapped = np.array([1, 0, 3, 2])[yt[:20]]
    assert (np.array([_motion_guess(c[::-1], step, factor) for c in xt[:20]]) == swapped).mean() > 0.9


def test_spin_zoom_frames_are_shifts_of_one_stationary_field() -> None:
    """By construction: frame t of every class is the one fixed log-polar view of the texture
    rolled by whole cells; the classes differ only in the direction of the roll."""
    rng = np.random.default_rng(0)
    texture = sh.random_torus_texture(rng, (16, 32), 1.5)
    assert abs(texture.mean()) < 1e-9 and abs(texture.std() - 1) < 1e-9
    for label, name in enumerate(sh.SPIN_ZOOM_CLASSES):
        clip = sh.spin_zoom_clip(texture, (3, 5), label, 4, 16, 2)
        dr, dt = sh.SPIN_ZOOM_STEPS[name]
        for t in range(4):
            rolled = np.roll(texture, (-(3 + 2 * t * dr), -(5 + 2 * t * dt)), axis=(0, 1))
            expected = np.clip(np.rint(128 + 48 * sh.spin_zoom_frame(rolled, (0, 0), 16)), 0, 255)
            assert np.array_equal(clip[t, ..., 0], expected.astype(np.uint8))
    a = sh.load_spin_zoom(n_train_per_class=2, n_test_per_class=1, size=16)
    assert same_source_arrays(a, sh.load_spin_zoom(n_train_per_class=2, n_test_per_class=1, size=16))


# --- Earth land cover -------------------------------------------------------------------------------------

@needs_earth
def test_earth_landcover_test_regions_elsewhere() -> None:
    arrays = sh.load_earth_landcover(n_train_per_class=3, n_test_per_class=2, size=24)
    _check(arrays, (24, 24, 3), len(sh.EARTH_REGIONS), 3 * len(sh.EARTH_REGIONS), 2 * len(sh.EARTH_REGIONS))
    assert same_source_arrays(arrays, sh.load_earth_landcover(n_train_per_class=3, n_test_per_class=2, size=24))
    shape = (1024, 2048)
    for regions in sh.EARTH_REGIONS.values():
        boxes = {s: [sh._region_box(r, shape) for r in regions[s]] for s in ("train", "test")}
        for r0, r1, c0, c1 in boxes["train"]:  # no test region overlaps a training one
            assert all(r1 <= q0 or q1 <= r0 or c1 <= d0 or d1 <= c0 for q0, q1, d0, d1 in boxes["test"])


# --- Openclipart (variable-size colour clip art) -----------------------------------------------------------

def test_clipart_group_keeps_variants_together() -> None:
    assert sh.clipart_group("food/cake_and_candle_anton_fr_01.png") == sh.clipart_group("x/cake_and_candle_anton_fr_02.png")
    assert sh.clipart_group("computer/home1.png") == sh.clipart_group("computer/home13.png") == "home"
    assert sh.clipart_group("a/penguin.png") != sh.clipart_group("a/swan.png")


@needs_clipart
def test_openclipart_variable_size_and_unseen_drawings() -> None:
    params = {"categories": ("buildings", "tools"), "max_pictures": 12, "n_train_per_class": 4, "n_test_per_class": 2,
              "min_side": 128, "max_side": 160}
    x, y, xt, yt, names = arrays = sh.load_openclipart(**params)
    assert names == ["buildings", "tools"] and isinstance(x, list) and len(x) == 8 and len(xt) == 4
    assert np.bincount(y).tolist() == [4, 4] and np.bincount(yt).tolist() == [2, 2]
    for a in x + xt:
        assert a.dtype == np.uint8 and a.shape[2] == 3 and 128 <= max(a.shape[:2]) <= 160 and min(a.shape[:2]) >= 96
    assert len({a.shape for a in x}) > 1 and max(a.max() for a in x) > 100
    assert same_source_arrays(arrays, sh.load_openclipart(**params))
    assert not same_source_arrays(arrays, sh.load_openclipart(seed=1, **params))
    files = {c: sh.clipart_files(c) for c in ("buildings", "tools")}
    assert all(len(f) >= 40 for f in files.values())
    train, test = sh.split_clipart(files, 0, 12, 1 / 3)
    for c in files:
        assert train[c] and test[c] and len(train[c]) + len(test[c]) == 12
        assert not {sh.clipart_group(p) for p in train[c]} & {sh.clipart_group(p) for p in test[c]}


# --- Tango icons (few-shot) ---------------------------------------------------------------------------------

@needs_tango
def test_tango_icons_few_shot_unseen_icons() -> None:
    params = {"contexts": ("emotes", "places", "devices"), "n_train_per_class": 3, "n_test_per_class": 2, "size": 32}
    arrays = sh.load_tango_icons(**params)
    _check(arrays, (32, 32, 3), 3, 9, 6)
    assert same_source_arrays(arrays, sh.load_tango_icons(**params))
    assert not same_source_arrays(arrays, sh.load_tango_icons(seed=1, **params))
    for c in sh.TANGO_CONTEXTS:  # every default context has enough distinct icons, aliases dropped
        files = sh.tango_icon_files(c)
        digests = {f.read_bytes() for f in files}
        assert len(files) >= 9 and len(digests) == len(files)
        assert len({f.resolve() for f in (sh.TANGO_DIR / c).glob("*.png")}) >= len(files)
    with pytest.raises(ConversionError, match="n_train_per_class=21"):
        sh.load_tango_icons(n_train_per_class=21)


def test_tango_icons_split_from_a_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Test pictures are made of icons never drawn in training (the icons each picture is drawn from)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for ctx in ("a", "b"):
        (tmp_path / ctx).mkdir()
        for k in range(5):
            Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8) | np.uint8(1), "RGBA").save(
                tmp_path / ctx / f"i{k}.png")
    (tmp_path / "a" / "alias.png").symlink_to(tmp_path / "a" / "i0.png")
    assert len(sh.tango_icon_files("a", tmp_path)) == 5
    drawn: list[bytes] = []
    real = sh._icon_example

    def spy(rgba: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
        drawn.append(rgba.tobytes())
        return real(rgba, rng, size)

    monkeypatch.setattr(sh, "_icon_example", spy)
    sh.load_tango_icons(contexts=("a", "b"), n_train_per_class=6, n_test_per_class=6, size=16, theme_dir=tmp_path)
    train, test = set(drawn[:12]), set(drawn[12:])
    assert len(train) >= 4 and len(test) >= 2 and not train & test


# --- Hedgewars sprites (multi-label) ------------------------------------------------------------------------

def test_sprite_group() -> None:
    assert sh.sprite_group("Hats/Eva_00b.png") == sh.sprite_group("Hats/Eva_00y.png") == "hats/eva"
    assert sh.sprite_group("Nature/plant1.png") == sh.sprite_group("Nature/plant4.png") != sh.sprite_group("Cake/plant1.png")
    assert sh.sprite_group("AmmoMenu/Ammos_base.png#0,1") != sh.sprite_group("AmmoMenu/Ammos_base.png#0,2")


@needs_hedgewars
def test_hedgewars_sprites_multilabel_unseen_sprites() -> None:
    params = {"groups": ("hats", "weapon_icons", "forts"), "n_train": 30, "n_test": 10, "size": 48, "sprite": (16, 28)}
    x, y, xt, _yt, names = arrays = sh.load_hedgewars_sprites(**params)
    assert x.shape == (30, 48, 48, 3) and xt.shape == (10, 48, 48, 3) and names == ["hats", "weapon_icons", "forts"]
    assert y.dtype == np.int64 and y.shape == (30, 3) and set(np.unique(y)) == {0, 1}
    assert y.sum(1).min() >= 1 and y.sum(1).max() <= 3 and (y.sum(1) > 1).any() and x.max() > 100
    assert same_source_arrays(arrays, sh.load_hedgewars_sprites(**params))
    sprites = {g: sh.hedgewars_sprites(g) for g in sh.HEDGEWARS_GROUPS}
    for g, named in sprites.items():
        assert len(named) >= 15, g
        assert all(s.ndim == 3 and s.shape[2] == 4 and (s[..., 3] > 8).sum() >= 40 for s in named.values())
    assert not any(n.startswith("Hedgehog/Speech") for n in sprites["hedgehogs"])
    train, test = sh.split_sprites(sprites, 0, 1 / 3)
    for g in sprites:
        assert train[g] and test[g] and not set(train[g]) & set(test[g])
        assert not {sh.sprite_group(n) for n in train[g]} & {sh.sprite_group(n) for n in test[g]}
        train_pixels = {sprites[g][n].tobytes() for n in train[g]}
        assert not train_pixels & {sprites[g][n].tobytes() for n in test[g]}
    with pytest.raises(ConversionError, match="field 'groups'"):
        sh.load_hedgewars_sprites(groups=("hats", "flags"))


# --- orbit paths (motion only) ------------------------------------------------------------------------------

def _path_features(centres: np.ndarray, size: int) -> np.ndarray:
    """What the motion says, seen through the blob's places alone: the steps between frames
    (taken the short way round the frame), their lengths, turns and reversals."""
    steps = np.mod(np.diff(centres, axis=0) + size // 2, size) - size // 2
    angle = np.arctan2(steps[:, 0], steps[:, 1])
    turn = np.angle(np.exp(1j * np.diff(angle)))
    flips = (np.sign(steps[1:]) * np.sign(steps[:-1]) < 0).sum()
    return np.concatenate([np.sort(np.abs(turn)), [np.abs(turn).mean(), abs(turn.sum()), np.abs(np.diff(turn)).mean(),
                                                   flips, np.linalg.norm(steps, axis=1).std()]])


def test_orbit_paths_places_are_uniform_in_every_frame() -> None:
    """By construction: for any path, the blob's centre in every frame is a uniform place when
    the start is (every place is reached by the same number of starts), and a frame is the one
    drawing of the background and blob at that place."""
    rng = np.random.default_rng(0)
    size = 12
    grid = np.stack(np.meshgrid(np.arange(2 * size), np.arange(2 * size), indexing="ij"), -1).reshape(-1, 2)
    for label in range(len(sh.ORBIT_CLASSES)):
        for _ in range(3):
            offsets = sh.orbit_offsets(label, rng, 8, size)
            assert offsets.shape == (8, 2) and offsets.dtype == np.int64 and not offsets[0].any()
            places = np.stack([sh.orbit_positions(label, s, offsets, size) for s in grid])  # [starts, frames, 2]
            for t in range(8):
                counts = np.bincount(places[:, t, 0] * size + places[:, t, 1], minlength=size * size)
                assert counts.tolist() == [4] * (size * size)
    background, blob = sh.orbit_background(rng, 16), sh.orbit_blob(rng)
    frame = sh.orbit_frame(background, blob, (0, 15))  # wraps over two borders
    d = blob.shape[0]
    shifted = sh.orbit_frame(np.roll(background, (d // 2, -(15 - d // 2)), axis=(0, 1)), blob, (d // 2, d // 2))
    assert np.array_equal(np.roll(frame, (d // 2, -(15 - d // 2)), axis=(0, 1)), shifted)
    a = sh.load_orbit_paths(n_train_per_class=2, n_test_per_class=1, size=16)
    assert same_source_arrays(a, sh.load_orbit_paths(n_train_per_class=2, n_test_per_class=1, size=16))
    assert a[0].shape == (8, 8, 16, 16, 3) and a[4] == list(sh.ORBIT_CLASSES)


def test_orbit_paths_bounces_reflect_and_others_wrap() -> None:
    rng = np.random.default_rng(1)
    size = 32
    for label, name in enumerate(sh.ORBIT_CLASSES):
        for _ in range(20):
            offsets = sh.orbit_offsets(label, rng, 8, size)
            centres = sh.orbit_positions(label, rng.integers(0, 2 * size, 2), offsets, size)
            steps = np.diff(centres, axis=0)
            if name == "bounce":  # the fast axis reverses at least once: it met a border
                fast = int(np.argmax(np.abs(offsets[-1])))
                assert (np.sign(steps[1:, fast]) * np.sign(steps[:-1, fast]) < 0).any() or (steps[:, fast] == 0).any()
            elif name == "line":
                unwrapped = np.mod(steps + size // 2, size) - size // 2
                assert np.abs(unwrapped - np.diff(offsets, axis=0)).max() == 0


def test_orbit_paths_single_frames_carry_no_class_but_the_path_does() -> None:
    from sklearn.ensemble import ExtraTreesClassifier
    from sklearn.linear_model import RidgeClassifier

    x, y, xt, yt, names = sh.load_orbit_paths(seed=3, n_train_per_class=40, n_test_per_class=25, size=24)
    assert names == list(sh.ORBIT_CLASSES) and x.shape == (160, 8, 24, 24, 3) and xt.shape == (100, 8, 24, 24, 3)
    assert np.bincount(y).tolist() == [40] * 4 and np.bincount(yt).tolist() == [25] * 4
    # frame by frame: a linear probe on single frames' pixels, and one on per-frame statistics,
    # are near chance (0.25) on the test clips
    frames = x.reshape(-1, 24 * 24 * 3).astype(np.float64) / 255
    frames_t = xt.reshape(-1, 24 * 24 * 3).astype(np.float64) / 255
    y_frames, yt_frames = np.repeat(y, 8), np.repeat(yt, 8)
    probe = RidgeClassifier(alpha=10.0).fit(frames, y_frames)
    assert probe.score(frames, y_frames) > 0.4  # it does fit the training frames...
    assert probe.score(frames_t, yt_frames) < 0.36  # ...but what it learns does not carry over

    def stats(f: np.ndarray) -> np.ndarray:
        img = f.reshape(-1, 24, 24, 3)
        return np.stack([img.mean((1, 2, 3)), img.std((1, 2, 3)), np.abs(np.diff(img, axis=1)).mean((1, 2, 3)),
                         img.max((1, 2, 3)), img.min((1, 2, 3))], 1)

    probe = RidgeClassifier(alpha=1e-3).fit(stats(frames), y_frames)
    assert probe.score(stats(frames_t), yt_frames) < 0.36
    # the sequence of places tells the class: features of the path alone classify it
    rng = np.random.default_rng(5)

    def paths(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(4), n)
        feats = [_path_features(sh.orbit_positions(int(k), rng.integers(0, 48, 2), sh.orbit_offsets(int(k), rng, 8, 24),
                                                   24), 24) for k in labels]
        return np.array(feats), labels

    (f, lab), (ft, labt) = paths(150), paths(50)
    trees = ExtraTreesClassifier(n_estimators=100, random_state=0).fit(f, lab)
    assert trees.score(ft, labt) > 0.85

