"""The issue's acceptance run: scikit-learn digits under the `mini` protocol (T=60 s, t0=3 s).

baseline:default must reach a final NAUC >= 0.95 and an ALC clearly above
baseline:linear, measured in the same test run, with no prediction stamped after T.
"""

from __future__ import annotations

import pytest

from autodl.protocol import load_protocol
from autodl.sources import write_source
from autodl_meta.runner import run_local


@pytest.mark.slow
@pytest.mark.smoke
def test_default_beats_linear_on_digits_under_mini(tmp_path):
    data = write_source("digits", tmp_path / "digits")
    mini = load_protocol("mini")
    results = {}
    for model in ("baseline:linear", "baseline:default"):
        res = run_local(data, model, mini, tmp_path / model.replace(":", "-"))
        s = res.score
        assert s.timestamps and max(s.timestamps) <= mini.time_budget, (model, s.timestamps)
        results[model] = s
    default, linear = results["baseline:default"], results["baseline:linear"]
    assert default.nauc_scores[-1] >= 0.95
    assert default.score > linear.score + 0.01, (default.score, linear.score)
