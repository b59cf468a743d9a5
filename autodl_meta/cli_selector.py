"""``autodl-meta selector compare|fit|list`` and ``autodl-meta benchmark selector``.

A thin layer over :mod:`selector.report` (the comparison report), :mod:`selector.shipping`
(fitting the selector to ship), :mod:`selector.base` (saving it) and
:mod:`pipeline.benchmarks.selection_cost`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl_meta._cli_util import command_line


def _ints(text: str, option: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise AutoDLError(None, f"{text!r}: expected comma-separated integers", field=option) from None
    if not out:
        raise AutoDLError(None, f"{text!r}: expected at least one integer", field=option)
    return out


def _value(text: str) -> Any:
    """A hyperparameter's value as YAML reads it (3 -> int, 0.1 -> float, true -> bool, [a, b] -> list)."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_params(items: list[str] | None, *, prefixed: bool) -> dict[str, dict[str, Any]]:
    """``k=v`` (``prefixed=False``: one selector) or ``NAME.k=v`` items -> {NAME or "": {k: v}}."""
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise AutoDLError(None, f"{item!r}: expected {'NAME.' if prefixed else ''}KEY=VALUE", field="--param")
        name = ""
        if prefixed:
            name, dot, key = key.partition(".")
            if not dot or not key:
                raise AutoDLError(None, f"{item!r}: expected NAME.KEY=VALUE (NAME a selector of --selectors)",
                                  field="--param")
        out.setdefault(name.strip(), {})[key.strip()] = _value(value.strip())
    return out


def selector_entries(text: str) -> list[tuple[str, str]]:
    """``--selectors``: comma-separated registry names, or ``LABEL=NAME`` for a variant of a
    selector under its own label (its ``--param LABEL.KEY=VALUE``), so that variants of one
    selector are compared side by side -> ``[(label, name)]``. Unknown names and labels given
    twice are refused."""
    from selector.registry import list_selectors

    known = set(list_selectors())
    out = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        label, eq, name = item.partition("=")
        label, name = (label.strip(), name.strip()) if eq else (item, item)
        if not label or name not in known:
            raise AutoDLError(None, f"{item!r}: expected a registered selector ({', '.join(sorted(known))}) or "
                                    "LABEL=NAME", field="--selectors")
        out.append((label, name))
    labels = [label for label, _ in out]
    twice = sorted({x for x in labels if labels.count(x) > 1})
    if twice:
        raise AutoDLError(None, f"{', '.join(twice)} named twice: give a variant its own label (LABEL=NAME)",
                          field="--selectors")
    return out


class _Bars:
    """One tqdm bar per stage of ``progress(stage, done, total)``."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.stage: str | None = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if stage != self.stage or self.bar is None:
            self.close()
            self.bar = tqdm(total=total, desc=stage, unit="step", disable=None, leave=False)
            self.stage = stage
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        self.bar = None


def cmd_selector_compare(args: argparse.Namespace) -> int:
    from selector.registry import list_selectors
    from selector.report import compare
    from selector.specs import SelectorSpec

    entries = selector_entries(args.selectors) if args.selectors else [(n, n) for n in list_selectors()]
    params = parse_params(args.param, prefixed=True)
    labels = [label for label, _ in entries]
    unknown = sorted(set(params) - set(labels))
    if unknown:
        raise AutoDLError(None, f"parameters for {unknown}, which are not among the selectors {labels}",
                          field="--param")
    specs = [SelectorSpec(name, params.get(label, {}), label=label) for label, name in entries]
    bars = _Bars()
    try:
        summary = compare(specs, args.features, args.portfolio, args.out,
                          batch_sizes=_ints(args.batch_sizes, "--batch-sizes"), n_batches=args.n_batches,
                          query_size=args.query_size, n_queries=args.n_queries,
                          seeds=_ints(args.seeds, "--seeds"),
                          cost_batch_sizes=_ints(args.cost_batch_sizes, "--cost-batch-sizes")
                          if args.cost_batch_sizes else None,
                          timing_repeats=args.repeats, time_embedding=not args.no_embedding_timing,
                          command=command_line(), nested=not args.no_nested_fallback, inner_queries=args.inner_queries,
                          baselines=not args.no_baselines, workers=args.workers, progress=bars, parts=args.parts)
    finally:
        bars.close()
    print(summary_table(summary))
    choice = summary.get("choice")
    if choice:
        print(f"choice for shipping: {choice['selector']} ({choice['reason']})")
    paths = summary["paths"]
    print(f"report: {paths['markdown']} and {paths['html']}; data: {paths['summary']}")
    return 0


def summary_table(summary: dict[str, Any]) -> str:
    """The terminal's table: LODO figures and identification accuracy at the query size."""
    lodo = summary["lodo"]
    per = lodo["per_selector"]
    q = summary["settings"]["query_size"]

    def f(v: Any, spec: str = ".4f") -> str:
        return "n/a" if v is None or math.isnan(v) else format(v, spec)

    lines = [f"{'selector':22s} {'mean ALC':>9s} {'regret':>8s} {'vs SB':>8s} {'gap':>7s} {'tau':>7s} {'failed':>6s}",
             "-" * 73]
    for label in sorted(per, key=lambda k: -(per[k]["mean_alc"] if per[k]["mean_alc"] is not None else -9)):
        v = per[label]
        lines.append(f"{label:22s} {f(v['mean_alc']):>9s} {f(v['mean_regret']):>8s} "
                     f"{f(v['mean_delta_single_best'], '+.4f'):>8s} {f(v['mean_gap_closed'], '.3f'):>7s} "
                     f"{f(v['mean_kendall_tau'], '.3f'):>7s} {v['failed']:>6d}")
    lines.append(f"oracle {f(lodo['oracle_mean_alc'])}, single best {f(lodo['single_best_mean_alc'])}, "
                 f"random (expected) {f(lodo['expected_random_alc'])} over {len(lodo['datasets'])} datasets; "
                 f"queries of {q} labelled training samples")
    return "\n".join(lines)


def cmd_selector_fit(args: argparse.Namespace) -> int:
    from autodl.records import utc_now
    from selector.shipping import fit_for_shipping, lodo_scores, read_summary
    from selector.specs import SelectorSpec

    params = parse_params(args.param, prefixed=False).get("", {})
    tuned = None
    if args.tuned:
        from selector.tuning import tuned_params

        tuned = tuned_params(args.tuned, args.selector)
        params = {**tuned["params"], **params}
    scores = None
    name = args.selector
    if args.summary:  # read before fitting: a wrong --summary fails at once
        summary, summary_path = read_summary(args.summary)
        compared = {s.get("label"): s for s in (summary.get("settings") or {}).get("selectors") or []}
        if args.selector in compared:  # a label of the comparison: fit what it compared under that label
            spec = compared[args.selector]
            clash = {k: v for k, v in params.items() if k in (spec.get("params") or {}) and spec["params"][k] != v}
            if clash:
                raise AutoDLError(Path(args.summary), f"{args.selector} was compared with {spec.get('params')}; "
                                  f"--param {clash} would fit another selector than the one scored",
                                  field="settings.selectors")
            name, params = str(spec.get("name") or args.selector), {**(spec.get("params") or {}), **params}
            label = args.selector
        else:
            label = SelectorSpec(args.selector, params).label
        scores = lodo_scores(summary, label, summary_path)
    fit = fit_for_shipping(name, params, args.features, args.portfolio, seed=args.seed)
    if fit.left_out:
        print(f"left out (no incumbent in the cost matrix, so never worth naming): {', '.join(fit.left_out)}",
              file=sys.stderr)
    if fit.without_member:
        print(f"left out (assigned to no member of the portfolio): {', '.join(fit.without_member)}",
              file=sys.stderr)
    if fit.outputs_members:
        print(f"note: {args.selector} names portfolio members, not training datasets: the submission looks the "
              "member up in portfolio.json (provenance.members, each incumbent's member)", file=sys.stderr)
    extra: dict[str, Any] = {"command": command_line(), "date": utc_now(), **fit.card_fields()}
    if tuned is not None:
        extra["tuned"] = {k: v for k, v in tuned.items() if k != "params"}
    if scores is not None:
        extra["scores"] = scores
    card = fit.selector.save(args.out, extra=extra)
    print(f"{args.selector} fitted on {len(fit.datasets)} datasets; wrote {card} and "
          f"{Path(args.out) / 'selector.safetensors'}")
    return 0


def cmd_selector_tune(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from offline_bohb.hpb import bracket_sizes
    from selector.tuning import best_params, tune_selector

    planned = sum(n for b in bracket_sizes(args.min_budget, 1.0, args.eta, args.iterations) for n, _ in b)
    with tqdm(total=planned, desc=f"tune {args.selector}", unit="trial", disable=None) as bar:
        def progress(summary: Any, row: Any) -> None:
            bar.set_postfix_str(f"budget {row.get('budget', 0):.2f}: ALC {row.get('alc')}", refresh=False)
            bar.update(1)

        summary = tune_selector(args.selector, args.features, args.portfolio, args.out, workers=args.workers,
                                iterations=args.iterations, min_budget=args.min_budget, eta=args.eta,
                                query_size=args.query_size, n_queries=args.n_queries, seed=args.seed,
                                command=command_line(), progress=progress)
    best = best_params(args.out)
    print(f"{summary.new_trials} trials run, {summary.replayed} replayed, {summary.crashed} crashed")
    if best is None:
        print("no trial finished", file=sys.stderr)
        return 1
    params, alc = best
    print(f"best at the full budget: mean leave-one-dataset-out ALC {alc:.4f} with {params}")
    print(f"fit it for shipping: autodl-meta selector fit --selector {args.selector} --tuned {args.out} ...")
    return 0


def cmd_selector_list(args: argparse.Namespace) -> int:
    from selector.registry import list_selectors, selector_class

    for name in list_selectors():
        cls = selector_class(name)
        needs = [w for w, flag in (("labels", cls.needs_labels), ("cost matrix", cls.needs_cost)) if flag]
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:18s} {'needs ' + ', '.join(needs) if needs else '':28s} {doc}")
    return 0


def register(sub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``selector compare``, ``selector fit`` and ``selector list`` to the ``autodl-meta`` parser."""
    p = sub.add_parser("selector", help="compare selectors and similarity measures; fit the one to ship")
    ssub = p.add_subparsers(dest="selector_command", required=True, metavar="ACTION")

    c = ssub.add_parser("compare", formatter_class=fmt,
                        help="identification accuracy, leave-one-dataset-out selection scored by the cost matrix, "
                             "statistics and the cost of selecting: OUT/report.md and report.html")
    c.add_argument("--features", required=True,
                   help="folder of <dataset>.npz/.json features (autodl-meta metafeatures extract --out)")
    c.add_argument("--portfolio", required=True,
                   help="portfolio folder holding cost_matrix.csv (or cells.jsonl and portfolio.json of a matrix "
                        "still being built), or a cost_matrix.csv")
    c.add_argument("--selectors", default=None,
                   help="comma-separated registry names, or LABEL=NAME for a variant under its own label (e.g. "
                        "member-pairwise,pairwise-raw=member-pairwise --param pairwise-raw.use_probe=raw); when not "
                        "given, every registered selector (see 'selector list')")
    c.add_argument("--param", action="append", default=None, metavar="LABEL.KEY=VALUE",
                   help="a selector's hyperparameter, e.g. kmeans.n_clusters=3 (repeatable; VALUE read as YAML)")
    c.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256,512,1024",
                   help="identification batch sizes (a batch larger than a dataset's test embeddings takes them all)")
    c.add_argument("--n-batches", type=int, default=10, help="identification batches per dataset and batch size")
    c.add_argument("--query-size", type=int, default=64,
                   help="leave-one-dataset-out: labelled training samples of the held-out dataset per query")
    c.add_argument("--n-queries", type=int, default=10, help="leave-one-dataset-out: queries per held-out dataset")
    c.add_argument("--seeds", default="0", help="comma-separated seeds; every measurement is repeated per seed")
    c.add_argument("--cost-batch-sizes", default=None,
                   help="batch sizes of the selection-cost table; when not given, 1,8,32,<query size>,128,1024")
    c.add_argument("--repeats", type=int, default=3, help="timed repetitions (median) in the selection-cost table")
    c.add_argument("--no-embedding-timing", action="store_true",
                   help="time the selection alone (the embedding needs PyTorch and the backbone's weights)")
    c.add_argument("--no-nested-fallback", action="store_true",
                   help="score the single-best fallback only with thresholds chosen on the scored folds (optimistic); "
                        "by default it is also scored by nested leave-one-dataset-out (one more fit per pair of "
                        "groups and selector)")
    c.add_argument("--inner-queries", type=int, default=None,
                   help="queries per inner held-out dataset of the nested fallback; when not given, --n-queries")
    c.add_argument("--no-baselines", action="store_true",
                   help="do not add the trivial baselines (single-best, size-rule) the --selectors lack")
    c.add_argument("--workers", type=int, default=1,
                   help="measure the selectors side by side in this many processes (one thread each; the same "
                        "rows); the selection-cost table is timed alone")
    c.add_argument("--parts", default=None, metavar="DIR",
                   help="keep each (seed, selector) measurement in DIR as it is made, and read those kept there "
                        "instead of measuring again: an interrupted comparison started again with the same DIR "
                        "measures only the rest (kept ones are named by a digest of the selector, the settings and "
                        "the data: other inputs are never read from there)")
    c.add_argument("--out", required=True, help="report folder (report.md/.html, pictures, CSV, summary.json)")
    c.set_defaults(func=cmd_selector_compare)

    f = ssub.add_parser("fit", formatter_class=fmt,
                        help="fit one selector on every dataset with an incumbent and save it for shipping "
                             "(selector.json + selector.safetensors)")
    f.add_argument("--features", required=True, help="folder of <dataset>.npz/.json features")
    f.add_argument("--portfolio", required=True, help="portfolio folder (cost_matrix.csv) or a cost_matrix.csv")
    f.add_argument("--selector", required=True,
                   help="registry name (see 'selector list'), or a label of the --summary comparison (fitted with "
                        "the parameters it was compared with)")
    f.add_argument("--param", action="append", default=None, metavar="KEY=VALUE",
                   help="a hyperparameter (repeatable; VALUE read as YAML)")
    f.add_argument("--summary", default=None,
                   help="summary.json of 'selector compare': its leave-one-dataset-out figures of this selector go "
                        "into the card")
    f.add_argument("--tuned", default=None, metavar="RUN_DIR",
                   help="take the hyperparameters of the best trial of 'autodl-meta selector tune --out RUN_DIR' "
                        "(--param overrides them)")
    f.add_argument("--seed", type=int, default=0, help="the selector's seed, where it takes one and --param does not")
    f.add_argument("--out", required=True, help="folder to write the fitted selector to")
    f.set_defaults(func=cmd_selector_fit)

    t = ssub.add_parser("tune", formatter_class=fmt,
                        help="BOHB over a learned selector's hyperparameters (offline_bohb's workers), scored by the "
                             "mean ALC of its leave-one-dataset-out picks; resumes over the same --out")
    t.add_argument("--selector", required=True, help="a selector with a hyperparameter space (see 'selector list')")
    t.add_argument("--features", required=True, help="folder of <dataset>.npz/.json features")
    t.add_argument("--portfolio", required=True, help="portfolio folder (cost_matrix.csv) or a cost_matrix.csv")
    t.add_argument("--out", required=True, help="the BOHB run folder (run.json, trials.jsonl)")
    t.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    t.add_argument("--iterations", type=int, default=2, help="BOHB iterations")
    t.add_argument("--min-budget", type=float, default=1 / 9,
                   help="smallest budget, a fraction of the full fit (epochs, iterations; else of the queries)")
    t.add_argument("--eta", type=int, default=3, help="successive halving's eta")
    t.add_argument("--query-size", type=int, default=64, help="labelled samples per leave-one-dataset-out query")
    t.add_argument("--n-queries", type=int, default=10, help="queries per held-out dataset at the full budget")
    t.add_argument("--seed", type=int, default=0, help="seeds BOHB, the queries and the selector")
    t.set_defaults(func=cmd_selector_tune)

    ls = ssub.add_parser("list", formatter_class=fmt, help="the registered selectors and what they need")
    ls.set_defaults(func=cmd_selector_list)


# --- benchmark selector -----------------------------------------------------------------------
def cmd_benchmark_selector(args: argparse.Namespace) -> int:
    from autodl_meta._cli_util import run_benchmark
    from pipeline.benchmarks.selection_cost import run_selector_benchmark, save_result, selector_report

    selectors = [s.strip() for s in args.selectors.split(",") if s.strip()] if args.selectors else None

    def run(step: Any) -> dict[str, Any]:
        return run_selector_benchmark(selectors, features=args.features, portfolio=args.portfolio,
                                      backbone=args.backbone, input_size=args.input_size, n_images=args.n,
                                      batch=args.batch, repeats=args.repeats, threads=args.threads,
                                      device=args.device, progress=step)

    return run_benchmark(args, "benchmark selector", run, selector_report, save_result, leave=False)


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    """Add ``benchmark selector`` to the benchmark sub-parsers."""
    p = bsub.add_parser("selector", formatter_class=fmt,
                        help="embedding img/s through the extractor beside the bare backbone forward (target >= 90 %%), "
                             "and the latency of one selection (embed 64 images, select) per selector (target <= 1 s)")
    p.add_argument("--selectors", default=None, help="comma-separated; when not given, every registered one but the oracle")
    p.add_argument("--features", default=None,
                   help="features folder to fit the selectors on; when not given, synthetic embeddings (21 datasets x 256)")
    p.add_argument("--portfolio", default=None,
                   help="portfolio folder for the selectors that need the cost matrix; when not given, a synthetic one")
    p.add_argument("--backbone", default=None, help="the embedder's backbone; when not given, EmbeddingSpec's")
    p.add_argument("--input-size", type=int, default=None, help="the embedder's input size; when not given, EmbeddingSpec's")
    p.add_argument("--n", type=int, default=256, help="images per throughput measurement")
    p.add_argument("--batch", type=int, default=64, help="images embedded per selection")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median), after a warm-up")
    p.add_argument("--threads", type=int, default=None, help="PyTorch threads; when not given, PyTorch's own choice")
    p.add_argument("--device", default="cpu", help="where to embed (the latency target is for the CPU)")
    p.add_argument("--results", default="docs/results/selector.jsonl", help="JSON lines: one per benchmark run")
    p.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to")
    p.set_defaults(func=cmd_benchmark_selector)
