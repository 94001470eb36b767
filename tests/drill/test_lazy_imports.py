"""A bare install works: the package, the command line and its ``--help`` import no moto, werkzeug or Flask.

Why: the console script ships with every install, while moto's server (and the werkzeug and Flask it
runs on) come only with the ``drill`` extra. Each check runs a fresh interpreter, as a user's would,
since this test process has long imported all of them. (boto3 is a core dependency: ``Session`` is a
``boto3.Session``.)
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HARNESS = ("moto", "werkzeug", "flask")  # the drill extra's test harness

_PROBE = """
import contextlib, json, sys
import resilient_aws, resilient_aws.__main__
from resilient_aws.__main__ import main
for argv in (["--help"], ["drill", "--help"]):
    with contextlib.redirect_stdout(None), contextlib.suppress(SystemExit):
        main(argv)
{extra}
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set(sys.argv[1:]))))
"""


def _loaded(extra: str = "") -> set[str]:
    """Which of the harness packages a fresh interpreter has imported after ``import resilient_aws``,
    ``import resilient_aws.__main__``, ``main(["--help"])``, ``main(["drill", "--help"])`` and ``extra``."""
    proc = subprocess.run([sys.executable, "-c", _PROBE.format(extra=extra), *HARNESS], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_importing_the_package_and_running_help_loads_no_moto_werkzeug_or_flask():
    assert _loaded().isdisjoint(HARNESS)


@pytest.mark.parametrize("module", ["resilient_aws.testing", "resilient_aws.testing.aws", "resilient_aws.drill",
                                    "resilient_aws.drill.report", "resilient_aws.testing.pytest_plugin"])
def test_the_drill_and_testing_modules_import_moto_only_when_used(module):
    assert _loaded(f"import {module}").isdisjoint(HARNESS)


def test_python_m_resilient_aws_drill_help_loads_no_moto_werkzeug_or_flask():
    # -X importtime reports every module the real entry point imported, on stderr
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "resilient_aws", "drill", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pip install 'resilient-aws[drill]'" in " ".join(proc.stdout.split())
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "resilient_aws" in imported
    assert imported.isdisjoint(HARNESS), sorted(imported & set(HARNESS))


def test_a_loopback_endpoint_without_moto_says_what_to_install():
    code = ("import sys; sys.modules['moto'] = None  # as if moto were not installed\n"
            "from resilient_aws.testing import LoopbackEndpoint\n"
            "LoopbackEndpoint().start()")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert "ImportError" in proc.stderr
    assert "pip install 'resilient-aws[drill]'" in proc.stderr
