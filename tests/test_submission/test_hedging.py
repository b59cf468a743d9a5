"""Hedging inside the budget (``hedge`` >= 2) and selectors that name portfolio members.

Every run here is on the simulated clock (costs from the committed timing table), so the
race's order and outcome are the same on any machine. The selector is a fixed ranking
(:class:`_FixedRanking`) so that each test knows which configurations race.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from autodl.clock import SimulatedClock
from autodl.ingestion import run_ingestion
from submission.agent import MetaModel
from submission.artifacts import ArtifactError, Artifacts, SubmissionSettings

from .submission_helpers import CHEAP, write_stripes

TUNE = {"backbone": "scratch_cnn", "pretrained": False, "probes": "raw", "finetune": True, "num_predictions": 6,
        "input_size": 32, "min_input_size": 32, "batch_size": 16, "optimizer": "Adam", "learning_rate": 0.003}
TUNE_SLOW = {**TUNE, "learning_rate": 0.0001}


class _FixedRanking:
    """A selector that needs no query and ranks its ``classes_`` as given."""

    needs_query = False
    name = "fixed-ranking"

    def __init__(self, ranking: list[str], outputs: str = "datasets") -> None:
        self.classes_ = list(ranking)
        self.outputs = outputs

    def predict(self, query: Any) -> str:
        return self.classes_[0]

    def rank(self, query: Any) -> list[str]:
        return list(self.classes_)

    def confidence(self, query: Any) -> float:
        return 1.0


class _Artifacts(Artifacts):
    def __init__(self, root: Path, selector: _FixedRanking) -> None:
        super().__init__(root)
        self._selector = selector

    def selector(self) -> Any:
        return self._selector


@pytest.fixture(scope="module")
def race_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough training examples for a validation split (the race is decided on it)."""
    return write_stripes(tmp_path_factory.mktemp("race") / "stripes", "stripes", n_train=90, n_test=15, seed=3)


@pytest.fixture()
def portfolio(tmp_path: Path) -> Path:
    """Three incumbents (a probes-only one, two fine-tuned) and a greedy design's members."""
    art = tmp_path / "artifacts"
    art.mkdir()
    incumbents = [{"dataset": "probes", "config": CHEAP, "alc": 0.5, "member": "fixed:probes"},
                  {"dataset": "tune", "config": TUNE, "alc": 0.6, "member": "searched:tune"},
                  {"dataset": "slow", "config": TUNE_SLOW, "alc": 0.4, "member": "searched:slow"}]
    members = [{"name": i["member"], "config": i["config"], "origin": {}} for i in incumbents]
    members.append({"name": "fixed:unassigned", "config": {**TUNE, "learning_rate": 0.001}, "origin": {}})
    (art / "portfolio.json").write_text(json.dumps({"format": "autodl-meta-portfolio/1", "incumbents": incumbents,
                                                    "provenance": {"members": members}}))
    (art / "summary.json").write_text(json.dumps({"single_best": {"source": "probes", "mean_alc": 0.5}}))
    return art


def _run(artifacts: Artifacts, data: Path, out: Path, budget: float = 1.5, **settings: Any) -> MetaModel:
    from finetune.config_runs import DEFAULT_TIMING
    from finetune.timing import TimingTable

    timing = TimingTable.load(DEFAULT_TIMING)
    models: list[MetaModel] = []

    def make(meta: Any, clock: Any) -> MetaModel:
        s = SubmissionSettings(device="cpu", **settings)
        models.append(MetaModel(meta, artifacts, clock=clock, timing=timing, settings=s))
        return models[-1]

    res = run_ingestion(data, make, out, time_budget=budget, clock=SimulatedClock())
    assert res.success, res.error
    assert res.timestamps and max(res.timestamps) <= budget
    models[0].timestamps = res.timestamps  # type: ignore[attr-defined]
    return models[0]


def test_members_name_every_configuration_a_member_selector_may_pick(portfolio):
    members = Artifacts(portfolio).members()
    assert members["fixed:unassigned"]["learning_rate"] == 0.001  # a member no dataset is assigned
    assert members["searched:tune"] == TUNE and members["incumbent:slow"] == TUNE_SLOW and members["probes"] == CHEAP


@pytest.mark.slow
def test_a_member_selector_ships(portfolio, race_data, tmp_path):
    """A selector whose outputs are members names a member; the submission trains it."""
    sel = _FixedRanking(["fixed:unassigned", "fixed:probes"], outputs="members")
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out")
    d = model.decision
    assert d["fallback"] is None and d["chosen_dataset"] == "fixed:unassigned"
    assert d["configuration_source"] == "member fixed:unassigned" and d["configuration"]["learning_rate"] == 0.001


def test_a_member_the_portfolio_lacks_falls_back_to_the_single_best(portfolio, race_data, tmp_path):
    sel = _FixedRanking(["searched:gone"], outputs="members")
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out")
    assert "no configuration in portfolio.json" in model.decision["fallback"]
    assert model.decision["configuration_source"].startswith("single best")


@pytest.mark.slow
def test_the_race_measures_each_racer_and_the_best_continues(portfolio, race_data, tmp_path):
    sel = _FixedRanking(["tune", "probes", "slow"])
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out", hedge=3, hedge_share=0.6)
    race = model.decision["hedge"]
    # already running: it leads; named by the member the portfolio assigned to the dataset
    assert race[0]["source"] == "single best (member fixed:probes (the best on probes))"
    assert all(r["status"] == "measured" for r in race), race
    winner = max(race, key=lambda r: r["score"])
    assert model.decision["configuration_source"] == winner["source"]
    assert any(e.startswith("race won by") for e in model.decision["events"])
    # the racers after the lead skip the probes (they are shared), those that fine-tune
    assert all("probes=none" in r["configuration"] for r in race[1:])


@pytest.mark.slow
def test_the_race_is_deterministic_and_its_first_prediction_as_early_as_without(portfolio, race_data, tmp_path):
    sel = _FixedRanking(["tune", "slow"])
    a = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "a", hedge=2)
    b = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "b", hedge=2)
    plain = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "c", hedge=1)
    assert a.timestamps == b.timestamps and a.decision["hedge"] == b.decision["hedge"]
    assert a.timestamps[0] == plain.timestamps[0]
    assert "hedge" not in plain.decision


@pytest.mark.slow
@pytest.mark.parametrize("outputs", ["datasets", "members"])
def test_the_single_best_races_second_when_asked(portfolio, race_data, tmp_path, outputs):
    """``hedge_with_single_best``: the selector's pick, then the single best (``probes``, the
    selector's last), then the selector's next; without it the selector's top 2 race."""
    names = {"datasets": ["tune", "slow", "probes"], "members": ["searched:tune", "searched:slow", "fixed:probes"]}
    sel = _FixedRanking(names[outputs], outputs=outputs)
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out", hedge=2, hedge_with_single_best=True,
                 first_prediction="after-selection")
    configs = [r["configuration"] for r in model.decision["hedge"]]
    assert len(configs) == 2 and "learning_rate=0.003" in configs[0] and "finetune=False" in configs[1], configs
    plain = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "plain", hedge=2,
                 first_prediction="after-selection")
    assert ["learning_rate=0.0001" in r["configuration"] for r in plain.decision["hedge"]] == [False, True]
    # the pick is the single best: the selector's next races beside it
    first = _FixedRanking(list(reversed(names[outputs])), outputs=outputs)
    model = _run(_Artifacts(portfolio, first), race_data, tmp_path / "first", hedge=2, hedge_with_single_best=True,
                 first_prediction="after-selection")
    assert ["learning_rate=0.0001" in r["configuration"] for r in model.decision["hedge"]] == [False, True]


def test_with_the_single_best_racing_the_pick_leads_even_where_the_single_best_runs(portfolio, race_data, tmp_path):
    """The first prediction comes before selection, from the single best (``probes``): without
    the setting a running racer leads, so the single best would; with it the pick leads and
    the single best, stopped with its predictions kept, races second."""
    sel = _FixedRanking(["tune", "probes", "slow"])
    plain = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "plain", hedge=2)
    assert plain.decision["hedge"][0]["source"].startswith("single best")
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "anchored", hedge=2, hedge_with_single_best=True)
    race = model.decision["hedge"]
    assert [r["source"] for r in race] == ["member searched:tune (the best on tune)",
                                           "member fixed:probes (the best on probes)"], race
    assert plain.timestamps[0] == model.timestamps[0]  # the first prediction is the single best's either way
    # the single best was running: it waits its turn where it is, not started again
    assert any(e.startswith("race: resuming member fixed:probes") for e in model.decision["events"])


def test_without_a_validation_split_the_single_best_goes_on(portfolio, tmp_path):
    """Too few training examples to validate: the race has no evidence, so with the single best
    racing it is the single best (the portfolio's best on average) that goes on, not the pick."""
    tiny = write_stripes(tmp_path / "tiny", "tiny", n_train=12, n_test=6, seed=4)
    sel = _FixedRanking(["tune", "probes", "slow"])
    model = _run(_Artifacts(portfolio, sel), tiny, tmp_path / "out", hedge=2, hedge_with_single_best=True)
    assert any("the single best, the portfolio's best on average, goes on" in e for e in model.decision["events"])
    assert model.decision["configuration_source"] == "member fixed:probes (the best on probes)"
    plain = _run(_Artifacts(portfolio, sel), tiny, tmp_path / "plain", hedge=2)
    assert any("race ended: too few training examples" in e for e in plain.decision["events"])


def test_no_racer_starts_after_the_hedge_share(portfolio, race_data, tmp_path):
    sel = _FixedRanking(["tune", "slow", "probes"])
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out", hedge=3, hedge_share=0.01)
    statuses = [r["status"] for r in model.decision["hedge"]]
    assert statuses[0] == "measured" and set(statuses[1:]) == {"skipped"}


@pytest.mark.slow
def test_a_racer_that_fails_is_dropped_and_the_race_goes_on(portfolio, race_data, tmp_path, monkeypatch):
    from finetune import learner as learner_module

    real = learner_module.FineTuneLearner.train

    def train(self, dataset, remaining_time_budget=None):
        if self.config["learning_rate"] == TUNE_SLOW["learning_rate"]:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real(self, dataset, remaining_time_budget)

    monkeypatch.setattr(learner_module.FineTuneLearner, "train", train)
    sel = _FixedRanking(["tune", "slow"])
    model = _run(_Artifacts(portfolio, sel), race_data, tmp_path / "out", hedge=2, first_prediction="after-selection")
    statuses = {r["source"]: r["status"] for r in model.decision["hedge"]}
    assert statuses == {"member searched:tune (the best on tune)": "measured",
                        "member searched:slow (the best on slow)": "failed"}
    assert model.decision["configuration_source"] == "member searched:tune (the best on tune)"


@pytest.mark.parametrize("bad", [{"hedge": 0}, {"hedge": "2"}, {"hedge": True}, {"hedge": 9},
                                 {"hedge_share": 0.0}, {"hedge_share": 1.5}, {"hedge_with_single_best": "yes"}])
def test_bad_hedge_settings_name_the_field(bad):
    with pytest.raises(ArtifactError) as err:
        SubmissionSettings.from_dict(bad)
    assert err.value.field == next(iter(bad))


def test_member_names_come_from_the_portfolio_and_an_incumbent_portfolio_has_none(portfolio, tmp_path):
    assert Artifacts(portfolio).member_names() == {"probes": "fixed:probes", "tune": "searched:tune",
                                                    "slow": "searched:slow"}
    data = json.loads((portfolio / "portfolio.json").read_text())
    for inc in data["incumbents"]:
        del inc["member"]
    (portfolio / "portfolio.json").write_text(json.dumps(data))
    assert Artifacts(portfolio).member_names() == {}
