"""Tests of metafeatures.extract: a collection's features, cached, recomputed when the spec or the
data change, failures reported after the others finished, and Dask workers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

import metafeatures.embeddings
from autodl.collection import collection_datasets
from autodl.errors import AutoDLError
from metafeatures.embeddings import EmbeddingSpec
from metafeatures.extract import CollectionExtractionError, extract_collection
from metafeatures.features import DatasetFeatures, load_features_folder

pytestmark = pytest.mark.usefixtures("torch_threads_1")

SPEC = EmbeddingSpec(input_size=32, train_samples=4, test_samples=2, batch_size=8)


@pytest.fixture
def two(tmp_path: Path) -> list[tuple[str, Path, str]]:
    """Two tiny datasets (5 train, 3 test): RGB and grey."""
    from conftest import write_variant

    root = tmp_path / "data"
    return [("rgb", write_variant(root, "rgb").root, "src_a"), ("gray", write_variant(root, "gray").root, "src_b")]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The datasets extract_features is called on."""
    seen: list[str] = []
    original = metafeatures.embeddings.extract_features

    def counting(dataset, spec, **kwargs):
        seen.append(kwargs.get("name") or Path(dataset).name)
        return original(dataset, spec, **kwargs)

    monkeypatch.setattr(metafeatures.embeddings, "extract_features", counting)
    return seen


def mtimes(out: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted(out.iterdir())}


def test_extract_collection_caches_and_recomputes(two: list, calls: list, tmp_path: Path) -> None:
    out = tmp_path / "features"
    events: list[tuple[int, int, str]] = []
    paths = extract_collection(two, SPEC, out, workers=1, device="cpu",
                               progress=lambda d, t, n: events.append((d, t, n)))
    assert paths == [out / "rgb.npz", out / "gray.npz"] and calls == ["rgb", "gray"]
    assert events == [(1, 2, "rgb"), (2, 2, "gray")]
    feats = {f.name: f for f in load_features_folder(out)}
    assert feats["rgb"].source == "src_a" and feats["gray"].source == "src_b"
    assert feats["gray"].card["in_chans"] == 1 and feats["rgb"].train.shape == (4, 1280)
    assert feats["rgb"].test.shape == (2, 1280)
    before = mtimes(out)

    # the same spec on the same data: nothing computed, nothing written
    events.clear()
    assert extract_collection(two, SPEC, out, workers=1, device="cpu",
                              progress=lambda d, t, n: events.append((d, t, n))) == paths
    assert calls == ["rgb", "gray"] and mtimes(out) == before
    assert events == [(1, 2, "rgb"), (2, 2, "gray")]
    # the batch size does not change the embeddings: still cached
    extract_collection(two, EmbeddingSpec(**{**SPEC.to_dict(), "batch_size": 2}), out, device="cpu")
    assert calls == ["rgb", "gray"]

    # another spec: both computed again
    spec40 = EmbeddingSpec(**{**SPEC.to_dict(), "input_size": 40})
    extract_collection(two, spec40, out, device="cpu")
    assert calls == ["rgb", "gray"] * 2
    assert DatasetFeatures.load(out / "rgb.npz").card["input_size"] == 40

    # one dataset's files changed: only it is computed again
    from conftest import write_variant

    write_variant(two[0][1].parent / "tmp", "rgb", seed=1)
    import shutil

    shutil.rmtree(two[0][1])
    shutil.move(two[0][1].parent / "tmp" / "rgb", two[0][1])
    (two[0][1] / "rgb.data" / "train" / "extra-note.txt").write_text("x" * 10)  # a file that changes the fingerprint
    extract_collection(two, spec40, out, device="cpu")
    assert calls == ["rgb", "gray"] * 2 + ["rgb"]

    # another source: computed again
    extract_collection([two[0], ("gray", two[1][1], "src_c")], spec40, out, device="cpu")
    assert calls[-1] == "gray" and DatasetFeatures.load(out / "gray.npz").source == "src_c"


def test_a_failing_dataset_is_reported_after_the_others(two: list, tmp_path: Path) -> None:
    from conftest import write_variant

    bad = write_variant(tmp_path / "data", "rgba").root
    records = sorted((bad / "rgba.data" / "train").glob("sample*"))
    records[0].write_bytes(records[0].read_bytes()[:40])  # a truncated record file
    out = tmp_path / "features"
    items = [two[0], ("broken", bad, None), two[1]]
    with pytest.raises(CollectionExtractionError, match="1 of 3 datasets failed.*broken") as info:
        extract_collection(items, SPEC, out, device="cpu")
    assert isinstance(info.value, AutoDLError)
    assert info.value.paths == [out / "rgb.npz", out / "gray.npz"] and set(info.value.failures) == {"broken"}
    assert (out / "rgb.npz").is_file() and (out / "gray.npz").is_file() and not (out / "broken.npz").exists()


def test_bad_collections_are_refused_before_anything_runs(two: list, tmp_path: Path) -> None:
    with pytest.raises(AutoDLError, match="dataset name 'rgb' is also"):
        extract_collection([two[0], ("rgb", two[1][1], None)], SPEC, tmp_path / "f")
    with pytest.raises(AutoDLError, match="<name>.data"):
        extract_collection([("nothing", tmp_path, None)], SPEC, tmp_path / "f")
    assert not (tmp_path / "f").exists()


def test_an_unreadable_card_is_recomputed(two: list, calls: list, tmp_path: Path) -> None:
    out = tmp_path / "features"
    extract_collection(two[:1], SPEC, out, device="cpu")
    (out / "rgb.json").write_text("{not json")
    extract_collection(two[:1], SPEC, out, device="cpu")
    assert calls == ["rgb", "rgb"]
    assert json.loads((out / "rgb.json").read_text())["card"]["spec_digest"] == SPEC.digest()


def test_collection_datasets(two: list, tmp_path: Path) -> None:
    data = {"name": "pair", "description": "two tiny datasets",
            "sources": [{"name": "digits", "origin": "scikit-learn digits", "licence": "CC BY 4.0"},
                        {"name": "textures", "origin": "scikit-image", "licence": "CC0"}],
            "datasets": [{"name": "rgb", "source": "digits", "doc": "a"},
                         {"name": "gray", "source": "textures", "doc": "b"}]}
    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump(data))
    assert collection_datasets(path, tmp_path / "data") == [("rgb", two[0][1], "digits"),
                                                           ("gray", two[1][1], "textures")]
    with pytest.raises(AutoDLError, match="no built dataset rgb, gray.*build-collection"):
        collection_datasets(path, tmp_path)


@pytest.mark.slow
def test_extract_collection_with_dask_workers(two: list, tmp_path: Path) -> None:
    """Two worker processes of a LocalCluster give the same features as this process."""
    here, there = tmp_path / "here", tmp_path / "there"
    extract_collection(two, SPEC, here, workers=1, device="cpu")
    extract_collection(two, SPEC, there, workers=2, device="cpu")
    for name in ("rgb", "gray"):
        a, b = DatasetFeatures.load(here / f"{name}.npz"), DatasetFeatures.load(there / f"{name}.npz")
        np.testing.assert_allclose(a.train, b.train, atol=1e-5)
        np.testing.assert_allclose(a.test, b.test, atol=1e-5)


def test_features_without_raw_pixels_are_extracted_again(two: list, calls: list, tmp_path: Path) -> None:
    """Files written before ``train_raw`` existed load (without it) and are recomputed, so that
    'autodl-meta metafeatures extract' is how to get the raw-pixel probe's features."""
    out = tmp_path / "features"
    extract_collection(two, SPEC, out, device="cpu")
    old = DatasetFeatures.load(out / "rgb.npz")
    assert old.train_raw is not None and old.train_raw.shape == (4, 3 * 16 * 16)
    old.train_raw = None  # as an older extractor wrote it
    old.save(out)
    assert DatasetFeatures.load(out / "rgb.npz").train_raw is None
    extract_collection(two, SPEC, out, device="cpu")
    assert calls == ["rgb", "gray", "rgb"]
    assert DatasetFeatures.load(out / "rgb.npz").train_raw.shape == (4, 3 * 16 * 16)
