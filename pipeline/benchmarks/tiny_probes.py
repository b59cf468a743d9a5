"""How the learner chooses its probe on a tiny training set: leave-one-out against leave-pair-out.

Below :data:`finetune.decoded_data.MIN_VALIDATION` training examples the learner has no
validation split; it fits its ridge probes (raw pixels, raw pixels + random ReLU features,
embeddings) and returns the one its selection NAUC on the training examples prefers. Learner 2
scored them by the pooled leave-one-out NAUC, learner 3 by the leave-pair-out NAUC
(:class:`finetune.probe.RidgeProbe`). This benchmark measures both on tiny training sets drawn
from the *training* collection's stored meta-feature samples (``autodl-meta metafeatures
extract``: up to 512 training examples per dataset, their EfficientNet-Lite0 embeddings at
64 px and the raw-pixel features the learner's probe sees), so no held-out dataset is looked at:

* per draw, ``classes`` classes (at most) with at least ``per_class + 2`` examples, ``per_class``
  examples of each for training (so fewer than 30, as the organizers' Monkeys: 26 of 10
  classes) and every other example of those classes as the test set;
* the three probes, each with its penalty chosen by the criterion, then the probe the criterion
  prefers (a later probe wins ties, as in the learner); its test NAUC;
* beside them: always the embedding probe, always the raw-pixel probe, and the oracle (the best
  test NAUC of the three under that criterion's penalties);
* the estimate's bias: the criterion's NAUC of the embedding probe minus its test NAUC.

Multi-label datasets are left out (a draw of "examples per class" is not defined there).
Everything runs in this process in seconds (SVDs of matrices of fewer than 30 rows); the draws
are seeded, so the table is the same on any machine.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["CRITERIA", "PROBES", "TinyDraw", "draw_tiny", "evaluate_draw", "run_tiny_probes", "tiny_markdown"]

PROBES = ("raw", "random", "embedding")
"""The learner's probe plan ``raw+random+embedding``, in its order."""

CRITERIA = ("loo", "lpo")
"""Pooled leave-one-out (learner 2) and leave-pair-out (learner 3)."""


@dataclass
class TinyDraw:
    """One tiny training set and its test set (rows of a dataset's stored samples)."""

    train: np.ndarray
    test: np.ndarray
    classes: np.ndarray


def draw_tiny(labels: np.ndarray, *, per_class: int, classes: int, rng: np.random.Generator) -> TinyDraw | None:
    """``per_class`` training examples of each of up to ``classes`` classes that hold at least
    ``per_class + 2`` examples (the rest of them: the test set); None where fewer than 2 do."""
    y = labels.argmax(1)
    counts = np.bincount(y, minlength=labels.shape[1])
    eligible = np.flatnonzero(counts >= per_class + 2)
    if len(eligible) < 2:
        return None
    chosen = np.sort(rng.choice(eligible, min(classes, len(eligible)), replace=False))
    train, test = [], []
    for c in chosen:
        rows = rng.permutation(np.flatnonzero(y == c))
        train.append(rows[:per_class])
        test.append(rows[per_class:])
    return TinyDraw(np.sort(np.concatenate(train)), np.sort(np.concatenate(test)), chosen)


def evaluate_draw(raw: np.ndarray, emb: np.ndarray, labels: np.ndarray, draw: TinyDraw, *,
                  seed: int) -> dict[str, Any]:
    """Every probe under both criteria on one draw: ``{criterion: {"estimate": {probe: NAUC},
    "test": {probe: NAUC}}}`` (test NAUC on the draw's test set, labels restricted to its classes)."""
    import torch

    from autodl.scoring import nauc
    from finetune.probe import RandomReLUFeatures, RidgeProbe, leave_pair_out_nauc
    from finetune.probe_stage import RANDOM_FEATURES

    y = labels[:, draw.classes]
    y_train, y_test = torch.from_numpy(y[draw.train]).float(), y[draw.test]
    raw_t = torch.from_numpy(raw).float()
    random_features = RandomReLUFeatures(width=RANDOM_FEATURES, seed=seed).fit(raw_t[draw.train])
    features = {"raw": raw_t, "random": random_features.transform(raw_t), "embedding": torch.from_numpy(emb).float()}
    out: dict[str, Any] = {}
    for criterion in CRITERIA:
        probes = {name: RidgeProbe(pairs=criterion == "lpo").fit(f[draw.train], y_train)
                  for name, f in features.items()}
        test = {name: p.predict_proba(features[name][draw.test]) for name, p in probes.items()}
        test["random"] = 0.5 * (test["random"] + test["raw"])  # the learner's mean of the two probes
        estimate = {name: float(p.validation_nauc_) for name, p in probes.items()}
        if criterion == "lpo":  # the learner's random probe is the mean of it and the raw-pixel one
            pair_proba = 0.5 * (probes["random"].pair_proba_ + probes["raw"].pair_proba_)
            estimate["random"] = leave_pair_out_nauc(probes["raw"].pairs_, pair_proba, y[draw.train])
        else:
            estimate["random"] = nauc(y[draw.train], 0.5 * (probes["random"].loo_proba_ + probes["raw"].loo_proba_))
        out[criterion] = {"estimate": estimate, "test": {name: nauc(y_test, p) for name, p in test.items()}}
    return out


def _choice(estimate: dict[str, float]) -> str:
    """The probe the learner returns: the best estimate, a later probe winning ties."""
    best = None
    for name in PROBES:
        if best is None or estimate[name] >= estimate[best]:
            best = name
    return best


def run_tiny_probes(features_dir: str | Path, *, datasets: Sequence[str] | None = None, draws: int = 20,
                    per_class: int = 3, classes: int = 9, seed: int = 0,
                    progress: Callable[[str, int, int], None] | None = None) -> list[dict[str, Any]]:
    """One row per (dataset, draw, criterion): the chosen probe, its test NAUC, the test NAUC of
    every probe and the criterion's estimates. ``datasets``: names of ``<features_dir>/<name>.npz``
    (default: all there); multi-label ones are skipped (logged)."""
    from autodl.errors import AutoDLError
    from autodl.labels import is_multilabel

    folder = Path(features_dir)
    names = sorted(p.stem for p in folder.glob("*.npz")) if datasets is None else list(datasets)
    if not names:
        raise AutoDLError(folder, "no meta-feature files (*.npz): run `autodl-meta metafeatures extract` first",
                          field="--features")
    rows: list[dict[str, Any]] = []
    for k, name in enumerate(names):
        path = folder / f"{name}.npz"
        if not path.is_file():
            raise AutoDLError(path, "no such meta-feature file", field="--datasets")
        with np.load(path, allow_pickle=False) as z:
            missing = [key for key in ("train", "train_labels", "train_raw") if key not in z.files]
            if missing:
                raise AutoDLError(path, f"lacks {', '.join(missing)}: extract it again with this version",
                                  field="train_raw")
            emb, labels, raw = z["train"], z["train_labels"], z["train_raw"]
        if is_multilabel(labels):
            logger.info("%s: multi-label, left out", name)
            continue
        rng = np.random.default_rng([seed, k])
        for d in range(draws):
            draw = draw_tiny(labels, per_class=per_class, classes=classes, rng=rng)
            if draw is None:
                logger.info("%s: fewer than 2 classes with %d examples, left out", name, per_class + 2)
                break
            result = evaluate_draw(raw, emb, labels, draw, seed=seed + d)
            for criterion, r in result.items():
                chosen = _choice(r["estimate"])
                rows.append({"dataset": name, "draw": d, "criterion": criterion, "n_train": len(draw.train),
                             "n_test": len(draw.test), "classes": len(draw.classes), "chosen": chosen,
                             "chosen_test": r["test"][chosen], **{f"test_{p}": r["test"][p] for p in PROBES},
                             **{f"estimate_{p}": r["estimate"][p] for p in PROBES}})
        if progress is not None:
            progress(name, k + 1, len(names))
    return rows


def tiny_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Per dataset and over all: mean test NAUC of each criterion's choice, of always the
    embedding / raw-pixel probe and of the oracle; how often each criterion picks the
    embeddings; the embedding probe's estimate minus its test NAUC (bias)."""
    import pandas as pd

    if not rows:
        return "No dataset could be drawn from."
    df = pd.DataFrame(rows)
    df["oracle"] = df[[f"test_{p}" for p in PROBES]].max(axis=1)
    df["bias_embedding"] = df["estimate_embedding"] - df["test_embedding"]
    df["picks_embedding"] = (df["chosen"] == "embedding").astype(float)
    wide = df.pivot_table(index=["dataset", "draw"], columns="criterion",
                          values=["chosen_test", "test_embedding", "test_raw", "oracle", "bias_embedding",
                                  "picks_embedding"])
    per = wide.groupby(level="dataset").mean()
    lines = ["| dataset | draws | chosen by LOO | chosen by LPO | LPO - LOO | always embedding | always raw | "
             "oracle | picks embedding LOO / LPO | embedding bias LOO / LPO |",
             "|---|---|---|---|---|---|---|---|---|---|"]

    def line(name: str, r: Any, n: int) -> str:
        lo, lp = r[("chosen_test", "loo")], r[("chosen_test", "lpo")]
        return (f"| {name} | {n} | {lo:.4f} | {lp:.4f} | {lp - lo:+.4f} | {r[('test_embedding', 'lpo')]:.4f} | "
                f"{r[('test_raw', 'lpo')]:.4f} | {r[('oracle', 'lpo')]:.4f} | "
                f"{r[('picks_embedding', 'loo')]:.0%} / {r[('picks_embedding', 'lpo')]:.0%} | "
                f"{r[('bias_embedding', 'loo')]:+.3f} / {r[('bias_embedding', 'lpo')]:+.3f} |")

    counts = wide.groupby(level="dataset").size()
    for name, r in per.iterrows():
        lines.append(line(str(name), r, int(counts[name])))
    lines.append(line("**all (mean of datasets)**", per.mean(), int(counts.sum())))
    diff = per[("chosen_test", "lpo")] - per[("chosen_test", "loo")]
    wins, losses = int((diff > 0.005).sum()), int((diff < -0.005).sum())
    lines += ["", (f"LPO's choice against LOO's, per dataset (mean over draws, a difference within 0.005 a tie): "
                   f"{wins} wins, {len(diff) - wins - losses} ties, {losses} losses.")]
    return "\n".join(lines)
