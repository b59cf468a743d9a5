"""The ingestion child with a slowed record reader: ``python -m pipeline.benchmarks.slow_io --slow-io SECONDS ARGS``.

Used only by ``autodl-meta benchmark budget`` (:mod:`pipeline.benchmarks.budget_adherence`), for its
``slow-io`` condition: the dataset as if read from a slow disk or a network file system. It is
``python -m finetune.models ARGS`` (the ingestion side of the organizers' local test, see
:func:`finetune.config_runs.run_local_model`) with one change: every TFRecord record this
project's reader yields (:func:`autodl.tfrecord.read_records`, as :mod:`autodl.dataset` calls
it: the labels, the decoded training and test sets, the selector's sample) first sleeps
``SECONDS``. Every model of this project reads its data that way (through the datasets'
``autodl_source``); a model that iterates the plain ``tf.data`` pipeline instead (the
organizers' own models) is not slowed.

After each file the child logs one line to its log (``ingestion.log``):
``slow-io: <file>: <n> records, <s> s slept`` (the benchmark adds these up).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PREFIX = "slow-io:"


def install(seconds: float, log: Any = None) -> None:
    """Make :mod:`autodl.dataset` read every record ``seconds`` slower (in this process)."""
    import autodl.dataset as dataset_module
    from autodl.tfrecord import read_records

    if seconds < 0:
        raise ValueError(f"--slow-io {seconds}: expected seconds >= 0")
    out = log or sys.stderr

    def slow_records(path: str | Path, verify: bool = True) -> Iterator[bytes]:
        n = 0
        try:
            for raw in read_records(path, verify=verify):
                time.sleep(seconds)
                n += 1
                yield raw
        finally:
            print(f"{PREFIX} {path}: {n} records, {n * seconds:.3f} s slept", file=out, flush=True)

    dataset_module.read_records = slow_records


def slept_seconds(log_text: str) -> float:
    """The seconds a child's log says it slept (the sum of its ``slow-io:`` lines)."""
    total = 0.0
    for line in log_text.splitlines():
        if line.startswith(PREFIX) and line.endswith(" s slept"):
            try:
                total += float(line.rsplit(",", 1)[1].split()[0])
            except (IndexError, ValueError):
                continue
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipeline.benchmarks.slow_io", description=__doc__.splitlines()[0],
                                add_help=False)
    p.add_argument("--slow-io", type=float, required=True, help="seconds slept per record read")
    args, rest = p.parse_known_args(argv)
    install(args.slow_io)
    from finetune.models import main as ingestion_main

    return ingestion_main(rest)


if __name__ == "__main__":
    sys.exit(main())
