"""The embedded default, end to end: ``autodl-meta portfolio build-default``.

One seeded command builds everything the submission ships, from scratch, resumably, into one
folder (``portfolio/default/``, what gets committed):

1. to 4. the portfolio (:func:`portfolio.build.run_steps`): the collection's datasets, BOHB per
   dataset, the incumbents and the cost matrix;
5. the meta-features of every dataset of the collection
   (:func:`metafeatures.extract.extract_collection`) into a features folder outside ``OUT``
   (default ``data/metafeatures/<collection>``: large, rebuilt from the datasets, not
   committed); datasets cached with the same spec from the same files are skipped;
6. the selector comparison (:func:`selector.report.compare`) into ``OUT/selection/``
   (``report.md``, ``report.html``, ``summary.json``, the pictures and the CSVs it is drawn
   from, about 2 MB), skipped when its summary is there and its inputs (the settings, the
   features' identity, the cost matrix) are those recorded in ``OUT/selection/inputs.json``;
   while it runs each (seed, selector) measurement is kept in ``OUT/work/selection-parts/``
   (:data:`SELECTION_PARTS`), so an interrupted build measures only the rest;
   then the comparison's choice is fitted on the whole collection into ``OUT/selector/`` and
   the best learned selector that is not the choice (the *runner-up*: the best mean
   leave-one-dataset-out ALC among the selectors that are not references, :data:`REFERENCES`,
   whether they name training datasets or portfolio members) into ``OUT/selector-runner-up/``
   (both by :func:`selector.shipping.fit_for_shipping`). The folder names do not depend on
   which selector won; each card (``selector.json``) names it.

Every step is timed in ``OUT/manifest.json`` (:class:`portfolio.build.Manifest`), which also
gets the package versions, the machine, the seed, the total time of all the builds into
``OUT``, the command that reproduces the build and the SHA-256 of every file of ``OUT``.
A build whose ``OUT`` ends larger than :data:`SIZE_LIMIT` is refused (the largest files named).

Settings (:class:`DefaultBuildSettings`) that differ from those ``OUT`` was built with are
refused before anything runs, the differences named, unless the output of the step they
belong to is absent: the search's settings (collection, protocol, clock, timing table,
iterations, budgets, seed, space, warm start, BOHB's settings) once a BOHB run is in ``OUT/runs/``, the cost matrix's seeds
once ``OUT/cells.jsonl`` exists, the embedding spec once the features folder holds features
and the comparison's settings once ``OUT/selection/summary.json`` exists. Paths and the
number of workers are not settings: the same build may continue elsewhere, on more workers.

It lives in :mod:`pipeline` because it drives several layers (:mod:`portfolio`,
:mod:`metafeatures`, :mod:`selector`); :mod:`portfolio` itself never imports :mod:`selector`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.records import file_sha256, to_plain, utc_now, versions
from metafeatures.embeddings import EmbeddingSpec
from portfolio.build import (
    MANIFEST,
    BuildSettings,
    Manifest,
    committed_files,
    read_manifest,
    run_steps,
    settings_dict,
)
from portfolio.incumbents import PortfolioError

logger = logging.getLogger(__name__)

DEFAULT_OUT = "portfolio/default"
DEFAULT_DATA = "data/collections/default"
FEATURES_ROOT = "data/metafeatures"
"""Features of collection NAME go to ``FEATURES_ROOT/NAME`` unless told otherwise."""
DEFAULT_ONLY = ("tag:core",)
"""The embedded default is built on the 30 datasets tagged ``core`` in ``configs/collections/default.yaml``
(a cluster build passes ``only=()`` for all 48)."""
SIZE_LIMIT = 20_000_000
"""The most bytes ``OUT`` may hold at the end of a build (the committed artifacts: 20 MB)."""
SELECTION_DIR, SELECTOR_DIR, RUNNER_UP_DIR = "selection", "selector", "selector-runner-up"
SELECTION_PARTS = "work/selection-parts"
"""The comparison's measurements kept while it runs (:func:`selector.measure.measure`'s ``parts``):
an interrupted build resumes the comparison there; deleted when it has finished; never committed."""
INPUTS_FILE = "inputs.json"
REFERENCES = frozenset({"single-best", "single-best-member", "random", "oracle", "size-rule"})
"""Reference selectors: never the runner-up (the single best may be the choice)."""
DEFAULT_EMBEDDING = EmbeddingSpec(train_samples=512, test_samples=512)
"""The features of the embedded default: EfficientNet-Lite0 at 64 px, 512 training / 512 test samples."""
_SEARCH_KEYS = ("collection", "protocol", "clock", "timing", "iterations", "min_budget", "max_budget", "eta", "seed",
                "only", "space", "objective_args", "warm_start", "bohb")
_POOL_KEYS = ("pool_per_run", "pool_searched", "pool_hours", "warm_start")
_MATRIX_KEYS = ("matrix_seeds",)
_NOT_SETTINGS = frozenset({"batch_size"})
"""Embedding spec fields that do not change the features (left out of its digest)."""


class DefaultBuildError(PortfolioError):
    """A default build that cannot go on: changed settings over an existing ``OUT``, an ``OUT``
    over the size limit, a comparison without a choice."""


@dataclass
class SelectionSettings:
    """The selector comparison and the fitted selectors (``autodl-meta selector compare``'s options).

    ``selectors`` empty: every registered selector (resolved when the build runs; the resolved
    list is what is recorded and compared). ``params``: hyperparameters per selector name.
    ``fit_seed``: the seed of the fitted selectors that take one. ``nested``: also score the
    single-best fallback with thresholds chosen inside the training folds only (off in the
    build: about 66 more fits per selector on 12 source groups, hours on 2 cores; ``autodl-meta
    selector compare`` does it by default).
    """

    selectors: tuple[str, ...] = ()
    params: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {"precalc-mlp": {"n_batches": 64, "epochs": 30}})
    batch_sizes: tuple[int, ...] = tuple(2 ** k for k in range(11))
    n_batches: int = 10
    query_size: int = 64
    n_queries: int = 10
    seeds: tuple[int, ...] = (0,)
    cost_batch_sizes: tuple[int, ...] | None = None
    timing_repeats: int = 3
    time_embedding: bool = True
    fit_seed: int = 0
    nested: bool = False

    def resolved(self) -> dict[str, Any]:
        """The settings as recorded (selectors resolved, tuples as lists); what is compared on resume."""
        from selector.registry import list_selectors

        names = list(self.selectors) or list_selectors()
        unknown = sorted(set(self.params) - set(names))
        if unknown:
            raise DefaultBuildError(None, f"parameters for {unknown}, which are not among the selectors {names}",
                                    field="selection.params")
        out = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}
        out["selectors"] = names
        out["params"] = {k: dict(v) for k, v in sorted(self.params.items())}
        return to_plain(out)


@dataclass
class DefaultBuildSettings:
    """Everything :func:`build_default` does (the defaults are the embedded default's).

    ``features``: the features folder (default ``data/metafeatures/<collection>``);
    ``device``: where to embed (default: CUDA where available); ``max_bytes``: the size limit.
    """

    build: BuildSettings = field(default_factory=lambda: BuildSettings(only=DEFAULT_ONLY))
    features: str | None = None
    embedding: EmbeddingSpec = DEFAULT_EMBEDDING
    selection: SelectionSettings = field(default_factory=SelectionSettings)
    device: str | None = None
    max_bytes: int = SIZE_LIMIT

    @property
    def features_dir(self) -> Path:
        return Path(self.features) if self.features else Path(FEATURES_ROOT) / Path(self.build.collection).stem

    def record(self) -> dict[str, Any]:
        """The manifest's ``settings``: :class:`BuildSettings`' fields plus ``features`` and ``selection``."""
        return {**settings_dict(self.build),
                "features": {"path": str(self.features_dir), "spec": self.embedding.to_dict(), "device": self.device},
                "selection": self.selection.resolved(), "max_bytes": self.max_bytes}


# --- the command that reproduces a build ------------------------------------------------------
def reproduce_command(settings: DefaultBuildSettings, out: str | Path = DEFAULT_OUT) -> str:
    """``autodl-meta portfolio build-default`` with the options that give ``settings``; settings the
    command line cannot set (the library's) are named after a ``#``."""
    b = settings.build
    ref = DefaultBuildSettings()
    parts = ["autodl-meta portfolio build-default", f"--workers {b.workers}"]
    if str(out) != DEFAULT_OUT:
        parts.append(f"--out {out}")
    if b.data != DEFAULT_DATA:
        parts.append(f"--data {b.data}")
    if settings.features is not None and str(settings.features_dir) != str(ref.features_dir):
        parts.append(f"--features {settings.features}")
    if b.iterations != ref.build.iterations:
        parts.append(f"--iterations {b.iterations}")
    if b.seed != ref.build.seed:
        parts.append(f"--seed {b.seed}")
    if b.scheduler:
        parts.append(f"--scheduler {b.scheduler}")
    if b.matrix_seeds != ref.build.matrix_seeds:
        parts.append("--matrix-seeds " + ",".join(map(str, b.matrix_seeds)))
    if b.only != ref.build.only:
        parts.append(f"--only {','.join(b.only)!r}")
    for key, flag in (("portfolio", "--portfolio"), ("warm_start", "--warm-start"), ("pool_searched", "--pool-searched"),
                      ("pool_hours", "--pool-hours")):
        if getattr(b, key) != getattr(ref.build, key):
            parts.append(f"{flag} {getattr(b, key) or 0:g}" if key == "pool_hours" else f"{flag} {getattr(b, key)}")
    on_line = ("data", "iterations", "seed", "workers", "scheduler", "matrix_seeds", "only", "portfolio", "warm_start",
               "pool_searched", "pool_hours")
    other = [f"{k}={v!r}" for k, v in settings_dict(b).items()
             if k not in on_line and v != settings_dict(ref.build)[k]]
    if settings.embedding != ref.embedding:
        other.append(f"embedding={settings.embedding.to_dict()}")
    if settings.selection != ref.selection:
        other.append("selection=" + ", ".join(f"{k}={v!r}" for k, v in settings.selection.__dict__.items()
                                              if v != ref.selection.__dict__[k]))
    if settings.device:
        other.append(f"device={settings.device!r}")
    return " ".join(parts) + (f"  # library settings: {'; '.join(other)}" if other else "")


# --- refusing changed settings ----------------------------------------------------------------
def settings_differences(out: str | Path, settings: DefaultBuildSettings) -> list[str]:
    """What differs between ``settings`` and those ``out`` was built with, in the steps whose
    output is there (see the module docstring); an empty list where the build may go on."""
    out = Path(out)
    old = read_manifest(out).get("settings") or {}
    new = settings.record()
    diff: list[str] = []

    def compare(keys: Sequence[str], a: Mapping[str, Any], b: Mapping[str, Any], where: str) -> None:
        for key in keys:
            if key in a and to_plain(a[key]) != to_plain(b.get(key)):
                diff.append(f"{key} ({a[key]!r} -> {b.get(key)!r}; {where})")

    if any((out / "runs").glob("*/run.json")) or (out / "portfolio.json").is_file():
        compare(_SEARCH_KEYS, old, new, f"BOHB runs in {out / 'runs'}")
    if (out / "pool" / "pool.json").is_file():
        compare(_POOL_KEYS, old, new, f"pool {out / 'pool' / 'pool.json'}")
    if (out / "cells.jsonl").is_file() or (out / "pool" / "cells.jsonl").is_file():
        compare(_MATRIX_KEYS, old, new, f"cost matrix {out / 'cells.jsonl'} or {out / 'pool' / 'cells.jsonl'}")
    old_spec = (old.get("features") or {}).get("spec")
    if old_spec and any(settings.features_dir.glob("*.npz")):
        keys = [k for k in new["features"]["spec"] if k not in _NOT_SETTINGS]
        compare(keys, old_spec, new["features"]["spec"], f"features in {settings.features_dir}")
    inputs = _read_inputs(out / SELECTION_DIR)
    if inputs is not None and (out / SELECTION_DIR / "summary.json").is_file():
        compare(list(new["selection"]), inputs.get("settings") or {}, new["selection"],
                f"selector comparison in {out / SELECTION_DIR}")
    return diff


def check_settings(out: str | Path, settings: DefaultBuildSettings) -> None:
    """Refuse ``settings`` where they differ from those ``out`` was built with (:func:`settings_differences`).

    Raises
    ------
    DefaultBuildError
        Naming every difference and what to do.
    """
    diff = settings_differences(out, settings)
    if diff:
        raise DefaultBuildError(Path(out) / MANIFEST, "this folder was built with other settings: " + "; ".join(diff)
                                + ". Build into another --out, or remove that step's output to compute it again",
                                field="settings")


# --- step 5: meta-features ---------------------------------------------------------------------
def collection_items(settings: BuildSettings, built: Sequence[Any]) -> list[tuple[str, Path, str | None]]:
    """``(name, folder, source)`` of the datasets the build made (sources from the collection file)."""
    from autodl.collection import load_collection

    sources = {r.name: r.source for r in load_collection(settings.collection).select(list(settings.only) or None)}
    return [(b.name, Path(b.path), sources.get(b.name)) for b in built]


def extract_step(items: Sequence[tuple[str, Path, str | None]], settings: DefaultBuildSettings,
                 progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Embed every dataset (cached ones skipped); returns what the manifest records."""
    from metafeatures.extract import extract_collection

    folder = settings.features_dir
    before = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.npz")} if folder.is_dir() else {}
    b = settings.build
    paths = extract_collection(items, settings.embedding, folder, workers=max(1, b.workers),
                               scheduler=b.scheduler, progress=progress, device=settings.device)
    computed = [p.stem for p in paths if before.get(p.name) != p.stat().st_mtime_ns]
    return {"datasets": len(paths), "computed": len(computed), "cached": len(paths) - len(computed),
            "folder": str(folder), "spec_digest": settings.embedding.digest()}


# --- step 6: the comparison and the fitted selectors ---------------------------------------------
def selection_inputs(features: Path, out: Path, settings: SelectionSettings,
                     names: Sequence[str] | None = None) -> dict[str, Any]:
    """What the comparison is computed from: its settings, each features file's identity (the card's
    spec digest, dataset fingerprint and source: the same for features made again from the same
    files) and the cost matrix's SHA-256. ``names``: the datasets compared (default: every one
    in ``features``)."""
    from portfolio.cost_matrix import CSV_FILE

    cards = {}
    wanted = None if names is None else set(names)
    for js in sorted(features.glob("*.json")):
        if not (features / f"{js.stem}.npz").is_file() or (wanted is not None and js.stem not in wanted):
            continue
        try:
            stored = json.loads(js.read_text())
            card = stored["card"]
            cards[js.stem] = {"spec_digest": card["spec_digest"], "dataset_fingerprint": card["dataset_fingerprint"],
                              "source": stored.get("source")}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DefaultBuildError(js, f"unreadable features card ({type(exc).__name__}: {exc}); remove it and "
                                        "the build extracts it again", field="card") from None
    csv = out / CSV_FILE
    if not csv.is_file():
        raise DefaultBuildError(csv, "not found: the cost matrix step did not finish", field="cost matrix")
    return {"settings": settings.resolved(), "features": cards, "cost_matrix_sha256": file_sha256(csv)}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(to_plain(obj), sort_keys=True).encode()).hexdigest()


def _read_inputs(folder: Path) -> dict[str, Any] | None:
    path = folder / INPUTS_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DefaultBuildError(path, f"not valid JSON ({exc}); remove the folder to compare again") from None
    return data if isinstance(data, dict) else None


def comparison_step(features: Path, out: Path, settings: SelectionSettings, *, command: str,
                    names: Sequence[str] | None = None, workers: int = 1,
                    progress: Callable[[str, int, int], None] | None = None) -> tuple[dict[str, Any], bool]:
    """Run the comparison into ``out/selection`` unless it is there with the same inputs.

    ``names``: the datasets compared (the portfolio's; the features folder may hold others, e.g.
    of an earlier build); ``workers``: selectors measured side by side (:mod:`selector.measure`).

    Returns
    -------
    (dict, bool)
        The comparison's ``summary.json`` and whether it was computed now.
    """
    from selector.report import REPORT_MD, SUMMARY_JSON, compare
    from selector.specs import SelectorSpec

    folder = out / SELECTION_DIR
    parts = out / SELECTION_PARTS
    inputs = selection_inputs(features, out, settings, names)
    recorded = _read_inputs(folder)
    if recorded == to_plain(inputs) and (folder / SUMMARY_JSON).is_file() and (folder / REPORT_MD).is_file():
        logger.info("%s: the comparison is there with the same inputs; skipped", folder)
        return json.loads((folder / SUMMARY_JSON).read_text()), False
    if recorded is not None:
        logger.info("%s: the comparison's inputs changed (features or cost matrix); compared again", folder)
    if folder.exists():
        shutil.rmtree(folder)  # no stale picture or CSV of an earlier comparison stays
    if parts.is_dir():  # each kept measurement is named by its inputs' digest: stale ones are never read
        logger.info("%s: resuming the comparison with the measurements kept there", parts)
    r = inputs["settings"]
    specs = [SelectorSpec(n, r["params"].get(n, {}), label=n) for n in r["selectors"]]
    summary = compare(specs, features, out, folder, batch_sizes=r["batch_sizes"], n_batches=r["n_batches"],
                      query_size=r["query_size"], n_queries=r["n_queries"], seeds=r["seeds"],
                      cost_batch_sizes=r["cost_batch_sizes"], timing_repeats=r["timing_repeats"],
                      time_embedding=r["time_embedding"], nested=bool(r.get("nested", False)), command=command,
                      names=names, workers=workers, progress=progress, parts=parts)
    (folder / INPUTS_FILE).write_text(json.dumps(to_plain(inputs), indent=1) + "\n")
    shutil.rmtree(parts, ignore_errors=True)
    summary.pop("paths", None)
    return summary, True


def runner_up(summary: Mapping[str, Any]) -> dict[str, Any] | None:
    """The best learned selector other than the choice: the best mean leave-one-dataset-out ALC
    among those that are not references (:data:`REFERENCES`, evaluation-only ones) and, where
    any did, ran on every dataset; ties to the name first in alphabetical order. Selectors that
    name portfolio members count as the others (:func:`selector.shipping.fit_for_shipping` fits
    them; the submission looks their members up in ``portfolio.json``)."""
    per = summary["lodo"]["per_selector"]
    specs = {s["label"]: s for s in summary["settings"]["selectors"]}
    choice = (summary.get("choice") or {}).get("selector")
    excluded = set(summary.get("evaluation_only") or []) | {choice} | {
        k for k in per if specs.get(k, {"name": k})["name"] in REFERENCES}
    pool = {k: v for k, v in per.items() if k not in excluded and v.get("mean_alc") is not None
            and not (isinstance(v["mean_alc"], float) and math.isnan(v["mean_alc"]))}
    pool = {k: v for k, v in pool.items() if not v.get("failed")} or pool
    if not pool:
        return None
    pick = min(pool, key=lambda k: (-pool[k]["mean_alc"], k))
    spec = specs.get(pick, {"name": pick, "params": {}})
    return {"selector": pick, "name": spec["name"], "params": dict(spec.get("params") or {}),
            "mean_alc": pool[pick]["mean_alc"]}


def fit_for_shipping(pick: Mapping[str, Any], features: Path, portfolio: Path, folder: Path, *,
                     summary: Mapping[str, Any], summary_path: Path, seed: int, key: Mapping[str, Any],
                     command: str, role: str, names: Sequence[str] | None = None) -> tuple[Path, bool]:
    """Fit ``pick`` (``selector``, ``name``, ``params``) on every dataset with an incumbent
    (:func:`selector.shipping.fit_for_shipping`: member selectors on the portfolio's member view;
    ``names``: only these datasets of ``features``) and save it into ``folder``, unless a card
    there records the same ``key`` and its arrays are intact.

    Returns
    -------
    (Path, bool)
        The card and whether the selector was fitted now.
    """
    from selector import shipping
    from selector.base import ARRAYS_FILE, CARD_FILE

    card_path = folder / CARD_FILE
    if card_path.is_file() and (folder / ARRAYS_FILE).is_file():
        try:
            card = json.loads(card_path.read_text())
        except json.JSONDecodeError:
            card = {}
        if card.get("build") == to_plain(key) and card.get("arrays_sha256") == file_sha256(folder / ARRAYS_FILE):
            logger.info("%s: %s is fitted with the same inputs; skipped", folder, pick["name"])
            return card_path, False
    scores = shipping.lodo_scores(summary, pick["selector"], summary_path)
    fit = shipping.fit_for_shipping(pick["name"], pick.get("params") or {}, features, portfolio, seed=seed,
                                    names=names)
    if fit.left_out:
        logger.warning("left out of the fitted selector (no incumbent in the cost matrix): %s", ", ".join(fit.left_out))
    if fit.without_member:
        logger.warning("left out of the fitted selector (assigned to no member of the portfolio): %s",
                       ", ".join(fit.without_member))
    if folder.exists():
        shutil.rmtree(folder)
    extra = {"command": command, "date": utc_now(), **fit.card_fields(), "role": role, "scores": scores,
             "build": to_plain(key)}
    return fit.selector.save(folder, extra=extra), True


# --- the whole build --------------------------------------------------------------------------
def size_report(out: Path) -> tuple[int, list[tuple[str, int]]]:
    """Total bytes of ``out``'s committed files and the manifest, and the files by size, largest first."""
    files = committed_files(out) + ([out / MANIFEST] if (out / MANIFEST).is_file() else [])
    sizes = sorted(((p.relative_to(out).as_posix(), p.stat().st_size) for p in files), key=lambda x: (-x[1], x[0]))
    return sum(s for _, s in sizes), sizes


def check_size(out: Path, limit: int) -> int:
    """The bytes of ``out``; refuses (:class:`DefaultBuildError`) a folder over ``limit``, naming its largest files."""
    total, sizes = size_report(out)
    if total > limit:
        largest = ", ".join(f"{name} ({size / 1e6:.2f} MB)" for name, size in sizes[:5])
        raise DefaultBuildError(out, f"holds {total / 1e6:.2f} MB, over the limit of {limit / 1e6:g} MB for the "
                                     f"committed artifacts; the largest files: {largest}", field="size")
    return total


def build_default(out: str | Path = DEFAULT_OUT, settings: DefaultBuildSettings | None = None, *,
                  command: str = "", on_event: Callable[[str, Mapping[str, Any]], None] | None = None,
                  bohb_progress: Callable[[str], Any] | None = None, cell_progress: Callable[..., None] | None = None,
                  features_progress: Callable[[int, int, str], None] | None = None,
                  selection_progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Build (or continue building) the embedded default into ``out`` (see the module docstring).

    Parameters
    ----------
    on_event:
        ``(event, info)`` at the start of each step (``collection``, ``bohb``, ``incumbents``,
        ``cost matrix``, ``meta-features``, ``selection``, ``fit``) and at the end (``done``).
    bohb_progress, cell_progress:
        As :func:`portfolio.build.build`'s.
    features_progress:
        ``(done, total, name)`` after each dataset's features.
    selection_progress:
        ``(stage, done, total)`` of the comparison.

    Returns
    -------
    dict
        The manifest.

    Raises
    ------
    DefaultBuildError
        Changed settings over an existing ``out`` (before anything runs); an ``out`` larger
        than ``settings.max_bytes`` at the end (the manifest is written first).
    """
    settings = settings or DefaultBuildSettings()
    out = Path(out)
    notify = on_event or (lambda event, info: None)
    start = time.perf_counter()
    check_settings(out, settings)
    reproduce = reproduce_command(settings, out)
    manifest = Manifest(out, command or reproduce, settings.record())
    manifest.data["reproduce"] = reproduce
    manifest.data["seed"] = settings.build.seed
    built = run_steps(out, settings.build, manifest, command=command or reproduce, on_event=on_event,
                      bohb_progress=bohb_progress, cell_progress=cell_progress)

    from portfolio.incumbents import Portfolio

    in_portfolio = set(Portfolio.load(out / "portfolio.json").datasets)  # saturated datasets are left out
    items = [i for i in collection_items(settings.build, built) if i[0] in in_portfolio]
    notify("meta-features", {"datasets": len(items)})
    t = time.perf_counter()
    info = extract_step(items, settings, progress=features_progress)
    manifest.step("meta-features", time.perf_counter() - t, **info)

    notify("selection", {})
    t = time.perf_counter()
    features = settings.features_dir
    compared = [name for name, _, _ in items]
    summary, computed = comparison_step(features, out, settings.selection, command=reproduce,
                                        names=compared, workers=max(1, settings.build.workers),
                                        progress=selection_progress)
    choice = summary.get("choice")
    if not choice:
        raise DefaultBuildError(out / SELECTION_DIR / "summary.json", "the comparison chose no selector (none has a "
                                "leave-one-dataset-out ALC); see its report.md", field="choice")
    second = runner_up(summary)
    manifest.step("selection", time.perf_counter() - t, computed=computed,
                  choice={k: choice.get(k) for k in ("selector", "mean_alc", "reason")},
                  runner_up=second and {k: second[k] for k in ("selector", "mean_alc")},
                  single_best_mean_alc=summary["lodo"].get("single_best_mean_alc"),
                  oracle_mean_alc=summary["lodo"].get("oracle_mean_alc"))

    inputs_digest = _digest(_read_inputs(out / SELECTION_DIR))
    summary_path = out / SELECTION_DIR / "summary.json"
    shipped = {}
    for role, pick, folder in (("choice", choice, out / SELECTOR_DIR), ("runner-up", second, out / RUNNER_UP_DIR)):
        if pick is None:
            logger.warning("no learned selector besides the choice has a leave-one-dataset-out ALC: no runner-up")
            if folder.exists():
                shutil.rmtree(folder)
            continue
        notify("fit", {"selector": pick["selector"], "role": role, "folder": str(folder)})
        t = time.perf_counter()
        key = {"selector": pick["name"], "params": pick.get("params") or {}, "seed": settings.selection.fit_seed,
               "comparison_inputs": inputs_digest}
        _, fitted = fit_for_shipping(pick, features, out, folder, summary=summary, summary_path=summary_path,
                                     seed=settings.selection.fit_seed, key=key, command=reproduce, role=role,
                                     names=compared)
        manifest.step(f"fit {role}", time.perf_counter() - t, selector=pick["selector"], fitted=fitted,
                      folder=folder.relative_to(out).as_posix(), mean_alc=pick.get("mean_alc"))
        shipped[role] = {"selector": pick["selector"], "folder": folder.relative_to(out).as_posix(),
                         "mean_alc": pick.get("mean_alc")}

    manifest.data["selectors"] = shipped
    manifest.data["versions"] = versions()
    from autodl.machine import machine_description

    manifest.data["machine"] = machine_description()
    manifest.command.update(seconds=round(time.perf_counter() - start, 1), finished=utc_now())
    manifest.data["total_seconds"] = round(sum(float(s.get("seconds") or 0) for s in manifest.data["steps"]), 1)
    # the workers' CPU hours of the steps that record them (BOHB trials, matrix cells): unlike the steps'
    # seconds, other work sharing the machine does not inflate them (a step resumed adds only new work)
    manifest.data["total_cpu_hours"] = round(sum(float(s.get("cpu_hours") or 0) for s in manifest.data["steps"]), 3)
    manifest.checksums(out)
    total, _ = size_report(out)
    manifest.data["bytes"] = total
    manifest.save()
    check_size(out, settings.max_bytes)
    notify("done", {"bytes": total})
    return manifest.data
