"""TensorFlow-1-era models (``file-tf1:PATH``) and the organizers' own models (:mod:`finetune.peers`).

The tests that run or list the organizers' starting kit need it (``starting_kit``: at
``AUTODL_STARTING_KIT`` or ``../shared/autodl_kit``) and skip without it; the others write
their TF 1 models here.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from autodl.errors import AutoDLError
from autodl.protocol import Protocol
from finetune.config_runs import evaluate, ingestion_command, run_local_model
from finetune.models import check_model, is_tf1_name, known_models, reads_simulated_clock
from finetune.peers import KIT_ENV, default_kit_dir, kit_model_files, organizer_models

SHORT = Protocol("short", time_budget=30.0, t0=1.5)

ESTIMATOR_MODEL = textwrap.dedent("""\
    import tensorflow as tf

    class Model(object):
      def __init__(self, metadata):
        self.done_training = False
        self.classifier = tf.estimator.Estimator(model_fn=None)
    """)

# A TF 1 model written as the 2019 kit's are: graph mode, a one-shot iterator read in a
# session, TF 1-only names (tf.ConfigProto, tf.image.resize_images), Dimension shapes and an
# iterator made in another graph to read shapes (as the kit's to_numpy does). It predicts
# each test example by its nearest training example (mean colour), so its NAUC is defined.
TF1_MODEL = textwrap.dedent("""\
    import numpy as np
    import tensorflow as tf

    def to_numpy(dataset):
      x, y = dataset.make_one_shot_iterator().get_next()
      x = tf.image.resize_images(x[0], (4, 4))
      xs, ys = [], []
      with tf.Session(config=tf.ConfigProto(log_device_placement=False)) as sess:
        while True:
          try:
            a, b = sess.run((x, y))
          except tf.errors.OutOfRangeError:
            break
          xs.append(a.mean(axis=(0, 1)))
          ys.append(b)
      return np.array(xs), np.array(ys)

    def has_regular_shape(dataset):
      with tf.Graph().as_default():
        example, _ = dataset.make_one_shot_iterator().get_next()
        return all([d > 0 for d in example.shape])

    class Model(object):
      def __init__(self, metadata):
        self.done_training = False
        self.metadata = metadata

      def train(self, dataset, remaining_time_budget=None):
        assert has_regular_shape(dataset)
        self.x, self.y = to_numpy(dataset)
        self.done_training = True

      def test(self, dataset, remaining_time_budget=None):
        x, _ = to_numpy(dataset)
        nearest = np.argmin(((x[:, None] - self.x[None]) ** 2).sum(-1), axis=1)
        return np.clip(self.y[nearest] * 0.8 + 0.1, 0, 1)
    """)


def write_model(folder: Path, source: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.py").write_text(source)
    return folder / "model.py"


def test_file_tf1_is_a_known_wall_clock_name_that_reaches_the_child_unchanged(tmp_path):
    name = f"file-tf1:{tmp_path / 'model.py'}"
    assert is_tf1_name(name) and not is_tf1_name(f"file:{tmp_path / 'model.py'}")
    assert any(k.startswith("file-tf1:") for k in known_models())
    assert not reads_simulated_clock(name)
    cmd = ingestion_command(tmp_path, name, SHORT, tmp_path / "predictions")
    assert cmd[cmd.index("--model") + 1] == name


def test_a_tf1_model_is_not_run_in_this_process(tiny_written, tmp_path):
    path = write_model(tmp_path / "m", TF1_MODEL)
    with pytest.raises(AutoDLError, match="runs only in a process of its own"):
        evaluate(f"file-tf1:{path}", tiny_written.root, SHORT, clock="wall")


def test_checking_a_tf1_model_reads_its_source_only(tmp_path):
    imported = write_model(tmp_path / "loud", "import tensorflow as tf\nraise RuntimeError('imported')\n")
    check_model(f"file-tf1:{imported}")  # not imported: no RuntimeError, TensorFlow left as it is
    broken = write_model(tmp_path / "broken", "def broken(:\n")
    with pytest.raises(AutoDLError, match=r"is not valid Python \(line 1"):
        check_model(f"file-tf1:{broken}")
    with pytest.raises(AutoDLError, match="model file not found"):
        check_model(f"file-tf1:{tmp_path / 'absent' / 'model.py'}")
    estimator = write_model(tmp_path / "estimator", ESTIMATOR_MODEL)
    with pytest.raises(AutoDLError, match=r"uses tf\.estimator \(line 6\), removed in TensorFlow 2\.16"):
        check_model(f"file-tf1:{estimator}")


def test_an_estimator_model_is_refused_by_the_cli_in_one_line(tiny_written, tmp_path):
    path = write_model(tmp_path / "estimator", ESTIMATOR_MODEL)
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", "run", "--dataset", str(tiny_written.root),
                           "--model", f"file-tf1:{path}", "--time-budget", "10", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"autodl-meta: error: {path}: uses tf.estimator (line 6), removed in "
                               "TensorFlow 2.16"), lines[0]
    assert lines[0].endswith("this model cannot run here")
    assert not (out / "predictions").exists()  # refused before anything ran


@pytest.mark.slow
def test_a_tf1_model_runs_unchanged_on_the_wall_clock_and_is_scored(tiny_written, tmp_path):
    path = write_model(tmp_path / "tf1", TF1_MODEL)
    res = run_local_model(tiny_written.root, f"file-tf1:{path}", SHORT, tmp_path / "run", threads=1)
    log = res.log_file.read_text(errors="replace")
    assert res.ingestion_success, log[-3000:]
    assert "TensorFlow 1 compatibility mode" in log
    assert len(res.score.timestamps) == 1 and (res.predictions_dir / "rgb.predict_0").is_file()
    assert (res.scores_dir / "scores.txt").is_file() and res.score.nauc_scores[0] is not None


def test_the_kits_all_zero_model_runs_and_is_scored(starting_kit, tiny_written, tmp_path):
    model = f"file-tf1:{starting_kit / 'AutoDL_simple_baseline_models' / 'all_zero' / 'model.py'}"
    res = run_local_model(tiny_written.root, model, SHORT, tmp_path / "run", threads=1)
    log = res.log_file.read_text(errors="replace")
    assert res.ingestion_success, log[-3000:]
    assert "Number of test examples: 3" in log
    assert len(res.score.timestamps) == 1 and (res.predictions_dir / "rgb.predict_0").is_file()
    assert (res.scores_dir / "scores.txt").is_file()
    assert res.score.nauc_scores == [0.0] and res.score.score == 0.0  # all-zero predictions: NAUC 0


def test_organizer_models_says_which_kit_models_run_here_and_why_not(starting_kit):
    peers = {p.name: p for p in organizer_models(starting_kit)}
    runnable = {name for name, p in peers.items() if p.runnable}
    assert runnable == {"kit:sample_submission", "kit:all_zero", "kit:to_numpy", "kit:3dcnn_pytorch"}
    for name in ("kit:linear", "kit:3dcnn", "kit:3dcnn_noprepro"):
        reason = peers[name].reason
        assert reason is not None and "\n" not in reason
        assert reason.startswith("uses tf.estimator") and "removed in TensorFlow 2.16" in reason, reason
    for p in peers.values():
        assert p.model == f"file-tf1:{p.path}" and p.path.is_absolute() and p.path.is_file()
        assert (p.reason is None) == p.runnable
    assert peers["kit:3dcnn_pytorch"].note and "image" in peers["kit:3dcnn_pytorch"].note


def test_the_kit_is_found_through_the_environment_and_a_folder_that_is_not_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(KIT_ENV, str(tmp_path))
    assert default_kit_dir() == tmp_path.resolve()
    with pytest.raises(AutoDLError, match="not an AutoDL starting kit"):
        kit_model_files(tmp_path)
    monkeypatch.setenv(KIT_ENV, str(tmp_path / "absent"))
    assert default_kit_dir() is None
    write_model(tmp_path / "AutoDL_simple_baseline_models" / "mine", "import tensorflow as tf\n")
    assert list(kit_model_files(tmp_path)) == ["kit:mine"]
