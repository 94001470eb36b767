"""Against BIND 9: the 2025-10-20 replay and its variants, through ``resilient_aws.Session``.

While 8 threads call GetItem (each call on a new connection, so each one needs DNS), ``nsupdate``
deletes the A record of the us-east-1 name, then restores it. BIND's query log counts the queries.
``named`` is started by the library's own launcher (``resilient_aws.drill.bind.BindDnsServer``, what
``--dns bind`` runs), so the drill and these tests run BIND the same way.
"""

from __future__ import annotations

import contextlib
import socket
import statistics
import threading
import time
from collections.abc import Iterator

import botocore.session
import pytest
from support.dns import NAME, ZONE, wait_until

import resilient_aws
from resilient_aws.drill.bind import BindDnsServer, bind_available
from resilient_aws.testing.net import check_loopback, free_port

pytestmark = [
    pytest.mark.integration,
    pytest.mark.bind,
    pytest.mark.skipif(not bind_available(),
                       reason="BIND 9 not installed (apt-get install bind9 bind9-utils); .ci/run installs it"),
]

TABLE = "drill"
RECHECK = 1.0
TTL = 1


@pytest.fixture(scope="module")
def port() -> int:
    return free_port("127.0.0.1", "127.0.0.2", "127.0.0.4")


@pytest.fixture(scope="module")
def moto(port) -> Iterator[int]:
    """moto on 127.0.0.1 (us-east-1's address) and 127.0.0.2 (us-west-2's), same port; one backend
    behind both, regions kept apart by the request's signature. One table, one item per region."""
    from moto.server import ThreadedMotoServer

    servers = [ThreadedMotoServer(ip_address=ip, port=port, verbose=False) for ip in ("127.0.0.1", "127.0.0.2")]
    for s in servers:
        s.start()
    for region in ("us-east-1", "us-west-2"):
        c = botocore.session.get_session().create_client(
            "dynamodb", region_name=region, endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="testing", aws_secret_access_key="testing")
        c.create_table(TableName=TABLE, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                       BillingMode="PAY_PER_REQUEST")
        c.put_item(TableName=TABLE, Item={"pk": {"S": "1"}, "region": {"S": region}})
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


def client_for(bind: BindDnsServer, port: int, **dns_fields: float):
    """A resilient DynamoDB client whose every call opens a new connection (``Connection: close``):
    the worst case for DNS, and what a client with a cold or churning pool does."""
    bc = botocore.session.get_session()
    bc.register("before-send.dynamodb", lambda request, **kw: request.headers.__setitem__("Connection", "close"))
    policy = resilient_aws.Policy(dns=resilient_aws.DnsPolicy(
        nameservers=["127.0.0.1"], port=bind.port, timeout=0.5, recheck_interval=RECHECK, min_ttl=1.0,
        **dns_fields))
    session = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=policy,
                                    botocore_session=bc, aws_access_key_id="testing",
                                    aws_secret_access_key="testing")
    return session.client("dynamodb", endpoint_urls={"us-east-1": f"http://{NAME}:{port}",
                                                     "us-west-2": f"http://127.0.0.2:{port}"})


class Load:
    """``threads`` workers calling GetItem about ``rate`` times a second each; latency per call and
    phase, failures, and which region answered."""

    def __init__(self, client, threads: int = 8, rate: float = 10.0) -> None:
        self.client = client
        self.phase = "before"
        self.latency: dict[str, list[float]] = {}
        self.failures: list[BaseException] = []
        self.regions: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, args=(1.0 / rate,), daemon=True) for _ in range(threads)]

    def _work(self, pause: float) -> None:
        while not self._stop.is_set():
            phase = self.phase
            t = time.perf_counter()
            try:
                item = self.client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})["Item"]
            except Exception as e:  # counted, asserted to be none
                with self._lock:
                    self.failures.append(e)
            else:
                took = time.perf_counter() - t
                with self._lock:
                    self.latency.setdefault(phase, []).append(took)
                    region = item["region"]["S"]
                    self.regions[region] = self.regions.get(region, 0) + 1
            self._stop.wait(pause)

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=10)

    def summary(self, phase: str) -> tuple[int, float, float]:
        data = sorted(self.latency.get(phase, []))
        if not data:
            return 0, 0.0, 0.0
        return len(data), statistics.median(data), data[min(len(data) - 1, int(len(data) * 0.99))]


def phase_report(title: str, load: Load, counts: dict[str, int], seconds: dict[str, float]) -> str:
    lines = [f"\n{title}", "| phase | seconds | calls | p50 ms | p99 ms | DNS queries for the name (BIND log) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for phase in ("before", "during", "after"):
        n, p50, p99 = load.summary(phase)
        lines.append(f"| {phase} | {seconds[phase]:.1f} | {n} | {p50 * 1000:.1f} | {p99 * 1000:.1f} "
                     f"| {counts[phase]} |")
    lines.append(f"failed calls: {len(load.failures)}; regions that answered: {load.regions}")
    return "\n".join(lines)


def run_outage(bind: BindDnsServer, load: Load, outage_mode: str, outage: float, restore_to: list[str] | None = None,
               before: float = 3.0, after: float = 3.0) -> tuple[dict[str, int], dict[str, float]]:
    """Phases of real time under load (a replay: the durations are the scenario, not waits for
    something): ``before``, then NAME in ``outage_mode`` ("empty": A records deleted; "nxdomain": the
    name deleted) for ``outage`` seconds, then restored (to ``restore_to``, or to its old address)."""
    marks = {"start": bind.count(NAME)}
    seconds: dict[str, float] = {}
    time.sleep(before)
    seconds["before"] = before
    marks["before"] = bind.count(NAME)
    load.phase = "during"
    t = time.monotonic()
    bind.set_mode(NAME, outage_mode)
    time.sleep(outage)
    if restore_to is None:
        bind.restore(NAME)
    else:
        bind.set(NAME, a=restore_to, ttl=TTL)
    seconds["during"] = time.monotonic() - t
    marks["during"] = bind.count(NAME)
    load.phase = "after"
    time.sleep(after)
    seconds["after"] = after
    marks["after"] = bind.count(NAME)
    counts = {"before": marks["before"] - marks["start"], "during": marks["during"] - marks["before"],
              "after": marks["after"] - marks["during"]}
    return counts, seconds


def assert_like_before(load: Load) -> None:
    n_before, p50_before, p99_before = load.summary("before")
    n_during, p50_during, p99_during = load.summary("during")
    assert n_before > 50 and n_during > 100
    assert p50_during <= max(3 * p50_before, p50_before + 0.02)
    assert p99_during <= max(3 * p99_before, p99_before + 0.2)


def test_replay_2025_10_20_empty_answer_for_10_seconds_loses_no_call(bind, moto, capsys):
    client = client_for(bind, moto)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})  # the name has history
    with Load(client) as load:
        counts, seconds = run_outage(bind, load, "empty", outage=10.0)
    stats = client.stats()
    with capsys.disabled():
        print(phase_report("2025-10-20 replay (NOERROR, no A record, 10 s) through resilient_aws + BIND 9",
                           load, counts, seconds))
        print(f"dns stats: {stats['dns']}")
    assert load.failures == []
    assert load.regions == {"us-east-1": sum(load.regions.values())}  # no need to fail over at all
    assert_like_before(load)
    # One re-check per RECHECK seconds (A, then AAAA after an empty A): at most 2 queries each.
    assert counts["during"] <= 2 * (seconds["during"] / RECHECK + 2)
    assert counts["during"] < load.summary("during")[0] / 10  # versus one lookup per call without a cache
    assert stats["dns"]["stale_episodes"] == 1 and stats["dns"]["recoveries"] == 1
    assert stats["dns"]["failures_by_kind"] == {"empty": stats["dns"]["failures"]}


def test_nxdomain_variant_loses_no_call(bind, moto, capsys):
    client = client_for(bind, moto)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})
    with Load(client) as load:
        counts, seconds = run_outage(bind, load, "nxdomain", outage=4.0, before=2.0, after=2.0)
    stats = client.stats()
    with capsys.disabled():
        print(phase_report("NXDOMAIN for 4 s", load, counts, seconds))
    assert load.failures == []
    assert_like_before(load)
    assert counts["during"] <= 2 * (seconds["during"] / RECHECK + 2)
    assert stats["dns"]["failures_by_kind"].get("nxdomain", 0) >= 2


class Forwarder:
    """TCP forwarder on a loopback address (the server's *new* address) to the real server;
    counts connections, so the test sees where the client really went."""

    def __init__(self, host: str, port: int, upstream: tuple[str, int]) -> None:
        check_loopback(host, "Forwarder")
        self.connections = 0
        self.upstream = upstream
        self.sock = socket.create_server((host, port))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._pair, args=(conn,), daemon=True).start()

    def _pair(self, conn: socket.socket) -> None:
        try:
            up = socket.create_connection(self.upstream, timeout=5)
        except OSError:
            conn.close()
            return
        for a, b in ((conn, up), (up, conn)):
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        src.settimeout(10)
        try:
            for _ in range(100_000):  # bounded
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def __enter__(self) -> Forwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


def test_a_restore_to_a_different_address_is_followed(bind, moto, capsys):
    client = client_for(bind, moto)
    client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})
    with Forwarder("127.0.0.4", moto, ("127.0.0.1", moto)) as moved, Load(client) as load:
        counts, seconds = run_outage(bind, load, "empty", outage=3.0, restore_to=["127.0.0.4"], before=1.0,
                                     after=3.0)
    dns = client.stats()["dns"]
    with capsys.disabled():
        print(phase_report("restore to a new address (127.0.0.4)", load, counts, seconds))
        print(f"connections to the new address: {moved.connections}")
    assert load.failures == []
    assert dns["answers_changed"] == 1
    assert moved.connections > 20  # the new connections after the restore went to the new address
    assert wait_until(lambda: client._dns_cache.addresses(NAME) == ["127.0.0.4"], timeout=1)


def test_a_cold_start_during_the_outage_fails_over_to_us_west_2(bind, moto):
    bind.set_mode(NAME, "empty")
    client = client_for(bind, moto)  # a fresh process: no history, no persisted answers
    t = time.monotonic()
    item = client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})["Item"]
    assert item["region"]["S"] == "us-west-2"
    assert time.monotonic() - t < 2.0
    stats = client.stats()
    assert stats["failovers"] >= 1
    assert stats["dns"]["cold_failures"] >= 1
    for _ in range(5):  # later reads keep working, and do not query the dead name on every call
        assert client.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})["Item"]["region"]["S"] == "us-west-2"
    assert bind.count(NAME) <= 4


def test_a_restart_during_the_outage_with_a_persisted_answer_stays_in_its_region(bind, moto, tmp_path):
    path = str(tmp_path / "dns-cache.json")
    warm = client_for(bind, moto, persist_path=path)
    warm.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})
    bind.set_mode(NAME, "empty")
    restarted = client_for(bind, moto, persist_path=path)
    item = restarted.get_item(TableName=TABLE, Key={"pk": {"S": "1"}})["Item"]
    assert item["region"]["S"] == "us-east-1"
    assert restarted.stats()["failovers"] == 0
    assert restarted.stats()["dns"]["persisted_loads"] == 1
