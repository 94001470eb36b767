"""Against BIND 9, from asyncio: the 2025-10-20 replay through ``resilient_aws.aio`` with 100 tasks.

The port of ``tests/dns/test_dns_bind.py``'s replay: while 100 tasks of one event loop call GetItem
(each call on a new connection, so each one needs DNS), ``nsupdate`` deletes the A record of the
us-east-1 name for 10 s, then restores it; BIND's query log counts the queries. The bar is the sync
client's: no failed read, no failover needed, latency as before, and the DNS queries during the outage
bounded by the re-check interval (one shared lookup per re-check, not one per task or per call).
``named`` is started by the library's launcher (``resilient_aws.drill.bind.BindDnsServer``), as for
the sync test and ``--dns bind``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import statistics
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support.dns import NAME, ZONE
from support.moto_state import tables_left_as_found

import resilient_aws
from resilient_aws.drill.bind import BindDnsServer, bind_available
from resilient_aws.testing.net import free_port
from resilient_aws.testing.tables import TEST_CREDENTIALS, create_table, plain_client

pytestmark = [
    pytest.mark.integration,
    pytest.mark.bind,
    pytest.mark.asyncio,
    pytest.mark.skipif(not bind_available(),
                       reason="BIND 9 not installed (apt-get install bind9 bind9-utils); .ci/run installs it"),
]

TABLE = "aio_bind"
RECHECK = 1.0
TTL = 1
TASKS = 100
PAUSE = 1.2  # seconds between one task's calls (about 80 calls/s from the 100 tasks)


@pytest.fixture(scope="module")
def moto() -> Iterator[int]:
    """moto on 127.0.0.1 (us-east-1's address) and 127.0.0.2 (us-west-2's), same port; one backend
    behind both, regions kept apart by the request's signature. One table, one item per region."""
    from moto.server import ThreadedMotoServer

    port = free_port("127.0.0.1", "127.0.0.2")
    servers = [ThreadedMotoServer(ip_address=ip, port=port, verbose=False) for ip in ("127.0.0.1", "127.0.0.2")]
    for s in servers:
        s.start()
    with tables_left_as_found(("us-east-1", "us-west-2")):
        for region in ("us-east-1", "us-west-2"):
            create_table(plain_client("dynamodb", region, f"http://127.0.0.1:{port}"), TABLE,
                         items=[{"pk": {"S": "1"}, "region": {"S": region}}])
        yield port
    for s in servers:
        s.stop()


@pytest.fixture
def bind() -> Iterator[BindDnsServer]:
    """``named`` serving ZONE; NAME has an A record (127.0.0.1) and a TXT record, so deleting its A
    records leaves the name in place: NOERROR with no A records, the 2025-10-20 answer."""
    with BindDnsServer(zone=ZONE) as server:
        server.set(NAME, a=["127.0.0.1"], ttl=TTL)
        yield server


def session_for(bind: BindDnsServer) -> Any:
    """A resilient_aws.aio session asking BIND, whose clients' every call opens a new connection
    (``Connection: close``): the worst case for DNS, and what a client with a churning pool does."""
    from aiobotocore.session import get_session

    from resilient_aws import aio

    session = get_session()
    session.register("before-send.dynamodb", lambda request, **kw: request.headers.__setitem__("Connection", "close"))
    policy = resilient_aws.Policy(dns=resilient_aws.DnsPolicy(
        nameservers=["127.0.0.1"], port=bind.port, timeout=0.5, recheck_interval=RECHECK, min_ttl=1.0))
    return aio.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=policy, aio_session=session,
                       **TEST_CREDENTIALS)


class Load:
    """``TASKS`` tasks calling GetItem about every ``PAUSE`` seconds each (all starting at once, so
    their first connections need DNS together); latency per call and phase, failures, and which region
    answered."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.phase = "before"
        self.latency: dict[str, list[float]] = {}
        self.failures: list[BaseException] = []
        self.regions: dict[str, int] = {}
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _work(self, index: int) -> None:
        rng = random.Random(index)
        while not self._stop.is_set():
            phase = self.phase
            t = time.perf_counter()
            try:
                item = (await self.client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}}))["Item"]
            except Exception as e:  # counted, asserted to be none
                self.failures.append(e)
            else:
                self.latency.setdefault(phase, []).append(time.perf_counter() - t)
                region = item["region"]["S"]
                self.regions[region] = self.regions.get(region, 0) + 1
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), PAUSE * (0.5 + rng.random()))

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._work(i)) for i in range(TASKS)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        _, pending = await asyncio.wait(self._tasks, timeout=10)
        for task in pending:
            task.cancel()
        assert not pending, f"{len(pending)} tasks still in a call 10 s after the load stopped"

    def summary(self, phase: str) -> tuple[int, float, float]:
        data = sorted(self.latency.get(phase, []))
        if not data:
            return 0, 0.0, 0.0
        return len(data), statistics.median(data), data[min(len(data) - 1, int(len(data) * 0.99))]


async def run_outage(bind: BindDnsServer, load: Load, outage: float, before: float = 3.0,
                     after: float = 3.0) -> tuple[dict[str, int], dict[str, float]]:
    """Phases of real time under load: ``before``, then NAME's A records deleted for ``outage`` seconds,
    then restored. ``nsupdate`` and the query log are used from a thread, off the event loop."""
    marks = {"start": await asyncio.to_thread(bind.count, NAME)}
    seconds: dict[str, float] = {}
    await asyncio.sleep(before)
    seconds["before"] = before
    marks["before"] = await asyncio.to_thread(bind.count, NAME)
    load.phase = "during"
    t = time.monotonic()
    await asyncio.to_thread(bind.set_mode, NAME, "empty")
    await asyncio.sleep(outage)
    await asyncio.to_thread(bind.restore, NAME)
    seconds["during"] = time.monotonic() - t
    marks["during"] = await asyncio.to_thread(bind.count, NAME)
    load.phase = "after"
    await asyncio.sleep(after)
    seconds["after"] = after
    marks["after"] = await asyncio.to_thread(bind.count, NAME)
    counts = {"before": marks["before"] - marks["start"], "during": marks["during"] - marks["before"],
              "after": marks["after"] - marks["during"]}
    return counts, seconds


def phase_report(title: str, load: Load, counts: dict[str, int], seconds: dict[str, float]) -> str:
    lines = [f"\n{title}", "| phase | seconds | calls | p50 ms | p99 ms | DNS queries for the name (BIND log) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for phase in ("before", "during", "after"):
        n, p50, p99 = load.summary(phase)
        lines.append(f"| {phase} | {seconds[phase]:.1f} | {n} | {p50 * 1000:.1f} | {p99 * 1000:.1f} "
                     f"| {counts[phase]} |")
    lines.append(f"failed calls: {len(load.failures)}; regions that answered: {load.regions}")
    return "\n".join(lines)


async def test_replay_2025_10_20_empty_answer_for_10_seconds_with_100_tasks_loses_no_call(bind, moto, capsys):
    async with session_for(bind).create_client("dynamodb", endpoint_urls={
            "us-east-1": f"http://{NAME}:{moto}", "us-west-2": f"http://127.0.0.2:{moto}"},
            config=_pool(TASKS)) as client:
        await client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})  # the name has history
        async with Load(client) as load:
            counts, seconds = await run_outage(bind, load, outage=10.0)
        stats = client.stats()
    with capsys.disabled():
        print(phase_report(f"2025-10-20 replay (NOERROR, no A record, 10 s) through resilient_aws.aio, {TASKS} "
                           "tasks, + BIND 9", load, counts, seconds))
        print(f"dns stats: {stats['dns']}")
    assert load.failures == []
    assert load.regions == {"us-east-1": sum(load.regions.values())}  # no need to fail over at all
    n_before, p50_before, p99_before = load.summary("before")
    n_during, p50_during, p99_during = load.summary("during")
    assert n_before > 150 and n_during > 500
    assert p50_during <= max(3 * p50_before, p50_before + 0.02)
    assert p99_during <= max(3 * p99_before, p99_before + 0.2)
    # As for the sync client: one re-check per RECHECK seconds (A, then AAAA after an empty A), shared by
    # every task waiting on the name: at most 2 queries each.
    assert counts["during"] <= 2 * (seconds["during"] / RECHECK + 2)
    assert counts["during"] < n_during / 10  # versus one lookup per call without a cache
    assert stats["dns"]["stale_episodes"] == 1 and stats["dns"]["recoveries"] == 1
    assert stats["dns"]["failures_by_kind"] == {"empty": stats["dns"]["failures"]}


async def test_a_cold_start_during_the_outage_fails_over_to_us_west_2_for_every_task(bind, moto):
    await asyncio.to_thread(bind.set_mode, NAME, "empty")
    async with session_for(bind).create_client("dynamodb", endpoint_urls={  # a fresh process: no history
            "us-east-1": f"http://{NAME}:{moto}", "us-west-2": f"http://127.0.0.2:{moto}"},
            config=_pool(TASKS)) as client:
        t = time.monotonic()
        items = await asyncio.gather(*(client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})
                                       for _ in range(TASKS)))
        assert time.monotonic() - t < 5.0
        assert {i["Item"]["region"]["S"] for i in items} == {"us-west-2"}
        stats = client.stats()
    assert stats["failed"] == 0 and stats["failovers"] >= 1
    assert stats["dns"]["cold_failures"] >= 1
    # 100 tasks needed the dead name at once: one lookup (A, then AAAA) for all of them, not one each
    assert await asyncio.to_thread(bind.count, NAME) <= 4


def _pool(size: int) -> Any:
    from aiobotocore.config import AioConfig

    return AioConfig(max_pool_connections=size)
