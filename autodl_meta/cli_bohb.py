"""``autodl-meta bohb run|nameserver|master|worker``: BOHB per training dataset (thin layer over
:mod:`offline_bohb`)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from autodl.errors import AutoDLError


def _fraction(text: str) -> float:
    try:
        return float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number or a fraction such as 1/9") from None


def _spec(args: argparse.Namespace, run_id: str = "") -> Any:
    from offline_bohb.run import DEFAULT_OBJECTIVE, RunSpec

    try:
        objective_args = json.loads(args.objective_args) if args.objective_args else {}
    except json.JSONDecodeError as exc:
        raise AutoDLError(None, f"--objective-args: expected a JSON object ({exc})", field="objective_args") from None
    return RunSpec(dataset=args.dataset, protocol=args.protocol, clock=args.clock, timing=args.timing,
                   space=args.space, min_budget=args.min_budget, max_budget=args.max_budget, eta=args.eta,
                   seed=args.seed, iterations=args.iterations, run_id=run_id,
                   command=" ".join(["autodl-meta"] + sys.argv[1:]),
                   objective=args.objective or DEFAULT_OBJECTIVE, objective_args=objective_args,
                   warm_start=args.warm_start)


def _progress_bar(spec: Any) -> tuple[Any, Any]:
    from tqdm import tqdm

    from offline_bohb.hpb import bracket_sizes
    from offline_bohb.run import RunFolder, planned_trials

    total = sum(n for bracket in bracket_sizes(spec.min_budget, spec.max_budget, spec.eta, spec.iterations)
                for n, _ in bracket)
    bar = tqdm(total=total, desc="trials", unit="trial", disable=None)

    def progress(summary: Any, row: Mapping[str, Any]) -> None:
        if bar.n == 0:  # run.json is written by now: count the warm start too
            bar.total = planned_trials(RunFolder(summary.run_dir).read_run())
        inc = summary.incumbent()
        best = f"{inc[1]:.4f} at budget {inc[0]:.3g}" if inc else "none yet"
        bar.set_postfix_str(f"best ALC {best}, crashed {summary.crashed}", refresh=False)
        bar.update(1)

    return bar, progress


def _report(summary: Any, out: Any) -> int:
    inc = summary.incumbent()
    print(f"{summary.new_trials} trials run, {summary.replayed} replayed from before, {summary.crashed} crashed or "
          f"timed out, {summary.lost} lost with a worker, in {summary.wall_seconds:.0f} s")
    if inc is None:
        print("no trial finished with an ALC: no incumbent", file=sys.stderr)
        return 1
    print(f"incumbent: config {inc[2]} with ALC {inc[1]:.4f} at budget {inc[0]:.3g} of T")
    print(_samples_line(summary.samples))
    print(f"trials: {out}/trials.jsonl")
    return 0


def _samples_line(c: Mapping[str, Any]) -> str:
    share = "n/a" if c.get("share_after_first") is None else f"{c['share_after_first']:.0%}"
    return (f"warm start: {c.get('warm_start', 0)} configurations; BOHB sampled {c.get('samples', 0)}, "
            f"{c.get('model_based', 0)} by its model; after the first bracket {c.get('model_based_after_first', 0)} "
            f"of {c.get('after_first', 0)} ({share})")


def cmd_bohb_show(args: argparse.Namespace) -> int:
    from collections import Counter

    from autodl.records import Status
    from offline_bohb.run import RunFolder, planned_trials, sample_counts

    folder = RunFolder(args.out)
    run = folder.read_run()
    trials = folder.trials()
    seed_from = run.get("bohb_seed_from") or {}
    derived = f" (derived from build seed {seed_from['build_seed']} and {seed_from['dataset']!r})" if seed_from else ""
    data = (run["space"].get("data") or {})
    print(f"run {run.get('run_id')}: dataset {run['dataset']['name']}, protocol {run['protocol'].get('name')}, "
          f"clock {run['clock']}")
    print(f"seeds: evaluations {run['seed']}, BOHB {run.get('bohb_seed', run['seed'])}{derived}")
    print(f"space: {run['space']['path']}, {run['space'].get('dimensions', len(run['space']['hyperparameters']))} "
          f"dimensions searched" + (f" (video {data.get('video')}, {data.get('channels')} channels)" if data else ""))
    print(f"budgets {run['min_budget']:.3g}-{run['max_budget']:.3g} of T, eta {run['eta']}, {run['iterations']} "
          f"iterations; BOHB settings {run.get('bohb') or {}}")
    status = Counter(t.get("status") for t in trials)
    print(f"trials: {len(trials)} of {planned_trials(run)} planned ({', '.join(f'{k} {v}' for k, v in sorted(status.items()))})")
    ok = [t for t in trials if t.get("status") == Status.OK and t.get("alc") is not None]
    if ok:
        top = max(t["budget"] for t in ok)
        best = max((t for t in ok if t["budget"] == top), key=lambda t: t["alc"])
        names = {tuple(c["config_id"]): (c.get("info") or {}).get("warm_start") for c in folder.configs()}
        label = names.get(tuple(best["config_id"]))
        print(f"incumbent: config {best['config_id']}" + (f" (warm start: {label})" if label else "")
              + f" with ALC {best['alc']:.4f} at budget {top:.3g} of T")
    print(_samples_line(sample_counts(args.out)))
    return 0



def cmd_bohb_run(args: argparse.Namespace) -> int:
    from offline_bohb.local import run_local

    spec = _spec(args)
    bar, progress = _progress_bar(spec)
    with bar:
        summary = run_local(spec, args.out, workers=args.workers, ping_interval=args.ping_interval,
                            progress=progress)
    return _report(summary, args.out)


def cmd_bohb_nameserver(args: argparse.Namespace) -> int:
    from offline_bohb.hpb import credentials_path
    from offline_bohb.local import serve_nameserver

    print(f"nameserver of run {args.run_id}: credentials in {credentials_path(args.shared_dir, args.run_id)} "
          "(Ctrl-C to stop)")
    serve_nameserver(args.shared_dir, args.run_id, interface=args.interface)
    return 0


def cmd_bohb_master(args: argparse.Namespace) -> int:
    from offline_bohb.hpb import read_credentials, start_nameserver
    from offline_bohb.run import RunFolder, run_master

    spec = _spec(args, run_id=args.run_id)
    RunFolder(args.shared_dir).start(spec)
    ns = start_nameserver(args.run_id, args.shared_dir, interface=args.interface) if args.with_nameserver else None
    try:
        address = ns.address if ns else read_credentials(args.shared_dir, args.run_id, wait=args.wait)
        bar, progress = _progress_bar(spec)
        with bar:
            summary = run_master(args.shared_dir, address, min_workers=args.min_workers, interface=args.interface,
                                 ping_interval=args.ping_interval, progress=progress)
    finally:
        if ns is not None:
            ns.shutdown()
    return _report(summary, args.shared_dir)


def cmd_bohb_worker(args: argparse.Namespace) -> int:
    from offline_bohb.local import serve_run_worker

    serve_run_worker(args.shared_dir, args.run_id, interface=args.interface, wait=args.wait,
                     idle_timeout=args.idle_timeout)
    return 0


def _search_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, help="the AutoDL dataset BOHB searches a configuration for")
    p.add_argument("--iterations", type=int, default=4, help="BOHB iterations (Hyperband brackets)")
    p.add_argument("--protocol", default="mini", help="protocol name or YAML file")
    p.add_argument("--clock", default="simulated", choices=["simulated", "cpu", "wall"],
                   help="the evaluations' clock (docs/clocks.md)")
    p.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")
    p.add_argument("--space", default=None, help="configuration-space YAML (default: configs/space/finetune.yaml)")
    p.add_argument("--min-budget", type=_fraction, default=1 / 9, help="smallest budget, a fraction of T")
    p.add_argument("--max-budget", type=_fraction, default=1.0, help="largest budget, a fraction of T")
    p.add_argument("--eta", type=int, default=3, help="successive halving keeps 1/eta per stage")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluations and of BOHB's sampling")
    p.add_argument("--ping-interval", type=float, default=10.0,
                   help="seconds between the master's checks for new and dead workers")
    p.add_argument("--objective", default=None,
                   help="what a trial computes, module:function (default: the fine-tuning evaluation; "
                        "offline_bohb.synthetic:synthetic_evaluator tests the machinery)")
    p.add_argument("--objective-args", default=None, help="JSON object handed to the objective")
    p.add_argument("--warm-start", default="grid", choices=["grid", "grid-core", "none"],
                   help="evaluate the grid's configurations and baseline:default (finetune/grid.py) at the full "
                        "budget before BOHB's brackets (their results start BOHB's model), only the grid's core "
                        "(finetune.grid.CORE, 7 of them), or none")


def _cluster_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shared-dir", required=True, help="folder every node sees: the run folder and the "
                                                       "nameserver's credentials")
    p.add_argument("--run-id", required=True, help="the run's name, the same for nameserver, master and workers")
    p.add_argument("--interface", default=None,
                   help="network interface to bind and announce (e.g. ib0, eth0); default loopback, which "
                        "only processes on the same node can reach")


def register(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add the ``bohb`` command and its actions to the top-level sub-parsers."""
    b = sub.add_parser("bohb", help="BOHB over the configuration space, per training dataset")
    bsub = b.add_subparsers(dest="bohb_command", required=True, metavar="ACTION")

    r = bsub.add_parser("run", formatter_class=fmt,
                        help="nameserver, N worker processes and the master on this machine (resumes)")
    _search_arguments(r)
    r.add_argument("--workers", type=int, default=2, help="worker processes, one evaluation each")
    r.add_argument("--out", required=True, help="the run folder (run.json, trials.jsonl, configs.jsonl, logs/)")
    r.set_defaults(func=cmd_bohb_run)

    sh = bsub.add_parser("show", formatter_class=fmt,
                         help="what a run folder holds: seeds, trials, incumbent, and how many of BOHB's samples "
                              "its model picked")
    sh.add_argument("--out", required=True, help="the run folder (run.json, trials.jsonl, configs.jsonl)")
    sh.set_defaults(func=cmd_bohb_show)

    ns = bsub.add_parser("nameserver", formatter_class=fmt, help="a Pyro4 nameserver for a cluster run")
    _cluster_arguments(ns)
    ns.set_defaults(func=cmd_bohb_nameserver)

    m = bsub.add_parser("master", formatter_class=fmt,
                        help="the master of a cluster run (the run folder is --shared-dir; resumes)")
    _cluster_arguments(m)
    _search_arguments(m)
    m.add_argument("--with-nameserver", action="store_true", help="start the nameserver in this process")
    m.add_argument("--min-workers", type=int, default=1, help="workers to wait for before the first trial")
    m.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the nameserver's credentials")
    m.set_defaults(func=cmd_bohb_master)

    w = bsub.add_parser("worker", formatter_class=fmt, help="a worker of a cluster run")
    _cluster_arguments(w)
    w.add_argument("--wait", type=float, default=600.0,
                   help="seconds to wait for the nameserver's credentials and run.json")
    w.add_argument("--idle-timeout", type=float, default=None,
                   help="exit after this many seconds without a job (default: when the master ends)")
    w.set_defaults(func=cmd_bohb_worker)


def cmd_benchmark_bohb(args: argparse.Namespace) -> int:
    from autodl_meta._cli_util import run_benchmark
    from pipeline.benchmarks.bohb_overhead import bohb_report, run_bohb_benchmark, save_result

    try:
        objective_args = json.loads(args.objective_args) if args.objective_args else {}
    except json.JSONDecodeError as exc:
        raise AutoDLError(None, f"--objective-args: expected a JSON object ({exc})", field="objective_args") from None

    def run(step: Any) -> dict[str, Any]:
        return run_bohb_benchmark(args.out, args.dataset, args.matrix_datasets.split(","),
                                  iterations=args.iterations, min_budget=args.min_budget, protocol=args.protocol,
                                  timing=args.timing, objective=args.objective, objective_args=objective_args,
                                  progress=step)

    return run_benchmark(args, "benchmark bohb", run, bohb_report, save_result)


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``benchmark bohb`` to the benchmark sub-parsers."""
    p = bsub.add_parser("bohb", formatter_class=fmt,
                        help="BOHB with 1 and 2 worker processes and the cost matrix with 1 and 2 Dask workers: "
                             "evaluations per hour and the share of wall time outside evaluations")
    p.add_argument("--dataset", default="data/bench/digits", help="the dataset BOHB searches on")
    p.add_argument("--matrix-datasets", default="data/bench/digits,data/bench/textures",
                   help="comma-separated datasets of the cost matrix")
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--min-budget", type=_fraction, default=1 / 9, help="a fraction of T")
    p.add_argument("--protocol", default="mini")
    p.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")
    p.add_argument("--objective", default=None, help="a trial objective other than the fine-tuning evaluation")
    p.add_argument("--objective-args", default=None, help="JSON object handed to the objective")
    p.add_argument("--out", default="data/benchmark-bohb", help="working folder (emptied first)")
    p.add_argument("--results", default="docs/results/bohb.jsonl", help="JSON lines: one per benchmark run")
    p.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    p.set_defaults(func=cmd_benchmark_bohb)
