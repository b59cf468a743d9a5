"""Model names: resolving a ``--model`` name into a model factory, through a registry of model kinds.

A name is looked up among the registered *model kinds* (:class:`ModelKind`): a kind is an exact
name (``baseline:linear``) or a prefix ending in ``:`` whose rest is an argument (``config:``);
a bare path ending in ``.py`` is ``file:PATH``. This module registers the kinds of this layer:

* ``baseline:linear``: the seed paper's linear baseline (:class:`finetune.baselines.LinearModel`).
* ``baseline:default``: one fixed AutoCLINT-like configuration
  (``configs/finetune/default.yaml``), the single best a user would pick without
  meta-learning, fine-tuned by :class:`finetune.learner.FineTuneLearner`.
* ``baseline:scratch``: a ResNet-18 trained from random initialisation (the seed paper's
  "from scratch" baseline), otherwise the default configuration.
* ``config:PATH``: one configuration from a YAML/JSON file (validated against
  ``configs/space/finetune.yaml``).
* ``file:PATH`` (or a path ending in ``.py``): a challenge submission's ``model.py``; its
  ``Model`` class is constructed as ``Model(metadata)``, exactly as the organizers'
  ingestion does, and runs on the wall clock.
* ``file-tf1:PATH``: a TensorFlow-1-era ``model.py`` (the organizers' 2019 baselines, most
  2019 submissions: ``tf.Session``, ``dataset.make_one_shot_iterator()``...) run unchanged,
  as ``file:`` runs one, in TensorFlow 1 compatibility mode: in the process that runs it,
  before the file is imported, ``import tensorflow`` gives ``tf.compat.v1`` and TensorFlow
  behaves as TensorFlow 1 (graph mode; :func:`autodl.tf1_compat.enable_tf1_mode`). That
  changes TensorFlow for the whole process, so such a model runs only in a process of its
  own (:func:`finetune.config_runs.run_local_model`, ``autodl-meta run``, wall clock); other
  processes check it with :func:`check_model`, which reads its source only. A model that
  uses what no compatibility mode can supply (``tf.estimator``, removed in TensorFlow 2.16;
  ``tf.contrib``; ``tf.layers`` under Keras 3) is refused before anything runs, in one line
  naming the file, the API and why (:func:`tf1_model_problem`).

The layers above register their own kinds with :func:`register_model_kind` (this layer never
imports them, nor reads their files):

* ``baseline:single-best`` / ``baseline:oracle`` (with a portfolio folder, ``portfolio=``):
  :mod:`portfolio.baselines`;
* ``submission`` (this project's shipped submission) and ``submission:PATH`` (a folder holding
  ``model.py``, or a submission ``.zip``): :mod:`submission.model_kinds`.

A module registers its kinds when it is imported. So that every process knows them (a child
``python -m finetune.models`` too) without importing the upper layers here, the modules are
declared as entry points of the group :data:`ENTRY_POINT_GROUP` (``pyproject.toml``,
``[project.entry-points."autodl_meta.model_kinds"]``) and imported, in the order of their entry
point names, the first time a name is not among the kinds registered so far (and by
:func:`model_kinds` / :func:`known_models`). An installation made before an entry point was
declared lacks it: ``make install`` (``pip install -e .``) writes them.

``python -m finetune.models --dataset D --model NAME --out DIR ...`` is the ingestion
side alone (what :func:`finetune.config_runs.run_local_model` starts in a child process); when it
fails it reports why to its parent (:mod:`autodl.child_error`).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from autodl.child_error import exception_line, report_child_error
from autodl.clock import Clock
from autodl.errors import AutoDLError
from autodl.ingestion import ModelFactory
from autodl.metadata import AutoDLMetadata

logger = logging.getLogger(__name__)


def _linear(meta: AutoDLMetadata, clock: Clock, **_: Any) -> Any:
    from finetune.baselines import LinearModel

    return LinearModel(meta, clock=clock)


class LearnerFactory:
    """``(train_metadata, clock) -> FineTuneLearner`` for one configuration.

    ``config`` is the validated configuration and ``kwargs`` the learner's other keyword
    arguments, so that callers can see what will run (e.g. to price it on a timing table).
    """

    def __init__(self, config: Mapping[str, Any], **kwargs: Any):
        self.config = dict(config)
        self.kwargs = kwargs

    def __call__(self, meta: AutoDLMetadata, clock: Clock) -> Any:
        from finetune.learner import FineTuneLearner

        return FineTuneLearner(meta, self.config, clock=clock, **self.kwargs)


def learner_factory(config: Mapping[str, Any], *, source: str | None = None, **learner_kwargs: Any) -> LearnerFactory:
    """The factory of the fine-tuning learner for ``config``, validated and refused now if it
    cannot run here (a backbone whose weights are absent; ``source`` names where it came
    from in the message), as the kinds built on the learner resolve their names."""
    from finetune.config import check_runnable, validate_config

    return LearnerFactory(check_runnable(validate_config(config, source=source), source=source), **learner_kwargs)


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "finetune" / "default.yaml"
"""The single-best baseline configuration (``baseline:default``)."""

TF1_PREFIX = "file-tf1:"
"""The prefix of a TensorFlow-1-era ``model.py`` run in TensorFlow 1 compatibility mode."""


# --- the registry of model kinds -------------------------------------------------------------
Resolver = Callable[..., ModelFactory]
"""``resolve(name, *, portfolio, dataset, **learner_kwargs) -> (train_metadata, clock) -> model``."""


@dataclass(frozen=True)
class ModelKind:
    """One kind of ``--model`` name.

    Attributes
    ----------
    name
        The exact name (``baseline:single-best``, ``submission``), or a prefix ending in ``:``
        (``config:``, ``submission:``) that takes every name starting with it.
    resolve
        ``resolve(name, *, portfolio, dataset, **learner_kwargs)``: the factory
        ``(train_metadata, clock) -> model``; raises :class:`~autodl.errors.AutoDLError` on a
        name that cannot run (before any budget is spent). ``learner_kwargs`` are the
        fine-tuning learner's (``t0``, ``timing``, ``device``, ``seed``...).
    usage
        How the name is written in the list of known models (default: ``name``).
    description
        One line: what the model is.
    simulated_clock
        Whether the model charges its work to a simulated clock (the fine-tuning learner does;
        the linear baseline and challenge submissions read the wall clock).
    check
        ``check(name, *, portfolio, dataset)``, where resolving would change this process
        (``file-tf1:``): what :func:`check_model` calls instead of ``resolve``.
    """

    name: str
    resolve: Resolver
    usage: str = ""
    description: str = ""
    simulated_clock: bool = True
    check: Callable[..., None] | None = None


_KINDS: dict[str, ModelKind] = {}
ENTRY_POINT_GROUP = "autodl_meta.model_kinds"
"""The entry-point group naming the modules of the upper layers that register model kinds."""
_declared: dict[str, str] | None = None  # entry point -> why it could not be loaded ("" when loaded)


def register_model_kind(name: str, resolve: Resolver, *, usage: str | None = None, description: str = "",
                        simulated_clock: bool = True, check: Callable[..., None] | None = None) -> ModelKind:
    """Register a kind of ``--model`` name (see :class:`ModelKind`); returns it.

    Registering a name again replaces its kind if the new resolver has the same qualified name
    (a module imported twice), and is refused otherwise.

    Raises
    ------
    ValueError
        An empty name, or a name another resolver has.
    """
    if not name or name == ":":
        raise ValueError(f"model kind name {name!r}: expected a name or a prefix ending in ':'")
    old = _KINDS.get(name)
    if old is not None and _qualname(old.resolve) != _qualname(resolve):
        raise ValueError(f"model kind {name!r} is registered already (by {_qualname(old.resolve)})")
    kind = ModelKind(name, resolve, usage or name, description, simulated_clock, check)
    _KINDS[name] = kind
    return kind


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def load_declared_model_kinds() -> dict[str, str]:
    """Import, once, the modules declared in the entry-point group :data:`ENTRY_POINT_GROUP` (in
    the order of their entry point names), which register their kinds as they are imported.
    Returns ``{entry point: ""}`` for those loaded and ``{entry point: why}`` for those that
    could not be (logged; their names stay unknown, and the message for an unknown name
    says why)."""
    global _declared
    if _declared is None:
        _declared = {}
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            try:
                ep.load()
                _declared[f"{ep.name} ({ep.value})"] = ""
            except Exception as exc:  # one broken plug-in must not hide the others
                why = exception_line(exc)
                _declared[f"{ep.name} ({ep.value})"] = why
                logger.warning("model kinds of %s (%s) not registered: %s", ep.name, ep.value, why)
    return dict(_declared)


def _registered(name: str) -> ModelKind | None:
    kind = _KINDS.get(name)
    if kind is None and ":" in name:
        kind = _KINDS.get(name.partition(":")[0] + ":")
    return kind


def find_model_kind(name: str) -> ModelKind | None:
    """The kind of the name ``name``: its exact name, else its prefix (``kind:``), else ``file:``
    for a path ending in ``.py``. The declared kinds are loaded first when neither the name nor
    its prefix is registered yet. None for an unknown name."""
    kind = _registered(name)
    if kind is None:
        load_declared_model_kinds()
        kind = _registered(name)
    if kind is None and name.endswith(".py"):
        kind = _KINDS["file:"]
    return kind


def model_kinds() -> list[ModelKind]:
    """Every registered kind (the declared ones loaded first): the ``baseline:*`` names first,
    then the others, each in the order they were registered."""
    load_declared_model_kinds()
    kinds = list(_KINDS.values())
    return [k for k in kinds if k.name.startswith("baseline:")] + [k for k in kinds if not k.name.startswith("baseline:")]


def known_models() -> list[str]:
    """How every known model name is written (e.g. for the message of an unknown name)."""
    return [k.usage for k in model_kinds()]


def _unknown(name: str) -> AutoDLError:
    missing = [f"{ep}: {why}" for ep, why in load_declared_model_kinds().items() if why]
    also = f" (model kinds that could not be registered: {'; '.join(missing)})" if missing else ""
    return AutoDLError(None, f"unknown model {name!r}; known: {', '.join(known_models())}{also}", field="--model")


def is_tf1_name(name: str) -> bool:
    """Whether ``name`` is ``file-tf1:PATH`` (a model run in TensorFlow 1 compatibility mode)."""
    return name.startswith(TF1_PREFIX)


# --- the kinds of this layer ------------------------------------------------------------------
def _from_file(path: Path, *, tf1: bool = False) -> ModelFactory:
    """Import ``path`` (a challenge ``model.py``) and return ``(meta, clock) -> Model(meta)``.

    ``tf1``: refuse it if it uses what TensorFlow 1 compatibility cannot supply, switch this
    process to TensorFlow 1 mode, then import it; an error while importing it is one line.
    """
    if not path.is_file():
        raise AutoDLError(path, "model file not found; expected a challenge model.py defining class Model")
    if tf1:
        check_tf1_model(path)
        from autodl.tf1_compat import enable_tf1_mode

        enable_tf1_mode()
        logger.info("TensorFlow 1 compatibility mode: `import tensorflow` gives tf.compat.v1, graph mode (%s)",
                    path)
    spec = importlib.util.spec_from_file_location(f"autodl_submission_{abs(hash(path))}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # submissions import their sibling files
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        if not tf1:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        raise AutoDLError(path, f"cannot be imported in TensorFlow 1 compatibility mode: {type(exc).__name__}: "
                                f"{first}") from None
    finally:
        sys.path.remove(str(path.parent))
    if not hasattr(module, "Model"):
        raise AutoDLError(path, "defines no class Model", field="Model")
    return lambda meta, clock: module.Model(meta)


def tf1_model_problem(path: str | Path, *, installed: bool = True) -> str | None:
    """Why the TensorFlow-1-era ``model.py`` at ``path`` cannot run here even in TensorFlow 1
    compatibility mode, in one line (None if nothing in its source says so).

    Read from its source, before anything runs (:func:`autodl.tf1_compat.find_unsupported`):
    e.g. ``uses tf.estimator (line 61), removed in TensorFlow 2.16 (...); this model cannot
    run here``. The first API is named with its reason, the others after it. ``installed``:
    every TensorFlow name it uses is looked up in the installed ``tf.compat.v1`` (this imports
    TensorFlow, :func:`autodl.dataset.configure_tensorflow`, and leaves it as it is); without
    it, only the APIs known to be gone (``tf.estimator``, ``tf.contrib``) are refused, and
    TensorFlow is not imported. A file that cannot be read or is not Python is a problem too.
    """
    from autodl.tf1_compat import find_unsupported

    path = Path(path)
    try:
        source = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    v1 = None
    if installed:
        from autodl.dataset import configure_tensorflow

        v1 = configure_tensorflow().compat.v1
    try:
        missing = find_unsupported(source, v1)
    except SyntaxError as exc:
        return f"is not valid Python (line {exc.lineno}: {exc.msg})"
    if not missing:
        return None
    first, rest = missing[0], missing[1:]
    also = f" (also: {', '.join(f'{u.api} (line {u.line})' for u in rest)})" if rest else ""
    return f"uses {first.api} (line {first.line}), {first.reason.rstrip('.')}; this model cannot run here{also}"


def check_tf1_model(path: str | Path, *, installed: bool = True) -> None:
    """Refuse a TensorFlow-1-era ``model.py`` that cannot run here (see :func:`tf1_model_problem`,
    which ``installed`` goes to).

    Raises
    ------
    AutoDLError
        The file is missing, or uses what TensorFlow 1 compatibility cannot supply: one line
        naming the file, the API, the line and why.
    """
    path = Path(path)
    if not path.is_file():
        raise AutoDLError(path, "model file not found; expected a challenge model.py defining class Model")
    problem = tf1_model_problem(path, installed=installed)
    if problem is not None:
        raise AutoDLError(path, problem)


def baseline_config(name: str) -> dict[str, Any]:
    """The configuration behind ``baseline:default`` or ``baseline:scratch``."""
    from finetune.config import load_config, validate_config

    config = load_config(DEFAULT_CONFIG)
    if name == "baseline:scratch":
        config = validate_config({**config, "backbone": "resnet18", "pretrained": False})
    elif name != "baseline:default":
        raise AutoDLError(None, f"{name!r} is not a fine-tuning configuration; known: baseline:default, "
                                f"baseline:scratch", field="model")
    return config



def _resolve_linear(name: str, *, portfolio: Any = None, dataset: Any = None, **learner_kwargs: Any) -> ModelFactory:
    return lambda meta, clock: _linear(meta, clock, **learner_kwargs)


def _resolve_baseline_config(name: str, *, portfolio: Any = None, dataset: Any = None,
                             **learner_kwargs: Any) -> ModelFactory:
    from finetune.config import check_runnable

    return LearnerFactory(check_runnable(baseline_config(name), source=name), **learner_kwargs)


def _resolve_config(name: str, *, portfolio: Any = None, dataset: Any = None, **learner_kwargs: Any) -> ModelFactory:
    from finetune.config import check_runnable, load_config

    path = name.partition(":")[2]  # a bad file fails here, before any budget is spent
    return LearnerFactory(check_runnable(load_config(path), source=path), **learner_kwargs)


def _resolve_file(name: str, *, portfolio: Any = None, dataset: Any = None, **_: Any) -> ModelFactory:
    return _from_file(Path(name.removeprefix("file:")))


def _resolve_tf1(name: str, *, portfolio: Any = None, dataset: Any = None, **_: Any) -> ModelFactory:
    return _from_file(Path(name.removeprefix(TF1_PREFIX)), tf1=True)  # switches this process to TensorFlow 1


def _check_tf1(name: str, *, portfolio: Any = None, dataset: Any = None) -> None:
    check_tf1_model(name.removeprefix(TF1_PREFIX), installed=False)


register_model_kind("baseline:linear", _resolve_linear, simulated_clock=False,
                    description="flatten + one linear layer with sigmoid outputs, Adam, batch 30 (seed paper)")
register_model_kind("baseline:default", _resolve_baseline_config,
                    description="the fixed AutoCLINT-like configuration configs/finetune/default.yaml")
register_model_kind("baseline:scratch", _resolve_baseline_config,
                    description="ResNet-18 from random initialisation, otherwise the default configuration")
register_model_kind("config:", _resolve_config, usage="config:PATH.yaml",
                    description="one fine-tuning configuration from a YAML/JSON file")
register_model_kind("file:", _resolve_file, usage="file:PATH/model.py", simulated_clock=False,
                    description="a challenge model.py (class Model), run as the organizers' ingestion runs it")
register_model_kind(TF1_PREFIX, _resolve_tf1, usage=f"{TF1_PREFIX}PATH/model.py (a TensorFlow-1-era model.py)",
                    simulated_clock=False, check=_check_tf1,
                    description="a TensorFlow-1-era model.py, in TensorFlow 1 compatibility mode (a process of its own)")


# --- resolving names ---------------------------------------------------------------------------
def reads_simulated_clock(name: str) -> bool:
    """Whether the model named ``name`` charges its work to a simulated clock (the fine-tuning
    learner does; the linear baseline and challenge submissions, TF1-era ones included, read
    the wall clock). True for an unknown name (resolving it fails)."""
    kind = find_model_kind(name)
    return True if kind is None else kind.simulated_clock


def resolve_model(name: str | Mapping[str, Any], *, portfolio: str | Path | None = None, dataset: Any = None,
                  **learner_kwargs: Any) -> ModelFactory:
    """The factory ``(train_metadata, clock) -> model`` for a model name or a configuration.

    ``name`` is a ``--model`` name (of a registered kind, :func:`find_model_kind`) or a
    configuration mapping. ``learner_kwargs`` (e.g. ``t0``, ``timing``, ``device``, ``seed``)
    go to :class:`finetune.learner.FineTuneLearner` for the models built on it. A
    configuration that cannot run here (a backbone whose weights are absent) is refused now,
    before any budget is spent. ``portfolio`` and ``dataset`` are read by the kinds that need
    them (``baseline:single-best`` and ``baseline:oracle``, :mod:`portfolio.baselines`).

    ``file-tf1:PATH`` switches this process to TensorFlow 1 mode for good before importing
    the file: a process that must stay as it is checks such a name with :func:`check_model`.

    Raises
    ------
    AutoDLError
        An unknown name (the known ones listed) or one that cannot run.
    """
    from finetune.config import check_runnable, validate_config

    if isinstance(name, Mapping):
        return LearnerFactory(check_runnable(validate_config(name)), **learner_kwargs)
    kind = find_model_kind(name)
    if kind is None:
        raise _unknown(name)
    return kind.resolve(name, portfolio=portfolio, dataset=dataset, **learner_kwargs)


def check_model(name: str | Mapping[str, Any], *, portfolio: str | Path | None = None,
                dataset: Any = None) -> None:
    """Fail now, as :func:`resolve_model` would, on a model name that cannot run, without
    changing this process: a ``file-tf1:`` model is checked by reading its source for the
    APIs known to be gone (``tf.estimator``, ``tf.contrib``; without importing TensorFlow:
    :func:`check_tf1_model`), since resolving it would switch this process to TensorFlow 1
    mode; the process that runs it checks the rest against the installed TensorFlow before
    importing it. Every other name is resolved.

    Raises
    ------
    AutoDLError
        An unknown or unrunnable model (see :func:`resolve_model`).
    """
    if isinstance(name, str):
        kind = find_model_kind(name)
        if kind is not None and kind.check is not None:
            kind.check(name, portfolio=portfolio, dataset=dataset)
            return
    resolve_model(name, portfolio=portfolio, dataset=dataset)


def main(argv: list[str] | None = None) -> int:
    """The ingestion side alone, on the wall clock: the child process of a local run."""
    from autodl.ingestion import run_ingestion

    # why it fails goes to the parent as an error report (autodl.child_error), its line to the log
    p = argparse.ArgumentParser(prog="python -m finetune.models", description=main.__doc__)
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--time-budget", type=float, default=1200.0)
    p.add_argument("--t0", type=float, default=None, help="the ALC's t0 the learner plans with")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--max-train-examples", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: PyTorch's)")
    p.add_argument("--portfolio", default=None, help="portfolio folder (baseline:single-best|oracle)")
    p.add_argument("--scored-rows", type=int, default=None,
                   help="write only the first N rows of each prediction (the scored test examples) and the "
                        "rest of the last one to unlabelled.predict (see autodl.ingestion)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.threads:
            import torch

            torch.set_num_threads(args.threads)
        kwargs = {k: v for k, v in (("t0", args.t0), ("device", args.device), ("seed", args.seed),
                                    ("max_train_examples", args.max_train_examples)) if v is not None}
        try:
            factory = resolve_model(args.model, portfolio=args.portfolio, dataset=args.dataset, **kwargs)
            res = run_ingestion(args.dataset, factory, args.out, time_budget=args.time_budget,
                                scored_rows=args.scored_rows)
        except AutoDLError as exc:
            print(report_child_error("refused", str(exc)).line(), file=sys.stderr)
            return 2
    except Exception as exc:  # reported, then raised: the traceback goes to the log
        report_child_error("crashed", exception_line(exc))
        raise
    if not res.success:
        print(report_child_error("model failed", str(res.error)).line(), file=sys.stderr)
    return 0 if res.success else 1


if __name__ == "__main__":
    # run by `python -m finetune.models`: this file is then `__main__`, a module apart from the
    # `finetune.models` the upper layers register their kinds with; run that one's main
    from finetune.models import main as _main

    sys.exit(_main())
