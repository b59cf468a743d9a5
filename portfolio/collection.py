"""Dataset collections: which datasets the portfolio is built on (training collections), which
it is judged on (held-out collections), and how each dataset is made.

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
    held_out: [Monkeys, miniciao, collection:heldout]   # benchmark sets that must not be in it
    sources:                               # every source the datasets use, with its licence
      - {name: digits, origin: "scikit-learn load_digits (UCI)", licence: "CC BY 4.0"}
    datasets:
      - name: digits_small                 # [A-Za-z0-9_.-]+, unique
        source: digits                     # a built-in source or tfds:<name>
        doc: "how it was made, in one line"
        seed: 0                            # optional (default 0): source and derivations
        tags: [real, few-shot]             # optional: metadata only, not part of the recipe hash
        params: {}                         # optional: keyword arguments of the source's loader
                                           # (not those naming files or folders: path, *_dir, ...)
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

Training and held-out collections are kept apart by name, from both sides, each time a
collection is loaded (:func:`load_collection`):

- A training collection's ``held_out`` lists what must stay out of it: dataset or source
  names (the organizers' samples ``Monkeys``, ``miniciao``), and whole collections as
  ``collection:<name>`` (``collection:heldout``: every dataset, sample and source name of
  ``configs/collections/heldout.yaml``).
- A held-out collection names its training collections: ``training: [default]``. Loading it
  refuses any dataset, sample or source name it shares with them.

Either way the refusal is a :class:`CollectionError` naming the file and the field (e.g.
``datasets[2] (stamps).source``). The linked collection is read for its names only (its own
links are not followed, so the two files may name each other). Names are compared without
case; a held-out dataset must therefore come from a source no training collection lists.

A held-out collection may also list ``samples``: existing AutoDL datasets used as they are::

    training: [default]
    samples:
      - {name: Monkeys, path: ../shared/autodl_samples/Monkeys, doc: "...", origin: "...", licence: "..."}

``path`` is relative to the repository root (or absolute). Nothing is built for a sample:
:func:`build_collection` only says whether it is present, and :func:`collection_datasets`
returns it as ``(name, folder, "sample:<name>")`` after the built datasets, leaving out (with
a logged warning) a sample absent on this machine, e.g. ``../shared`` in a clone elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import Status, atomic_folder, to_plain, utc_now

logger = logging.getLogger(__name__)

COLLECTIONS_DIR = Path(__file__).resolve().parents[1] / "configs" / "collections"
"""Where collections are found by name."""
REPOSITORY_ROOT = COLLECTIONS_DIR.parents[1]
"""What a sample's relative ``path`` is relative to."""
HELD_OUT_COLLECTION_PREFIX = "collection:"
"""A ``held_out`` entry of this prefix names a whole collection."""
SAMPLE_SOURCE_PREFIX = "sample:"
"""The source :func:`collection_datasets` gives a sample."""
SAMPLE_KEYS = ("name", "path", "doc", "origin", "licence")
TOP_LEVEL_KEYS = ("name", "description", "training", "held_out", "sources", "samples", "datasets")
RECIPE_FILE = "recipe.json"
"""The file beside each built dataset holding its recipe and hash."""
RECIPE_VERSION = 1
"""Part of every recipe hash: raise it when a derivation changes what it makes."""
REPORT_FILE = "linear-baseline.json"
"""The file beside each built dataset holding its linear-baseline figures (reused by the report)."""
SAMPLES_CACHE_DIR = ".samples"
"""Where, in a built collection's folder, the report keeps its figures for the samples."""
REPORT_BEGIN = ("<!-- collection-report {name}: generated by autodl-meta data collection-report; "
                "edit the collection, not this block -->")
REPORT_END = "<!-- end of collection-report {name} -->"
"""The lines around one collection's report in a Markdown file (:func:`write_report` replaces
only its own block, so one file can hold several collections' reports)."""
TRANSFORMS = ("classes", "max_train", "max_test", "color", "rotate", "random_rotate", "resize", "random_rescale")
"""The derivations, in the order they are applied."""
TFDS_TRANSFORMS = ("max_train", "max_test")
TFDS_PARAMS = ("split_train", "split_test", "image_key", "label_key")
ENTRY_KEYS = ("name", "source", "doc", "seed", "params", "tags") + TRANSFORMS
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")
"""A dataset's or sample's name: it names a folder under the build's output (no leading '.',
so never '.' or '..', and no separator: a name cannot lead outside that folder)."""
PATH_PARAM = re.compile(r"(^|_)(path|paths|dir|dirs|file|files|root)$")
"""Source parameters that name places on disk (``path``, ``theme_dir``, ``font_dirs``, ...): a
collection file may not set them, so that a recipe cannot point a source at another folder."""

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
    tags:
        What the entry says about its data (e.g. ``real``, ``generated``, ``derived``,
        ``video``, ``motion-only``, ``multi-label``, ``few-shot``, ``side:64``): metadata for
        readers and tests, not part of the recipe (a change of tags rebuilds nothing).
    """

    name: str
    source: str
    doc: str
    seed: int = 0
    params: Mapping[str, Any] = field(default_factory=dict)
    transforms: Mapping[str, Any] = field(default_factory=dict)
    index: int = 0
    tags: tuple[str, ...] = ()

    @property
    def is_tfds(self) -> bool:
        return self.source.startswith("tfds:")

    def recipe(self) -> dict[str, Any]:
        """What the built data depends on (the hashed part): source, seed, params, derivations."""
        return {"version": RECIPE_VERSION, "source": self.source, "seed": self.seed,
                "params": to_plain(dict(self.params)), "transforms": to_plain(dict(self.transforms))}

    def recipe_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`recipe`."""
        text = json.dumps(self.recipe(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SampleRef:
    """An existing AutoDL dataset a collection uses as it is (nothing is built for it).

    Attributes
    ----------
    name:
        The dataset's name in the collection.
    path:
        Its folder as written in the file: relative to :data:`REPOSITORY_ROOT`, or absolute.
    doc, origin, licence:
        What it is, where it comes from, its licence.
    """

    name: str
    path: str
    doc: str
    origin: str
    licence: str

    @property
    def folder(self) -> Path:
        """The dataset's folder on this machine (it may be absent)."""
        path = Path(self.path)
        return path if path.is_absolute() else (REPOSITORY_ROOT / path).resolve()

    @property
    def present(self) -> bool:
        """Whether the folder holds a readable AutoDL dataset."""
        from autodl.dataset import AutoDLDataset

        try:
            AutoDLDataset(self.folder)
        except (AutoDLError, OSError):
            return False
        return True


@dataclass(frozen=True)
class Collection:
    """A collection file, read and checked: its sources, held-out sets, dataset recipes, the
    training collections it is held out from and the existing datasets (samples) it uses."""

    name: str
    path: Path
    description: str
    sources: tuple[SourceRef, ...]
    held_out: tuple[str, ...]
    datasets: tuple[DatasetRecipe, ...]
    training: tuple[str, ...] = ()
    samples: tuple[SampleRef, ...] = ()

    @property
    def is_held_out(self) -> bool:
        """A held-out (benchmark) collection: one that names training collections."""
        return bool(self.training)

    def source(self, name: str) -> SourceRef:
        return next(s for s in self.sources if s.name == name)

    def select(self, only: Sequence[str] | None = None) -> list[DatasetRecipe]:
        """The recipes named in ``only`` (all when None), in the file's order; ``tag:NAME``
        selects every recipe tagged NAME; sample names are accepted and select no recipe
        (:meth:`select_samples`).

        Raises
        ------
        CollectionError
            A name that is neither a dataset nor a sample of the collection (the message lists them).
        """
        if not only:
            return list(self.datasets)
        names = [d.name for d in self.datasets] + [s.name for s in self.samples]
        tags = {t for d in self.datasets for t in d.tags}
        unknown = [n for n in only if (n[4:] not in tags if n.startswith("tag:") else n not in names)]
        if unknown:
            raise CollectionError(self.path, f"no dataset or tag {', '.join(map(repr, unknown))} in collection "
                                             f"{self.name!r}; it has {', '.join(names)} and the tags "
                                             f"{', '.join(sorted(tags)) or '(none)'} (select a tag as tag:NAME)",
                                  field="--only")
        wanted = {n for n in only if not n.startswith("tag:")}
        wanted_tags = {n[4:] for n in only if n.startswith("tag:")}
        return [d for d in self.datasets if d.name in wanted or wanted_tags & set(d.tags)]

    def select_samples(self, only: Sequence[str] | None = None) -> list[SampleRef]:
        """The samples named in ``only`` (all when None), in the file's order."""
        return [s for s in self.samples if not only or s.name in set(only)]


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
        raise CollectionError(path, f"{name!r}: expected letters, digits, '_', '.', '-' (not starting with '.')",
                              field=f"{where}.name")
    where = f"datasets[{i}] ({name})"
    source = entry["source"]
    if source not in source_names:
        raise CollectionError(path, f"source {source!r} is not listed under the top-level 'sources:' "
                                    f"(listed: {', '.join(sorted(source_names))})", field=f"{where}.source")
    params = entry.get("params") or {}
    if not isinstance(params, Mapping):
        raise CollectionError(path, f"{params!r}: expected a mapping of the source's parameters",
                              field=f"{where}.params")
    places = sorted(str(k) for k in params if PATH_PARAM.search(str(k)))
    if places:
        raise CollectionError(path, f"{places[0]!r} names a place on disk; a collection file cannot point a source "
                                    "at another file or folder (the source reads its own, see `autodl-meta data "
                                    "sources`)", field=f"{where}.params.{places[0]}")
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
    tags = entry.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) and t.strip() for t in tags):
        raise CollectionError(path, f"{tags!r}: expected a list of non-empty strings", field=f"{where}.tags")
    return DatasetRecipe(name=name, source=source, doc=" ".join(entry["doc"].split()), seed=seed,
                         params=dict(params), transforms=transforms, index=i, tags=tuple(tags))


def load_collection(name_or_path: str | Path, *, check_links: bool = True) -> Collection:
    """Read and check a collection file (by name or path).

    Parameters
    ----------
    name_or_path:
        A name under :data:`COLLECTIONS_DIR` (``default``, ``heldout``, ``tfds``) or a YAML path.
    check_links:
        Also read the collections it names (``training``, ``held_out: [collection:...]``)
        and refuse any name shared with them (see the module docstring). Those are read
        with ``check_links=False``: their own links are not followed.

    Returns
    -------
    Collection

    Raises
    ------
    CollectionError
        Unreadable YAML, a missing or ill-typed field, an unknown source or derivation, a
        dataset whose source is not listed under ``sources:``, two datasets or samples of one
        name, a dataset, sample or source named in ``held_out``, a linked collection that
        cannot be read, or a name shared with a linked collection (each message names the
        file and field).
    """
    import yaml

    path = collection_path(name_or_path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise CollectionError(path, f"is not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, Mapping):
        raise CollectionError(path, "expected a mapping with name, sources, datasets")
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise CollectionError(path, f"unknown top-level key(s) {', '.join(map(repr, unknown))}; expected "
                                    f"{', '.join(TOP_LEVEL_KEYS)}", field=unknown[0])
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
    held_out = _string_list(data.get("held_out"), path, "held_out",
                            f"dataset or source names, or {HELD_OUT_COLLECTION_PREFIX}<collection>")
    training = _string_list(data.get("training"), path, "training", "training collection names")
    raw = data.get("datasets")
    if not isinstance(raw, list) or not raw:
        raise CollectionError(path, "expected a non-empty list of datasets", field="datasets")
    source_names = {r.name for r in refs}
    recipes = [_parse_entry(e, i, path, source_names) for i, e in enumerate(raw)]
    samples = [_parse_sample(e, i, path) for i, e in enumerate(_list(data.get("samples"), path, "samples"))]
    seen: set[str] = set()
    for field_name, names in (("datasets", [r.name for r in recipes]), ("samples", [s.name for s in samples])):
        for i, n in enumerate(names):
            if n.lower() in seen:
                what = "two datasets" if field_name == "datasets" else "a sample and another dataset or sample"
                raise CollectionError(path, f"{what} named {n!r}; expected unique names",
                                      field=f"{field_name}[{i}].name")
            seen.add(n.lower())
    lowered = {h.lower() for h in held_out if not h.startswith(HELD_OUT_COLLECTION_PREFIX)}
    for r in recipes:
        if r.name.lower() in lowered or r.source.lower() in lowered:
            raise CollectionError(path, f"{r.name!r} ({r.source}) is a held-out benchmark set; held-out sets "
                                        f"must stay out of the collection", field=f"datasets[{r.index}]")
    for i, smp in enumerate(samples):
        if smp.name.lower() in lowered:
            raise CollectionError(path, f"sample {smp.name!r} is named in held_out; held-out sets must stay out "
                                        f"of the collection", field=f"samples[{i}]")
    unused = source_names - {r.source for r in recipes}
    if unused:
        logger.info("%s: sources listed but not used: %s", path, ", ".join(sorted(unused)))
    coll = Collection(name=name, path=path, description=" ".join(str(data.get("description", "")).split()),
                      sources=tuple(refs), held_out=tuple(held_out), datasets=tuple(recipes),
                      training=tuple(training), samples=tuple(samples))
    if check_links:
        for i, ref in enumerate(training):
            _check_disjoint(coll, _linked(ref, path, f"training[{i}]"), "training")
        for i, ref in enumerate(held_out):
            if ref.startswith(HELD_OUT_COLLECTION_PREFIX):
                other = _linked(ref.removeprefix(HELD_OUT_COLLECTION_PREFIX), path, f"held_out[{i}]")
                _check_disjoint(coll, other, "held-out")
    return coll


def _list(value: Any, path: Path, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CollectionError(path, f"{value!r}: expected a list", field=where)
    return value


def _string_list(value: Any, path: Path, where: str, what: str) -> list[str]:
    items = _list(value, path, where)
    if not all(isinstance(v, str) and v for v in items):
        raise CollectionError(path, f"{value!r}: expected a list of {what}", field=where)
    return items


def _parse_sample(entry: Any, i: int, path: Path) -> SampleRef:
    where = f"samples[{i}]"
    if not isinstance(entry, Mapping):
        raise CollectionError(path, f"{entry!r}: expected a mapping with {', '.join(SAMPLE_KEYS)}", field=where)
    unknown = sorted(set(entry) - set(SAMPLE_KEYS))
    if unknown:
        raise CollectionError(path, f"unknown key(s) {', '.join(map(repr, unknown))}; expected "
                                    f"{', '.join(SAMPLE_KEYS)}", field=f"{where}.{unknown[0]}")
    for key in SAMPLE_KEYS:
        if not isinstance(entry.get(key), str) or not entry[key].strip():
            raise CollectionError(path, f"{entry.get(key)!r}: expected a non-empty string", field=f"{where}.{key}")
    if not NAME_PATTERN.match(entry["name"]):
        raise CollectionError(path, f"{entry['name']!r}: expected letters, digits, '_', '.', '-' (not starting "
                                    "with '.')", field=f"{where}.name")
    return SampleRef(name=entry["name"], path=entry["path"].strip(), doc=" ".join(entry["doc"].split()),
                     origin=" ".join(entry["origin"].split()), licence=" ".join(entry["licence"].split()))


def _linked(ref: str, base: Path, where: str) -> Collection:
    """A collection named in ``base``'s ``training`` or ``held_out`` (a name beside ``base`` or
    under :data:`COLLECTIONS_DIR`, or a YAML path relative to ``base``'s folder), read
    without following its own links."""
    candidate = Path(ref)
    if candidate.suffix in (".yaml", ".yml"):
        target: str | Path = candidate if candidate.is_absolute() else base.parent / candidate
    elif (base.parent / f"{ref}.yaml").is_file():
        target = base.parent / f"{ref}.yaml"
    else:
        target = ref
    try:
        return load_collection(target, check_links=False)
    except CollectionError as exc:
        raise CollectionError(base, f"the collection {ref!r} it names cannot be read: {exc}", field=where) from None


def _check_disjoint(coll: Collection, other: Collection, relation: str) -> None:
    """Refuse any dataset, sample or source name ``coll`` shares with ``other`` (without case),
    and any sample folder they share."""
    taken: dict[str, str] = {}
    for s in other.sources:
        taken.setdefault(s.name.lower(), f"a source of {relation} collection {other.name!r}")
    for r in other.datasets:
        taken.setdefault(r.name.lower(), f"a dataset of {relation} collection {other.name!r}")
    for smp in other.samples:
        taken.setdefault(smp.name.lower(), f"a sample of {relation} collection {other.name!r}")
    folders = {smp.folder: smp.name for smp in other.samples}
    clashes: list[tuple[str, str, str]] = []
    for r in coll.datasets:
        where = f"datasets[{r.index}] ({r.name})"
        clashes += [(f"{where}.name", r.name, taken[r.name.lower()])] if r.name.lower() in taken else []
        clashes += [(f"{where}.source", r.source, taken[r.source.lower()])] if r.source.lower() in taken else []
    for i, s in enumerate(coll.sources):
        clashes += [(f"sources[{i}]", s.name, taken[s.name.lower()])] if s.name.lower() in taken else []
    for i, smp in enumerate(coll.samples):
        if smp.name.lower() in taken:
            clashes.append((f"samples[{i}]", smp.name, taken[smp.name.lower()]))
        elif smp.folder in folders:
            clashes.append((f"samples[{i}].path", smp.path,
                            f"the folder of sample {folders[smp.folder]!r} of {relation} collection {other.name!r}"))
    if clashes:
        field_name, value, what = clashes[0]
        more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
        raise CollectionError(coll.path, f"{value!r} is {what} ({_relative(other.path)}){more}; held-out and "
                                          f"training collections must share no dataset, sample or source",
                              field=field_name)


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
    where = f"datasets[{recipe.index}] ({recipe.name})"
    if target.is_symlink():  # it would read (and rebuilding would write) wherever the link leads
        raise CollectionError(target, f"is a symbolic link (to {os.readlink(target)}); a built dataset is a folder "
                                      f"inside {out}: remove the link", field=where)
    state = _state(recipe, target)
    if state == "same":
        stored = read_recipe(target) or {}
        counts = stored.get("counts", {})
        return BuildResult(recipe.name, target, "skipped", int(counts.get("train", 0)),
                           int(counts.get("test", 0)), 0.0)
    if state != "new" and not overwrite:
        raise CollectionError(target, _refusal(recipe, target, state), field=where)
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    with atomic_folder(target) as tmp:
        n_train, n_test = _write(recipe, collection, tmp, tfds_data_dir, progress)
        source = collection.source(recipe.source)
        card = {"name": recipe.name, "collection": collection.name, "collection_file": str(collection.path),
                "hash": recipe.recipe_hash(), "recipe": recipe.recipe(), "doc": recipe.doc,
                "origin": source.origin, "licence": source.licence,
                "counts": {"train": n_train, "test": n_test},
                "built": utc_now()}
        (tmp / RECIPE_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
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
    refused (without ``overwrite``) before any other is written. Samples (existing datasets
    used as they are) are not built: a warning is logged for one absent here
    (:func:`collection_samples` says which are present).

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
        One per selected dataset (samples not included), in the file's order.
    """
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    recipes = coll.select(only)
    out = Path(out)
    for smp in coll.select_samples(only):
        if smp.present:
            logger.info("sample %s: used as it is from %s (nothing to build)", smp.name, smp.folder)
        else:
            logger.warning("sample %s of collection %s is absent here (%s): it is skipped", smp.name, coll.name,
                           smp.folder)
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
    source: str = ""
    """The recipe's source, or ``sample:<name>`` for a sample."""


def _baseline_key(protocol: str, clock: str, seed: int, recipe_hash: str | None) -> dict[str, Any]:
    return {"model": "baseline:linear", "protocol": protocol, "clock": clock, "seed": seed,
            "recipe_hash": recipe_hash}


def linear_baseline(path: str | Path, *, protocol: str = "mini", clock: str = "cpu", seed: int = 0,
                    threads: int | None = 1, reuse: bool = True,
                    cache_file: str | Path | None = None) -> tuple[dict[str, Any], bool]:
    """The linear baseline's final NAUC and ALC on one built dataset, stored beside it.

    Runs ``finetune.evaluate.evaluate("baseline:linear", path, protocol, clock=clock,
    seed=seed)`` with ``threads`` PyTorch threads, and keeps the figures in
    ``<path>/linear-baseline.json`` (or ``cache_file``: for a dataset not to be written
    into, such as a sample); a later call with the same protocol, clock, seed and recipe
    (the folder, for a dataset without recipe) reuses them (unless ``reuse`` is false).

    Returns
    -------
    tuple
        ``({status, nauc, alc, wall_seconds, error, ...}, reused)``.
    """
    from finetune.evaluate import evaluate, torch_threads

    path = Path(path)
    stored = read_recipe(path)
    key = _baseline_key(protocol, clock, seed, stored["hash"] if stored else None)
    if stored is None:
        key["dataset"] = str(path.resolve())
    cache = Path(cache_file) if cache_file is not None else path / REPORT_FILE
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
            "date": utc_now()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return data, False


def collection_report(collection: Collection | str | Path, data: str | Path, *, only: Sequence[str] | None = None,
                      protocol: str = "mini", clock: str = "cpu", seed: int = 0, threads: int | None = 1,
                      on_start: Callable[[DatasetRecipe | SampleRef], None] | None = None,
                      on_done: Callable[[ReportRow], None] | None = None) -> list[ReportRow]:
    """Describe every built dataset of a collection, then each sample present here, and
    measure its linear baseline (a sample's figures are kept under ``data/.samples/``).

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
    todo: list[tuple[Any, Path, str, Path | None]] = [(r, data / r.name, r.source, None) for r in recipes]
    for smp, present in collection_samples(coll, only):
        if present:  # its figures are kept under data/, never written into the sample's folder
            todo.append((smp, smp.folder, f"{SAMPLE_SOURCE_PREFIX}{smp.name}",
                         data / SAMPLES_CACHE_DIR / smp.name / REPORT_FILE))
        else:
            logger.warning("sample %s of collection %s is absent here (%s): left out of the report", smp.name,
                           coll.name, smp.folder)
    for item, folder, source, cache_file in todo:
        if on_start is not None:
            on_start(item)
        summary = describe_dataset(folder)
        result, reused = linear_baseline(folder, protocol=protocol, clock=clock, seed=seed, threads=threads,
                                         cache_file=cache_file)
        row = ReportRow(summary=summary, doc=item.doc, status=result["status"], nauc=result.get("nauc"),
                        alc=result.get("alc"), wall_seconds=result.get("wall_seconds"), reused=reused,
                        source=source)
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
    if collection.is_held_out:
        kind = "Held-out"
        file_line = (f"- Collection file: `{_relative(collection.path)}`; it shares no dataset, sample or source "
                     f"with the training collection(s) {', '.join(f'`{t}`' for t in collection.training)} "
                     f"(the loader refuses any overlap by name).")
    else:
        kind = "Training"
        file_line = (f"- Collection file: `{_relative(collection.path)}`; held-out benchmark sets kept out of it: "
                     f"{', '.join(collection.held_out) or 'none'}.")
    licences = {s.name: s.licence for s in collection.sources}
    licences.update({f"{SAMPLE_SOURCE_PREFIX}{smp.name}": smp.licence for smp in collection.samples})
    lines = [
        f"# {kind} collection `{collection.name}`: datasets and linear baseline",
        "",
        collection.description,
        "",
        file_line,
        (f"- Figures: `baseline:linear` (the seed paper's linear model), final NAUC and ALC, protocol "
         f"`{proto.name}` (T={proto.time_budget:g} s, t0={proto.t0:g} s), clock `{clock}`, seed {seed}, "
         f"one run each."),
        f"- Machine: {machine}" + (f" ({note})." if note else "."),
        f"- Command: `{command}`.",
        f"- Date: {utc_now()[:10]} (UTC).",
        "",
        ("A linear NAUC near 1 marks a dataset that every configuration solves (it tells configurations "
         "apart by little); low ones leave room for pretrained or from-scratch networks."),
        "",
        ("| dataset | classes | train | test | shape | ch | multi-label | video | linear NAUC | linear ALC "
         "| how it was made | source (licence) |"),
        "|---|---:|---:|---:|---|---:|---|---|---:|---:|---|---|",
    ]
    for row in rows:
        s = row.summary
        status = "" if row.status == Status.OK else f" ({row.status})"
        source = (f"`{row.source}` ({licences[row.source]})" if row.source in licences else f"`{row.source}`"
                  ) if row.source else ""
        lines.append(f"| {s.name} | {s.classes} | {s.train} | {s.test} | {s.shape} | {s.channels} | "
                     f"{'yes' if s.multilabel else 'no'} | {'yes' if s.video else 'no'} | {_fmt(row.nauc)}{status} | "
                     f"{_fmt(row.alc)} | {row.doc.replace('|', '/')} | {source.replace('|', '/')} |")
    nauc = [r.nauc for r in rows if r.nauc is not None]
    if nauc:
        lines += ["", (f"{len(rows)} datasets; linear NAUC from {min(nauc):.3f} to {max(nauc):.3f} "
                       f"(median {float(np.median(nauc)):.3f}); {sum(v >= 0.98 for v in nauc)} at 0.98 or above.")]
    lines += ["", "Sources:", ""]
    used = {r.source for r in collection.datasets}
    lines += [f"- `{s.name}`: {s.origin} ({s.licence})" for s in collection.sources if s.name in used]
    lines += [f"- `{SAMPLE_SOURCE_PREFIX}{smp.name}`: {smp.origin}, used as it is from `{smp.path}` ({smp.licence})"
              for smp in collection.samples]
    return "\n".join(lines) + "\n"


def replace_block(text: str, name: str, block: str) -> str:
    """``text`` with collection ``name``'s report block (between :data:`REPORT_BEGIN` and
    :data:`REPORT_END`) replaced by ``block``, or ``block`` appended when there is none."""
    begin, end = REPORT_BEGIN.format(name=name), REPORT_END.format(name=name)
    wrapped = f"{begin}\n{block.rstrip()}\n{end}\n"
    i = text.find(begin)
    j = text.find(end, i + 1) if i >= 0 else -1
    if i >= 0 and j >= 0:
        return text[:i] + wrapped + text[j + len(end):].removeprefix("\n")
    if not text.strip():
        return wrapped
    return text.rstrip("\n") + "\n\n" + wrapped


def _relative(path: Path) -> str:
    root = COLLECTIONS_DIR.parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


def write_report(collection: Collection | str | Path, data: str | Path, doc: str | Path, *,
                 only: Sequence[str] | None = None, protocol: str = "mini", clock: str = "cpu", seed: int = 0,
                 threads: int | None = 1, command: str | None = None, note: str | None = None,
                 on_start: Callable[[DatasetRecipe | SampleRef], None] | None = None,
                 on_done: Callable[[ReportRow], None] | None = None) -> tuple[Path, list[ReportRow]]:
    """Run :func:`collection_report` and write its Markdown into ``doc``; return the path and rows.

    The report is the collection's own block of ``doc`` (:func:`replace_block`): an earlier
    report of the same collection is replaced, anything else in the file (another
    collection's report, e.g. the training and held-out collections in ``docs/collection.md``)
    is kept.
    """
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    rows = collection_report(coll, data, only=only, protocol=protocol, clock=clock, seed=seed, threads=threads,
                             on_start=on_start, on_done=on_done)
    doc = Path(doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    old = doc.read_text(encoding="utf-8") if doc.is_file() else ""
    block = report_markdown(coll, rows, protocol=protocol, clock=clock, seed=seed, command=command, note=note)
    doc.write_text(replace_block(old, coll.name, block), encoding="utf-8")
    return doc, rows


# --- a built collection --------------------------------------------------------------------------
def collection_samples(collection: Collection | str | Path, only: Sequence[str] | None = None
                       ) -> list[tuple[SampleRef, bool]]:
    """The samples of a collection (existing datasets used as they are) and whether each is
    present on this machine."""
    coll = collection if isinstance(collection, Collection) else load_collection(collection)
    return [(smp, smp.present) for smp in coll.select_samples(only)]


def collection_datasets(collection: str | Path, data_dir: str | Path) -> list[tuple[str, Path, str]]:
    """The ``(name, folder, source)`` of every dataset of a collection, built under ``data_dir``,
    then of its samples.

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
        The built datasets in the collection's order (``source`` is the recipe's source:
        derived variants of one source share it), then the samples present here as
        ``(name, folder, "sample:<name>")``; an absent sample is left out with a logged warning.

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
    for smp, present in collection_samples(coll):
        if present:
            out.append((smp.name, smp.folder, f"{SAMPLE_SOURCE_PREFIX}{smp.name}"))
        else:
            logger.warning("sample %s of collection %s is absent here (%s): left out", smp.name, coll.name,
                           smp.folder)
    return out
