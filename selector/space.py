"""The learned selectors' hyperparameter spaces, for tuning with BOHB (``offline_bohb``).

:func:`selector_space` gives a ConfigSpace ``ConfigurationSpace`` per selector (the
seed paper tuned its selectors' batch size, learning rate, neurons, dropout, trimming
fraction and which statistics with BOHB: batch 2..1024, lr 1e-5..1e-2, neurons
16..1024, dropout 0..0.8, cut_perc 0..0.4, a ``use_<statistic>`` boolean each);
:func:`params_from_config` turns a sampled configuration into the selector's keyword
arguments (plain Python values; the ``use_<statistic>`` booleans become ``stats``).

Training length (``epochs``) is not in the spaces: it is the natural BOHB budget
(:data:`BUDGET_PARAMS` names it per selector). Only categorical, integer and float
hyperparameters are used (hpbandster's BOHB rejects ordinal ones). A space for
``offline_bohb`` is named ``selector.space:selector_space:<selector>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from selector.base import SelectorError
from selector.learned import ALL_STATS

__all__ = ["BUDGET_PARAMS", "params_from_config", "selector_space", "tunable_selectors"]

BUDGET_PARAMS: dict[str, str] = {"mlp-vote": "epochs", "precalc-mlp": "epochs", "vae-ttest": "epochs",
                                 "kmeans": "max_iter"}
"""The parameter that scales a fit's cost, per selector (the BOHB budget where there is one)."""


def tunable_selectors() -> list[str]:
    """The selectors :func:`selector_space` has a space for."""
    return sorted(_BUILDERS)


def selector_space(name: str, seed: int | None = None) -> Any:
    """The hyperparameter space of the learned selector ``name``.

    Parameters
    ----------
    name:
        A registry name (:func:`tunable_selectors`).
    seed:
        Seeds the space's own sampler.

    Returns
    -------
    ConfigSpace.ConfigurationSpace
        Defaults are the selector's ``__init__`` defaults.
    """
    from ConfigSpace import ConfigurationSpace

    if name not in _BUILDERS:
        raise SelectorError(None, f"no hyperparameter space for selector {name!r}; spaces exist for "
                                  f"{', '.join(tunable_selectors())}", field="selector")
    cs = ConfigurationSpace(name=name, seed=seed)
    _BUILDERS[name](cs)
    return cs


def params_from_config(name: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments of selector ``name`` from a configuration of :func:`selector_space`.

    Numpy scalars become Python values, inactive hyperparameters are left out, and the
    precalc-MLP's ``use_<statistic>`` booleans become ``stats`` (in :data:`ALL_STATS` order).
    """
    params = {k: (v.item() if hasattr(v, "item") else v) for k, v in dict(config).items() if v is not None}
    uses = {s: params.pop(f"use_{s}") for s in ALL_STATS if f"use_{s}" in params}
    if uses:
        params["stats"] = tuple(s for s in ALL_STATS if uses.get(s))
        if not params["stats"]:
            raise SelectorError(None, f"{name}: configuration uses no statistic ({uses})", field="stats")
    return params


# --- the spaces ----------------------------------------------------------------------------------
def _bool(name: str, default: bool) -> Any:
    from ConfigSpace import Categorical

    return Categorical(name, [True, False], default=default)


def _mlp(cs: Any) -> None:
    from ConfigSpace import Float, Integer

    cs.add([Integer("neurons", (16, 1024), log=True, default=256),
            Float("dropout", (0.0, 0.8), default=0.2),
            Float("lr", (1e-5, 1e-2), log=True, default=1e-3)])


def _nearest_centroid(cs: Any) -> None:
    from ConfigSpace import Categorical

    cs.add([Categorical("metric", ["euclidean", "manhattan"], default="euclidean"), _bool("standardize", True)])


def _kmeans(cs: Any) -> None:
    from ConfigSpace import Integer

    cs.add([Integer("n_clusters", (1, 64), log=True, default=8), Integer("n_init", (1, 10), default=3),
            Integer("max_iter", (10, 300), log=True, default=100), _bool("standardize", True)])


def _mlp_vote(cs: Any) -> None:
    from ConfigSpace import Categorical, Integer

    _mlp(cs)
    cs.add([Integer("batch_size", (16, 512), log=True, default=128),
            Categorical("vote", ["mean", "majority"], default="mean")])


def _precalc_mlp(cs: Any) -> None:
    from ConfigSpace import Float, ForbiddenAndConjunction, ForbiddenEqualsClause, Integer

    _mlp(cs)
    uses = [_bool(f"use_{s}", True) for s in ALL_STATS]
    cs.add([Integer("batch_size", (2, 1024), log=True, default=64),
            Integer("n_batches", (32, 1024), log=True, default=256),
            Float("p", (0.0, 0.4), default=0.0), _bool("replace", True), *uses])
    cs.add(ForbiddenAndConjunction(*(ForbiddenEqualsClause(u, False) for u in uses)))


def _vae_ttest(cs: Any) -> None:
    from ConfigSpace import Float, Integer

    cs.add([Integer("latent_dim", (2, 64), log=True, default=8),
            Integer("hidden", (32, 512), log=True, default=128),
            Float("beta", (0.1, 4.0), log=True, default=1.0),
            Float("lr", (1e-5, 1e-2), log=True, default=1e-3),
            Integer("batch_size", (16, 512), log=True, default=128)])


def _descriptor_knn(cs: Any) -> None:
    from ConfigSpace import Integer

    cs.add(Integer("k", (1, 5), default=1))


def _cost_sensitive(cs: Any) -> None:
    from ConfigSpace import Categorical, EqualsCondition, Float, Integer

    regressor = Categorical("regressor", ["knn", "ridge"], default="knn")
    k = Integer("k", (1, 10), default=3)
    alpha = Float("alpha", (1e-3, 1e3), log=True, default=1.0)
    cs.add([Integer("n_components", (1, 16), log=True, default=4), _bool("use_descriptors", True),
            regressor, k, alpha])
    cs.add([EqualsCondition(k, regressor, "knn"), EqualsCondition(alpha, regressor, "ridge")])


_BUILDERS = {"nearest-centroid": _nearest_centroid, "kmeans": _kmeans, "mlp-vote": _mlp_vote,
             "precalc-mlp": _precalc_mlp, "vae-ttest": _vae_ttest, "descriptor-knn": _descriptor_knn,
             "cost-sensitive": _cost_sensitive}
