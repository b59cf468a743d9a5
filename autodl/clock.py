"""What "now" is during an ingestion: the wall clock, the process's CPU time, or a simulated one.

The ingestion loop and the learners read time only through a :class:`Clock`, and a
learner's decisions (how many steps fit, when to test) depend on nothing else.

* :class:`WallClock` is the challenge's ``time.time()``: what a user sees, and what
  other processes on a shared machine disturb.
* :class:`CpuClock` counts the CPU seconds of this process (all its threads): on a
  machine shared with other work it moves only while the evaluation itself computes.
  Run one evaluation per process and one PyTorch thread per evaluation, as offline
  workers do; then its seconds equal wall seconds on an idle machine.
* :class:`SimulatedClock` stands still until someone advances it: an offline evaluation
  advances it by what a measured timing table says each operation costs, so that its
  learning curve is the same, result for result, on every run and every machine load.

:class:`WatchedClock` wraps any of them and stops a model that runs far past its budget
in wall time: the next time the model reads the clock, :class:`ClockTimeout` is raised
(a ``BaseException``, so that a model's own ``except Exception`` does not swallow it).

**Charging work.** A model reports the cost of what it has just done through one call,
:meth:`Clock.charge`, whatever the clock: ``clock.charge("ridge fit", lambda: table.ridge_s(...))``.
Only the simulated clock acts on it: it prices the work (calls the function) and advances by
that many seconds; a real clock already moved while the work ran, so it neither calls the
function nor needs the table that prices it. Where a decision needs a duration before the
work is done, :meth:`Clock.estimate` chooses between the two sources the same way: the price
(exact on a simulated clock, which will be advanced by it) or what a real clock's past
measurements suggest. A model that charges and estimates through these two calls holds no
``if simulated`` of its own: simulated, CPU and wall clocks differ here only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

Cost = float | Callable[[], float]
"""What a piece of work costs, in seconds: a number, or a function that prices it (called
only by a clock that advances by prices, i.e. a simulated one)."""


@runtime_checkable
class Clock(Protocol):
    """What a model reads time through and charges its work to.

    ``now() -> float`` (seconds since the epoch), ``sleep(seconds)``, ``charge(what, cost)``
    (see the module docstring) and ``estimate(priced, measured)``; ``simulated`` tells
    whether the clock moves only by what it is charged.
    """

    simulated: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    def charge(self, what: str, cost: Cost) -> None: ...

    def estimate(self, priced: Callable[[], float], measured: Callable[[], float]) -> float: ...


class _MeasuredClock:
    """A clock that moves by itself (wall or CPU time): charges are already on it."""

    simulated = False

    def charge(self, what: str, cost: Cost) -> None:
        """Nothing to do: the work took its time on this clock while it ran. ``cost`` is not
        called (priced costs need a timing table, which a real clock never needs)."""

    def estimate(self, priced: Callable[[], float], measured: Callable[[], float]) -> float:
        """Seconds an operation is expected to take: ``measured()``, a figure from what this
        clock has shown so far (``priced`` is not called)."""
        return float(measured())


class WallClock(_MeasuredClock):
    """The real time, as the organizers' ingestion reads it."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))

    def __repr__(self) -> str:
        return "WallClock()"


class SimulatedClock:
    """A clock that moves only when advanced (or charged, or slept on).

    Parameters
    ----------
    start:
        The time it shows at first (seconds since the epoch).

    Attributes
    ----------
    charged:
        Seconds charged so far through :meth:`charge`, by what was charged.
    """

    simulated = True

    def __init__(self, start: float = 1_700_000_000.0):
        self._t = float(start)
        self._lock = threading.Lock()
        self.charged: dict[str, float] = {}

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

    def charge(self, what: str, cost: Cost) -> None:
        """Advance by the price of work just done: ``cost``, or ``cost()`` when it is a
        function; the seconds are added to ``charged[what]``."""
        seconds = cost() if callable(cost) else cost
        self.advance(seconds)
        with self._lock:
            self.charged[what] = self.charged.get(what, 0.0) + float(seconds)

    def estimate(self, priced: Callable[[], float], measured: Callable[[], float]) -> float:
        """Seconds an operation is expected to take: ``priced()``, exactly what it will be
        charged (``measured`` is not called)."""
        return float(priced())

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def __repr__(self) -> str:
        return f"SimulatedClock(now={self._t:.3f})"


class CpuClock(_MeasuredClock):
    """CPU seconds of this process (all threads), shown as seconds since the epoch.

    Sleeping costs no CPU, so :meth:`sleep` charges the seconds without waiting: a model
    that waits is charged what it asked to wait.

    Parameters
    ----------
    start:
        The time it shows at first (default: the wall time at construction).
    """

    def __init__(self, start: float | None = None):
        self._offset = (time.time() if start is None else float(start)) - time.process_time()
        self._lock = threading.Lock()

    def now(self) -> float:
        return self._offset + time.process_time()

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self._offset += max(0.0, seconds)

    def __repr__(self) -> str:
        return "CpuClock()"


class ClockTimeout(BaseException):
    """Raised by :class:`WatchedClock` when a model runs past its wall-time limit."""


class WatchedClock:
    """A clock that raises :class:`ClockTimeout` once ``wall_limit`` wall seconds (or
    ``cpu_limit`` CPU seconds of this process) have passed since :meth:`arm` (checked
    whenever the clock is read or advanced).

    The CPU limit is what a simulated-clock evaluation should be guarded by: a loaded
    machine stretches its wall time several-fold, but hardly its CPU time, so the guard
    stops a model gone astray without stopping a sound one because others share the cores.

    Everything else (``simulated``, ``advance``, ``charge``, ``estimate``) is the wrapped clock's.
    """

    def __init__(self, clock: Clock, wall_limit: float, cpu_limit: float | None = None):
        if wall_limit <= 0:
            raise ValueError(f"wall_limit={wall_limit}: expected seconds > 0")
        if cpu_limit is not None and cpu_limit <= 0:
            raise ValueError(f"cpu_limit={cpu_limit}: expected seconds > 0 or None")
        self.clock = clock
        self.wall_limit = float(wall_limit)
        self.cpu_limit = None if cpu_limit is None else float(cpu_limit)
        self._deadline: float | None = None
        self._cpu_deadline: float | None = None

    def arm(self) -> None:
        """Start counting: the limits run from now."""
        self._deadline = time.monotonic() + self.wall_limit
        if self.cpu_limit is not None:
            self._cpu_deadline = time.process_time() + self.cpu_limit

    @property
    def expired(self) -> bool:
        return self._reason() is not None

    def _reason(self) -> str | None:
        if self._deadline is not None and time.monotonic() > self._deadline:
            return f"the model ran past the wall-time limit of {self.wall_limit:g} s"
        if self._cpu_deadline is not None and time.process_time() > self._cpu_deadline:
            return f"the model ran past the CPU-time limit of {self.cpu_limit:g} s"
        return None

    def check(self) -> None:
        reason = self._reason()
        if reason is not None:
            raise ClockTimeout(reason)

    def now(self) -> float:
        self.check()
        return self.clock.now()

    def sleep(self, seconds: float) -> None:
        self.check()
        self.clock.sleep(seconds)

    def advance(self, seconds: float) -> float:
        self.check()
        return self.clock.advance(seconds)  # type: ignore[attr-defined]

    def charge(self, what: str, cost: Cost) -> None:
        self.check()
        self.clock.charge(what, cost)

    def estimate(self, priced: Callable[[], float], measured: Callable[[], float]) -> float:
        return self.clock.estimate(priced, measured)

    @property
    def simulated(self) -> bool:
        return bool(getattr(self.clock, "simulated", False))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.clock, name)

    def __repr__(self) -> str:
        cpu = "" if self.cpu_limit is None else f", cpu_limit={self.cpu_limit:g}"
        return f"WatchedClock({self.clock!r}, wall_limit={self.wall_limit:g}{cpu})"


CLOCKS = ("simulated", "cpu", "wall")
"""The clocks an evaluation can run on, by name."""
