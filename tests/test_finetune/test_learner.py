"""Tests of :class:`finetune.learner.FineTuneLearner` run through the ingestion loop.

Every run uses the :class:`~autodl.clock.SimulatedClock` with a small hand-made timing
table, so that its timestamps, its number of training steps and its predictions depend
on nothing but the seed (not on the load of the shared machine): no test here has a
timing threshold. The data are tiny synthetic datasets written with
:func:`autodl.writer.write_arrays`, with a learnable signal (a bright square whose
position depends on the class), plus the organizers' ``Monkeys`` sample (images of
varying size), skipped where ``../shared/autodl_samples`` is absent.

Each dataset is ingested once (module-scoped fixtures) and the run is checked by the
generic tests parametrized over :data:`RUNS` (shape and range of every prediction,
budget, ``done_training``, the ridge first prediction, the best-validation rule) and by
the tests specific to that kind of data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import flat_timing

from autodl.clock import SimulatedClock
from autodl.dataset import AutoDLDataset
from autodl.ingestion import IngestionResult, run_ingestion
from autodl.score_files import load_prediction, read_prediction_folder, score_folder
from autodl.scoring import nauc
from autodl.writer import write_arrays
from finetune.config import ConfigError
from finetune.learner import FineTuneLearner

BUDGET = 20.0
"""The time budget T of every run (simulated seconds)."""
T0 = 1.0
TRAIN_BATCH_S = 0.5
TEST_EXAMPLE_S = 0.001
# fewer (simulated) steps for the run with a bigger network
TIMING = flat_timing(TRAIN_BATCH_S, TEST_EXAMPLE_S, backbones={"tf_efficientnet_lite0": 2.0})
CHEAP = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
         "learning_rate": 0.01}
"""A configuration that trains in milliseconds per step on a CPU."""

RIDGE = "ridge on"
"""How the sources of the ridge models' predictions begin in ``learner.history``."""
N_TRAIN, N_TEST, SIDE, CLASSES = 60, 20, 16, 3


pytestmark = pytest.mark.usefixtures("torch_threads_1")


# --- synthetic data -------------------------------------------------------------------------

def _label_matrix(n: int, rng: np.random.Generator, multilabel: bool = False) -> np.ndarray:
    """Balanced one-hot labels, or multi-label rows with one or two classes."""
    y = np.zeros((n, CLASSES), np.float32)
    y[np.arange(n), rng.permutation(np.arange(n) % CLASSES)] = 1
    if multilabel:  # every other example gets a second class
        second = (y.argmax(1) + 1 + rng.integers(0, CLASSES - 1, n)) % CLASSES
        y[np.arange(0, n, 2), second[::2]] = 1
    return y


def _squares(y: np.ndarray, rng: np.random.Generator, channels: int = 3, frames: int | None = None,
             dense: bool = False) -> np.ndarray:
    """Dark noise with a bright 5x5 square at a class-dependent position per label present.

    ``[N, H, W, C]`` (``[N, T, H, W, C]`` with ``frames``), uint8, or float32 values
    around 0..100 when ``dense`` (not in [0, 1], as the organizers' MNIST).
    """
    n = len(y)
    t = frames or 1
    x = rng.normal(10, 10, (n, t, SIDE, SIDE, channels)) if dense else \
        rng.integers(0, 70, (n, t, SIDE, SIDE, channels)).astype(np.float64)
    corners = [(2, 2), (2, 9), (9, 5)]
    for i, row in enumerate(y):
        for k in np.flatnonzero(row):
            r, c = corners[k]
            x[i, :, r:r + 5, c:c + 5, :] = 100.0 if dense else 230
    x = x if frames else x[:, 0]
    return x.astype(np.float32) if dense else x.astype(np.uint8)


def _write(root: Path, name: str, *, channels: int = 3, frames: int | None = None, dense: bool = False,
           multilabel: bool = False, n_train: int = N_TRAIN, n_test: int = N_TEST, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    y_train, y_test = _label_matrix(n_train, rng, multilabel), _label_matrix(n_test, rng, multilabel)
    x_train = _squares(y_train, rng, channels, frames, dense)
    x_test = _squares(y_test, rng, channels, frames, dense)
    if multilabel:  # labels as lists of class indices
        labels_train = [np.flatnonzero(r).tolist() for r in y_train]
        labels_test = [np.flatnonzero(r).tolist() for r in y_test]
    else:
        labels_train, labels_test = y_train.argmax(1), y_test.argmax(1)
    path = root / name
    write_arrays(path, name, x_train, labels_train, x_test, labels_test, num_classes=CLASSES,
                 fmt="DENSE" if dense else "COMPRESSED")
    return path


@pytest.fixture(scope="module")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("learner_data")


# --- running the learner under the simulated clock ------------------------------------------

@dataclass
class Run:
    """One ingestion of a dataset by a :class:`FineTuneLearner`, and what it left."""

    dataset: AutoDLDataset
    out: Path
    result: IngestionResult
    learner: FineTuneLearner
    predictions: list[np.ndarray] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_test(self) -> int:
        return self.dataset.metadata("test").sample_count

    @property
    def output_dim(self) -> int:
        return self.dataset.metadata("train").output_dim


def ingest(dataset: Path | AutoDLDataset, out: Path, config: dict[str, Any] | None = None, *,
           seed: int = 0, prepare: Any = None, **learner_kwargs: Any) -> Run:
    """Run ``FineTuneLearner(config)`` on ``dataset`` through :func:`run_ingestion` with a
    simulated clock; ``prepare(learner, extra)`` may patch the learner after construction."""
    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    learners: list[FineTuneLearner] = []
    extra: dict[str, Any] = {}

    def factory(meta: Any, clock: Any) -> FineTuneLearner:
        learner = FineTuneLearner(meta, {**CHEAP, **(config or {})}, clock, t0=T0, timing=TIMING,
                                  device="cpu", seed=seed, **learner_kwargs)
        if prepare is not None:
            prepare(learner, extra)
        learners.append(learner)
        return learner

    result = run_ingestion(ds, factory, out, BUDGET, clock=SimulatedClock())
    assert result.success, result.error
    run = Run(ds, Path(out), result, learners[0], extra=extra)
    for k in range(result.num_predictions):
        path = run.out / f"{result.task_name}.predict_{k}"
        run.texts.append(path.read_text())
        run.predictions.append(load_prediction(path))
    return run


@pytest.fixture(scope="module")
def rgb_path(data_root: Path) -> Path:
    return _write(data_root, "rgb")


@pytest.fixture(scope="module")
def rgb_run(rgb_path: Path, data_root: Path) -> Run:
    """3-channel images, the cheap network, random flips."""
    return ingest(rgb_path, data_root / "out_rgb", {"augmentation": "flip"})


@pytest.fixture(scope="module")
def pretrained_run(rgb_path: Path, data_root: Path) -> Run:
    """3-channel images, the default pretrained backbone (EfficientNet-Lite0), SGD, plateau."""
    config = {"backbone": "tf_efficientnet_lite0", "optimizer": "SGD", "learning_rate": 0.025}
    return ingest(rgb_path, data_root / "out_pretrained", config)


@pytest.fixture(scope="module")
def gray_run(data_root: Path) -> Run:
    """1-channel images ``[N, H, W, 1]``, with test-time flips."""
    path = _write(data_root, "gray", channels=1)
    return ingest(path, data_root / "out_gray", {"test_time_flip": True})


@pytest.fixture(scope="module")
def rgba_run(data_root: Path) -> Run:
    """4-channel images: the learned 3x3 convolution adapter (``channel_adapter: conv3x3``),
    fast_autoaugment."""
    path = _write(data_root, "rgba", channels=4)

    def keep_adapter(learner: FineTuneLearner, extra: dict[str, Any]) -> None:
        conv = learner.net.adapter.conv
        extra["adapter_before"] = None if conv is None else conv.weight.detach().clone()

    return ingest(path, data_root / "out_rgba", {"augmentation": "fast_autoaugment", "channel_adapter": "conv3x3"},
                  prepare=keep_adapter)


@pytest.fixture(scope="module")
def multilabel_run(data_root: Path) -> Run:
    """Labels written as lists of class indices, some rows with two classes."""
    path = _write(data_root, "multilabel", multilabel=True)
    return ingest(path, data_root / "out_multilabel", {"lr_schedule": "cosine"})


def _video_run(root: Path, frames: int) -> Run:
    """Video ``[N, T, H, W, C]`` with T=6, sampled to ``frames_per_clip`` frames."""
    path = root / "video"
    if not path.exists():
        _write(root, "video", frames=6, n_train=40, n_test=12)
    run = ingest(path, root / f"out_video{frames}", {"frames_per_clip": frames})
    run.extra["frames_per_clip"] = frames
    return run


@pytest.fixture(scope="module")
def video2_run(data_root: Path) -> Run:
    return _video_run(data_root, 2)


@pytest.fixture(scope="module")
def video4_run(data_root: Path) -> Run:
    return _video_run(data_root, 4)


@pytest.fixture(scope="module")
def monkeys_run(monkeys: AutoDLDataset, data_root: Path) -> Run:
    """The organizers' Monkeys sample: JPEG images of varying size, 26 training examples."""
    return ingest(monkeys, data_root / "out_monkeys")


@pytest.fixture(scope="module")
def dense_run(data_root: Path) -> Run:
    """DENSE format: float values stored as they are (not in [0, 1]), 2 channels."""
    path = _write(data_root, "dense", channels=2, dense=True)
    return ingest(path, data_root / "out_dense", {"augmentation": "fast_autoaugment"})


@pytest.fixture(scope="module")
def tiny_run(data_root: Path) -> Run:
    """Fewer than 30 training examples: no validation split."""
    path = _write(data_root, "tiny", n_train=20, n_test=9)
    return ingest(path, data_root / "out_tiny")


RUNS = ["rgb_run", "pretrained_run", "gray_run", "rgba_run", "multilabel_run", "video2_run", "video4_run",
        "monkeys_run", "dense_run", "tiny_run"]
"""The runs checked by the generic tests (module-scoped fixtures: each dataset is ingested once)."""


@pytest.fixture(params=RUNS)
def any_run(request: pytest.FixtureRequest) -> Run:
    return request.getfixturevalue(request.param)


# --- what every run must show -----------------------------------------------------------------

def test_predictions_have_the_right_shape_and_range(any_run: Run):
    run = any_run
    assert run.result.num_predictions > 1
    assert len(run.predictions) == run.result.num_predictions
    for k, pred in enumerate(run.predictions):
        assert pred.shape == (run.n_test, run.output_dim), f"prediction {k}"
        assert np.all(np.isfinite(pred)), f"prediction {k}"
        assert pred.min() >= 0.0 and pred.max() <= 1.0, f"prediction {k}"


def test_budget_is_respected_and_done_training_ends_the_loop(any_run: Run):
    run, result = any_run, any_run.result
    assert all(0.0 <= t <= BUDGET for t in result.timestamps), result.timestamps
    assert result.timestamps == sorted(result.timestamps)
    # The same from start.txt, as the scoring program reads it.
    info, listed = read_prediction_folder(run.out)
    assert info["time_budget"] == BUDGET
    assert [k for k, _, _ in listed] == list(range(result.num_predictions))
    stamps = [t - info["start_time"] for _, t, _ in listed]
    assert all(t <= info["time_budget"] for t in stamps), stamps
    assert info["end_info"]["ingestion_success"] == 1
    # The learner, not the exhausted budget, ended the loop.
    assert run.learner.done_training
    assert result.duration < BUDGET
    assert BUDGET - result.timestamps[-1] > 0


def test_first_prediction_comes_from_the_ridge_model_before_any_step(any_run: Run):
    run = any_run
    history = run.learner.history
    assert len(history) == run.result.num_predictions
    assert history[0]["source"].startswith(RIDGE), history[0]
    assert history[0]["steps"] == 0
    # On the simulated clock a training step costs TRAIN_BATCH_S: none was charged before it.
    assert run.result.timestamps[0] < TRAIN_BATCH_S
    # Every ridge prediction precedes the network's, and no step was taken before it.
    sources = [h["source"] for h in history]
    ridges = [k for k, s in enumerate(sources) if s.startswith(RIDGE)]
    assert ridges == list(range(len(ridges)))
    assert all(history[k]["steps"] == 0 for k in ridges)
    if run.learner.tiny:  # no validation split: probes chosen by leave-pair-out, no fine-tuning
        assert run.learner.steps_done == 0
        assert all(s.startswith((RIDGE, "unchanged")) for s in sources), sources
        return
    # ... and then the network was trained.
    assert run.learner.steps_done > 0
    assert all(s.startswith(("network", "unchanged")) for s in sources[len(ridges):]), sources
    assert history[-1]["steps"] == run.learner.steps_done
    assert [h["elapsed"] for h in history] == pytest.approx(run.result.timestamps, abs=1e-6)


def test_history_records_validation_and_returns_the_best(any_run: Run):
    """Every test pass is scored (validation NAUC, or the probes' leave-one-out NAUC on the
    training examples when there is no validation split) and the best so far is returned."""
    run = any_run
    history = run.learner.history
    best = -math.inf
    for k, h in enumerate(history):
        if h["source"].startswith("unchanged"):  # no test pass: the earlier best again
            assert h["returned"] == "earlier best" and h["val_nauc"] is None, (k, h)
            assert run.texts[k] == run.texts[k - 1], f"prediction {k} is not the earlier best"
            continue
        score = h["val_nauc"]
        assert isinstance(score, float) and -1.0 <= score <= 1.0, h
        if score >= best:
            assert h["returned"] == "this", (k, h)
            best = score
        else:
            assert h["returned"] == "earlier best", (k, h)
            assert run.texts[k] == run.texts[k - 1], f"prediction {k} is not the earlier best"
    assert run.learner.best.score == best


# --- what each kind of data must show --------------------------------------------------------

def test_rgb_learning_is_visible(rgb_run: Run):
    learner = rgb_run.learner
    assert learner.net.adapter.conv is None and learner.in_chans == 3
    assert not learner.multilabel
    assert learner.x_val is not None and len(learner.x_val) == round(N_TRAIN * 0.1)
    assert len(learner.x_train) == N_TRAIN - len(learner.x_val)
    # Images of 16 px are enlarged to the floor of 32 px (input_size caps them at 32).
    assert learner.size == (32, 32) and tuple(learner.x_train.shape[1:]) == (1, 3, 32, 32)
    # The trained network itself (not only a ridge model) separates the classes.
    solution = rgb_run.dataset.solution()
    network = learner._probabilities(learner._logits(learner.x_test))
    assert nauc(solution, network) > 0.8
    assert max(h["val_nauc"] for h in learner.history if h["source"].startswith("network")) > 0.8
    # And so do the returned predictions, scored as the organizers' program does.
    scores = score_folder(rgb_run.out, rgb_run.dataset.solution_path, t0=T0)
    assert scores.num_predictions == rgb_run.result.num_predictions
    assert scores.nauc_scores[-1] > 0.8, scores.nauc_scores
    assert 0.0 < scores.score <= 1.0
    # Softmax over the classes (with tau): rows sum to 1.
    np.testing.assert_allclose(rgb_run.predictions[-1].sum(1), 1.0, atol=1e-4)


def test_pretrained_backbone(pretrained_run: Run):
    learner = pretrained_run.learner
    assert learner.net.backbone.pretrained  # the default backbone's ImageNet weights were loaded
    assert learner.config["backbone"] == "tf_efficientnet_lite0"
    assert learner.size == (32, 32)


def test_grayscale_images_are_copied_to_three_channels(gray_run: Run):
    learner = gray_run.learner
    assert learner.in_chans == 1 and learner.net.adapter.conv is None
    assert learner.net.adapter(torch.rand(2, 1, 8, 8)).shape == (2, 3, 8, 8)
    assert tuple(learner.x_train.shape[2:3]) == (1,)
    assert learner.config["test_time_flip"]


def test_four_channels_go_through_the_learned_adapter(rgba_run: Run):
    learner = rgba_run.learner
    conv = learner.net.adapter.conv
    assert learner.in_chans == 4
    assert isinstance(conv, torch.nn.Conv2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (4, 3, (3, 3))
    assert tuple(learner.x_train.shape[2:3]) == (4,)
    # The adapter is trained with the network.
    before = rgba_run.extra["adapter_before"]
    assert before is not None and not torch.equal(before, conv.weight.detach())


def test_multilabel_is_detected_and_uses_sigmoid(multilabel_run: Run):
    learner = multilabel_run.learner
    assert learner.multilabel
    solution = multilabel_run.dataset.solution()
    assert (solution.sum(1) > 1).any()  # the labels were written as index lists of two classes
    # Sigmoid, not softmax: zero logits give 0.5 for every class.
    probs = learner._probabilities(torch.zeros(2, CLASSES))
    np.testing.assert_allclose(probs, 0.5)
    # Rows need not sum to 1 (neither the ridge's first prediction nor the network's).
    for k in (0, len(multilabel_run.predictions) - 1):
        sums = multilabel_run.predictions[k].sum(1)
        assert np.abs(sums - 1).max() > 1e-2, (k, sums)


@pytest.mark.parametrize("name", ["video2_run", "video4_run"])
def test_video_clips_are_sampled_to_frames_per_clip(name: str, request: pytest.FixtureRequest):
    video_run = request.getfixturevalue(name)
    learner, frames = video_run.learner, video_run.extra["frames_per_clip"]
    assert video_run.dataset.metadata("train").get_sequence_size() == 6
    assert learner.frames == frames
    assert learner.x_train.shape[1] == frames and learner.x_test.shape[1] == frames
    assert video_run.n_test == 12


def test_variable_size_images(monkeys_run: Run):
    learner = monkeys_run.learner
    _, h, w, _ = monkeys_run.dataset.metadata("train").get_tensor_shape()
    assert h <= 0 or w <= 0  # the sizes vary from example to example
    assert max(learner.size) == 32  # the larger side brought to input_size
    assert tuple(learner.x_train.shape[-2:]) == learner.size == tuple(learner.x_test.shape[-2:])
    assert learner.x_val is None  # 26 training examples: no validation split


def test_dense_float_data(dense_run: Run):
    learner = dense_run.learner
    meta = dense_run.dataset.metadata("train")
    assert meta.format == "DENSE" and not meta.is_compressed()
    assert learner.x_train.dtype == torch.float32
    # Scaled to [0, 1] with the training range (the stored values reach about 100).
    stored = dense_run.dataset.load_numpy("train").x
    assert stored.dtype == np.float32 and stored.max() > 50
    assert float(learner.x_train.min()) >= 0.0 and float(learner.x_train.max()) <= 1.0
    # 2 channels: the backbone's own first convolution adapted to them (channel_adapter: stem)
    from finetune.backbones import get_first_conv

    assert learner.in_chans == 2 and learner.net.adapter.conv is None
    assert get_first_conv(learner.net.backbone).in_channels == 2


def test_tiny_dataset_has_no_validation_split(tiny_run: Run):
    learner = tiny_run.learner
    assert learner.x_val is None and learner.y_val is None
    assert len(learner.x_train) == 20
    assert learner.steps_done == 0  # probes only: nothing to choose checkpoints with
    assert learner.best is not None and math.isfinite(learner.best.score)


# --- the best-validation rule, constructed -----------------------------------------------------

def test_returned_predictions_are_the_best_validation_ones(data_root: Path, tmp_path: Path):
    """Validation scores scripted as 0.5, 0.9, 0.2, 0.3, 0.95, then 0: each test call must
    return the test predictions of the best score so far."""
    path = data_root / "rgb_best"
    if not path.exists():
        _write(data_root, "rgb_best", seed=1)
    scripted = [0.5, 0.9, 0.2, 0.3, 0.95]

    def script(learner: FineTuneLearner, extra: dict[str, Any]) -> None:
        calls = iter(scripted)
        learner._select_nauc = lambda labels, probabilities: next(calls, 0.0)
        learner.blend_probe = False

    run = ingest(path, tmp_path / "out", prepare=script)
    passes = [h for h in run.learner.history if not h["source"].startswith("unchanged")]
    history = run.learner.history
    n = len(passes)
    assert n > len(scripted) + 1
    assert [h["val_nauc"] for h in passes] == scripted + [0.0] * (n - len(scripted))
    assert [h["returned"] for h in history[:6]] == ["this", "this", "earlier best", "earlier best", "this",
                                                    "earlier best"]
    assert run.texts[1] != run.texts[0]                    # 0.9 beats the ridge's 0.5
    assert run.texts[2] == run.texts[1] == run.texts[3]    # 0.2 and 0.3 keep 0.9's
    assert run.texts[4] != run.texts[1]                    # 0.95 is new
    assert all(text == run.texts[4] for text in run.texts[5:])
    assert run.learner.best.score == 0.95
    np.testing.assert_allclose(run.predictions[-1], run.learner.best.test, rtol=1e-5, atol=1e-6)


# --- refusals ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_meta(data_root: Path) -> Any:
    path = data_root / "meta_only"
    if not path.exists():
        _write(data_root, "meta_only", n_train=6, n_test=3)
    return AutoDLDataset(path).metadata("train")


def test_simulated_clock_without_timing_table_is_refused(train_meta: Any, data_root: Path, tmp_path: Path):
    with pytest.raises(ValueError, match="simulated clock needs a timing table"):
        FineTuneLearner(train_meta, CHEAP, SimulatedClock())
    # Through the ingestion loop: the run fails before its start, with that message.
    result = run_ingestion(data_root / "meta_only", lambda meta, clock: FineTuneLearner(meta, CHEAP, clock),
                           tmp_path, BUDGET, clock=SimulatedClock())
    assert not result.success and result.num_predictions == 0
    assert "ValueError" in result.error and "timing table" in result.error


@pytest.mark.parametrize(("change", "name"), [
    ({"batch_size": 33}, "batch_size"),
    ({"learning_rat": 0.01}, "learning_rat"),
    ({"backbone": "resnet50"}, "backbone"),
    ({"pretrained": "no"}, "pretrained"),
])
def test_invalid_config_is_refused_naming_the_parameter(train_meta: Any, change: dict[str, Any], name: str):
    with pytest.raises(ConfigError) as info:
        FineTuneLearner(train_meta, {**CHEAP, **change}, SimulatedClock(), timing=TIMING)
    assert info.value.field == name
    assert name in str(info.value)


# --- reproducibility -------------------------------------------------------------------------

def test_simulated_runs_are_reproducible(data_root: Path, tmp_path: Path):
    path = data_root / "rgb_repeat"
    if not path.exists():
        _write(data_root, "rgb_repeat", seed=2)
    config = {"augmentation": "fast_autoaugment", "dropout": 0.3}
    first = ingest(path, tmp_path / "a", config, seed=7)
    second = ingest(path, tmp_path / "b", config, seed=7)
    assert first.result.timestamps == second.result.timestamps
    assert first.learner.steps_done == second.learner.steps_done
    assert [h["steps"] for h in first.learner.history] == [h["steps"] for h in second.learner.history]
    for a, b in zip(first.predictions, second.predictions, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-5)
    # Another seed: another split, other batches, other weights, other predictions.
    other = ingest(path, tmp_path / "c", config, seed=8)
    assert not np.allclose(other.predictions[-1], first.predictions[-1], atol=1e-5)


# --- pretrained: false ------------------------------------------------------------------------

def test_pretrained_false_builds_without_reading_weights(train_meta: Any, monkeypatch: pytest.MonkeyPatch):
    from finetune import backbones
    from finetune.models import resolve_model

    def no_weights(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"pretrained weights looked up: {args}")

    monkeypatch.setattr(backbones, "find_weights", no_weights)
    monkeypatch.setattr(backbones, "_read_state_dict", no_weights)
    learner = FineTuneLearner(train_meta, {**CHEAP, "backbone": "tf_efficientnet_lite0", "pretrained": False},
                              SimulatedClock(), timing=TIMING, device="cpu")
    assert learner.net.backbone.pretrained is False
    # baseline:scratch: ResNet-18 from random initialisation, otherwise the default configuration.
    factory = resolve_model("baseline:scratch", t0=T0, timing=TIMING, device="cpu")
    scratch = factory(train_meta, SimulatedClock())
    assert scratch.config["backbone"] == "resnet18" and scratch.config["pretrained"] is False
    assert scratch.net.backbone.pretrained is False
    # The patch is on the path that reads weights: asking for them fails.
    with pytest.raises(AssertionError, match="pretrained weights looked up"):
        FineTuneLearner(train_meta, {**CHEAP, "backbone": "tf_efficientnet_lite0"}, SimulatedClock(),
                        timing=TIMING, device="cpu")


# --- the softmax temperature ------------------------------------------------------------------

def test_tau_divides_the_logits_in_the_loss_and_at_prediction(train_meta: Any):
    """As AutoCLINT: logits / tau inside the training loss and the predicted probabilities."""
    import torch.nn.functional as F

    learner = FineTuneLearner(train_meta, {**CHEAP, "tau": 4.0}, SimulatedClock(), timing=TIMING, device="cpu")
    logits = torch.tensor([[4.0, 0.0, -4.0], [0.0, 8.0, 0.0]])
    targets = torch.tensor([[1.0, 0, 0], [0, 0, 1.0]])
    torch.testing.assert_close(learner._loss(logits, targets), F.cross_entropy(logits / 4.0, torch.tensor([0, 2])))
    np.testing.assert_allclose(learner._probabilities(logits), torch.softmax(logits / 4.0, 1).numpy(), rtol=1e-6)
    learner.multilabel = True
    torch.testing.assert_close(learner._loss(logits, targets),
                               F.binary_cross_entropy_with_logits(logits / 4.0, targets))
