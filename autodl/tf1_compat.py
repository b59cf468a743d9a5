"""TensorFlow 1 names and behaviour under TensorFlow 2, for the AutoDL organizers' 2019 code.

The challenge's starting kit (2019, TensorFlow 1.13) was written for TensorFlow 1:
``tf.Session``, ``dataset.make_one_shot_iterator()``, ``tf.ConfigProto``, ``from tensorflow
import app, flags, gfile``... TensorFlow 2 keeps most of that API under ``tf.compat.v1``.
This module is the one place that gives it back, at two strengths:

* :func:`add_tf1_names`: a few TF 1 names added to ``tensorflow`` from ``tf.compat.v1``
  where it lacks them, nothing else changed (eager execution stays on). What the
  organizers' ingestion program needs (:data:`ORGANIZERS_INGESTION_NAMES`); with
  :func:`add_pip_get_installed_distributions`, what ``submission check --organizers-kit``
  applies in that program's process (:func:`write_sitecustomize`), where the submission it
  runs is TensorFlow 2 code.
* :func:`enable_tf1_mode`: the TensorFlow 1 API and behaviour for the whole process, as
  TensorFlow's own migration guide runs TF 1 code (``import tensorflow.compat.v1 as tf;
  tf.disable_v2_behavior()``) but without editing the code: ``import tensorflow`` gives
  ``tf.compat.v1``, graph mode, TF 1 shapes (``Dimension``), and iterators of a dataset
  made in another graph. For a TF1-era ``model.py`` run unchanged (model name
  ``file-tf1:PATH``, see :mod:`finetune.models`). Irreversible: only in a process of its own.

What neither can supply (``tf.estimator``, removed in TensorFlow 2.16; ``tf.contrib``,
removed in 2.0; the Keras 2 layers of ``tf.layers`` under Keras 3) is found by reading the
source before anything runs: :func:`find_unsupported`.

This file imports only the standard library at module level (TensorFlow when a function
runs, never this project's packages), so that it can be copied as it is beside the
``sitecustomize.py`` of another program (:func:`write_sitecustomize`).
"""

from __future__ import annotations

import ast
import importlib
import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ORGANIZERS_INGESTION_NAMES = ("app", "flags", "gfile", "logging", "FixedLenSequenceFeature", "Session",
                              "VarLenFeature", "parse_single_sequence_example")
"""The TF 1 names the organizers' ingestion program (v20191204) imports or calls: ``from
tensorflow import app, flags, gfile, logging``; its ``dataset.py`` reads the TFRecords with
the others."""

REMOVED_APIS = {
    "estimator": "removed in TensorFlow 2.16 (tf.compat.v1 has none either)",
    "contrib": "removed in TensorFlow 2.0 (tf.compat.v1 has none either)",
}
"""Why the first-level TF 1 APIs that no compatibility mode can give back are gone."""

COPY_NAME = "autodl_tf1_compat"
"""The module name of the copy of this file that :func:`write_sitecustomize` writes."""

_STATE: dict[str, Any] = {}


# --- the names the organizers' ingestion program imports ---------------------------------------------
def add_tf1_names(names: tuple[str, ...] = ORGANIZERS_INGESTION_NAMES) -> list[str]:
    """Add ``names`` to the ``tensorflow`` module from ``tf.compat.v1``, only where it lacks them;
    returns those added. Eager execution and everything else stay as they are."""
    import tensorflow as tf

    added = []
    for name in names:
        if not hasattr(tf, name):
            setattr(tf, name, getattr(tf.compat.v1, name))
            added.append(name)
    return added


def add_pip_get_installed_distributions() -> None:
    """Give ``pip`` the ``get_installed_distributions`` of pip < 10 (returning an empty list),
    which the organizers' ``data_io.py`` imports to list the installed packages in its log.
    Without pip, an empty ``pip`` module holding only that function."""
    try:
        import pip
    except ImportError:
        pip = sys.modules["pip"] = types.ModuleType("pip")
    if not hasattr(pip, "get_installed_distributions"):
        pip.get_installed_distributions = lambda *args, **kwargs: []


def apply_for_organizers_ingestion() -> None:
    """What the organizers' ingestion program needs: :func:`add_tf1_names` and
    :func:`add_pip_get_installed_distributions`."""
    add_tf1_names()
    add_pip_get_installed_distributions()


def write_sitecustomize(folder: str | Path, call: str = "apply_for_organizers_ingestion") -> Path:
    """Write ``folder/sitecustomize.py``, which runs ``call`` (a function of this module) when an
    interpreter with ``folder`` first on its ``PYTHONPATH`` starts, and beside it this file as
    it is (``autodl_tf1_compat.py``): the program run there needs nothing of this project.
    Returns the path of ``sitecustomize.py``."""
    if not callable(globals().get(call)):
        raise ValueError(f"{call!r} is not a function of {__name__}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(__file__), folder / f"{COPY_NAME}.py")
    site = folder / "sitecustomize.py"
    site.write_text(f'"""TensorFlow 1 compatibility for this process ({COPY_NAME}.py beside it, a copy of '
                    f'autodl/tf1_compat.py of autodl-meta)."""\n\nfrom {COPY_NAME} import {call}\n\n{call}()\n')
    return site


# --- the TensorFlow 1 API and behaviour for a whole process ------------------------------------------
def tf1_mode_enabled() -> bool:
    """Whether :func:`enable_tf1_mode` has run in this process."""
    return "tf1" in _STATE


def enable_tf1_mode() -> Any:
    """Run TensorFlow 1 code unchanged in this process; returns ``tf.compat.v1``.

    * ``import tensorflow`` gives ``tf.compat.v1`` (``sys.modules``): every TF 1 name,
      under the name TF 1 had (``tf.Session``, ``tf.ConfigProto``, ``tf.image.resize_images``,
      ``tf.train.AdamOptimizer``...); ``tensorflow.python...`` modules are left as they are.
    * ``tf.compat.v1.disable_v2_behavior()``: graph mode, TF 1 shapes (``Dimension``, so
      that ``shape[0] > 0`` holds for an unknown dimension as in TF 1), TF 1 variables and
      control flow, and ``tf.data`` datasets of TF 1 (``make_one_shot_iterator()``,
      ``output_shapes``).
    * An iterator of a dataset made in another graph (``with tf.Graph().as_default():
      dataset.make_one_shot_iterator()``, allowed by TensorFlow 1.13, refused since 1.14) is
      made in the dataset's graph, with its ``get_next()`` tensors: their shapes and types
      can be read, as the kit's ``to_numpy`` model does.

    Must run before this process builds any TensorFlow graph or tensor (the datasets a model
    is handed included); TensorFlow should already be imported the way the caller imports it
    (e.g. after triton, see :func:`autodl.dataset.configure_tensorflow`). Idempotent;
    cannot be undone.
    """
    if "tf1" in _STATE:
        return _STATE["tf1"]
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_v2_behavior()
    _iterators_follow_their_dataset_graph()
    _STATE["tf2"] = sys.modules["tensorflow"]
    sys.modules["tensorflow"] = v1
    _STATE["tf1"] = v1
    return v1


def _iterators_follow_their_dataset_graph() -> None:
    from tensorflow.python.data.ops import dataset_ops, iterator_ops
    from tensorflow.python.framework import ops

    def in_graph_of(graph: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if graph is not None and graph is not ops.get_default_graph():
            with graph.as_default():
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)

    def follow_dataset(method: Any) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            return in_graph_of(getattr(self, "_graph", None), method, self, *args, **kwargs)
        wrapped.__doc__, wrapped.__name__ = method.__doc__, method.__name__
        return wrapped

    def follow_iterator(method: Any) -> Any:
        def wrapped(self: Any, *args: Any, **kwargs: Any) -> Any:
            resource = getattr(self, "_iterator_resource", None)
            return in_graph_of(getattr(resource, "graph", None), method, self, *args, **kwargs)
        wrapped.__doc__, wrapped.__name__ = method.__doc__, method.__name__
        return wrapped

    for name in ("make_one_shot_iterator", "make_initializable_iterator"):
        setattr(dataset_ops.DatasetV1, name, follow_dataset(getattr(dataset_ops.DatasetV1, name)))
    for name in ("get_next", "make_initializer"):
        if hasattr(iterator_ops.Iterator, name):
            setattr(iterator_ops.Iterator, name, follow_iterator(getattr(iterator_ops.Iterator, name)))


# --- what no compatibility mode can supply ---------------------------------------------------------
@dataclass(frozen=True)
class UnsupportedApi:
    """A TensorFlow API a source uses that TensorFlow 1 compatibility cannot supply here.

    ``api`` is the name as TF 1 code spells it (``tf.estimator``, ``tf.layers.dense``,
    ``tensorflow.python.x``), ``line`` where the source first uses it, ``reason`` why it is
    not available."""

    api: str
    line: int
    reason: str

    def describe(self) -> str:
        """E.g. ``tf.estimator (line 61): removed in TensorFlow 2.16 (...)``."""
        return f"{self.api} (line {self.line}): {self.reason}"


def tensorflow_references(source: str) -> list[tuple[str, int]]:
    """The TensorFlow names ``source`` uses, as ``(dotted name, line)`` in the order they appear:
    ``tf.X.Y`` for the public API whatever the alias TensorFlow is imported under (``import
    tensorflow as tf``, ``import tensorflow.compat.v1 as tf``, ``from tensorflow import X``,
    ``from tensorflow.X import Y``), ``tensorflow.python...`` for its private modules.

    Raises
    ------
    SyntaxError
        ``source`` is not valid Python.
    """
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    other_imports: set[str] = set()  # names also bound by imports of other modules: ambiguous
    refs: list[tuple[str, int]] = []

    def public(module: str) -> str | None:
        """``tensorflow[.compat.v1][.rest]`` as ``tf[.rest]`` (None: not TensorFlow)."""
        parts = module.split(".")
        if parts[0] != "tensorflow":
            return None
        rest = parts[1:]
        if rest[:2] == ["compat", "v1"]:
            rest = rest[2:]
        return ".".join(["tf", *rest]) if rest[:1] != ["python"] else module

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                name = public(a.name)
                if name is None:
                    other_imports.add(a.asname or a.name.split(".")[0])
                    continue
                if name != "tf":
                    refs.append((name, node.lineno))
                if a.asname:
                    aliases[a.asname] = name
                elif a.name.split(".")[0] == "tensorflow":
                    aliases["tensorflow"] = "tf"
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            base = public(node.module)
            if base is None:
                other_imports.update(a.asname or a.name for a in node.names)
                continue
            if base != "tf":
                refs.append((base, node.lineno))
            for a in node.names:
                if a.name != "*":
                    refs.append((f"{base}.{a.name}", node.lineno))
                    aliases[a.asname or a.name] = f"{base}.{a.name}"
    for name in other_imports:  # e.g. `from tensorflow import logging` and `import logging`
        aliases.pop(name, None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain = []
            value: ast.AST = node
            while isinstance(value, ast.Attribute):
                chain.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                refs.append((".".join([aliases[value.id], *reversed(chain)]), node.lineno))
    refs.sort(key=lambda r: r[1])
    return refs


def _resolve(name: str, v1: Any) -> tuple[str, str] | None:
    """``(the part of name that is missing, why)`` when ``name`` (``tf.X...`` or
    ``tensorflow.python...``) cannot be found here; None if it can. Checked as far as modules
    go (attributes of classes and functions are not)."""
    version = f"TensorFlow {v1.__version__}"
    parts = name.split(".")
    if parts[0] == "tensorflow":
        for n in range(len(parts), 1, -1):
            module = ".".join(parts[:n])
            try:
                obj: Any = importlib.import_module(module)
            except ImportError:
                continue
            except Exception as exc:  # noqa: BLE001 - any failure to import is the reason
                return module, f"does not import in {version} ({type(exc).__name__}: {exc})"
            for i in range(n, len(parts)):
                if not isinstance(obj, types.ModuleType):
                    return None
                if not hasattr(obj, parts[i]):
                    return ".".join(parts[:i + 1]), f"does not exist in {version}"
                obj = getattr(obj, parts[i])
            return None
        return name, f"no such module in {version}"
    obj = v1
    for i in range(1, len(parts)):
        if not isinstance(obj, types.ModuleType):
            return None
        where = ".".join(parts[:i + 1])
        try:
            obj = getattr(obj, parts[i])
        except AttributeError as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if "has no attribute" in message or not message:
                return where, f"in neither {version} nor its TF 1 API (tf.compat.v1)"
            return where, f"not available in {version}: {message}"
        except Exception as exc:  # noqa: BLE001 - a lazy module that fails to load
            return where, f"not available in {version} ({type(exc).__name__}: {exc})"
    return None


def find_unsupported(source: str, v1: Any = None) -> list[UnsupportedApi]:
    """The TensorFlow APIs ``source`` uses that TensorFlow 1 compatibility cannot supply, each
    once, in the order they first appear.

    Without ``v1``, only the APIs of :data:`REMOVED_APIS` (no TensorFlow needed). With
    ``v1`` (the installed ``tf.compat.v1``), also every ``tf.X.Y`` it lacks (checked as far
    as modules go: ``tf.layers.dense`` under Keras 3, say) and every private
    ``tensorflow.python`` module that does not import.

    Raises
    ------
    SyntaxError
        ``source`` is not valid Python.
    """
    found: dict[str, UnsupportedApi] = {}
    for name, line in tensorflow_references(source):
        if any(name == api or name.startswith(api + ".") for api in found):
            continue
        first = name.split(".")[1] if name.startswith("tf.") and "." in name else None
        if first in REMOVED_APIS:
            found[f"tf.{first}"] = UnsupportedApi(f"tf.{first}", line, REMOVED_APIS[first])
            continue
        if v1 is None:
            continue
        missing = _resolve(name, v1)
        if missing is not None:
            found.setdefault(missing[0], UnsupportedApi(missing[0], line, missing[1]))
    return sorted(found.values(), key=lambda u: u.line)
