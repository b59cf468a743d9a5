"""Benchmarks whose results go to ``docs/benchmarks.md``.

Speed targets are checked here, never in timed unit tests: the machines are shared and
noisy, so every figure is a ratio of two things measured side by side in one run, with
the machine and the command written beside it.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autodl.machine import machine_description

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "autodl_samples"


def _best_of(fn: Callable[[], int], repeats: int) -> tuple[float, int]:
    """The fastest of ``repeats`` runs of ``fn`` (which returns how many items it did)."""
    best, n = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        n = fn()
        best = min(best, time.perf_counter() - t)
    return best, n


def synthetic_images(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` smooth RGB images (random gradients, blobs and mild noise) with 10 labels.

    Structured rather than pure noise, so that PNG compresses them as it would photos.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    labels = rng.integers(0, 10, n)
    out = np.empty((n, size, size, 3), dtype=np.uint8)
    for i in range(n):
        a, b, c = rng.uniform(-1, 1, 3)
        cx, cy, r = rng.uniform(0.2, 0.8, 3)
        base = a * xx + b * yy + c * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (0.05 + 0.1 * r))
        img = np.stack([base * k for k in rng.uniform(0.5, 1.5, 3)], -1)
        img = (img - img.min()) / (np.ptp(img) + 1e-6) * 200 + rng.normal(0, 4, img.shape) + 20
        out[i] = np.clip(img, 0, 255).astype(np.uint8)
    return out, labels


def benchmark_io(n_images: int = 10_000, image_size: int = 32, doc: str | Path | None = "docs/benchmarks.md",
                 repeats: int = 3, samples_dir: Path = SAMPLES_DIR) -> str:
    """Read/decode speed of the numpy path beside a plain ``tf.data`` pipeline, and write speed.

    Returns the Markdown report; appends it to ``doc`` when given.
    """
    from autodl.dataset import AutoDLDataset, configure_tensorflow, make_tf_dataset
    from autodl.writer import write_arrays

    tf = configure_tensorflow(threads=os.cpu_count() or 1)  # the plain pipeline gets every core

    def numpy_path(ds: AutoDLDataset, subset: str) -> Callable[[], int]:
        return lambda: len(ds.load_numpy(subset))

    def tf_path(ds: AutoDLDataset, subset: str) -> Callable[[], int]:
        def run() -> int:
            pipe = make_tf_dataset(ds.record_files(subset), ds.metadata(subset)).prefetch(tf.data.AUTOTUNE)
            return sum(1 for _ in pipe.as_numpy_iterator())
        return run

    rows = []
    targets: list[tuple[str, AutoDLDataset, str]] = []
    for name in ("miniciao", "Monkeys"):
        if (samples_dir / name).is_dir():
            targets.append((f"{name} (organizers' sample, train)", AutoDLDataset(samples_dir / name), "train"))
    tmp = Path(tempfile.mkdtemp(prefix="autodl-bench-"))
    try:
        x, y = synthetic_images(n_images, image_size)
        n_test = max(1, n_images // 10)
        t = time.perf_counter()
        root = write_arrays(tmp / "synthetic", "synthetic", x, y, x[:n_test], y[:n_test])
        write_s = time.perf_counter() - t
        write_rate = (n_images + n_test) / write_s
        targets.append((f"synthetic {n_images} x {image_size}x{image_size}x3 PNG", AutoDLDataset(root), "train"))
        for label, ds, subset in targets:
            t_np, n = _best_of(numpy_path(ds, subset), repeats)
            t_tf, _ = _best_of(tf_path(ds, subset), repeats)
            rows.append((label, n, n / t_np, n / t_tf, t_tf / t_np))
            logger.info("%s: numpy %.0f img/s, tf.data %.0f img/s", label, n / t_np, n / t_tf)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    lines = [f"## I/O: reading, decoding and writing AutoDL datasets ({when})", "",
             f"- Command: `autodl-meta benchmark io --n {n_images} --size {image_size}`",
             f"- Machine: {machine_description()}",
             f"- Each read figure is the best of {repeats} runs, numpy path and tf.data measured side by "
             "side in one process. numpy path: `AutoDLDataset.load_numpy` (Pillow, one decode per image, "
             "threads). tf.data: TFRecordDataset -> parse_single_sequence_example -> decode_image "
             "(the organizers' parse function), AUTOTUNE parallelism, iterated to numpy.", "",
             "| data | images | numpy path (img/s) | plain tf.data (img/s) | numpy / tf.data |",
             "|---|---:|---:|---:|---:|"]
    for label, n, a, b, ratio in rows:
        lines.append(f"| {label} | {n} | {a:,.0f} | {b:,.0f} | {ratio:.2f}x |")
    lines += ["", f"Write (converter, `write_arrays`, PNG, {n_images + n_test} images incl. test): "
                  f"{write_rate:,.0f} img/s ({write_s:.1f} s).", ""]
    report = "\n".join(lines)
    if doc is not None:
        doc = Path(doc)
        doc.parent.mkdir(parents=True, exist_ok=True)
        head = "" if doc.exists() else "# Benchmarks\n\nEvery figure names its command and machine.\n\n"
        with doc.open("a") as f:
            f.write(head + report + "\n")
    return report
