"""Derivations: new datasets made from a source's arrays, as a collection's recipes ask.

ZAP (Ozturk et al., "Zero-shot AutoML with pretrained models", ICML 2022) derives many
datasets from a few by class subsets, resolutions, sample counts, colour and rotation; these
are the derivations of a collection file's entries (:mod:`autodl.collection` describes the
keys), applied by :func:`apply_transforms` in :data:`autodl.collection.TRANSFORMS` order to
train and test alike. Each works on ``(x_train, y_train, x_test, y_test, names)``
(:data:`Arrays`), where ``x`` is an array or a list of variable-size images or clips.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autodl.collection import TRANSFORMS, CollectionError

Arrays = tuple[Any, np.ndarray, Any, np.ndarray, list[str]]
"""``(x_train, y_train, x_test, y_test, names)``: a source's arrays, ``x`` an array or a list
of variable-size examples."""


def _frames(example: np.ndarray) -> np.ndarray:
    """An image ``[H, W, C]`` or clip ``[T, H, W, C]`` as ``[T, H, W, C]``."""
    ex = np.asarray(example)
    if ex.ndim == 2:
        ex = ex[..., None]
    return ex if ex.ndim == 4 else ex[None]


def _stack(xs: list[np.ndarray]) -> Any:
    """An array when every example has one shape, else the list (variable-size examples)."""
    if xs and len({x.shape for x in xs}) == 1:
        return np.stack(xs)
    return xs


def subset_classes(arrays: Arrays, classes: Sequence[int | str], *, what: str = "classes") -> Arrays:
    """Keep the given classes (indices or names), renumbered in the order given.

    Parameters
    ----------
    arrays:
        ``(x_train, y_train, x_test, y_test, names)`` as a source's loader returns them.
    classes:
        Class indices or names (at least 2, distinct).
    what:
        How the field is called in error messages.

    Returns
    -------
    tuple
        The same five, with only the examples of those classes. Multi-label rows (a 0/1
        matrix) keep the chosen columns; rows left without a label are dropped.

    Raises
    ------
    CollectionError
        A class index out of range or an unknown name (the message lists the names).
    """
    from autodl.images import take

    x_tr, y_tr, x_te, y_te, names = arrays
    chosen = []
    for c in classes:
        if isinstance(c, str):
            if c not in names:
                raise CollectionError(None, f"no class named {c!r}; the classes are {', '.join(names)}", field=what)
            chosen.append(names.index(c))
        else:
            if not 0 <= c < len(names):
                raise CollectionError(None, f"class index {c} out of range; expected 0 to {len(names) - 1} "
                                            f"({', '.join(names)})", field=what)
            chosen.append(int(c))
    if len(set(chosen)) != len(chosen):
        raise CollectionError(None, f"{list(classes)!r} names one class twice", field=what)
    out: list[Any] = []
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        y = np.asarray(y)
        if y.ndim == 2:
            y_new = y[:, chosen]
            keep = np.flatnonzero(y_new.any(axis=1))
            y_new = y_new[keep]
        else:
            remap = np.full(len(names), -1, dtype=np.int64)
            remap[chosen] = np.arange(len(chosen))
            keep = np.flatnonzero(remap[y] >= 0)
            y_new = remap[y[keep]]
        out += [take(x, keep), y_new]
    return out[0], out[1], out[2], out[3], [names[c] for c in chosen]


def cap_examples(arrays: Arrays, max_train: int | None, max_test: int | None, seed: int) -> Arrays:
    """At most ``max_train`` / ``max_test`` examples (:func:`autodl.sources.cap_examples`)."""
    from autodl.sources import cap_examples as cap

    return cap(arrays, max_train, max_test, seed)


def to_color(x: Any, mode: str) -> Any:
    """Images or clips as ``grey`` (1 channel, ITU-R BT.601 luma, rounded) or ``rgb`` (3 channels;
    grey copied, alpha dropped)."""
    if mode not in ("grey", "rgb"):
        raise CollectionError(None, f"{mode!r}: expected 'grey' or 'rgb'", field="color")

    def one(frame: np.ndarray) -> np.ndarray:
        c = frame.shape[-1]
        if mode == "rgb":
            return np.repeat(frame, 3, axis=-1) if c == 1 else frame[..., :3]
        if c == 1:
            return frame
        luma = frame[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
        return np.clip(np.rint(luma), 0, 255).astype(np.uint8)[..., None]

    return _per_frame(x, lambda f, _i: one(f))


def _per_frame(x: Any, fn: Callable[[np.ndarray, int], np.ndarray]) -> Any:
    """``fn(frame, example index)`` on every frame of every example; an array when shapes agree."""
    out = []
    for i, ex in enumerate(x):
        ex = np.asarray(ex)
        clip = _frames(ex)
        new = np.stack([fn(f, i) for f in clip])
        out.append(new if ex.ndim == 4 else new[0])
    return _stack(out)


def _rotate_frame(frame: np.ndarray, degrees: float) -> np.ndarray:
    """Turn ``[H, W, C]`` anticlockwise: exact for multiples of 90, else bilinear on the same canvas."""
    from PIL import Image

    quarter = degrees / 90.0
    if float(quarter).is_integer():
        return np.ascontiguousarray(np.rot90(frame, k=int(quarter) % 4, axes=(0, 1)))
    squeeze = frame.shape[-1] == 1
    img = Image.fromarray(frame[..., 0] if squeeze else frame)
    out = np.asarray(img.rotate(degrees, resample=Image.Resampling.BILINEAR))
    return out[..., None] if squeeze else out


def rotate(x: Any, degrees: float) -> Any:
    """Every example turned anticlockwise by ``degrees`` (all frames of a clip alike)."""
    return _per_frame(x, lambda f, _i: _rotate_frame(f, degrees))


def random_rotate(x: Any, max_degrees: float, seed: int) -> Any:
    """Each example turned by its own angle, uniform in ``[-max_degrees, max_degrees]`` (seeded;
    all frames of a clip by the same angle)."""
    angles = np.random.default_rng(seed).uniform(-max_degrees, max_degrees, len(x))
    return _per_frame(x, lambda f, i: _rotate_frame(f, float(angles[i])))


def resize(x: Any, height: int, width: int) -> Any:
    """Every frame to ``height x width`` (bilinear up, Lanczos down)."""
    from autodl.images import resize_image

    return _per_frame(x, lambda f, _i: resize_image(f, height, width))


def random_rescale(x: Any, low: int, high: int, seed: int) -> Any:
    """Each example rescaled, aspect kept, so that its longer side is a seeded integer in
    ``[low, high]``: fixed-size data made variable-size (a list of arrays)."""
    from autodl.images import resize_image

    sides = np.random.default_rng(seed).integers(low, high + 1, len(x))

    def one(frame: np.ndarray, i: int) -> np.ndarray:
        h, w = frame.shape[:2]
        scale = int(sides[i]) / max(h, w)
        return resize_image(frame, max(1, round(h * scale)), max(1, round(w * scale)))

    return _per_frame(x, one)


def apply_transforms(arrays: Arrays, transforms: Mapping[str, Any], seed: int = 0) -> Arrays:
    """Apply the derivations of a recipe, in :data:`TRANSFORMS` order, to train and test.

    Parameters
    ----------
    arrays:
        ``(x_train, y_train, x_test, y_test, names)`` as a source's loader returns them.
    transforms:
        ``{derivation: value}`` (values as :func:`autodl.collection.load_collection` normalises them).
    seed:
        Seed of the subsets and random derivations (test draws with ``seed + 1``).

    Returns
    -------
    tuple
        The derived arrays.
    """
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise CollectionError(None, f"unknown derivation(s) {sorted(unknown)}; expected {', '.join(TRANSFORMS)}",
                              field=min(unknown))
    if "classes" in transforms:
        arrays = subset_classes(arrays, transforms["classes"])
    if "max_train" in transforms or "max_test" in transforms:
        arrays = cap_examples(arrays, transforms.get("max_train"), transforms.get("max_test"), seed)
    x_tr, y_tr, x_te, y_te, names = arrays
    for key in TRANSFORMS[3:]:
        if key not in transforms:
            continue
        v = transforms[key]
        for subset, s in (("train", seed), ("test", seed + 1)):
            x = x_tr if subset == "train" else x_te
            if key == "color":
                x = to_color(x, v)
            elif key == "rotate":
                x = rotate(x, float(v))
            elif key == "random_rotate":
                x = random_rotate(x, float(v), s)
            elif key == "resize":
                h, w = (v, v) if isinstance(v, int) else v
                x = resize(x, int(h), int(w))
            elif key == "random_rescale":
                x = random_rescale(x, int(v[0]), int(v[1]), s)
            if subset == "train":
                x_tr = x
            else:
                x_te = x
    return x_tr, y_tr, x_te, y_te, names
