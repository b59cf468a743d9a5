"""``autodl-meta portfolio incumbents|cost-matrix|build``: the portfolio (thin layer over :mod:`portfolio`)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.parallel import add_tls_arguments
from autodl_meta._cli_util import LineProgress, cell_text, command_line
from autodl_meta.cli_bohb import _fraction


def cmd_portfolio_incumbents(args: argparse.Namespace) -> int:
    from portfolio.incumbents import build_portfolio

    portfolio = build_portfolio(args.runs, args.out, command=command_line())
    proto = portfolio.protocol
    print(f"{len(portfolio.incumbents)} incumbents under {proto['name']} (T={proto['time_budget']:g} s, "
          f"t0={proto['t0']:g} s), {portfolio.clock} clock:")
    for inc in portfolio.incumbents:
        print(f"  {inc.dataset:24s} ALC {inc.alc:.4f} at budget {inc.budget:.3g}  config {list(inc.config_id)}  "
              f"({inc.trials} trials)")
    for run in portfolio.without_incumbent:
        print(f"  {run['dataset']:24s} no incumbent: {run['reason']}", file=sys.stderr)
    print(f"wrote {portfolio.path}")
    return 0 if portfolio.incumbents else 1


def _seeds(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise AutoDLError(None, f"{text!r}: expected comma-separated integers", field="--seeds") from None


def cmd_portfolio_cost_matrix(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from autodl.records import Status
    from portfolio.cost_matrix import run_cost_matrix

    with tqdm(desc="cost matrix", unit="cell", disable=None) as bar:
        lines = LineProgress(bar, "cost matrix")

        def progress(done: int, total: int, row: dict[str, Any] | None) -> None:
            if row is None:
                bar.reset(total=total)
                lines.start()
                return
            bar.set_postfix_str(cell_text(row), refresh=False)
            bar.update(1)
            lines.update(done, total, cell_text(row))

        result = run_cost_matrix(args.portfolio, args.datasets, args.out, seeds=_seeds(args.seeds),
                                 workers=args.workers, scheduler=args.scheduler, timing=args.timing,
                                 device=args.device, retry_failed=args.retry_failed, progress=progress)
    t = result.timings
    m = result.matrix
    print(f"{len(m.sources)} incumbents x {len(m.targets)} datasets x {len(m.seeds)} seed(s): {t['cells']} cells "
          f"computed now in {t['wall_seconds']:.0f} s ({t['workers']} worker(s)), "
          f"{len(result.cells) - t['cells']} were there already")
    bad = [c for c in result.cells if c["status"] != Status.OK]
    if bad:
        print(f"{len(bad)} cells not ok (see {result.paths['summary_md']}): "
              + "; ".join(f"{c['source']} on {c['target']}: {c['status']}" for c in bad[:5]), file=sys.stderr)
    sb = result.summary["single_best"]
    if sb:
        print(f"single best: the incumbent of {sb['source']} (mean ALC {sb['mean_alc']:.4f}); oracle mean ALC "
              f"{result.summary['oracle_mean_alc']:.4f}; mean headroom {result.summary['headroom']['mean']:.4f}")
    for key in ("csv", "heatmap", "summary_md"):
        print(f"{key.replace('_', ' ')}: {result.paths[key]}")
    return 0


class _BuildProgress:
    """The progress display of ``portfolio build`` and ``build-default``: a line per step, a bar per
    BOHB run, the cost matrix, the meta-features and each stage of the selector comparison; without
    a terminal (a build in the background), a line per cost-matrix cell with the time left."""

    def __init__(self) -> None:
        self.bars: dict[str, Any] = {}
        self.stage: str | None = None
        self.lines: LineProgress | None = None  # the cost matrix's lines where its bar is off

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()
        self.bars.clear()

    def on_event(self, event: str, info: dict[str, Any]) -> None:
        self.close()
        label = event
        if "dataset" in info:
            label = f"{event} {info['dataset']}"
        elif event == "fit":
            label = f"fit the {info['role']} {info['selector']} into {info['folder']}"
        elif event == "done":
            return
        print(f"[{time.strftime('%H:%M:%S')}] {label}", flush=True)

    def bohb(self, dataset: str) -> Any:
        from tqdm import tqdm

        bar = self.bars.setdefault("bohb", tqdm(desc=f"bohb {dataset}", unit="trial", disable=None, leave=False))

        def progress(summary: Any, row: dict[str, Any]) -> None:
            inc = summary.incumbent()
            bar.set_postfix_str(f"best ALC {inc[1]:.4f}" if inc else "no ALC yet", refresh=False)
            bar.update(1)

        return progress

    def cell(self, done: int, total: int, row: dict[str, Any] | None) -> None:
        from tqdm import tqdm

        if "cells" not in self.bars:
            self.bars["cells"] = tqdm(total=total, desc="cost matrix", unit="cell", disable=None, leave=False)
            self.lines = LineProgress(self.bars["cells"], "cost matrix")
            self.lines.start()
        if row is not None:
            self.bars["cells"].update(1)
            self.lines.update(done, total, cell_text(row))

    def features(self, done: int, total: int, name: str) -> None:
        from tqdm import tqdm

        bar = self.bars.setdefault("features", tqdm(total=total, desc="meta-features", unit="dataset",
                                                    disable=None, leave=False))
        bar.set_postfix_str(name, refresh=False)
        bar.update(done - bar.n)

    def selection(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        bar = self.bars.get("selection")
        if bar is None or self.stage != stage:
            if bar is not None:
                bar.close()
            bar = self.bars["selection"] = tqdm(total=total, desc=stage, unit="step", disable=None, leave=False)
            self.stage = stage
        bar.n = done
        bar.refresh()


def _design_arguments(p: argparse.ArgumentParser) -> None:
    """The options of the pool and the portfolio's design (``portfolio build`` and ``build-default``)."""
    from portfolio.build import BuildSettings

    ref = BuildSettings()
    p.add_argument("--portfolio", default=ref.portfolio, choices=["greedy", "incumbents"],
                   help="greedy: K members of the shared pool chosen greedily (K by leave-one-dataset-out, "
                        f"{ref.k_min} to {ref.k_max}); incumbents: each dataset's own BOHB incumbent (the seed design)")
    p.add_argument("--warm-start", default=ref.warm_start, choices=["grid", "grid-core", "none"],
                   help="the fixed configurations every BOHB run starts from and the pool holds: the grid's 21, "
                        "its core of 7 (finetune.grid.CORE), or none")
    p.add_argument("--pool-searched", type=int, default=ref.pool_searched,
                   help="searched configurations in the pool at most (those that beat every fixed one on their own "
                        "dataset by the largest margin)")
    p.add_argument("--pool-hours", type=float, default=ref.pool_hours,
                   help="worker-hours the pool's matrix is sized to: searched configurations whose cells (estimated "
                        "from the BOHB runs' trial times) would not fit are left out; 0: no limit "
                        f"(default {ref.pool_hours:g}: the default build within 12 hours of 2 cores)")


def _design_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"portfolio": args.portfolio, "warm_start": args.warm_start, "pool_searched": args.pool_searched,
            "pool_hours": args.pool_hours or None}


def cmd_portfolio_build(args: argparse.Namespace) -> int:
    from portfolio.build import BuildSettings, build

    settings = BuildSettings(collection=args.collection, data=args.data, protocol=args.protocol,
                             timing=args.timing, iterations=args.iterations, min_budget=args.min_budget,
                             max_budget=args.max_budget, eta=args.eta, seed=args.seed, workers=args.workers,
                             matrix_seeds=tuple(_seeds(args.matrix_seeds)), scheduler=args.scheduler,
                             only=tuple(args.only.split(",")) if args.only else (), **_design_settings(args))
    show = _BuildProgress()
    try:
        manifest = build(args.out, settings, command=command_line(), on_event=show.on_event, bohb_progress=show.bohb,
                         cell_progress=show.cell)
    finally:
        show.close()
    for step in manifest["steps"][-3:]:
        print(f"{step['step']}: {step['seconds']:.0f} s")
    print(f"portfolio: {Path(args.out) / 'portfolio.json'}; cost matrix: {Path(args.out) / 'cost_matrix.csv'}; "
          f"manifest: {Path(args.out) / 'manifest.json'}")
    return 0


def cmd_portfolio_build_default(args: argparse.Namespace) -> int:
    from pipeline.default_build import DefaultBuildSettings, build_default, reproduce_command
    from portfolio.build import BuildSettings

    settings = DefaultBuildSettings(build=BuildSettings(data=args.data, iterations=args.iterations, seed=args.seed,
                                                        workers=args.workers,
                                                        matrix_seeds=tuple(_seeds(args.matrix_seeds)),
                                                        only=tuple(o for o in args.only.split(",") if o),
                                                        **_design_settings(args)),
                                    features=args.features)
    print(f"reproduce with: {reproduce_command(settings, args.out)}", flush=True)
    show = _BuildProgress()
    try:
        manifest = build_default(args.out, settings, command=command_line(), on_event=show.on_event,
                                 bohb_progress=show.bohb, cell_progress=show.cell, features_progress=show.features,
                                 selection_progress=show.selection)
    finally:
        show.close()
    out = Path(args.out)
    this = manifest["commands"][-1]
    steps = [s for s in manifest["steps"] if s["finished"] >= this["started"]]
    for step in steps:
        if step["seconds"] >= 1 or step["step"] in ("meta-features", "selection"):
            print(f"{step['step']}: {step['seconds']:.0f} s")
    for role, sel in manifest.get("selectors", {}).items():
        print(f"{role}: {sel['selector']} (mean leave-one-dataset-out ALC {sel['mean_alc']:.4f}) in {out / sel['folder']}")
    print(f"{out}: {manifest['bytes'] / 1e6:.2f} MB in {len(manifest['files']) + 1} files; this build "
          f"{this['seconds']:.0f} s, all builds into it {manifest['total_seconds'] / 3600:.2f} h of steps")
    print(f"report: {out / 'selection' / 'report.md'}; manifest: {out / 'manifest.json'}")
    print(f"reproduce with: {manifest['reproduce']}")
    return 0


def cmd_portfolio_ship(args: argparse.Namespace) -> int:
    from pipeline.shipping import ship
    from submission.artifacts import parse_hedge

    settings = None
    if args.hedge is not None:
        n, anchored = parse_hedge(args.hedge)
        settings = {"hedge": n, "hedge_with_single_best": anchored}
    if not args.swap and settings is None:
        print("autodl-meta: error: portfolio ship: nothing to change (give --swap, --hedge or both)", file=sys.stderr)
        return 2
    res = ship(args.portfolio, swap=args.swap, settings=settings, reason=args.reason, command=command_line())
    print(f"{args.portfolio} ships {res['shipped']} (runner-up {res['runner_up']}); submission settings "
          f"{res['settings'] or 'the defaults'}; manifest checksums recomputed")
    return 0


def register(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``portfolio incumbents`` and ``portfolio cost-matrix`` to the ``autodl-meta`` parser."""
    from portfolio.build import DEFAULT_ITERATIONS

    p = sub.add_parser("portfolio", help="the incumbents of BOHB runs and their cost matrix")
    psub = p.add_subparsers(dest="portfolio_command", required=True, metavar="ACTION")
    inc = psub.add_parser("incumbents", formatter_class=fmt,
                          help="each training dataset's best configuration from a folder of BOHB runs")
    inc.add_argument("--runs", required=True,
                     help="runs folder: one sub-folder per training dataset holding run.json and trials.jsonl "
                          "(autodl-meta bohb run --out)")
    inc.add_argument("--out", required=True, help="portfolio.json to write (or a folder to write it in)")
    inc.set_defaults(func=cmd_portfolio_incumbents)

    cm = psub.add_parser("cost-matrix", formatter_class=fmt,
                         help="every incumbent on every dataset at full budget, in parallel with Dask (resumable "
                              "cell by cell): cost_matrix.csv, a heatmap, single best, oracle and headroom")
    cm.add_argument("--portfolio", required=True, help="portfolio.json (portfolio incumbents --out) or its folder")
    cm.add_argument("--datasets", required=True, nargs="+",
                    help="the collection: a folder of AutoDL datasets (each sub-folder one), dataset folders, "
                         "or name=path")
    cm.add_argument("--out", required=True,
                    help="output folder (cells.jsonl, cost_matrix.csv/.png, summary.json/.md, a copy of the "
                         "portfolio); cells already there are not computed again")
    cm.add_argument("--seeds", default="0", help="comma-separated evaluation seeds (mean ALC over them)")
    cm.add_argument("--workers", type=int, default=2,
                    help="Dask worker processes of a LocalCluster on this machine, one PyTorch thread each "
                         "(0: one after the other in this process, without Dask)")
    cm.add_argument("--scheduler", default=None,
                    help="address of a running Dask scheduler instead of a LocalCluster, e.g. tcp://10.1.2.3:8786 "
                         "from dask-jobqueue: SLURMCluster(cores=1, processes=1, memory='8GB', ...).scale(jobs=N) "
                         "(see portfolio/cost_matrix.py); its workers must see the datasets' paths")
    add_tls_arguments(cm)
    cm.add_argument("--timing", default=None,
                    help="price the cells with this timing table instead of the one the BOHB runs used")
    cm.add_argument("--device", default=None, help="cpu or cuda (default: cuda where available)")
    cm.add_argument("--retry-failed", action="store_true", help="compute again the cells recorded as failed")
    cm.set_defaults(func=cmd_portfolio_cost_matrix)

    bd = psub.add_parser("build", formatter_class=fmt,
                         help="collection -> BOHB per dataset -> incumbents -> cost matrix, resumable (every "
                              "finished trial and cell is kept); writes OUT/manifest.json with the steps' times")
    bd.add_argument("--collection", default="default", help="collection name or YAML file")
    bd.add_argument("--data", default="data/collections/default", help="where the datasets are built")
    bd.add_argument("--out", default="portfolio/default", help="the portfolio folder (what gets committed)")
    bd.add_argument("--protocol", default="mini")
    bd.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")
    bd.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                    help="BOHB iterations per dataset, after the warm start")
    bd.add_argument("--min-budget", type=_fraction, default=1 / 9, help="a fraction of T")
    bd.add_argument("--max-budget", type=_fraction, default=1.0, help="a fraction of T")
    bd.add_argument("--eta", type=int, default=3)
    bd.add_argument("--seed", type=int, default=0)
    bd.add_argument("--workers", type=int, default=2, help="BOHB worker processes and Dask workers")
    bd.add_argument("--matrix-seeds", default="0,1",
                    help="comma-separated seeds of the pool's and the cost matrix's cells (the first: --seed)")
    bd.add_argument("--scheduler", default=None, help="a running Dask scheduler for the cost matrix")
    add_tls_arguments(bd)
    bd.add_argument("--only", default=None,
                    help="comma-separated datasets of the collection or tag:NAME (default: all)")
    _design_arguments(bd)
    bd.set_defaults(func=cmd_portfolio_build)

    from pipeline.default_build import DEFAULT_DATA, DEFAULT_OUT, FEATURES_ROOT

    df = psub.add_parser("build-default", formatter_class=fmt,
                         help="the embedded default from scratch, one seeded command: collection 'default' -> BOHB "
                              "(protocol mini, simulated clock) -> cost matrix -> meta-features -> selector "
                              "comparison -> the chosen and the runner-up selector fitted; resumable (hours)",
                         description="Builds portfolio/default/ (what the submission ships): steps 1-4 of "
                                     "'portfolio build' with its defaults, the meta-features of every dataset "
                                     "(EfficientNet-Lite0 at 64 px, 512 train / 512 test samples, cached), the "
                                     "selector comparison (OUT/selection/), the chosen selector (OUT/selector/) and "
                                     "the runner-up learned selector (OUT/selector-runner-up/). Each step is timed "
                                     "in OUT/manifest.json with the versions, the seed and the checksums. The same "
                                     "command continues a stopped build; other settings over an existing OUT are "
                                     "refused; an OUT over 20 MB is refused.")
    df.add_argument("--out", default=DEFAULT_OUT, help="the folder that gets committed")
    df.add_argument("--data", default=DEFAULT_DATA, help="where the collection's datasets are built")
    df.add_argument("--features", default=f"{FEATURES_ROOT}/default",
                    help="the meta-features folder (cached; not committed)")
    df.add_argument("--workers", type=int, default=2,
                    help="BOHB worker processes, Dask workers of the cost matrix and of the meta-features")
    df.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS,
                    help="BOHB iterations per dataset, after the warm start (a cluster user: 10)")
    df.add_argument("--seed", type=int, default=0, help="BOHB's seed")
    df.add_argument("--matrix-seeds", default="0,1",
                    help="comma-separated seeds of the pool's and the cost matrix's cells (the first: --seed)")
    df.add_argument("--only", default="tag:core",
                    help="comma-separated datasets of the collection or tag:NAME; '' for all 48 (default: the 30 "
                         "tagged core)")
    _design_arguments(df)
    df.set_defaults(func=cmd_portfolio_build_default)

    sh = psub.add_parser("ship", formatter_class=fmt,
                         help="ship the runner-up selector and/or a hedging setting by a verdict (e.g. the held-out "
                              "benchmark's), without fitting again; the manifest records why")
    sh.add_argument("--portfolio", default=DEFAULT_OUT, help="a built portfolio folder")
    sh.add_argument("--swap", action="store_true", help="exchange selector/ and selector-runner-up/")
    sh.add_argument("--hedge", default=None,
                    help="the submission's hedge setting (1: pure selection; 2-5: race the top N; 2sb-5sb: the "
                         "selector's pick, the single best second, then its next picks)")
    sh.add_argument("--reason", required=True, help="why (kept in the cards and the manifest)")
    sh.set_defaults(func=cmd_portfolio_ship)
