"""Timing tables (version 2): what every operation of the fine-tuning learner costs (pricing).

A timing table drives the simulated clock (:class:`autodl.clock.SimulatedClock`): an
offline evaluation advances the clock by what the table says each operation takes on
the machine it was measured on, so that its learning curve is reproducible and
independent of the load of a shared machine. Every cost the learner incurs is priced
from a measurement (:func:`finetune.timing_measurement.measure_timings`, which times the
operations and fits the coefficients) of the code the learner runs:

* :meth:`TimingTable.train_step_s`: one training step as ``FineTuneLearner._train_steps``
  takes it, the sum of ``fwd_bwd`` (drawing the batch from a uint8 pool, ``zero_grad``,
  forward of ``[B, T, C, H, W]`` uint8 clips through :class:`finetune.network.FineTuneNet`,
  cross-entropy, backward), ``optimizer_step`` (SGD with Nesterov momentum, or Adam) and
  ``augmentation`` (:func:`finetune.augment.augment`);
* :meth:`TimingTable.forward_s`: seconds per image of a forward pass in eval mode
  without gradients, in batches of 128 (embeddings and test passes);
* :meth:`TimingTable.decode_s`: ``AutoDLDataset.load_numpy`` end to end (reading,
  parsing, decoding, resizing) as :func:`finetune.data.load_arrays` calls it;
* :meth:`TimingTable.ridge_s`: :class:`finetune.probe.RidgeProbe` ``fit`` (penalty chosen
  on a validation split) and ``predict_proba``;
* :meth:`TimingTable.random_features_s`: :class:`finetune.probe.RandomReLUFeatures`
  ``fit`` and ``transform``; :meth:`TimingTable.raw_features_s`:
  :func:`finetune.probe.raw_features`;
* :meth:`TimingTable.write_predictions_s`: :func:`autodl.ingestion.write_predictions`.

How measured points become costs
--------------------------------
* ``fwd_bwd`` is measured, per backbone and input size, at two or more batch sizes
  (``images`` = batch size x frames). At one size the cost is piecewise linear in
  ``images`` through the measured points (exact where measured; made non-decreasing),
  continued beyond the largest measured batch with the slope of the last segment (at
  least the per-image cost of the largest batch) and below the smallest along the first
  segment (at least proportionally). A least-squares line ``a + b * images`` was the
  first idea, but on the 2-core CPU at 128 px one image costs 40-60% more in a batch of
  64 than in one of 16 (caches), and a line missed the measured points by up to 75%.
  Between two measured sizes the cost is interpolated linearly in the pixel count;
  beyond the measured sizes it is scaled by the pixel ratio from the nearest measured
  size (a warning is logged once per quantity, backbone and size). ``forward`` (seconds
  per image) follows the same rule over sizes; ``optimizer_step`` (which does not depend
  on the input size for a convolutional backbone) is interpolated in pixel count between
  measured sizes and held at the nearest one beyond them.
* Everything else is a linear cost model whose non-negative coefficients are fitted
  (least squares on relative errors, by :mod:`finetune.timing_measurement`) over a few
  measured shapes:

  - augmentation: ``step_s + clip_s * clips + megapixel_s * megapixels of the batch``
  - decode: ``call_s + example_s * examples + megapixel_s * megapixels of the source frames``
  - ridge: SVD, multiply-adds, element-wise work and NAUC scoring of a fit, or
    ``predict_proba`` alone (see :func:`ridge_terms`)
  - random features: ``call_s + matmul_s * n*d*w + elementwise_s * n*(d + w)
    + init_s * d*w + fit_s * n_fit*d`` (the last two only when fitting)
  - raw features: ``call_s + value_s * n*frames*channels*pixels + pool_s * n*channels*pixels``
  - write predictions: ``call_s + value_s * values``

The JSON schema is described in ``configs/timing/README.md``; :meth:`TimingTable.load`
refuses a version-1 table (seconds per training batch only) and any malformed field,
naming the file and the field.
"""

from __future__ import annotations

import json
import logging
import math
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError

logger = logging.getLogger(__name__)

__all__ = [
    "AUGMENTATIONS",
    "FORMATS",
    "FORWARD_BATCH",
    "MODEL_TERMS",
    "OPTIMIZERS",
    "TIMING_VERSION",
    "TimingError",
    "TimingTable",
    "data_format",
    "random_features_terms",
    "ridge_terms",
]

TIMING_VERSION = 2
"""The version of the timing-table schema this module reads and writes."""
OPTIMIZERS: tuple[str, ...] = ("SGD", "Adam")
"""Optimizers as :class:`finetune.learner.FineTuneLearner` makes them (SGD: Nesterov momentum 0.9)."""
AUGMENTATIONS: tuple[str, ...] = ("none", "flip", "fast_autoaugment")
"""The policies of :func:`finetune.augment.augment` (``finetune.augment.POLICIES``)."""
FORMATS: tuple[str, ...] = ("png", "jpeg", "dense")
"""Storage formats whose decoding is priced: compressed PNG, compressed JPEG, dense floats."""
FORWARD_BATCH = 128
"""Batch of the eval-mode forward passes (the learner's ``_batches``)."""

MODEL_TERMS: dict[str, tuple[str, ...]] = {
    "augmentation": ("step_s", "clip_s", "megapixel_s"),
    "decode": ("call_s", "example_s", "megapixel_s"),
    "ridge": ("call_s", "svd_s", "svd_wide_s", "svd_cube_s", "matmul_s", "elementwise_s", "score_s",
              "score_value_s", "predict_call_s"),
    "random_features": ("call_s", "matmul_s", "elementwise_s", "init_s", "fit_s"),
    "raw_features": ("call_s", "value_s", "pool_s"),
    "write_predictions": ("call_s", "value_s"),
}
"""The coefficients of each linear cost model, in the order of its terms."""

_BACKBONE_PARTS = ("fwd_bwd", "optimizer_step", "forward")
_PER_KEY_MODELS = ("augmentation", "decode")  # {key: coefficients}; the others are one set
_CLI = "autodl-meta finetune timings"


class TimingError(AutoDLError):
    """A timing table lacks a cost that is needed, or cannot be read."""


# ----------------------------------------------------------------------------------------
# cost models: the terms each coefficient multiplies
# ----------------------------------------------------------------------------------------


def ridge_terms(n: int, d: int, k: int, n_eval: int = 0, n_alphas: int = 4) -> list[float]:
    """Terms of the ridge cost model, in the order of :data:`MODEL_TERMS` ``["ridge"]``.

    A fit (``n > 0``) of :class:`~finetune.probe.RidgeProbe` on ``n`` rows of ``d``
    features and ``k`` classes scores each of its ``a = n_alphas`` penalties on ``r``
    rows: the ``n_eval`` validation rows, or without them (``n_eval = 0``) the ``n``
    training rows by leave-one-out. (The learner scores those by leave-pair-out instead, below 30
    training examples: at most 406 pairs, one 2x2 solve each, about 2.5 ms more per fit of 29 x 1280
    features and 10 classes on one thread here, which this model leaves unpriced.) With
    ``m = min(n, d)``:

    * ``call_s``: 1;
    * ``svd_s`` / ``svd_wide_s``: ``n*d*m`` for a tall (``n >= d``) / wide matrix, and
      ``svd_cube_s``: ``m**3`` (LAPACK's thin SVD; wide matrices cost more per flop here);
    * ``matmul_s``: ``k*n*m + a*k*d*m + a*k*(d*n_eval or n*m)``, the multiply-adds of
      projecting the labels, each penalty's coefficients and its validation (or
      leave-one-out) predictions;
    * ``elementwise_s``: ``n*d + a*d*n_eval``, standardising features;
    * ``score_s``: ``a*k`` NAUC columns, and ``score_value_s``: ``a*k*r`` values scored.

    Without a fit (``n = 0``) it is ``predict_proba`` on ``n_eval`` rows:
    ``predict_call_s`` 1, ``matmul_s`` ``k*d*n_eval``, ``elementwise_s`` ``d*n_eval``.
    """
    if n <= 0:
        return [0.0, 0.0, 0.0, 0.0, float(k * d * n_eval), float(d * n_eval), 0.0, 0.0, 1.0]
    m = min(n, d)
    a = n_alphas
    rows = n_eval if n_eval > 0 else n
    evaluate = d * n_eval if n_eval > 0 else n * m
    svd = float(n) * d * m
    return [1.0, svd if n >= d else 0.0, svd if n < d else 0.0, float(m) ** 3,
            float(k * n * m + a * k * d * m + a * k * evaluate), float(n * d + a * d * n_eval),
            float(a * k), float(a * k * rows), 0.0]


def random_features_terms(n: int, d: int, width: int, n_fit: int = 0) -> list[float]:
    """Terms of the random-feature cost model (:data:`MODEL_TERMS` ``["random_features"]``).

    ``[1, n*d*w, n*(d + w), d*w, n_fit*d]``: transforming ``n`` rows (a matrix product
    and element-wise work), and, when ``n_fit > 0``, drawing the random weights and
    standardising the ``n_fit`` rows fitted on.
    """
    return [1.0, float(n) * d * width, float(n) * (d + width), float(d * width if n_fit > 0 else 0),
            float(n_fit) * d]


def _linear_cost(coef: Mapping[str, float], names: Sequence[str], terms: Sequence[float]) -> float:
    return float(sum(coef[name] * term for name, term in zip(names, terms)))


def _monotone(points: Sequence[Sequence[float]]) -> list[tuple[float, float]]:
    """``[(images, seconds)]`` sorted by images, seconds made non-decreasing (running maximum)."""
    out: list[tuple[float, float]] = []
    for images, seconds in sorted((float(i), float(s)) for i, s in points):
        out.append((images, max(seconds, out[-1][1]) if out else seconds))
    return out


def _piecewise(points: Sequence[tuple[float, float]], images: float) -> float:
    """Seconds for ``images`` from measured ``points`` (see :func:`_monotone`): piecewise
    linear through them, continued beyond with the last segment's slope (at least the
    largest batch's per-image cost) and below with the first segment's (at least
    proportionally to the smallest batch)."""
    n0, s0 = points[0]
    if len(points) == 1:
        return s0 * images / n0
    if images <= n0:
        slope = (points[1][1] - s0) / (points[1][0] - n0)
        return max(s0 * images / n0, s0 - slope * (n0 - images))
    for (n1, s1), (n2, s2) in zip(points, points[1:]):
        if images <= n2:
            return s1 + (s2 - s1) * (images - n1) / (n2 - n1)
    (n1, s1), (n2, s2) = points[-2], points[-1]
    return s2 + max((s2 - s1) / (n2 - n1), s2 / n2) * (images - n2)


# ----------------------------------------------------------------------------------------
# validation
# ----------------------------------------------------------------------------------------


def _number(value: Any, path: Path | None, field: str, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or value < 0 or (positive and value <= 0):
        raise TimingError(path, f"expected a finite number {'> 0' if positive else '>= 0'} (seconds), "
                                f"got {value!r}", field=field)
    return float(value)


def _mapping(value: Any, path: Path | None, field: str, *, nonempty: bool = True) -> Mapping[str, Any]:
    if not isinstance(value, Mapping) or (nonempty and not value):
        raise TimingError(path, f"expected a {'non-empty ' if nonempty else ''}mapping, got {value!r:.80}",
                          field=field)
    return value


def _size_key(key: Any, path: Path | None, field: str) -> int:
    try:
        size = int(key)
    except (TypeError, ValueError):
        size = 0
    if size <= 0 or str(size) != str(key):
        raise TimingError(path, f"expected input sizes in pixels (positive integers as keys), got {key!r}",
                          field=field)
    return size


def _by_size(value: Any, path: Path | None, field: str, *, positive: bool = False) -> dict[str, float]:
    """``{"<size>": seconds}`` checked: positive integer sizes, finite non-negative seconds."""
    out = {}
    for size, seconds in _mapping(value, path, field).items():
        _size_key(size, path, field)
        out[str(size)] = _number(seconds, path, f"{field}.{size}", positive=positive)
    return out


def _validate(data: Any, path: Path | None) -> dict[str, Any]:
    """Check a version-2 table dict; return a normalised deep copy (sizes as str keys)."""
    if not isinstance(data, Mapping):
        raise TimingError(path, f"expected a JSON object, got {type(data).__name__}")
    if "version" not in data:
        what = "a version-1 timing table (seconds per training batch only)" if "entries" in data else \
            "no 'version' field"
        raise TimingError(path, f"{what}; this project reads version {TIMING_VERSION}: measure it "
                                f"again with `{_CLI} --out {path or 'FILE'}`", field="version")
    if data["version"] != TIMING_VERSION:
        raise TimingError(path, f"version {data['version']!r}; expected {TIMING_VERSION}: measure it again "
                                f"with `{_CLI} --out {path or 'FILE'}`", field="version")
    out: dict[str, Any] = {"version": TIMING_VERSION}
    for key, kind in (("machine", str), ("device", str), ("created", str), ("command", str)):
        value = data.get(key, "")
        if not isinstance(value, kind):
            raise TimingError(path, f"expected a string, got {value!r}", field=key)
        out[key] = value
    threads = data.get("threads", 0)
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise TimingError(path, f"expected a thread count (integer >= 0), got {threads!r}", field="threads")
    out["threads"] = threads
    for key in ("parameters", "measurements"):
        out[key] = json.loads(json.dumps(_mapping(data.get(key, {}), path, key, nonempty=False)))
    if "torch" in data:
        out["torch"] = str(data["torch"])

    backbones: dict[str, Any] = {}
    for name, parts in _mapping(data.get("backbones"), path, "backbones").items():
        where = f"backbones.{name}"
        parts = _mapping(parts, path, where)
        missing = [p for p in _BACKBONE_PARTS if p not in parts]
        if missing:
            raise TimingError(path, f"missing {missing}; expected {list(_BACKBONE_PARTS)}", field=where)
        fwd_bwd = {}
        for size, points in _mapping(parts["fwd_bwd"], path, f"{where}.fwd_bwd").items():
            field = f"{where}.fwd_bwd.{size}"
            _size_key(size, path, field)
            if not isinstance(points, list) or not points:
                raise TimingError(path, f"expected a non-empty list of [images, seconds] points, got "
                                        f"{points!r:.80}", field=field)
            checked = []
            for point in points:
                if not (isinstance(point, list | tuple) and len(point) == 2 and isinstance(point[0], int)
                        and not isinstance(point[0], bool) and point[0] > 0):
                    raise TimingError(path, f"expected [images (integer > 0), seconds], got {point!r}",
                                      field=field)
                checked.append([point[0], _number(point[1], path, field, positive=True)])
            fwd_bwd[str(size)] = checked
        optimizer_step = {opt: _by_size(by_size, path, f"{where}.optimizer_step.{opt}")
                          for opt, by_size in _mapping(parts["optimizer_step"], path,
                                                       f"{where}.optimizer_step").items()}
        forward = _by_size(parts["forward"], path, f"{where}.forward", positive=True)
        backbones[name] = {"fwd_bwd": fwd_bwd, "optimizer_step": optimizer_step, "forward": forward}
    out["backbones"] = backbones

    for model, names in MODEL_TERMS.items():
        value = _mapping(data.get(model), path, model)
        groups = value.items() if model in _PER_KEY_MODELS else [(None, value)]
        checked_model: dict[str, Any] = {}
        for key, coef in groups:
            field = model if key is None else f"{model}.{key}"
            coef = _mapping(coef, path, field)
            if set(coef) != set(names):
                raise TimingError(path, f"expected exactly the coefficients {list(names)}, got "
                                        f"{sorted(coef)}", field=field)
            numbers = {n: _number(coef[n], path, f"{field}.{n}") for n in names}
            if key is None:
                checked_model = numbers
            else:
                checked_model[key] = numbers
        out[model] = checked_model
    return out


# ----------------------------------------------------------------------------------------
# the table
# ----------------------------------------------------------------------------------------


class TimingTable:
    """Measured costs of everything the fine-tuning learner does, on one machine.

    Build one with :func:`finetune.timing_measurement.measure_timings`, :meth:`load` or
    :meth:`from_dict`; lookups raise :class:`TimingError` naming the missing entry and the
    command that measures it.

    Parameters
    ----------
    data:
        A version-2 table as a dict (see ``configs/timing/README.md``); validated.
    path:
        The file it was read from (named in error messages).
    """

    def __init__(self, data: Mapping[str, Any], path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._data = _validate(data, self.path)
        self._warned: set[tuple[str, str, int]] = set()
        # per backbone: sorted [(pixels, [(images, seconds)])] of fwd_bwd, and sorted
        # [(pixels, seconds)] of the forward passes and of each optimizer's step
        self._fwd_bwd: dict[str, list[tuple[int, list[tuple[float, float]]]]] = {}
        self._forward: dict[str, list[tuple[int, float]]] = {}
        self._optim: dict[tuple[str, str], list[tuple[int, float]]] = {}
        for name, parts in self._data["backbones"].items():
            self._fwd_bwd[name] = sorted((int(s) ** 2, _monotone(pts)) for s, pts in parts["fwd_bwd"].items())
            self._forward[name] = sorted((int(s) ** 2, v) for s, v in parts["forward"].items())
            for opt, by_size in parts["optimizer_step"].items():
                self._optim[name, opt] = sorted((int(s) ** 2, v) for s, v in by_size.items())

    # --- description ----------------------------------------------------------------------
    @property
    def machine(self) -> str:
        """The machine it was measured on, in one line."""
        return self._data["machine"]

    @property
    def device(self) -> str:
        return self._data["device"]

    @property
    def threads(self) -> int:
        """PyTorch threads during the measurement."""
        return self._data["threads"]

    @property
    def created(self) -> str:
        return self._data["created"]

    @property
    def command(self) -> str:
        """The command (or Python call) that measured it."""
        return self._data["command"]

    @property
    def backbones(self) -> list[str]:
        """Backbones with measured costs, sorted."""
        return sorted(self._data["backbones"])

    def input_sizes(self, backbone: str) -> list[int]:
        """Input sizes at which ``backbone``'s training steps were measured, ascending."""
        return sorted(int(s) for s in self._backbone(backbone)["fwd_bwd"])

    # --- errors ---------------------------------------------------------------------------
    def _command(self, **extra: str) -> str:
        """The measuring command with ``extra`` items added to its lists."""
        params = self._data.get("parameters", {})
        sizes = sorted({int(s) for b in self._data["backbones"].values() for s in b["fwd_bwd"]})
        lists = {
            "backbones": list(params.get("backbones") or self.backbones),
            "batch-sizes": [str(v) for v in params.get("batch_sizes") or (16, 32, 64, 128)],
            "sizes": [str(v) for v in params.get("input_sizes") or sizes],
            "optimizers": list(params.get("optimizers") or
                               sorted({o for (_, o) in self._optim}, key=_order(OPTIMIZERS))),
            "augmentations": list(params.get("augmentations") or
                                  sorted(self._data["augmentation"], key=_order(AUGMENTATIONS))),
            "formats": list(params.get("formats") or sorted(self._data["decode"], key=_order(FORMATS))),
        }
        for key, value in extra.items():
            if value not in lists[key]:
                lists[key].append(value)
        parts = [_CLI, "--out", shlex.quote(str(self.path or "FILE"))]
        parts += [f"--{key} {','.join(values)}" for key, values in lists.items()]
        parts += [f"--threads {self.threads or 1}", f"--device {self.device or 'cpu'}"]
        return " ".join(parts)

    def _missing(self, what: str, field: str, **extra: str) -> TimingError:
        return TimingError(self.path, f"the timing table has no {what}; measure it with `"
                                      f"{self._command(**extra)}`", field=field)

    def _backbone(self, backbone: str) -> Mapping[str, Any]:
        try:
            return self._data["backbones"][backbone]
        except KeyError:
            raise self._missing(f"costs of backbone {backbone!r} (it has {self.backbones})",
                                f"backbones.{backbone}", backbones=backbone) from None

    def _optimizer(self, backbone: str, optimizer: str) -> list[tuple[int, float]]:
        self._backbone(backbone)
        try:
            return self._optim[backbone, optimizer]
        except KeyError:
            raise self._missing(f"{optimizer!r} optimizer step for backbone {backbone!r}",
                                f"backbones.{backbone}.optimizer_step.{optimizer}",
                                optimizers=optimizer) from None

    def _coefficients(self, model: str, key: str) -> Mapping[str, float]:
        """The coefficients of ``model`` (``augmentation`` or ``decode``) for ``key``."""
        try:
            return self._data[model][key]
        except KeyError:
            option, what = (("augmentations", "cost of the augmentation") if model == "augmentation" else
                            ("formats", "decoding cost of the format"))
            raise self._missing(f"{what} {key!r} (it has {sorted(self._data[model])})", f"{model}.{key}",
                                **{option: key}) from None

    def check(self, config: Mapping[str, Any], frames: int = 1, fmt: str | None = None) -> None:
        """Raise :class:`TimingError` unless every cost ``config`` needs is in the table.

        Parameters
        ----------
        config:
            A fine-tuning configuration (its ``backbone``, ``optimizer`` and ``augmentation``).
        frames:
            Frames per clip the learner feeds (any count is priced; checked to be >= 1).
        fmt:
            The dataset's storage format (``png``, ``jpeg`` or ``dense``; see
            :func:`data_format`), whose decoding must then be priced too.
        """
        for key in ("backbone", "optimizer", "augmentation"):
            if key not in config:
                raise TimingError(None, f"the configuration has no {key!r}; expected a validated "
                                        f"configuration (finetune.config.validate_config)", field=key)
        if int(frames) < 1:
            raise TimingError(None, f"frames={frames}; expected >= 1", field="frames")
        self._optimizer(config["backbone"], config["optimizer"])
        self._coefficients("augmentation", config["augmentation"])
        if fmt is not None:
            self._coefficients("decode", fmt)

    # --- interpolation over input sizes ---------------------------------------------------
    def _over_pixels(self, values: Sequence[tuple[int, float]], input_size: int | Sequence[int], what: str,
                     backbone: str, *, beyond: str = "ratio") -> float:
        """Interpolate ``[(pixels, value)]`` linearly in the pixel count of ``input_size``.

        Beyond the measured sizes: scaled by the pixel ratio from the nearest one
        (``beyond="ratio"``, with a warning once) or held at it (``"nearest"``).
        """
        pixels = _pixels(input_size)
        if len(values) == 1 or pixels <= values[0][0] or pixels >= values[-1][0]:
            near_pixels, near = values[0] if pixels <= values[0][0] else values[-1]
            if pixels == near_pixels or beyond == "nearest":
                return near
            key = (what, backbone, pixels)
            if key not in self._warned:
                self._warned.add(key)
                logger.warning("timing table: %s of %s at %s px extrapolated from %d px by the pixel ratio "
                               "(measured sizes: %s); measure it to be exact", what, backbone,
                               _size_text(input_size), round(math.sqrt(near_pixels)),
                               [round(math.sqrt(p)) for p, _ in values])
            return near * pixels / near_pixels
        for (p0, v0), (p1, v1) in zip(values, values[1:]):
            if p0 <= pixels <= p1:
                w = (pixels - p0) / (p1 - p0)
                return (1 - w) * v0 + w * v1
        raise AssertionError("unreachable")  # pragma: no cover

    # --- lookups --------------------------------------------------------------------------
    def fwd_bwd_s(self, backbone: str, images: int, input_size: int | Sequence[int]) -> float:
        """Seconds to draw a batch of ``images`` frames, run it forward and backward.

        Piecewise linear in ``images`` at each measured size, interpolated in pixel count
        between sizes (see the module's docstring).
        """
        self._backbone(backbone)
        return self._over_pixels([(p, _piecewise(pts, images)) for p, pts in self._fwd_bwd[backbone]],
                                 input_size, "fwd_bwd", backbone)

    def optimizer_step_s(self, backbone: str, optimizer: str, input_size: int | Sequence[int]) -> float:
        """Seconds of one ``optimizer.step()`` (``SGD`` with Nesterov momentum, or ``Adam``)."""
        return self._over_pixels(self._optimizer(backbone, optimizer), input_size, "optimizer step", backbone,
                                 beyond="nearest")

    def augmentation_s(self, augmentation: str, clips: int, megapixels: float) -> float:
        """Seconds of :func:`finetune.augment.augment` on ``clips`` clips holding ``megapixels``."""
        return _linear_cost(self._coefficients("augmentation", augmentation), MODEL_TERMS["augmentation"],
                            [1.0, clips, megapixels])

    def train_step_s(self, backbone: str, batch_size: int, input_size: int | Sequence[int], optimizer: str,
                     augmentation: str, frames: int = 1) -> float:
        """Seconds of one training step: augmentation + forward/backward + optimizer step.

        Parameters
        ----------
        backbone, optimizer, augmentation:
            As in the configuration.
        batch_size:
            Clips per step (the learner's ``min(batch_size, training examples)``).
        input_size:
            The training size: a side in pixels, or ``(H, W)``.
        frames:
            Frames per clip (1 for images): the network sees ``batch_size * frames`` images.
        """
        images = int(batch_size) * int(frames)
        megapixels = images * _pixels(input_size) / 1e6
        return (self.augmentation_s(augmentation, int(batch_size), megapixels)
                + self.fwd_bwd_s(backbone, images, input_size)
                + self.optimizer_step_s(backbone, optimizer, input_size))

    def forward_s(self, backbone: str, input_size: int | Sequence[int]) -> float:
        """Seconds per image of an eval-mode forward pass without gradients (batches of 128).

        Multiply by examples x frames (x 2 with test-time flips) for a test or embedding pass.
        """
        self._backbone(backbone)
        return self._over_pixels(self._forward[backbone], input_size, "forward pass", backbone)

    def decode_s(self, fmt: str, n_examples: int, megapixels: float) -> float:
        """Seconds to read and decode ``n_examples`` examples (``load_numpy``, resized on the way).

        Parameters
        ----------
        fmt:
            ``png``, ``jpeg`` or ``dense`` (see :func:`data_format`).
        n_examples:
            Examples read.
        megapixels:
            Pixels of all their stored frames (before resizing), in millions.
        """
        return _linear_cost(self._coefficients("decode", fmt), MODEL_TERMS["decode"],
                            [1.0, n_examples, megapixels])

    def ridge_s(self, n: int, d: int, k: int, n_eval: int = 0, n_alphas: int = 4) -> float:
        """Seconds of a :class:`~finetune.probe.RidgeProbe` fit, or of its predictions.

        Parameters
        ----------
        n, d, k:
            Training examples (0: no fit, predictions only), features and classes.
        n_eval:
            With a fit: the validation examples each penalty is scored on (0: none; the
            penalties are then scored by leave-one-out on the training examples).
            Without one: the rows whose probabilities are predicted (``predict_proba``).
        n_alphas:
            Penalties tried.
        """
        return _linear_cost(self._data["ridge"], MODEL_TERMS["ridge"], ridge_terms(n, d, k, n_eval, n_alphas))

    def random_features_s(self, n: int, d: int, width: int = 1024, n_fit: int = 0) -> float:
        """Seconds of :class:`~finetune.probe.RandomReLUFeatures`: ``transform`` of ``n`` rows of
        ``d`` raw features into ``d + width``, plus ``fit`` on ``n_fit`` rows when ``n_fit > 0``."""
        return _linear_cost(self._data["random_features"], MODEL_TERMS["random_features"],
                            random_features_terms(n, d, width, n_fit))

    def raw_features_s(self, n: int, pixels: int, frames: int = 1, channels: int = 3) -> float:
        """Seconds of :func:`~finetune.probe.raw_features` on ``n`` clips of ``frames`` frames of
        ``pixels`` (H x W) pixels and ``channels`` channels."""
        return _linear_cost(self._data["raw_features"], MODEL_TERMS["raw_features"],
                            [1.0, float(n) * frames * channels * pixels, float(n) * channels * pixels])

    def write_predictions_s(self, n_values: int) -> float:
        """Seconds for the ingestion to write a prediction file of ``n_values`` values
        (:func:`autodl.ingestion.write_predictions`)."""
        return _linear_cost(self._data["write_predictions"], MODEL_TERMS["write_predictions"],
                            [1.0, n_values])

    # --- files ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The table as a JSON-ready dict (a copy)."""
        return json.loads(json.dumps(self._data))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | Path | None = None) -> TimingTable:
        """A table from a version-2 dict (validated)."""
        return cls(data, path)

    def save(self, path: str | Path) -> Path:
        """Write the table as JSON (creating folders); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self._data, indent=1) + "\n")
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path) -> TimingTable:
        """Read a version-2 table; a version-1 or malformed file raises :class:`TimingError`."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise TimingError(path, f"timing table not found; measure one with `{_CLI} --out {path}`") \
                from None
        except (OSError, UnicodeDecodeError) as exc:
            raise TimingError(path, f"cannot be read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise TimingError(path, f"not JSON ({exc})") from None
        return cls(data, path)

    def __repr__(self) -> str:
        where = f" from {self.path}" if self.path else ""
        return f"TimingTable({len(self.backbones)} backbones, {self.device}, {self.threads} threads{where})"


def _order(names: Sequence[str]) -> Callable[[str], tuple[int, str]]:
    return lambda n: (names.index(n) if n in names else len(names), n)


def _pixels(input_size: int | Sequence[int]) -> int:
    if isinstance(input_size, int | np.integer):
        return int(input_size) ** 2
    h, w = input_size
    return int(h) * int(w)


def _size_text(input_size: int | Sequence[int]) -> str:
    if isinstance(input_size, int | np.integer):
        return str(int(input_size))
    return "x".join(map(str, input_size))


def data_format(dataset: Any, subset: str = "train") -> str:
    """The storage format of a dataset's frames for :meth:`TimingTable.decode_s`.

    ``dense`` for dense data; for compressed frames ``jpeg`` when the first frame is a
    JPEG file, else ``png`` (PNG, and the other lossless formats Pillow reads alike).

    Parameters
    ----------
    dataset:
        An :class:`autodl.dataset.AutoDLDataset` or its folder.
    subset:
        ``train``, ``test`` or ``unlabelled``.
    """
    from autodl.dataset import AutoDLDataset

    ds = dataset if isinstance(dataset, AutoDLDataset) else AutoDLDataset(dataset)
    if not ds.metadata(subset).is_compressed(0):
        return "dense"
    first = next(ds.iter_raw(subset, limit=1), None)
    if first is None or not first.frames:
        return "png"
    return "jpeg" if bytes(first.frames[0][:3]) == b"\xff\xd8\xff" else "png"
