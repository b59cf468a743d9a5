"""The small PyTorch networks of the learned selectors, and how they are trained.

Training only: a fitted selector keeps the weights as numpy arrays and predicts with numpy
(:mod:`selector.learned`), so that selecting needs no PyTorch and a saved selector
(safetensors) predicts exactly what the fitted one did.

- :func:`train_classifier`: the seed paper's two-layer perceptron (Linear -> Swish/SiLU ->
  Dropout -> Linear), trained with Adam on a cross-entropy loss (approaches 1b and 1c).
- :func:`train_vae`: a small variational autoencoder on embeddings (approach 2): an MLP
  encoder to the mean and log-variance of a Gaussian latent, an MLP decoder back, a
  Gaussian (squared-error) reconstruction term and the KL divergence to N(0, I).

Both run on the CPU with the caller's PyTorch thread count, and are deterministic given
``seed``: the global PyTorch random state is forked (:func:`torch.random.fork_rng`), so a
fit neither depends on nor changes the caller's random state; minibatches are drawn with
a numpy ``Generator`` seeded from ``seed``. (Results are bit-identical for one machine and
thread count; another thread count may sum in another order.)

This module imports PyTorch at the top: import it inside functions only.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import nn

logger = logging.getLogger(__name__)

LOGVAR_CLAMP = 10.0
"""The encoder's log-variances are clipped to [-10, 10] (training and prediction alike)."""


class MLP(nn.Module):
    """Linear(in, neurons) -> SiLU (Swish) -> Dropout -> Linear(neurons, out): the seed paper's head."""

    def __init__(self, in_dim: int, neurons: int, out_dim: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, neurons)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(neurons, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.drop(self.act(self.fc1(x))))


class VAE(nn.Module):
    """MLP encoder ``in -> hidden -> 2 * latent`` (mean, log-variance), MLP decoder ``latent -> hidden -> in``."""

    def __init__(self, in_dim: int, hidden: int, latent_dim: int):
        super().__init__()
        self.enc1 = nn.Linear(in_dim, hidden)
        self.enc2 = nn.Linear(hidden, 2 * latent_dim)
        self.dec1 = nn.Linear(latent_dim, hidden)
        self.dec2 = nn.Linear(hidden, in_dim)
        self.act = nn.SiLU()
        self.latent_dim = latent_dim

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.enc2(self.act(self.enc1(x)))
        mu, logvar = h[:, :self.latent_dim], h[:, self.latent_dim:]
        return mu, logvar.clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.dec2(self.act(self.dec1(z)))


def _arrays(module: nn.Module) -> dict[str, np.ndarray]:
    """The module's parameters as float32 numpy arrays (``fc1.weight`` -> ``fc1.weight``)."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in module.state_dict().items()}


def _minibatches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def train_classifier(x: np.ndarray, y: np.ndarray, n_classes: int, *, neurons: int, dropout: float,
                     lr: float, epochs: int, batch_size: int, seed: int,
                     class_weight: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Train :class:`MLP` on ``x`` ``[N, F]`` (standardised) with integer labels ``y`` ``[N]``.

    Parameters
    ----------
    class_weight:
        ``[n_classes]`` weights of the cross-entropy terms (balances datasets of different
        sizes); None weighs every sample alike.

    Returns
    -------
    dict
        ``fc1.weight`` ``[neurons, F]``, ``fc1.bias``, ``fc2.weight`` ``[n_classes, neurons]``,
        ``fc2.bias`` (float32).
    """
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    weight = None if class_weight is None else torch.as_tensor(class_weight, dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(xt.shape[1], neurons, n_classes, dropout)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss(weight=weight)
        model.train()
        for epoch in range(epochs):
            total = 0.0
            for idx in _minibatches(len(xt), batch_size, rng):
                index = torch.from_numpy(idx)
                opt.zero_grad(set_to_none=True)
                loss = loss_fn(model(xt[index]), yt[index])
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            logger.debug("mlp epoch %d/%d: loss %.4f", epoch + 1, epochs, total / max(len(xt), 1))
    return _arrays(model)


def train_vae(x: np.ndarray, *, hidden: int, latent_dim: int, beta: float, lr: float, epochs: int,
              batch_size: int, seed: int) -> dict[str, np.ndarray]:
    """Train :class:`VAE` on ``x`` ``[N, D]`` (standardised embeddings).

    The loss per sample is ``0.5 * ||x - decode(z)||^2 + beta * KL(q(z|x) || N(0, I))`` with
    ``z`` drawn by the reparameterisation trick (a Gaussian decoder of unit variance).

    Returns
    -------
    dict
        The encoder's and decoder's weights (``enc1.*``, ``enc2.*``, ``dec1.*``, ``dec2.*``;
        float32). Prediction needs the encoder only.
    """
    rng = np.random.default_rng(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = VAE(xt.shape[1], hidden, latent_dim)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        model.train()
        for epoch in range(epochs):
            total = 0.0
            for idx in _minibatches(len(xt), batch_size, rng):
                xb = xt[torch.from_numpy(idx)]
                mu, logvar = model.encode(xb)
                z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
                recon = 0.5 * ((model.decode(z) - xb) ** 2).sum(dim=1)
                kl = 0.5 * (mu ** 2 + logvar.exp() - 1.0 - logvar).sum(dim=1)
                loss = (recon + beta * kl).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += loss.item() * len(idx)
            logger.debug("vae epoch %d/%d: loss %.4f", epoch + 1, epochs, total / max(len(xt), 1))
    return _arrays(model)
