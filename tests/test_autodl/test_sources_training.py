"""Tests of autodl.sources_training: the extra training sources (shapes, dtype, classes,
determinism, unseen items in test, the motion-only videos' frames, the packages named when data is
absent) and, where the training collection is built, that its tags say what the data is."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import same_source_arrays

from autodl import sources
from autodl import sources_heldout as sh
from autodl import sources_training as st
from autodl.errors import ConversionError

needs_wallpapers = pytest.mark.skipif(st._wallpapers_missing() is not None,
                                      reason="apt-get install plasma-workspace-wallpapers")
needs_gnome = pytest.mark.skipif(st._gnome_missing() is not None, reason="apt-get install gnome-backgrounds")
needs_flags = pytest.mark.skipif(st._flags_missing() is not None, reason="apt-get install freeciv-data")
needs_oxygen = pytest.mark.skipif(st._oxygen_missing() is not None, reason="apt-get install oxygen-icon-theme")
needs_marble = pytest.mark.skipif(st._marble_missing() is not None, reason="apt-get install marble-data")

REPO = Path(__file__).resolve().parents[2]
BUILT = REPO / "data" / "collections" / "default"


def _check(arrays: tuple, shape: tuple[int, ...] | None, n_classes: int, n_train: int, n_test: int,
           multilabel: bool = False) -> None:
    x, y, xt, yt, names = arrays
    assert len(names) == n_classes and len(set(names)) == n_classes
    assert len(x) == len(y) == n_train and len(xt) == len(yt) == n_test
    for xs in (x, xt):
        if shape is None:  # variable size: a list of [h, w, 3] arrays
            assert isinstance(xs, list) and all(a.dtype == np.uint8 and a.ndim == 3 for a in xs)
        else:
            assert isinstance(xs, np.ndarray) and xs.dtype == np.uint8 and xs.shape[1:] == shape
    for ys in (y, yt):
        assert ys.dtype == np.int64
        if multilabel:
            assert ys.shape[1] == n_classes and set(np.unique(ys).tolist()) <= {0, 1} and (ys.sum(1) >= 1).all()
        else:
            assert ys.ndim == 1 and set(ys.tolist()) <= set(range(n_classes))
    if not multilabel and n_train:
        assert set(y.tolist()) == set(range(n_classes))


def _deterministic(name: str, **params: object) -> None:
    a = sources.load_source(name, 0, **params)
    assert same_source_arrays(a, sources.load_source(name, 0, **params))
    assert not same_source_arrays(a, sources.load_source(name, 1, **params))


# --- registration ------------------------------------------------------------------------------------

def test_training_sources_are_registered_and_apart_from_the_held_out_ones() -> None:
    names = {s.name for s in st.TRAINING_SOURCES}
    held = {s.name for s in sh.HELDOUT_SOURCES}
    assert len(names) == 10 and not names & held
    infos = {i.name: i for i in sources.list_sources()}
    for s in st.TRAINING_SOURCES:
        assert sources.SOURCES[s.name] is s
        assert "classes" in s.task and "\n" not in s.description
        assert infos[s.name].available == (infos[s.name].reason_unavailable is None)
    # none of the held-out collection's packages is read
    text = Path(st.__file__).read_text(encoding="utf-8")
    for package in ("tuxpaint", "wesnoth", "gimp", "xplanet", "freefont", "urw-base35"):
        assert f"/{package}" not in text.lower()


@pytest.mark.parametrize(("check", "package"), [
    (lambda p: st._wallpapers_missing(p), "plasma-workspace-wallpapers"),
    (lambda p: st._gnome_missing(p), "gnome-backgrounds"),
    (lambda p: st._flags_missing(p), "freeciv-data"),
    (lambda p: st._oxygen_missing(p), "oxygen-icon-theme"),
    (lambda p: st._marble_missing(p), "marble-data"),
])
def test_checks_name_the_package_when_data_is_absent(tmp_path: Path, check, package: str) -> None:
    reason = check(tmp_path / "absent")
    assert reason is not None and f"apt-get install {package}" in reason
    assert package in st.TRAINING_PACKAGES


def test_column_crops_keep_test_crops_in_the_right_quarter() -> None:
    img = np.zeros((200, 400, 3), np.uint8)
    img[:, 300:] = 230  # the right quarter is light, the rest dark
    img += np.random.default_rng(0).integers(0, 20, img.shape, dtype=np.uint8)  # texture (min_std)
    x, y, xt, yt, names = st._column_crops({"a": img, "b": img}, 0, 5, 5, 32, 40, 80)
    assert x.shape == (10, 32, 32, 3) and xt.shape == (10, 32, 32, 3) and names == ["a", "b"]
    assert x.max() < 60 and xt.min() > 200


# --- generated sources (always available) ---------------------------------------------------------------

def test_blob_scenes() -> None:
    a = sources.load_source("blob_scenes", 0, n_train_per_class=3, n_test_per_class=2, size=32)
    _check(a, (32, 32, 3), 8, 24, 16)
    _check(sources.load_source("blob_scenes", 0, families=["dots", "rings"], n_train_per_class=2,
                               n_test_per_class=1, scene=False, size=24), (24, 24, 3), 2, 4, 2)
    _deterministic("blob_scenes", n_train_per_class=2, n_test_per_class=1, size=24)
    with pytest.raises(ConversionError, match="families"):
        sources.load_source("blob_scenes", 0, families=["dots", "plaid"])


def test_degradations_classes_are_blur_and_noise_levels() -> None:
    x, y, xt, yt, names = sources.load_source("degradations", 0, n_train_per_class=6, n_test_per_class=2, size=32)
    _check((x, y, xt, yt, names), (32, 32, 3), 9, 54, 18)
    assert names[0] == "blur0-noise0" and names[-1] == "blur2-noise20"
    grad = np.abs(np.diff(x.astype(np.float64), axis=2)).mean(axis=(1, 2, 3))
    # sharp and noisy pictures have larger local differences than blurred, clean ones
    assert grad[y == names.index("blur0-noise20")].mean() > grad[y == names.index("blur2-noise0")].mean()
    _deterministic("degradations", n_train_per_class=1, n_test_per_class=1, size=24)
    with pytest.raises(ConversionError, match="content"):
        sources.load_source("degradations", 0, content="photos")


def _motion_and_frame_accuracy(x: np.ndarray, y: np.ndarray, clip_features, frame_features) -> tuple[float, float]:
    """Cross-validated accuracy of a logistic regression on features of whole clips and on
    features of single frames (every frame an example with its clip's label)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def score(f: np.ndarray, labels: np.ndarray) -> float:
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        return float(cross_val_score(model, f, labels, cv=3).mean())

    clip = np.stack([clip_features(c) for c in x])
    frames = np.stack([frame_features(f) for c in x for f in c])
    return score(clip, y), score(frames, np.repeat(y, x.shape[1]))


def _frame_stats(frame: np.ndarray) -> np.ndarray:
    f = frame.astype(np.float64)
    return np.r_[f.mean(axis=(0, 1)), f.std(axis=(0, 1)), np.abs(np.diff(f, axis=0)).mean(),
                 np.abs(np.diff(f, axis=1)).mean(), np.percentile(f, [5, 50, 95])]


def test_texture_speed_is_told_apart_by_motion_only() -> None:
    x, y, xt, yt, names = sources.load_source("texture_speed", 0, n_train_per_class=40, n_test_per_class=2,
                                              size=24)
    _check((x, y, xt, yt, names), (8, 24, 24, 3), 4, 160, 8)
    assert names == ["1px", "2px", "3px", "4px"]

    def displacement(clip: np.ndarray) -> np.ndarray:  # how far frame 1 is from frame 0, by shift
        a, b = clip[0].astype(np.float64), clip[1].astype(np.float64)
        return np.asarray([min(np.abs(np.roll(a, (dy * s, dx * s), axis=(0, 1)) - b).mean()
                               for dy, dx in st.SPEED_DIRECTIONS) for s in range(1, 6)])

    clip_acc, frame_acc = _motion_and_frame_accuracy(x, y, displacement, _frame_stats)
    assert clip_acc > 0.9 and frame_acc < 0.4  # chance is 0.25
    _deterministic("texture_speed", n_train_per_class=1, n_test_per_class=1, size=16)


def test_flicker_is_told_apart_by_time_only() -> None:
    x, y, xt, yt, names = sources.load_source("flicker", 0, n_train_per_class=40, n_test_per_class=2, size=24)
    _check((x, y, xt, yt, names), (8, 24, 24, 3), 4, 160, 8)
    assert names == ["period8", "period4", "period2.67", "period2"]

    def spectrum(clip: np.ndarray) -> np.ndarray:  # the temporal spectrum of each pixel, averaged
        c = clip.astype(np.float64).mean(axis=-1).reshape(clip.shape[0], -1)
        power = np.abs(np.fft.rfft(c - c.mean(0), axis=0)) ** 2
        return np.log1p(power.sum(1) / max(power.sum(), 1e-9))[1:]

    clip_acc, frame_acc = _motion_and_frame_accuracy(x, y, spectrum, _frame_stats)
    assert clip_acc > 0.9 and frame_acc < 0.4
    _deterministic("flicker", n_train_per_class=1, n_test_per_class=1, size=16)
    with pytest.raises(ConversionError, match="periods"):
        sources.load_source("flicker", 0, periods=[4, 1])


# --- sources read from Debian packages ----------------------------------------------------------------

@needs_wallpapers
def test_kde_wallpapers_variable_and_fixed() -> None:
    picks = ["Autumn", "Kite", "Path"]
    a = sources.load_source("kde_wallpapers", 0, wallpapers=picks, n_train_per_class=4, n_test_per_class=2)
    _check(a, None, 3, 12, 6)
    assert a[4] == picks
    sides = [max(v.shape[:2]) for v in a[0] + a[2]]
    assert min(sides) >= 128 and max(sides) <= 256 and len(set(sides)) > 1
    assert all(v.shape[2] == 3 for v in a[0])
    _check(sources.load_source("kde_wallpapers", 0, wallpapers=picks, n_train_per_class=2, n_test_per_class=1,
                               size=48), (48, 48, 3), 3, 6, 3)
    _deterministic("kde_wallpapers", wallpapers=picks[:2], n_train_per_class=1, n_test_per_class=1, size=32)
    with pytest.raises(ConversionError, match="wallpapers"):
        sources.load_source("kde_wallpapers", 0, wallpapers=["Autumn", "NoSuchWallpaper"])


@pytest.mark.slow
@needs_wallpapers
def test_degradations_of_wallpaper_crops() -> None:
    _check(sources.load_source("degradations", 0, content="wallpapers", n_train_per_class=2, n_test_per_class=1,
                               size=32), (32, 32, 3), 9, 18, 9)


@needs_gnome
def test_gnome_backgrounds() -> None:
    files = st.gnome_background_files()
    assert len(files) >= 8 and all(p.suffix != ".svg" for ps in files.values() for p in ps)
    a = sources.load_source("gnome_backgrounds", 0, patterns=["wood", "vnc"], n_train_per_class=3,
                            n_test_per_class=2, size=32)
    _check(a, (32, 32, 3), 2, 6, 4)
    _deterministic("gnome_backgrounds", patterns=["wood", "vnc"], n_train_per_class=1, n_test_per_class=1, size=16)


@needs_flags
def test_freeciv_flags_many_classes() -> None:
    files = st.flag_files()
    assert len(files) > 200 and not any(n.endswith("-shield") for n in files)
    a = sources.load_source("freeciv_flags", 0, n_flags=60, n_train_per_class=2, n_test_per_class=1, size=32)
    _check(a, (32, 32, 3), 60, 120, 60)
    assert a[4] != sources.load_source("freeciv_flags", 1, n_flags=60, n_train_per_class=0, n_test_per_class=0)[4]
    _deterministic("freeciv_flags", n_flags=5, n_train_per_class=1, n_test_per_class=1, size=24)


@needs_flags
def test_flag_grid_is_multi_label() -> None:
    a = sources.load_source("flag_grid", 0, n_flags=6, n_train=20, n_test=10, cell=24, grid=2, max_labels=3)
    _check(a, (48, 48, 3), 6, 20, 10, multilabel=True)
    assert a[1].sum(1).max() <= 3 and (a[1].sum(1) > 1).any()
    _deterministic("flag_grid", n_flags=4, n_train=3, n_test=2, cell=16)
    with pytest.raises(ConversionError, match="max_labels"):
        sources.load_source("flag_grid", 0, n_flags=4, grid=1, max_labels=2)


@needs_oxygen
def test_oxygen_contexts_hold_unseen_icons_in_test(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Path] = []
    draw = st._icon_on_background

    def record(png: Path, side: int, rng: np.random.Generator, **kw: object) -> np.ndarray:
        drawn.append(png)
        return draw(png, side, rng, **kw)

    monkeypatch.setattr(st, "_icon_on_background", record)
    x, y, xt, yt, names = st.load_oxygen_icons(0, contexts=("devices", "places"), max_icons=6)
    _check((x, y, xt, yt, names), None, 2, len(y), len(yt))
    assert len({a.shape for a in x}) > 1 and {a.shape[0] for a in x + xt} <= {64, 128, 256}
    train_icons = {(p.parent.name, p.stem) for p in drawn[:len(x)]}
    test_icons = {(p.parent.name, p.stem) for p in drawn[len(x):]}
    assert train_icons and test_icons and not train_icons & test_icons


@needs_oxygen
def test_oxygen_icon_ids_test_on_unseen_renditions(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn: list[Path] = []
    draw = st._icon_on_background

    def record(png: Path, side: int, rng: np.random.Generator, **kw: object) -> np.ndarray:
        drawn.append(png)
        return draw(png, side, rng, **kw)

    monkeypatch.setattr(st, "_icon_on_background", record)
    a = st.load_oxygen_icons(0, task="icon", n_icons=55, n_train_per_class=2, n_test_per_class=1, size=32)
    _check(a, (32, 32, 3), 55, 110, 55)
    sizes = [int(p.parts[-3].split("x")[0]) for p in drawn]
    assert set(sizes[:110]) <= set(st.OXYGEN_SMALL_SIZES) and set(sizes[110:]) <= set(st.OXYGEN_LARGE_SIZES)
    _deterministic("oxygen_icons", task="icon", n_icons=3, n_train_per_class=1, n_test_per_class=1, size=16)


@needs_marble
def test_marble_maps() -> None:
    a = sources.load_source("marble_maps", 0, maps=["schagen1689", "temp-july"], n_train_per_class=3,
                            n_test_per_class=2, size=32)
    _check(a, (32, 32, 3), 2, 6, 4)
    assert "bluemarble" not in st.MARBLE_MAPS and "citylights" not in st.MARBLE_MAPS
    _deterministic("marble_maps", maps=["schagen1689", "temp-july"], n_train_per_class=1, n_test_per_class=1,
                   size=16)


# --- the built training collection says what it holds -----------------------------------------------

def test_built_datasets_match_their_tags() -> None:
    """Every dataset of default.yaml built under data/collections/default has the classes, largest
    side, kind (video, multi-label, colour, variable size) and few-shot size its tags say."""
    from autodl.collection import load_collection
    from autodl.collection_build import read_recipe
    from autodl.dataset import AutoDLDataset

    coll = load_collection("default")
    built = [d for d in coll.datasets if (BUILT / d.name / "recipe.json").is_file()
             and read_recipe(BUILT / d.name)["hash"] == d.recipe_hash()]
    if not built:
        pytest.skip(f"the training collection is not built: make training-data (into {BUILT})")
    for d in built:
        tags = set(d.tags)
        value = {t.split(":")[0]: int(t.split(":")[1]) for t in tags if ":" in t}
        ds = AutoDLDataset(BUILT / d.name)
        meta = ds.metadata("train")
        summary = ds.shape_summary("train", limit=200)
        assert meta.output_dim == value["classes"], d.name
        y = ds.labels("train")  # [N, classes]
        assert bool((y.sum(1) > 1).any()) == ("multi-label" in tags), d.name
        assert (meta.sequence_size > 1) == ("video" in tags), d.name
        if "colour" in tags:
            assert summary["channels"] == 3, d.name
        largest = max(summary["max"][1:])
        assert largest <= value["side"] and (largest > 32) == (value["side"] > 32), (d.name, largest)
        if "variable-size" in tags:
            assert summary["min"] != summary["max"], d.name
        if "few-shot" in tags:
            assert y.sum(0).max() <= 20, d.name
        doc = json.loads((BUILT / d.name / "recipe.json").read_text())
        assert doc["hash"] == d.recipe_hash()
