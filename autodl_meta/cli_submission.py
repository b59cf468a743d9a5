"""``autodl-meta submission build|check``: a thin layer over :mod:`submission.package`."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_PORTFOLIO = Path(__file__).resolve().parents[1] / "portfolio" / "default"


def cmd_submission_build(args: argparse.Namespace) -> int:
    from submission.artifacts import SubmissionSettings
    from submission.package import build_submission

    settings = SubmissionSettings(first_prediction=args.first_prediction, query_size=args.query_size,
                                  device=args.device)
    res = build_submission(args.portfolio, args.out, selector=args.selector, settings=settings,
                           command=" ".join(["autodl-meta"] + sys.argv[1:]))
    print(f"wrote {res.path}: {res.files} files, {res.bytes / 1e6:.1f} MB; selector {res.selector or 'none'}, "
          f"single best: the incumbent of {res.single_best}; weights: {', '.join(res.backbones) or 'none'}")
    print(f"check it: autodl-meta submission check {res.path} --data DATASET")
    return 0


def cmd_submission_check(args: argparse.Namespace) -> int:
    from autodl.dataset import AutoDLDataset
    from autodl.score_files import score_folder
    from submission.package import extract_submission, run_isolated

    ds = AutoDLDataset(args.data)  # a bad dataset fails here, in one line
    ds.check()  # and so does a damaged or empty subset, or a solution that does not match
    if args.organizers_kit:
        return _check_under_organizers_ingestion(args, ds)
    with tempfile.TemporaryDirectory(prefix="autodl-meta-check-") as tmp:
        folder = extract_submission(args.zip, Path(tmp) / "submission")
        out = Path(args.out) if args.out else Path(tmp) / "predictions"
        print(f"running {args.zip} from {folder} (only that folder on the import path) on {ds.name} for "
              f"{args.time_budget:g} s ...", flush=True)
        result, log = run_isolated(folder, ds.root, out, args.time_budget, timeout=args.time_budget + 1500)
        decision = [ln for ln in log.splitlines() if "submission.agent" in ln]
        for line in decision:
            print("  " + line.split("submission.agent: ", 1)[-1])
        if result["outside"]:
            print(f"NOT self-contained: imported from outside the zip: {', '.join(result['outside'])}")
            return 1
        if not result["success"]:
            print(f"the submission failed: {result['error']}")
            return 1
        score = score_folder(out, ds.solution(), time_budget=args.time_budget, t0=args.time_budget / 20,
                             partial_ok=True)
        late = [t for t in result["timestamps"] if t > args.time_budget]
        final = score.nauc_scores[-1] if score.nauc_scores else float("nan")
        print(f"ok: {len(result['timestamps'])} predictions, the first at {result['timestamps'][0]:.2f} s, "
              f"{len(late)} after T; ALC {score.score:.4f} (t0 = T/20), final NAUC {final:.4f}")
        return 0 if not late else 1


def _check_under_organizers_ingestion(args: argparse.Namespace, ds: Any) -> int:
    from autodl.score_files import score_folder
    from submission.package import (
        extract_submission,
        find_organizers_ingestion,
        run_under_organizers_ingestion,
    )

    find_organizers_ingestion(args.organizers_kit)  # not a kit: one line, before unzipping anything
    with tempfile.TemporaryDirectory(prefix="autodl-meta-check-") as tmp:
        folder = extract_submission(args.zip, Path(tmp) / "submission")
        out = Path(args.out) if args.out else Path(tmp) / "predictions"
        log = out.with_name(out.name + ".log") if args.out else Path(
            tempfile.mkstemp(prefix="autodl-meta-organizers-", suffix=".log")[1])
        print(f"running {args.zip} under the organizers' ingestion of {args.organizers_kit} on {ds.name} for "
              f"{args.time_budget:g} s ...", flush=True)
        run = run_under_organizers_ingestion(folder, ds.root, args.organizers_kit, out, time_budget=args.time_budget,
                                             log=log, timeout=args.time_budget + 1500)
        text = run.log.read_text(errors="replace")
        for line in text.splitlines():
            if "submission.agent" in line:
                print("  " + line.split("submission.agent: ", 1)[-1])
        if run.returncode != 0 or not run.success or not run.predictions:
            print(f"the submission failed under the organizers' ingestion {run.version} (exit code "
                  f"{run.returncode}, ingestion_success {run.success}, {run.predictions} predictions); "
                  f"log: {run.log}")
            return 1
        score = score_folder(out, ds.solution(), time_budget=args.time_budget, t0=args.time_budget / 20,
                             partial_ok=True)
        final = score.nauc_scores[-1] if score.nauc_scores else float("nan")
        print(f"ok under the organizers' ingestion {run.version}: {run.predictions} predictions; "
              f"ALC {score.score:.4f} (t0 = T/20), final NAUC {final:.4f}; log: {run.log}")
        return 0


def register(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``submission build`` and ``submission check`` to the ``autodl-meta`` parser."""
    p = sub.add_parser("submission", help="the self-contained AutoDL submission zip")
    ssub = p.add_subparsers(dest="submission_command", required=True, metavar="ACTION")
    b = ssub.add_parser("build", formatter_class=fmt,
                        help="model.py, the code it needs, the portfolio, the selector and the pretrained weights "
                             "as one zip (at most 300 MB), with SHA-256 checksums verified on load")
    b.add_argument("--portfolio", default=str(DEFAULT_PORTFOLIO),
                   help="portfolio folder (portfolio.json, summary.json; its manifest.json checksums are verified)")
    b.add_argument("--selector", default=None,
                   help="fitted selector folder (autodl-meta selector fit --out); default: PORTFOLIO/selector")
    b.add_argument("--first-prediction", choices=("before-selection", "after-selection"),
                   default="before-selection",
                   help="whether the first prediction comes from the single best before the selector is asked "
                        "(measured better under mini: README, 'Ship a submission')")
    b.add_argument("--query-size", type=int, default=None,
                   help="training examples embedded for the selector (default: the selector card's)")
    b.add_argument("--device", default=None, help="cpu or cuda (default: CUDA where available)")
    b.add_argument("--out", required=True, help="the zip to write")
    b.set_defaults(func=cmd_submission_build)
    c = ssub.add_parser("check", formatter_class=fmt,
                        help="unzip a submission into an empty folder and run it through its own ingestion with "
                             "only that folder on the import path; print its decision, timing and score")
    c.add_argument("zip", help="the submission zip")
    c.add_argument("--data", required=True, help="an AutoDL dataset (ideally one the portfolio has never seen)")
    c.add_argument("--time-budget", type=float, default=60.0, help="T in seconds (default 60, protocol mini)")
    c.add_argument("--out", default=None, help="keep the predictions in this folder")
    c.add_argument("--organizers-kit", default=None, metavar="KIT",
                   help="run it under the organizers' own 2019 ingestion program instead: a checkout of their "
                        "starting kit (holding AutoDL_ingestion_program/ingestion.py), left untouched; the "
                        "log is written to OUT.log (or a kept temporary file)")
    c.set_defaults(func=cmd_submission_check)


def cmd_benchmark_submission(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from autodl.machine import machine_description
    from pipeline.benchmarks.report_doc import append_report
    from submission.orders import compare_orders, orders_report

    datasets = [d for d in args.datasets]
    total = len(datasets) * len(args.seeds.split(",")) * 2
    with tqdm(total=total, desc="submission orders", unit="run", disable=None) as bar:
        def done(rec: dict) -> None:
            bar.set_postfix_str(f"{rec['dataset']} {rec['order']}: {rec['alc']}", refresh=False)
            bar.update(1)

        result = compare_orders(datasets, args.artifacts, selector=args.selector, protocol=args.protocol,
                                clock=args.clock, seeds=[int(s) for s in args.seeds.split(",")], on_result=done)
    command = " ".join(["autodl-meta"] + sys.argv[1:])
    text = orders_report(result, command, machine_description())
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        with open(args.results, "a") as f:
            f.write(json.dumps({**result, "command": command}, default=str) + "\n")
    if args.doc:
        append_report(args.doc, text)
    print(text)
    return 0


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``benchmark submission`` to the benchmark sub-parsers."""
    p = bsub.add_parser("submission", formatter_class=fmt,
                        help="the submission with its first prediction before and after selection, side by side "
                             "on each dataset (simulated clock by default): which order to ship")
    p.add_argument("--datasets", nargs="+", required=True, help="AutoDL dataset folders (ideally unseen ones)")
    p.add_argument("--artifacts", default=str(DEFAULT_PORTFOLIO), help="artifacts or portfolio folder")
    p.add_argument("--selector", default=None, help="selector folder (default: ARTIFACTS/selector)")
    p.add_argument("--protocol", default="mini")
    p.add_argument("--clock", choices=("simulated", "wall"), default="simulated")
    p.add_argument("--seeds", default="0", help="comma-separated")
    p.add_argument("--results", default="docs/results/submission.jsonl", help="JSON lines: one per benchmark run")
    p.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    p.set_defaults(func=cmd_benchmark_submission)
