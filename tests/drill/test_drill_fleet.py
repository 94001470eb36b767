"""``python -m resilient_aws drill --fleet N``: one quick run of two processes, its report, and the CLI's checks.

The drill runs in a subprocess, as a user runs it (its worker processes, servers and redis-server are
its own). The claims checked are computed from the report's numbers, the endpoint's counts: with shared
state the failing endpoint saw fewer requests than with each process alone, the fleet probed at most
once per open interval, and a process started while the DNS record was empty had its calls served.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.redis import start_or_skip

from resilient_aws.__main__ import build_parser
from resilient_aws.drill.fleet import MIN_CALLS, MODES, OPEN_TIME

pytestmark = pytest.mark.integration

PROCESSES = 2


def _drill(*args: str, timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resilient_aws", "drill", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def fleet_run(tmp_path_factory):
    """One ``--fleet 2 --quick`` run shared by the tests that read its report (skipped without redis-server)."""
    start_or_skip().stop()  # the drill starts its own; this only turns "no redis-server" into a skip
    path = tmp_path_factory.mktemp("fleet") / "fleet.json"
    started = time.monotonic()
    proc = _drill("--fleet", str(PROCESSES), "--quick", "--json", str(path))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)
    return {"report": json.loads(path.read_text()), "stdout": proc.stdout, "elapsed": elapsed}


def test_the_quick_fleet_drill_finishes_within_40_seconds(fleet_run):
    assert fleet_run["report"]["duration"] <= 40.0
    assert fleet_run["elapsed"] <= 45.0  # interpreter start and imports included


def test_the_report_has_both_modes_with_the_same_figures_and_load(fleet_run):
    report = fleet_run["report"]
    assert list(report["modes"]) == [m for m, _ in MODES] == ["shared", "alone"]
    assert report["config"]["processes"] == PROCESSES
    assert report["config"]["failover"] is False
    shared, alone = report["modes"]["shared"], report["modes"]["alone"]
    for mode in (shared, alone):
        assert set(mode) == set(shared)
        assert set(mode["outage"]) == set(shared["outage"]) and set(mode["cold_start"]) == set(shared["cold_start"])
        assert mode["processes"] == PROCESSES
        assert mode["calls"] > 0 and mode["ok"] + mode["failed"] == mode["calls"]
        assert mode["outage"]["calls"] > 0 and mode["outage"]["breakers_opened"] == PROCESSES
        assert mode["heal"]["not_back"] == 0, mode["heal"]
    assert shared["shared"] is True and alone["shared"] is False
    assert shared["redis"]["evalsha"] > 0 and alone["redis"] is None
    # the same offered load over phases of the same length: the calls made agree within a few percent
    assert abs(shared["calls"] - alone["calls"]) <= 0.05 * alone["calls"]


def test_the_table_shows_the_modes_side_by_side(fleet_run):
    out = fleet_run["stdout"]
    header = next(line for line in out.splitlines() if "shared (Redis)" in line and "alone" in line)
    assert header.index("shared (Redis)") < header.index("alone")
    for row in ("requests the endpoint saw", "attempts per call", "requests until every process had stopped",
                "probes per open interval, most", "traffic back, median over processes", "its calls ok / failed"):
        assert row in out, row
    assert "With shared state (2 processes):" in out
    assert "fleet drill finished in" in out


def test_with_shared_state_the_failing_endpoint_saw_fewer_requests(fleet_run):
    shared, alone = (fleet_run["report"]["modes"][m]["outage"] for m in ("shared", "alone"))
    print(f"outage requests: shared {shared['requests']}, alone {alone['requests']}; until every process had "
          f"stopped: shared {shared['requests_until_all_stopped']}, alone {alone['requests_until_all_stopped']}")
    assert shared["requests"] < alone["requests"]
    assert shared["requests_until_all_stopped"] < alone["requests_until_all_stopped"]
    # alone, each process's breaker needs min_calls failed attempts of its own (its window starts empty)
    assert alone["requests_until_all_stopped"] >= PROCESSES * MIN_CALLS
    assert shared["opened_by_the_fleet"] >= 1 and alone["opened_by_the_fleet"] == 0


def test_with_shared_state_the_fleet_probes_at_most_once_per_open_interval(fleet_run):
    shared = fleet_run["report"]["modes"]["shared"]["outage"]
    assert shared["probes_per_open_interval_max"] <= 1
    open_for = shared["seconds"] - (shared["all_stopped_after"] or 0.0)
    assert shared["probes"] <= open_for / OPEN_TIME + 1


def test_a_process_started_while_dns_is_empty_is_served_with_shared_state_only(fleet_run):
    shared, alone = (fleet_run["report"]["modes"][m]["cold_start"] for m in ("shared", "alone"))
    assert shared["dns_published_before"] is True
    assert shared["calls"] > 0 and shared["failed"] == 0 and shared["ok"] == shared["calls"]
    assert shared["requests_served"] >= shared["ok"]  # served by us-east-1 itself: no failover in this drill
    assert alone["calls"] > 0 and alone["ok"] == 0


def test_with_shared_state_traffic_returns_within_two_open_times_of_the_heal(fleet_run):
    # (not compared with alone: a process alone may happen to probe just after the heal; its doubled
    # open times show in a longer outage, as with --fleet 8 in benchmarks/RESULTS.md)
    heal = fleet_run["report"]["modes"]["shared"]["heal"]
    assert heal["return_median"] is not None and heal["return_median"] <= 2 * OPEN_TIME


# -- the command line ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", ["1", "0", "33", "-2", "eight"])
def test_fleet_sizes_outside_2_to_32_are_refused_with_a_clear_message(value, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["drill", "--fleet", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --fleet" in err
    assert ("within 2..32" in err) if value.lstrip("-").isdigit() else ("not an integer" in err)


def test_fleet_one_is_refused_by_the_command_itself_before_anything_starts():
    started = time.monotonic()
    proc = _drill("--fleet", "1", timeout=30.0)
    assert proc.returncode == 2
    assert "--fleet: must be within 2..32 (a fleet is at least two processes), got 1" in proc.stderr
    assert time.monotonic() - started < 10.0


def test_fleet_sizes_within_bounds_are_accepted_and_default_to_no_fleet():
    parser = build_parser()
    assert parser.parse_args(["drill"]).fleet is None
    assert parser.parse_args(["drill", "--fleet", "2"]).fleet == 2
    assert parser.parse_args(["drill", "--fleet", "32", "--quick"]).fleet == 32


def test_fleet_with_plot_is_refused():
    proc = _drill("--fleet", "2", "--plot", "x.png", timeout=30.0)
    assert proc.returncode == 2
    assert "--plot is not available with --fleet" in proc.stderr


def test_the_help_says_the_fleet_needs_redis_server():
    proc = _drill("--help", timeout=30.0)
    assert proc.returncode == 0
    assert "--fleet N" in proc.stdout and "redis-server" in " ".join(proc.stdout.split())


# -- benchmarks/fleet.py ------------------------------------------------------------------------------------------
def _benchmark_script():
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "fleet.py"
    spec = importlib.util.spec_from_file_location("fleet_benchmark_script", path)
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


def test_the_benchmark_script_writes_the_drills_table_as_its_section_and_keeps_the_rest(fleet_run, tmp_path):
    script = _benchmark_script()
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## 4. The outage drill\n\ndrill\n\n## 6. Past one machine, by "
                       "simulation\n\nsim\n", encoding="utf-8")
    command = "python -m resilient_aws drill --fleet 2 --quick"
    script.put_section(results, script.section("old table", 1.0, command))
    script.put_section(results, script.section(script.table(fleet_run["stdout"]), 30.0, command))
    text = results.read_text(encoding="utf-8")
    assert text.startswith("# Benchmark results\n\n## 4. The outage drill\n\ndrill\n\n## 6. Past one machine")
    assert text.count("## 5. A fleet on this machine: shared state through Redis (`" + command + "`, 30 s)") == 1
    assert "old table" not in text and text.endswith("```\n")
    section = text[text.index("## 5."):]
    assert "requests the endpoint saw" in section and "load: 2 processes" in section
    assert "-- shared (Redis):" not in section and "127.0.0.1:" not in section  # no progress lines, no ports
