"""``autodl-meta benchmark io`` and ``autodl-meta benchmark finetune``: reading/writing speed of
AutoDL datasets, and the fine-tuning learner's training speed, time to first prediction and
peak memory.

Speed targets are checked here, never in timed unit tests: the machines are shared and
noisy, so every figure is a ratio of two things measured side by side in one run, with
the machine and the command written beside it. Reports go to ``docs/benchmarks.md``
(:func:`pipeline.benchmarks.report_doc.append_report`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from autodl.machine import machine_description
from autodl.records import utc_now_text
from pipeline.benchmarks.report_doc import append_report

logger = logging.getLogger(__name__)

SAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "autodl_samples"


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
        ds.load_numpy(subset, limit=1)  # warm-up outside the timer: imports, metadata, thread pool
        return lambda: len(ds.load_numpy(subset))

    def tf_path(ds: AutoDLDataset, subset: str) -> Callable[[], int]:
        # Built (and its parse function traced) once, outside the timer, and one element read
        # through a first iterator (files opened, threads started); each timed run is one full
        # pass of a fresh iterator over that same dataset, as a model iterating it again sees it.
        pipe = make_tf_dataset(ds.record_files(subset), ds.metadata(subset)).prefetch(tf.data.AUTOTUNE)
        next(iter(pipe))

        def run() -> int:
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

    when = utc_now_text()
    lines = [f"## I/O: reading, decoding and writing AutoDL datasets ({when})", "",
             f"- Command: `autodl-meta benchmark io --n {n_images} --size {image_size}`",
             f"- Machine: {machine_description()}",
             f"- Each read figure is the best of {repeats} runs, numpy path and tf.data measured side by "
             "side in one process. numpy path: `AutoDLDataset.load_numpy` (protobuf runtime + Pillow, "
             "one decode per image; threads only for files over 16 KiB), after a one-example warm-up. "
             "tf.data: TFRecordDataset -> parse_single_sequence_example -> decode_image (the organizers' "
             "parse function), AUTOTUNE parallelism, iterated to numpy; the pipeline is built and traced "
             "and one element read before timing, and each timed run is a full pass of a fresh iterator "
             "over it (pipeline construction and tracing are not in the figure).", "",
             "| data | images | numpy path (img/s) | plain tf.data (img/s) | numpy / tf.data |",
             "|---|---:|---:|---:|---:|"]
    for label, n, a, b, ratio in rows:
        lines.append(f"| {label} | {n} | {a:,.0f} | {b:,.0f} | {ratio:.2f}x |")
    lines += ["", f"Write (converter, `write_arrays`, PNG, {n_images + n_test} images incl. test): "
                  f"{write_rate:,.0f} img/s ({write_s:.1f} s).", ""]
    report = "\n".join(lines)
    if doc is not None:
        append_report(doc, report)
    return report


# --- finetune ---------------------------------------------------------------------------------
class _Source:
    """Stands in for the tf.data dataset ingestion hands over: the learner reads its source."""

    def __init__(self, ds, subset):  # noqa: ANN001
        self.autodl_source = (ds, subset)


def _finetune_one(backbone: str, size: int, root: str, steps: int, repeats: int, device: str | None,
                  threads: int) -> dict:
    """Measure one (backbone, size) in a fresh process (so that peak memory is its own)."""
    import resource

    import torch
    import torch.nn.functional as F

    from autodl.dataset import AutoDLDataset
    from finetune.config import default_config
    from finetune.learner import FineTuneLearner

    torch.set_num_threads(threads)
    ds = AutoDLDataset(root)
    config = {**default_config(), "backbone": backbone, "input_size": size, "batch_size": 32,
              "augmentation": "none", "test_time_flip": False, "optimizer": "SGD", "learning_rate": 0.01,
              "lr_schedule": "cosine"}
    learner = FineTuneLearner(ds.metadata("train"), config, device=device, seed=0)
    t = time.perf_counter()
    learner.train(_Source(ds, "train"), remaining_time_budget=1200.0)
    learner.test(_Source(ds, "test"), remaining_time_budget=1200.0)
    first_prediction = time.perf_counter() - t
    net, x, y, opt = learner.net, learner.x_train, learner.y_train, learner.optimizer
    bs = int(config["batch_size"])
    dev = learner.device
    gen = np.random.default_rng(1)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def bare() -> float:
        net.train()
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            idx = torch.from_numpy(gen.integers(0, len(x), bs)).to(dev)
            opt.zero_grad(set_to_none=True)
            with learner._autocast():
                logits = net(x[idx]).float()
            F.cross_entropy(logits, y[idx].argmax(1)).backward()
            opt.step()
        sync()
        return steps * bs / (time.perf_counter() - t0)

    def through_learner() -> float:
        t0 = time.perf_counter()
        learner._train_steps(steps)
        return steps * bs / (time.perf_counter() - t0)

    bare()  # warm-up of both paths at this batch shape
    through_learner()
    bare_rates, learner_rates = [], []
    for _ in range(repeats):  # interleaved, so that machine load hits both alike
        bare_rates.append(bare())
        learner_rates.append(through_learner())
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**20
        peak_kind = "GPU"
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        peak_kind = "RSS"
    return {"backbone": backbone, "size": size, "learner_img_s": float(np.median(learner_rates)),
            "bare_img_s": float(np.median(bare_rates)), "first_prediction_s": first_prediction,
            "peak_mib": peak, "peak_kind": peak_kind, "device": str(dev)}


def benchmark_finetune(backbones: list[str] | None = None, sizes: tuple[int, ...] = (32, 64),
                       n_train: int = 1000, n_test: int = 500, steps: int = 10, repeats: int = 3,
                       device: str | None = None, threads: int | None = None,
                       doc: str | Path | None = "docs/benchmarks.md",
                       progress: Callable[[int], None] | None = None) -> str:
    """Training speed through the learner beside a bare PyTorch loop, time to first prediction
    and peak memory, per backbone and input size. Returns the Markdown report."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    from autodl.writer import write_arrays
    from finetune.backbones import list_backbones, weights_available

    threads = threads or os.cpu_count() or 1
    if backbones is None:
        backbones = [b for b in list_backbones() if b != "linear" and
                     (weights_available(b) or b == "scratch_cnn")]
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="autodl-bench-ft-"))
    try:
        for size in sizes:
            x, y = synthetic_images(n_train + n_test, size)
            root = write_arrays(tmp / f"s{size}", f"s{size}", x[:n_train], y[:n_train], x[n_train:], y[n_train:])
            for b in backbones:
                with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
                    rows.append(pool.submit(_finetune_one, b, size, str(root), steps, repeats, device,
                                            threads).result())
                logger.info("%s", rows[-1])
                if progress is not None:
                    progress(1)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    when = utc_now_text()
    dev = rows[0]["device"] if rows else "?"
    lines = [f"## finetune: training speed, first prediction, memory ({when})", "",
             f"- Command: `autodl-meta benchmark finetune --steps {steps} --repeats {repeats}"
             f"{' --device ' + device if device else ''}`",
             f"- Machine: {machine_description()}; device {dev}; {threads} PyTorch threads",
             f"- Data: {n_train} train / {n_test} test synthetic RGB images per size, 10 classes; batch 32, "
             "SGD (Nesterov), no augmentation.",
             f"- Training img/s: median of {repeats} chunks of {steps} steps, the learner's own training loop "
             "(`FineTuneLearner._train_steps`: index sampling, augmentation call, learning-rate schedule, "
             "loss) interleaved with a bare PyTorch loop on the same network, optimizer and device tensors.",
             "- First prediction: from the first `train` call (decode, resize, fit the ridge probe on raw "
             "pixels) to the end of the first `test` (its predictions for the test set), wall clock.",
             "- Peak memory: the benchmark process's peak RSS (CPU) or `torch.cuda.max_memory_allocated` (GPU).",
             "", "| backbone | px | learner img/s | bare loop img/s | learner / bare | first prediction (s) | "
             "peak memory (MiB) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['backbone']} | {r['size']} | {r['learner_img_s']:.1f} | {r['bare_img_s']:.1f} | "
                     f"{r['learner_img_s'] / r['bare_img_s']:.0%} | {r['first_prediction_s']:.2f} | "
                     f"{r['peak_mib']:.0f} {r['peak_kind']} |")
    report = "\n".join(lines) + "\n"
    if doc is not None:
        append_report(doc, report)
    return report
