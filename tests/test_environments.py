"""Specifications of minicnn in its environments: the project's virtual environments have this checkout installed
(editable), and numba's compiled kernels are kept apart per numba version, so environments with different numba
over one source tree do not recompile each other's kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numba
import pytest
from numba.core import config

from minicnn import numba_setup

ROOT = Path(__file__).resolve().parents[1]
PROJECT_VENVS = {ROOT / ".venv", ROOT / ".venv-ref"}


def _env_without_pythonpath(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "NUMBA_CACHE_DIR")}
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


# ---- numba's cache, one directory per numba version ----------------------------------------------------------------
@pytest.fixture
def no_cache_choice(monkeypatch):
    """Neither NUMBA_CACHE_DIR nor numba.config.CACHE_DIR set (restored afterwards)."""
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(config, "CACHE_DIR", "")


def test_the_kernel_cache_goes_to_the_users_cache_directory_under_the_numba_version(
    tmp_path, monkeypatch, no_cache_choice
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = tmp_path / "xdg" / "minicnn" / f"numba-{numba.__version__}{numba_setup.llvm_options()[1]}"
    assert numba_setup.use_per_version_cache() == expected
    assert config.CACHE_DIR == str(expected) and expected.is_dir()


def test_an_unwritable_cache_directory_falls_back_to_a_temporary_one_per_user_and_version(
    tmp_path, monkeypatch, no_cache_choice
):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a-file"))  # no directory can be made inside a file
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    chosen = numba_setup.use_per_version_cache()
    assert chosen is not None and chosen.parent.parent == tmp_path / "tmp"
    assert chosen.name == f"numba-{numba.__version__}{numba_setup.llvm_options()[1]}"
    assert chosen.parent.name.startswith("minicnn-")
    assert config.CACHE_DIR == str(chosen)


def test_a_cache_directory_the_user_chose_is_kept(tmp_path, monkeypatch, no_cache_choice):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path / "mine"))
    assert numba_setup.use_per_version_cache() == tmp_path / "mine"
    assert config.CACHE_DIR == str(tmp_path / "mine")
    assert not (tmp_path / "xdg").exists()


# Runs im2col and a max pool, then prints how many of the CPU kernels' signatures were loaded from numba's disk
# cache (hits) and how many were compiled (misses).
_KERNEL_RUN = """
import json
import numpy as np
import minicnn
from minicnn.backend import cpu

x = np.arange(2 * 3 * 9 * 9, dtype=np.float32).reshape(2, 3, 9, 9)
cpu.im2col(x, (3, 3), (2, 2), (1, 1))
cpu.max_pool_forward(x, (3, 3), (2, 2), (1, 1))
stats = [k.stats for k in vars(cpu).values() if hasattr(k, "stats")]
print(json.dumps({"hits": sum(sum(s.cache_hits.values()) for s in stats),
                  "misses": sum(sum(s.cache_misses.values()) for s in stats)}))
"""


@pytest.mark.slow
@pytest.mark.skipif(
    not all((venv / "bin" / "python").exists() for venv in PROJECT_VENVS),
    reason="needs both .venv and .venv-ref (./dev setup): two numba versions over this checkout",
)
def test_two_numba_versions_alternating_over_one_checkout_do_not_recompile_each_others_kernels(tmp_path):
    env = _env_without_pythonpath(PYTHONPATH=str(ROOT), XDG_CACHE_HOME=str(tmp_path / "cache"))

    def run(venv: str) -> dict:
        r = subprocess.run(
            [str(ROOT / venv / "bin" / "python"), "-c", _KERNEL_RUN],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    first, other, again = run(".venv"), run(".venv-ref"), run(".venv")
    assert first["misses"] > 0 and other["misses"] > 0  # an empty cache: both compiled
    assert again["misses"] == 0 and again["hits"] > 0  # the first run's kernels loaded from the cache, none rebuilt
