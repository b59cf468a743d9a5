"""``autodl-meta benchmark tiny``: a thin command over :mod:`pipeline.benchmarks.tiny_probes`."""

from __future__ import annotations

import argparse
from typing import Any


def cmd_benchmark_tiny(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl.machine import machine_description
    from autodl.records import utc_now_text
    from autodl_meta._cli_util import append_section, command_line
    from pipeline.benchmarks.tiny_probes import run_tiny_probes, tiny_markdown

    datasets = [d for d in args.datasets.split(",") if d] if args.datasets else None
    with tqdm(desc="tiny probes", unit="dataset", disable=None) as bar:
        def step(name: str, done: int, total: int) -> None:
            bar.total = total
            bar.set_postfix_str(name, refresh=False)
            bar.update(1)

        rows = run_tiny_probes(args.features, datasets=datasets, draws=args.draws, per_class=args.per_class,
                               classes=args.classes, seed=args.seed, progress=step)
    if args.results:
        import pandas as pd

        pd.DataFrame(rows).to_csv(args.results, index=False, float_format="%.6g")
    text = tiny_markdown(rows)
    print(text)
    if args.doc:
        lines = [f"## tiny: choosing the probe without a validation split, leave-one-out against leave-pair-out "
                 f"({utc_now_text()})", "",
                 f"- Command: `{command_line()}`", f"- Machine: {machine_description()}",
                 f"- Data: the training collection's stored meta-feature samples in `{args.features}` "
                 f"(EfficientNet-Lite0 embeddings at 64 px, the raw-pixel probe's features); per draw "
                 f"{args.per_class} training examples of each of up to {args.classes} classes, the rest of those "
                 f"classes the test set; {args.draws} draws per dataset, seed {args.seed}; multi-label datasets "
                 f"left out. No held-out dataset is read.",
                 "- Columns: mean test NAUC of the probe (raw, raw + random features, embeddings) that each "
                 "criterion chooses; of always the embedding / raw-pixel probe and of the best of the three "
                 "(penalties by leave-pair-out); how often each criterion picks the embeddings; the criterion's "
                 "estimate of the embedding probe minus its test NAUC (its penalty chosen on that estimate, so "
                 "optimistic by the choice among 4 penalties).", "", text]
        append_section(args.doc, "\n".join(lines))
        print(f"added to {args.doc}")
    return 0


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    p = bsub.add_parser("tiny", formatter_class=fmt,
                        help="which probe the learner returns without a validation split (< 30 training "
                             "examples): pooled leave-one-out against leave-pair-out, on tiny draws of the "
                             "training collection's meta-feature samples (test NAUC of the choice)")
    p.add_argument("--features", default="data/metafeatures/default",
                   help="folder of meta-feature files (autodl-meta metafeatures extract)")
    p.add_argument("--datasets", default=None, help="comma-separated names (default: every file there)")
    p.add_argument("--draws", type=int, default=10, help="tiny training sets per dataset")
    p.add_argument("--per-class", type=int, default=3, help="training examples per class")
    p.add_argument("--classes", type=int, default=9, help="classes per draw at most")
    p.add_argument("--seed", type=int, default=0, help="seed of the draws")
    p.add_argument("--results", default="docs/results/tiny-probes.csv", help="CSV, one row per draw and criterion")
    p.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to ('' for none)")
    p.set_defaults(func=cmd_benchmark_tiny)
