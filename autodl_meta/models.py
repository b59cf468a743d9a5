"""Resolving ``--model`` names into model factories for the ingestion loop.

Known forms:

* ``baseline:linear``: the seed paper's linear baseline (:class:`finetune.baselines.LinearModel`).
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


def _linear(meta: AutoDLMetadata, clock: Clock) -> Any:
    from finetune.baselines import LinearModel

    return LinearModel(meta, clock=clock)


BASELINES: dict[str, tuple[Callable[..., Any], str]] = {
    "linear": (_linear, "flatten + one linear layer with sigmoid outputs, Adam, batch 30 (seed paper)"),
}


def known_models() -> list[str]:
    return [f"baseline:{k}" for k in BASELINES] + ["file:PATH/model.py"]


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


def resolve_model(name: str) -> ModelFactory:
    """The factory ``(train_metadata, clock) -> model`` for a ``--model`` name."""
    if name.startswith("file:") or name.endswith(".py"):
        return _from_file(Path(name.removeprefix("file:")))
    kind, _, rest = name.partition(":")
    if kind == "baseline" and rest in BASELINES:
        return BASELINES[rest][0]
    raise AutoDLError(None, f"unknown model {name!r}; known: {', '.join(known_models())}", field="--model")
