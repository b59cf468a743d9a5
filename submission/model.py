"""The challenge's ``model.py``: the meta-learned submission (see :mod:`submission.agent`).

In a zip built by ``autodl-meta submission build`` this file sits at the root, beside the
packages it imports and the ``artifacts/`` folder. In the source tree
(``submission/model.py``) it uses ``portfolio/default`` and its shipped selector; the
environment variables ``AUTODL_META_ARTIFACTS`` (a folder of artifacts) and
``AUTODL_META_SELECTOR`` (a selector folder) point it elsewhere.
"""

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = _HERE if os.path.isdir(os.path.join(_HERE, "artifacts")) else os.path.dirname(_HERE)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from submission.agent import MetaModel  # noqa: E402


def _artifacts_folder():
    if os.environ.get("AUTODL_META_ARTIFACTS"):
        return os.environ["AUTODL_META_ARTIFACTS"]
    zipped = os.path.join(_HERE, "artifacts")
    return zipped if os.path.isdir(zipped) else os.path.join(_ROOT, "portfolio", "default")


class Model(MetaModel):
    """The challenge's ``Model(metadata)``: ``train``, ``test``, ``done_training``."""

    def __init__(self, metadata):
        super().__init__(metadata, _artifacts_folder(), selector_dir=os.environ.get("AUTODL_META_SELECTOR") or None)
