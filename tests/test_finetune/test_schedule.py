"""The anytime schedule: targets evenly spaced in transformed time, chunks inside the budget."""

from __future__ import annotations

import math

import pytest

from autodl.scoring import transform_time
from finetune.schedule import AnytimeSchedule, target_times


def test_targets_are_evenly_spaced_in_transformed_time():
    ts = target_times(60.0, 3.0, 12)
    assert len(ts) == 12 and ts[-1] == pytest.approx(60.0)
    tt = [transform_time(t, 60.0, 3.0) for t in ts]
    assert tt == pytest.approx([k / 12 for k in range(1, 13)])


def test_first_targets_come_early():
    ts = target_times(1200.0, 60.0, 12)
    assert ts[0] < 20.0 < ts[-1]


def test_chunk_ends_at_next_target_with_its_test_pass():
    s = AnytimeSchedule(60.0, 3.0, num_predictions=12, safety=0.0)
    steps = s.steps_for_chunk(elapsed=1.0, step_time=0.1, test_time=0.2)
    target = next(t for t in s.targets if t > 1.2)
    assert 1.0 + steps * 0.1 + 0.2 <= target + 1e-9
    assert 1.0 + (steps + 1) * 0.1 + 0.2 > target


def test_nothing_fits_at_the_end():
    s = AnytimeSchedule(60.0, 3.0, safety=1.0)
    assert s.steps_for_chunk(elapsed=58.5, step_time=0.5, test_time=0.2) == 0
    assert s.steps_for_chunk(elapsed=10.0, step_time=0.5, test_time=0.2) > 0


@pytest.mark.parametrize("elapsed", [0.0, 5.0, 30.0, 55.0])
@pytest.mark.parametrize("step_time", [0.01, 0.3, 2.0])
def test_a_chunk_never_runs_past_the_budget(elapsed, step_time):
    s = AnytimeSchedule(60.0, 3.0, safety=1.0)
    test_time = 0.5
    steps = s.steps_for_chunk(elapsed, step_time, test_time)
    if steps:
        assert elapsed + steps * step_time + test_time <= 60.0 - 1.0 + 1e-9


def test_bad_arguments():
    with pytest.raises(ValueError, match="num_predictions"):
        target_times(60, 3, 0)
    with pytest.raises(ValueError, match="step_time"):
        AnytimeSchedule(60, 3).steps_for_chunk(0, 0, 0)
    assert math.isclose(AnytimeSchedule(100, 5, safety=0.05).margin, 5.0)

