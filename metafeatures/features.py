"""What the selectors see of one dataset: embeddings of samples, labels, descriptors.

:class:`DatasetFeatures` is the unit the whole meta-learning half passes around: the
extractor (:mod:`metafeatures.embeddings`) writes one per dataset and embedding
specification, the selectors (:mod:`selector`) are fitted on a list of them, and a new
dataset reaches a selector as a :class:`Query` (a batch of its training samples).

Stored as ``<name>.npz`` (arrays only, ``allow_pickle=False``) beside ``<name>.json``
(the card: name, source, descriptors, how the embeddings were made, and the ``.npz``'s
SHA-256, ``npz_sha256``, checked on load: a file that differs is refused). Besides the
embeddings, the ``.npz`` holds ``train_raw``, the raw-pixel features of the same training
samples (what the learner's raw-pixel probe sees, for
:func:`metafeatures.probe.raw_probe_score`); files extracted before it existed load with
``train_raw`` None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import atomic_path, file_sha256, read_versioned_json, write_json_atomic

FEATURES_FORMAT = "autodl-meta-features/1"


class FeaturesError(AutoDLError):
    """A features file that cannot be read (names the file and what was expected)."""


@dataclass
class DatasetFeatures:
    """Embeddings of one dataset's samples, with their labels and the dataset's descriptors.

    Attributes
    ----------
    name:
        The dataset's name (a training dataset of the portfolio, or a new one).
    train, train_labels:
        Embeddings ``[N, D]`` (float32) of samples of the training split and their labels
        ``[N, K]`` (0/1, float32; K = the dataset's ``output_dim``).
    test:
        Embeddings ``[M, D]`` of samples of the test split (no labels: the ``.solution``
        is never read), kept apart from ``train`` for identification (None if not made).
    descriptors:
        ZAP's meta-features (:func:`metafeatures.descriptors.describe`): sample counts,
        classes, channels, resolution, sequence length, multi-label.
    source:
        The group the dataset belongs to (its collection source: derived variants of one
        source share it and are held out together); None for a new dataset.
    card:
        How the embeddings were made: backbone, input size, preprocessing, samples, seed,
        dataset fingerprint, versions.
    train_raw:
        ``[N, F]`` (float32) the raw-pixel features of the same training samples, row for row
        (:func:`metafeatures.probe.raw_probe_features`: what the learner's raw-pixel probe
        sees); None in features extracted before they were stored.
    """

    name: str
    train: np.ndarray
    train_labels: np.ndarray
    test: np.ndarray | None = None
    descriptors: dict[str, float] = field(default_factory=dict)
    source: str | None = None
    card: dict[str, Any] = field(default_factory=dict)
    train_raw: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.train = np.asarray(self.train, dtype=np.float32)
        self.train_labels = np.asarray(self.train_labels, dtype=np.float32)
        if self.train.ndim != 2:
            raise ValueError(f"{self.name}: train embeddings must be [N, D], got shape {self.train.shape}")
        if self.train_labels.ndim != 2 or len(self.train_labels) != len(self.train):
            raise ValueError(f"{self.name}: train_labels must be [N, K] with N={len(self.train)}, "
                             f"got shape {self.train_labels.shape}")
        if self.test is not None:
            self.test = np.asarray(self.test, dtype=np.float32)
            if self.test.ndim != 2 or self.test.shape[1] != self.train.shape[1]:
                raise ValueError(f"{self.name}: test embeddings must be [M, {self.train.shape[1]}], "
                                 f"got shape {self.test.shape}")
        if self.train_raw is not None:
            self.train_raw = np.asarray(self.train_raw, dtype=np.float32)
            if self.train_raw.ndim != 2 or len(self.train_raw) != len(self.train):
                raise ValueError(f"{self.name}: train_raw must be [N, F] with N={len(self.train)} (a row per "
                                 f"training sample), got shape {self.train_raw.shape}")

    @property
    def dim(self) -> int:
        """Embedding size D."""
        return int(self.train.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.train_labels.shape[1])

    def query(self, n: int | None = None, *, split: str = "train", seed: int = 0) -> Query:
        """A :class:`Query` of ``n`` random samples (all if None) of ``split`` (``train`` or ``test``).

        The ``train`` split's query carries labels (and the samples' raw-pixel features where
        stored); the ``test`` split's does not.
        """
        if split not in ("train", "test"):
            raise ValueError(f"split={split!r}: expected 'train' or 'test'")
        x = self.train if split == "train" else self.test
        if x is None:
            raise ValueError(f"{self.name}: no {split} embeddings were extracted")
        idx = np.arange(len(x))
        if n is not None and n < len(x):
            idx = np.sort(np.random.default_rng(seed).choice(len(x), size=n, replace=False))
        labels = self.train_labels[idx] if split == "train" else None
        raw = self.train_raw[idx] if split == "train" and self.train_raw is not None else None
        return Query(x[idx], labels, dict(self.descriptors), name=self.name, raw=raw)

    # --- files --------------------------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``<folder>/<name>.npz`` and ``<folder>/<name>.json``; returns the ``.npz`` path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"train": self.train, "train_labels": self.train_labels}
        if self.test is not None:
            arrays["test"] = self.test
        if self.train_raw is not None:
            arrays["train_raw"] = self.train_raw
        npz = folder / f"{self.name}.npz"
        with atomic_path(npz) as tmp, tmp.open("wb") as f:  # a file object: numpy adds no ".npz" to its name
            np.savez_compressed(f, **arrays)
        card = {"format": FEATURES_FORMAT, "name": self.name, "source": self.source,
                "descriptors": self.descriptors, "card": self.card,
                "shapes": {k: list(v.shape) for k, v in arrays.items()}, "npz_sha256": file_sha256(npz)}
        write_json_atomic(folder / f"{self.name}.json", card, indent=1, sort_keys=True)
        return npz

    @classmethod
    def load(cls, path: str | Path) -> DatasetFeatures:
        """Read ``<name>.npz`` + ``<name>.json`` (either path, or the path without suffix)."""
        path = Path(path)
        stem = path.with_suffix("") if path.suffix in (".npz", ".json") else path
        npz, js = stem.with_suffix(".npz"), stem.with_suffix(".json")
        for p in (npz, js):
            if not p.is_file():
                raise FeaturesError(p, "not found; expected the .npz and .json written by DatasetFeatures.save")
        card = read_versioned_json(js, FEATURES_FORMAT, what="a features card", error=FeaturesError)
        want = card.get("npz_sha256")
        if want is not None:  # cards written before the field existed are read unchecked
            digest = file_sha256(npz)
            if digest != want:
                raise FeaturesError(npz, f"SHA-256 {digest[:12]}... differs from its card's {str(want)[:12]}...: "
                                         "the file is corrupted or was replaced", field="npz_sha256")
        try:
            with np.load(npz, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        except (OSError, ValueError) as exc:
            raise FeaturesError(npz, f"not a readable .npz ({exc})") from None
        for key in ("train", "train_labels"):
            if key not in arrays:
                raise FeaturesError(npz, f"has no array {key!r}", field=key)
        try:
            return cls(name=card["name"], train=arrays["train"], train_labels=arrays["train_labels"],
                       test=arrays.get("test"), descriptors=dict(card.get("descriptors") or {}),
                       source=card.get("source"), card=dict(card.get("card") or {}),
                       train_raw=arrays.get("train_raw"))
        except (KeyError, ValueError) as exc:
            raise FeaturesError(js, str(exc)) from None


@dataclass
class Query:
    """A batch of samples of one new dataset, as a selector sees it.

    Attributes
    ----------
    embeddings:
        ``[B, D]`` float32 embeddings (same backbone and preprocessing as the training
        datasets' features); None for a selector that reads only the descriptors
        (``reads_embeddings`` false: a submission then embeds nothing), which every other
        selector refuses.
    labels:
        ``[B, K]`` labels of the batch, where known (the training split of a new dataset);
        selectors that need them (transferability measures) refuse a query without.
    descriptors:
        The new dataset's descriptors, where known.
    name:
        For logs and reports only; a selector never uses it.
    raw:
        ``[B, F]`` float32 raw-pixel features of the batch, row for row
        (:func:`metafeatures.probe.raw_probe_features`), where known; selectors that use the
        raw-pixel probe's score refuse a query without.
    """

    embeddings: np.ndarray | None
    labels: np.ndarray | None = None
    descriptors: Mapping[str, float] | None = None
    name: str | None = None
    raw: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.embeddings is None:
            if self.descriptors is None:
                raise ValueError("a query needs embeddings or descriptors")
            if self.raw is not None:
                raise ValueError("a query's raw features come with its embeddings (the same batch)")
        else:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) == 0:
                raise ValueError(f"a query's embeddings must be a non-empty [B, D] array, got {self.embeddings.shape}")
        if self.labels is not None:
            self.labels = np.asarray(self.labels, dtype=np.float32)
            if self.labels.ndim != 2 or (self.embeddings is not None and len(self.labels) != len(self.embeddings)):
                raise ValueError(f"a query's labels must be [B, K] with B={len(self)}, got {self.labels.shape}")
        if self.raw is not None:
            self.raw = np.asarray(self.raw, dtype=np.float32)
            if self.raw.ndim != 2 or len(self.raw) != len(self.embeddings):
                raise ValueError(f"a query's raw features must be [B, F] with B={len(self.embeddings)}, "
                                 f"got {self.raw.shape}")

    def __len__(self) -> int:
        """The batch's size (0 for a query of descriptors alone)."""
        return 0 if self.embeddings is None else len(self.embeddings)


def load_features_folder(folder: str | Path, names: list[str] | None = None) -> list[DatasetFeatures]:
    """Every ``<name>.npz`` of ``folder`` (or those of ``names``, in that order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FeaturesError(folder, "not a folder; expected the output of 'autodl-meta metafeatures extract'")
    if names is None:
        names = sorted(p.stem for p in folder.glob("*.npz") if not p.name.startswith("."))
    if not names:
        raise FeaturesError(folder, "holds no <name>.npz features")
    return [DatasetFeatures.load(folder / f"{n}.npz") for n in names]
