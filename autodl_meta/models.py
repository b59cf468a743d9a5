"""Resolving ``--model`` names into model factories for the ingestion loop.

Known forms:

* ``baseline:linear``: the seed paper's linear baseline (:class:`finetune.baselines.LinearModel`).
* ``baseline:default``: one fixed AutoCLINT-like configuration
  (``configs/finetune/default.yaml``), the single best a user would pick without
  meta-learning, fine-tuned by :class:`finetune.learner.FineTuneLearner`.
* ``baseline:scratch``: a ResNet-18 trained from random initialisation (the seed paper's
  "from scratch" baseline), otherwise the default configuration.
* ``config:PATH``: one configuration from a YAML/JSON file (validated against
  ``configs/space/finetune.yaml``).
* ``file:PATH`` (or a path ending in ``.py``): a challenge submission's ``model.py``; its
  ``Model`` class is constructed as ``Model(metadata)``, exactly as the organizers'
  ingestion does, and runs on the wall clock.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodl.clock import Clock
from autodl.errors import AutoDLError
from autodl.metadata import AutoDLMetadata

ModelFactory = Callable[[AutoDLMetadata, Clock], Any]


def _linear(meta: AutoDLMetadata, clock: Clock, **_: Any) -> Any:
    from finetune.baselines import LinearModel

    return LinearModel(meta, clock=clock)


def _learner(config: dict, **overrides: Any) -> Callable[..., Any]:
    def factory(meta: AutoDLMetadata, clock: Clock, **kwargs: Any) -> Any:
        from finetune.learner import FineTuneLearner

        return FineTuneLearner(meta, {**config, **overrides}, clock=clock, **kwargs)
    return factory


def _default(meta: AutoDLMetadata, clock: Clock, **kwargs: Any) -> Any:
    from finetune.config import load_config

    return _learner(load_config(DEFAULT_CONFIG))(meta, clock, **kwargs)


def _scratch(meta: AutoDLMetadata, clock: Clock, **kwargs: Any) -> Any:
    from finetune.config import load_config

    return _learner(load_config(DEFAULT_CONFIG), backbone="resnet18", pretrained=False)(meta, clock, **kwargs)


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "finetune" / "default.yaml"

BASELINES: dict[str, tuple[Callable[..., Any], str]] = {
    "linear": (_linear, "flatten + one linear layer with sigmoid outputs, Adam, batch 30 (seed paper)"),
    "default": (_default, "the fixed AutoCLINT-like configuration configs/finetune/default.yaml"),
    "scratch": (_scratch, "ResNet-18 from random initialisation, otherwise the default configuration"),
}


def known_models() -> list[str]:
    return [f"baseline:{k}" for k in BASELINES] + ["config:PATH.yaml", "file:PATH/model.py"]


def _from_file(path: Path) -> ModelFactory:
    if not path.is_file():
        raise AutoDLError(path, "model file not found; expected a challenge model.py defining class Model")
    spec = importlib.util.spec_from_file_location(f"autodl_submission_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # submissions import their sibling files
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, "Model"):
        raise AutoDLError(path, "defines no class Model", field="Model")
    return lambda meta, clock: module.Model(meta)


def resolve_model(name: str, **learner_kwargs: Any) -> ModelFactory:
    """The factory ``(train_metadata, clock) -> model`` for a ``--model`` name.

    ``learner_kwargs`` (e.g. ``t0``, ``timing``, ``device``) go to
    :class:`finetune.learner.FineTuneLearner` for the models built on it.
    """
    if name.startswith("file:") or name.endswith(".py"):
        return _from_file(Path(name.removeprefix("file:")))
    kind, _, rest = name.partition(":")
    if kind == "config":
        from finetune.config import load_config

        config = load_config(rest)  # a bad file fails here, before any budget is spent
        return lambda meta, clock: _learner(config)(meta, clock, **learner_kwargs)
    if kind == "baseline" and rest in BASELINES:
        factory = BASELINES[rest][0]
        return lambda meta, clock: factory(meta, clock, **learner_kwargs)
    raise AutoDLError(None, f"unknown model {name!r}; known: {', '.join(known_models())}", field="--model")
