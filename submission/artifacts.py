"""What a submission ships besides its code: the portfolio, the single best, the selector,
the pretrained weights, and the SHA-256 of each, verified on load.

A folder of artifacts holds:

- ``portfolio.json``: each training dataset's incumbent (:mod:`portfolio.incumbents`);
- ``summary.json``: the cost matrix's summary, of which the single best is read;
- ``selector/``: the fitted selector (``selector.json`` + ``selector.safetensors``,
  :func:`selector.registry.load_selector`), optional;
- ``weights/<backbone>.pth``: pretrained weights (in a zip; in the source tree the
  installed packages' files are used);
- ``submission.json``: the submission's settings (:class:`SubmissionSettings`), optional;
- ``checksums.json`` (a zip's artifacts) or the portfolio build's ``manifest.json`` (the
  source tree's ``portfolio/default``): ``{"files": {relative path: {"sha256", "bytes"}}}``.

:func:`verify` compares every listed file with its checksum. The submission reads each
artifact through :meth:`Artifacts.read_json` / :meth:`Artifacts.checked`, which refuse a
file whose checksum differs, a file the table does not list (where there is a table), and a
path that leaves the folder (``..``, absolute, or a symbolic link leading out), so that a
corrupted selector is noticed (and the single best used) rather than trusted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.integrity import IntegrityError, inside
from autodl.records import file_sha256

logger = logging.getLogger(__name__)

CHECKSUMS = "checksums.json"
MANIFEST = "manifest.json"
SETTINGS = "submission.json"
CHECKSUMS_FORMAT = "autodl-meta-submission-checksums/1"
FIRST_PREDICTION = ("before-selection", "after-selection")
MAX_HEDGE = 5


class ArtifactError(AutoDLError):
    """An artifact that is missing, unreadable or fails its checksum."""


def parse_hedge(item: int | str) -> tuple[int, bool]:
    """A race setting as the command line writes it, as ``(hedge, hedge_with_single_best)``: ``2`` or
    ``"2"``: the selector's top 2 race; ``"2sb"``: its pick and the single best (``(2, True)``).
    Raises an :class:`AutoDLError` naming ``--hedge`` otherwise."""
    text = str(item).strip().lower()
    anchored = text.endswith("sb")
    digits = text[:-2] if anchored else text
    if not digits.isdigit() or int(digits) < (2 if anchored else 1):
        raise AutoDLError(None, f"hedge {item!r}: expected N >= 1 configurations racing (1: pure selection) or Nsb "
                                f"with N >= 2 (the single best races second)", field="--hedge")
    return int(digits), anchored


@dataclass
class SubmissionSettings:
    """How the submission behaves (``submission.json``; every field has a default).

    Attributes
    ----------
    first_prediction:
        ``before-selection``: the single best configuration's learner (built while the
        model is constructed, outside the budget) makes the first predictions, selection
        follows on the second ``train`` call and the chosen configuration takes over when
        it differs; ``after-selection``: select first, then train the chosen
        configuration. Which is better was measured (README, "Shipping a submission").
    query_size:
        Training examples embedded for the selector (default: the selector card's
        ``query_size``, else 64).
    seed:
        Seed of the query's sample and of the learners.
    device:
        ``cpu``, ``cuda`` or None (CUDA where available).
    max_train_examples:
        The learner's limit (the portfolio's protocol's, 5000, by default).
    hedge:
        How many of the selector's top configurations race inside the budget (1: none, pure
        selection; 2 or 3 hedge): the first keeps its probes, the others fine-tune for one
        short chunk each, and the best by validation NAUC continues
        (:class:`submission.agent.MetaModel`).
    hedge_share:
        A racer is started only while less than this share of the budget is spent (the race
        never eats the budget the winner needs).
    hedge_with_single_best:
        With ``hedge`` >= 2, the portfolio's single best races second, after the selector's
        pick and before its next picks, so the race never lacks the configuration that is best
        on average. The pick leads even where the single best is already running (it runs
        before selection, for the first prediction): that learner waits its turn, its
        predictions kept and its progress too. Where the data are too few for a validation
        split the race has no evidence, and the single best goes on.
    """

    first_prediction: str = "before-selection"
    query_size: int | None = None
    seed: int = 0
    device: str | None = None
    max_train_examples: int | None = 5000
    hedge: int = 1
    hedge_share: float = 0.25
    hedge_with_single_best: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.first_prediction not in FIRST_PREDICTION:
            raise ArtifactError(None, f"first_prediction={self.first_prediction!r}: expected one of "
                                      f"{', '.join(FIRST_PREDICTION)}", field="first_prediction")
        if self.query_size is not None and (not isinstance(self.query_size, int) or self.query_size < 1):
            raise ArtifactError(None, f"query_size={self.query_size!r}: expected an integer >= 1",
                                field="query_size")
        if isinstance(self.hedge, bool) or not isinstance(self.hedge, int) or not 1 <= self.hedge <= MAX_HEDGE:
            raise ArtifactError(None, f"hedge={self.hedge!r}: expected an integer from 1 (no race) to {MAX_HEDGE}",
                                field="hedge")
        if isinstance(self.hedge_share, bool) or not isinstance(self.hedge_share, int | float) \
                or not 0.0 < float(self.hedge_share) <= 1.0:
            raise ArtifactError(None, f"hedge_share={self.hedge_share!r}: expected a share of the budget in (0, 1]",
                                field="hedge_share")
        if not isinstance(self.hedge_with_single_best, bool):
            raise ArtifactError(None, f"hedge_with_single_best={self.hedge_with_single_best!r}: expected true or false",
                                field="hedge_with_single_best")

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> SubmissionSettings:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__ and k != "extra"}
        unknown = sorted(set(data) - set(known) - {"format"})
        if unknown:
            raise ArtifactError(path, f"unknown setting(s) {', '.join(unknown)}; known: "
                                      f"{', '.join(k for k in cls.__dataclass_fields__ if k != 'extra')}",
                                field=unknown[0])
        return cls(**known)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("extra")
        return d


def checksum_table(root: Path, files: list[Path]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "bytes"}}`` of ``files`` under ``root``."""
    return {p.relative_to(root).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(files)}


class Artifacts:
    """A folder of artifacts with its checksum table (see the module docstring).

    Parameters
    ----------
    root:
        The folder.
    selector_dir:
        The selector's folder (default ``root/selector``); may lie outside ``root`` (then
        it is checked by its own card's checksum only).
    """

    def __init__(self, root: str | Path, selector_dir: str | Path | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise ArtifactError(self.root, "not a folder of submission artifacts (portfolio.json, summary.json, "
                                           "selector/)")
        self.selector_dir = Path(selector_dir) if selector_dir is not None else self.root / "selector"
        self.table: dict[str, dict[str, Any]] = {}
        self.table_file: Path | None = None
        for name in (CHECKSUMS, MANIFEST):
            path = self.root / name
            if path.is_file():
                try:
                    self.table = dict(json.loads(path.read_text()).get("files") or {})
                except (json.JSONDecodeError, AttributeError) as exc:
                    raise ArtifactError(path, f"not a readable checksum table ({exc})") from None
                self.table_file = path
                break

    def __repr__(self) -> str:
        return f"Artifacts({str(self.root)!r}, {len(self.table)} checksums)"

    def checked(self, relative: str) -> Path:
        """The path of ``relative`` under the root, once its checksum (where listed) matches.

        Raises
        ------
        ArtifactError
            The file is missing, lies outside the root (``..``, an absolute path, a symbolic
            link leading out), is not listed in the folder's table (where there is one), or its
            SHA-256 differs from the table's.
        """
        try:
            path = inside(self.root, relative, what="artifact")
        except IntegrityError as exc:
            raise ArtifactError(exc.path, exc.message, field="path") from None
        if not path.is_file():
            raise ArtifactError(path, "missing")
        entry = self.table.get(relative)
        if entry is None and self.table_file is not None:
            raise ArtifactError(path, f"is not listed in {self.table_file.name}: added or renamed after the build, "
                                      "so its checksum cannot be verified", field="sha256")
        if entry is not None:
            digest = file_sha256(path)
            if digest != entry.get("sha256"):
                raise ArtifactError(path, f"SHA-256 {digest[:12]}... differs from {self.table_file.name}'s "
                                          f"{str(entry.get('sha256'))[:12]}...: corrupted or replaced",
                                    field="sha256")
        return path

    def read_json(self, relative: str) -> Any:
        path = self.checked(relative)
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ArtifactError(path, f"not valid JSON ({exc})") from None

    def verify(self) -> list[str]:
        """Every file of the checksum table checked; returns the problems (empty: all good)."""
        problems = []
        for relative in sorted(self.table):
            try:
                self.checked(relative)
            except ArtifactError as exc:
                problems.append(str(exc))
        return problems

    # --- what the submission reads ------------------------------------------------------------
    def incumbents(self) -> dict[str, dict[str, Any]]:
        """``{training dataset: incumbent configuration}`` from ``portfolio.json``."""
        data = self.read_json("portfolio.json")
        try:
            return {inc["dataset"]: dict(inc["config"]) for inc in data["incumbents"]}
        except (KeyError, TypeError) as exc:
            raise ArtifactError(self.root / "portfolio.json", f"has no readable incumbents ({exc!r})",
                                field="incumbents") from None

    def member_names(self) -> dict[str, str]:
        """``{training dataset: the portfolio member assigned to it}`` where ``portfolio.json``
        names one (a greedy portfolio: each dataset's best member); empty for a portfolio of
        per-dataset incumbents."""
        data = self.read_json("portfolio.json")
        try:
            return {str(inc["dataset"]): str(inc["member"]) for inc in data["incumbents"] if inc.get("member")}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(self.root / "portfolio.json", f"has no readable incumbents ({exc!r})",
                                field="incumbents") from None

    def members(self) -> dict[str, dict[str, Any]]:
        """``{member name: configuration}``: what a selector whose outputs are members
        (:mod:`selector.member_selectors`) may name.

        The names the selectors are fitted with (:func:`selector.member_views.members_from_cost`):
        a greedy portfolio's members (``provenance.members``, and every incumbent's ``member``);
        for each incumbent also ``incumbent:<dataset>`` and the dataset's own name (a member
        grouped by configuration is named after its first dataset).
        """
        path = self.root / "portfolio.json"
        data = self.read_json("portfolio.json")
        out: dict[str, dict[str, Any]] = {}
        try:
            for inc in data["incumbents"]:
                out.setdefault(str(inc["dataset"]), dict(inc["config"]))
                out.setdefault(f"incumbent:{inc['dataset']}", dict(inc["config"]))
                if inc.get("member"):
                    out[str(inc["member"])] = dict(inc["config"])
            listed = (data.get("provenance") or {}).get("members") or []
            for i, m in enumerate(listed):
                if not isinstance(m, dict) or not isinstance(m.get("config"), dict) or "name" not in m:
                    raise ArtifactError(path, f"{m!r}: expected {{name, config}}", field=f"provenance.members[{i}]")
                out[str(m["name"])] = dict(m["config"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ArtifactError(path, f"has no readable incumbents ({exc!r})", field="incumbents") from None
        return out

    def single_best(self) -> str:
        """The training dataset whose incumbent is the single best (``summary.json``)."""
        data = self.read_json("summary.json")
        try:
            return str(data["single_best"]["source"])
        except (KeyError, TypeError):
            raise ArtifactError(self.root / "summary.json", "has no single_best.source",
                                field="single_best") from None

    def settings(self) -> SubmissionSettings:
        if not (self.root / SETTINGS).is_file():
            return SubmissionSettings()
        return SubmissionSettings.from_dict(self.read_json(SETTINGS), self.root / SETTINGS)

    def selector(self) -> Any:
        """The fitted selector (its card's checksum of the arrays verified by the loader)."""
        from selector.registry import load_selector

        if self.selector_dir.parent == self.root:  # listed in the table: checked here too
            for name in ("selector.json", "selector.safetensors"):
                self.checked(f"{self.selector_dir.name}/{name}")
        return load_selector(self.selector_dir)

    def weights_dir(self) -> Path | None:
        """``root/weights`` where it exists (its files are checked when read by :meth:`checked`)."""
        path = self.root / "weights"
        return path if path.is_dir() else None
