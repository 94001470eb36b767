"""The drill's asyncio part (``--quick``): plain aiobotocore and resilient_aws.aio under the same load as
the thread clients, counted by the same servers, and the resilient_aws.aio event loop never held
longer than 5 ms.

One run, in this process, shared by the tests of the module: only the two asyncio clients (each in a
process of its own, whose event loop hosts nothing but that client's tasks and a 1 ms heartbeat;
``resilient_aws.drill.aio``), with callback timing on (``loop_debug``) so that a lag over the bound
names the callbacks that held the loop.
"""

from __future__ import annotations

import json

import pytest
from support.moto_state import tables_left_as_found

from resilient_aws.drill import DrillConfig, DrillResult, run_drill
from resilient_aws.drill.report import format_table

pytestmark = pytest.mark.integration

LABELS = ("aiobotocore", "aio")
WARM_UP_CALLS = 1  # each client reads once before the clock starts
BOUND_MS = 5.0     # the event loop is never blocked longer than this by resilient_aws


@pytest.fixture(scope="module")
def drill() -> DrillResult:
    with tables_left_as_found():
        return run_drill(DrillConfig(quick=True, live=False, clients=LABELS, loop_debug=True))


def _phase(result: DrillResult, name: str) -> dict:
    return next(p for p in result.phases if p["name"] == name)


def test_the_resilient_aws_aio_event_loop_is_never_held_longer_than_5_ms_by_resilient_aws(drill):
    # A watchdog samples the loop thread every 0.5 ms and charges each sample to the innermost code it is
    # in: resilient_aws's own (with what it calls: dnspython, the standard library...) or the AWS client
    # below it (aiobotocore/botocore/aiohttp: serializing, signing, connecting: ~1-5 ms of CPU per request
    # here, which a loop of plain aiobotocore shows as much). The bound is on resilient_aws's share.
    lag = drill.aio["loop_lag"]["aio"]
    assert lag["beats"] > 5000  # a 1 ms heartbeat through the whole run (about 15 s)
    assert lag["library_max_ms"] < BOUND_MS, "\n".join(lag["library_worst_stack"])


def test_the_resilient_aws_aio_event_loop_answers_the_heartbeat_within_5_ms_99_times_in_100(drill):
    lag = drill.aio["loop_lag"]["aio"]
    slow = drill.aio.get("slow_callbacks", {}).get("aio", [])
    culprits = json.dumps([{k: c[k] for k in ("at", "wall_ms", "cpu_ms", "callback")} for c in slow], indent=1)
    assert lag["p99_ms"] < BOUND_MS, f"{lag}\ncallbacks over 5 ms:\n{culprits}"


def test_both_asyncio_rows_ran_with_a_heartbeat_each(drill):
    assert list(drill.totals) == list(LABELS)
    assert [drill.totals[label]["client"] for label in LABELS] == ["aiobotocore", "resilient_aws.aio"]
    assert set(drill.aio["loop_lag"]) == set(LABELS)
    assert drill.aio["versions"]["aiobotocore"]
    assert drill.aio["aiobotocore_retries"]["mode"] in ("legacy", "standard", "adaptive")


def test_healthy_calls_counted_by_the_workload_match_the_requests_the_servers_counted(drill):
    for label in LABELS:  # tags from a context variable, per task: one request per healthy call
        row = _phase(drill, "healthy")["clients"][label]
        assert row["calls"] > 0, label
        assert row["ok"] == row["calls"] == row["server_attempts"], label


def test_requests_attributed_by_call_tag_add_up_to_those_counted_by_host_name(drill):
    for region, counts in drill.servers.items():
        for label in LABELS:
            by_tag = sum(p["clients"][label]["requests_by_region"][region] for p in drill.phases)
            by_host = counts["by_host"].get(f"{label}.dynamodb.{region}.drill.test", 0)
            assert by_tag == by_host, (region, label)


def test_resilient_aws_aio_served_every_call_of_every_phase(drill):
    for phase in drill.phases:
        row = phase["clients"]["aio"]
        assert row["calls"] > 0 and row["ok"] == row["calls"], phase["name"]
    dns = _phase(drill, "dns-empty")["clients"]["aio"]
    assert dns["requests_by_region"]["us-east-1"] >= dns["calls"]  # from the last good address
    assert dns["dns_queries_per_call"] < 0.5
    for name in ("503", "unreachable"):
        row = _phase(drill, name)["clients"]["aio"]
        assert row["requests_by_region"]["us-west-2"] >= row["ok"], name


def test_plain_aiobotocore_served_little_while_us_east_1_failed(drill):
    for name in ("503", "unreachable"):
        row = _phase(drill, name)["clients"]["aiobotocore"]
        assert row["served_pct_of_offered"] < 50, (name, row)
        assert row["requests_by_region"]["us-west-2"] == 0, name


def test_resilient_aws_aio_own_counts_agree_with_the_workload(drill):
    stats, totals = drill.aio["resilient_stats"], drill.totals["aio"]
    assert stats["calls"] == totals["calls"] + WARM_UP_CALLS
    assert stats["succeeded"] == totals["ok"] + WARM_UP_CALLS
    west = sum(p["clients"]["aio"]["requests_by_region"]["us-west-2"] for p in drill.phases)
    assert stats["regions"]["us-west-2"]["attempts"] == west > 0


def test_the_table_shows_the_asyncio_rows_and_the_loop_lag(drill):
    table = format_table(drill)
    assert "\naiobotocore " in table and "\nresilient_aws.aio " in table
    assert table.splitlines()[1].startswith(f"aiobotocore {drill.aio['versions']['aiobotocore']} ")
    assert "Event loop lag (a heartbeat task every 1 ms" in table
    assert DrillResult(**json.loads(json.dumps(drill.to_dict()))).aio == drill.aio  # the JSON round-trips


@pytest.mark.parametrize("failure", ["503", "refused"])
def test_the_storm_benchmark_runs_the_asyncio_rows_counted_like_the_threads(failure):
    from resilient_aws.bench import storm

    assert list(storm.Settings().clients[-2:]) == ["aiobotocore", "resilient_aws.aio"]  # with aiobotocore here
    settings = storm.Settings(threads=4, outage=1.5, max_recovery=15.0, failures=(failure,),
                              clients=["aiobotocore", "resilient_aws.aio"])
    plain, resilient = storm.run(settings)
    assert (plain.client, resilient.client) == ("aiobotocore", "resilient_aws.aio")
    for row in (plain, resilient):
        assert row.calls > 0 and row.unfinished == 0, row
        assert row.recovery_s is not None, row
    # counted below the clients (server or audit hook), per task by the call's tag: aiobotocore retries
    # every failed call, resilient_aws.aio's breaker soon stops sending
    assert plain.attempts_per_call is not None and plain.attempts_per_call > 1.0
    assert resilient.attempts_per_call is not None and resilient.attempts_per_call < plain.attempts_per_call
    assert "The asyncio rows (aiobotocore, resilient_aws.aio): 4 tasks" in storm.markdown([plain, resilient], settings)
