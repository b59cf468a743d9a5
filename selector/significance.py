"""Statistics across datasets: are the selectors' differences significant?

:func:`statistics`: mean ranks across the held-out datasets, a Friedman test with the Nemenyi
critical difference (``autorank``, Demsar 2006) and pairwise Wilcoxon signed-rank tests with
Holm's correction (:func:`holm`), on the leave-one-dataset-out rows (:mod:`selector.lodo`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from selector.lodo import per_dataset
from selector.specs import TIE

logger = logging.getLogger(__name__)

MIN_DATASETS_FOR_TEST = 5
"""autorank's minimum: a test across fewer datasets is not attempted."""


@dataclass
class Statistics:
    """What :func:`statistics` found.

    Attributes
    ----------
    measure:
        The performance measure compared (a LODO row key; higher is better).
    selectors, datasets:
        The columns and rows of the comparison (datasets where every selector has a value).
    mean_ranks:
        Label -> mean rank over the datasets (1 = best; ties share their mean rank).
    test:
        ``omnibus`` (autorank's: ``friedman`` for 3 or more selectors, ``wilcoxon`` for 2),
        ``pvalue``, ``posthoc`` (``nemenyi``), ``cd`` (critical difference of mean ranks),
        ``alpha``; None when no test was run.
    pairwise:
        Wilcoxon signed-rank tests of every pair, with Holm-corrected p-values
        (``a``, ``b``, ``statistic``, ``pvalue``, ``pvalue_holm``, ``significant``).
    reason:
        Why there is no test (e.g. not enough datasets), else None.
    result:
        autorank's ``RankResult`` (for ``autorank.plot_stats``); not saved.
    """

    measure: str
    selectors: list[str]
    datasets: list[str]
    mean_ranks: dict[str, float]
    test: dict[str, Any] | None = None
    pairwise: list[dict[str, Any]] = field(default_factory=list)
    reason: str | None = None
    result: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "selectors": self.selectors, "datasets": self.datasets,
                "mean_ranks": self.mean_ranks, "test": self.test, "pairwise": self.pairwise, "reason": self.reason}


def performance_frame(rows: Sequence[Mapping[str, Any]], measure: str = "alc",
                      exclude: Sequence[str] = ()) -> Any:
    """A pandas DataFrame datasets x selectors of ``measure`` (averaged over seeds); datasets
    where some selector has no value are dropped (logged)."""
    import pandas as pd

    table = per_dataset(rows)
    labels = [s for s in dict.fromkeys(r["selector"] for r in table) if s not in exclude]
    data: dict[str, dict[str, float]] = defaultdict(dict)
    for r in table:
        if r["selector"] in labels:
            data[r["selector"]][r["dataset"]] = float(r[measure])
    frame = pd.DataFrame({s: pd.Series(data[s]) for s in labels})
    incomplete = frame.index[frame.isna().any(axis=1)].tolist()
    if incomplete:
        logger.warning("statistics: %s left out (a selector has no %s there)", incomplete, measure)
    return frame.dropna(axis=0, how="any")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error control), in the input order."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p, kind="stable")
    m = len(p)
    adj = np.empty(m)
    running = 0.0
    for k, i in enumerate(order):
        running = max(running, min(1.0, (m - k) * p[i]))
        adj[i] = running
    return adj.tolist()


def statistics(rows: Sequence[Mapping[str, Any]], measure: str = "alc", *, alpha: float = 0.05,
               exclude: Sequence[str] = ()) -> Statistics:
    """Mean ranks, autorank's Friedman/Nemenyi test and pairwise Wilcoxon-Holm tests.

    Parameters
    ----------
    rows:
        Leave-one-dataset-out rows (:attr:`Lodo.rows`).
    measure:
        The row key compared, higher is better (``alc``; ``kendall_tau``; ...).
    alpha:
        Family-wise significance level.
    exclude:
        Selector labels left out (e.g. the oracle, a reference rather than a contender).

    Returns
    -------
    Statistics
        Never raises for too little data: with fewer than 2 selectors or fewer than
        :data:`MIN_DATASETS_FOR_TEST` datasets ``reason`` says so (mean ranks are still given
        where there is at least one dataset).
    """
    import contextlib
    import io

    from scipy.stats import rankdata, wilcoxon

    frame = performance_frame(rows, measure, exclude)
    labels, datasets = list(frame.columns), [str(i) for i in frame.index]
    ranks: dict[str, float] = {}
    if len(labels) >= 1 and len(datasets) >= 1:
        r = np.vstack([rankdata(-frame.loc[i].to_numpy(dtype=float), method="average") for i in frame.index])
        ranks = {s: float(v) for s, v in zip(labels, r.mean(axis=0), strict=True)}
    stats = Statistics(measure, labels, datasets, ranks)
    if len(labels) < 2:
        stats.reason = f"only {len(labels)} selector(s) with values: nothing to compare"
        return stats
    if len(datasets) < MIN_DATASETS_FOR_TEST:
        stats.reason = (f"not enough datasets for a test ({len(datasets)}; a Friedman or Wilcoxon test needs "
                        f"{MIN_DATASETS_FOR_TEST} or more)")
        return stats
    pairs = []
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            d = frame[a].to_numpy(dtype=float) - frame[b].to_numpy(dtype=float)
            if np.all(np.abs(d) <= TIE):
                stat, p = 0.0, 1.0
            else:
                res = wilcoxon(frame[a].to_numpy(dtype=float), frame[b].to_numpy(dtype=float))
                stat, p = float(res.statistic), float(res.pvalue)
            pairs.append({"a": a, "b": b, "statistic": stat, "pvalue": p,
                          "mean_difference": float(np.mean(d))})
    for pair, adj in zip(pairs, holm([q["pvalue"] for q in pairs]), strict=True):
        pair["pvalue_holm"] = adj
        pair["significant"] = bool(adj < alpha)
    stats.pairwise = pairs
    try:
        from autorank import autorank

        with contextlib.redirect_stdout(io.StringIO()):  # autorank prints its choice of test
            res = autorank(frame, alpha=alpha, verbose=False, order="descending", force_mode="nonparametric")
        stats.result = res
        stats.test = {"omnibus": res.omnibus, "pvalue": float(res.pvalue), "posthoc": res.posthoc,
                      "cd": None if res.cd is None else float(res.cd), "alpha": alpha,
                      "significant": bool(res.pvalue < alpha)}
    except (ValueError, ZeroDivisionError, np.linalg.LinAlgError) as exc:
        stats.reason = f"autorank could not test these values: {exc}"
        logger.warning("statistics: %s", stats.reason)
    return stats
