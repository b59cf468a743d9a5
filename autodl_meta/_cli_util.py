"""What several ``autodl-meta`` commands share."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any


def run_benchmark(args: argparse.Namespace, desc: str, run: Callable[[Callable[[str], None]], Any],
                  report: Callable[[Any, str], str], save_result: Callable[[Any, Any], None], *,
                  leave: bool = True) -> int:
    """Run a benchmark under a progress bar and hand out its report.

    ``run(step)`` returns the result; it calls ``step(what)`` after each step (the bar,
    ``desc``, shows ``what``). The report (``report(result, command)``) is printed and,
    with ``--doc``, appended to that file; with ``--results`` the result and the command
    are saved (``save_result``). Returns the exit status, 0.
    """
    from tqdm import tqdm

    from pipeline.benchmarks.report_doc import append_report

    with tqdm(desc=desc, unit="step", disable=None, leave=leave) as bar:
        def step(what: str) -> None:
            bar.set_postfix_str(what, refresh=False)
            bar.update(1)

        result = run(step)
    command = " ".join(["autodl-meta"] + sys.argv[1:])
    text = report(result, command)
    if args.results:
        save_result(args.results, {**result, "command": command})
    if args.doc:
        append_report(args.doc, text)
    print(text)
    return 0
