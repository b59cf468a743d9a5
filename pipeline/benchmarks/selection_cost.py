"""``autodl-meta benchmark selector``: what embedding and selecting cost at test time.

In one run, side by side on the same machine:

1. Embedding throughput: images/s through :meth:`metafeatures.embeddings.Embedder.embed`
   (uint8 clips ``[N, 1, S, S, 3]`` in, embeddings out: scaling, normalisation, frame
   handling, the pooled penultimate layer) beside the bare backbone forward
   (``finetune.backbones.create_backbone(..., num_classes=0)`` in eval mode under
   ``torch.no_grad`` on an equivalent float tensor ``[N, 3, S, S]`` already on the device),
   in the same batches; the two are measured alternately, and the figure is the median of
   the repetitions. Target: the extractor at >= 90 % of the bare forward.
2. The latency of one selection per selector on the CPU: embedding a batch of 64 images
   plus ``predict_proba`` and the pick, median of the repetitions after a warm-up. Target:
   <= 1 s. Selectors are fitted on the given features, or on synthetic embeddings of 21
   datasets x 256 samples (10 classes) of the embedder's size: what a selection costs
   depends on the number and size of the training datasets, not on their content.

Speed targets are checked here, never in timed unit tests (see :mod:`pipeline.benchmarks.speed`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.machine import machine_description
from autodl.records import Status, append_jsonl, utc_now

logger = logging.getLogger(__name__)

EMBED_TARGET = 0.90
LATENCY_TARGET_S = 1.0
SYNTHETIC_DATASETS, SYNTHETIC_SAMPLES, SYNTHETIC_CLASSES = 21, 256, 10


def synthetic_features(dim: int, n_datasets: int = SYNTHETIC_DATASETS, n: int = SYNTHETIC_SAMPLES,
                       classes: int = SYNTHETIC_CLASSES, seed: int = 0) -> list[Any]:
    """Gaussian embeddings (non-negative, like pooled ReLU features) of ``n_datasets`` datasets."""
    from metafeatures.features import DatasetFeatures

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_datasets):
        centre = rng.gamma(1.0, 1.0, dim).astype(np.float32)
        y = np.eye(classes, dtype=np.float32)[np.arange(n) % classes]
        x = np.abs(centre + rng.normal(0, 0.5, (n, dim))).astype(np.float32)
        desc = {"train_samples": float(1000 * (i + 1)), "test_samples": 500.0, "classes": float(classes),
                "channels": 3.0, "height": 32.0, "width": 32.0, "variable_size": 0.0, "frames": 1.0,
                "multilabel": 0.0}
        out.append(DatasetFeatures(f"synthetic{i:02d}", x, y, x[: n // 2].copy(), desc, None,
                                   {"backbone": "synthetic"}))
    return out


def synthetic_cost(names: Sequence[str], seed: int = 0) -> Any:
    from portfolio.cost_matrix import CostMatrix

    alc = np.random.default_rng(seed).uniform(0.2, 0.9, (len(names), len(names)))
    return CostMatrix(list(names), list(names), alc, [[Status.OK] * len(names) for _ in names], seeds=[0])


def _measure_throughput(embedder: Any, n: int, repeats: int, device: str) -> dict[str, Any]:
    """Images/s of the extractor and of the bare backbone, measured alternately."""
    import torch

    from finetune.backbones import create_backbone

    spec = embedder.spec
    s = spec.input_size
    x = np.random.default_rng(0).integers(0, 256, (n, 1, s, s, 3), dtype=np.uint8)
    backbone = create_backbone(spec.backbone, pretrained=True, num_classes=0).to(device).eval()
    xt = torch.rand(n, 3, s, s, device=device)

    def bare() -> None:
        with torch.no_grad():
            for i in range(0, n, spec.batch_size):
                backbone(xt[i:i + spec.batch_size])
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def extractor() -> None:
        embedder.embed(x)
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    bare()
    extractor()  # warm-up
    t_bare, t_ext = [], []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        bare()
        t_bare.append(time.perf_counter() - t)
        t = time.perf_counter()
        extractor()
        t_ext.append(time.perf_counter() - t)
    bare_ips, ext_ips = n / float(np.median(t_bare)), n / float(np.median(t_ext))
    return {"images": n, "input_size": s, "batch_size": spec.batch_size, "bare_images_per_s": bare_ips,
            "extractor_images_per_s": ext_ips, "ratio": ext_ips / bare_ips, "target": EMBED_TARGET,
            "meets_target": ext_ips / bare_ips >= EMBED_TARGET}


def run_selector_benchmark(selectors: Sequence[str] | None = None, *, features: str | Path | None = None,
                           portfolio: str | Path | None = None, backbone: str | None = None,
                           input_size: int | None = None, n_images: int = 256, batch: int = 64, repeats: int = 5,
                           threads: int | None = None, device: str = "cpu",
                           progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure the embedding throughput and the latency of one selection per selector.

    Parameters
    ----------
    selectors:
        Registry names (default: every registered one except evaluation-only ones).
    features, portfolio:
        Fit the selectors on these features and cost matrix (default: synthetic ones).
    backbone, input_size:
        The embedder's (default: :class:`~metafeatures.embeddings.EmbeddingSpec`'s).
    n_images, batch, repeats:
        Images per throughput measurement, images per selection, timed repetitions.
    threads:
        PyTorch threads (default: PyTorch's own choice), recorded.
    device:
        Where the embedding runs; the latency target is for ``cpu``.

    Returns
    -------
    dict
        ``machine``, ``date``, ``device``, ``threads``, ``embedding`` (:func:`_measure_throughput`),
        ``embedder`` (its card), ``selection`` (per selector: ``embed_seconds``,
        ``select_seconds``, ``total_seconds``, ``meets_target``, or ``error``), ``fitted_on``.
    """
    import dataclasses

    import torch

    from metafeatures.embeddings import Embedder, EmbeddingSpec
    from metafeatures.features import Query
    from selector.registry import list_selectors, make_selector
    from selector.specs import EVALUATION_ONLY, is_evaluation_only, pick

    if threads is not None:
        torch.set_num_threads(int(threads))
    spec = EmbeddingSpec()
    changes = {k: v for k, v in (("backbone", backbone), ("input_size", input_size)) if v is not None}
    if changes:
        spec = dataclasses.replace(spec, **changes)
    names = list(selectors) if selectors else [n for n in list_selectors() if n not in EVALUATION_ONLY]
    if progress is not None:
        progress("embedder")
    embedder = Embedder(spec, in_chans=3, device=device)
    result: dict[str, Any] = {"machine": machine_description(), "date": utc_now("minutes"),
                              "device": device, "threads": torch.get_num_threads(), "repeats": repeats,
                              "batch": batch, "spec": spec.to_dict(),
                              "embedder": {k: v for k, v in embedder.card.items() if k in
                                           ("backbone", "input_size", "dim", "in_chans", "weights")}}
    if progress is not None:
        progress("throughput")
    result["embedding"] = _measure_throughput(embedder, n_images, repeats, device)
    if features is not None:
        from metafeatures.features import load_features_folder

        datasets = load_features_folder(features)
        fitted_on = f"features {features} ({len(datasets)} datasets)"
    else:
        datasets = synthetic_features(embedder.dim)
        fitted_on = (f"synthetic embeddings: {SYNTHETIC_DATASETS} datasets x {SYNTHETIC_SAMPLES} samples, "
                     f"{SYNTHETIC_CLASSES} classes, dimension {embedder.dim}")
    if portfolio is not None:
        from selector.member_views import load_cost

        cost = load_cost(portfolio).matrix
    else:
        cost = synthetic_cost([d.name for d in datasets])
    result["fitted_on"] = fitted_on
    if datasets[0].dim != embedder.dim:
        logger.warning("the features have dimension %d, the embedder %d: selections are timed on feature batches",
                       datasets[0].dim, embedder.dim)
    images = np.random.default_rng(1).integers(0, 256, (batch, 1, spec.input_size, spec.input_size, 3),
                                               dtype=np.uint8)
    fit_sets = [d for d in datasets if d.name in cost.sources]
    query_src = fit_sets[0]
    rows = []
    for name in names:
        if progress is not None:
            progress(f"selection {name}")
        row: dict[str, Any] = {"selector": name}
        try:
            sel = make_selector(name)
            if is_evaluation_only(sel):
                continue
            t = time.perf_counter()
            sel.fit(fit_sets, cost) if sel.needs_cost else sel.fit(fit_sets)
            row["fit_seconds"] = time.perf_counter() - t
            rows.append(row)
            idx = np.random.default_rng(2).choice(len(query_src.train), size=batch,
                                                  replace=batch > len(query_src.train))

            def one(sel: Any = sel, idx: np.ndarray = idx) -> tuple[float, float]:
                t0 = time.perf_counter()
                emb = embedder.embed(images)
                t1 = time.perf_counter()
                x = emb if emb.shape[1] == query_src.dim else query_src.train[idx]
                q = Query(x, query_src.train_labels[idx], dict(query_src.descriptors), name=query_src.name)
                pick(sel, q, np.asarray(sel.predict_proba(q)))
                return t1 - t0, time.perf_counter() - t1

            one()  # warm-up
            times = [one() for _ in range(max(1, repeats))]
            e, s_ = float(np.median([a for a, _ in times])), float(np.median([b for _, b in times]))
            total = float(np.median([a + b for a, b in times]))
            row.update(embed_seconds=e, select_seconds=s_, total_seconds=total,
                       meets_target=total <= LATENCY_TARGET_S)
        except Exception as exc:  # one broken selector never ends the benchmark
            row["error"] = f"{type(exc).__name__}: {exc}"
            if row not in rows:
                rows.append(row)
            logger.warning("benchmark selector: %s failed: %s", name, row["error"])
    result["selection"] = rows
    result["latency_target_s"] = LATENCY_TARGET_S
    return result


def selector_report(result: dict[str, Any], command: str) -> str:
    """The Markdown section of ``docs/benchmarks.md``."""
    e = result["embedding"]
    emb = result["embedder"]
    lines = [f"## selector: embedding throughput and the latency of one selection ({result['date']})", "",
             f"- Command: `{command}`",
             f"- Machine: {result['machine']}; device {result['device']}; {result['threads']} PyTorch thread(s)",
             (f"- Embedder: `{emb.get('backbone')}` at {emb.get('input_size')} px, dimension {emb.get('dim')}; "
              f"median of {result['repeats']} timed repetitions after a warm-up, the two paths alternately"),
             ("- Protocol: none (a speed measurement; the ALC a selection's seconds can cost under `mini` and "
              "`autocv` is in the comparison report of `autodl-meta selector compare`)"),
             f"- Selectors fitted on {result['fitted_on']}", "",
             "| path | images | batch | img/s |", "|---|---:|---:|---:|",
             (f"| bare backbone forward (float tensor on the device) | {e['images']} | {e['batch_size']} | "
              f"{e['bare_images_per_s']:,.1f} |"),
             (f"| extractor `Embedder.embed` (uint8 clips) | {e['images']} | {e['batch_size']} | "
              f"{e['extractor_images_per_s']:,.1f} |"), "",
             (f"Extractor / bare: **{100 * e['ratio']:.0f} %** (target >= {100 * e['target']:.0f} %: "
              f"{'met' if e['meets_target'] else 'NOT met'})."), "",
             (f"One selection: embed {result['batch']} images at {emb.get('input_size')} px, then the selector "
              f"(target <= {result['latency_target_s']:g} s):"), "",
             "| selector | fit s | embed s | select s | total s | target |", "|---|---:|---:|---:|---:|---|"]
    for r in result["selection"]:
        if r.get("error"):
            lines.append(f"| {r['selector']} | {r.get('fit_seconds', float('nan')):.2f} | | | | failed: "
                         f"{r['error'][:100]} |")
            continue
        lines.append(f"| {r['selector']} | {r['fit_seconds']:.2f} | {r['embed_seconds']:.3f} | "
                     f"{r['select_seconds']:.3f} | {r['total_seconds']:.3f} | "
                     f"{'met' if r['meets_target'] else 'NOT met'} |")
    return "\n".join(lines) + "\n"


def save_result(path: str | Path, result: dict[str, Any]) -> None:
    """Append the result as one JSON line."""
    append_jsonl(path, json.loads(json.dumps(result, default=str)))
