"""``Clock.charge`` and ``Clock.estimate``: the one place simulated, CPU and wall clocks differ.

A simulated clock advances by what it is charged (pricing a lazy cost by calling it) and
estimates from prices; a real clock ignores charges (never calling a lazy cost, so that it
never needs the table that prices it) and estimates from measurements.
"""

from __future__ import annotations

import pytest

from autodl.clock import Clock, ClockTimeout, CpuClock, SimulatedClock, WallClock, WatchedClock


def _never() -> float:
    raise AssertionError("called")


def test_the_simulated_clock_advances_by_charges_and_tallies_them():
    clock = SimulatedClock(start=10.0)
    calls: list[int] = []

    def price() -> float:
        calls.append(1)
        return 0.25

    clock.charge("decode", 1.5)
    clock.charge("ridge fit", price)
    clock.charge("decode", 0.5)
    assert clock.now() == 12.25 and calls == [1]  # a lazy cost is priced once
    assert clock.charged == {"decode": 2.0, "ridge fit": 0.25}
    with pytest.raises(ValueError, match="only moves forward"):
        clock.charge("broken", -1.0)
    assert clock.estimate(lambda: 3.0, _never) == 3.0


@pytest.mark.parametrize("make", [WallClock, CpuClock])
def test_a_real_clock_never_prices_a_charge_and_estimates_from_measurements(make):
    clock = make()
    clock.charge("train step", _never)  # the work already took its time on this clock
    clock.charge("decode", 5.0)
    assert not clock.simulated
    assert clock.estimate(_never, lambda: 0.5) == 0.5


def test_the_watched_clock_forwards_charges_and_checks_its_limit():
    inner = SimulatedClock(start=0.0)
    clock = WatchedClock(inner, wall_limit=0.05)
    clock.charge("forward", lambda: 2.0)
    assert inner.now() == 2.0 and inner.charged == {"forward": 2.0}
    assert clock.estimate(lambda: 1.0, _never) == 1.0
    assert WatchedClock(WallClock(), 10).estimate(_never, lambda: 4.0) == 4.0
    clock.arm()
    clock._deadline = 0.0  # long past
    with pytest.raises(ClockTimeout):
        clock.charge("forward", 1.0)
    assert inner.now() == 2.0


@pytest.mark.parametrize("clock", [WallClock(), CpuClock(), SimulatedClock(), WatchedClock(WallClock(), 10)])
def test_every_clock_meets_the_protocol(clock):
    assert isinstance(clock, Clock)
