"""What resilient_aws costs on the success path, measured side by side in one run.

Why: a resilience wrapper is on every call, including the billions that succeed; its cost there must be
small next to botocore's own and must be measured on the user's machine against the user's botocore,
since both change. Three comparisons, each in interleaved rounds (:mod:`~resilient_aws.bench.timing`)
so that machine noise hits both sides alike; the tables give medians and ratios, never one absolute time.

1. The wrapper alone: resilient_aws vs the very botocore client it wraps (retries off), with botocore
   stubbed *below* both (a ``creating-client-class`` handler replaces ``_make_api_call`` with a
   canned response), so botocore's own ~400 us is out of both sides; and the same client with shared
   state attached (an in-memory store that counts its commands: the success path must send none).
2. End to end: a DynamoDB GetItem answered by an in-process canned HTTP response (a ``before-send``
   handler) for botocore's default client (standard mode, the retry behaviour botocore ships today),
   botocore in legacy mode (the default of 2025-10-20), a botocore client wrapped in tenacity +
   pybreaker (only when pybreaker is installed: the ``bench`` extra), and resilient_aws, whose retry
   handler replaces standard mode's. The verdict line is the median of per-round ratios
   resilient_aws / default, from paired rounds.
3. The wrapper alone with 8 threads calling one client (no lock is held around the call).

No socket is opened: every response is made in this process.
"""

from __future__ import annotations

import datetime
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .extras import BENCH_INSTALL, installed
from .machine import describe
from .timing import Progress, interleaved

KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
CANNED = {"Item": {"pk": {"S": "1"}}, "ResponseMetadata": {"HTTPStatusCode": 200}}
BODY = b'{"Item": {"pk": {"S": "1"}}}'
CREDS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench"}
THREADS = 8
THREAD_ROUNDS = 5
GUARDED = "botocore + tenacity + pybreaker"
BARE = "botocore client (stubbed below)"
WRAPPED = "resilient_aws around it"
SHARED = "resilient_aws with shared state"


@dataclass(frozen=True)
class Settings:
    """How many rounds and calls; the defaults take about 20 s on a 2-core machine."""

    rounds: int = 21
    calls: int = 20_000       # calls per round, wrapper benchmark (and 8-thread benchmark, split over the threads)
    http_calls: int = 1_000   # calls per round, end-to-end benchmark


#: ``--quick``: a smoke run of a few seconds, not for the record.
QUICK = Settings(rounds=5, calls=2_000, http_calls=100)


def _no_dns_policy() -> Any:
    import resilient_aws

    return resilient_aws.Policy(dns=resilient_aws.DnsPolicy(enabled=False))


def stubbed_below_session() -> Any:
    """A botocore session whose dynamodb clients answer every call from memory, below the client."""
    import botocore.session

    session = botocore.session.get_session()

    def install(class_attributes: dict[str, Any], **kwargs: Any) -> None:
        class_attributes["_make_api_call"] = lambda self, operation_name, api_params: CANNED

    session.register("creating-client-class.dynamodb", install)
    return session


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any) -> Any:
        yield self._body


def canned_http(client: Any) -> None:
    """Answer every request of ``client`` with an in-process HTTP 200, after signing and before
    the socket: botocore serialises, signs and parses as usual."""
    from botocore.awsrequest import AWSResponse

    def before_send(request: Any, **kwargs: Any) -> Any:
        return AWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.0",
                                              "x-amzn-requestid": "bench"}, _Raw(BODY))

    client.meta.events.register("before-send.dynamodb", before_send)


def threaded_per_call_us(fn: Callable[..., Any], threads: int, calls: int) -> float:
    """Wall time per call while ``threads`` threads each make ``calls`` calls of ``fn`` at once."""
    barrier = threading.Barrier(threads + 1)

    def worker() -> None:
        barrier.wait()
        for _ in range(calls):
            fn(**KEY)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in pool:
        t.join()
    return (time.perf_counter() - t0) / (threads * calls) * 1e6


def tenacity_pybreaker(client: Any) -> Callable[..., Any]:
    """``client.get_item`` behind tenacity's retries and a pybreaker circuit breaker: the usual DIY guard."""
    import pybreaker
    import tenacity

    breaker = pybreaker.CircuitBreaker(fail_max=5, reset_timeout=30)
    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(3),
                                 wait=tenacity.wait_random_exponential(multiplier=0.05, max=2), reraise=True)

    def get_item(**kwargs: Any) -> Any:
        return retrying(breaker.call, client.get_item, **kwargs)

    return get_item


def run(settings: Settings, progress: Progress | None = None) -> str:
    """Run the three comparisons; returns their tables (Markdown), which take a few seconds to 30 s."""
    import botocore.session
    from botocore.config import Config

    import resilient_aws

    progress = progress or Progress("overhead")
    no_dns = _no_dns_policy()
    with_pybreaker = installed("pybreaker")

    # 1. the wrapper alone
    session = stubbed_below_session()
    bare = session.create_client("dynamodb", region_name="us-east-1", config=Config(retries={"total_max_attempts": 1}),
                                 **CREDS)
    resilient = resilient_aws.Session(botocore_session=stubbed_below_session(), region_name="us-east-1",
                                      failover_regions=["us-west-2"], policy=no_dns).client("dynamodb")
    from resilient_aws.fleet import MemoryStore, SharedState

    store = MemoryStore(time.monotonic)
    fleet_client = resilient_aws.Session(botocore_session=stubbed_below_session(), region_name="us-east-1",
                                         failover_regions=["us-west-2"], policy=no_dns,
                                         shared_state=SharedState(store)).client("dynamodb")
    if not resilient.get_item(**KEY) == bare.get_item(**KEY) == fleet_client.get_item(**KEY) == CANNED:
        raise RuntimeError("the stubbed clients did not return the canned response")
    commands_before = store.commands
    w = interleaved({BARE: bare.get_item, WRAPPED: resilient.get_item, SHARED: fleet_client.get_item},
                    settings.rounds, settings.calls, KEY, progress, "wrapper")
    store_commands = store.commands - commands_before
    w_bare = statistics.median(w[BARE])
    w_res = statistics.median(w[WRAPPED])
    w_shared = statistics.median(w[SHARED])
    added = statistics.median(b - a for a, b in zip(w[BARE], w[WRAPPED], strict=True))
    added_shared = statistics.median(b - a for a, b in zip(w[BARE], w[SHARED], strict=True))

    # 3. the same with 8 threads, interleaved too
    per_thread = max(1, settings.calls // THREADS)
    threaded: dict[str, list[float]] = {BARE: [], WRAPPED: []}
    for r in range(THREAD_ROUNDS):
        for name, fn in ((BARE, bare.get_item), (WRAPPED, resilient.get_item))[:: 1 if r % 2 == 0 else -1]:
            threaded[name].append(threaded_per_call_us(fn, THREADS, per_thread))
        progress.round(f"{THREADS} threads", r + 1, THREAD_ROUNDS, {n: v[-1] for n, v in threaded.items()})
    t_bare = statistics.median(threaded[BARE])
    t_res = statistics.median(threaded[WRAPPED])

    # 2. end to end with a canned HTTP response
    plain = botocore.session.get_session()
    default = plain.create_client("dynamodb", region_name="us-east-1", **CREDS)  # standard mode today
    default_mode = default.meta.config.retries.get("mode") or "standard"
    canned_http(default)
    legacy = plain.create_client("dynamodb", region_name="us-east-1", config=Config(retries={"mode": "legacy"}),
                                 **CREDS)
    canned_http(legacy)
    rclient = resilient_aws.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=no_dns,
                                    **CREDS).client("dynamodb")
    canned_http(rclient._lanes[0].client())  # the primary region's botocore client, under the wrapper
    default_name = f"botocore default ({default_mode} mode)"
    fns: dict[str, Callable[..., Any]] = {default_name: default.get_item, "botocore legacy mode": legacy.get_item}
    if with_pybreaker:
        guarded_inner = plain.create_client("dynamodb", region_name="us-east-1", **CREDS)
        canned_http(guarded_inner)
        fns[GUARDED] = tenacity_pybreaker(guarded_inner)
    fns["resilient_aws"] = rclient.get_item
    for fn in fns.values():
        if fn(**KEY)["Item"] != {"pk": {"S": "1"}}:
            raise RuntimeError("a canned-HTTP client did not return the canned item")
    e = interleaved(fns, settings.rounds, settings.http_calls, KEY, progress, "end-to-end")
    e_med = {k: statistics.median(v) for k, v in e.items()}
    base = e_med[default_name]
    e_ratio = statistics.median(r / d for r, d in zip(e["resilient_aws"], e[default_name], strict=True))

    date = datetime.date.today().isoformat()
    lines = [
        f"Measured {date} on {describe()}.",
        f"Interleaved rounds: {settings.rounds}; medians of per-round means. Quote ratios, not absolute times: "
        "these machines are shared and noisy.",
        "",
        "### 1. The wrapper alone (botocore stubbed below both sides)",
        "",
        "| client | median per call | ratio to bare |",
        "| --- | ---: | ---: |",
        f"| botocore client, retries off | {w_bare:.2f} µs | 1.00 |",
        f"| resilient_aws around it | {w_res:.2f} µs | {w_res / w_bare:.2f} |",
        f"| {SHARED} | {w_shared:.2f} µs | {w_shared / w_bare:.2f} |",
        "",
        f"Added by resilient_aws per successful call: **{added:.2f} µs** (median of paired round differences; "
        f"target ≤ 1 µs); with shared state attached: **{added_shared:.2f} µs**, and "
        f"{store_commands} store commands in {settings.rounds * settings.calls:,} successful calls.",
        "",
        "### 2. End to end: DynamoDB GetItem, in-process canned HTTP response",
        "",
        "| client | median per call | added vs default botocore |",
        "| --- | ---: | ---: |",
    ]
    for name, value in e_med.items():
        lines.append(f"| {name} | {value:.1f} µs | {value - base:+.1f} µs |")
    verdict = (f"resilient_aws / botocore default, median of paired rounds: **{e_ratio:.3f}** (target ≤ 1.01: "
               f"its retry handler replaces the default's rather than adding to it)")
    if with_pybreaker:
        verdict += f"; tenacity + pybreaker add {e_med[GUARDED] - base:.1f} µs."
    else:
        verdict += (f".\n\nNo \"{GUARDED}\" row: pybreaker is not installed; "
                    f"`{BENCH_INSTALL}` adds that comparison.")
    lines += [
        "",
        verdict,
        "",
        f"### 3. The wrapper alone, {THREADS} threads calling one client",
        "",
        "| client | per call (wall / calls) | ratio |",
        "| --- | ---: | ---: |",
        f"| botocore client, retries off | {t_bare:.2f} µs | 1.00 |",
        f"| resilient_aws around it | {t_res:.2f} µs | {t_res / t_bare:.2f} |",
        "",
    ]
    return "\n".join(lines)
