"""The member-level view of a portfolio: what a selector chooses among is a configuration.

A portfolio file maps each training dataset to one configuration: in the seed paper's design
its own BOHB incumbent, in the greedy design (:mod:`portfolio.pool`) the portfolio *member*
that is best on it (``member`` names it). Either way several datasets share a configuration,
and what a selector's pick is worth is the configuration's ALC on the new dataset. This module
gives that view, :class:`MemberMatrix`: members (the distinct configurations) x datasets, mean
ALC over seeds, with each dataset's seed noise and each training dataset's member.

Where it comes from (a portfolio folder's pool matrix, its cost matrix, or a bare cost matrix) is
:mod:`selector.member_views`' business (:func:`selector.member_views.load_members`): this module
reads no portfolio, so that the submission (which loads fitted member selectors, and with them
this module) never reaches the offline build. :func:`trivial_members` (one member per row of a
cost matrix passed in) stays here: it needs the matrix's attributes, not :mod:`portfolio`.

Labels (:func:`member_labels`): for each dataset, the members within its seed noise of the
best one: a set, since a selector that picks any of them did as well as the data can tell.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from selector.base import SelectorError

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix  # an argument's type only: this module reads no portfolio

__all__ = ["MemberMatrix", "acceptable_members", "member_labels", "preferred_member", "seed_noise",
           "trivial_members"]

_TIE = 1e-12
SOURCES = ("pool", "cost-matrix", "rows")
"""Where a :class:`MemberMatrix` came from (see :mod:`selector.member_views`)."""


@dataclass
class MemberMatrix:
    """Members (rows) x datasets (columns): mean ALC over seeds.

    Attributes
    ----------
    members:
        Member names, in a fixed order (ties anywhere go to the earlier one).
    targets:
        Dataset names (the columns).
    alc:
        ``[len(members), len(targets)]``; NaN where not every seed is measured and ``ok``.
    noise:
        Dataset -> its seed noise (half the range of ALCs over seeds, averaged over
        configurations); 0 where unknown (one seed).
    member_of:
        Training dataset (a row of the cost matrix) -> its member.
    origins:
        Member -> where it comes from: None for a member that stands for the datasets assigned
        to it (a per-dataset incumbent, or a row); ``[]`` for a fixed configuration (available in
        every fold); ``[d, ...]`` for one found by searching on ``d`` (available in a fold only
        where ``d``'s group is not held out, or through a training dataset assigned to it).
    configs:
        Member -> its configuration, where known.
    source:
        One of :data:`SOURCES`.
    seeds:
        The seeds averaged over (empty where unknown).
    note:
        How it was made, for reports.
    """

    members: list[str]
    targets: list[str]
    alc: np.ndarray
    noise: dict[str, float] = field(default_factory=dict)
    member_of: dict[str, str] = field(default_factory=dict)
    origins: dict[str, list[str] | None] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    source: str = "rows"
    seeds: list[int] = field(default_factory=list)
    note: str = ""

    def __post_init__(self) -> None:
        self.alc = np.asarray(self.alc, dtype=np.float64).reshape(len(self.members), len(self.targets))
        if len(set(self.members)) != len(self.members):
            raise SelectorError(None, f"members named twice: {sorted(self.members)}")
        bad = {d: m for d, m in self.member_of.items() if m not in self.members}
        if bad:
            raise SelectorError(None, f"datasets assigned to members that are not rows: {bad}")

    # --- look-ups ------------------------------------------------------------------------------
    def value(self, member: str, target: str) -> float | None:
        """The member's mean ALC on ``target``; None where not measured (or not a row/column)."""
        if member not in self.members or target not in self.targets:
            return None
        v = self.alc[self.members.index(member), self.targets.index(target)]
        return None if np.isnan(v) else float(v)

    def noise_of(self, target: str) -> float:
        return float(self.noise.get(target, 0.0) or 0.0)

    def datasets_of(self, member: str) -> list[str]:
        """The training datasets assigned to ``member``."""
        return [d for d, m in self.member_of.items() if m == member]

    # --- sub-matrices --------------------------------------------------------------------------
    def restrict(self, members: Sequence[str], targets: Sequence[str]) -> MemberMatrix:
        """These rows and columns (columns not in the matrix are left out); ``member_of`` keeps the
        datasets among ``targets`` whose member is kept; ``noise`` only of the kept columns."""
        members = list(members)
        targets = [t for t in targets if t in self.targets]
        ri = [self.members.index(m) for m in members]
        ci = [self.targets.index(t) for t in targets]
        alc = self.alc[np.ix_(ri, ci)].copy() if ri and ci else np.full((len(ri), len(ci)), np.nan)
        keep = set(members)
        return MemberMatrix(members, targets, alc, {t: self.noise_of(t) for t in targets},
                            {d: m for d, m in self.member_of.items() if d in targets and m in keep},
                            {m: self.origins.get(m) for m in members},
                            {m: self.configs[m] for m in members if m in self.configs},
                            self.source, list(self.seeds), self.note)

    def mean_alc(self, targets: Sequence[str] | None = None) -> np.ndarray:
        """``[len(members)]`` each member's mean ALC over the columns among ``targets`` (default: all)
        where every member has a value; over each member's own values where no such column exists."""
        cols = [self.targets.index(t) for t in (targets if targets is not None else self.targets) if t in self.targets]
        a = self.alc[:, cols]
        if a.size == 0:
            return np.full(len(self.members), np.nan)
        complete = ~np.isnan(a).any(axis=0)
        if complete.any():
            return a[:, complete].mean(axis=1)
        with np.errstate(all="ignore"):
            return np.nanmean(a, axis=1)

    def summary(self) -> dict[str, Any]:
        """What reports record of it (plain values)."""
        return {"source": self.source, "note": self.note, "members": list(self.members), "seeds": list(self.seeds),
                "member_of": dict(self.member_of), "noise": {t: self.noise_of(t) for t in self.targets},
                "origins": {m: self.origins.get(m) for m in self.members},
                "assigned": {m: self.datasets_of(m) for m in self.members}}


# --- labels -----------------------------------------------------------------------------------
def acceptable_members(mm: MemberMatrix, target: str, candidates: Sequence[str] | None = None,
                       tolerance: float | None = None) -> list[str]:
    """The candidates (default: every member) within ``tolerance`` (default: the dataset's seed
    noise) of the best candidate's ALC on ``target``, in member order; empty where none has one."""
    cands = [m for m in (candidates if candidates is not None else mm.members) if mm.value(m, target) is not None]
    if not cands:
        return []
    tol = mm.noise_of(target) if tolerance is None else float(tolerance)
    vals = {m: mm.value(m, target) for m in cands}
    best = max(vals.values())
    order = {m: i for i, m in enumerate(mm.members)}
    return sorted((m for m, v in vals.items() if v >= best - tol - _TIE), key=lambda m: order.get(m, len(order)))


def member_labels(mm: MemberMatrix, targets: Sequence[str] | None = None,
                  candidates: Sequence[str] | None = None) -> dict[str, list[str]]:
    """Dataset -> its acceptable members (:func:`acceptable_members`): the best member, and every
    other within that dataset's seed noise of it (ties kept as ties)."""
    return {t: acceptable_members(mm, t, candidates) for t in (targets if targets is not None else mm.targets)}


def preferred_member(acceptable: Sequence[str], mean_alc: Mapping[str, float], order: Sequence[str]) -> str:
    """One label out of a set of acceptable members: the one with the best mean ALC (the single
    best wherever it is acceptable), ties to the earlier in ``order``."""
    if not acceptable:
        raise SelectorError(None, "no acceptable member to prefer")
    idx = {m: i for i, m in enumerate(order)}
    return min(acceptable, key=lambda m: (-float(mean_alc.get(m, -np.inf)), idx.get(m, len(idx))))


# --- the views --------------------------------------------------------------------------------
def trivial_members(cost: CostMatrix) -> MemberMatrix:
    """One member per row of the cost matrix, named as the row (the seed design as evaluated before
    members existed); no seed noise."""
    return MemberMatrix(list(cost.sources), list(cost.targets), np.asarray(cost.alc, dtype=np.float64).copy(),
                        {t: 0.0 for t in cost.targets}, {s: s for s in cost.sources},
                        dict.fromkeys(cost.sources), {}, "rows", list(cost.seeds),
                        "one member per row of the cost matrix (no portfolio file: configurations unknown)")


def seed_noise(alcs: np.ndarray) -> np.ndarray:
    """Per column of ``alcs`` ``[row, column, seed]``: the mean over the rows measured on every seed
    of half the range of their ALCs over seeds (:func:`portfolio.pool.analyse`'s definition);
    0 where fewer than 2 seeds or no such row."""
    out = np.zeros(alcs.shape[1])
    if alcs.ndim != 3 or alcs.shape[2] < 2:
        return out
    for j in range(alcs.shape[1]):
        col = alcs[:, j, :]
        ok = ~np.isnan(col).any(axis=1)
        if ok.any():
            out[j] = float(np.mean((col[ok].max(axis=1) - col[ok].min(axis=1)) / 2.0))
    return out
