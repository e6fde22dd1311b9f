"""Specifications of minicnn in its environments: the project's virtual environments have this checkout installed
(editable).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT_VENVS = {ROOT / ".venv", ROOT / ".venv-ref"}


def _env_without_pythonpath(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


# ---- the editable install ------------------------------------------------------------------------------------------
needs_project_venv = pytest.mark.skipif(
    Path(sys.prefix).resolve() not in PROJECT_VENVS,
    reason=f"{sys.prefix} is not one of the project's environments (.venv, .venv-ref): nothing installs minicnn there",
)


@needs_project_venv
def test_the_projects_environment_imports_this_checkout_from_any_directory_without_pythonpath(tmp_path):
    r = subprocess.run(
        [sys.executable, "-c", "import minicnn; print(minicnn.__file__)"],
        cwd=tmp_path, env=_env_without_pythonpath(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip()) == ROOT / "minicnn" / "__init__.py"


@needs_project_venv
def test_the_projects_environment_has_the_minicnn_command(tmp_path):
    command = Path(sys.prefix) / "bin" / "minicnn"
    r = subprocess.run(
        [str(command), "summary", "lenet"],
        cwd=tmp_path, env=_env_without_pythonpath(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("lenet, input (1, 1, 28, 28)")
