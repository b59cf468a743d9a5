"""The fine-tuning learner's time budget, read from its clock.

The ingestion tells the learner at each call how many seconds of the budget remain; the learner
anchors that figure to the clock's present time (:meth:`Budget.start_call`) and reads the
seconds spent from there (:meth:`Budget.elapsed`), so that everything it plans with comes from
its clock (see :mod:`finetune.learner`).
"""

from __future__ import annotations

from autodl.clock import Clock


class Budget:
    """The budget of one learner: its total seconds (:attr:`total`, set by the first ``train``
    call) and the anchor of the current call."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.total: float | None = None
        self._anchor: tuple[float, float] = (0.0, 0.0)

    def start_call(self, remaining: float) -> None:
        """Anchor the budget: ``remaining`` seconds were left at the clock's present time."""
        self._anchor = (self.clock.now(), remaining)

    def elapsed(self) -> float:
        """Seconds of the budget spent so far (from the anchor of the current call)."""
        start, remaining = self._anchor
        return self.total - (remaining - (self.clock.now() - start))
