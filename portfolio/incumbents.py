"""The incumbents of BOHB runs: each training dataset's best configuration, as a portfolio.

The Freiburg team's AutoDL 2019 entry (described in Liu et al., "Winning solutions and
post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021; ZAP, Ozturk et
al., "Zero-shot AutoML with pretrained models", ICML 2022, builds its portfolio the same
way) runs BOHB (Falkner, Klein & Hutter, ICML 2018) once per training dataset and keeps the best
configuration found: the dataset's *incumbent*. The incumbents, with the cost matrix of
every incumbent on every dataset (:mod:`portfolio.cost_matrix`), are the *portfolio* a
selector picks from.

A runs folder holds one sub-folder per training dataset, written by :mod:`offline_bohb`:

- ``run.json`` (format ``autodl-meta-bohb-run/1``): the dataset, the protocol, the clock
  and its timing table (path, SHA-256), the configuration space (path, SHA-256), the
  budgets, the seed, the command and the package versions;
- ``trials.jsonl``: one line per finished trial (``config_id``, ``config``, ``budget``,
  ``status``, ``alc``, ``finished``, ...).

The incumbent of a run: among the ``ok`` trials at the largest budget that has any ``ok``
trial, the one with the highest ALC (ties: the one that finished first). BOHB compares
configurations within one budget only (ALCs of different budgets are ALCs of different
shortened protocols, see :mod:`autodl.model_runs`), so the largest budget reached is the
one that decides. A run with no ``ok`` trial has no incumbent: it is reported (logged and
listed in the portfolio's ``without_incumbent``), never silently dropped.

Runs searched under different protocols, clocks, timing tables, configuration spaces or
objectives cannot make one portfolio (their ALCs do not compare): they are refused, the
runs and the differences named.

``portfolio.json`` (format ``autodl-meta-portfolio/1``, JSON only, never a pickle)::

    {"format": "autodl-meta-portfolio/1",
     "protocol": {"name": ..., "time_budget": ..., "t0": ..., "max_train_examples": ...},
     "clock": "simulated",
     "timing": {"path": ..., "sha256": ...},
     "space": {"path": ..., "sha256": ...},
     "incumbents": [{"dataset", "dataset_path", "config", "alc", "budget", "config_id",
                     "trials", "run_id"}, ...],
     "without_incumbent": [{"dataset", "dataset_path", "run_id", "trials", "statuses",
                            "reason"}, ...],
     "provenance": {"versions", "seeds", "date", "command", "objective", "runs"}}
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import sys
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.records import (
    FINISHED,
    Status,
    check_format,
    dotted_get,
    read_jsonl,
    read_versioned_json,
    utc_now,
    write_json_atomic,
)
from offline_bohb.run import RUN_FORMAT

logger = logging.getLogger(__name__)

PORTFOLIO_FORMAT = "autodl-meta-portfolio/1"
PORTFOLIO_FILE = "portfolio.json"
"""The portfolio's file name inside a portfolio folder."""

COMPARED = ("protocol", "clock", "timing.sha256", "space.sha256", "objective")
"""What every run of one portfolio must share (dotted paths into ``run.json``)."""


class PortfolioError(AutoDLError):
    """A runs folder or a portfolio file cannot be read (the file, the field, what was expected)."""


@dataclass(frozen=True)
class Incumbent:
    """The best configuration of one training dataset's BOHB run.

    Attributes
    ----------
    dataset
        The training dataset's name.
    dataset_path
        Its folder, as the run recorded it.
    config
        The configuration (plain values over ``configs/space/finetune.yaml``).
    alc
        Its ALC in the run, at ``budget``.
    budget
        The fraction of the protocol's T it was evaluated at (the largest with an ``ok`` trial).
    config_id
        hpbandster's ``(iteration, stage, index)``.
    trials
        Finished trials of the run (``ok``, ``crashed`` or ``timeout``).
    run_id
        The run's id.
    member
        In a greedy portfolio (:mod:`portfolio.pool`): the pool candidate this dataset was
        assigned (its best member); None for the dataset's own incumbent.
    """

    dataset: str
    dataset_path: str
    config: dict[str, Any]
    alc: float
    budget: float
    config_id: tuple[int, int, int]
    trials: int
    run_id: str
    member: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"dataset": self.dataset, "dataset_path": self.dataset_path, "config": dict(self.config),
               "alc": self.alc, "budget": self.budget, "config_id": list(self.config_id),
               "trials": self.trials, "run_id": self.run_id}
        if self.member is not None:
            out["member"] = self.member
        return out


@dataclass
class Portfolio:
    """Incumbents of training datasets searched under one protocol, clock and space.

    Attributes
    ----------
    protocol
        The protocol's fields (``name``, ``time_budget``, ``t0``, ``max_train_examples``).
    clock
        The clock the runs measured time on (``simulated``, ``cpu``, ``wall``).
    timing
        The simulated clock's timing table: ``{"path", "sha256"}`` (both None on other clocks).
    space
        The configuration space: ``{"path", "sha256"}``.
    incumbents
        One per training dataset with an incumbent, ordered by dataset name.
    provenance
        ``versions`` (packages of the runs), ``seeds`` (by dataset), ``date`` (when this
        portfolio was made), ``command``, ``objective``, ``runs`` (per run: folder, id,
        created, command, budgets).
    without_incumbent
        The runs that had no ``ok`` trial: dataset, run id, trials by status, reason.
    path
        The file it was loaded from or saved to (not part of its content).
    """

    protocol: dict[str, Any]
    clock: str
    timing: dict[str, Any]
    space: dict[str, Any]
    incumbents: list[Incumbent]
    provenance: dict[str, Any] = field(default_factory=dict)
    without_incumbent: list[dict[str, Any]] = field(default_factory=list)
    path: Path | None = field(default=None, compare=False, repr=False)

    @property
    def datasets(self) -> list[str]:
        """The training datasets that have an incumbent (the cost matrix's rows)."""
        return [inc.dataset for inc in self.incumbents]

    def incumbent(self, dataset: str) -> Incumbent:
        """The incumbent of ``dataset``; an unknown name raises, listing the known ones."""
        for inc in self.incumbents:
            if inc.dataset == dataset:
                return inc
        raise PortfolioError(self.path, f"no incumbent for dataset {dataset!r}; the portfolio has "
                                        f"{', '.join(self.datasets) or 'none'}", field="incumbents")

    def to_dict(self) -> dict[str, Any]:
        return {"format": PORTFOLIO_FORMAT, "protocol": dict(self.protocol), "clock": self.clock,
                "timing": dict(self.timing), "space": dict(self.space),
                "incumbents": [inc.to_dict() for inc in self.incumbents],
                "without_incumbent": [dict(r) for r in self.without_incumbent],
                "provenance": dict(self.provenance)}

    @classmethod
    def from_dict(cls, data: Any, path: str | Path | None = None) -> Portfolio:
        """A portfolio from its JSON form, validated; errors name ``path`` and the field."""
        return _parse_portfolio(data, None if path is None else Path(path))

    def save(self, path: str | Path) -> Path:
        """Write ``portfolio.json`` (a folder gets ``portfolio.json`` inside); return its path."""
        path = Path(path)
        if path.is_dir():
            path = path / PORTFOLIO_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, self.to_dict(), indent=1, allow_nan=False)
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> Portfolio:
        """Read and validate ``portfolio.json`` (or a folder holding one)."""
        path = portfolio_file(path)
        data = read_versioned_json(path, PORTFOLIO_FORMAT, what="a portfolio", error=PortfolioError,
                                   missing="portfolio not found; make one with `autodl-meta portfolio incumbents "
                                           "--runs DIR --out portfolio.json`")
        return cls.from_dict(data, path)


def portfolio_file(path: str | Path) -> Path:
    """``path`` itself, or ``path/portfolio.json`` where ``path`` is a folder."""
    path = Path(path)
    return path / PORTFOLIO_FILE if path.is_dir() else path


# --- validation -------------------------------------------------------------------------------
def _need(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], path: Path | None, where: str,
          *, optional: bool = False) -> Any:
    """``data[key]`` checked to be of ``kind`` (bool is not a number); errors name the field."""
    name = f"{where}.{key}" if where else key
    if key not in data:
        if optional:
            return None
        raise PortfolioError(path, "missing", field=name)
    value = data[key]
    if value is None and optional:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    numeric = float in kinds or int in kinds
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        expected = " or ".join(k.__name__ for k in kinds) + (" or null" if optional else "")
        raise PortfolioError(path, f"{value!r}: expected {expected}", field=name)
    if numeric and isinstance(value, float) and not math.isfinite(value):
        raise PortfolioError(path, f"{value!r}: expected a finite number", field=name)
    return value


def _protocol(value: Any, path: Path | None, where: str) -> dict[str, Any]:
    from autodl.protocol import Protocol

    if not isinstance(value, Mapping):
        raise PortfolioError(path, f"{value!r}: expected a mapping with name, time_budget and t0", field=where)
    for key, kind in (("name", str), ("time_budget", (int, float)), ("t0", (int, float))):
        _need(value, key, kind, path, where)
    unknown = sorted(set(value) - {"name", "time_budget", "t0", "max_train_examples"})
    if unknown:
        raise PortfolioError(path, f"unknown keys {unknown}", field=where)
    try:
        Protocol(**value)
    except (TypeError, ValueError) as exc:
        raise PortfolioError(path, str(exc), field=where) from None
    return dict(value)


def _file_ref(value: Any, path: Path | None, where: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise PortfolioError(path, f"{value!r}: expected a mapping with path and sha256", field=where)
    return {"path": _need(value, "path", str, path, where, optional=True),
            "sha256": _need(value, "sha256", str, path, where, optional=True)}


def _config_id(value: Any, path: Path | None, where: str) -> tuple[int, int, int]:
    if (not isinstance(value, list | tuple) or len(value) != 3
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)):
        raise PortfolioError(path, f"{value!r}: expected three integers [iteration, stage, index]", field=where)
    return (int(value[0]), int(value[1]), int(value[2]))


def _dataset_name(name: str, path: Path | None, where: str) -> str:
    """A training dataset's name: one path component (features, runs and reports are files named
    after it, so a name like ``../x`` would read or write outside their folder)."""
    from autodl.integrity import name_problem

    problem = name_problem(name)
    if problem:
        raise PortfolioError(path, f"{problem}; a dataset's name is one folder or file name", field=where)
    return name


def _parse_portfolio(data: Any, path: Path | None) -> Portfolio:
    from autodl.clock import CLOCKS

    data = check_format(data, PORTFOLIO_FORMAT, path=path, what="a portfolio", error=PortfolioError)
    known = {"format", "protocol", "clock", "timing", "space", "incumbents", "without_incumbent", "provenance"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise PortfolioError(path, f"unknown keys {unknown}; expected {sorted(known)}")
    protocol = _protocol(_need(data, "protocol", dict, path, ""), path, "protocol")
    clock = _need(data, "clock", str, path, "")
    if clock not in CLOCKS:
        raise PortfolioError(path, f"{clock!r}: expected one of {', '.join(CLOCKS)}", field="clock")
    timing = _file_ref(_need(data, "timing", dict, path, ""), path, "timing")
    space = _file_ref(_need(data, "space", dict, path, ""), path, "space")
    incumbents = []
    seen: dict[str, int] = {}
    for i, row in enumerate(_need(data, "incumbents", list, path, "")):
        where = f"incumbents[{i}]"
        if not isinstance(row, Mapping):
            raise PortfolioError(path, f"{row!r}: expected a mapping", field=where)
        name = _dataset_name(_need(row, "dataset", str, path, where), path, f"{where}.dataset")
        if name in seen:
            raise PortfolioError(path, f"dataset {name!r} appears twice (incumbents[{seen[name]}] and {where}); "
                                       "one incumbent per training dataset", field=f"{where}.dataset")
        seen[name] = i
        budget = float(_need(row, "budget", (int, float), path, where))
        if not 0 < budget <= 1:
            raise PortfolioError(path, f"{budget!r}: expected a fraction of the protocol's T in (0, 1]",
                                 field=f"{where}.budget")
        incumbents.append(Incumbent(
            dataset=name, dataset_path=_need(row, "dataset_path", str, path, where),
            config=dict(_need(row, "config", dict, path, where)),
            alc=float(_need(row, "alc", (int, float), path, where)), budget=budget,
            config_id=_config_id(_need(row, "config_id", list, path, where), path, f"{where}.config_id"),
            trials=int(_need(row, "trials", int, path, where)), run_id=_need(row, "run_id", str, path, where),
            member=_need(row, "member", str, path, where, optional=True)))
    without = _need(data, "without_incumbent", list, path, "", optional=True) or []
    for i, row in enumerate(without):
        if not isinstance(row, Mapping):
            raise PortfolioError(path, f"{row!r}: expected a mapping", field=f"without_incumbent[{i}]")
        _dataset_name(_need(row, "dataset", str, path, f"without_incumbent[{i}]"), path,
                      f"without_incumbent[{i}].dataset")
    provenance = _need(data, "provenance", dict, path, "")
    return Portfolio(protocol=protocol, clock=clock, timing=timing, space=space, incumbents=incumbents,
                     provenance=dict(provenance), without_incumbent=[dict(r) for r in without], path=path)


# --- BOHB runs --------------------------------------------------------------------------------
@dataclass
class BOHBRun:
    """One run folder: its ``run.json`` (validated) and its trials."""

    folder: Path
    record: dict[str, Any]
    trials: list[dict[str, Any]]

    @property
    def dataset(self) -> str:
        return self.record["dataset"]["name"]

    @property
    def run_id(self) -> str:
        return self.record["run_id"]

    def describe(self) -> str:
        return f"run {self.run_id!r} of {self.dataset!r} ({self.folder})"


def read_run(folder: str | Path) -> BOHBRun:
    """Read and validate one BOHB run folder (``run.json`` and ``trials.jsonl``).

    Raises
    ------
    PortfolioError
        ``run.json`` is missing, not JSON, of another format, or lacks a field the
        portfolio needs; a trial lacks ``config_id``, ``config``, ``budget`` or ``status``,
        or an ``ok`` trial has no finite ALC. The error names the file and the field.
    """
    from autodl.clock import CLOCKS

    folder = Path(folder)
    path = folder / "run.json"
    record = read_versioned_json(path, RUN_FORMAT, what="a BOHB run's record", error=PortfolioError,
                                 missing="missing: not a BOHB run folder (`autodl-meta bohb run` writes one)")
    _need(record, "run_id", str, path, "")
    dataset = _need(record, "dataset", dict, path, "")
    _need(dataset, "name", str, path, "dataset")
    _need(dataset, "path", str, path, "dataset")
    record["protocol"] = _protocol(_need(record, "protocol", dict, path, ""), path, "protocol")
    clock = _need(record, "clock", str, path, "")
    if clock not in CLOCKS:
        raise PortfolioError(path, f"{clock!r}: expected one of {', '.join(CLOCKS)}", field="clock")
    _file_ref(_need(record, "timing", dict, path, ""), path, "timing")
    _file_ref(_need(record, "space", dict, path, ""), path, "space")
    _need(record, "seed", int, path, "")
    _need(record, "versions", dict, path, "", optional=True)
    trials_path = folder / "trials.jsonl"
    trials = read_jsonl(trials_path)
    for n, trial in enumerate(trials, 1):
        where = f"trial {n}"
        if not isinstance(trial, dict):
            raise PortfolioError(trials_path, f"{trial!r}: expected a JSON object", field=where)
        _config_id(_need(trial, "config_id", list, trials_path, where), trials_path, f"{where}.config_id")
        _need(trial, "config", dict, trials_path, where)
        _need(trial, "budget", (int, float), trials_path, where)
        status = _need(trial, "status", str, trials_path, where)
        if status == Status.OK:
            _need(trial, "alc", (int, float), trials_path, where)
    return BOHBRun(folder, record, trials)


def find_runs(runs: str | Path | Iterable[str | Path]) -> list[BOHBRun]:
    """The BOHB runs of a runs folder (each sub-folder holding ``run.json``), or of a list of
    run folders; a folder that is itself a run counts as one. Ordered by dataset name."""
    if isinstance(runs, str | Path):
        root = Path(runs)
        if not root.is_dir():
            raise PortfolioError(root, "not a folder; expected a runs folder with one sub-folder per training "
                                       "dataset (each holding run.json and trials.jsonl)")
        if (root / "run.json").is_file():
            folders = [root]
        else:
            folders = sorted(p for p in root.iterdir() if p.is_dir() and (p / "run.json").is_file())
            others = sorted(p.name for p in root.iterdir() if p.is_dir() and not (p / "run.json").is_file())
            if others:
                logger.warning("%s: sub-folders without run.json skipped: %s", root, ", ".join(others))
            if not folders:
                raise PortfolioError(root, "holds no BOHB run (no sub-folder with run.json)")
    else:
        folders = [Path(p) for p in runs]
        if not folders:
            raise PortfolioError(None, "no BOHB run folders given", field="runs")
    found = [read_run(f) for f in folders]
    by_name: dict[str, BOHBRun] = {}
    for run in found:
        if run.dataset in by_name:
            raise PortfolioError(run.folder / "run.json", f"dataset {run.dataset!r} was also searched by "
                                                          f"{by_name[run.dataset].describe()}: one run per dataset",
                                 field="dataset.name")
        by_name[run.dataset] = run
    return [by_name[k] for k in sorted(by_name)]


def run_differences(reference: Mapping[str, Any], other: Mapping[str, Any]) -> list[str]:
    """What ``other`` does not share with ``reference`` among :data:`COMPARED`."""
    out = []
    for key in COMPARED:
        a, b = dotted_get(reference, key), dotted_get(other, key)
        if a != b:
            out.append(f"{key} ({a!r} vs {b!r})")
    return out


def check_compatible(runs: Sequence[BOHBRun]) -> None:
    """Refuse runs that differ in protocol, clock, timing table, space or objective.

    Raises
    ------
    PortfolioError
        Naming every run that differs from the first and what differs.
    """
    if not runs:
        return
    first = runs[0]
    problems = [f"{run.describe()} vs {first.describe()}: {'; '.join(diff)}"
                for run in runs[1:] if (diff := run_differences(first.record, run.record))]
    if problems:
        raise PortfolioError(first.folder.parent, "runs searched under different settings cannot make one "
                                                  "portfolio (their ALCs do not compare): " + " | ".join(problems),
                             field="runs")


def _finished_key(trial: Mapping[str, Any]) -> tuple[int, float]:
    """Order by finishing time (unparseable or missing times last)."""
    text = trial.get("finished")
    try:
        when = _dt.datetime.fromisoformat(str(text))
    except ValueError:
        return (1, 0.0)
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    return (0, when.timestamp())


def select_incumbent(trials: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The incumbent trial: among the ``ok`` trials at the largest budget that has any, the
    highest ALC; ties go to the one that finished first (then to the earlier line). None
    when no trial is ``ok``."""
    ok = [(i, t) for i, t in enumerate(trials) if t.get("status") == Status.OK and t.get("alc") is not None]
    if not ok:
        return None
    top = max(float(t["budget"]) for _, t in ok)
    at_top = [(i, t) for i, t in ok if math.isclose(float(t["budget"]), top, rel_tol=1e-9, abs_tol=1e-12)]
    _, best = min(at_top, key=lambda it: (-float(it[1]["alc"]), _finished_key(it[1]), it[0]))
    return best


def _merged_versions(runs: Sequence[BOHBRun]) -> dict[str, str]:
    seen: dict[str, list[str]] = {}
    for run in runs:
        for pkg, ver in (run.record.get("versions") or {}).items():
            if str(ver) not in seen.setdefault(pkg, []):
                seen[pkg].append(str(ver))
    mixed = {pkg: v for pkg, v in seen.items() if len(v) > 1}
    if mixed:
        logger.warning("the runs used different package versions: %s",
                       "; ".join(f"{p}: {', '.join(v)}" for p, v in sorted(mixed.items())))
    return {pkg: " | ".join(v) for pkg, v in sorted(seen.items())}


def incumbents_from_runs(runs: str | Path | Iterable[str | Path], *, command: str | None = None) -> Portfolio:
    """The portfolio of a runs folder: one incumbent per run that has one.

    Parameters
    ----------
    runs
        A runs folder (one sub-folder per training dataset), one run folder, or a list of
        run folders.
    command
        Recorded in the provenance (default: this process's command line).

    Returns
    -------
    Portfolio
        Incumbents ordered by dataset name; runs without an ``ok`` trial are in
        ``without_incumbent`` (and logged as warnings).

    Raises
    ------
    PortfolioError
        No run found, an unreadable run, two runs of one dataset, or runs that differ in
        protocol, clock, timing table, space or objective (named).
    """
    found = find_runs(runs)
    check_compatible(found)
    first = found[0].record
    incumbents, without = [], []
    for run in found:
        finished = [t for t in run.trials if t.get("status") in FINISHED]
        best = select_incumbent(run.trials)
        if best is None:
            statuses = dict(sorted(Counter(str(t.get("status")) for t in run.trials).items()))
            counts = ", ".join(f"{k}: {v}" for k, v in statuses.items())
            reason = f"no ok trial among {len(run.trials)} trials ({counts})" if run.trials else "no trial finished yet"
            logger.warning("%s has no incumbent: %s", run.describe(), reason)
            without.append({"dataset": run.dataset, "dataset_path": run.record["dataset"]["path"],
                            "run_id": run.run_id, "trials": len(finished), "statuses": statuses, "reason": reason})
            continue
        incumbents.append(Incumbent(dataset=run.dataset, dataset_path=run.record["dataset"]["path"],
                                    config=dict(best["config"]), alc=float(best["alc"]),
                                    budget=float(best["budget"]), config_id=_config_id(best["config_id"], None, ""),
                                    trials=len(finished), run_id=run.run_id))
        logger.info("%s: incumbent %s, ALC %.4f at budget %g (%d trials)", run.dataset, list(best["config_id"]),
                    float(best["alc"]), float(best["budget"]), len(finished))
    provenance = {
        "versions": _merged_versions(found),
        "seeds": {run.dataset: run.record["seed"] for run in found},
        "date": utc_now(),
        "command": command if command is not None else " ".join(sys.argv),
        "objective": first.get("objective"),
        "runs": [{"dataset": run.dataset, "run_id": run.run_id, "folder": str(run.folder),
                  "created": run.record.get("created"), "command": run.record.get("command"),
                  **{k: run.record.get(k) for k in ("min_budget", "max_budget", "eta", "iterations")}}
                 for run in found],
    }
    return Portfolio(protocol=dict(first["protocol"]), clock=first["clock"],
                     timing={"path": first["timing"].get("path"), "sha256": first["timing"].get("sha256")},
                     space={"path": first["space"].get("path"), "sha256": first["space"].get("sha256")},
                     incumbents=incumbents, provenance=provenance, without_incumbent=without)


def build_portfolio(runs: str | Path | Iterable[str | Path], out: str | Path, *,
                    command: str | None = None) -> Portfolio:
    """:func:`incumbents_from_runs`, saved to ``out`` (``portfolio.json``, or a folder)."""
    portfolio = incumbents_from_runs(runs, command=command)
    portfolio.save(out)
    return portfolio
