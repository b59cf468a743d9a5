"""``evaluate``: one fine-tuning configuration (or any model name) on one dataset, under a protocol.

The unit everything offline is made of (BOHB's trials, the cost matrix's cells, the
selectors' leave-one-dataset-out scores). It builds the model and the clock and hands
them to :func:`autodl.model_runs.evaluate_model`, which runs ingestion in this process,
scores the predictions and returns an :class:`~autodl.model_runs.Evaluation`.

Clocks (see :mod:`autodl.clock` and ``docs/clocks.md`` for how well each agrees with the
wall clock):

* ``simulated``: every operation the learner performs is charged from a measured timing
  table (:class:`finetune.timing.TimingTable`); the same result on every run and every
  machine load. Needs the table of the machine whose speed it stands for
  (default: :data:`DEFAULT_TIMING`).
* ``cpu``: the CPU seconds of this process. Little disturbed by other processes; run one
  evaluation per process with one PyTorch thread (:func:`torch_threads`).
* ``wall``: the wall clock, in this process (the budget is enforced by the learner and by
  a wall-time limit; :func:`run_local_model` is the organizers' local test instead, with
  ingestion in a child process that is killed at the budget).

Safe to call many times in one process and from worker threads or processes: the
learner draws every random number from its own generators (the global PyTorch generator
is forked and restored around its use), changes no thread setting, adds nothing to the
root logger, and the memory it held is released before this returns.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autodl.clock import CLOCKS, Clock, CpuClock, SimulatedClock, WallClock
from autodl.dataset import AutoDLDataset
from autodl.errors import AutoDLError
from autodl.model_runs import Evaluation, RunResult, evaluate_model, run_local, shortened
from autodl.protocol import Protocol, load_protocol
from finetune.models import check_model, is_tf1_name, reads_simulated_clock, resolve_model

DEFAULT_TIMING = Path(__file__).resolve().parents[1] / "configs" / "timing" / "cpu-2core-epyc.json"
"""The timing table the simulated clock uses by default: this project's 2-core CPU."""

DEFAULT_CLOCK = "simulated"
"""The clock offline work uses by default (chosen by ``autodl-meta benchmark clocks``:
see ``docs/clocks.md``)."""


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Set PyTorch's intra-op threads to ``n`` inside (a process-wide setting: the caller's
    choice, never the learner's); None leaves it as it is."""
    if not n:
        yield
        return
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def make_clock(name: str) -> Clock:
    """A fresh clock by name (``simulated``, ``cpu``, ``wall``)."""
    if name == "simulated":
        return SimulatedClock()
    if name == "cpu":
        return CpuClock()
    if name == "wall":
        return WallClock()
    raise AutoDLError(None, f"unknown clock {name!r}; known: {', '.join(CLOCKS)}", field="clock")


def _model_label(model: str | Mapping[str, Any]) -> Any:
    return model if isinstance(model, str) else dict(model)


def evaluate(config: str | Mapping[str, Any], dataset: str | Path | AutoDLDataset, protocol: Protocol | str, *,
             clock: str = DEFAULT_CLOCK, seed: int = 0, budget: float = 1.0, device: str | None = None,
             timing: Any = None, metric: str = "alc", out: str | Path | None = None,
             wall_limit: float | None = None, portfolio: str | Path | None = None,
             **learner_kwargs: Any) -> Evaluation:
    """Evaluate one configuration on one dataset.

    Parameters
    ----------
    config
        A fine-tuning configuration (a mapping over ``configs/space/finetune.yaml``), or a
        model name: ``baseline:default|scratch|linear``, ``baseline:single-best|oracle``
        (with ``portfolio``), ``config:PATH``, ``file:PATH`` (not ``file-tf1:PATH``, which
        runs only in a process of its own: :func:`run_local_model`).
    dataset
        The AutoDL dataset.
    protocol
        A :class:`~autodl.protocol.Protocol` or its name (``mini``, ``autocv``).
    clock
        ``simulated`` (default), ``cpu`` or ``wall``.
    seed
        The learner's seed (splits, batches, augmentation, initialisation).
    budget
        Fraction of the protocol's T to use (multi-fidelity; see
        :mod:`autodl.model_runs` for how the ALC of a shortened run is defined).
    device
        ``cpu`` or ``cuda`` (default: CUDA when available).
    timing
        The simulated clock's timing table: a :class:`~finetune.timing.TimingTable` or a
        path (default :data:`DEFAULT_TIMING`). Ignored by the other clocks.
    metric
        ``alc`` (the challenge's) or ``bac`` (the seed hackathon's balanced-accuracy
        area, see :mod:`autodl.scoring`).
    out
        Keep ``predictions/``, ``scores/`` and ``ingestion.log`` here (default: nothing kept).
    wall_limit
        Wall seconds after which the model is stopped with status ``timeout``.
    portfolio
        The portfolio folder ``baseline:single-best`` and ``baseline:oracle`` read
        (:func:`portfolio.baselines.portfolio_config`).
    learner_kwargs
        More keyword arguments of :class:`finetune.learner.FineTuneLearner`
        (e.g. ``num_predictions``).

    Returns
    -------
    Evaluation
        Status (``ok``, ``crashed``, ``timeout``), ALC, final NAUC, the learning curve,
        wall seconds, the clock, and the traceback of a crash.

    Raises
    ------
    AutoDLError
        Before anything runs: an unknown model or clock, an invalid configuration, one
        that cannot run here (missing weights), a timing table that cannot price it,
        a dataset or solution that cannot be read.
    """
    from finetune.embedding_cache import caching
    from finetune.timing import TimingTable

    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    shortened(proto, budget)  # a bad budget fails here
    if clock not in CLOCKS:
        raise AutoDLError(None, f"unknown clock {clock!r}; known: {', '.join(CLOCKS)}", field="clock")
    if isinstance(config, str) and is_tf1_name(config):
        raise AutoDLError(None, f"{config}: a TensorFlow-1-era model runs only in a process of its own, on the wall "
                                f"clock (run_local_model; `autodl-meta run` with --clock wall): TensorFlow 1 "
                                f"compatibility mode changes TensorFlow for the whole process", field="model")
    kwargs: dict[str, Any] = {"t0": proto.t0, "device": device, "seed": seed,
                              "max_train_examples": proto.max_train_examples, **learner_kwargs}
    if clock == "simulated":
        if isinstance(config, str) and not reads_simulated_clock(config):
            raise AutoDLError(None, f"{config} reads the wall clock; the simulated clock runs the fine-tuning "
                                    f"learner only (baseline:default|scratch, config:PATH, a configuration)",
                              field="model")
        kwargs["timing"] = timing if isinstance(timing, TimingTable) else TimingTable.load(timing or DEFAULT_TIMING)
    factory = resolve_model(config, portfolio=portfolio, dataset=dataset,
                            **{k: v for k, v in kwargs.items() if v is not None})
    if clock == "simulated":
        _check_priced(factory, dataset, kwargs["timing"])
    with caching(clock == "simulated"):  # priced, not measured: recomputing the same features changes nothing
        return evaluate_model(factory, dataset, proto, clock=make_clock(clock), clock_name=clock, budget=budget,
                              metric=metric, out=out, wall_limit=wall_limit, model=_model_label(config),
                              seed=seed if not isinstance(config, str) or reads_simulated_clock(config) else None)


def _check_priced(factory: Callable[..., Any], dataset: str | Path | AutoDLDataset, timing: Any) -> None:
    """Refuse, before anything runs, a configuration the timing table cannot price."""
    config = getattr(factory, "config", None)
    if config is None:
        return
    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    meta = ds.metadata("train")
    frames = 1 if meta.get_sequence_size() == 1 else int(config["frames_per_clip"])
    timing.check(config, frames=frames)


def ingestion_command(dataset: str | Path, model: str, protocol: Protocol, pred_dir: str | Path, *,
                      device: str | None = None, seed: int | None = None, threads: int | None = None,
                      portfolio: str | Path | None = None, scored_rows: int | None = None) -> list[str]:
    """The argv of the child process that runs ingestion for :func:`run_local_model`
    (``scored_rows``: see :func:`autodl.ingestion.run_ingestion`)."""
    cmd = [sys.executable, "-m", "finetune.models", "--dataset", str(dataset), "--model", model,
           "--time-budget", str(protocol.time_budget), "--t0", str(protocol.t0), "--out", str(pred_dir)]
    for flag, value in (("--device", device), ("--seed", seed), ("--threads", threads),
                        ("--max-train-examples", protocol.max_train_examples), ("--portfolio", portfolio),
                        ("--scored-rows", scored_rows)):
        if value is not None:
            cmd += [flag, str(value)]
    return cmd


def run_local_model(dataset: str | Path, model: str, protocol: Protocol, out: str | Path, *,
                    device: str | None = None, seed: int | None = None, threads: int | None = None,
                    on_tick: Callable[[float, int], None] | None = None,
                    portfolio: str | Path | None = None, env: Mapping[str, str] | None = None,
                    ingestion_dataset: str | Path | None = None, scored_rows: int | None = None) -> RunResult:
    """The organizers' local test of a model name: ingestion in a child process on the wall
    clock, killed at the budget; this process scores (see :func:`autodl.model_runs.run_local`).

    ``env`` adds variables to the child's environment. ``ingestion_dataset`` is what the
    child runs on when it differs from ``dataset`` (whose solution is scored): a copy whose
    test set has unlabelled examples appended, with ``scored_rows`` the number of real test
    examples (see :func:`autodl.ingestion.run_ingestion`).
    """
    check_model(model, portfolio=portfolio, dataset=dataset)  # an unknown or unrunnable model fails here
    pred_dir = Path(out) / "predictions"
    cmd = ingestion_command(AutoDLDataset(ingestion_dataset or dataset).root, model, protocol, pred_dir,
                            device=device, seed=seed, threads=threads,
                            portfolio=None if portfolio is None else Path(portfolio).resolve(),
                            scored_rows=scored_rows)
    return run_local(dataset, cmd, protocol, out, on_tick=on_tick, env=env)
