"""When to predict: the anytime schedule of test calls under the ALC.

The ALC integrates the learning curve over transformed time
``t~(t) = log(1 + t/t0) / log(1 + T/t0)``, so a prediction is worth most early. The rule
used here spaces the test calls evenly in transformed time: the k-th of K target times is

    t_k = t0 * ((1 + T/t0) ** (k/K) - 1),   k = 1 .. K

(with T=60, t0=3 and K=12: 0.9, 2.1, 3.6, 5.6, ... 60 s). Before each training chunk the
learner asks for the next target that still lies ahead, and trains until the expected
end of that chunk's test pass meets it. A chunk never starts unless its training, its
test pass and a safety margin fit in what remains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def target_times(time_budget: float, t0: float, num_predictions: int) -> list[float]:
    """The ``num_predictions`` target times (seconds), evenly spaced in transformed time."""
    if num_predictions < 1:
        raise ValueError(f"num_predictions={num_predictions}: expected >= 1")
    base = 1.0 + time_budget / t0
    return [t0 * (base ** (k / num_predictions) - 1.0) for k in range(1, num_predictions + 1)]


@dataclass
class AnytimeSchedule:
    """Plans training chunks against the budget.

    Parameters
    ----------
    time_budget, t0:
        The protocol's T and t0 (seconds).
    num_predictions:
        K, the number of evenly spaced target times.
    safety:
        Seconds (or, when below 1, the fraction of T) kept free at the end of the budget.
    slack:
        Factor on the estimated step and test times when checking what still fits before
        the end of the budget (measured times drift on a shared machine).
    """

    time_budget: float
    t0: float
    num_predictions: int = 12
    safety: float = 0.03
    slack: float = 1.25

    def __post_init__(self) -> None:
        self.targets = target_times(self.time_budget, self.t0, self.num_predictions)

    @property
    def margin(self) -> float:
        return self.safety * self.time_budget if self.safety < 1 else self.safety

    def next_target(self, elapsed: float, test_time: float) -> float:
        """The first target time that a test pass started now could still meet."""
        for t in self.targets:
            if t > elapsed + test_time:
                return t
        return self.targets[-1]

    def steps_for_chunk(self, elapsed: float, step_time: float, test_time: float,
                        min_steps: int = 1) -> int:
        """How many training steps to take now (0: nothing more fits in the budget).

        The chunk ends so that its test pass finishes at the next target time, and never
        later than ``T - margin``.
        """
        if step_time <= 0:
            raise ValueError(f"step_time={step_time}: expected seconds > 0")
        latest_end = self.latest_training_end(test_time)
        if elapsed + min_steps * self.slack * step_time > latest_end:
            return 0
        target = min(self.next_target(elapsed, test_time) - test_time, latest_end)
        steps = math.floor((target - elapsed) / step_time)
        cap = math.floor((latest_end - elapsed) / (self.slack * step_time))
        return max(min_steps, min(steps, cap))

    def latest_training_end(self, test_time: float) -> float:
        """The elapsed time after which training must stop to leave room for a test pass."""
        return self.time_budget - self.margin - self.slack * test_time

    def fits(self, elapsed: float, seconds: float) -> bool:
        """Whether work estimated at ``seconds`` (times the slack) started now ends before ``T - margin``."""
        return elapsed + self.slack * seconds <= self.time_budget - self.margin
