"""The cost of selecting: seconds to embed and select, and the ALC that delay can lose.

:func:`selection_cost`: seconds to embed and select per batch size on this machine, and the
ALC a first prediction delayed by that long can lose under a protocol
(:func:`alc_delay_bound`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from metafeatures.features import DatasetFeatures, Query
from metafeatures.probe import clear_score_cache
from selector.base import SelectorError
from selector.specs import (
    Progress,
    SelectorSpec,
    as_specs,
    check_batch_sizes,
    is_evaluation_only,
    outputs_members,
    pick,
)

if TYPE_CHECKING:
    from autodl.protocol import Protocol
    from portfolio.cost_matrix import CostMatrix
    from selector.members import MemberMatrix

logger = logging.getLogger(__name__)


def alc_delay_bound(seconds: float, protocol: Protocol | str, level: float = 1.0) -> float:
    """The most ALC a first prediction delayed by ``seconds`` can lose under ``protocol``.

    The ALC is the area under the NAUC step curve over the transformed time
    t~ = log(1 + t/t0) / log(1 + T/t0) (:func:`autodl.scoring.transform_time`); nothing is
    scored before the first prediction, so a curve at level ``level`` loses at most
    ``level * t~(seconds)``.
    """
    from autodl.protocol import load_protocol
    from autodl.scoring import transform_time

    proto = load_protocol(protocol) if isinstance(protocol, str) else protocol
    if seconds < 0:
        raise ValueError(f"seconds={seconds}: expected >= 0")
    return float(level) * float(transform_time(float(seconds), proto.time_budget, proto.t0))


def synthetic_images(n: int, size: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    """``[n, 1, size, size, channels]`` uint8 noise: what the embedding is timed on (its cost does
    not depend on the pixels)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 1, size, size, channels), dtype=np.uint8)


def _median_seconds(fn: Callable[[], Any], repeats: int, setup: Callable[[], Any] | None = None) -> float:
    """The median seconds of ``repeats`` calls of ``fn`` after a warm-up; ``setup`` runs before
    each call, untimed."""
    fn()  # warm-up (first calls allocate, compile kernels, fill caches)
    times = []
    for _ in range(max(1, repeats)):
        if setup is not None:
            setup()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def _timing_query(d: DatasetFeatures, b: int, seed: int) -> Query:
    """A labelled training batch of ``b`` samples taken from the classes in turn (so that a batch
    of 2 or more holds 2 or more classes, as the transferability measures need), repeating
    samples beyond what there is: for timing only."""
    rng = np.random.default_rng(seed)
    y = d.train_labels.argmax(axis=1) if d.train_labels.shape[1] else np.zeros(len(d.train), int)
    pools = [rng.permutation(np.flatnonzero(y == c)) for c in np.unique(y)]
    idx = [int(pools[k % len(pools)][(k // len(pools)) % len(pools[k % len(pools)])]) for k in range(b)]
    raw = None if d.train_raw is None else d.train_raw[idx]
    return Query(d.train[idx], d.train_labels[idx], dict(d.descriptors), name=d.name, raw=raw)


def make_embedder(spec: Any = None, in_chans: int = 3, device: str = "cpu") -> Any:
    """:class:`metafeatures.embeddings.Embedder` for ``spec`` (default :class:`EmbeddingSpec`),
    imported here so that this module does not need PyTorch."""
    from metafeatures.embeddings import Embedder, EmbeddingSpec

    return Embedder(spec if spec is not None else EmbeddingSpec(), in_chans=in_chans, device=device)


def selection_cost(selectors: Iterable[SelectorSpec | str | tuple[str, Mapping[str, Any]]],
                   datasets: Sequence[DatasetFeatures], *, batch_sizes: Sequence[int] = (1, 8, 32, 64, 128, 1024),
                   cost: CostMatrix | None = None, embedder: Any = None, image_size: int | None = None,
                   in_chans: int = 3, repeats: int = 3, seed: int = 0, time_embedding: bool = True,
                   protocols: Sequence[str] = ("mini", "autocv"), levels: Mapping[str, float] | None = None,
                   members: MemberMatrix | None = None, progress: Progress | None = None) -> dict[str, Any]:
    """Seconds to embed and to select per batch size on this machine, and the ALC it can cost.

    Embedding: ``embedder.embed`` of a batch of synthetic images (``[B, 1, S, S, C]`` uint8,
    S = ``image_size``, default the embedder's input size), median of ``repeats`` after a
    warm-up. Selecting: ``predict_proba`` (and ``predict``) of a selector fitted on all
    ``datasets``, on a labelled training batch of the first dataset, same timing. The ALC
    bound of each total is :func:`alc_delay_bound` under each protocol, at level 1 and at the
    selector's ``levels`` entry (e.g. its mean leave-one-dataset-out ALC) where given.

    Parameters
    ----------
    embedder:
        An object with ``embed(x) -> [N, D]`` and ``card``; None: :func:`make_embedder` on the
        CPU. Where it cannot be made (no PyTorch, no weights) the embedding is not timed and
        ``embedding_error`` says why.
    time_embedding:
        False: time the selection alone.
    members:
        The member view for selectors that name members (default: one member per row of ``cost``).

    Returns
    -------
    dict
        ``rows`` (per selector and batch size: ``embed_seconds``, ``select_seconds``,
        ``total_seconds`` and ``alc_bound`` -> protocol -> ``{"level_1", "level", "level_value"}``;
        ``error`` where the selector cannot answer a batch of that size, the figures then None),
        ``embedding`` (seconds per batch size), ``embedding_card``, ``embedding_error``,
        ``protocols`` (name -> T and t0), ``skipped`` (label -> why), ``threads``.
    """
    from autodl.protocol import load_protocol

    specs = as_specs(selectors)
    sizes = check_batch_sizes(batch_sizes)
    protos = {p: load_protocol(p) for p in protocols}
    out: dict[str, Any] = {"rows": [], "embedding": {}, "embedding_card": None, "embedding_error": None,
                           "protocols": {k: {"time_budget": v.time_budget, "t0": v.t0} for k, v in protos.items()},
                           "skipped": {}, "repeats": repeats, "threads": None}
    if not time_embedding:
        embedder = None
        out["embedding_error"] = "not timed (asked not to)"
    elif embedder is None:
        try:
            embedder = make_embedder(in_chans=in_chans)
        except Exception as exc:  # no PyTorch, no weights, metafeatures.embeddings not there
            out["embedding_error"] = f"{type(exc).__name__}: {exc}"
            logger.warning("selection cost: the embedding is not timed: %s", out["embedding_error"])
    if embedder is not None:
        try:
            import torch

            out["threads"] = torch.get_num_threads()
        except ImportError:
            pass
        card = dict(getattr(embedder, "card", {}) or {})
        out["embedding_card"] = card
        size = int(image_size or card.get("input_size") or getattr(getattr(embedder, "spec", None), "input_size", 64))
        if progress is not None:
            progress("embedding", 0, len(sizes))
        for n, b in enumerate(sizes):
            x = synthetic_images(b, size, in_chans, seed)
            out["embedding"][b] = _median_seconds(lambda x=x: embedder.embed(x), repeats)
            if progress is not None:
                progress("embedding", n + 1, len(sizes))
    if not datasets:
        raise SelectorError(None, "selection cost: no dataset to fit the selectors on")
    for spec in specs:
        try:
            sel = spec.make(seed)
            if is_evaluation_only(sel):
                out["skipped"][spec.label] = "evaluation only"
                continue
            if sel.needs_cost and cost is None:
                out["skipped"][spec.label] = "needs the cost matrix and none was given"
                continue
            fit_sets = [d for d in datasets if cost is None or not sel.needs_cost or d.name in cost.sources]
            if outputs_members(sel):
                from selector.members import trivial_members

                mm = members if members is not None else trivial_members(cost)
                fit_sets = [d for d in fit_sets if d.name in mm.member_of]
                sel.fit(fit_sets, cost, members=mm.restrict(mm.members, [d.name for d in fit_sets]))
            elif sel.needs_cost:
                sel.fit(fit_sets, cost)
            else:
                sel.fit(fit_sets)
            if progress is not None:
                progress(f"selection {spec.label}", 0, len(sizes))
            for n, b in enumerate(sizes):
                q = _timing_query(fit_sets[0], b, seed)
                embed = out["embedding"].get(b)
                try:
                    select = _median_seconds(lambda q=q, sel=sel: pick(sel, q, np.asarray(sel.predict_proba(q))),
                                             repeats, setup=clear_score_cache)  # a new dataset's probes are new
                except Exception as exc:  # a batch it cannot answer (one sample for a measure): that size only
                    out["rows"].append({"selector": spec.label, "batch_size": b, "embed_seconds": embed,
                                        "select_seconds": None, "total_seconds": None, "alc_bound": None,
                                        "error": f"{type(exc).__name__}: {exc}"})
                    continue
                total = select + (embed or 0.0)
                level = None if levels is None else levels.get(spec.label)
                bound = {name: {"level_1": alc_delay_bound(total, p),
                                "level": None if level is None or np.isnan(level) else alc_delay_bound(total, p, level),
                                "level_value": level} for name, p in protos.items()}
                out["rows"].append({"selector": spec.label, "batch_size": b, "embed_seconds": embed,
                                    "select_seconds": select, "total_seconds": total, "alc_bound": bound,
                                    "error": None})
                if progress is not None:
                    progress(f"selection {spec.label}", n + 1, len(sizes))
        except Exception as exc:
            out["skipped"][spec.label] = f"{type(exc).__name__}: {exc}"
            logger.warning("selection cost: %s failed: %s", spec.label, out["skipped"][spec.label])
    return out
