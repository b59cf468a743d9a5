"""Ship another of a portfolio folder's fitted selectors, with a hedging setting, by a verdict.

A build (:mod:`pipeline.default_build`) fits two selectors: its leave-one-dataset-out choice
into ``selector/`` and the runner-up into ``selector-runner-up/``. The held-out benchmark
(:mod:`pipeline.heldout`) may then find that the runner-up, or a hedged submission, is the one
that is not worse than the single best on data no build saw. :func:`ship` makes that the shipped
submission without fitting anything again: the two folders change places (their cards' ``role``
and ``scores.chosen`` follow, each card gains ``shipped``: why, and from which folder), the
settings go into ``submission.json``, and the manifest records the command, the new roles and
the checksums of every file again, so that the submission's integrity checks hold.

Nothing is left half-done by an error before the swap (a missing folder, a settings value the
submission refuses); the swap itself is two renames through a temporary name beside them.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.records import utc_now, write_json_atomic

logger = logging.getLogger(__name__)

CHOICE, RUNNER_UP = "selector", "selector-runner-up"


def _card(folder: Path) -> tuple[Path, dict[str, Any]]:
    path = folder / "selector.json"
    try:
        return path, json.loads(path.read_text())
    except FileNotFoundError:
        raise AutoDLError(path, "not found: expected a fitted selector's card (autodl-meta selector fit)") from None
    except json.JSONDecodeError as exc:
        raise AutoDLError(path, f"is not JSON ({exc.msg}, line {exc.lineno})") from None


def ship(portfolio: str | Path, *, swap: bool, settings: Mapping[str, Any] | None = None, reason: str,
         command: str = "") -> dict[str, Any]:
    """Make ``portfolio`` ship its runner-up selector (``swap``) and/or ``settings``.

    Parameters
    ----------
    portfolio
        A built portfolio folder (``manifest.json``, ``selector/``, ``selector-runner-up/``).
    swap
        Exchange ``selector/`` and ``selector-runner-up/``.
    settings
        Submission settings (:class:`submission.artifacts.SubmissionSettings` fields, e.g.
        ``{"hedge": 2}``) written to ``submission.json`` over those there; None leaves it.
    reason
        Why (the verdict that decided it), kept in the cards and the manifest.

    Returns
    -------
    dict
        ``shipped`` (the selector now in ``selector/``), ``runner_up``, ``settings`` (those in
        ``submission.json`` now).

    Raises
    ------
    AutoDLError
        A folder or card missing or unreadable, or a setting the submission refuses; nothing
        is changed then.
    """
    from pipeline.default_build import size_report
    from portfolio.build import MANIFEST, Manifest, read_manifest
    from submission.artifacts import SETTINGS, SubmissionSettings

    root = Path(portfolio)
    choice_dir, runner_dir = root / CHOICE, root / RUNNER_UP
    (choice_path, choice), (runner_path, runner) = _card(choice_dir), _card(runner_dir)
    if not (root / MANIFEST).is_file():
        raise AutoDLError(root / MANIFEST, "not found: expected a built portfolio folder")
    current = {}
    if (root / SETTINGS).is_file():
        try:
            current = json.loads((root / SETTINGS).read_text())
        except json.JSONDecodeError as exc:
            raise AutoDLError(root / SETTINGS, f"is not JSON ({exc.msg}, line {exc.lineno})") from None
    merged = {**current, **dict(settings or {})}
    SubmissionSettings.from_dict(merged, root / SETTINGS)  # refuses an unknown or bad setting before any change

    note = {"reason": reason, "date": utc_now(), "command": command}
    if swap:
        for card, role, was in ((runner, "choice", RUNNER_UP), (choice, "runner-up", CHOICE)):
            card["role"] = role
            card.setdefault("scores", {})["chosen"] = role == "choice"
            card["shipped"] = {**note, "folder_before": was}
        write_json_atomic(choice_path, choice)
        write_json_atomic(runner_path, runner)
        tmp = root / f".{CHOICE}.swap"
        choice_dir.rename(tmp)
        runner_dir.rename(choice_dir)
        tmp.rename(runner_dir)
    if settings:
        write_json_atomic(root / SETTINGS, merged)

    manifest = Manifest(root, command or "pipeline.shipping.ship", read_manifest(root).get("settings") or {})
    manifest.command["reason"] = reason
    data = manifest.data
    shipped = runner if swap else choice
    other = choice if swap else runner
    before = dict(data.get("selectors") or {})
    scores = {"choice": before.get("runner-up" if swap else "choice", {}),
              "runner-up": before.get("choice" if swap else "runner-up", {})}
    data["selectors"] = {
        "choice": {**scores["choice"], "selector": shipped.get("selector"), "folder": CHOICE, "shipped": note},
        "runner-up": {**scores["runner-up"], "selector": other.get("selector"), "folder": RUNNER_UP}}
    data["submission_settings"] = merged
    manifest.checksums(root)
    data["bytes"], _ = size_report(root)
    manifest.save()
    logger.info("%s ships %s (%s), settings %s", root, shipped.get("selector"), reason, merged)
    return {"shipped": shipped.get("selector"), "runner_up": other.get("selector"), "settings": merged}
