"""``python -m resilient_aws drill``: the quick drill end to end, its numbers, and its failure modes.

The drill runs in a subprocess, as a user runs it: its worker threads may still be blocked in
botocore legacy mode's sleeps when it ends, which must not leak into the test process.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from resilient_aws.__main__ import build_parser
from resilient_aws.testing.aws import LoopbackEndpoint
from resilient_aws.testing.net import free_port

pytestmark = pytest.mark.integration

CLIENT_LABELS = ("legacy", "standard", "resilient")
WARM_UP_CALLS = 1  # each client reads once before the clock starts (resilient_aws.drill.clients.warm_up)


def _drill(*args: str, timeout: float = 55.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "resilient_aws", "drill", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """One ``--quick`` run shared by the tests that read its report."""
    path = tmp_path_factory.mktemp("drill") / "drill.json"
    started = time.monotonic()
    proc = _drill("--quick", "--no-live", "--json", str(path))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"report": json.loads(path.read_text()), "stdout": proc.stdout, "elapsed": elapsed}


def _phase(report, name):
    return next(p for p in report["phases"] if p["name"] == name)


def test_quick_drill_finishes_within_20_seconds(quick):
    assert quick["report"]["duration"] <= 20.0
    assert quick["elapsed"] <= 25.0  # interpreter start and imports included


def test_quick_drill_runs_the_five_phases_in_order(quick):
    names = [p["name"] for p in quick["report"]["phases"]]
    assert names == ["healthy", "dns-empty", "503", "unreachable", "recovery"]


def test_healthy_calls_counted_by_the_workload_match_the_requests_the_servers_counted(quick):
    # two sources: the workload records each call around it, the servers count requests by call tag;
    # while everything is healthy every call is one request, so they must agree call for call
    for label in CLIENT_LABELS:
        row = _phase(quick["report"], "healthy")["clients"][label]
        assert row["calls"] > 0, label
        assert row["ok"] == row["calls"] == row["server_attempts"], label


def test_servers_saw_at_least_one_request_per_successful_call(quick):
    for phase in quick["report"]["phases"]:
        for label in CLIENT_LABELS:
            row = phase["clients"][label]
            assert row["server_attempts"] >= row["ok"], (phase["name"], label)


def test_resilient_aws_own_counts_agree_with_the_workload_and_the_servers(quick):
    # resilient_aws.stats() counts calls and attempts inside the library: a second source, independent
    # of the workload's records and of the servers' counters
    report = quick["report"]
    stats, totals = report["resilient_stats"], report["totals"]["resilient"]
    assert stats["calls"] == totals["calls"] + WARM_UP_CALLS
    assert stats["succeeded"] == totals["ok"] + WARM_UP_CALLS
    # us-west-2 is never broken, so every attempt the library sent there reached the server
    west = sum(p["clients"]["resilient"]["requests_by_region"]["us-west-2"] for p in report["phases"])
    assert stats["regions"]["us-west-2"]["attempts"] == west > 0
    # us-east-1 refused connections for a while: the server saw at most what the library sent
    east = sum(p["clients"]["resilient"]["requests_by_region"]["us-east-1"] for p in report["phases"])
    assert stats["regions"]["us-east-1"]["attempts"] >= east + WARM_UP_CALLS


def test_requests_attributed_by_call_tag_add_up_to_those_counted_by_host_name(quick):
    # each client has DNS names of its own, so the servers' per-Host counts are a second attribution of
    # the same requests, from a header botocore sets, not from the drill's tag
    report = quick["report"]
    for region, counts in report["servers"].items():
        for label in CLIENT_LABELS:
            by_tag = sum(p["clients"][label]["requests_by_region"][region] for p in report["phases"])
            by_host = counts["by_host"].get(f"{label}.dynamodb.{region}.drill.test", 0)
            assert by_tag == by_host, (region, label)


def test_resilient_aws_served_every_call_of_the_dns_phase(quick):
    row = _phase(quick["report"], "dns-empty")["clients"]["resilient"]
    assert row["calls"] > 0
    assert row["ok"] == row["calls"]
    assert row["requests_by_region"]["us-east-1"] >= row["calls"]  # from the last good address, not failover


def test_botocore_standard_failed_most_calls_of_the_dns_phase(quick):
    row = _phase(quick["report"], "dns-empty")["clients"]["standard"]
    assert row["calls"] > 0
    assert row["failed"] > row["calls"] / 2


def test_resilient_aws_asked_dns_almost_never_during_the_dns_phase(quick):
    dns = _phase(quick["report"], "dns-empty")["clients"]
    assert dns["resilient"]["dns_queries_per_call"] < 0.5
    assert dns["standard"]["dns_queries_per_call"] >= 1.0


def test_resilient_aws_reads_moved_to_us_west_2_while_us_east_1_was_down(quick):
    for name in ("503", "unreachable"):
        row = _phase(quick["report"], name)["clients"]["resilient"]
        assert row["ok"] == row["calls"], name
        assert row["requests_by_region"]["us-west-2"] >= row["ok"], name


def test_all_clients_serve_again_in_recovery(quick):
    recovery = _phase(quick["report"], "recovery")["clients"]
    assert recovery["standard"]["success_pct"] == 100.0
    assert recovery["resilient"]["success_pct"] == 100.0


def test_the_table_is_printed_with_server_side_columns(quick):
    out = quick["stdout"]
    assert "us-east-1" in out and "attempts" in out and "DNS q" in out
    assert "Offered load served while the us-east-1 DNS record was empty" in out


def test_the_botocore_rows_are_labelled_by_retry_mode_and_botocore_version(quick):
    import botocore

    out = quick["stdout"]
    lines = out.splitlines()
    header = lines[next(i for i, line in enumerate(lines) if line.startswith("client ")) - 1]  # above the table
    assert header.startswith(f"botocore {botocore.__version__}: ")
    assert '"botocore legacy" = retry mode legacy (boto3\'s default on 2025-10-20' in header
    assert '"botocore standard" = retry mode standard' in header
    assert quick["report"]["botocore"]["version"] == botocore.__version__
    default = quick["report"]["botocore"]["default_retry_mode"]
    assert default in ("legacy", "standard", "adaptive")
    if quick["report"]["botocore"]["default_from"] == "botocore":  # older botocore: legacy; 1.44: standard
        marked = "2025-10-20; this botocore's default)" if default == "legacy" else "standard (this botocore's default)"
        assert marked in header
    # legacy mode is compared as the mode of 2025-10-20, never called the default of today's botocore
    assert "default for years" not in out and "legacy mode was the default" not in out


@pytest.mark.skipif(importlib.util.find_spec("aiobotocore") is not None, reason="aiobotocore is installed here")
def test_without_aiobotocore_the_drill_runs_its_three_clients_and_says_the_asyncio_rows_need_the_aio_extra(quick):
    assert list(quick["report"]["totals"]) == list(CLIENT_LABELS)
    assert "  asyncio rows (aiobotocore, resilient_aws.aio) not run: they need the aio extra, " \
           "pip install 'resilient-aws[aio]'\n" in quick["stdout"]
    assert quick["report"]["aio"] == {"not_run": "the asyncio rows need aiobotocore: pip install 'resilient-aws[aio]'"}
    assert "Event loop lag" not in quick["stdout"]


def test_the_report_records_what_each_server_received(quick):
    servers = quick["report"]["servers"]
    assert set(servers) == {"us-east-1", "us-west-2"}
    total_attempts = sum(p["clients"][c]["server_attempts"] for p in quick["report"]["phases"] for c in CLIENT_LABELS)
    assert servers["us-east-1"]["total"] + servers["us-west-2"]["total"] == total_attempts


def test_the_plot_is_drawn_or_says_how_to_install_matplotlib(quick, tmp_path):
    from resilient_aws.drill import DrillResult
    from resilient_aws.drill.report import write_plot

    path = tmp_path / "drill.png"
    problem = write_plot(DrillResult(**quick["report"]), str(path))
    if problem is None:
        assert path.read_bytes().startswith(b"\x89PNG")
    else:
        assert "pip install 'resilient-aws[plot]'" in problem


def test_a_port_in_use_is_reported_with_its_number():
    with LoopbackEndpoint("127.0.0.1") as taken:
        proc = _drill("--quick", "--port", str(taken.port), timeout=30)
    assert proc.returncode == 2
    assert f"port {taken.port}" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["--dns", "powerdns"], ["--threads", "0"], ["--rate", "abc"], ["--port", "70000"]])
def test_bad_flags_are_argparse_errors(args, capsys):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["drill", *args])
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_a_missing_moto_is_reported_with_the_install_command(monkeypatch, capsys):
    import importlib.util

    from resilient_aws.__main__ import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "moto" else real_find_spec(name, *a))
    assert main(["drill", "--quick"]) == 2
    err = capsys.readouterr().err
    assert "needs moto[server,dynamodb]" in err
    assert "pip install 'resilient-aws[drill]'" in err


def test_ctrl_c_stops_the_drill_and_frees_its_port():
    port = free_port("127.0.0.1", "127.0.0.2")
    command = [sys.executable, "-m", "resilient_aws", "drill", "--quick", "--no-live", "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _listening(port):
            time.sleep(0.1)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 130
    assert "interrupted" in err
    with LoopbackEndpoint("127.0.0.1", port), LoopbackEndpoint("127.0.0.2", port):
        pass  # both addresses free again


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
