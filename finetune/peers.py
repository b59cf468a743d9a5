"""The AutoDL organizers' own models, as peers to compare with: those of their 2019 starting kit.

The starting kit (``autodl_starting_kit_stable``, Dec 2019) ships a sample submission
(``AutoDL_sample_code_submission/model.py``) and simple baselines
(``AutoDL_simple_baseline_models/<name>/model.py``: ``all_zero``, ``linear``, ``to_numpy``,
``3dcnn``, ``3dcnn_noprepro``, ``3dcnn_pytorch``), all written for TensorFlow 1.13.
:func:`organizer_models` lists them with the model name that runs each unchanged in
TensorFlow 1 compatibility mode (``file-tf1:PATH``, see :mod:`finetune.models`) and whether
it can run here, and why not, read from its source before anything runs; those that can
are run like any model name, on the wall clock, with
:func:`finetune.config_runs.run_local_model`.

The kit is not part of this project: :func:`default_kit_dir` finds it at
``AUTODL_STARTING_KIT`` or beside the checkout (``../shared/autodl_kit``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from autodl.errors import AutoDLError
from finetune.models import TF1_PREFIX, tf1_model_problem

logger = logging.getLogger(__name__)

KIT_ENV = "AUTODL_STARTING_KIT"
"""The environment variable that names the organizers' starting kit (overrides the default)."""

DEFAULT_KIT = Path(__file__).resolve().parents[1].parent / "shared" / "autodl_kit"
"""Where the starting kit is looked for without ``AUTODL_STARTING_KIT``: ``../shared/autodl_kit``
beside the repository root."""

SAMPLE_SUBMISSION = "AutoDL_sample_code_submission"
BASELINES_DIR = "AutoDL_simple_baseline_models"

KNOWN_LIMITS = {
    "3dcnn_pytorch": "crashes on image datasets (sequence_size 1) by its own design: its 3-D max-pooling "
                     "halves the time axis to 0 frames (PyTorch: 'Output size is too small'); runs on videos",
}
"""What is known of a runnable kit model that limits where it runs (by folder name)."""


@dataclass(frozen=True)
class PeerModel:
    """One of the organizers' models.

    Attributes
    ----------
    name
        ``kit:<folder>`` (``kit:all_zero``, ``kit:linear``..., ``kit:sample_submission``).
    model
        The model name that runs it (``file-tf1:/abs/path/model.py``), for
        :func:`finetune.config_runs.run_local_model` or ``autodl-meta run --model``.
    path
        Its ``model.py``.
    runnable
        Whether it can run here (nothing in its source that TensorFlow 1 compatibility
        cannot supply).
    reason
        Why it cannot, in one line (None when it can).
    note
        A known limit of a runnable one (e.g. images vs videos), or None.
    """

    name: str
    model: str
    path: Path
    runnable: bool
    reason: str | None = None
    note: str | None = None


def default_kit_dir() -> Path | None:
    """The organizers' starting kit: ``AUTODL_STARTING_KIT`` when it is set (None if that is not a
    folder), else ``../shared/autodl_kit`` beside the repository root when it exists, else None."""
    env = os.environ.get(KIT_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            logger.warning("%s=%s is not a folder", KIT_ENV, env)
            return None
        return path.resolve()
    return DEFAULT_KIT if DEFAULT_KIT.is_dir() else None


def kit_model_files(kit_dir: str | Path) -> dict[str, Path]:
    """``{name: model.py}`` of the organizers' models in ``kit_dir``: ``kit:sample_submission``
    and ``kit:<folder>`` for each folder of ``AutoDL_simple_baseline_models`` holding a
    ``model.py`` (sorted by name).

    Raises
    ------
    AutoDLError
        ``kit_dir`` holds neither the sample submission nor the baselines.
    """
    kit = Path(kit_dir).resolve()
    files: dict[str, Path] = {}
    sample = kit / SAMPLE_SUBMISSION / "model.py"
    if sample.is_file():
        files["kit:sample_submission"] = sample
    baselines = kit / BASELINES_DIR
    if baselines.is_dir():
        for folder in sorted(p for p in baselines.iterdir() if (p / "model.py").is_file()):
            files[f"kit:{folder.name}"] = folder / "model.py"
    if not files:
        raise AutoDLError(kit, f"not an AutoDL starting kit: expected {SAMPLE_SUBMISSION}/model.py or "
                               f"{BASELINES_DIR}/<name>/model.py (a checkout of "
                               "github.com/zhengying-liu/autodl_starting_kit_stable)")
    return files


def organizer_models(kit_dir: str | Path) -> list[PeerModel]:
    """The organizers' models of the starting kit ``kit_dir``, each with the model name that runs
    it in TensorFlow 1 compatibility mode and whether it can run here, and why not, read from
    its source and looked up in the installed ``tf.compat.v1``
    (:func:`finetune.models.tf1_model_problem`): no model is run or imported, and this process
    stays as it is (TensorFlow is imported, in TensorFlow 2 mode).

    Raises
    ------
    AutoDLError
        ``kit_dir`` is not a starting kit (see :func:`kit_model_files`).
    """
    peers = []
    for name, path in kit_model_files(kit_dir).items():
        problem = tf1_model_problem(path)
        note = KNOWN_LIMITS.get(path.parent.name) if problem is None else None
        peers.append(PeerModel(name=name, model=f"{TF1_PREFIX}{path}", path=path, runnable=problem is None,
                               reason=problem, note=note))
    return peers
