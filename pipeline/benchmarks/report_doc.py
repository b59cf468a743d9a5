"""Where benchmark reports go: appending one Markdown section to ``docs/benchmarks.md``.

Every ``autodl-meta benchmark ...`` command with ``--doc FILE`` adds its report here, one
section per run; a file that does not exist yet starts with a heading.
"""

from __future__ import annotations

from pathlib import Path


def append_report(doc: str | Path, report: str) -> None:
    """Append ``report`` (Markdown) and a blank line to ``doc``, creating it (and its folder)
    with a ``# Benchmarks`` heading when it does not exist."""
    doc = Path(doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    head = "" if doc.exists() else "# Benchmarks\n\nEvery figure names its command and machine.\n\n"
    with doc.open("a") as f:
        f.write(head + report + "\n")
