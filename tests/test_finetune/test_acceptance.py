"""The acceptance runs: scikit-learn digits under the `mini` protocol (T=60 s, t0=3 s).

On the wall clock (the organizers' local test, ingestion in a child process) only the
structure and the budget are checked: what an ALC measured on the wall clock comes out
as depends on the load of the machine. The comparison of ALCs runs on the simulated
clock with a fixed seed (the committed timing table), and gives the same numbers on
every run.
"""

from __future__ import annotations

import pytest
import yaml

from autodl.protocol import load_protocol
from autodl.sources import write_source
from finetune.config_runs import evaluate, run_local_model, torch_threads


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return write_source("digits", tmp_path_factory.mktemp("acc") / "digits")


@pytest.mark.slow
@pytest.mark.smoke
def test_default_on_the_wall_clock_predicts_within_the_budget(digits, tmp_path):
    mini = load_protocol("mini")
    res = run_local_model(digits, "baseline:default", mini, tmp_path / "run", threads=1)
    s = res.score
    assert s.timestamps and max(s.timestamps) <= mini.time_budget, s.timestamps
    assert not res.killed and res.end_written and res.ingestion_success
    end = yaml.safe_load((res.predictions_dir / "end.txt").read_text())
    assert end["ingestion_success"] == 1 and end["ingestion_duration"] <= mini.time_budget


@pytest.mark.slow
def test_default_ends_better_than_probes_alone_on_digits_simulated(digits):
    """Fine-tuning must add to what the ridge probes reach alone, on the simulated clock.

    On digits (8 px, easy) the probes alone are hard to beat in ALC under `mini`
    (measured with the first committed table, seed 0: probes-only 0.9726, default
    0.9704): the fine-tuned network must end better than the probes (there: final NAUC
    0.9988 against 0.9950) without losing more than 0.01 ALC on the way."""
    mini = load_protocol("mini")
    with torch_threads(1):
        default = evaluate("baseline:default", digits, mini, clock="simulated", seed=0)
        probes = evaluate({"backbone": "tf_efficientnet_lite0", "finetune": False}, digits, mini,
                          clock="simulated", seed=0)
    assert default.ok and probes.ok, (default.error, probes.error)
    assert default.final_nauc >= 0.95
    assert default.final_nauc > probes.final_nauc, (default.final_nauc, probes.final_nauc)
    assert default.alc >= 0.95 and default.alc > probes.alc - 0.01, (default.alc, probes.alc)
    assert any(h["steps"] > 0 for h in default.history) and all(h["steps"] == 0 for h in probes.history)
    assert max(default.curve.timestamps) <= mini.time_budget
