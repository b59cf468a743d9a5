"""Does selection earn its place? Each selector of a comparison against the bar it must clear.

Selection is worth shipping only where it beats always running the single best by enough to
matter, closes a real share of what a perfect choice would gain, and never costs much on one
dataset. :class:`Bar` holds the three thresholds; :func:`bar_rows` measures every selector of a
comparison's summary (:func:`selector.report.compare`) against them, twice where the
comparison has the nested fallback: the plain picks, and the picks with the single-best
fallback whose thresholds were chosen on the training folds only (the honest figure of the
rule a fitted selector ships with).

All figures are leave-one-dataset-out: a dataset's single best is its fold's (the member with
the best mean ALC over the fold's training datasets), and the gap is that of the means:
``(mean ALC - single best's) / (oracle's - single best's)``. Two references beside the bar: a
uniformly random member, and the all-data single best (the member a build ships as ``single-best``,
chosen on every dataset, so in-sample). Where the members' means lie within noise, the fold's
single best is a noisy choice and can fall below a random member; a selector that clears the bar
only against such a reference has not shown much, and the two columns show it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

REFERENCES = ("oracle", "single-best", "single-best-member", "random")
"""Labels of the comparison's references, which are not measured against the bar."""


@dataclass(frozen=True)
class Bar:
    """What a selector must clear against the single best, leave-one-dataset-out.

    Attributes
    ----------
    min_gain
        Mean ALC at least this much above the single best's.
    min_gap_share
        At least this share of the single-best-to-oracle gap (of the means) closed.
    max_loss
        On no dataset more than this below the single best.
    """

    min_gain: float = 0.01
    min_gap_share: float = 0.30
    max_loss: float = 0.05

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _finite(v: Any) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


def _reference_delta(mean: float, common: list[str], ref: Mapping[str, float]) -> float:
    """``mean`` minus the mean of ``ref`` over ``common`` (NaN where ``ref`` lacks one of them)."""
    if not common or any(d not in ref for d in common):
        return float("nan")
    return mean - sum(ref[d] for d in common) / len(common)


def _row(label: str, rule: str, alcs: Mapping[str, float], single: Mapping[str, float], sb_mean: float,
         oracle_mean: float, bar: Bar, references: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    common = [d for d in single if d in alcs and _finite(alcs[d]) and _finite(single[d])]
    if not common:
        return {"selector": label, "rule": rule, "datasets": 0}
    mean = sum(alcs[d] for d in common) / len(common)
    gain = mean - sb_mean
    gap = oracle_mean - sb_mean
    share = gain / gap if gap > 1e-12 else float("nan")
    worst = min(common, key=lambda d: alcs[d] - single[d])
    worst_delta = alcs[worst] - single[worst]
    losses = sorted((d for d in common if alcs[d] - single[d] < -bar.max_loss), key=lambda d: alcs[d] - single[d])
    checks = {"gain": gain >= bar.min_gain, "gap_share": not math.isnan(share) and share >= bar.min_gap_share,
              "max_loss": not losses}
    return {"selector": label, "rule": rule, "datasets": len(common), "mean_alc": mean, "gain": gain,
            "gap_share": share, "worst_delta": worst_delta, "worst_dataset": worst, "losses_beyond": losses,
            **{f"vs_{k}": _reference_delta(mean, common, ref) for k, ref in references.items()},
            "checks": checks, "passes": all(checks.values())}


def bar_rows(summary: Mapping[str, Any], bar: Bar | None = None) -> list[dict[str, Any]]:
    """Every selector of ``summary`` (a comparison's ``summary.json``) against ``bar``.

    Returns
    -------
    list of dict
        Per selector and rule (``pick``; ``pick, nested fallback`` where the comparison scored
        the fallback nested and recorded its per-dataset ALCs): ``mean_alc``, ``gain`` (minus
        the single best's), ``gap_share``, ``worst_delta`` and ``worst_dataset`` (its largest
        loss against the single best, or smallest gain), ``losses_beyond`` (datasets lost by
        more than ``bar.max_loss``), ``vs_random`` (minus a uniformly random member's exact
        expectation) and ``vs_all_data_single_best`` (minus the member with the best mean over
        every dataset, the shipped single best: an in-sample reference; NaN where the summary
        predates it), neither part of the bar, ``checks`` (each criterion) and ``passes`` (all
        of them).
        Ordered as the comparison's selectors, references left out.
    """
    bar = bar or Bar()
    lodo = summary["lodo"]
    per_ds = lodo["per_dataset"]
    single = {d: float(v["single_best_alc"]) for d, v in per_ds.items() if _finite(v.get("single_best_alc"))}
    sb_mean, oracle_mean = float(lodo["single_best_mean_alc"]), float(lodo["oracle_mean_alc"])
    references = {key: {d: float(v[f"{field}_alc"]) for d, v in per_ds.items() if _finite(v.get(f"{field}_alc"))}
                  for key, field in (("random", "expected_random"), ("all_data_single_best", "all_data_single_best"))}
    nested = summary.get("fallback_nested") or {}
    rows = []
    for label in lodo["selectors"]:
        if label in REFERENCES:
            continue
        alcs = {d: float(v["alc"][label]) for d, v in per_ds.items() if _finite((v.get("alc") or {}).get(label))}
        rows.append(_row(label, "pick", alcs, single, sb_mean, oracle_mean, bar, references))
        n = nested.get(label)
        if n and n.get("per_dataset"):
            with_rule = {d: float(v["alc"]) for d, v in n["per_dataset"].items()}
            rows.append(_row(label, "pick, nested fallback", with_rule, single, sb_mean, oracle_mean, bar,
                             references))
    return rows
