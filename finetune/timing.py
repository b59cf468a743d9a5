"""Timing tables (version 2): what every operation of the fine-tuning learner costs.

A timing table drives the simulated clock (:class:`autodl.clock.SimulatedClock`): an
offline evaluation advances the clock by what the table says each operation takes on
the machine it was measured on, so that its learning curve is reproducible and
independent of the load of a shared machine. Every cost the learner incurs is priced
from a measurement (:func:`measure_timings`) of the code the learner runs:

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
  (least squares on relative errors) over a few measured shapes:

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
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autodl.errors import AutoDLError
from autodl.records import utc_now

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
    "count_measurements",
    "data_format",
    "measure_timings",
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
DECODE_TARGET = 32
"""Side the decoding measurements resize frames to (the ``mini`` protocol's size)."""
DEFAULT_MAX_BATCH_PIXELS = 2 ** 20
"""``fwd_bwd`` is measured at the batch sizes whose batch holds at most this many pixels
(at least the two smallest); other batch sizes are interpolated or continued linearly."""

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
    training rows by leave-one-out. With ``m = min(n, d)``:

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


def _fit_nonneg(rows: Sequence[Sequence[float]], seconds: Sequence[float]) -> list[float]:
    """Non-negative least squares on relative errors: minimise sum(((X c - t) / t)^2), c >= 0."""
    from scipy.optimize import nnls

    x = np.asarray(rows, dtype=float)
    t = np.asarray(seconds, dtype=float)
    xs = x / t[:, None]
    norms = np.linalg.norm(xs, axis=0)
    norms[norms == 0] = 1.0
    coef, _ = nnls(xs / norms, np.ones(len(t)))
    return [float(c) for c in coef / norms]


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

    Build one with :func:`measure_timings`, :meth:`load` or :meth:`from_dict`; lookups
    raise :class:`TimingError` naming the missing entry and the command that measures it.

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


# ----------------------------------------------------------------------------------------
# measuring
# ----------------------------------------------------------------------------------------


def count_measurements(backbones: Sequence[str], input_sizes: Sequence[int],
                       formats: Sequence[str] = FORMATS) -> int:
    """How many times :func:`measure_timings` calls its ``progress`` (with 1)."""
    return len(backbones) * len(input_sizes) + 1 + len(formats) + 4


def _batch_plan(batch_sizes: Sequence[int], size: int, max_batch_pixels: int) -> list[int]:
    """Batch sizes at which fwd_bwd is measured at ``size``: those within the pixel budget,
    at least the two smallest."""
    ordered = sorted(set(batch_sizes))
    chosen = [b for b in ordered if b * size * size <= max_batch_pixels]
    return chosen if len(chosen) >= 2 else ordered[:2]


class _Timer:
    """Median of ``repeats`` timings after a warm-up; cheap calls are looped to >= 5 ms."""

    def __init__(self, repeats: int, device: str):
        import torch

        self.repeats = max(1, int(repeats))
        self.cuda = device.startswith("cuda")
        self._torch = torch

    def sync(self) -> None:
        if self.cuda:
            self._torch.cuda.synchronize()

    def once(self, fn: Callable[[], Any]) -> float:
        self.sync()
        t = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - t

    def median(self, fn: Callable[[], Any], min_seconds: float = 0.005, max_loops: int = 200) -> float:
        first = self.once(fn)  # warm-up
        if first < 0.05:
            first = self.once(fn)
        loops = 1 if first >= min_seconds else min(max_loops, math.ceil(min_seconds / max(first, 1e-7)))
        samples = []
        for _ in range(self.repeats):
            self.sync()
            t = time.perf_counter()
            for _ in range(loops):
                fn()
            self.sync()
            samples.append((time.perf_counter() - t) / loops)
        return statistics.median(samples)


def _smooth_images(rng: np.random.Generator, n: int, size: int) -> np.ndarray:
    """``n`` uint8 RGB images that compress like photos (smooth shapes, mild noise)."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    f = rng.uniform(1, 4, (n, 3, 2, 1, 1)).astype(np.float32)
    phase = rng.uniform(0, 6.3, (n, 3, 1, 1)).astype(np.float32)
    img = 128 + 80 * np.sin(2 * np.pi * f[:, :, 0] * xx + phase) * np.cos(2 * np.pi * f[:, :, 1] * yy)
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


class _Source:
    """What the ingestion hands a model: carries ``(dataset, subset)`` for :func:`load_arrays`."""

    def __init__(self, ds: Any, subset: str):
        self.autodl_source = (ds, subset)


def _measure_backbone(name: str, size: int, batches: Sequence[int], optimizers: Sequence[str], device: str,
                      timer: _Timer, rng: np.random.Generator) -> dict[str, Any]:
    """fwd_bwd points, optimizer steps and the forward pass of one backbone at one size."""
    import contextlib

    import torch
    import torch.nn.functional as F

    from finetune.backbones import create_backbone
    from finetune.network import FineTuneNet

    kwargs = {"img_size": size} if name == "linear" else {}
    backbone = create_backbone(name, pretrained=False, num_classes=0, **kwargs)
    classes = 10
    net = FineTuneNet(backbone, 3, classes, 0.2).to(device)
    cuda = device.startswith("cuda")
    if cuda:
        net = net.to(memory_format=torch.channels_last)

    def autocast() -> Any:
        return torch.autocast("cuda", dtype=torch.bfloat16) if cuda else contextlib.nullcontext()

    pool = max(FORWARD_BATCH, 2 * max(batches))
    x_pool = torch.from_numpy(rng.integers(0, 256, (pool, 1, 3, size, size), dtype=np.uint8)).to(device)
    y_pool = F.one_hot(torch.from_numpy(rng.integers(0, classes, pool)), classes).float().to(device)
    sgd = torch.optim.SGD(net.parameters(), lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-5)
    net.train()

    def fwd_bwd(bs: int) -> float:
        t = time.perf_counter()
        idx = torch.from_numpy(rng.integers(0, pool, bs)).to(device)
        xb, yb = x_pool[idx], y_pool[idx]
        sgd.zero_grad(set_to_none=True)
        with autocast():
            logits = net(xb).float()
        F.cross_entropy(logits, yb.argmax(1)).backward()
        timer.sync()
        seconds = time.perf_counter() - t
        sgd.step()
        return seconds

    for bs in batches:  # warm-up: every shape once (kernel selection, allocator)
        fwd_bwd(bs)
    # interleaved rounds: a transient load on a shared machine touches one sample of
    # each batch size, not every sample of one (measured: EfficientNet-Lite0's batch of 32
    # at 32 px priced 0.34 s, above its neighbours' line, when its samples were taken in a row)
    samples: dict[int, list[float]] = {bs: [] for bs in batches}
    for _ in range(timer.repeats):
        for bs in batches:
            samples[bs].append(fwd_bwd(bs))
    points = [[bs, statistics.median(samples[bs])] for bs in batches]
    # the gradients of the last backward stay in place for the optimizers' steps
    steps = {}
    for opt_name in optimizers:
        params = list(net.parameters())
        opt = (torch.optim.SGD(params, lr=1e-4, momentum=0.9, nesterov=True, weight_decay=1e-5)
               if opt_name == "SGD" else torch.optim.Adam(params, lr=1e-4, weight_decay=1e-5))
        steps[opt_name] = timer.median(opt.step)
    net.eval()
    xt = x_pool[:FORWARD_BATCH]

    def forward() -> None:
        with torch.no_grad(), autocast():
            net(xt).float()

    per_image = timer.median(forward) / FORWARD_BATCH
    logger.info("%s %dpx: fwd_bwd %s, optimizer %s, forward %.5f s/image", name, size,
                ", ".join(f"{b}: {s:.4f} s" for b, s in points),
                ", ".join(f"{k}: {v:.5f} s" for k, v in steps.items()), per_image)
    return {"fwd_bwd": points, "optimizer_step": steps, "forward": per_image}


def _measure_augmentation(policies: Sequence[str], sizes: Sequence[int], batches: Sequence[int], device: str,
                          timer: _Timer) -> tuple[dict[str, dict[str, float]], list[dict[str, Any]]]:
    import torch

    from finetune.augment import augment

    rng = np.random.default_rng(0)
    shapes = sorted({(b, s) for s in sizes for b in batches})
    coefs, evidence = {}, []
    for policy in policies:
        rows, seconds = [], []
        for bs, size in shapes:
            x = torch.from_numpy(rng.integers(0, 256, (bs, 1, 3, size, size), dtype=np.uint8)).to(device)
            s = timer.median(lambda x=x: augment(x, policy, rng))
            rows.append([1.0, bs, bs * size * size / 1e6])
            seconds.append(s)
            evidence.append({"augmentation": policy, "clips": bs, "input_size": size, "seconds": s})
        coefs[policy] = dict(zip(MODEL_TERMS["augmentation"], _fit_nonneg(rows, seconds)))
    return coefs, evidence


def _measure_decode(fmt: str, sizes: Sequence[int], counts: Sequence[int], timer: _Timer,
                    work: Path) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from autodl.dataset import AutoDLDataset
    from autodl.metadata import COMPRESSED, DENSE
    from autodl.writer import write_arrays
    from finetune.data import load_arrays

    rng = np.random.default_rng(1)
    rows, seconds, evidence = [], [], []
    for size, n in zip(sizes, counts):
        x = _smooth_images(rng, n, size)
        y = np.arange(n) % 4
        root = work / f"{fmt}-{size}"
        if fmt == "dense":
            write_arrays(root, "timing", x.astype(np.float32) / 255, y, x[:4].astype(np.float32) / 255, y[:4],
                         fmt=DENSE, num_classes=4, threads=1)
        else:
            write_arrays(root, "timing", x, y, x[:4], y[:4], fmt=COMPRESSED, image_format=fmt.upper(),
                         num_classes=4, threads=1)
        for limit in (max(1, n // 4), n):
            def load(limit: int = limit) -> None:
                target = (DECODE_TARGET, DECODE_TARGET)
                load_arrays(_Source(AutoDLDataset(root), "train"), target, 1, limit=limit)

            s = timer.median(load)
            rows.append([1.0, limit, limit * size * size / 1e6])
            seconds.append(s)
            evidence.append({"format": fmt, "examples": limit, "source_size": size, "seconds": s})
    return dict(zip(MODEL_TERMS["decode"], _fit_nonneg(rows, seconds))), evidence


def _labels(rng: np.random.Generator, n: int, k: int) -> Any:
    import torch

    y = np.zeros((n, k), dtype=np.float32)
    y[np.arange(n), np.arange(n) % k] = 1.0  # every class present
    return torch.from_numpy(y[rng.permutation(n)])


def _measure_probes(device: str, timer: _Timer, quick: bool,
                    progress: Callable[[int], None] | None) -> tuple[dict[str, Any], dict[str, list]]:
    import torch

    from finetune.probe import RandomReLUFeatures, RidgeProbe, raw_features

    rng = np.random.default_rng(2)
    gen = torch.Generator().manual_seed(2)

    def feats(n: int, d: int) -> Any:
        return torch.randn(n, d, generator=gen).to(device)

    out: dict[str, Any] = {}
    evidence: dict[str, list] = {}
    # ridge: (n, d, k, n_val, n_predict, n_alphas) spanning the learner's probes (raw pixels
    # 16x16xC, random features 768+1024, embeddings of 256 examples)
    # ridge: (n, d, k, n_eval, n_alphas) spanning the learner's probes (raw pixels 16x16xC,
    # random features 768+1024, embeddings of 256 examples); n = 0: predictions alone
    ridge_shapes = ([(32, 16, 2, 0, 1), (64, 48, 3, 16, 4), (96, 128, 5, 24, 4), (128, 64, 10, 0, 2),
                     (0, 48, 3, 64, 4), (0, 128, 10, 256, 4)] if quick else
                    [(128, 64, 2, 0, 1), (256, 192, 10, 64, 4), (256, 512, 10, 256, 4),
                     (256, 1280, 10, 256, 4), (256, 1280, 10, 0, 4), (128, 768, 5, 64, 4),
                     (1024, 768, 10, 256, 4), (4000, 768, 10, 256, 4), (1024, 1792, 10, 0, 4),
                     (2048, 1792, 10, 256, 4), (512, 768, 100, 128, 4), (512, 256, 30, 256, 2),
                     (2048, 768, 10, 0, 4),
                     (0, 64, 2, 4096, 4), (0, 768, 10, 1024, 4), (0, 1792, 10, 4000, 4),
                     (0, 1280, 100, 512, 4), (0, 256, 10, 256, 4)])
    rows, seconds, evidence["ridge"] = [], [], []
    for n, d, k, n_eval, n_alphas in ridge_shapes:
        alphas = RidgeProbe().alphas[:n_alphas]
        fit_n = n or 64  # predictions alone: from a probe fitted beforehand
        x, y, xe = feats(fit_n, d), _labels(rng, fit_n, k).to(device), feats(n_eval, d)
        ye = _labels(rng, n_eval, k).numpy()
        if n:
            def ridge(x=x, y=y, xe=xe, ye=ye, alphas=alphas, n_eval=n_eval) -> None:
                RidgeProbe(alphas=alphas).fit(x, y, xe if n_eval else None, ye if n_eval else None)
        else:
            def ridge(probe=RidgeProbe(alphas=alphas).fit(x, y), xe=xe) -> None:
                probe.predict_proba(xe)

        s = timer.median(ridge)
        rows.append(ridge_terms(n, d, k, n_eval, n_alphas))
        seconds.append(s)
        evidence["ridge"].append({"n": n, "d": d, "k": k, "n_eval": n_eval, "n_alphas": n_alphas,
                                  "seconds": s})
    out["ridge"] = dict(zip(MODEL_TERMS["ridge"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)

    rf_shapes = ([(32, 16, 32, 32), (64, 48, 64, 0), (128, 48, 128, 128), (96, 16, 256, 0), (64, 96, 32, 64)]
                 if quick else
                 [(256, 192, 256, 256), (1024, 768, 1024, 1024), (4096, 768, 1024, 0), (512, 256, 2048, 512),
                  (2048, 768, 1024, 2048), (256, 768, 512, 0), (8192, 64, 256, 0)])
    rows, seconds, evidence["random_features"] = [], [], []
    for n, d, width, n_fit in rf_shapes:
        raw, raw_fit = feats(n, d), feats(n_fit, d) if n_fit else None
        fitted = RandomReLUFeatures(width=width).fit(feats(8, d))

        def random_features(raw=raw, raw_fit=raw_fit, fitted=fitted, width=width) -> None:
            rf = RandomReLUFeatures(width=width).fit(raw_fit) if raw_fit is not None else fitted
            rf.transform(raw)

        s = timer.median(random_features)
        rows.append(random_features_terms(n, d, width, n_fit))
        seconds.append(s)
        evidence["random_features"].append({"n": n, "d": d, "width": width, "n_fit": n_fit, "seconds": s})
    out["random_features"] = dict(zip(MODEL_TERMS["random_features"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)

    raw_shapes = ([(16, 1, 1, 16), (32, 1, 3, 24), (8, 2, 3, 32)] if quick else
                  [(256, 1, 3, 32), (2048, 1, 3, 32), (256, 1, 3, 128), (512, 1, 1, 64), (128, 4, 3, 64)])
    rows, seconds, evidence["raw_features"] = [], [], []
    for n, frames, channels, size in raw_shapes:
        shape = (n, frames, channels, size, size)
        clips = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)).to(device)
        s = timer.median(lambda clips=clips: raw_features(clips))
        rows.append([1.0, float(n) * frames * channels * size * size, float(n) * channels * size * size])
        seconds.append(s)
        evidence["raw_features"].append({"n": n, "frames": frames, "channels": channels, "input_size": size,
                                         "seconds": s})
    out["raw_features"] = dict(zip(MODEL_TERMS["raw_features"], _fit_nonneg(rows, seconds)))
    if progress:
        progress(1)
    return out, evidence


def _measure_write_predictions(timer: _Timer, quick: bool, work: Path) -> tuple[dict[str, float], list]:
    from autodl.ingestion import write_predictions

    rng = np.random.default_rng(3)
    shapes = [(20, 3), (100, 10), (50, 40)] if quick else [(100, 10), (2000, 10), (1000, 100), (10000, 2)]
    rows, seconds, evidence = [], [], []
    for i, (n, k) in enumerate(shapes):
        pred = rng.random((n, k))
        path = work / f"timing.predict_{i}"
        s = timer.median(lambda pred=pred, path=path: write_predictions(path, pred))
        rows.append([1.0, float(n * k)])
        seconds.append(s)
        evidence.append({"rows": n, "columns": k, "seconds": s})
    return dict(zip(MODEL_TERMS["write_predictions"], _fit_nonneg(rows, seconds))), evidence


def _check_names(values: Iterable[str], known: Sequence[str], field: str) -> list[str]:
    values = list(values)
    unknown = [v for v in values if v not in known]
    if unknown or not values:
        raise TimingError(None, f"{unknown or 'nothing'}: expected one or more of {list(known)}", field=field)
    return values


def measure_timings(backbones: Sequence[str], batch_sizes: Sequence[int] = (16, 32, 64, 128),
                    input_sizes: Sequence[int] = (32, 64, 128), optimizers: Sequence[str] = OPTIMIZERS,
                    augmentations: Sequence[str] = AUGMENTATIONS, formats: Sequence[str] = FORMATS,
                    device: str = "cpu", threads: int = 1, repeats: int = 5,
                    progress: Callable[[int], None] | None = None, *, command: str | None = None,
                    max_batch_pixels: int = DEFAULT_MAX_BATCH_PIXELS, quick: bool = False) -> TimingTable:
    """Measure every cost of the fine-tuning learner on this machine (random weights).

    Each figure is the median of ``repeats`` timings after a warm-up (cheap calls are
    looped to at least 5 ms per timing).

    Parameters
    ----------
    backbones:
        Registered backbone names (random weights: no pretrained file is needed).
    batch_sizes:
        Batch sizes of the configuration space; ``fwd_bwd`` is measured at those whose
        batch holds at most ``max_batch_pixels`` pixels (at least the two smallest); the
        others are interpolated (or continued) linearly in the number of images.
    input_sizes:
        Square input sizes in pixels.
    optimizers, augmentations, formats:
        Subsets of :data:`OPTIMIZERS`, :data:`AUGMENTATIONS`, :data:`FORMATS`.
    device:
        ``cpu`` or ``cuda[:N]``.
    threads:
        PyTorch threads during the measurement (offline evaluations run one per
        evaluation); restored afterwards.
    repeats:
        Timings per figure.
    progress:
        Called with 1 after each of :func:`count_measurements` steps.
    command:
        The command line to record (default: this call, as Python).
    max_batch_pixels:
        See ``batch_sizes``.
    quick:
        Tiny synthetic workloads for the probes, decoding and prediction files (for
        tests: the coefficients are noisier).

    Returns
    -------
    TimingTable
        Not saved; call :meth:`TimingTable.save`.
    """
    import torch

    from autodl.machine import machine_description
    from finetune.backbones import list_backbones

    backbones = _check_names(backbones, list_backbones(), "backbones")
    optimizers = _check_names(optimizers, OPTIMIZERS, "optimizers")
    augmentations = _check_names(augmentations, AUGMENTATIONS, "augmentations")
    formats = _check_names(formats, FORMATS, "formats")
    batch_sizes = sorted({int(b) for b in batch_sizes})
    input_sizes = sorted({int(s) for s in input_sizes})
    if not batch_sizes or batch_sizes[0] < 1:
        raise TimingError(None, f"{batch_sizes}: expected batch sizes >= 1", field="batch_sizes")
    if not input_sizes or input_sizes[0] < 1:
        raise TimingError(None, f"{input_sizes}: expected input sizes >= 1 pixel", field="input_sizes")
    if int(threads) < 1:
        raise TimingError(None, f"threads={threads}: expected >= 1", field="threads")
    parameters = {"backbones": backbones, "batch_sizes": batch_sizes, "input_sizes": input_sizes,
                  "optimizers": optimizers, "augmentations": augmentations, "formats": formats,
                  "repeats": int(repeats), "max_batch_pixels": int(max_batch_pixels), "quick": bool(quick),
                  "forward_batch": FORWARD_BATCH, "decode_target": DECODE_TARGET,
                  "fwd_bwd_batch_sizes": {str(s): _batch_plan(batch_sizes, s, max_batch_pixels)
                                          for s in input_sizes}}
    if command is None:
        command = (f"finetune.timing.measure_timings({backbones!r}, {batch_sizes!r}, {input_sizes!r}, "
                   f"optimizers={optimizers!r}, augmentations={augmentations!r}, formats={formats!r}, "
                   f"device={device!r}, threads={threads}, repeats={repeats}, "
                   f"max_batch_pixels={max_batch_pixels}, quick={quick})")

    def tick() -> None:
        if progress is not None:
            progress(1)

    old_threads = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    started = time.perf_counter()
    try:
        timer = _Timer(repeats, device)
        rng = np.random.default_rng(0)
        table_backbones: dict[str, Any] = {}
        for name in backbones:
            parts: dict[str, Any] = {"fwd_bwd": {}, "optimizer_step": {o: {} for o in optimizers},
                                     "forward": {}}
            for size in input_sizes:
                m = _measure_backbone(name, size, parameters["fwd_bwd_batch_sizes"][str(size)], optimizers,
                                      device, timer, rng)
                parts["fwd_bwd"][str(size)] = m["fwd_bwd"]
                for opt, s in m["optimizer_step"].items():
                    parts["optimizer_step"][opt][str(size)] = s
                parts["forward"][str(size)] = m["forward"]
                tick()
            table_backbones[name] = parts
        augmentation, aug_evidence = _measure_augmentation(augmentations, input_sizes, batch_sizes, device,
                                                           timer)
        tick()
        measurements: dict[str, Any] = {"augmentation": aug_evidence, "decode": []}
        decode = {}
        sizes, counts = ((16, 32), (32, 16)) if quick else ((32, 128), (256, 64))
        with tempfile.TemporaryDirectory(prefix="autodl-timing-") as tmp:
            for fmt in formats:
                decode[fmt], evidence = _measure_decode(fmt, sizes, counts, timer, Path(tmp))
                measurements["decode"] += evidence
                tick()
            probes, evidence = _measure_probes(device, timer, quick, progress)
            measurements.update(evidence)
            write, measurements["write_predictions"] = _measure_write_predictions(timer, quick, Path(tmp))
            tick()
    finally:
        torch.set_num_threads(old_threads)
    logger.info("timing table measured in %.0f s", time.perf_counter() - started)
    data = {"version": TIMING_VERSION, "machine": machine_description(), "device": device,
            "threads": int(threads), "created": utc_now(),
            "command": command, "torch": torch.__version__, "parameters": parameters,
            "backbones": table_backbones, "augmentation": augmentation, "decode": decode, **probes,
            "write_predictions": write, "measurements": measurements}
    return TimingTable(data)
