"""Shared fixtures: the organizers' sample datasets and small datasets written in tmp.

``samples_dir`` is ``../shared/autodl_samples`` (beside the project checkout); tests that
need it skip where it is absent (a clone elsewhere). ``starting_kit`` is the organizers'
starting kit (``AUTODL_STARTING_KIT``, else ``../shared/autodl_kit``), skipped likewise.
The written datasets are tiny (a few 5x7 images) so that writing them costs milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "autodl_samples"
SAMPLES_REASON = "needs ../shared/autodl_samples (the organizers' sample datasets)"


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """The organizers' sample datasets (``miniciao``, ``Monkeys``), read-only."""
    if not (SAMPLES_DIR / "miniciao").is_dir() or not (SAMPLES_DIR / "Monkeys").is_dir():
        pytest.skip(SAMPLES_REASON)
    return SAMPLES_DIR


@pytest.fixture(scope="session")
def starting_kit() -> Path:
    """The organizers' 2019 starting kit, read-only: ``AUTODL_STARTING_KIT`` when set, else
    ``../shared/autodl_kit`` (:func:`finetune.peers.default_kit_dir`); skips where neither is."""
    from finetune.peers import KIT_ENV, default_kit_dir

    kit = default_kit_dir()
    if kit is None:
        pytest.skip(f"needs the organizers' starting kit: {KIT_ENV} or ../shared/autodl_kit (a checkout of "
                    "github.com/zhengying-liu/autodl_starting_kit_stable)")
    return kit


@pytest.fixture(scope="session")
def miniciao(samples_dir: Path) -> Any:
    from autodl.dataset import AutoDLDataset

    return AutoDLDataset(samples_dir / "miniciao")


@pytest.fixture(scope="session")
def monkeys(samples_dir: Path) -> Any:
    from autodl.dataset import AutoDLDataset

    return AutoDLDataset(samples_dir / "Monkeys")


# --- datasets written by autodl.writer ------------------------------------------------------

@dataclass
class Written:
    """A dataset written by ``write_arrays`` and what it should read back as.

    ``train``/``test``/``unlabelled`` are the expected examples, each ``[T, H, W, C]``
    (uint8 for compressed data, float32 for dense); ``y_train``/``y_test`` the expected
    label matrices.
    """

    root: Path
    name: str
    train: list[np.ndarray]
    y_train: np.ndarray
    test: list[np.ndarray]
    y_test: np.ndarray
    fmt: str = "COMPRESSED"
    unlabelled: list[np.ndarray] | None = None
    label_names: list[str] | None = None

    @property
    def num_classes(self) -> int:
        return self.y_train.shape[1]


def as_clip(example: np.ndarray) -> np.ndarray:
    """An image ``[H, W]`` / ``[H, W, C]`` or video ``[T, H, W, C]`` as ``[T, H, W, C]``."""
    ex = np.asarray(example)
    if ex.ndim == 2:
        ex = ex[..., None]
    return ex if ex.ndim == 4 else ex[None]


def one_hot(indices: list[int] | np.ndarray, num_classes: int) -> np.ndarray:
    y = np.zeros((len(indices), num_classes), dtype=np.float32)
    y[np.arange(len(indices)), np.asarray(indices)] = 1
    return y


def write_variant(root: Path, kind: str, seed: int = 0) -> Written:
    """Write one of the datasets of :data:`VARIANTS` under ``root / kind``."""
    from autodl.writer import write_arrays

    rng = np.random.default_rng(seed)
    n_train, n_test, h, w, k = 5, 3, 5, 7, 3

    def pixels(*shape: int) -> np.ndarray:
        return rng.integers(0, 256, shape, dtype=np.uint8)

    y_idx_train = [0, 1, 2, 0, 1]
    y_idx_test = [2, 0, 1]
    labels_train: Any = y_idx_train
    labels_test: Any = y_idx_test
    y_train, y_test = one_hot(y_idx_train, k), one_hot(y_idx_test, k)
    kwargs: dict[str, Any] = {}
    unlabelled = None
    names = None
    if kind == "gray2d":      # [N, H, W]: one channel
        x_train, x_test = pixels(n_train, h, w), pixels(n_test, h, w)
    elif kind == "gray":      # [N, H, W, 1]
        x_train, x_test = pixels(n_train, h, w, 1), pixels(n_test, h, w, 1)
    elif kind in ("rgb", "unlabelled"):
        x_train, x_test = pixels(n_train, h, w, 3), pixels(n_test, h, w, 3)
        names = ["cat", "dog", "bird"]
        kwargs["label_names"] = names
        if kind == "unlabelled":
            unlabelled = pixels(4, h, w, 3)
            kwargs["x_unlabelled"] = unlabelled
    elif kind == "rgba":
        x_train, x_test = pixels(n_train, h, w, 4), pixels(n_test, h, w, 4)
    elif kind == "varsize":   # a list of images of different sizes
        sizes = [(5, 7), (9, 4), (6, 6), (3, 8), (5, 7)]
        x_train = [pixels(a, b, 3) for a, b in sizes]
        x_test = [pixels(a, b, 3) for a, b in sizes[1:4]]
    elif kind == "video":     # [N, T, H, W, C]
        x_train, x_test = pixels(n_train, 4, h, w, 3), pixels(n_test, 4, h, w, 3)
    elif kind in ("multi_lists", "multi_matrix"):
        x_train, x_test = pixels(n_train, h, w, 3), pixels(n_test, h, w, 3)
        lists_train = [[0, 2], [1], [0, 1, 2], [2], [0, 1]]
        lists_test = [[1, 2], [0], [0, 2]]
        y_train = np.zeros((n_train, k), np.float32)
        y_test = np.zeros((n_test, k), np.float32)
        for i, r in enumerate(lists_train):
            y_train[i, r] = 1
        for i, r in enumerate(lists_test):
            y_test[i, r] = 1
        if kind == "multi_lists":
            labels_train, labels_test = lists_train, lists_test
        else:
            labels_train, labels_test = y_train.astype(np.int64), y_test.copy()
    elif kind == "dense":     # float values stored as they are (not in [0, 1])
        x_train = (rng.normal(size=(n_train, h, w, 2)) * 100).astype(np.float32)
        x_test = (rng.normal(size=(n_test, h, w, 2)) * 100).astype(np.float32)
        kwargs["fmt"] = "DENSE"
    else:
        raise ValueError(kind)
    write_arrays(root / kind, kind, x_train, labels_train, x_test, labels_test, **kwargs)
    return Written(root=root / kind, name=kind, train=[as_clip(x) for x in x_train], y_train=y_train,
                   test=[as_clip(x) for x in x_test], y_test=y_test, fmt=kwargs.get("fmt", "COMPRESSED"),
                   unlabelled=None if unlabelled is None else [as_clip(x) for x in unlabelled],
                   label_names=names)


VARIANTS = ("gray2d", "gray", "rgb", "rgba", "varsize", "video", "multi_lists", "multi_matrix",
            "dense", "unlabelled")


@pytest.fixture(scope="session")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Written]:
    """Every variant of :func:`write_variant`, written once per session. Do not modify."""
    root = tmp_path_factory.mktemp("written")
    return {kind: write_variant(root, kind) for kind in VARIANTS}


@pytest.fixture
def tiny_written(tmp_path: Path) -> Written:
    """A small RGB dataset (5 train, 3 test, 3 named classes) of this test's own, to modify."""
    return write_variant(tmp_path, "rgb")


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest, written: dict[str, Written]) -> Written:
    """Each written variant in turn (read-only)."""
    return written[request.param]


# --- PyTorch threads ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def torch_threads_1():
    """One PyTorch thread for a module's tests (``pytestmark = pytest.mark.usefixtures(...)``):
    the machines have two cores and are shared; two threads spinning against another
    process's load are many times slower than one."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# --- a hand-made timing table for simulated-clock runs -----------------------------------------

def flat_timing(train_step_s: float = 0.5, forward_s: float = 0.001, *,
                backbones: dict[str, float] | None = None, probe_s: float = 0.01,
                decode_example_s: float = 0.0005) -> Any:
    """A version-2 :class:`~finetune.timing.TimingTable` with round, size-independent costs.

    Every backbone of the configuration space (plus ``linear``) is priced at sizes 32, 64
    and 128: a training step (forward/backward of a batch of 16) costs ``train_step_s``
    times the backbone's factor in ``backbones`` (default 1; doubling the batch doubles the
    cost), a forward pass ``forward_s`` per image; each probe fit ``probe_s``; decoding
    ``decode_example_s`` per example. Optimizers and augmentations add nothing. Tests run on
    it so that simulated runs depend on the seed alone, never on a machine.
    """
    from finetune.timing import AUGMENTATIONS, FORMATS, MODEL_TERMS, OPTIMIZERS, TimingTable

    factors = {"tf_efficientnet_lite0": 1.0, "tf_efficientnet_lite1": 1.0, "tf_efficientnet_lite2": 1.0,
               "resnet18": 1.0, "scratch_cnn": 1.0, "linear": 1.0, **(backbones or {})}
    sizes = ("32", "64", "128")
    zero = {model: {name: 0.0 for name in names} for model, names in MODEL_TERMS.items()}
    data = {
        "version": 2, "machine": "hand-made for the tests", "device": "cpu", "threads": 1,
        "created": "2026-01-01T00:00:00", "command": "tests/conftest.py flat_timing",
        "backbones": {
            name: {"fwd_bwd": {s: [[16, train_step_s * f], [32, 2 * train_step_s * f]] for s in sizes},
                   "optimizer_step": {opt: {s: 0.0 for s in sizes} for opt in OPTIMIZERS},
                   "forward": {s: forward_s for s in sizes}}
            for name, f in factors.items()},
        "augmentation": {a: dict(zero["augmentation"]) for a in AUGMENTATIONS},
        "decode": {fmt: {**zero["decode"], "example_s": decode_example_s} for fmt in FORMATS},
        "ridge": {**zero["ridge"], "call_s": probe_s, "predict_call_s": probe_s / 10},
        "random_features": {**zero["random_features"], "call_s": probe_s / 10},
        "raw_features": {**zero["raw_features"], "call_s": probe_s / 10},
        "write_predictions": {**zero["write_predictions"], "call_s": 0.001},
    }
    return TimingTable.from_dict(data)


def write_squares(root: Path, n_train: int = 60, n_test: int = 24) -> Path:
    """An AutoDL dataset of 16x16 RGB images: a bright square whose position is the class (3)."""
    from autodl.writer import write_arrays

    rng = np.random.default_rng(0)

    def images(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.permutation(np.arange(n) % 3)
        x = rng.integers(0, 70, (n, 16, 16, 3)).astype(np.uint8)
        for i, k in enumerate(y):
            r, c = [(2, 2), (2, 9), (9, 5)][k]
            x[i, r:r + 5, c:c + 5] = 230
        return x, y

    write_arrays(root, "squares", *images(n_train), *images(n_test), num_classes=3)
    return root


def write_tiny_halves(root: Path) -> Path:
    """``root/tiny``: an AutoDL dataset of 40 8x8 grey images (30 train, 10 test) in 2 classes, class 1
    with a white top half (a benchmark's end-to-end tests run on it in seconds)."""
    from autodl.writer import write_arrays

    rng = np.random.default_rng(0)
    x = rng.integers(0, 255, (40, 8, 8, 1), dtype=np.uint8)
    y = np.arange(40) % 2
    x[y == 1, :4] = 255
    return write_arrays(root / "tiny", "tiny", x[:30], y[:30], x[30:], y[30:], num_classes=2)


def same_source_arrays(a: tuple, b: tuple) -> bool:
    """Two source loader outputs are identical (arrays or lists of arrays)."""
    for u, v in zip(a[:4], b[:4]):
        if isinstance(u, list):
            if len(u) != len(v) or not all(np.array_equal(p, q) for p, q in zip(u, v)):
                return False
        elif not np.array_equal(u, v):
            return False
    return a[4] == b[4]
