"""Bad input: every case of the corpus (``tests/data/bad/make_corpus.py``) through the command a
user would type, as a subprocess of the real command line.

Each case asserts exactly its outcome: the one-line error (exit code 2, one line on stderr, no
traceback) or the documented graceful handling (its exit code and output lines); and that nothing written before a
failure is lost or half-written: after an error the case's folder (its inputs and any output
folder that held files before, ``keep.txt``) is exactly as it was, with no new file or
temporary folder; after a graceful handling the output is complete. ``docs/reliability.md``
must hold the corpus's table (``tests/data/bad/report.py --write`` writes it).

The cases that run a model are marked ``slow`` (one of them also ``smoke``); the others take a
second or a few each (the command's imports).
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
BAD = REPO / "tests" / "data" / "bad"


def _load(name: str) -> ModuleType:
    module_name = f"bad_input_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, BAD / f"{name}.py")
        module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
        sys.modules[module_name] = module
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    return sys.modules[module_name]


corpus = _load("make_corpus")
report = _load("report")


def _param(c: Any) -> Any:
    marks = [m for flag, m in ((c.slow, pytest.mark.slow), (c.smoke, pytest.mark.smoke)) if flag]
    return pytest.param(c, id=c.name, marks=marks)


def _tree(folder: Path) -> dict[str, str]:
    """Every file, folder and link under ``folder``: relative path -> content digest (or kind)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_symlink():
            out[rel] = f"link to {p.readlink()}"
        elif p.is_dir():
            out[rel] = "folder"
        else:
            out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bad-input")


def test_the_corpus_has_the_cases_the_issue_asks_for():
    names = [c.name for c in corpus.CASES]
    assert len(names) >= 30 and len(set(names)) == len(names)
    commands = {" ".join(c.command[:2]) for c in corpus.CASES}
    for command in ("data format", "data show", "run --dataset", "score --predictions", "submission check",
                    "submission build", "bohb run", "selector fit", "metafeatures extract"):
        assert command in commands, command
    assert any(c.smoke for c in corpus.CASES)


def test_docs_reliability_holds_the_table():
    doc = report.DOC.read_text()
    assert "## Bad input: the corpus" in doc
    assert report.section_table(doc) == report.table(), \
        "docs/reliability.md is out of date: run .venv/bin/python tests/data/bad/report.py --write"


@pytest.mark.parametrize("case", [_param(c) for c in corpus.CASES])
def test_bad_input(case: Any, corpus_dir: Path):
    c = case
    folder = corpus.make_case(c, corpus_dir)
    before = _tree(folder)
    proc = subprocess.run([sys.executable, "-m", "autodl_meta.cli", *c.argv(folder)], capture_output=True,
                          text=True, cwd=REPO, timeout=900 if c.slow else 300, check=False)
    said = f"exit code {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr + proc.stdout, said
    if c.error is not None:
        assert proc.returncode == 2, said
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("autodl-meta: error: "), said
        message = lines[0].removeprefix("autodl-meta: error: ")
        assert corpus.line_regex(c.error, folder).fullmatch(message), f"expected {c.error!r}\n{said}"
        # nothing written before the failure is lost, nothing half-written is left: every input
        # and every file of an output folder as it was, no new file or temporary folder
        assert _tree(folder) == before, said
        return
    assert proc.returncode == c.exit_code, said
    for stream, patterns in ((proc.stdout, c.stdout), (proc.stderr, c.stderr)):
        for pattern in patterns:
            regex = corpus.line_regex(pattern, folder)
            assert any(regex.fullmatch(ln) for ln in stream.splitlines()), f"no line {pattern!r}\n{said}"
    if c.exit_code != 0:  # a failure reported as documented: nothing written, nothing lost
        assert _tree(folder) == before, said
        return
    assert {k: v for k, v in _tree(folder).items() if k in before} == before, said  # inputs untouched
    new = [k for k in _tree(folder) if k not in before]
    assert not [k for k in new if k.endswith(".tmp") or any(part.startswith(".") for part in k.split("/"))], new
    if c.out is not None:
        out = folder / c.out
        if c.command[:2] == ("data", "format"):  # a complete dataset, that reads back
            from autodl.dataset import AutoDLDataset

            ds = AutoDLDataset(out)
            counts = ds.check()
            x = ds.load_numpy("train").x
            assert counts["train"] == len(x) and all(xi.shape[-1] == ds.metadata().get_num_channels() for xi in x)
        else:  # a run: its scores are written
            assert (out / "scores" / "scores.txt").is_file() and (out / "scores" / "learning-curve.png").is_file()
