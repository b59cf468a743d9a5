"""No loader in this project can run code hidden in a file: the source tree is searched (by
its syntax tree, not by text) for the calls that unpickle or otherwise execute what they read.

Forbidden anywhere in the project's Python files (tests included):

- ``pickle.load`` / ``pickle.loads`` / ``pickle.Unpickler`` (and ``cPickle``, ``dill``,
  ``cloudpickle``, ``joblib.load``, ``pandas.read_pickle``, ``shelve.open``, ``marshal.load(s)``);
- ``torch.load`` without ``weights_only=True``;
- ``np.load`` / ``numpy.load`` without ``allow_pickle=False``;
- ``yaml.load`` without a safe loader (``SafeLoader``, ``CSafeLoader`` or a class of the same
  module derived from one), ``yaml.unsafe_load``, ``yaml.full_load``, ``yaml.load_all`` likewise.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("autodl", "autodl_meta", "finetune", "metafeatures", "offline_bohb", "pipeline", "portfolio",
            "selector", "submission", "tests")

UNPICKLERS = {("pickle", "load"), ("pickle", "loads"), ("pickle", "Unpickler"), ("cPickle", "load"),
              ("cPickle", "loads"), ("dill", "load"), ("dill", "loads"), ("cloudpickle", "load"),
              ("cloudpickle", "loads"), ("joblib", "load"), ("pd", "read_pickle"), ("pandas", "read_pickle"),
              ("shelve", "open"), ("marshal", "load"), ("marshal", "loads"), ("yaml", "unsafe_load"),
              ("yaml", "full_load"), ("yaml", "unsafe_load_all"), ("yaml", "full_load_all")}
SAFE_YAML_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader", "CBaseLoader"}


def python_files() -> list[Path]:
    files = [ROOT / "setup.py"] if (ROOT / "setup.py").is_file() else []
    for pkg in PACKAGES:
        files += [p for p in sorted((ROOT / pkg).rglob("*.py")) if "__pycache__" not in p.parts]
    return files


def _dotted(node: ast.AST) -> tuple[str, ...]:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return tuple(reversed(parts))


def _keyword(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_const(node: ast.AST | None, value: object) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def _safe_loader_classes(tree: ast.Module) -> set[str]:
    """Classes of the module derived (directly) from a safe yaml loader."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(_dotted(b)[-1:] and _dotted(b)[-1] in SAFE_YAML_LOADERS
                                                  for b in node.bases):
            out.add(node.name)
    return out


def forbidden_calls(path: Path) -> list[str]:
    """``file:line: what`` for every forbidden call in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    rel = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    safe_loaders = SAFE_YAML_LOADERS | _safe_loader_classes(tree)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in {"pickle", "dill", "cloudpickle", "marshal"}:
            bad = [a.name for a in node.names if a.name in {"load", "loads", "Unpickler"}]
            if bad:
                found.append(f"{rel}:{node.lineno}: from {node.module} import {', '.join(bad)}")
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if len(name) < 2:
            continue
        module, func = name[-2], name[-1]
        where = f"{rel}:{node.lineno}: {'.'.join(name)}"
        if (module, func) in UNPICKLERS:
            found.append(where)
        elif module == "torch" and func == "load" and not _is_const(_keyword(node, "weights_only"), True):
            found.append(where + " without weights_only=True")
        elif module in ("np", "numpy") and func == "load" and not _is_const(_keyword(node, "allow_pickle"), False):
            found.append(where + " without allow_pickle=False")
        elif module == "yaml" and func in ("load", "load_all"):
            loader = _keyword(node, "Loader")
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            if loader is None or not _dotted(loader) or _dotted(loader)[-1] not in safe_loaders:
                found.append(where + " without a safe Loader (use yaml.safe_load)")
    return found


def test_no_loader_can_unpickle_or_run_what_it_reads():
    files = python_files()
    assert len(files) > 100  # the search sees the project
    found = [hit for f in files for hit in forbidden_calls(f)]
    assert found == [], "forbidden calls:\n" + "\n".join(found)


@pytest.mark.parametrize("code, bad", [
    ("import pickle\npickle.load(open('x', 'rb'))", True),
    ("import pickle\npickle.loads(b'')", True),
    ("from pickle import loads", True),
    ("import joblib\njoblib.load('x')", True),
    ("import torch\ntorch.load('x')", True),
    ("import torch\ntorch.load('x', weights_only=False)", True),
    ("import torch\ntorch.load('x', map_location='cpu', weights_only=True)", False),
    ("import numpy as np\nnp.load('x')", True),
    ("import numpy as np\nnp.load('x', allow_pickle=True)", True),
    ("import numpy as np\nnp.load('x', allow_pickle=False)", False),
    ("import yaml\nyaml.load(t)", True),
    ("import yaml\nyaml.load(t, Loader=yaml.Loader)", True),
    ("import yaml\nyaml.unsafe_load(t)", True),
    ("import yaml\nyaml.full_load(t)", True),
    ("import yaml\nyaml.load(t, Loader=yaml.SafeLoader)", False),
    ("import yaml\nclass L(yaml.SafeLoader): pass\nyaml.load(t, Loader=L)", False),
    ("import yaml\nyaml.safe_load(t)", False),
    ("import pickle\npickle.dumps(1)", False),  # writing is not loading
])
def test_the_search_finds_what_it_should(tmp_path, code, bad):
    f = tmp_path / "probe.py"
    f.write_text(code + "\n")
    assert bool(forbidden_calls(f)) is bad
