"""Model names: resolving ``baseline:*``, ``config:PATH`` and ``file:PATH`` into model factories.

Known forms:

* ``baseline:linear``: the seed paper's linear baseline (:class:`finetune.baselines.LinearModel`).
* ``baseline:default``: one fixed AutoCLINT-like configuration
  (``configs/finetune/default.yaml``), the single best a user would pick without
  meta-learning, fine-tuned by :class:`finetune.learner.FineTuneLearner`.
* ``baseline:scratch``: a ResNet-18 trained from random initialisation (the seed paper's
  "from scratch" baseline), otherwise the default configuration.
* ``baseline:single-best`` / ``baseline:oracle`` (with a portfolio folder, ``portfolio=``):
  the incumbent with the best mean ALC over the portfolio's cost matrix, and the incumbent
  with the best ALC on the dataset being run (which must be a column of the matrix); see
  :func:`portfolio_config`.
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
  own (:func:`finetune.evaluate.run_local_model`, ``autodl-meta run``, wall clock); other
  processes check it with :func:`check_model`, which reads its source only. A model that
  uses what no compatibility mode can supply (``tf.estimator``, removed in TensorFlow 2.16;
  ``tf.contrib``; ``tf.layers`` under Keras 3) is refused before anything runs, in one line
  naming the file, the API and why (:func:`tf1_model_problem`).
* ``submission``: this project's shipped submission, the file ``submission/model.py`` of
  the source tree (:data:`SUBMISSION_MODEL`), run as ``file:`` runs a ``model.py``.
* ``submission:PATH``: a submission folder holding ``model.py`` (e.g. an unzipped
  submission), or a submission ``.zip`` with ``model.py`` at its root, which is extracted
  into a temporary folder first (:func:`unpack_submission` extracts it where the caller
  wants); then run as ``file:PATH/model.py``.

``python -m finetune.models --dataset D --model NAME --out DIR ...`` is the ingestion
side alone (what :func:`finetune.evaluate.run_local_model` starts in a child process).
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import logging
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

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


DEFAULT_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "finetune" / "default.yaml"
"""The single-best baseline configuration (``baseline:default``)."""

BASELINES: dict[str, tuple[Callable[..., Any] | None, str]] = {
    "linear": (_linear, "flatten + one linear layer with sigmoid outputs, Adam, batch 30 (seed paper)"),
    "default": (None, "the fixed AutoCLINT-like configuration configs/finetune/default.yaml"),
    "scratch": (None, "ResNet-18 from random initialisation, otherwise the default configuration"),
    "single-best": (None, "the portfolio's incumbent with the best mean ALC over its cost matrix (--portfolio)"),
    "oracle": (None, "the portfolio's incumbent with the best ALC on this dataset (--portfolio)"),
}
"""The baselines by name: (factory for those that are not fine-tuning configurations, description)."""


SUBMISSION_MODEL = Path(__file__).resolve().parents[1] / "submission" / "model.py"
"""The shipped submission's ``model.py`` (model name ``submission``)."""


TF1_PREFIX = "file-tf1:"
"""The prefix of a TensorFlow-1-era ``model.py`` run in TensorFlow 1 compatibility mode."""


def known_models() -> list[str]:
    return [f"baseline:{k}" for k in BASELINES] + [
        "config:PATH.yaml", "file:PATH/model.py", f"{TF1_PREFIX}PATH/model.py (a TensorFlow-1-era model.py)",
        "submission", "submission:PATH (a folder holding model.py, or a .zip)"]


def is_tf1_name(name: str) -> bool:
    """Whether ``name`` is ``file-tf1:PATH`` (a model run in TensorFlow 1 compatibility mode)."""
    return name.startswith(TF1_PREFIX)


def is_submission_name(name: str) -> bool:
    """Whether ``name`` is ``submission`` or ``submission:PATH``."""
    return name == "submission" or name.startswith("submission:")


def unpack_submission(archive: str | Path, dest: str | Path) -> Path:
    """Extract a submission zip into ``dest`` (created; emptied first) and return ``dest``.

    Raises
    ------
    AutoDLError
        The file is not a zip, has no ``model.py`` at its root (as the challenge requires), has a
        member whose path would leave ``dest`` (zip-slip), or differs from the ``<zip>.sha256``
        beside it or a member from the zip's ``artifacts/checksums.json`` (an
        :class:`autodl.integrity.IntegrityError`).
    """
    from autodl.integrity import extract_zip, verify_sha256_file

    archive, dest = Path(archive), Path(dest)
    try:
        verify_sha256_file(archive)  # <zip>.sha256 beside it, where there is one
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if "model.py" not in names:
                raise AutoDLError(archive, "has no model.py at its root; a submission zip holds model.py at its "
                                           "root (as the challenge requires)", field="model.py")
        if dest.is_symlink():
            raise AutoDLError(dest, "is a symbolic link; a submission is extracted into a folder of its own",
                              field="--model")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        # members that would leave dest (absolute, '..', links) are refused before anything is
        # written, and so are members that differ from the zip's artifacts/checksums.json
        extract_zip(archive, dest, verify="artifacts/checksums.json")
    except zipfile.BadZipFile as exc:
        raise AutoDLError(archive, f"is not a zip file ({exc}); expected a submission .zip or a folder "
                                   "holding model.py", field="--model") from None
    logger.info("extracted %s into %s", archive, dest)
    return dest


def submission_file(name: str, unpack_dir: str | Path | None = None) -> Path:
    """The ``model.py`` behind ``submission`` or ``submission:PATH``.

    A ``.zip`` is extracted into ``unpack_dir`` (default: a temporary folder removed when
    this process exits). The file's existence is not checked here (:func:`_from_file` does).

    Raises
    ------
    AutoDLError
        ``submission:`` without a path, a path that does not exist, or a bad zip.
    """
    if name == "submission":
        return SUBMISSION_MODEL
    path = Path(name.removeprefix("submission:"))
    if not str(path) or name == "submission:":
        raise AutoDLError(None, "submission: needs a path: submission:FOLDER (holding model.py) or "
                                "submission:FILE.zip", field="--model")
    if path.is_dir():
        return path / "model.py"
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        if unpack_dir is None:
            unpack_dir = tempfile.mkdtemp(prefix="autodl-submission-")
            atexit.register(shutil.rmtree, unpack_dir, True)
        return unpack_submission(path, unpack_dir) / "model.py"
    if path.is_file() and path.name.endswith(".py"):
        return path
    raise AutoDLError(path, "not found" if not path.exists() else "is neither a folder nor a .zip",
                      field="--model")


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


def reads_simulated_clock(name: str) -> bool:
    """Whether the model named ``name`` charges its work to a simulated clock (the fine-tuning
    learner does; the linear baseline and challenge submissions, TF1-era ones included, read
    the wall clock)."""
    return not (name.startswith("file:") or is_tf1_name(name) or name.endswith(".py")
                or name == "baseline:linear" or is_submission_name(name))


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


PORTFOLIO_BASELINES = ("single-best", "oracle")
"""The baselines that need a portfolio (``portfolio=``, ``--portfolio``)."""


def portfolio_config(name: str, portfolio: str | Path | None, dataset: Any = None) -> tuple[dict[str, Any], str]:
    """The configuration behind ``baseline:single-best`` or ``baseline:oracle``, and the
    training dataset whose incumbent it is.

    Parameters
    ----------
    name
        ``baseline:single-best`` or ``baseline:oracle``.
    portfolio
        A portfolio folder as ``autodl-meta portfolio cost-matrix --out DIR`` writes it
        (``portfolio.json`` and the cost matrix's ``summary.json``), or its ``portfolio.json``.
        Read here as plain JSON (this layer sits below :mod:`portfolio`): the incumbents'
        configurations, ``single_best.source`` and ``oracle.<dataset>.source``.
    dataset
        The dataset the model will run on (a folder or an ``AutoDLDataset``); the oracle
        picks by its name, which must be a column of the cost matrix.

    Raises
    ------
    AutoDLError
        No portfolio given, its files missing or unreadable, no single best yet (no complete
        column), or a dataset that is not a column of the matrix (the columns listed).
    """
    from autodl.integrity import read_checked_json

    if portfolio is None:
        raise AutoDLError(None, f"{name} needs a portfolio: --portfolio DIR (a folder written by `autodl-meta "
                                "portfolio cost-matrix --out DIR`)", field="--portfolio")
    folder = Path(portfolio)
    folder = folder.parent if folder.is_file() else folder
    data: dict[str, Any] = {}
    for file in ("portfolio.json", "summary.json"):
        path = folder / file
        try:  # checked against the folder's manifest.json / checksums.json where it lists the file
            data[file] = read_checked_json(folder, file)
        except FileNotFoundError:
            raise AutoDLError(path, "not found: a portfolio folder holds portfolio.json and the cost matrix's "
                                    "summary.json (`autodl-meta portfolio cost-matrix --out DIR` writes both)",
                              field="--portfolio") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AutoDLError(path, f"cannot be read ({exc})", field="--portfolio") from None
    for file in ("portfolio.json", "summary.json"):
        if not isinstance(data[file], Mapping):
            raise AutoDLError(folder / file, f"holds a JSON {type(data[file]).__name__}; expected an object "
                                             f"(`autodl-meta portfolio cost-matrix --out DIR` writes it)",
                              field="--portfolio")
    summary, summary_path = data["summary.json"], folder / "summary.json"
    if name == "baseline:single-best":
        choice = summary.get("single_best")
        if not choice:
            raise AutoDLError(summary_path, "no single-best configuration yet: the cost matrix has no complete "
                                            "column (finish it with `autodl-meta portfolio cost-matrix`)",
                              field="single_best")
    else:
        if dataset is None:
            raise AutoDLError(None, f"{name} needs the dataset it runs on", field="dataset")
        if not hasattr(dataset, "name"):
            from autodl.dataset import AutoDLDataset

            dataset = AutoDLDataset(dataset)
        oracle = summary.get("oracle") or {}
        choice = oracle.get(dataset.name)
        if choice is None:
            columns = summary.get("targets") or sorted(oracle)
            raise AutoDLError(summary_path, f"dataset {dataset.name!r} is not a column of the portfolio's cost "
                                            f"matrix (or has no value yet): the oracle needs one; columns: "
                                            f"{', '.join(columns) or 'none'}", field="oracle")
        if not choice.get("complete", True):
            logger.warning("%s: not every incumbent has been measured on %s: the oracle is the best of those that "
                           "have", summary_path, dataset.name)
    if not isinstance(choice, Mapping) or not isinstance(choice.get("source"), str):
        raise AutoDLError(summary_path, f"{choice!r:.80}: expected an object naming the incumbent's training "
                                        f"dataset under 'source'", field="single_best" if name == "baseline:single-best"
                          else "oracle")
    source = choice["source"]
    incumbents = data["portfolio.json"].get("incumbents", [])
    if not isinstance(incumbents, list) or not all(isinstance(inc, Mapping) for inc in incumbents):
        raise AutoDLError(folder / "portfolio.json", "expected a list of objects (dataset, config, ...)",
                          field="incumbents")
    configs = {inc.get("dataset"): inc.get("config") for inc in incumbents}
    if not isinstance(configs.get(source), Mapping):
        raise AutoDLError(folder / "portfolio.json", f"no incumbent configuration for {source!r}, which "
                                                     f"summary.json names for {name}", field="incumbents")
    return dict(configs[source]), source


def resolve_model(name: str | Mapping[str, Any], *, portfolio: str | Path | None = None, dataset: Any = None,
                  **learner_kwargs: Any) -> ModelFactory:
    """The factory ``(train_metadata, clock) -> model`` for a model name or a configuration.

    ``name`` is a ``--model`` name or a configuration mapping. ``learner_kwargs`` (e.g.
    ``t0``, ``timing``, ``device``, ``seed``) go to :class:`finetune.learner.FineTuneLearner`
    for the models built on it. A configuration that cannot run here (a backbone whose
    weights are absent) is refused now, before any budget is spent. ``portfolio`` and
    ``dataset`` are read by ``baseline:single-best`` and ``baseline:oracle`` only
    (:func:`portfolio_config`).

    ``file-tf1:PATH`` switches this process to TensorFlow 1 mode for good before importing
    the file: a process that must stay as it is checks such a name with :func:`check_model`.
    """
    from finetune.config import check_runnable, load_config, validate_config

    if isinstance(name, Mapping):
        return LearnerFactory(check_runnable(validate_config(name)), **learner_kwargs)
    if is_submission_name(name):
        return _from_file(submission_file(name))
    if is_tf1_name(name):  # switches this process to TensorFlow 1 mode (see check_model)
        return _from_file(Path(name.removeprefix(TF1_PREFIX)), tf1=True)
    if name.startswith("file:") or name.endswith(".py"):
        return _from_file(Path(name.removeprefix("file:")))
    kind, _, rest = name.partition(":")
    if kind == "config":  # a bad file fails here, before any budget is spent
        return LearnerFactory(check_runnable(load_config(rest), source=rest), **learner_kwargs)
    if kind == "baseline" and rest in ("default", "scratch"):
        return LearnerFactory(check_runnable(baseline_config(name), source=name), **learner_kwargs)
    if kind == "baseline" and rest in PORTFOLIO_BASELINES:
        config, source = portfolio_config(name, portfolio, dataset)
        folder = Path(portfolio).parent if Path(portfolio).is_file() else Path(portfolio)  # type: ignore[arg-type]
        where = f"{folder / 'portfolio.json'}, the incumbent of {source} ({name})"
        return LearnerFactory(check_runnable(validate_config(config, source=where), source=where), **learner_kwargs)
    if kind == "baseline" and rest in BASELINES:
        factory = BASELINES[rest][0]
        return lambda meta, clock: factory(meta, clock, **learner_kwargs)
    raise AutoDLError(None, f"unknown model {name!r}; known: {', '.join(known_models())}", field="--model")


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
    if isinstance(name, str) and is_tf1_name(name):
        check_tf1_model(name.removeprefix(TF1_PREFIX), installed=False)
        return
    resolve_model(name, portfolio=portfolio, dataset=dataset)


def main(argv: list[str] | None = None) -> int:
    """The ingestion side alone, on the wall clock: the child process of a local run."""
    from autodl.ingestion import run_ingestion

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
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    kwargs = {k: v for k, v in (("t0", args.t0), ("device", args.device), ("seed", args.seed),
                                ("max_train_examples", args.max_train_examples)) if v is not None}
    try:
        factory = resolve_model(args.model, portfolio=args.portfolio, dataset=args.dataset, **kwargs)
    except AutoDLError as exc:
        print(f"autodl-meta: error: {exc}", file=sys.stderr)
        return 2
    try:
        res = run_ingestion(args.dataset, factory, args.out, time_budget=args.time_budget,
                            scored_rows=args.scored_rows)
    except AutoDLError as exc:
        print(f"autodl-meta: error: {exc}", file=sys.stderr)
        return 2
    if not res.success:
        print(f"model failed: {res.error}", file=sys.stderr)
    return 0 if res.success else 1


if __name__ == "__main__":
    sys.exit(main())
