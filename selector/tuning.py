"""Tuning a learned selector's hyperparameters with BOHB, as the seed paper did.

The search runs on :mod:`offline_bohb`'s machinery (nameserver, worker processes, master,
``trials.jsonl``, resume by replay): only the space and the objective differ from a
fine-tuning run.

- Space: :func:`selector.space.selector_space` of the selector (named
  ``selector.space:selector_space:<selector>`` in ``run.json``).
- Objective (:func:`selector_objective`): the mean ALC of the incumbents the selector picks
  in leave-one-dataset-out selection over the collection's features, scored by the cost
  matrix (:func:`selector.lodo.leave_one_dataset_out`). That is what a shipped
  selector is for; the paper tuned identification accuracy, which rewards telling
  look-alike datasets apart even where their incumbents are interchangeable.
- Budget: the fraction of the full fit. Where the selector has a cost parameter
  (:data:`selector.space.BUDGET_PARAMS`: epochs, k-means iterations), a trial at budget b
  uses b times its full value; otherwise the budget scales the number of query batches
  per held-out dataset (a cheaper, noisier estimate).
"""

from __future__ import annotations

import logging
import os
import socket
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from autodl.records import Status, file_sha256, utc_now

logger = logging.getLogger(__name__)

OBJECTIVE = "selector.tuning:selector_objective"

def _space_ref(selector: str) -> str:
    return f"selector.space:selector_space:{selector}"


def trial_params(selector: str, config: Mapping[str, Any], budget: float,
                 full_budget: float | None = None) -> tuple[dict[str, Any], float]:
    """The selector's keyword arguments for a trial at ``budget``, and the share of the query
    batches it uses (1.0 where a budget parameter carries the budget)."""
    from selector.registry import selector_class
    from selector.space import BUDGET_PARAMS, params_from_config

    params = params_from_config(selector, config)
    key = BUDGET_PARAMS.get(selector)
    if key is None:
        return params, float(budget)
    full = full_budget if full_budget is not None else selector_class(selector)().get_params()[key]
    params[key] = max(1, int(round(float(full) * float(budget))))
    return params, 1.0


def selector_objective(run: Mapping[str, Any]) -> Callable[[dict[str, Any], float, Any], dict[str, Any]]:
    """A BOHB worker's ``(encoded config, budget, config id) -> info`` for a selector run.

    The run's ``objective_args``: ``selector`` (its name), ``cost`` (a portfolio folder or a
    ``cost_matrix.csv``, see :func:`selector.member_views.load_cost`; ``cost_sha256`` its file's digest),
    ``query_size``, ``n_queries``, ``seed`` and optionally ``full_budget``; its dataset is the
    features folder. Never raises: a trial that raises is ``crashed`` with its traceback.
    """
    from metafeatures.features import load_features_folder
    from offline_bohb.hpb import decode_config
    from offline_bohb.run import resolve_space
    from selector.lodo import leave_one_dataset_out
    from selector.member_views import load_cost
    from selector.specs import SelectorSpec

    args = dict(run.get("objective_args") or {})
    name = args["selector"]
    space = resolve_space(run["space"]["path"])
    datasets = load_features_folder(run["dataset"]["path"])
    cost = load_cost(args["cost"]).matrix
    query_size, n_queries = int(args.get("query_size", 64)), int(args.get("n_queries", 10))
    seed = int(args.get("seed", run.get("seed", 0)))

    def evaluate_trial(encoded: dict[str, Any], budget: float, config_id: Any) -> dict[str, Any]:
        started, t0 = utc_now(), time.perf_counter()
        try:
            import torch

            params, share = trial_params(name, decode_config(space, encoded), budget, args.get("full_budget"))
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                lodo = leave_one_dataset_out([SelectorSpec(name, params)], datasets, cost, query_size=query_size,
                                             n_queries=max(1, int(round(n_queries * share))), seed=seed)
            finally:
                torch.set_num_threads(threads)
            label = lodo.summary["selectors"][0]
            mean = lodo.summary["per_selector"][label]
            alc = mean.get("mean_alc")
            ok = alc is not None and alc == alc and not mean.get("failed")
            info = {"status": Status.OK if ok else Status.CRASHED, "alc": float(alc) if ok else None,
                    "final_nauc": None, "curve": None,
                    "error": None if ok else f"leave-one-dataset-out failed: {mean.get('errors')}",
                    "traceback": None}
        except Exception as exc:  # a configuration that cannot fit is recorded, the run goes on
            info = {"status": Status.CRASHED, "alc": None, "final_nauc": None, "curve": None,
                    "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        info.update(wall_seconds=time.perf_counter() - t0, started=started, finished=utc_now(),
                    worker=f"{socket.gethostname()}:{os.getpid()}")
        logger.info("selector %s trial %s at budget %.3g: %s, ALC %s", name, config_id, budget, info["status"],
                    info["alc"])
        return info

    return evaluate_trial


def tune_selector(selector: str, features: str | Path, portfolio: str | Path, out: str | Path, *,
                  workers: int = 2, iterations: int = 2, min_budget: float = 1 / 9, eta: int = 3,
                  query_size: int = 64, n_queries: int = 10, seed: int = 0, command: str = "",
                  progress: Callable[[Any, Mapping[str, Any]], None] | None = None) -> Any:
    """Run (or resume) BOHB over ``selector``'s hyperparameters; returns the run's summary.

    ``portfolio`` is a portfolio folder or a ``cost_matrix.csv``
    (:func:`selector.member_views.load_cost`). The run records the digest of the cost matrix's
    file, so a resume over a changed matrix is refused (the differences named). The best
    configuration at the full budget: :func:`best_params`.
    """
    from offline_bohb.local import run_local
    from offline_bohb.run import RunSpec
    from selector.base import SelectorError
    from selector.member_views import load_cost
    from selector.space import tunable_selectors

    if selector not in tunable_selectors():
        raise SelectorError(None, f"{selector!r} has no hyperparameter space; tunable: "
                                  f"{', '.join(tunable_selectors())}", field="selector")
    source = load_cost(portfolio)
    spec = RunSpec(dataset=str(Path(features).resolve()), space=_space_ref(selector), min_budget=min_budget,
                   eta=eta, seed=seed, iterations=iterations, command=command, objective=OBJECTIVE,
                   objective_args={"selector": selector, "cost": str(Path(portfolio).resolve()),
                                   "cost_sha256": file_sha256(source.path), "query_size": query_size,
                                   "n_queries": n_queries, "seed": seed})
    return run_local(spec, out, workers=workers, progress=progress)


def best_params(run_dir: str | Path) -> tuple[dict[str, Any], float] | None:
    """The selector's keyword arguments of the best trial at the largest budget, and its ALC
    (None when no trial finished)."""
    from offline_bohb.run import RunFolder

    folder = RunFolder(run_dir)
    run = folder.read_run()
    ok = [t for t in folder.trials() if t.get("status") == Status.OK and t.get("alc") is not None]
    if not ok:
        return None
    top = max(t["budget"] for t in ok)
    best = max((t for t in ok if t["budget"] == top), key=lambda t: t["alc"])
    args = run.get("objective_args") or {}
    params, _ = trial_params(args["selector"], best["config"], best["budget"], args.get("full_budget"))
    return params, float(best["alc"])


def tuned_params(run_dir: str | Path, selector: str) -> dict[str, Any]:
    """What ``selector fit --tuned`` takes from a tuning run: ``params``, ``alc``, ``run``.

    Raises :class:`~selector.base.SelectorError` when the run tuned another selector or has
    no finished trial.
    """
    from offline_bohb.run import RunFolder
    from selector.base import SelectorError

    run = RunFolder(run_dir).read_run()
    tuned = (run.get("objective_args") or {}).get("selector")
    if tuned != selector:
        raise SelectorError(Path(run_dir) / "run.json", f"tuned {tuned!r}, not {selector!r}",
                            field="objective_args.selector")
    best = best_params(run_dir)
    if best is None:
        raise SelectorError(Path(run_dir) / "trials.jsonl", "no finished trial to take hyperparameters from")
    return {"params": best[0], "alc": best[1], "run": str(run_dir)}
