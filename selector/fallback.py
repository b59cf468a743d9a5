"""Falling back to the single best: when a selector's pick is not trusted.

:func:`fallback_threshold` chooses, from the leave-one-dataset-out records of every query
batch (:attr:`selector.lodo.Lodo.queries`), the confidence and novelty thresholds beyond which
a selector's pick is replaced by the single-best configuration (what a shipped selector uses);
:func:`nested_fallback` scores that rule honestly, each fold with thresholds chosen on its
inner folds only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from selector.specs import is_nan


def fallback_threshold(queries: Sequence[Mapping[str, Any]], selector: str) -> dict[str, Any] | None:
    """The confidence and novelty thresholds below / above which ``selector``'s pick is
    replaced by the single-best configuration, chosen by leave-one-dataset-out.

    Given the records of every fold (:attr:`Lodo.queries`), these are the thresholds to ship
    (chosen on every training dataset), but their ``mean_alc`` is optimistic as an estimate:
    the thresholds were chosen on the very folds it averages. :func:`nested_fallback` gives the
    honest figure, each fold scored with thresholds chosen without it.

    Every pair of candidate thresholds (each observed confidence, and "never"; each observed
    novelty, and "never") is scored by the mean ALC that the rule "use the pick when
    ``confidence >= c`` and ``novelty <= v``, else the fold's single best" would have got,
    each held-out dataset weighted equally (its queries averaged). The best pair wins; ties
    go to the rule that falls back least (the lowest ``c``, the highest ``v``).

    Parameters
    ----------
    queries:
        :attr:`Lodo.queries` (any seeds; the records of ``selector`` are used).
    selector:
        The selector's label.

    Returns
    -------
    dict or None
        ``confidence_threshold`` (0.0: never on confidence), ``novelty_threshold`` (None:
        never on novelty, or the selector has none), ``mean_alc`` with the rule,
        ``mean_alc_without`` (never falling back), ``mean_alc_single_best`` (always),
        ``fallback_share`` (of the queries), ``queries``, ``datasets``; None without records.
    """
    recs = [q for q in queries if q["selector"] == selector and not is_nan(q.get("alc"))]
    if not recs:
        return None
    conf = np.array([float(q["confidence"]) for q in recs])
    nov = np.array([float(q["novelty"]) if not is_nan(q.get("novelty")) else np.nan for q in recs])
    alc = np.array([float(q["alc"]) for q in recs])
    sb = np.array([float(q["single_best_alc"]) for q in recs])
    names = [q["dataset"] for q in recs]
    datasets = list(dict.fromkeys(names))
    index = np.array([datasets.index(n) for n in names])
    counts = np.bincount(index, minlength=len(datasets)).astype(float)

    def mean_alc(use: np.ndarray) -> float:
        value = np.where(use, alc, sb)
        return float(np.mean(np.bincount(index, weights=value, minlength=len(datasets)) / counts))

    conf_cands = np.unique(np.concatenate([[0.0], conf]))
    has_novelty = bool(np.isfinite(nov).any())
    nov_cands = np.unique(nov[np.isfinite(nov)])[::-1] if has_novelty else np.array([])
    best = (mean_alc(np.ones(len(recs), bool)), 0.0, None)  # never fall back
    for c in conf_cands:
        on_conf = conf >= c
        for v in [None, *nov_cands]:
            use = on_conf if v is None else on_conf & ~(nov > v)
            value = mean_alc(use)
            if value > best[0] + 1e-12:
                best = (value, float(c), None if v is None else float(v))
    value, c, v = best
    use = (conf >= c) & (np.ones(len(recs), bool) if v is None else ~(nov > v))
    return {"confidence_threshold": c, "novelty_threshold": v, "mean_alc": value,
            "mean_alc_without": mean_alc(np.ones(len(recs), bool)), "mean_alc_single_best": mean_alc(np.zeros(len(recs), bool)),
            "fallback_share": float(1.0 - use.mean()), "queries": len(recs), "datasets": len(datasets),
            "has_novelty": has_novelty}


def nested_fallback(queries: Sequence[Mapping[str, Any]], inner_queries: Sequence[Mapping[str, Any]],
                    selector: str) -> dict[str, Any] | None:
    """The fallback rule scored by nested leave-one-dataset-out: each outer fold's thresholds are
    chosen (:func:`fallback_threshold`) on its inner folds' records only (``inner_queries`` whose
    ``outer_group`` is the fold's group: selectors fitted and scored without that group), then
    applied to the outer fold's own records (``queries``). Nothing of the scored fold (its
    features, its cost-matrix column, its queries) enters the choice of its thresholds.

    A fold without inner records (a group whose removal leaves nothing to hold out) never falls
    back (``confidence >= 0``, no novelty rule).

    Parameters
    ----------
    queries:
        :attr:`Lodo.queries` (any seeds), with their ``group``.
    inner_queries:
        :attr:`Lodo.inner_queries` (``leave_one_dataset_out(..., nested_fallback=True)``).
    selector:
        The selector's label.

    Returns
    -------
    dict or None
        ``mean_alc`` (each outer dataset weighted equally, its queries averaged),
        ``per_dataset`` (dataset -> ``alc`` with the rule, ``single_best_alc``),
        ``mean_alc_without`` (never falling back), ``mean_alc_single_best`` (always),
        ``fallback_share``, ``thresholds`` (group -> ``confidence_threshold``,
        ``novelty_threshold``, ``inner_datasets``, ``inner_queries``), ``confidence_range``
        (lowest and highest threshold over the folds), ``novelty_range`` (the same over the folds
        with a novelty rule; None where none has one), ``novelty_folds`` (how many have one),
        ``folds_without_inner`` (groups with no
        inner record), ``queries``, ``datasets``; None without records of ``selector``.
    """
    recs = [q for q in queries if q["selector"] == selector and not is_nan(q.get("alc"))]
    if not recs:
        return None
    inner = [r for r in inner_queries if r["selector"] == selector and not is_nan(r.get("alc"))]
    by_group: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for r in inner:
        by_group[str(r["outer_group"])].append(r)
    thresholds: dict[str, dict[str, Any]] = {}
    for g in dict.fromkeys(str(q.get("group") or q["dataset"]) for q in recs):
        th = fallback_threshold(by_group.get(g, []), selector)
        thresholds[g] = {"confidence_threshold": th["confidence_threshold"] if th else 0.0,
                         "novelty_threshold": th["novelty_threshold"] if th else None,
                         "inner_datasets": th["datasets"] if th else 0, "inner_queries": th["queries"] if th else 0}
    names = [q["dataset"] for q in recs]
    datasets = list(dict.fromkeys(names))
    index = np.array([datasets.index(n) for n in names])
    counts = np.bincount(index, minlength=len(datasets)).astype(float)
    alc = np.array([float(q["alc"]) for q in recs])
    sb = np.array([float(q["single_best_alc"]) for q in recs])
    use = np.ones(len(recs), bool)
    for i, q in enumerate(recs):
        t = thresholds[str(q.get("group") or q["dataset"])]
        nov = q.get("novelty")
        use[i] = float(q["confidence"]) >= t["confidence_threshold"] and not (
            t["novelty_threshold"] is not None and not is_nan(nov) and float(nov) > t["novelty_threshold"])

    def mean_alc(mask: np.ndarray) -> float:
        value = np.where(mask, alc, sb)
        return float(np.mean(np.bincount(index, weights=value, minlength=len(datasets)) / counts))

    confs = [t["confidence_threshold"] for t in thresholds.values()]
    novs = [float(t["novelty_threshold"]) for t in thresholds.values() if t["novelty_threshold"] is not None]
    with_rule = np.bincount(index, weights=np.where(use, alc, sb), minlength=len(datasets)) / counts
    single = np.bincount(index, weights=sb, minlength=len(datasets)) / counts
    per_dataset = {d: {"alc": float(with_rule[i]), "single_best_alc": float(single[i])}
                   for i, d in enumerate(datasets)}
    return {"mean_alc": mean_alc(use), "per_dataset": per_dataset,
            "mean_alc_without": mean_alc(np.ones(len(recs), bool)),
            "mean_alc_single_best": mean_alc(np.zeros(len(recs), bool)), "fallback_share": float(1.0 - use.mean()),
            "thresholds": thresholds, "confidence_range": [float(min(confs)), float(max(confs))],
            "novelty_range": [min(novs), max(novs)] if novs else None, "novelty_folds": len(novs),
            "folds_without_inner": [g for g, t in thresholds.items() if not t["inner_queries"]],
            "queries": len(recs), "datasets": len(datasets)}
