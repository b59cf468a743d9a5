"""A grid of about 20 fixed configurations spanning the fine-tuning space: the known
configurations every BOHB run starts from, and what ``autodl-meta benchmark grid`` evaluates.

:data:`GRID` spans the anytime knobs of ``configs/space/finetune.yaml`` (probes only, which
probes, how many test calls), the input resolution, the training (optimizer, schedule,
augmentation), the networks (EfficientNet-Lite0/1/2, ResNet-18 and a small CNN from random
weights) and a video option. ``baseline:default`` (``configs/finetune/default.yaml``, an
AutoCLINT-like configuration) and ``baseline:scratch`` are among them.

Two users:

- :mod:`offline_bohb` evaluates them (:func:`grid_configs`) at the full budget before BOHB's
  own brackets of every run (the *warm start*), so that no run's incumbent is weaker than a
  known fixed configuration and BOHB's model has points from the start (see
  :mod:`offline_bohb`);
- ``pipeline.benchmarks.config_grid`` evaluates them on datasets of different kinds, to show
  whether the space offers selection something to choose.
"""

from __future__ import annotations

from typing import Any

_LITE0 = {"backbone": "tf_efficientnet_lite0"}
GRID: dict[str, str | dict[str, Any]] = {
    "default": "baseline:default",
    "scratch": "baseline:scratch",
    # the anytime plan
    "probes-only": {**_LITE0, "finetune": False},
    "probes-only-1024": {**_LITE0, "finetune": False, "probe_examples": 1024},
    "raw-probes-only": {**_LITE0, "finetune": False, "probes": "raw+random"},
    "no-probes": {**_LITE0, "probes": "none", "optimizer": "SGD", "learning_rate": 0.025,
                  "weight_decay": 2.5e-4, "augmentation": "flip"},
    "embedding-probe-first": {**_LITE0, "probes": "embedding", "probe_examples": 512, "optimizer": "SGD",
                              "learning_rate": 0.025, "weight_decay": 2.5e-4},
    "few-tests": {**_LITE0, "num_predictions": 6, "optimizer": "SGD", "learning_rate": 0.025,
                  "weight_decay": 2.5e-4},
    "many-tests": {**_LITE0, "num_predictions": 24, "optimizer": "SGD", "learning_rate": 0.025,
                   "weight_decay": 2.5e-4},
    # the input resolution policy
    "lite0-64px": {**_LITE0, "min_input_size": 64, "input_size": 64, "optimizer": "SGD", "learning_rate": 0.025,
                   "weight_decay": 2.5e-4, "augmentation": "flip"},
    "lite0-96px": {**_LITE0, "min_input_size": 96, "input_size": 128, "optimizer": "SGD",
                   "learning_rate": 0.025, "weight_decay": 2.5e-4, "probe_examples": 128},
    # training
    "lite0-adam": {**_LITE0, "optimizer": "Adam", "learning_rate": 1e-3, "batch_size": 32},
    "lite0-adam-cosine-bs64": {**_LITE0, "optimizer": "Adam", "learning_rate": 2e-3, "batch_size": 64,
                               "lr_schedule": "cosine"},
    "lite0-sgd-fastaa": {**_LITE0, "optimizer": "SGD", "learning_rate": 0.05, "weight_decay": 2.5e-4,
                         "augmentation": "fast_autoaugment", "tau": 4.0},
    "lite0-scratch": {**_LITE0, "pretrained": False, "optimizer": "Adam", "learning_rate": 3e-3},
    # other networks
    "lite1": {"backbone": "tf_efficientnet_lite1", "optimizer": "SGD", "learning_rate": 0.025,
              "weight_decay": 2.5e-4},
    "lite2-probes-only": {"backbone": "tf_efficientnet_lite2", "finetune": False},
    "scratch-cnn": {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw", "optimizer": "Adam",
                    "learning_rate": 3e-3, "batch_size": 64},
    "scratch-cnn-probes": {"backbone": "scratch_cnn", "pretrained": False, "optimizer": "Adam",
                           "learning_rate": 3e-3, "batch_size": 32, "augmentation": "flip"},
    "resnet18-scratch-64px": {"backbone": "resnet18", "pretrained": False, "input_size": 64,
                              "min_input_size": 64, "optimizer": "SGD", "learning_rate": 0.05,
                              "weight_decay": 5e-4},
    # video: motion
    "lite0-difference": {**_LITE0, "temporal": "difference", "optimizer": "SGD", "learning_rate": 0.025,
                         "weight_decay": 2.5e-4},
}
"""The configurations, by short name; the space's defaults fill what a mapping leaves out."""

CORE: tuple[str, ...] = ("default", "lite0-96px", "lite0-64px", "scratch-cnn-probes", "lite1",
                         "probes-only-1024", "scratch-cnn")
"""The warm start ``grid-core`` of the default build: ``baseline:default`` and the grid
configurations that were best on a dataset of the grid benchmark or among its five best by
mean ALC (``docs/grid.md``: lite0-96px best on Monkeys and miniciao, lite0-64px on textures,
scratch-cnn-probes on fmnist3k; lite1 and scratch-cnn next by mean or on miniciao;
probes-only-1024, a probes-only configuration of a few seconds, best on moving_squares).
Evaluating all 21 at the full budget on the default build's 30 datasets and 2 seeds would take
about 9 of its 12 hours on 2 cores (about 80 s each); a cluster build passes ``--warm-start grid``."""

WARM_START_SETS: dict[str, tuple[str, ...]] = {"grid": tuple(GRID), "grid-core": CORE, "none": ()}
"""The named warm starts (``RunSpec.warm_start``, the build's ``warm_start``): grid names."""


def warm_start_names(name: str) -> tuple[str, ...]:
    """The grid names of warm start ``name`` (:data:`WARM_START_SETS`).

    Raises
    ------
    KeyError
        An unknown name (the message lists the known ones).
    """
    if name not in WARM_START_SETS:
        raise KeyError(f"unknown warm start {name!r}; known: {', '.join(WARM_START_SETS)}")
    return WARM_START_SETS[name]


def grid_config(name: str, space: Any = None) -> dict[str, Any]:
    """The validated configuration of grid entry ``name`` (every hyperparameter of the space;
    ``space``: the fine-tuning space, loaded when not given)."""
    from finetune.config import validate_config
    from finetune.models import baseline_config

    if name not in GRID:
        raise KeyError(f"unknown grid configuration {name!r}; known: {', '.join(GRID)}")
    spec = GRID[name]
    if isinstance(spec, str):
        return baseline_config(spec)
    return validate_config(dict(spec), space, source=f"grid:{name}")


def grid_configs() -> list[tuple[str, dict[str, Any]]]:
    """``(name, configuration)`` of every grid entry, ``baseline:default`` first, in :data:`GRID`'s order."""
    from finetune.config import load_space

    space = load_space()
    return [(name, grid_config(name, space)) for name in GRID]
