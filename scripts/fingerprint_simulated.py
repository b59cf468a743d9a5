"""Fingerprint of the fine-tuning learner's behaviour on the simulated clock: "behaviour unchanged", checked.

A refactoring that must not change what the learner does (moving code, renaming, splitting
modules, changing how costs are charged) is checked by running the same evaluations before and
after it and comparing every number they produce. On the simulated clock (time advanced from a
timing table, never read from the machine) an evaluation depends on its configuration, dataset,
protocol, timing table and seed alone, so two runs of the same code give the same bits, and any
difference is a change of behaviour.

The cases (:data:`CASES`) cover the learner's paths: probes only; fine-tuning with flips, test-time
flips and a cosine schedule on the committed timing table; the plateau schedule; the quick start on
larger images; small and large probe shares; a pretrained EfficientNet-Lite0 training its head only
(on ``demo/miniciao``); video clips; a tiny dataset (leave-one-out probes); dense multi-label data.
Each runs with seeds 0 and 1 (:func:`finetune.config_runs.evaluate`, CPU, one PyTorch thread). For
every run the fingerprint holds the status, error, ALC, final NAUC, every point of the learning
curve (timestamps, NAUC, accuracy), the learner's history and the SHA-256 of every prediction file.
It takes about 10 minutes on 2 cores.

Usage::

    python scripts/fingerprint_simulated.py OUT.json [--data DIR] [CASE ...]   # run (all cases, or CASE ...)
    python scripts/fingerprint_simulated.py --compare BEFORE.json AFTER.json   # IDENTICAL, or what differs

``--data``: where the small datasets are written and the runs keep their predictions (kept, and
reused by the next run; default: a temporary folder removed at the end). ``--compare`` compares
two fingerprints run by run (floats by their JSON text, i.e. bit for bit), prints ``SAME`` or
``DIFF`` per run and ``IDENTICAL`` at the end when every run is the same, and exits with 1 otherwise.

The procedure (docs/clocks.md, "Behaviour unchanged: how it is checked"): run it on the code
before the change (e.g. a ``git stash`` or a worktree of the commit before), then after, and
compare.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # the project, and the tests' helpers (conftest)

SEEDS = (0, 1)


def _cases(data: Path) -> dict[str, tuple[Callable[[], Path], dict[str, Any], Any, Any]]:
    """name -> (dataset maker, configuration, protocol, timing table)."""
    import numpy as np
    from conftest import flat_timing, write_squares

    from autodl.protocol import Protocol
    from autodl.writer import write_arrays
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable

    committed = TimingTable.load(DEFAULT_TIMING)
    cheap = {"backbone": "scratch_cnn", "input_size": 32, "batch_size": 16, "optimizer": "Adam",
             "learning_rate": 0.01, "pretrained": False, "augmentation": "none"}

    def once(name: str, make: Callable[[Path], Path]) -> Callable[[], Path]:
        def get() -> Path:
            p = data / name
            return p if p.exists() else make(p)
        return get

    def large(p: Path) -> Path:
        rng = np.random.default_rng(0)

        def images(n: int) -> tuple[Any, Any]:
            y = rng.permutation(np.arange(n) % 4)
            x = rng.integers(0, 90, (n, 96, 96, 3)).astype(np.uint8)
            for i, k in enumerate(y):
                r, c = divmod(int(k), 2)
                x[i, 48 * r + 8:48 * r + 40, 48 * c + 8:48 * c + 40] = 230
            return x, y

        return write_arrays(p, "large", *images(160), *images(40), num_classes=4)

    def video(p: Path) -> Path:
        rng = np.random.default_rng(1)

        def clips(n: int) -> tuple[Any, Any]:
            y = rng.permutation(np.arange(n) % 3)
            x = rng.integers(0, 70, (n, 6, 16, 16, 3)).astype(np.uint8)
            for i, k in enumerate(y):
                r, c = [(2, 2), (2, 9), (9, 5)][k]
                x[i, :, r:r + 5, c:c + 5] = 230
            return x, y

        return write_arrays(p, "video", *clips(40), *clips(12), num_classes=3)

    def dense_multilabel(p: Path) -> Path:
        rng = np.random.default_rng(2)

        def examples(n: int) -> tuple[Any, Any]:
            y = [[int(k)] + ([int((k + 1) % 3)] if i % 2 == 0 else [])
                 for i, k in enumerate(rng.permutation(np.arange(n) % 3))]
            x = rng.normal(10, 10, (n, 16, 16, 2)).astype(np.float32)
            for i, ks in enumerate(y):
                for k in ks:
                    r, c = [(2, 2), (2, 9), (9, 5)][k]
                    x[i, r:r + 5, c:c + 5] = 100.0
            return x, y

        return write_arrays(p, "dense_ml", *examples(60), *examples(24), num_classes=3, fmt="DENSE")

    squares = once("squares", write_squares)
    tiny = once("tiny", lambda p: write_squares(p, n_train=20, n_test=9))
    flat = flat_timing(0.05, 0.0005)
    p12, p20, p30 = (Protocol("fp", time_budget=12.0, t0=0.6), Protocol("fp20", time_budget=20.0, t0=1.0),
                     Protocol("fp30", time_budget=30.0, t0=1.5))
    return {
        "probes_only": (squares, {**cheap, "probes": "raw+random+embedding", "finetune": False}, p12, flat),
        "finetune_flip_cosine_committed": (squares, {**cheap, "augmentation": "flip", "test_time_flip": True,
                                                     "lr_schedule": "cosine", "probes": "raw+embedding"},
                                           p30, committed),
        "finetune_plateau_flat": (squares, {**cheap, "optimizer": "SGD", "lr_schedule": "plateau"}, p12, flat),
        "quick_start_committed": (once("large", large), {**cheap, "probes": "raw+random"}, p30, committed),
        "probe_share_0.05": (squares, {**cheap, "probes": "raw+random+embedding", "probe_share": 0.05}, p20,
                             flat_timing(0.5, 0.05)),
        "probe_share_0.35_committed": (squares, {**cheap, "probes": "raw+random+embedding", "probe_share": 0.35},
                                       p12, committed),
        "train_layers_head_lite0": (lambda: REPO / "demo" / "miniciao",
                                    {"backbone": "tf_efficientnet_lite0", "input_size": 32, "batch_size": 16,
                                     "pretrained": True, "train_layers": "head", "probes": "raw+embedding",
                                     "optimizer": "SGD", "learning_rate": 0.025}, p30, committed),
        "video_frames2": (once("video", video), {**cheap, "frames_per_clip": 2, "probes": "raw+random+embedding"},
                          p12, flat),
        "tiny_loo": (tiny, {**cheap, "probes": "raw+random"}, p12, flat),
        "dense_multilabel": (once("dense_ml", dense_multilabel), {**cheap, "augmentation": "fast_autoaugment"},
                             p12, flat),
    }


CASES = ("probes_only", "finetune_flip_cosine_committed", "finetune_plateau_flat", "quick_start_committed",
         "probe_share_0.05", "probe_share_0.35_committed", "train_layers_head_lite0", "video_frames2", "tiny_loo",
         "dense_multilabel")
"""The cases, in the order they run (each with every seed of :data:`SEEDS`)."""


def fingerprint(data: Path, only: list[str] | None = None) -> dict[str, Any]:
    """Run the cases (``only``: those named) with every seed; returns ``{"CASE/seedN": run}``."""
    import torch

    from finetune.config_runs import evaluate

    torch.set_num_threads(1)
    cases = _cases(data)
    unknown = sorted(set(only or ()) - set(cases))
    if unknown:
        raise SystemExit(f"unknown case(s) {', '.join(unknown)}; known: {', '.join(cases)}")
    result: dict[str, Any] = {}
    for name, (dataset, config, protocol, timing) in cases.items():
        if only and name not in only:
            continue
        for seed in SEEDS:
            out = data / "runs" / f"{name}_{seed}"
            shutil.rmtree(out, ignore_errors=True)
            ev = evaluate(config, dataset(), protocol, timing=timing, device="cpu", seed=seed, out=out)
            preds = sorted((out / "predictions").glob("*.predict_*")) if (out / "predictions").exists() else \
                sorted(out.rglob("*.predict_*"))
            result[f"{name}/seed{seed}"] = {
                "status": ev.status, "error": ev.error, "alc": ev.alc, "final_nauc": ev.final_nauc,
                "timestamps": ev.curve.timestamps, "nauc": ev.curve.nauc, "accuracy": ev.curve.accuracy,
                "history": ev.history,
                "predictions": [[p.name, hashlib.sha256(p.read_bytes()).hexdigest()] for p in preds]}
            print(f"{name} seed {seed}: {ev.status} alc={ev.alc} n={len(ev.curve)} preds={len(preds)} "
                  f"wall={ev.wall_seconds:.1f}s", file=sys.stderr, flush=True)
    return result


def compare(a_path: str | Path, b_path: str | Path) -> bool:
    """Print, run by run, whether two fingerprints are the same (bit for bit: floats compared by
    their JSON text); True when every run is."""
    a, b = (json.loads(Path(p).read_text()) for p in (a_path, b_path))
    print(f"{a_path}: {len(a)} runs; {b_path}: {len(b)} runs")
    if set(a) != set(b):
        print(f"the runs differ: only in {a_path}: {sorted(set(a) - set(b))}; only in {b_path}: "
              f"{sorted(set(b) - set(a))}")
        return False
    bad = 0
    for key in sorted(a):
        same = json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True)
        bad += not same
        r = a[key]
        print(f"{'SAME' if same else 'DIFF'} {key}: alc={r['alc']!r} points={len(r['timestamps'])} "
              f"history={len(r['history'])} predictions={len(r['predictions'])}")
    print("IDENTICAL" if not bad else f"{bad} runs differ")
    return not bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                epilog="See the module docstring (and docs/clocks.md) for the cases and the procedure.")
    p.add_argument("out", nargs="?", help="the fingerprint to write (JSON)")
    p.add_argument("cases", nargs="*", help="run only these cases (default: all)")
    p.add_argument("--data", default=None, help="folder for the datasets and runs (default: a temporary one)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="compare two fingerprints instead of running")
    args = p.parse_args(argv)
    if args.compare:
        return 0 if compare(*args.compare) else 1
    if not args.out:
        p.error("OUT.json is required (or --compare A B)")
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="fingerprint-"))
    data.mkdir(parents=True, exist_ok=True)
    try:
        result = fingerprint(data, args.cases)
    finally:
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True, default=repr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
