"""BOHB's model as offline_bohb.hpb builds it (no run started here): the density estimator, when a
model exists, picks that respect forbidden clauses, imputation, conditions, and the runs' seeds."""

from __future__ import annotations

import numpy as np
import pytest

from offline_bohb import hpb
from offline_bohb.hpb import ProductKDE, encode_space, make_sampler
from offline_bohb.run import derive_seed


def _space(seed: int = 0):
    """A small conditional space: a flag gating two hyperparameters, a forbidden combination."""
    import ConfigSpace as CS
    from ConfigSpace import EqualsCondition, ForbiddenAndConjunction, ForbiddenEqualsClause

    cs = CS.ConfigurationSpace(seed=seed)
    net = CS.CategoricalHyperparameter("net", ["a", "b", "c"])
    train = CS.CategoricalHyperparameter("train", [True, False])
    lr = CS.UniformFloatHyperparameter("lr", 1e-4, 1.0, log=True)
    size = CS.OrdinalHyperparameter("size", [32, 64, 128])
    cs.add([net, train, lr, size])
    cs.add(EqualsCondition(lr, train, True))
    cs.add(ForbiddenAndConjunction(ForbiddenEqualsClause(net, "c"), ForbiddenEqualsClause(train, False)))
    return cs


def _feed(cg, configs, losses, budget: float = 1.0) -> None:
    from hpbandster.core.dispatcher import Job

    for i, (config, loss) in enumerate(zip(configs, losses, strict=True)):
        job = Job((0, 0, i), config=hpb.plain(dict(config)), budget=budget)
        job.result = {"loss": loss, "info": {}}
        cg.new_result(job)


def test_the_density_is_statsmodels_kde_without_its_refusal_of_few_points():
    sm = pytest.importorskip("statsmodels.api")
    rng = np.random.default_rng(0)
    data = np.column_stack([rng.random(40), rng.integers(0, 3, 40), rng.random(40), rng.integers(0, 2, 40)])
    theirs = sm.nonparametric.KDEMultivariate(data, "cucu", bw="normal_reference")
    ours = ProductKDE(data, "cucu", np.array([0, 3, 0, 2]))
    assert np.allclose(ours.bw, theirs.bw)
    for x in (data[0], [0.3, 1, 0.9, 0], [0.5, 2, 0.1, 1]):
        assert ours.pdf(x) == pytest.approx(float(theirs.pdf(np.asarray(x, dtype=float))), rel=1e-9)
    few = data[:3]  # 3 points in 4 dimensions: statsmodels refuses, the estimator is defined
    with pytest.raises(ValueError, match="larger than the number of variables"):
        sm.nonparametric.KDEMultivariate(few, "cucu", bw="normal_reference")
    assert np.isfinite(ProductKDE(few, "cucu", np.array([0, 3, 0, 2])).pdf(few[1]))
    # a categorical bandwidth never exceeds the uniform kernel's (the kernel stays a probability)
    spread = np.column_stack([rng.random(5), [0, 5, 0, 5, 0]])
    kde = ProductKDE(spread, "cu", np.array([0, 6]))
    assert kde.bw[1] <= 1 - 1 / 6 and kde.pdf([0.5, 3]) > 0


def test_a_model_exists_after_n_min_plus_two_results_as_in_the_paper():
    space = encode_space(_space(), seed=0)
    d = len(list(space.values()))
    cg = make_sampler(space, min_points_in_model=3, top_n_percent=15, num_samples=16, random_fraction=0.0)
    configs = [space.sample_configuration() for _ in range(5)]
    _feed(cg, configs[:4], [-0.1 * i for i in range(4)])
    assert not cg.kde_models  # 4 < N_min + 2
    config, info = cg.get_config(1.0)
    assert info == {"model_based_pick": False, "why": "no model yet"}
    _feed(cg, configs[4:], [-0.9])
    model = cg.kde_models[1.0]
    assert model["points"] == 5
    # best max(N_min, 15% of 5) = 3 and worst max(N_min, 5 - 3) = 3 (they overlap, as in the paper)
    assert len(model["good"].data) == 3 and len(model["bad"].data) == 3
    # hpbandster itself needs more than d points in each of two disjoint sets
    from hpbandster.optimizers.config_generators.bohb import BOHB as CG_BOHB

    theirs = CG_BOHB(configspace=space, min_points_in_model=3)
    assert theirs.min_points_in_model == d + 1  # raised to d + 1
    _feed(theirs, configs, [-0.1 * i for i in range(5)])
    assert not theirs.kde_models
    config, info = cg.get_config(1.0)
    assert info["model_based_pick"] is True and info["model_points"] == 5 and info["model_budget"] == 1.0
    assert set(config) <= {"net", "train", "lr", "size"}


def test_model_picks_are_configurations_never_forbidden_and_inactive_values_are_left_out():
    space = encode_space(_space(), seed=1)
    cg = make_sampler(space, min_points_in_model=4, num_samples=32, random_fraction=0.0)
    np.random.seed(1)
    # the good results are all near the forbidden corner (net c without training)
    good = [{"net": "c", "train": True, "lr": 0.5, "size": 1}, {"net": "c", "train": True, "lr": 0.3, "size": 2},
            {"net": "b", "train": False, "size": 0}, {"net": "b", "train": False, "size": 1}]
    bad = [dict(space.sample_configuration()) for _ in range(8)]
    _feed(cg, good + bad, [-1.0] * 4 + [0.0] * 8)
    picks = [cg.get_config(1.0) for _ in range(40)]
    assert all(info["model_based_pick"] for _, info in picks)
    for config, _ in picks:
        assert not (config["net"] == "c" and config["train"] is False)  # forbidden
        assert ("lr" in config) == bool(config["train"])  # conditional: present only when active
    assert any(info["rejected_candidates"] for _, info in picks)  # forbidden candidates were skipped


def test_inactive_values_are_imputed_in_every_column():
    space = encode_space(_space(), seed=0)
    cg = make_sampler(space, min_points_in_model=2)
    # the space's own order puts unconditional hyperparameters first; column 0 of a NaN-only-in-0 row
    array = np.array([[np.nan, 1.0, 0.2, 0.5], [1.0, 0.0, 0.3, 0.5], [2.0, 1.0, np.nan, 0.1]])
    out = cg.impute_conditional_data(array)
    assert np.isfinite(out).all()
    assert out[0, 0] in (1.0, 2.0) and out[2, 2] in (0.2, 0.3)


def test_encode_space_keeps_conditions_with_ordinal_parents_as_indices():
    import ConfigSpace as CS
    from ConfigSpace import InCondition

    cs = CS.ConfigurationSpace(seed=0)
    size = CS.OrdinalHyperparameter("size", [32, 64, 128])
    crop = CS.CategoricalHyperparameter("crop", ["center", "random"])
    cs.add([size, crop])
    cs.add(InCondition(crop, size, [64, 128]))
    encoded = encode_space(cs, seed=0)
    (condition,) = encoded.conditions
    assert isinstance(condition, InCondition) and sorted(condition.values) == [1, 2]
    for _ in range(20):
        sample = dict(encoded.sample_configuration())
        assert ("crop" in sample) == (sample["size"] >= 1)


def test_each_dataset_gets_its_own_stable_seed():
    assert derive_seed(0, "digits") == 115017914  # SHA-256 based: the same on every machine and run
    names = ["digits", "letters", "moving_squares", "photos", "faces"]
    seeds = [derive_seed(0, n) for n in names]
    assert len(set(seeds)) == len(names) and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(1, "digits") != derive_seed(0, "digits")
