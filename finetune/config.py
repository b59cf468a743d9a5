"""The fine-tuning configuration space and the configurations drawn from it.

A *configuration* says how one network is fine-tuned under a time budget: which backbone,
optimizer, learning rate, batch size, input size, augmentation, ... It is a plain ``dict``
mapping hyperparameter names to Python values (``str``, ``int``, ``float``, ``bool``),
which is what hpbandster hands to its workers, what the portfolio stores as an incumbent
and what a user writes in a YAML or JSON file.

The space is declared once, in ``configs/space/finetune.yaml`` (a small YAML schema
described in that file), and read into a :class:`ConfigSpace.ConfigurationSpace` by
:func:`load_space`, as SMAC3 keeps its configuration space in one place (Lindauer et al.,
"SMAC3: A versatile Bayesian optimization package for hyperparameter optimization", JMLR
2022). Its ranges follow the winner of AutoCV/AutoDL 2019, AutoCLINT (Baek, Kim & Lim,
Kakao Brain, https://github.com/kakaobrain/autoclint; Liu et al., "Winning solutions and
post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021), the seed of
the Freiburg team's portfolio of configurations searched with BOHB (Falkner, Klein &
Hutter, "BOHB: Robust and efficient hyperparameter optimization at scale", ICML 2018).

The space is conditional (the file's ``active_when``): the training hyperparameters
matter only when ``finetune`` is true, ``pretrained`` only for a network with pretrained
weights (never ``scratch_cnn``), ``probe_examples`` only for the embedding probe,
``train_layers`` only for a pretrained network that is fine-tuned, ``probe_share`` only for
probes followed by fine-tuning; and a configuration that neither probes nor fine-tunes is
forbidden. Some hyperparameters exist
only for some data (``only_for``): :func:`space_for` builds the space for a dataset's
:class:`DataShape` (:func:`data_shape`), without the video options for images and without
the channel adapter for 1- or 3-channel data. A configuration is nevertheless always
complete: what is inactive or absent for the data holds a value the learner ignores.

Every configuration that enters the project goes through :func:`validate_config`:
missing keys are filled from the space's defaults, and an unknown key, a wrong type, a
value out of range or not among the choices is refused with a :class:`ConfigError` that
names the hyperparameter, the value received, what is allowed, and the file it came from.
Numpy scalars (ConfigSpace 1.x hands them out, and hpbandster's Pyro4 layer rejects them)
never leave this module.

The space file declares every configuration, whatever the machine; whether one can run
*here* is a separate question, asked before anything runs: a backbone whose pretrained
weights are absent (ResNet-18's ImageNet weights need a download these machines cannot
make) cannot run with ``pretrained: true``. :func:`check_runnable` refuses such a
configuration with a :class:`ConfigError` that says where to put the weights;
:func:`runnable_space` is the space with those combinations forbidden (a ConfigSpace
forbidden clause per absent backbone), which is what :func:`sample_configs` draws from
by default and what a search on this machine should search. ``validate_config`` itself
does not look at the machine, so that a portfolio built elsewhere can still be read.

Examples
--------
>>> from finetune.config import default_config, validate_config, sample_configs
>>> cfg = validate_config({"backbone": "resnet18", "learning_rate": 0.01})
>>> cfg["batch_size"]  # filled from the space's default
32
>>> len(sample_configs(3, seed=0))  # only configurations that can run on this machine
3
>>> check_runnable({"backbone": "resnet18", "pretrained": True})  # doctest: +SKIP
ConfigError: field 'backbone': ... ImageNet weights not found at ...
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import math
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from ConfigSpace import (
    CategoricalHyperparameter,
    Configuration,
    ConfigurationSpace,
    ForbiddenAndConjunction,
    ForbiddenEqualsClause,
    OrdinalHyperparameter,
    UniformFloatHyperparameter,
    UniformIntegerHyperparameter,
)
from ConfigSpace.util import deactivate_inactive_hyperparameters

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_SPACE_PATH",
    "ConfigError",
    "DataShape",
    "SpaceError",
    "check_runnable",
    "active_hyperparameters",
    "config_to_json",
    "data_shape",
    "default_config",
    "load_config",
    "load_space",
    "runnable_space",
    "sample_configs",
    "space_for",
    "validate_config",
]

DEFAULT_SPACE_PATH = Path(__file__).resolve().parents[1] / "configs" / "space" / "finetune.yaml"
"""The repository's fine-tuning space, ``configs/space/finetune.yaml``."""

Value = str | int | float | bool

_TYPES = ("categorical", "ordinal", "float", "int")
_OPTIONAL = {"active_when", "when_inactive", "only_for"}
_KEYS = {
    "categorical": {"type", "choices", "default", "doc", *_OPTIONAL},
    "ordinal": {"type", "choices", "default", "doc", *_OPTIONAL},
    "float": {"type", "bounds", "log", "default", "doc", *_OPTIONAL},
    "int": {"type", "bounds", "log", "default", "doc", *_OPTIONAL},
}
_REQUIRED = {
    "categorical": ("choices", "default", "doc"),
    "ordinal": ("choices", "default", "doc"),
    "float": ("bounds", "default", "doc"),
    "int": ("bounds", "default", "doc"),
}
_TOP_LEVEL_KEYS = {"name", "doc", "hyperparameters", "forbidden"}
_JSON_SUFFIXES = {".json"}


class ConfigError(AutoDLError):
    """A configuration does not fit the fine-tuning space.

    ``field`` is the hyperparameter, ``path`` the file the configuration came from (if
    any); the message says what was received and what is allowed.
    """


class SpaceError(AutoDLError):
    """A configuration-space file (``configs/space/*.yaml``) is malformed.

    ``path`` is the space file, ``field`` the hyperparameter (if the problem is in one).
    """


# --------------------------------------------------------------------------- YAML / JSON

class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys and reading ``1e-3`` as a float.

    PyYAML follows YAML 1.1, where a float needs a dot (``1.0e-3``) and ``1e-3`` is a
    string; a learning rate written the usual way would then be refused as a string.
    """

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, Hashable):
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"found the key {key!r} twice", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line describing a YAML error (PyYAML's own message spans several lines)."""
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    mark = getattr(exc, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    return f"{problem}{where}"


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"found the key {key!r} twice")
        result[key] = value
    return result


def _read_file(path: Path, error: type[AutoDLError], *, as_json: bool) -> Any:
    """Parse a YAML (or JSON) file, turning every failure into ``error(path, ...)``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(path, f"cannot be read: {exc}") from None
    if as_json:
        try:
            return json.loads(text, object_pairs_hook=_no_duplicate_keys)
        except json.JSONDecodeError as exc:
            raise error(path, f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
        except ValueError as exc:
            raise error(path, f"not valid JSON: {exc}") from None
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise error(path, f"not valid YAML: {_yaml_problem(exc)}") from None


# --------------------------------------------------------------------------- the space

def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _choice_kind(choices: list[Any]) -> type | None:
    """The one Python type all choices share (``float`` for mixed ints and floats)."""
    if all(isinstance(c, bool) for c in choices):
        return bool
    if all(isinstance(c, str) for c in choices):
        return str
    if all(isinstance(c, int) and not isinstance(c, bool) for c in choices):
        return int
    if all(_is_number(c) for c in choices):
        return float
    return None


def _build_hyperparameter(name: str, spec: Any, path: Path, default: Any = None,
                          ) -> (CategoricalHyperparameter | OrdinalHyperparameter
                                | UniformFloatHyperparameter | UniformIntegerHyperparameter):
    """One hyperparameter from its YAML entry (``default`` given: use it, else ConfigSpace's)."""

    def fail(message: str) -> SpaceError:
        return SpaceError(path, f"hyperparameter {name!r}: {message}", field=name)

    if not isinstance(spec, Mapping):
        raise fail(f"expected a mapping with keys type, choices or bounds, default and doc; "
                   f"got {type(spec).__name__} {spec!r}")
    kind = spec.get("type")
    if kind not in _TYPES:
        raise fail(f"'type' must be one of {', '.join(_TYPES)}; got {kind!r}")
    unknown = sorted(set(map(str, spec)) - _KEYS[kind])
    if unknown:
        raise fail(f"unknown key(s) {', '.join(map(repr, unknown))} for a {kind} hyperparameter; "
                   f"allowed: {', '.join(sorted(_KEYS[kind]))}")
    missing = [key for key in _REQUIRED[kind] if key not in spec]
    if missing:
        raise fail(f"missing key(s) {', '.join(map(repr, missing))}")
    doc = spec["doc"]
    if not isinstance(doc, str) or not doc.strip() or "\n" in doc.strip():
        raise fail(f"'doc' must be one non-empty line of text; got {doc!r}")
    meta: dict[str, Any] = {"doc": doc.strip()}
    if "only_for" in spec:
        if spec["only_for"] not in ONLY_FOR:
            raise fail(f"'only_for' must be one of {', '.join(ONLY_FOR)}; got {spec['only_for']!r}")
        meta["only_for"] = spec["only_for"]

    if kind in ("categorical", "ordinal"):
        choices = spec["choices"]
        if not isinstance(choices, list) or not choices:
            raise fail(f"'choices' must be a non-empty list; got {choices!r}")
        if _choice_kind(choices) is None:
            raise fail(f"'choices' must all be strings, all booleans or all numbers; got {choices!r}")
        if len({(type(c), c) for c in choices}) != len(choices):
            raise fail(f"'choices' has duplicates: {choices!r}")
        extra = {} if default is None else {"default_value": default}
        if kind == "categorical":
            return CategoricalHyperparameter(name, choices, meta=meta, **extra)
        return OrdinalHyperparameter(name, choices, meta=meta, **extra)

    bounds = spec["bounds"]
    if not (isinstance(bounds, list) and len(bounds) == 2 and all(map(_is_number, bounds))):
        raise fail(f"'bounds' must be a list [lower, upper] of two numbers; got {bounds!r}")
    lower, upper = bounds
    if kind == "int" and not all(isinstance(b, int) for b in bounds):
        raise fail(f"'bounds' of an int hyperparameter must be integers; got {bounds!r}")
    if not (math.isfinite(lower) and math.isfinite(upper) and lower < upper):
        raise fail(f"'bounds' must be finite with lower < upper; got {bounds!r}")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise fail(f"'log' must be true or false; got {log!r}")
    if log and lower <= 0:
        raise fail(f"a log-scale range needs lower > 0; got {bounds!r}")
    extra = {} if default is None else {"default_value": default}
    if kind == "int":
        return UniformIntegerHyperparameter(name, lower, upper, log=log, meta=meta, **extra)
    return UniformFloatHyperparameter(name, float(lower), float(upper), log=log, meta=meta, **extra)


_SPACE_DOCS: dict[tuple[str, int, int], Any] = {}
"""Parsed space files by (resolved path, mtime in ns, size): parsing the YAML is most of the
cost of :func:`load_space`, which validating a configuration pays each time (0.7 s of a
submission's selection went to parsing one file eight times)."""


def _read_space_file(path: Path) -> Any:
    """The parsed space file, from :data:`_SPACE_DOCS` while the file is unchanged; a deep copy,
    so that nothing a caller does to it reaches the next caller."""
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:  # missing or unreadable: _read_file names the file and the reason
        return _read_file(path, SpaceError, as_json=False)
    if key not in _SPACE_DOCS:
        if len(_SPACE_DOCS) >= 8:  # a few space files are in use at a time; keep the cache small
            _SPACE_DOCS.clear()
        _SPACE_DOCS[key] = _read_file(path, SpaceError, as_json=False)
    return copy.deepcopy(_SPACE_DOCS[key])


def load_space(path: str | Path | None = None, seed: int | None = None) -> ConfigurationSpace:
    """Read a configuration-space YAML file into a ConfigSpace ``ConfigurationSpace``.

    Parameters
    ----------
    path:
        The space file; by default the repository's ``configs/space/finetune.yaml``
        (:data:`DEFAULT_SPACE_PATH`), whose header describes the schema.
    seed:
        Seed of the space's random number generator, so that
        ``space.sample_configuration()`` draws the same configurations every time;
        ``None`` leaves it unseeded.

    Returns
    -------
    ConfigurationSpace
        One hyperparameter per entry, each with its ``doc`` in ``meta["doc"]``; the
        space's own ``meta`` holds the file's top-level ``doc`` and its ``source`` path.

    Raises
    ------
    SpaceError
        The file is missing, is not valid YAML, or does not follow the schema; the
        message names the file and, where there is one, the hyperparameter.
    """
    path = DEFAULT_SPACE_PATH if path is None else Path(path)
    data = _read_space_file(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("hyperparameters"), Mapping):
        raise SpaceError(path, "expected a mapping with a 'hyperparameters' mapping "
                               "(name -> type, choices or bounds, default, doc)")
    unknown = sorted(set(map(str, data)) - _TOP_LEVEL_KEYS)
    if unknown:
        raise SpaceError(path, f"unknown top-level key(s) {', '.join(map(repr, unknown))}; "
                               f"allowed: {', '.join(sorted(_TOP_LEVEL_KEYS))}")
    entries = data["hyperparameters"]
    if not entries:
        raise SpaceError(path, "'hyperparameters' is empty")
    name = data.get("name", path.stem)
    if not isinstance(name, str):
        raise SpaceError(path, f"'name' must be a string; got {name!r}")

    hyperparameters = []
    for hp_name, spec in entries.items():
        if not isinstance(hp_name, str) or not hp_name.isidentifier():
            raise SpaceError(path, f"hyperparameter names must be identifiers; got {hp_name!r}",
                             field=str(hp_name))
        # Build once without the default, check the default as any value is checked
        # (so that true is not accepted for 1, nor 32.5 for an int), then build with it.
        try:
            hp = _build_hyperparameter(hp_name, spec, path)
            try:
                default = _coerce_value(hp, spec["default"])
            except ConfigError as exc:
                raise SpaceError(path, f"hyperparameter {hp_name!r}: bad 'default': {exc.message}",
                                 field=hp_name) from None
            hp = _build_hyperparameter(hp_name, spec, path, default=default)
            if "when_inactive" in spec:
                if "active_when" not in spec:
                    raise SpaceError(path, f"hyperparameter {hp_name!r}: 'when_inactive' without 'active_when'",
                                     field=hp_name)
                try:
                    hp.meta["when_inactive"] = _coerce_value(hp, spec["when_inactive"])
                except ConfigError as exc:
                    raise SpaceError(path, f"hyperparameter {hp_name!r}: bad 'when_inactive': {exc.message}",
                                     field=hp_name) from None
            hyperparameters.append(hp)
        except (ValueError, TypeError) as exc:  # ConfigSpace's own checks
            raise SpaceError(path, f"hyperparameter {hp_name!r}: {exc}", field=hp_name) from None

    doc = data.get("doc", "")
    if not isinstance(doc, str):
        raise SpaceError(path, f"'doc' must be a string; got {doc!r}")

    space = ConfigurationSpace(name=name, seed=seed, meta={"doc": doc.strip(), "source": str(path)})
    space.add(hyperparameters)
    by_name = {hp.name: hp for hp in hyperparameters}
    conditions = [_condition(hp_name, spec["active_when"], by_name, path)
                  for hp_name, spec in entries.items() if "active_when" in spec]
    forbidden = [_forbidden(clause, by_name, path) for clause in _list(data.get("forbidden", []), path)]
    try:
        space.add(conditions)
        space.add(forbidden)
    except (ValueError, TypeError) as exc:  # a cycle, a forbidden default, ...
        raise SpaceError(path, f"conditions or forbidden combinations refused: {exc}") from None
    logger.debug("read the configuration space %r (%d hyperparameters, %d conditions, %d forbidden "
                 "combinations) from %s", name, len(hyperparameters), len(conditions), len(forbidden), path)
    return space


def _list(value: Any, path: Path) -> list[Any]:
    if not isinstance(value, list):
        raise SpaceError(path, f"'forbidden' must be a list of mappings (hyperparameter -> value); got {value!r}",
                         field="forbidden")
    return value


def _parent_values(parent: Any, values: Any, path: Path, where: str) -> list[Value]:
    values = values if isinstance(values, list) else [values]
    if not values:
        raise SpaceError(path, f"{where}: expected a value or a non-empty list of values of {parent.name!r}",
                         field=where.split()[0])
    try:
        return [_coerce_value(parent, v) for v in values]
    except ConfigError as exc:
        raise SpaceError(path, f"{where}: {exc.message}", field=where.split()[0]) from None


def _condition(child: str, spec: Any, by_name: Mapping[str, Any], path: Path) -> Any:
    """``active_when: {parent: value or [values], ...}`` as a ConfigSpace condition (all must hold)."""
    from ConfigSpace import AndConjunction, EqualsCondition, InCondition

    if not isinstance(spec, Mapping) or not spec:
        raise SpaceError(path, f"hyperparameter {child!r}: 'active_when' must be a mapping parent -> value "
                               f"or list of values; got {spec!r}", field=child)
    parts = []
    for parent_name, values in spec.items():
        if parent_name not in by_name or parent_name == child:
            raise SpaceError(path, f"hyperparameter {child!r}: 'active_when' names {parent_name!r}, which is "
                                   "not another hyperparameter of the space", field=child)
        parent = by_name[parent_name]
        values = _parent_values(parent, values, path, f"{child} active_when {parent_name}")
        parts.append(EqualsCondition(by_name[child], parent, values[0]) if len(values) == 1
                     else InCondition(by_name[child], parent, values))
    return parts[0] if len(parts) == 1 else AndConjunction(*parts)


def _forbidden(spec: Any, by_name: Mapping[str, Any], path: Path) -> Any:
    """``{hyperparameter: value, ...}`` of ``forbidden:`` as a ConfigSpace forbidden clause (all of them)."""
    if not isinstance(spec, Mapping) or not spec:
        raise SpaceError(path, f"each 'forbidden' entry must be a mapping hyperparameter -> value; got {spec!r}",
                         field="forbidden")
    parts = []
    for name, value in spec.items():
        if name not in by_name:
            raise SpaceError(path, f"'forbidden' names {name!r}, which is not a hyperparameter of the space",
                             field="forbidden")
        (value,) = _parent_values(by_name[name], value, path, f"forbidden {name}")
        parts.append(ForbiddenEqualsClause(by_name[name], value))
    return parts[0] if len(parts) == 1 else ForbiddenAndConjunction(*parts)


# --------------------------------------------------------------------------- the dataset's space

ONLY_FOR: dict[str, str] = {
    "video": "datasets of clips (sequence_size other than 1)",
    "unusual_channels": "datasets whose channel count is neither 1 nor 3",
}
"""What a hyperparameter's ``only_for`` may name: the data it means something for."""


@dataclass(frozen=True)
class DataShape:
    """What of a dataset decides which hyperparameters its space has (:func:`space_for`).

    ``video``: clips of several frames (``sequence_size`` other than 1); ``channels``: the
    channel count of its examples.
    """

    video: bool = False
    channels: int = 3

    def fits(self, only_for: str | None) -> bool:
        """Whether a hyperparameter declared ``only_for`` this kind of data exists for this shape."""
        if only_for is None:
            return True
        if only_for == "video":
            return self.video
        if only_for == "unusual_channels":
            return self.channels not in (1, 3)
        raise ValueError(f"only_for={only_for!r}; expected one of {', '.join(ONLY_FOR)}")

    def to_dict(self) -> dict[str, Any]:
        return {"video": self.video, "channels": self.channels}


def data_shape(dataset: str | Path) -> DataShape:
    """The :class:`DataShape` of an AutoDL dataset folder (from its training metadata)."""
    from autodl.dataset import AutoDLDataset

    meta = AutoDLDataset(dataset).metadata("train")
    return DataShape(video=meta.get_sequence_size() != 1, channels=int(meta.get_num_channels(0)))


def space_for(shape: DataShape | Mapping[str, Any] | None, space: ConfigurationSpace | None = None,
              seed: int | None = None) -> ConfigurationSpace:
    """The space as searched for a dataset of this shape: without the hyperparameters whose
    ``only_for`` does not fit it (video options on images, the channel adapter on 1- or
    3-channel data), and without the conditions and forbidden clauses that name them.

    A configuration of this space is completed for the learner by :func:`validate_config`
    (over the whole space): what the dataset's space lacks takes its default, which the
    learner ignores for such data.

    Parameters
    ----------
    shape:
        The dataset's shape (a :class:`DataShape` or its ``to_dict()``); None: the whole space.
    space:
        The declared space (default :func:`load_space`'s); not modified.
    seed:
        Seed of the returned space's random number generator.
    """
    space = load_space() if space is None else space
    if shape is None:
        result = copy.deepcopy(space)
        result.seed(seed)
        return result
    shape = shape if isinstance(shape, DataShape) else DataShape(**dict(shape))
    dropped = {hp.name for hp in space.values() if not shape.fits((hp.meta or {}).get("only_for"))}
    result = ConfigurationSpace(name=space.name, seed=seed, meta={**dict(space.meta or {}), "data": shape.to_dict()})
    result.add([copy.deepcopy(hp) for hp in space.values() if hp.name not in dropped])

    def names(item: Any) -> set[str]:
        parts = getattr(item, "components", None)
        if parts is not None:
            return set().union(*(names(p) for p in parts))
        out = {item.hyperparameter.name} if hasattr(item, "hyperparameter") else set()
        for attr in ("child", "parent"):
            if hasattr(item, attr):
                out.add(getattr(item, attr).name)
        return out

    kept_conditions = [c for c in space.conditions if not names(c) & dropped]
    kept_forbidden = [f for f in space.forbidden_clauses if not names(f) & dropped]
    result.add([_rebind(c, result) for c in kept_conditions])
    result.add([_rebind(f, result) for f in kept_forbidden])
    return result


def _rebind(item: Any, space: ConfigurationSpace) -> Any:
    """A condition or forbidden clause rebuilt over ``space``'s hyperparameters of the same names."""
    from ConfigSpace import (
        AndConjunction,
        EqualsCondition,
        ForbiddenInClause,
        InCondition,
        NotEqualsCondition,
        OrConjunction,
    )

    if isinstance(item, AndConjunction | OrConjunction):
        return type(item)(*(_rebind(c, space) for c in item.components))
    if isinstance(item, ForbiddenAndConjunction):
        return ForbiddenAndConjunction(*(_rebind(c, space) for c in item.components))
    if isinstance(item, ForbiddenEqualsClause):
        return ForbiddenEqualsClause(space[item.hyperparameter.name], item.value)
    if isinstance(item, ForbiddenInClause):
        return ForbiddenInClause(space[item.hyperparameter.name], list(item.values))
    if isinstance(item, InCondition):
        return InCondition(space[item.child.name], space[item.parent.name], list(item.values))
    if isinstance(item, EqualsCondition | NotEqualsCondition):
        return type(item)(space[item.child.name], space[item.parent.name], item.value)
    raise SpaceError((space.meta or {}).get("source"), f"cannot carry {item} over to another space")


# --------------------------------------------------------------------------- values

def _to_python(value: Any) -> Any:
    """A numpy scalar as the Python scalar it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _show(value: Any) -> str:
    """A value as a message shows it: booleans as a YAML or JSON file writes them."""
    value = _to_python(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _allowed(hp: Any) -> str:
    """What a hyperparameter allows, in words."""
    if isinstance(hp, CategoricalHyperparameter | OrdinalHyperparameter):
        choices = hp.choices if isinstance(hp, CategoricalHyperparameter) else hp.sequence
        return "one of " + ", ".join(_show(c) for c in choices)
    if isinstance(hp, UniformIntegerHyperparameter | UniformFloatHyperparameter):
        kind = "an integer" if isinstance(hp, UniformIntegerHyperparameter) else "a number"
        scale = " (log scale)" if hp.log else ""
        return f"{kind} in [{_show(hp.lower)}, {_show(hp.upper)}]{scale}"
    return f"a legal value of {hp}"


def _coerce_value(hp: Any, value: Any) -> Value:
    """``value`` as the Python value ``hp`` holds, or a :class:`ConfigError` (no path)."""
    value = received = _to_python(value)

    def refuse(why: str, hint: str = "") -> ConfigError:
        return ConfigError(None, f"got {_show(received)} ({type(received).__name__}): {why}; "
                                 f"allowed: {_allowed(hp)}{hint}", field=hp.name)

    if isinstance(hp, CategoricalHyperparameter | OrdinalHyperparameter):
        choices = [_to_python(c) for c in (hp.choices if isinstance(hp, CategoricalHyperparameter)
                                           else hp.sequence)]
        kind = _choice_kind(choices)
        if kind is bool:
            ok = isinstance(value, bool)
        elif kind is str:
            ok = isinstance(value, str)
        else:  # numbers: 32 and 32.0 both mean 32, True does not
            ok = _is_number(value)
        if ok:
            for choice in choices:
                if value == choice:
                    return choice
        hint = ""
        if isinstance(value, str) and kind is str:
            lowered = {str(c).lower(): c for c in choices}
            close = lowered.get(value.lower()) or next(
                iter(difflib.get_close_matches(value, [str(c) for c in choices], n=1)), None)
            hint = f" (did you mean {close!r}?)" if close is not None else ""
        raise refuse("not among the choices" if ok else "wrong type", hint)

    if isinstance(hp, UniformIntegerHyperparameter):
        if not _is_number(value):
            raise refuse("wrong type, expected an integer")
        if isinstance(value, float):
            if not value.is_integer():
                raise refuse("not an integer")
            value = int(value)
        if not hp.lower <= value <= hp.upper:
            raise refuse("out of range")
        return int(value)

    if isinstance(hp, UniformFloatHyperparameter):
        if not _is_number(value):
            raise refuse("wrong type, expected a number")
        value = float(value)
        if not hp.lower <= value <= hp.upper:  # also refuses NaN
            raise refuse("out of range")
        return value

    # Another kind of hyperparameter (a space built elsewhere): ConfigSpace decides.
    if not hp.legal_value(value):
        raise refuse("not a legal value")
    return value


def _unknown_key(key: Any, value: Any, space: ConfigurationSpace) -> ConfigError:
    names = list(space.keys())
    close = difflib.get_close_matches(str(key), names, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ConfigError(None, f"unknown hyperparameter {key!r} (got {_show(value)}){hint}; "
                             f"allowed: {', '.join(sorted(names))}", field=str(key))


def _with_source(error: ConfigError, source: str | Path | None) -> ConfigError:
    if source is None:
        return error
    return ConfigError(source, error.message, field=error.field)


# --------------------------------------------------------------------------- configurations

def default_config(space: ConfigurationSpace | None = None) -> dict[str, Value]:
    """The space's default configuration as a plain dict of Python values.

    These are the values :func:`validate_config` fills in for missing keys. They are not
    the "single best" fixed configuration, which is ``configs/finetune/default.yaml``.

    Parameters
    ----------
    space:
        The space; by default :func:`load_space`'s.
    """
    space = load_space() if space is None else space
    return _complete(space, dict(space.get_default_configuration()), {})


def _inactive_value(hp: Any) -> Value:
    """What a configuration holds for ``hp`` where it is inactive: its ``when_inactive`` (e.g.
    ``pretrained: false`` for a network without pretrained weights), else its default."""
    meta = hp.meta or {}
    return _to_python(meta["when_inactive"] if "when_inactive" in meta else hp.default_value)


def _complete(space: ConfigurationSpace, active: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Value]:
    """Every hyperparameter of ``space``, in its order: the active values, then for an inactive
    one the value given for it (an older configuration's: kept, so that it reads back and runs
    unchanged; the learner does not read it) or :func:`_inactive_value`."""
    out = {}
    for hp in space.values():
        if hp.name in active:
            out[hp.name] = _to_python(active[hp.name])
        elif hp.name in given:
            out[hp.name] = _to_python(given[hp.name])
        else:
            out[hp.name] = _inactive_value(hp)
    return out


def validate_config(config: Mapping[str, Any], space: ConfigurationSpace | None = None,
                    source: str | Path | None = None) -> dict[str, Value]:
    """Check a configuration against the space; fill missing keys from the defaults.

    Parameters
    ----------
    config:
        Hyperparameter name -> value (a plain dict, a ``ConfigSpace.Configuration``, or
        what hpbandster hands a worker). A key left out takes the space's default
        (:func:`default_config`), so a file need only name what differs from it.
        Booleans must be ``true``/``false``; integers may be written ``32`` or ``32.0``
        but not ``32.5``; floats accept integers (``1`` is ``1.0``); numpy scalars are
        accepted.
    space:
        The space; by default :func:`load_space`'s.
    source:
        The file the configuration came from, named in errors.

    Returns
    -------
    dict
        Every hyperparameter of the space, as ``str``, ``int``, ``float`` or ``bool``
        (never numpy scalars), in the space's order. A hyperparameter that is inactive
        under the others (a fine-tuning one when ``finetune`` is false, ``pretrained`` for
        ``scratch_cnn``; see the space file's ``active_when``) keeps a value given for it
        (configurations written before the space had conditions read back unchanged) or
        else takes its ``when_inactive`` value (its default where none is declared); the
        learner does not read it.

    Raises
    ------
    ConfigError
        An unknown key, a value of the wrong type, out of range or not among the choices,
        or a combination the space forbids (among the active values). The error's
        ``field`` is the hyperparameter; its message gives the value received and what is
        allowed, and its ``path`` is ``source``.
    """
    space = load_space() if space is None else space
    if not isinstance(config, Mapping):
        raise ConfigError(source, "a configuration must be a mapping of hyperparameter names to "
                                  f"values; got {type(config).__name__}")
    given: dict[str, Value] = {}
    for key, value in config.items():
        if key not in space:
            raise _with_source(_unknown_key(key, value, space), source)
        try:
            given[key] = _coerce_value(space[key], value)
        except ConfigError as exc:
            raise _with_source(exc, source) from None

    # Defaults of every hyperparameter, active by default or not (a given value may
    # activate a conditional one); inactive ones are dropped below.
    values = {**{hp.name: _to_python(hp.default_value) for hp in space.values()}, **given}
    try:
        if space.conditions:
            configuration = deactivate_inactive_hyperparameters(values, space)
        else:
            configuration = Configuration(space, values=values)
        configuration.check_valid_configuration()
    except ValueError as exc:  # a forbidden combination, or a check of ConfigSpace's own
        raise ConfigError(source, f"refused by the configuration space: {exc}") from None
    return _complete(space, dict(configuration), given)


def active_hyperparameters(config: Mapping[str, Any], space: ConfigurationSpace | None = None) -> list[str]:
    """The names of the hyperparameters of ``space`` that are active under ``config`` (a
    validated configuration), in the space's order."""
    space = load_space() if space is None else space
    values = {name: config[name] for name in space.keys() if name in config}
    return list(deactivate_inactive_hyperparameters(values, space).keys())


def load_config(path: str | Path, space: ConfigurationSpace | None = None) -> dict[str, Value]:
    """Read and validate a configuration file (YAML, or JSON for a ``.json`` file).

    The file holds either the configuration itself (hyperparameter -> value) or a mapping
    with a ``config`` key holding it beside metadata (``name``, ``source``, ``doc``, ...),
    which is not validated and not returned::

        name: autoclint-like
        source: kakaobrain/autoclint
        config:
          backbone: tf_efficientnet_lite0
          learning_rate: 0.025

    Parameters
    ----------
    path:
        The file; ``.json`` is read as JSON, anything else as YAML (``1e-3`` is a float).
    space:
        The space; by default :func:`load_space`'s.

    Returns
    -------
    dict
        The validated configuration, missing keys filled (see :func:`validate_config`).

    Raises
    ------
    ConfigError
        The file is missing or unparsable, or its configuration is refused; the message
        names the file.
    """
    path = Path(path)
    data = _read_file(path, ConfigError, as_json=path.suffix.lower() in _JSON_SUFFIXES)
    if isinstance(data, Mapping) and "config" in data:
        data = data["config"]
        if not isinstance(data, Mapping):
            raise ConfigError(path, f"'config' must be a mapping of hyperparameter names to values; "
                                    f"got {type(data).__name__}", field="config")
    elif not isinstance(data, Mapping):
        raise ConfigError(path, "expected a mapping of hyperparameter names to values (or one "
                                f"with a 'config' key); got {type(data).__name__}")
    config = validate_config(data, space=space, source=path)
    logger.debug("read a configuration from %s", path)
    return config


# --------------------------------------------------------------------------- this machine

def _absent_backbones(space: ConfigurationSpace) -> list[str]:
    """The space's backbone choices with pretrained weights that are not on this machine."""
    if "backbone" not in space or not isinstance(space["backbone"], CategoricalHyperparameter):
        return []
    from finetune import backbones  # lazily: it imports PyTorch

    absent = []
    for name in (_to_python(c) for c in space["backbone"].choices):
        try:
            has_pretrained = backbones.get_backbone_cfg(name).has_pretrained
        except ValueError:  # not a registered backbone: check_runnable's and the learner's concern
            continue
        if has_pretrained and not backbones.weights_available(name):
            absent.append(name)
    return absent


def runnable_space(space: ConfigurationSpace | None = None, seed: int | None = None) -> ConfigurationSpace:
    """The space without the configurations that cannot run on this machine.

    For every backbone choice whose pretrained weights are absent here
    (:func:`finetune.backbones.weights_available`), ``backbone == name && pretrained ==
    true`` becomes a forbidden clause (the backbone alone when the space has no
    ``pretrained``); such a backbone stays available with ``pretrained: false``. Where
    the default configuration would be forbidden, the backbone's default becomes the
    first choice that can run. What is forbidden is logged.

    Parameters
    ----------
    space:
        The space (not modified); by default :func:`load_space`'s.
    seed:
        Seed of the returned space's random number generator.

    Returns
    -------
    ConfigurationSpace
        A new space (the same one, copied, when everything can run).

    Raises
    ------
    SpaceError
        Nothing in the space can run here, or its default would be forbidden and its
        conditions or forbidden clauses prevent changing it.
    """
    space = load_space() if space is None else space
    absent = _absent_backbones(space)
    source = (space.meta or {}).get("source")
    if not absent:
        result = copy.deepcopy(space)
        result.seed(seed)
        return result
    backbone = space["backbone"]
    with_pretrained = "pretrained" in space
    choices = [_to_python(c) for c in backbone.choices]
    runnable = [c for c in choices if c not in absent]
    default = _to_python(backbone.default_value)
    pretrained_default = bool(_to_python(space["pretrained"].default_value)) if with_pretrained else True
    if default in absent and pretrained_default:
        if not runnable:
            raise SpaceError(source, f"no backbone of the space can run on this machine: the pretrained "
                                     f"weights of {', '.join(absent)} are absent", field="backbone")
        if space.conditions or space.forbidden_clauses:
            raise SpaceError(source, f"the default backbone {default!r} cannot run on this machine (its "
                                     f"pretrained weights are absent) and a space with conditions or forbidden "
                                     f"clauses is not rebuilt with another default", field="backbone")
        logger.info("default backbone %s cannot run here (pretrained weights absent): default %s instead",
                    default, runnable[0])
        new_backbone = CategoricalHyperparameter(backbone.name, choices, default_value=runnable[0],
                                                 meta=backbone.meta, weights=backbone.weights)
        result = ConfigurationSpace(name=space.name, meta=dict(space.meta or {}))
        result.add([new_backbone if hp.name == backbone.name else copy.deepcopy(hp) for hp in space.values()])
    else:
        result = copy.deepcopy(space)
    if with_pretrained:
        clauses = [ForbiddenAndConjunction(ForbiddenEqualsClause(result["backbone"], name),
                                           ForbiddenEqualsClause(result["pretrained"], True)) for name in absent]
    elif runnable:
        clauses = [ForbiddenEqualsClause(result["backbone"], name) for name in absent]
    else:
        raise SpaceError(source, f"no backbone of the space can run on this machine: the pretrained weights of "
                                 f"{', '.join(absent)} are absent", field="backbone")
    result.add(clauses)
    result.seed(seed)
    logger.info("pretrained weights absent on this machine for %s: %s", ", ".join(absent),
                "forbidden with pretrained=true" if with_pretrained else "forbidden")
    return result


def check_runnable(config: Mapping[str, Any], source: str | Path | None = None) -> Mapping[str, Any]:
    """Refuse a configuration that cannot run on this machine; return it unchanged otherwise.

    A configuration cannot run when it asks for pretrained weights (``pretrained: true``,
    the default) of a backbone that has them (``BackboneCfg.has_pretrained``) but whose
    file is not here: ``finetune.backbones.find_weights`` cannot find it. Call it once
    the configuration is validated and before any budget is spent.

    Parameters
    ----------
    config:
        A configuration (validated: see :func:`validate_config`).
    source:
        The file the configuration came from, named in the error.

    Returns
    -------
    Mapping
        ``config`` itself.

    Raises
    ------
    ConfigError
        ``field`` is ``backbone``; the message names the backbone, where its weights are
        looked for and how to provide them (file location, environment variable), and
        the alternatives (a backbone whose weights are here, or ``pretrained: false``).
    """
    name = config.get("backbone")
    if name is None or not _to_python(config.get("pretrained", True)):
        return config
    from finetune import backbones  # lazily: it imports PyTorch

    try:
        cfg = backbones.get_backbone_cfg(name)
    except ValueError as exc:
        raise ConfigError(source, str(exc), field="backbone") from None
    if not cfg.has_pretrained:
        return config  # trained from random initialisation: nothing to find
    try:
        backbones.find_weights(name)
    except backbones.PretrainedWeightsNotFoundError as exc:
        here = [b for b in backbones.list_backbones(pretrained_only=True)
                if b != name and backbones.weights_available(b)]
        others = f" Backbones whose pretrained weights are here: {', '.join(here)}." if here else ""
        raise ConfigError(source, f"{name!r} with pretrained: true cannot run on this machine: {exc}{others}",
                          field="backbone") from None
    return config


def sample_configs(n: int, seed: int = 0, space: ConfigurationSpace | None = None,
                   runnable_only: bool = True) -> list[dict[str, Value]]:
    """Draw ``n`` random configurations from the space (uniformly; log ranges on log scale).

    Parameters
    ----------
    n:
        How many (0 gives an empty list).
    seed:
        Seed of the draw: the same ``n`` and ``seed`` give the same configurations (on
        machines with the same pretrained weights, when ``runnable_only``).
    space:
        The space (it is reseeded with ``seed``); by default :func:`load_space`'s.
    runnable_only:
        Draw from :func:`runnable_space` (default): never a backbone with
        ``pretrained: true`` whose pretrained weights are absent on this machine.
        ``False`` draws from the whole declared space (e.g. for another machine).

    Returns
    -------
    list of dict
        Valid configurations of Python values.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"sample_configs: n must be an integer >= 0; got {n!r}")
    if runnable_only:
        space = runnable_space(space, seed=seed)
    elif space is None:
        space = load_space(seed=seed)
    else:
        space.seed(seed)
    if n == 0:
        return []
    drawn = space.sample_configuration(n) if n > 1 else [space.sample_configuration()]
    return [_complete(space, dict(configuration), {}) for configuration in drawn]


def config_to_json(config: Mapping[str, Any]) -> str:
    """A configuration as one line of JSON with sorted keys (stable: equal configs, equal text).

    Numpy scalars are written as the Python values they hold. The configuration is not
    validated (do that with :func:`validate_config` first where it matters).
    """
    if not isinstance(config, Mapping):
        raise ConfigError(None, f"a configuration must be a mapping; got {type(config).__name__}")
    plain = {str(key): _to_python(value) for key, value in config.items()}
    try:
        return json.dumps(plain, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ConfigError(None, f"cannot be written as JSON: {exc}") from None
