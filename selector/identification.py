"""Dataset identification: how often a selector names the right dataset from a batch of it.

:func:`identification_accuracy`: fitted on every dataset's training embeddings, how often a
selector names the right dataset from a batch of that dataset's held-out *test* embeddings,
for batch sizes 1 to 1024 (the figure of the Freiburg AutoDL 2019 paper: Liu et al., "Winning
solutions and post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021,
section on the meta-learned selector). :func:`identification_table` averages its rows per
selector and batch size for the comparison report (:mod:`selector.report`).
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures
from selector.base import SelectorError
from selector.specs import (
    Progress,
    SelectorSpec,
    as_specs,
    batch_seeds,
    check_batch_sizes,
    dataset_key,
    is_evaluation_only,
    nanmean,
    outputs_members,
    pick,
)

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZES: tuple[int, ...] = tuple(2 ** k for k in range(11))
"""1, 2, 4, ..., 1024: the identification figure's batch sizes."""


@dataclass
class Identification:
    """What :func:`identification_accuracy` measured.

    Attributes
    ----------
    rows:
        One per (selector, batch size, dataset): ``selector``, ``dataset``, ``batch_size``,
        ``batch_effective`` (the batch actually drawn: at most the samples there are),
        ``batches``, ``correct``, ``accuracy``, ``split`` (``test``, or ``train-holdout`` for
        selectors that need labels), ``classes`` (datasets it chose among), ``failed`` (batches
        it could not answer, e.g. a batch of one class for a transferability measure: they
        count as wrong; NaN accuracy when all failed), ``error`` (the first such error), ``seed``.
    table:
        One per (selector, batch size): ``accuracy`` (the mean over datasets, each dataset
        weighted equally), ``datasets``, ``chance`` (1 / the datasets it chose among), ``split``,
        ``failed_batches`` and ``batches``.
    skipped:
        Selector label -> why it was not evaluated.
    """

    rows: list[dict[str, Any]]
    table: list[dict[str, Any]]
    skipped: dict[str, str] = field(default_factory=dict)


def _holdout_split(datasets: Sequence[DatasetFeatures], seed: int,
                   fraction: float = 0.5) -> tuple[list[DatasetFeatures], list[DatasetFeatures]]:
    """Each dataset's training embeddings split at random into a fit part and a query part."""
    fit, pool = [], []
    for d in datasets:
        n = len(d.train)
        if n < 2:
            raise SelectorError(None, f"{d.name}: {n} training embedding(s); a held-out query part needs 2 or more")
        perm = np.random.default_rng([int(seed), dataset_key(d.name), 7]).permutation(n)
        k = min(max(1, round(n * fraction)), n - 1)
        a, b = np.sort(perm[:k]), np.sort(perm[k:])
        raw = d.train_raw
        fit.append(DatasetFeatures(d.name, d.train[a], d.train_labels[a], None, dict(d.descriptors), d.source,
                                   dict(d.card), None if raw is None else raw[a]))
        pool.append(DatasetFeatures(d.name, d.train[b], d.train_labels[b], None, dict(d.descriptors), d.source,
                                    dict(d.card), None if raw is None else raw[b]))
    return fit, pool


def identification_accuracy(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
                            datasets: Sequence[DatasetFeatures], *,
                            batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES, n_batches: int = 10,
                            split: str = "test", seed: int = 0, cost: CostMatrix | None = None,
                            progress: Progress | None = None) -> Identification:
    """Accuracy of naming the right dataset from batches of its held-out samples.

    Every selector is fitted once on all ``datasets`` (their training embeddings), then asked
    about ``n_batches`` random batches of each dataset's ``split`` embeddings per batch size;
    a batch is right when the selector names the dataset it came from.

    Protocol details:

    - A batch size larger than a dataset's held-out samples takes all of them (one batch,
      ``batch_effective`` says how many): a batch drawn with replacement would only repeat
      samples the selector has already seen in it.
    - Selectors that need labels (``needs_labels``: the transferability measures) cannot be
      asked about the unlabelled test split. For them each dataset's training embeddings are
      split at random in two halves: the selector is fitted on one, the batches are drawn
      from the other (``split = "train-holdout"`` in the rows). Their accuracies are
      therefore measured on half the training data and on training-split samples: compare
      them with each other rather than with the other selectors'.
    - Evaluation-only selectors (the oracle) and selectors that name members rather than
      datasets are skipped, and selectors that need the cost matrix are skipped when ``cost``
      is None; :attr:`Identification.skipped` says why.
    - A batch the selector cannot answer (it raises: e.g. a transferability measure given a
      batch of one class) counts as wrong and is counted in ``failed``; a selector whose fit
      or every batch fails is skipped with the error (logged); the others go on.

    Parameters
    ----------
    selectors:
        What to evaluate (see :func:`as_specs`).
    datasets:
        The training datasets' features; every one with ``split`` embeddings is queried.
    batch_sizes:
        Samples per batch.
    n_batches:
        Random batches per dataset and batch size.
    split:
        ``test`` (held out, the default) or ``train`` (the samples the selector was fitted on).
    seed:
        Seeds the batches (and a selector's ``seed`` hyperparameter where not given).
    cost:
        The cost matrix, for selectors that need it (``needs_cost``).
    progress:
        See :data:`Progress` (stage ``identification <label>``).

    Returns
    -------
    Identification
    """
    specs = as_specs(selectors)
    sizes = check_batch_sizes(batch_sizes)
    if split not in ("train", "test"):
        raise SelectorError(None, f"split={split!r}: expected 'train' or 'test'")
    if n_batches < 1:
        raise SelectorError(None, f"n_batches={n_batches}: expected >= 1")
    if len(datasets) < 2:
        raise SelectorError(None, f"identification needs 2 or more datasets, got {len(datasets)}")
    rows: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for spec in specs:
        try:
            sel = spec.make(seed)
        except SelectorError as exc:
            skipped[spec.label] = str(exc)
            logger.warning("identification: %s skipped: %s", spec.label, exc)
            continue
        if is_evaluation_only(sel):
            skipped[spec.label] = "evaluation only (it looks at the true cost-matrix column): nothing to identify"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        if outputs_members(sel):
            skipped[spec.label] = "it names portfolio members (configurations), not datasets: nothing to identify"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        if sel.needs_cost and cost is None:
            skipped[spec.label] = "needs the cost matrix and none was given"
            logger.info("identification: %s skipped: %s", spec.label, skipped[spec.label])
            continue
        usable = list(datasets)
        if sel.needs_cost:
            usable = [d for d in datasets if d.name in cost.sources]
            if len(usable) < len(datasets):
                logger.info("identification: %s is fitted on the %d datasets with an incumbent", spec.label,
                            len(usable))
        if sel.needs_labels:
            fit_sets, pools = _holdout_split(usable, seed)
            q_split, label_split = "train", "train-holdout"
        else:
            fit_sets, pools, q_split, label_split = usable, list(usable), split, split
            missing = [d.name for d in pools if (d.test if split == "test" else d.train) is None]
            if missing:
                logger.warning("identification: no %s embeddings of %s; left out", split, missing)
            pools = [d for d in pools if (d.test if split == "test" else d.train) is not None]
        total = len(pools) * len(sizes)
        if progress is not None:
            progress(f"identification {spec.label}", 0, total)
        try:
            sel.fit(fit_sets, cost) if sel.needs_cost else sel.fit(fit_sets)
        except Exception as exc:  # one broken selector never ends the comparison
            skipped[spec.label] = f"fit: {type(exc).__name__}: {exc}"
            logger.warning("identification: %s failed: %s", spec.label, skipped[spec.label], exc_info=True)
            continue
        done = 0
        mine: list[dict[str, Any]] = []
        for d in pools:
            available = len(d.test if q_split == "test" else d.train)
            for b in sizes:
                eff = min(b, available)
                seeds = batch_seeds(seed, dataset_key(d.name), b, n=1 if eff == available else n_batches)
                correct = failed = 0
                error = None
                for s in seeds:
                    q = d.query(eff, split=q_split, seed=s)
                    try:
                        p = np.asarray(sel.predict_proba(q), dtype=float)
                        chosen = pick(sel, q, p)
                    except Exception as exc:  # a batch it cannot answer (one class for a measure): not named
                        failed += 1
                        error = error or f"{type(exc).__name__}: {exc}"
                        continue
                    correct += int(chosen == d.name)
                mine.append({"selector": spec.label, "dataset": d.name, "batch_size": b, "batch_effective": eff,
                             "batches": len(seeds), "correct": correct,
                             "accuracy": correct / len(seeds) if failed < len(seeds) else float("nan"),
                             "failed": failed, "error": error, "split": label_split, "classes": len(fit_sets),
                             "seed": int(seed)})
                done += 1
                if progress is not None:
                    progress(f"identification {spec.label}", done, total)
        if mine and all(r["failed"] == r["batches"] for r in mine):
            skipped[spec.label] = f"every batch failed: {mine[0]['error']}"
            logger.warning("identification: %s failed: %s", spec.label, skipped[spec.label])
            continue
        bad = [r for r in mine if r["failed"]]
        if bad:
            logger.warning("identification: %s could not answer %d of %d batches (e.g. %s at batch size %d: %s); "
                           "they count as wrong", spec.label, sum(r["failed"] for r in bad),
                           sum(r["batches"] for r in mine), bad[0]["dataset"], bad[0]["batch_size"], bad[0]["error"])
        rows += mine
    return Identification(rows, identification_table(rows), skipped)


def identification_table(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (selector, batch size): the accuracy averaged over datasets (each weighted equally;
    with several seeds, a dataset's accuracy is first averaged over them)."""
    per: dict[tuple[str, int], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    split: dict[str, str] = {}
    classes: dict[str, int] = {}
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for r in rows:
        key = (r["selector"], int(r["batch_size"]))
        per[key][r["dataset"]].append(float(r["accuracy"]))
        split[r["selector"]] = r["split"]
        classes[r["selector"]] = int(r.get("classes") or 0)
        failed = r.get("failed")
        counts[key][0] += int(failed) if failed is not None and not math.isnan(failed) else 0
        counts[key][1] += int(r["batches"])
    out = []
    for (label, b), by_ds in per.items():
        accs = [nanmean(v) for v in by_ds.values()]
        n = classes[label] or len(by_ds)
        out.append({"selector": label, "batch_size": b, "accuracy": nanmean(accs),
                    "datasets": int(sum(not math.isnan(a) for a in accs)), "chance": 1.0 / n, "split": split[label],
                    "failed_batches": counts[(label, b)][0], "batches": counts[(label, b)][1]})
    return sorted(out, key=lambda r: (r["selector"], r["batch_size"]))
