"""``autodl-meta benchmark heldout``: the thin command over :mod:`pipeline.heldout`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from autodl.parallel import add_tls_arguments


def _selectors(values: list[str] | None) -> dict[str, str]:
    from autodl.errors import AutoDLError

    out = {}
    for v in values or []:
        label, sep, path = v.partition("=")
        if not sep or not label or not path:
            raise AutoDLError(None, f"{v!r}: expected LABEL=FOLDER (a selector folder)", field="--selector")
        if not Path(path).is_dir():
            raise AutoDLError(Path(path), "not a selector folder", field="--selector")
        out[label] = path
    return out


def _final(text: str | None) -> tuple[str, ...]:
    from pipeline.heldout import FINAL_TEST

    if text is None:
        return FINAL_TEST
    return () if text.strip().lower() == "none" else tuple(d for d in text.split(",") if d.strip())


def cmd_benchmark_heldout(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl.records import read_jsonl
    from finetune.grid import GRID
    from finetune.peers import default_kit_dir, organizer_models
    from pipeline.heldout import (
        build_methods,
        candidate_methods,
        heldout_datasets,
        read_results,
        run_heldout,
        wall_methods,
    )
    from pipeline.heldout_report import summary_path_for, write_report

    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    wall_seeds = [] if args.no_wall else [int(s) for s in args.wall_seeds.split(",") if s.strip()]
    only = [d for d in (args.datasets or "").split(",") if d] or None
    datasets, docs = heldout_datasets(args.collection, args.data, only)
    grid_rows = read_jsonl(args.grid_results) if Path(args.grid_results).is_file() else []
    if args.candidates:  # precompute the configuration units only: no submission, no wall clock, no report
        pool, _, names = args.candidates.partition(":")
        methods = candidate_methods(pool, [n for n in names.split(",") if n], grid=GRID, grid_rows=grid_rows,
                                    grid_best=args.grid_best)
        wall_seeds = []
    else:
        hedge = [h for h in (args.hedge or "").split(",") if h.strip()]
        methods = build_methods(args.portfolio, grid=GRID, grid_rows=grid_rows, grid_best=args.grid_best,
                                selectors=_selectors(args.selector), hedge=hedge)
    peers = []
    if not args.no_peers and wall_seeds:
        kit = Path(args.kit) if args.kit else default_kit_dir()
        if kit is not None:
            peers = organizer_models(kit)
            for p in peers:
                if not p.runnable:
                    print(f"organizers' {p.name}: not run ({p.reason})")
    wall = wall_methods(methods, peers=peers, variants=args.wall_variants) if wall_seeds else []
    print(f"held-out benchmark: {len(datasets)} datasets, {len(methods.methods)} methods "
          f"({len(methods.members)} portfolio members), simulated seeds {seeds}, wall-clock seeds {wall_seeds} "
          f"({len(wall)} wall-clock methods)")
    if not args.report_only:
        with tqdm(desc="held-out", unit="eval", disable=None) as bar:
            def step(row: dict[str, Any], done: int, total: int) -> None:
                bar.total = total
                bar.set_postfix_str(f"{row.get('label') or row['unit']} on {row['dataset']} ({row['clock']}): "
                                    f"{row['alc']}", refresh=False)
                bar.update(1)

            run_heldout(args.results, datasets, methods, protocol=args.protocol, seeds=seeds, workers=args.workers,
                        scheduler=args.scheduler, timing=args.timing, wall=wall, wall_seeds=wall_seeds,
                        work_dir=args.work, progress=step)
    rows = list(read_results(args.results).values())
    if args.candidates:
        print(f"{len(rows)} evaluations of this learner version in {args.results}; no report (--candidates "
              "precomputes the configuration units a later benchmark of a portfolio from this pool shares)")
        return 0
    command = " ".join(["autodl-meta"] + sys.argv[1:])
    plain = write_report(rows, methods, [d for d, _ in datasets], doc=args.doc, command=command,
                         protocol=args.protocol, seeds=seeds, wall_seeds=wall_seeds, descriptions=docs,
                         html_path=Path(args.doc).with_suffix(".html"),
                         summary_path=summary_path_for(args.results, args.doc),
                         final=_final(args.final_test), results=args.results)
    v = plain["verdict"]
    print(f"report: {args.doc} and {Path(args.doc).with_suffix('.html')}")
    if v.get("submission") is not None:
        print(f"submission mean ALC {v['submission']:.4f} over {v['datasets']} datasets; minus single best "
              f"{v.get('minus_single-best', float('nan')):+.4f}; minus baseline:default "
              f"{v.get('minus_baseline:default', float('nan')):+.4f}")
    return 0


def cmd_benchmark_profile(args: argparse.Namespace) -> int:
    import json

    from autodl.machine import machine_description
    from pipeline.benchmarks.report_doc import append_report
    from pipeline.profile import profile_markdown, profile_submission

    result = profile_submission(args.data, protocol=args.protocol, artifacts=args.portfolio, seed=args.seed)
    text = profile_markdown(result, " ".join(["autodl-meta"] + sys.argv[1:]), machine_description())
    if args.doc:
        append_report(args.doc, text)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps(result) + "\n")
    print(text)
    return 0


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    pp = bsub.add_parser("profile", formatter_class=fmt,
                         help="where the time of one submission run goes (cProfile, wall clock): decoding, "
                              "selection, probes, embedding, training steps, test passes, and the first prediction")
    pp.add_argument("--data", required=True, help="an AutoDL dataset folder")
    pp.add_argument("--portfolio", default="portfolio/default", help="the submission's artifacts folder")
    pp.add_argument("--protocol", default="mini")
    pp.add_argument("--seed", type=int, default=0)
    pp.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the profile is added to")
    pp.add_argument("--results", default="docs/results/profile.jsonl", help="JSON lines the profile is added to")
    pp.set_defaults(func=cmd_benchmark_profile)
    p = bsub.add_parser("heldout", formatter_class=fmt,
                        help="the shipped submission against the single best, the baselines, the grid's best, a "
                             "random member, the oracle and the organizers' models on the held-out collection "
                             "(simulated clock x seeds, then wall clock; resumable)")
    p.add_argument("--collection", default="heldout", help="the held-out collection (name or YAML)")
    p.add_argument("--data", default="data/collections/heldout",
                   help="where it was built (autodl-meta data build-collection heldout --out DIR)")
    p.add_argument("--datasets", default=None, help="comma-separated subset of the collection's datasets")
    p.add_argument("--portfolio", default="portfolio/default", help="the portfolio folder (and its selector)")
    p.add_argument("--selector", action="append", metavar="LABEL=FOLDER",
                   help="also run the submission with this selector folder, as submission[LABEL] (repeatable)")
    p.add_argument("--hedge", default=None, metavar="N[,N]",
                   help="also run every submission hedged: its selector's top N configurations race inside the "
                        "budget, as submission+hedgeN (e.g. 2,3; 1: pure selection, for a portfolio shipped hedged); "
                        "Nsb: the single best races second, after the selector's pick (e.g. 2sb)")
    p.add_argument("--final-test", default=None, metavar="DATASETS",
                   help="comma-separated held-out datasets kept out of the choice of what ships (default: "
                        "pipeline.heldout.FINAL_TEST; 'none': every dataset chooses)")
    p.add_argument("--grid-results", default="docs/results/grid.jsonl",
                   help="the grid's evaluations, to find its best fixed configuration")
    p.add_argument("--grid-best", default=None, help="name the grid configuration instead of the best by mean ALC")
    p.add_argument("--results", default="docs/results/heldout.jsonl",
                   help="JSON lines, one per evaluation; evaluations already there are skipped")
    p.add_argument("--doc", default="docs/heldout.md",
                   help="the report (an .html page and pictures beside it; its figures as JSON in the folder "
                        "of --results, named after it: docs/results/heldout.summary.json)")
    p.add_argument("--work", default="runs/heldout", help="folder of the wall-clock runs' predictions and logs")
    p.add_argument("--protocol", default="mini", help="protocol name or YAML file")
    p.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")
    p.add_argument("--seeds", default="0,1,2", help="simulated-clock seeds, comma-separated")
    p.add_argument("--wall-seeds", default="0", help="wall-clock seeds, comma-separated")
    p.add_argument("--no-wall", action="store_true", help="skip the wall-clock runs")
    p.add_argument("--wall-variants", action="store_true",
                   help="also run the other selectors (--selector) and the hedged submissions (--hedge) on the wall "
                        "clock (by default only on the simulated clock, where what ships is chosen)")
    p.add_argument("--no-peers", action="store_true", help="skip the organizers' baseline models")
    p.add_argument("--kit", default=None, help="the organizers' starting kit (default: ../shared/autodl_kit)")
    p.add_argument("--workers", type=int, default=2,
                   help="simulated-clock evaluations side by side (Dask processes, one PyTorch thread each)")
    p.add_argument("--scheduler", default=None, help="a Dask scheduler address instead of a local cluster")
    add_tls_arguments(p)
    p.add_argument("--report-only", action="store_true", help="evaluate nothing: report what --results holds")
    p.add_argument("--candidates", default=None, metavar="POOL[:NAME,...]",
                   help="precompute only: the pool's candidates (pool.json or its folder; all, or those named), "
                        "baseline:default, baseline:scratch and the grid's best, on the simulated clock; no "
                        "submission, wall clock or report. A later run of a portfolio drawn from the pool shares "
                        "these evaluations (keyed by configuration digest)")
    p.set_defaults(func=cmd_benchmark_heldout)
