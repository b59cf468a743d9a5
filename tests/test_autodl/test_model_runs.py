"""``autodl.model_runs``: any model under ingestion and scoring, as one record that never raises.

The models here are small stand-ins with the challenge's ``Model`` interface; the clocks
are simulated (or the guard under test does not depend on how fast the machine is).
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from autodl.clock import ClockTimeout, CpuClock, SimulatedClock, WallClock, WatchedClock
from autodl.errors import AutoDLError
from autodl.ingestion import run_ingestion
from autodl.model_runs import Evaluation, capture_log, evaluate_model, shortened
from autodl.protocol import Protocol
from autodl.scoring import alc
from autodl.writer import write_arrays

PROTO = Protocol("test", time_budget=100.0, t0=5.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    rng = np.random.default_rng(0)
    root = tmp_path_factory.mktemp("ev") / "tiny"
    x = rng.integers(0, 256, (12, 6, 6, 1), dtype=np.uint8)
    xt = rng.integers(0, 256, (6, 6, 6, 1), dtype=np.uint8)
    write_arrays(root, "tiny", x, np.arange(12) % 3, xt, np.arange(6) % 3)
    return root


class Oracle:
    """Predicts the test labels (read by the test, not by the model) after ``seconds`` per call."""

    solution: np.ndarray

    def __init__(self, meta, clock, seconds=10.0, calls=3, fail_at=None):
        self.clock, self.seconds, self.calls, self.fail_at = clock, seconds, calls, fail_at
        self.done_training = False
        self.k = 0

    def train(self, dataset, remaining_time_budget=None):
        if self.k == self.fail_at:
            raise ValueError("the model broke")
        self.clock.advance(self.seconds)
        self.k += 1
        self.done_training = self.k >= self.calls

    def test(self, dataset, remaining_time_budget=None):
        return self.solution


@pytest.fixture
def oracle(tiny):
    from autodl.dataset import AutoDLDataset

    Oracle.solution = AutoDLDataset(tiny).solution()
    return Oracle


def test_ok_evaluation_has_the_curve_and_the_alc(tiny, oracle):
    ev = evaluate_model(lambda m, c: oracle(m, c), tiny, PROTO, clock=SimulatedClock(), clock_name="simulated",
                        model="oracle")
    assert ev.status == "ok" and ev.ok and ev.error is None
    assert ev.curve.timestamps == [10.0, 20.0, 30.0] and ev.curve.nauc == [1.0, 1.0, 1.0]
    assert ev.alc == pytest.approx(alc([10.0, 20.0, 30.0], [1.0] * 3, 100.0, 5.0))
    assert ev.final_nauc == 1.0 and ev.clock == "simulated" and ev.protocol["time_budget"] == 100.0


def test_a_crash_is_a_crashed_result_with_its_traceback_not_an_alc_of_zero(tiny, oracle):
    ev = evaluate_model(lambda m, c: oracle(m, c, fail_at=1), tiny, PROTO, clock=SimulatedClock(),
                        clock_name="simulated")
    assert ev.status == "crashed" and ev.alc is None
    assert "the model broke" in ev.error and "ValueError" in ev.traceback and "train" in ev.traceback
    assert len(ev.curve) == 1  # the prediction made before the crash is kept in the curve


def test_a_crash_in_the_constructor_is_crashed_too(tiny):
    def broken(meta, clock):
        raise FileNotFoundError("weights.pth")

    ev = evaluate_model(broken, tiny, PROTO, clock=SimulatedClock(), clock_name="simulated")
    assert ev.status == "crashed" and ev.alc is None and "weights.pth" in ev.error


def test_a_model_that_never_advances_the_simulated_clock_is_stopped(tiny, oracle):
    ev = evaluate_model(lambda m, c: oracle(m, c, seconds=0.0, calls=10 ** 9), tiny, PROTO,
                        clock=SimulatedClock(), clock_name="simulated")
    assert ev.status == "timeout" and "did not advance the simulated clock" in ev.error
    # its predictions, all stamped t=0 s, would score a perfect ALC: no ALC, the curve kept
    assert ev.alc is None and len(ev.curve) > 0 and set(ev.curve.timestamps) == {0.0}


class Spinner:
    """Reads the clock forever inside ``train``: only the wall-time limit can stop it."""

    def __init__(self, meta, clock):
        self.clock = clock
        self.done_training = False

    def train(self, dataset, remaining_time_budget=None):
        while True:
            self.clock.now()
            time.sleep(0.01)

    def test(self, dataset, remaining_time_budget=None):  # pragma: no cover - never reached
        raise AssertionError


def test_a_model_far_past_its_wall_limit_is_stopped(tiny):
    ev = evaluate_model(Spinner, tiny, PROTO, clock=SimulatedClock(), clock_name="simulated", wall_limit=0.3)
    assert ev.status == "timeout" and "wall-time limit of 0.3 s" in ev.error and ev.alc is None


def test_the_watched_clock_raises_past_its_limit_and_delegates():
    clock = WatchedClock(SimulatedClock(start=5.0), wall_limit=0.05)
    assert clock.simulated and clock.now() == 5.0  # not armed yet: no limit
    clock.arm()
    assert clock.advance(1.0) == 6.0
    with pytest.raises(ClockTimeout):
        while True:
            clock.now()
    assert not WatchedClock(WallClock(), 10).simulated


def test_the_watched_clock_stops_on_cpu_seconds_but_not_on_waiting():
    """The simulated clock's guard counts CPU seconds: waiting (a loaded machine) does not
    use them, so it does not stop a sound model; work does."""
    clock = WatchedClock(SimulatedClock(), wall_limit=100.0, cpu_limit=0.2)
    clock.arm()
    time.sleep(0.3)  # wall time passes, hardly any CPU time
    clock.now()
    with pytest.raises(ClockTimeout, match="CPU-time limit of 0.2 s"):
        while True:  # burns CPU
            sum(range(1000))
            clock.now()


def test_the_cpu_clock_counts_work_and_charges_sleep_without_waiting():
    clock = CpuClock(start=100.0)
    t = clock.now()
    assert 100.0 <= t < 200.0 and not clock.simulated
    clock.sleep(30.0)
    assert clock.now() - t >= 30.0
    before = clock.now()
    sum(i * i for i in range(200_000))
    assert clock.now() > before


def test_shortened_protocol_and_budget_checks(tiny, oracle):
    assert shortened(PROTO, 1.0) is PROTO
    half = shortened(PROTO, 0.5)
    assert half.time_budget == 50.0 and half.t0 == PROTO.t0
    for bad in (0, 1.5, -0.1, "half"):
        with pytest.raises(AutoDLError, match="budget"):
            shortened(PROTO, bad)
    ev = evaluate_model(lambda m, c: oracle(m, c), tiny, PROTO, clock=SimulatedClock(), clock_name="simulated",
                        budget=0.5)
    assert ev.budget == 0.5 and ev.protocol["time_budget"] == 50.0
    assert ev.alc == pytest.approx(alc([10.0, 20.0, 30.0], [1.0] * 3, 50.0, 5.0))


def test_evaluation_round_trips_through_json(tiny, oracle):
    ev = evaluate_model(lambda m, c: oracle(m, c), tiny, PROTO, clock=SimulatedClock(), clock_name="simulated",
                        model={"backbone": "x"}, seed=3)
    back = Evaluation.from_dict(json.loads(ev.to_json()))
    assert back == ev and "ok: ALC" in ev.summary()


def test_outputs_are_kept_only_when_asked(tiny, oracle, tmp_path):
    evaluate_model(lambda m, c: oracle(m, c), tiny, PROTO, clock=SimulatedClock(), clock_name="simulated",
                   out=tmp_path / "kept")
    assert (tmp_path / "kept" / "scores" / "scores.txt").is_file()
    assert (tmp_path / "kept" / "scores" / "learning-curve.png").is_file()
    assert len(list((tmp_path / "kept" / "predictions").glob("tiny.predict_*"))) == 3


def test_capture_log_leaves_nothing_behind(tmp_path):
    root = logging.getLogger()
    handlers, levels = list(root.handlers), {n: logging.getLogger(n).level for n in ("autodl", "finetune")}
    with capture_log(tmp_path / "log.txt"):
        logging.getLogger("finetune.learner").info("inside")
        logging.getLogger("elsewhere").warning("not ours")
    logging.getLogger("finetune.learner").info("after")
    text = (tmp_path / "log.txt").read_text()
    assert "inside" in text and "not ours" not in text and "after" not in text
    assert root.handlers == handlers
    assert {n: logging.getLogger(n).level for n in ("autodl", "finetune")} == levels


def test_ingestion_status_and_traceback(tiny, oracle, tmp_path):
    res = run_ingestion(tiny, lambda m, c: oracle(m, c, fail_at=0), tmp_path, 100, clock=SimulatedClock())
    assert res.status == "crashed" and not res.success and "Traceback" in res.traceback
    assert (tmp_path / "end.txt").read_text().count("ingestion_success: 0") == 1
