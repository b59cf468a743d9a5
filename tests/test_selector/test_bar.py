"""Each selector against the bar selection must clear (selector.bar): worked examples."""

from __future__ import annotations

import pytest

from selector.bar import Bar, bar_rows


def _summary(alc: dict[str, dict[str, float]], single: dict[str, float], oracle: dict[str, float],
             nested: dict | None = None) -> dict:
    datasets = list(single)
    return {"lodo": {"selectors": ["oracle", "single-best", *alc, "random"], "datasets": datasets,
                     "per_dataset": {d: {"single_best_alc": single[d], "oracle_alc": oracle[d],
                                         "alc": {lab: v[d] for lab, v in alc.items()}} for d in datasets},
                     "single_best_mean_alc": sum(single.values()) / len(single),
                     "oracle_mean_alc": sum(oracle.values()) / len(oracle)},
            "fallback_nested": nested or {}}


def test_bar_worked_example() -> None:
    """Three datasets; single best .6, .5, .7 (mean .6); oracle .7, .6, .8 (mean .7; gap .1).

        bold  .70 .60 .62  mean .64: +.04 (40% of the gap) but loses .08 on c -> fails on the loss
        timid .61 .51 .70  mean .6067: +.0067, 7%; never below             -> fails on gain and gap
        good  .66 .56 .69  mean .6367: +.0367, 37%; worst -.01 on c        -> passes
    The nested rule of `bold` falls back on c (.7): mean .6667, +.0667, worst 0 -> passes.
    """
    single = {"a": .6, "b": .5, "c": .7}
    oracle = {"a": .7, "b": .6, "c": .8}
    alc = {"bold": {"a": .70, "b": .60, "c": .62}, "timid": {"a": .61, "b": .51, "c": .70},
           "good": {"a": .66, "b": .56, "c": .69}}
    nested = {"bold": {"mean_alc": 2 / 3, "per_dataset": {"a": {"alc": .70, "single_best_alc": .6},
                                                           "b": {"alc": .60, "single_best_alc": .5},
                                                           "c": {"alc": .70, "single_best_alc": .7}}},
              "timid": {"mean_alc": .6}}  # no per-dataset figures (an older comparison): no nested row
    rows = {(r["selector"], r["rule"]): r for r in bar_rows(_summary(alc, single, oracle, nested))}
    assert set(rows) == {("bold", "pick"), ("bold", "pick, nested fallback"), ("timid", "pick"), ("good", "pick")}
    bold = rows[("bold", "pick")]
    assert bold["gain"] == pytest.approx(0.04) and bold["gap_share"] == pytest.approx(0.4)
    assert bold["worst_dataset"] == "c" and bold["worst_delta"] == pytest.approx(-0.08)
    assert bold["losses_beyond"] == ["c"] and bold["checks"] == {"gain": True, "gap_share": True, "max_loss": False}
    assert not bold["passes"]
    timid = rows[("timid", "pick")]
    assert timid["checks"] == {"gain": False, "gap_share": False, "max_loss": True} and not timid["passes"]
    assert rows[("good", "pick")]["passes"] and rows[("good", "pick")]["worst_delta"] == pytest.approx(-0.01)
    ruled = rows[("bold", "pick, nested fallback")]
    assert ruled["passes"] and ruled["gain"] == pytest.approx(0.2 / 3) and ruled["worst_delta"] == pytest.approx(0.0)
    # a stricter bar fails `good` on the gap (37% < 50%)
    strict = {(r["selector"], r["rule"]): r for r in bar_rows(_summary(alc, single, oracle), Bar(min_gap_share=0.5))}
    assert not strict[("good", "pick")]["passes"] and strict[("good", "pick")]["checks"]["gap_share"] is False


def test_no_gap_means_no_share_and_no_pass() -> None:
    """Where the oracle is the single best everywhere there is nothing to close: the share is
    undefined and no selector clears the bar."""
    single = {"a": .6, "b": .5}
    rows = bar_rows(_summary({"s": {"a": .6, "b": .5}}, single, dict(single)), Bar(min_gain=0.0))
    assert len(rows) == 1 and rows[0]["gap_share"] != rows[0]["gap_share"]  # NaN
    assert rows[0]["checks"]["gap_share"] is False and not rows[0]["passes"]


def test_references_beside_the_bar() -> None:
    """A random member (exact expectation) and the all-data single best, beside the bar: the
    worked example with random .65, .55, .70 (mean .6333) and an all-data single best of .66,
    .55, .72 (mean .6433). `good` (mean .6367) clears the bar against the fold's single best
    (.6) yet is only +.0033 above random and -.0067 below the all-data single best; a summary
    from before the all-data single best was recorded gives NaN there, not a figure."""
    single = {"a": .6, "b": .5, "c": .7}
    oracle = {"a": .7, "b": .6, "c": .8}
    summary = _summary({"good": {"a": .66, "b": .56, "c": .69}}, single, oracle)
    for d, rnd, overall in (("a", .65, .66), ("b", .55, .55), ("c", .70, .72)):
        summary["lodo"]["per_dataset"][d].update(expected_random_alc=rnd, all_data_single_best_alc=overall)
    (good,) = bar_rows(summary)
    assert good["passes"]
    assert good["vs_random"] == pytest.approx(0.01 / 3) and good["vs_all_data_single_best"] == pytest.approx(-0.02 / 3)
    for v in summary["lodo"]["per_dataset"].values():
        del v["all_data_single_best_alc"]
    (old,) = bar_rows(summary)
    assert old["vs_all_data_single_best"] != old["vs_all_data_single_best"] and old["passes"]  # NaN
