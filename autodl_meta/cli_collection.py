"""``autodl-meta data build-collection|collection-report``: dataset collections, training and held-out
(thin layer over :mod:`autodl.collection`, :mod:`autodl.collection_build` and
:mod:`finetune.collection_report`)."""

from __future__ import annotations

import argparse
from typing import Any


def _only(text: str | None) -> list[str] | None:
    if not text:
        return None
    return [s.strip() for s in text.split(",") if s.strip()]


def cmd_build_collection(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl.collection import collection_samples, load_collection
    from autodl.collection_build import build_collection

    coll = load_collection(args.collection)
    recipes = coll.select(_only(args.only))
    with tqdm(total=len(recipes), desc=f"collection {coll.name}", unit="dataset", disable=None) as bar:
        def start(recipe: Any) -> None:
            bar.set_postfix_str(recipe.name, refresh=True)

        def done(result: Any) -> None:
            bar.update(1)
            tqdm.write(f"  {result.status:8s} {result.name:24s} train {result.train:6d}  test {result.test:6d}"
                       + (f"  ({result.seconds:.1f} s)" if result.status != "skipped" else ""))

        results = build_collection(coll, args.out, only=_only(args.only), overwrite=args.overwrite,
                                   tfds_data_dir=args.tfds_data_dir, on_start=start, on_done=done)
    counts = {s: sum(r.status == s for r in results) for s in ("built", "rebuilt", "skipped")}
    samples = collection_samples(coll, _only(args.only))
    for smp, present in samples:
        print(f"  {'sample' if present else 'ABSENT':8s} {smp.name:24s} used as it is from {smp.folder}"
              + ("" if present else " (not on this machine: left out)"))
    print(f"{len(results)} datasets of {coll.name} in {args.out}: "
          + ", ".join(f"{n} {s}" for s, n in counts.items())
          + (f"; {sum(p for _, p in samples)} of {len(samples)} samples present" if samples else ""))
    return 0


def cmd_collection_report(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl.collection import load_collection
    from autodl.records import Status
    from finetune.collection_report import write_report

    coll = load_collection(args.collection)
    recipes = coll.select(_only(args.only))
    command = (f"autodl-meta data collection-report {args.collection} --data {args.data} --doc {args.doc}"
               + (f" --only {args.only}" if args.only else "")
               + f" --protocol {args.protocol} --clock {args.clock} --seed {args.seed} --threads {args.threads}")
    with tqdm(total=len(recipes), desc="linear baseline", unit="dataset", disable=None) as bar:
        def start(recipe: Any) -> None:
            bar.set_postfix_str(recipe.name, refresh=True)

        def done(row: Any) -> None:
            bar.update(1)
            nauc = "n/a" if row.nauc is None else f"{row.nauc:.3f}"
            alc = "n/a" if row.alc is None else f"{row.alc:.3f}"
            tqdm.write(f"  {row.summary.name:24s} {row.status:8s} NAUC {nauc}  ALC {alc}"
                       + ("  (reused)" if row.reused else ""))

        doc, rows = write_report(coll, args.data, args.doc, only=_only(args.only), protocol=args.protocol,
                                 clock=args.clock, seed=args.seed, threads=args.threads, command=command,
                                 note=args.note, on_start=start, on_done=done)
    print(f"wrote {doc} ({len(rows)} datasets)")
    return 0 if all(r.status == Status.OK for r in rows) else 1


def register(dsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``build-collection`` and ``collection-report`` to the ``data`` sub-commands."""
    b = dsub.add_parser("build-collection", formatter_class=fmt,
                        help="build the datasets of a collection (configs/collections/NAME.yaml)",
                        description="Build every dataset of a collection into OUT/<dataset>/ as an AutoDL "
                                    "dataset with its recipe (recipe.json). Datasets already built from the "
                                    "same recipe are skipped; one built from another recipe is refused "
                                    "(naming what differs) unless --overwrite. A collection's samples "
                                    "(existing datasets used as they are) are not built: it says whether "
                                    "each is present.")
    b.add_argument("collection", help="a collection name under configs/collections/ (default, heldout, tfds) or a "
                                      "YAML path")
    b.add_argument("--out", required=True, help="folder to build the datasets into (one sub-folder each)")
    b.add_argument("--only", default=None, help="comma-separated dataset names to build (default: all)")
    b.add_argument("--overwrite", action="store_true", help="rebuild datasets whose recipe changed")
    b.add_argument("--tfds-data-dir", default=None,
                   help="tensorflow-datasets data_dir for tfds: sources (default: tfds' own, ~/tensorflow_datasets)")
    b.set_defaults(func=cmd_build_collection)

    r = dsub.add_parser("collection-report", formatter_class=fmt,
                        help="describe a built collection and measure the linear baseline on each dataset",
                        description="For each dataset of a built collection: classes, train/test counts, "
                                    "shape, channels, multi-label, video, and baseline:linear's final NAUC and "
                                    "ALC, written as a Markdown table into the collection's own block of "
                                    "--doc (other content of the file is kept). Figures are kept beside "
                                    "each dataset (linear-baseline.json; a sample's under DATA/.samples/) "
                                    "and reused when nothing changed.")
    r.add_argument("collection", help="a collection name under configs/collections/ or a YAML path")
    r.add_argument("--data", required=True, help="the folder the collection was built into")
    r.add_argument("--doc", default="docs/collection.md", help="the Markdown file to write")
    r.add_argument("--only", default=None, help="comma-separated dataset names (default: all)")
    r.add_argument("--protocol", default="mini", help="protocol of the linear-baseline runs")
    r.add_argument("--clock", default="cpu", choices=("cpu", "wall"),
                   help="clock of the linear-baseline runs (baseline:linear reads the wall clock, so the "
                        "simulated clock cannot run it; 'cpu' is its own CPU seconds)")
    r.add_argument("--seed", type=int, default=0, help="seed of the runs")
    r.add_argument("--threads", type=int, default=1, help="PyTorch threads")
    r.add_argument("--note", default=None, help="a remark on the machine's state, printed after it in the report")
    r.set_defaults(func=cmd_collection_report)
