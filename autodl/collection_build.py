"""Building a collection: each recipe's dataset made from its source and written with its recipe.

Each dataset of a collection (:mod:`autodl.collection`) is loaded from its source (a
built-in offline source of :mod:`autodl.sources`, or ``tfds:<name>`` through
:func:`autodl.convert.convert_tfds`), derived (:mod:`autodl.derivations`) and written into
``<out>/<name>/`` as an AutoDL dataset with a ``recipe.json`` beside it (:data:`RECIPE_FILE`:
the recipe and its hash), so that a second build skips what is already built and a changed
recipe is never silently mixed with old data (:func:`build_state`, :func:`recipe_differences`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodl.collection import (
    Collection,
    CollectionError,
    DatasetRecipe,
    load_collection,
)
from autodl.derivations import Arrays, apply_transforms
from autodl.errors import AutoDLError
from autodl.records import atomic_folder, utc_now

logger = logging.getLogger(__name__)

RECIPE_FILE = "recipe.json"
"""The file beside each built dataset holding its recipe and hash."""


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


def build_state(recipe: DatasetRecipe, target: Path) -> str:
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
    state = build_state(recipe, target)
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
    (:func:`autodl.collection.collection_samples` says which are present).

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
            state = build_state(r, out / r.name)
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
