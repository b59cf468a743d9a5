"""How well :func:`portfolio.pool.matrix_seconds` predicts the time of a cell it has not seen.

The pool's budget (``--pool-hours``) leaves out searched candidates whose cells would not fit,
and their cost is estimated from a single trial on their own dataset: the candidate's time there
relative to the fixed configurations' (the dataset's scale), times each other dataset's scale.
This checks that model where the truth is known: for every fixed configuration of the build's
warm start and every ordered pair of datasets (A, B) on which it ran at the full budget, predict
its time on B from its time on A (the scales computed without it) and compare with what it took.

Usage::

    python scripts/pool_cost_check.py portfolio/timed-build/runs

prints the number of pairs, the median and the mean absolute log error of the prediction (a
multiplicative error: 0.18 is a factor of 1.2) and the worst ratios; the same for the constant
model (the time on A taken as the time on B) for comparison.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portfolio.incumbents import find_runs
from portfolio.pool import digest, fixed_candidates, geomean, trial_cells


def main(runs_dir: str, warm_start: str = "grid-core", min_trials: int = 20) -> int:
    runs = [r.folder for r in find_runs(runs_dir) if len(r.trials) >= min_trials]
    fixed = {digest(c.config): c.name for c in fixed_candidates(warm_start)}
    seconds = {(row["config_digest"], row["target"]): float(row["wall_seconds"])
               for row in trial_cells(runs, 0) if row.get("wall_seconds")}
    datasets = sorted({d for _, d in seconds})

    def scale(dataset: str, without: str) -> float:
        return geomean([v for (g, d), v in seconds.items() if d == dataset and g in fixed and g != without])

    errors: dict[str, list[float]] = {"scaled (matrix_seconds)": [], "constant": []}
    for g in fixed:
        for a, b in itertools.permutations(datasets, 2):
            if (g, a) not in seconds or (g, b) not in seconds:
                continue
            truth = seconds[(g, b)]
            errors["scaled (matrix_seconds)"].append(math.log(seconds[(g, a)] / scale(a, g) * scale(b, g) / truth))
            errors["constant"].append(math.log(seconds[(g, a)] / truth))
    print(f"{runs_dir}: {len(runs)} complete runs, {len(fixed)} fixed configurations, "
          f"{len(errors['constant'])} ordered pairs")
    for name, e in errors.items():
        if not e:
            continue
        e.sort()
        mean_abs = sum(abs(x) for x in e) / len(e)
        print(f"  {name}: median log error {e[len(e) // 2]:+.2f}, mean |log error| {mean_abs:.2f} "
              f"(a factor of {math.exp(mean_abs):.2f}); worst ratios {math.exp(e[0]):.2f} and {math.exp(e[-1]):.2f}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: python scripts/pool_cost_check.py RUNS_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1]))
