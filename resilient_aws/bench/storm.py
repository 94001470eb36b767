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

Where aiobotocore is installed (the ``aio`` extra) two asyncio rows run too: plain ``aiobotocore`` (its
default retries) and ``resilient_aws.aio``, each shared by ``threads`` *tasks* on one event loop (in a
thread of its own), with the same schedule, tags and counting; elsewhere the five thread rows run as
before.

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

import asyncio
import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextvars import ContextVar
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
#: The asyncio rows, run where aiobotocore is installed.
AIO_CLIENT_NAMES = ("aiobotocore", "resilient_aws.aio")

#: The period the call in progress started in: a context variable, per thread and per asyncio task.
_tag: ContextVar[str | None] = ContextVar("resilient_aws_storm_tag", default=None)


def aio_available() -> bool:
    """Whether the asyncio rows can run here (aiobotocore importable), without importing it."""
    try:
        return importlib.util.find_spec("aiobotocore") is not None
    except (ImportError, ValueError):
        return False


def client_names() -> tuple[str, ...]:
    """Every row this environment can run: the five thread clients, and the asyncio ones with aiobotocore."""
    return CLIENT_NAMES + AIO_CLIENT_NAMES if aio_available() else CLIENT_NAMES


@dataclass(frozen=True)
class Settings:
    """The offered load and the outage; the defaults take about 4 minutes for both failures."""

    threads: int = 32
    rate: float = 10.0          # calls/s offered per thread
    outage: float = 15.0        # long enough for legacy mode's 9th attempt
    max_recovery: float = 40.0  # longest wait after the heal (legacy mode sleeps up to 12.8 s per retry)
    failures: Sequence[str] = FAILURES
    clients: Sequence[str] = field(default_factory=lambda: list(client_names()))


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
        tag = _tag.get() or "untagged"  # the audit hook runs in the connecting thread or task's context
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

    tag = _tag.get()
    if tag is not None:
        request.headers[TAG_HEADER] = tag


def botocore_client(mode: str, url: str, threads: int) -> Any:
    import botocore.session
    from botocore.config import Config

    from resilient_aws.testing.tables import TEST_CREDENTIALS

    session = botocore.session.get_session()
    retries: Any = {"mode": mode}  # botocore-stubs want a Literal mode; the names are CLIENTS' own
    client = session.create_client("dynamodb", region_name=REGION, endpoint_url=url,
                                   config=Config(retries=retries, max_pool_connections=threads),
                                   aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                   aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])
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
    # botocore calls handlers with keyword arguments only (request=...), which botocore-stubs' handler
    # protocol (**kwargs only) cannot express
    bc.register("before-send.dynamodb", _tag_request)  # type: ignore[arg-type]
    session = resilient_aws.Session(region_name=REGION, policy=policy, botocore_session=bc,
                                    aws_access_key_id=TEST_CREDENTIALS["aws_access_key_id"],
                                    aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"])
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


class _Load:
    """What the workers of one run share: the schedule, the outage's end, and the calls recorded.

    A worker is a thread (:meth:`run_thread`) or an asyncio task (:meth:`run_task`); both offer
    ``settings.rate`` calls/s on a fixed schedule, tag each call with the period it started in, and
    record it here. A call still in progress at the end stays in ``inflight`` (counted unfinished)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.t0 = self.outage_end = 0.0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.healed_at: list[float] = []
        self.outage_calls: list[tuple[float, float, bool]] = []   # (start, end, ok) of calls started in the outage
        self.successes_after: list[float] = []
        self.inflight: dict[int, float] = {}

    def begin(self) -> None:
        """The outage starts now."""
        self.t0 = time.monotonic()
        self.outage_end = self.t0 + self.settings.outage

    def _slot(self, next_at: float) -> tuple[float, float | None]:
        """(the slot after, now) when a call is due now; else (``next_at``, None): not yet."""
        now = time.monotonic()
        if now < next_at:
            return next_at, None
        return max(next_at + 1.0 / self.settings.rate, now), now

    def _record(self, started: float, ok: bool) -> None:
        end = time.monotonic()
        with self.lock:
            if started < self.outage_end:
                self.outage_calls.append((started, end, ok))
            if ok and self.healed_at and end >= self.healed_at[0]:
                self.successes_after.append(end)

    def run_thread(self, client: Any, index: int) -> None:
        rng = random.Random(index)
        next_at = self.t0 + rng.random() / self.settings.rate
        while not self.stop.is_set():
            next_at, now = self._slot(next_at)
            if now is None:
                self.stop.wait(min(next_at - time.monotonic(), 0.5))
                continue
            token = _tag.set("outage" if now < self.outage_end else "after")
            self.inflight[index] = now
            ok = True
            try:
                client.get_item(TableName=TABLE, Key=KEY)
            except Exception:
                ok = False
            finally:
                _tag.reset(token)
                self.inflight.pop(index, None)
            self._record(now, ok)

    async def run_task(self, client: Any, index: int) -> None:
        rng = random.Random(index)
        next_at = self.t0 + rng.random() / self.settings.rate
        while not self.stop.is_set():
            next_at, now = self._slot(next_at)
            if now is None:
                await asyncio.sleep(min(next_at - time.monotonic(), 0.05))
                continue
            token = _tag.set("outage" if now < self.outage_end else "after")
            self.inflight[index] = now
            ok = True
            try:
                await client.get_item(TableName=TABLE, Key=KEY)
            except Exception:
                ok = False
            _tag.reset(token)
            self.inflight.pop(index, None)  # not when cancelled: the call did not finish (unfinished)
            self._record(now, ok)


class _Threads:
    """``settings.threads`` threads sharing one botocore or resilient_aws client."""

    def __init__(self, name: str, url: str, settings: Settings) -> None:
        self.client = CLIENTS[name](url, settings.threads)
        self.threads: list[threading.Thread] = []

    def warm_up(self) -> None:
        self.client.get_item(TableName=TABLE, Key=KEY)  # client classes built, first connection made

    def start(self, load: _Load) -> None:
        self.threads = [threading.Thread(target=load.run_thread, args=(self.client, i), daemon=True)
                        for i in range(load.settings.threads)]
        for t in self.threads:
            t.start()

    def stop(self) -> None:
        for t in self.threads:
            t.join(2.0)  # a thread still in legacy mode's sleeps is a daemon: it does not hold the exit


class _Tasks:
    """``settings.threads`` asyncio tasks sharing one aiobotocore or resilient_aws.aio client, on an
    event loop in a thread of its own (the endpoint and the main thread's timing stay as for threads)."""

    def __init__(self, name: str, url: str, settings: Settings) -> None:
        self.name = name
        self.url = url
        self.settings = settings
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=f"storm-{name}", daemon=True)
        self.client: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._tasks: list[asyncio.Task[None]] = []

    def _call(self, coro: Any, timeout: float) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def warm_up(self) -> None:
        self.thread.start()
        self.client = self._call(self._open(), 60.0)
        self._call(self.client.get_item(TableName=TABLE, Key=KEY), 30.0)

    async def _open(self) -> Any:
        from aiobotocore.config import AioConfig
        from aiobotocore.session import get_session

        from resilient_aws.testing.tables import TEST_CREDENTIALS

        session = get_session()
        session.register("before-send.dynamodb", _tag_request)
        config = AioConfig(max_pool_connections=self.settings.threads)
        key, secret = TEST_CREDENTIALS["aws_access_key_id"], TEST_CREDENTIALS["aws_secret_access_key"]
        if self.name == "aiobotocore":  # its default retries
            return await self._stack.enter_async_context(session.create_client(
                "dynamodb", region_name=REGION, endpoint_url=self.url, config=config, aws_access_key_id=key,
                aws_secret_access_key=secret))
        import resilient_aws

        aio = importlib.import_module("resilient_aws.aio")  # by name: no aiohttp in a type check without it
        policy = resilient_aws.Policy(dns=resilient_aws.DnsPolicy(enabled=False))  # the URL is an IP literal
        resilient = aio.Session(region_name=REGION, policy=policy, aio_session=session, aws_access_key_id=key,
                                aws_secret_access_key=secret)
        self._stack.callback(resilient.close)
        return await self._stack.enter_async_context(resilient.create_client("dynamodb", endpoint_url=self.url,
                                                                              config=config))

    def start(self, load: _Load) -> None:
        async def spawn() -> None:
            self._tasks = [asyncio.create_task(load.run_task(self.client, i)) for i in range(load.settings.threads)]

        self._call(spawn(), 10.0)

    def stop(self) -> None:
        """Wait up to 2 s for the tasks (their ``stop`` is set), cancel what is left (still counted
        unfinished), close the client and the loop."""
        async def finish() -> None:
            if self._tasks:
                await asyncio.wait(self._tasks, timeout=2.0)
                for task in self._tasks:
                    task.cancel()
                await asyncio.wait(self._tasks, timeout=2.0)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._stack.aclose(), 5.0)

        if self.thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(finish(), 15.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5.0)
        if not self.thread.is_alive():
            self.loop.close()


def run_one(name: str, failure: str, settings: Settings) -> Row:
    """One client through one outage and its recovery, on a fresh loopback endpoint."""
    from resilient_aws.testing.endpoint import LoopbackEndpoint
    from resilient_aws.testing.tables import create_table, plain_client

    connects = connect_counter()
    with LoopbackEndpoint("127.0.0.1") as ep:
        create_table(plain_client("dynamodb", REGION, ep.url), TABLE, items=[{"pk": {"S": "k"}}])
        workers: _Threads | _Tasks = _Tasks(name, ep.url, settings) if name in AIO_CLIENT_NAMES else \
            _Threads(name, ep.url, settings)
        load = _Load(settings)
        try:
            workers.warm_up()
            if failure == "503":
                ep.fail_with(503)
            else:
                ep.unreachable()
                connects.arm(ep.host, ep.port)
            ep.reset_counts()
            load.begin()
            workers.start(load)
            time.sleep(max(0.0, load.outage_end - time.monotonic()))
            load.healed_at.append(time.monotonic())
            ep.healthy()
            deadline = load.healed_at[0] + settings.max_recovery
            while time.monotonic() < deadline:  # bounded: until outage calls are done and one success seen
                with load.lock:
                    done = load.successes_after and not any(v < load.outage_end for v in list(load.inflight.values()))
                if done and time.monotonic() - load.healed_at[0] >= 1.0:
                    break
                time.sleep(0.05)
        finally:
            load.stop.set()
            workers.stop()
            connects.disarm()
        counts = ep.counts()
        by_tag, per_second = (counts.by_tag, counts.per_second) if failure == "503" else (
            dict(connects.by_tag), dict(connects.per_second))
        unfinished = sum(1 for v in list(load.inflight.values()) if v < load.outage_end)
        with load.lock:
            calls = list(load.outage_calls)
            first_ok = min(load.successes_after) if load.successes_after else None
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
            recovery_s=round(first_ok - load.healed_at[0], 2) if first_ok is not None else None,
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
        "address (socket.connect, seen by an audit hook)." + _asyncio_note(rows, settings),
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


def _asyncio_note(rows: Sequence[Row], settings: Settings) -> str:
    ran = [name for name in AIO_CLIENT_NAMES if any(r.client == name for r in rows)]
    if not ran:
        return ""
    return f" The asyncio rows ({', '.join(ran)}): {settings.threads} tasks sharing one client on one event loop."


def write_json(rows: Sequence[Row], path: str) -> None:
    """The rows as a JSON list of objects (one per client and failure)."""
    with open(path, "w") as f:
        json.dump([asdict(r) for r in rows], f, indent=2)
