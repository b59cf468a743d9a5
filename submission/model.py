"""The challenge's ``model.py``: the meta-learned submission (see :mod:`submission.agent`).

In a zip built by ``autodl-meta submission build`` this file sits at the root, beside the
packages it imports and the ``artifacts/`` folder. In the source tree
(``submission/model.py``) it uses ``portfolio/default`` and its shipped selector; the
environment variables ``AUTODL_META_ARTIFACTS`` (a folder of artifacts) and
``AUTODL_META_SELECTOR`` (a selector folder) point it elsewhere, and
``AUTODL_META_SETTINGS`` (a JSON object, e.g. ``{"hedge": 2}``) overrides settings of its
``submission.json`` (the held-out benchmark runs variants this way).
"""

import logging
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = _HERE if os.path.isdir(os.path.join(_HERE, "artifacts")) else os.path.dirname(_HERE)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

if "tensorflow" in sys.modules and "torch" not in sys.modules and "triton" not in sys.modules:
    # The organizers' ingestion imports TensorFlow before this file. Loading triton's native
    # library after TensorFlow's segfaults the process (clashing LLVM symbols; torchvision
    # pulls triton in through torch._dynamo); this project never uses triton (no
    # torch.compile), so it is kept out. Measured with torch 2.14.1 / TensorFlow 2.21.
    sys.modules["triton"] = None

from submission.agent import MetaModel, settings_overrides  # noqa: E402

if not logging.getLogger().handlers and not logging.getLogger("submission").handlers:
    # Nothing configured logging (the organizers' ingestion gives only its own logger a
    # handler): show the submission's decision and fallbacks on stderr, where the
    # challenge's log shows them.
    _handler = logging.StreamHandler(sys.stderr)
    _handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger("submission").addHandler(_handler)
    logging.getLogger("submission").setLevel(logging.INFO)


def _artifacts_folder():
    if os.environ.get("AUTODL_META_ARTIFACTS"):
        return os.environ["AUTODL_META_ARTIFACTS"]
    zipped = os.path.join(_HERE, "artifacts")
    return zipped if os.path.isdir(zipped) else os.path.join(_ROOT, "portfolio", "default")


def _overrides():
    try:
        return settings_overrides(os.environ.get("AUTODL_META_SETTINGS"))
    except Exception as exc:  # noqa: BLE001 - a bad variable never stops the run
        logging.getLogger("submission").warning("%s: ignored", exc)
        return None


class Model(MetaModel):
    """The challenge's ``Model(metadata)``: ``train``, ``test``, ``done_training``."""

    def __init__(self, metadata):
        super().__init__(metadata, _artifacts_folder(), selector_dir=os.environ.get("AUTODL_META_SELECTOR") or None,
                         overrides=_overrides())
