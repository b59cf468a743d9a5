"""One fine-tuning configuration trained under the ALC budget, with anytime predictions.

:class:`FineTuneLearner` has the challenge's ``Model`` interface (``train``, ``test``,
``done_training``) and is what BOHB evaluates, what the cost matrix is made of and what
the submission ships. Its strategy follows the 2019 winner (AutoCLINT: Baek, Kim, Kim &
Lim, "AutoCLINT: The Winning Method in AutoCV Challenge 2019", 2020) and Freiburg's
portfolio (Stoll et al., AutoDL 2019), with ZAP's anytime knobs in the configuration
(Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022):

1. **The first predictions come as early as possible** (:mod:`finetune.probe`). The
   first ``train`` call decodes the training data once (a seeded subset stratified by
   class when there are more than ``max_train_examples``) and fits the first ridge probe
   of the configuration's ``probes`` plan: on downsampled raw pixels (nearly free), on
   random ReLU features of them, on the pretrained backbone's embeddings of
   ``probe_examples`` examples. Each is followed by a test call; no gradient step is
   needed before any of them. Where the training set is costly to decode (large images,
   videos), a *quick start* comes first (:data:`QUICK_START_PER_CLASS`): a raw-pixel probe
   on a few examples per class, decoded first; the rest is decoded by the next call.
2. **Then the network is fine-tuned in chunks** (unless ``finetune`` is false) whose ends
   are spaced evenly in transformed ALC time (:mod:`finetune.schedule`); after each chunk
   the test set is predicted. It starts once the plan's probes are done, or earlier where
   ``probe_share`` caps the share of the budget the probes may use (a probe after the
   first that would end after the cap is skipped with the rest of the plan; 1.0, the
   default, is no cap). ``train_layers`` chooses what is fine-tuned in a pretrained
   network (:meth:`finetune.network.FineTuneNet.set_train_layers`; default everything).
3. **A held-out validation split chooses what is returned:** each test call returns the
   test predictions of the best validation NAUC so far (a ridge probe's, a network
   checkpoint's, or their blend, both calibrated on the validation split by
   :mod:`finetune.calibration`). With fewer than :data:`MIN_VALIDATION` training examples
   there is no validation split: the probes are chosen by their exact leave-one-out
   NAUC, and the network, which nothing could validate, is not fine-tuned.
4. **Every decision depends on the clock only.** Durations are read from the clock the
   learner is given, and every operation (decoding, each probe's fit and prediction,
   embedding passes, training steps with the configuration's optimizer and augmentation,
   test passes, writing predictions) is charged to it with :meth:`~autodl.clock.Clock.charge`
   at what the timing table (:class:`finetune.timing.TimingTable`) says it costs, priced
   lazily: a :class:`~autodl.clock.SimulatedClock` advances by the price, so that a
   simulated run is the same, result for result, whatever the load of the machine; a
   wall or CPU clock ignores it (and needs no table). Durations planned before the work
   is done come from :meth:`~autodl.clock.Clock.estimate` likewise: the price on the
   simulated clock, what was measured so far on the others. A chunk starts only when it,
   its test pass and a safety margin fit in what remains; ``done_training`` is set when
   nothing more fits, and a test call without time for a pass returns the best
   predictions it already has.

The learner changes no process-wide state: its random numbers come from its own
generators (PyTorch's global generator is forked and restored around the calls that
draw from it), and it leaves thread settings to its caller.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodl.clock import Clock, WallClock
from autodl.metadata import AutoDLMetadata
from finetune.data import load_arrays
from finetune.probe import ProbeStage
from finetune.schedule import AnytimeSchedule

logger = logging.getLogger(__name__)

MIN_VALIDATION = 30
"""Below this many training examples there is no validation split (see the module docstring)."""

RANDOM_FEATURES = 1024
"""Width of the random ReLU features of the ``random`` probe."""

RAW_PROBE_EXAMPLES = 4000
"""Examples the raw-pixel and random-feature probes are fitted on, at most."""

LEARNER_VERSION = 2
"""Version of what the learner does with a configuration: raise it whenever a change makes the
same configuration, data, seed and timing table give another result (another learning curve on
the simulated clock), so that stored evaluations can tell that they were made by another learner.
Results of evaluations made by an earlier version (held-out benchmark rows, cost-matrix cells)
are not comparable with this version's: they are computed again, not reused (a stored row
without ``learner_version`` counts as version 1).
1: partial fine-tuning (``train_layers``) and the probes' share of the budget (``probe_share``),
both at their defaults (``all``, 1.0) doing what the learner did before they existed.
2: the quick start (:data:`QUICK_START_PER_CLASS`): where the training set is costly to decode,
the first prediction comes from a raw-pixel probe fitted on a small stratified subset, decoded
first; the rest is decoded by the next ``train`` call, and everything after sees the whole set."""

QUICK_START_PER_CLASS = 5
"""The quick start's subset: this many training examples per class (label, for multi-label
data), stratified, at most :data:`QUICK_START_MAX_EXAMPLES`. Where the training set holds at
least 4 times as many examples and at least :data:`QUICK_START_MEGAVALUES` million stored values,
the first ``train`` call decodes only the subset and fits a raw-pixel probe on it (penalty by
leave-one-out; a provisional model that any later one replaces); the first ``test`` call
predicts with it, and the second ``train`` call decodes the rest of the training set and goes on
as without the quick start. Only for compressed data from this project's ingestion (the
records to decode can be chosen before decoding) whose configuration plans the raw-pixel probe
first. Measured with the portfolio's single best (protocol ``mini``, simulated clock, seed 0)
on the 10 held-out datasets: the first prediction on tuxpaint_stamps (800 colour pictures of
128-256 px) at 0.87 s instead of 2.85 s (0.73 s of it is the test set's decoding), the median
over the 10 at 0.151 s instead of 0.252 s, the mean ALC 0.5538 instead of 0.5488 (6 datasets
with the quick start: +0.018 gimp_textures, +0.020 earth_landcover, -0.0001 spin_zoom, where
raw pixels tell nothing)."""
QUICK_START_MAX_EXAMPLES = 200
"""At most this many examples in the quick start's subset."""
QUICK_START_MEGAVALUES = 2.0
"""The quick start only where the training set holds at least this many million stored values
(examples x frames x height x width x channels, at the stored size): below, decoding it all
costs little (about 0.05 s per million PNG values on the reference 2-core CPU)."""

class Stage(enum.Enum):
    """Where the learner is in its plan."""

    PROBES = "probes"
    """Fitting the probes of the plan, one per ``train`` call, each tested by the next ``test``."""
    NETWORK = "network"
    """Fine-tuning the network in chunks."""
    DONE = "done"
    """Nothing more fits, or nothing more is planned."""


class _OutOfTime(Exception):
    """A test pass would end after the budget."""


@dataclass
class _Timer:
    """Running estimate (exponential moving average) of a duration, read from the clock."""

    value: float | None = None
    alpha: float = 0.5

    def update(self, seconds: float) -> None:
        self.value = seconds if self.value is None else (1 - self.alpha) * self.value + self.alpha * seconds


@dataclass
class _Candidate:
    """Predictions that a test call may return: test and selection-set probabilities and
    the selection NAUC (validation split, or leave-one-out on tiny data)."""

    test: np.ndarray
    select: np.ndarray | None
    score: float
    source: str


def _median_shape(metadata: AutoDLMetadata, dataset: Any) -> tuple[int, int, int]:
    """``(frames, H, W)`` of the stored examples: the metadata's, or the median of the first
    examples where it varies."""
    t, h, w, _ = metadata.get_tensor_shape()
    if h > 0 and w > 0 and t > 0:
        return t, h, w
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        return tuple(int(v) for v in src[0].shape_summary(src[1], limit=64)["median"])  # type: ignore[return-value]
    shapes = [np.asarray(x).shape[:3] for x, _ in dataset.take(64).as_numpy_iterator()]
    return tuple(int(v) for v in np.median(np.asarray(shapes), 0))  # type: ignore[return-value]


def training_size(h: int, w: int, cap: int, floor: int = 32) -> tuple[int, int]:
    """``(H, W)`` to train at: the larger side brought into ``[min(floor, cap), cap]``, aspect
    ratio kept. Pretrained networks see little in an 8x8 image, so small images are
    enlarged to ``floor`` (the configuration's ``min_input_size``); large ones shrunk to
    ``cap`` (its ``input_size``)."""
    side = max(h, w)
    scale = min(cap, max(min(floor, cap), side)) / side
    return max(8, round(h * scale)), max(8, round(w * scale))


def _data_format(metadata: AutoDLMetadata, dataset: Any) -> str:
    """``png``, ``jpeg`` or ``dense``: what decoding the data costs like."""
    if not metadata.is_compressed():
        return "dense"
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        for raw in src[0].iter_raw(src[1], limit=1):
            return "jpeg" if raw.frames[0][:2] == b"\xff\xd8" else "png"
    return "jpeg"


class FineTuneLearner:
    """Fine-tunes one configuration under the time budget (the challenge's ``Model`` interface).

    Parameters
    ----------
    metadata:
        The train set's metadata.
    config:
        A fine-tuning configuration (see :mod:`finetune.config`); validated here.
    clock:
        The ingestion's clock; every duration the learner plans with is read from it, and
        every operation is charged to it at ``timing``'s price (only a
        :class:`~autodl.clock.SimulatedClock` advances by it; see the module docstring).
    t0:
        The ALC's t0 (seconds); default T/20 (the ratio of both protocols).
    timing:
        A :class:`~finetune.timing.TimingTable`; required with a simulated clock, which
        it must be able to price (checked here); never consulted with another clock.
    device:
        ``"cuda"``, ``"cpu"`` or None (CUDA when available).
    num_predictions:
        Test calls planned over the budget (evenly spaced in transformed time); default:
        the configuration's ``num_predictions``.
    max_train_examples:
        Training examples decoded at most (a seeded subset stratified by class beyond).
    validation_fraction:
        Share of the training examples held out to choose checkpoints (at most 256).
    seed:
        Seed of the subset, the splits, batches, augmentation, probes and initialisation.
    blend_probe:
        Also consider the blend of the network's and the best ridge probe's calibrated
        probabilities at each test call (kept when its validation NAUC is higher).
    """

    def __init__(self, metadata: AutoDLMetadata, config: Mapping[str, Any], clock: Clock | None = None, *,
                 t0: float | None = None, timing: Any = None, device: str | None = None,
                 num_predictions: int | None = None, max_train_examples: int | None = 5000,
                 validation_fraction: float = 0.1, seed: int = 0, blend_probe: bool = True):
        import torch

        from finetune.config import validate_config

        self.config = validate_config(config)
        self.metadata = metadata
        self.clock = clock or WallClock()
        # the one place the clock's kind matters outside the clock: a clock that advances by
        # prices needs a table that can price this configuration, checked before anything runs
        simulated = bool(getattr(self.clock, "simulated", False))
        if simulated and timing is None:
            raise ValueError("a simulated clock needs a timing table (timing=TimingTable.load(...))")
        self.timing = timing
        self.t0 = t0
        self.num_predictions = int(num_predictions or self.config["num_predictions"])
        self.max_train_examples = max_train_examples
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.blend_probe = blend_probe
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        self.rng = np.random.default_rng(seed)  # subset, splits, batches, augmentation
        self._probe_rng = np.random.default_rng([seed, 1])  # the probes' samples: their own stream
        self._torch_seeds = np.random.default_rng([seed, 2])  # seeds of PyTorch's generator, per use
        self.output_dim = metadata.get_output_size()
        self.in_chans = metadata.get_num_channels()
        self.frames = 1 if metadata.get_sequence_size() == 1 else int(self.config["frames_per_clip"])
        if simulated:
            timing.check(self.config, frames=self.frames)

        with self._torch_rng():
            self.net = self._build_network().to(self.device)
        if self.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = self._make_optimizer()
        self._warm_up()

        # --- state of the run ----------------------------------------------------------------
        self.done_training = False
        self.stage = Stage.PROBES
        self.probe_plan: list[ProbeStage] = ProbeStage.plan(self.config["probes"])
        # fitted by the last train call, tested by the next test call
        self.pending_probe: ProbeStage | None = None
        self._probe_started: float | None = None  # clock time the last probe's fit began (probe_share)
        self.probes: dict[ProbeStage, Any] = {}
        self._random_features: Any = None
        # the pending probe's (selection-set probabilities, labels): validation, or leave-one-out
        self._probe_select: tuple[np.ndarray, np.ndarray] | None = None
        # the quick start (QUICK_START_PER_CLASS): (records the training set is decoded from,
        # positions of the subset among them, its decoded x and y), until the rest is decoded
        self._quick: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._quick_probe: Any = None  # its probe, until its test call
        self._quick_test_features: Any = None  # the test set's raw pixels it computed, for the raw probe's test
        self.time_budget: float | None = None
        self.schedule: AnytimeSchedule | None = None
        self._anchor: tuple[float, float] = (0.0, 0.0)
        self.size: tuple[int, int] | None = None
        self.source_shape: tuple[int, int, int] | None = None
        self.data_format = "png"
        self.x_train = self.y_train = self.x_val = self.y_val = self.x_test = None
        self.n_examples = 0
        self.multilabel = False
        self._dense_range: tuple[float, float] | None = None
        self.step_time = _Timer()
        self.test_example_time = _Timer()
        self.steps_done = 0
        self._steps_at_last_test = -1
        self._total_steps_estimate = 1.0
        self.best: _Candidate | None = None
        self.best_probe: _Candidate | None = None
        self.history: list[dict[str, Any]] = []
        self._plateau_best = -math.inf
        self._plateau_bad = 0
        self._lr_scale = 1.0

    # --- set-up -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _torch_rng(self) -> Iterator[None]:
        """Draw from PyTorch's global generator seeded from this learner's own stream, and
        give the global generator back as it was (initialisation, dropout)."""
        import torch

        devices = [self.device] if self.cuda else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(int(self._torch_seeds.integers(2 ** 31)))
            yield

    def _build_network(self) -> Any:
        from finetune.backbones import create_backbone
        from finetune.network import FineTuneNet

        c = self.config
        # pretrained: true means "the backbone's pretrained weights where it has them"
        pretrained = None if c["pretrained"] else False
        # built for RGB; FineTuneNet adapts its first convolution to the data's channels
        backbone = create_backbone(c["backbone"], pretrained=pretrained, num_classes=0)
        net = FineTuneNet(backbone, self.in_chans, self.output_dim, c["dropout"],
                          channel_adapter=c["channel_adapter"], temporal=c["temporal"], frames=self.frames)
        # train_layers acts only where the space makes it active: a network with pretrained
        # weights that is fine-tuned (validate_config keeps a value given for an inactive one)
        if c["train_layers"] != "all" and c["finetune"] and backbone.pretrained:
            net.set_train_layers(c["train_layers"])
        return net

    def _make_optimizer(self) -> Any:
        import torch

        c = self.config
        params = self.net.trainable_parameters()  # all of them unless train_layers freezes some
        if c["optimizer"] == "SGD":
            return torch.optim.SGD(params, lr=c["learning_rate"], momentum=0.9, nesterov=True,
                                   weight_decay=c["weight_decay"])
        return torch.optim.Adam(params, lr=c["learning_rate"], weight_decay=c["weight_decay"])

    def _warm_up(self) -> None:
        """One forward/backward pass on a dummy batch: pays one-off costs (lazy imports,
        allocator, kernels) while the model is constructed, outside the budget."""
        import torch

        x = torch.zeros(2, self.frames, self.in_chans, 32, 32, dtype=torch.uint8, device=self.device)
        state = {k: v.clone() for k, v in self.net.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        with self._torch_rng(), self._autocast():
            loss = self.net(x).float().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.net.load_state_dict(state)
        self.optimizer.load_state_dict(opt_state)

    def _autocast(self) -> Any:
        import torch

        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- time -------------------------------------------------------------------------------
    def _start_call(self, remaining: float) -> None:
        """Anchor the budget: ``remaining`` seconds were left at the clock's present time."""
        self._anchor = (self.clock.now(), remaining)

    def _elapsed(self) -> float:
        """Seconds of the budget spent so far (from the anchor of the current call)."""
        start, remaining = self._anchor
        return self.time_budget - (remaining - (self.clock.now() - start))

    def _forward_cost(self, images: int) -> float:
        """The timing table's seconds of an eval-mode forward pass over ``images`` frames."""
        return self.timing.forward_s(self.config["backbone"], max(self.size)) * images

    # --- data -------------------------------------------------------------------------------
    def _inspect(self, dataset: Any) -> None:
        """The stored shape, the size to train at and the storage format of the training set."""
        c = self.config
        self.source_shape = _median_shape(self.metadata, dataset)
        self.size = training_size(*self.source_shape[1:], cap=int(c["input_size"]), floor=int(c["min_input_size"]))
        self.data_format = _data_format(self.metadata, dataset)

    def _load_train(self, dataset: Any) -> None:
        import torch

        from autodl.labels import is_multilabel, stratified_split

        if self._quick is None:
            if self.size is None:  # (the quick start may have looked and found it does not apply)
                self._inspect(dataset)
            x, y = load_arrays(dataset, self.size, self.frames, limit=self.max_train_examples, seed=self.seed)
            self._charge_decoding(len(x))
        else:  # the quick start decoded part of it: decode the rest, put the whole together
            records, part, x_part, y_part = self._quick
            self._quick = None
            rest = np.setdiff1d(np.arange(len(records)), part)
            x_rest, y_rest = load_arrays(dataset, self.size, self.frames, indices=records[rest])
            self._charge_decoding(len(x_rest))
            x = np.empty((len(records), *x_part.shape[1:]), x_part.dtype)
            y = np.empty((len(records), *y_part.shape[1:]), y_part.dtype)
            x[part], y[part], x[rest], y[rest] = x_part, y_part, x_rest, y_rest
        self.multilabel = is_multilabel(y)
        n = self.n_examples = len(x)
        n_val = min(256, int(round(n * self.validation_fraction))) if n >= MIN_VALIDATION else 0
        if n_val:  # stratified, so that a rare class is not left out of training
            train, val = stratified_split(y, n_val, seed=self.seed)
        else:
            train, val = np.arange(n), np.arange(0)
        self.x_train, self.y_train = self._to_tensor(x[train]), torch.from_numpy(y[train]).to(self.device)
        if n_val:
            self.x_val, self.y_val = self._to_tensor(x[val]), y[val]
        else:
            self.probe_plan = self.probe_plan or [ProbeStage.RAW]
            logger.info("%d training examples (< %d): no validation split; probes chosen by leave-one-out, "
                        "no fine-tuning", n, MIN_VALIDATION)
        logger.info("train %d, validation %d examples at %dx%d, %d frame(s), %s", len(train), n_val,
                    *self.size, self.frames, "multi-label" if self.multilabel else "multi-class")

    def _charge_decoding(self, n: int) -> None:
        """Charge decoding ``n`` examples of the stored shape and format."""
        def price() -> float:
            t, h, w = self.source_shape
            return self.timing.decode_s(self.data_format, n, n * t * h * w * self.in_chans / 1e6)

        self.clock.charge("decode", price)

    def _quick_start(self, dataset: Any) -> bool:
        """The quick start where it applies (see :data:`QUICK_START_PER_CLASS`): decode a
        stratified subset of the training set and fit a raw-pixel probe on it for the next test
        call. False, with nothing decoded, where it does not apply."""
        import torch

        from autodl.ingestion import source_of
        from autodl.labels import is_multilabel, stratified_subset
        from finetune.data import decoded_indices
        from finetune.probe import RidgeProbe

        if (not self.probe_plan or self.probe_plan[0] is not ProbeStage.RAW
                or not self.metadata.is_compressed()):
            return False
        records = decoded_indices(dataset, self.max_train_examples, self.seed)
        if records is None:  # not this project's ingestion: the records cannot be chosen
            return False
        n, m = len(records), min(QUICK_START_MAX_EXAMPLES, QUICK_START_PER_CLASS * self.output_dim)
        if n < max(MIN_VALIDATION, 4 * m):
            return False
        self._inspect(dataset)
        t, h, w = self.source_shape
        if n * t * h * w * self.in_chans / 1e6 < QUICK_START_MEGAVALUES:
            return False
        ds, subset = source_of(dataset)
        labels = ds.labels(subset)[records]
        part = stratified_subset(labels, m, self.seed)  # positions among the records
        x, y = load_arrays(dataset, self.size, self.frames, indices=records[part])
        self._charge_decoding(len(x))
        self.multilabel = is_multilabel(labels)
        feats = self._probe_features(ProbeStage.RAW, self._to_tensor(x))
        probe = RidgeProbe(multilabel=self.multilabel).fit(feats, torch.from_numpy(y).to(self.device))
        self.clock.charge("ridge fit", lambda: self.timing.ridge_s(len(x), feats.shape[1], self.output_dim))
        self._quick, self._quick_probe, self.pending_probe = (records, part, x, y), probe, ProbeStage.QUICK
        logger.info("quick start: a ridge probe on raw pixels of %d of the %d training examples (leave-one-out "
                    "NAUC %.4f, penalty %g); the rest is decoded by the next call", len(x), n,
                    probe.validation_nauc_, probe.alpha_)
        return True

    def _test_quick_probe(self) -> _Candidate:
        """The quick start's predictions: provisional (score -inf), so that any later model's
        replace them, in this learner and in the submission's choice among learners."""
        feats = self._probe_features(ProbeStage.RAW, self.x_test)
        probs = self._quick_probe.predict_proba(feats)
        self.clock.charge("ridge predict",
                          lambda: self.timing.ridge_s(0, feats.shape[1], self.output_dim, n_eval=len(feats)))
        self._quick_probe, self._quick_test_features = None, feats
        return _Candidate(probs, None, -math.inf, f"ridge on {ProbeStage.QUICK.description}")

    def _to_tensor(self, x: np.ndarray) -> Any:
        """``[N, T, H, W, C]`` numpy -> ``[N, T, C, H, W]`` tensor on the device (uint8 kept)."""
        import torch

        if x.dtype != np.uint8:  # dense data: scale to [0, 1] with the training range
            if self._dense_range is None:
                lo, hi = float(x.min()), float(x.max())
                self._dense_range = (lo, hi - lo if hi > lo else 1.0)
            x = ((x - self._dense_range[0]) / self._dense_range[1]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))).to(self.device)

    @property
    def tiny(self) -> bool:
        """Too few examples for a validation split."""
        return self.x_val is None

    # --- prediction helpers -----------------------------------------------------------------
    def _batches(self, x: Any, batch: int = 128) -> Iterator[Any]:
        for i in range(0, len(x), batch):
            yield x[i:i + batch]

    def _embed(self, x: Any) -> Any:
        """Pooled features of clips ``[N, T, C, H, W]`` (averaged over frames), eval mode."""
        import torch

        self.net.eval()
        out = []
        with torch.no_grad(), self._autocast():
            for xb in self._batches(x):
                b, t = xb.shape[:2]
                out.append(self.net.embed(xb.flatten(0, 1)).float().view(b, t, -1).mean(1))
        self.clock.charge("forward", lambda: self._forward_cost(len(x) * self.frames))
        return torch.cat(out)

    def _logits(self, x: Any, stop_at: float | None = None) -> Any:
        """Logits of clips ``x``; raises :class:`_OutOfTime` once ``stop_at`` seconds are spent."""
        import torch

        self.net.eval()
        out = []
        flips = 2 if self.config["test_time_flip"] else 1
        with torch.no_grad(), self._autocast():
            for xb in self._batches(x):
                if stop_at is not None and self._elapsed() > stop_at:
                    raise _OutOfTime
                logits = self.net(xb).float()
                if flips == 2:
                    logits = 0.5 * (logits + self.net(torch.flip(xb, dims=[-1])).float())
                out.append(logits)
                self.clock.charge("forward", lambda: self._forward_cost(len(xb) * self.frames * flips))
        return torch.cat(out)

    def _probabilities(self, logits: Any) -> np.ndarray:
        """The network's outputs: logits divided by the temperature ``tau`` (as in training),
        then a softmax (or a sigmoid per label)."""
        import torch

        z = logits / float(self.config["tau"])
        return (torch.sigmoid(z) if self.multilabel else torch.softmax(z, dim=1)).cpu().numpy()

    def _fit_probe(self, stage: ProbeStage) -> None:
        """Fit the ridge probe of ``stage`` (``raw`` pixels, ``random`` ReLU features of them,
        or ``embedding``s of ``probe_examples`` examples), its penalty chosen on the
        validation split (leave-one-out without one)."""
        import torch

        from finetune.probe import RandomReLUFeatures, RidgeProbe

        cap = int(self.config["probe_examples"]) if stage is ProbeStage.EMBEDDING else RAW_PROBE_EXAMPLES
        n = min(cap, len(self.x_train))
        idx = torch.from_numpy(np.sort(self._probe_rng.choice(len(self.x_train), n, replace=False)))
        idx = idx.to(self.device)
        if stage is ProbeStage.RANDOM:
            self._random_features = RandomReLUFeatures(width=RANDOM_FEATURES, seed=self.seed)
            raw = self._probe_features(ProbeStage.RAW, self.x_train[idx])
            self._random_features.fit(raw)
            self.clock.charge("random features fit", lambda: self.timing.random_features_s(
                0, raw.shape[1], RANDOM_FEATURES, n_fit=len(raw)))
        feats = self._probe_features(stage, self.x_train[idx])
        val_feats = self._probe_features(stage, self.x_val) if self.x_val is not None else None
        probe = RidgeProbe(multilabel=self.multilabel).fit(feats, self.y_train[idx], val_feats, self.y_val)
        self.clock.charge("ridge fit", lambda: self.timing.ridge_s(
            n, feats.shape[1], self.output_dim, n_eval=0 if val_feats is None else len(val_feats)))
        self.probes[stage] = probe
        if self.tiny:  # leave-one-out probabilities of the training examples (all of them, in order)
            select = probe.loo_proba_
            if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.probes:
                select = 0.5 * (select + self.probes[ProbeStage.RAW].loo_proba_)
            self._probe_select = (select, self.y_train[idx].cpu().numpy())
        else:
            self._probe_select = (self._probe_predict(stage, self.x_val, val_feats), self.y_val)
        self.pending_probe = stage
        logger.info("fitted a ridge probe on %s of %d examples (penalty %g)", stage.description, n,
                    probe.alpha_)

    def _probe_features(self, stage: ProbeStage, x: Any) -> Any:
        from finetune.probe import raw_features

        if stage is ProbeStage.EMBEDDING:
            return self._embed(x)
        raw = raw_features(x)
        self.clock.charge("raw features", lambda: self.timing.raw_features_s(
            len(x), x.shape[-2] * x.shape[-1], x.shape[1], x.shape[2]))
        if stage is ProbeStage.RANDOM:
            feats = self._random_features.transform(raw)
            self.clock.charge("random features",
                              lambda: self.timing.random_features_s(len(raw), raw.shape[1], RANDOM_FEATURES))
            return feats
        return raw

    def _probe_predict(self, stage: ProbeStage, x: Any, feats: Any = None) -> np.ndarray:
        """The probabilities of ``stage``'s probe; the random-feature probe is averaged with
        the raw-pixel one (on digits and Fashion-MNIST at 32 px the mean generalised better
        than either alone, while the small validation split preferred the random features
        on digits and was wrong: test NAUC 0.993 mean, 0.988 raw, 0.968 random)."""
        feats = self._probe_features(stage, x) if feats is None else feats
        probs = self.probes[stage].predict_proba(feats)
        self.clock.charge("ridge predict",
                          lambda: self.timing.ridge_s(0, feats.shape[1], self.output_dim, n_eval=len(feats)))
        if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.probes:
            probs = 0.5 * (probs + self._probe_predict(ProbeStage.RAW, x))
        return probs

    def _select_nauc(self, labels: np.ndarray | None, probabilities: np.ndarray | None) -> float:
        from autodl.scoring import nauc

        if labels is None or probabilities is None:
            return -math.inf
        return nauc(labels, probabilities)

    # --- the Model interface ----------------------------------------------------------------
    def train(self, dataset: Any, remaining_time_budget: float | None = None) -> None:
        """Do the next piece of work: decode and fit the first probe (first call), fit the
        next probe of the plan, or fine-tune the network for one chunk of the schedule.

        Sets ``done_training`` when nothing more fits in the budget or is planned.
        """
        remaining = 1200.0 if remaining_time_budget is None else float(remaining_time_budget)
        if self.schedule is None:
            self.time_budget = remaining
            t0 = self.t0 if self.t0 is not None else remaining / 20.0
            self.schedule = AnytimeSchedule(remaining, t0, self.num_predictions)
        self._start_call(remaining)
        if self.x_train is None:
            if self._quick is None and self._quick_start(dataset):
                return  # the first prediction comes from a probe on a subset; the rest is decoded next
            self._load_train(dataset)
        elapsed = self._elapsed()
        if self.stage is Stage.PROBES:
            first = not self.probes
            if self.probe_plan and (first or (self.schedule.fits(elapsed, 2 * self._estimated_test_time())
                                              and self._within_probe_share(self.probe_plan[0], elapsed))):
                self._probe_started = self.clock.now()
                self._fit_probe(self.probe_plan.pop(0))
                return  # the next prediction comes from this probe
            self.probe_plan.clear()
            if self.tiny or not self.config["finetune"]:
                self._finish("probes only" if self.probes else "nothing planned")
                return
            self.stage = Stage.NETWORK
        if self.stage is not Stage.NETWORK:
            return
        step_time = self._estimated_step_time()
        test_time = self._estimated_test_time()
        steps = self.schedule.steps_for_chunk(elapsed, step_time, test_time)
        if steps <= 0:
            self._finish(f"nothing more fits in the budget at {elapsed:.1f} s")
            return
        # the chunk also stops early if steps turn out slower than estimated
        self._train_steps(steps, stop_at=self.schedule.latest_training_end(test_time))

    def _within_probe_share(self, stage: ProbeStage, elapsed: float) -> bool:
        """Whether the probe ``stage``, fitted now and tested by the next test call, is
        expected to end within ``probe_share`` of the budget (always, at 1.0).

        The cap applies only where fine-tuning follows the probes (``finetune`` true and a
        validation split); the first probe of the plan always runs (it gives the first
        prediction), so :meth:`train` asks only about the later ones. A probe that would end
        after the cap is skipped with the rest of the plan, and fine-tuning starts.
        """
        share = float(self.config["probe_share"])
        if share >= 1.0 or not self.config["finetune"] or self.tiny:
            return True
        # the price is what the probe will be charged; a rough measured figure gets the schedule's slack
        end = elapsed + self.clock.estimate(lambda: self._probe_price(stage),
                                            lambda: self.schedule.slack * self._probe_guess(stage))
        if end <= share * self.time_budget:
            return True
        logger.info("probe_share %g: the %s probe would end at about %.2f s, after %.2f s of the budget: "
                    "it and the rest of the plan are skipped", share, stage, end, share * self.time_budget)
        return False

    def _probe_estimate(self, stage: ProbeStage) -> float:
        """Seconds that fitting the probe ``stage`` and its test pass (with writing the
        predictions) are expected to take, on the learner's clock (:meth:`Clock.estimate
        <autodl.clock.Clock.estimate>`): :meth:`_probe_price` on the simulated clock,
        :meth:`_probe_guess` on the others."""
        return self.clock.estimate(lambda: self._probe_price(stage), lambda: self._probe_guess(stage))

    def _probe_examples(self, stage: ProbeStage) -> tuple[int, int, int]:
        """Examples the probe ``stage`` is fitted on, and of the validation and test sets."""
        cap = int(self.config["probe_examples"]) if stage is ProbeStage.EMBEDDING else RAW_PROBE_EXAMPLES
        n_fit = min(cap, len(self.x_train))
        n_val = len(self.x_val) if self.x_val is not None else 0
        n_test = len(self.x_test) if self.x_test is not None else 0
        return n_fit, n_val, n_test

    def _probe_guess(self, stage: ProbeStage) -> float:
        """A rough figure for :meth:`_probe_estimate` from what the clock has measured: for the
        embedding probe, its forward passes (training, validation and test examples) at the
        measured seconds per example of a test pass (0.01 s before one); for the raw-pixel
        and random-feature probes, how long the previous probe took from its fit to now
        (they cost alike and little)."""
        if stage is ProbeStage.EMBEDDING:
            per = self.test_example_time.value or 0.01
            return per * sum(self._probe_examples(stage)) * self.frames
        return 0.0 if self._probe_started is None else self.clock.now() - self._probe_started

    def _probe_price(self, stage: ProbeStage) -> float:
        """:meth:`_probe_estimate` from the timing table: what :meth:`_fit_probe`,
        :meth:`_test_probe` and :meth:`_charge_writing` will charge, priced term by term."""
        import torch

        from finetune.probe import raw_features

        n_fit, n_val, n_test = self._probe_examples(stage)
        t, k = self.timing, self.output_dim
        frames, chans, h, w = self.x_train.shape[1:]
        d_raw = raw_features(torch.zeros(1, frames, chans, h, w)).shape[1]

        def raw(n: int) -> float:  # nothing is computed (or charged) for an empty split
            return t.raw_features_s(n, h * w, frames, chans) if n else 0.0

        if stage is ProbeStage.EMBEDDING:
            d = self.net.backbone.num_features

            def features(n: int) -> float:
                return self._forward_cost(n * self.frames)
        elif stage is ProbeStage.RANDOM:  # raw pixels plus random ReLU features of them
            d = d_raw + RANDOM_FEATURES

            def features(n: int) -> float:
                return raw(n) + t.random_features_s(n, d_raw, RANDOM_FEATURES) if n else 0.0
        else:
            d = d_raw
            features = raw

        def predict(n: int) -> float:  # _probe_predict on features already computed
            cost = t.ridge_s(0, d, k, n_eval=n)
            if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.probes:  # averaged with the raw probe
                cost += raw(n) + t.ridge_s(0, d_raw, k, n_eval=n)
            return cost

        fit = features(n_fit) + t.ridge_s(n_fit, d, k, n_eval=n_val)
        if stage is ProbeStage.RANDOM:  # the random features are fitted on the raw pixels first
            fit += raw(n_fit) + t.random_features_s(0, d_raw, RANDOM_FEATURES, n_fit=n_fit)
        if n_val:  # the validation split's probabilities, which choose among the candidates
            fit += features(n_val) + predict(n_val)
        test = features(n_test) + predict(n_test)
        return fit + test + t.write_predictions_s(n_test * k)

    def _finish(self, why: str) -> None:
        logger.info("done: %s", why)
        self.stage = Stage.DONE
        self.done_training = True

    def _step_cost(self) -> float:
        """The timing table's seconds of one training step (its ``train_step_s``).

        The table measures full steps only: forward and backward through the whole network
        and the optimizer step over all its parameters. A step with a frozen backbone
        (``train_layers`` other than ``all``) needs no backward pass through the frozen
        layers (none at all before the first trained one) and updates fewer parameters, but
        the table cannot price that, so it is charged the full step: conservative, such a
        configuration runs no faster on the simulated clock than fine-tuning everything.
        """
        c = self.config
        return self.timing.train_step_s(c["backbone"], min(int(c["batch_size"]), len(self.x_train)),
                                        max(self.size), c["optimizer"], c["augmentation"], frames=self.frames)

    def _estimated_step_time(self) -> float:
        """Seconds per training step: measured on the clock; before any step, the clock's
        estimate: the timing table's price (simulated clock) or a few forward passes' worth
        at the measured seconds per test example (0.01 s before a test pass)."""
        if self.step_time.value is not None:
            return self.step_time.value
        return self.clock.estimate(
            self._step_cost,
            lambda: 3 * (self.test_example_time.value or 0.01) * int(self.config["batch_size"]) * self.frames)

    def _estimated_test_time(self) -> float:
        """Seconds of a network test pass (test and validation sets)."""
        n = len(self.x_test) if self.x_test is not None else 0
        val = len(self.x_val) if self.x_val is not None else 0
        flips = 2 if self.config["test_time_flip"] else 1
        per = self.test_example_time.value
        if per is None:  # before any test pass: the table's forward pass, or 0.01 s
            per = self.clock.estimate(lambda: self._forward_cost(1), lambda: 0.01)
        return per * (n + val) * flips * self.frames

    def _learning_rate(self, steps_per_epoch: int) -> float:
        c = self.config
        base = c["learning_rate"]
        warm = c["warmup_epochs"] * steps_per_epoch
        if warm > 0 and self.steps_done < warm:
            return base * (self.steps_done + 1) / warm
        if c["lr_schedule"] == "cosine":
            total = max(1.0, self._total_steps_estimate - warm)
            frac = min(1.0, (self.steps_done - warm) / total)
            return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        return base * self._lr_scale

    def _loss(self, logits: Any, targets: Any) -> Any:
        """Cross-entropy of ``logits / tau`` (AutoCLINT divides the logits by its temperature
        in the forward pass, for training and prediction alike); binary cross-entropy per
        label for multi-label data."""
        import torch.nn.functional as F

        z = logits / float(self.config["tau"])
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(z, targets)
        return F.cross_entropy(z, targets.argmax(1))

    def _train_steps(self, steps: int, stop_at: float | None = None) -> int:
        """Take up to ``steps`` training steps; stop once ``stop_at`` seconds of the budget
        are spent. Returns the steps taken."""
        import torch

        from finetune.augment import augment

        c = self.config
        bs = min(int(c["batch_size"]), len(self.x_train))
        n = len(self.x_train)
        steps_per_epoch = max(1, n // bs)
        remaining_steps = (self.time_budget - self._elapsed()) / max(self._estimated_step_time(), 1e-6)
        self._total_steps_estimate = self.steps_done + max(1.0, 0.8 * remaining_steps)
        step_cost = functools.cache(self._step_cost)  # priced once, and only if a charge needs it
        self.net.train()
        t = self.clock.now()
        loss = None
        taken = 0
        with self._torch_rng():
            for _ in range(steps):
                idx = torch.from_numpy(self.rng.integers(0, n, bs)).to(self.device)
                xb = augment(self.x_train[idx], c["augmentation"], self.rng)
                for group in self.optimizer.param_groups:
                    group["lr"] = self._learning_rate(steps_per_epoch)
                self.optimizer.zero_grad(set_to_none=True)
                with self._autocast():
                    logits = self.net(xb).float()
                loss = self._loss(logits, self.y_train[idx])
                loss.backward()
                self.optimizer.step()
                self.steps_done += 1
                taken += 1
                self.clock.charge("train step", step_cost)
                if stop_at is not None and taken < steps and self._elapsed() > stop_at:
                    logger.info("steps slower than estimated: chunk stopped after %d of %d steps", taken, steps)
                    break
        if self.cuda:
            torch.cuda.synchronize()
        self.step_time.update((self.clock.now() - t) / taken)
        logger.info("trained %d steps (total %d, %.3f s/step, loss %.4f)", taken, self.steps_done,
                    self.step_time.value, loss.item())
        return taken

    def test(self, dataset: Any, remaining_time_budget: float | None = None) -> np.ndarray:
        """Predict the test set: with the probe the last ``train`` call fitted, or the network
        after its last chunk; return the predictions of the best selection NAUC so far
        (which may be earlier ones)."""
        remaining = self.time_budget if remaining_time_budget is None else float(remaining_time_budget)
        self._start_call(remaining)
        if self.x_test is None:
            x, _ = load_arrays(dataset, self.size, self.frames)
            self._charge_decoding(len(x))
            self.x_test = self._to_tensor(x)
        try:
            if self.pending_probe is not None:
                candidate = self._test_probe(self.pending_probe)
            elif self.stage is Stage.NETWORK and self.steps_done != self._steps_at_last_test:
                candidate = self._test_network()
            else:
                return self._unchanged("no new model since the last pass")
        except _OutOfTime as why:
            self._finish(str(why))
            return self._unchanged(str(why))
        improved = self.best is None or candidate.score >= self.best.score
        if improved:
            self.best = candidate
        self._charge_writing()
        self.history.append({"elapsed": self._elapsed(), "steps": self.steps_done,
                             "val_nauc": None if candidate.select is None else candidate.score,
                             "source": candidate.source, "returned": "this" if improved else "earlier best"})
        logger.info("test at %.1f s: %s, selection NAUC %.4f%s", self.history[-1]["elapsed"], candidate.source,
                    candidate.score, "" if improved else " (keeping an earlier, better one)")
        return self.best.test

    def _test_probe(self, stage: ProbeStage) -> _Candidate:
        self.pending_probe = None
        if stage is ProbeStage.QUICK:
            return self._test_quick_probe()
        if self.best is not None and not self.schedule.fits(self._elapsed(), self._estimated_test_time()):
            raise _OutOfTime("no time for a test pass")
        t = self.clock.now()
        # the raw pixels of the test set are computed once: the quick start's probe did already
        feats = self._quick_test_features if stage is ProbeStage.RAW else None
        self._quick_test_features = None
        probs = self._probe_predict(stage, self.x_test, feats)
        if stage is ProbeStage.EMBEDDING:  # a forward pass per test example: what a network test pass costs
            self.test_example_time.update((self.clock.now() - t) / max(1, len(self.x_test) * self.frames))
        select, labels = self._probe_select
        score = self._select_nauc(labels, select)
        candidate = _Candidate(probs, select, score, f"ridge on {stage.description}")
        if self.best_probe is None or score >= self.best_probe.score:
            self.best_probe = candidate
        return candidate

    def _test_network(self) -> _Candidate:
        from finetune.calibration import blend

        if self.best is not None and not self.schedule.fits(self._elapsed(), self._estimated_test_time()):
            raise _OutOfTime("no time for a test pass")
        # a pass that runs into the end of the budget (a suddenly loaded machine) is
        # abandoned: the best predictions so far are returned in time instead
        stop_at = self.time_budget - 0.5 * self.schedule.margin
        t = self.clock.now()
        try:
            probs = self._probabilities(self._logits(self.x_test, stop_at))
            val = self._probabilities(self._logits(self.x_val, stop_at))
        except _OutOfTime:
            raise _OutOfTime("test pass abandoned: slower than estimated") from None
        flips = 2 if self.config["test_time_flip"] else 1
        examples = (len(self.x_test) + len(self.x_val)) * flips * self.frames
        self.test_example_time.update((self.clock.now() - t) / max(1, examples))
        self._steps_at_last_test = self.steps_done
        score = self._select_nauc(self.y_val, val)
        self._update_plateau(score)
        candidate = _Candidate(probs, val, score, f"network after {self.steps_done} steps")
        if self.blend_probe and self.best_probe is not None:
            # early in fine-tuning, the blend of the network's and the best ridge probe's
            # calibrated probabilities often beats both: the validation split decides
            mixed = blend(val, probs, self.best_probe.select, self.best_probe.test, self.y_val, self.multilabel)
            if mixed is not None:
                candidate = _Candidate(mixed[1], mixed[0], mixed[2], candidate.source + " + ridge probe (blend)")
        return candidate

    def _charge_writing(self) -> None:
        """The ingestion writes every prediction it is handed: charge it to the clock."""
        self.clock.charge("write predictions",
                          lambda: self.timing.write_predictions_s(len(self.x_test) * self.output_dim))

    def _unchanged(self, why: str) -> np.ndarray:
        """Return the best predictions so far without a test pass (recorded in the history)."""
        self._charge_writing()
        logger.info("%s at %.1f s: returning the best predictions so far", why, self._elapsed())
        self.history.append({"elapsed": self._elapsed(), "steps": self.steps_done, "val_nauc": None,
                             "source": f"unchanged ({why})", "returned": "earlier best"})
        return self.best.test if self.best is not None else None

    def _update_plateau(self, score: float) -> None:
        """Halve the learning rate after two network test calls without validation improvement."""
        if self.config["lr_schedule"] != "plateau" or not math.isfinite(score):
            return
        if score > self._plateau_best + 1e-4:
            self._plateau_best, self._plateau_bad = score, 0
        else:
            self._plateau_bad += 1
            if self._plateau_bad >= 2:
                self._lr_scale *= 0.5
                self._plateau_bad = 0
                logger.info("validation plateau: learning rate x%.3g", self._lr_scale)
