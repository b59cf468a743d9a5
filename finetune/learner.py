"""One fine-tuning configuration trained under the ALC budget, with anytime predictions.

:class:`FineTuneLearner` has the challenge's ``Model`` interface (``train``, ``test``,
``done_training``) and is what BOHB evaluates, what the cost matrix is made of and what
the submission ships. Its strategy follows the 2019 winner (AutoCLINT, Kakao Brain: Baek
et al., "Towards automated deep learning: efficient joint neural architecture and
hyperparameter search", 2019) and Freiburg's portfolio (Stoll et al., AutoDL 2019):

1. **The first predictions come as early as possible** (:mod:`finetune.probe`). The
   first ``train`` call decodes the training data once (resized, kept as uint8 tensors on
   the device) and fits a ridge classifier on downsampled raw pixels (closed form, nearly
   free): the first ``test`` predicts with it. The next calls fit ridge classifiers on
   random ReLU features of the raw pixels (a fraction of a second), then on the
   pretrained backbone's embeddings of a few hundred examples (one forward pass each),
   each followed by a test call. No gradient step is needed before any of them.
2. **Then the network is fine-tuned in chunks** whose ends are spaced evenly in
   transformed ALC time (:mod:`finetune.schedule`); after each chunk the test set is
   predicted.
3. **A held-out validation split chooses what is returned:** each test call returns the
   test predictions of the best validation NAUC so far (a ridge probe's, a network
   checkpoint's, or the mean of the two).
4. **The budget is never overrun by a call it could foresee:** seconds per training step
   and per test example are measured as training goes (or taken from a timing table under
   the simulated clock); a chunk starts only when it, its test pass and a safety margin
   fit in what remains; ``done_training`` is set when nothing more fits, and a test call
   without time for a pass returns the best predictions it already has.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodl.clock import Clock, WallClock
from autodl.metadata import AutoDLMetadata
from finetune.data import load_arrays
from finetune.schedule import AnytimeSchedule

logger = logging.getLogger(__name__)


_PROBE_NAMES = {"raw": "raw pixels", "random": "raw pixels + random ReLU features (mean of two probes)",
                "embedding": "embeddings"}


class _OutOfTime(Exception):
    """A test pass would end after the budget."""


@dataclass
class _Timer:
    """Running estimate (exponential moving average) of a duration."""

    value: float | None = None
    alpha: float = 0.5

    def update(self, seconds: float) -> None:
        self.value = seconds if self.value is None else (1 - self.alpha) * self.value + self.alpha * seconds


def _median_size(metadata: AutoDLMetadata, dataset: Any, cap: int, floor: int = 32) -> tuple[int, int]:
    """(H, W) to train at: the median shape of the first examples, its larger side brought
    into ``[min(floor, cap), cap]`` (aspect ratio kept): pretrained networks see nothing
    in an 8x8 image, so small images are enlarged."""
    _, h, w, _ = metadata.get_tensor_shape()
    if h <= 0 or w <= 0:
        from autodl.ingestion import source_of

        src = source_of(dataset)
        if src is not None:
            h, w = src[0].shape_summary(src[1], limit=64)["median"][1:]
        else:
            shapes = [np.asarray(x).shape[1:3] for x, _ in dataset.take(64).as_numpy_iterator()]
            h, w = (int(v) for v in np.median(np.asarray(shapes), 0))
    side = max(h, w)
    scale = min(cap, max(min(floor, cap), side)) / side
    return max(8, round(h * scale)), max(8, round(w * scale))


class FineTuneLearner:
    """Fine-tunes one configuration under the time budget (the challenge's ``Model`` interface).

    Parameters
    ----------
    metadata:
        The train set's metadata.
    config:
        A fine-tuning configuration (see :mod:`finetune.config`); validated here.
    clock:
        The ingestion's clock. Under a :class:`~autodl.clock.SimulatedClock` the learner
        advances it by ``timing``'s costs instead of measuring.
    t0:
        The ALC's t0 (seconds); default T/20 (the ratio of both protocols).
    timing:
        A :class:`~finetune.timing.TimingTable`; required with a simulated clock.
    device:
        ``"cuda"``, ``"cpu"`` or None (CUDA when available).
    num_predictions:
        Test calls planned over the budget (evenly spaced in transformed time).
    max_train_examples:
        Training examples decoded at most (a seeded random subset beyond).
    validation_fraction:
        Share of the training examples held out to choose checkpoints (at most 256).
    seed:
        Seed of splits, batches, augmentation and initialisation.
    blend_probe:
        Also consider the mean of the network's and the best ridge probe's probabilities
        at each test call (kept when its validation NAUC is higher).
    threads:
        CPU threads for PyTorch (None: leave as is).
    """

    def __init__(self, metadata: AutoDLMetadata, config: Mapping[str, Any], clock: Clock | None = None, *,
                 t0: float | None = None, timing: Any = None, device: str | None = None,
                 num_predictions: int = 12, max_train_examples: int | None = 5000,
                 validation_fraction: float = 0.1, seed: int = 0, threads: int | None = None,
                 blend_probe: bool = True):
        import torch

        from finetune.backbones import create_backbone
        from finetune.config import validate_config

        self.config = validate_config(config)
        self.metadata = metadata
        self.clock = clock or WallClock()
        self.simulated = bool(getattr(self.clock, "simulated", False))
        if self.simulated and timing is None:
            raise ValueError("a simulated clock needs a timing table (timing=TimingTable.load(...))")
        self.timing = timing
        self.t0 = t0
        self.num_predictions = num_predictions
        self.max_train_examples = max_train_examples
        self.validation_fraction = validation_fraction
        self.seed = seed
        if threads:
            torch.set_num_threads(threads)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.cuda = self.device.type == "cuda"
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)  # splits, batches, augmentation
        self._probe_rng = np.random.default_rng([seed, 1])  # the probes' samples: their own stream
        self.output_dim = metadata.get_output_size()
        self.in_chans = metadata.get_num_channels()
        t = metadata.get_sequence_size()
        self.frames = 1 if t == 1 else int(self.config["frames_per_clip"])

        from finetune.network import FineTuneNet

        # pretrained: true means "the backbone's pretrained weights where it has them"
        pretrained = None if self.config.get("pretrained", True) else False
        backbone = create_backbone(self.config["backbone"], pretrained=pretrained, num_classes=0)
        self.net = FineTuneNet(backbone, self.in_chans, self.output_dim, self.config["dropout"]).to(self.device)
        if self.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = self._make_optimizer()
        self._warm_up()

        self.done_training = False
        self.size: tuple[int, int] | None = None
        self.x_train = self.y_train = self.x_val = self.y_val = self.x_test = None
        self.multilabel = False
        self.schedule: AnytimeSchedule | None = None
        self.step_time = _Timer()
        self.test_example_time = _Timer()
        self.steps_done = 0
        self._dense_range: tuple[float, float] | None = None
        self.best_val = -math.inf
        self.best_predictions: np.ndarray | None = None
        # the probes in order, each fitted by one train call and used by the next test call;
        # stage is the probe awaiting its test call, "probe-tested" between probes, or "network"
        self.probe_plan = ["raw", "random", "embedding"]
        self.stage = "probe-tested"
        self._random_features: Any = None
        self._steps_at_last_test = -1
        self.best_probe: tuple[np.ndarray, np.ndarray, float] | None = None
        self.blend_probe = blend_probe
        self.probes: dict[str, Any] = {}
        self.history: list[dict[str, Any]] = []
        self._plateau_best = -math.inf
        self._plateau_bad = 0
        self._lr_scale = 1.0

    # --- set-up -----------------------------------------------------------------------------
    def _make_optimizer(self) -> Any:
        import torch

        c = self.config
        params = self.net.parameters()
        if c["optimizer"] == "SGD":
            return torch.optim.SGD(params, lr=c["learning_rate"], momentum=0.9, nesterov=True,
                                   weight_decay=c["weight_decay"])
        return torch.optim.Adam(params, lr=c["learning_rate"], weight_decay=c["weight_decay"])

    def _warm_up(self) -> None:
        """One forward/backward pass on a dummy batch: pays one-off costs (lazy imports,
        allocator, kernels) while the model is constructed, outside the budget."""
        import torch

        x = torch.zeros(2, 1, self.in_chans, 32, 32, dtype=torch.uint8, device=self.device)
        state = {k: v.clone() for k, v in self.net.state_dict().items()}
        opt_state = self.optimizer.state_dict()
        with self._autocast():
            loss = self.net(x).float().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.net.load_state_dict(state)
        self.optimizer.load_state_dict(opt_state)

    def _autocast(self) -> Any:
        import contextlib

        import torch

        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- time -------------------------------------------------------------------------------
    def _charge(self, kind: str, count: float) -> None:
        """Under the simulated clock, advance it by what ``count`` units of ``kind`` cost."""
        if not self.simulated:
            return
        entry = self._timing_entry()
        per = {"train_batch": entry.train_batch_s, "test_example": entry.test_example_s,
               "decode_example": getattr(self.timing, "decode_example_s", 0.0002)}[kind]
        self.clock.advance(per * count)

    def _timing_entry(self) -> Any:
        """The timing table's costs for this configuration at the training size."""
        return self.timing.lookup(self.config["backbone"], int(self.config["batch_size"]), max(self.size))

    def _start_call(self, remaining: float) -> None:
        """Anchor the budget: ``remaining`` seconds were left at the clock's present time."""
        self._anchor = (self.clock.now(), remaining)

    def _elapsed(self) -> float:
        """Seconds of the budget spent so far (from the anchor of the current call)."""
        start, remaining = self._anchor
        return self.time_budget - (remaining - (self.clock.now() - start))

    # --- data -------------------------------------------------------------------------------
    def _load_train(self, dataset: Any) -> None:
        import torch

        self.size = _median_size(self.metadata, dataset, int(self.config["input_size"]))
        x, y = load_arrays(dataset, self.size, self.frames, limit=self.max_train_examples)
        self._charge("decode_example", len(x))
        self.multilabel = bool((y.sum(1) != 1).any())
        n = len(x)
        order = self.rng.permutation(n)
        n_val = min(256, int(round(n * self.validation_fraction))) if n >= 30 else 0
        val, train = order[:n_val], order[n_val:]
        self.x_train, self.y_train = self._to_tensor(x[train]), torch.from_numpy(y[train]).to(self.device)
        if n_val:
            self.x_val, self.y_val = self._to_tensor(x[val]), y[val]
        logger.info("train %d, validation %d examples at %dx%d, %d frame(s), %s", len(train), n_val,
                    *self.size, self.frames, "multi-label" if self.multilabel else "multi-class")

    def _to_tensor(self, x: np.ndarray) -> Any:
        """``[N, T, H, W, C]`` numpy -> ``[N, T, C, H, W]`` tensor on the device (uint8 kept)."""
        import torch

        if x.dtype != np.uint8:  # dense data: scale to [0, 1] with the training range
            if self._dense_range is None:
                lo, hi = float(x.min()), float(x.max())
                self._dense_range = (lo, hi - lo if hi > lo else 1.0)
            x = ((x - self._dense_range[0]) / self._dense_range[1]).astype(np.float32)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3))).to(self.device)

    # --- prediction helpers -----------------------------------------------------------------
    def _batches(self, x: Any, batch: int = 128) -> Any:
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
        return torch.cat(out)

    def _logits(self, x: Any, stop_at: float | None = None) -> Any:
        """Logits of clips ``x``; raises :class:`_OutOfTime` once ``stop_at`` seconds are spent."""
        import torch

        self.net.eval()
        out = []
        with torch.no_grad(), self._autocast():
            for xb in self._batches(x):
                if stop_at is not None and self._elapsed() > stop_at:
                    raise _OutOfTime
                logits = self.net(xb).float()
                if self.config["test_time_flip"]:
                    logits = 0.5 * (logits + self.net(torch.flip(xb, dims=[-1])).float())
                out.append(logits)
        return torch.cat(out)

    def _probabilities(self, logits: Any) -> np.ndarray:
        import torch

        if self.multilabel:
            return torch.sigmoid(logits).cpu().numpy()
        return torch.softmax(logits / float(self.config["tau"]), dim=1).cpu().numpy()

    def _fit_probe(self, stage: str) -> None:
        """Fit the ridge probe of ``stage`` (``raw`` pixels, ``random`` ReLU features of them,
        or ``embedding``s of 256 examples), its penalty chosen on the validation split."""
        import torch

        from finetune.probe import RandomReLUFeatures, RidgeProbe, raw_features

        n = min(256 if stage == "embedding" else 4000, len(self.x_train))
        idx = torch.from_numpy(np.sort(self._probe_rng.choice(len(self.x_train), n, replace=False)))
        idx = idx.to(self.device)
        self.stage = stage
        if stage == "random":
            self._random_features = RandomReLUFeatures(seed=self.seed).fit(raw_features(self.x_train[idx]))
        val_feats = self._probe_features(stage, self.x_val) if self.x_val is not None else None
        probe = RidgeProbe(multilabel=self.multilabel).fit(self._probe_features(stage, self.x_train[idx]),
                                                           self.y_train[idx], val_feats, self.y_val)
        self.probes[stage] = probe
        self._probe_val = None if val_feats is None else self._probe_predict(stage, self.x_val, val_feats)
        logger.info("fitted a ridge probe on %s of %d examples (penalty %g)", _PROBE_NAMES[stage], n,
                    probe.alpha_)

    def _probe_features(self, stage: str, x: Any) -> Any:
        from finetune.probe import raw_features

        if stage == "embedding":
            return self._embed(x)
        if stage == "random":
            return self._random_features.transform(raw_features(x))
        return raw_features(x)

    def _probe_predict(self, stage: str, x: Any, feats: Any = None) -> np.ndarray:
        """The probabilities of ``stage``'s probe; the random-feature probe is averaged with
        the raw-pixel one (on digits and Fashion-MNIST at 32 px the mean generalised better
        than either alone, while the small validation split preferred the random features
        on digits and was wrong: test NAUC 0.993 mean, 0.988 raw, 0.968 random)."""
        feats = self._probe_features(stage, x) if feats is None else feats
        probs = self.probes[stage].predict_proba(feats)
        if stage == "random" and "raw" in self.probes:
            probs = 0.5 * (probs + self._probe_predict("raw", x))
        return probs

    def _val_nauc(self, probabilities: np.ndarray) -> float:
        from autodl.scoring import nauc

        return nauc(self.y_val, probabilities) if self.y_val is not None else -math.inf

    # --- the Model interface ----------------------------------------------------------------
    def train(self, dataset: Any, remaining_time_budget: float | None = None) -> None:
        remaining = 1200.0 if remaining_time_budget is None else float(remaining_time_budget)
        if self.schedule is None:
            self.time_budget = remaining
            t0 = self.t0 if self.t0 is not None else remaining / 20.0
            self.schedule = AnytimeSchedule(remaining, t0, self.num_predictions)
        self._start_call(remaining)
        if self.x_train is None:
            self._load_train(dataset)
            self._fit_probe(self.probe_plan.pop(0))
            return  # the first prediction comes from the ridge probe on raw pixels
        elapsed = self._elapsed()
        if self.stage == "probe-tested":
            if self.probe_plan and self.schedule.fits(elapsed, 2 * self._estimated_test_time()):
                stage = self.probe_plan.pop(0)
                self._fit_probe(stage)
                if stage == "embedding":
                    n_val = len(self.x_val) if self.x_val is not None else 0
                    self._charge("test_example", (min(256, len(self.x_train)) + n_val) * self.frames)
                return  # the next prediction comes from this probe
            self.probe_plan.clear()
            self.stage = "network"
        step_time = self._estimated_step_time()
        test_time = self._estimated_test_time()
        steps = self.schedule.steps_for_chunk(elapsed, step_time, test_time)
        if steps <= 0:
            logger.info("nothing more fits in the budget at %.1f s: done", elapsed)
            self.done_training = True
            return
        # the chunk also stops early if steps turn out slower than estimated
        self._train_steps(steps, stop_at=self.schedule.latest_training_end(test_time))

    def _estimated_step_time(self) -> float:
        if self.simulated:
            return self._timing_entry().train_batch_s
        if self.step_time.value is None:  # before any step: a few forward passes' worth
            per = self.test_example_time.value or 0.01
            return 3 * per * int(self.config["batch_size"])
        return self.step_time.value

    def _estimated_test_time(self) -> float:
        n = len(self.x_test) if self.x_test is not None else 0
        val = len(self.x_val) if self.x_val is not None else 0
        flips = 2 if self.config["test_time_flip"] else 1
        per = self._timing_entry().test_example_s if self.simulated else (self.test_example_time.value or 0.01)
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

    def _train_steps(self, steps: int, stop_at: float | None = None) -> int:
        """Take up to ``steps`` training steps; stop once ``stop_at`` seconds of the budget
        are spent. Returns the steps taken."""
        import torch
        import torch.nn.functional as F

        from finetune.augment import augment

        c = self.config
        bs = min(int(c["batch_size"]), len(self.x_train))
        n = len(self.x_train)
        steps_per_epoch = max(1, n // bs)
        remaining_steps = (self.time_budget - self._elapsed()) / max(self._estimated_step_time(), 1e-6)
        self._total_steps_estimate = self.steps_done + max(1.0, 0.8 * remaining_steps)
        self.net.train()
        t = time.perf_counter()
        loss = None
        taken = 0
        for _ in range(steps):
            idx = torch.from_numpy(self.rng.integers(0, n, bs)).to(self.device)
            xb = augment(self.x_train[idx], c["augmentation"], self.rng)
            yb = self.y_train[idx]
            for group in self.optimizer.param_groups:
                group["lr"] = self._learning_rate(steps_per_epoch)
            self.optimizer.zero_grad(set_to_none=True)
            with self._autocast():
                logits = self.net(xb).float()
            if self.multilabel:
                loss = F.binary_cross_entropy_with_logits(logits, yb)
            else:
                loss = F.cross_entropy(logits, yb.argmax(1))
            loss.backward()
            self.optimizer.step()
            self.steps_done += 1
            taken += 1
            self._charge("train_batch", 1)
            if stop_at is not None and taken < steps and self._elapsed() > stop_at:
                if self.cuda:
                    torch.cuda.synchronize()
                logger.info("steps slower than estimated: chunk stopped after %d of %d steps", taken, steps)
                break
        if self.cuda:
            torch.cuda.synchronize()
        self.step_time.update((time.perf_counter() - t) / taken)
        logger.info("trained %d steps (total %d, %.3f s/step, loss %.4f)", taken, self.steps_done,
                    self.step_time.value, loss.item())
        return taken

    def test(self, dataset: Any, remaining_time_budget: float | None = None) -> np.ndarray:
        remaining = self.time_budget if remaining_time_budget is None else float(remaining_time_budget)
        self._start_call(remaining)
        first = self.x_test is None
        if first:
            x, _ = load_arrays(dataset, self.size, self.frames)
            self._charge("decode_example", len(x))
            self.x_test = self._to_tensor(x)
        elapsed = self._elapsed()
        if self.stage == "network" and self.steps_done == self._steps_at_last_test:
            return self._unchanged("no training since the last pass")
        if not first and self.best_predictions is not None and \
                not self.schedule.fits(elapsed, self._estimated_test_time()):
            self.done_training = True
            return self._unchanged("no time for a test pass")
        t = time.perf_counter()
        n_examples = len(self.x_test)  # the probes' validation features are computed when fitted
        if self.stage in _PROBE_NAMES:
            probs = self._probe_predict(self.stage, self.x_test)
            val = self._probe_val
            source = f"ridge on {_PROBE_NAMES[self.stage]}"
            self.stage = "probe-tested" if self.probe_plan else "network"
        else:
            # a pass that runs into the end of the budget (a suddenly loaded machine) is
            # abandoned: the best predictions so far are returned in time instead
            stop_at = self.time_budget - 0.5 * self.schedule.margin
            try:
                probs = self._probabilities(self._logits(self.x_test, stop_at))
                val = self._probabilities(self._logits(self.x_val, stop_at)) if self.x_val is not None else None
            except _OutOfTime:
                self.done_training = True
                return self._unchanged("test pass abandoned: slower than estimated")
            source = f"network after {self.steps_done} steps"
            self._steps_at_last_test = self.steps_done
            n_examples += len(self.x_val) if self.x_val is not None else 0
        seconds = time.perf_counter() - t
        if source.startswith("ridge on") and not source.endswith("embeddings"):
            pass  # nearly free: says nothing about the cost of a network pass
        else:
            flips = 2 if source.startswith("network") and self.config["test_time_flip"] else 1
            self.test_example_time.update(seconds / max(1, n_examples * flips * self.frames))
            self._charge("test_example", n_examples * flips * self.frames)
        score = self._val_nauc(val) if val is not None else -math.inf
        if source.startswith("ridge") and val is not None and \
                (self.best_probe is None or score >= self.best_probe[2]):
            self.best_probe = (probs, val, score)
        if source.startswith("network"):
            self._update_plateau(score)
            if self.blend_probe and self.best_probe is not None and val is not None:
                # early in fine-tuning, the mean of the network's and the best ridge probe's
                # probabilities often beats both: the validation split decides
                blend, blend_val = 0.5 * (probs + self.best_probe[0]), 0.5 * (val + self.best_probe[1])
                blend_score = self._val_nauc(blend_val)
                if blend_score > score:
                    probs, val, score = blend, blend_val, blend_score
                    source += " + ridge probe (mean)"
        improved = score >= self.best_val or self.y_val is None
        if improved:
            self.best_val, self.best_predictions = score, probs
        self.history.append({"elapsed": self._elapsed(), "steps": self.steps_done,
                             "val_nauc": None if val is None else score, "source": source,
                             "returned": "this" if improved else "earlier best"})
        logger.info("test at %.1f s: %s, validation NAUC %.4f%s", self.history[-1]["elapsed"], source,
                    score, "" if improved else " (keeping an earlier, better checkpoint)")
        return self.best_predictions

    def _unchanged(self, why: str) -> np.ndarray:
        """Return the best predictions so far without a test pass (recorded in the history)."""
        logger.info("%s at %.1f s: returning the best predictions so far", why, self._elapsed())
        self.history.append({"elapsed": self._elapsed(), "steps": self.steps_done, "val_nauc": None,
                             "source": f"unchanged ({why})", "returned": "earlier best"})
        return self.best_predictions

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
