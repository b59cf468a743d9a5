"""The self-service run: a user's dataset in; a model's predictions, scores and a page out.

``autodl-meta run --data PATH --out DIR`` (:func:`run_selfservice`) is the "submit your
dataset, get a model" service of the AutoDL self-service, done locally:

1. **formatting**: ``PATH`` is an AutoDL dataset (used in place) or a raw folder with a
   ``labels.csv`` (formatted into ``DIR/data`` by :func:`autodl.convert.convert_image_folder`,
   the converter of ``autodl-meta data format``);
2. **setting up** and **ingestion**: the model (by default the shipped submission,
   model name ``submission``; any ``--model`` name of :mod:`finetune.models`) runs in a
   child process on the wall clock under the protocol, as the organizers' local test
   does (:func:`finetune.config_runs.run_local_model`); this process follows it, scores each
   prediction as it appears (for the progress display) and ends it at the budget;
3. **scoring**: ``DIR/scores/scores.txt``, ``scores.json``, ``learning-curve.png``, the
   model's decision (``DIR/decision.json``, see below), the predictions for the unlabelled
   examples, and ``DIR/report.html`` (:mod:`submission.report`), a self-contained page.

With ``compare``, a second model runs on the same data right after the first, under the
same protocol and clock, into ``DIR/compare/``; the page and the printed table show both,
and ``DIR/learning-curves.png`` holds both curves.

The decision
------------
The child runs with the environment variable ``AUTODL_META_DECISION`` set to
``DIR/decision.json`` (``DIR/compare/decision.json`` for the second model). The shipped
submission writes its decision there as JSON (``selector``, ``chosen_dataset``,
``confidence``, ``threshold``, ``novelty``, ``fallback``, ``configuration``,
``configuration_source``, ``selection_seconds``, ``events``); other models do not, and
the page says that no decision was recorded.

Unlabelled examples
-------------------
The unlabelled set is ``unlabelled`` (a folder of image or video files, or an AutoDL
dataset's ``unlabelled`` subset: the dataset folder or the subset folder itself), or,
without it, whatever the data brings: the rows of ``labels.csv`` in the ``unlabelled``
subset (or without a label when there is no ``subset`` column) and the files of an
``unlabelled/`` subfolder of a raw folder that ``labels.csv`` does not list; the
``unlabelled`` subset of an AutoDL dataset.

It works for any model, a challenge ``model.py`` included, because the model is never
told: the run builds a copy of the dataset (``DIR/run-data``, written with
:func:`autodl.writer.write_subset`; the training set copied as it is) whose test set is
the test examples followed by the unlabelled examples, and whose ``.solution`` stays the
real test solution. Ingestion runs on that copy with ``scored_rows`` = the number of test
examples (:func:`autodl.ingestion.run_ingestion`): each prediction file holds the scored
rows only, and the remaining rows of the latest prediction go to ``unlabelled.predict``.
**The model sees the unlabelled examples, unlabelled, as part of its test set, so its
test time grows with them** (and its ALC may drop a little on a large unlabelled set).
The run copies that file to ``DIR/unlabelled.predict`` (the organizers' prediction
format: one row of class probabilities per example, space-separated) and writes
``DIR/unlabelled.csv``: the file name (or ``<name>.data/unlabelled#<i>`` for records of
an AutoDL subset), the predicted class name(s) (``label.name`` or the metadata's label
map, else the class index; for multi-label data every class of probability >= 0.5, or
the top one, joined by ``;``) and the top probability.

Unlabelled image files are re-encoded (PNG) to the dataset's frame size and channels
when the dataset has a fixed size that they do not match; video files are decoded
(PyAV) and their frames stored as JPEG, as the converter does.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.convert import IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, natural_key
from autodl.dataset import AutoDLDataset, RawExample, decode_frame
from autodl.errors import AutoDLError, PredictionError
from autodl.ingestion import UNLABELLED_PREDICT
from autodl.metadata import COMPRESSED, DENSE
from autodl.model_runs import RunResult
from autodl.protocol import Protocol, load_protocol
from autodl.records import Status, atomic_folder
from autodl.score_files import ScoreResult, load_prediction
from autodl.scoring import nauc
from submission.report import ScoredMixin

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "submission"
"""The model a self-service run uses unless told otherwise: the shipped submission."""

DECISION_ENV = "AUTODL_META_DECISION"
"""The environment variable naming the file the submission writes its decision to."""

DECISION_FILE = "decision.json"
UNLABELLED_CSV = "unlabelled.csv"
REPORT_FILE = "report.html"
COMPARE_DIR = "compare"
CURVES_FILE = "learning-curves.png"

DEFAULT_PORTFOLIO = Path(__file__).resolve().parents[1] / "portfolio" / "default"
"""The portfolio ``baseline:single-best`` and ``baseline:oracle`` read when none is given."""

STAGES = ("formatting", "setting up", "ingestion", "scoring", "done")
"""The stages a run reports, in order (``setting up`` to ``scoring`` once per model)."""



# --- progress ---------------------------------------------------------------------------------
@dataclass
class Progress:
    """Where a self-service run stands (handed to the ``progress`` callback).

    ``elapsed`` counts from the start of the model's budget (ingestion's ``start_time``);
    ``nauc`` is the NAUC of the latest prediction, scored as it appeared; ``examples`` the
    examples written so far while formatting.
    """

    stage: str
    model: str = ""
    time_budget: float = 0.0
    elapsed: float = 0.0
    predictions: int = 0
    nauc: float | None = None
    message: str = ""
    examples: int = 0

    @property
    def seconds_left(self) -> float:
        return max(0.0, self.time_budget - self.elapsed)


ProgressCallback = Callable[[Progress], None]


def _noop(_: Progress) -> None:
    pass


# --- the unlabelled set -------------------------------------------------------------------------
@dataclass
class UnlabelledSet:
    """Unlabelled examples to predict: their names and, per part, a generator of their frames.

    ``parts`` are callables each returning an iterator over the frames of its examples
    (a list of encoded frames, or of ``[H, W, C]`` arrays for dense data), in the order
    of ``names``.
    """

    names: list[str]
    sources: list[str]
    parts: list[Callable[[], Iterator[list[Any]]]] = field(default_factory=list, repr=False)

    def __len__(self) -> int:
        return len(self.names)

    def frames(self) -> Iterator[list[Any]]:
        for part in self.parts:
            yield from part()

    def extend(self, other: UnlabelledSet) -> None:
        self.names += other.names
        self.sources += other.sources
        self.parts += other.parts


def _is_video(meta: Any) -> bool:
    return bool(meta.is_sequence) or meta.get_sequence_size() != 1


def _media_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """The example files of a folder (images, video files, sub-folders of frames), and the
    files skipped (other extensions, hidden files)."""
    found, skipped = [], []
    for p in sorted(folder.iterdir(), key=lambda p: natural_key(p.name)):
        if p.name.startswith("."):
            continue
        if p.is_dir() or p.suffix.lower() in IMAGE_EXTENSIONS + VIDEO_EXTENSIONS:
            found.append(p)
        else:
            skipped.append(p)
    return found, skipped


def _frame_files(folder: Path) -> list[Path]:
    """The image files of a folder that is one video, in (natural) sorted order."""
    return [p for p in _media_files(folder)[0] if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]


def _fit_frame(data: bytes, size: tuple[int, int] | None, channels: int, where: Path) -> bytes:
    """Re-encode a frame (PNG) to the dataset's fixed size and channels when it differs."""
    from autodl.writer import encode_frame, frame_shape

    try:
        h, w, c = frame_shape(data)
    except Exception as exc:  # Pillow's errors vary
        raise AutoDLError(where, f"is not an image Pillow can read ({exc})", field="--unlabelled") from None
    if (size is None or (h, w) == size) and (c is None or c == channels):
        return data
    return encode_frame(decode_frame(data, channels, size, path=where), "PNG")


def files_unlabelled(files: Sequence[Path], dataset: AutoDLDataset, names: Sequence[str] | None = None,
                     source: str = "") -> UnlabelledSet:
    """An unlabelled set of image files, video files or folders of frames, checked against
    the dataset (compressed frames; images for an image dataset, videos for a video one)."""
    meta = dataset.metadata("train")
    if meta.format != COMPRESSED:
        raise AutoDLError(files[0].parent if files else None,
                          f"unlabelled image or video files need a dataset of compressed frames; "
                          f"{dataset.root} stores {meta.format.lower()} values (give the unlabelled "
                          f"examples as an unlabelled subset of the same format instead)", field="--unlabelled")
    video = _is_video(meta)
    rows, cols = meta.get_matrix_size()
    size = (rows, cols) if rows > 0 and cols > 0 else None
    channels = meta.get_num_channels()
    kinds = []
    for f in files:
        kind = "frames" if f.is_dir() else "video" if f.suffix.lower() in VIDEO_EXTENSIONS else "image"
        if (kind != "image") != video:
            what = "a video" if kind != "image" else "an image"
            raise AutoDLError(f, f"is {what}, but the dataset {dataset.name} holds "
                                 f"{'videos' if video else 'images'}; unlabelled examples must be of the same kind",
                              field="--unlabelled")
        if kind == "frames" and not _frame_files(f):
            raise AutoDLError(f, "is a folder without image files; a folder is one video, its frames in "
                                 "sorted order", field="--unlabelled")
        kinds.append(kind)

    def frames() -> Iterator[list[Any]]:
        from autodl.convert import decode_video
        from autodl.writer import encode_frame

        for f, kind in zip(files, kinds, strict=True):
            if kind == "image":
                raw = [f.read_bytes()]
            elif kind == "frames":
                raw = [p.read_bytes() for p in _frame_files(f)]
            else:
                raw = [encode_frame(x, "JPEG") for x in decode_video(f)]
                if not raw:
                    raise AutoDLError(f, "holds no video frame", field="--unlabelled")
            yield [_fit_frame(b, size, channels, f) for b in raw]

    names = list(names) if names is not None else [f.name for f in files]
    return UnlabelledSet(names, [source or f"{len(files)} files"], [frames])


def subset_unlabelled(source: AutoDLDataset, dataset: AutoDLDataset, names: Sequence[str] | None = None) -> \
        UnlabelledSet:
    """The ``unlabelled`` subset of ``source`` (an AutoDL dataset), checked against ``dataset``."""
    meta = source.metadata("unlabelled")
    own = dataset.metadata("train")
    if meta.format != own.format and COMPRESSED in (meta.format, own.format):
        raise AutoDLError(source.subset_dir("unlabelled"), f"stores {meta.format.lower()} frames, the dataset "
                                                           f"{dataset.name} {own.format.lower()} ones; they must "
                                                           f"be of the same format", field="--unlabelled")
    n = meta.sample_count
    if names is None or len(names) != n:
        if names is not None:
            logger.warning("%s: %d unlabelled records but %d names; naming them by position",
                           source.subset_dir("unlabelled"), n, len(names))
        names = [f"{source.name}.data/unlabelled#{i}" for i in range(n)]

    def frames() -> Iterator[list[Any]]:
        for ex in source.iter_raw("unlabelled"):
            yield ex.frames

    return UnlabelledSet(list(names), [str(source.subset_dir("unlabelled"))], [frames])


def _csv_unlabelled_names(folder: Path) -> tuple[list[str], set[Path]]:
    """The ``FileName`` of each row of ``labels.csv`` that the converter puts in the unlabelled
    subset (``subset`` = ``unlabelled``; without a subset column, an empty label cell), in
    order, and the resolved paths of every row."""
    from autodl.convert import LABEL_COLUMNS, LABELS_CSV, read_labels_csv

    unlabelled, listed = [], set()
    header, rows = read_labels_csv(folder / LABELS_CSV)
    label_col = next((c for c in reversed(LABEL_COLUMNS) if c in header), None)
    if "FileName" not in header or label_col is None:
        return [], set()
    i_name, i_label = header.index("FileName"), header.index(label_col)
    i_subset = header.index("subset") if "subset" in header else None
    for _, cells in rows:
        def cell(i: int | None, cells: list[str] = cells) -> str:
            return cells[i].strip() if i is not None and i < len(cells) else ""

        name = cell(i_name)
        listed.add((folder / name).resolve())
        if i_subset is not None:
            if cell(i_subset).lower() == "unlabelled":
                unlabelled.append(name)
        elif not cell(i_label).replace(",", " ").split():
            unlabelled.append(name)
    return unlabelled, listed


def find_unlabelled(data: str | Path, dataset: AutoDLDataset, unlabelled: str | Path | None = None, *,
                    raw: bool = False) -> UnlabelledSet | None:
    """The unlabelled set of a self-service run (see the module docstring), or None.

    Parameters
    ----------
    data
        What the user gave as the data (a raw folder or an AutoDL dataset).
    dataset
        The AutoDL dataset the run scores (``data`` itself, or its formatted copy).
    unlabelled
        The ``--unlabelled`` path; None: what ``data`` brings.
    raw
        Whether ``data`` is a raw folder (formatted into ``dataset``).

    Raises
    ------
    AutoDLError
        ``unlabelled`` does not exist, holds no example, is an AutoDL dataset without an
        unlabelled subset, or its examples do not suit the dataset.
    """
    if unlabelled is not None:
        path = Path(unlabelled)
        expected = "expected a folder of image or video files, or an AutoDL dataset with an unlabelled subset"
        if not path.exists():
            raise AutoDLError(path, f"does not exist; {expected}", field="--unlabelled")
        if not path.is_dir():
            raise AutoDLError(path, f"is not a folder; {expected}", field="--unlabelled")
        if (path / "metadata.textproto").is_file() and path.parent.name.endswith(".data"):
            return subset_unlabelled(AutoDLDataset(path.parent), dataset)
        if any(p.is_dir() and p.name.endswith(".data") for p in path.iterdir()):
            source = AutoDLDataset(path)
            if "unlabelled" not in source.subsets:
                raise AutoDLError(path, f"is an AutoDL dataset without an unlabelled subset (it has "
                                        f"{', '.join(source.subsets)}); {expected}", field="--unlabelled")
            return subset_unlabelled(source, dataset)
        files, skipped = _media_files(path)
        if not files:
            kinds = ", ".join(IMAGE_EXTENSIONS + VIDEO_EXTENSIONS)
            raise AutoDLError(path, f"holds no image or video file ({kinds}); {expected}", field="--unlabelled")
        if skipped:
            logger.warning("%s: skipped %d files that are not images or videos (%s)", path, len(skipped),
                           ", ".join(p.name for p in skipped[:5]))
        return files_unlabelled(files, dataset, source=str(path))

    found: UnlabelledSet | None = None
    if raw:
        names, listed = _csv_unlabelled_names(Path(data).resolve())
        if "unlabelled" in dataset.subsets:
            found = subset_unlabelled(dataset, dataset, names)
            found.sources = [f"{Path(data) / 'labels.csv'} (unlabelled rows)"]
        folder = Path(data) / "unlabelled"
        if folder.is_dir():
            files, skipped = _media_files(folder)
            root = Path(data).resolve()
            outside = [f for f in files if not f.resolve().is_relative_to(root)]
            if outside:  # a symbolic link out of the data folder, or unlabelled/ itself a link
                raise AutoDLError(outside[0], f"points outside {root}; the files of the data's unlabelled/ folder "
                                              "must stay inside it", field="unlabelled")
            files = [f for f in files if f.resolve() not in listed]
            if skipped:
                logger.warning("%s: skipped %d files that are not images or videos", folder, len(skipped))
            if files:
                extra = files_unlabelled(files, dataset, names=[f"unlabelled/{f.name}" for f in files],
                                         source=str(folder))
                if found is None:
                    found = extra
                else:
                    found.extend(extra)
    elif "unlabelled" in dataset.subsets:
        found = subset_unlabelled(dataset, dataset)
    return found


# --- the dataset the model runs on ------------------------------------------------------------------
def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def build_run_dataset(dataset: AutoDLDataset, unlabelled: UnlabelledSet, dest: str | Path) -> Path:
    """Write the copy of ``dataset`` whose test set is its test examples followed by the
    unlabelled examples (see the module docstring); returns ``dest``.

    The training subset is copied as it is (hard links where possible), the test subset
    written with :func:`autodl.writer.write_subset` in the dataset's format (records
    without labels), the ``.solution`` (the real test solution, ``n_test`` rows),
    ``<name>_label.name`` and ``<name>_public.info`` copied. Written beside ``dest`` and
    renamed into place.
    """
    from autodl.writer import write_subset

    dest = Path(dest)
    test_meta = dataset.metadata("test")
    n_test = test_meta.sample_count
    fmt = COMPRESSED if test_meta.format == COMPRESSED else DENSE
    with atomic_folder(dest) as tmp:
        data_dir = tmp / f"{dataset.name}.data"
        data_dir.mkdir(parents=True)
        shutil.copytree(dataset.subset_dir("train"), data_dir / "train", copy_function=_link_or_copy)

        def examples() -> Iterator[RawExample]:
            for ex in dataset.iter_raw("test"):
                yield RawExample(ex.frames, [], [])
            for frames in unlabelled.frames():
                yield RawExample(frames, [], [])

        meta = write_subset(data_dir / "test", dataset.name, "test", examples(), test_meta.output_dim, fmt=fmt,
                            num_channels=test_meta.matrix_spec[0].num_channels,
                            label_to_index_map=test_meta.label_to_index_map, is_sequence=test_meta.is_sequence)
        if meta.sample_count != n_test + len(unlabelled):
            raise AutoDLError(data_dir / "test", f"{meta.sample_count} examples written; expected {n_test} test + "
                                                 f"{len(unlabelled)} unlabelled")
        for file in (dataset.solution_path, dataset.root / f"{dataset.name}_label.name",
                     dataset.root / f"{dataset.name}_public.info"):
            if file.is_file():
                shutil.copy2(file, tmp / file.name)
    logger.info("wrote %s: test = %d test + %d unlabelled examples", dest, n_test, len(unlabelled))
    return dest


# --- outputs ----------------------------------------------------------------------------------------
def read_decision(path: str | Path) -> tuple[dict[str, Any] | None, str | None]:
    """The decision a model wrote (see :data:`DECISION_ENV`), and why there is none."""
    path = Path(path)
    if not path.is_file():
        return None, "no decision recorded"
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        logger.warning("%s: the decision file cannot be read (%s)", path, exc)
        return None, f"the decision file {path.name} cannot be read ({exc})"
    if not isinstance(data, dict):
        return None, f"the decision file {path.name} holds no JSON object"
    return data, None


def predicted_classes(probabilities: np.ndarray, multilabel: bool) -> list[list[int]]:
    """Per row, the predicted classes: the top one; for multi-label data every class of
    probability >= 0.5 (the top one when none reaches it)."""
    out = []
    for row in probabilities:
        top = int(np.argmax(row))
        if multilabel:
            chosen = [int(j) for j in np.flatnonzero(row >= 0.5)]
            out.append(chosen or [top])
        else:
            out.append([top])
    return out


def write_unlabelled_outputs(predict_file: str | Path, names: Sequence[str], out_dir: str | Path, *,
                             output_dim: int, class_names: Sequence[str] | None = None,
                             multilabel: bool = False) -> tuple[Path, Path]:
    """Copy a model's ``unlabelled.predict`` into ``out_dir`` and write ``unlabelled.csv`` beside it.

    ``unlabelled.csv`` has the columns ``FileName`` (``names``), ``Predicted`` (the class
    name(s), ``;``-joined; the class index without names) and ``Probability`` (the top
    probability of the row).

    Raises
    ------
    PredictionError
        The file does not hold one row of ``output_dim`` values per name.
    """
    out_dir = Path(out_dir)
    probs = load_prediction(predict_file, len(names), output_dim)
    predict = out_dir / UNLABELLED_PREDICT
    if Path(predict_file).resolve() != predict.resolve():
        shutil.copyfile(predict_file, predict)
    names_ok = class_names is not None and len(class_names) == output_dim
    path = out_dir / UNLABELLED_CSV
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["FileName", "Predicted", "Probability"])
        for name, row, classes in zip(names, probs, predicted_classes(probs, multilabel), strict=True):
            label = ";".join(class_names[j] if names_ok else str(j) for j in classes)
            writer.writerow([name, label, f"{float(row.max()):.6g}"])
    return predict, path


# --- one model ---------------------------------------------------------------------------------------
@dataclass
class ModelRun(ScoredMixin):
    """One model's run: where it went, its status, its scores, its decision, its unlabelled outputs."""

    model: str
    out: Path
    status: str
    score: ScoreResult
    result: RunResult | None
    decision: dict[str, Any] | None = None
    decision_note: str | None = None
    unlabelled_predict: Path | None = None
    unlabelled_csv: Path | None = None
    error: str | None = None
    wall_seconds: float = 0.0

    @property
    def num_predictions(self) -> int:
        return len(self.score.timestamps)

    @property
    def scores_txt(self) -> Path:
        return self.out / "scores" / "scores.txt"

    @property
    def learning_curve(self) -> Path:
        return self.out / "scores" / "learning-curve.png"

    @property
    def log_file(self) -> Path:
        return self.out / "ingestion.log"


def _portfolio_for(model: str, portfolio: str | Path | None) -> str | Path | None:
    if portfolio is None and model in ("baseline:single-best", "baseline:oracle") \
            and (DEFAULT_PORTFOLIO / "summary.json").is_file():
        logger.info("%s: using the shipped portfolio %s", model, DEFAULT_PORTFOLIO)
        return DEFAULT_PORTFOLIO
    return portfolio


def _prepare_model(model: str, out: Path) -> str:
    """A ``submission:FILE.zip`` is extracted into ``out/submission`` once (the child and this
    process then read the folder); other names are returned as they are."""
    from submission.model_kinds import unpack_submission

    if model.startswith("submission:"):
        path = Path(model.removeprefix("submission:"))
        if path.is_file() and path.suffix.lower() == ".zip":
            return f"submission:{unpack_submission(path, out / 'submission').resolve()}"
    return model


def run_model(model: str, dataset: AutoDLDataset, protocol: Protocol, out: str | Path, *, label: str | None = None,
              run_dataset: str | Path | None = None, scored_rows: int | None = None,
              portfolio: str | Path | None = None, device: str | None = None, seed: int | None = None,
              threads: int | None = None, progress: ProgressCallback = _noop) -> ModelRun:
    """Run one model as the organizers' local test (ingestion in a child process on the wall
    clock, ended at the budget) on ``run_dataset`` (default: ``dataset``), score it against
    ``dataset``'s solution into ``out/scores``, and read its decision (``out/decision.json``).

    While ingestion runs, ``progress`` gets the seconds since the start, the predictions so
    far and the NAUC of the latest one (scored here as it appears). The unlabelled rows, if
    any, are left in ``out/predictions/unlabelled.predict`` (see :func:`write_unlabelled_outputs`).
    ``label`` is the name shown (default: ``model``).
    """
    from finetune.config_runs import run_local_model

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    decision_path = (out / DECISION_FILE).resolve()
    pred_dir = out / "predictions"
    for stale in (decision_path, out / UNLABELLED_PREDICT, out / UNLABELLED_CSV, pred_dir / UNLABELLED_PREDICT):
        stale.unlink(missing_ok=True)  # of an earlier run into the same folder
    solution = dataset.solution()
    state: dict[str, Any] = {"n": 0, "nauc": None}
    budget = protocol.time_budget
    label = label or model

    def tick(elapsed: float, n: int) -> None:
        if n > state["n"]:
            try:
                pred = load_prediction(pred_dir / f"{dataset.name}.predict_{n - 1}", *solution.shape)
                state["nauc"] = nauc(solution, pred)
            except (PredictionError, OSError, ValueError):  # a file being replaced: the next tick scores it
                n = state["n"]
            state["n"] = n
        progress(Progress("ingestion", label, budget, elapsed, state["n"], state["nauc"]))

    progress(Progress("setting up", label, budget, message="constructing the model (not charged to the budget)"))
    t0 = time.perf_counter()
    try:
        res = run_local_model(dataset.root, model, protocol, out, device=device, seed=seed, threads=threads,
                              on_tick=tick, portfolio=_portfolio_for(model, portfolio),
                              env={DECISION_ENV: str(decision_path)},
                              ingestion_dataset=run_dataset, scored_rows=scored_rows)
    except AutoDLError as exc:  # the names were checked before: the child failed before its budget started
        logger.error("%s: %s", label, exc)
        empty = ScoreResult(task_name=dataset.name, time_budget=budget, t0=protocol.t0, start_time=0.0,
                            timestamps=[], nauc_scores=[], accuracy=None, score=0.0, duration=0.0)
        decision, note = read_decision(decision_path)
        return ModelRun(label, out, Status.CRASHED, empty, None, decision, note and f"{note} (model {label})",
                        error=str(exc), wall_seconds=time.perf_counter() - t0)
    s = res.score
    status = res.status
    progress(Progress("scoring", label, budget, min(s.duration, budget), len(s.timestamps),
                      s.nauc_scores[-1] if s.nauc_scores else None))
    decision, note = read_decision(decision_path)
    if decision is None:
        note = f"{note} (model {label})"
    return ModelRun(label, out, status, s, res, decision, note, error=res.error,
                    wall_seconds=time.perf_counter() - t0)


# --- the whole run -----------------------------------------------------------------------------------
@dataclass
class SelfServiceResult:
    """What a self-service run wrote."""

    out: Path
    data: Path
    dataset: Path
    formatted: bool
    run_dataset: Path
    protocol: Protocol
    runs: list[ModelRun]
    unlabelled: UnlabelledSet | None
    report: Path
    curves: Path
    class_names: list[str] | None = None

    @property
    def main(self) -> ModelRun:
        return self.runs[0]


def open_data(data: str | Path, out: str | Path, progress: ProgressCallback = _noop) -> tuple[AutoDLDataset, bool]:
    """The AutoDL dataset behind ``data``: itself, or a raw folder with ``labels.csv``
    formatted into ``out/data``. Returns it and whether it was formatted.

    Raises
    ------
    AutoDLError
        ``data`` does not exist, or is neither an AutoDL dataset nor a folder with labels.csv.
    """
    from autodl.convert import LABELS_CSV, convert_image_folder

    path = Path(data)
    expected = ("expected an AutoDL dataset (a folder holding <name>.data/ and <name>.solution) or a folder of "
                f"image or video files with a {LABELS_CSV}")
    if not path.exists():
        raise AutoDLError(path, f"does not exist; {expected}", field="--data")
    if path.is_dir() and (path / LABELS_CSV).is_file():
        dest = Path(out) / "data"
        if path.resolve().is_relative_to(dest.resolve()):
            raise AutoDLError(path, f"is inside {dest}, which the run formats the data into; choose another --out",
                              field="--data")
        progress(Progress("formatting", message=f"formatting {path} into {dest}"))
        written = [0]

        def step(n: int) -> None:
            written[0] += n
            progress(Progress("formatting", message=f"formatting {path} into {dest}", examples=written[0]))

        root = convert_image_folder(path, dest, overwrite=True, progress=step)
        return AutoDLDataset(root), True
    if path.is_dir() and (path.name.endswith(".data") or any(p.is_dir() and p.name.endswith(".data")
                                                               for p in path.iterdir())):
        return AutoDLDataset(path), False
    raise AutoDLError(path, f"is neither an AutoDL dataset nor a folder with {LABELS_CSV}; {expected}",
                      field="--data")


def run_selfservice(data: str | Path, out: str | Path, *, model: str = DEFAULT_MODEL,
                    unlabelled: str | Path | None = None, protocol: Protocol | str = "mini",
                    time_budget: float | None = None, compare: str | None = None,
                    portfolio: str | Path | None = None, device: str | None = None, seed: int | None = None,
                    threads: int | None = None, progress: ProgressCallback = _noop) -> SelfServiceResult:
    """The self-service run (see the module docstring).

    Parameters
    ----------
    data
        An AutoDL dataset folder, or a raw folder with ``labels.csv`` (formatted into ``out/data``).
    out
        The output folder (created).
    model
        A model name of :mod:`finetune.models` (default: the shipped submission).
    unlabelled
        A folder of image or video files, or an AutoDL dataset's unlabelled subset; None:
        the unlabelled examples ``data`` brings, if any.
    protocol
        A :class:`~autodl.protocol.Protocol` or its name; ``time_budget`` overrides its T.
    compare
        A second model name run the same way, into ``out/compare``.
    portfolio
        The portfolio folder of ``baseline:single-best|oracle`` (default: the shipped one).
    device, seed, threads
        Passed to the ingestion child (see ``python -m finetune.models``).
    progress
        Called with a :class:`Progress` at each stage and while ingestion runs.

    Raises
    ------
    AutoDLError
        Bad input (the data, the unlabelled set, a model name, the protocol), before
        any model runs.
    """
    import dataclasses

    from autodl.labels import is_multilabel
    from finetune.models import check_model
    from submission.report import RunSummary, plot_curves, write_report

    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    if time_budget is not None:
        if time_budget <= 0:
            raise AutoDLError(None, f"{time_budget!r}: expected seconds > 0", field="--time-budget")
        proto = dataclasses.replace(proto, name=f"{proto.name}*", time_budget=float(time_budget))
    out = Path(out)
    if unlabelled is not None and not Path(unlabelled).exists():  # before any slow work
        raise AutoDLError(unlabelled, "does not exist; expected a folder of image or video files, or an AutoDL "
                                      "dataset with an unlabelled subset", field="--unlabelled")
    dataset, formatted = open_data(data, out, progress)
    dataset.check()  # a damaged or empty subset, or a bad solution, fails here, before anything runs
    out.mkdir(parents=True, exist_ok=True)
    models = [_prepare_model(model, out)] + ([_prepare_model(compare, out / COMPARE_DIR)] if compare else [])
    for name in models:  # an unknown or unrunnable model fails here, before anything runs
        check_model(name, portfolio=_portfolio_for(name, portfolio), dataset=dataset)
    unl = find_unlabelled(data, dataset, unlabelled, raw=formatted)
    n_test = dataset.metadata("test").sample_count
    run_dataset = dataset.root
    if unl is not None and len(unl):
        progress(Progress("formatting", message=f"appending {len(unl)} unlabelled examples to the test set"))
        run_dataset = build_run_dataset(dataset, unl, out / "run-data")
    else:
        unl = None
        if (out / "run-data").is_dir():  # of an earlier run into the same folder
            shutil.rmtree(out / "run-data")
    class_names = dataset.label_names()
    output_dim = dataset.metadata("test").output_dim
    multilabel = is_multilabel(dataset.labels("train"))

    runs: list[ModelRun] = []
    for i, (name, given) in enumerate(zip(models, [model, compare], strict=False)):
        run = run_model(name, dataset, proto, out if i == 0 else out / COMPARE_DIR, label=given,
                        run_dataset=run_dataset if unl else None, scored_rows=n_test if unl else None,
                        portfolio=portfolio, device=device, seed=seed, threads=threads, progress=progress)
        if unl is not None:
            predict = run.out / "predictions" / UNLABELLED_PREDICT
            if predict.is_file():
                try:
                    run.unlabelled_predict, run.unlabelled_csv = write_unlabelled_outputs(
                        predict, unl.names, run.out, output_dim=output_dim, class_names=class_names,
                        multilabel=multilabel)
                except PredictionError as exc:
                    logger.error("%s: %s", given, exc)
            else:
                logger.warning("%s made no prediction for the unlabelled examples", given)
        runs.append(run)

    curves = runs[0].learning_curve
    if len(runs) > 1:
        curves = plot_curves([(r.model, r.score) for r in runs], out / CURVES_FILE)
    summaries = [RunSummary(model=r.model, status=r.status, score=r.score, decision=r.decision,
                            decision_note=r.decision_note, error=r.error, out=r.out,
                            unlabelled_csv=r.unlabelled_csv) for r in runs]
    report = write_report(out / REPORT_FILE, dataset=dataset, data=Path(data), formatted=formatted,
                          protocol=proto, runs=summaries, curve_png=curves, unlabelled=unl,
                          class_names=class_names)
    progress(Progress("done", model, proto.time_budget, message=str(report)))
    return SelfServiceResult(out, Path(data), dataset.root, formatted, Path(run_dataset), proto, runs, unl,
                             report, curves, class_names)
