"""The bad-input corpus: small broken inputs and what each command must do with them.

Run directly, it writes the corpus under ``tests/data/bad/corpus/`` (ignored by git)::

    .venv/bin/python tests/data/bad/make_corpus.py [TARGET] [CASE ...]

``tests/test_reliability/test_bad_input.py`` writes it into a temporary folder and runs
every case through the command a user would type (``python -m autodl_meta.cli ...`` as a
subprocess), asserting the outcome written here; ``tests/data/bad/report.py`` prints the
table of ``docs/reliability.md`` ("Bad input: the corpus") from the same list, and the test
checks that the document holds it.

Each case is a folder ``<target>/<case>/`` holding its inputs (an AutoDL dataset under
``data/``, an image folder under ``images/``, ingestion output under ``predictions/``, a
portfolio, a selector, a timing table, a configuration) and a :class:`Case` saying

- the command (``autodl-meta`` arguments; ``{case}`` stands for the case folder);
- the outcome: either the one-line error (``error``: the text after ``autodl-meta: error:``,
  matched in full, ``{case}`` for the case folder, ``…`` for any text such as a decoder's
  own words) with exit code 2 and nothing else on stderr, or a graceful handling
  (``handled``: what happens, in words; the exit code ``exit_code``, 0 unless the handling
  is a documented failure report; lines of stdout and stderr matching ``stdout`` and
  ``stderr``; no traceback);
- the output the command writes (``out``): after a failure it must not exist, or hold
  exactly the files it held before (``keep.txt``), unchanged (so after a failure reported
  as handled); after a graceful handling that succeeds it must be complete (a dataset that
  reads back, a run's scores).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
DEFAULT_TARGET = HERE / "corpus"
NAME = "bad"                     # the dataset name of every AutoDL dataset of the corpus
KEEP = "keep.txt"                # a file already in an output folder: it must survive a failure
KEEP_TEXT = "written before the command ran\n"
ANY = "…"                        # any text, in an expected error or output line


@dataclass(frozen=True)
class Case:
    """One bad input and the outcome the command must have (see the module docstring)."""

    name: str
    what: str
    command: tuple[str, ...]
    make: Callable[[Path], None]
    error: str | None = None          # the one-line error (a pattern), or None where handled
    handled: str | None = None        # the graceful handling, in words
    stdout: tuple[str, ...] = ()      # where handled: patterns, each matching a whole line of stdout
    stderr: tuple[str, ...] = ()      # where handled: patterns, each matching a whole line of stderr
    exit_code: int = 0                # where handled: the exit code (not 0: a failure reported as documented)
    out: str | None = None            # the output the command writes, relative to the case folder
    slow: bool = False                # runs a model (pytest marker 'slow')
    smoke: bool = False               # slow, but kept in the default test run (marker 'smoke')

    def __post_init__(self) -> None:
        if (self.error is None) == (self.handled is None):
            raise ValueError(f"{self.name}: give exactly one of error and handled")

    def argv(self, folder: Path) -> list[str]:
        """The command's arguments for the case written in ``folder``."""
        return [a.replace("{case}", str(folder)) for a in self.command]

    @property
    def command_line(self) -> str:
        """The command as the table shows it (paths relative to the case folder)."""
        return "autodl-meta " + " ".join(self.command).replace("{case}/", "")

    @property
    def outcome(self) -> str:
        """The outcome as the table shows it."""
        if self.error is not None:
            return "error: " + self.error.replace("{case}/", "").replace("{case}", ".")
        return "handled: " + self.handled.replace("{case}/", "")  # type: ignore[union-attr]


def line_regex(pattern: str, folder: Path) -> re.Pattern[str]:
    """The regular expression of an expected line: ``{case}`` is ``folder``, ``…`` any text."""
    parts = re.split(r"(\{case\}|…)", pattern)
    return re.compile("".join(re.escape(str(folder)) if p == "{case}" else ".*" if p == ANY else re.escape(p)
                              for p in parts), re.DOTALL)


# --- building blocks ----------------------------------------------------------------------------
def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def write_dataset(folder: Path, *, train_labels: list[int] | None = None) -> Path:
    """A small valid AutoDL dataset ``folder/data`` named ``bad``: 12 train and 6 test 8x8 RGB
    PNG images of 3 classes."""
    from autodl.writer import write_arrays

    rng = _rng()
    x_train = rng.integers(0, 256, (12, 8, 8, 3), dtype=np.uint8)
    x_test = rng.integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)
    y_train = train_labels if train_labels is not None else [i % 3 for i in range(12)]
    return write_arrays(folder / "data", NAME, x_train, y_train, x_test, [i % 3 for i in range(6)],
                        num_classes=3, threads=1)


def data_dir(folder: Path) -> Path:
    return folder / "data" / f"{NAME}.data"


def train_records(folder: Path) -> Path:
    return data_dir(folder) / "train" / f"sample-{NAME}-train.tfrecord"


def truncate(path: Path) -> None:
    """Cut ``path`` in the middle of a record."""
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2 + 7])


def metadata_path(folder: Path, subset: str = "train") -> Path:
    return data_dir(folder) / subset / "metadata.textproto"


def edit_metadata(folder: Path, old: str, new: str, subset: str = "train") -> None:
    path = metadata_path(folder, subset)
    text = path.read_text()
    if old not in text:
        raise ValueError(f"{path}: no {old!r} to replace")
    path.write_text(text.replace(old, new, 1))


def png_bytes(shape: tuple[int, ...], mode: str | None = None, value: int | None = None) -> bytes:
    """A PNG of random pixels (or of one ``value``: a huge one stays small on disk)."""
    from PIL import Image

    arr = (np.full(shape, value, np.uint8) if value is not None
           else _rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8))
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, format="PNG")
    return buf.getvalue()


def rewrite_train_records(folder: Path, change: Callable[[int, object], None]) -> None:
    """Parse the train records, ``change(index, SequenceExample)`` each, write them back."""
    from autodl.proto import SequenceExample
    from autodl.tfrecord import read_records, write_records

    path = train_records(folder)
    out = []
    for i, raw in enumerate(read_records(path)):
        msg = SequenceExample()
        msg.ParseFromString(raw)
        change(i, msg)
        out.append(msg.SerializeToString())
    write_records(path, out)


def set_frame(index: int, frame: bytes) -> Callable[[int, object], None]:
    def change(i: int, msg: object) -> None:
        if i == index:
            feature = msg.feature_lists.feature_list["0_compressed"].feature[0]  # type: ignore[attr-defined]
            feature.bytes_list.value[0] = frame
    return change


def image_folder(folder: Path, rows: list[tuple[str, str]] | None = None, *, extra: int = 0) -> Path:
    """``folder/images``: six 6x6 RGB PNGs ``img0.png`` ... ``img5.png`` of two classes (0, 1) and a
    ``labels.csv`` (``rows``, default one per image; ``extra`` more rows after those)."""
    d = folder / "images"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(6):
        (d / f"img{i}.png").write_bytes(png_bytes((6, 6, 3), value=40 * i))
    if rows is None:
        rows = [(f"img{i}.png", str(i % 2)) for i in range(6)]
    (d / "labels.csv").write_text("FileName,Labels\n" + "".join(f"{f},{lab}\n" for f, lab in rows))
    return d


def rows_plus(*more: tuple[str, str]) -> list[tuple[str, str]]:
    return [(f"img{i}.png", str(i % 2)) for i in range(6)] + list(more)


def predictions(folder: Path, rows: list[str] | None = None, *, solution: str | None = None) -> None:
    """``folder/predictions`` (start.txt, one ``bad.predict_0``, end.txt) and ``folder/bad.solution``
    (4 test examples of 3 classes)."""
    d = folder / "predictions"
    d.mkdir(parents=True)
    (d / "start.txt").write_text("ingestion_pid: 1\ntask_name: bad\ntime_budget: 60\nstart_time: 1000.0\n"
                                 "0: 1002.5\n")
    if rows is None:
        rows = ["0.9 0.05 0.05", "0.1 0.8 0.1", "0.2 0.2 0.6", "0.7 0.2 0.1"]
    (d / "bad.predict_0").write_text("".join(r + "\n" for r in rows))
    (d / "end.txt").write_text("ingestion_duration: 3.0\ningestion_success: 1\nend_time: 1003.0\n")
    sol = solution if solution is not None else "1 0 0\n0 1 0\n0 0 1\n1 0 0\n"
    (folder / "bad.solution").write_text(sol)


def keep_folder(folder: Path, name: str) -> Path:
    """An output folder that already holds ``keep.txt``."""
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    (d / KEEP).write_text(KEEP_TEXT)
    return d


def portfolio(folder: Path) -> Path:
    """``folder/portfolio``: copies of the shipped portfolio's portfolio.json and summary.json."""
    d = folder / "portfolio"
    d.mkdir(parents=True)
    for name in ("portfolio.json", "summary.json"):
        shutil.copy2(REPO / "portfolio" / "default" / name, d / name)
    return d


def selector(folder: Path) -> Path:
    """``folder/selector``: a copy of the shipped selector."""
    d = folder / "selector"
    shutil.copytree(REPO / "portfolio" / "default" / "selector", d)
    return d


def tiny_space(folder: Path) -> Path:
    path = folder / "space.yaml"
    shutil.copy2(REPO / "tests" / "data" / "space-tiny.yaml", path)
    return path


def timing_table() -> dict:
    return json.loads((REPO / "configs" / "timing" / "cpu-2core-epyc.json").read_text())


def features(folder: Path) -> Path:
    """``folder/features``: random embeddings of the shipped cost matrix's datasets, and a copy of
    the matrix as ``folder/cost_matrix.csv``."""
    from metafeatures.features import DatasetFeatures

    csv = folder / "cost_matrix.csv"
    shutil.copy2(REPO / "portfolio" / "default" / "cost_matrix.csv", csv)
    names = [line.split(",", 1)[0] for line in csv.read_text().splitlines()[1:] if line.strip()]
    d = folder / "features"
    rng = _rng()
    for name in names:
        DatasetFeatures(name, rng.normal(size=(8, 4)), np.eye(2, dtype=np.float32)[[0, 1] * 4]).save(d)
    return d


def submission_zip(folder: Path) -> Path:
    """``folder/submission.zip``: a zip holding a ``model.py`` (never run: the data fails first)."""
    path = folder / "submission.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("model.py", "class Model:\n    pass\n")
    return path


# --- the cases ------------------------------------------------------------------------------------
CASES: list[Case] = []


def case(name: str, what: str, command: str, *, error: str | None = None, handled: str | None = None,
         stdout: tuple[str, ...] = (), stderr: tuple[str, ...] = (), exit_code: int = 0, out: str | None = None,
         slow: bool = False, smoke: bool = False) -> Callable[[Callable[[Path], None]], Callable[[Path], None]]:
    """Register the function below as the maker of a case (its inputs, written into a folder)."""
    def register(make: Callable[[Path], None]) -> Callable[[Path], None]:
        if any(c.name == name for c in CASES):
            raise ValueError(f"case {name!r} twice")
        CASES.append(Case(name, what, tuple(command.split()), make, error, handled, stdout, stderr, exit_code, out,
                          slow, smoke))
        return make
    return register


SHOW = "data show {case}/data"
FORMAT = "data format {case}/images --out {case}/out"
SCORE = "score --predictions {case}/predictions --solution {case}/bad.solution --out {case}/scores"
RUN = ("run --dataset {case}/data --model baseline:default --clock simulated --protocol mini --time-budget 10 "
       "--out {case}/run")
TRAIN = "{case}/data/bad.data/train"
TRAIN_RECORDS = f"{TRAIN}/sample-bad-train.tfrecord"
LABELS_CSV = "{case}/images/labels.csv"


# TFRecords ---------------------------------------------------------------------------------------
@case("tfrecord-truncated", "train TFRecord cut off in the middle of a record", SHOW,
      error=f"{TRAIN_RECORDS}: truncated TFRecord: record 6 at byte 2268 has an incomplete header (7 of 12 bytes)")
def _(f: Path) -> None:
    write_dataset(f)
    truncate(train_records(f))


@case("tfrecord-bit-flip", "one byte of a train record's data changed", SHOW,
      error=f"{TRAIN_RECORDS}: corrupted TFRecord: data checksum of record 0 at byte 0 does not match")
def _(f: Path) -> None:
    write_dataset(f)
    p = train_records(f)
    data = bytearray(p.read_bytes())
    data[40] ^= 0xFF
    p.write_bytes(bytes(data))


@case("tfrecord-not-tfrecord", "a text file named sample-bad-train.tfrecord", SHOW,
      error=f"{TRAIN_RECORDS}: corrupted TFRecord: length checksum of record 0 at byte 0 does not match "
            "(not a TFRecord file, or damaged)")
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).write_text("this is not a TFRecord file, only text that happens to have its name\n")


@case("tfrecord-zero-bytes", "a zero-byte train TFRecord; the metadata says 12 examples", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'sample_count': says 12 but {TRAIN} holds 0 records")
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).write_bytes(b"")


@case("tfrecord-no-file", "no sample* file in the train folder", SHOW,
      error=f"{TRAIN}: holds no sample* TFRecord file")
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).unlink()


@case("tfrecord-not-sequence-example", "well-framed records whose payload is not a SequenceExample", SHOW,
      error=f"{TRAIN_RECORDS}: record 0 is not a SequenceExample")
def _(f: Path) -> None:
    from autodl.tfrecord import write_records

    write_dataset(f)
    write_records(train_records(f), [b"\xff\xfe not a protobuf \x00" * 3] * 12)


@case("tfrecord-frame-not-image", "a record whose frame bytes are not an image", SHOW,
      error=f"{TRAIN_RECORDS}: field '0_compressed': record 0: a frame does not decode as an image "
            "(cannot identify image file …)")
def _(f: Path) -> None:
    write_dataset(f)
    rewrite_train_records(f, set_frame(0, b"GIF89a, but not really an image"))


@case("tfrecord-frame-huge", "a record whose frame is a 20000x20000 PNG (a decompression bomb)", SHOW,
      error=f"{TRAIN_RECORDS}: field '0_compressed': record 0: a frame does not decode as an image "
            "(Image size (400000000 pixels) exceeds limit of 178956970 pixels, …)")
def _(f: Path) -> None:
    write_dataset(f)
    rewrite_train_records(f, set_frame(0, png_bytes((20000, 20000), "L", value=0)))


@case("tfrecord-label-out-of-range", "a train record with the label index 7 in a dataset of 3 classes", SHOW,
      error=f"{TRAIN_RECORDS}: field 'label_index': record 2 has label index 7; expected 0 <= index < output_dim=3")
def _(f: Path) -> None:
    write_dataset(f)

    def change(i: int, msg: object) -> None:
        if i == 2:
            msg.context.feature["label_index"].int64_list.value[0] = 7  # type: ignore[attr-defined]
    rewrite_train_records(f, change)


@case("tfrecord-truncated-run", "a truncated train TFRecord given to run (simulated clock)", RUN, out="run",
      error=f"{TRAIN_RECORDS}: truncated TFRecord: record 6 at byte 2268 has an incomplete header (7 of 12 bytes)")
def _(f: Path) -> None:
    write_dataset(f)
    truncate(train_records(f))  # no run/ yet: it must not be created


@case("tfrecord-bit-flip-run-wall", "a corrupted train record given to run on the wall clock (the organizers' "
      "local test)", "run --dataset {case}/data --model baseline:linear --time-budget 10 --out {case}/run",
      out="run", error=f"{TRAIN_RECORDS}: corrupted TFRecord: data checksum of record 0 at byte 0 does not match")
def _(f: Path) -> None:
    write_dataset(f)
    p = train_records(f)
    data = bytearray(p.read_bytes())
    data[40] ^= 0xFF
    p.write_bytes(bytes(data))
    keep_folder(f, "run")


@case("tfrecord-truncated-metafeatures", "a truncated train TFRecord given to metafeatures extract",
      "metafeatures extract --dataset {case}/data --out {case}/features --train-samples 8 --test-samples 4 "
      "--input-size 32", out="features", exit_code=1,
      handled="reported per dataset (exit 1; the features of the other datasets given are computed): `features of "
              "0 datasets in features; 1 failed (tracebacks in the log, -v):` then `bad: FormatError: <the error "
              "data show gives>`; nothing written",
      stderr=("features of 0 datasets in {case}/features; 1 failed (tracebacks in the log, -v):",
              (f"  bad: FormatError: {TRAIN_RECORDS}: truncated TFRecord: record 6 at byte 2268 has an incomplete "
               "header (7 of 12 bytes)")))
def _(f: Path) -> None:
    write_dataset(f)
    truncate(train_records(f))
    keep_folder(f, "features")


@case("tfrecord-truncated-bohb", "a truncated train TFRecord given to bohb run",
      "bohb run --dataset {case}/data --space {case}/space.yaml --iterations 1 --workers 1 --warm-start none "
      "--out {case}/bohb", out="bohb",
      error=f"{TRAIN_RECORDS}: truncated TFRecord: record 6 at byte 2268 has an incomplete header (7 of 12 bytes)")
def _(f: Path) -> None:
    write_dataset(f)
    tiny_space(f)
    truncate(train_records(f))


@case("tfrecord-truncated-submission-check", "a truncated train TFRecord given to submission check",
      "submission check {case}/submission.zip --data {case}/data --time-budget 10 --out {case}/predictions",
      out="predictions",
      error=f"{TRAIN_RECORDS}: truncated TFRecord: record 6 at byte 2268 has an incomplete header (7 of 12 bytes)")
def _(f: Path) -> None:
    write_dataset(f)
    truncate(train_records(f))
    submission_zip(f)


# metadata.textproto ------------------------------------------------------------------------------
@case("metadata-missing", "train/metadata.textproto deleted", SHOW,
      error=f"{TRAIN}/metadata.textproto: not found; every subset folder (train/, test/) needs one")
def _(f: Path) -> None:
    write_dataset(f)
    metadata_path(f).unlink()


@case("metadata-missing-field", "output_dim left out", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'output_dim': missing; every metadata.textproto must give it")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "output_dim: 3\n", "")


@case("metadata-malformed", "a matrix_spec block left open", SHOW,
      error=f"{TRAIN}/metadata.textproto: malformed metadata (line:column 13:11 : Expected \"}}\".); expected "
            "the text format of autodl.DataSpecification")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "}", "")


@case("metadata-wrong-type", "output_dim: three", SHOW,
      error=f"{TRAIN}/metadata.textproto: malformed metadata (line:column 4:13 : 'output_dim: three': Couldn't "
            "parse integer: three); expected the text format of autodl.DataSpecification")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "output_dim: 3", "output_dim: three")


@case("metadata-unknown-field", "a field DataSpecification does not have (num_classes)", SHOW,
      error=f"{TRAIN}/metadata.textproto: malformed metadata (line:column 5:1 : Message type "
            "\"autodl.DataSpecification\" has no field named \"num_classes\".); expected the text format of "
            "autodl.DataSpecification")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "output_dim: 3", "output_dim: 3\nnum_classes: 3")


@case("metadata-zero-rows", "matrix_spec { row_count: 0 }", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'matrix_spec[0].row_count': 0; expected a size >= 1 or -1 (varies)")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "row_count: 8", "row_count: 0")


@case("metadata-not-utf8", "a Latin-1 byte in metadata.textproto", SHOW,
      error=f"{TRAIN}/metadata.textproto: not UTF-8 text; expected a text-format DataSpecification")
def _(f: Path) -> None:
    write_dataset(f)
    metadata_path(f).write_bytes(metadata_path(f).read_bytes() + b"# caf\xe9\n")


@case("metadata-count-contradicts", "sample_count: 20 over 12 records", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'sample_count': says 20 but {TRAIN} holds 12 records")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "sample_count: 12", "sample_count: 20")


@case("metadata-format-contradicts", "format: DENSE over compressed records", SHOW,
      error=f"{TRAIN_RECORDS}: field '0_dense_input': record 0 has no feature list '0_dense_input' (metadata says "
            "format: DENSE)")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "format: COMPRESSED", "format: DENSE")


@case("metadata-output-dim-contradicts", "train says output_dim: 3, test says 5", SHOW,
      error="{case}/data/bad.data/test/metadata.textproto: field 'output_dim': 5, but the train subset's says 3; "
            "every subset has the same classes")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "output_dim: 3", "output_dim: 5", subset="test")


@case("metadata-label-map-out-of-range", "label_to_index_map gives the index 9 of 3 classes", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'label_to_index_map': label 'x' has index 9; expected 0 <= index "
            "< output_dim=3")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "format: COMPRESSED\n}", "format: COMPRESSED\n}\nlabel_to_index_map {\n  key: 'x'\n  value: 9\n}")


@case("metadata-shape-contradicts", "row_count: 64 over 8x8 frames", SHOW,
      error=f"{TRAIN}/metadata.textproto: field 'matrix_spec[0].row_count': 64, but record 0 of "
            "sample-bad-train.tfrecord has a frame of 8x8 pixels (rows x columns)")
def _(f: Path) -> None:
    write_dataset(f)
    edit_metadata(f, "row_count: 8", "row_count: 64")


@case("label-names-not-utf8", "bad_label.name with a Latin-1 byte", SHOW,
      error="{case}/data/bad_label.name: not UTF-8 text; expected one class name per line")
def _(f: Path) -> None:
    write_dataset(f)
    (f / "data" / f"{NAME}_label.name").write_bytes(b"cat\ndog\ncaf\xe9\n")


# train sets --------------------------------------------------------------------------------------
@case("train-empty", "a train subset without a record (sample_count: 0)", SHOW,
      handled="summarised (exit 0): `train 0 examples` and `no training example (a model cannot be run on "
              "this dataset)`",
      stdout=("  train            0 examples  [T,H,W,C]=1x8x8x3  compressed  output_dim=3",
              "  train frame size: no training example (a model cannot be run on this dataset)"))
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).write_bytes(b"")
    edit_metadata(f, "sample_count: 12", "sample_count: 0")


@case("train-empty-run", "a train subset without a record, given to run", RUN, out="run",
      error=f"{TRAIN}/metadata.textproto: field 'sample_count': 0 examples in the train subset; a model needs at "
            "least one training example")
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).write_bytes(b"")
    edit_metadata(f, "sample_count: 12", "sample_count: 0")
    keep_folder(f, "run")


@case("train-single-class-run", "every train example in class 0 (of 3), the linear baseline on the wall clock",
      "run --dataset {case}/data --model baseline:linear --time-budget 8 --out {case}/run",
      handled="runs and is scored (exit 0): nothing separates the test classes, the NAUC is 0 or near it",
      stdout=("ALC … (… predictions, final NAUC …, protocol mini*: T=8 s, t0=3 s, wall clock)",), out="run",
      slow=True, smoke=True)
def _(f: Path) -> None:
    write_dataset(f, train_labels=[0] * 12)


@case("train-single-class-learner", "every train example in class 0 (of 3), the fine-tuning learner",
      RUN, out="run", slow=True,
      handled="runs and is scored (exit 0): its validation NAUC is undefined (taken as 0, with a warning), so it "
              "keeps its first predictions; ALC 0.0000",
      stdout=("ALC 0.0000  (… predictions, final NAUC 0.0000, protocol mini*: T=10 s, t0=3 s, simulated clock)",),
      stderr=("WARNING autodl.scoring: no solution column holds both classes; NAUC is undefined and taken as 0.0",))
def _(f: Path) -> None:
    write_dataset(f, train_labels=[0] * 12)


@case("csv-single-class", "a labels.csv whose rows all have the label 0", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': every labelled row has the class 0; a classification dataset needs at "
            "least 2 classes")
def _(f: Path) -> None:
    image_folder(f, [(f"img{i}.png", "0") for i in range(6)])


@case("csv-no-train-rows", "a labels.csv whose subset column puts every row in test", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'subset': no labelled row has subset 'train'; train and test both need labelled "
            "rows")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "labels.csv").write_text("FileName,Labels,subset\n" + "".join(f"img{i}.png,{i % 2},test\n" for i in range(6)))


@case("csv-header-only", "a labels.csv with its header and no row", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': has no data row; expected one row per example")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "labels.csv").write_text("FileName,Labels\n")


@case("csv-label-out-of-range", "the label 5 where label.name names 2 classes", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': row 4 (line 5): the label 5 of 'img3.png' is >= 2, the number of class "
            "names in label.name")
def _(f: Path) -> None:
    d = image_folder(f, [(f"img{i}.png", str(5 if i == 3 else i % 2)) for i in range(6)])
    (d / "label.name").write_text("cat\ndog\n")


@case("csv-label-negative", "the label -1", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': row 4 (line 5): the label -1 of 'img3.png' is negative; expected a class "
            "index >= 0")
def _(f: Path) -> None:
    image_folder(f, [(f"img{i}.png", str(-1 if i == 3 else i % 2)) for i in range(6)])


@case("csv-label-not-integer", "the label 'cat'", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': row 5 (line 6): the label 'cat' of 'img4.png' is not an integer class "
            "index")
def _(f: Path) -> None:
    image_folder(f, [(f"img{i}.png", "cat" if i == 4 else str(i % 2)) for i in range(6)])


@case("csv-no-label-column", "a labels.csv with the columns FileName,Class", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': no label column; found columns ['FileName', 'Class'], expected FileName "
            "and one of Labels, LabelConfidencePairs (optional: subset)")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "labels.csv").write_text("FileName,Class\n" + "".join(f"img{i}.png,{i % 2}\n" for i in range(6)))


# images ------------------------------------------------------------------------------------------
@case("image-undecodable", "a .png file holding text", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 3 (line 4): 'img2.png' is not an image Pillow can read (cannot "
            "identify image file '{case}/images/img2.png')")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img2.png").write_text("not a PNG at all")


@case("image-zero-bytes", "a zero-byte .png file", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 3 (line 4): 'img2.png' is not an image Pillow can read (cannot "
            "identify image file '{case}/images/img2.png')")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img2.png").write_bytes(b"")


@case("image-truncated", "a PNG cut off after its header (the header reads, the pixels do not)", FORMAT,
      out="out", error=f"{LABELS_CSV}: field 'FileName': row 3 (line 4): 'img2.png' is not an image Pillow can "
                       "read (image file is truncated)")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img2.png").write_bytes(png_bytes((30, 30, 3))[:60])


@case("image-huge", "a 10000x10000 PNG (one colour: 300 KB on disk, 300 MB decoded)", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 3 (line 4): 'img2.png' is 10000x10000 pixels, more than 89478485 "
            "(Pillow's decompression-bomb limit); resize it first")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img2.png").write_bytes(png_bytes((10000, 10000, 3), value=128))


@case("image-modes-mixed", "greyscale (L), RGB and RGBA PNGs in one folder", FORMAT, out="out",
      handled="converted (exit 0): the dataset has 3 channels, each image converted to RGB when it is read",
      stdout=("wrote {case}/out", "  train frame size (first …): median (6, 6) min (6, 6) max (6, 6), 3 channels"))
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img1.png").write_bytes(png_bytes((6, 6), "L"))
    (d / "img3.png").write_bytes(png_bytes((6, 6, 4), "RGBA"))


# labels.csv --------------------------------------------------------------------------------------
@case("csv-missing-file", "a row naming a file that is not there", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 7 (line 8): the file 'img9.png' does not exist in {{case}}/images")
def _(f: Path) -> None:
    image_folder(f, rows_plus(("img9.png", "1")))


@case("csv-duplicate-conflict", "the same file twice, with different labels", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'Labels': row 7 (line 8): 'img2.png' is listed again with the label '1', row 3 "
            "(line 4) gives '0'; a file is one example with one set of labels")
def _(f: Path) -> None:
    image_folder(f, rows_plus(("img2.png", "1")))


@case("csv-duplicate-subset", "the same file in train and in test", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'subset': row 7 (line 8): 'img2.png' is listed again in subset 'test', row 3 "
            "(line 4) puts it in 'train'; a file is one example in one subset")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "labels.csv").write_text("FileName,Labels,subset\n"
                                  + "".join(f"img{i}.png,{i % 2},{'test' if i >= 4 else 'train'}\n" for i in range(6))
                                  + "img2.png,0,test\n")


@case("csv-duplicate-identical", "the same row twice", FORMAT, out="out",
      handled="tolerated (exit 0): the repeated row is dropped with a warning naming both rows; 6 examples written",
      stdout=("wrote {case}/out",),
      stderr=(("WARNING autodl.convert: {case}/images/labels.csv row 7 (line 8): 'img2.png' repeats row 3 "
               "(line 4); the duplicate row is dropped"),))
def _(f: Path) -> None:
    image_folder(f, rows_plus(("img2.png", "0")))


@case("csv-path-escapes", "a FileName ../outside.png", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 7 (line 8): '../outside.png' points outside {{case}}/images; file "
            "names must stay inside the folder")
def _(f: Path) -> None:
    image_folder(f, rows_plus(("../outside.png", "1")))
    (f / "outside.png").write_bytes(png_bytes((6, 6, 3)))


@case("csv-path-absolute", "a FileName that is an absolute path", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 7 (line 8): '{{case}}/outside.png' is an absolute path; file names "
            "are relative to {case}/images")
def _(f: Path) -> None:
    (f / "outside.png").write_bytes(png_bytes((6, 6, 3)))
    image_folder(f, rows_plus((str(f / "outside.png"), "1")))


@case("csv-symlink-out", "a FileName that is a symbolic link to a file outside the folder", FORMAT, out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 7 (line 8): 'link.png' points outside {{case}}/images; file names "
            "must stay inside the folder")
def _(f: Path) -> None:
    (f / "outside.png").write_bytes(png_bytes((6, 6, 3)))
    d = image_folder(f, rows_plus(("link.png", "1")))
    (d / "link.png").symlink_to(f / "outside.png")


@case("selfservice-path-escapes", "the self-service run on a folder whose labels.csv names ../outside.png",
      "run --data {case}/images --out {case}/run", out="run",
      error=f"{LABELS_CSV}: field 'FileName': row 7 (line 8): '../outside.png' points outside {{case}}/images; file "
            "names must stay inside the folder")
def _(f: Path) -> None:
    image_folder(f, rows_plus(("../outside.png", "1")))
    (f / "outside.png").write_bytes(png_bytes((6, 6, 3)))
    keep_folder(f, "run")


@case("selfservice-train-empty", "the self-service run on an AutoDL dataset without a train record",
      "run --data {case}/data --model baseline:linear --time-budget 8 --out {case}/run", out="run",
      error=f"{TRAIN}/metadata.textproto: field 'sample_count': 0 examples in the train subset; a model needs at "
            "least one training example")
def _(f: Path) -> None:
    write_dataset(f)
    train_records(f).write_bytes(b"")
    edit_metadata(f, "sample_count: 12", "sample_count: 0")  # no run/ yet: it must not be created


@case("format-out-exists", "an output folder that already holds a file", FORMAT, out="out",
      error="{case}/out: already exists; choose another output folder or pass overwrite")
def _(f: Path) -> None:
    image_folder(f)
    keep_folder(f, "out")


@case("format-overwrite-bad-input", "--overwrite over an earlier output, with a damaged image",
      FORMAT + " --overwrite", out="out",
      error=f"{LABELS_CSV}: field 'FileName': row 3 (line 4): 'img2.png' is not an image Pillow can read (image file "
            "is truncated)")
def _(f: Path) -> None:
    d = image_folder(f)
    (d / "img2.png").write_bytes(png_bytes((30, 30, 3))[:60])
    keep_folder(f, "out")


# predictions and solutions (score) ---------------------------------------------------------------
@case("predict-nan", "a prediction holding nan", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: row 2, column 2 is nan; expected finite scores")
def _(f: Path) -> None:
    predictions(f, ["0.9 0.05 0.05", "0.1 nan 0.1", "0.2 0.2 0.6", "0.7 0.2 0.1"])
    keep_folder(f, "scores")


@case("predict-inf", "a prediction holding inf", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: row 3, column 1 is inf; expected finite scores")
def _(f: Path) -> None:
    predictions(f, ["0.9 0.05 0.05", "0.1 0.8 0.1", "inf 0.2 0.6", "0.7 0.2 0.1"])
    keep_folder(f, "scores")


@case("predict-wrong-columns", "a prediction of 2 columns for 3 classes", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: 2 columns; the solution has 3")
def _(f: Path) -> None:
    predictions(f, ["0.9 0.05", "0.1 0.8", "0.2 0.2", "0.7 0.2"])
    keep_folder(f, "scores")


@case("predict-wrong-rows", "a prediction of 3 rows for 4 test examples", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: 3 rows; the solution has 4")
def _(f: Path) -> None:
    predictions(f, ["0.9 0.05 0.05", "0.1 0.8 0.1", "0.2 0.2 0.6"])
    keep_folder(f, "scores")


@case("predict-ragged", "prediction rows of different lengths", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: row 2 has 2 values; row 1 has 3")
def _(f: Path) -> None:
    predictions(f, ["0.9 0.05 0.05", "0.1 0.8", "0.2 0.2 0.6", "0.7 0.2 0.1"])
    keep_folder(f, "scores")


@case("solution-mismatch", "a solution of 5 rows and 4 columns for predictions of 4x3", SCORE, out="scores",
      error="{case}/predictions/bad.predict_0: 4 rows; the solution has 5")
def _(f: Path) -> None:
    predictions(f, solution="1 0 0 0\n0 1 0 0\n0 0 1 0\n1 0 0 0\n0 0 0 1\n")
    keep_folder(f, "scores")


@case("solution-not-numbers", "a solution holding 'x'", SCORE, out="scores",
      error="{case}/bad.solution: holds a value that is not a number")
def _(f: Path) -> None:
    predictions(f, solution="1 0 0\n0 x 0\n0 0 1\n1 0 0\n")
    keep_folder(f, "scores")


@case("solution-dataset-mismatch", "a dataset's .solution of 2 rows for 6 test examples", SHOW,
      error="{case}/data/bad.solution: 2 rows; the test subset has sample_count=6")
def _(f: Path) -> None:
    write_dataset(f)
    (f / "data" / f"{NAME}.solution").write_text("1 0 0\n0 1 0\n")


@case("start-txt-malformed", "a start.txt that is not YAML", SCORE, out="scores",
      error="{case}/predictions/start.txt: is not valid YAML (line 2, column 1: expected ',' or ']', but got "
            "'<stream end>'); expected 'key: value' lines")
def _(f: Path) -> None:
    predictions(f)
    (f / "predictions" / "start.txt").write_text("start_time: [1000\n")
    keep_folder(f, "scores")


# artifacts ---------------------------------------------------------------------------------------
PORTFOLIO_RUN = ("run --dataset {case}/data --model baseline:single-best --portfolio {case}/portfolio "
                 "--clock simulated --protocol mini --time-budget 10 --out {case}/run")


@case("portfolio-truncated", "portfolio.json cut off", PORTFOLIO_RUN, out="run",
      error="{case}/portfolio/portfolio.json: field '--portfolio': cannot be read (Unterminated string starting "
            "at: …)")
def _(f: Path) -> None:
    write_dataset(f)
    p = portfolio(f) / "portfolio.json"
    p.write_text(p.read_text()[:1000])
    keep_folder(f, "run")


@case("portfolio-wrong-type", "portfolio.json holding a JSON list", PORTFOLIO_RUN, out="run",
      error="{case}/portfolio/portfolio.json: field '--portfolio': holds a JSON list; expected an object "
            "(`autodl-meta portfolio cost-matrix --out DIR` writes it)")
def _(f: Path) -> None:
    write_dataset(f)
    (portfolio(f) / "portfolio.json").write_text("[1, 2, 3]\n")
    keep_folder(f, "run")


@case("portfolio-incumbent-bad", "the single best's incumbent with a hyperparameter the space does not have",
      PORTFOLIO_RUN, out="run",
      error="{case}/portfolio/portfolio.json, the incumbent of … (baseline:single-best): field 'dropout_rate': "
            "unknown hyperparameter 'dropout_rate' (got 0.5) (did you mean 'dropout'?); allowed: …")
def _(f: Path) -> None:
    write_dataset(f)
    d = portfolio(f)
    data = json.loads((d / "portfolio.json").read_text())
    best = json.loads((d / "summary.json").read_text())["single_best"]["source"]
    for inc in data["incumbents"]:
        if inc["dataset"] == best:
            inc["config"]["dropout_rate"] = 0.5
    (d / "portfolio.json").write_text(json.dumps(data))
    keep_folder(f, "run")


SUBMISSION_BUILD = "submission build --selector {case}/selector --out {case}/submission.zip"


@case("selector-json-damaged", "selector.json cut off", SUBMISSION_BUILD, out="submission.zip",
      error="{case}/selector/selector.json: not valid JSON (Unterminated string starting at: …)")
def _(f: Path) -> None:
    p = selector(f) / "selector.json"
    p.write_text(p.read_text()[:200])


@case("selector-json-wrong-type", "selector.json holding a JSON list", SUBMISSION_BUILD, out="submission.zip",
      error="{case}/selector/selector.json: field 'format': holds a JSON list; expected the selector's card "
            "(an object)")
def _(f: Path) -> None:
    (selector(f) / "selector.json").write_text("[]\n")


@case("selector-safetensors-damaged", "selector.safetensors with bytes changed", SUBMISSION_BUILD,
      out="submission.zip",
      error="{case}/selector/selector.safetensors: field 'arrays_sha256': SHA-256 … differs from the card's …: the "
            "file is corrupted or was replaced")
def _(f: Path) -> None:
    p = selector(f) / "selector.safetensors"
    data = bytearray(p.read_bytes())
    data[-10:] = b"\x00" * 10
    p.write_bytes(bytes(data))


@case("selector-safetensors-truncated", "selector.safetensors cut off, the card's checksum updated to match",
      SUBMISSION_BUILD, out="submission.zip",
      error="{case}/selector/selector.safetensors: field 'arrays': not a safetensors file of arrays "
            "(SafetensorError: …)")
def _(f: Path) -> None:
    from autodl.records import file_sha256

    d = selector(f)
    p = d / "selector.safetensors"
    p.write_bytes(p.read_bytes()[:100])
    card = json.loads((d / "selector.json").read_text())
    card["arrays_sha256"] = file_sha256(p)
    (d / "selector.json").write_text(json.dumps(card))


TIMING_RUN = ("run --dataset {case}/data --model baseline:default --timing {case}/timing.json --protocol mini "
              "--time-budget 10 --out {case}/run")


@case("timing-truncated", "a timing table cut off", TIMING_RUN, out="run",
      error="{case}/timing.json: not JSON (Expecting value: …)")
def _(f: Path) -> None:
    write_dataset(f)
    text = json.dumps(timing_table(), indent=1)
    (f / "timing.json").write_text(text[: len(text) // 2])
    keep_folder(f, "run")


@case("timing-negative", "a timing table with a negative number of seconds", TIMING_RUN, out="run",
      error="{case}/timing.json: field 'ridge.call_s': expected a finite number >= 0 (seconds), got -0.5")
def _(f: Path) -> None:
    write_dataset(f)
    data = timing_table()
    data["ridge"]["call_s"] = -0.5
    (f / "timing.json").write_text(json.dumps(data, indent=1))
    keep_folder(f, "run")


CONFIG_RUN = ("run --dataset {case}/data --model config:{case}/config.yaml --clock simulated --protocol mini "
              "--time-budget 10 --out {case}/run")


@case("config-unknown-hyperparameter", "a configuration with learning_rte: 0.01", CONFIG_RUN, out="run",
      error="{case}/config.yaml: field 'learning_rte': unknown hyperparameter 'learning_rte' (got 0.01) (did you "
            "mean 'learning_rate'?); allowed: …")
def _(f: Path) -> None:
    write_dataset(f)
    (f / "config.yaml").write_text("backbone: tf_efficientnet_lite0\nlearning_rte: 0.01\n")
    keep_folder(f, "run")


@case("config-out-of-bounds", "a configuration with learning_rate: 50", CONFIG_RUN, out="run",
      error="{case}/config.yaml: field 'learning_rate': got 50 (int): out of range; allowed: a number in "
            "[1e-05, 0.5] (log scale)")
def _(f: Path) -> None:
    write_dataset(f)
    (f / "config.yaml").write_text("learning_rate: 50\n")
    keep_folder(f, "run")


@case("config-bad-choice", "a configuration with optimizer: RMSprop", CONFIG_RUN, out="run",
      error="{case}/config.yaml: field 'optimizer': got 'RMSprop' (str): not among the choices; allowed: one of "
            "'Adam', 'SGD'")
def _(f: Path) -> None:
    write_dataset(f)
    (f / "config.yaml").write_text("optimizer: RMSprop\n")
    keep_folder(f, "run")


@case("bohb-space-bad-bounds", "a search space whose bounds are reversed",
      "bohb run --dataset {case}/data --space {case}/space.yaml --iterations 1 --workers 1 --warm-start none "
      "--objective offline_bohb.synthetic:synthetic_evaluator --out {case}/bohb", out="bohb",
      error="{case}/space.yaml: field 'learning_rate': hyperparameter 'learning_rate': 'bounds' must be finite with "
            "lower < upper; got [0.1, 0.001]")
def _(f: Path) -> None:
    write_dataset(f)
    p = tiny_space(f)
    p.write_text(p.read_text().replace("bounds: [1.0e-3, 0.1]", "bounds: [0.1, 1.0e-3]"))


SELECTOR_FIT = ("selector fit --features {case}/features --portfolio {case}/cost_matrix.csv "
                "--selector nearest-centroid --out {case}/fitted")


@case("selector-fit-features-damaged", "a features .npz that is not a zip", SELECTOR_FIT, out="fitted",
      error="{case}/features/digits.npz: field 'npz_sha256': SHA-256 … differs from its card's …: the file is "
            "corrupted or was replaced")
def _(f: Path) -> None:
    d = features(f)
    (d / "digits.npz").write_bytes(b"PK\x03\x04 damaged")


@case("selector-fit-cost-matrix-damaged", "a cost_matrix.csv holding the value 'abc'", SELECTOR_FIT, out="fitted",
      error="{case}/cost_matrix.csv: field '…': line 2: could not convert string to float: 'abc'")
def _(f: Path) -> None:
    features(f)
    lines = (f / "cost_matrix.csv").read_text().splitlines()
    cells = lines[1].split(",")
    cells[2] = "abc"
    lines[1] = ",".join(cells)
    (f / "cost_matrix.csv").write_text("\n".join(lines) + "\n")


def make_case(c: Case, target: str | Path) -> Path:
    """Write the inputs of ``c`` into ``target/<name>/`` (replacing what is there); returns that folder."""
    folder = Path(target) / c.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    c.make(folder)
    return folder


def make_corpus(target: str | Path = DEFAULT_TARGET, names: list[str] | None = None) -> Path:
    """Write every case (or those named) into ``target/<case>/``; returns ``target``."""
    unknown = set(names or ()) - {c.name for c in CASES}
    if unknown:
        raise ValueError(f"unknown cases {sorted(unknown)}")
    for c in CASES:
        if names is None or c.name in names:
            make_case(c, target)
    return Path(target)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    args = sys.argv[1:]
    where = make_corpus(args[0] if args else DEFAULT_TARGET, args[1:] or None)
    print(f"wrote {len(args[1:]) or len(CASES)} cases under {where}")
