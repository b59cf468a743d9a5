"""Evaluation protocols: the time budget T, the ALC constant t0 and the training-set cap.

Protocols live in ``configs/protocol/<name>.yaml``; every figure the project reports
names the protocol it was measured under.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from autodl.errors import AutoDLError

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class Protocol:
    """A time budget ``time_budget`` (T, seconds), the ALC's ``t0`` (seconds) and the most
    training examples a learner decodes (``max_train_examples``, a seeded stratified
    subset beyond; None: all). The input resolution is the configuration's choice
    (``input_size``, ``min_input_size``), not the protocol's."""

    name: str
    time_budget: float
    t0: float
    max_train_examples: int | None = None

    def __post_init__(self) -> None:
        if self.time_budget <= 0:
            raise ValueError(f"time_budget={self.time_budget}: expected seconds > 0")
        if self.t0 <= 0:
            raise ValueError(f"t0={self.t0}: expected seconds > 0")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.name}: T={self.time_budget:g} s, t0={self.t0:g} s"


def available_protocols() -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / "protocol").glob("*.yaml"))


def load_protocol(name_or_path: str | Path) -> Protocol:
    """Load a protocol by name (``mini``, ``autocv``) or from a YAML file."""
    path = Path(name_or_path)
    if not path.suffix:
        path = CONFIG_DIR / "protocol" / f"{name_or_path}.yaml"
        if not path.is_file():
            raise AutoDLError(path, f"no protocol named {str(name_or_path)!r}; known: "
                                    f"{', '.join(available_protocols())} (or give a YAML file)")
    if not path.is_file():
        raise AutoDLError(path, "protocol file not found")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise AutoDLError(path, "expected a mapping with time_budget and t0")
    fields = {"name", "time_budget", "t0", "max_train_examples"}
    unknown = set(data) - fields
    if unknown:
        raise AutoDLError(path, f"unknown keys {sorted(unknown)}; expected {sorted(fields)}")
    for key in ("time_budget", "t0"):
        if key not in data:
            raise AutoDLError(path, "missing", field=key)
        if not isinstance(data[key], int | float) or data[key] <= 0:
            raise AutoDLError(path, f"{data[key]!r}; expected a number of seconds > 0", field=key)
    data.setdefault("name", path.stem)
    return Protocol(**data)
