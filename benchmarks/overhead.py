"""What resilient_aws costs on the success path, measured side by side in one run.

Three comparisons, each in interleaved rounds (A, B, A, B...) so that machine noise hits both sides
alike; we report medians and ratios, never a single absolute time.

1. The wrapper alone: resilient_aws vs the very botocore client it wraps (retries off), with botocore
   stubbed *below* both (a ``creating-client-class`` handler replaces ``_make_api_call`` with a
   canned response), so botocore's own ~400 us is out of both sides.
2. End to end: a DynamoDB GetItem answered by an in-process canned HTTP response (a ``before-send``
   handler) for botocore's default client (standard mode, the retry behaviour botocore ships today),
   botocore in legacy mode (the default of 2025-10-20), a botocore client wrapped in tenacity +
   pybreaker, and resilient_aws, whose retry handler replaces standard mode's. The verdict line is the
   median of per-round ratios resilient_aws / default, from paired rounds.
3. The wrapper alone with 8 threads calling one client (no lock is held around the call).

Usage: python benchmarks/overhead.py [--rounds N] [--calls N] [--markdown PATH]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import threading
import time

import botocore
import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.config import Config

import resilient_aws

KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
CANNED = {"Item": {"pk": {"S": "1"}}, "ResponseMetadata": {"HTTPStatusCode": 200}}
BODY = b'{"Item": {"pk": {"S": "1"}}}'
NO_DNS = resilient_aws.Policy(dns=resilient_aws.DnsPolicy(enabled=False))
CREDS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}


def stubbed_below_session() -> botocore.session.Session:
    """A botocore session whose dynamodb clients answer every call from memory, below the client."""
    session = botocore.session.get_session()

    def install(class_attributes, **kwargs):
        class_attributes["_make_api_call"] = lambda self, operation_name, api_params: CANNED

    session.register("creating-client-class.dynamodb", install)
    return session


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs):
        yield self._body


def canned_http(client) -> None:
    """Answer every request of ``client`` with an in-process HTTP 200, after signing and before
    the socket: botocore serialises, signs and parses as usual."""

    def before_send(request, **kwargs):
        return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.0",
                                              "x-amzn-requestid": "bench"}, _Raw(BODY))

    client.meta.events.register("before-send.dynamodb", before_send)


def per_call_us(fn, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn(**KEY)
    return (time.perf_counter() - t0) / calls * 1e6


def interleaved(fns: dict, rounds: int, calls: int) -> dict[str, list[float]]:
    samples = {name: [] for name in fns}
    names = list(fns)
    for fn in fns.values():  # warm-up: wrappers built, caches filled
        per_call_us(fn, min(calls, 200))
    for r in range(rounds):
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            samples[name].append(per_call_us(fns[name], calls))
    return samples


def threaded_per_call_us(fn, threads: int, calls: int) -> float:
    barrier = threading.Barrier(threads + 1)

    def worker():
        barrier.wait()
        for _ in range(calls):
            fn(**KEY)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return (time.perf_counter() - t0) / (threads * calls) * 1e6


def tenacity_pybreaker(client):
    import pybreaker
    import tenacity

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3),
                                 wait=tenacity.wait_random_exponential(multiplier=0.05, max=2), reraise=True)

    def get_item(**kwargs):
        return retrying(breaker.call, client.get_item, **kwargs)

    return get_item


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, botocore {botocore.__version__}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=20000, help="calls per round, wrapper benchmark")
    parser.add_argument("--http-calls", type=int, default=1000, help="calls per round, end-to-end benchmark")
    parser.add_argument("--markdown", help="write the tables to this file")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1 or args.http_calls < 1:
        parser.error("--rounds, --calls and --http-calls must be >= 1")

    # 1. the wrapper alone
    session = stubbed_below_session()
    bare = session.create_client("dynamodb", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}),
                                 **CREDS)
    resilient = resilient_aws.Session(botocore_session=stubbed_below_session(), region_name="us-east-1",
                                      failover_regions=["us-west-2"], policy=NO_DNS).client("dynamodb")
    assert resilient.get_item(**KEY) == bare.get_item(**KEY) == CANNED
    w = interleaved({"botocore client (stubbed below)": bare.get_item,
                     "resilient_aws around it": resilient.get_item}, args.rounds, args.calls)
    w_bare = statistics.median(w["botocore client (stubbed below)"])
    w_res = statistics.median(w["resilient_aws around it"])
    paired = [b - a for a, b in zip(w["botocore client (stubbed below)"], w["resilient_aws around it"], strict=True)]
    added = statistics.median(paired)

    # 3. the same with 8 threads
    t_bare = statistics.median(threaded_per_call_us(bare.get_item, 8, args.calls // 8) for _ in range(5))
    t_res = statistics.median(threaded_per_call_us(resilient.get_item, 8, args.calls // 8) for _ in range(5))

    # 2. end to end with a canned HTTP response
    plain = botocore.session.get_session()
    default = plain.create_client("dynamodb", region_name="us-east-1", **CREDS)  # standard mode today
    default_mode = default.meta.config.retries.get("mode") or "standard"
    canned_http(default)
    legacy = plain.create_client("dynamodb", region_name="us-east-1", config=Config(retries={"mode": "legacy"}),
                                 **CREDS)
    canned_http(legacy)
    guarded_inner = plain.create_client("dynamodb", region_name="us-east-1", **CREDS)
    canned_http(guarded_inner)
    guarded = tenacity_pybreaker(guarded_inner)
    rsession = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=NO_DNS, **CREDS)
    rclient = rsession.client("dynamodb")
    canned_http(rclient.meta and rclient._lanes[0].client())
    for fn in (default.get_item, legacy.get_item, guarded, rclient.get_item):
        assert fn(**KEY)["Item"] == {"pk": {"S": "1"}}
    default_name = f"botocore default ({default_mode} mode)"
    e = interleaved({default_name: default.get_item,
                     "botocore legacy mode": legacy.get_item,
                     "botocore + tenacity + pybreaker": guarded,
                     "resilient_aws": rclient.get_item}, args.rounds, args.http_calls)
    e_med = {k: statistics.median(v) for k, v in e.items()}
    base = e_med[default_name]
    e_ratio = statistics.median(r / d for r, d in zip(e["resilient_aws"], e[default_name], strict=True))

    date = datetime.date.today().isoformat()
    lines = [
        f"Measured {date} on {machine()}.",
        f"Interleaved rounds: {args.rounds}; medians of per-round means. Quote ratios, not absolute times: "
        "these machines are shared and noisy.",
        "",
        "### 1. The wrapper alone (botocore stubbed below both sides)",
        "",
        "| client | median per call | ratio to bare |",
        "| --- | ---: | ---: |",
        f"| botocore client, retries off | {w_bare:.2f} µs | 1.00 |",
        f"| resilient_aws around it | {w_res:.2f} µs | {w_res / w_bare:.2f} |",
        "",
        f"Added by resilient_aws per successful call: **{added:.2f} µs** (median of paired round differences; "
        "target ≤ 1 µs).",
        "",
        "### 2. End to end: DynamoDB GetItem, in-process canned HTTP response",
        "",
        "| client | median per call | added vs default botocore |",
        "| --- | ---: | ---: |",
    ]
    for name, value in e_med.items():
        lines.append(f"| {name} | {value:.1f} µs | {value - base:+.1f} µs |")
    guard_added = e_med["botocore + tenacity + pybreaker"] - base
    lines += [
        "",
        f"resilient_aws / botocore default, median of paired rounds: **{e_ratio:.3f}** (target ≤ 1.01: "
        f"its retry handler replaces the default's rather than adding to it); tenacity + pybreaker add "
        f"{guard_added:.1f} µs.",
        "",
        "### 3. The wrapper alone, 8 threads calling one client",
        "",
        "| client | per call (wall / calls) | ratio |",
        "| --- | ---: | ---: |",
        f"| botocore client, retries off | {t_bare:.2f} µs | 1.00 |",
        f"| resilient_aws around it | {t_res:.2f} µs | {t_res / t_bare:.2f} |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("# Benchmark results\n\n`python benchmarks/overhead.py` (make bench)\n\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
