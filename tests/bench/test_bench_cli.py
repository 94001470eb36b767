"""``python -m resilient_aws bench``: the tables it prints, its progress lines, and how it degrades.

Each run is a subprocess in the project's venv, as a user runs it; ``--quick`` and small rounds keep
each one to a few seconds. A missing extra is simulated with ``sys.modules[name] = None``, which makes
``import name`` (and the benchmarks' check) fail as if the package were not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

TINY = ["--rounds", "2", "--calls", "100", "--http-calls", "10"]  # a run well under a second
HEADINGS = (
    "### 1. The wrapper alone (botocore stubbed below both sides)",
    "### 2. End to end: DynamoDB GetItem, in-process canned HTTP response",
    "### 3. The wrapper alone, 8 threads calling one client",
)

pytestmark = pytest.mark.integration  # runs the benchmarks in subprocesses (servers on loopback)


def _bench(*args: str, without: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m resilient_aws bench ARGS``; with ``without``, as if that package were not installed."""
    if without is None:
        command = [sys.executable, "-m", "resilient_aws", "bench", *args]
    else:
        code = (f"import sys; sys.modules[{without!r}] = None\n"
                "from resilient_aws.__main__ import main\n"
                "sys.exit(main(sys.argv[1:]))")
        command = [sys.executable, "-c", code, "bench", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"})


@pytest.fixture(scope="module")
def overhead_quick(tmp_path_factory):
    """One ``bench overhead --quick --markdown PATH`` run, shared by the tests that read it."""
    path = tmp_path_factory.mktemp("bench") / "overhead.md"
    proc = _bench("overhead", "--quick", "--markdown", str(path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, path.read_text(encoding="utf-8")


def test_bench_overhead_quick_prints_the_three_table_headings(overhead_quick):
    proc, _ = overhead_quick
    for heading in HEADINGS:
        assert heading in proc.stdout
    assert "| botocore client, retries off |" in proc.stdout


def test_bench_overhead_prints_one_progress_line_per_round_on_stderr_not_stdout(overhead_quick):
    proc, _ = overhead_quick
    rounds = 5  # overhead.QUICK.rounds
    for phase in ("wrapper", "8 threads", "end-to-end"):
        lines = [line for line in proc.stderr.splitlines() if f" {phase} round " in line]
        assert [line.split(" round ")[1].split(":")[0] for line in lines] == [f"{i}/{rounds}" for i in
                                                                              range(1, rounds + 1)]
    assert "round 1/" not in proc.stdout


def test_bench_markdown_file_holds_the_printed_tables_with_machine_and_software(overhead_quick):
    proc, markdown = overhead_quick
    assert markdown.startswith("# resilient_aws benchmark results\n")
    assert "- **Machine:** " in markdown
    assert "- **Software:** " in markdown
    assert "## Hot-path overhead (`resilient-aws bench overhead`)" in markdown
    tables = [line for line in proc.stdout.splitlines() if line.startswith(("|", "###"))]
    assert len(tables) > 10
    assert [line for line in markdown.splitlines() if line.startswith(("|", "###"))] == tables


def test_bench_overhead_with_pybreaker_has_the_tenacity_pybreaker_row(overhead_quick):
    pytest.importorskip("pybreaker")
    proc, _ = overhead_quick
    assert "| botocore + tenacity + pybreaker |" in proc.stdout
    assert "pybreaker is not installed" not in proc.stdout


def test_bench_overhead_without_pybreaker_leaves_the_row_out_and_says_how_to_add_it():
    proc = _bench("overhead", *TINY, without="pybreaker")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| botocore + tenacity + pybreaker |" not in proc.stdout
    assert "| resilient_aws |" in proc.stdout
    assert "pybreaker is not installed; `pip install 'resilient-aws[bench]'` adds that comparison" in proc.stdout


def test_bench_storm_without_moto_exits_2_and_names_the_drill_extra():
    proc = _bench("storm", "--quick", without="moto", timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "moto[server,dynamodb]" in proc.stderr
    assert "pip install 'resilient-aws[drill]'" in proc.stderr


def test_bench_aio_without_aiobotocore_exits_2_and_names_the_aio_extra():
    proc = _bench("aio", "--quick", without="aiobotocore", timeout=60)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "pip install 'resilient-aws[aio]'" in proc.stderr


def test_bench_all_without_moto_runs_the_others_and_says_storm_was_not_run():
    proc = _bench("all", *TINY, "--pooled-calls", "5", without="moto")
    assert proc.returncode == 0, proc.stderr[-3000:]
    headings = [line for line in proc.stdout.splitlines() if line.startswith("## ")]
    assert headings == ["## Hot-path overhead", "## Retry storms, counted at the server", "## The DNS cache"]
    assert "Not run: the storm benchmark needs moto[server,dynamodb]" in proc.stdout
    assert "pip install 'resilient-aws[drill]'" in proc.stdout


def test_bench_dns_quick_finds_no_dns_work_on_a_pooled_connection():
    proc = _bench("dns", "--quick")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| next calls, same connection | 200 | 0 | 0 | 0 |" in proc.stdout
    assert "cache hit round 7/7" in proc.stderr


@pytest.mark.integration
def test_bench_storm_counts_the_attempts_a_503_endpoint_receives(tmp_path):
    path = tmp_path / "storm.json"
    proc = _bench("storm", "--only", "503", "--clients", "botocore standard", "--outage", "1", "--threads", "2",
                  "--max-recovery", "10", "--json", str(path), timeout=90)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| 503 | botocore standard |" in proc.stdout
    (row,) = json.loads(path.read_text())
    assert row["calls"] > 0
    assert row["attempts_per_call"] >= 1.0  # standard mode retries 503s: at least one request per call
    assert "round 1/1:" in proc.stderr


def test_bench_help_imports_no_moto_werkzeug_or_flask():
    # -X importtime reports every module the real entry point imported, on stderr
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "resilient_aws", "bench", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "overhead,storm,dns,all" in proc.stdout
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in proc.stderr.splitlines() if "|" in line}
    assert "resilient_aws" in imported
    assert imported.isdisjoint({"moto", "werkzeug", "flask", "pybreaker"})
