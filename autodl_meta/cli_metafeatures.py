"""``autodl-meta metafeatures extract|show``: meta-features of datasets (thin layer over :mod:`metafeatures`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.parallel import add_tls_arguments

DEFAULT_DATA = "data/collections"
"""A collection NAME is read from ``DEFAULT_DATA/NAME`` unless ``--data`` says otherwise."""
DEFAULT_OUT = "data/metafeatures"
"""Features of collection NAME go to ``DEFAULT_OUT/NAME`` unless ``--out`` says otherwise."""


def _datasets(args: argparse.Namespace) -> tuple[list[tuple[str, Path, str | None]], Path]:
    """The ``(name, folder, source)`` list and the output folder the arguments name."""
    from autodl.collection import collection_datasets
    from autodl.dataset import AutoDLDataset

    if args.collection:
        stem = Path(args.collection).stem
        data = Path(args.data) if args.data else Path(DEFAULT_DATA) / stem
        out = Path(args.out) if args.out else Path(DEFAULT_OUT) / stem
        return collection_datasets(args.collection, data), out
    if args.data:
        raise AutoDLError(None, "--data goes with --collection; give dataset folders with --dataset", field="--data")
    if not args.out:
        raise AutoDLError(None, "required with --dataset (the folder to write <name>.npz/.json in)", field="--out")
    items = []
    for folder in args.dataset:
        ds = AutoDLDataset(folder)
        items.append((ds.name, ds.root, None))
    return items, Path(args.out)


def _count(n: int) -> str:
    return f"{n} dataset" if n == 1 else f"{n} datasets"


def cmd_metafeatures_extract(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from metafeatures.embeddings import EmbeddingSpec
    from metafeatures.extract import CollectionExtractionError, extract_collection

    spec = EmbeddingSpec(backbone=args.backbone, input_size=args.input_size, train_samples=args.train_samples,
                         test_samples=args.test_samples, frames=args.frames, seed=args.seed,
                         batch_size=args.batch_size)
    datasets, out = _datasets(args)
    with tqdm(total=len(datasets), desc="meta-features", unit="dataset", disable=None) as bar:
        def progress(done: int, total: int, name: str) -> None:
            bar.set_postfix_str(name, refresh=False)
            bar.update(done - bar.n)

        try:
            paths = extract_collection(datasets, spec, out, workers=args.workers, scheduler=args.scheduler,
                                       progress=progress, device=args.device)
        except CollectionExtractionError as exc:
            bar.close()
            print(f"features of {_count(len(exc.paths))} in {out}; {len(exc.failures)} failed "
                  f"(tracebacks in the log, -v):", file=sys.stderr)
            for name, error in exc.failures.items():
                print(f"  {name}: {error}", file=sys.stderr)
            return 1
    print(f"features of {_count(len(paths))} in {out} ({spec.backbone} at {spec.input_size} px, "
          f"{spec.train_samples} train / {spec.test_samples} test samples, seed {spec.seed}, "
          f"spec {spec.digest()})")
    return 0


def cmd_metafeatures_show(args: argparse.Namespace) -> int:
    from metafeatures.features import DatasetFeatures

    feats = DatasetFeatures.load(args.features)
    test = "none" if feats.test is None else f"{list(feats.test.shape)}"
    raw = ("none (extracted before they were stored)" if feats.train_raw is None
           else f"{list(feats.train_raw.shape)}")
    print(f"features {feats.name} (source {feats.source}): train {list(feats.train.shape)}, "
          f"train_labels {list(feats.train_labels.shape)}, test {test}, train_raw {raw}")
    print("descriptors: " + ", ".join(f"{k}={v:g}" for k, v in feats.descriptors.items()))
    print("card:")
    print(json.dumps(feats.card, indent=1, sort_keys=True))
    return 0


def register(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``metafeatures extract`` and ``metafeatures show`` to the ``autodl-meta`` parser."""
    from metafeatures.embeddings import EmbeddingSpec

    d = EmbeddingSpec()
    p = sub.add_parser("metafeatures", help="embeddings and descriptors of datasets, for the selectors")
    msub = p.add_subparsers(dest="metafeatures_command", required=True, metavar="ACTION")
    ex = msub.add_parser("extract", formatter_class=fmt,
                         help="embed samples of every dataset of a collection (or of given datasets) with a "
                              "pretrained backbone: <out>/<name>.npz + .json, in parallel with Dask, cached",
                         description="Embed a seeded sample of each dataset's training examples (stratified) and "
                                     "test examples (their labels are never read) with a pretrained backbone's "
                                     "pooled penultimate layer, and describe each dataset (counts, classes, "
                                     "channels, resolution, frames, multi-label). A dataset whose features were "
                                     "made with the same settings from the same files is skipped.")
    which = ex.add_mutually_exclusive_group(required=True)
    which.add_argument("--collection", help="a collection name under configs/collections/ (default, tfds) or a "
                                            "YAML path; its datasets must be built (autodl-meta data "
                                            "build-collection)")
    which.add_argument("--dataset", action="append", metavar="DIR",
                       help="an AutoDL dataset folder (repeatable); needs --out")
    ex.add_argument("--data", default=None,
                    help=f"the folder the collection was built into (default: {DEFAULT_DATA}/<collection>)")
    ex.add_argument("--out", default=None,
                    help=f"output folder (default with --collection: {DEFAULT_OUT}/<collection>)")
    ex.add_argument("--backbone", default=d.backbone,
                    help="a backbone with pretrained weights (resnet18 where its weights file is present)")
    ex.add_argument("--input-size", type=int, default=d.input_size, help="frames are resized to this square size")
    ex.add_argument("--train-samples", type=int, default=d.train_samples,
                    help="training examples embedded per dataset (a seeded stratified subset)")
    ex.add_argument("--test-samples", type=int, default=d.test_samples,
                    help="test examples embedded per dataset (a seeded random subset; 0: none)")
    ex.add_argument("--frames", type=int, default=d.frames, help="frames per clip, embedded and averaged")
    ex.add_argument("--seed", type=int, default=d.seed, help="seed of the samples")
    ex.add_argument("--batch-size", type=int, default=d.batch_size, help="clips per forward pass")
    ex.add_argument("--workers", type=int, default=1,
                    help="Dask worker processes of a LocalCluster, one PyTorch thread each (1: in this process)")
    ex.add_argument("--scheduler", default=None,
                    help="address of a running Dask scheduler instead of a LocalCluster (e.g. tcp://10.1.2.3:8786 "
                         "from dask-jobqueue); the workers must see the datasets and --out at the same paths")
    add_tls_arguments(ex)
    ex.add_argument("--device", default=None, help="cpu or cuda (default: CUDA where available)")
    ex.set_defaults(func=cmd_metafeatures_extract)

    sh = msub.add_parser("show", formatter_class=fmt, help="print a features file's shapes, descriptors and card")
    sh.add_argument("features", help="<name>.npz or <name>.json written by metafeatures extract")
    sh.set_defaults(func=cmd_metafeatures_show)
