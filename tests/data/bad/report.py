"""The table of the bad-input corpus (``make_corpus.CASES``) for ``docs/reliability.md``.

    .venv/bin/python tests/data/bad/report.py           # print the table
    .venv/bin/python tests/data/bad/report.py --write   # put it into docs/reliability.md

The table sits between two markers in the section "Bad input: the corpus" of
``docs/reliability.md``; ``--write`` replaces what is between them (the rest of the document is
left as it is). ``tests/test_reliability/test_bad_input.py`` checks that the document holds
exactly this table, and runs every case to check that each outcome is what the table says.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOC = HERE.parents[2] / "docs" / "reliability.md"
BEGIN = "<!-- bad-input table: begin (written by tests/data/bad/report.py --write) -->"
END = "<!-- bad-input table: end -->"


def _corpus():
    name = "bad_input_make_corpus"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, HERE / "make_corpus.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[name]


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace("*", "\\*")


def table() -> str:
    """The Markdown table: case, what is wrong, command, outcome (the error line, or the handling)."""
    cases = _corpus().CASES
    lines = [(f"{len(cases)} cases; paths are relative to the case's folder; `…` stands for any text "
              "(a decoder's own words, a checksum). Marked *slow* cases run a model (`pytest -m slow`)."), "",
             "| case | input | command | outcome |", "|---|---|---|---|"]
    for c in cases:
        name = f"`{c.name}`" + (" (slow)" if c.slow else "")
        lines.append(f"| {name} | {_cell(c.what)} | `{c.command_line}` | {_cell(c.outcome)} |")
    return "\n".join(lines) + "\n"


def section_table(doc_text: str) -> str | None:
    """What ``doc_text`` holds between the markers, or None without them."""
    if BEGIN not in doc_text or END not in doc_text:
        return None
    return doc_text.split(BEGIN, 1)[1].split(END, 1)[0].strip("\n") + "\n"


def write(doc: Path = DOC) -> Path:
    text = doc.read_text()
    if section_table(text) is None:
        raise SystemExit(f"{doc}: no markers {BEGIN!r} ... {END!r}; add them under '## Bad input: the corpus'")
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1]
    doc.write_text(f"{head}{BEGIN}\n{table()}{END}{tail}")
    return doc


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        print(f"wrote the table into {write()}")
    else:
        sys.stdout.write(table())
