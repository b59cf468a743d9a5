"""Transferability and dataset-distance measures, written from their papers in numpy.

Transferability measures score how well a *source* (a pretrained model, here represented by
its features or its class probabilities on the target's samples) will transfer to a
labelled *target*: higher is better.

- :func:`logme`: You, Liu, Wang and Long 2021, "LogME: Practical Assessment of Pre-trained
  Models for Transfer Learning" (ICML): the maximised log evidence of a Bayesian linear
  model on the frozen features.
- :func:`leep`: Nguyen, Hassner, Seeger and Archambeau 2020, "LEEP: A New Measure to
  Evaluate Transferability of Learned Representations" (ICML).
- :func:`nce`: Tran, Nguyen and Hassner 2019, "Transferability and Hardness of Supervised
  Classification Tasks" (ICCV): the negative conditional entropy -H(Y|Z).
- :func:`hscore`: Bao, Li, Huang, Zheng, Wang, Tao and Guibas 2019, "An Information-Theoretic
  Approach to Transferability in Task Transfer Learning" (ICIP); the shrinkage-regularised
  variant of Ibrahim, Ponomareva and Mazumder 2022, "Newer is not always better: Rethinking
  transferability metrics, their peculiarities, stability and performance" (ECML PKDD).
- :func:`gbc`: Pandy, Agostinelli, Uijlings, Ferrari and Mensink 2022, "Transferability
  Estimation using Bhattacharyya Class Separability" (CVPR).

Distances between two labelled datasets (lower is more similar):

- :func:`otdd`: Alvarez-Melis and Fusi 2020, "Geometric Dataset Distances via Optimal
  Transport" (NeurIPS): optimal transport over (feature, label) pairs whose ground cost adds
  the Wasserstein distance between the two labels' feature distributions.
- :func:`task2vec` / :func:`task2vec_distance`: Achille, Lam, Tewari, Ravichandran, Maji,
  Fowlkes, Soatto and Perona 2019, "Task2Vec: Task Embedding for Meta-Learning" (ICCV): the
  diagonal Fisher information of a probe head on a fixed feature extractor.

Conventions shared by every function: ``features`` is ``[N, D]`` (any real dtype; computed
in float64); ``labels`` is ``[N]`` of integer class indices or ``[N, K]`` one-hot (exactly one
1 per row: reduce multi-label rows yourself, e.g. by argmax). Only the classes present in
``labels`` count (a one-hot column that is all zero is ignored). Per-class Gaussians use the
maximum-likelihood moments (divisor ``n``, not ``n - 1``). Bad input raises ``ValueError``
naming the argument, what it got and what was expected. Logarithms are natural.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
import threading
import time
from collections import OrderedDict
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["bures_wasserstein2", "class_gaussians", "fit_softmax_probe", "gbc", "hscore", "leep", "logme", "nce",
           "otdd", "probe_fisher_diag", "probe_seconds_saved", "single_blas_thread", "softmax", "task2vec",
           "task2vec_distance"]


def single_blas_thread() -> Any:
    """A context in which BLAS/LAPACK run on one thread (``threadpoolctl``).

    These measures multiply matrices of a few hundred rows, where BLAS threads cost more than
    they give, and far more on a loaded machine: a 100-class probe on 256 x 1280 embeddings
    took 16.7 s with OpenBLAS's default threads on this project's two busy cores and 0.48 s
    with one.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


# --- input checks -------------------------------------------------------------------------------

def _as_features(features: Any, name: str = "features") -> np.ndarray:
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[0] == 0 or f.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty [N, D] array, got shape {f.shape}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} holds NaN or infinite values")
    return f


def _class_indices(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """``[N]`` integer class indices (0..C-1, over the classes present) from ``[N]`` or one-hot ``[N, K]``."""
    y = np.asarray(labels)
    if y.ndim == 2:
        if y.shape[0] != n:
            raise ValueError(f"{name} must have {n} rows (one per sample), got shape {y.shape}")
        if not (np.all((y == 0) | (y == 1)) and np.all(y.sum(axis=1) == 1)):
            raise ValueError(f"{name}: a [N, K] label matrix must be one-hot (exactly one 1 per row); "
                             "reduce multi-label rows to one class first (e.g. argmax)")
        y = np.argmax(y, axis=1)
    elif y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"{name} must have {n} entries (one per sample), got {y.shape[0]}")
        if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{name}: [N] labels must be integer class indices, got {y.dtype} values")
    else:
        raise ValueError(f"{name} must be [N] class indices or [N, K] one-hot, got shape {y.shape}")
    _, inverse = np.unique(y.astype(np.int64), return_inverse=True)
    return inverse.reshape(-1).astype(np.int64)


def _check_min_per_class(y: np.ndarray, minimum: int, what: str, name: str = "labels") -> None:
    counts = np.bincount(y)
    if counts.min() < minimum:
        raise ValueError(f"{name}: {int((counts < minimum).sum())} class(es) have fewer than {minimum} samples "
                         f"(smallest: {int(counts.min())}); {what} needs at least {minimum} per class")


# --- LogME ----------------------------------------------------------------------------------------

def logme(features: Any, labels: Any, *, max_iter: int = 100, tol: float = 1e-6, eps: float = 1e-10) -> float:
    """LogME: the average per-sample log evidence of a Bayesian linear model on the features.

    You, Liu, Wang and Long 2021, "LogME: Practical Assessment of Pre-trained Models for
    Transfer Learning" (ICML), Section 4 and Algorithm 1. For each class ``k`` the target is
    the indicator ``y_k = 1[label == k]`` and the model ``y_k = F w + noise`` with prior
    ``w ~ N(0, alpha^-1 I_D)`` and noise ``N(0, beta^-1)``. Its log evidence is::

        L(alpha, beta) = D/2 log alpha + N/2 log beta - 1/2 log|A| - beta/2 ||F m - y||^2
                         - alpha/2 m^T m - N/2 log(2 pi),
        A = alpha I + beta F^T F,   m = beta A^-1 F^T y,

    maximised by the fixed-point iteration of Algorithm 1 (MacKay's updates)::

        gamma = sum_i beta s_i / (alpha + beta s_i),  alpha <- gamma / m^T m,
        beta <- (N - gamma) / ||F m - y||^2

    where ``s_i`` are the eigenvalues of ``F^T F`` (squared singular values of ``F``; one
    SVD of ``F`` serves every class and iteration). ``log|A|`` counts the ``D - rank(F)``
    zero eigenvalues as ``log alpha`` each. The score is ``L / N`` averaged over the classes
    present.

    Parameters
    ----------
    features:
        ``[N, D]`` features of the target's samples (used as given: no centring).
    labels:
        ``[N]`` class indices or ``[N, K]`` one-hot.
    max_iter, tol:
        At most ``max_iter`` fixed-point steps per class; stop when ``alpha / beta`` changes
        by less than ``tol`` relatively.
    eps:
        Floor of ``m^T m`` and of the residual in the updates (a target fitted exactly would
        send ``beta`` to infinity).

    Returns
    -------
    float
        The LogME score (higher: the features explain the labels better).
    """
    f = _as_features(features)
    y = _class_indices(labels, len(f))
    n, d = f.shape
    u, s, _ = np.linalg.svd(f, full_matrices=False)
    rank = int(np.sum(s > s.max() * max(n, d) * np.finfo(np.float64).eps)) if s.size else 0
    u, sigma = u[:, :rank], s[:rank] ** 2
    evidences = []
    for k in range(int(y.max()) + 1):
        t = (y == k).astype(np.float64)
        x2 = (u.T @ t) ** 2                       # squared projections of y on the left singular vectors
        outside = max(float(t @ t - x2.sum()), 0.0)   # ||y||^2 outside F's column space
        alpha, beta = 1.0, 1.0
        for _ in range(max_iter):
            lam = alpha / beta
            gamma = float(np.sum(sigma / (sigma + lam)))
            m2 = float(np.sum(sigma * x2 / (sigma + lam) ** 2))            # m^T m
            res2 = float(np.sum(x2 * (lam / (sigma + lam)) ** 2)) + outside  # ||F m - y||^2
            alpha = gamma / max(m2, eps)
            beta = max(n - gamma, eps) / max(res2, eps)
            if abs(alpha / beta - lam) <= tol * lam:
                break
        lam = alpha / beta
        m2 = float(np.sum(sigma * x2 / (sigma + lam) ** 2))
        res2 = float(np.sum(x2 * (lam / (sigma + lam)) ** 2)) + outside
        log_det_a = float(np.sum(np.log(alpha + beta * sigma))) + (d - rank) * np.log(alpha)
        evidence = (d / 2 * np.log(alpha) + n / 2 * np.log(beta) - 0.5 * log_det_a
                    - beta / 2 * res2 - alpha / 2 * m2 - n / 2 * np.log(2 * np.pi))
        evidences.append(evidence / n)
    return float(np.mean(evidences))


# --- LEEP and NCE ---------------------------------------------------------------------------------

def leep(source_probs: Any, labels: Any) -> float:
    """LEEP: log expected empirical prediction of a source classifier on the target.

    Nguyen, Hassner, Seeger and Archambeau 2020, "LEEP: A New Measure to Evaluate
    Transferability of Learned Representations" (ICML), Section 3. With ``theta(x)`` the
    source model's class probabilities (``Z`` source classes):

    - empirical joint ``P(y, z) = 1/N sum_{i: y_i = y} theta(x_i)_z``;
    - conditional ``P(y | z) = P(y, z) / P(z)``, ``P(z) = sum_y P(y, z)``;
    - ``LEEP = 1/N sum_i log sum_z P(y_i | z) theta(x_i)_z``.

    Source classes that receive no probability mass at all (``P(z) = 0``) take no part.

    Parameters
    ----------
    source_probs:
        ``[N, Z]`` rows of probabilities (non-negative, each row summing to 1).
    labels:
        ``[N]`` target class indices or ``[N, K]`` one-hot.

    Returns
    -------
    float
        LEEP, at most 0 (0: every target label is predicted with certainty).
    """
    theta = _as_features(source_probs, "source_probs")
    if np.any(theta < 0) or not np.allclose(theta.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("source_probs must hold non-negative rows that sum to 1 (softmax outputs)")
    y = _class_indices(labels, len(theta))
    n = len(theta)
    onehot = np.eye(int(y.max()) + 1)[y]                    # [N, Y]
    joint = onehot.T @ theta / n                            # [Y, Z]
    marginal = joint.sum(axis=0)                            # [Z]
    cond = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)
    eep = np.sum(cond[y] * theta, axis=1)                   # expected empirical prediction of y_i
    return float(np.mean(np.log(eep)))


def nce(source_labels: Any, target_labels: Any) -> float:
    """NCE: negative conditional entropy ``-H(Y | Z)`` of target labels given source labels.

    Tran, Nguyen and Hassner 2019, "Transferability and Hardness of Supervised Classification
    Tasks" (ICCV), Section 3: with the empirical joint ``P(y, z)`` of the two labelings of the
    same samples, ``-H(Y | Z) = sum_{y, z} P(y, z) log P(y | z)``, ``P(y|z) = P(y, z) / P(z)``.

    Parameters
    ----------
    source_labels:
        ``[N]`` class indices from the source (e.g. the source model's argmax).
    target_labels:
        ``[N]`` class indices or ``[N, K]`` one-hot of the target task.

    Returns
    -------
    float
        ``-H(Y|Z)`` in nats: 0 when ``Z`` determines ``Y`` (e.g. identical labelings), negative
        otherwise.
    """
    zs = np.asarray(source_labels)
    if zs.ndim != 1 or zs.size == 0:
        raise ValueError(f"source_labels must be a non-empty [N] array of class indices, got shape {zs.shape}")
    z = _class_indices(zs, len(zs), "source_labels")
    y = _class_indices(target_labels, len(z), "target_labels")
    joint = np.zeros((int(y.max()) + 1, int(z.max()) + 1))
    np.add.at(joint, (y, z), 1.0)
    joint /= len(z)
    marginal = joint.sum(axis=0, keepdims=True)
    nz = joint > 0
    return float(np.sum(joint[nz] * np.log((joint / marginal)[nz])))


# --- H-score --------------------------------------------------------------------------------------

def hscore(features: Any, labels: Any, *, shrinkage: float | str | None = None) -> float:
    """H-score: ``tr(cov(f)^-1 cov(E[f | y]))``.

    Bao et al. 2019, "An Information-Theoretic Approach to Transferability in Task Transfer
    Learning" (ICIP), Definition 2: ``cov(f)`` is the covariance of the features, ``E[f|y]``
    replaces each sample's features by the mean of its class, so ``cov(E[f|y])`` is the
    between-class covariance (both with divisor ``N``). The inverse is a pseudo-inverse
    (features are often rank-deficient).

    With ``shrinkage`` the regularised H-score of Ibrahim, Ponomareva and Mazumder 2022
    ("Newer is not always better", ECML PKDD), Section 4:
    ``tr(cov_a(f)^-1 (1 - a) cov(E[f|y]))`` with ``cov_a = (1 - a) cov(f) + a mu I`` and
    ``mu = tr(cov(f)) / D`` (Ledoit-Wolf's shrinkage target).

    Parameters
    ----------
    features:
        ``[N, D]``.
    labels:
        ``[N]`` class indices or ``[N, K]`` one-hot.
    shrinkage:
        None (the original H-score), a float ``a`` in [0, 1], or ``"ledoit-wolf"`` (``a``
        estimated by Ledoit and Wolf's formula, scikit-learn's ``ledoit_wolf_shrinkage``).

    Returns
    -------
    float
        The H-score (at least 0; higher: the classes are better separated in the features).
    """
    f = _as_features(features)
    y = _class_indices(labels, len(f))
    n, d = f.shape
    fc = f - f.mean(axis=0)
    cov_f = fc.T @ fc / n
    class_means = np.zeros((int(y.max()) + 1, d))
    np.add.at(class_means, y, fc)
    class_means /= np.bincount(y)[:, None]
    g = class_means[y]                                       # E[f | y] per sample (centred)
    cov_g = g.T @ g / n
    if shrinkage is None:
        return float(np.trace(np.linalg.pinv(cov_f, hermitian=True) @ cov_g))
    if isinstance(shrinkage, str):
        if shrinkage != "ledoit-wolf":
            raise ValueError(f"shrinkage={shrinkage!r}: expected None, a float in [0, 1] or 'ledoit-wolf'")
        from sklearn.covariance import ledoit_wolf_shrinkage

        a = float(ledoit_wolf_shrinkage(f)) if n > 1 else 0.0
    else:
        a = float(shrinkage)
        if not 0.0 <= a <= 1.0:
            raise ValueError(f"shrinkage={shrinkage!r}: a shrinkage coefficient must lie in [0, 1]")
    mu = np.trace(cov_f) / d
    cov_a = (1 - a) * cov_f + a * mu * np.eye(d)
    return float(np.trace(np.linalg.pinv(cov_a, hermitian=True) @ ((1 - a) * cov_g)))


# --- per-class Gaussians, GBC ---------------------------------------------------------------------

def class_gaussians(features: Any, labels: Any, *, covariance: str = "full",
                    min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Per-class means and covariances (maximum likelihood, divisor ``n_k``).

    Parameters
    ----------
    covariance:
        ``"full"`` (``[C, D, D]``), ``"diagonal"`` (``[C, D]`` variances) or ``"spherical"``
        (``[C]``: the mean of the diagonal variances).
    min_samples:
        Fewest samples a class may have (a covariance from one sample is undefined).

    Returns
    -------
    means, covariances
        ``[C, D]`` and the covariance array above, classes in the order of their indices.
    """
    if covariance not in ("full", "diagonal", "spherical"):
        raise ValueError(f"covariance={covariance!r}: expected 'full', 'diagonal' or 'spherical'")
    f = _as_features(features)
    y = _class_indices(labels, len(f))
    _check_min_per_class(y, min_samples, f"a per-class {covariance} covariance")
    means, covs = [], []
    for k in range(int(y.max()) + 1):
        fk = f[y == k]
        mk = fk.mean(axis=0)
        ck = fk - mk
        means.append(mk)
        if covariance == "full":
            covs.append(ck.T @ ck / len(fk))
        else:
            var = np.mean(ck ** 2, axis=0)
            covs.append(var if covariance == "diagonal" else np.mean(var))
    return np.asarray(means), np.asarray(covs)


def gbc(features: Any, labels: Any, *, gaussian: str = "diagonal", var_floor: float = 1e-4) -> float:
    """GBC: minus the summed Bhattacharyya coefficients between the classes' Gaussians.

    Pandy, Agostinelli, Uijlings, Ferrari and Mensink 2022, "Transferability Estimation using
    Bhattacharyya Class Separability" (CVPR), Section 3. Each class ``c`` is a Gaussian
    ``N(mu_c, Sigma_c)`` with diagonal (or spherical: ``sigma_c^2 I``) covariance; between two
    classes, with ``Sigma = (Sigma_i + Sigma_j) / 2``::

        D_B = 1/8 (mu_i - mu_j)^T Sigma^-1 (mu_i - mu_j) + 1/2 log(det Sigma / sqrt(det Sigma_i det Sigma_j))
        BC  = exp(-D_B),       GBC = - sum_i sum_{j != i} BC(c_i, c_j)

    (the sum runs over ordered pairs, so each pair counts twice, as in the paper). A spherical
    Gaussian's determinant is ``sigma^(2D)``.

    Parameters
    ----------
    gaussian:
        ``"diagonal"`` or ``"spherical"``.
    var_floor:
        Variances below it are raised to it (a constant feature has variance 0).

    Returns
    -------
    float
        GBC, at most 0 (0: the classes do not overlap at all).
    """
    if gaussian not in ("diagonal", "spherical"):
        raise ValueError(f"gaussian={gaussian!r}: expected 'diagonal' or 'spherical'")
    means, variances = class_gaussians(features, labels, covariance=gaussian)
    d = means.shape[1]
    var = np.maximum(variances, var_floor)
    if gaussian == "spherical":
        var = np.repeat(var[:, None], d, axis=1)           # sigma^2 on every axis: log det = D log sigma^2
    total = 0.0
    for i in range(len(means)):
        for j in range(len(means)):
            if i == j:
                continue
            avg = (var[i] + var[j]) / 2
            d_b = (np.sum((means[i] - means[j]) ** 2 / avg) / 8
                   + 0.5 * (np.sum(np.log(avg)) - 0.5 * np.sum(np.log(var[i])) - 0.5 * np.sum(np.log(var[j]))))
            total += np.exp(-d_b)
    return float(-total)


# --- OTDD -----------------------------------------------------------------------------------------

def bures_wasserstein2(mean1: Any, cov1: Any, mean2: Any, cov2: Any) -> float:
    """Squared 2-Wasserstein distance between two Gaussians (the Bures metric on covariances).

    ``W2^2 = ||m1 - m2||^2 + tr(S1 + S2 - 2 (S1^1/2 S2 S1^1/2)^1/2)`` (Dowson and Landau 1982;
    Alvarez-Melis and Fusi 2020 use it for the label-to-label distance). Covariances may be
    ``[D, D]`` matrices or ``[D]`` vectors of variances (diagonal Gaussians, where it reduces
    to ``||m1 - m2||^2 + ||sqrt(v1) - sqrt(v2)||^2``).
    """
    m1, m2 = np.asarray(mean1, np.float64), np.asarray(mean2, np.float64)
    s1, s2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    mean_term = float(np.sum((m1 - m2) ** 2))
    if s1.ndim == 1 and s2.ndim == 1:
        return mean_term + float(np.sum((np.sqrt(np.maximum(s1, 0)) - np.sqrt(np.maximum(s2, 0))) ** 2))
    s1 = np.diag(s1) if s1.ndim == 1 else s1
    s2 = np.diag(s2) if s2.ndim == 1 else s2
    root1 = _psd_sqrt(s1)
    cross = np.linalg.eigvalsh(root1 @ s2 @ root1)
    bures = np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.maximum(cross, 0)))
    return mean_term + max(float(bures), 0.0)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.maximum(w, 0))) @ v.T


def _label_w2(means_a: np.ndarray, covs_a: np.ndarray, means_b: np.ndarray, covs_b: np.ndarray) -> np.ndarray:
    """``[Ca, Cb]`` squared W2 distances between every class of A and every class of B."""
    if covs_a.ndim == 2:   # diagonal: closed form, vectorised
        sa, sb = np.sqrt(np.maximum(covs_a, 0)), np.sqrt(np.maximum(covs_b, 0))
        return (_sq_dists(means_a, means_b) + _sq_dists(sa, sb))
    roots_a = [_psd_sqrt(c) for c in covs_a]
    out = np.empty((len(means_a), len(means_b)))
    for i in range(len(means_a)):
        for j in range(len(means_b)):
            cross = np.linalg.eigvalsh(roots_a[i] @ covs_b[j] @ roots_a[i])
            bures = np.trace(covs_a[i]) + np.trace(covs_b[j]) - 2 * np.sum(np.sqrt(np.maximum(cross, 0)))
            out[i, j] = np.sum((means_a[i] - means_b[j]) ** 2) + max(bures, 0.0)
    return out


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[len(a), len(b)]`` squared Euclidean distances (from differences: exactly 0 between equal rows)."""
    from scipy.spatial.distance import cdist

    return cdist(a, b, "sqeuclidean")


def _import_ot() -> Any:
    """POT, without its TensorFlow / PyTorch / JAX / CuPy backends (numpy arrays only here).

    Importing POT imports every installed array library unless told not to (seconds each);
    the ``POT_BACKEND_DISABLE_*`` variables are set only where unset and only before POT's
    first import, so a user's own choice stands.
    """
    if "ot" not in sys.modules:
        for backend in ("TENSORFLOW", "PYTORCH", "JAX", "CUPY"):
            os.environ.setdefault(f"POT_BACKEND_DISABLE_{backend}", "1")
    import ot

    return ot


def otdd(features_a: Any, labels_a: Any, features_b: Any, labels_b: Any, *, covariance: str = "full",
         method: str = "exact", eps: float = 0.05, label_weight: float = 1.0, debias: bool = True,
         max_iter: int | None = None) -> float:
    """OTDD: the optimal-transport distance between two labelled datasets.

    Alvarez-Melis and Fusi 2020, "Geometric Dataset Distances via Optimal Transport"
    (NeurIPS), Section 3 with p = 2. Each label ``y`` of a dataset is represented by the
    distribution of its features, approximated by a Gaussian ``N(mu_y, Sigma_y)`` (the paper's
    efficient variant), so the label-to-label distance is the closed-form 2-Wasserstein
    (Bures) distance :func:`bures_wasserstein2`. The ground cost between samples is::

        c((x, y), (x', y')) = ||x - x'||^2 + label_weight * W2^2(N_y, N_y')

    and OTDD is the square root of the optimal transport cost between the two empirical
    distributions (uniform weights): a distance on the scale of the features, 0 for a dataset
    and itself (exact solver) and symmetric.

    Parameters
    ----------
    features_a, labels_a, features_b, labels_b:
        The two datasets (``[N, D]``, ``[M, D]``; labels ``[N]``/``[M]`` or one-hot). Each
        class needs at least 2 samples (its covariance).
    covariance:
        ``"full"`` (the paper's; ``O(D^3)`` per pair of classes) or ``"diagonal"`` (fast:
        ``W2^2 = ||mu - mu'||^2 + ||sigma - sigma'||^2`` with per-feature deviations).
    method:
        ``"exact"``: network simplex (``ot.emd2``), fine for a few thousand samples;
        ``"sinkhorn"``: entropic OT (``ot.sinkhorn2``, log-domain) with regularisation
        ``eps`` times the mean ground cost; with ``debias`` the Sinkhorn divergence
        ``OT(a, b) - (OT(a, a) + OT(b, b)) / 2`` (transport cost terms only), so that a dataset
        is still at distance 0 from itself (clipped at 0 before the square root).
    label_weight:
        Weight of the label term (1 in the paper's definition).
    max_iter:
        Iteration limit of the solver (default: 1,000,000 network-simplex iterations, or
        10,000 Sinkhorn iterations, stopping earlier when the marginals are met to 1e-9).

    Returns
    -------
    float
        ``sqrt(OT cost)``.
    """
    if method not in ("exact", "sinkhorn"):
        raise ValueError(f"method={method!r}: expected 'exact' or 'sinkhorn'")
    if covariance not in ("full", "diagonal"):
        raise ValueError(f"covariance={covariance!r}: expected 'full' or 'diagonal'")
    if method == "sinkhorn" and not eps > 0:
        raise ValueError(f"eps={eps!r}: the entropic regularisation must be positive")
    if label_weight < 0:
        raise ValueError(f"label_weight={label_weight!r}: must be non-negative")
    xa, xb = _as_features(features_a, "features_a"), _as_features(features_b, "features_b")
    if xa.shape[1] != xb.shape[1]:
        raise ValueError(f"features_a has {xa.shape[1]} features, features_b {xb.shape[1]}: embed both alike")
    ya = _class_indices(labels_a, len(xa), "labels_a")
    yb = _class_indices(labels_b, len(xb), "labels_b")
    try:
        mean_a, cov_a = class_gaussians(xa, ya, covariance=covariance)
    except ValueError as exc:
        raise ValueError(f"dataset a: {exc}") from None
    try:
        mean_b, cov_b = class_gaussians(xb, yb, covariance=covariance)
    except ValueError as exc:
        raise ValueError(f"dataset b: {exc}") from None
    ot = _import_ot()

    def cost(x1: np.ndarray, y1: np.ndarray, m1: np.ndarray, c1: np.ndarray,
             x2: np.ndarray, y2: np.ndarray, m2: np.ndarray, c2: np.ndarray) -> np.ndarray:
        return _sq_dists(x1, x2) + label_weight * _label_w2(m1, c1, m2, c2)[y1][:, y2]

    wa, wb = np.full(len(xa), 1 / len(xa)), np.full(len(xb), 1 / len(xb))
    m_ab = cost(xa, ya, mean_a, cov_a, xb, yb, mean_b, cov_b)
    if method == "exact":
        value = float(ot.emd2(wa, wb, m_ab, numItermax=max_iter or 1_000_000))
    else:
        scale = float(m_ab.mean()) or 1.0
        reg = eps * scale

        def sinkhorn(a: np.ndarray, b: np.ndarray, m: np.ndarray) -> float:
            return float(ot.sinkhorn2(a, b, m, reg, method="sinkhorn_log", numItermax=max_iter or 10_000,
                                    stopThr=1e-9))

        value = sinkhorn(wa, wb, m_ab)
        if debias:
            m_aa = cost(xa, ya, mean_a, cov_a, xa, ya, mean_a, cov_a)
            m_bb = cost(xb, yb, mean_b, cov_b, xb, yb, mean_b, cov_b)
            value -= 0.5 * (sinkhorn(wa, wa, m_aa) + sinkhorn(wb, wb, m_bb))
    return float(np.sqrt(max(value, 0.0)))


# --- linear softmax probe, Task2Vec ---------------------------------------------------------------

def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (stable)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _targets(labels: Any, n: int, name: str = "labels") -> np.ndarray:
    """``[N, C]`` target distributions from class indices, one-hot or multi-hot rows.

    Multi-hot rows are spread evenly over their classes; columns that no row uses are dropped.
    """
    y = np.asarray(labels)
    if y.ndim == 1:
        idx = _class_indices(y, n, name)
        return np.eye(int(idx.max()) + 1)[idx]
    if y.ndim != 2 or y.shape[0] != n:
        raise ValueError(f"{name} must be [N] class indices or an [N, K] label matrix with N={n}, got {y.shape}")
    y = np.asarray(y, np.float64)
    if np.any(y < 0):
        raise ValueError(f"{name}: a label matrix must be non-negative")
    sums = y.sum(axis=1)
    if np.any(sums <= 0):
        raise ValueError(f"{name}: {int(np.sum(sums <= 0))} row(s) have no positive label")
    y = y[:, y.sum(axis=0) > 0]
    return y / y.sum(axis=1, keepdims=True)


class _ProbeCache:
    """Fitted probes of this process, by a SHA-256 of their inputs, least recently used dropped first.

    A comparison fits the probe of one training dataset's subsample again and again: in every
    fold it is a training dataset of, and in every selector fitting one (the five source-head
    measures share it). The fit is deterministic (L-BFGS from zero weights, one BLAS thread), so
    a kept ``W, b`` is what fitting again gives. Holds at most ``max_bytes`` of arrays; counts the
    seconds the fits it answered had taken (:func:`probe_seconds_saved`).
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = int(max_bytes)
        self.saved_seconds = 0.0
        self._probes: OrderedDict[bytes, tuple[np.ndarray, np.ndarray, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @staticmethod
    def key(features: Any, labels: Any, l2: Any, max_iter: Any) -> bytes | None:
        """The digest of a fit's inputs; None for inputs of Python objects (no bytes to digest)."""
        h = hashlib.sha256(repr((l2, max_iter)).encode())
        for a in (features, labels):
            a = np.ascontiguousarray(a)
            if a.dtype.hasobject:
                return None
            h.update(repr((a.dtype.str, a.shape)).encode())
            h.update(a.tobytes())
        return h.digest()

    def get(self, key: bytes) -> tuple[np.ndarray, np.ndarray] | None:
        """Copies of the kept ``W, b`` (None where none is kept)."""
        with self._lock:
            hit = self._probes.get(key)
            if hit is None:
                return None
            self._probes.move_to_end(key)
            self.saved_seconds += hit[2]
        return hit[0].copy(), hit[1].copy()

    def put(self, key: bytes, w: np.ndarray, b: np.ndarray, seconds: float) -> None:
        """Keep copies of ``W, b`` and the seconds their fit took; drop the oldest beyond ``max_bytes``."""
        size = w.nbytes + b.nbytes
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._probes:
                return
            self._probes[key] = (w.copy(), b.copy(), float(seconds))
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (w_old, b_old, _) = self._probes.popitem(last=False)
                self._bytes -= w_old.nbytes + b_old.nbytes


_PROBES = _ProbeCache(max_bytes=128 * 2 ** 20)


def probe_seconds_saved() -> float:
    """The seconds that the fits :func:`fit_softmax_probe` answered from its cache (``reuse=True``)
    had taken when first fitted, summed over this process (for timings of one cold fit)."""
    return _PROBES.saved_seconds


def fit_softmax_probe(features: Any, labels: Any, *, l2: float = 0.1, max_iter: int = 200,
                      reuse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression (a linear softmax probe) with an L2 penalty.

    Minimises ``mean_i CE(t_i, softmax(W z_i + b)) + l2/2 ||W||^2`` over standardised
    features ``z`` (per-feature mean and deviation of ``features``) with L-BFGS from zero
    weights (deterministic: no seed needed; stops at ``max_iter`` iterations or a gradient
    below 1e-8), then folds the standardisation into the
    returned ``W, b`` so that ``softmax(features @ W.T + b)`` is the probe's prediction.

    Parameters
    ----------
    features:
        ``[N, D]``.
    labels:
        ``[N]`` class indices (classes present only), or an ``[N, K]`` label matrix (one-hot or
        multi-hot: multi-hot rows become uniform targets over their classes; all ``K``
        columns are kept, so the probe has ``K`` outputs).
    l2:
        Weight of the L2 penalty on ``W`` (standardised scale). The default, 0.1, is
        deliberately not tiny: embeddings of a few hundred samples in ~1000 dimensions are
        linearly separable, and a nearly unpenalised probe then predicts its training samples
        with certainty (one-hot probabilities), which empties its Fisher information and makes
        its source probabilities a hard labelling. On the synthetic blobs of the tests, 0.1
        named the right dataset more often than 1e-3 for Task2Vec and H-score.
    max_iter:
        L-BFGS iterations.
    reuse:
        Look the probe up among those this process fitted with ``reuse`` (a digest of
        ``features``, ``labels``, ``l2`` and ``max_iter``; at most 128 MiB kept, least recently
        used dropped first) and keep it there: for the probes of training datasets, which a
        comparison fits again in many folds and selectors. The same ``W, b`` as a fit.

    Returns
    -------
    W, b
        ``[C, D]`` and ``[C]`` (float64).
    """
    key = _ProbeCache.key(features, labels, l2, max_iter) if reuse else None
    if key is not None and (kept := _PROBES.get(key)) is not None:
        return kept
    t0 = time.perf_counter()
    with single_blas_thread():
        w, b = _fit_softmax_probe(features, labels, l2=l2, max_iter=max_iter)
    if key is not None:
        _PROBES.put(key, w, b, time.perf_counter() - t0)
    return w, b


def _fit_softmax_probe(features: Any, labels: Any, *, l2: float, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    from scipy.optimize import minimize

    f = _as_features(features)
    y = np.asarray(labels)
    if y.ndim == 2:
        if y.shape[0] != len(f):
            raise ValueError(f"labels must have {len(f)} rows, got shape {y.shape}")
        t = np.asarray(y, np.float64)
        sums = t.sum(axis=1)
        if np.any(t < 0) or np.any(sums <= 0):
            raise ValueError("labels: every row of a label matrix needs a positive entry (and none negative)")
        t = t / sums[:, None]
    else:
        t = _targets(y, len(f))
    if l2 < 0:
        raise ValueError(f"l2={l2!r}: must be non-negative")
    n, d = f.shape
    c = t.shape[1]
    mu = f.mean(axis=0)
    sd = f.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    z = (f - mu) / sd
    basis = None
    if d > n:
        # fewer samples than features: the penalised optimum lies in the span of the samples
        # (W's component orthogonal to every z_i changes no logit and only adds penalty), so
        # solve in an orthonormal basis of that span (rank <= N unknowns per class, same optimum)
        _, s, vt = np.linalg.svd(z, full_matrices=False)
        rank = int(np.sum(s > s.max() * max(n, d) * np.finfo(np.float64).eps)) if s.max() > 0 else 0
        basis = vt[:rank]                                     # [r, D], orthonormal rows
        z = z @ basis.T
    d_full, d = d, z.shape[1]

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:c * d].reshape(c, d), theta[c * d:]
        logits = z @ w.T + b
        logits -= logits.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(logits).sum(axis=1, keepdims=True))
        log_p = logits - log_norm
        loss = -np.sum(t * log_p) / n + 0.5 * l2 * np.sum(w * w)
        g = (np.exp(log_p) - t) / n                           # dloss/dlogits
        grad_w = g.T @ z + l2 * w
        grad_b = g.sum(axis=0)
        return float(loss), np.concatenate([grad_w.ravel(), grad_b])

    res = minimize(objective, np.zeros(c * d + c), jac=True, method="L-BFGS-B",
                   options={"maxiter": int(max_iter), "gtol": 1e-8, "ftol": 1e-12})
    w, b = res.x[:c * d].reshape(c, d), res.x[c * d:]
    if basis is not None:
        w = w @ basis if len(basis) else np.zeros((c, d_full))
    w_raw = w / sd
    b_raw = b - w_raw @ mu
    return w_raw, b_raw


def probe_fisher_diag(features: Any, weights: Any, bias: Any) -> np.ndarray:
    """Diagonal Fisher information of a linear softmax probe's weights, ``[C, D]``.

    ``F_{kd} = E_x E_{y ~ p(y|x)} [(d log p(y|x) / d W_kd)^2]`` with
    ``d log p(y|x) / d W_kd = (1[y = k] - p_k(x)) x_d``. The expectation over ``y`` is taken in
    closed form (Task2Vec's Fisher uses labels sampled from the model's predictive
    distribution; this is its expectation, without sampling noise)::

        E_y[(1[y = k] - p_k)^2] = p_k (1 - p_k)^2 + (1 - p_k) p_k^2 = p_k (1 - p_k)

    so ``F_{kd} = mean_i p_k(x_i) (1 - p_k(x_i)) x_id^2``.
    """
    f = _as_features(features)
    w = np.asarray(weights, np.float64)
    b = np.asarray(bias, np.float64)
    if w.ndim != 2 or w.shape[1] != f.shape[1] or b.shape != (w.shape[0],):
        raise ValueError(f"weights must be [C, {f.shape[1]}] and bias [C], got {w.shape} and {b.shape}")
    p = softmax(f @ w.T + b)
    return (p * (1 - p)).T @ (f ** 2) / len(f)


def task2vec(features: Any, labels: Any, *, l2: float = 0.1, max_iter: int = 200,
             reuse: bool = False) -> np.ndarray:
    """Task2Vec-style embedding of a labelled dataset on a fixed feature extractor, ``[D]``.

    Achille et al. 2019, "Task2Vec: Task Embedding for Meta-Learning" (ICCV), Section 2: a
    task is embedded by the diagonal Fisher information of a probe network trained on it; with
    a fixed (pretrained) extractor only the probe head is trained. Here the probe is a linear
    softmax classifier on the features (:func:`fit_softmax_probe`, deterministic), its
    Fisher is :func:`probe_fisher_diag` (expectation over the model's predictive labels in
    closed form), and, as the paper averages the Fisher over the weights of a filter to get one
    value per filter, the weights attached to one input feature are summed over the classes,
    so that tasks with different numbers of classes embed in the same ``D`` dimensions:
    ``e_d = sum_k F_kd = mean_i (1 - sum_k p_k(x_i)^2) x_id^2``. (The paper's "robust" Fisher,
    estimated from a perturbation variance, is not used.)

    Parameters
    ----------
    features:
        ``[N, D]`` features.
    labels:
        ``[N]`` class indices, or ``[N, K]`` one-hot / multi-hot (multi-hot rows become
        uniform targets over their classes). Only the classes present count; at least 2.
    l2, max_iter:
        The probe's L2 penalty and L-BFGS iterations (see :func:`fit_softmax_probe` for why
        the penalty is not tiny).
    reuse:
        Reuse the probe fitted on these features and labels before (see :func:`fit_softmax_probe`).
    """
    f = _as_features(features)
    t = _targets(labels, len(f))
    if t.shape[1] < 2:
        raise ValueError("labels: a Task2Vec embedding needs at least 2 classes (one class gives zero Fisher)")
    w, b = fit_softmax_probe(f, t, l2=l2, max_iter=max_iter, reuse=reuse)
    return probe_fisher_diag(f, w, b).sum(axis=0)


def task2vec_distance(a: Any, b: Any) -> float:
    """Task2Vec's symmetric normalised cosine distance between two task embeddings.

    Achille et al. 2019, Section 3 ("symmetric TASK2VEC distance"):
    ``d(F_a, F_b) = d_cos(F_a / (F_a + F_b), F_b / (F_a + F_b))`` (element-wise division,
    ``d_cos = 1 - cosine similarity``). Coordinates where both embeddings are 0 are left out.
    0 for identical embeddings, at most 1.
    """
    ea, eb = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    if ea.shape != eb.shape or ea.size == 0:
        raise ValueError(f"task embeddings must be non-empty and of one size, got {ea.shape} and {eb.shape}")
    if np.any(ea < 0) or np.any(eb < 0) or not (np.all(np.isfinite(ea)) and np.all(np.isfinite(eb))):
        raise ValueError("task embeddings are diagonal Fisher informations: finite and non-negative")
    total = ea + eb
    keep = total > 0
    if not np.any(keep):
        raise ValueError("both task embeddings are all zero: their distance is undefined")
    na, nb = ea[keep] / total[keep], eb[keep] / total[keep]
    cos = float(na @ nb / (np.linalg.norm(na) * np.linalg.norm(nb)))
    return float(max(0.0, 1.0 - cos))
