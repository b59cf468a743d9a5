"""The built-in selectors by name, and the functions that look one up.

Importing this module imports the modules whose selectors register themselves
(:func:`selector.base.register_selector`), so every built-in name is known here:

- :mod:`selector.baselines`: ``random``, ``single-best``, ``oracle``;
- :mod:`selector.learned`: ``nearest-centroid``, ``kmeans``, ``mlp-vote``, ``precalc-mlp``,
  ``vae-ttest``, ``descriptor-knn``, ``cost-sensitive``;
- :mod:`selector.similarity`: ``hscore``, ``logme``, ``leep``, ``nce``, ``gbc``, ``otdd``,
  ``task2vec``;
- :mod:`selector.member_selectors`: ``single-best-member``, ``size-rule``,
  ``kind-rule``, ``member-regression``, ``member-pairwise``, ``member-ranking``.

A new built-in selector registers where its class is defined (``@register_selector`` from
:mod:`selector.base`); a new module of them is imported at the top of this one. The
imports run one way: these modules import :mod:`selector.base`, never this module, and
:mod:`selector.base` imports none of them. Look a selector up here
(:func:`selector_class`, :func:`list_selectors`, :func:`make_selector`) and read a saved one
back (:func:`load_selector`, the inverse of :meth:`selector.base.Selector.save`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import selector.baselines  # noqa: F401  (registers random, single-best, oracle)
import selector.learned  # noqa: F401  (registers the learned selectors)
import selector.member_selectors  # noqa: F401  (registers the member selectors)
import selector.similarity  # noqa: F401  (registers the transferability measures)
from autodl.records import file_sha256, read_versioned_json
from selector.base import _REGISTRY, ARRAYS_FILE, CARD_FILE, SELECTOR_FORMAT, Selector, SelectorError


def selector_class(name: str) -> type[Selector]:
    """The selector class registered as ``name``."""
    if name not in _REGISTRY:
        raise SelectorError(None, f"unknown selector {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_selectors() -> list[str]:
    """Every registered selector name, sorted."""
    return sorted(_REGISTRY)


def make_selector(name: str, **params: Any) -> Selector:
    """A new, unfitted selector by registry name."""
    cls = selector_class(name)
    try:
        return cls(**params)
    except TypeError as exc:
        raise SelectorError(None, f"selector {name!r}: {exc}") from None


def load_selector(folder: str | Path) -> Selector:
    """A fitted selector from ``folder``; the arrays' checksum is verified first."""
    from safetensors.numpy import load_file

    folder = Path(folder)
    card_path, arrays_path = folder / CARD_FILE, folder / ARRAYS_FILE
    for p in (card_path, arrays_path):
        if not p.is_file():
            raise SelectorError(p, "not found; expected a folder written by Selector.save")
    card = read_versioned_json(card_path, SELECTOR_FORMAT, what="the selector's card", error=SelectorError)
    digest = file_sha256(arrays_path)
    if card.get("arrays_sha256") != digest:
        raise SelectorError(arrays_path, f"SHA-256 {digest[:12]}... differs from the card's "
                                         f"{str(card.get('arrays_sha256'))[:12]}...: the file is corrupted or "
                                         "was replaced", field="arrays_sha256")
    cls = selector_class(card.get("selector", ""))
    try:
        arrays = load_file(str(arrays_path))  # safetensors: arrays only, never a pickle
    except Exception as exc:  # safetensors' own error type: a file that is not safetensors (a pickle, say)
        raise SelectorError(arrays_path, f"not a safetensors file of arrays ({type(exc).__name__}: {exc})",
                            field="arrays") from None
    try:
        sel = cls(**card.get("params", {}))
        sel.classes_ = list(card["classes"])
        sel.n_features_in_ = int(card["n_features_in"])
        sel.embedding_card_ = dict(card.get("embedding") or {})
        sel._restore(arrays, card.get("state") or {})
    except (KeyError, TypeError, ValueError) as exc:
        raise SelectorError(card_path, f"cannot restore {card.get('selector')!r}: {exc}") from None
    return sel
