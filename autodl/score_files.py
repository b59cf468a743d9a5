"""The files around the AutoDL scores: ingestion's prediction folder in, ``scores.txt`` out.

This module reads what the organizers' ingestion writes (``start.txt``,
``<task>.predict_<k>``, ``end.txt``: :func:`read_prediction_folder`, :func:`load_prediction`),
scores a whole folder with the metrics of :mod:`autodl.scoring` (:func:`score_folder`, into a
:class:`ScoreResult`), and writes and reads the ``scores.txt`` the organizers write (keys
``score``, ``Duration``, ``timestamps``, ``nauc_scores`` and, for multi-class tasks,
``accuracy``; :func:`write_scores`, :func:`parse_scores_txt`), reproducing the organizers'
scorer (v20191219) to within 1e-9 on the reference cases in ``shared/scoring_vectors``. The
learning-curve figure of a :class:`ScoreResult` is :func:`autodl.plots.plot_learning_curve`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from autodl.errors import PredictionError
from autodl.scoring import (
    CURVE_RULES,
    DEFAULT_T0,
    METRIC_NAMES,
    accuracy,
    as_2d,
    check_metric,
    is_multiclass,
    learning_curve_area,
    nauc,
    nbac,
    valid_columns,
)

logger = logging.getLogger(__name__)

_PREDICT_RE = re.compile(r"^(?P<task>.+)\.predict_(?P<k>\d+)$")
_NP_WRAPPER_RE = re.compile(r"np\.(?:float|int)(?:16|32|64|128)?\(([^()]*)\)")


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreResult:
    """The score of one task's predictions.

    Attributes
    ----------
    task_name
        The task (dataset) name, as in ``start.txt``.
    time_budget
        The budget T in seconds.
    t0
        The time-scale constant of the transformed time, in seconds.
    start_time
        Absolute start of ingestion (seconds since the epoch), from ``start.txt``.
    timestamps
        Times of the scored predictions in seconds since ``start_time``.
    nauc_scores
        NAUC (2*AUC - 1) of each scored prediction.
    accuracy
        Accuracy of each scored prediction, or None when the task is not multi-class.
    score
        The area under the learning curve of ``metric``: the ALC for ``"alc"``, the area
        under the 2*BAC - 1 curve (trapezoid rule) for ``"bac"``.
    duration
        The last relative timestamp, 0.0 without predictions (the organizers' ``Duration``).
    ingestion_success
        ``ingestion_success`` from ``end.txt``; None when there is no ``end.txt``.
    metric
        Which metric ``score`` is, one of :data:`autodl.scoring.METRICS`.
    nbac_scores
        2*BAC - 1 (:func:`autodl.scoring.nbac`) of each scored prediction when ``metric`` is ``"bac"``,
        else None.
    """

    task_name: str
    time_budget: float
    t0: float
    start_time: float
    timestamps: list[float]
    nauc_scores: list[float]
    accuracy: list[float] | None
    score: float
    duration: float
    ingestion_success: bool | None = None
    metric: str = "alc"
    nbac_scores: list[float] | None = None

    def __post_init__(self) -> None:
        check_metric(self.metric)
        if self.metric == "bac" and self.nbac_scores is None:
            raise ValueError("metric='bac' needs nbac_scores (the 2*BAC-1 of each prediction)")

    @property
    def num_predictions(self) -> int:
        """How many predictions were scored."""
        return len(self.timestamps)

    @property
    def curve_scores(self) -> list[float]:
        """The per-prediction scores whose learning curve ``score`` is the area of."""
        if self.metric == "bac":
            assert self.nbac_scores is not None
            return self.nbac_scores
        return self.nauc_scores

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict of all fields (plain Python floats and lists)."""
        d = asdict(self)
        d["timestamps"] = [float(t) for t in self.timestamps]
        d["nauc_scores"] = [float(s) for s in self.nauc_scores]
        d["accuracy"] = None if self.accuracy is None else [float(a) for a in self.accuracy]
        d["nbac_scores"] = None if self.nbac_scores is None else [float(v) for v in self.nbac_scores]
        return d


# --------------------------------------------------------------------------------------
# Reading ingestion output
# --------------------------------------------------------------------------------------
def _load_yaml(path: Path) -> dict[Any, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())  # one line
        raise PredictionError(path, f"is not valid YAML ({where}{what}); expected 'key: value' lines") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PredictionError(path, "expected 'key: value' lines (a YAML mapping)")
    return data


def read_prediction_folder(pred_dir: str | Path) -> tuple[dict[str, Any], list[tuple[int, float, Path]]]:
    """Read what ingestion wrote in a prediction folder.

    Parameters
    ----------
    pred_dir
        The folder holding ``start.txt``, ``<task>.predict_<k>`` and (once ingestion has
        ended) ``end.txt``.

    Returns
    -------
    start_info : dict
        The named fields of ``start.txt`` (``ingestion_pid``, ``task_name``,
        ``time_budget``, ``start_time``, as present), plus ``end_info``: the fields of
        ``end.txt`` (``ingestion_duration``, ``ingestion_success``, ``end_time``) or None
        when there is no ``end.txt``. When ``start.txt`` has no ``task_name`` it is taken
        from the ``*.predict_<k>`` files if they all share one.
    predictions : list of (k, timestamp, path)
        One entry per ``k: timestamp`` line of ``start.txt``, sorted by ``k``; ``timestamp``
        is absolute (seconds since the epoch) and ``path`` is
        ``<pred_dir>/<task>.predict_<k>``, which may not exist yet while ingestion runs.
        Files that do not end in ``.predict_<int>`` (e.g. ingestion's temporary files) are
        ignored; a ``.predict_<k>`` file with no timestamp is ignored with a warning.

    Raises
    ------
    PredictionError
        If ``pred_dir`` or ``start.txt`` is missing, or ``start.txt`` is malformed.
    """
    pred_dir = Path(pred_dir)
    if not pred_dir.is_dir():
        raise PredictionError(pred_dir, "not a folder; expected ingestion's prediction folder")
    start_path = pred_dir / "start.txt"
    if not start_path.is_file():
        raise PredictionError(start_path, "not found; ingestion writes it when it starts, so "
                                          "this folder holds no ingestion output (yet)")
    raw = _load_yaml(start_path)

    start_info: dict[str, Any] = {}
    stamps: dict[int, float] = {}
    for key, value in raw.items():
        if isinstance(key, int) and not isinstance(key, bool):
            try:
                stamps[key] = float(value)
            except (TypeError, ValueError):
                raise PredictionError(start_path, f"timestamp {value!r} is not a number",
                                      field=str(key)) from None
        else:
            start_info[str(key)] = value

    if "start_time" not in start_info:
        raise PredictionError(start_path, "has no start_time", field="start_time")
    for name in ("start_time", "time_budget"):
        if name in start_info:
            try:
                start_info[name] = float(start_info[name])
            except (TypeError, ValueError):
                raise PredictionError(start_path, f"{start_info[name]!r} is not a number",
                                      field=name) from None

    files: dict[str, dict[int, Path]] = {}
    for p in pred_dir.iterdir():
        m = _PREDICT_RE.match(p.name)
        if m and p.is_file():
            files.setdefault(m["task"], {})[int(m["k"])] = p

    task = start_info.get("task_name")
    if task is None:
        if len(files) == 1:
            task = next(iter(files))
            logger.info("%s has no task_name; using %r from the prediction files", start_path, task)
        elif stamps:
            found = ", ".join(sorted(files)) or "none"
            raise PredictionError(start_path, f"has no task_name and the prediction files do not "
                                              f"name one task (found: {found})", field="task_name")
        else:
            task = ""
    task = str(task)
    start_info["task_name"] = task

    predictions = [(k, stamps[k], pred_dir / f"{task}.predict_{k}") for k in sorted(stamps)]
    unlisted = sorted(set(files.get(task, {})) - set(stamps))
    if unlisted:
        logger.warning("%s: prediction files %s have no timestamp in start.txt; ignored", pred_dir,
                       [files[task][k].name for k in unlisted])

    end_path = pred_dir / "end.txt"
    start_info["end_info"] = _load_yaml(end_path) if end_path.is_file() else None
    return start_info, predictions


def load_prediction(path: str | Path, n_rows: int | None = None, n_cols: int | None = None) -> np.ndarray:
    """Read one prediction file: one row of space-separated numbers per test example.

    Parameters
    ----------
    path
        The ``<task>.predict_<k>`` file.
    n_rows, n_cols
        The expected shape (the solution's); None skips that check.

    Returns
    -------
    numpy.ndarray
        ``float64 (n_rows, n_cols)``.

    Raises
    ------
    PredictionError
        Naming the file, when it is missing or empty, rows differ in length, a value is not
        a number or is NaN/infinite, or the row or column count differs from the expected.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise PredictionError(path, "not found") from None
    except UnicodeDecodeError:
        raise PredictionError(path, "is not a text file of space-separated numbers") from None
    rows = [line.split() for line in text.splitlines() if line.strip()]
    if not rows:
        raise PredictionError(path, "is empty; expected one row of space-separated scores per "
                                    "test example")
    width = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != width:
            raise PredictionError(path, f"row {i + 1} has {len(r)} values; row 1 has {width}")
    try:
        arr = np.asarray(rows, dtype=np.float64)
    except ValueError:
        for i, r in enumerate(rows):
            for v in r:
                try:
                    float(v)
                except ValueError:
                    raise PredictionError(path, f"row {i + 1} holds {v!r}, which is not a "
                                                f"number") from None
        raise PredictionError(path, "holds a value that is not a number") from None
    if not np.all(np.isfinite(arr)):
        i, j = np.argwhere(~np.isfinite(arr))[0]
        raise PredictionError(path, f"row {i + 1}, column {j + 1} is {arr[i, j]}; expected finite "
                                    f"scores")
    if n_rows is not None and arr.shape[0] != n_rows:
        raise PredictionError(path, f"{arr.shape[0]} rows; the solution has {n_rows}")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise PredictionError(path, f"{arr.shape[1]} columns; the solution has {n_cols}")
    return arr


def score_folder(pred_dir: str | Path, solution: np.ndarray | str | Path,
                 time_budget: float | None = None, t0: float = DEFAULT_T0,
                 partial_ok: bool = False, metric: str = "alc") -> ScoreResult:
    """Score the predictions in an ingestion output folder, as the organizers' scorer does.

    Parameters
    ----------
    pred_dir
        The folder with ``start.txt``, ``<task>.predict_<k>`` and optionally ``end.txt``.
    solution
        The test labels, as an array or the path of a ``.solution`` file.
    time_budget
        The budget T in seconds; by default the ``time_budget`` of ``start.txt``.
    t0
        The time-scale constant in seconds (the organizers' 60 by default).
    partial_ok
        Skip, with a warning, predictions listed in ``start.txt`` whose file is missing
        (use while ingestion is still running). When False they are an error.
    metric
        ``"alc"`` (default): the challenge's ALC, the step-function area of the NAUCs.
        ``"bac"``: the 2018 beta tests' area, the trapezoid-rule area of the 2*BAC - 1 of
        binary decisions (:func:`autodl.scoring.nbac`,
        :func:`autodl.scoring.learning_curve_area`). NAUC and accuracy are computed for both.

    Returns
    -------
    ScoreResult
        Every prediction listed in ``start.txt`` whose file exists, scored in ``k`` order;
        its ``metric`` says what its ``score`` is.

    Raises
    ------
    PredictionError
        If ``start.txt`` is missing or malformed, no time budget is known, a listed
        prediction is missing (unless ``partial_ok``) or a prediction file is malformed or
        of the wrong shape.
    autodl.errors.FormatError
        If the ``.solution`` file cannot be read.
    ValueError
        If ``metric`` is not one of :data:`autodl.scoring.METRICS`.
    """
    from autodl.dataset import read_solution

    check_metric(metric)
    pred_dir = Path(pred_dir)
    if isinstance(solution, (str, Path)):
        sol_path = Path(solution)
        sol = read_solution(sol_path)
    else:
        sol_path = None
        sol = as_2d(solution, "solution")
    if sol.size == 0:
        raise PredictionError(sol_path, "the solution has no rows; nothing can be scored")

    info, predictions = read_prediction_folder(pred_dir)
    if time_budget is None:
        if "time_budget" not in info:
            raise PredictionError(pred_dir / "start.txt", "has no time_budget and none was given",
                                  field="time_budget")
        time_budget = info["time_budget"]
    time_budget = float(time_budget)
    start_time = float(info["start_time"])

    multiclass = is_multiclass(sol)
    n_valid = len(valid_columns(sol))
    if n_valid < sol.shape[1]:
        logger.info("%d of %d solution columns hold only one class; the NAUC ignores them",
                    sol.shape[1] - n_valid, sol.shape[1])
    timestamps: list[float] = []
    naucs: list[float] = []
    accs: list[float] = []
    nbacs: list[float] = []
    for k, stamp, path in predictions:
        if not path.is_file():
            if partial_ok:
                logger.warning("%s is listed in start.txt but not written yet; skipped", path)
                continue
            raise PredictionError(path, f"not found, but start.txt lists prediction {k}")
        pred = load_prediction(path, sol.shape[0], sol.shape[1])
        timestamps.append(stamp - start_time)
        naucs.append(nauc(sol, pred))
        if multiclass:
            acc = accuracy(sol, pred)
            assert acc is not None
            accs.append(acc)
        if metric == "bac":
            nbacs.append(nbac(sol, pred, multiclass=multiclass))
        logger.debug("%s: t=%.2f s, NAUC=%.4f", path.name, timestamps[-1], naucs[-1])

    end_info = info.get("end_info")
    success = None
    if end_info is not None and end_info.get("ingestion_success") is not None:
        success = bool(end_info["ingestion_success"])
    result = ScoreResult(
        task_name=info["task_name"],
        time_budget=time_budget,
        t0=float(t0),
        start_time=start_time,
        timestamps=timestamps,
        nauc_scores=naucs,
        accuracy=accs if multiclass else None,
        score=learning_curve_area(timestamps, nbacs if metric == "bac" else naucs, time_budget, t0,
                                  rule=CURVE_RULES[metric]),
        duration=timestamps[-1] if timestamps else 0.0,
        ingestion_success=success,
        metric=metric,
        nbac_scores=nbacs if metric == "bac" else None,
    )
    logger.info("%s: %d predictions, %s=%.4f", result.task_name, len(timestamps), METRIC_NAMES[metric],
                result.score)
    return result


# --------------------------------------------------------------------------------------
# Writing and reading scores
# --------------------------------------------------------------------------------------
def _float_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(repr(float(v)) for v in values) + "]"


def write_scores(result: ScoreResult, out_dir: str | Path) -> Path:
    """Write ``scores.txt`` (the organizers' keys and order) and ``scores.json``.

    ``scores.txt`` holds ``score`` (the ALC), ``Duration``, ``timestamps``,
    ``nauc_scores`` and, for multi-class tasks, ``accuracy``, as plain Python floats (so
    the file is YAML; read it back with :func:`parse_scores_txt`). For ``metric="bac"``,
    ``score`` is the 2*BAC - 1 area and two keys follow: ``metric: bac`` and
    ``nbac_scores``. ``scores.json`` holds :meth:`ScoreResult.to_dict`.

    Parameters
    ----------
    result
        What :func:`score_folder` returned.
    out_dir
        The folder to write to (created if needed).

    Returns
    -------
    pathlib.Path
        The path of ``scores.txt``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"score: {float(result.score)!r}",
        f"Duration: {float(result.duration)!r}",
        f"timestamps: {_float_list(result.timestamps)}",
        f"nauc_scores: {_float_list(result.nauc_scores)}",
    ]
    if result.accuracy is not None:
        lines.append(f"accuracy: {_float_list(result.accuracy)}")
    if result.metric != "alc":
        lines.append(f"metric: {result.metric}")
        lines.append(f"nbac_scores: {_float_list(result.curve_scores)}")
    path = out_dir / "scores.txt"
    path.write_text("\n".join(lines) + "\n")
    (out_dir / "scores.json").write_text(json.dumps(result.to_dict(), indent=2) + "\n")
    logger.debug("wrote %s (%s=%.4f)", path, METRIC_NAMES[result.metric], result.score)
    return path


def _parse_value(text: str) -> Any:
    text = text.strip()
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [] if not inner else [_parse_value(v) for v in inner.split(",")]
    try:
        return float(text)
    except ValueError:
        value = yaml.safe_load(text)
        return value


def parse_scores_txt(path: str | Path) -> dict[str, Any]:
    """Read a ``scores.txt`` written by :func:`write_scores` or by the organizers' scorer.

    The organizers' files may hold values such as ``[np.float64(0.06), ...]`` (numpy 2's
    repr); the ``np.float64( )`` wrappers are stripped. Numbers (including ``1e-05``,
    ``nan``, ``inf``) become floats, ``[...]`` lists of floats; any other value is read as
    YAML.

    Parameters
    ----------
    path
        The ``scores.txt`` file.

    Returns
    -------
    dict
        Key to value, in the file's order.

    Raises
    ------
    PredictionError
        If a non-empty line is not ``key: value``.
    """
    path = Path(path)
    out: dict[str, Any] = {}
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise PredictionError(path, f"line {i + 1} is not 'key: value': {line!r}")
        value = _NP_WRAPPER_RE.sub(r"\1", value)
        out[key.strip()] = _parse_value(value)
    return out
