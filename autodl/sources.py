"""The registry of offline data sources: real image datasets that need no download.

A source is a loader ``seed -> (x_train, y_train, x_test, y_test, label_names)`` and a cheap
check that says why it cannot load on this machine (:class:`~autodl.source_types.DataSource`).
The sources live in three modules that know nothing of this registry; each lists its sources
(``CORE_SOURCES``, ``HELDOUT_SOURCES``, ``TRAINING_SOURCES``) and this module registers them, in
that order, when it is imported (:func:`register_source` adds more):

- :mod:`autodl.sources_core`: the first training sources (``digits``, ``fashion_mnist``,
  ``textures``, ``glyphs``, ``moving_squares``, ``photos``, ``microscopy``, ``faces``, ``icons``,
  ``emoji``, ``multi_glyphs``, ``moving_digits``): data bundled with scikit-learn and
  scikit-image, Debian packages, and generated video;
- :mod:`autodl.sources_heldout`: the held-out collection's sources (``greek_letters``,
  ``tuxpaint_stamps``, ``gimp_patterns``, ``wesnoth_portraits``, ``shape_scenes``,
  ``wesnoth_animations``, ``spin_zoom``, ``earth_landcover``: data no training collection uses);
- :mod:`autodl.sources_training`: more training sources (``kde_wallpapers``,
  ``gnome_backgrounds``, ``freeciv_flags``, ``flag_grid``, ``oxygen_icons``, ``marble_maps``:
  imagery of other Debian packages; ``blob_scenes``, ``degradations``, ``texture_speed``,
  ``flicker``: generated).

Their shared helpers are :mod:`autodl.images` (picking, converting, resizing, splitting by
group), :mod:`autodl.fonts` (fonts and glyphs) and :mod:`autodl.compose` (picture composition).

Each source's loader returns ``(x_train, y_train, x_test, y_test, label_names)``
(:data:`~autodl.source_types.SourceArrays`): uint8 images ``N x H x W x C`` (or ``N x T x H x W x C`` clips; a list
of ``H x W x C`` arrays where sizes vary), int64 class indices (a 0/1 ``N x C`` matrix for
multi-label data) and the class names. Loaders take keyword parameters besides the seed
(:func:`source_parameters`; e.g. ``glyphs`` with ``characters="ABC"``), which
:func:`load_source` passes on. :func:`write_source`
writes one as an AutoDL dataset (:func:`autodl.writer.write_arrays`), optionally a
stratified subsample; :func:`list_sources` says which are available on this machine and
why not where one is not.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autodl.errors import ConversionError
from autodl.images import take
from autodl.labels import stratified_subset
from autodl.source_types import DataSource, SourceArrays, SourceInfo
from autodl.sources_core import CORE_SOURCES
from autodl.sources_heldout import HELDOUT_SOURCES
from autodl.sources_training import TRAINING_SOURCES
from autodl.writer import check_max_examples, check_output_folder, write_arrays

logger = logging.getLogger(__name__)

SOURCES: dict[str, DataSource] = {}
"""Every registered source by name: the core ones, then the held-out ones, then the extra
training ones (registered below, when this module is imported), then any :func:`register_source` adds."""


def register_source(source: DataSource, *, replace: bool = False) -> DataSource:
    """Make ``source`` available by its name (to ``data format``, collections, ``data sources``).

    Adding a source is a loader ``seed -> (x_train, y_train, x_test, y_test, class names)``
    and a check that says, without loading, why it cannot load here (None when it can)::

        register_source(DataSource("my_scans", "what, from where, licence", "5 classes, 64x64x1",
                                   load_my_scans, lambda: None if MY_DIR.is_dir() else f"{MY_DIR} missing"))

    Raises
    ------
    ValueError
        The name is taken (unless ``replace``).
    """
    if source.name in SOURCES and not replace and SOURCES[source.name] is not source:
        raise ValueError(f"a source named {source.name!r} is registered already")
    SOURCES[source.name] = source
    return source


def get_source(name: str) -> DataSource:
    """The built-in source called ``name``.

    Raises
    ------
    ConversionError
        When there is none of that name (the message lists the names).
    """
    try:
        return SOURCES[name]
    except KeyError:
        raise ConversionError(None, f"no built-in source {name!r}; expected one of "
                                    f"{', '.join(SOURCES)}", field="source") from None


def list_sources() -> list[SourceInfo]:
    """The built-in sources and whether each loads on this machine (cheap checks, no loading).

    Returns
    -------
    list of SourceInfo
        One per source, in a fixed order.
    """
    infos = []
    for s in SOURCES.values():
        reason = s.check()
        infos.append(SourceInfo(s.name, s.description, reason is None, reason, s.task))
    return infos


def source_parameters(name: str) -> dict[str, Any]:
    """The parameters a source's loader takes besides ``seed``, with their defaults.

    Parameters
    ----------
    name:
        A name of :func:`list_sources`.

    Returns
    -------
    dict
        ``{parameter: default}`` (:data:`inspect.Parameter.empty` where there is none).
    """
    signature = inspect.signature(get_source(name).loader)
    return {k: p.default for k, p in signature.parameters.items()
            if k != "seed" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def load_source(name: str, seed: int = 0, **params: Any) -> SourceArrays:
    """Load a built-in source: ``(x_train, y_train, x_test, y_test, label_names)``.

    Parameters
    ----------
    name:
        A name of :func:`list_sources`.
    seed:
        Seed of the source's split or generation (where it has one).
    params:
        Further keyword arguments of the source's loader (:func:`source_parameters`), e.g.
        ``characters="ABC"`` for ``glyphs``.

    Raises
    ------
    ConversionError
        A parameter the loader does not take (the message lists those it takes), or the
        loader's own refusal of a value.
    """
    known = source_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConversionError(None, f"source {name!r} takes no parameter {', '.join(map(repr, unknown))}; "
                                    f"it takes {', '.join(known) or 'none'}", field="params")
    return get_source(name).loader(seed, **params)


def cap_examples(arrays: SourceArrays, max_train: int | None, max_test: int | None, seed: int) -> SourceArrays:
    """At most ``max_train`` / ``max_test`` examples of a source's arrays: seeded subsets
    stratified by class (seeds ``seed`` and ``seed + 1``)."""
    x_tr, y_tr, x_te, y_te, names = arrays
    if max_train is not None:
        keep = stratified_subset(y_tr, max_train, seed)
        x_tr, y_tr = take(x_tr, keep), y_tr[keep]
    if max_test is not None:
        keep = stratified_subset(y_te, max_test, seed + 1)
        x_te, y_te = take(x_te, keep), y_te[keep]
    return x_tr, y_tr, x_te, y_te, names


def write_source(name: str, out_root: str | Path, *, max_train: int | None = None,
                 max_test: int | None = None, seed: int = 0, overwrite: bool = False,
                 progress: Callable[[int], None] | None = None) -> Path:
    """Write a built-in source as an AutoDL dataset named ``name`` (images stored as PNG).

    Parameters
    ----------
    name:
        A name of :func:`list_sources`.
    out_root:
        The dataset folder to create.
    max_train, max_test:
        Keep at most this many examples of each subset: a seeded stratified subsample.
    seed:
        Seed of the source (split, generation) and of the subsample.
    overwrite:
        Replace an existing dataset at ``out_root``.
    progress:
        Called with 1 after each example written.

    Returns
    -------
    pathlib.Path
        ``out_root``.
    """
    source = get_source(name)
    check_max_examples(max_train=max_train, max_test=max_test)
    out_root = check_output_folder(out_root, overwrite)
    x_train, y_train, x_test, y_test, names = cap_examples(source.loader(seed), max_train, max_test, seed)
    logger.info("writing source %s to %s (train %d, test %d)", name, out_root, len(y_train), len(y_test))
    return write_arrays(out_root, name, x_train, y_train, x_test, y_test, num_classes=len(names),
                        label_names=names, overwrite=overwrite, progress=progress)


for _source in (*CORE_SOURCES, *HELDOUT_SOURCES, *TRAINING_SOURCES):
    register_source(_source)
