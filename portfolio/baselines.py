"""The model names ``baseline:single-best`` and ``baseline:oracle``: a portfolio's incumbents as baselines.

* ``baseline:single-best``: the incumbent with the best mean ALC over the portfolio's cost
  matrix (``single_best`` of the cost matrix's ``summary.json``);
* ``baseline:oracle``: the incumbent with the best ALC on the dataset being run, which must be
  a column of the matrix (``oracle.<dataset>``).

Both need a portfolio folder (``portfolio=``, ``--portfolio DIR``: ``portfolio.json`` and the
cost matrix's ``summary.json``, as ``autodl-meta portfolio cost-matrix --out DIR`` writes them)
and run the incumbent's configuration with the fine-tuning learner
(:func:`finetune.models.learner_factory`), on the simulated clock where asked.

Importing this module registers both kinds with :func:`finetune.models.register_model_kind`
(the model names live in :mod:`finetune`, below this layer, which never imports it: this module
is declared as an entry point of the group ``autodl_meta.model_kinds`` in ``pyproject.toml``).
It is kept light to import (what it reads is imported when a name is resolved), since a child
``python -m finetune.models`` imports it on its first name that is not of :mod:`finetune`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.ingestion import ModelFactory
from finetune.models import learner_factory, register_model_kind

logger = logging.getLogger(__name__)

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
        Read here: the incumbents' configurations, ``single_best.source`` and
        ``oracle.<dataset>.source`` (each file checked against the folder's ``manifest.json`` /
        ``checksums.json`` where it lists it).
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
    from portfolio.cost_matrix import SUMMARY_JSON
    from portfolio.incumbents import PORTFOLIO_FILE

    if portfolio is None:
        raise AutoDLError(None, f"{name} needs a portfolio: --portfolio DIR (a folder written by `autodl-meta "
                                "portfolio cost-matrix --out DIR`)", field="--portfolio")
    folder = Path(portfolio)
    folder = folder.parent if folder.is_file() else folder
    data: dict[str, Any] = {}
    for file in (PORTFOLIO_FILE, SUMMARY_JSON):
        path = folder / file
        try:  # checked against the folder's manifest.json / checksums.json where it lists the file
            data[file] = read_checked_json(folder, file)
        except FileNotFoundError:
            raise AutoDLError(path, "not found: a portfolio folder holds portfolio.json and the cost matrix's "
                                    "summary.json (`autodl-meta portfolio cost-matrix --out DIR` writes both)",
                              field="--portfolio") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise AutoDLError(path, f"cannot be read ({exc})", field="--portfolio") from None
    for file in (PORTFOLIO_FILE, SUMMARY_JSON):
        if not isinstance(data[file], Mapping):
            raise AutoDLError(folder / file, f"holds a JSON {type(data[file]).__name__}; expected an object "
                                             f"(`autodl-meta portfolio cost-matrix --out DIR` writes it)",
                              field="--portfolio")
    summary, summary_path = data[SUMMARY_JSON], folder / SUMMARY_JSON
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
    incumbents = data[PORTFOLIO_FILE].get("incumbents", [])
    if not isinstance(incumbents, list) or not all(isinstance(inc, Mapping) for inc in incumbents):
        raise AutoDLError(folder / PORTFOLIO_FILE, "expected a list of objects (dataset, config, ...)",
                          field="incumbents")
    configs = {inc.get("dataset"): inc.get("config") for inc in incumbents}
    if not isinstance(configs.get(source), Mapping):
        raise AutoDLError(folder / PORTFOLIO_FILE, f"no incumbent configuration for {source!r}, which "
                                                     f"summary.json names for {name}", field="incumbents")
    return dict(configs[source]), source


def resolve_portfolio_baseline(name: str, *, portfolio: str | Path | None = None, dataset: Any = None,
                               **learner_kwargs: Any) -> ModelFactory:
    """The fine-tuning learner on the incumbent that ``baseline:single-best`` or ``baseline:oracle``
    names (:func:`portfolio_config`), refused now if it cannot run here."""
    from portfolio.incumbents import PORTFOLIO_FILE

    config, source = portfolio_config(name, portfolio, dataset)
    folder = Path(portfolio).parent if Path(portfolio).is_file() else Path(portfolio)  # type: ignore[arg-type]
    where = f"{folder / PORTFOLIO_FILE}, the incumbent of {source} ({name})"
    return learner_factory(config, source=where, **learner_kwargs)


register_model_kind("baseline:single-best", resolve_portfolio_baseline,
                    description="the portfolio's incumbent with the best mean ALC over its cost matrix (--portfolio)")
register_model_kind("baseline:oracle", resolve_portfolio_baseline,
                    description="the portfolio's incumbent with the best ALC on this dataset (--portfolio)")
