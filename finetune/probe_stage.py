"""The fine-tuning learner's probe stage: ridge probes fitted before any gradient step.

:class:`Probing` is the part of :class:`finetune.learner.FineTuneLearner` that runs the
configuration's ``probes`` plan (:class:`finetune.probe.ProbeStage`): a ridge probe
(:class:`finetune.probe.RidgeProbe`) on downsampled raw pixels, on random ReLU features of
them (:data:`RANDOM_FEATURES` wide), or on the network's embeddings of ``probe_examples``
examples, each fitted by one ``train`` call (penalty chosen on the validation split, by exact
leave-pair-out without one) and predicting the test set at the next ``test`` call; and the quick
start's probe on raw pixels of a few examples per class. It prices a probe before it is fitted
(:meth:`Probing.price`: what the clock will be charged, term by term) so that the learner can
keep the probes within ``probe_share`` of the budget. The learner decides when a probe runs and
which predictions a test call returns.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np

from autodl.clock import Clock
from finetune.decoded_data import DecodedData
from finetune.network_stage import NetworkTrainer
from finetune.probe import ProbeStage

logger = logging.getLogger(__name__)

RANDOM_FEATURES = 1024
"""Width of the random ReLU features of the ``random`` probe."""

RAW_PROBE_EXAMPLES = 4000
"""Examples the raw-pixel and random-feature probes are fitted on, at most."""


class Probing:
    """The probes of one learner: the plan left, the probes fitted, the one awaiting its test call.

    Parameters
    ----------
    config:
        The validated fine-tuning configuration (``probes``, ``probe_examples``).
    data:
        The learner's decoded sets.
    network:
        The learner's network: embeddings for the embedding probe, and what the clock measured
        of its forward passes.
    clock, timing:
        Every probe's work is charged to ``clock`` at ``timing``'s price.
    output_dim, frames:
        Classes (labels) and frames per clip of the data.
    seed:
        Seed of the probes' samples (their own stream, ``default_rng([seed, 1])``) and of the
        random features.
    """

    def __init__(self, config: Mapping[str, Any], data: DecodedData, network: NetworkTrainer, clock: Clock,
                 timing: Any, *, output_dim: int, frames: int, seed: int):
        self.config = config
        self.data = data
        self.network = network
        self.clock = clock
        self.timing = timing
        self.output_dim = output_dim
        self.frames = frames
        self.seed = seed
        self._rng = np.random.default_rng([seed, 1])  # the probes' samples: their own stream
        self.plan: list[ProbeStage] = ProbeStage.plan(config["probes"])
        self.pending: ProbeStage | None = None  # fitted by the last train call, tested by the next test call
        self.started: float | None = None  # clock time the last probe's fit began (probe_share)
        self.fitted: dict[ProbeStage, Any] = {}
        self._random_features: Any = None
        # the pending probe's validation probabilities (the learner scores them), or on tiny data
        # (no validation split) None and the probe's leave-pair-out NAUC
        self.select: tuple[np.ndarray, None] | tuple[None, float] | None = None
        self.quick_probe: Any = None  # the quick start's probe, until its test call
        # the test set's raw pixels that the quick start's probe computed, for the raw-pixel probe's test
        self._quick_test_features: Any = None

    # --- fitting ----------------------------------------------------------------------------
    def fit_quick(self, x: Any, y: np.ndarray) -> Any:
        """Fit the quick start's ridge probe on raw pixels of clips ``x`` (tensor) with labels
        ``y``, penalty by leave-one-out; it predicts at the next test call. Returns the probe."""
        import torch

        from finetune.probe import RidgeProbe

        feats = self.features(ProbeStage.RAW, x)
        targets = torch.from_numpy(y).to(self.data.device)
        probe = RidgeProbe(multilabel=self.data.multilabel).fit(feats, targets)
        self.clock.charge("ridge fit", lambda: self.timing.ridge_s(len(x), feats.shape[1], self.output_dim))
        self.quick_probe, self.pending = probe, ProbeStage.QUICK
        return probe

    def fit(self, stage: ProbeStage) -> None:
        """Fit the ridge probe of ``stage`` (``raw`` pixels, ``random`` ReLU features of them,
        or ``embedding``s of ``probe_examples`` examples), its penalty chosen on the
        validation split (leave-pair-out without one: :class:`~finetune.probe.RidgeProbe`)."""
        import torch

        from finetune.probe import RandomReLUFeatures, RidgeProbe, leave_pair_out_nauc

        data = self.data
        n = self.examples(stage)[0]
        idx = torch.from_numpy(np.sort(self._rng.choice(len(data.x_train), n, replace=False)))
        idx = idx.to(data.device)
        if stage is ProbeStage.RANDOM:
            self._random_features = RandomReLUFeatures(width=RANDOM_FEATURES, seed=self.seed)
            raw = self.features(ProbeStage.RAW, data.x_train[idx])
            self._random_features.fit(raw)
            self.clock.charge("random features fit", lambda: self.timing.random_features_s(
                0, raw.shape[1], RANDOM_FEATURES, n_fit=len(raw)))
        feats = self.features(stage, data.x_train[idx])
        val_feats = self.features(stage, data.x_val) if data.x_val is not None else None
        probe = RidgeProbe(multilabel=data.multilabel, pairs=data.tiny).fit(feats, data.y_train[idx], val_feats,
                                                                            data.y_val)
        self.clock.charge("ridge fit", lambda: self.timing.ridge_s(
            n, feats.shape[1], self.output_dim, n_eval=0 if val_feats is None else len(val_feats)))
        self.fitted[stage] = probe
        if data.tiny:  # leave-pair-out over the training examples (all of them, in order)
            pair_proba = probe.pair_proba_
            if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.fitted:  # the mean of the two probes
                pair_proba = 0.5 * (pair_proba + self.fitted[ProbeStage.RAW].pair_proba_)
            self.select = (None, leave_pair_out_nauc(probe.pairs_, pair_proba, data.y_train[idx].cpu().numpy()))
        else:
            self.select = (self.predict(stage, data.x_val, val_feats), None)
        self.pending = stage
        logger.info("fitted a ridge probe on %s of %d examples (penalty %g)", stage.description, n,
                    probe.alpha_)

    def features(self, stage: ProbeStage, x: Any) -> Any:
        """What the probe ``stage`` sees of clips ``x``."""
        from finetune.probe import raw_features

        if stage is ProbeStage.EMBEDDING:
            return self.network.embed(x)
        raw = raw_features(x)
        self.clock.charge("raw features", lambda: self.timing.raw_features_s(
            len(x), x.shape[-2] * x.shape[-1], x.shape[1], x.shape[2]))
        if stage is ProbeStage.RANDOM:
            feats = self._random_features.transform(raw)
            self.clock.charge("random features",
                              lambda: self.timing.random_features_s(len(raw), raw.shape[1], RANDOM_FEATURES))
            return feats
        return raw

    # --- predictions ------------------------------------------------------------------------
    def predict(self, stage: ProbeStage, x: Any, feats: Any = None) -> np.ndarray:
        """The probabilities of ``stage``'s probe; the random-feature probe is averaged with
        the raw-pixel one (on digits and Fashion-MNIST at 32 px the mean generalised better
        than either alone, while the small validation split preferred the random features
        on digits and was wrong: test NAUC 0.993 mean, 0.988 raw, 0.968 random)."""
        feats = self.features(stage, x) if feats is None else feats
        probs = self.fitted[stage].predict_proba(feats)
        self.clock.charge("ridge predict",
                          lambda: self.timing.ridge_s(0, feats.shape[1], self.output_dim, n_eval=len(feats)))
        if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.fitted:
            probs = 0.5 * (probs + self.predict(ProbeStage.RAW, x))
        return probs

    def predict_quick(self) -> np.ndarray:
        """The quick start's probe's probabilities of the test set (the probe is then dropped;
        the raw pixels of the test set are kept for the raw-pixel probe's test)."""
        feats = self.features(ProbeStage.RAW, self.data.x_test)
        probs = self.quick_probe.predict_proba(feats)
        self.clock.charge("ridge predict",
                          lambda: self.timing.ridge_s(0, feats.shape[1], self.output_dim, n_eval=len(feats)))
        self.quick_probe, self._quick_test_features = None, feats
        return probs

    def predict_test(self, stage: ProbeStage) -> np.ndarray:
        """The probabilities of the test set by ``stage``'s probe."""
        # the raw pixels of the test set are computed once: the quick start's probe did already
        feats = self._quick_test_features if stage is ProbeStage.RAW else None
        self._quick_test_features = None
        return self.predict(stage, self.data.x_test, feats)

    # --- what a probe will cost -------------------------------------------------------------
    def within_share(self, stage: ProbeStage, elapsed: float, time_budget: float, slack: float) -> bool:
        """Whether the probe ``stage``, fitted now and tested by the next test call, is
        expected to end within ``probe_share`` of the budget (always, at 1.0).

        The cap applies only where fine-tuning follows the probes (``finetune`` true and a
        validation split); the first probe of the plan always runs (it gives the first
        prediction), so the learner asks only about the later ones. A probe that would end
        after the cap is skipped with the rest of the plan, and fine-tuning starts. A rough
        measured figure (:meth:`guess`) gets the schedule's ``slack``.
        """
        share = float(self.config["probe_share"])
        if share >= 1.0 or not self.config["finetune"] or self.data.tiny:
            return True
        # the price is what the probe will be charged; a rough measured figure gets the schedule's slack
        end = elapsed + self.clock.estimate(lambda: self.price(stage), lambda: slack * self.guess(stage))
        if end <= share * time_budget:
            return True
        logger.info("probe_share %g: the %s probe would end at about %.2f s, after %.2f s of the budget: "
                    "it and the rest of the plan are skipped", share, stage, end, share * time_budget)
        return False

    def estimate(self, stage: ProbeStage) -> float:
        """Seconds that fitting the probe ``stage`` and its test pass (with writing the
        predictions) are expected to take, on the learner's clock (:meth:`Clock.estimate
        <autodl.clock.Clock.estimate>`): :meth:`price` on the simulated clock, :meth:`guess`
        on the others."""
        return self.clock.estimate(lambda: self.price(stage), lambda: self.guess(stage))

    def examples(self, stage: ProbeStage) -> tuple[int, int, int]:
        """Examples the probe ``stage`` is fitted on, and of the validation and test sets."""
        data = self.data
        cap = int(self.config["probe_examples"]) if stage is ProbeStage.EMBEDDING else RAW_PROBE_EXAMPLES
        n_fit = min(cap, len(data.x_train))
        n_val = len(data.x_val) if data.x_val is not None else 0
        n_test = len(data.x_test) if data.x_test is not None else 0
        return n_fit, n_val, n_test

    def guess(self, stage: ProbeStage) -> float:
        """A rough figure for :meth:`estimate` from what the clock has measured: for the
        embedding probe, its forward passes (training, validation and test examples) at the
        measured seconds per example of a test pass (0.01 s before one); for the raw-pixel
        and random-feature probes, how long the previous probe took from its fit to now
        (they cost alike and little)."""
        if stage is ProbeStage.EMBEDDING:
            per = self.network.test_example_time.value or 0.01
            return per * sum(self.examples(stage)) * self.frames
        return 0.0 if self.started is None else self.clock.now() - self.started

    def price(self, stage: ProbeStage) -> float:
        """:meth:`estimate` from the timing table: what :meth:`fit`, the probe's test pass and
        writing its predictions will charge, priced term by term."""
        import torch

        from finetune.probe import raw_features

        n_fit, n_val, n_test = self.examples(stage)
        t, k = self.timing, self.output_dim
        frames, chans, h, w = self.data.x_train.shape[1:]
        d_raw = raw_features(torch.zeros(1, frames, chans, h, w)).shape[1]

        def raw(n: int) -> float:  # nothing is computed (or charged) for an empty split
            return t.raw_features_s(n, h * w, frames, chans) if n else 0.0

        if stage is ProbeStage.EMBEDDING:
            d = self.network.net.backbone.num_features

            def features(n: int) -> float:
                return self.network.forward_cost(n * self.frames)
        elif stage is ProbeStage.RANDOM:  # raw pixels plus random ReLU features of them
            d = d_raw + RANDOM_FEATURES

            def features(n: int) -> float:
                return raw(n) + t.random_features_s(n, d_raw, RANDOM_FEATURES) if n else 0.0
        else:
            d = d_raw
            features = raw

        def predict(n: int) -> float:  # predict on features already computed
            cost = t.ridge_s(0, d, k, n_eval=n)
            if stage is ProbeStage.RANDOM and ProbeStage.RAW in self.fitted:  # averaged with the raw probe
                cost += raw(n) + t.ridge_s(0, d_raw, k, n_eval=n)
            return cost

        fit = features(n_fit) + t.ridge_s(n_fit, d, k, n_eval=n_val)
        if stage is ProbeStage.RANDOM:  # the random features are fitted on the raw pixels first
            fit += raw(n_fit) + t.random_features_s(0, d_raw, RANDOM_FEATURES, n_fit=n_fit)
        if n_val:  # the validation split's probabilities, which choose among the candidates
            fit += features(n_val) + predict(n_val)
        test = features(n_test) + predict(n_test)
        return fit + test + t.write_predictions_s(n_test * k)
