"""``autodl-meta``: one sub-command per stage, each a thin layer over a library function.

Bad input is reported in one line (``autodl-meta: error: <file>: <what was wrong>``)
with exit code 2, never a traceback; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.parallel import apply_tls_arguments
from autodl_meta import (
    cli_bohb,
    cli_collection,
    cli_fidelity_budget,
    cli_heldout,
    cli_metafeatures,
    cli_portfolio,
    cli_selector,
    cli_submission,
    cli_tiny_probes,
)

logger = logging.getLogger("autodl_meta")


# --- data ---------------------------------------------------------------------------------
def _progress(total: int | None, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="ex", disable=None, leave=False)


def cmd_data_format(args: argparse.Namespace) -> int:
    from autodl import convert, sources

    src = args.source
    out = Path(args.out)
    with _progress(None, f"formatting {src}") as bar:
        if src.startswith("tfds:"):
            path = convert.convert_tfds(src.removeprefix("tfds:"), out, max_train=args.max_train,
                                        max_test=args.max_test, data_dir=args.tfds_data_dir,
                                        overwrite=args.overwrite, progress=bar.update)
        elif Path(src).is_dir():
            path = convert.convert_image_folder(src, out, name=args.name, test_fraction=args.test_fraction,
                                                seed=args.seed, overwrite=args.overwrite,
                                                progress=bar.update)
        else:
            path = sources.write_source(src, out, max_train=args.max_train, max_test=args.max_test,
                                        seed=args.seed, overwrite=args.overwrite, progress=bar.update)
    print(f"wrote {path}")
    return _show(path, grid=None)


def _show(path: Path | str, grid: str | None) -> int:
    from autodl.dataset import AutoDLDataset
    from autodl.labels import is_multilabel

    ds = AutoDLDataset(path)
    names = ds.label_names()
    print(f"dataset {ds.name} at {ds.root}")
    for subset in ds.subsets:
        meta = ds.metadata(subset)
        t, h, w, c = meta.get_tensor_shape()
        dims = "x".join("?" if v < 0 else str(v) for v in (t, h, w, c))
        print(f"  {subset:10s} {meta.size():7d} examples  [T,H,W,C]={dims}  {meta.format.lower()}"
              f"  output_dim={meta.get_output_size()}")
    if ds.solution_path.is_file():
        sol = ds.solution()
        multi = is_multilabel(sol)
        print(f"  solution   {sol.shape[0]} rows, {'multi-label' if multi else 'one label per example'}")
    if names:
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        print(f"  classes    {shown}")
    summary = ds.shape_summary("train", check_metadata=True)
    if summary["examples_seen"]:
        print(f"  train frame size (first {summary['examples_seen']}): median {summary['median'][1:]} "
              f"min {summary['min'][1:]} max {summary['max'][1:]}, {summary['channels']} channels")
    else:
        print("  train frame size: no training example (a model cannot be run on this dataset)")
    if grid:
        from autodl.plots import example_grid

        print(f"  example grid: {example_grid(ds, grid)}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    return _show(args.dataset, args.grid)


def cmd_data_sources(args: argparse.Namespace) -> int:
    from autodl import sources

    for info in sources.list_sources():
        state = "available" if info.available else f"unavailable: {info.reason_unavailable}"
        print(f"{info.name:15s} {info.task:28s} {state}\n{'':15s} {info.description}")
    print("also: a folder with labels.csv, or tfds:<name> (tensorflow-datasets)")
    return 0


# --- run / ingest / score -------------------------------------------------------------------
def _protocol(args: argparse.Namespace) -> Any:
    import dataclasses

    from autodl.protocol import load_protocol

    proto = load_protocol(args.protocol)
    changes = {k: v for k, v in (("time_budget", args.time_budget), ("t0", args.t0)) if v is not None}
    if changes:
        proto = dataclasses.replace(proto, name=f"{proto.name}*", **changes)
    return proto


def cmd_run(args: argparse.Namespace) -> int:
    from autodl.records import Status
    from finetune.config_runs import evaluate, run_local_model, torch_threads

    if args.data is not None or args.unlabelled is not None or args.compare is not None:
        return cmd_selfservice(args)
    if args.model is None:
        raise AutoDLError(None, "--dataset needs --model (or use --data, whose default model is the shipped "
                                "submission)", field="--model")
    proto = _protocol(args)
    clock = "simulated" if args.timing and args.clock == "wall" else args.clock
    print(f"running {args.model} on {args.dataset} under {proto.describe()} ({clock} clock)")
    if clock == "wall":
        from tqdm import tqdm

        with tqdm(total=round(proto.time_budget), desc="budget", unit="s", disable=None, leave=False) as bar:
            def tick(elapsed: float, n: int) -> None:
                bar.n = min(round(elapsed), bar.total)
                bar.set_postfix(predictions=n, refresh=False)
                bar.refresh()

            res = run_local_model(args.dataset, args.model, proto, args.out, device=args.device, seed=args.seed,
                                  threads=args.threads, on_tick=tick, portfolio=args.portfolio)
        s = res.score
        status = res.status
        alc, curve_png, scores_dir, error = s.score, res.learning_curve, res.scores_dir, res.error
        if res.killed:
            print("ingestion outlived the budget and was ended by the scoring side")
        nauc, n = (s.nauc_scores[-1] if s.nauc_scores else None), len(s.timestamps)
    else:
        with torch_threads(args.threads):
            ev = evaluate(args.model, args.dataset, proto, clock=clock, seed=args.seed, device=args.device,
                          timing=args.timing, out=args.out, portfolio=args.portfolio)
        status, alc, nauc, n, error = ev.status, ev.alc, ev.final_nauc, len(ev.curve), ev.error
        scores_dir = Path(args.out) / "scores"
        curve_png = scores_dir / "learning-curve.png"
    if status == Status.CRASHED:
        print(f"the model crashed after {n} predictions: {error or 'see the log'}", file=sys.stderr)
        print(f"log: {Path(args.out) / 'ingestion.log'}", file=sys.stderr)
        return 1
    if alc is None:  # an in-process evaluation stopped by its guard: no ALC to report
        print(f"stopped after {n} predictions, no ALC: {error}", file=sys.stderr)
        print(f"log: {Path(args.out) / 'ingestion.log'}", file=sys.stderr)
        return 1
    print(f"ALC {alc:.4f}  ({n} predictions, final NAUC {nauc if nauc is not None else float('nan'):.4f}, "
          f"protocol {proto.describe()}, {clock} clock)")
    print(f"scores: {scores_dir / 'scores.txt'}")
    print(f"learning curve: {curve_png}")
    return 0


def cmd_selfservice(args: argparse.Namespace) -> int:
    """``run --data``: the self-service run (:func:`submission.selfservice.run_selfservice`)."""
    from tqdm import tqdm

    from autodl.records import Status
    from submission.selfservice import DEFAULT_MODEL, run_selfservice

    if args.clock != "wall" or args.timing:
        raise AutoDLError(None, "the self-service run (--data) is the organizers' local test on the wall clock; "
                                "--clock cpu|simulated and --timing go with --dataset", field="--clock")
    data, model = args.data or args.dataset, args.model or DEFAULT_MODEL
    proto = _protocol(args)
    print(f"running {model}{f' and {args.compare}' if args.compare else ''} on {data} under "
          f"{proto.describe()} (wall clock)")
    with tqdm(total=round(proto.time_budget), disable=None, leave=False,
              bar_format="{desc} |{bar}| {n}/{total} s of the budget{postfix}") as bar:
        def show(p: Any) -> None:
            bar.set_description_str(f"{p.model + ': ' if p.model else ''}{p.stage}", refresh=False)
            if p.stage == "formatting":
                bar.set_postfix_str(f"{p.examples} examples" if p.examples else p.message, refresh=False)
            else:
                bar.n = min(round(p.elapsed), bar.total)
                nauc = "n/a" if p.nauc is None else f"{p.nauc:.4f}"
                bar.set_postfix_str(f"{p.seconds_left:.0f} s left, {p.predictions} predictions, NAUC {nauc}",
                                    refresh=False)
            bar.refresh()

        res = run_selfservice(data, args.out, model=model, unlabelled=args.unlabelled, protocol=proto,
                              compare=args.compare, portfolio=args.portfolio, device=args.device, seed=args.seed,
                              threads=args.threads, progress=show)
    if res.formatted:
        print(f"formatted {data} into {res.dataset}")
    width = max(len(r.model) for r in res.runs) + 2
    print(f"{'model':{width}s}{'ALC':>8s}{'final NAUC':>12s}{'predictions':>13s}  status")
    for r in res.runs:
        alc = "n/a" if r.alc is None else f"{r.alc:.4f}"
        nauc = "n/a" if r.final_nauc is None else f"{r.final_nauc:.4f}"
        print(f"{r.model:{width}s}{alc:>8s}{nauc:>12s}{r.num_predictions:>13d}  {r.status}")
    for r in res.runs:
        d = r.decision
        if d is None:
            print(f"decision: {r.decision_note}")
            continue
        conf = d.get("confidence")
        conf = f"{conf:.3f}" if isinstance(conf, float) else conf
        print(f"decision of {r.model}: dataset {d.get('chosen_dataset')} (confidence {conf}), configuration from "
              f"{d.get('configuration_source')}" + (f"; fallback: {d['fallback']}" if d.get("fallback") else ""))
        if isinstance(d.get("configuration"), dict):
            from submission.agent import describe_config

            print(f"  configuration: {describe_config(d['configuration'])}")
    if res.unlabelled is not None:
        for r in res.runs:
            where = f"{r.unlabelled_predict}, {r.unlabelled_csv}" if r.unlabelled_csv else "none written"
            print(f"unlabelled ({len(res.unlabelled)} examples) by {r.model}: {where}")
    if res.main.scores_txt.is_file():
        print(f"scores: {res.main.scores_txt}")
        print(f"learning curve: {res.curves}")
    print(f"report: {res.report}")
    for r in res.runs:
        if r.status == Status.CRASHED:
            print(f"{r.model} crashed after {r.num_predictions} predictions: {r.error or 'see the log'}; "
                  f"log: {r.log_file}", file=sys.stderr)
    return 1 if res.main.status == Status.CRASHED else 0


def cmd_score(args: argparse.Namespace) -> int:
    from autodl.plots import plot_learning_curve
    from autodl.score_files import score_folder, write_scores
    from autodl.scoring import METRIC_NAMES

    res = score_folder(args.predictions, args.solution, time_budget=args.time_budget, t0=args.t0,
                       metric=args.metric)
    out = Path(args.out) if args.out else Path(args.predictions)
    write_scores(res, out)
    png = plot_learning_curve(res, out / "learning-curve.png")
    print(f"{METRIC_NAMES[res.metric]} {res.score:.6f} over {len(res.timestamps)} predictions "
          f"(T={res.time_budget:g} s, t0={res.t0:g} s)")
    print(f"scores: {out / 'scores.txt'}\nlearning curve: {png}")
    return 0


# --- benchmark ------------------------------------------------------------------------------
def cmd_benchmark_io(args: argparse.Namespace) -> int:
    from pipeline.benchmarks.speed import benchmark_io

    report = benchmark_io(n_images=args.n, image_size=args.size, doc=args.doc)
    print(report)
    return 0


def cmd_benchmark_finetune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.benchmarks.speed import benchmark_finetune

    backbones = args.backbones.split(",") if args.backbones else None
    sizes = tuple(int(s) for s in args.sizes.split(","))
    with tqdm(desc="backbone x size", unit="run", disable=None, leave=False) as bar:
        report = benchmark_finetune(backbones, sizes, steps=args.steps, repeats=args.repeats,
                                    device=args.device, doc=args.doc, progress=bar.update)
    print(report)
    return 0


def cmd_benchmark_clocks(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.benchmarks.clock_agreement import PAIRS, clock_report, run_clock_benchmark
    from pipeline.benchmarks.report_doc import append_report

    clocks = args.clocks.split(",")
    with tqdm(total=len(PAIRS) * len(clocks), desc="clocks", unit="eval", disable=None) as bar:
        def step(what: str) -> None:
            bar.set_postfix_str(what, refresh=False)
            bar.update(1)

        rows = run_clock_benchmark(args.results, args.data, clocks=clocks, protocol=args.protocol,
                                   threads=args.threads, timing=args.timing, progress=step)
    command = " ".join(["autodl-meta benchmark clocks"] + sys.argv[3:]) if len(sys.argv) > 3 else \
        "autodl-meta benchmark clocks"
    report = clock_report(rows, command, [c for c in clocks if c != "wall"])
    if args.doc:
        append_report(args.doc, report)
    print(report)
    return 0


def cmd_benchmark_grid(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pipeline.benchmarks.config_grid import GRID, GRID_DATASETS, grid_heatmap, grid_report, read_grid, run_grid

    configs = args.configs.split(",") if args.configs else list(GRID)
    datasets = args.datasets.split(",") if args.datasets else list(GRID_DATASETS)
    seeds = [int(s) for s in args.seeds.split(",")]
    if args.report_only:
        rows = read_grid(args.results)
    else:
        with tqdm(total=len(configs) * len(datasets) * len(seeds), desc="grid", unit="eval", disable=None) as bar:
            def step(row: dict[str, Any]) -> None:
                bar.set_postfix_str(f"{row['config']} on {row['dataset']}: {row['alc']}", refresh=False)
                bar.update(1)

            rows = run_grid(args.results, args.data, configs=configs, datasets=datasets, seeds=seeds,
                            protocol=args.protocol, workers=args.workers, timing=args.timing, progress=step)
    command = " ".join(["autodl-meta benchmark grid"] + sys.argv[3:])
    report = grid_report(rows, command)
    if args.doc:
        picture = grid_heatmap(rows, Path(args.doc).with_suffix(".png"))
        Path(args.doc).write_text("# The configuration grid\n\nWritten by `autodl-meta benchmark grid` "
                                  "(`pipeline/benchmarks/config_grid.py`); the evaluations are in "
                                  f"`{args.results}`.\n\n![grid]({picture.name})\n\n" + report)
        print(f"picture: {picture}")
    print(report)
    return 0


# --- finetune -------------------------------------------------------------------------------
def _evaluation_arguments(parser: argparse.ArgumentParser, results: str) -> None:
    """The options of the benchmarks made of many evaluations (resumable JSON lines)."""
    parser.add_argument("--results", default=results,
                        help="JSON lines, one per evaluation; evaluations already there are skipped")
    parser.add_argument("--data", default="data/bench", help="where the benchmark datasets are formatted")
    parser.add_argument("--protocol", default="mini", help="protocol name or YAML file")
    parser.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")


def cmd_finetune_timings(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from finetune.timing_measurement import count_measurements, measure_timings

    def names(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    def numbers(value: str, option: str) -> list[int]:
        try:
            return [int(v) for v in names(value)]
        except ValueError:
            raise AutoDLError(None, f"{value!r}: expected comma-separated integers", field=option) from None

    backbones, formats = names(args.backbones), names(args.formats)
    batch_sizes, sizes = numbers(args.batch_sizes, "--batch-sizes"), numbers(args.sizes, "--sizes")
    optimizers, augmentations = names(args.optimizers), names(args.augmentations)
    # the command that reproduces this table, every option spelled out
    command = (f"autodl-meta finetune timings --out {args.out} --backbones {','.join(backbones)} "
               f"--batch-sizes {','.join(map(str, batch_sizes))} --sizes {','.join(map(str, sizes))} "
               f"--optimizers {','.join(optimizers)} --augmentations {','.join(augmentations)} "
               f"--formats {','.join(formats)} --threads {args.threads} --repeats {args.repeats} "
               f"--device {args.device}")
    start = time.perf_counter()
    with tqdm(total=count_measurements(backbones, sizes, formats), desc="timings", unit="step",
              disable=None, leave=False) as bar:
        table = measure_timings(backbones, batch_sizes, sizes, optimizers, augmentations, formats,
                                device=args.device, threads=args.threads, repeats=args.repeats,
                                progress=bar.update, command=command)
    path = table.save(args.out)
    print(f"wrote {path}: {len(table.backbones)} backbones at {','.join(map(str, sizes))} px, measured in "
          f"{time.perf_counter() - start:.0f} s on {table.machine} ({table.device}, {table.threads} thread(s))")
    return 0


# --- parser ---------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="autodl-meta",
                                description="Meta-learned configuration selection for AutoDL image and "
                                            "video classification: one sub-command per stage.",
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    data = sub.add_parser("data", help="convert, inspect and list datasets")
    dsub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    f = dsub.add_parser("format", formatter_class=fmt,
                        help="write a dataset in the AutoDL format from a folder, tfds or a built-in source")
    f.add_argument("source", help="a folder holding labels.csv, tfds:<name>, or a built-in source name "
                                  "(see 'data sources')")
    f.add_argument("--out", required=True, help="dataset folder to create")
    f.add_argument("--name", default=None, help="dataset name (default: the folder's name)")
    f.add_argument("--max-train", type=int, default=None, help="at most this many training examples")
    f.add_argument("--max-test", type=int, default=None, help="at most this many test examples")
    f.add_argument("--test-fraction", type=float, default=0.2,
                   help="share of labelled rows put in test when labels.csv has no subset column")
    f.add_argument("--seed", type=int, default=42, help="seed of splits and sampling")
    f.add_argument("--tfds-data-dir", default=None, help="tensorflow-datasets data_dir")
    f.add_argument("--overwrite", action="store_true", help="replace an existing dataset at --out")
    f.set_defaults(func=cmd_data_format)
    s = dsub.add_parser("show", formatter_class=fmt, help="summarise an AutoDL dataset")
    s.add_argument("dataset", help="dataset folder")
    s.add_argument("--grid", default=None, help="also save a PNG grid of training examples here")
    s.set_defaults(func=cmd_data_show)
    so = dsub.add_parser("sources", help="list the built-in offline data sources")
    so.set_defaults(func=cmd_data_sources)
    cli_collection.register(dsub, fmt)

    r = sub.add_parser("run", formatter_class=fmt,
                       help="run a model on a dataset under a protocol and score it (local test); with --data, "
                            "the self-service run (scores, learning curve, decision, HTML page, predictions "
                            "for unlabelled data)")
    where = r.add_mutually_exclusive_group(required=True)
    where.add_argument("--dataset", help="AutoDL dataset folder")
    where.add_argument("--data", help="self-service run: an AutoDL dataset, or a folder of images/videos with "
                                      "labels.csv (formatted into OUT/data); writes OUT/report.html too")
    r.add_argument("--model", default=None,
                   help="baseline:linear|default|scratch|single-best|oracle, config:PATH.yaml, file:PATH/model.py, "
                        "file-tf1:PATH/model.py (a TensorFlow-1-era model.py, run in TF 1 compatibility mode), "
                        "submission (the shipped submission: the default with --data) or submission:PATH "
                        "(a folder holding model.py, or a .zip)")
    r.add_argument("--unlabelled", default=None,
                   help="self-service run: a folder of image/video files, or an AutoDL dataset's unlabelled "
                        "subset, to predict (OUT/unlabelled.predict and OUT/unlabelled.csv; default: the "
                        "data's own unlabelled examples)")
    r.add_argument("--compare", default=None, metavar="MODEL",
                   help="self-service run: a second model run on the same data under the same protocol "
                        "(into OUT/compare), shown beside the first")
    r.add_argument("--protocol", default="mini", help="protocol name (configs/protocol) or YAML file")
    r.add_argument("--out", required=True, help="output folder (predictions/, scores/, ingestion.log)")
    r.add_argument("--time-budget", type=float, default=None, help="override the protocol's T (seconds)")
    r.add_argument("--t0", type=float, default=None, help="override the protocol's t0 (seconds)")
    r.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    r.add_argument("--clock", default="wall", choices=["wall", "cpu", "simulated"],
                   help="wall: the organizers' local test (ingestion in a child process, ended at the budget); "
                        "cpu: this process's CPU seconds; simulated: costs from a timing table (reproducible)")
    r.add_argument("--timing", default=None,
                   help="the simulated clock's timing table (autodl-meta finetune timings; default: "
                        "configs/timing/cpu-2core-epyc.json); giving one implies --clock simulated")
    r.add_argument("--seed", type=int, default=0, help="the learner's seed")
    r.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: PyTorch's own choice)")
    r.add_argument("--portfolio", default=None,
                   help="portfolio folder (written by 'portfolio cost-matrix --out DIR') for the models "
                        "baseline:single-best and baseline:oracle (the dataset must be a column of its cost matrix; "
                        "with --data, default: the shipped portfolio/default)")
    r.set_defaults(func=cmd_run)

    cli_portfolio.register(sub, fmt)
    cli_metafeatures.register(sub, fmt)
    cli_selector.register(sub, fmt)
    cli_submission.register(sub, fmt)

    sc = sub.add_parser("score", formatter_class=fmt, help="score an ingestion output folder")
    sc.add_argument("--predictions", required=True, help="folder with start.txt and <task>.predict_<k>")
    sc.add_argument("--solution", required=True, help="the .solution file")
    sc.add_argument("--time-budget", type=float, default=None, help="T (default: from start.txt)")
    sc.add_argument("--t0", type=float, default=60.0, help="the ALC's t0 in seconds")
    sc.add_argument("--out", default=None, help="where scores.txt goes (default: the predictions folder)")
    sc.add_argument("--metric", choices=("alc", "bac"), default="alc",
                    help="alc: the challenge's ALC (NAUC, step function); bac: the 2018 beta tests' area "
                         "under the 2*BAC-1 curve of binary decisions (trapezoid rule)")
    sc.set_defaults(func=cmd_score)

    cli_bohb.register(sub, fmt)

    b = sub.add_parser("benchmark", help="measure speed; results go to docs/benchmarks.md")
    bsub = b.add_subparsers(dest="benchmark_command", required=True, metavar="WHAT")
    bio = bsub.add_parser("io", formatter_class=fmt,
                          help="read/decode speed of the numpy path vs plain tf.data, and write speed")
    bio.add_argument("--n", type=int, default=10000, help="images in the generated dataset")
    bio.add_argument("--size", type=int, default=32, help="side of the generated images")
    bio.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    bio.set_defaults(func=cmd_benchmark_io)
    bft = bsub.add_parser("finetune", formatter_class=fmt,
                          help="training img/s through the learner vs a bare PyTorch loop, time to first "
                               "prediction, peak memory")
    bft.add_argument("--backbones", default=None,
                     help="comma-separated (default: every backbone whose weights are here, and scratch_cnn)")
    bft.add_argument("--sizes", default="32,64", help="comma-separated input sizes")
    bft.add_argument("--steps", type=int, default=10, help="training steps per measured chunk")
    bft.add_argument("--repeats", type=int, default=3, help="measured chunks per path")
    bft.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    bft.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    bft.set_defaults(func=cmd_benchmark_finetune)

    bcl = bsub.add_parser("clocks", formatter_class=fmt,
                          help="ALCs of (configuration, dataset) pairs on the wall clock of an idle machine and on "
                               "the CPU and simulated clocks: Spearman and |ALC difference| (resumable)")
    _evaluation_arguments(bcl, "docs/results/clocks.jsonl")
    bcl.add_argument("--clocks", default="wall,cpu,simulated", help="comma-separated; wall is the reference")
    bcl.add_argument("--threads", type=int, default=1, help="PyTorch threads per evaluation")
    bcl.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    bcl.set_defaults(func=cmd_benchmark_clocks)
    bgr = bsub.add_parser("grid", formatter_class=fmt,
                          help="about 20 configurations x datasets of different kinds x 3 seeds on the simulated "
                               "clock: best - worst, best - default, seed spread per dataset (resumable)")
    _evaluation_arguments(bgr, "docs/results/grid.jsonl")
    bgr.add_argument("--configs", default=None, help="comma-separated grid names (default: all)")
    bgr.add_argument("--datasets", default=None, help="comma-separated (default: all of the grid's)")
    bgr.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    bgr.add_argument("--workers", type=int, default=1, help="evaluations side by side (one process and one "
                                                            "PyTorch thread each)")
    bgr.add_argument("--doc", default="docs/grid.md", help="Markdown file written with the report")
    bgr.add_argument("--report-only", action="store_true",
                     help="evaluate nothing: write the report of what --results holds (e.g. of a stopped run)")
    bgr.set_defaults(func=cmd_benchmark_grid)
    cli_bohb.register_benchmark(bsub, fmt)
    cli_selector.register_benchmark(bsub, fmt)
    cli_submission.register_benchmark(bsub, fmt)
    cli_heldout.register_benchmark(bsub, fmt)
    cli_fidelity_budget.register_benchmark(bsub, fmt)
    cli_tiny_probes.register_benchmark(bsub, fmt)

    ft = sub.add_parser("finetune", help="fine-tuning tools")
    fsub = ft.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    tm = fsub.add_parser("timings", formatter_class=fmt,
                         help="measure the timing table that drives the simulated clock")
    tm.add_argument("--out", required=True, help="JSON file to write")
    tm.add_argument("--backbones", default="tf_efficientnet_lite0,tf_efficientnet_lite1,"
                                           "tf_efficientnet_lite2,resnet18,scratch_cnn")
    tm.add_argument("--batch-sizes", default="16,32,64,128",
                    help="batch sizes to price (forward/backward is measured at those of at most "
                         "2**20 pixels, at least two, others interpolated linearly in images)")
    tm.add_argument("--sizes", default="32,64,128", help="input sizes in pixels")
    tm.add_argument("--optimizers", default="SGD,Adam")
    tm.add_argument("--augmentations", default="none,flip,fast_autoaugment")
    tm.add_argument("--formats", default="png,jpeg,dense", help="storage formats whose decoding is priced")
    tm.add_argument("--threads", type=int, default=1,
                    help="PyTorch threads while measuring (offline evaluations run one per evaluation)")
    tm.add_argument("--repeats", type=int, default=5, help="timings per figure (median, after a warm-up)")
    tm.add_argument("--device", default="cpu")
    tm.set_defaults(func=cmd_finetune_timings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        apply_tls_arguments(args)  # --tls-ca-file/--tls-cert/--tls-key of the Dask commands
        return args.func(args)
    except AutoDLError as exc:
        print(f"autodl-meta: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"autodl-meta: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full disk, a read-only folder: one line, naming the file where known
        if exc.filename is None and exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"autodl-meta: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autodl-meta: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
