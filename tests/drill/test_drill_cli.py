"""``python -m resilient_aws drill``: the quick drill end to end, its numbers, and its failure modes.

The drill runs in a subprocess, as a user runs it: its worker threads may still be blocked in
botocore legacy mode's sleeps when it ends, which must not leak into the test process.
"""

from __future__ import annotations

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

pytestmark = pytest.mark.integration

CLIENT_LABELS = ("legacy", "standard", "resilient")


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


def test_every_call_is_either_ok_or_failed(quick):
    for phase in quick["report"]["phases"]:
        for label in CLIENT_LABELS:
            row = phase["clients"][label]
            assert row["calls"] == row["ok"] + row["failed"], (phase["name"], label)


def test_servers_saw_at_least_one_request_per_successful_call(quick):
    for phase in quick["report"]["phases"]:
        for label in CLIENT_LABELS:
            row = phase["clients"][label]
            assert row["server_attempts"] >= row["ok"], (phase["name"], label)
            assert row["server_attempts"] == sum(row["requests_by_region"].values())


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
    assert "needs moto" in err
    assert "pip install 'resilient-aws[test]'" in err


def test_ctrl_c_stops_the_drill_and_frees_its_port():
    port = _free_port()
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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False
