"""Retry storms, counted at the server: botocore legacy / standard / adaptive vs resilient_aws.

Why: when an endpoint fails every request, each client-side retry is one more request on a service
that is already down. Stacked or unbudgeted retries multiply the load exactly when there is no
capacity (legacy mode: 10 attempts per DynamoDB call). This benchmark measures what the *server*
receives, per client, in two outages:

- ``503``: the endpoint answers every request with HTTP 503;
- ``refused``: the endpoint does not listen (connections refused).

For each client: ``--threads`` threads (default 32) share one client and offer ``--rate`` calls/s
each on a fixed schedule (a thread blocked inside a call offers nothing more) for ``--outage``
seconds. Then the endpoint heals and the threads go on until every call started during the outage
has finished (bounded): "recovery" is the time from the endpoint's return to the first call it
serves for that client. Every request carries a tag header naming the period its call started in,
so a retry that lands after the heal still counts for the outage call that made it.

Counting: with ``503`` every attempt reaches the server, which counts it (per tag, per second).
With ``refused`` no server ever sees an attempt (the kernel answers the SYN with a reset), so the
attempts are counted where they happen: every ``socket.connect`` to the dead address, seen by a
``sys.addaudithook`` hook. That is below botocore and resilient_aws, not a client's own claim.

Columns: calls started during the outage; attempts per call; the peak attempts the
endpoint received in one second; the mean attempts per second in the last half of the outage (what a
dead endpoint still receives once the client has "understood"); p50 call latency; recovery.

Usage: python benchmarks/storm.py [--threads 32] [--rate 10] [--outage 15] [--quick]
                                  [--only 503|refused] [--markdown PATH] [--json PATH]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import botocore
import botocore.session
from botocore.config import Config

import resilient_aws
from resilient_aws.testing.aws import TAG_HEADER, TEST_CREDENTIALS, LoopbackEndpoint, create_table, plain_client

REGION = "us-east-1"
TABLE = "storm"
KEY = {"pk": {"S": "k"}}
NO_DNS = resilient_aws.DnsPolicy(enabled=False)  # the storm is about retries; the URL is an IP literal

_tag = threading.local()


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


CONNECTS = ConnectCounter()


def _tag_request(request: Any, **kwargs: Any) -> None:
    tag = getattr(_tag, "value", None)
    if tag is not None:
        request.headers[TAG_HEADER] = tag


def botocore_client(mode: str, url: str, threads: int) -> Any:
    session = botocore.session.get_session()
    client = session.create_client("dynamodb", region_name=REGION, endpoint_url=url,
                                   config=Config(retries={"mode": mode}, max_pool_connections=threads),
                                   **TEST_CREDENTIALS)
    client.meta.events.register("before-send.dynamodb", _tag_request)
    return client


def resilient_client(url: str, threads: int, policy: resilient_aws.Policy) -> Any:
    bc = botocore.session.get_session()
    bc.register("before-send.dynamodb", _tag_request)
    session = resilient_aws.Session(region_name=REGION, policy=policy, botocore_session=bc, **TEST_CREDENTIALS)
    return session.client("dynamodb", endpoint_url=url, config=Config(max_pool_connections=threads))


CLIENTS: dict[str, Callable[[str, int], Any]] = {
    "botocore legacy": lambda url, n: botocore_client("legacy", url, n),
    "botocore standard": lambda url, n: botocore_client("standard", url, n),
    "botocore adaptive": lambda url, n: botocore_client("adaptive", url, n),
    "resilient_aws": lambda url, n: resilient_client(url, n, resilient_aws.Policy(dns=NO_DNS)),
    "resilient_aws, breaker off": lambda url, n: resilient_client(url, n, resilient_aws.Policy(
        dns=NO_DNS, breaker=resilient_aws.BreakerPolicy(enabled=False))),
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


def run_one(name: str, failure: str, args: argparse.Namespace) -> Row:
    with LoopbackEndpoint("127.0.0.1") as ep:
        create_table(plain_client("dynamodb", REGION, ep.url), TABLE, items=[{"pk": {"S": "k"}}])
        client = CLIENTS[name](ep.url, args.threads)
        client.get_item(TableName=TABLE, Key=KEY)  # warm: client classes built, first connection made
        if failure == "503":
            ep.fail_with(503)
        else:
            ep.unreachable()
            CONNECTS.arm(ep.host, ep.port)
        ep.reset_counts()
        stop = threading.Event()
        healed_at: list[float] = []
        lock = threading.Lock()
        outage_calls: list[tuple[float, float, bool]] = []   # (start, end, ok) of calls started in the outage
        successes_after: list[float] = []
        inflight: dict[int, float] = {}
        t0 = time.monotonic()
        outage_end = t0 + args.outage

        def worker(index: int) -> None:
            rng = random.Random(index)
            interval = 1.0 / args.rate
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

        threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.threads)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, outage_end - time.monotonic()))
        healed_at.append(time.monotonic())
        ep.healthy()
        deadline = healed_at[0] + args.max_recovery
        while time.monotonic() < deadline:  # bounded: until outage calls are done and one success seen
            with lock:
                done = successes_after and not any(v < outage_end for v in list(inflight.values()))
            if done and time.monotonic() - healed_at[0] >= 1.0:
                break
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(2.0)
        CONNECTS.disarm()
        counts = ep.counts()
        by_tag, per_second = (counts.by_tag, counts.per_second) if failure == "503" else (
            dict(CONNECTS.by_tag), dict(CONNECTS.per_second))
        unfinished = sum(1 for v in list(inflight.values()) if v < outage_end)
        with lock:
            calls = list(outage_calls)
            first_ok = min(successes_after) if successes_after else None
        n = len(calls) + unfinished
        attempts = by_tag.get("outage", 0)
        outage_seconds = [s for s in per_second if s < args.outage]
        tail = [per_second.get(s, 0) for s in range(int(args.outage / 2), int(args.outage))]
        latencies = [end - start for start, end, _ in calls]
        return Row(
            client=name, failure=failure, threads=args.threads, offered_per_s=args.threads * args.rate,
            outage_s=args.outage, calls=n, unfinished=unfinished, attempts=attempts,
            attempts_per_call=round(attempts / n, 2) if n else None,
            peak_attempts_per_s=max((per_second[s] for s in outage_seconds), default=0),
            tail_attempts_per_s=round(statistics.fmean(tail), 1) if tail else 0.0,
            p50_ms=round(statistics.median(latencies) * 1000, 1) if latencies else None,
            recovery_s=round(first_ok - healed_at[0], 2) if first_ok is not None else None,
        )


def _fmt(v: Any, spec: str = "") -> str:
    return "-" if v is None else format(v, spec)


def markdown(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"Storm: {args.threads} threads sharing one client, {args.rate:g} calls/s each offered "
        f"({args.threads * args.rate:g}/s), outage {args.outage:g} s, then the endpoint heals. "
        "Attempts: 503 = HTTP requests counted by the server; refused = connection attempts to the dead "
        "address (socket.connect, seen by an audit hook).",
        "",
        "| failure | client | calls | attempts / call | peak attempts/s | attempts/s, 2nd half of outage "
        "| p50 call | recovery |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        unfinished = f" ({r.unfinished} unfinished)" if r.unfinished else ""
        lines.append(f"| {r.failure} | {r.client} | {r.calls}{unfinished} | {_fmt(r.attempts_per_call, '.2f')} "
                     f"| {r.peak_attempts_per_s} | {r.tail_attempts_per_s:g} | {_fmt(r.p50_ms, '.0f')} ms "
                     f"| {_fmt(r.recovery_s, '.2f')} s |")
    lines += ["", f"{platform.python_implementation()} {platform.python_version()}, botocore {botocore.__version__}, "
              f"resilient_aws {resilient_aws.__version__}, {os.cpu_count()} CPUs, "
              f"{datetime.date.today().isoformat()}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--rate", type=float, default=10.0, help="calls/s offered per thread (default 10)")
    parser.add_argument("--outage", type=float, default=15.0,
                        help="seconds the endpoint fails (default 15: long enough for legacy mode's 9th attempt)")
    parser.add_argument("--max-recovery", type=float, default=40.0,
                        help="longest wait after the heal (legacy mode sleeps up to 12.8 s per retry)")
    parser.add_argument("--quick", action="store_true", help="--outage 4 --threads 16")
    parser.add_argument("--only", choices=("503", "refused"), help="one failure kind only")
    parser.add_argument("--clients", nargs="+", choices=list(CLIENTS), default=list(CLIENTS), metavar="CLIENT")
    parser.add_argument("--markdown", metavar="PATH", help="also write the table to PATH")
    parser.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.outage, args.threads = 4.0, 16
    if not (1 <= args.threads <= 256 and 0 < args.rate <= 1000 and 1 <= args.outage <= 300):
        parser.error("--threads 1..256, --rate (0, 1000], --outage 1..300")
    rows = []
    for failure in ([args.only] if args.only else ["503", "refused"]):
        for name in args.clients:
            row = run_one(name, failure, args)
            rows.append(row)
            print(f"{failure:>7}  {name:<27} calls {row.calls:>5}  attempts/call {_fmt(row.attempts_per_call):>6}  "
                  f"peak {row.peak_attempts_per_s:>5}/s  tail {row.tail_attempts_per_s:>6}/s  "
                  f"recovery {_fmt(row.recovery_s)} s", flush=True)
    table = markdown(rows, args)
    print()
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([asdict(r) for r in rows], f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
