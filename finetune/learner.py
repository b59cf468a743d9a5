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
   there is no validation split: the probes are chosen by their exact leave-pair-out
   NAUC (:class:`finetune.probe.RidgeProbe`), and the network, which nothing could
   validate, is not fine-tuned.
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

This module is the orchestration: which stage runs at each call, when a probe or a chunk
fits in the budget, and which predictions a test call returns. The stages' work is done by
collaborators the learner owns: :class:`finetune.decoded_data.DecodedData` (decoding and
keeping the training, validation and test sets), :class:`finetune.probe_stage.Probing` (the
ridge probes, their prices and predictions), :class:`finetune.network_stage.NetworkTrainer`
(the network, its optimizer, training steps and test passes) and
:class:`finetune.budget.Budget` (the seconds spent, read from the clock).
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodl.clock import Clock, WallClock
from autodl.metadata import AutoDLMetadata
from finetune.budget import Budget
from finetune.decoded_data import MIN_VALIDATION, DecodedData, data_format, training_size
from finetune.network_stage import NetworkTrainer, OutOfTime
from finetune.probe import ProbeStage
from finetune.probe_stage import RANDOM_FEATURES, RAW_PROBE_EXAMPLES, Probing
from finetune.schedule import AnytimeSchedule

__all__ = ["LEARNER_VERSION", "MIN_VALIDATION", "QUICK_START_MAX_EXAMPLES", "QUICK_START_MEGAVALUES",
           "QUICK_START_PER_CLASS", "RANDOM_FEATURES", "RAW_PROBE_EXAMPLES", "FineTuneLearner", "Stage",
           "training_size"]

logger = logging.getLogger(__name__)

_data_format = data_format  # the name it had when it lived here (the submission imports it)

LEARNER_VERSION = 3
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
first; the rest is decoded by the next ``train`` call, and everything after sees the whole set.
3: without a validation split (fewer than :data:`MIN_VALIDATION` training examples) the probes'
penalties and the choice among them use the leave-pair-out NAUC instead of the pooled leave-one-out
one, which is biased low where classes have a handful of examples (on the organizers' Monkeys
sample, 26 pictures of 10 classes, it preferred raw pixels to the embeddings). Nothing changes
with a validation split."""

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


@dataclass
class _Candidate:
    """Predictions that a test call may return: test and selection-set probabilities and
    the selection NAUC (validation split, or leave-pair-out on tiny data)."""

    test: np.ndarray
    select: np.ndarray | None
    score: float
    source: str


def _view(part: str, name: str) -> property:
    """The attribute ``name`` of the learner's collaborator ``part``, read and set through the
    learner (where callers read the run's state: tests, benchmarks, the submission)."""
    return property(lambda self: getattr(getattr(self, part), name),
                    lambda self, value: setattr(getattr(self, part), name, value),
                    doc=f"``{part}.{name}``")


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
        self.output_dim = metadata.get_output_size()
        self.in_chans = metadata.get_num_channels()
        self.frames = 1 if metadata.get_sequence_size() == 1 else int(self.config["frames_per_clip"])
        if simulated:
            timing.check(self.config, frames=self.frames)

        # --- the stages' collaborators (the network is built and warmed up here) ---------------
        c = self.config
        self.data = DecodedData(metadata, self.clock, timing, device=self.device, frames=self.frames,
                                input_size=int(c["input_size"]), min_input_size=int(c["min_input_size"]),
                                max_train_examples=max_train_examples,
                                validation_fraction=validation_fraction, seed=seed)
        self.budget = Budget(self.clock)
        self.network = NetworkTrainer(c, self.data, self.clock, timing, budget=self.budget, device=self.device,
                                      output_dim=self.output_dim, in_chans=self.in_chans, frames=self.frames,
                                      seed=seed)
        self.probing = Probing(c, self.data, self.network, self.clock, timing, output_dim=self.output_dim,
                               frames=self.frames, seed=seed)

        # --- state of the run ----------------------------------------------------------------
        self.done_training = False
        self.stage = Stage.PROBES
        self.schedule: AnytimeSchedule | None = None
        self.best: _Candidate | None = None
        self.best_probe: _Candidate | None = None
        self.history: list[dict[str, Any]] = []

    # --- the collaborators' state, as callers (tests, benchmarks, the submission) read it ------
    x_train = _view("data", "x_train")
    y_train = _view("data", "y_train")
    x_val = _view("data", "x_val")
    y_val = _view("data", "y_val")
    x_test = _view("data", "x_test")
    size = _view("data", "size")
    multilabel = _view("data", "multilabel")
    n_examples = _view("data", "n_examples")
    net = _view("network", "net")
    optimizer = _view("network", "optimizer")
    steps_done = _view("network", "steps_done")
    pending_probe = _view("probing", "pending")
    time_budget = _view("budget", "total")

    @property
    def tiny(self) -> bool:
        """Too few examples for a validation split."""
        return self.data.tiny

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
        self.budget.start_call(remaining)
        if self.x_train is None:
            if self.data.part is None and self._quick_start(dataset):
                return  # the first prediction comes from a probe on a subset; the rest is decoded next
            self._load_train(dataset)
        elapsed = self.budget.elapsed()
        probing = self.probing
        if self.stage is Stage.PROBES:
            first = not probing.fitted
            if probing.plan and (first or (self.schedule.fits(elapsed, 2 * self.network.estimated_test_time())
                                           and self._within_probe_share(probing.plan[0], elapsed))):
                probing.started = self.clock.now()
                self._fit_probe(probing.plan.pop(0))
                return  # the next prediction comes from this probe
            probing.plan.clear()
            if self.tiny or not self.config["finetune"]:
                self._finish("probes only" if probing.fitted else "nothing planned")
                return
            self.stage = Stage.NETWORK
        if self.stage is not Stage.NETWORK:
            return
        step_time = self.network.estimated_step_time()
        test_time = self.network.estimated_test_time()
        steps = self.schedule.steps_for_chunk(elapsed, step_time, test_time)
        if steps <= 0:
            self._finish(f"nothing more fits in the budget at {elapsed:.1f} s")
            return
        # the chunk also stops early if steps turn out slower than estimated
        self._train_steps(steps, stop_at=self.schedule.latest_training_end(test_time))

    def test(self, dataset: Any, remaining_time_budget: float | None = None) -> np.ndarray:
        """Predict the test set: with the probe the last ``train`` call fitted, or the network
        after its last chunk; return the predictions of the best selection NAUC so far
        (which may be earlier ones)."""
        remaining = self.time_budget if remaining_time_budget is None else float(remaining_time_budget)
        self.budget.start_call(remaining)
        self.data.load_test(dataset)
        try:
            if self.probing.pending is not None:
                candidate = self._test_probe(self.probing.pending)
            elif self.stage is Stage.NETWORK and self.network.has_new_steps:
                candidate = self._test_network()
            else:
                return self._unchanged("no new model since the last pass")
        except OutOfTime as why:
            self._finish(str(why))
            return self._unchanged(str(why))
        improved = self.best is None or candidate.score >= self.best.score
        if improved:
            self.best = candidate
        self._charge_writing()
        self.history.append({"elapsed": self.budget.elapsed(), "steps": self.steps_done,
                             "val_nauc": None if candidate.score == -math.inf else candidate.score,
                             "source": candidate.source, "returned": "this" if improved else "earlier best"})
        logger.info("test at %.1f s: %s, selection NAUC %.4f%s", self.history[-1]["elapsed"], candidate.source,
                    candidate.score, "" if improved else " (keeping an earlier, better one)")
        return self.best.test

    # --- the stages -------------------------------------------------------------------------
    def _quick_start(self, dataset: Any) -> bool:
        """The quick start where it applies (see :data:`QUICK_START_PER_CLASS`): decode a
        stratified subset of the training set and fit a raw-pixel probe on it for the next test
        call. False, with nothing decoded, where it does not apply."""
        from autodl.ingestion import source_of
        from autodl.labels import is_multilabel, stratified_subset
        from finetune.data import decoded_indices

        if (not self.probing.plan or self.probing.plan[0] is not ProbeStage.RAW
                or not self.metadata.is_compressed()):
            return False
        records = decoded_indices(dataset, self.max_train_examples, self.seed)
        if records is None:  # not this project's ingestion: the records cannot be chosen
            return False
        n, m = len(records), min(QUICK_START_MAX_EXAMPLES, QUICK_START_PER_CLASS * self.output_dim)
        if n < max(MIN_VALIDATION, 4 * m):
            return False
        self.data.inspect(dataset)
        if self.data.megavalues(n) < QUICK_START_MEGAVALUES:
            return False
        ds, subset = source_of(dataset)
        labels = ds.labels(subset)[records]
        part = stratified_subset(labels, m, self.seed)  # positions among the records
        x, y = self.data.load_part(dataset, records, part)
        self.data.multilabel = is_multilabel(labels)
        probe = self.probing.fit_quick(self.data.to_tensor(x), y)
        logger.info("quick start: a ridge probe on raw pixels of %d of the %d training examples "
                    "(leave-one-out NAUC %.4f, penalty %g); the rest is decoded by the next call", len(x), n,
                    probe.validation_nauc_, probe.alpha_)
        return True

    def _load_train(self, dataset: Any) -> None:
        """Decode the training set (the rest of it after the quick start); without a validation
        split, at least the raw-pixel probe is planned."""
        self.data.load_train(dataset)
        if self.tiny:
            self.probing.plan = self.probing.plan or [ProbeStage.RAW]

    def _fit_probe(self, stage: ProbeStage) -> None:
        """Fit the probe ``stage`` (:meth:`Probing.fit <finetune.probe_stage.Probing.fit>`)."""
        self.probing.fit(stage)

    def _within_probe_share(self, stage: ProbeStage, elapsed: float) -> bool:
        """Whether the probe ``stage`` is expected to end within ``probe_share`` of the budget
        (:meth:`Probing.within_share <finetune.probe_stage.Probing.within_share>`)."""
        return self.probing.within_share(stage, elapsed, self.time_budget, self.schedule.slack)

    def _probe_estimate(self, stage: ProbeStage) -> float:
        """Seconds that fitting the probe ``stage`` and its test pass are expected to take
        (:meth:`Probing.estimate <finetune.probe_stage.Probing.estimate>`)."""
        return self.probing.estimate(stage)

    def _train_steps(self, steps: int, stop_at: float | None = None) -> int:
        """Take up to ``steps`` training steps; stop once ``stop_at`` seconds of the budget
        are spent. Returns the steps taken."""
        return self.network.train_steps(steps, stop_at)

    def _test_probe(self, stage: ProbeStage) -> _Candidate:
        """The test predictions of the probe the last ``train`` call fitted. The quick start's
        are provisional (score -inf), so that any later model's replace them, in this learner and
        in the submission's choice among learners."""
        self.probing.pending = None
        if stage is ProbeStage.QUICK:
            return _Candidate(self.probing.predict_quick(), None, -math.inf, f"ridge on {stage.description}")
        self._check_time_for_test_pass()
        t = self.clock.now()
        probs = self.probing.predict_test(stage)
        if stage is ProbeStage.EMBEDDING:  # a forward pass per test example: what a network test pass costs
            seconds = self.clock.now() - t
            self.network.test_example_time.update(seconds / max(1, len(self.x_test) * self.frames))
        select, tiny_score = self.probing.select  # validation probabilities, or the leave-pair-out NAUC
        score = tiny_score if select is None else self._select_nauc(self.y_val, select)
        candidate = _Candidate(probs, select, score, f"ridge on {stage.description}")
        if self.best_probe is None or score >= self.best_probe.score:
            self.best_probe = candidate
        return candidate

    def _test_network(self) -> _Candidate:
        """The network's test predictions after its last chunk (or their blend with the best
        probe's, where the validation split prefers it)."""
        from finetune.calibration import blend

        self._check_time_for_test_pass()
        # a pass that runs into the end of the budget (a suddenly loaded machine) is
        # abandoned: the best predictions so far are returned in time instead
        probs, val = self.network.test_pass(stop_at=self.time_budget - 0.5 * self.schedule.margin)
        score = self._select_nauc(self.y_val, val)
        self.network.update_plateau(score)
        candidate = _Candidate(probs, val, score, f"network after {self.steps_done} steps")
        if self.blend_probe and self.best_probe is not None:
            # early in fine-tuning, the blend of the network's and the best ridge probe's
            # calibrated probabilities often beats both: the validation split decides
            best = self.best_probe
            mixed = blend(val, probs, best.select, best.test, self.y_val, self.multilabel)
            if mixed is not None:
                source = f"{candidate.source} + ridge probe (blend)"
                candidate = _Candidate(mixed[1], mixed[0], mixed[2], source)
        return candidate

    def _check_time_for_test_pass(self) -> None:
        """Raise :class:`~finetune.network_stage.OutOfTime` where a test pass would not end in
        time (never before the first predictions: they are needed whatever they cost)."""
        if self.best is None:
            return
        if not self.schedule.fits(self.budget.elapsed(), self.network.estimated_test_time()):
            raise OutOfTime("no time for a test pass")

    # --- choosing and returning predictions ---------------------------------------------------
    def _select_nauc(self, labels: np.ndarray | None, probabilities: np.ndarray | None) -> float:
        from autodl.scoring import nauc

        if labels is None or probabilities is None:
            return -math.inf
        return nauc(labels, probabilities)

    def _finish(self, why: str) -> None:
        logger.info("done: %s", why)
        self.stage = Stage.DONE
        self.done_training = True

    def _charge_writing(self) -> None:
        """The ingestion writes every prediction it is handed: charge it to the clock."""
        self.clock.charge("write predictions",
                          lambda: self.timing.write_predictions_s(len(self.x_test) * self.output_dim))

    def _unchanged(self, why: str) -> np.ndarray:
        """Return the best predictions so far without a test pass (recorded in the history)."""
        self._charge_writing()
        logger.info("%s at %.1f s: returning the best predictions so far", why, self.budget.elapsed())
        self.history.append({"elapsed": self.budget.elapsed(), "steps": self.steps_done, "val_nauc": None,
                             "source": f"unchanged ({why})", "returned": "earlier best"})
        return self.best.test if self.best is not None else None

    # --- the network's passes, as tests and benchmarks call them --------------------------------
    def _autocast(self) -> Any:
        return self.network.autocast()

    def _logits(self, x: Any, stop_at: float | None = None) -> Any:
        return self.network.logits(x, stop_at)

    def _probabilities(self, logits: Any) -> np.ndarray:
        return self.network.probabilities(logits)

    def _loss(self, logits: Any, targets: Any) -> Any:
        return self.network.loss(logits, targets)
