"""A cheap probe of a dataset as a meta-feature: how linearly separable its embeddings are.

The learner fits ridge probes in its first seconds anyway (:class:`finetune.probe.RidgeProbe`);
how well one separates the classes tells data kinds apart where configurations differ (a
dataset the pretrained embeddings already separate favours probes and light fine-tuning;
one they do not, e.g. motion-only video, favours training more of the network). The
transferability literature (LogME, LEEP) scores this more elaborately; the selectors here
take the plain figure:

:func:`embedding_probe_score`: the exact leave-one-out NAUC of the learner's ridge probe
(the best of its penalties) on a seeded stratified sample of at most :data:`PROBE_SAMPLES`
labelled embeddings. The same function is applied to a training dataset's stored
``train`` embeddings (:class:`~metafeatures.features.DatasetFeatures`) and to a new
dataset's query (:class:`~metafeatures.features.Query`), at the same sample size, so the
two are comparable. It costs one SVD of a ``64 x D`` matrix (milliseconds).
"""

from __future__ import annotations

import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["PROBE_SAMPLES", "embedding_probe_score"]

PROBE_SAMPLES = 64
"""Labelled embeddings the probe sees at most (the submission's default query size)."""


def embedding_probe_score(embeddings: np.ndarray, labels: np.ndarray, *, samples: int = PROBE_SAMPLES,
                          seed: int = 0) -> float:
    """Leave-one-out NAUC of a ridge probe on ``embeddings [N, D]`` with 0/1 ``labels [N, K]``.

    A seeded stratified sample of ``samples`` rows is used where there are more; 0.0 (a random
    guess's NAUC) where fewer than 3 rows or no class with both labels remain.
    """
    import torch

    from autodl.labels import is_multilabel, stratified_subset
    from finetune.probe import RidgeProbe

    x = np.asarray(embeddings, dtype=np.float32)
    y = np.asarray(labels, dtype=np.float32)
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"embeddings [N, D] and labels [N, K] expected, got {x.shape} and {y.shape}")
    if len(x) > samples:
        keep = np.sort(stratified_subset(y, samples, seed=seed))
        x, y = x[keep], y[keep]
    if len(x) < 3 or not ((y.min(axis=0) < 1) & (y.max(axis=0) > 0)).any():
        return 0.0
    probe = RidgeProbe(multilabel=is_multilabel(y)).fit(torch.from_numpy(x), torch.from_numpy(y))
    score = float(probe.validation_nauc_)
    return score if math.isfinite(score) else 0.0
