"""Dataset collections: which datasets the portfolio is built on (training collections), which
it is judged on (held-out collections), and how each dataset is made.

A collection is a YAML file (``configs/collections/<name>.yaml``) naming datasets, each made
from a source (a built-in offline source of :mod:`autodl.sources`, or ``tfds:<name>`` for
tensorflow-datasets) by a short list of *derivations*, as ZAP (Ozturk et al., "Zero-shot
AutoML with pretrained models", ICML 2022) derives 525 datasets from 35 by class subsets,
resolutions, sample counts, colour and rotation. Each dataset is built into
``<out>/<name>/`` as an AutoDL dataset with a ``recipe.json`` beside it: the recipe and its
hash, so that a second build skips what is already built and a changed recipe is never
silently mixed with old data (:mod:`autodl.collection_build`). The linear-baseline report of a
built collection (``docs/collection.md``) runs a model, so it lives a layer up, in
:mod:`finetune.collection_report`.

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

Derivations (:data:`TRANSFORMS`, applied in that order to train and test alike, by
:mod:`autodl.derivations`):

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
:func:`autodl.collection_build.build_collection` only says whether it is present, and :func:`collection_datasets`
returns it as ``(name, folder, "sample:<name>")`` after the built datasets, leaving out (with
a logged warning) a sample absent on this machine, e.g. ``../shared`` in a clone elsewhere.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.records import to_plain

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
RECIPE_VERSION = 1
"""Part of every recipe hash: raise it when a derivation changes what it makes."""
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
        raise CollectionError(coll.path, f"{value!r} is {what} ({repository_relative(other.path)}){more}; held-out and "
                                          f"training collections must share no dataset, sample or source",
                              field=field_name)


def repository_relative(path: Path) -> str:
    """``path`` relative to the repository root where it lies inside it, else as it is."""
    root = COLLECTIONS_DIR.parents[1]
    try:
        return str(path.resolve().relative_to(root))
    except ValueError:
        return str(path)


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
        (:func:`load_collection`).
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
