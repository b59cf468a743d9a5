"""Paths that stay inside their folder, zip members that cannot escape, and checksum tables.

What every loader of files that come from elsewhere (a submission zip, a portfolio folder,
a collection file, a ``labels.csv``) uses, so that no such file can make this project read
or write outside the folder it belongs to, and so that a shipped artifact whose SHA-256
differs from its table is refused rather than trusted (the project's security checks are
listed in ``docs/reliability.md``, "Security checks"):

- :func:`name_problem`: why a name (a dataset's, a file's) is not a single safe path
  component (``..``, separators, an absolute path, a NUL byte), or None.
- :func:`inside`: ``root / relative`` once it is certain that it stays inside ``root``,
  symbolic links followed.
- :func:`zip_member_problems` / :func:`extract_zip`: a zip's members checked before anything
  is written (absolute names, ``..``, drive letters, symbolic-link entries, a member that a
  link already in the destination would carry outside, an uncompressed size beyond a limit),
  then extracted.
- :func:`verify_zip_table`: the members of a zip against the checksum table it carries
  (a submission's ``artifacts/checksums.json``), read from the zip before it is extracted;
  :func:`verify_sha256_file`: a file against the ``<file>.sha256`` beside it.
- :func:`listed_checksums` / :func:`read_checked_json`: a folder's checksum table (a
  portfolio build's ``manifest.json`` or a submission's ``checksums.json``) and a JSON file
  read only once its SHA-256 matches the table's entry.

It ships inside the submission zip (it needs only the standard library and :mod:`autodl.records`).
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import zipfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from autodl.errors import AutoDLError
from autodl.records import file_sha256

MAX_UNZIPPED_BYTES = 2 * 1024 ** 3
"""The largest total uncompressed size :func:`extract_zip` accepts (2 GiB: a submission is at
most 300 MB compressed)."""
CHECKSUM_TABLES = ("checksums.json", "manifest.json")
"""The files of a folder that hold its checksum table (``{"files": {path: {"sha256": ...}}}``)."""


class IntegrityError(AutoDLError):
    """A path that would leave its folder, an unsafe zip member, or a checksum that differs."""


def name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be used as one path component inside a folder, or None when it can.

    Refused: a non-string, the empty string, ``.`` and ``..``, anything holding ``/``, ``\\``
    or a NUL byte, and a drive prefix (``C:``). A name that passes can never leave the folder
    it is joined to (before symbolic links, which :func:`inside` checks).
    """
    if not isinstance(name, str) or not name:
        return f"{name!r}: expected a non-empty name"
    if name in (".", ".."):
        return f"{name!r}: a name cannot be '.' or '..'"
    if "/" in name or "\\" in name or "\x00" in name:
        return f"{name!r}: a name cannot hold '/', '\\' or a NUL byte (it would be a path)"
    if len(name) >= 2 and name[1] == ":" and name[0].isalpha():
        return f"{name!r}: a name cannot start with a drive ('{name[:2]}')"
    return None


def inside(root: str | Path, relative: str | Path, *, what: str = "file") -> Path:
    """``root / relative``, refusing a ``relative`` that is absolute, climbs out with ``..``, or
    reaches outside ``root`` through a symbolic link.

    Raises
    ------
    IntegrityError
        Naming ``relative`` and ``root``.
    """
    root = Path(root)
    text = str(relative)
    if not text or "\x00" in text:
        raise IntegrityError(root, f"{text!r}: expected a {what} path relative to this folder")
    rel = Path(text)
    if rel.is_absolute() or text.startswith(("/", "\\")) or (len(text) >= 2 and text[1] == ":"):
        raise IntegrityError(root, f"{text!r} is an absolute path; a {what} must lie inside {root}")
    if ".." in rel.parts or ".." in PurePosixPath(text.replace("\\", "/")).parts:
        raise IntegrityError(root, f"{text!r} climbs out of {root} ('..'); a {what} must lie inside it")
    path = root / rel
    try:
        real, real_root = path.resolve(), root.resolve()
    except (OSError, RuntimeError) as exc:  # a loop of links
        raise IntegrityError(root, f"{text!r} cannot be resolved ({exc})") from None
    if not real.is_relative_to(real_root):
        raise IntegrityError(root, f"{text!r} leads outside {root} (to {real}, through a symbolic link); a {what} "
                                   "must lie inside it")
    return path


# --- zips ------------------------------------------------------------------------------------
def _is_symlink_member(info: zipfile.ZipInfo) -> bool:
    return stat.S_ISLNK(info.external_attr >> 16)


def zip_member_problems(zf: zipfile.ZipFile, dest: str | Path | None = None, *,
                        max_bytes: int = MAX_UNZIPPED_BYTES) -> list[str]:
    """What makes the members of ``zf`` unsafe to extract into ``dest`` (empty: none).

    A member is refused when its name is absolute (``/x``, ``C:x``, ``\\x``), holds ``..``,
    a backslash or a NUL byte, when it is a symbolic link, and (with ``dest``) when the path
    it would be written to resolves outside ``dest`` (a link already there); the zip is
    refused when its members add up to more than ``max_bytes`` uncompressed.
    """
    problems = []
    root = None if dest is None else Path(dest).resolve()
    total = 0
    for info in zf.infolist():
        name = info.filename
        total += info.file_size
        parts = PurePosixPath(name).parts
        if (name.startswith("/") or "\\" in name or "\x00" in name
                or (len(name) >= 2 and name[1] == ":" and name[0].isalpha())):
            problems.append(f"member {name!r} has an absolute or non-portable name")
        elif ".." in parts:
            problems.append(f"member {name!r} climbs out of the folder ('..')")
        elif _is_symlink_member(info):
            problems.append(f"member {name!r} is a symbolic link")
        elif root is not None:
            target = (root / name).resolve()
            if not target.is_relative_to(root):
                problems.append(f"member {name!r} would be written outside {dest} (to {target})")
    if total > max_bytes:
        problems.append(f"its members add up to {total / 1e9:.2f} GB uncompressed, more than the "
                        f"{max_bytes / 1e9:.2f} GB accepted")
    return problems


def extract_zip(archive: str | Path, dest: str | Path, *, max_bytes: int = MAX_UNZIPPED_BYTES,
                verify: str | None = None) -> Path:
    """Extract ``archive`` into ``dest`` once every member is checked (:func:`zip_member_problems`)
    and, with ``verify`` naming the zip's checksum table, once every member matches it
    (:func:`verify_zip_table`); nothing is written when a check fails.

    Raises
    ------
    IntegrityError
        The first problem (and how many more), naming the archive.
    zipfile.BadZipFile
        Not a zip.
    """
    archive, dest = Path(archive), Path(dest)
    with zipfile.ZipFile(archive) as zf:
        dest.mkdir(parents=True, exist_ok=True)
        problems = zip_member_problems(zf, dest, max_bytes=max_bytes)
        if not problems and verify is not None:
            problems = verify_zip_table(zf, verify)
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise IntegrityError(archive, f"refused: {problems[0]}{more}; nothing was extracted")
        zf.extractall(dest)
    return dest


def _member_sha256(zf: zipfile.ZipFile, name: str) -> str:
    h = hashlib.sha256()
    with zf.open(name) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_zip_table(zf: zipfile.ZipFile, table_member: str) -> list[str]:
    """The members of ``zf`` against the checksum table it carries at ``table_member`` (empty:
    all match; a zip without that member is not checked).

    The table is JSON: ``files`` (``{path relative to the table's folder: {"sha256"}}``, a
    submission's artifacts) and optionally ``code`` (``{path relative to the zip's root:
    {"sha256"}}``, everything else). Where the table has ``code``, it covers the whole zip and
    a member it does not list is a problem too (added after the build).
    """
    names = [n for n in zf.namelist() if not n.endswith("/")]
    if table_member not in names:
        return []
    try:
        table = json.loads(zf.read(table_member))
        files, code = dict(table.get("files") or {}), table.get("code")
    except (ValueError, AttributeError, TypeError) as exc:
        return [f"{table_member} is not a readable checksum table ({exc})"]
    folder = str(PurePosixPath(table_member).parent)
    prefix = "" if folder == "." else folder + "/"
    expected = {prefix + rel: entry for rel, entry in files.items()}
    if isinstance(code, Mapping):
        expected.update(code)
    problems = []
    for name, entry in sorted(expected.items()):
        want = entry.get("sha256") if isinstance(entry, Mapping) else None
        if name not in names:
            problems.append(f"{name} is listed in {table_member} but missing")
        elif _member_sha256(zf, name) != want:
            problems.append(f"{name}: SHA-256 differs from {table_member}'s {str(want)[:12]}...: corrupted or "
                            "replaced")
    if isinstance(code, Mapping):
        extra = sorted(set(names) - set(expected) - {table_member})
        problems += [f"{name} is not listed in {table_member} (added after the build)" for name in extra]
    return problems


def sha256_file_for(path: str | Path) -> Path:
    """``<path>.sha256``: where a file's SHA-256 is written beside it (``sha256sum``'s format)."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def write_sha256_file(path: str | Path) -> Path:
    """Write ``<path>.sha256`` (``<hex>  <name>``, as ``sha256sum``); returns its path."""
    path = Path(path)
    out = sha256_file_for(path)
    out.write_text(f"{file_sha256(path)}  {path.name}\n")
    return out


def verify_sha256_file(path: str | Path) -> bool:
    """Check ``path`` against ``<path>.sha256`` where that file exists; returns whether it did.

    Raises
    ------
    IntegrityError
        The SHA-256 differs, or ``<path>.sha256`` is not in ``sha256sum``'s format.
    """
    path = Path(path)
    sidecar = sha256_file_for(path)
    if not sidecar.is_file():
        return False
    fields = sidecar.read_text().split()
    if not fields or len(fields[0]) != 64:
        raise IntegrityError(sidecar, "not a SHA-256 line ('<64 hex digits>  <file name>')", field="sha256")
    digest = file_sha256(path)
    if digest != fields[0].lower():
        raise IntegrityError(path, f"SHA-256 {digest[:12]}... differs from {sidecar.name}'s {fields[0][:12]}...: "
                                   "corrupted or replaced", field="sha256")
    return True


# --- folders with a checksum table --------------------------------------------------------------
def listed_checksums(folder: str | Path) -> tuple[Path | None, dict[str, Any]]:
    """``(table file, {relative path: {"sha256", ...}})`` of ``folder``'s ``checksums.json`` or,
    failing that, ``manifest.json``; ``(None, {})`` where neither holds a ``files`` table.

    Raises
    ------
    IntegrityError
        The table file is there but is not JSON.
    """
    folder = Path(folder)
    for name in CHECKSUM_TABLES:
        path = folder / name
        if path.is_file():
            try:
                files = json.loads(path.read_text()).get("files")
            except (ValueError, AttributeError) as exc:
                raise IntegrityError(path, f"not a readable checksum table ({exc})") from None
            if isinstance(files, Mapping):
                return path, dict(files)
    return None, {}


def check_listed(folder: str | Path, relative: str) -> Path:
    """``folder/relative`` (kept inside ``folder``), once its SHA-256 matches the folder's table
    where the table lists it (:func:`listed_checksums`; a folder without a table is not checked).

    Raises
    ------
    IntegrityError
        The path leaves the folder, or the checksum differs.
    """
    path = inside(folder, relative)
    table_file, table = listed_checksums(folder)
    entry = table.get(relative)
    if entry is not None and path.is_file():
        digest = file_sha256(path)
        if digest != (entry.get("sha256") if isinstance(entry, Mapping) else None):
            raise IntegrityError(path, f"SHA-256 {digest[:12]}... differs from {table_file.name}'s "
                                       f"{str(entry.get('sha256') if isinstance(entry, Mapping) else None)[:12]}"
                                       "...: corrupted or replaced", field="sha256")
    return path


def read_checked_json(folder: str | Path, relative: str) -> Any:
    """The JSON of ``folder/relative`` once :func:`check_listed` accepts it (``FileNotFoundError``
    and ``json.JSONDecodeError`` pass through for the caller to word)."""
    return json.loads(check_listed(folder, relative).read_text())


def private_file_mode_problem(path: str | Path) -> str | None:
    """Why a credentials file is readable by others than its owner (group or world bits), or None."""
    mode = os.stat(path).st_mode
    if mode & 0o077:
        return (f"is readable by others than its owner (mode {stat.filemode(mode)}, {oct(mode & 0o777)}); "
                f"expected 0600: chmod 600 {path}")
    return None
