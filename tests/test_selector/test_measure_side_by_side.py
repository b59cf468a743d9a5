"""selector.measure: selectors measured side by side in worker processes give the rows one process gives.

The registered selectors below fit with numpy and scikit-learn on a tiny hand-made collection;
the fits' timings are the only fields that may differ.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_report import cost_matrix, features

from selector.base import SelectorError
from selector.measure import measure
from selector.specs import SelectorSpec

NAMES = ("nearest-centroid", "kmeans", "cost-sensitive", "member-regression", "single-best", "random", "oracle")
IDENT = {"batch_sizes": (1, 4, 16), "n_batches": 2}
LODO = {"query_size": 8, "n_queries": 2, "nested_fallback": True, "inner_queries": 1}


def _plain(rows):
    """Rows without their timings; NaN as a string (NaN != NaN)."""
    def value(v):
        return "nan" if isinstance(v, float) and np.isnan(v) else v
    return [{k: value(v) for k, v in r.items() if "seconds" not in k} for r in rows]


@pytest.mark.slow
def test_side_by_side_gives_the_rows_of_one_process():
    specs = [SelectorSpec(n, {"n_clusters": 3} if n == "kmeans" else {}, label=n) for n in NAMES]
    data, cost = features(), cost_matrix()
    one = measure(specs, data, cost, None, seeds=(0, 1), ident_args=IDENT, lodo_args=LODO, workers=1)
    steps = []
    two = measure(specs, data, cost, None, seeds=(0, 1), ident_args=IDENT, lodo_args=LODO, workers=2,
                  progress=lambda stage, done, total: steps.append((stage, done, total)))
    assert one.lodo and one.identification and one.queries and one.inner_queries
    for field in ("identification", "lodo", "queries", "inner_queries"):
        assert _plain(getattr(two, field)) == _plain(getattr(one, field)), field
    assert two.skipped == one.skipped and list(two.skipped) == list(one.skipped)
    assert steps[0] == ("selectors", 0, 2 * len(specs)) and steps[-1] == ("selectors", 2 * len(specs), 2 * len(specs))


@pytest.mark.parametrize("workers", [0, -1, True, 1.5])
def test_workers_must_be_a_positive_count(workers):
    with pytest.raises(SelectorError, match="workers"):
        measure([SelectorSpec("single-best")], features(), cost_matrix(), None, seeds=(0,), ident_args=IDENT,
                lodo_args=LODO, workers=workers)


@pytest.mark.parametrize("workers", [1, 2])
def test_kept_parts_resume_an_interrupted_measurement(tmp_path, monkeypatch, workers):
    import selector.measure as m

    specs = [SelectorSpec(n, label=n) for n in ("nearest-centroid", "cost-sensitive", "single-best")]
    data, cost = features(), cost_matrix()
    plain = measure(specs, data, cost, None, seeds=(0, 1), ident_args=IDENT, lodo_args=LODO, workers=1)
    parts = tmp_path / "parts"
    first = measure(specs, data, cost, None, seeds=(0, 1), ident_args=IDENT, lodo_args=LODO, workers=workers,
                    parts=parts)
    kept = sorted(parts.glob("*.json"))
    assert len(kept) == 2 * len(specs)
    for field in ("identification", "lodo", "queries", "inner_queries"):
        assert _plain(getattr(first, field)) == _plain(getattr(plain, field)), field
    # interrupted: one job lost, one written half; only those two are measured again, in this process
    lost = next(p for p in kept if p.name.startswith("cost-sensitive-seed1-"))
    lost.unlink()
    half = next(p for p in kept if p.name.startswith("single-best-seed0-"))
    half.write_text(half.read_text()[:50])
    calls = []
    real = m._one
    monkeypatch.setattr(m, "_one", lambda specs, *a, **k: calls.append([s.label for s in specs]) or real(specs, *a, **k))
    again = measure(specs, data, cost, None, seeds=(0, 1), ident_args=IDENT, lodo_args=LODO, workers=1, parts=parts)
    assert sorted(calls) == [["cost-sensitive"], ["single-best"]]
    for field in ("identification", "lodo", "queries", "inner_queries"):
        assert getattr(again, field) == getattr(first, field) or _plain(getattr(again, field)) == _plain(
            getattr(first, field)), field
    # other data: nothing kept is read (the digest names the features and the cost matrix)
    calls.clear()
    cost.alc[0, 0] = cost.alc[0, 0] - 0.01
    measure(specs, data, cost, None, seeds=(0,), ident_args=IDENT, lodo_args=LODO, workers=1, parts=parts)
    assert len(calls) == len(specs)
