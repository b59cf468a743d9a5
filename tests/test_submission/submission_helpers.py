"""Helpers of the submission tests (shared by conftest.py and the tests): tiny datasets, cheap configurations.

The artifacts are real: two tiny training datasets are embedded with EfficientNet-Lite0 (at
32 px, a few seconds), a nearest-centroid selector is fitted on them, and each dataset's
"incumbent" is a cheap configuration (probes only, no pretrained network to fine-tune),
so that a submission built on them runs in seconds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]

CHEAP = {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw+random", "finetune": False,
         "num_predictions": 6, "input_size": 32}
CHEAP_B = {**CHEAP, "probes": "raw"}


def stripes(n: int, classes: int, size: int, seed: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class is the orientation / period of a stripe pattern, plus noise."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    yy, xx = np.mgrid[0:size, 0:size]
    x = np.empty((n, size, size, channels), np.uint8)
    for i, k in enumerate(y):
        pattern = np.sin((xx if k % 2 else yy) * (k + 1) * np.pi / size * 2 + rng.uniform(0, 6))
        img = 127 + 90 * pattern[..., None] + rng.normal(0, 25, (size, size, channels))
        x[i] = np.clip(img, 0, 255).astype(np.uint8)
    return x, y


def write_stripes(root: Path, name: str, *, n_train: int = 60, n_test: int = 15, classes: int = 3,
                  size: int = 16, seed: int = 0, channels: int = 3) -> Path:
    from autodl.writer import write_arrays

    x, y = stripes(n_train + n_test, classes, size, seed, channels)
    write_arrays(root, name, x[:n_train], y[:n_train], x[n_train:], y[n_train:], num_classes=classes)
    return root


