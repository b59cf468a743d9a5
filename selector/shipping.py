"""Fitting the selector to ship: once, for ``autodl-meta selector fit`` and the default build.

:func:`fit_for_shipping` fits a selector on every dataset of a features folder that has an
incumbent in the portfolio's cost matrix (a shipped selector can only name datasets with one),
whatever the kind of selector: one that needs only the meta-features, one that also needs the
cost matrix, or one whose outputs are the portfolio's members (:mod:`selector.member_selectors`,
fitted on the folder's member view, :func:`selector.member_views.load_members`; the submission looks
the member it names up in ``portfolio.json``). The caller saves it with the card fields it adds
(:meth:`FitResult.card_fields` and its own: command, date, role...).

:func:`read_summary` and :func:`lodo_scores` give what a fitted selector's card records of the
comparison it was chosen in (``summary.json`` of :func:`selector.report.compare`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metafeatures.features import DatasetFeatures
from selector.base import Selector, SelectorError
from selector.member_views import ReportError, load_cost, load_members
from selector.report import SUMMARY_JSON, load_datasets
from selector.specs import SelectorSpec, outputs_members

logger = logging.getLogger(__name__)

REFERENCE_FIGURES = ("oracle_mean_alc", "single_best_mean_alc", "expected_random_alc")
"""The comparison's reference figures a shipped selector's card keeps beside its own."""


@dataclass
class FitResult:
    """A selector fitted for shipping and what it was fitted on.

    Attributes
    ----------
    selector:
        The fitted selector.
    datasets:
        The training datasets it was fitted on.
    left_out:
        The datasets of the features without an incumbent in the cost matrix (never worth naming).
    without_member:
        For a selector whose outputs are members: the datasets with an incumbent that the member
        view assigns to no member (left out of its fit too); empty otherwise.
    features, portfolio:
        What it was fitted from (``features`` None where datasets were passed, not a folder).
    cost_matrix, protocol, clock:
        The cost source's path, and the protocol and clock it was measured under (where known).
    """

    selector: Selector
    datasets: list[str]
    left_out: list[str] = field(default_factory=list)
    without_member: list[str] = field(default_factory=list)
    features: str | None = None
    portfolio: str | None = None
    cost_matrix: str | None = None
    protocol: dict[str, Any] | None = None
    clock: str | None = None

    @property
    def outputs_members(self) -> bool:
        """Whether the selector names portfolio members rather than training datasets."""
        return outputs_members(self.selector)

    def card_fields(self) -> dict[str, Any]:
        """What the selector's card records of its inputs (``Selector.save(extra=...)``)."""
        return {"features": self.features, "portfolio": self.portfolio, "cost_matrix": self.cost_matrix,
                "protocol": self.protocol, "clock": self.clock}


def fit_for_shipping(name: str, params: Mapping[str, Any] | None,
                     features: str | Path | Sequence[DatasetFeatures], portfolio: Any, *,
                     seed: int = 0, names: Sequence[str] | None = None) -> FitResult:
    """Fit selector ``name`` on every dataset of ``features`` with an incumbent in ``portfolio``.

    Parameters
    ----------
    name, params:
        The registry name and hyperparameters (:func:`selector.registry.make_selector`).
    features:
        A folder of features (:func:`metafeatures.features.load_features_folder`) or the datasets.
    portfolio:
        A portfolio folder, its ``cost_matrix.csv`` or a cost matrix (:func:`selector.member_views.load_cost`);
        a selector whose outputs are members is fitted on the folder's member view.
    seed:
        The seed of a selector that takes one, unless ``params`` sets it.
    names:
        Only these datasets of ``features`` (a shared features folder may hold others).

    Returns
    -------
    FitResult

    Raises
    ------
    SelectorError
        No dataset of ``features`` has an incumbent in the cost matrix (or, for a member
        selector, none is assigned to a member); the selector cannot be made or fitted.
    """
    params = dict(params or {})
    datasets, folder = load_datasets(features, names)
    src = load_cost(portfolio)
    with_incumbent = [d for d in datasets if d.name in src.matrix.sources]
    left_out = [d.name for d in datasets if d.name not in src.matrix.sources]
    if not with_incumbent:
        raise SelectorError(folder, "no dataset of these features has an incumbent in the cost matrix "
                                    f"({src.path}); a shipped selector can only name datasets with one",
                            field="features")
    sel = SelectorSpec(name, params).make(seed=seed)
    without_member: list[str] = []
    if outputs_members(sel):
        mm = load_members(portfolio, src.matrix)
        without_member = [d.name for d in with_incumbent if d.name not in mm.member_of]
        with_incumbent = [d for d in with_incumbent if d.name in mm.member_of]
        if not with_incumbent:
            raise SelectorError(folder, f"{name}: no dataset of these features is assigned to a member of the "
                                        f"portfolio ({src.folder}); a member selector needs at least one",
                                field="features")
        sel.fit(with_incumbent, src.matrix, members=mm.restrict(mm.members, [d.name for d in with_incumbent]))
    elif sel.needs_cost:
        sel.fit(with_incumbent, src.matrix)
    else:
        sel.fit(with_incumbent)
    logger.info("%s fitted on %d datasets (left out, no incumbent: %s; no member: %s)", name, len(with_incumbent),
                ", ".join(left_out) or "none", ", ".join(without_member) or "none")
    return FitResult(sel, [d.name for d in with_incumbent], left_out, without_member, folder, src.folder, src.path,
                     src.protocol, src.clock)


def read_summary(path: str | Path) -> tuple[dict[str, Any], Path]:
    """A comparison's ``summary.json`` (``path``: the file or the report folder) and its path.

    Raises
    ------
    ReportError
        The file is missing or not JSON.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SUMMARY_JSON
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise ReportError(path, "not found; expected the summary.json of 'autodl-meta selector compare'",
                          field="summary") from None
    except json.JSONDecodeError as exc:
        raise ReportError(path, f"not valid JSON ({exc})", field="summary") from None
    if not isinstance(summary, dict):
        raise ReportError(path, f"holds a {type(summary).__name__}; expected the object of a comparison's "
                                "summary", field="summary")
    return summary, path


def lodo_scores(summary: Mapping[str, Any], label: str, summary_path: str | Path) -> dict[str, Any]:
    """What a fitted selector's card records of the comparison: the leave-one-dataset-out figures
    of ``label``, the reference figures, its fallback, the settings and whether it was the choice.

    Raises
    ------
    ReportError
        The summary (at ``summary_path``) has no figures of ``label``.
    """
    lodo = summary.get("lodo") or {}
    per = lodo.get("per_selector") or {}
    if label not in per:
        raise ReportError(summary_path, f"has no leave-one-dataset-out figures of {label!r} (it has {sorted(per)})",
                          field="lodo.per_selector")
    choice = summary.get("choice") or {}
    return {"summary": str(summary_path), "leave_one_dataset_out": per[label],
            "reference": {k: lodo.get(k) for k in REFERENCE_FIGURES},
            "fallback": (summary.get("fallback") or {}).get(label), "settings": summary.get("settings"),
            "chosen": choice.get("selector") == label, "choice": choice.get("selector"),
            "compared_on": summary.get("date")}
