"""``autodl-meta``: one sub-command per stage, each a thin layer over a library function.

Bad input is reported in one line (``autodl-meta: error: <file>: <what was wrong>``)
with exit code 2, never a traceback; a traceback means a bug.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError

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
        multi = bool((sol.sum(1) != 1).any())
        print(f"  solution   {sol.shape[0]} rows, {'multi-label' if multi else 'one label per example'}")
    if names:
        shown = ", ".join(names[:12]) + (" ..." if len(names) > 12 else "")
        print(f"  classes    {shown}")
    summary = ds.shape_summary("train")
    print(f"  train frame size (first {summary['examples_seen']}): median {summary['median'][1:]} "
          f"min {summary['min'][1:]} max {summary['max'][1:]}, {summary['channels']} channels")
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
    from tqdm import tqdm

    from autodl_meta.models import resolve_model
    from autodl_meta.runner import run_local, run_simulated

    resolve_model(args.model)  # an unknown name fails here, before anything starts
    proto = _protocol(args)
    clock = "simulated clock" if args.timing else "wall clock"
    print(f"running {args.model} on {args.dataset} under {proto.describe()} ({clock})")
    if args.timing:
        res = run_simulated(args.dataset, args.model, proto, args.out, args.timing, device=args.device)
    else:
        with tqdm(total=round(proto.time_budget), desc="budget", unit="s", disable=None, leave=False) as bar:
            def tick(elapsed: float, n: int) -> None:
                bar.n = min(round(elapsed), bar.total)
                bar.set_postfix(predictions=n, refresh=False)
                bar.refresh()

            res = run_local(args.dataset, args.model, proto, args.out, on_tick=tick, device=args.device)
    s = res.score
    print(f"ALC {s.score:.4f}  ({len(s.timestamps)} predictions, final NAUC "
          f"{s.nauc_scores[-1] if s.nauc_scores else float('nan'):.4f}, protocol {proto.describe()})")
    if res.killed:
        print("ingestion outlived the budget and was ended by the scoring side")
    print(f"scores: {res.scores_dir / 'scores.txt'}")
    print(f"learning curve: {res.learning_curve}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from autodl.ingestion import run_ingestion
    from autodl_meta.models import resolve_model

    kwargs = {k: v for k, v in (("t0", args.t0), ("device", args.device),
                                ("max_train_examples", args.max_train_examples)) if v is not None}
    factory = resolve_model(args.model, **kwargs)
    res = run_ingestion(args.dataset, factory, args.out, time_budget=args.time_budget)
    if not res.success:
        print(f"model failed: {res.error}", file=sys.stderr)
    return 0 if res.success else 1


def cmd_score(args: argparse.Namespace) -> int:
    from autodl.scoring import plot_learning_curve, score_folder, write_scores

    res = score_folder(args.predictions, args.solution, time_budget=args.time_budget, t0=args.t0)
    out = Path(args.out) if args.out else Path(args.predictions)
    write_scores(res, out)
    png = plot_learning_curve(res, out / "learning-curve.png")
    print(f"ALC {res.score:.6f} over {len(res.timestamps)} predictions (T={res.time_budget:g} s, t0={res.t0:g} s)")
    print(f"scores: {out / 'scores.txt'}\nlearning curve: {png}")
    return 0


# --- benchmark ------------------------------------------------------------------------------
def cmd_benchmark_io(args: argparse.Namespace) -> int:
    from autodl_meta.benchmark import benchmark_io

    report = benchmark_io(n_images=args.n, image_size=args.size, doc=args.doc)
    print(report)
    return 0


def cmd_benchmark_finetune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl_meta.benchmark import benchmark_finetune

    backbones = args.backbones.split(",") if args.backbones else None
    sizes = tuple(int(s) for s in args.sizes.split(","))
    with tqdm(desc="backbone x size", unit="run", disable=None, leave=False) as bar:
        report = benchmark_finetune(backbones, sizes, steps=args.steps, repeats=args.repeats,
                                    device=args.device, doc=args.doc, progress=bar.update)
    print(report)
    return 0


# --- finetune -------------------------------------------------------------------------------
def cmd_finetune_timings(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from finetune.timing import measure_timings

    backbones = args.backbones.split(",")
    batch_sizes = [int(v) for v in args.batch_sizes.split(",")]
    sizes = [int(v) for v in args.sizes.split(",")]
    with tqdm(total=len(backbones) * len(batch_sizes) * len(sizes), desc="timings", unit="cfg",
              disable=None, leave=False) as bar:
        table = measure_timings(backbones, batch_sizes, sizes, device=args.device, repeats=args.repeats,
                                progress=bar.update)
    path = table.save(args.out)
    print(f"wrote {path}: {len(table.entries)} entries measured on {table.machine} ({table.device})")
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

    r = sub.add_parser("run", formatter_class=fmt,
                       help="run a model on a dataset under a protocol and score it (local test)")
    r.add_argument("--dataset", required=True, help="AutoDL dataset folder")
    r.add_argument("--model", required=True,
                   help="baseline:linear|default|scratch, config:PATH.yaml, or file:PATH/model.py")
    r.add_argument("--protocol", default="mini", help="protocol name (configs/protocol) or YAML file")
    r.add_argument("--out", required=True, help="output folder (predictions/, scores/, ingestion.log)")
    r.add_argument("--time-budget", type=float, default=None, help="override the protocol's T (seconds)")
    r.add_argument("--t0", type=float, default=None, help="override the protocol's t0 (seconds)")
    r.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    r.add_argument("--timing", default=None,
                   help="run on a simulated clock driven by this timing table (autodl-meta finetune timings); "
                        "default: the wall clock, ingestion in a child process")
    r.set_defaults(func=cmd_run)

    i = sub.add_parser("ingest", formatter_class=fmt,
                       help="the ingestion side alone (what 'run' starts in a child process)")
    i.add_argument("--dataset", required=True)
    i.add_argument("--model", required=True)
    i.add_argument("--time-budget", type=float, default=1200.0)
    i.add_argument("--t0", type=float, default=None, help="the ALC's t0 the learner plans with")
    i.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    i.add_argument("--max-train-examples", type=int, default=None)
    i.add_argument("--out", required=True)
    i.set_defaults(func=cmd_ingest)

    sc = sub.add_parser("score", formatter_class=fmt, help="score an ingestion output folder")
    sc.add_argument("--predictions", required=True, help="folder with start.txt and <task>.predict_<k>")
    sc.add_argument("--solution", required=True, help="the .solution file")
    sc.add_argument("--time-budget", type=float, default=None, help="T (default: from start.txt)")
    sc.add_argument("--t0", type=float, default=60.0, help="the ALC's t0 in seconds")
    sc.add_argument("--out", default=None, help="where scores.txt goes (default: the predictions folder)")
    sc.set_defaults(func=cmd_score)

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

    ft = sub.add_parser("finetune", help="fine-tuning tools")
    fsub = ft.add_subparsers(dest="finetune_command", required=True, metavar="ACTION")
    tm = fsub.add_parser("timings", formatter_class=fmt,
                         help="measure the timing table that drives the simulated clock")
    tm.add_argument("--out", required=True, help="JSON file to write")
    tm.add_argument("--backbones", default="tf_efficientnet_lite0,tf_efficientnet_lite1,"
                                           "tf_efficientnet_lite2,resnet18,scratch_cnn")
    tm.add_argument("--batch-sizes", default="16,32,64,128")
    tm.add_argument("--sizes", default="32,64,128")
    tm.add_argument("--repeats", type=int, default=3)
    tm.add_argument("--device", default="cpu")
    tm.set_defaults(func=cmd_finetune_timings)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except AutoDLError as exc:
        print(f"autodl-meta: error: {exc}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"autodl-meta: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("autodl-meta: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
