"""Tests of dataset collections: the collection file (autodl.collection), derivations
(autodl.derivations), building (autodl.collection_build), the linear-baseline report
(finetune.collection_report), the ``data build-collection`` / ``collection-report`` commands and
the sources added for them (autodl.sources_core)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from autodl import sources, sources_core
from autodl.collection import (
    REPOSITORY_ROOT,
    Collection,
    CollectionError,
    collection_datasets,
    collection_samples,
    load_collection,
)
from autodl.collection_build import RECIPE_FILE, build_collection
from autodl.dataset import AutoDLDataset
from autodl.derivations import (
    apply_transforms,
    random_rescale,
    random_rotate,
    resize,
    rotate,
    subset_classes,
    to_color,
)
from autodl.errors import AutoDLError
from autodl.fonts import find_fonts
from finetune.collection_report import REPORT_FILE, describe_dataset, write_report

needs_fonts = pytest.mark.skipif(not find_fonts(),
                                 reason="no TrueType font: apt-get install fonts-dejavu-core")
needs_icons = pytest.mark.skipif(sources_core._icon_missing(sources_core.ICON_THEME_DIR) is not None,
                                 reason="no Adwaita icons: apt-get install adwaita-icon-theme")
needs_emoji = pytest.mark.skipif(sources_core.find_emoji_font() is None,
                                 reason="no colour emoji font: apt-get install fonts-noto-color-emoji")
needs_fashion = pytest.mark.skipif(sources_core._fashion_missing(sources_core.FASHION_MNIST_DIR) is not None,
                                   reason="apt-get install dataset-fashion-mnist")

SOURCES = [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"},
           {"name": "textures", "origin": "scikit-image images", "licence": "CC0"}]


def tiny_collection(tmp_path: Path, datasets: list[dict[str, Any]] | None = None, **top: Any) -> Path:
    """A collection YAML of 3 small derived datasets (digits and textures) in ``tmp_path``."""
    data = {"name": "tiny", "description": "three small datasets", "held_out": ["Monkeys", "miniciao"],
            "sources": SOURCES,
            "datasets": datasets if datasets is not None else [
                {"name": "digits_small", "source": "digits", "doc": "digits, 40/20", "max_train": 40,
                 "max_test": 20},
                {"name": "digits_3cls_rgb", "source": "digits", "doc": "3 classes, rgb, 12 px",
                 "classes": [3, 8, "5"], "max_train": 30, "max_test": 15, "color": "rgb", "resize": 12},
                {"name": "textures_var", "source": "textures", "doc": "rotated, variable size",
                 "params": {"n_train_per_class": 4, "n_test_per_class": 2}, "random_rotate": 90,
                 "random_rescale": [10, 20]},
            ], **top}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


# --- the shipped collections ------------------------------------------------------------------

def test_default_collection_meets_its_constraints() -> None:
    coll = load_collection("default")
    assert coll.name == "default" and len(coll.datasets) >= 16
    assert {"Monkeys", "miniciao"} <= set(coll.held_out)
    names = {d.name.lower() for d in coll.datasets}
    assert not names & {"monkeys", "miniciao"}
    listed = {s.name for s in coll.sources}
    for d in coll.datasets:
        assert d.doc and d.source in listed and not d.is_tfds
        source = coll.source(d.source)
        assert source.licence and source.origin
    # what the sources and derivations say about the data, checked without building it
    by_source: dict[str, list[Any]] = {}
    for d in coll.datasets:
        by_source.setdefault(d.source, []).append(d)
    assert "moving_squares" in by_source or "moving_digits" in by_source  # video
    assert "multi_glyphs" in by_source                                     # multi-label
    channels = {3 if d.source in ("photos", "microscopy", "emoji") and d.transforms.get("color") != "grey"
                or d.transforms.get("color") == "rgb" else 1 for d in coll.datasets}
    assert channels == {1, 3}
    variable = [d for d in coll.datasets if "random_rescale" in d.transforms or d.source in ("icons", "photos")]
    assert variable and len(variable) < len(coll.datasets)                 # fixed and variable sizes
    for d in coll.datasets:
        if "classes" in d.transforms:
            assert 2 <= len(d.transforms["classes"]) <= 100
        if "max_train" in d.transforms:
            assert 100 <= d.transforms["max_train"] <= 50000
    domains = {"digits", "glyphs", "fashion_mnist", "emoji", "photos", "textures", "faces", "microscopy"}
    assert domains <= set(by_source)
    # every recipe hashes, and differently
    hashes = {d.recipe_hash() for d in coll.datasets}
    assert len(hashes) == len(coll.datasets)


def test_default_collection_sources_are_known() -> None:
    coll = load_collection("default")
    for d in coll.datasets:
        known = sources.source_parameters(d.source)
        assert set(d.params) <= set(known)


def _tag_values(tags: tuple[str, ...]) -> dict[str, int]:
    return {t.split(":")[0]: int(t.split(":")[1]) for t in tags if ":" in t}


@pytest.mark.parametrize("only", [None, ["tag:core"]], ids=["all", "core"])
def test_default_collection_is_wide_enough(only: list[str] | None) -> None:
    """The counts the training collection promises, from its entries' tags (checked against the
    built data by tests/test_autodl/test_sources_training.py), for the whole collection and for
    the 30 datasets tagged `core` that the embedded default is built on."""
    coll = load_collection("default")
    ds = coll.select(only)
    if only:
        assert len(ds) == 30
    for d in ds:
        kinds = {"real", "generated", "derived"} & set(d.tags)
        assert len(kinds) == 1, f"{d.name}: tag it real, generated or derived"
        assert {"side", "classes"} <= set(_tag_values(d.tags)), d.name
        assert set(d.tags) <= {"real", "generated", "derived", "colour", "variable-size", "few-shot", "multi-label",
                               "video", "motion-only", "core"} | {t for t in d.tags if ":" in t}, d.name
        if "motion-only" in d.tags:
            assert "video" in d.tags
    value = {d.name: _tag_values(d.tags) for d in ds}
    assert len(ds) >= 30
    assert len({d.source for d in ds}) >= 18
    small = [d.name for d in ds if value[d.name]["side"] <= 32]
    assert 3 * len(small) <= len(ds), small
    assert sum("multi-label" in d.tags for d in ds) >= 2
    videos = [d for d in ds if "video" in d.tags]
    assert len(videos) >= 4 and sum("motion-only" in d.tags for d in videos) >= 2
    assert sum(value[d.name]["classes"] > 50 for d in ds) >= 2
    few_shot_colour = [d for d in ds if {"few-shot", "colour"} <= set(d.tags)]
    assert len(few_shot_colour) >= 2
    big_variable_colour = [d for d in ds if {"variable-size", "colour"} <= set(d.tags) and value[d.name]["side"] >= 128]
    assert len(big_variable_colour) >= 2
    assert {"real", "generated", "derived"} <= {t for d in ds for t in d.tags}


def test_tags_are_metadata_not_recipe(tmp_path: Path) -> None:
    plain = load_collection(tiny_collection(tmp_path))
    tagged_entries = [{"name": "digits_small", "source": "digits", "doc": "digits, 40/20", "max_train": 40,
                       "max_test": 20, "tags": ["real", "side:8"]}]
    tagged = load_collection(tiny_collection(tmp_path, datasets=tagged_entries))
    assert tagged.datasets[0].tags == ("real", "side:8") and plain.datasets[0].tags == ()
    assert tagged.datasets[0].recipe_hash() == plain.datasets[0].recipe_hash()
    with pytest.raises(CollectionError, match="tags"):
        load_collection(tiny_collection(tmp_path, datasets=[dict(tagged_entries[0], tags="real")]))


def test_tfds_collection_parses() -> None:
    coll = load_collection("tfds")
    names = {d.name for d in coll.datasets}
    assert {"cifar10", "cifar100", "caltech101", "eurosat"} <= names
    assert all(d.is_tfds and set(d.transforms) <= {"max_train", "max_test"} for d in coll.datasets)


def test_tfds_build_fails_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import autodl.convert

    def offline(name: str, *args: Any, **kwargs: Any) -> None:
        raise ConnectionError("Failed to resolve host\nwith a second line")

    monkeypatch.setattr(autodl.convert, "convert_tfds", offline)
    with pytest.raises(CollectionError) as exc:
        build_collection("tfds", tmp_path / "out", only=["cifar10"])
    text = str(exc.value)
    assert "\n" not in text and "tfds.yaml" in text and "cifar10" in text and "--tfds-data-dir" in text
    assert not any(p.name.startswith(".cifar10") for p in (tmp_path / "out").iterdir())


# --- building --------------------------------------------------------------------------------------

def test_build_then_skip_then_refuse_a_changed_recipe(tmp_path: Path) -> None:
    path = tiny_collection(tmp_path)
    out = tmp_path / "built"
    results = build_collection(path, out)
    assert [r.status for r in results] == ["built"] * 3
    small = describe_dataset(out / "digits_small")
    assert (small.classes, small.train, small.test, small.shape, small.channels) == (10, 40, 20, "8x8", 1)
    rgb = describe_dataset(out / "digits_3cls_rgb")
    assert (rgb.classes, rgb.train, rgb.shape, rgb.channels) == (3, 30, "12x12", 3)
    assert AutoDLDataset(out / "digits_3cls_rgb").label_names() == ["3", "8", "5"]
    var = describe_dataset(out / "textures_var")
    assert var.shape == "varxvar" and (var.train, var.test) == (32, 16)
    card = json.loads((out / "digits_small" / RECIPE_FILE).read_text())
    assert card["hash"] == load_collection(path).datasets[0].recipe_hash() and card["licence"] == "CC BY 4.0"

    again = build_collection(path, out)
    assert [r.status for r in again] == ["skipped"] * 3
    assert [r.train for r in again] == [40, 30, 32]

    data = yaml.safe_load(path.read_text())
    data["datasets"][0]["max_train"] = 50
    data["datasets"][0]["doc"] = "a doc change alone changes nothing"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CollectionError) as exc:
        build_collection(path, out)
    text = str(exc.value)
    assert "digits_small" in text and "max_train: 40 -> 50" in text and "--overwrite" in text
    assert describe_dataset(out / "digits_small").train == 40  # nothing touched
    rebuilt = build_collection(path, out, only=["digits_small"], overwrite=True)
    assert rebuilt[0].status == "rebuilt" and describe_dataset(out / "digits_small").train == 50


def test_a_folder_not_built_here_is_refused(tmp_path: Path) -> None:
    path = tiny_collection(tmp_path)
    (tmp_path / "built" / "digits_small").mkdir(parents=True)
    with pytest.raises(CollectionError, match="no recipe.json"):
        build_collection(path, tmp_path / "built", only=["digits_small"])


def test_only_names_unknown_datasets(tmp_path: Path) -> None:
    with pytest.raises(CollectionError) as exc:
        build_collection(tiny_collection(tmp_path), tmp_path / "b", only=["nope"])
    assert "'nope'" in str(exc.value) and "digits_small" in str(exc.value)


def test_bad_class_subset_names_the_field(tmp_path: Path) -> None:
    path = tiny_collection(tmp_path, datasets=[
        {"name": "d", "source": "digits", "doc": "x", "classes": [1, 12]}])
    with pytest.raises(CollectionError) as exc:
        build_collection(path, tmp_path / "b")
    text = str(exc.value)
    assert "tiny.yaml" in text and "datasets[0] (d).classes" in text and "out of range" in text
    assert not (tmp_path / "b" / "d").exists()


# --- bad collection files -------------------------------------------------------------------------

@pytest.mark.parametrize("entry, field, expected", [
    ({"name": "d", "source": "digits", "doc": "x", "max_train": 0}, "datasets[0] (d).max_train", "integer >= 1"),
    ({"name": "d", "source": "digits", "doc": "x", "color": "sepia"}, "datasets[0] (d).color", "'grey' or 'rgb'"),
    ({"name": "d", "source": "digits", "doc": "x", "resize": "big"}, "datasets[0] (d).resize", "side in pixels"),
    ({"name": "d", "source": "digits", "doc": "x", "classes": [1]}, "datasets[0] (d).classes", "at least 2"),
    ({"name": "d", "source": "digits", "doc": "x", "shear": 3}, "datasets[0].shear", "expected some of"),
    ({"name": "d", "source": "digits"}, "datasets[0].doc", "non-empty string"),
    ({"name": "d", "source": "cifar", "doc": "x"}, "datasets[0] (d).source", "not listed"),
    ({"name": "d", "source": "digits", "doc": "x", "params": {"colour": 1}}, "datasets[0] (d).params.colour",
     "takes no parameter"),
    ({"name": "Monkeys", "source": "digits", "doc": "x"}, "datasets[0]", "held-out"),
])
def test_bad_entries_name_file_and_field(tmp_path: Path, entry: dict[str, Any], field: str, expected: str) -> None:
    path = tiny_collection(tmp_path, datasets=[entry])
    with pytest.raises(CollectionError) as exc:
        load_collection(path)
    text = str(exc.value)
    assert str(path) in text and f"field '{field}'" in text and expected in text


def test_a_source_listed_but_unknown(tmp_path: Path) -> None:
    data = {"name": "x", "sources": [{"name": "cifar", "origin": "o", "licence": "l"}],
            "datasets": [{"name": "d", "source": "cifar", "doc": "x"}]}
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(CollectionError, match="no built-in source 'cifar'.*digits"):
        load_collection(path)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CollectionError, match="unknown collection 'nope'.*default"):
        load_collection("nope")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(CollectionError, match="not valid YAML"):
        load_collection(bad)
    bad.write_text(yaml.safe_dump({"name": "b", "datasets": [{"name": "d", "source": "digits", "doc": "x"}]}))
    with pytest.raises(CollectionError, match="field 'sources'"):
        load_collection(bad)
    path = tiny_collection(tmp_path, datasets=[{"name": "d", "source": "digits", "doc": "x"}] * 2)
    with pytest.raises(CollectionError, match="two datasets named 'd'"):
        load_collection(path)
    assert issubclass(CollectionError, AutoDLError)


# --- derivations ---------------------------------------------------------------------------------

def _arrays(n: int = 12, h: int = 6, w: int = 8, c: int = 1) -> tuple:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (n, h, w, c), dtype=np.uint8)
    y = np.arange(n, dtype=np.int64) % 3
    return x, y, x[: n // 2].copy(), y[: n // 2].copy(), ["a", "b", "c"]


def test_subset_classes_by_index_and_name() -> None:
    x, y, xt, _yt, names = subset_classes(_arrays(), [2, "a"])
    assert names == ["c", "a"] and set(y.tolist()) == {0, 1}
    np.testing.assert_array_equal(y, np.tile([1, 0], 4))  # a (0) -> 1, c (2) -> 0, in stored order
    assert len(x) == 8 and len(xt) == 4
    with pytest.raises(CollectionError, match="no class named 'z'"):
        subset_classes(_arrays(), ["z", "a"])


def test_subset_classes_multilabel_drops_rows_without_a_label() -> None:
    x = np.zeros((4, 2, 2, 1), np.uint8)
    y = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 1], [1, 1, 0]])
    out = subset_classes((x, y, x, y, ["a", "b", "c"]), [0, 1])
    np.testing.assert_array_equal(out[1], [[1, 0], [0, 1], [1, 1]])


def test_cap_examples_is_stratified_and_seeded() -> None:
    arrays = _arrays(n=30)
    a = apply_transforms(arrays, {"max_train": 9, "max_test": 6}, seed=1)
    b = apply_transforms(arrays, {"max_train": 9, "max_test": 6}, seed=1)
    assert len(a[0]) == 9 and len(a[2]) == 6
    np.testing.assert_array_equal(np.bincount(a[1]), [3, 3, 3])
    np.testing.assert_array_equal(a[0], b[0])


def test_to_color() -> None:
    x, *_ = _arrays(c=1)
    rgb = to_color(x, "rgb")
    assert rgb.shape == (12, 6, 8, 3) and np.array_equal(rgb[..., 2], x[..., 0])
    grey = to_color(rgb, "grey")
    np.testing.assert_array_equal(grey, x)  # luma of equal channels is the channel
    pure_red = np.zeros((1, 2, 2, 3), np.uint8)
    pure_red[..., 0] = 255
    assert to_color(pure_red, "grey")[0, 0, 0, 0] == 76  # 0.299 * 255


def test_rotate() -> None:
    x, *_ = _arrays()
    r = rotate(x, 90)
    assert r.shape == (12, 8, 6, 1)
    np.testing.assert_array_equal(r[0, :, :, 0], np.rot90(x[0, :, :, 0]))
    np.testing.assert_array_equal(rotate(x, 360), x)
    assert rotate(x, 30).shape == x.shape


def test_random_rotate_is_seeded_and_turns_clips_alike() -> None:
    clip = np.zeros((2, 3, 9, 9, 1), np.uint8)
    clip[:, :, 4, :, 0] = 255  # a horizontal bar in every frame
    a = random_rotate(clip, 90, seed=0)
    np.testing.assert_array_equal(a, random_rotate(clip, 90, seed=0))
    assert a.shape == clip.shape
    np.testing.assert_array_equal(a[0, 0], a[0, 2])  # one angle per clip


def test_resize_and_random_rescale() -> None:
    x, *_ = _arrays()
    assert resize(x, 16, 12).shape == (12, 16, 12, 1)
    var = random_rescale(x, 10, 20, seed=0)
    assert isinstance(var, list) and len({v.shape for v in var}) > 1
    for v in var:
        assert 10 <= max(v.shape[:2]) <= 20 and v.shape[2] == 1
        assert abs(v.shape[0] / v.shape[1] - 6 / 8) < 0.15  # aspect kept
    clips = np.zeros((3, 4, 6, 8, 3), np.uint8)
    assert resize(clips, 12, 16).shape == (3, 4, 12, 16, 3)


def test_apply_transforms_order_and_unknown() -> None:
    out = apply_transforms(_arrays(c=3), {"resize": [4, 4], "color": "grey", "classes": [0, 1]})
    assert out[0].shape == (8, 4, 4, 1) and out[4] == ["a", "b"]
    with pytest.raises(CollectionError, match="unknown derivation"):
        apply_transforms(_arrays(), {"blur": 1})


# --- the report -----------------------------------------------------------------------------------

def test_report_writes_the_table_and_reuses_figures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune.config_runs

    path = tiny_collection(tmp_path)
    out = tmp_path / "built"
    build_collection(path, out, only=["digits_small", "textures_var"])
    calls: list[str] = []

    def fake_evaluate(model: str, dataset: Any, protocol: str, *, clock: str, seed: int) -> Any:
        calls.append(Path(dataset).name)
        assert (model, protocol, clock, seed) == ("baseline:linear", "mini", "cpu", 0)
        return SimpleNamespace(status="ok", final_nauc=0.5 + len(calls) / 10, alc=0.4, wall_seconds=1.0,
                               curve=[0, 1], error=None)

    monkeypatch.setattr(finetune.config_runs, "evaluate", fake_evaluate)
    doc = tmp_path / "collection.md"
    written, _rows = write_report(path, out, doc, only=["digits_small", "textures_var"], command="cmd")
    assert written == doc and calls == ["digits_small", "textures_var"]
    text = doc.read_text()
    assert "| digits_small | 10 | 40 | 20 | 8x8 | 1 | no | no | 0.600 | 0.400 |" in text
    assert "varxvar" in text and "mini" in text and "`cmd`" in text and "`digits`: scikit-learn digits" in text
    _, again = write_report(path, out, doc, only=["digits_small", "textures_var"])
    assert calls == ["digits_small", "textures_var"] and all(r.reused for r in again)
    with pytest.raises(CollectionError, match="not built.*build-collection"):
        write_report(path, out, doc)  # digits_3cls_rgb is not built


# --- the command line ------------------------------------------------------------------------------

def test_cli_build_collection_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autodl_meta.cli import main

    path = tiny_collection(tmp_path)
    out = tmp_path / "built"
    assert main(["data", "build-collection", str(path), "--out", str(out), "--only", "digits_small,textures_var"]) == 0
    printed = capsys.readouterr().out
    assert "2 built" in printed and "digits_small" in printed
    assert main(["data", "build-collection", str(path), "--out", str(out)]) == 0
    assert "1 built, 0 rebuilt, 2 skipped" in capsys.readouterr().out

    data = yaml.safe_load(path.read_text())
    data["datasets"][1]["resize"] = 10
    path.write_text(yaml.safe_dump(data))
    assert main(["data", "build-collection", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "digits_3cls_rgb" in err and "resize" in err
    assert main(["data", "build-collection", "no-such-collection", "--out", str(out)]) == 2
    assert "unknown collection" in capsys.readouterr().err


# --- the sources added for the collection ------------------------------------------------------------

def test_list_sources_has_the_new_ones() -> None:
    infos = {i.name: i for i in sources.list_sources()}
    for name in ("photos", "microscopy", "faces", "icons", "emoji", "multi_glyphs", "moving_digits"):
        assert name in infos and infos[name].description and "\n" not in infos[name].description
        assert infos[name].available == (infos[name].reason_unavailable is None)


def test_load_source_refuses_unknown_parameters() -> None:
    with pytest.raises(AutoDLError, match="takes no parameter 'colour'.*characters"):
        sources.load_source("glyphs", colour=1)


def test_photos_variable_and_fixed() -> None:
    x, _y, xt, _yt, names = sources_core.load_photos(n_train_per_class=3, n_test_per_class=2)
    assert isinstance(x, list) and len(x) == 18 and len(xt) == 12 and len(names) == 6
    assert len({a.shape for a in x}) > 1 and all(a.shape[2] == 3 and a.dtype == np.uint8 for a in x)
    assert all(32 <= a.shape[0] <= 96 and 32 <= a.shape[1] <= 96 for a in x)
    fixed = sources_core.load_photos(n_train_per_class=2, n_test_per_class=1, size=24)
    assert fixed[0].shape == (12, 24, 24, 3)


def test_microscopy() -> None:
    x, _y, xt, _yt, names = sources_core.load_microscopy(n_train_per_class=3, n_test_per_class=2)
    assert x.shape == (12, 32, 32, 3) and xt.shape == (8, 32, 32, 3)
    assert names == ["immunohistochemistry", "retina", "cell", "microaneurysms"]
    assert all(a.std() >= 8 for a in x)  # no flat crop (the fundus' black surround)


def test_faces() -> None:
    x, y, xt, _yt, names = sources_core.load_faces()
    assert x.shape[1:] == (25, 25, 1) and len(x) + len(xt) == 200 and names == ["non-face", "face"]
    assert np.bincount(y).tolist() in ([66, 67], [67, 66])


@needs_icons
def test_icons_split_by_icon_and_varied_sizes() -> None:
    x, _y, xt, _yt, names = sources_core.load_icons(sizes=(16, 32))
    assert "devices" in names and "status" in names and len(names) >= 5
    assert {a.shape for a in x} == {(16, 16, 1), (32, 32, 1)}
    # the same icon never is in both subsets: its 16 px drawing is in one only
    train16 = {a.tobytes() for a in x if a.shape[0] == 16}
    assert not train16 & {a.tobytes() for a in xt if a.shape[0] == 16}


def test_icons_missing_theme_says_which_package(tmp_path: Path) -> None:
    with pytest.raises(AutoDLError, match="apt-get install adwaita-icon-theme"):
        sources_core.load_icons(theme_dir=tmp_path)


@needs_emoji
def test_emoji_category_and_emoji_tasks() -> None:
    x, y, xt, _yt, names = sources_core.load_emoji(categories=["animal", "food"], renders_per_emoji=2)
    assert names == ["animal", "food"] and x.shape[1:] == (32, 32, 3)
    assert len(x) > len(xt) > 0 and set(y.tolist()) == {0, 1}
    x2, _y2, *_, names2 = sources_core.load_emoji(task="emoji", categories=["plant"], n_train_per_class=1,
                                            n_test_per_class=1, size=20)
    assert len(names2) >= 10 and x2.shape == (len(names2), 20, 20, 3)
    with pytest.raises(AutoDLError, match="field 'categories'"):
        sources_core.load_emoji(categories=["dinosaur"])


def test_emoji_without_font_names_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(AutoDLError, match="apt-get install fonts-noto-color-emoji"):
        sources_core.load_emoji(font_dirs=[tmp_path])


@needs_fonts
def test_multi_glyphs() -> None:
    x, y, _xt, _yt, names = sources_core.load_multi_glyphs(n_train=30, n_test=10)
    assert x.shape == (30, 48, 48, 1) and y.shape == (30, 8) and names == list("ABCDEFGH")
    assert 1 <= y.sum(1).min() and y.sum(1).max() <= 3 and (y.sum(1) > 1).any()
    from autodl.labels import is_multilabel

    assert is_multilabel(y.astype(np.float32))


def test_moving_digits() -> None:
    x, _y, xt, _yt, names = sources_core.load_moving_digits(n_train_per_class=2, n_test_per_class=1)
    assert x.shape == (20, 8, 24, 24, 1) and xt.shape == (10, 8, 24, 24, 1) and names == list("0123456789")
    assert not np.array_equal(x[0, 0], x[0, -1])  # it moves
    assert all(x[i, t].max() > 0 for i in range(3) for t in range(8))  # always in the frame


@needs_fashion
def test_fashion_class_names_subset(tmp_path: Path) -> None:
    data = {"name": "f", "sources": [{"name": "fashion_mnist", "origin": "o", "licence": "MIT"}],
            "datasets": [{"name": "tops", "source": "fashion_mnist", "doc": "x", "classes": ["Coat", "Shirt"],
                          "max_train": 20, "max_test": 10}]}
    path = tmp_path / "f.yaml"
    path.write_text(yaml.safe_dump(data))
    build_collection(path, tmp_path / "b")
    assert AutoDLDataset(tmp_path / "b" / "tops").label_names() == ["Coat", "Shirt"]


# --- the held-out collection: disjoint from training, samples used as they are -----------------------

def _names(coll: Collection) -> set[str]:
    return ({d.name.lower() for d in coll.datasets} | {s.name.lower() for s in coll.sources}
            | {s.name.lower() for s in coll.samples})


def test_shipped_heldout_and_default_share_nothing() -> None:
    held, train = load_collection("heldout"), load_collection("default")
    assert held.training == ("default",) and held.is_held_out and not train.is_held_out
    assert "collection:heldout" in train.held_out and {"Monkeys", "miniciao"} <= set(train.held_out)
    assert not _names(held) & _names(train)
    assert not {d.source for d in held.datasets} & {d.source for d in train.datasets}
    assert not {s.folder for s in held.samples} & {s.folder for s in train.samples}


def test_shipped_heldout_covers_what_the_benchmark_needs() -> None:
    held = load_collection("heldout")
    assert len(held.datasets) >= 8
    assert {(s.name, s.path) for s in held.samples} == {("miniciao", "demo/miniciao"),
                                                        ("Monkeys", "../shared/autodl_samples/Monkeys")}
    by_source = {d.source: d for d in held.datasets}
    # handwriting/symbols, variable-size colour >= 128 px, texture, aerial-like, few-shot,
    # multi-label, video by appearance, video by motion only
    assert {"greek_letters", "tuxpaint_stamps", "gimp_patterns", "earth_landcover", "wesnoth_portraits",
            "shape_scenes", "wesnoth_animations", "spin_zoom"} <= set(by_source)
    stamps = sources.source_parameters("tuxpaint_stamps")
    assert stamps["min_side"] >= 128 and "min_side" not in by_source["tuxpaint_stamps"].params
    few = sources.source_parameters("wesnoth_portraits")
    assert by_source["wesnoth_portraits"].params.get("n_train_per_class", few["n_train_per_class"]) <= 20
    for d in held.datasets:
        assert d.doc and held.source(d.source).licence and held.source(d.source).origin
        assert set(d.params) <= set(sources.source_parameters(d.source))
    for s in held.samples:
        assert s.doc and s.origin and s.licence


def _heldout_file(tmp_path: Path, datasets: list[dict[str, Any]], training: list[str] | None = None,
                  sources_: list[dict[str, str]] | None = None, samples: list[dict[str, str]] | None = None,
                  name: str = "held") -> Path:
    data: dict[str, Any] = {"name": name, "description": "held out", "training": training or ["default"],
                            "sources": sources_ or [{"name": "shape_scenes", "origin": "generated", "licence": "x"}],
                            "datasets": datasets}
    if samples is not None:
        data["samples"] = samples
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize("datasets, sources_, field, shared", [
    ([{"name": "dig", "source": "digits", "doc": "x"}], [{"name": "digits", "origin": "o", "licence": "l"}],
     "datasets[0] (dig).source", "'digits' is a source of training collection 'default'"),
    ([{"name": "letters", "source": "shape_scenes", "doc": "x"}], None,
     "datasets[0] (letters).name", "'letters' is a dataset of training collection 'default'"),
    ([{"name": "s", "source": "shape_scenes", "doc": "x"}],
     [{"name": "shape_scenes", "origin": "o", "licence": "l"}, {"name": "Emoji", "origin": "o", "licence": "l"}],
     "sources[1]", "'Emoji' is a source of training collection 'default'"),
])
def test_heldout_overlapping_training_is_refused(tmp_path: Path, datasets: list, sources_: list | None, field: str,
                                                 shared: str) -> None:
    path = _heldout_file(tmp_path, datasets, sources_=sources_)
    with pytest.raises(CollectionError) as exc:
        load_collection(path)
    text = str(exc.value)
    assert str(path) in text and f"field '{field}'" in text and shared in text and "share no" in text


def test_training_side_refuses_a_heldout_collections_names(tmp_path: Path) -> None:
    held = _heldout_file(tmp_path, [{"name": "digits_small", "source": "shape_scenes", "doc": "x"}],
                         training=["tiny.yaml"])
    train = tiny_collection(tmp_path, held_out=None)  # tiny's held_out set below
    data = yaml.safe_load(train.read_text())
    data["held_out"] = ["Monkeys", "collection:held.yaml"]
    train.write_text(yaml.safe_dump(data))
    for path, field in ((train, "datasets[0] (digits_small).name"), (held, "datasets[0] (digits_small).name")):
        with pytest.raises(CollectionError) as exc:
            load_collection(path)
        assert str(path) in str(exc.value) and f"field '{field}'" in str(exc.value)
    # without the overlap, the two files name each other and both load (links are not followed twice)
    held = _heldout_file(tmp_path, [{"name": "scenes", "source": "shape_scenes", "doc": "x"}], training=["tiny"])
    assert load_collection(held).training == ("tiny",)
    assert "collection:held.yaml" in load_collection(train).held_out
    assert load_collection(train, check_links=False).name == "tiny"


def test_a_linked_collection_that_cannot_be_read(tmp_path: Path) -> None:
    path = _heldout_file(tmp_path, [{"name": "s", "source": "shape_scenes", "doc": "x"}], training=["no-such"])
    with pytest.raises(CollectionError, match=r"field 'training\[0\]'.*'no-such'.*unknown collection"):
        load_collection(path)
    bad = tiny_collection(tmp_path, held_out=["collection:missing.yaml"])
    with pytest.raises(CollectionError, match=r"field 'held_out\[0\]'"):
        load_collection(bad)


@pytest.mark.parametrize("sample, field, expected", [
    ({"name": "s", "doc": "d", "origin": "o", "licence": "l"}, "samples[0].path", "non-empty string"),
    ({"name": "s", "path": "p", "doc": "d", "origin": "o", "licence": "l", "size": 3}, "samples[0].size",
     "unknown key"),
    ({"name": "scenes", "path": "p", "doc": "d", "origin": "o", "licence": "l"}, "samples[0].name", "unique"),
    ({"name": "Monkeys", "path": "p", "doc": "d", "origin": "o", "licence": "l"}, "samples[0]",
     "a sample of training collection"),
])
def test_bad_samples_name_file_and_field(tmp_path: Path, sample: dict, field: str, expected: str) -> None:
    training = tmp_path / "train.yaml"
    training.write_text(yaml.safe_dump({"name": "train", "sources": SOURCES, "samples": [
        {"name": "Monkeys", "path": "elsewhere", "doc": "d", "origin": "o", "licence": "l"}],
        "datasets": [{"name": "d", "source": "digits", "doc": "x"}]}))
    path = _heldout_file(tmp_path, [{"name": "scenes", "source": "shape_scenes", "doc": "x"}], training=["train"],
                         samples=[sample])
    with pytest.raises(CollectionError) as exc:
        load_collection(path)
    assert str(path) in str(exc.value) and f"field '{field}'" in str(exc.value) and expected in str(exc.value)


def test_samples_resolved_built_nothing_and_listed_after_the_datasets(tmp_path: Path,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    present = sources.write_source("digits", tmp_path / "present_sample", max_train=20, max_test=10)
    path = _heldout_file(tmp_path, [{"name": "scenes", "source": "shape_scenes", "doc": "x",
                                     "params": {"n_train": 12, "n_test": 6, "size": 16}}],
                         samples=[{"name": "here", "path": str(present), "doc": "d", "origin": "o", "licence": "l"},
                                  {"name": "gone", "path": "no/such/folder", "doc": "d", "origin": "o", "licence": "l"}])
    coll = load_collection(path)
    assert coll.samples[1].folder == (REPOSITORY_ROOT / "no/such/folder").resolve()
    assert [(s.name, p) for s, p in collection_samples(coll)] == [("here", True), ("gone", False)]
    out = tmp_path / "built"
    with caplog.at_level("WARNING", logger="autodl.collection_build"):
        results = build_collection(path, out)
    assert [r.name for r in results] == ["scenes"] and sorted(p.name for p in out.iterdir()) == ["scenes"]
    assert "gone" in caplog.text and "absent" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="autodl.collection"):
        listed = collection_datasets(path, out)
    assert listed == [("scenes", out / "scenes", "shape_scenes"), ("here", present, "sample:here")]
    assert "gone" in caplog.text
    assert coll.select(["here", "scenes"])[0].name == "scenes" and coll.select_samples(["here"])[0].name == "here"


def test_shipped_heldout_samples_resolve_to_the_organizers_folders() -> None:
    held = load_collection("heldout")
    folders = {s.name: s.folder for s in held.samples}
    assert folders["miniciao"] == REPOSITORY_ROOT / "demo" / "miniciao"
    assert folders["Monkeys"] == (REPOSITORY_ROOT / ".." / "shared" / "autodl_samples" / "Monkeys").resolve()
    assert held.samples[0].present  # demo/miniciao ships with the repository


def test_cli_build_collection_says_which_samples_are_present(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    from autodl_meta.cli import main

    path = _heldout_file(tmp_path, [{"name": "scenes", "source": "shape_scenes", "doc": "x",
                                     "params": {"n_train": 8, "n_test": 4, "size": 16}}],
                         samples=[{"name": "gone", "path": "no/such", "doc": "d", "origin": "o", "licence": "l"}])
    assert main(["data", "build-collection", str(path), "--out", str(tmp_path / "b")]) == 0
    printed = capsys.readouterr().out
    assert "ABSENT" in printed and "gone" in printed and "1 built, 0 rebuilt, 0 skipped; 0 of 1 samples present" in printed


def test_report_of_a_heldout_collection_keeps_other_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import finetune.config_runs

    present = sources.write_source("digits", tmp_path / "smp", max_train=20, max_test=10)
    path = _heldout_file(tmp_path, [{"name": "scenes", "source": "shape_scenes", "doc": "shapes | more",
                                     "params": {"n_train": 8, "n_test": 4, "size": 16}}],
                         sources_=[{"name": "shape_scenes", "origin": "generated", "licence": "MIT"}],
                         samples=[{"name": "smp", "path": str(present), "doc": "a sample", "origin": "o",
                                   "licence": "CC0"}])
    out = tmp_path / "built"
    build_collection(path, out)
    calls: list[str] = []

    def fake_evaluate(model: str, dataset: Any, protocol: str, *, clock: str, seed: int) -> Any:
        calls.append(Path(dataset).name)
        return SimpleNamespace(status="ok", final_nauc=0.5, alc=0.4, wall_seconds=1.0, curve=[0], error=None)

    monkeypatch.setattr(finetune.config_runs, "evaluate", fake_evaluate)
    doc = tmp_path / "collection.md"
    doc.write_text("# Training collection `default`\n\nkept as it is\n")
    write_report(path, out, doc, command="cmd")
    assert calls == ["scenes", "smp"] and (out / ".samples" / "smp" / REPORT_FILE).is_file()
    assert not (present / REPORT_FILE).exists()  # nothing written into the sample's folder
    text = doc.read_text()
    assert text.startswith("# Training collection `default`\n\nkept as it is\n")
    assert "# Held-out collection `held`" in text and "training collection(s) `default`" in text
    assert "| shapes / more | `shape_scenes` (MIT) |" in text and "| `sample:smp` (CC0) |" in text
    doc.write_text(text + "\n## Notes after the block\n")
    write_report(path, out, doc, command="again")
    again = doc.read_text()
    assert again.count("# Held-out collection `held`") == 1 and "`again`" in again and "`cmd`" not in again
    assert calls == ["scenes", "smp"]  # figures reused
    assert again.startswith("# Training collection `default`\n\nkept as it is\n")
    assert again.endswith("\n## Notes after the block\n")


def test_select_by_tag() -> None:
    coll = load_collection("default")
    core = coll.select(["tag:core"])
    assert core and all("core" in d.tags for d in core)
    assert [d.name for d in coll.select(["tag:core", "fashion_20k"])] == [
        d.name for d in coll.datasets if "core" in d.tags or d.name == "fashion_20k"]
    with pytest.raises(CollectionError, match="tag:NAME"):
        coll.select(["tag:nonesuch"])
