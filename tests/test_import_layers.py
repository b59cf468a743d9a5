"""The import contracts of ``pyproject.toml`` (``[tool.importlinter]``), checked with import-linter as
``make lint-imports`` checks them, so that every test run (and CI) fails on an import that goes up a
layer (README, "Layout"), inside a function or not, on one by which the submission's code (what
the zip carries) would reach the offline build, and on an import circle inside a package."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
SUBMISSION_CONTRACT = "The submission's code never reaches the offline build"

needs_importlinter = pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                                        reason="import-linter is not installed (pip install -e '.[dev]' installs it)")


@needs_importlinter
def test_no_package_imports_a_layer_above_it_and_the_submission_never_reaches_the_offline_build() -> None:
    proc = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
                           "sys.exit(lint_imports_command())", "--no-cache"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout, proc.stdout[-2000:]
    for contract in CONFIG["contracts"]:  # every contract ran (none skipped, none renamed away)
        assert f"{contract['name']} KEPT" in proc.stdout, proc.stdout[-2000:]


def test_the_submission_contract_forbids_every_package_the_zip_leaves_out() -> None:
    """The forbidden contract follows the zip: its forbidden packages are exactly the root packages
    that :data:`submission.package.PACKAGES` does not carry, its sources what the zip runs."""
    from submission.package import PACKAGES

    (contract,) = [c for c in CONFIG["contracts"] if c["name"] == SUBMISSION_CONTRACT]
    assert contract["type"] == "forbidden"
    assert set(contract["forbidden_modules"]) == set(CONFIG["root_packages"]) - set(PACKAGES)
    assert {"submission.model", "submission.agent", "submission.artifacts"} <= set(contract["source_modules"])
