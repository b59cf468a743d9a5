"""``autodl-meta submission build``: the selector, the portfolio and the code as one
self-contained AutoDL submission zip.

The zip holds, and nothing else:

- ``model.py`` at its root (``submission/model.py``: the challenge's ``Model``);
- the packages it imports: ``autodl/``, ``finetune/``, ``metafeatures/``, ``selector/``,
  ``submission/`` (Python sources only) and the configuration files they read
  (``configs/space``, ``configs/finetune``, ``configs/protocol``);
- ``artifacts/``: ``portfolio.json``, ``summary.json``, ``selector/``,
  ``weights/<backbone>.pth`` (the pretrained weights of every backbone an incumbent or
  the selector's embedder uses), ``submission.json`` (settings) and ``checksums.json``
  (SHA-256 of every artifact, verified by the submission on load, and of every other file
  of the zip, ``code``, verified when the zip is extracted);
- ``requirements.txt``: the third-party packages (and versions) it was built and tested
  with: the challenge's environment must provide them.

Every input is verified before anything is written: the portfolio's files against its
build manifest, the selector's arrays against its card, the selector's training datasets
against the portfolio's incumbents. A build from artifacts that fail is refused, naming
the file. The zip must stay under :data:`MAX_BYTES` (the challenge's limit). Its own SHA-256
is written beside it (``<zip>.sha256``) and checked by :func:`extract_submission`, which also
refuses members that would land outside the folder (zip-slip) and members that differ from
(or are missing in) ``checksums.json``.

An unzipped submission runs through its own copy of the ingestion (:func:`run_isolated`) or
under the organizers' 2019 ingestion program from their starting kit
(:func:`run_under_organizers_ingestion`).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autodl.errors import AutoDLError
from autodl.integrity import write_sha256_file
from autodl.records import utc_now
from autodl.tf1_compat import write_sitecustomize
from submission.artifacts import (
    CHECKSUMS,
    CHECKSUMS_FORMAT,
    SETTINGS,
    Artifacts,
    SubmissionSettings,
    checksum_table,
)

logger = logging.getLogger(__name__)

MAX_BYTES = 300 * 1024 * 1024
"""The largest zip the challenge accepts (300 MB)."""

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("autodl", "finetune", "metafeatures", "selector", "submission")
CONFIGS = ("configs/space", "configs/finetune", "configs/protocol")
REQUIREMENTS = ("numpy", "scipy", "scikit-learn", "torch", "torchvision", "timm", "safetensors", "Pillow",
                "PyYAML", "protobuf", "tensorflow-cpu")


class PackageError(AutoDLError):
    """A submission that cannot be built from the inputs given."""


@dataclass
class BuildResult:
    """What :func:`build_submission` wrote."""

    path: Path
    bytes: int
    files: int
    backbones: list[str]
    selector: str | None
    single_best: str


def _backbones_needed(incumbents: dict[str, dict[str, Any]], selector_card: dict[str, Any] | None) -> list[str]:
    from finetune.backbones import get_backbone_cfg
    from finetune.config import validate_config

    names = set()
    for dataset, config in incumbents.items():
        c = validate_config(config, source=f"portfolio.json, incumbent of {dataset}")
        if c["pretrained"] and get_backbone_cfg(c["backbone"]).has_pretrained:
            names.add(c["backbone"])
    if selector_card and (selector_card.get("embedding") or {}).get("backbone"):
        names.add(selector_card["embedding"]["backbone"])
    return sorted(names)


def _requirements() -> str:
    from importlib import metadata

    lines = ["# third-party packages the submission imports (versions it was built and tested with)"]
    for dist in REQUIREMENTS:
        try:
            lines.append(f"{dist}=={metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            lines.append(dist)
    return "\n".join(lines) + "\n"


def stage_submission(portfolio: str | Path, out_dir: str | Path, *, selector: str | Path | None = None,
                     settings: SubmissionSettings | None = None, command: str = "") -> dict[str, Any]:
    """Write the submission's files (unzipped) into ``out_dir``; returns the build card.

    Parameters
    ----------
    portfolio:
        A portfolio folder (``portfolio.json``, ``summary.json``, optionally
        ``manifest.json`` with checksums and ``selector/``).
    selector:
        The fitted selector's folder (default ``PORTFOLIO/selector``; None there too: no
        selector, the submission uses the single best).
    settings:
        The submission's settings (``submission.json``).

    Raises
    ------
    PackageError
        A missing or corrupted input, a selector fitted on other datasets than the
        portfolio's, a backbone whose weights are not on this machine.
    """
    from selector.base import SelectorError
    from selector.registry import load_selector

    portfolio = Path(portfolio)
    try:
        arts = Artifacts(portfolio)
        problems = arts.verify()
        if problems:
            raise PackageError(arts.table_file, f"the portfolio fails its checksums: {problems[0]}"
                                                + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        incumbents = arts.incumbents()
        single = arts.single_best()
    except PackageError:
        raise
    except AutoDLError as exc:
        raise PackageError(exc.path, exc.message, exc.field) from None
    if single not in incumbents:
        raise PackageError(portfolio / "summary.json", f"the single best {single!r} has no incumbent in "
                                                       f"portfolio.json", field="single_best")
    sel_dir = Path(selector) if selector is not None else portfolio / "selector"
    card = None
    if sel_dir.exists() or selector is not None:
        try:
            sel = load_selector(sel_dir)
        except SelectorError as exc:
            raise PackageError(exc.path, exc.message, exc.field) from None
        missing = sorted(set(sel.classes_) - set(incumbents))
        if missing:
            raise PackageError(sel_dir / "selector.json", f"the selector was fitted on datasets without an "
                                                          f"incumbent in {portfolio / 'portfolio.json'}: "
                                                          f"{', '.join(missing)}", field="classes")
        card = json.loads((sel_dir / "selector.json").read_text())

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise PackageError(out, "not empty; the submission is staged into an empty folder")
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "submission" / "model.py", out / "model.py")
    for pkg in PACKAGES:
        for src in sorted((ROOT / pkg).rglob("*.py")):
            if "__pycache__" in src.parts:
                continue
            dst = out / src.relative_to(ROOT)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)
    for folder in CONFIGS:
        for src in sorted((ROOT / folder).glob("*")):
            if src.is_file():
                dst = out / src.relative_to(ROOT)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)

    a = out / "artifacts"
    a.mkdir()
    shutil.copy2(arts.checked("portfolio.json"), a / "portfolio.json")
    shutil.copy2(arts.checked("summary.json"), a / "summary.json")
    if card is not None:
        (a / "selector").mkdir()
        for name in ("selector.json", "selector.safetensors"):
            shutil.copy2(sel_dir / name, a / "selector" / name)
    from finetune.backbones import PretrainedWeightsNotFoundError, find_weights  # slow: after the checks above

    backbones = _backbones_needed(incumbents, card)
    (a / "weights").mkdir()
    weights = {}
    for name in backbones:
        try:
            src = find_weights(name)
        except PretrainedWeightsNotFoundError as exc:
            raise PackageError(None, f"cannot ship {name}: {exc}", field="backbone") from None
        shutil.copy2(src, a / "weights" / f"{name}{src.suffix or '.pth'}")
        weights[name] = str(src)
    settings = settings or SubmissionSettings()
    (a / SETTINGS).write_text(json.dumps({"format": "autodl-meta-submission-settings/1", **settings.to_dict()},
                                         indent=1) + "\n")
    (out / "requirements.txt").write_text(_requirements())
    files = [p for p in a.rglob("*") if p.is_file()]
    code = [p for p in out.rglob("*") if p.is_file() and not p.is_relative_to(a)]
    build = {"format": CHECKSUMS_FORMAT, "files": checksum_table(a, files), "code": checksum_table(out, code),
             "built": utc_now(),
             "command": command, "portfolio": str(portfolio), "selector": None if card is None else str(sel_dir),
             "selector_name": None if card is None else card.get("selector"), "single_best": single,
             "weights": weights, "settings": settings.to_dict()}
    (a / CHECKSUMS).write_text(json.dumps(build, indent=1) + "\n")
    return build


def build_submission(portfolio: str | Path, out: str | Path, *, selector: str | Path | None = None,
                     settings: SubmissionSettings | None = None, command: str = "",
                     max_bytes: int = MAX_BYTES) -> BuildResult:
    """Build the submission zip ``out`` (see the module docstring and :func:`stage_submission`).

    The zip is written next to ``out`` and moved into place only when complete and under
    ``max_bytes``; an existing ``out`` is replaced only then.
    """
    out = Path(out)
    if out.suffix != ".zip":
        raise PackageError(out, "expected a path ending in .zip")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="autodl-meta-submission-") as tmp:
        stage = Path(tmp) / "submission"
        build = stage_submission(portfolio, stage, selector=selector, settings=settings, command=command)
        part = out.with_name(out.name + ".part")
        files = sorted(p for p in stage.rglob("*") if p.is_file())
        with zipfile.ZipFile(part, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
            for p in files:
                zf.write(p, p.relative_to(stage).as_posix())
        size = part.stat().st_size
        if size > max_bytes:
            part.unlink()
            biggest = max(files, key=lambda p: p.stat().st_size)
            raise PackageError(out, f"{size / 1e6:.1f} MB exceeds the limit of {max_bytes / 1e6:.0f} MB (largest "
                                    f"file {biggest.relative_to(stage)}, {biggest.stat().st_size / 1e6:.1f} MB)")
        part.replace(out)
    sidecar = write_sha256_file(out)
    logger.info("wrote %s: %d files, %.1f MB (SHA-256 in %s)", out, len(files), size / 1e6, sidecar.name)
    return BuildResult(out, size, len(files), sorted(build["weights"]), build["selector_name"], build["single_best"])


def zip_checksum_file(zip_path: str | Path) -> Path:
    """Where :func:`build_submission` writes the zip's SHA-256 (``<zip>.sha256``, as ``sha256sum``)."""
    from autodl.integrity import sha256_file_for

    return sha256_file_for(zip_path)


def verify_zip_checksum(zip_path: str | Path) -> bool:
    """Check the zip against ``<zip>.sha256`` where that file exists; returns whether it did.

    Raises
    ------
    PackageError
        The SHA-256 differs, or the file is not ``sha256sum``'s format.
    """
    from autodl.integrity import IntegrityError, verify_sha256_file

    try:
        return verify_sha256_file(zip_path)
    except IntegrityError as exc:
        raise PackageError(exc.path, exc.message, exc.field) from None


def extract_submission(zip_path: str | Path, out_dir: str | Path) -> Path:
    """Unzip a submission into ``out_dir``; returns ``out_dir``.

    Checked before anything is written: the zip against ``<zip>.sha256`` where there is one
    (:func:`verify_zip_checksum`); every member's name (absolute paths, ``..``, symbolic links
    and members that a link in ``out_dir`` would carry outside are refused: zip-slip); and
    every member against the zip's ``artifacts/checksums.json`` (artifacts and code, with no
    member it does not list), where the zip has one.
    """
    from autodl.integrity import IntegrityError, extract_zip

    zip_path, out_dir = Path(zip_path), Path(out_dir)
    try:
        verify_zip_checksum(zip_path)
        with zipfile.ZipFile(zip_path) as zf:
            if "model.py" not in zf.namelist():
                raise PackageError(zip_path, "has no model.py at its root; expected a submission zip")
        extract_zip(zip_path, out_dir, verify=f"artifacts/{CHECKSUMS}")
    except zipfile.BadZipFile as exc:
        raise PackageError(zip_path, f"not a zip file ({exc})") from None
    except IntegrityError as exc:
        raise PackageError(exc.path, exc.message, exc.field) from None
    return out_dir


ISOLATED_RUNNER = r'''
import json, sys
folder, dataset, out, budget, result_file = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5]
# only the submission's folder: drop the source tree (an editable install's finders and paths)
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in type(f).__name__.lower()
                    and "editable" not in getattr(f, "__name__", "").lower()]
sys.path[:] = [folder] + [p for p in sys.path if "site-packages" in p or "dist-packages" in p
                          or p.rstrip("/").endswith(("lib-dynload",)) or "/lib/python" in p]
import importlib.util
import logging
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
from autodl.ingestion import run_ingestion
spec = importlib.util.spec_from_file_location("model", folder + "/model.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
res = run_ingestion(dataset, lambda meta, clock: module.Model(meta), out, time_budget=budget)
ours = ("autodl", "finetune", "metafeatures", "selector", "submission", "model")
outside = sorted(name for name, m in list(sys.modules.items())
                 if name.split(".")[0] in ours and getattr(m, "__file__", None)
                 and not str(m.__file__).startswith(folder))
with open(result_file, "w") as f:
    json.dump({"success": res.success, "timestamps": res.timestamps, "error": res.error, "outside": outside}, f)
'''
"""The child of :func:`run_isolated`: ``python -I -c ISOLATED_RUNNER FOLDER DATASET OUT BUDGET RESULT_FILE``;
it writes its result (success, timestamps, error, outside) as one JSON object to ``RESULT_FILE``."""


def run_isolated(folder: str | Path, dataset: str | Path, out: str | Path, time_budget: float, *,
                 python: str | None = None, timeout: float | None = None, env: dict[str, str] | None = None
                 ) -> tuple[dict[str, Any], str]:
    """Run an unzipped submission through its own copy of the ingestion, in a child process
    whose import path holds only ``folder`` and the installed third-party packages (not
    this source tree); returns ``(result, log)``: ``result`` has ``success``,
    ``timestamps``, ``error`` and ``outside`` (the project's modules imported from
    anywhere but ``folder``: empty when the submission is self-contained). The child writes
    its result to a file of a temporary folder (:data:`ISOLATED_RUNNER`)."""
    import os
    import subprocess
    import sys

    folder = str(Path(folder).resolve())
    with tempfile.TemporaryDirectory(prefix="autodl-isolated-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = [python or sys.executable, "-I", "-c", ISOLATED_RUNNER, folder, str(Path(dataset).resolve()),
               str(Path(out).resolve()), str(time_budget), str(result_file)]
        run_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODL_META_")}
        run_env.update(env or {})
        proc = subprocess.run(cmd, cwd=folder, capture_output=True, text=True, timeout=timeout, env=run_env)
        log = proc.stdout + proc.stderr
        if result_file.is_file():  # written once ingestion has finished (whatever the exit code)
            return json.loads(result_file.read_text()), log
    raise PackageError(folder, f"the submission did not finish (exit code {proc.returncode}): "
                               f"{log.strip().splitlines()[-1] if log.strip() else 'no output'}")


@dataclass
class OrganizersRun:
    """What :func:`run_under_organizers_ingestion` left: the program's exit code, its log (stdout
    and stderr), the predictions folder, how many predictions it holds and the
    ``ingestion_success`` of its ``end.txt`` (None without ``end.txt``)."""

    returncode: int
    log: Path
    output_dir: Path
    predictions: int
    success: bool | None
    version: str | None


def find_organizers_ingestion(kit: str | Path) -> Path:
    """The folder holding the organizers' ``ingestion.py``: ``kit`` itself or its
    ``AutoDL_ingestion_program/`` (a starting-kit checkout)."""
    kit = Path(kit)
    for folder in (kit / "AutoDL_ingestion_program", kit):
        if (folder / "ingestion.py").is_file() and (folder / "data.proto").is_file():
            return folder
    raise PackageError(kit, "not an AutoDL starting kit: expected AutoDL_ingestion_program/ingestion.py (and "
                            "data.proto beside it) in this folder, or ingestion.py in it (a checkout of "
                            "github.com/zhengying-liu/autodl_starting_kit_stable)")


def _prepare_data_pb2(work: Path, python: str) -> None:
    """Make ``work/data_pb2.py`` importable by ``python``: regenerate it from ``data.proto`` with
    ``grpc_tools.protoc`` when the shipped one is too old for the installed protobuf."""
    import importlib.util
    import subprocess
    import sys

    def error() -> str | None:
        p = subprocess.run([python, "-c", "import data_pb2"], cwd=work, capture_output=True, text=True)
        return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["no output"])[-1]

    first = error()
    if first is None:
        return
    logger.info("the kit's data_pb2.py does not import here (%s); regenerating it from data.proto", first)
    if importlib.util.find_spec("grpc_tools") is None:
        raise PackageError(work / "data_pb2.py", f"the kit's generated protobuf module does not import with the "
                                                 f"installed protobuf ({first}); to regenerate it from data.proto, "
                                                 f"install grpcio-tools: pip install grpcio-tools")
    p = subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I.", "--python_out=.", "data.proto"],
                       cwd=work, capture_output=True, text=True)
    again = error() if p.returncode == 0 else (p.stderr.strip() or f"protoc exit code {p.returncode}")
    if again is not None:
        raise PackageError(work / "data.proto", f"regenerating data_pb2.py failed: {again}")


def run_under_organizers_ingestion(code_dir: str | Path, dataset: str | Path, kit: str | Path, out: str | Path, *,
                                   time_budget: float, log: str | Path | None = None, python: str | None = None,
                                   timeout: float | None = None) -> OrganizersRun:
    """Run an unzipped submission (``code_dir``, with ``model.py`` at its root) under the AutoDL
    organizers' own ingestion program (``AutoDL_ingestion_program/ingestion.py`` of the 2019
    starting kit ``kit``, v20191204), on ``dataset`` (the folder holding ``<name>.data/`` and
    ``<name>.solution``), writing the predictions into ``out``.

    The kit is left untouched: its ingestion program is copied into a temporary folder, whose
    ``data_pb2.py`` is regenerated when the installed protobuf cannot import the shipped one,
    and the program runs with a ``sitecustomize.py`` first on its PYTHONPATH that gives it the
    TF 1 and pip < 10 names it imports (:func:`autodl.tf1_compat.apply_for_organizers_ingestion`,
    written with :func:`autodl.tf1_compat.write_sitecustomize`: TensorFlow stays in eager mode,
    the submission it runs being TensorFlow 2 code). Its stdout and stderr go to ``log`` (default
    ``OUT.log``, beside ``out``).

    Raises
    ------
    PackageError
        ``kit`` is not a starting kit, ``data_pb2.py`` cannot be made importable, or the
        program ran past ``timeout`` seconds.
    """
    import os
    import re
    import subprocess
    import sys

    source = find_organizers_ingestion(kit)
    python = python or sys.executable
    code_dir, dataset, out = Path(code_dir).resolve(), Path(dataset).resolve(), Path(out).resolve()
    log = Path(log).resolve() if log else out.with_name(out.name + ".log")
    version = re.search(r"^VERSION\s*=\s*['\"]([^'\"]+)", (source / "ingestion.py").read_text(), re.M)
    version = version.group(1) if version else None
    with tempfile.TemporaryDirectory(prefix="autodl-meta-organizers-") as tmp:
        work, shim, score = Path(tmp) / "ingestion", Path(tmp) / "shim", Path(tmp) / "score"
        shutil.copytree(source, work, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        _prepare_data_pb2(work, python)
        write_sitecustomize(shim, "apply_for_organizers_ingestion")
        score.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODL_META_")}
        env["PYTHONPATH"] = os.pathsep.join([str(shim)] + [p for p in [env.get("PYTHONPATH")] if p])
        env["PYTHONUNBUFFERED"] = "1"  # the log in the order it happened (stdout and stderr in one file)
        cmd = [python, str(work / "ingestion.py"), "--dataset_dir", str(dataset), "--output_dir", str(out),
               "--ingestion_program_dir", str(work), "--code_dir", str(code_dir), "--score_dir", str(score),
               "--time_budget", f"{time_budget:g}"]
        logger.info("running the organizers' ingestion %s (%s): %s", version, source, " ".join(cmd))
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            try:
                proc = subprocess.run(cmd, cwd=tmp, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=timeout)
            except subprocess.TimeoutExpired:
                raise PackageError(log, f"the organizers' ingestion ran past {timeout:g} s and was stopped") from None
    end = out / "end.txt"
    success = None
    if end.is_file():
        m = re.search(r"ingestion_success:\s*(\d)", end.read_text())
        success = bool(m and m.group(1) == "1")
    predictions = len(list(out.glob("*.predict_*")))
    logger.info("organizers' ingestion: exit code %d, %d predictions, success %s, log %s",
                proc.returncode, predictions, success, log)
    return OrganizersRun(proc.returncode, log, out, predictions, success, version)
