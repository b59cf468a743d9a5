"""The submission model (:mod:`submission.agent`): selection, fallbacks, degradation, the decision."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from autodl.ingestion import run_ingestion
from submission.agent import DECISION_ENV, MetaModel, factory
from submission.artifacts import ArtifactError, Artifacts, SubmissionSettings

from .submission_helpers import CHEAP, CHEAP_B


def _run(artifacts: Path, dataset: Path, out: Path, budget: float = 60.0, **kwargs):
    """The submission through in-process ingestion (its runs end early: probes only)."""
    models = []

    def make(meta, clock):
        models.append(factory(artifacts, **kwargs)(meta, clock))
        return models[-1]

    res = run_ingestion(dataset, make, out, time_budget=budget)
    return res, models[0]


def _predictions(out: Path) -> list[np.ndarray]:
    files = sorted(out.glob("*.predict_*"), key=lambda p: int(p.name.rsplit("_", 1)[1]))
    return [np.loadtxt(p, ndmin=2) for p in files]


@pytest.mark.parametrize("order", ["before-selection", "after-selection"])
def test_selects_an_incumbent_and_logs_the_decision(tiny_artifacts, unseen, tmp_path, monkeypatch, caplog, order):
    decision_file = tmp_path / "decision.json"
    monkeypatch.setenv(DECISION_ENV, str(decision_file))
    caplog.set_level(logging.INFO, logger="submission.agent")
    res, model = _run(tiny_artifacts, unseen, tmp_path / "out", budget=60.0,
                      settings=SubmissionSettings(first_prediction=order, query_size=16))
    assert res.success, res.error
    assert res.timestamps  # (no prediction after T: checked on the simulated clock, below)
    d = model.decision
    assert d["selector"] == "nearest-centroid"
    assert d["chosen_dataset"] in ("alpha", "beta")
    assert 0.0 <= d["confidence"] <= 1.0 and d["novelty"] is not None
    assert d["selection_seconds"] is not None and d["configuration"] is not None
    assert json.loads(decision_file.read_text())["chosen_dataset"] == d["chosen_dataset"]
    assert "submission ready" in caplog.text
    assert f"selected {d['chosen_dataset']}" in caplog.text or "using the single best" in caplog.text
    preds = _predictions(tmp_path / "out")
    assert preds and all(p.shape == (15, 3) for p in preds)


def test_first_prediction_before_selection_comes_from_the_single_best(tiny_artifacts, unseen, tmp_path):
    """before-selection: the first prediction is made before the selector is asked."""
    res, model = _run(tiny_artifacts, unseen, tmp_path / "out",
                      settings=SubmissionSettings(first_prediction="before-selection", query_size=16))
    events = model.decision["events"]
    first_train = next(i for i, e in enumerate(events) if e.startswith("training single best"))
    selected = next(i for i, e in enumerate(events) if e.startswith(("selected", "using the single best")))
    assert first_train < selected
    assert res.success


def test_confident_pick_below_threshold_falls_back_to_single_best(artifacts_copy, unseen, tmp_path):
    card_path = artifacts_copy / "selector" / "selector.json"
    card = json.loads(card_path.read_text())
    card["scores"] = {"fallback": {"confidence_threshold": 1.01, "novelty_threshold": None}}
    card_path.write_text(json.dumps(card))
    # the card changed: the checksum table must be rewritten for the selector to load
    table = json.loads((artifacts_copy / "checksums.json").read_text())
    from autodl.records import file_sha256

    table["files"]["selector/selector.json"]["sha256"] = file_sha256(card_path)
    (artifacts_copy / "checksums.json").write_text(json.dumps(table))
    res, model = _run(artifacts_copy, unseen, tmp_path / "out",
                      settings=SubmissionSettings(first_prediction="after-selection", query_size=16))
    assert res.success
    assert "below the threshold" in model.decision["fallback"]
    assert model.decision["configuration_source"].startswith("single best (incumbent of alpha)")


@pytest.mark.parametrize("damage", ["removed", "corrupted"])
def test_damaged_selector_still_predicts_with_the_single_best(artifacts_copy, unseen, tmp_path, damage):
    arrays = artifacts_copy / "selector" / "selector.safetensors"
    if damage == "removed":
        import shutil

        shutil.rmtree(artifacts_copy / "selector")
    else:
        data = bytearray(arrays.read_bytes())
        data[-8:] = b"\x00" * 8
        arrays.write_bytes(bytes(data))
    res, model = _run(artifacts_copy, unseen, tmp_path / "out")
    assert res.success and res.timestamps
    events = " | ".join(model.decision["events"])
    assert "loading the selector failed" in events
    assert ("SHA-256" in events) if damage == "corrupted" else ("missing" in events or "not found" in events)
    assert model.decision["selector"] is None
    assert model.decision["fallback"].startswith("no selector")
    assert model.decision["configuration_source"].startswith("single best")


def test_every_backbone_failing_still_returns_class_frequencies(tiny_artifacts, unseen, tmp_path, monkeypatch):
    import finetune.learner

    def broken(self, *args, **kwargs):
        raise RuntimeError("no backbone can be built here")

    monkeypatch.setattr(finetune.learner.FineTuneLearner, "__init__", broken)
    res, model = _run(tiny_artifacts, unseen, tmp_path / "out", budget=4.0)
    assert res.success and res.timestamps
    preds = _predictions(tmp_path / "out")
    # the training labels of `unseen`: 60 examples, classes 0, 1, 2 in turn: 1/3 each
    np.testing.assert_allclose(preds[0], np.full((15, 3), 1 / 3), atol=1e-6)
    events = " | ".join(model.decision["events"])
    assert "no backbone can be built here" in events
    assert "class frequencies" in events
    assert model.decision["configuration_source"] == "class frequencies"


def test_a_learner_failing_in_train_degrades_to_the_next_configuration(tiny_artifacts, unseen, tmp_path,
                                                                       monkeypatch):
    import finetune.learner

    original = finetune.learner.FineTuneLearner.train

    def oom_for_raw_random(self, dataset, remaining_time_budget=None):
        if self.config["input_size"] == 32:  # the single best (alpha's incumbent): "out of memory"
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, dataset, remaining_time_budget)

    monkeypatch.setattr(finetune.learner.FineTuneLearner, "train", oom_for_raw_random)
    # no selector: the single best, then the probes-only configuration
    res, model = _run(tiny_artifacts, unseen, tmp_path / "out", selector_dir=tmp_path / "absent")
    assert res.success and res.timestamps
    events = " | ".join(model.decision["events"])
    assert "out of memory" in events and "degrading" in events
    assert model.decision["configuration_source"] == "probes only (no pretrained weights)"
    assert model.learner is not None and model.learner.config["input_size"] == 64
    assert len(_predictions(tmp_path / "out")) >= 2  # the probes-only learner predicted after the failure


def test_settings_and_artifacts_errors_name_the_file(tmp_path):
    with pytest.raises(ArtifactError, match="first_prediction"):
        SubmissionSettings(first_prediction="sometimes")
    (tmp_path / "submission.json").write_text(json.dumps({"first_predictions": "before-selection"}))
    with pytest.raises(ArtifactError, match="unknown setting.*first_predictions"):
        Artifacts(tmp_path).settings()
    with pytest.raises(ArtifactError, match="not a folder"):
        Artifacts(tmp_path / "nothing")


def test_missing_artifacts_folder_still_predicts(unseen, tmp_path):
    """No portfolio at all: the probes-only configuration, logged."""
    res, model = _run(tmp_path / "nowhere", unseen, tmp_path / "out", budget=4.0)
    assert res.success and res.timestamps
    assert "reading the artifacts failed" in model.decision["events"][0]
    assert model.decision["configuration_source"] == "probes only (no pretrained weights)"


def test_cheap_configs_are_valid():
    from finetune.config import validate_config

    for c in (CHEAP, CHEAP_B):
        validate_config(c)
    assert isinstance(MetaModel, type)


@pytest.mark.parametrize("order", ["before-selection", "after-selection"])
def test_simulated_clock_never_predicts_after_the_budget_and_is_deterministic(tiny_artifacts, unseen, tmp_path,
                                                                              order):
    """On the simulated clock (every cost, selection's included, charged from the timing
    table) the run is the same twice and no prediction comes after T."""
    from autodl.clock import SimulatedClock
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable

    timing = TimingTable.load(DEFAULT_TIMING)
    runs = []
    for i in range(2):
        res = run_ingestion(unseen, factory(tiny_artifacts, timing=timing,
                                            settings=SubmissionSettings(first_prediction=order, query_size=16)),
                            tmp_path / f"out{i}", time_budget=3.0, clock=SimulatedClock())
        assert res.success, res.error
        runs.append(res.timestamps)
    assert runs[0] == runs[1] and runs[0]
    assert max(runs[0]) <= 3.0
    # the selection was charged: after-selection's first prediction comes later than it costs
    # to decode and embed 16 examples
    if order == "after-selection":
        assert runs[0][0] > timing.forward_s("tf_efficientnet_lite0", 32) * 16


def test_accepts_plain_tf_data_datasets_as_the_organizers_ingestion_hands_over(tiny_artifacts, unseen):
    """The organizers' ingestion hands ``tf.data.Dataset`` objects without this project's
    ``autodl_source``: every example is decoded through TensorFlow; the model still selects,
    trains and predicts one row per test example."""
    from autodl.dataset import AutoDLDataset
    from autodl.ingestion import source_of

    ds = AutoDLDataset(unseen)
    d_train, d_test = ds.tf_dataset("train"), ds.tf_dataset("test")
    assert source_of(d_train) is None
    model = MetaModel(ds.metadata("train"), tiny_artifacts,
                      settings=SubmissionSettings(first_prediction="after-selection", query_size=16))
    # a budget large enough that the selection is never skipped for time, however loaded the
    # machine (a 30 s budget failed under a load of 8: the embedder's timing at construction
    # exceeded half of it); this test is about tf.data input, not about the budget rule
    model.train(d_train, remaining_time_budget=3600.0)
    preds = model.test(d_test, remaining_time_budget=3599.0)
    assert preds.shape == (15, 3) and np.isfinite(preds).all()
    assert model.decision["chosen_dataset"] in ("alpha", "beta")
    assert model.learner is not None and model._frequencies is not None
    np.testing.assert_allclose(model._frequencies, [1 / 3] * 3, atol=1e-6)


def test_selection_is_skipped_when_it_would_not_fit_in_the_budget(tiny_artifacts, unseen, tmp_path):
    """A selection expected to take more than half of what is left is not started: the
    single best goes on, and the decision says why (simulated clock: exact)."""
    from autodl.clock import SimulatedClock
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable

    models = []

    def make(meta, clock):
        models.append(factory(tiny_artifacts, timing=TimingTable.load(DEFAULT_TIMING),
                              settings=SubmissionSettings(first_prediction="after-selection", query_size=4096)
                              )(meta, clock))
        return models[-1]

    res = run_ingestion(unseen, make, tmp_path / "out", time_budget=2.0, clock=SimulatedClock())
    assert res.success and res.timestamps and max(res.timestamps) <= 2.0
    assert models[0].decision["fallback"].startswith("no time to select")
    assert models[0].decision["configuration_source"].startswith("single best")


def test_the_query_carries_the_raw_pixel_features_of_its_batch(tiny_artifacts, unseen):
    """The submission's query has the raw-pixel probe's features of the batch it decoded, row for
    row with its embeddings and as the training datasets' ``train_raw`` were made."""
    from autodl.dataset import AutoDLDataset
    from finetune.data import load_arrays
    from metafeatures.probe import raw_probe_features, raw_probe_score

    ds = AutoDLDataset(unseen)
    d_train = ds.tf_dataset("train")
    d_train.autodl_source = (ds, "train")  # as this project's ingestion hands it over
    model = MetaModel(ds.metadata("train"), tiny_artifacts,
                      settings=SubmissionSettings(first_prediction="after-selection", query_size=16))
    assert model._query(d_train).raw is None  # a selector that does not read them: not made, not charged
    model.selector.use_probe = "raw"
    query = model._query(d_train)
    assert query.raw is not None and query.raw.shape == (16, 3 * 16 * 16) and len(query.labels) == 16
    x, _ = load_arrays(d_train, (32, 32), 1, limit=16, seed=model.settings.seed)  # the batch the query decoded
    np.testing.assert_allclose(query.raw, raw_probe_features(x), rtol=1e-6)
    assert np.isfinite(raw_probe_score(query.raw, query.labels))


def _ship_descriptor_knn(art: Path, data: Path, novelty_threshold: float | None) -> None:
    """Replace the artifacts' selector with descriptor-knn fitted on the same two training sets
    (their descriptors; embeddings only for the novelty reference) and rewrite the checksums."""
    from metafeatures.descriptors import describe
    from metafeatures.features import DatasetFeatures
    from selector.registry import load_selector, make_selector
    from submission.artifacts import CHECKSUMS, CHECKSUMS_FORMAT, checksum_table

    old = load_selector(art / "selector")
    rng = np.random.default_rng(0)
    feats = [DatasetFeatures(name, rng.normal(size=(8, old.n_features_in_)), np.eye(3, dtype=np.float32)[[0, 1] * 4],
                             descriptors=describe(data / name), card=dict(old.embedding_card_))
             for name in ("alpha", "beta")]
    import shutil

    shutil.rmtree(art / "selector")
    make_selector("descriptor-knn").fit(feats).save(art / "selector")
    card_path = art / "selector" / "selector.json"
    card = json.loads(card_path.read_text())
    card["scores"] = {"fallback": {"confidence_threshold": 0.0, "novelty_threshold": novelty_threshold}}
    card_path.write_text(json.dumps(card))
    files = [p for p in art.rglob("*") if p.is_file() and p.name != CHECKSUMS]
    (art / CHECKSUMS).write_text(json.dumps({"format": CHECKSUMS_FORMAT, "files": checksum_table(art, files)}))


@pytest.mark.parametrize("novelty_threshold", [None, 1e9])
def test_a_selector_of_descriptors_alone_selects_without_an_embedding(tiny_artifacts, artifacts_copy, unseen, tmp_path,
                                                                      monkeypatch, novelty_threshold):
    """descriptor-knn reads only the descriptors: shipped without a novelty threshold, the
    submission builds no embedder and runs no network to select, and the simulated clock
    charges the selection next to nothing; with a novelty threshold to check, the batch is
    embedded as before (and its novelty decided on)."""
    from autodl.clock import SimulatedClock
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable
    from metafeatures.embeddings import Embedder

    _ship_descriptor_knn(artifacts_copy, tiny_artifacts.parent / "data", novelty_threshold)
    embedded = []
    real_embed = Embedder.embed
    monkeypatch.setattr(Embedder, "embed", lambda self, x: embedded.append(len(x)) or real_embed(self, x))
    timing = TimingTable.load(DEFAULT_TIMING)
    models = []

    def make(meta, clock):
        models.append(factory(artifacts_copy, timing=timing,
                              settings=SubmissionSettings(first_prediction="before-selection", query_size=16))(meta,
                                                                                                            clock))
        return models[-1]

    res = run_ingestion(unseen, make, tmp_path / "out", time_budget=3.0, clock=SimulatedClock())
    assert res.success, res.error
    d = models[0].decision
    assert d["selector"] == "descriptor-knn" and d["chosen_dataset"] in ("alpha", "beta") and d["fallback"] is None
    embedding_cost = timing.forward_s("tf_efficientnet_lite0", 32) * 16
    if novelty_threshold is None:
        assert models[0].embedder is None and not embedded and d["novelty"] is None
        assert d["selection_seconds"] < embedding_cost / 10
    else:
        assert models[0].embedder is not None and 16 in embedded and d["novelty"] is not None
        assert d["selection_seconds"] > embedding_cost
