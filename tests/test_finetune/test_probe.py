"""Ridge probes: the cheap first models."""

from __future__ import annotations


def test_ridge_probe_chooses_its_penalty_on_validation():
    import numpy as np
    import torch

    from finetune.probe import RidgeProbe

    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(120, 40)).astype(np.float32))
    labels = (x[:, 0] > 0).long()
    y = torch.nn.functional.one_hot(labels, 2).float()
    probe = RidgeProbe(alphas=(1e6, 1.0)).fit(x[:80], y[:80], x[80:], y[80:].numpy())
    assert probe.alpha_ == 1.0 and probe.validation_nauc_ > 0.9
    assert RidgeProbe(alphas=(5.0,)).fit(x, y).alpha_ == 5.0
    p = probe.predict_proba(x)
    assert p.shape == (120, 2) and np.allclose(p.sum(1), 1.0)
    multi = RidgeProbe(multilabel=True).fit(x, y).predict_proba(x)
    assert ((multi >= 0) & (multi <= 1)).all()
