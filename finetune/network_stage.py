"""The fine-tuning learner's network: built, fine-tuned in chunks of steps, and run over a dataset.

:class:`NetworkTrainer` is the part of :class:`finetune.learner.FineTuneLearner` that owns the
network (:class:`finetune.network.FineTuneNet` on the configuration's backbone) and its
optimizer: it builds and warms them up, takes training steps (the configuration's batch size,
augmentation, learning-rate schedule, softmax temperature ``tau``; AutoCLINT's recipe, see
:mod:`finetune.learner`), computes embeddings and logits in eval mode, and keeps what the
clock has measured of both (seconds per step, per test example). Every forward pass and step is
charged to the clock at the timing table's price.

Its random numbers come from its own generators, seeded from the learner's seed: batches and
augmentation from ``default_rng(seed)``; PyTorch's global generator, forked and restored around
each use (initialisation, dropout), is seeded from ``default_rng([seed, 2])``.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodl.clock import Clock
from finetune.budget import Budget
from finetune.decoded_data import DecodedData

logger = logging.getLogger(__name__)


class OutOfTime(Exception):
    """A test pass would end after the budget."""


@dataclass
class Timer:
    """Running estimate (exponential moving average) of a duration, read from the clock."""

    value: float | None = None
    alpha: float = 0.5

    def update(self, seconds: float) -> None:
        self.value = seconds if self.value is None else (1 - self.alpha) * self.value + self.alpha * seconds


class NetworkTrainer:
    """The network of one learner and its training (see the module docstring).

    Parameters
    ----------
    config:
        The validated fine-tuning configuration.
    data:
        The learner's decoded sets (read: training tensors, set sizes, ``multilabel``).
    clock, timing:
        Passes and steps are charged to ``clock`` at ``timing``'s price.
    budget:
        The learner's budget (seconds spent so far, from the anchor of each call).
    device:
        The torch device.
    output_dim, in_chans, frames:
        Classes (labels), channels and frames per clip of the data.
    seed:
        Seed of the batches, the augmentation and PyTorch's generator (initialisation, dropout).
    """

    def __init__(self, config: Mapping[str, Any], data: DecodedData, clock: Clock, timing: Any, *,
                 budget: Budget, device: Any, output_dim: int, in_chans: int, frames: int,
                 seed: int):
        import torch

        self.config = config
        self.data = data
        self.clock = clock
        self.timing = timing
        self.budget = budget
        self.device = device
        self.cuda = device.type == "cuda"
        self.output_dim = output_dim
        self.in_chans = in_chans
        self.frames = frames
        self.rng = np.random.default_rng(seed)  # batches, augmentation
        self._torch_seeds = np.random.default_rng([seed, 2])  # seeds of PyTorch's generator, per use

        with self.torch_rng():
            self.net = self._build_network().to(self.device)
        if self.cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.optimizer = self._make_optimizer()
        self._warm_up()

        self.step_time = Timer()
        self.test_example_time = Timer()
        self.steps_done = 0
        self.steps_at_last_test = -1
        self.total_steps_estimate = 1.0
        self._plateau_best = -math.inf
        self._plateau_bad = 0
        self._lr_scale = 1.0

    # --- set-up -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def torch_rng(self) -> Iterator[None]:
        """Draw from PyTorch's global generator seeded from this trainer's own stream, and
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
        with self.torch_rng(), self.autocast():
            loss = self.net(x).float().mean()
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.net.load_state_dict(state)
        self.optimizer.load_state_dict(opt_state)

    def autocast(self) -> Any:
        import torch

        if self.cuda:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # --- passes over a set ------------------------------------------------------------------
    def forward_cost(self, images: int) -> float:
        """The timing table's seconds of an eval-mode forward pass over ``images`` frames."""
        return self.timing.forward_s(self.config["backbone"], max(self.data.size)) * images

    @staticmethod
    def _batches(x: Any, batch: int = 128) -> Iterator[Any]:
        for i in range(0, len(x), batch):
            yield x[i:i + batch]

    def embed(self, x: Any) -> Any:
        """Pooled features of clips ``[N, T, C, H, W]`` (averaged over frames), eval mode."""
        import torch

        self.net.eval()
        out = []
        with torch.no_grad(), self.autocast():
            for xb in self._batches(x):
                b, t = xb.shape[:2]
                out.append(self.net.embed(xb.flatten(0, 1)).float().view(b, t, -1).mean(1))
        self.clock.charge("forward", lambda: self.forward_cost(len(x) * self.frames))
        return torch.cat(out)

    def logits(self, x: Any, stop_at: float | None = None) -> Any:
        """Logits of clips ``x``; raises :class:`OutOfTime` once ``stop_at`` seconds are spent."""
        import torch

        self.net.eval()
        out = []
        flips = 2 if self.config["test_time_flip"] else 1
        with torch.no_grad(), self.autocast():
            for xb in self._batches(x):
                if stop_at is not None and self.budget.elapsed() > stop_at:
                    raise OutOfTime
                logits = self.net(xb).float()
                if flips == 2:
                    logits = 0.5 * (logits + self.net(torch.flip(xb, dims=[-1])).float())
                out.append(logits)
                self.clock.charge("forward", lambda: self.forward_cost(len(xb) * self.frames * flips))
        return torch.cat(out)

    def probabilities(self, logits: Any) -> np.ndarray:
        """The network's outputs: logits divided by the temperature ``tau`` (as in training),
        then a softmax (or a sigmoid per label)."""
        import torch

        z = logits / float(self.config["tau"])
        return (torch.sigmoid(z) if self.data.multilabel else torch.softmax(z, dim=1)).cpu().numpy()

    @property
    def has_new_steps(self) -> bool:
        """Steps were taken since the last test pass."""
        return self.steps_done != self.steps_at_last_test

    def test_pass(self, stop_at: float) -> tuple[np.ndarray, np.ndarray]:
        """The probabilities of the test and validation sets; raises :class:`OutOfTime` once
        ``stop_at`` seconds of the budget are spent (the pass is then abandoned)."""
        data = self.data
        t = self.clock.now()
        try:
            probs = self.probabilities(self.logits(data.x_test, stop_at))
            val = self.probabilities(self.logits(data.x_val, stop_at))
        except OutOfTime:
            raise OutOfTime("test pass abandoned: slower than estimated") from None
        flips = 2 if self.config["test_time_flip"] else 1
        examples = (len(data.x_test) + len(data.x_val)) * flips * self.frames
        self.test_example_time.update((self.clock.now() - t) / max(1, examples))
        self.steps_at_last_test = self.steps_done
        return probs, val

    def estimated_test_time(self) -> float:
        """Seconds of a network test pass (test and validation sets)."""
        n = len(self.data.x_test) if self.data.x_test is not None else 0
        val = len(self.data.x_val) if self.data.x_val is not None else 0
        flips = 2 if self.config["test_time_flip"] else 1
        per = self.test_example_time.value
        if per is None:  # before any test pass: the table's forward pass, or 0.01 s
            per = self.clock.estimate(lambda: self.forward_cost(1), lambda: 0.01)
        return per * (n + val) * flips * self.frames

    # --- training ---------------------------------------------------------------------------
    def step_cost(self) -> float:
        """The timing table's seconds of one training step (its ``train_step_s``).

        The table measures full steps only: forward and backward through the whole network
        and the optimizer step over all its parameters. A step with a frozen backbone
        (``train_layers`` other than ``all``) needs no backward pass through the frozen
        layers (none at all before the first trained one) and updates fewer parameters, but
        the table cannot price that, so it is charged the full step: conservative, such a
        configuration runs no faster on the simulated clock than fine-tuning everything.
        """
        c, data = self.config, self.data
        return self.timing.train_step_s(c["backbone"], min(int(c["batch_size"]), len(data.x_train)),
                                        max(data.size), c["optimizer"], c["augmentation"], frames=self.frames)

    def estimated_step_time(self) -> float:
        """Seconds per training step: measured on the clock; before any step, the clock's
        estimate: the timing table's price (simulated clock) or a few forward passes' worth
        at the measured seconds per test example (0.01 s before a test pass)."""
        if self.step_time.value is not None:
            return self.step_time.value
        return self.clock.estimate(
            self.step_cost,
            lambda: 3 * (self.test_example_time.value or 0.01) * int(self.config["batch_size"]) * self.frames)

    def _learning_rate(self, steps_per_epoch: int) -> float:
        c = self.config
        base = c["learning_rate"]
        warm = c["warmup_epochs"] * steps_per_epoch
        if warm > 0 and self.steps_done < warm:
            return base * (self.steps_done + 1) / warm
        if c["lr_schedule"] == "cosine":
            total = max(1.0, self.total_steps_estimate - warm)
            frac = min(1.0, (self.steps_done - warm) / total)
            return base * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        return base * self._lr_scale

    def loss(self, logits: Any, targets: Any) -> Any:
        """Cross-entropy of ``logits / tau`` (AutoCLINT divides the logits by its temperature
        in the forward pass, for training and prediction alike); binary cross-entropy per
        label for multi-label data."""
        import torch.nn.functional as F

        z = logits / float(self.config["tau"])
        if self.data.multilabel:
            return F.binary_cross_entropy_with_logits(z, targets)
        return F.cross_entropy(z, targets.argmax(1))

    def train_steps(self, steps: int, stop_at: float | None = None) -> int:
        """Take up to ``steps`` training steps; stop once ``stop_at`` seconds of the budget are
        spent. Returns the steps taken."""
        import torch

        from finetune.augment import augment

        c = self.config
        x_train, y_train = self.data.x_train, self.data.y_train
        bs = min(int(c["batch_size"]), len(x_train))
        n = len(x_train)
        steps_per_epoch = max(1, n // bs)
        seconds_left = self.budget.total - self.budget.elapsed()
        remaining_steps = seconds_left / max(self.estimated_step_time(), 1e-6)
        self.total_steps_estimate = self.steps_done + max(1.0, 0.8 * remaining_steps)
        step_cost = functools.cache(self.step_cost)  # priced once, and only if a charge needs it
        self.net.train()
        t = self.clock.now()
        loss = None
        taken = 0
        with self.torch_rng():
            for _ in range(steps):
                idx = torch.from_numpy(self.rng.integers(0, n, bs)).to(self.device)
                xb = augment(x_train[idx], c["augmentation"], self.rng)
                for group in self.optimizer.param_groups:
                    group["lr"] = self._learning_rate(steps_per_epoch)
                self.optimizer.zero_grad(set_to_none=True)
                with self.autocast():
                    logits = self.net(xb).float()
                loss = self.loss(logits, y_train[idx])
                loss.backward()
                self.optimizer.step()
                self.steps_done += 1
                taken += 1
                self.clock.charge("train step", step_cost)
                if stop_at is not None and taken < steps and self.budget.elapsed() > stop_at:
                    logger.info("steps slower than estimated: chunk stopped after %d of %d steps",
                                taken, steps)
                    break
        if self.cuda:
            torch.cuda.synchronize()
        self.step_time.update((self.clock.now() - t) / taken)
        logger.info("trained %d steps (total %d, %.3f s/step, loss %.4f)", taken, self.steps_done,
                    self.step_time.value, loss.item())
        return taken

    def update_plateau(self, score: float) -> None:
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
