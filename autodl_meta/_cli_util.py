"""What several ``autodl-meta`` commands share."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
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


def cell_text(row: Mapping[str, Any]) -> str:
    """One cost-matrix cell in words: ``SOURCE on TARGET seed S: STATUS ALC``."""
    alc = "n/a" if row.get("alc") is None else f"{row['alc']:.3f}"
    return f"{row['source']} on {row['target']} seed {row['seed']}: {row['status']} {alc}"


class LineProgress:
    """Progress for a log file: where a bar is off (standard error is no terminal, e.g. a build run
    in the background with its output redirected), a timestamped line per finished item with the
    count, the item and the time left at the rate so far; nothing where the bar shows.

    ``update(done, total, text)``: ``done`` of ``total`` items are finished, ``text`` the last one.
    Items that took no time (cells copied from an earlier evaluation) count in the rate as they come.
    """

    def __init__(self, bar: Any, what: str, clock: Callable[[], float] = time.monotonic,
                 out: Any = None) -> None:
        self.bar, self.what, self.clock = bar, what, clock
        self.out = sys.stdout if out is None else out
        self.started: float | None = None

    def update(self, done: int, total: int, text: str) -> None:
        if not getattr(self.bar, "disable", True):
            return
        now = self.clock()
        if self.started is None:
            self.started = now
        left = ""
        if 0 < done < total and now > self.started:
            seconds = (now - self.started) / done * (total - done)
            left = f"; about {seconds / 3600:.1f} h left" if seconds >= 3600 else f"; about {seconds / 60:.0f} min left"
        print(f"[{time.strftime('%H:%M:%S')}] {self.what} {done}/{total}: {text}{left}", file=self.out, flush=True)

    def start(self) -> None:
        """Start the rate's clock (before the first item is computed)."""
        self.started = self.clock()


def command_line() -> str:
    """This command line as reports show it (``autodl-meta ...``, without ``--note`` and its text)."""
    argv, out, skip = sys.argv[1:], [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == "--note":
            skip = True
            continue
        if not a.startswith("--note="):
            out.append(a if a and " " not in a else repr(a))
    return " ".join(["autodl-meta"] + out)


def append_section(doc: str | Path, text: str) -> None:
    """Add the Markdown ``text`` to ``doc`` after a blank line (:func:`pipeline.benchmarks.report_doc.append_report`)."""
    from pipeline.benchmarks.report_doc import append_report

    doc = Path(doc)
    if doc.is_file() and doc.stat().st_size and not doc.read_text().endswith("\n\n"):
        text = "\n" + text
    append_report(doc, text)
