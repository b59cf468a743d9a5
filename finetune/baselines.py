"""Baselines every later result is compared with.

:class:`LinearModel` is the seed paper's linear baseline (the AutoDL starting kit's
sample submission; Liu et al., "Towards automated deep learning: Analysis of the AutoDL
challenge series", NeurIPS 2019 competition track): flatten the example, one linear
layer with sigmoid outputs, Adam, batch 30; variable-size images are resized to a fixed
size; the number of training steps doubles at each call (10 at the first), and the model
stops itself when the estimated time of the next train + test call exceeds what remains.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from autodl.clock import Clock, WallClock
from autodl.metadata import AutoDLMetadata
from finetune.data import load_arrays, target_size

logger = logging.getLogger(__name__)


class LinearModel:
    """The starting kit's linear model, in PyTorch, with the challenge's ``Model`` interface.

    Parameters
    ----------
    metadata:
        The train set's metadata.
    clock:
        Where time is read (the ingestion's clock).
    image_size:
        Side length variable-size images are resized to; fixed-size images larger than
        ``max_image_size`` are shrunk (aspect ratio kept).
    max_image_size:
        Cap on the larger side of fixed-size images.
    batch_size, learning_rate, seed:
        Adam's batch size and step size; the seed of initialisation and batch order.
    """

    def __init__(self, metadata: AutoDLMetadata, clock: Clock | None = None, *,
                 image_size: int = 32, max_image_size: int = 64, batch_size: int = 30,
                 learning_rate: float = 1e-3, seed: int = 0, threads: int | None = None):
        import torch

        self.metadata = metadata
        self.clock = clock or WallClock()
        self.output_dim = metadata.get_output_size()
        shape = metadata.get_tensor_shape()
        self.size = target_size(shape, image_size, max_image_size)
        self.frames = shape[0] if shape[0] > 0 else 1
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        if threads:
            torch.set_num_threads(threads)
        self.done_training = False
        self.net: Any = None
        self.x_train = self.y_train = self.x_test = None
        self.cumulated_num_steps = 0
        self.cumulated_num_tests = 0
        self.total_train_time = 0.0
        self.estimated_time_per_step: float | None = None
        self.estimated_time_test: float | None = None
        self.trained_since_test = False
        self.last_predictions: np.ndarray | None = None
        _warm_up_optimizer()

    # --- data ---------------------------------------------------------------------------
    def _prepare(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        x, y = load_arrays(dataset, self.size, self.frames)
        x = x.reshape(len(x), -1)
        x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
        return x, y

    # --- the Model interface ------------------------------------------------------------
    def train(self, dataset: Any, remaining_time_budget: float | None = None) -> None:
        import torch

        t_start = self.clock.now()
        if self.x_train is None:
            self.x_train, self.y_train = self._prepare(dataset)
            self.net = torch.nn.Linear(self.x_train.shape[1], self.output_dim)
            self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.learning_rate)
            self.loss_fn = torch.nn.BCEWithLogitsLoss()
            logger.info("linear model on %d examples of %d features", *self.x_train.shape)
        remaining = (remaining_time_budget or 1200.0) - (self.clock.now() - t_start)
        steps = self.steps_to_train(remaining)
        if steps <= 0:
            logger.info("not enough time for more training (%.2f s left): done", remaining)
            self.done_training = True
            return
        xt = torch.from_numpy(self.x_train)
        yt = torch.from_numpy(self.y_train)
        t0 = self.clock.now()
        self.net.train()
        n = len(xt)
        for _ in range(steps):
            idx = torch.from_numpy(self.rng.integers(0, n, size=min(self.batch_size, n)))
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.net(xt[idx]), yt[idx])
            loss.backward()
            self.optimizer.step()
        self.total_train_time += self.clock.now() - t0
        self.cumulated_num_steps += steps
        self.estimated_time_per_step = self.total_train_time / self.cumulated_num_steps
        self.trained_since_test = True
        logger.debug("trained %d steps (loss %.4f)", steps, loss.item())

    def steps_to_train(self, remaining: float) -> int:
        """10 steps at first, then 2**k at the k-th call while the next call still fits."""
        if self.estimated_time_per_step is None:
            return 10
        test_time = self.estimated_time_test if self.estimated_time_test is not None else 0.0
        max_steps = int((remaining - 2 * test_time) / max(self.estimated_time_per_step, 1e-6))
        if max_steps < 1:
            return 0
        steps = int(2 ** self.cumulated_num_tests)
        return steps if steps <= max_steps else 0

    def test(self, dataset: Any, remaining_time_budget: float | None = None) -> np.ndarray:
        import torch

        if not self.trained_since_test and self.last_predictions is not None:
            return self.last_predictions
        t0 = self.clock.now()
        if self.x_test is None:
            self.x_test, _ = self._prepare(dataset)
        self.net.eval()
        with torch.no_grad():
            pred = torch.sigmoid(self.net(torch.from_numpy(self.x_test))).numpy()
        self.estimated_time_test = self.clock.now() - t0
        self.cumulated_num_tests += 1
        self.trained_since_test = False
        self.last_predictions = pred
        return pred


def _warm_up_optimizer() -> None:
    """Take one Adam step on a dummy parameter.

    The first ``optimizer.step()`` of a process imports torch's compiler stack (about
    2 s on these CPUs); paying it while the model is constructed keeps it out of the
    time budget, as the challenge allows.
    """
    import torch

    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([p])
    p.grad = torch.ones(1)
    opt.step()
