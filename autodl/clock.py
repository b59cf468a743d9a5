"""What "now" is during an ingestion: the wall clock, or a simulated one.

The ingestion loop and the learners read time only through a :class:`Clock`. The
:class:`WallClock` is the challenge's ``time.time()``. The :class:`SimulatedClock` stands
still until someone advances it: an offline evaluation advances it by the seconds a
measured timing table says a training step or a test pass takes, so that its learning
curve is reproducible and independent of the load of a shared machine.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol, runtime_checkable


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now() -> float`` (seconds since the epoch) and ``sleep(seconds)``."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class WallClock:
    """The real time, as the organizers' ingestion reads it."""

    simulated = False

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "WallClock()"


class SimulatedClock:
    """A clock that moves only when advanced.

    Parameters
    ----------
    start:
        The time it shows at first (seconds since the epoch).
    """

    simulated = True

    def __init__(self, start: float = 1_700_000_000.0):
        self._t = float(start)
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._t

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` (>= 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"seconds={seconds}: a clock only moves forward")
        with self._lock:
            self._t += float(seconds)
            return self._t

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"SimulatedClock(now={self._t:.3f})"
