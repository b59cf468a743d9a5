"""The self-service run (``autodl-meta run --data``): formatting, the unlabelled set appended to the
test set, the outputs, the page, the submission model names, bad input, and end-to-end runs."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from autodl.dataset import AutoDLDataset
from autodl.errors import AutoDLError, PredictionError
from autodl.protocol import Protocol
from autodl.score_files import ScoreResult, parse_scores_txt
from submission.report import RunSummary, plot_curves, write_report
from submission.selfservice import (
    build_run_dataset,
    find_unlabelled,
    open_data,
    predicted_classes,
    read_decision,
    write_unlabelled_outputs,
)

CLASSES = ("red", "green", "blue")


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "autodl_meta.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("autodl-meta: error:") and "Traceback" not in proc.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def _image(rng: np.random.Generator, c: int, size: int = 16):
    from PIL import Image

    a = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    a[..., c] += 150
    return Image.fromarray(a)


def make_raw(root: Path, n: int = 40, n_unlabelled: int = 5, csv_unlabelled: int = 0) -> Path:
    """``n`` 16x16 PNG images of 3 colour classes with ``labels.csv`` and ``label.name``, and an
    ``unlabelled/`` subfolder of ``n_unlabelled`` PNGs (the last one 20x20: resized on the way);
    ``csv_unlabelled`` more images listed in labels.csv with subset ``unlabelled``."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    rows = ["FileName,Labels,subset"] if csv_unlabelled else ["FileName,Labels"]
    for i in range(n):
        _image(rng, i % 3).save(root / f"img{i:02d}.png")
        subset = ",test" if i % 5 == 0 else ",train"
        rows.append(f"img{i:02d}.png,{i % 3}" + (subset if csv_unlabelled else ""))
    for i in range(csv_unlabelled):
        _image(rng, i % 3).save(root / f"extra{i}.png")
        rows.append(f"extra{i}.png,,unlabelled")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    (root / "label.name").write_text("".join(f"{c}\n" for c in CLASSES))
    if n_unlabelled:
        (root / "unlabelled").mkdir()
        for i in range(n_unlabelled):
            _image(rng, i % 3, 20 if i == n_unlabelled - 1 else 16).save(root / "unlabelled" / f"u{i}.png")
        (root / "unlabelled" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture
def raw(tmp_path) -> Path:
    return make_raw(tmp_path / "raw")


# --- formatting and the unlabelled set ------------------------------------------------------------
def test_a_raw_folder_is_formatted_and_its_unlabelled_folder_found(raw, tmp_path):
    ds, formatted = open_data(raw, tmp_path / "out")
    assert formatted and ds.root == tmp_path / "out" / "data"
    assert ds.metadata("train").size() + ds.metadata("test").size() == 40
    unl = find_unlabelled(raw, ds, raw=True)
    assert unl.names == [f"unlabelled/u{i}.png" for i in range(5)]  # notes.txt skipped
    # an AutoDL dataset is used in place
    again, formatted = open_data(ds.root, tmp_path / "other")
    assert not formatted and again.root == ds.root and not (tmp_path / "other" / "data").exists()


def test_labels_csv_unlabelled_rows_come_first_then_the_folder(tmp_path):
    raw = make_raw(tmp_path / "raw", n=30, n_unlabelled=2, csv_unlabelled=3)
    ds, _ = open_data(raw, tmp_path / "out")
    unl = find_unlabelled(raw, ds, raw=True)
    assert unl.names == ["extra0.png", "extra1.png", "extra2.png", "unlabelled/u0.png", "unlabelled/u1.png"]
    assert len(list(unl.frames())) == 5


def test_an_autodl_unlabelled_subset_is_used_by_position(written, tmp_path):
    data = written["unlabelled"]
    ds = AutoDLDataset(data.root)
    unl = find_unlabelled(data.root, ds)
    assert unl.names == [f"unlabelled.data/unlabelled#{i}" for i in range(4)]
    # given with --unlabelled as the dataset or as its subset folder, for another dataset of images
    other = AutoDLDataset(written["rgb"].root)
    for path in (data.root, data.root / "unlabelled.data" / "unlabelled"):
        assert len(find_unlabelled(other.root, other, path)) == 4
    assert find_unlabelled(other.root, other) is None  # rgb has no unlabelled subset


def test_bad_unlabelled_paths_are_named(written, raw, tmp_path):
    ds = AutoDLDataset(written["rgb"].root)
    with pytest.raises(AutoDLError, match="nothere.*does not exist"):
        find_unlabelled(ds.root, ds, tmp_path / "nothere")
    with pytest.raises(AutoDLError, match="without an unlabelled subset"):
        find_unlabelled(ds.root, ds, written["gray"].root)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("x")
    with pytest.raises(AutoDLError, match="holds no image or video file"):
        find_unlabelled(ds.root, ds, empty)
    with pytest.raises(AutoDLError, match="holds videos"):  # image files for a video dataset
        find_unlabelled(written["video"].root, AutoDLDataset(written["video"].root), raw / "unlabelled")
    with pytest.raises(AutoDLError, match="dense"):
        find_unlabelled(written["dense"].root, AutoDLDataset(written["dense"].root), raw / "unlabelled")


def test_bad_data_is_named(tmp_path):
    with pytest.raises(AutoDLError, match="nope.*does not exist"):
        open_data(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "plain").mkdir()
    with pytest.raises(AutoDLError, match="plain.*neither an AutoDL dataset nor a folder with labels.csv"):
        open_data(tmp_path / "plain", tmp_path / "out")


def test_the_run_dataset_appends_the_unlabelled_examples_to_the_test_set(raw, tmp_path):
    ds, _ = open_data(raw, tmp_path / "out")
    unl = find_unlabelled(raw, ds, raw=True)
    run = AutoDLDataset(build_run_dataset(ds, unl, tmp_path / "out" / "run-data"))
    n_test = ds.metadata("test").size()
    assert run.name == ds.name and run.metadata("test").size() == n_test + 5
    assert run.metadata("test").get_tensor_shape() == ds.metadata("test").get_tensor_shape()  # 20x20 resized
    np.testing.assert_array_equal(read_solution_rows(run), ds.solution())  # the real solution, n_test rows
    np.testing.assert_array_equal(run.labels("train"), ds.labels("train"))
    x_run = run.load_numpy("test").x
    np.testing.assert_array_equal(x_run[:n_test], ds.load_numpy("test").x)
    from PIL import Image

    first = np.asarray(Image.open(raw / "unlabelled" / "u0.png"))
    np.testing.assert_array_equal(x_run[n_test][0], first)
    assert run.label_names() == list(CLASSES)
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())  # no temporary folder left


def test_a_folder_of_frames_is_one_unlabelled_video(written, tmp_path):
    from PIL import Image

    video = written["video"]  # clips of 4 frames of 5x7x3
    ds = AutoDLDataset(video.root)
    clip = tmp_path / "unl" / "clip1"
    clip.mkdir(parents=True)
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 256, (4, 5, 7, 3), dtype=np.uint8)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(clip / f"frame{i}.png")
    unl = find_unlabelled(video.root, ds, tmp_path / "unl")
    assert unl.names == ["clip1"]
    run = AutoDLDataset(build_run_dataset(ds, unl, tmp_path / "run"))
    x = run.load_numpy("test").x
    assert len(x) == len(video.test) + 1
    np.testing.assert_array_equal(x[-1], frames)


def read_solution_rows(ds: AutoDLDataset) -> np.ndarray:
    from autodl.dataset import read_solution

    return read_solution(ds.solution_path)


# --- outputs ------------------------------------------------------------------------------------------
def test_unlabelled_outputs_name_the_classes(tmp_path):
    pred = tmp_path / "predictions" / "unlabelled.predict"
    pred.parent.mkdir()
    pred.write_text("0.1 0.7 0.2\n0.6 0.3 0.55\n0.2 0.2 0.3\n")
    predict, table = write_unlabelled_outputs(pred, ["a.png", "b.png", "c.png"], tmp_path, output_dim=3,
                                              class_names=list(CLASSES))
    assert predict.read_text() == pred.read_text()
    rows = list(csv.reader(table.open()))
    assert rows == [["FileName", "Predicted", "Probability"], ["a.png", "green", "0.7"], ["b.png", "red", "0.6"],
                    ["c.png", "blue", "0.3"]]
    _, table = write_unlabelled_outputs(pred, ["a", "b", "c"], tmp_path, output_dim=3, multilabel=True)
    assert [r[1] for r in csv.reader(table.open())][1:] == ["1", "0;2", "2"]  # indices without names
    with pytest.raises(PredictionError, match="unlabelled.predict"):
        write_unlabelled_outputs(pred, ["a", "b"], tmp_path, output_dim=3)
    assert predicted_classes(np.array([[0.2, 0.4]]), multilabel=True) == [[1]]


def _score(task: str = "t", naucs=(0.2, 0.6), alc: float = 0.45) -> ScoreResult:
    return ScoreResult(task_name=task, time_budget=10.0, t0=3.0, start_time=0.0, timestamps=[1.0, 4.0],
                       nauc_scores=list(naucs), accuracy=None, score=alc, duration=4.0)


def test_the_page_shows_scores_decision_and_curve_and_escapes_text(written, tmp_path):
    ds = AutoDLDataset(written["rgb"].root)
    png = plot_curves([("submission", _score()), ("baseline:linear", _score(naucs=(-0.3, 0.1), alc=-0.1))],
                      tmp_path / "curves.png")
    assert png.stat().st_size > 10_000
    decision = {"selector": "nearest-centroid", "chosen_dataset": "digits", "confidence": 0.42, "threshold": 0.5,
                "novelty": 1.3, "fallback": "confidence below <threshold>",
                "configuration": {"backbone": "tf_efficientnet_lite0", "finetune": False, "lr": 0.01},
                "configuration_source": "single-best", "selection_seconds": 0.25, "events": ["embedded 64"]}
    runs = [RunSummary("submission", "ok", _score(), decision=decision, out=tmp_path),
            RunSummary("baseline:linear", "crashed", _score(alc=0.3), error="RuntimeError: boom",
                       decision_note="no decision recorded (model baseline:linear)")]
    page = write_report(tmp_path / "report.html", dataset=ds, data=ds.root, formatted=False,
                        protocol=Protocol("mini", 10.0, 3.0), runs=runs, curve_png=png).read_text()
    assert "data:image/png;base64," in page and "0.4500" in page and "0.6000" in page
    assert "digits" in page and "tf_efficientnet_lite0" in page and "0.42" in page and "false" in page
    assert "confidence below &lt;threshold&gt;" in page and "<threshold>" not in page
    assert "no decision recorded (model baseline:linear)" in page
    assert "0.3000" not in page  # a crashed model has no ALC on the page
    assert "mini: T=10 s, t0=3 s" in page


def test_read_decision(tmp_path):
    assert read_decision(tmp_path / "none.json") == (None, "no decision recorded")
    (tmp_path / "bad.json").write_text("{")
    assert "cannot be read" in read_decision(tmp_path / "bad.json")[1]
    (tmp_path / "ok.json").write_text(json.dumps({"chosen_dataset": "x"}))
    assert read_decision(tmp_path / "ok.json") == ({"chosen_dataset": "x"}, None)


# --- the submission's model names -----------------------------------------------------------------------
MODEL_PY = textwrap.dedent("""
    import json, os
    import numpy as np

    class Model:
        def __init__(self, metadata):
            self.k = metadata.get_output_size()
            self.done_training = False
            self.calls = 0
            path = os.environ.get("AUTODL_META_DECISION")
            if path:
                json.dump({"selector": "test-selector", "chosen_dataset": "glyphs", "confidence": 0.9,
                           "threshold": 0.5, "novelty": 1.0, "fallback": None,
                           "configuration": {"backbone": "tf_efficientnet_lite0", "batch_size": 32},
                           "configuration_source": "incumbent of glyphs", "selection_seconds": 0.01,
                           "events": ["chose glyphs"]}, open(path, "w"))

        def train(self, dataset, remaining_time_budget=None):
            self.calls += 1
            self.done_training = self.calls >= 3

        def test(self, dataset, remaining_time_budget=None):
            n = sum(1 for _ in dataset)
            out = np.full((n, self.k), 0.1)
            out[:, 0] = 0.9
            return out
""")


def test_submission_names_resolve_through_model_py(tmp_path):
    from finetune.models import known_models, reads_simulated_clock, resolve_model
    from submission.model_kinds import SUBMISSION_MODEL, submission_file

    assert SUBMISSION_MODEL == Path(__file__).resolve().parents[2] / "submission" / "model.py"
    assert submission_file("submission") == SUBMISSION_MODEL
    assert "submission" in known_models() and any(k.startswith("submission:") for k in known_models())
    assert not reads_simulated_clock("submission") and not reads_simulated_clock("submission:x.zip")
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    assert callable(resolve_model(f"submission:{folder}"))
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "model.py", "model.py")
    assert submission_file(f"submission:{archive}", tmp_path / "unpacked") == tmp_path / "unpacked" / "model.py"
    assert callable(resolve_model(f"submission:{archive}"))
    with zipfile.ZipFile(tmp_path / "nomodel.zip", "w") as zf:
        zf.writestr("sub/model.py", MODEL_PY)
    with pytest.raises(AutoDLError, match="no model.py at its root"):
        resolve_model(f"submission:{tmp_path / 'nomodel.zip'}")
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(AutoDLError, match="not a zip"):
        resolve_model(f"submission:{tmp_path / 'fake.zip'}")
    with pytest.raises(AutoDLError, match="model file not found"):
        resolve_model(f"submission:{tmp_path}")  # a folder without model.py
    with pytest.raises(AutoDLError, match="not found"):
        resolve_model(f"submission:{tmp_path / 'missing'}")


def test_the_ingestion_child_writes_only_the_scored_rows(written, tmp_path):
    """``python -m finetune.models --scored-rows`` (the child of a run)."""
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    data = written["rgb"]  # 3 test examples: score 2 of them
    proc = subprocess.run([sys.executable, "-m", "finetune.models", "--dataset", str(data.root), "--model",
                           f"submission:{folder}", "--time-budget", "30", "--scored-rows", "2", "--out",
                           str(tmp_path / "pred")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert len((tmp_path / "pred" / "rgb.predict_2").read_text().splitlines()) == 2
    assert len((tmp_path / "pred" / "unlabelled.predict").read_text().splitlines()) == 1


def test_a_model_that_fails_before_its_budget_starts_is_reported_as_crashed(written, tmp_path):
    """The names are checked in this process first; a child that then fails before ``start.txt``
    (here: a model file that fails to import there only) is a crashed run on the page."""
    from submission.selfservice import run_selfservice

    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text("import os\nif os.environ.get('AUTODL_META_DECISION'):\n"
                                     "    raise RuntimeError('broken in the child')\n" + MODEL_PY)
    res = run_selfservice(written["rgb"].root, tmp_path / "out", model=f"submission:{folder}",
                          protocol=Protocol("t", 5.0, 1.0))
    assert res.main.status == "crashed" and res.main.alc is None and "broken in the child" in res.main.error
    page = res.report.read_text()
    assert "crashed" in page and "broken in the child" in page


# --- the command line ----------------------------------------------------------------------------------
def test_bad_input_is_one_line_naming_the_path(raw, tmp_path):
    (tmp_path / "plain").mkdir()
    assert_one_line_error(cli("run", "--data", str(tmp_path / "plain"), "--out", str(tmp_path / "o"),
                              "--model", "baseline:linear"), str(tmp_path / "plain"), "labels.csv")
    assert_one_line_error(cli("run", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")),
                          str(tmp_path / "nope"), "does not exist")
    assert_one_line_error(cli("run", "--data", str(raw), "--unlabelled", str(tmp_path / "gone"), "--out",
                              str(tmp_path / "o"), "--model", "baseline:linear"), str(tmp_path / "gone"),
                          "--unlabelled")
    assert_one_line_error(cli("run", "--data", str(raw), "--out", str(tmp_path / "o"), "--model",
                              "baseline:linear", "--clock", "simulated"), "--clock")
    assert not (tmp_path / "o" / "data").exists()  # refused before formatting


@pytest.mark.slow
@pytest.mark.smoke
def test_selfservice_run_on_a_raw_folder_end_to_end(raw, tmp_path):
    out = tmp_path / "out"
    proc = cli("run", "--data", str(raw), "--out", str(out), "--model", "baseline:linear", "--protocol", "mini",
               "--time-budget", "10")
    log = (out / "ingestion.log").read_text() if (out / "ingestion.log").is_file() else ""
    assert proc.returncode == 0, proc.stdout + proc.stderr + log
    scores = parse_scores_txt(out / "scores" / "scores.txt")
    assert scores["timestamps"] and max(scores["timestamps"]) <= 10.0
    assert (out / "scores" / "learning-curve.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert f"{scores['score']:.4f}" in page and "data:image/png;base64," in page
    assert "no decision recorded (model baseline:linear)" in page
    n_test = AutoDLDataset(out / "data").metadata("test").size()
    assert all(len(p.read_text().splitlines()) == n_test for p in (out / "predictions").glob("raw.predict_*"))
    rows = (out / "unlabelled.predict").read_text().splitlines()
    assert len(rows) == 5 and all(len(r.split()) == 3 for r in rows)  # one row per unlabelled file
    table = list(csv.reader((out / "unlabelled.csv").open()))
    assert [r[0] for r in table[1:]] == [f"unlabelled/u{i}.png" for i in range(5)]
    assert all(r[1] in CLASSES for r in table[1:])
    assert "ALC" in proc.stdout and str(out / "report.html") in proc.stdout


@pytest.mark.slow
def test_selfservice_run_shows_the_decision_and_a_comparison(raw, tmp_path):
    folder = tmp_path / "sub"
    folder.mkdir()
    (folder / "model.py").write_text(MODEL_PY)
    archive = tmp_path / "sub.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(folder / "model.py", "model.py")
    out = tmp_path / "out"
    proc = cli("run", "--data", str(raw), "--out", str(out), "--model", f"submission:{archive}", "--compare",
               f"submission:{folder}", "--time-budget", "8")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    decision = json.loads((out / "decision.json").read_text())
    assert decision["chosen_dataset"] == "glyphs"
    assert (out / "compare" / "decision.json").is_file() and (out / "compare" / "scores" / "scores.txt").is_file()
    assert (out / "learning-curves.png").stat().st_size > 10_000
    page = (out / "report.html").read_text()
    assert "glyphs" in page and "incumbent of glyphs" in page and "batch_size" in page
    assert f"submission:{archive}" in page and f"submission:{folder}" in page
    assert "decision of" in proc.stdout and "glyphs" in proc.stdout
    assert len((out / "compare" / "unlabelled.predict").read_text().splitlines()) == 5
