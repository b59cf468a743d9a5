"""Embeddings of a dataset's samples: what a pretrained network sees in it.

The meta-features of the Freiburg AutoDL 2019 entry (Liu et al., "Winning solutions and
post-challenge analyses of the ChaLearn AutoDL challenge 2019", TPAMI 2021; the
meta-learning part after Elsken et al., "Meta-learning of neural architectures for
few-shot learning", CVPR 2020, and the workshop paper "Towards dataset identification via
meta-features"): a pretrained CNN's pooled penultimate layer (timm's
``forward_head(x, pre_logits=True)``) for a seeded sample of a dataset's training and test
examples, train and test kept apart.

The network and its preprocessing are the learner's (:class:`finetune.network.FineTuneNet`
over a backbone of :mod:`finetune.backbones` with its pretrained weights), so that a
dataset's embeddings are what the learner's probes see: uint8 pixels scaled to [0, 1], one
channel copied to three, another channel count through the first convolution adapted as
timm does, the backbone's own normalisation. Frames are resized to ``input_size`` (bilinear,
antialiased when shrinking); a clip's ``min(T, frames)`` evenly spaced frames are embedded
one by one and averaged. Everything runs in float32 in eval mode, so that two calls (and a
CPU and a GPU run, up to rounding) give the same numbers.

:class:`EmbeddingSpec` says how the embeddings are made (its :meth:`~EmbeddingSpec.digest`
keys the cache of :func:`metafeatures.extract.extract_collection`); :class:`Embedder`
embeds arrays; :func:`extract_features` embeds one AutoDL dataset folder into a
:class:`~metafeatures.features.DatasetFeatures` without ever reading its ``.solution``.

Examples
--------
>>> spec = EmbeddingSpec(input_size=32, train_samples=64, test_samples=64)
>>> feats = extract_features("data/digits", spec)        # doctest: +SKIP
>>> feats.train.shape, feats.card["backbone"]              # doctest: +SKIP
((64, 1280), 'tf_efficientnet_lite0')
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import file_sha256, utc_now
from metafeatures.features import DatasetFeatures
from metafeatures.probe import raw_probe_features

logger = logging.getLogger(__name__)

__all__ = ["EXTRACTOR_VERSION", "Embedder", "EmbeddingSpec", "ExtractionError", "extract_features",
           "sample_indices"]

EXTRACTOR_VERSION = 1
"""Bumped when the way embeddings are computed changes; part of :meth:`EmbeddingSpec.digest`,
so that features cached by an older extractor are recomputed."""


class ExtractionError(AutoDLError):
    """Embeddings cannot be made as asked (names the dataset or setting and what was expected)."""


# --------------------------------------------------------------------------------------
# The specification
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingSpec:
    """How a dataset's embeddings are made (saved in every features card).

    Parameters
    ----------
    backbone:
        A registered backbone with pretrained weights (:func:`finetune.backbones.list_backbones`
        with ``pretrained_only=True``). Default ``tf_efficientnet_lite0``, whose ImageNet
        weights install offline from PyPI; ``resnet18`` (the paper's) where its weights file
        is on the machine.
    input_size:
        Frames are resized to ``input_size x input_size``.
    train_samples:
        Training examples embedded per dataset: a seeded stratified subset (all when the
        dataset has fewer).
    test_samples:
        Test examples embedded per dataset: a seeded random subset (0: none). Their labels
        are never read.
    frames:
        Frames per clip: ``min(T, frames)`` evenly spaced frames are embedded and averaged
        (images have one).
    seed:
        Seed of both subsets.
    batch_size:
        Clips per forward pass. It does not change the embeddings (eval mode) and is left
        out of :meth:`digest`.

    Raises
    ------
    ExtractionError
        A field of the wrong type or out of range (the message names it).
    """

    backbone: str = "tf_efficientnet_lite0"
    input_size: int = 64
    train_samples: int = 256
    test_samples: int = 256
    frames: int = 4
    seed: int = 0
    batch_size: int = 64

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise ExtractionError(None, f"{self.backbone!r}: expected a backbone name", field="backbone")
        lows = {"input_size": 8, "train_samples": 1, "test_samples": 0, "frames": 1, "seed": 0,
                "batch_size": 1}
        for name, low in lows.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ExtractionError(None, f"{value!r}: expected an integer >= {low}", field=name)
            object.__setattr__(self, name, int(value))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (``EmbeddingSpec(**spec.to_dict())`` gives it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddingSpec:
        """The spec of a features card's ``spec`` entry (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ExtractionError(None, f"unknown field(s) {', '.join(unknown)}; expected some of "
                                        f"{', '.join(sorted(names))}", field=unknown[0])
        return cls(**data)

    def digest(self) -> str:
        """A short hash (16 hex digits) of what determines the embeddings.

        SHA-256 of the sorted-key JSON of :meth:`to_dict` without ``batch_size``, plus
        :data:`EXTRACTOR_VERSION`.
        """
        d = {k: v for k, v in self.to_dict().items() if k != "batch_size"}
        d["extractor_version"] = EXTRACTOR_VERSION
        text = json.dumps(d, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


# --------------------------------------------------------------------------------------
# The embedder
# --------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def _sha256_cached(path: str, mtime_ns: int, size: int) -> str:
    return file_sha256(path)


def _weights_info(path: Path) -> dict[str, Any]:
    st = path.stat()
    return {"file": path.name, "bytes": int(st.st_size),
            "sha256": _sha256_cached(str(path), st.st_mtime_ns, st.st_size)}


def _frame_indices(t: int, frames: int) -> np.ndarray:
    """``min(t, frames)`` evenly spaced frame positions of a clip of ``t`` frames (none repeated)."""
    k = min(t, frames)
    return np.linspace(0, t - 1, k).round().astype(np.int64)


def _as_clips(x: np.ndarray) -> np.ndarray:
    """``[N, T, H, W, C]`` as it is; ``[N, H, W, C]`` (images) as ``[N, 1, H, W, C]``."""
    if x.ndim == 4:
        return x[:, None]
    if x.ndim != 5:
        raise ExtractionError(None, f"an array of shape {x.shape}; expected clips [N, T, H, W, C] "
                                    f"(or images [N, H, W, C])", field="x")
    return x


class Embedder:
    """A pretrained backbone that turns frames into embeddings, preprocessed as the learner does.

    Parameters
    ----------
    spec:
        Backbone, input size, frames per clip, batch size.
    in_chans:
        Channels of the data (1 is copied to 3; other counts than 3 go through the
        backbone's first convolution adapted to them, see
        :func:`finetune.backbones.adapt_input_channels`).
    device:
        ``cpu`` or ``cuda`` (default: CUDA where available).

    Attributes
    ----------
    dim:
        Embedding size D.
    card:
        How the embeddings are made: backbone, input size, frames, in_chans,
        preprocessing (in words, with the normalisation), weights file (name, size,
        SHA-256), versions of torch and timm.

    Raises
    ------
    ExtractionError
        An unknown backbone, one without pretrained weights, or pretrained weights that
        are not on this machine (the message says how to provide them).
    """

    def __init__(self, spec: EmbeddingSpec, in_chans: int, device: str | None = None) -> None:
        import timm
        import torch

        from finetune.backbones import (
            PretrainedWeightsNotFoundError,
            create_backbone,
            find_weights,
            get_backbone_cfg,
            list_backbones,
        )
        from finetune.network import FineTuneNet

        if isinstance(in_chans, bool) or not isinstance(in_chans, int | np.integer) or in_chans < 1:
            raise ExtractionError(None, f"{in_chans!r}: expected a channel count >= 1", field="in_chans")
        self.spec = spec
        self.in_chans = int(in_chans)
        pretrained = list_backbones(pretrained_only=True)
        try:
            cfg = get_backbone_cfg(spec.backbone)
        except ValueError as exc:
            raise ExtractionError(None, str(exc), field="backbone") from None
        if not cfg.has_pretrained:
            raise ExtractionError(None, f"{spec.backbone!r} has no pretrained weights, and embeddings of a "
                                        f"random network say little about a dataset; expected one of "
                                        f"{', '.join(pretrained)}", field="backbone")
        try:
            weights = find_weights(spec.backbone)
            backbone = create_backbone(spec.backbone, pretrained=True, num_classes=0)
        except PretrainedWeightsNotFoundError as exc:
            raise ExtractionError(None, str(exc), field="backbone") from None
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        # FineTuneNet builds a classifier (unused here) and, for some channel counts, a
        # learned adapter: seeded, without touching the caller's random state
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(spec.seed)
            net = FineTuneNet(backbone, self.in_chans, num_classes=1)
        self.net = net.to(self.device).eval()
        self.dim = int(backbone.num_features)
        channels = {1: "1 channel copied to 3",
                    3: "3 channels (RGB)"}.get(self.in_chans, f"{self.in_chans} channels through the first "
                                                                f"convolution adapted to them (RGB kernel of "
                                                                f"channel k mod 3, scaled by 3/C)")
        if net.channel_adapter == "conv3x3" and self.in_chans != 1:
            channels = f"{self.in_chans} channels through a seeded random 3x3 convolution to 3"
        self.card: dict[str, Any] = {
            "backbone": spec.backbone,
            "input_size": spec.input_size,
            "frames": spec.frames,
            "in_chans": self.in_chans,
            "dim": self.dim,
            "layer": "pooled penultimate layer: forward_head(forward_features(x), pre_logits=True)",
            "preprocessing": (f"frames resized to {spec.input_size}x{spec.input_size} (bilinear, antialiased "
                              f"when shrinking); uint8 / 255 to [0, 1]; {channels}; normalised (x - mean) / std; "
                              f"min(T, {spec.frames}) evenly spaced frames of a clip embedded and averaged; "
                              f"float32, eval mode (finetune.network.FineTuneNet.embed)"),
            "mean": [float(v) for v in cfg.mean],
            "std": [float(v) for v in cfg.std],
            "weights": {**_weights_info(weights), "source": cfg.weight_source, "licence": cfg.licence},
            "versions": {"torch": torch.__version__, "timm": timm.__version__},
        }

    def __repr__(self) -> str:
        return (f"Embedder(backbone={self.spec.backbone!r}, input_size={self.spec.input_size}, "
                f"in_chans={self.in_chans}, device={self.device!r})")

    def _embed_frames(self, frames: Any) -> Any:
        """Embeddings ``[B, D]`` of float frames ``[B, C, H, W]`` in [0, 1], resized here."""
        import torch.nn.functional as F

        s = self.spec.input_size
        h, w = frames.shape[-2:]
        if (h, w) != (s, s):
            frames = F.interpolate(frames, size=(s, s), mode="bilinear", align_corners=False,
                                   antialias=h > s or w > s)
        return self.net.embed(frames).float()

    def embed(self, x: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Embeddings ``[N, D]`` (float32) of ``N`` clips.

        Parameters
        ----------
        x:
            Clips ``[N, T, H, W, C]`` (images: ``T = 1``; ``[N, H, W, C]`` is taken as
            images), uint8 in 0-255 or float in [0, 1], any ``H, W``; or a list of clips
            ``[T, H, W, C]`` whose lengths and sizes may differ.

        Raises
        ------
        ExtractionError
            A shape that is not a clip or a channel count other than ``in_chans``.
        """
        if not isinstance(x, np.ndarray):
            return self._embed_list(list(x))
        x = _as_clips(x)
        if x.shape[-1] != self.in_chans:
            raise ExtractionError(None, f"clips with {x.shape[-1]} channels (shape {x.shape}); this embedder "
                                        f"was built for in_chans={self.in_chans}", field="x")
        if x.dtype != np.uint8 and x.dtype.kind not in "f":
            raise ExtractionError(None, f"clips of dtype {x.dtype}; expected uint8 (0-255) or float "
                                        f"(in [0, 1])", field="x")
        if len(x) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        x = x[:, _frame_indices(x.shape[1], self.spec.frames)]
        out = []
        with torch.no_grad():
            for i in range(0, len(x), self.spec.batch_size):
                xb = np.ascontiguousarray(x[i:i + self.spec.batch_size].transpose(0, 1, 4, 2, 3))
                b, t = xb.shape[:2]
                frames = torch.from_numpy(xb).to(self.device).flatten(0, 1)
                frames = frames.float().div_(255.0) if frames.dtype == torch.uint8 else frames.float()
                out.append(self._embed_frames(frames).view(b, t, -1).mean(1).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def _embed_list(self, clips: list[np.ndarray]) -> np.ndarray:
        """Clips of different lengths or sizes: grouped by shape, embedded, put back in order."""
        out = np.zeros((len(clips), self.dim), dtype=np.float32)
        groups: dict[tuple[int, ...], list[int]] = {}
        prepared = []
        for i, c in enumerate(clips):
            c = np.asarray(c)
            c = c[None] if c.ndim == 3 else c
            if c.ndim != 4:
                raise ExtractionError(None, f"clip {i} has shape {c.shape}; expected [T, H, W, C]", field="x")
            c = c[_frame_indices(c.shape[0], self.spec.frames)]
            prepared.append(c)
            groups.setdefault(c.shape + (c.dtype.num,), []).append(i)
        for idx in groups.values():
            out[idx] = self.embed(np.stack([prepared[i] for i in idx]))
        return out


# --------------------------------------------------------------------------------------
# One dataset
# --------------------------------------------------------------------------------------


def sample_indices(ds: Any, spec: EmbeddingSpec) -> tuple[np.ndarray, np.ndarray | None]:
    """The training and test examples :func:`extract_features` embeds.

    Training: a seeded stratified subset of ``spec.train_samples`` examples
    (:func:`autodl.labels.stratified_subset` of the training labels). Test: a seeded random
    subset of ``spec.test_samples`` examples, drawn from the count in the test metadata
    alone (no label read; the ``.solution`` file is never opened); None without a test
    subset or with ``test_samples=0``. Both sorted (the stored order).
    """
    from autodl.labels import stratified_subset

    train = stratified_subset(ds.labels("train"), spec.train_samples, spec.seed)
    if spec.test_samples == 0 or "test" not in ds.subsets:
        return train, None
    n_test = ds.metadata("test").sample_count
    rng = np.random.default_rng([spec.seed, 1])
    test = np.sort(rng.choice(n_test, size=min(spec.test_samples, n_test), replace=False)).astype(np.int64)
    return train, test


def _fixed(xs: np.ndarray | list[np.ndarray], frames: int) -> np.ndarray | list[np.ndarray]:
    """Each clip cut to ``min(T, frames)`` evenly spaced frames (a stacked array where shapes agree)."""
    clips = [np.asarray(c)[_frame_indices(len(c), frames)] for c in xs]
    shapes = {c.shape for c in clips}
    return np.stack(clips) if clips and len(shapes) == 1 else clips


def _dense_range(xs: np.ndarray | list[np.ndarray]) -> tuple[float, float]:
    """``(low, span)`` of dense (float) data, as the learner scales it to [0, 1]."""
    values = [float(np.min(c)) for c in xs] + [float(np.max(c)) for c in xs]
    lo, hi = min(values), max(values)
    return lo, (hi - lo if hi > lo else 1.0)


def _scale(xs: np.ndarray | list[np.ndarray], rng: tuple[float, float]) -> np.ndarray | list[np.ndarray]:
    if isinstance(xs, np.ndarray):
        return ((xs - rng[0]) / rng[1]).astype(np.float32)
    return [((c - rng[0]) / rng[1]).astype(np.float32) for c in xs]


def extract_features(dataset: str | Path, spec: EmbeddingSpec, *, name: str | None = None,
                     source: str | None = None, device: str | None = None,
                     embedder: Embedder | None = None) -> DatasetFeatures:
    """Embed samples of one AutoDL dataset (train and test apart) and describe it.

    Parameters
    ----------
    dataset:
        An AutoDL dataset folder (holding ``<name>.data/``).
    spec:
        How to embed (:class:`EmbeddingSpec`).
    name:
        The features' name (default: the dataset's ``<name>.data``).
    source:
        The group the dataset belongs to (its collection source), saved with it.
    device:
        ``cpu`` or ``cuda`` (default: CUDA where available).
    embedder:
        An :class:`Embedder` to reuse (same spec and channel count); made here otherwise.

    Returns
    -------
    DatasetFeatures
        ``train`` ``[n, D]`` with ``train_labels`` ``[n, K]``, ``test`` ``[m, D]`` (no
        labels; None without a test subset or with ``test_samples=0``), ``train_raw``
        ``[n, F]`` (the raw-pixel features of the same training clips:
        :func:`metafeatures.probe.raw_probe_features`), the descriptors
        (:func:`metafeatures.descriptors.describe`) and a card: the embedder's card
        (backbone, input size, preprocessing, weights, versions), ``spec`` and
        ``spec_digest``, the dataset's path, name and ``fingerprint``
        (:func:`autodl.dataset.dataset_fingerprint`), the sample counts, the dense-data
        scaling where there was one, the seconds spent, the date.

    Raises
    ------
    AutoDLError
        A folder that is not an AutoDL dataset, a record that does not decode, or an
        embedder that cannot be built (:class:`ExtractionError`).
    """
    from autodl.dataset import AutoDLDataset, dataset_fingerprint
    from metafeatures.descriptors import describe

    t0 = time.perf_counter()
    ds = AutoDLDataset(dataset)
    meta = ds.metadata("train")
    in_chans = meta.get_num_channels(0)
    if embedder is None:
        embedder = Embedder(spec, in_chans, device=device)
    elif embedder.spec != spec or embedder.in_chans != in_chans:
        raise ExtractionError(ds.root, f"the embedder given was built for {embedder.spec} and in_chans="
                                       f"{embedder.in_chans}; this dataset needs {spec} and in_chans={in_chans}",
                              field="embedder")
    train_idx, test_idx = sample_indices(ds, spec)
    size = (spec.input_size, spec.input_size)
    train = ds.load_numpy("train", size=size, indices=train_idx)
    test = None if test_idx is None else ds.load_numpy("test", size=size, indices=test_idx)
    t_decode = time.perf_counter()
    x_train = _fixed(train.x, spec.frames)
    x_test = None if test is None else _fixed(test.x, spec.frames)
    card_extra: dict[str, Any] = {}
    first = x_train[0] if len(x_train) else None
    if first is not None and np.asarray(first).dtype != np.uint8:  # dense data: the learner's scaling
        rng = _dense_range(x_train)
        x_train = _scale(x_train, rng)
        x_test = None if x_test is None else _scale(x_test, rng)
        card_extra["dense_scaling"] = {"low": rng[0], "span": rng[1],
                                       "how": "(x - low) / span, low and span from the embedded training examples"}
    emb_train = embedder.embed(x_train)
    emb_test = None if x_test is None else embedder.embed(x_test)
    t_embed = time.perf_counter()
    raw_train = raw_probe_features(x_train)
    card_extra["train_raw"] = ("finetune.probe.raw_features (the learner's raw-pixel probe's features: frames "
                               "averaged, pooled to at most 16x16, flattened) of the embedded training clips, "
                               "as embedded (same frames, size and scaling; uint8 kept in 0-255)")
    descriptors = describe(ds)
    card = {**embedder.card, **card_extra,
            "spec": spec.to_dict(), "spec_digest": spec.digest(),
            "dataset": {"name": ds.name, "path": str(ds.root.resolve())},
            "dataset_fingerprint": dataset_fingerprint(ds.root),
            "samples": {"train": len(train_idx), "train_total": int(meta.sample_count),
                        "test": 0 if test_idx is None else len(test_idx),
                        "test_total": int(ds.metadata("test").sample_count) if "test" in ds.subsets else 0,
                        "train_selection": "stratified_subset(train labels, train_samples, seed)",
                        "test_selection": "random subset (default_rng([seed, 1])), labels never read"},
            "device": embedder.device,
            "seconds": {"decode": round(t_decode - t0, 3), "embed": round(t_embed - t_decode, 3),
                        "total": round(time.perf_counter() - t0, 3)},
            "created": utc_now()}
    logger.info("%s: embedded %d train and %d test examples with %s at %d px in %.1f s", ds.name,
                len(train_idx), card["samples"]["test"], spec.backbone, spec.input_size, card["seconds"]["total"])
    return DatasetFeatures(name=name or ds.name, train=emb_train, train_labels=train.y, test=emb_test,
                           descriptors=descriptors, source=source, card=card, train_raw=raw_train)
