"""Member views built from a portfolio folder: where a :class:`~selector.members.MemberMatrix` comes from.

:mod:`selector.members` holds what a fitted selector needs at run time (the matrix, its labels)
and reads no portfolio; this module builds the view from what the offline build left (a
portfolio folder, its pool, its cost matrix) with :mod:`portfolio`'s functions, so it runs
offline only (comparison reports, leave-one-dataset-out, shipping), never in the submission.

Where it comes from (:func:`load_members`):

- ``<portfolio>/pool/cells.jsonl`` (a greedy build's pool matrix, every candidate on every
  dataset over 2 or more seeds): the rows are the portfolio's members (the greedy build's
  ``provenance.members``, else the ``member`` of its incumbents); a dataset's seed noise is
  :func:`portfolio.pool.analyse`'s: the mean over the pool's candidates of half the range of
  their ALCs over seeds;
- else the cost matrix itself, its rows grouped by configuration (the portfolio's ``member``
  where it names one, else the configuration's digest): a member's ALC on a dataset is the
  mean over its rows (rows of one configuration share their cells under the simulated clock,
  so they agree); seed noise from the folder's ``cells.jsonl`` where it holds 2 or more seeds,
  else 0 (one seed: only equal ALCs tie);
- a bare cost matrix: one member per row (:func:`selector.members.trivial_members`), which is
  the evaluation of the seed design as it was before members existed.

:func:`member_cost`: a member view as a :class:`~portfolio.cost_matrix.CostMatrix` whose rows are
the members. :func:`load_cost`: a portfolio folder's cost matrix (or the one its cells give while
it is being built) and what it was measured under.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import Status, read_jsonl
from selector.base import SelectorError
from selector.members import MemberMatrix, seed_noise, trivial_members

if TYPE_CHECKING:
    from portfolio.cost_matrix import CostMatrix
    from portfolio.incumbents import Portfolio

logger = logging.getLogger(__name__)

__all__ = ["CostSource", "ReportError", "load_cost", "load_members", "member_cost", "members_from_cells", "members_from_cost", "members_from_pool"]


class ReportError(AutoDLError):
    """A comparison that cannot be made or a report folder that cannot be read."""


@dataclass
class CostSource:
    """A cost matrix and what it was measured under (from the portfolio folder, where known)."""

    matrix: Any
    path: str | None = None
    folder: str | None = None
    protocol: dict[str, Any] | None = None
    clock: str | None = None
    note: str | None = None


def load_cost(source: Any) -> CostSource:
    """The cost matrix of a portfolio folder, a ``cost_matrix.csv``, or a :class:`CostMatrix`.

    A folder's ``cost_matrix.csv`` is read; where there is none yet (a portfolio still being
    built), the matrix is made from its ``cells.jsonl`` (the cells finished so far, averaged
    over the seeds present). The protocol and clock come from the folder's ``portfolio.json``.
    """
    from portfolio.cost_matrix import CELLS_FILE, CSV_FILE, CostMatrix, matrix_from_cells
    from portfolio.incumbents import PORTFOLIO_FILE, Portfolio

    if isinstance(source, CostMatrix):
        return CostSource(source)
    path = Path(source)
    if not path.exists():
        raise ReportError(path, f"not found; expected a portfolio folder (holding {CSV_FILE}) or a {CSV_FILE}",
                          field="portfolio")
    folder = path if path.is_dir() else path.parent
    protocol = clock = note = None
    if (folder / PORTFOLIO_FILE).is_file():
        portfolio = Portfolio.load(folder / PORTFOLIO_FILE)
        protocol, clock = dict(portfolio.protocol), portfolio.clock
    else:
        portfolio = None
    csv_path = path if path.is_file() else folder / CSV_FILE
    if csv_path.is_file():
        matrix = CostMatrix.read_csv(csv_path)
    elif (folder / CELLS_FILE).is_file() and portfolio is not None:
        cells = read_jsonl(folder / CELLS_FILE)
        targets = list(dict.fromkeys(c["target"] for c in cells))
        seeds = sorted({int(c["seed"]) for c in cells})
        matrix = matrix_from_cells(cells, portfolio.datasets, targets, seeds)
        csv_path = folder / CELLS_FILE
        note = (f"made from {CELLS_FILE} ({sum(1 for row in matrix.status for s in row if s == Status.OK)} of "
                f"{len(matrix.sources) * len(matrix.targets)} cells measured): the portfolio's cost_matrix.csv "
                "is not written yet")
        logger.warning("%s: %s", folder, note)
    else:
        raise ReportError(path, f"no {CSV_FILE} (nor {CELLS_FILE} with {PORTFOLIO_FILE}); expected a portfolio "
                                "folder written by 'autodl-meta portfolio cost-matrix' or 'portfolio build', or a "
                                "cost_matrix.csv", field="portfolio")
    return CostSource(matrix, str(csv_path), str(source), protocol, clock, note)


def member_cost(mm: MemberMatrix) -> CostMatrix:
    """The member view as a :class:`~portfolio.cost_matrix.CostMatrix` whose rows are the members."""
    from portfolio.cost_matrix import CostMatrix

    return CostMatrix(list(mm.members), list(mm.targets), mm.alc.copy(),
                      CostMatrix.value_statuses(mm.alc), list(mm.seeds))


def _origins_from_name(name: str) -> list[str] | None:
    """A pool candidate's origin from its name alone (``fixed:...`` -> ``[]``, ``searched:D#k`` -> ``[D]``)."""
    if name.startswith("fixed:"):
        return []
    m = re.match(r"searched:(.+?)(#\d+)?$", name)
    return [m.group(1)] if m else None


def _member_origins(portfolio: Portfolio | None, names: Sequence[str],
                    pool_candidates: Sequence[Any] = ()) -> dict[str, list[str] | None]:
    """Member -> origins from the pool's candidates, the greedy portfolio's provenance, else the name."""
    known: dict[str, dict[str, Any]] = {}
    for c in pool_candidates:
        known[c.name] = dict(c.origin)
    for c in ((portfolio.provenance or {}).get("members") or []) if portfolio is not None else []:
        if isinstance(c, Mapping) and isinstance(c.get("name"), str):
            known.setdefault(c["name"], dict(c.get("origin") or {}))
    out: dict[str, list[str] | None] = {}
    for n in names:
        o = known.get(n)
        if o is not None and o.get("kind") == "fixed":
            out[n] = []
        elif o is not None and o.get("kind") == "searched" and o.get("dataset"):
            out[n] = [str(o["dataset"])]
        else:
            out[n] = _origins_from_name(n)
    return out


def members_from_cells(cells: Sequence[Mapping[str, Any]], row_member: Mapping[str, str], members: Sequence[str],
                       targets: Sequence[str], seeds: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """``(alc, noise)`` of ``members`` x ``targets`` from cost-matrix cells whose ``source`` is a row
    (mapped to its member by ``row_member``) over ``seeds``: a member's ALC on a seed is the mean of
    its rows' (equal where rows share the configuration), its mean ALC the mean over seeds where
    every seed is ``ok`` (NaN otherwise); noise per target as :func:`seed_noise`."""
    mi = {m: i for i, m in enumerate(members)}
    ti = {t: j for j, t in enumerate(targets)}
    ki = {int(s): k for k, s in enumerate(seeds)}
    last: dict[tuple[str, str, int], Mapping[str, Any]] = {}
    for r in cells:
        last[(str(r.get("source")), str(r.get("target")), int(r.get("seed", -1)))] = r
    sums = np.zeros((len(members), len(targets), len(seeds)))
    counts = np.zeros_like(sums)
    bad = np.zeros_like(sums, dtype=bool)
    for (src, tgt, seed), r in last.items():
        m = row_member.get(src)
        i, j, k = mi.get(m) if m is not None else None, ti.get(tgt), ki.get(seed)
        if i is None or j is None or k is None:
            continue
        if r.get("status") == Status.OK and r.get("alc") is not None:
            sums[i, j, k] += float(r["alc"])
            counts[i, j, k] += 1
        else:
            bad[i, j, k] = True
    with np.errstate(all="ignore"):
        per_seed = np.where((counts > 0) & ~bad, sums / np.maximum(counts, 1), np.nan)
    alc = np.where(np.isnan(per_seed).any(axis=2), np.nan, per_seed.mean(axis=2)) if len(seeds) else \
        np.full((len(members), len(targets)), np.nan)
    return alc, seed_noise(per_seed)


def members_from_cost(cost: CostMatrix, portfolio: Portfolio | None = None,
                      cells: Sequence[Mapping[str, Any]] | None = None) -> MemberMatrix:
    """The cost matrix's rows grouped by configuration (see the module docstring).

    A row whose dataset the portfolio names a ``member`` for belongs to that member; other rows to
    the member of their configuration's digest, named ``incumbent:<first row>`` (the order of the
    cost matrix's rows). Without ``portfolio``: :func:`trivial_members`. ``cells`` (the cost
    matrix's ``cells.jsonl`` rows) give the seed noise where they hold 2 or more seeds.
    """
    from portfolio.cost_matrix import config_digest

    if portfolio is None:
        return trivial_members(cost)
    incs = {inc.dataset: inc for inc in portfolio.incumbents}
    key_of: dict[str, tuple[str, str]] = {}
    for row in cost.sources:
        inc = incs.get(row)
        if inc is None:
            key_of[row] = ("row", row)
        elif inc.member:
            key_of[row] = ("member", inc.member)
        else:
            key_of[row] = ("config", config_digest(inc.config))
    groups: dict[tuple[str, str], list[str]] = {}
    for row in cost.sources:
        groups.setdefault(key_of[row], []).append(row)
    names: dict[tuple[str, str], str] = {}
    for key, rows in groups.items():  # a greedy member by its name, a configuration by its first row
        names[key] = key[1] if key[0] == "member" else rows[0] if key[0] == "row" else f"incumbent:{rows[0]}"
    members = [names[k] for k in groups]
    row_member = {row: names[key_of[row]] for row in cost.sources}
    a = np.asarray(cost.alc, dtype=np.float64)
    alc = np.full((len(members), len(cost.targets)), np.nan)
    for i, (key, rows) in enumerate(groups.items()):
        block = a[[cost.sources.index(r) for r in rows]]
        with np.errstate(all="ignore"):
            alc[i] = np.nanmean(block, axis=0) if len(rows) > 1 else block[0]
        if len(rows) > 1:
            spread = np.nanmax(block, axis=0) - np.nanmin(block, axis=0) if not np.isnan(block).all() else np.zeros(1)
            if np.nanmax(np.where(np.isnan(spread), 0.0, spread)) > 1e-6:
                logger.warning("member %s: its rows %s (one configuration) differ by up to %.4f ALC on a dataset; "
                               "its ALC is their mean", names[key], rows, float(np.nanmax(spread)))
    noise = {t: 0.0 for t in cost.targets}
    seeds = list(cost.seeds)
    cell_seeds = sorted({int(c["seed"]) for c in cells or [] if "seed" in c})
    if cells and len(cell_seeds) >= 2:
        _, nz = members_from_cells(cells, row_member, members, cost.targets, cell_seeds)
        noise = {t: float(v) for t, v in zip(cost.targets, nz, strict=True)}
        seeds = cell_seeds
    configs = {names[k]: dict(incs[rows[0]].config) for k, rows in groups.items() if rows[0] in incs}
    origins: dict[str, list[str] | None] = {}
    greedy = {names[k] for k in groups if k[0] == "member"}
    from_greedy = _member_origins(portfolio, sorted(greedy))
    for m in members:
        origins[m] = from_greedy.get(m) if m in greedy else None
    distinct = len(members)
    note = (f"{len(cost.sources)} rows of the cost matrix grouped by configuration: {distinct} members"
            + ("" if len(cell_seeds) >= 2 else "; one seed: no seed noise, only equal ALCs tie"))
    return MemberMatrix(members, list(cost.targets), alc, noise, row_member, origins, configs, "cost-matrix",
                        seeds, note)


def members_from_pool(pool_folder: str | Path, portfolio: Portfolio, cost: CostMatrix | None = None) -> MemberMatrix:
    """The members of a greedy portfolio on every dataset of its pool's matrix (``pool/cells.jsonl``).

    Rows: ``portfolio.provenance["members"]`` (the greedy build's), else the distinct ``member`` of
    its incumbents; the training datasets (incumbents, and rows of ``cost``) map to their ``member``
    (a row without one to the member of the same configuration). Seed noise over every candidate
    of the pool (:func:`seed_noise`).
    """
    from autodl.records import read_jsonl
    from portfolio.cost_matrix import CELLS_FILE, config_digest
    from portfolio.pool import POOL_FILE, Candidate, load_pool

    folder = Path(pool_folder)
    cells = read_jsonl(folder / CELLS_FILE)
    if not cells:
        raise SelectorError(folder / CELLS_FILE, "no cells: the pool's matrix is not computed yet")
    pool: list[Candidate] = load_pool(folder / POOL_FILE) if (folder / POOL_FILE).is_file() else []
    declared = [c["name"] for c in ((portfolio.provenance or {}).get("members") or [])
                if isinstance(c, Mapping) and isinstance(c.get("name"), str)]
    assigned = list(dict.fromkeys(inc.member for inc in portfolio.incumbents if inc.member))
    members = list(dict.fromkeys(declared + assigned))
    if not members:
        raise SelectorError(folder, "the portfolio names no member (not a greedy portfolio): use its cost matrix")
    targets = list(dict.fromkeys(str(c["target"]) for c in cells))
    seeds = sorted({int(c["seed"]) for c in cells})
    candidates = list(dict.fromkeys([c.name for c in pool] + [str(c["source"]) for c in cells]))
    alc_all, noise = members_from_cells(cells, {c: c for c in candidates}, candidates, targets, seeds)
    missing = [m for m in members if m not in candidates]
    if missing:
        raise SelectorError(folder / CELLS_FILE, f"no cells of the members {missing}")
    alc = alc_all[[candidates.index(m) for m in members]]
    by_digest: dict[str, str] = {}
    configs: dict[str, dict[str, Any]] = {}
    for c in pool:
        if c.name in members:
            configs[c.name] = dict(c.config)
            by_digest[config_digest(c.config)] = c.name
    for c in (portfolio.provenance or {}).get("members") or []:
        if isinstance(c, Mapping) and c.get("name") in members and isinstance(c.get("config"), Mapping):
            configs.setdefault(c["name"], dict(c["config"]))
            by_digest.setdefault(config_digest(c["config"]), c["name"])
    member_of: dict[str, str] = {}
    for inc in portfolio.incumbents:
        m = inc.member if inc.member in members else by_digest.get(config_digest(inc.config))
        if m is None:
            logger.warning("%s: its configuration is no member of the portfolio; it is left out of the member view",
                           inc.dataset)
            continue
        member_of[inc.dataset] = m
    for row in (cost.sources if cost is not None else []):
        if row not in member_of:
            logger.warning("cost-matrix row %s has no member in the portfolio; it is left out of the member view", row)
    origins = _member_origins(portfolio, members, pool)
    note = (f"the pool's matrix ({len(candidates)} candidates x {len(targets)} datasets, seeds {seeds}): "
            f"{len(members)} members; seed noise over the pool's candidates")
    return MemberMatrix(members, targets, alc, {t: float(v) for t, v in zip(targets, noise, strict=True)},
                        member_of, origins, configs, "pool", seeds, note)


def load_members(source: Any, cost: CostMatrix | None = None) -> MemberMatrix:
    """The member view of a portfolio folder (``source``: the folder, its ``cost_matrix.csv``, or a
    :class:`~portfolio.cost_matrix.CostMatrix`), as the module docstring says: the pool's cells
    where ``<folder>/pool/cells.jsonl`` exists, else ``cost``'s rows grouped by the configurations
    of ``<folder>/portfolio.json``, else one member per row. ``cost``: the matrix already read
    (else read from the folder)."""
    from portfolio.cost_matrix import CELLS_FILE, CSV_FILE, CostMatrix
    from portfolio.incumbents import PORTFOLIO_FILE, Portfolio
    from portfolio.pool import POOL_DIR

    if isinstance(source, CostMatrix):
        return trivial_members(source)
    path = Path(source)
    folder = path if path.is_dir() else path.parent
    if cost is None:
        if (folder / CSV_FILE).is_file():
            cost = CostMatrix.read_csv(folder / CSV_FILE)
        else:
            cost = load_cost(folder).matrix
    portfolio = Portfolio.load(folder / PORTFOLIO_FILE) if (folder / PORTFOLIO_FILE).is_file() else None
    if portfolio is None:
        return trivial_members(cost)
    pool_cells = folder / POOL_DIR / CELLS_FILE
    if pool_cells.is_file() and any(inc.member for inc in portfolio.incumbents):
        try:
            return members_from_pool(folder / POOL_DIR, portfolio, cost)
        except SelectorError as exc:
            logger.warning("the pool's cells cannot give the members (%s); grouping the cost matrix's rows instead",
                           exc)
    cells = None
    if (folder / CELLS_FILE).is_file():
        cells = read_jsonl(folder / CELLS_FILE)
    return members_from_cost(cost, portfolio, cells)
