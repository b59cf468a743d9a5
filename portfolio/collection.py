"""Training-dataset collections: which datasets the portfolio is built on, and how each is made.

A collection is a YAML file (``configs/collections/<name>.yaml``) naming datasets, each made
from a source (a built-in offline source of :mod:`autodl.sources`, or ``tfds:<name>`` for
tensorflow-datasets) by a short list of *derivations*, as ZAP (Ozturk et al., "Zero-shot
AutoML with pretrained models", ICML 2022) derives 525 datasets from 35 by class subsets,
resolutions, sample counts, colour and rotation. Each dataset is built into
``<out>/<name>/`` as an AutoDL dataset with a ``recipe.json`` beside it: the recipe and its
hash, so that a second build skips what is already built and a changed recipe is never
silently mixed with old data.

The file::

    name: default
    description: one paragraph
    held_out: [Monkeys, miniciao]          # benchmark sets that must not be in the collection
    sources:                               # every source the datasets use, with its licence
      - {name: digits, origin: "scikit-learn load_digits (UCI)", licence: "CC BY 4.0"}
    datasets:
      - name: digits_small                 # [A-Za-z0-9_.-]+, unique
        source: digits                     # a built-in source or tfds:<name>
        doc: "how it was made, in one line"
        seed: 0                            # optional (default 0): source and derivations
        params: {}                         # optional: keyword arguments of the source's loader
        classes: [0, 1, 2]                 # derivations, all optional, applied in this order:
        max_train: 300
        max_test: 200
        color: grey                        # grey | rgb
        rotate: 90                         # degrees, every example
        random_rotate: 30                  # each example by a seeded uniform angle in [-30, 30]
        resize: 32                         # side, or [height, width]
        random_rescale: [16, 48]           # each example's longer side drawn in [16, 48]

Derivations (:data:`TRANSFORMS`, applied in that order to train and test alike):

- ``classes``: keep these classes (indices, or names of the source's classes), renumbered
  in the order given; multi-label rows keep the chosen labels and rows left without one
  are dropped.
- ``max_train`` / ``max_test``: a seeded subset stratified by class
  (:func:`autodl.labels.stratified_subset`, seeds ``seed`` and ``seed + 1`` as
  :func:`autodl.sources.write_source`).
- ``color``: ``grey`` (ITU-R BT.601 luma) or ``rgb`` (grey copied to three channels).
- ``rotate``: every example turned by a fixed angle (multiples of 90 exactly, others
  bilinear on the same canvas).
- ``random_rotate``: every example turned by its own seeded angle.
- ``resize``: every example to one size (bilinear up, Lanczos down).
- ``random_rescale``: every example rescaled, aspect kept, so that its longer side is a
  seeded integer in the range: fixed-size data made variable-size.

tensorflow-datasets entries take ``max_train`` / ``max_test`` only (passed to
:func:`autodl.convert.convert_tfds`) and ``params`` among ``split_train``, ``split_test``,
``image_key``, ``label_key``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)

COLLECTIONS_DIR = Path(__file__).resolve().parents[1] / "configs" / "collections"
"""Where collections are found by name."""
RECIPE_FILE = "recipe.json"
"""The file beside each built dataset holding its recipe and hash."""
RECIPE_VERSION = 1
"""Part of every recipe hash: raise it when a derivation changes what it makes."""
REPORT_FILE = "linear-baseline.json"
"""The file beside each built dataset holding its linear-baseline figures (reused by the report)."""
TRANSFORMS = ("classes", "max_train", "max_test", "color", "rotate", "random_rotate", "resize", "random_rescale")
"""The derivations, in the order they are applied."""
TFDS_TRANSFORMS = ("max_train", "max_test")
TFDS_PARAMS = ("split_train", "split_test", "image_key", "label_key")
ENTRY_KEYS = ("name", "source", "doc", "seed", "params") + TRANSFORMS
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]+$")

Arrays = tuple[Any, np.ndarray, Any, np.ndarray, list[str]]


class CollectionError(AutoDLError):
    """A collection file, or a build, is not as expected (names the file, the field and what was expected)."""


# --- the collection file ----------------------------------------------------------------------

@dataclass(frozen=True)
class SourceRef:
    """A source a collection draws on: its name, where it comes from and its licence."""

    name: str
    origin: str
    licence: str


@dataclass(frozen=True)
class DatasetRecipe:
    """How one dataset of a collection is made.

    Attributes
    ----------
    name:
        The dataset's name (its folder and ``<name>.data``).
    source:
        A built-in source name (:mod:`autodl.sources`) or ``tfds:<name>``.
    doc:
        One line: how it was made.
    seed:
        Seed of the source and the derivations.
    params:
        Keyword arguments of the source's loader.
    transforms:
        The derivations given, ``{name: value}`` in :data:`TRANSFORMS` order.
    index:
        The entry's position in the file (for error messages).
    """

    name: str
    source: str
    doc: str
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    transforms: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0

    @property
    def is_tfds(self) -> bool:
        return self.source.startswith("tfds:")

    def recipe(self) -> dict[str, Any]:
        """What the built data depends on (the hashed part): source, seed, params, derivations."""
        return {"version": RECIPE_VERSION, "source": self.source, "seed": self.seed,
                "params": _plain(dict(self.params)), "transforms": _plain(dict(self.transforms))}

    def recipe_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`recipe`."""
        text = json.dumps(self.recipe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Collection:
    """A collection file, read and checked: its sources, held-out sets and dataset recipes."""

    name: str
    path: Path
    description: str
    sources: tuple[SourceRef, ...]
    held_out: tuple[str, ...]
    datasets: tuple[DatasetRecipe, ...]

    def source(self, name: str) -> SourceRef:
        return next(s for s in self.sources if s.name == name)

    def select(self, only: Sequence[str] | None = None) -> list[DatasetRecipe]:
        """The recipes named in ``only`` (all when None), in the file's order.

        Raises
        ------
        CollectionError
            A name that is not in the collection (the message lists them).
        """
        if not only:
            return list(self.datasets)
        names = [d.name for d in self.datasets]
        unknown = [n for n in only if n not in names]
        if unknown:
            raise CollectionError(self.path, f"no dataset {', '.join(map(repr, unknown))} in collection "
                                             f"{self.name!r}; it has {', '.join(names)}", field="--only")
        return [d for d in self.datasets if d.name in set(only)]


def _plain(value: Any) -> Any:
    """Tuples as lists (recursively), so that recipes compare and hash like their JSON."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def available_collections() -> list[str]:
    """The collection names under :data:`COLLECTIONS_DIR`."""
    return sorted(p.stem for p in COLLECTIONS_DIR.glob("*.yaml"))


def collection_path(name_or_path: str | Path) -> Path:
    """The YAML file of a collection given by name (under :data:`COLLECTIONS_DIR`) or path.

    Raises
    ------
    CollectionError
        Neither a file nor a known name (the message lists the known names).
    """
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        if not path.is_file():
            raise CollectionError(path, "no such collection file")
        return path
    candidate = COLLECTIONS_DIR / f"{name_or_path}.yaml"
    if candidate.is_file():
        return candidate
    raise CollectionError(None, f"unknown collection {str(name_or_path)!r}; expected a YAML path or one of "
                                f"{', '.join(available_collections()) or '(none)'} (in {COLLECTIONS_DIR})",
                          field="collection")


def _int(value: Any, path: Path, where: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise CollectionError(path, f"{value!r}: expected an integer >= {low}", field=where)
    return value


def _number(value: Any, path: Path, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise CollectionError(path, f"{value!r}: expected a number (degrees)", field=where)
    return float(value)


def _check_transform(key: str, value: Any, path: Path, where: str) -> Any:
    """One derivation's value, checked and normalised (what the recipe stores)."""
    if key == "classes":
        if not isinstance(value, list) or len(value) < 2:
            raise CollectionError(path, f"{value!r}: expected a list of at least 2 class indices or names",
                                  field=where)
        for v in value:
            if isinstance(v, bool) or not isinstance(v, int | str) or (isinstance(v, int) and v < 0):
                raise CollectionError(path, f"{v!r} in {value!r}: expected class indices >= 0 or class names",
                                      field=where)
        if len(set(value)) != len(value):
            raise CollectionError(path, f"{value!r}: expected distinct classes", field=where)
        return list(value)
    if key in ("max_train", "max_test"):
        return _int(value, path, where, low=1)
    if key == "color":
        if value not in ("grey", "rgb"):
            raise CollectionError(path, f"{value!r}: expected 'grey' or 'rgb'", field=where)
        return value
    if key in ("rotate", "random_rotate"):
        angle = _number(value, path, where)
        if key == "random_rotate" and not 0 < angle <= 180:
            raise CollectionError(path, f"{value!r}: expected a largest angle in (0, 180] degrees", field=where)
        return value
    if key == "resize":
        if isinstance(value, int) and not isinstance(value, bool):
            return [_int(value, path, where, low=1)] * 2
        if isinstance(value, list) and len(value) == 2:
            return [_int(v, path, where, low=1) for v in value]
        raise CollectionError(path, f"{value!r}: expected a side in pixels or [height, width]", field=where)
    if key == "random_rescale":
        if not (isinstance(value, list) and len(value) == 2):
            raise CollectionError(path, f"{value!r}: expected [smallest, largest] longer side in pixels",
                                  field=where)
        lo, hi = (_int(v, path, where, low=1) for v in value)
        if hi < lo:
            raise CollectionError(path, f"{value!r}: expected smallest <= largest", field=where)
        return [lo, hi]
    raise AssertionError(key)


def _parse_entry(entry: Any, i: int, path: Path, source_names: set[str]) -> DatasetRecipe:
    from autodl import sources

    where = f"datasets[{i}]"
    if not isinstance(entry, Mapping):
        raise CollectionError(path, f"{entry!r}: expected a mapping with name, source, doc", field=where)
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise CollectionError(path, f"unknown key(s) {', '.join(map(repr, unknown))}; expected some of "
                                    f"{', '.join(ENTRY_KEYS)}", field=f"{where}.{unknown[0]}")
    for key in ("name", "source", "doc"):
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise CollectionError(path, f"{entry.get(key)!r}: expected a non-empty string", field=f"{where}.{key}")
    name = entry["name"]
    if not NAME_PATTERN.match(name):
        raise CollectionError(path, f"{name!r}: expected letters, digits, '_', '.', '-'", field=f"{where}.name")
    where = f"datasets[{i}] ({name})"
    source = entry["source"]
    if source not in source_names:
        raise CollectionError(path, f"source {source!r} is not listed under the top-level 'sources:' "
                                    f"(listed: {', '.join(sorted(source_names))})", field=f"{where}.source")
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise CollectionError(path, f"{params!r}: expected a mapping of the source's parameters",
                              field=f"{where}.params")
    seed = _int(entry.get("seed", 0), path, f"{where}.seed")
    transforms = {k: _check_transform(k, entry[k], path, f"{where}.{k}") for k in TRANSFORMS if k in entry}
    if source.startswith("tfds:"):
        if not source.removeprefix("tfds:"):
            raise CollectionError(path, "'tfds:' without a dataset name", field=f"{where}.source")
        extra = [k for k in transforms if k not in TFDS_TRANSFORMS]
        if extra:
            raise CollectionError(path, f"tensorflow-datasets entries take only {', '.join(TFDS_TRANSFORMS)}",
                                  field=f"{where}.{extra[0]}")
        bad = [k for k in params if k not in TFDS_PARAMS]
        if bad:
            raise CollectionError(path, f"tensorflow-datasets entries take params {', '.join(TFDS_PARAMS)}",
                                  field=f"{where}.params.{bad[0]}")
    else:
        try:
            known = sources.source_parameters(source)
        except AutoDLError:
            raise CollectionError(path, f"no built-in source {source!r}; expected tfds:<name> or one of "
                                        f"{', '.join(sources.SOURCES)}", field=f"{where}.source") from None
        bad = [k for k in params if k not in known]
        if bad:
            raise CollectionError(path, f"source {source!r} takes no parameter {bad[0]!r}; it takes "
                                        f"{', '.join(known) or 'none'}", field=f"{where}.params.{bad[0]}")
    return DatasetRecipe(name=name, source=source, doc=" ".join(entry["doc"].split()), seed=seed,
                         params=dict(params), transforms=transforms, index=i)


def load_collection(name_or_path: str | Path) -> Collection:
    """Read and check a collection file (by name or path).

    Parameters
    ----------
    name_or_path:
        A name under :data:`COLLECTIONS_DIR` (``default``, ``tfds``) or a YAML path.

    Returns
    -------
    Collection

    Raises
    ------
    CollectionError
        Unreadable YAML, a missing or ill-typed field, an unknown source or derivation, a
        dataset whose source is not listed under ``sources:``, two datasets of one name, or
        a dataset or source named in ``held_out`` (each message names the file and field).
    """
    import yaml

    path = collection_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CollectionError(path, f"is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise CollectionError(path, "expected a mapping with name, sources, datasets")
    unknown = sorted(set(data) - {"name", "description", "held_out", "sources", "datasets"})
    if unknown:
        raise CollectionError(path, f"unknown top-level key(s) {', '.join(map(repr, unknown))}; expected name, "
                                    f"description, held_out, sources, datasets", field=unknown[0])
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise CollectionError(path, f"{name!r}: expected a non-empty string", field="name")
    raw_sources = data.get("sources")
    if not isinstance(raw_sources, list) or not raw_sources:
        raise CollectionError(path, "expected a list of the sources the datasets use, each with name, origin, "
                                    "licence", field="sources")
    refs = []
    for i, s in enumerate(raw_sources):
        if not isinstance(s, Mapping) or any(not isinstance(s.get(k), str) or not s.get(k)
                                             for k in ("name", "origin", "licence")):
            raise CollectionError(path, f"{s!r}: expected a mapping with name, origin and licence (strings)",
                                  field=f"sources[{i}]")
        refs.append(SourceRef(s["name"], " ".join(s["origin"].split()), " ".join(s["licence"].split())))
    held_out = data.get("held_out") or []
    if not isinstance(held_out, list) or not all(isinstance(h, str) for h in held_out):
        raise CollectionError(path, f"{held_out!r}: expected a list of dataset names", field="held_out")
    raw = data.get("datasets")
    if not isinstance(raw, list) or not raw:
        raise CollectionError(path, "expected a non-empty list of datasets", field="datasets")
    source_names = {r.name for r in refs}
    recipes = [_parse_entry(e, i, path, source_names) for i, e in enumerate(raw)]
    seen: set[str] = set()
    for r in recipes:
        if r.name in seen:
            raise CollectionError(path, f"two datasets named {r.name!r}; expected unique names",
                                  field=f"datasets[{r.index}].name")
        seen.add(r.name)
    lowered = {h.lower() for h in held_out}
    for r in recipes:
        if r.name.lower() in lowered or r.source.lower() in lowered:
            raise CollectionError(path, f"{r.name!r} ({r.source}) is a held-out benchmark set; held-out sets "
                                        f"must stay out of the collection", field=f"datasets[{r.index}]")
    unused = source_names - {r.source for r in recipes}
    if unused:
        logger.info("%s: sources listed but not used: %s", path, ", ".join(sorted(unused)))
    return Collection(name=name, path=path, description=" ".join(str(data.get("description", "")).split()),
                      sources=tuple(refs), held_out=tuple(held_out), datasets=tuple(recipes))


# --- derivations ------------------------------------------------------------------------------

def _frames(example: np.ndarray) -> np.ndarray:
    """An image ``[H, W, C]`` or clip ``[T, H, W, C]`` as ``[T, H, W, C]``."""
    ex = np.asarray(example)
    if ex.ndim == 2:
        ex = ex[..., None]
    return ex if ex.ndim == 4 else ex[None]


def _stack(xs: list[np.ndarray]) -> Any:
    """An array when every example has one shape, else the list (variable-size examples)."""
    if xs and len({x.shape for x in xs}) == 1:
        return np.stack(xs)
    return xs


def subset_classes(arrays: Arrays, classes: Sequence[int | str], *, what: str = "classes") -> Arrays:
    """Keep the given classes (indices or names), renumbered in the order given.

    Parameters
    ----------
    arrays:
        ``(x_train, y_train, x_test, y_test, names)`` as a source's loader returns them.
    classes:
        Class indices or names (at least 2, distinct).
    what:
        How the field is called in error messages.

    Returns
    -------
    tuple
        The same five, with only the examples of those classes. Multi-label rows (a 0/1
        matrix) keep the chosen columns; rows left without a label are dropped.

    Raises
    ------
    CollectionError
        A class index out of range or an unknown name (the message lists the names).
    """
    from autodl.sources import take

    x_tr, y_tr, x_te, y_te, names = arrays
    chosen = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise CollectionError(None, f"no class named {c!r}; the classes are {', '.join(names)}", field=what)
            chosen.append(names.index(c))
        else:
            if not 0 <= c < len(names):
                raise CollectionError(None, f"class index {c} out of range; expected 0 to {len(names) - 1} "
                                            f"({', '.join(names)})", field=what)
            chosen.append(int(c))
    if len(set(chosen)) != len(chosen):
        raise CollectionError(None, f"{list(classes)!r} names one class twice", field=what)
    out: list[Any] = []
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        y = np.asarray(y)
        if y.ndim == 2:
            y_new = y[:, chosen]
            keep = np.flatnonzero(y_new.any(axis=1))
            y_new = y_new[keep]
        else:
            remap = np.full(len(names), -1, dtype=np.int64)
            remap[chosen] = np.arange(len(chosen))
            keep = np.flatnonzero(remap[y] >= 0)
            y_new = remap[y[keep]]
        out += [take(x, keep), y_new]
    return out[0], out[1], out[2], out[3], [names[c] for c in chosen]


def cap_examples(arrays: Arrays, max_train: int | None, max_test: int | None, seed: int) -> Arrays:
    """At most ``max_train`` / ``max_test`` examples (:func:`autodl.sources.cap_examples`)."""
    from autodl.sources import cap_examples as cap

    return cap(arrays, max_train, max_test, seed)


def to_color(x: Any, mode: str) -> Any:
    """Images or clips as ``grey`` (1 channel, ITU-R BT.601 luma, rounded) or ``rgb`` (3 channels;
    grey copied, alpha dropped)."""
    if mode not in ("grey", "rgb"):
        raise CollectionError(None, f"{mode!r}: expected 'grey' or 'rgb'", field="color")

    def one(frame: np.ndarray) -> np.ndarray:
        c = frame.shape[-1]
        if mode == "rgb":
            return np.repeat(frame, 3, axis=-1) if c == 1 else frame[..., :3]
        if c == 1:
            return frame
        luma = frame[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]

    return _per_frame(x, lambda f, _i: one(f))


def _per_frame(x: Any, fn: Callable[[np.ndarray, int], np.ndarray]) -> Any:
    """``fn(frame, example index)`` on every frame of every example; an array when shapes agree."""
    out = []
    for i, ex in enumerate(x):
        ex = np.asarray(ex)
        clip = _frames(ex)
        new = np.stack([fn(f, i) for f in clip])
        out.append(new if ex.ndim == 4 else new[0])
    return _stack(out)


def _rotate_frame(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Turn ``[H, W, C]`` anticlockwise: exact for multiples of 90, else bilinear on the same canvas."""
    from PIL import Image

    quarter = degrees / 90.0
    if float(quarter).is_integer():
        return np.ascontiguousarray(np.rot90(frame, k=int(quarter) % 4, axes=(0, 1)))
    squeeze = frame.shape[-1] == 1
    img = Image.fromarray(frame[..., 0] if squeeze else frame)
    out = np.asarray(img.rotate(degrees, resample=Image.Resampling.BILINEAR))
    return out[..., None] if squeeze else out


def rotate(x: Any, degrees: float) -> Any:
    """Every example turned anticlockwise by ``degrees`` (all frames of a clip alike)."""
    return _per_frame(x, lambda f, _i: _rotate_frame(f, degrees))


def random_rotate(x: Any, max_degrees: float, seed: int) -> Any:
    """Each example turned by its own angle, uniform in ``[-max_degrees, max_degrees]`` (seeded;
    all frames of a clip by the same angle)."""
    angles = np.random.default_rng(seed).uniform(-max_degrees, max_degrees, len(x))
    return _per_frame(x, lambda f, i: _rotate_frame(f, float(angles[i])))


def resize(x: Any, height: int, width: int) -> Any:
    """Every frame to ``height x width`` (bilinear up, Lanczos down)."""
    from autodl.sources import _resize

    return _per_frame(x, lambda f, _i: _resize(f, height, width))


def random_rescale(x: Any, low: int, high: int, seed: int) -> Any:
    """Each example rescaled, aspect kept, so that its longer side is a seeded integer in
    ``[low, high]``: fixed-size data made variable-size (a list of arrays)."""
    from autodl.sources import _resize

    sides = np.random.default_rng(seed).integers(low, high + 1, len(x))

    def one(frame: np.ndarray, i: int) -> np.ndarray:
        h, w = frame.shape[:2]
        scale = int(sides[i]) / max(h, w)
        return _resize(frame, max(1, round(h * scale)), max(1, round(w * scale)))

    return _per_frame(x, one)


def apply_transforms(arrays: Arrays, transforms: Mapping[str, Any], seed: int = 0) -> Arrays:
    """Apply the derivations of a recipe, in :data:`TRANSFORMS` order, to train and test.

    Parameters
    ----------
    arrays:
        ``(x_train, y_train, x_test, y_test, names)`` as a source's loader returns them.
    transforms:
        ``{derivation: value}`` (values as :func:`load_collection` normalises them).
    seed:
        Seed of the subsets and random derivations (test draws with ``seed + 1``).

    Returns
    -------
    tuple
        The derived arrays.
    """
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise CollectionError(None, f"unknown derivation(s) {sorted(unknown)}; expected {', '.join(TRANSFORMS)}",
                              field=min(unknown))
    if "classes" in transforms:
        arrays = subset_classes(arrays, transforms["classes"])
    if "max_train" in transforms or "max_test" in transforms:
        arrays = cap_examples(arrays, transforms.get("max_train"), transforms.get("max_test"), seed)
    x_tr, y_tr, x_te, y_te, names = arrays
    for key in TRANSFORMS[3:]:
        if key not in transforms:
            continue
        v = transforms[key]
        for subset, s in (("train", seed), ("test", seed + 1)):
            x = x_tr if subset == "train" else x_te
            if key == "color":
                x = to_color(x, v)
            elif key == "rotate":
                x = rotate(x, float(v))
            elif key == "random_rotate":
                x = random_rotate(x, float(v), s)
            elif key == "resize":
                h, w = (v, v) if isinstance(v, int) else v
                x = resize(x, int(h), int(w))
            elif key == "random_rescale":
                x = random_rescale(x, int(v[0]), int(v[1]), s)
            if subset == "train":
                x_tr = x
            else:
                x_te = x
    return x_tr, y_tr, x_te, y_te, names


# --- building -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_collection` did with one dataset: ``built``, ``rebuilt`` or ``skipped``."""

    name: str
    path: Path
    status: str
    train: int
    test: int
    seconds: float


def read_recipe(folder: str | Path) -> dict[str, Any] | None:
    """The ``recipe.json`` of a built dataset, or None where there is none (or it is unreadable)."""
    path = Path(folder) / RECIPE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and "hash" in data and "recipe" in data else None


def recipe_differences(stored: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The fields where two recipes differ, as ``field: old -> new`` lines."""
    out = []
    for key in sorted(set(stored) | set(new)):
        a, b = stored.get(key, "(absent)"), new.get(key, "(absent)")
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += recipe_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return out


def _state(recipe: DatasetRecipe, target: Path) -> str:
    """``new`` (nothing there), ``same`` (built from this recipe), ``changed`` or ``foreign``."""
    if not target.exists():
        return "new"
    stored = read_recipe(target)
    if stored is None:
        return "foreign"
    return "same" if stored["hash"] == recipe.recipe_hash() and _loads(target) else "changed"


def _loads(folder: Path) -> bool:
    from autodl.dataset import AutoDLDataset

    try:
        AutoDLDataset(folder).metadata("train")
    except (AutoDLError, OSError):
        return False
    return True


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _load_source_arrays(recipe: DatasetRecipe, collection: Collection) -> Arrays:
    from autodl import sources

    where = f"datasets[{recipe.index}] ({recipe.name})"
    reason = sources.get_source(recipe.source).check()
    if reason is not None:
        raise CollectionError(collection.path, f"source {recipe.source!r} is not available here: {reason}",
                              field=f"{where}.source")
    try:
        return sources.load_source(recipe.source, recipe.seed, **recipe.params)
    except AutoDLError as exc:
        raise CollectionError(collection.path, f"source {recipe.source!r}: {exc.message}",
                              field=f"{where}.params" + (f".{exc.field}" if exc.field else "")) from None
    except TypeError as exc:
        raise CollectionError(collection.path, f"source {recipe.source!r}: {exc}", field=f"{where}.params") from None


def _write(recipe: DatasetRecipe, collection: Collection, tmp: Path, tfds_data_dir: str | Path | None,
           progress: Callable[[int], None] | None) -> tuple[int, int]:
    """Write the dataset of ``recipe`` into ``tmp``; return its train and test counts."""
    from autodl.convert import convert_tfds
    from autodl.dataset import AutoDLDataset
    from autodl.writer import write_arrays

    where = f"datasets[{recipe.index}] ({recipe.name})"
    if recipe.is_tfds:
        tfds_name = recipe.source.removeprefix("tfds:")
        try:
            convert_tfds(tfds_name, tmp, max_train=recipe.transforms.get("max_train"),
                         max_test=recipe.transforms.get("max_test"), data_dir=tfds_data_dir, seed=recipe.seed,
                         overwrite=True, progress=progress, **dict(recipe.params))
        except Exception as exc:  # noqa: BLE001 (tfds fails in many ways offline: one line, the fix named)
            detail = exc.message if isinstance(exc, AutoDLError) else f"{type(exc).__name__}: {exc}"
            raise CollectionError(collection.path, f"tensorflow-datasets could not provide {tfds_name!r} "
                                                   f"({_one_line(detail, 200)}); this needs the network, or the "
                                                   f"data prepared beforehand in --tfds-data-dir",
                                  field=f"{where}.source") from None
        ds = AutoDLDataset(tmp)
        # convert_tfds names the dataset after tfds; the collection's name is the folder's
        return ds.metadata("train").size(), ds.metadata("test").size()
    arrays = _load_source_arrays(recipe, collection)
    try:
        x_tr, y_tr, x_te, y_te, names = apply_transforms(arrays, recipe.transforms, recipe.seed)
    except CollectionError as exc:
        raise CollectionError(collection.path, exc.message, field=f"{where}.{exc.field}") from None
    for subset, y in (("train", y_tr), ("test", y_te)):
        if len(y) == 0:
            raise CollectionError(collection.path, f"the derivations leave no {subset} example", field=where)
    write_arrays(tmp, recipe.name, x_tr, y_tr, x_te, y_te, num_classes=len(names), label_names=names,
                 overwrite=True, threads=1, progress=progress)
    return len(y_tr), len(y_te)


def build_dataset(recipe: DatasetRecipe, collection: Collection, out: str | Path, *, overwrite: bool = False,
                  tfds_data_dir: str | Path | None = None,
                  progress: Callable[[int], None] | None = None) -> BuildResult:
    """Build one dataset of a collection into ``out/<name>/`` with its ``recipe.json``.

    Skips a dataset already built from the same recipe; a dataset built from another recipe
    (or a folder without ``recipe.json``) is rebuilt only with ``overwrite``.

    Parameters
    ----------
    recipe:
        The dataset's recipe (from ``collection``).
    collection:
        The collection it belongs to (named in the recipe file and in errors).
    out:
        The folder of the built collection.
    overwrite:
        Rebuild a dataset whose recipe changed.
    tfds_data_dir:
        tensorflow-datasets' data folder for ``tfds:`` sources.
    progress:
        Called with 1 after each example written.

    Returns
    -------
    BuildResult

    Raises
    ------
    CollectionError
        A changed recipe without ``overwrite`` (naming the dataset and what differs), an
        unavailable source (naming the fix), or a derivation that does not fit the data.
    """
    out = Path(out)
    target = out / recipe.name
    state = _state(recipe, target)
    where = f"datasets[{recipe.index}] ({recipe.name})"
    if state == "same":
        stored = read_recipe(target) or {}
        counts = stored.get("counts", {})
        return BuildResult(recipe.name, target, "skipped", int(counts.get("train", 0)),
                           int(counts.get("test", 0)), 0.0)
    if state != "new" and not overwrite:
        raise CollectionError(target, _refusal(recipe, target, state), field=where)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{recipe.name}.building-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        n_train, n_test = _write(recipe, collection, tmp, tfds_data_dir, progress)
        source = collection.source(recipe.source)
        card = {"name": recipe.name, "collection": collection.name, "collection_file": str(collection.path),
                "hash": recipe.recipe_hash(), "recipe": recipe.recipe(), "doc": recipe.doc,
                "origin": source.origin, "licence": source.licence,
                "counts": {"train": n_train, "test": n_test},
                "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (tmp / RECIPE_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    seconds = time.perf_counter() - start
    logger.info("built %s (%d train, %d test) in %.1f s", target, n_train, n_test, seconds)
    return BuildResult(recipe.name, target, "built" if state == "new" else "rebuilt", n_train, n_test, seconds)


def _refusal(recipe: DatasetRecipe, target: Path, state: str) -> str:
    if state == "foreign":
        return (f"{recipe.name!r} exists but holds no {RECIPE_FILE} (not built by build-collection); "
                f"pass --overwrite to replace it")
    stored = read_recipe(target) or {}
    diffs = recipe_differences(stored.get("recipe", {}), recipe.recipe())
    what = "; ".join(diffs) if diffs else "the built data does not load"
    return f"{recipe.name!r} was built from another recipe ({what}); pass --overwrite to rebuild it"


def build_collection(collection: Collection | str | Path, out: str | Path, *, only: Sequence[str] | None = None,
                     overwrite: bool = False, tfds_data_dir: str | Path | None = None,
                     on_start: Callable[[DatasetRecipe], None] | None = None,
                     on_done: Callable[[BuildResult], None] | None = None) -> list[BuildResult]:
    """Build the datasets of a collection into ``out/<name>/``, skipping those already built.

    Every selected dataset is checked before anything is built: one whose recipe changed is
    refused (without ``overwrite``) before any other is written.

    Parameters
    ----------
    collection:
        A :class:`Collection`, or a collection name or YAML path.
    out:
        The folder of the built collection.
    only:
        Build only these datasets (names).
    overwrite:
        Rebuild datasets whose recipe changed.
    tfds_data_dir:
        tensorflow-datasets' data folder.
    on_start, on_done:
        Called before and after each dataset (e.g. a progress bar).

    Returns
    -------
    list of BuildResult
        One per selected dataset, in the file's order.
    """
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    recipes = coll.select(only)
    out = Path(out)
    if not overwrite:
        for r in recipes:
            state = _state(r, out / r.name)
            if state in ("changed", "foreign"):
                raise CollectionError(out / r.name, _refusal(r, out / r.name, state),
                                      field=f"datasets[{r.index}] ({r.name})")
    results = []
    for r in recipes:
        if on_start is not None:
            on_start(r)
        result = build_dataset(r, coll, out, overwrite=overwrite, tfds_data_dir=tfds_data_dir)
        results.append(result)
        if on_done is not None:
            on_done(result)
    return results


# --- describing and the linear-baseline report ---------------------------------------------------

@dataclass(frozen=True)
class DatasetSummary:
    """What a built dataset is: classes, counts, frame shape, channels, multi-label, video."""

    name: str
    classes: int
    train: int
    test: int
    shape: str
    channels: int
    multilabel: bool
    video: bool


def describe_dataset(path: str | Path) -> DatasetSummary:
    """Summarise a built AutoDL dataset (metadata and solution; no example is decoded).

    ``shape`` is ``HxW`` (``var`` for a dimension that varies), prefixed ``Tx`` for clips.
    """
    from autodl.dataset import AutoDLDataset
    from autodl.labels import is_multilabel

    ds = AutoDLDataset(path)
    meta = ds.metadata("train")
    t, h, w, _c = meta.get_tensor_shape()
    dims = "x".join("var" if v < 0 else str(v) for v in (h, w))
    video = meta.get_sequence_size() != 1
    shape = f"{'var' if t < 0 else t}x{dims}" if video else dims
    sol = ds.solution()
    return DatasetSummary(name=ds.name, classes=meta.get_output_size(), train=meta.size(),
                          test=ds.metadata("test").size(), shape=shape, channels=int(meta.get_num_channels()),
                          multilabel=bool(is_multilabel(sol)), video=video)


@dataclass(frozen=True)
class ReportRow:
    """One dataset's line of the collection report."""

    summary: DatasetSummary
    doc: str
    status: str
    nauc: float | None
    alc: float | None
    wall_seconds: float | None
    reused: bool


def _baseline_key(protocol: str, clock: str, seed: int, recipe_hash: str | None) -> dict[str, Any]:
    return {"model": "baseline:linear", "protocol": protocol, "clock": clock, "seed": seed,
            "recipe_hash": recipe_hash}


def linear_baseline(path: str | Path, *, protocol: str = "mini", clock: str = "cpu", seed: int = 0,
                    threads: int | None = 1, reuse: bool = True) -> tuple[dict[str, Any], bool]:
    """The linear baseline's final NAUC and ALC on one built dataset, stored beside it.

    Runs ``finetune.evaluate.evaluate("baseline:linear", path, protocol, clock=clock,
    seed=seed)`` with ``threads`` PyTorch threads, and keeps the figures in
    ``<path>/linear-baseline.json``; a later call with the same protocol, clock, seed and
    recipe reuses them (unless ``reuse`` is false).

    Returns
    -------
    tuple
        ``({status, nauc, alc, wall_seconds, error, ...}, reused)``.
    """
    from finetune.evaluate import evaluate, torch_threads

    path = Path(path)
    stored = read_recipe(path)
    key = _baseline_key(protocol, clock, seed, stored["hash"] if stored else None)
    cache = path / REPORT_FILE
    if reuse and cache.is_file():
        try:
            data = json.loads(cache.read_text(encoding="utf-8"))
            if data.get("key") == key:
                return data, True
        except ValueError:
            pass
    with torch_threads(threads):
        ev = evaluate("baseline:linear", path, protocol, clock=clock, seed=seed)
    data = {"key": key, "status": ev.status, "nauc": ev.final_nauc, "alc": ev.alc,
            "wall_seconds": ev.wall_seconds, "predictions": len(ev.curve), "error": ev.error,
            "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
    cache.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data, False


def collection_report(collection: Collection | str | Path, data: str | Path, *, only: Sequence[str] | None = None,
                      protocol: str = "mini", clock: str = "cpu", seed: int = 0, threads: int | None = 1,
                      on_start: Callable[[DatasetRecipe], None] | None = None,
                      on_done: Callable[[ReportRow], None] | None = None) -> list[ReportRow]:
    """Describe every built dataset of a collection and measure its linear baseline.

    Parameters
    ----------
    collection:
        A :class:`Collection`, or its name or YAML path.
    data:
        The folder the collection was built into (``build-collection --out``).
    only:
        Only these datasets.
    protocol, clock, seed, threads:
        How the linear baseline is evaluated (:func:`linear_baseline`).
    on_start, on_done:
        Called around each dataset.

    Returns
    -------
    list of ReportRow

    Raises
    ------
    CollectionError
        A dataset of the collection that is not built in ``data``, or built from another
        recipe (the message names the build command).
    """
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    recipes = coll.select(only)
    data = Path(data)
    for r in recipes:
        if _state(r, data / r.name) != "same":
            raise CollectionError(data / r.name, f"{r.name!r} is not built from the collection's current recipe; "
                                                 f"run: autodl-meta data build-collection {coll.name} --out {data}",
                                  field=f"datasets[{r.index}] ({r.name})")
    rows = []
    for r in recipes:
        if on_start is not None:
            on_start(r)
        summary = describe_dataset(data / r.name)
        result, reused = linear_baseline(data / r.name, protocol=protocol, clock=clock, seed=seed, threads=threads)
        row = ReportRow(summary=summary, doc=r.doc, status=result["status"], nauc=result.get("nauc"),
                        alc=result.get("alc"), wall_seconds=result.get("wall_seconds"), reused=reused)
        rows.append(row)
        if on_done is not None:
            on_done(row)
    return rows


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def report_markdown(collection: Collection, rows: Sequence[ReportRow], *, protocol: str = "mini",
                    clock: str = "cpu", seed: int = 0, command: str | None = None,
                    machine: str | None = None, note: str | None = None) -> str:
    """The report as Markdown: what was run (``note`` is added after the machine), then one table
    row per dataset, a summary line and the sources."""
    from autodl.machine import machine_description
    from autodl.protocol import load_protocol

    proto = load_protocol(protocol)
    machine = machine or machine_description()
    command = command or f"autodl-meta data collection-report {collection.name}"
    lines = [
        f"# Training collection `{collection.name}`: datasets and linear baseline",
        "",
        collection.description,
        "",
        (f"- Collection file: `{_relative(collection.path)}`; held-out benchmark sets kept out of it: "
         f"{', '.join(collection.held_out) or 'none'}."),
        (f"- Figures: `baseline:linear` (the seed paper's linear model), final NAUC and ALC, protocol "
         f"`{proto.name}` (T={proto.time_budget:g} s, t0={proto.t0:g} s), clock `{clock}`, seed {seed}, "
         f"one run each."),
        f"- Machine: {machine}" + (f" ({note})." if note else "."),
        f"- Command: `{command}`.",
        f"- Date: {time.strftime('%Y-%m-%d')}.",
        "",
        ("A linear NAUC near 1 marks a dataset that every configuration solves (it tells configurations "
         "apart by little); low ones leave room for pretrained or from-scratch networks."),
        "",
        ("| dataset | classes | train | test | shape | ch | multi-label | video | linear NAUC | linear ALC "
         "| how it was made |"),
        "|---|---:|---:|---:|---|---:|---|---|---:|---:|---|",
    ]
    for row in rows:
        s = row.summary
        status = "" if row.status == "ok" else f" ({row.status})"
        lines.append(f"| {s.name} | {s.classes} | {s.train} | {s.test} | {s.shape} | {s.channels} | "
                     f"{'yes' if s.multilabel else 'no'} | {'yes' if s.video else 'no'} | {_fmt(row.nauc)}{status} | "
                     f"{_fmt(row.alc)} | {row.doc.replace('|', '/')} |")
    nauc = [r.nauc for r in rows if r.nauc is not None]
    if nauc:
        lines += ["", (f"{len(rows)} datasets; linear NAUC from {min(nauc):.3f} to {max(nauc):.3f} "
                       f"(median {float(np.median(nauc)):.3f}); {sum(v >= 0.98 for v in nauc)} at 0.98 or above.")]
    lines += ["", "Sources:", ""]
    used = {r.source for r in collection.datasets}
    lines += [f"- `{s.name}`: {s.origin} ({s.licence})" for s in collection.sources if s.name in used]
    return "\n".join(lines) + "\n"


def _relative(path: Path) -> str:
    root = COLLECTIONS_DIR.parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def write_report(collection: Collection | str | Path, data: str | Path, doc: str | Path, *,
                 only: Sequence[str] | None = None, protocol: str = "mini", clock: str = "cpu", seed: int = 0,
                 threads: int | None = 1, command: str | None = None, note: str | None = None,
                 on_start: Callable[[DatasetRecipe], None] | None = None,
                 on_done: Callable[[ReportRow], None] | None = None) -> tuple[Path, list[ReportRow]]:
    """Run :func:`collection_report` and write its Markdown to ``doc``; return the path and rows."""
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    rows = collection_report(coll, data, only=only, protocol=protocol, clock=clock, seed=seed, threads=threads,
                             on_start=on_start, on_done=on_done)
    doc = Path(doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(report_markdown(coll, rows, protocol=protocol, clock=clock, seed=seed, command=command,
                                   note=note), encoding="utf-8")
    return doc, rows


# --- a built collection --------------------------------------------------------------------------
def collection_datasets(collection: str | Path, data_dir: str | Path) -> list[tuple[str, Path, str]]:
    """The ``(name, folder, source)`` of every dataset of a training collection, built under ``data_dir``.

    Parameters
    ----------
    collection:
        A collection name under ``configs/collections/`` or a YAML path
        (:func:`portfolio.collection.load_collection`).
    data_dir:
        The folder the collection was built into (``autodl-meta data build-collection
        NAME --out DIR``): each dataset is ``data_dir/<name>``.

    Returns
    -------
    list of (str, Path, str)
        In the collection's order; ``source`` is the recipe's source (derived variants of
        one source share it).

    Raises
    ------
    AutoDLError
        An unreadable collection, or a dataset that is not built under ``data_dir``.
    """
    from autodl.dataset import AutoDLDataset
    from autodl.errors import FormatError

    coll = load_collection(collection)
    out = []
    missing = []
    for recipe in coll.datasets:
        folder = Path(data_dir) / recipe.name
        try:
            AutoDLDataset(folder)
        except FormatError:
            missing.append(recipe.name)
            continue
        out.append((recipe.name, folder, recipe.source))
    if missing:
        raise CollectionError(Path(data_dir), f"holds no built dataset {', '.join(missing)} of collection "
                                              f"{coll.name!r}; build them with 'autodl-meta data build-collection "
                                              f"{collection} --out {data_dir}'", field="data")
    return out
