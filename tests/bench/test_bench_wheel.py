"""The must-show: in a fresh venv with only the built wheel installed, ``resilient-aws bench overhead``
prints its table.

Why: the benchmarks ship with the package so that users run them on their own machines against their
own botocore; a pip install has no ``benchmarks/`` folder and none of the extras, so this builds the
wheel, installs it alone (its declared dependencies come from the package index) into a new venv, and
runs the console script there. pybreaker (the ``bench`` extra) is then absent, and the table must say so.

The project is copied (without its venvs and build output) before the build, so that the build writes
nothing into the work tree and no stale ``build/`` content can slip into the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]  # tests/bench/ -> the project
NOT_SOURCES = shutil.ignore_patterns(".git", ".venv", ".nox", "build", "dist", "*.egg-info", "__pycache__",
                                     ".pytest_cache", ".ruff_cache", "*.pyc")


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    proc = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**env, "PYTHONIOENCODING": "utf-8", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert proc.returncode == 0, f"{' '.join(command)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The wheel, and a fresh venv that has it and nothing else of the project (no extras)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    wheels = tmp / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)], tmp, 300)
    (wheel,) = wheels.glob("resilient_aws-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], tmp, 120)
    _run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)], tmp, 300)
    return wheel, venv


@pytest.fixture(scope="module")
def bench_overhead(installed):
    """``resilient-aws bench overhead --quick``, run by the venv's console script outside the project."""
    _, venv = installed
    return _run([str(venv / "bin" / "resilient-aws"), "bench", "overhead", "--quick"], venv, 120)


def test_the_wheel_ships_the_bench_package(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for module in ("cli", "overhead", "storm", "dns", "timing"):
        assert f"resilient_aws/bench/{module}.py" in names


def test_in_a_fresh_venv_with_only_the_wheel_bench_overhead_prints_its_table(bench_overhead):
    out = bench_overhead.stdout
    assert "### 1. The wrapper alone (botocore stubbed below both sides)" in out
    assert "| resilient_aws around it |" in out
    assert "### 2. End to end: DynamoDB GetItem, in-process canned HTTP response" in out
    assert "| resilient_aws |" in out
    assert "### 3. The wrapper alone, 8 threads calling one client" in out


def test_in_a_fresh_venv_with_only_the_wheel_bench_overhead_says_pybreaker_is_not_installed(bench_overhead):
    out = bench_overhead.stdout
    assert "| botocore + tenacity + pybreaker |" not in out
    assert "pybreaker is not installed; `pip install 'resilient-aws[bench]'` adds that comparison" in out
