"""The model names ``submission`` and ``submission:PATH``: this project's submission run as a
challenge ``model.py``.

* ``submission``: the shipped submission, the file ``submission/model.py`` of the source tree
  (:data:`SUBMISSION_MODEL`), run as ``file:`` runs a ``model.py`` (wall clock).
* ``submission:PATH``: a submission folder holding ``model.py`` (e.g. an unzipped
  submission), or a submission ``.zip`` with ``model.py`` at its root, which is extracted
  into a temporary folder first (:func:`unpack_submission` extracts it where the caller
  wants); then run as ``file:PATH/model.py``.

Importing this module registers both kinds with :func:`finetune.models.register_model_kind`
(the model names live in :mod:`finetune`, below this layer, which never imports it nor names
this package's files: this module is declared as an entry point of the group
``autodl_meta.model_kinds`` in ``pyproject.toml``). It imports little, since a child
``python -m finetune.models --model submission`` imports it before anything runs.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.ingestion import ModelFactory
from finetune.models import register_model_kind, resolve_model

logger = logging.getLogger(__name__)

SUBMISSION_MODEL = Path(__file__).resolve().with_name("model.py")
"""The shipped submission's ``model.py`` (model name ``submission``)."""


def unpack_submission(archive: str | Path, dest: str | Path) -> Path:
    """Extract a submission zip into ``dest`` (created; emptied first) and return ``dest``.

    Raises
    ------
    AutoDLError
        The file is not a zip, has no ``model.py`` at its root (as the challenge requires), has a
        member whose path would leave ``dest`` (zip-slip), or differs from the ``<zip>.sha256``
        beside it or a member from the zip's ``artifacts/checksums.json`` (an
        :class:`autodl.integrity.IntegrityError`).
    """
    from autodl.integrity import extract_zip, verify_sha256_file

    archive, dest = Path(archive), Path(dest)
    try:
        verify_sha256_file(archive)  # <zip>.sha256 beside it, where there is one
        with zipfile.ZipFile(archive) as zf:
            names = zf.namelist()
            if "model.py" not in names:
                raise AutoDLError(archive, "has no model.py at its root; a submission zip holds model.py at its "
                                           "root (as the challenge requires)", field="model.py")
        if dest.is_symlink():
            raise AutoDLError(dest, "is a symbolic link; a submission is extracted into a folder of its own",
                              field="--model")
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        # members that would leave dest (absolute, '..', links) are refused before anything is
        # written, and so are members that differ from the zip's artifacts/checksums.json
        extract_zip(archive, dest, verify="artifacts/checksums.json")
    except zipfile.BadZipFile as exc:
        raise AutoDLError(archive, f"is not a zip file ({exc}); expected a submission .zip or a folder "
                                   "holding model.py", field="--model") from None
    logger.info("extracted %s into %s", archive, dest)
    return dest


def submission_file(name: str, unpack_dir: str | Path | None = None) -> Path:
    """The ``model.py`` behind ``submission`` or ``submission:PATH``.

    A ``.zip`` is extracted into ``unpack_dir`` (default: a temporary folder removed when
    this process exits). The file's existence is not checked here (resolving ``file:`` does).

    Raises
    ------
    AutoDLError
        ``submission:`` without a path, a path that does not exist, or a bad zip.
    """
    if name == "submission":
        return SUBMISSION_MODEL
    path = Path(name.removeprefix("submission:"))
    if not str(path) or name == "submission:":
        raise AutoDLError(None, "submission: needs a path: submission:FOLDER (holding model.py) or "
                                "submission:FILE.zip", field="--model")
    if path.is_dir():
        return path / "model.py"
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        if unpack_dir is None:
            unpack_dir = tempfile.mkdtemp(prefix="autodl-submission-")
            atexit.register(shutil.rmtree, unpack_dir, True)
        return unpack_submission(path, unpack_dir) / "model.py"
    if path.is_file() and path.name.endswith(".py"):
        return path
    raise AutoDLError(path, "not found" if not path.exists() else "is neither a folder nor a .zip",
                      field="--model")


def resolve_submission(name: str, *, portfolio: Any = None, dataset: Any = None, **_: Any) -> ModelFactory:
    """``(meta, clock) -> Model(meta)`` of the ``model.py`` behind ``submission`` or
    ``submission:PATH`` (:func:`submission_file`), as ``file:`` runs one."""
    return resolve_model(f"file:{submission_file(name)}")


register_model_kind("submission", resolve_submission, simulated_clock=False,
                    description="this project's shipped submission (submission/model.py), on the wall clock")
register_model_kind("submission:", resolve_submission, usage="submission:PATH (a folder holding model.py, or a .zip)",
                    simulated_clock=False, description="a submission folder or .zip, on the wall clock")
