"""Every loader of a shipped artifact refuses a file whose SHA-256 differs from the checksum
that comes with it by design, and refuses pickled content (nothing in it runs).

- submission artifacts (``Artifacts``: a zip's ``checksums.json`` or a portfolio build's
  ``manifest.json``): ``portfolio.json``, ``summary.json``, the selector, the weights;
- a portfolio folder read by ``baseline:single-best`` / ``baseline:oracle`` and by the
  held-out benchmark (against its ``manifest.json``);
- the selector (card + safetensors, the card holding the arrays' SHA-256);
- the features (``<name>.npz`` + card holding ``npz_sha256``);
- the timing table (the SHA-256 a portfolio records for it);
- pretrained weights (``torch.load(weights_only=True)``).

A pickle here is a real one whose payload, if it ever ran, would create a file: each test
checks that the file was never created.
"""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest

from autodl.errors import AutoDLError
from autodl.records import file_sha256

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "portfolio" / "default"


class _Payload:
    """Unpickling this creates ``marker`` (what an attacker's pickle would do, harmlessly)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def evil_pickle(path: Path, marker: Path) -> Path:
    path.write_bytes(pickle.dumps({"weights": _Payload(marker)}))
    return path


def rewrite_table(folder: Path, table: str, relative: str) -> None:
    """Make ``folder/table`` list ``relative``'s current SHA-256 (a tampered file *and* table)."""
    data = json.loads((folder / table).read_text())
    data["files"][relative] = {"sha256": file_sha256(folder / relative), "bytes": (folder / relative).stat().st_size}
    (folder / table).write_text(json.dumps(data))


@pytest.fixture()
def default_copy(tmp_path: Path) -> Path:
    """The shipped portfolio/default's files that a submission reads, with its manifest."""
    out = tmp_path / "default"
    out.mkdir()
    for name in ("portfolio.json", "summary.json", "manifest.json"):
        shutil.copy2(DEFAULT / name, out / name)
    shutil.copytree(DEFAULT / "selector", out / "selector")
    return out


# --- submission artifacts ------------------------------------------------------------------------
def test_shipped_portfolio_json_that_differs_from_the_manifest_is_refused(default_copy):
    from submission.artifacts import ArtifactError, Artifacts

    arts = Artifacts(default_copy)
    assert arts.incumbents() and arts.single_best()  # as shipped: accepted
    data = json.loads((default_copy / "portfolio.json").read_text())
    data["incumbents"][0]["alc"] = 0.999
    (default_copy / "portfolio.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match=r"portfolio\.json.*SHA-256.*differs from manifest\.json"):
        Artifacts(default_copy).incumbents()
    (default_copy / "summary.json").write_text((default_copy / "summary.json").read_text() + " ")
    with pytest.raises(ArtifactError, match=r"summary\.json.*SHA-256"):
        Artifacts(default_copy).single_best()


def test_an_artifact_the_table_does_not_list_is_refused(default_copy):
    from submission.artifacts import ArtifactError, Artifacts

    manifest = default_copy / "manifest.json"
    table = json.loads(manifest.read_text())
    table["files"].pop("submission.json", None)  # the shipped folder may list one (portfolio ship --hedge)
    manifest.write_text(json.dumps(table))
    (default_copy / "submission.json").write_text(json.dumps({"first_prediction": "after-selection"}))
    with pytest.raises(ArtifactError, match=r"submission\.json.*not listed in manifest\.json"):
        Artifacts(default_copy).settings()


def test_selector_files_that_differ_from_the_table_are_refused(default_copy):
    from submission.artifacts import ArtifactError, Artifacts

    card = default_copy / "selector" / "selector.json"
    card.write_text(card.read_text().replace('"scores"', '"scores" ', 1))
    with pytest.raises(ArtifactError, match=r"selector\.json.*SHA-256"):
        Artifacts(default_copy).selector()


def test_shipped_weights_that_differ_are_refused_and_a_pickle_in_their_place_never_runs(tmp_path):
    from submission.artifacts import ArtifactError, Artifacts, checksum_table

    art = tmp_path / "artifacts"
    (art / "weights").mkdir(parents=True)
    w = art / "weights" / "tf_efficientnet_lite0.pth"
    w.write_bytes(b"\x00" * 64)
    (art / "checksums.json").write_text(json.dumps({"files": checksum_table(art, [w])}))
    marker = tmp_path / "ran"
    evil_pickle(w, marker)
    with pytest.raises(ArtifactError, match="SHA-256"):
        Artifacts(art).checked("weights/tf_efficientnet_lite0.pth")
    assert not marker.exists()


def test_weights_are_read_with_weights_only_a_pickle_is_refused_without_running(tmp_path):
    """Even where no checksum stands in the way (a user's --weights file), torch.load runs with
    weights_only=True: a pickle of an arbitrary object is refused, its payload never runs."""
    import torch

    from finetune.weights import WeightsMismatchError, _read_state_dict

    marker = tmp_path / "ran"
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        _read_state_dict(evil_pickle(tmp_path / "evil.pth", marker))
    torch.save({"payload": _Payload(marker)}, tmp_path / "evil-torch.pth")  # torch's own zip format
    with pytest.raises(WeightsMismatchError, match="weights_only=True"):
        _read_state_dict(tmp_path / "evil-torch.pth")
    assert not marker.exists()
    torch.save({"w": torch.zeros(2)}, tmp_path / "ok.pth")
    assert list(_read_state_dict(tmp_path / "ok.pth")) == ["w"]


# --- portfolio folders read by the models and the held-out benchmark -------------------------------
def test_portfolio_folder_read_by_the_baselines_and_the_benchmark_is_checked(default_copy):
    from portfolio.baselines import portfolio_config
    from pipeline.heldout import portfolio_members

    config, source = portfolio_config("baseline:single-best", default_copy)
    assert config and source
    assert portfolio_members(default_copy)[1]
    data = json.loads((default_copy / "summary.json").read_text())
    (default_copy / "summary.json").write_text(json.dumps(data))  # the same content, other bytes
    with pytest.raises(AutoDLError, match=r"summary\.json.*SHA-256.*manifest\.json"):
        portfolio_config("baseline:single-best", default_copy)
    with pytest.raises(AutoDLError, match=r"summary\.json.*SHA-256"):
        portfolio_members(default_copy)


# --- the selector: card + safetensors ------------------------------------------------------------
def _features(names=("a", "b")):
    from metafeatures.features import DatasetFeatures

    rng = np.random.default_rng(0)
    return [DatasetFeatures(name=n, train=(rng.normal(size=(20, 8)) + i).astype(np.float32),
                            train_labels=np.eye(2, dtype=np.float32)[np.arange(20) % 2]) for i, n in enumerate(names)]


def test_selector_arrays_that_differ_from_the_card_are_refused(tmp_path):
    from selector.base import SelectorError
    from selector.registry import load_selector, make_selector

    make_selector("nearest-centroid").fit(_features()).save(tmp_path / "sel")
    assert load_selector(tmp_path / "sel").classes_ == ["a", "b"]
    arrays = tmp_path / "sel" / "selector.safetensors"
    arrays.write_bytes(arrays.read_bytes()[:-4] + b"\x00\x00\x00\x00")
    with pytest.raises(SelectorError, match=r"selector\.safetensors.*SHA-256.*card"):
        load_selector(tmp_path / "sel")


def test_a_pickle_in_place_of_the_selector_arrays_is_refused_even_with_a_matching_checksum(tmp_path):
    from selector.base import SelectorError
    from selector.registry import load_selector, make_selector

    make_selector("nearest-centroid").fit(_features()).save(tmp_path / "sel")
    marker = tmp_path / "ran"
    arrays = evil_pickle(tmp_path / "sel" / "selector.safetensors", marker)
    card = json.loads((tmp_path / "sel" / "selector.json").read_text())
    card["arrays_sha256"] = file_sha256(arrays)  # an attacker who rewrites the card as well
    (tmp_path / "sel" / "selector.json").write_text(json.dumps(card))
    with pytest.raises(SelectorError, match="not a safetensors file"):
        load_selector(tmp_path / "sel")
    assert not marker.exists()


# --- features: npz + card --------------------------------------------------------------------------
def test_features_that_differ_from_their_card_are_refused(tmp_path):
    from metafeatures.features import DatasetFeatures, FeaturesError

    npz = _features(("a",))[0].save(tmp_path)
    card = json.loads((tmp_path / "a.json").read_text())
    assert card["npz_sha256"] == file_sha256(npz)
    assert DatasetFeatures.load(npz).train.shape == (20, 8)
    with np.load(npz, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train"][0, 0] += 1.0
    np.savez_compressed(npz, **arrays)  # a valid npz, other numbers
    with pytest.raises(FeaturesError, match=r"a\.npz.*SHA-256.*card"):
        DatasetFeatures.load(npz)


@pytest.mark.parametrize("kind", ["pickle file", "object array"])
def test_pickled_features_are_refused_without_running(tmp_path, kind):
    from metafeatures.features import DatasetFeatures, FeaturesError

    npz = _features(("a",))[0].save(tmp_path)
    marker = tmp_path / "ran"
    if kind == "pickle file":
        evil_pickle(npz, marker)
    else:  # a real npz whose array is an object array: np.save pickles it
        obj = np.empty(1, dtype=object)
        obj[0] = _Payload(marker)
        np.savez(npz, train=obj, train_labels=np.zeros((1, 2), np.float32))
    card = json.loads((tmp_path / "a.json").read_text())
    card["npz_sha256"] = file_sha256(npz)  # the card rewritten too: the pickle itself must be refused
    (tmp_path / "a.json").write_text(json.dumps(card))
    with pytest.raises(FeaturesError, match="not a readable .npz"):
        DatasetFeatures.load(npz)
    assert not marker.exists()


# --- the timing table ------------------------------------------------------------------------------
def test_a_timing_table_that_differs_from_the_portfolios_checksum_is_refused(tmp_path):
    from portfolio.cost_matrix import CostMatrixError, resolve_timing
    from portfolio.incumbents import Portfolio

    table = tmp_path / "timing.json"
    data = json.loads((ROOT / "configs" / "timing" / "cpu-2core-epyc.json").read_text())
    table.write_text(json.dumps(data, indent=3))  # a table of its own (no committed one has its SHA-256)
    portfolio = Portfolio.load(DEFAULT / "portfolio.json")
    portfolio.timing = {"path": str(table), "sha256": file_sha256(table)}
    assert resolve_timing(portfolio) is not None
    table.write_text(json.dumps(data, indent=2))  # the same figures, other bytes
    with pytest.raises(CostMatrixError, match="changed since the BOHB runs"):
        resolve_timing(portfolio)
