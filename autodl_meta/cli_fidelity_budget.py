"""``autodl-meta benchmark fidelity`` and ``autodl-meta benchmark budget``: thin commands over
:mod:`pipeline.benchmarks.budget_fidelity` and :mod:`pipeline.benchmarks.budget_adherence`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl_meta._cli_util import append_section, command_line


def _floats(text: str, field: str) -> list[float]:
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            num, sep, den = part.partition("/")
            out.append(float(num) / float(den) if sep else float(num))
        except (ValueError, ZeroDivisionError):
            raise AutoDLError(None, f"{part!r}: expected a number or a fraction such as 1/9", field=field) from None
    for b in out:
        if not 0 < b <= 1:
            raise AutoDLError(None, f"{b:g}: expected a fraction in (0, 1]", field=field)
    return out


def _datasets(values: str, collection: str) -> list[tuple[str, Path]]:
    out = []
    for v in (x.strip() for x in values.split(",")):
        if not v:
            continue
        name, sep, path = v.partition("=")
        p = Path(path if sep else v)
        if not p.is_dir():
            p = Path(collection) / (path if sep else v)
        if not p.is_dir():
            raise AutoDLError(p, "not a dataset folder (give a folder, or a name under --collection)",
                              field="--datasets")
        out.append((name if sep else p.name, p))
    return out


def cmd_benchmark_fidelity(args: argparse.Namespace) -> int:
    from autodl.machine import machine_description
    from autodl.records import utc_now_text
    from pipeline.benchmarks.budget_fidelity import (
        fidelity_markdown,
        fidelity_summary,
        run_fidelity_measurement,
        runs_fidelity,
        runs_markdown,
    )
    from portfolio.cost_matrix import learner_version

    parts = []
    if args.runs:
        runs = runs_fidelity(args.runs, min_pairs=args.min_pairs)
        text = runs_markdown(runs, min_pairs=args.min_pairs)
        print(text)
        parts.append(("BOHB runs", f"Source: the trials of the BOHB runs in {', '.join(args.runs)} "
                                   f"({len(runs)} runs); a Spearman needs {args.min_pairs} configurations "
                                   f"evaluated at both budgets.", text))
    rows: list[dict[str, Any]] = []
    budgets = _floats(args.budgets, "--budgets")
    fidelities = [f for f in args.fidelities.split(",") if f]
    data_budgets = _floats(args.data_budgets, "--data-budgets") if args.data_budgets else None
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    if args.datasets:
        from tqdm import tqdm

        datasets = _datasets(args.datasets, args.collection)
        if not args.report_only:
            with tqdm(desc="fidelity", unit="eval", disable=None) as bar:
                def step(row: dict[str, Any], done: int, total: int) -> None:
                    bar.total = total
                    bar.set_postfix_str(f"{row['name']} on {row['dataset']} ({row['fidelity']} "
                                        f"{row['budget']:.3g}): {row['alc']}", refresh=False)
                    bar.update(1)

                rows = run_fidelity_measurement(args.results, datasets, n_configs=args.configs, core=args.core,
                                                budgets=budgets, fidelities=fidelities, data_budgets=data_budgets,
                                                seeds=seeds, protocol=args.protocol, timing=args.timing,
                                                sample_seed=args.sample_seed, workers=args.workers, progress=step)
        else:
            from pipeline.benchmarks.budget_fidelity import read_rows

            rows = list(read_rows(args.results).values())
        names = {d for d, _ in datasets}
        rows = [r for r in rows if r["dataset"] in names and int(r["seed"]) in seeds]
        summary = fidelity_summary(rows, budgets)
        text = fidelity_markdown(summary, rows)
        print(text)
        parts.append(("measurement", f"Source: a dedicated measurement: {args.configs} configurations per dataset "
                                     f"(the first {min(7, args.configs // 2 if args.core is None else args.core)} "
                                     f"of the grid's core `finetune.grid.CORE`, then random samples of each "
                                     f"dataset's space, sample seed {args.sample_seed}), seeds {seeds}, protocol "
                                     f"`{args.protocol}`, simulated clock (timing table "
                                     f"`{args.timing or 'configs/timing/cpu-2core-epyc.json'}`), one PyTorch "
                                     f"thread, {args.workers} worker(s); learner version {learner_version()}; "
                                     f"rows in `{args.results}`. Fidelities: `time` at {args.budgets} of T"
                                     + (f"; `data` at {args.data_budgets or 'the lower budgets'} of the training "
                                        f"examples the protocol decodes, full T" if "data" in fidelities else "")
                                     + ".", text))
    if not parts:
        raise AutoDLError(None, "nothing to measure: give --runs DIR and/or --datasets", field="--datasets")
    if args.doc:
        when = utc_now_text()
        lines = [f"## fidelity: do BOHB's low budgets rank configurations as the full budget does? ({when})", "",
                 f"- Command: `{command_line()}`", f"- Machine: {machine_description()}"]
        if args.note:
            lines.append(f"- {args.note}")
        for title, head, body in parts:
            lines += ["", f"### {title}", "", head, "", body]
        append_section(args.doc, "\n".join(lines))
        print(f"added to {args.doc}")
    return 0


def cmd_benchmark_budget(args: argparse.Namespace) -> int:
    from autodl.machine import machine_description
    from pipeline.benchmarks.budget_adherence import budget_markdown, run_budget, session_rows

    if not Path(args.data).is_dir():
        raise AutoDLError(Path(args.data), "not a dataset folder", field="--data")
    models = [m for m in args.models.split(",") if m]
    conditions = [c for c in args.conditions.split(",") if c]
    if args.report_only:
        rows = session_rows(args.results, args.session)
    else:
        def step(row: dict[str, Any], done: int, total: int) -> None:
            print(f"[{done}/{total}] {row['model']} / {row['condition']}: {row.get('status')}, "
                  f"{row.get('predictions', 0)} predictions, first {row.get('first_prediction_s')}, "
                  f"last - T {row.get('overrun_s')}, killed {row.get('killed')}", flush=True)

        _, rows = run_budget(args.results, args.data, models=models, conditions=conditions, repeats=args.repeats,
                             protocol=args.protocol, busy=args.busy, slow_io=args.slow_io, seed=args.seed,
                             portfolio=args.portfolio, work_dir=args.work, command=command_line(), progress=step)
    text = budget_markdown(rows, command=command_line(), machine=machine_description(), dataset=args.data,
                           note=args.note or "", results=args.results)
    print(text)
    if args.doc and rows:
        append_section(args.doc, text)
        print(f"added to {args.doc}")
    return 0


def register_benchmark(bsub: Any, fmt: type[argparse.HelpFormatter]) -> None:
    from pipeline.benchmarks.budget_adherence import CONDITIONS, MODELS, SLOW_IO_DEFAULT
    from pipeline.benchmarks.budget_fidelity import DATASETS, DEFAULT_CONFIGS, MIN_PAIRS

    p = bsub.add_parser("fidelity", formatter_class=fmt,
                        help="do BOHB's low budgets rank configurations as the full budget does? Spearman per "
                             "run from BOHB run folders (--runs) and/or a dedicated measurement (--datasets: N "
                             "configurations at each budget on the simulated clock; resumable)")
    p.add_argument("--runs", nargs="*", default=None, help="BOHB run folders, or folders of them (trials.jsonl)")
    p.add_argument("--min-pairs", type=int, default=MIN_PAIRS,
                   help="configurations evaluated at both budgets that a run's Spearman needs")
    p.add_argument("--datasets", default=None,
                   help=f"comma-separated folders, or names under --collection (the full measurement: "
                        f"{','.join(DATASETS)})")
    p.add_argument("--collection", default="data/collections/default", help="where dataset names are looked up")
    p.add_argument("--configs", type=int, default=DEFAULT_CONFIGS, help="configurations per dataset")
    p.add_argument("--core", type=int, default=None,
                   help="how many of them come from the grid's core (default: half, at most 7)")
    p.add_argument("--sample-seed", type=int, default=0, help="seed of the random configurations")
    p.add_argument("--budgets", default="1/9,1/3,1", help="fractions of T (1 must be among them: the reference)")
    p.add_argument("--fidelities", default="time,data",
                   help="time (fraction of T, BOHB's) and/or data (fraction of the training examples, full T)")
    p.add_argument("--data-budgets", default=None, help="fractions of the data fidelity (default: the budgets "
                                                        "below 1)")
    p.add_argument("--seeds", default="0", help="comma-separated learner seeds")
    p.add_argument("--protocol", default="mini", help="protocol name or YAML file")
    p.add_argument("--timing", default=None, help="the simulated clock's table (default: the committed one)")
    p.add_argument("--workers", type=int, default=1, help="evaluations side by side (processes, one PyTorch "
                                                          "thread each)")
    p.add_argument("--results", default="docs/results/fidelity.jsonl", help="JSON lines, one per evaluation "
                                                                           "(resumable)")
    p.add_argument("--report-only", action="store_true", help="evaluate nothing: report what --results holds")
    p.add_argument("--note", default=None, help="a line added to the report (e.g. the machine's state)")
    p.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to ('' for none)")
    p.set_defaults(func=cmd_benchmark_fidelity)

    b = bsub.add_parser("budget", formatter_class=fmt,
                        help="does a model keep the time budget under load? Runs in the organizers' way (child "
                             "process ended at T) idle, with the CPU saturated and with slowed reads: overrun "
                             "past T and time to the first prediction")
    b.add_argument("--data", default="demo/miniciao", help="an AutoDL dataset folder")
    b.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    b.add_argument("--conditions", default=",".join(CONDITIONS), help=f"comma-separated: {', '.join(CONDITIONS)}")
    b.add_argument("--repeats", type=int, default=3, help="runs per model and condition")
    b.add_argument("--protocol", default="mini", help="protocol name or YAML file")
    b.add_argument("--busy", type=int, default=None, help="busy-loop processes under cpu-load (default: one per "
                                                          "core)")
    b.add_argument("--slow-io", type=float, default=SLOW_IO_DEFAULT, help="seconds slept per record read under "
                                                                          "slow-io")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--portfolio", default="portfolio/default", help="the submission's artifacts folder")
    b.add_argument("--work", default="runs/budget", help="folder of the runs' predictions and logs")
    b.add_argument("--results", default="docs/results/budget.jsonl", help="JSON lines, one per run")
    b.add_argument("--report-only", action="store_true", help="run nothing: report a session of --results")
    b.add_argument("--session", default=None, help="with --report-only: the session (default: the latest)")
    b.add_argument("--note", default=None, help="a line added to the report (e.g. the machine's state)")
    b.add_argument("--doc", default="docs/benchmarks.md", help="Markdown file the result is added to ('' for none)")
    b.set_defaults(func=cmd_benchmark_budget)
