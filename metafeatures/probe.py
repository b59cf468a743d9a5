"""Cheap probes of a dataset as meta-features: how linearly separable its raw pixels and its
embeddings are.

The learner fits ridge probes in its first seconds anyway (:class:`finetune.probe.RidgeProbe`,
on downsampled raw pixels and on the pretrained network's embeddings,
:mod:`finetune.probe_stage`); how well one separates the classes tells data kinds apart where
configurations differ (a dataset the pretrained embeddings already separate favours probes and
light fine-tuning; one they do not, e.g. motion-only video, favours training more of the
network; one whose raw pixels already separate it, e.g. classes that differ by brightness or
colour, favours the cheap raw-pixel probes). The transferability literature (LogME, LEEP)
scores this more elaborately; the selectors here take the plain figures:

:func:`embedding_probe_score`: the exact leave-one-out NAUC of the learner's ridge probe
(the best of its penalties) on a seeded stratified sample of at most :data:`PROBE_SAMPLES`
labelled embeddings. The same function is applied to a training dataset's stored
``train`` embeddings (:class:`~metafeatures.features.DatasetFeatures`) and to a new
dataset's query (:class:`~metafeatures.features.Query`), at the same sample size, so the
two are comparable. It costs one SVD of a ``64 x D`` matrix (milliseconds).

:func:`raw_probe_score`: the same on the raw-pixel features the learner's raw-pixel probe
sees (:func:`raw_probe_features`, which applies the learner's own
:func:`finetune.probe.raw_features`: frames averaged, pooled to at most 16 x 16, flattened),
computed from the clips that are embedded (the training datasets' ``train_raw``, written by
``autodl-meta metafeatures extract``; the query's ``raw``, from the batch the submission has
already decoded). Both scores draw the same sample (the same labels and seed), so on a
training dataset they describe the same examples.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PROBE_SAMPLES", "clear_score_cache", "embedding_probe_score", "raw_probe_features", "raw_probe_score"]

PROBE_SAMPLES = 64
"""Labelled examples a probe sees at most (the submission's default query size)."""


_SCORES: OrderedDict[bytes, float] = OrderedDict()
"""Scores already computed, by a digest of the inputs (least recently used first)."""

SCORE_CACHE_SIZE = 65536
"""Scores :data:`_SCORES` keeps at most (a float each)."""


def clear_score_cache() -> None:
    """Forget the scores computed so far (a timing of the selection must compute them)."""
    _SCORES.clear()


def _digest(x: np.ndarray, y: np.ndarray, samples: int, seed: int) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for a in (x, y):
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).data)
    h.update(f"{samples}:{seed}".encode())
    return h.digest()


def _loo_probe_score(x: np.ndarray, labels: np.ndarray, *, samples: int, seed: int, what: str) -> float:
    """Leave-one-out NAUC of the learner's ridge probe on ``x [N, F]`` with 0/1 ``labels [N, K]``.

    A pure function of its inputs, so each score is computed once per process and then looked
    up (by a digest of the arrays, the sample size and the seed): the leave-one-dataset-out
    evaluation fits a selector per fold and asks it about the same queries and training
    datasets again and again.
    """
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(labels, dtype=np.float32)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"{what} [N, F] and labels [N, K] expected, got {x.shape} and {y.shape}")
    key = _digest(x, y, samples, seed)
    if key in _SCORES:
        _SCORES.move_to_end(key)
        return _SCORES[key]
    score = _probe_score(x, y, samples=samples, seed=seed)
    _SCORES[key] = score
    if len(_SCORES) > SCORE_CACHE_SIZE:
        _SCORES.popitem(last=False)
    return score


def _probe_score(x: np.ndarray, y: np.ndarray, *, samples: int, seed: int) -> float:
    import torch

    from autodl.labels import is_multilabel, stratified_subset
    from finetune.probe import RidgeProbe

    if len(x) > samples:
        keep = np.sort(stratified_subset(y, samples, seed=seed))
        x, y = x[keep], y[keep]
    if len(x) < 3 or not ((y.min(axis=0) < 1) & (y.max(axis=0) > 0)).any():
        return 0.0
    probe = RidgeProbe(multilabel=is_multilabel(y)).fit(torch.from_numpy(x), torch.from_numpy(y))
    score = float(probe.validation_nauc_)
    return score if math.isfinite(score) else 0.0


def embedding_probe_score(embeddings: np.ndarray, labels: np.ndarray, *, samples: int = PROBE_SAMPLES,
                          seed: int = 0) -> float:
    """Leave-one-out NAUC of a ridge probe on ``embeddings [N, D]`` with 0/1 ``labels [N, K]``.

    A seeded stratified sample of ``samples`` rows is used where there are more; 0.0 (a random
    guess's NAUC) where fewer than 3 rows or no class with both labels remain.
    """
    return _loo_probe_score(embeddings, labels, samples=samples, seed=seed, what="embeddings")


def raw_probe_score(raw: np.ndarray, labels: np.ndarray, *, samples: int = PROBE_SAMPLES, seed: int = 0) -> float:
    """Leave-one-out NAUC of a ridge probe on raw-pixel features ``raw [N, F]``
    (:func:`raw_probe_features`) with 0/1 ``labels [N, K]``.

    As :func:`embedding_probe_score` (same sample for the same labels and seed, same probe);
    the features are standardised by the probe, so their scale (0-255 or [0, 1]) does not matter.
    """
    return _loo_probe_score(raw, labels, samples=samples, seed=seed, what="raw-pixel features")


def raw_probe_features(clips: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
    """``[N, F]`` float32: what the learner's raw-pixel probe sees of ``clips``.

    :func:`finetune.probe.raw_features` (the learner's function: frames averaged, each side
    pooled to at most 16, flattened to ``C x 16 x 16``) of clips ``[N, T, H, W, C]`` as decoded
    (channels last; images may be ``[N, H, W, C]``; uint8 in 0-255, which the learner keeps as
    such, or dense data scaled to [0, 1]), or of a list of clips ``[T, H, W, C]`` whose frame
    counts differ (each is averaged over its own frames; their sizes must give one ``F``).

    Raises
    ------
    ValueError
        A clip that is not ``[T, H, W, C]``, or clips whose features differ in size.
    """
    import torch

    from finetune.probe import raw_features

    if isinstance(clips, np.ndarray) and clips.ndim in (4, 5):
        x = clips[:, None] if clips.ndim == 4 else clips
        if len(x) == 0:
            return np.zeros((0, 0), dtype=np.float32)
        t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 1, 4, 2, 3)))
        return raw_features(t).numpy().astype(np.float32, copy=False)
    rows = []
    for i, c in enumerate(clips):
        c = np.asarray(c)
        c = c[None] if c.ndim == 3 else c
        if c.ndim != 4:
            raise ValueError(f"clip {i} has shape {c.shape}; expected [T, H, W, C]")
        rows.append(raw_probe_features(c[None])[0])
    if len({len(r) for r in rows}) > 1:
        raise ValueError(f"the clips' raw-pixel features differ in size ({sorted({len(r) for r in rows})}); "
                         "resize the frames to one size first")
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
