"""``resilient-aws bench aio``: the asyncio client's overhead, measured against aiobotocore in this environment."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration  # runs the benchmark in a subprocess, as a user would


def test_bench_aio_prints_both_tables_and_the_added_cost_per_call():
    proc = subprocess.run([sys.executable, "-m", "resilient_aws", "bench", "aio", "--quick", "--rounds", "2",
                           "--calls", "200", "--http-calls", "20"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "### The asyncio wrapper alone (aiobotocore stubbed below both sides)" in out
    assert "### End to end: DynamoDB GetItem, in-process canned HTTP response" in out
    assert "Added by resilient_aws.aio per successful call: **" in out
    assert "| resilient_aws.aio |" in out
    assert "round 2/2" in proc.stderr  # progress on stderr, tables on stdout
