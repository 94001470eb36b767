"""Every example in examples/ runs as a user would run it, against loopback servers only."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
PLUGIN = "resilient_aws.testing.pytest_plugin"


def _run(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for key in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):  # an example must not need a real profile
        env.pop(key, None)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=EXAMPLES.parent, env=env)


def test_drop_in_session_keeps_reading_when_the_dns_record_is_emptied():
    proc = _run(str(EXAMPLES / "drop_in_session.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "DNS record emptied:  ['order-0', 'order-1', 'order-2']" in proc.stdout
    assert "plain boto3:         EndpointConnectionError" in proc.stdout


def test_dynamodb_failover_serves_every_read_through_both_outages():
    proc = _run(str(EXAMPLES / "dynamodb_failover.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = {line.split("  ")[0]: line for line in proc.stdout.splitlines()}
    assert "failed 0" in lines["us-east-1 unreachable"]
    assert "by us-west-2    0" not in lines["us-east-1 answers 503"]


def test_dns_blackout_test_passes_under_pytest():
    installed = any(ep.value == PLUGIN for ep in entry_points(group="pytest11"))
    plugin_args = [] if installed else ["-p", PLUGIN]
    proc = _run("-m", "pytest", "-q", "-p", "no:cacheprovider", *plugin_args, str(EXAMPLES / "dns_blackout_test.py"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
