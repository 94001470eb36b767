"""Retry storms, counted at the server: botocore legacy / standard / adaptive vs resilient_aws.

Why: when an endpoint fails every request, each client-side retry is one more request on a service
that is already down. Stacked or unbudgeted retries multiply the load exactly when there is no
capacity (legacy mode: 10 attempts per DynamoDB call). This benchmark measures what the *server*
receives, per client, in two outages:

- ``503``: the endpoint answers every request with HTTP 503;
- ``refused``: the endpoint does not listen (connections refused).

For each client: ``threads`` threads (default 32) share one client and offer ``rate`` calls/s each on
a fixed schedule (a thread blocked inside a call offers nothing more) for ``outage`` seconds. Then the
endpoint heals and the threads go on until every call started during the outage has finished (bounded
by ``max_recovery``): "recovery" is the time from the endpoint's return to the first call it serves for
that client. Every request carries a tag header naming the period its call started in, so a retry that
lands after the heal still counts for the outage call that made it.

Counting: with ``503`` every attempt reaches the server, which counts it (per tag, per second).
With ``refused`` no server ever sees an attempt (the kernel answers the SYN with a reset), so the
attempts are counted where they happen: every ``socket.connect`` to the dead address, seen by a
``sys.addaudithook`` hook. That is below botocore and resilient_aws, not a client's own claim.

The endpoint is :class:`~resilient_aws.testing.endpoint.LoopbackEndpoint` on 127.0.0.1: moto's DynamoDB
server behind a fault switch, so this benchmark needs the ``drill`` extra
(:data:`~resilient_aws.bench.extras.DRILL_INSTALL`); ``resilient-aws bench`` checks that before
importing it.
"""

from __future__ import annotations

import datetime
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .machine import software
from .report import cell
from .timing import Progress

REGION = "us-east-1"
TABLE = "storm"
KEY = {"pk": {"S": "k"}}
FAILURES = ("503", "refused")
CLIENT_NAMES = ("botocore legacy", "botocore standard", "botocore adaptive", "resilient_aws",
                "resilient_aws, breaker off")

_tag = threading.local()


@dataclass(frozen=True)
class Settings:
    """The offered load and the outage; the defaults take about 4 minutes for both failures."""

    threads: int = 32
    rate: float = 10.0          # calls/s offered per thread
    outage: float = 15.0        # long enough for legacy mode's 9th attempt
    max_recovery: float = 40.0  # longest wait after the heal (legacy mode sleeps up to 12.8 s per retry)
    failures: Sequence[str] = FAILURES
    clients: Sequence[str] = field(default_factory=lambda: list(CLIENT_NAMES))


#: ``--quick``: a shorter outage and fewer threads (about a minute in all).
QUICK = Settings(threads=16, outage=4.0)


class ConnectCounter:
    """Counts ``socket.connect`` calls to one address, per tag and per second (an audit hook)."""

    def __init__(self) -> None:
        self.target: tuple[str, int] | None = None
        self.t0 = 0.0
        self.by_tag: dict[str, int] = {}
        self.per_second: dict[int, int] = {}
        self.lock = threading.Lock()
        sys.addaudithook(self._hook)  # cannot be removed; inert while target is None

    def arm(self, host: str, port: int) -> None:
        with self.lock:
            self.by_tag, self.per_second, self.t0 = {}, {}, time.monotonic()
            self.target = (host, port)

    def disarm(self) -> None:
        self.target = None

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.connect" or self.target is None:
            return
        address = args[1]
        if not isinstance(address, tuple) or tuple(address[:2]) != self.target:
            return
        tag = getattr(_tag, "value", None) or "untagged"
        second = int(time.monotonic() - self.t0)
        with self.lock:
            self.by_tag[tag] = self.by_tag.get(tag, 0) + 1
            self.per_second[second] = self.per_second.get(second, 0) + 1


_connects: ConnectCounter | None = None


def connect_counter() -> ConnectCounter:
    """The process's one counter, whose audit hook is installed on first use (it cannot be removed)."""
    global _connects
    if _connects is None:
        _connects = ConnectCounter()
    return _connects


def _tag_request(request: Any, **kwargs: Any) -> None:
    from resilient_aws.testing.counters import TAG_HEADER

    tag = getattr(_tag, "value", None)
    if tag is not None:
        request.headers[TAG_HEADER] = tag


def botocore_client(mode: str, url: str, threads: int) -> Any:
    import botocore.session
    from botocore.config import Config

    from resilient_aws.testing.tables import TEST_CREDENTIALS

    session = botocore.session.get_session()
    client = session.create_client("dynamodb", region_name=REGION, endpoint_url=url,
                                   config=Config(retries={"mode": mode}, max_pool_connections=threads),
                                   **TEST_CREDENTIALS)
    client.meta.events.register("before-send.dynamodb", _tag_request)
    return client


def resilient_client(url: str, threads: int, breaker: bool = True) -> Any:
    import botocore.session
    from botocore.config import Config

    import resilient_aws
    from resilient_aws.testing.tables import TEST_CREDENTIALS

    no_dns = resilient_aws.DnsPolicy(enabled=False)  # the storm is about retries; the URL is an IP literal
    policy = resilient_aws.Policy(dns=no_dns) if breaker else resilient_aws.Policy(
        dns=no_dns, breaker=resilient_aws.BreakerPolicy(enabled=False))
    bc = botocore.session.get_session()
    bc.register("before-send.dynamodb", _tag_request)
    session = resilient_aws.Session(region_name=REGION, policy=policy, botocore_session=bc, **TEST_CREDENTIALS)
    return session.client("dynamodb", endpoint_url=url, config=Config(max_pool_connections=threads))


CLIENTS: dict[str, Callable[[str, int], Any]] = {
    "botocore legacy": lambda url, n: botocore_client("legacy", url, n),
    "botocore standard": lambda url, n: botocore_client("standard", url, n),
    "botocore adaptive": lambda url, n: botocore_client("adaptive", url, n),
    "resilient_aws": lambda url, n: resilient_client(url, n),
    "resilient_aws, breaker off": lambda url, n: resilient_client(url, n, breaker=False),
}


@dataclass
class Row:
    client: str
    failure: str
    threads: int
    offered_per_s: float
    outage_s: float
    calls: int
    unfinished: int
    attempts: int
    attempts_per_call: float | None
    peak_attempts_per_s: int
    tail_attempts_per_s: float
    p50_ms: float | None
    recovery_s: float | None


def run_one(name: str, failure: str, settings: Settings) -> Row:
    """One client through one outage and its recovery, on a fresh loopback endpoint."""
    from resilient_aws.testing.endpoint import LoopbackEndpoint
    from resilient_aws.testing.tables import create_table, plain_client

    connects = connect_counter()
    with LoopbackEndpoint("127.0.0.1") as ep:
        create_table(plain_client("dynamodb", REGION, ep.url), TABLE, items=[{"pk": {"S": "k"}}])
        client = CLIENTS[name](ep.url, settings.threads)
        client.get_item(TableName=TABLE, Key=KEY)  # warm: client classes built, first connection made
        if failure == "503":
            ep.fail_with(503)
        else:
            ep.unreachable()
            connects.arm(ep.host, ep.port)
        ep.reset_counts()
        stop = threading.Event()
        healed_at: list[float] = []
        lock = threading.Lock()
        outage_calls: list[tuple[float, float, bool]] = []   # (start, end, ok) of calls started in the outage
        successes_after: list[float] = []
        inflight: dict[int, float] = {}
        t0 = time.monotonic()
        outage_end = t0 + settings.outage

        def worker(index: int) -> None:
            rng = random.Random(index)
            interval = 1.0 / settings.rate
            next_at = t0 + rng.random() * interval
            while not stop.is_set():
                now = time.monotonic()
                if now < next_at:
                    stop.wait(min(next_at - now, 0.5))
                    continue
                next_at = max(next_at + interval, now)
                in_outage = now < outage_end
                _tag.value = "outage" if in_outage else "after"
                inflight[index] = now
                ok = True
                try:
                    client.get_item(TableName=TABLE, Key=KEY)
                except Exception:
                    ok = False
                finally:
                    _tag.value = None
                    inflight.pop(index, None)
                end = time.monotonic()
                with lock:
                    if in_outage:
                        outage_calls.append((now, end, ok))
                    if ok and healed_at and end >= healed_at[0]:
                        successes_after.append(end)

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(settings.threads)]
        try:
            for t in threads:
                t.start()
            time.sleep(max(0.0, outage_end - time.monotonic()))
            healed_at.append(time.monotonic())
            ep.healthy()
            deadline = healed_at[0] + settings.max_recovery
            while time.monotonic() < deadline:  # bounded: until outage calls are done and one success seen
                with lock:
                    done = successes_after and not any(v < outage_end for v in list(inflight.values()))
                if done and time.monotonic() - healed_at[0] >= 1.0:
                    break
                time.sleep(0.05)
        finally:
            stop.set()
            for t in threads:
                t.join(2.0)  # a thread still in legacy mode's sleeps is a daemon: it does not hold the exit
            connects.disarm()
        counts = ep.counts()
        by_tag, per_second = (counts.by_tag, counts.per_second) if failure == "503" else (
            dict(connects.by_tag), dict(connects.per_second))
        unfinished = sum(1 for v in list(inflight.values()) if v < outage_end)
        with lock:
            calls = list(outage_calls)
            first_ok = min(successes_after) if successes_after else None
        n = len(calls) + unfinished
        attempts = by_tag.get("outage", 0)
        outage_seconds = [s for s in per_second if s < settings.outage]
        tail = [per_second.get(s, 0) for s in range(int(settings.outage / 2), int(settings.outage))]
        latencies = [end - start for start, end, _ in calls]
        return Row(
            client=name, failure=failure, threads=settings.threads, offered_per_s=settings.threads * settings.rate,
            outage_s=settings.outage, calls=n, unfinished=unfinished, attempts=attempts,
            attempts_per_call=round(attempts / n, 2) if n else None,
            peak_attempts_per_s=max((per_second[s] for s in outage_seconds), default=0),
            tail_attempts_per_s=round(statistics.fmean(tail), 1) if tail else 0.0,
            p50_ms=round(statistics.median(latencies) * 1000, 1) if latencies else None,
            recovery_s=round(first_ok - healed_at[0], 2) if first_ok is not None else None,
        )


def run(settings: Settings, progress: Progress | None = None) -> list[Row]:
    """Every client in ``settings.clients`` through every failure in ``settings.failures``, one at a time."""
    progress = progress or Progress("storm")
    plan = [(failure, name) for failure in settings.failures for name in settings.clients]
    progress(f"{len(plan)} runs, each a {settings.outage:g} s outage then up to {settings.max_recovery:g} s "
             f"of recovery; {settings.threads} threads x {settings.rate:g} calls/s")
    rows = []
    for index, (failure, name) in enumerate(plan, 1):
        row = run_one(name, failure, settings)
        rows.append(row)
        progress(f"round {index}/{len(plan)}: {failure:>7}  {name:<27} calls {row.calls:>5}  "
                 f"attempts/call {cell(row.attempts_per_call):>6}  peak {row.peak_attempts_per_s:>5}/s  "
                 f"tail {row.tail_attempts_per_s:>6}/s  recovery {cell(row.recovery_s)} s")
    return rows


def markdown(rows: Sequence[Row], settings: Settings) -> str:
    """The table, as RESULTS.md shows it."""
    lines = [
        f"Storm: {settings.threads} threads sharing one client, {settings.rate:g} calls/s each offered "
        f"({settings.threads * settings.rate:g}/s), outage {settings.outage:g} s, then the endpoint heals. "
        "Attempts: 503 = HTTP requests counted by the server; refused = connection attempts to the dead "
        "address (socket.connect, seen by an audit hook).",
        "",
        "| failure | client | calls | attempts / call | peak attempts/s | attempts/s, 2nd half of outage "
        "| p50 call | recovery |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        unfinished = f" ({r.unfinished} unfinished)" if r.unfinished else ""
        lines.append(f"| {r.failure} | {r.client} | {r.calls}{unfinished} | {cell(r.attempts_per_call, '.2f')} "
                     f"| {r.peak_attempts_per_s} | {r.tail_attempts_per_s:g} | {cell(r.p50_ms, '.0f')} ms "
                     f"| {cell(r.recovery_s, '.2f')} s |")
    lines += ["", f"{software()}, {os.cpu_count()} CPUs, {datetime.date.today().isoformat()}"]
    return "\n".join(lines) + "\n"


def write_json(rows: Sequence[Row], path: str) -> None:
    """The rows as a JSON list of objects (one per client and failure)."""
    with open(path, "w") as f:
        json.dump([asdict(r) for r in rows], f, indent=2)
