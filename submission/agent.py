"""The whole method inside the challenge's protocol: select a configuration for the dataset
at hand, fine-tune it under the remaining budget, and never end without predictions.

:class:`MetaModel` has the challenge's ``Model`` interface (``train``, ``test``,
``done_training``); ``submission/model.py`` (the zip's ``model.py``) is a thin wrapper
that finds the artifacts (:mod:`submission.artifacts`) beside it.

1. **Construction** (outside the budget: the organizers give ``Model(metadata)`` its own
   time limit) loads the portfolio, the single best and the selector, builds the embedder
   the selector's card names (where selecting needs embeddings: :meth:`MetaModel._needs_embedding`)
   and the single best configuration's learner. What fails here
   is logged and remembered; nothing is raised.
2. **Selection** (first ``train`` call, or the second with ``first_prediction:
   before-selection``, see :class:`~submission.artifacts.SubmissionSettings`): a seeded
   stratified sample of ``query_size`` training examples is decoded and embedded exactly
   as the training datasets' meta-features were (:mod:`metafeatures.embeddings`: same
   backbone, input size, frames and scaling), described (:mod:`metafeatures.descriptors`'
   keys, from the metadata and the sample), reduced to the learner's raw-pixel probe
   features (:func:`metafeatures.probe.raw_probe_features`, as the training datasets'
   ``train_raw``), and handed to the selector as a :class:`~metafeatures.features.Query`. Its pick is used unless its confidence is below
   the card's fallback threshold or its novelty (distance of the batch to the nearest
   training dataset, in standard errors) above it: then the single best. A selector that
   needs no query (``single-best``) costs nothing; one that reads only the descriptors
   (``reads_embeddings`` false, e.g. ``descriptor-knn``, shipped without a novelty
   threshold) gets them alone (:func:`metafeatures.descriptors.describe_new`: the metadata,
   the labels and, where sizes vary, a few examples' stored sizes): no batch is decoded
   and no network runs, so selecting costs milliseconds instead of an embedding pass.
   A selector whose outputs are portfolio members (:mod:`selector.member_selectors`) names
   a member, a dataset selector a training dataset: both are looked up in ``portfolio.json``
   (:meth:`~submission.artifacts.Artifacts.members`).
3. **Fine-tuning**: the chosen incumbent's :class:`~finetune.learner.FineTuneLearner`
   trains under the remaining budget; ``test`` returns the predictions of the best
   validation NAUC of every learner that ran (they share the validation split: same
   seed, same subset).
   **Hedging** (``hedge`` >= 2 in :class:`~submission.artifacts.SubmissionSettings`): the
   selector's top ``hedge`` distinct configurations race. The first (the one already
   running where it is among them) keeps its probes, so the first predictions come as early
   as without a race; each of the others then skips the probes (they are shared: their
   predictions stand in the returned best) and fine-tunes for one chunk of its schedule
   (a configuration without fine-tuning runs its probes). A racer is *measured* after its
   first network test (or when it has finished); its score is its best validation NAUC of
   the network (its probes' where it does not fine-tune). The next racer starts only while
   less than ``hedge_share`` of the budget is spent; then the best measured racer continues
   and the others are dropped. A racer that fails is dropped. With ``hedge_with_single_best``
   the portfolio's single best races second (where the pick is not it), before the
   selector's next picks, and only the pick may lead: a running single best waits its turn
   (its predictions and progress kept) rather than lead the race, so the selector's choice
   predicts first; with too few examples for a validation split the single best goes on.
4. **Degrading**: a learner that cannot be built or fails in ``train`` or ``test`` (a
   backbone's weights missing, CUDA out of memory, anything) is replaced by the next of
   the chain: chosen configuration, single best, a probes-only configuration that needs
   no pretrained weights, on the CPU; when all have failed, the training labels' class
   frequencies. Each step is logged with its reason.

The decision (chosen dataset, confidence, thresholds, novelty, fallback and why, the
configuration, the seconds selection took, every degradation) is logged at INFO, kept in
:attr:`MetaModel.decision` and, when the environment variable ``AUTODL_META_DECISION``
names a file, written there as JSON after each change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodl.clock import Clock, WallClock
from autodl.records import atomic_write_text
from submission.artifacts import Artifacts, SubmissionSettings

logger = logging.getLogger(__name__)

DECISION_ENV = "AUTODL_META_DECISION"
"""Environment variable naming a file the decision is written to (JSON)."""

SIMPLE_CONFIG: dict[str, Any] = {
    "backbone": "scratch_cnn",
    "pretrained": False,
    "probes": "raw+random",
    "finetune": False,
    "num_predictions": 6,
}
"""The last configuration of the chain: ridge probes on raw pixels and random features, no
pretrained weights, no gradient step (what is left when backbones fail)."""

DEFAULT_QUERY_SIZE = 64

AGENT_VERSION = 2
"""What the agent decides, beyond its artifacts: raised whenever the same artifacts would
run differently (2: a selector of the descriptors alone selects without an embedding pass,
and variable sizes are described by the stored sizes, not the resized batch's). Results keyed
by a submission's artifacts (the held-out benchmark's units) carry it, so that rows of an
older agent are run again, not reused."""

MAX_SELECTION_SHARE = 0.5
"""Selection is skipped (the single best kept) when its expected seconds exceed this share of
what is left of the budget (a selection that cannot pay for itself)."""


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def _train_labels(dataset: Any) -> np.ndarray:
    """The training labels ``[N, K]`` (without decoding frames where the source is known)."""
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        ds, subset = src
        return np.asarray(ds.labels(subset), dtype=np.float32)
    return np.stack([np.asarray(y, dtype=np.float32).reshape(-1) for _, y in dataset.as_numpy_iterator()])


def _count(dataset: Any) -> int:
    from autodl.ingestion import source_of

    src = source_of(dataset)
    if src is not None:
        ds, subset = src
        return int(ds.metadata(subset).sample_count)
    return sum(1 for _ in dataset.as_numpy_iterator())


class MetaModel:
    """The submission's model (see the module docstring).

    Parameters
    ----------
    metadata:
        The train set's metadata (``AutoDLMetadata``).
    artifacts:
        A folder of artifacts, or :class:`~submission.artifacts.Artifacts`.
    clock:
        What "now" is (the wall clock by default; a simulated clock needs ``timing``).
    timing:
        A :class:`finetune.timing.TimingTable` for a simulated clock.
    settings:
        Replaces the artifacts' ``submission.json``.
    overrides:
        Settings that override single fields of ``submission.json`` (or of ``settings``), e.g.
        ``{"hedge": 2}``; invalid ones are an event and ignored (the run goes on).
    """

    def __init__(self, metadata: Any, artifacts: str | Path | Artifacts, *, selector_dir: str | Path | None = None,
                 clock: Clock | None = None, timing: Any = None, settings: SubmissionSettings | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        t_start = time.perf_counter()
        self.metadata = metadata
        self.clock = clock or WallClock()
        self.timing = timing
        self.done_training = False
        self.decision: dict[str, Any] = {"selector": None, "chosen_dataset": None, "confidence": None,
                                         "threshold": None, "novelty": None, "fallback": None,
                                         "configuration": None, "configuration_source": None,
                                         "selection_seconds": None, "events": []}
        self.learner: Any = None
        # the best predictions of every learner so far: (validation NAUC, test predictions, source)
        self._best: tuple[float, np.ndarray, str] | None = None
        self._chain: list[tuple[str, dict[str, Any]]] = []  # (source, config) still to try
        self._calls = 0
        self._selected = False
        self._frequencies: np.ndarray | None = None
        self._n_test: int | None = None
        self._last: np.ndarray | None = None
        self._anchor: tuple[float, float | None] = (0.0, None)
        self._selection_estimate = 0.0  # seconds one selection is expected to take (measured at construction)
        self._budget: tuple[float, float | None] | None = None  # (clock at the first train call, its budget)
        self._race: list[_Racer] = []  # the hedge's racers, in turn order, while the race lasts
        self._race_single_best: _Racer | None = None  # with hedge_with_single_best: its racer (not the pick)

        arts = artifacts if isinstance(artifacts, Artifacts) else self._guard(
            "reading the artifacts", lambda: Artifacts(artifacts, selector_dir))
        self.artifacts = arts
        self.settings = settings or (arts and self._guard("reading submission.json", arts.settings)) \
            or SubmissionSettings()
        if overrides:
            self.settings = self._guard(f"applying the settings {dict(overrides)}",
                                        lambda: SubmissionSettings.from_dict({**self.settings.to_dict(), **overrides})) \
                or self.settings
        if arts is not None:
            self._guard("using the shipped weights", self._use_weights)
        self.incumbents = (arts and self._guard("reading portfolio.json", arts.incumbents)) or {}
        self.members = (arts and self.incumbents and self._guard("reading the portfolio's members",
                                                                 arts.members)) or dict(self.incumbents)
        self.member_names = (arts and self.incumbents and self._guard("reading the portfolio's member names",
                                                                      arts.member_names)) or {}
        single = arts and self._guard("reading the single best", arts.single_best)
        self.single_best = single if single in self.incumbents else None
        self.selector = arts and self._guard("loading the selector", arts.selector)
        self.thresholds = self._thresholds()
        self.embedder = None
        if self.selector is not None and self._needs_embedding():
            self.embedder = self._guard("building the selector's embedder", self._build_embedder)
            if self.embedder is None:
                self.selector = None
            else:
                self._selection_estimate = self._guard("timing the embedder", self._time_embedder) or 0.0
        if self.selector is not None:
            self.decision["selector"] = self.selector.name
        # the single best learner is built now, outside the budget: it is the fallback and,
        # with first_prediction before-selection, the first predictor
        if self.single_best is not None:
            self._chain.append((f"single best ({self._dataset_source(self.single_best)})",
                                self.incumbents[self.single_best]))
        self._chain.append(("probes only (no pretrained weights)", dict(SIMPLE_CONFIG)))
        if self.settings.first_prediction == "before-selection" or self.selector is None:
            self._next_learner()
        logger.info("submission ready in %.1f s: %d incumbents, single best %s, selector %s, first prediction %s",
                    time.perf_counter() - t_start, len(self.incumbents), self.single_best,
                    self.decision["selector"], self.settings.first_prediction)

    # --- construction helpers ---------------------------------------------------------------
    def _guard(self, what: str, fn: Any) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - every failure degrades, none ends the run
            self._event(f"{what} failed ({_short(exc)})", level=logging.WARNING)
            logger.debug("%s", traceback.format_exc())
            return None

    def _event(self, message: str, level: int = logging.INFO) -> None:
        logger.log(level, "%s", message)
        self.decision["events"].append(message)
        self._write_decision()

    def _write_decision(self) -> None:
        path = os.environ.get(DECISION_ENV)
        if not path:
            return
        try:
            atomic_write_text(path, json.dumps(self.decision, indent=1, default=str))
        except OSError as exc:
            logger.warning("could not write the decision to %s: %s", path, exc)

    def _use_weights(self) -> None:
        from finetune.backbones import add_weights_dir

        folder = self.artifacts.weights_dir()
        if folder is not None:
            root = self.artifacts.root
            add_weights_dir(folder, verify=lambda path: self.artifacts.checked(path.relative_to(root).as_posix()))

    def _thresholds(self) -> dict[str, Any] | None:
        if self.selector is None:
            return None
        try:
            card = json.loads((self.artifacts.selector_dir / "selector.json").read_text())
            fb = (card.get("scores") or {}).get("fallback") or {}
        except (OSError, json.JSONDecodeError):
            return None
        return {"confidence": float(fb.get("confidence_threshold") or 0.0),
                "novelty": None if fb.get("novelty_threshold") is None else float(fb["novelty_threshold"]),
                "query_size": (card.get("scores") or {}).get("settings", {}).get("query_size")}

    def _build_embedder(self) -> Any:
        from metafeatures.embeddings import Embedder, EmbeddingSpec

        card = self.selector.embedding_card_
        spec = EmbeddingSpec.from_dict(card["spec"])
        return Embedder(spec, self.metadata.get_num_channels(0), device=self.settings.device)

    def _query_size(self) -> int:
        return int(self.settings.query_size or (self.thresholds or {}).get("query_size") or DEFAULT_QUERY_SIZE)

    def _time_embedder(self) -> float:
        """Seconds to embed one query (a dummy batch at the data's channels, timed here,
        outside the budget after a warm-up pass; from the timing table on a simulated clock),
        doubled for the decoding and the selector."""
        spec = self.embedder.spec
        n = self._query_size()
        if getattr(self.clock, "simulated", False):
            return 2 * self.timing.forward_s(spec.backbone, spec.input_size) * n
        x = np.zeros((n, 1, spec.input_size, spec.input_size, self.metadata.get_num_channels(0)), np.uint8)
        self.embedder.embed(x[:2])  # the first pass pays one-off costs (kernels, allocator)
        t = time.perf_counter()
        self.embedder.embed(x)
        return 2 * (time.perf_counter() - t)

    def _make_learner(self, config: Mapping[str, Any], device: str | None) -> Any:
        from finetune.config import check_runnable, validate_config
        from finetune.learner import FineTuneLearner

        config = check_runnable(validate_config(config))
        return FineTuneLearner(self.metadata, config, self.clock, timing=self.timing, device=device,
                               seed=self.settings.seed, max_train_examples=self.settings.max_train_examples)

    def _next_learner(self) -> bool:
        """Build the next learner of the chain; False when none is left."""
        while self._chain:
            source, config = self._chain.pop(0)
            simple = config is SIMPLE_CONFIG or source.startswith("probes only")
            device = "cpu" if simple else self.settings.device
            try:
                self.learner = self._make_learner(config, device)
            except Exception as exc:  # noqa: BLE001
                self._event(f"cannot build {source}: {_short(exc)}; trying the next configuration",
                            level=logging.WARNING)
                continue
            self.decision["configuration"] = dict(self.learner.config)
            self.decision["configuration_source"] = source
            self._event(f"training {source}: {describe_config(self.learner.config)}")
            return True
        self.learner = None
        self.decision["configuration_source"] = "class frequencies"
        self.decision["configuration"] = None
        self._event("every configuration failed: predicting the training labels' class frequencies",
                    level=logging.WARNING)
        return False

    # --- selection ----------------------------------------------------------------------------
    def _query(self, dataset: Any) -> Any:
        from finetune.learner import _data_format
        from metafeatures.descriptors import describe_new
        from metafeatures.features import Query

        descriptors, read = describe_new(self.metadata, dataset)
        simulated = getattr(self.clock, "simulated", False)
        fmt = _data_format(self.metadata, dataset) if simulated else None
        if simulated and read:  # frame headers (or the first decoded examples): charged as decoding them
            self.clock.advance(self.timing.decode_s(fmt, read, 0.0))
        if self.embedder is None:
            return Query(None, None, descriptors)
        from finetune.data import load_arrays
        from metafeatures.embeddings import _dense_range, _scale
        from metafeatures.probe import raw_probe_features

        spec = self.embedder.spec
        raw = self._needs_raw()
        x, y = load_arrays(dataset, (spec.input_size, spec.input_size), min(spec.frames, 64), limit=self._query_size(),
                           seed=self.settings.seed)
        if x.dtype != np.uint8:  # dense data: scaled as the training datasets' were
            x = _scale(x, _dense_range(x))
        if simulated:
            t, h, w = x.shape[1:4]
            frames = min(t, spec.frames)
            self.clock.advance(self.timing.decode_s(fmt, len(x), len(x) * t * h * w * x.shape[-1] / 1e6)
                               + self.timing.forward_s(spec.backbone, spec.input_size) * len(x) * frames
                               + (self.timing.raw_features_s(len(x), h * w, t, x.shape[-1]) if raw else 0.0))
        emb = self.embedder.embed(x)
        # the raw-pixel probe's features of the batch already decoded (a pooling pass: milliseconds),
        # made only for a selector that reads them (use_probe raw or both)
        return Query(emb, y, descriptors, raw=raw_probe_features(x) if raw else None)

    def _needs_embedding(self) -> bool:
        """Whether selecting needs the query's embeddings: a selector that reads them or the raw
        probe features of the same batch, or a novelty threshold to check."""
        if not getattr(self.selector, "needs_query", True):
            return False
        return (getattr(self.selector, "reads_embeddings", True) or self._needs_raw()
                or (self.thresholds or {}).get("novelty") is not None)

    def _needs_raw(self) -> bool:
        """Whether the selector reads the query's raw-pixel probe features (``use_probe`` raw or both)."""
        return getattr(self.selector, "use_probe", False) in ("raw", "both")

    def _select(self, dataset: Any) -> None:
        """Ask the selector; put the chosen configuration first in the chain (or keep the single
        best); with ``hedge`` >= 2, race its top configurations (see the module docstring)."""
        self._selected = True
        t = time.perf_counter()
        now = self.clock.now()
        pick, why, ranked = None, None, []
        left = self._remaining()
        if self.selector is None:
            why = "no selector (see the events)"
        elif left is not None and self._selection_estimate > MAX_SELECTION_SHARE * left:
            why = (f"no time to select: about {self._selection_estimate:.1f} s expected, {left:.1f} s of the budget "
                   f"left (at most {MAX_SELECTION_SHARE:.0%} of it is spent on selection)")
        else:
            try:
                query = self._query(dataset) if getattr(self.selector, "needs_query", True) else None
                pick = self.selector.predict(query)
                if query is not None:
                    self.decision["confidence"] = float(self.selector.confidence(query))
                    novelty = getattr(self.selector, "novelty", None)
                    if novelty is not None and query.embeddings is not None:
                        self.decision["novelty"] = float(novelty(query))
                else:
                    self.decision["confidence"] = 1.0
                ranked = [pick]
                if self.settings.hedge > 1:
                    if self.settings.hedge_with_single_best and self.single_best is not None:
                        members = getattr(self.selector, "outputs", "datasets") == "members"
                        ranked.append(self.member_names.get(self.single_best, self.single_best) if members
                                      else self.single_best)
                    ranked += [r for r in self.selector.rank(query) if r not in ranked]
            except Exception as exc:  # noqa: BLE001
                why = f"the selector failed ({_short(exc)})"
                logger.debug("%s", traceback.format_exc())
        self.decision["chosen_dataset"] = pick
        self.decision["threshold"] = self.thresholds
        th = self.thresholds or {}
        conf, nov = self.decision["confidence"], self.decision["novelty"]
        if pick is not None and why is None:
            if self._resolve(pick) is None:
                why = f"the selector named {pick!r}, which has no configuration in portfolio.json"
            elif conf is not None and conf < th.get("confidence", 0.0):
                why = f"confidence {conf:.3f} below the threshold {th['confidence']:.3f}"
            elif nov is not None and th.get("novelty") is not None and nov > th["novelty"]:
                why = f"novelty {nov:.2f} above the threshold {th['novelty']:.2f} (far from every training dataset)"
        self.decision["fallback"] = why
        self.decision["selection_seconds"] = round(time.perf_counter() - t, 3)
        if getattr(self.clock, "simulated", False):
            self.decision["selection_seconds"] = round(self.clock.now() - now, 3)
        if why is None:
            source, config = self._resolve(pick)  # type: ignore[misc]
            if self.single_best not in (None, pick) and _same(config, self.incumbents[self.single_best]):
                source += f" (the same configuration as the single best, {self._dataset_source(self.single_best)})"
            if not getattr(self.selector, "needs_query", True):
                msg = f"the {self.selector.name} selector names the single best, {pick}"
            else:
                msg = (f"selected {pick} (confidence {conf:.3f}" + ("" if nov is None else f", novelty {nov:.2f}")
                       + f") in {self.decision['selection_seconds']:.2f} s")
        else:
            source, config = None, None
            msg = f"using the single best ({self.single_best}): {why}"
        self._event(msg)
        racers = self._racers(ranked) if why is None and self.settings.hedge > 1 else []
        if len(racers) >= 2:
            self._start_race(racers)
            return
        if self.settings.hedge > 1 and why is None:
            self._event("no race: the selector's top configurations are all the same")
        current = self.learner.config if self.learner is not None else None
        if config is not None and current is not None and _same(config, current):
            self.decision["configuration_source"] = source
            self._event(f"continuing: the chosen configuration is the one already training ({source})")
            return
        if config is not None:
            if self.learner is not None:  # before-selection: the running learner stays the fallback
                self._stop_running()
            self._chain.insert(0, (source, config))
            self._next_learner()
        elif self.learner is None:
            self._next_learner()

    def _resolve(self, name: Any) -> tuple[str, dict[str, Any]] | None:
        """``(source, configuration)`` of what the selector named: a portfolio member (a selector
        whose outputs are members) or a training dataset's incumbent; None when there is none."""
        if getattr(self.selector, "outputs", "datasets") == "members":
            config = self.members.get(str(name))
            return None if config is None else (f"member {name}", config)
        config = self.incumbents.get(str(name))
        return None if config is None else (self._dataset_source(str(name)), config)

    def _dataset_source(self, dataset: str) -> str:
        """What a training dataset's configuration is, in words: the member a greedy portfolio
        assigned to it where ``portfolio.json`` names one, else the dataset's incumbent."""
        member = self.member_names.get(dataset)
        return f"member {member} (the best on {dataset})" if member else f"incumbent of {dataset}"

    def _stop_running(self) -> None:
        """Put the running learner back in the chain (first: the fallback) after keeping its best."""
        self._keep_best()
        self._chain.insert(0, (str(self.decision["configuration_source"]), dict(self.learner.config)))
        self.learner = None
        _free_device_memory()

    # --- hedging: the race of the top configurations -------------------------------------------
    def _racers(self, ranked: list[Any]) -> list[_Racer]:
        """The selector's top ``hedge`` distinct configurations, best ranked first."""
        out: list[_Racer] = []
        for name in ranked:
            found = self._resolve(name)
            if found is None or any(_same(found[1], r.config) for r in out):
                continue
            out.append(_Racer(*found))
            if len(out) == self.settings.hedge:
                break
        return out

    def _start_race(self, racers: list[_Racer]) -> None:
        """The running learner leads where it is a racer (its probes are done or under way;
        with ``hedge_with_single_best``, only where it is the pick); otherwise it is put back in
        the chain and the top racer leads with its probes. The other racers that fine-tune
        skip the probes."""
        current = self.learner
        may_lead = racers[:1] if self.settings.hedge_with_single_best else racers
        lead = next((i for i, r in enumerate(may_lead) if current is not None and _same(r.config, current.config)),
                    None)
        paused = next((r for r in racers[1:] if current is not None and _same(r.config, current.config)), None)
        single = self.incumbents.get(str(self.single_best)) if self.settings.hedge_with_single_best else None
        self._race_single_best = next((r for r in racers[1:] if single is not None and _same(r.config, single)), None)
        if lead is not None:
            racers.insert(0, racers.pop(lead))
            racers[0].learner, racers[0].status = current, "running"
            racers[0].source = str(self.decision["configuration_source"])
        elif paused is not None and self.settings.hedge_with_single_best:
            # the single best, already running, waits its turn where it is: its predictions kept,
            # its probes not started again
            self._keep_best()
            paused.learner = current
            self.learner = None
        elif current is not None:
            self._stop_running()
        for r in racers[1:]:
            if r.config.get("finetune") and r.config.get("probes") != "none":
                r.config = {**r.config, "probes": "none"}
        self._race = racers
        self.decision["hedge"] = [r.summary() for r in racers]
        self._event(f"racing {len(racers)} configurations (hedge {self.settings.hedge}, each started before "
                    f"{self.settings.hedge_share:.0%} of the budget): " + "; ".join(r.source for r in racers))
        if lead is None:
            self._next_racer()

    def _race_turn(self) -> None:
        """Before a ``train`` call during the race: the running racer trains until it is
        measured; then the next starts (while the budget allows) or the race ends."""
        cur = next((r for r in self._race if r.status == "running"), None)
        if cur is not None:
            if not _measured(cur.learner):
                return
            cur.score, cur.status = _race_score(cur.learner), "measured"
            self._event(f"race: {cur.source} measured, validation NAUC {cur.score:.4f}")
            if getattr(cur.learner, "tiny", False):  # no validation split: nothing to race on
                anchor = self._race_single_best
                if anchor is not None and anchor is not cur and anchor.status == "waiting":
                    # no evidence either way: the portfolio's best on average goes on
                    cur.status, cur.learner = "dropped", None
                    for r in self._race:
                        if r.status == "waiting" and r is not anchor:
                            r.status = "skipped"
                    self._event("race: too few training examples for a validation split; the single best, the "
                                "portfolio's best on average, goes on")
                    self._next_racer()
                    return
                for r in self._race:
                    if r.status == "waiting":
                        r.status = "skipped"
                self._event("race ended: too few training examples for a validation split")
            self._drop_losers()
        self._next_racer()

    def _drop_losers(self) -> None:
        """Only the best measured racer's learner is kept (memory)."""
        measured = [r for r in self._race if r.status == "measured" and r.learner is not None]
        if measured:
            best = max(measured, key=lambda r: r.score)
            for r in measured:
                if r is not best:
                    r.learner = None
        _free_device_memory()

    def _spent_share(self) -> float | None:
        if self._budget is None or self._budget[1] is None or self._budget[1] <= 0:
            return None
        start, total = self._budget
        return (self.clock.now() - start) / total

    def _next_racer(self) -> None:
        """Start the next waiting racer, or end the race when none is left or the budget's
        ``hedge_share`` is spent."""
        for r in self._race:
            if r.status != "waiting":
                continue
            share = self._spent_share()
            if share is not None and share >= self.settings.hedge_share:
                r.status = "skipped"
                self._event(f"race: {r.source} not started ({share:.0%} of the budget spent)")
                continue
            resumed = r.learner is not None
            if not resumed:
                try:
                    r.learner = self._make_learner(r.config, self.settings.device)
                except Exception as exc:  # noqa: BLE001
                    r.status = "failed"
                    self._event(f"race: cannot build {r.source}: {_short(exc)}", level=logging.WARNING)
                    continue
            r.status = "running"
            self.learner = r.learner
            self.decision["configuration"] = dict(r.learner.config)
            self.decision["configuration_source"] = r.source
            self._event(f"race: {'resuming' if resumed else 'training'} {r.source}: {describe_config(r.learner.config)}")
            return
        self._end_race()

    def _end_race(self) -> None:
        measured = [r for r in self._race if r.status == "measured" and r.learner is not None]
        winner = max(measured, key=lambda r: r.score) if measured else None  # ties: the earlier racer
        self.decision["hedge"] = [r.summary() for r in self._race]
        self._race = []
        if winner is None:
            self.learner = None
            self._event("race ended without a measured racer: degrading", level=logging.WARNING)
            self._next_learner()
            return
        self.learner = winner.learner
        self.decision["configuration"] = dict(winner.learner.config)
        self.decision["configuration_source"] = winner.source
        self._event(f"race won by {winner.source} (validation NAUC {winner.score:.4f}); it continues")

    # --- the challenge's interface ----------------------------------------------------------------
    def train(self, dataset: Any, remaining_time_budget: float | None = None) -> None:
        self._calls += 1
        self._anchor = (self.clock.now(), remaining_time_budget)
        if self._budget is None:
            self._budget = self._anchor
        if self._frequencies is None:
            self._frequencies = self._guard("reading the training labels", lambda: _class_frequencies(
                _train_labels(dataset), self.metadata.get_output_size()))
        if not self._selected and (self.settings.first_prediction == "after-selection" or self._calls > 1
                                   or self.learner is None):
            self._select(dataset)
        if self._race:
            self._race_turn()
        while self.learner is not None:
            try:
                self.learner.train(dataset, remaining_time_budget=self._remaining())
                break
            except Exception as exc:  # noqa: BLE001
                self._learner_failed("train", exc)
        if self.learner is None:
            self.done_training = True
        elif self.learner.done_training and self._selected and not self._race:
            self.done_training = True

    def _remaining(self) -> float | None:
        """What is left of the budget now (the call's ``remaining_time_budget`` less what
        this model spent since: selection, building a learner)."""
        start, remaining = self._anchor
        return None if remaining is None else remaining - (self.clock.now() - start)

    def _learner_failed(self, where: str, exc: BaseException) -> None:
        logger.debug("%s", traceback.format_exc())
        self._event(f"{self.decision['configuration_source']} failed in {where} ({_short(exc)}); degrading",
                    level=logging.WARNING)
        self.learner = None
        _free_device_memory()
        running = next((r for r in self._race if r.status == "running"), None)
        if running is not None:  # a racer that fails is dropped; the race goes on without it
            running.status, running.learner = "failed", None
            self._next_racer()
            return
        self._next_learner()

    def test(self, dataset: Any, remaining_time_budget: float | None = None) -> np.ndarray:
        self._anchor = (self.clock.now(), remaining_time_budget)
        while self.learner is not None:
            try:
                self.learner.test(dataset, remaining_time_budget=self._remaining())
                break
            except Exception as exc:  # noqa: BLE001
                self._learner_failed("test", exc)
                if self.learner is not None:
                    # a new learner has not trained yet: the earlier best predictions stand
                    break
        self._keep_best()
        if self._best is not None:
            return self._best[1]
        if self._last is not None:
            return self._last
        return self._frequency_predictions(dataset)

    def _keep_best(self) -> None:
        """Remember the running learner's best predictions when they beat every earlier
        learner's (all share one validation split: same seed, same training subset)."""
        cand = None if self.learner is None else self.learner.best
        if cand is not None and (self._best is None or cand.score >= self._best[0]):
            self._best = (float(cand.score), cand.test, str(self.decision["configuration_source"]))

    def _frequency_predictions(self, dataset: Any) -> np.ndarray:
        if self._n_test is None:
            self._n_test = _count(dataset)
        k = self.metadata.get_output_size()
        freq = self._frequencies if self._frequencies is not None else np.full(k, 1.0 / k, np.float32)
        if "class frequencies" not in " ".join(self.decision["events"][-1:]):
            self._event(f"predicting the training labels' class frequencies for {self._n_test} test examples")
        self._last = np.tile(freq, (self._n_test, 1)).astype(np.float32)
        return self._last


@dataclass
class _Racer:
    """One configuration of the hedge's race (``status``: waiting, running, measured, failed,
    skipped; ``score``: its validation NAUC once measured, see :func:`_race_score`)."""

    source: str
    config: dict[str, Any]
    learner: Any = None
    status: str = "waiting"
    score: float = -math.inf

    def summary(self) -> dict[str, Any]:
        return {"source": self.source, "status": self.status,
                "score": None if not math.isfinite(self.score) else round(self.score, 6),
                "configuration": describe_config(self.config)}


def _network_scores(learner: Any) -> list[float]:
    return [float(h["val_nauc"]) for h in learner.history
            if h.get("val_nauc") is not None and str(h.get("source", "")).startswith("network")]


def _measured(learner: Any) -> bool:
    """A racer is measured once it has tested its network (or finished: probes only, no time)."""
    return bool(learner.done_training) or bool(_network_scores(learner))


def _race_score(learner: Any) -> float:
    """What the race compares: the racer's best validation NAUC of the network (a chunk's
    blend with its probe included), else of its probes (a configuration that does not
    fine-tune), -inf when it predicted nothing."""
    net = _network_scores(learner)
    if net:
        return max(net)
    return float(learner.best.score) if learner.best is not None else -math.inf


def settings_overrides(text: str | None) -> dict[str, Any] | None:
    """The JSON object of ``AUTODL_META_SETTINGS`` (None when unset or empty).

    Raises
    ------
    ArtifactError
        Not a JSON object.
    """
    from submission.artifacts import ArtifactError

    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArtifactError(None, f"AUTODL_META_SETTINGS is not JSON ({exc})", field="AUTODL_META_SETTINGS") from None
    if not isinstance(data, dict):
        raise ArtifactError(None, f"AUTODL_META_SETTINGS={text!r}: expected a JSON object of settings",
                            field="AUTODL_META_SETTINGS")
    return data


def _class_frequencies(y: np.ndarray, k: int) -> np.ndarray:
    if y.ndim != 2 or y.shape[1] != k or len(y) == 0:
        return np.full(k, 1.0 / k, np.float32)
    return (y.sum(0) / len(y)).astype(np.float32)


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    from finetune.config import validate_config

    try:
        return dict(validate_config(a)) == dict(validate_config(b))
    except Exception:  # noqa: BLE001
        return dict(a) == dict(b)


def describe_config(config: Mapping[str, Any]) -> str:
    """The hyperparameters a person reads first, as `key=value, ...`."""
    keys = ("backbone", "pretrained", "probes", "finetune", "optimizer", "learning_rate", "batch_size", "input_size")
    return ", ".join(f"{k}={config[k]}" for k in keys if k in config)


def _free_device_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


def factory(artifacts: str | Path | Artifacts, **kwargs: Any) -> Any:
    """``(metadata, clock) -> MetaModel`` for :func:`autodl.ingestion.run_ingestion` and
    :func:`autodl.model_runs.evaluate_model` (``kwargs`` go to :class:`MetaModel`)."""
    return lambda meta, clock: MetaModel(meta, artifacts, clock=clock, **kwargs)
