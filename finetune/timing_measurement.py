"""Measuring a timing table: every operation of the fine-tuning learner timed on this machine.

:func:`measure_timings` runs the code the learner runs (random weights, synthetic data) and
returns the :class:`finetune.timing.TimingTable` that the simulated clock prices with:

* per backbone and input size, ``fwd_bwd`` at the batch sizes whose batch holds at most
  ``max_batch_pixels`` pixels (:data:`DEFAULT_MAX_BATCH_PIXELS`), ``optimizer_step`` per
  optimizer and the eval-mode ``forward`` in batches of :data:`finetune.timing.FORWARD_BATCH`;
* the augmentation policies, the decoding of each storage format (frames resized to
  :data:`DECODE_TARGET`), the probes (ridge, random features, raw features) and the writing of
  prediction files, each timed over a few shapes and fitted as a linear cost model whose
  non-negative coefficients minimise the relative errors (:data:`finetune.timing.MODEL_TERMS`
  names the terms).

Each figure is the median of ``repeats`` timings after a warm-up. How the table turns the
measured points into costs is described in :mod:`finetune.timing`.
"""

from __future__ import annotations

import logging
import math
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.records import utc_now
from finetune.timing import (
    AUGMENTATIONS,
    FORMATS,
    FORWARD_BATCH,
    MODEL_TERMS,
    OPTIMIZERS,
    TIMING_VERSION,
    TimingError,
    TimingTable,
    random_features_terms,
    ridge_terms,
)

logger = logging.getLogger(__name__)

__all__ = [
    "DECODE_TARGET",
    "DEFAULT_MAX_BATCH_PIXELS",
    "count_measurements",
    "measure_timings",
]

DECODE_TARGET = 32
"""Side the decoding measurements resize frames to (the ``mini`` protocol's size)."""
DEFAULT_MAX_BATCH_PIXELS = 2 ** 20
"""``fwd_bwd`` is measured at the batch sizes whose batch holds at most this many pixels
(at least the two smallest); other batch sizes are interpolated or continued linearly."""


def _fit_nonneg(rows: Sequence[Sequence[float]], seconds: Sequence[float]) -> list[float]:
    """Non-negative least squares on relative errors: minimise sum(((X c - t) / t)^2), c >= 0."""
    from scipy.optimize import nnls

    x = np.asarray(rows, dtype=float)
    t = np.asarray(seconds, dtype=float)
    xs = x / t[:, None]
    norms = np.linalg.norm(xs, axis=0)
    norms[norms == 0] = 1.0
    coef, _ = nnls(xs / norms, np.ones(len(t)))
    return [float(c) for c in coef / norms]


def count_measurements(backbones: Sequence[str], input_sizes: Sequence[int],
                       formats: Sequence[str] = FORMATS) -> int:
    """How many times :func:`measure_timings` calls its ``progress`` (with 1)."""
    return len(backbones) * len(input_sizes) + 1 + len(formats) + 4


def _batch_plan(batch_sizes: Sequence[int], size: int, max_batch_pixels: int) -> list[int]:
    """Batch sizes at which fwd_bwd is measured at ``size``: those within the pixel budget,
    at least the two smallest."""
    ordered = sorted(set(batch_sizes))
    chosen = [b for b in ordered if b * size * size <= max_batch_pixels]
    return chosen if len(chosen) >= 2 else ordered[:2]


class _Timer:
    """Median of ``repeats`` timings after a warm-up; cheap calls are looped to >= 5 ms."""

    def __init__(self, repeats: int, device: str):
        import torch

        self.repeats = max(1, int(repeats))
        self.cuda = device.startswith("cuda")
        self._torch = torch

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def once(self, fn: Callable[[], Any]) -> float:
        self.sync()
        t = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t

    def median(self, fn: Callable[[], Any], min_seconds: float = 0.005, max_loops: int = 200) -> float:
        first = self.once(fn)  # warm-up
        if first < 0.05:
            first = self.once(fn)
        loops = 1 if first >= min_seconds else min(max_loops, math.ceil(min_seconds / max(first, 1e-7)))
        samples = []
        for _ in range(self.repeats):
            self.sync()
            t = time.perf_counter()
            for _ in range(loops):
                fn()
            self.sync()
            samples.append((time.perf_counter() - t) / loops)
        return statistics.median(samples)


def _smooth_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` uint8 RGB images that compress like photos (smooth shapes, mild noise)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    f = rng.uniform(1, 4, (n, 3, 2, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 6.3, (n, 3, 1, 1)).astype(np.float32)
    img = 128 + 80 * np.sin(2 * np.pi * f[:, :, 0] * xx + phase) * np.cos(2 * np.pi * f[:, :, 1] * yy)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class _Source:
    """What the ingestion hands a model: carries ``(dataset, subset)`` for :func:`load_arrays`."""

    def __init__(self, ds: Any, subset: str):
        self.autodl_source = (ds, subset)


def _measure_backbone(name: str, size: int, batches: Sequence[int], optimizers: Sequence[str], device: str,
                      timer: _Timer, rng: np.random.Generator) -> dict[str, Any]:
    """fwd_bwd points, optimizer steps and the forward pass of one backbone at one size."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from finetune.backbones import create_backbone
    from finetune.network import FineTuneNet

    kwargs = {"img_size": size} if name == "linear" else {}
    backbone = create_backbone(name, pretrained=False, num_classes=0, **kwargs)
    classes = 10
    net = FineTuneNet(backbone, 3, classes, 0.2).to(device)
    cuda = device.startswith("cuda")
    if cuda:
        net = net.to(memory_format=torch.channels_last)

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    pool = max(FORWARD_BATCH, 2 * max(batches))
    x_pool = torch.from_numpy(rng.integers(0, 256, (pool, 1, 3, size, size), dtype=np.uint8)).to(device)
    y_pool = F.one_hot(torch.from_numpy(rng.integers(0, classes, pool)), classes).float().to(device)
    sgd = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-5)
    net.train()

    def fwd_bwd(bs: int) -> float:
        t = time.perf_counter()
        idx = torch.from_numpy(rng.integers(0, pool, bs)).to(device)
        xb, yb = x_pool[idx], y_pool[idx]
        sgd.zero_grad(set_to_none=True)
        with autocast():
            logits = net(xb).float()
        F.cross_entropy(logits, yb.argmax(1)).backward()
        timer.sync()
        seconds = time.perf_counter() - t
        sgd.step()
        return seconds

    for bs in batches:  # warm-up: every shape once (kernel selection, allocator)
        fwd_bwd(bs)
    # interleaved rounds: a transient load on a shared machine touches one sample of
    # each batch size, not every sample of one (measured: EfficientNet-Lite0's batch of 32
    # at 32 px priced 0.34 s, above its neighbours' line, when its samples were taken in a row)
    samples: dict[int, list[float]] = {bs: [] for bs in batches}
    for _ in range(timer.repeats):
        for bs in batches:
            samples[bs].append(fwd_bwd(bs))
    points = [[bs, statistics.median(samples[bs])] for bs in batches]
    # the gradients of the last backward stay in place for the optimizers' steps
    steps = {}
    for opt_name in optimizers:
        params = list(net.parameters())
        opt = (torch.optim.SGD(params, lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-5)
               if opt_name == "SGD" else torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5))
        steps[opt_name] = timer.median(opt.step)
    net.eval()
    xt = x_pool[:FORWARD_BATCH]

    def forward() -> None:
        with torch.no_grad(), autocast():
            net(xt).float()

    per_image = timer.median(forward) / FORWARD_BATCH
    logger.info("%s %dpx: fwd_bwd %s, optimizer %s, forward %.5f s/image", name, size,
                ", ".join(f"{b}: {s:.4f} s" for b, s in points),
                ", ".join(f"{k}: {v:.5f} s" for k, v in steps.items()), per_image)
    return {"fwd_bwd": points, "optimizer_step": steps, "forward": per_image}


def _measure_augmentation(policies: Sequence[str], sizes: Sequence[int], batches: Sequence[int], device: str,
                          timer: _Timer) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    import torch

    from finetune.augment import augment

    rng = np.random.default_rng(0)
    shapes = sorted({(b, s) for s in sizes for b in batches})
    coefs, evidence = {}, []
    for policy in policies:
        rows, seconds = [], []
        for bs, size in shapes:
            x = torch.from_numpy(rng.integers(0, 256, (bs, 1, 3, size, size), dtype=np.uint8)).to(device)
            s = timer.median(lambda x=x: augment(x, policy, rng))
            rows.append([1.0, bs, bs * size * size / 1e6])
            seconds.append(s)
            evidence.append({"augmentation": policy, "clips": bs, "input_size": size, "seconds": s})
        coefs[policy] = dict(zip(MODEL_TERMS["augmentation"], _fit_nonneg(rows, seconds)))
    return coefs, evidence


def _measure_decode(fmt: str, sizes: Sequence[int], counts: Sequence[int], timer: _Timer,
                    work: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from autodl.dataset import AutoDLDataset
    from autodl.metadata import COMPRESSED, DENSE
    from autodl.writer import write_arrays
    from finetune.data import load_arrays

    rng = np.random.default_rng(1)
    rows, seconds, evidence = [], [], []
    for size, n in zip(sizes, counts):
        x = _smooth_images(rng, n, size)
        y = np.arange(n) % 4
        root = work / f"{fmt}-{size}"
        if fmt == "dense":
            write_arrays(root, "timing", x.astype(np.float32) / 255, y, x[:4].astype(np.float32) / 255, y[:4],
                         fmt=DENSE, num_classes=4, threads=1)
        else:
            write_arrays(root, "timing", x, y, x[:4], y[:4], fmt=COMPRESSED, image_format=fmt.upper(),
                         num_classes=4, threads=1)
        for limit in (max(1, n // 4), n):
            def load(limit: int = limit) -> None:
                target = (DECODE_TARGET, DECODE_TARGET)
                load_arrays(_Source(AutoDLDataset(root), "train"), target, 1, limit=limit)

            s = timer.median(load)
            rows.append([1.0, limit, limit * size * size / 1e6])
            seconds.append(s)
            evidence.append({"format": fmt, "examples": limit, "source_size": size, "seconds": s})
    return dict(zip(MODEL_TERMS["decode"], _fit_nonneg(rows, seconds))), evidence


def _labels(rng: np.random.Generator, n: int, k: int) -> Any:
    import torch

    y = np.zeros((n, k), dtype=np.float32)
    y[np.arange(n), np.arange(n) % k] = 1.0  # every class present
    return torch.from_numpy(y[rng.permutation(n)])


def _measure_probes(device: str, timer: _Timer, quick: bool,
                    progress: Callable[[int], None] | None) -> tuple[dict[str, Any], dict[str, list]]:
    import torch

    from finetune.probe import RandomReLUFeatures, RidgeProbe, raw_features

    rng = np.random.default_rng(2)
    gen = torch.Generator().manual_seed(2)

    def feats(n: int, d: int) -> Any:
        return torch.randn(n, d, generator=gen).to(device)

    out: dict[str, Any] = {}
    evidence: dict[str, list] = {}
    # ridge: (n, d, k, n_val, n_predict, n_alphas) spanning the learner's probes (raw pixels
    # 16x16xC, random features 768+1024, embeddings of 256 examples)
    # ridge: (n, d, k, n_eval, n_alphas) spanning the learner's probes (raw pixels 16x16xC,
    # random features 768+1024, embeddings of 256 examples); n = 0: predictions alone
    ridge_shapes = ([(32, 16, 2, 0, 1), (64, 48, 3, 16, 4), (96, 128, 5, 24, 4), (128, 64, 10, 0, 2),
                     (0, 48, 3, 64, 4), (0, 128, 10, 256, 4)] if quick else
                    [(128, 64, 2, 0, 1), (256, 192, 10, 64, 4), (256, 512, 10, 256, 4),
                     (256, 1280, 10, 256, 4), (256, 1280, 10, 0, 4), (128, 768, 5, 64, 4),
                     (1024, 768, 10, 256, 4), (4000, 768, 10, 256, 4), (1024, 1792, 10, 0, 4),
                     (2048, 1792, 10, 256, 4), (512, 768, 100, 128, 4), (512, 256, 30, 256, 2),
                     (2048, 768, 10, 0, 4),
                     (0, 64, 2, 4096, 4), (0, 768, 10, 1024, 4), (0, 1792, 10, 4000, 4),
                     (0, 1280, 100, 512, 4), (0, 256, 10, 256, 4)])
    rows, seconds, evidence["ridge"] = [], [], []
    for n, d, k, n_eval, n_alphas in ridge_shapes:
        alphas = RidgeProbe().alphas[:n_alphas]
        fit_n = n or 64  # predictions alone: from a probe fitted beforehand
        x, y, xe = feats(fit_n, d), _labels(rng, fit_n, k).to(device), feats(n_eval, d)
        ye = _labels(rng, n_eval, k).numpy()
        if n:
            def ridge(x=x, y=y, xe=xe, ye=ye, alphas=alphas, n_eval=n_eval) -> None:
                RidgeProbe(alphas=alphas).fit(x, y, xe if n_eval else None, ye if n_eval else None)
        else:
            def ridge(probe=RidgeProbe(alphas=alphas).fit(x, y), xe=xe) -> None:
                probe.predict_proba(xe)

        s = timer.median(ridge)
        rows.append(ridge_terms(n, d, k, n_eval, n_alphas))
        seconds.append(s)
        evidence["ridge"].append({"n": n, "d": d, "k": k, "n_eval": n_eval, "n_alphas": n_alphas,
                                  "seconds": s})
    out["ridge"] = dict(zip(MODEL_TERMS["ridge"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)

    rf_shapes = ([(32, 16, 32, 32), (64, 48, 64, 0), (128, 48, 128, 128), (96, 16, 256, 0), (64, 96, 32, 64)]
                 if quick else
                 [(256, 192, 256, 256), (1024, 768, 1024, 1024), (4096, 768, 1024, 0), (512, 256, 2048, 512),
                  (2048, 768, 1024, 2048), (256, 768, 512, 0), (8192, 64, 256, 0)])
    rows, seconds, evidence["random_features"] = [], [], []
    for n, d, width, n_fit in rf_shapes:
        raw, raw_fit = feats(n, d), feats(n_fit, d) if n_fit else None
        fitted = RandomReLUFeatures(width=width).fit(feats(8, d))

        def random_features(raw=raw, raw_fit=raw_fit, fitted=fitted, width=width) -> None:
            rf = RandomReLUFeatures(width=width).fit(raw_fit) if raw_fit is not None else fitted
            rf.transform(raw)

        s = timer.median(random_features)
        rows.append(random_features_terms(n, d, width, n_fit))
        seconds.append(s)
        evidence["random_features"].append({"n": n, "d": d, "width": width, "n_fit": n_fit, "seconds": s})
    out["random_features"] = dict(zip(MODEL_TERMS["random_features"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)

    raw_shapes = ([(16, 1, 1, 16), (32, 1, 3, 24), (8, 2, 3, 32)] if quick else
                  [(256, 1, 3, 32), (2048, 1, 3, 32), (256, 1, 3, 128), (512, 1, 1, 64), (128, 4, 3, 64)])
    rows, seconds, evidence["raw_features"] = [], [], []
    for n, frames, channels, size in raw_shapes:
        shape = (n, frames, channels, size, size)
        clips = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)).to(device)
        s = timer.median(lambda clips=clips: raw_features(clips))
        rows.append([1.0, float(n) * frames * channels * size * size, float(n) * channels * size * size])
        seconds.append(s)
        evidence["raw_features"].append({"n": n, "frames": frames, "channels": channels, "input_size": size,
                                         "seconds": s})
    out["raw_features"] = dict(zip(MODEL_TERMS["raw_features"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)
    return out, evidence


def _measure_write_predictions(timer: _Timer, quick: bool, work: Path) -> tuple[dict[str, float], list]:
    from autodl.ingestion import write_predictions

    rng = np.random.default_rng(3)
    shapes = [(20, 3), (100, 10), (50, 40)] if quick else [(100, 10), (2000, 10), (1000, 100), (10000, 2)]
    rows, seconds, evidence = [], [], []
    for i, (n, k) in enumerate(shapes):
        pred = rng.random((n, k))
        path = work / f"timing.predict_{i}"
        s = timer.median(lambda pred=pred, path=path: write_predictions(path, pred))
        rows.append([1.0, float(n * k)])
        seconds.append(s)
        evidence.append({"rows": n, "columns": k, "seconds": s})
    return dict(zip(MODEL_TERMS["write_predictions"], _fit_nonneg(rows, seconds))), evidence


def _check_names(values: Iterable[str], known: Sequence[str], field: str) -> list[str]:
    values = list(values)
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise TimingError(None, f"{unknown or 'nothing'}: expected one or more of {list(known)}", field=field)
    return values


def measure_timings(backbones: Sequence[str], batch_sizes: Sequence[int] = (16, 32, 64, 128),
                    input_sizes: Sequence[int] = (32, 64, 128), optimizers: Sequence[str] = OPTIMIZERS,
                    augmentations: Sequence[str] = AUGMENTATIONS, formats: Sequence[str] = FORMATS,
                    device: str = "cpu", threads: int = 1, repeats: int = 5,
                    progress: Callable[[int], None] | None = None, *, command: str | None = None,
                    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS, quick: bool = False) -> TimingTable:
    """Measure every cost of the fine-tuning learner on this machine (random weights).

    Each figure is the median of ``repeats`` timings after a warm-up (cheap calls are
    looped to at least 5 ms per timing).

    Parameters
    ----------
    backbones:
        Registered backbone names (random weights: no pretrained file is needed).
    batch_sizes:
        Batch sizes of the configuration space; ``fwd_bwd`` is measured at those whose
        batch holds at most ``max_batch_pixels`` pixels (at least the two smallest); the
        others are interpolated (or continued) linearly in the number of images.
    input_sizes:
        Square input sizes in pixels.
    optimizers, augmentations, formats:
        Subsets of :data:`OPTIMIZERS`, :data:`AUGMENTATIONS`, :data:`FORMATS`.
    device:
        ``cpu`` or ``cuda[:N]``.
    threads:
        PyTorch threads during the measurement (offline evaluations run one per
        evaluation); restored afterwards.
    repeats:
        Timings per figure.
    progress:
        Called with 1 after each of :func:`count_measurements` steps.
    command:
        The command line to record (default: this call, as Python).
    max_batch_pixels:
        See ``batch_sizes``.
    quick:
        Tiny synthetic workloads for the probes, decoding and prediction files (for
        tests: the coefficients are noisier).

    Returns
    -------
    TimingTable
        Not saved; call :meth:`TimingTable.save`.
    """
    import torch

    from autodl.machine import machine_description
    from finetune.backbones import list_backbones

    backbones = _check_names(backbones, list_backbones(), "backbones")
    optimizers = _check_names(optimizers, OPTIMIZERS, "optimizers")
    augmentations = _check_names(augmentations, AUGMENTATIONS, "augmentations")
    formats = _check_names(formats, FORMATS, "formats")
    batch_sizes = sorted({int(b) for b in batch_sizes})
    input_sizes = sorted({int(s) for s in input_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise TimingError(None, f"{batch_sizes}: expected batch sizes >= 1", field="batch_sizes")
    if not input_sizes or input_sizes[0] < 1:
        raise TimingError(None, f"{input_sizes}: expected input sizes >= 1 pixel", field="input_sizes")
    if int(threads) < 1:
        raise TimingError(None, f"threads={threads}: expected >= 1", field="threads")
    parameters = {"backbones": backbones, "batch_sizes": batch_sizes, "input_sizes": input_sizes,
                  "optimizers": optimizers, "augmentations": augmentations, "formats": formats,
                  "repeats": int(repeats), "max_batch_pixels": int(max_batch_pixels), "quick": bool(quick),
                  "forward_batch": FORWARD_BATCH, "decode_target": DECODE_TARGET,
                  "fwd_bwd_batch_sizes": {str(s): _batch_plan(batch_sizes, s, max_batch_pixels)
                                          for s in input_sizes}}
    if command is None:
        command = (f"finetune.timing_measurement.measure_timings({backbones!r}, {batch_sizes!r}, "
                   f"{input_sizes!r}, optimizers={optimizers!r}, augmentations={augmentations!r}, "
                   f"formats={formats!r}, device={device!r}, threads={threads}, repeats={repeats}, "
                   f"max_batch_pixels={max_batch_pixels}, quick={quick})")

    def tick() -> None:
        if progress is not None:
            progress(1)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    started = time.perf_counter()
    try:
        timer = _Timer(repeats, device)
        rng = np.random.default_rng(0)
        table_backbones: dict[str, Any] = {}
        for name in backbones:
            parts: dict[str, Any] = {"fwd_bwd": {}, "optimizer_step": {o: {} for o in optimizers},
                                     "forward": {}}
            for size in input_sizes:
                m = _measure_backbone(name, size, parameters["fwd_bwd_batch_sizes"][str(size)], optimizers,
                                      device, timer, rng)
                parts["fwd_bwd"][str(size)] = m["fwd_bwd"]
                for opt, s in m["optimizer_step"].items():
                    parts["optimizer_step"][opt][str(size)] = s
                parts["forward"][str(size)] = m["forward"]
                tick()
            table_backbones[name] = parts
        augmentation, aug_evidence = _measure_augmentation(augmentations, input_sizes, batch_sizes, device,
                                                           timer)
        tick()
        measurements: dict[str, Any] = {"augmentation": aug_evidence, "decode": []}
        decode = {}
        sizes, counts = ((16, 32), (32, 16)) if quick else ((32, 128), (256, 64))
        with tempfile.TemporaryDirectory(prefix="autodl-timing-") as tmp:
            for fmt in formats:
                decode[fmt], evidence = _measure_decode(fmt, sizes, counts, timer, Path(tmp))
                measurements["decode"] += evidence
                tick()
            probes, evidence = _measure_probes(device, timer, quick, progress)
            measurements.update(evidence)
            write, measurements["write_predictions"] = _measure_write_predictions(timer, quick, Path(tmp))
            tick()
    finally:
        torch.set_num_threads(old_threads)
    logger.info("timing table measured in %.0f s", time.perf_counter() - started)
    data = {"version": TIMING_VERSION, "machine": machine_description(), "device": device,
            "threads": int(threads), "created": utc_now(),
            "command": command, "torch": torch.__version__, "parameters": parameters,
            "backbones": table_backbones, "augmentation": augmentation, "decode": decode, **probes,
            "write_predictions": write, "measurements": measurements}
    return TimingTable(data)
