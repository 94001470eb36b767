"""What resilient_aws.aio costs on the success path, measured side by side in one run.

Why apart from ``overhead``: the asyncio client runs on aiobotocore, which pins its own botocore, so it
is measured in an environment that has aiobotocore (``make test`` makes ``.venv-aio``), against that
environment's plain aiobotocore. Two comparisons, in interleaved rounds (A, B, B, A...), medians and
ratios only:

1. The wrapper alone: ``AioResilientClient`` vs the very aiobotocore client it wraps, with aiobotocore
   stubbed *below* both (a ``creating-client-class`` handler replaces ``_make_api_call`` with a
   coroutine returning a canned response), so the difference is what the asyncio hot path adds to one
   awaited call.
2. End to end: a DynamoDB GetItem answered by an in-process canned HTTP response (a ``before-send``
   handler) for plain aiobotocore (its default retry handler) and for resilient_aws.aio, whose handler
   replaces it.

Every round awaits its calls one after another in one event loop; no socket is opened.
"""

from __future__ import annotations

import asyncio
import datetime
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .machine import describe
from .overhead import BODY, CANNED, KEY, _no_dns_policy
from .overhead import CREDS as _CREDS
from .timing import Progress

BARE = "aiobotocore client (stubbed below)"
WRAPPED = "resilient_aws.aio around it"
PLAIN = "aiobotocore (its default retries)"
RESILIENT = "resilient_aws.aio"


@dataclass(frozen=True)
class Settings:
    rounds: int = 21
    calls: int = 20_000       # awaited calls per round, wrapper benchmark
    http_calls: int = 1_000   # awaited calls per round, end to end


QUICK = Settings(rounds=5, calls=2_000, http_calls=100)
CREDS: dict[str, Any] = dict(_CREDS)


async def per_call_us(fn: Callable[..., Awaitable[Any]], calls: int, kwargs: Mapping[str, Any]) -> float:
    """Mean microseconds per awaited call of ``fn(**kwargs)``, ``calls`` in a row."""
    t0 = time.perf_counter()
    for _ in range(calls):
        await fn(**kwargs)
    return (time.perf_counter() - t0) / calls * 1e6


async def interleaved(fns: Mapping[str, Callable[..., Awaitable[Any]]], rounds: int, calls: int,
                      progress: Progress, phase: str) -> dict[str, list[float]]:
    """``bench.timing.interleaved`` for coroutine functions: a warm-up, then alternating rounds."""
    samples: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for fn in fns.values():
        await per_call_us(fn, min(calls, 200), KEY)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            samples[name].append(await per_call_us(fns[name], calls, KEY))
        progress.round(phase, r + 1, rounds, {name: samples[name][-1] for name in names})
    return samples


def _stubbed_below() -> Any:
    """An AioSession whose dynamodb clients answer every call from memory, below the client."""
    from aiobotocore.session import get_session

    session = get_session()

    async def canned(self: Any, operation_name: str, api_params: Any) -> Any:
        return CANNED

    def install(class_attributes: dict[str, Any], **kwargs: Any) -> None:
        class_attributes["_make_api_call"] = canned

    session.register("creating-client-class.dynamodb", install)
    return session


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self, *args: Any, **kwargs: Any) -> bytes:
        return self._body


def canned_http(client: Any) -> None:
    """Answer every request of ``client`` with an in-process HTTP 200, after signing and before the
    socket: aiobotocore serialises, signs and parses as usual."""
    from aiobotocore.awsrequest import AioAWSResponse

    def before_send(request: Any, **kwargs: Any) -> Any:
        return AioAWSResponse(request.url, 200, {"content-type": "application/x-amz-json-1.0",
                                                 "x-amzn-requestid": "bench"}, _Raw(BODY))

    client.meta.events.register("before-send.dynamodb", before_send)


async def _measure(settings: Settings, progress: Progress) -> dict[str, dict[str, list[float]]]:
    from aiobotocore.config import AioConfig

    from .. import aio

    no_dns = _no_dns_policy()
    one_attempt = AioConfig(retries={"total_max_attempts": 1})
    async with _stubbed_below().create_client("dynamodb", region_name="us-east-1", config=one_attempt,
                                              **CREDS) as bare, \
            aio.Session(aio_session=_stubbed_below(), region_name="us-east-1", failover_regions=["us-west-2"],
                        policy=no_dns).create_client("dynamodb") as wrapped:
        if not await bare.get_item(**KEY) == await wrapped.get_item(**KEY) == CANNED:
            raise RuntimeError("the stubbed clients did not return the canned response")
        w = await interleaved({BARE: bare.get_item, WRAPPED: wrapped.get_item}, settings.rounds, settings.calls,
                              progress, "wrapper")
    from aiobotocore.session import get_session

    async with get_session().create_client("dynamodb", region_name="us-east-1", **CREDS) as plain, \
            aio.Session(region_name="us-east-1", failover_regions=["us-west-2"], policy=no_dns).create_client(
                "dynamodb", **CREDS) as resilient:
        canned_http(plain)
        canned_http(resilient._lanes[0].client())  # the primary region's aiobotocore client, under the wrapper
        for fn in (plain.get_item, resilient.get_item):
            if (await fn(**KEY))["Item"] != {"pk": {"S": "1"}}:
                raise RuntimeError("a canned-HTTP client did not return the canned item")
        e = await interleaved({PLAIN: plain.get_item, RESILIENT: resilient.get_item}, settings.rounds,
                              settings.http_calls, progress, "end-to-end")
    return {"wrapper": w, "end_to_end": e}


def run(settings: Settings, progress: Progress | None = None) -> str:
    """Run both comparisons in a new event loop; returns their tables (Markdown)."""
    import aiobotocore

    progress = progress or Progress("aio")
    m = asyncio.run(_measure(settings, progress))
    w, e = m["wrapper"], m["end_to_end"]
    w_bare, w_res = statistics.median(w[BARE]), statistics.median(w[WRAPPED])
    added = statistics.median(b - a for a, b in zip(w[BARE], w[WRAPPED], strict=True))
    e_plain, e_res = statistics.median(e[PLAIN]), statistics.median(e[RESILIENT])
    e_ratio = statistics.median(r / p for r, p in zip(e[RESILIENT], e[PLAIN], strict=True))
    date = datetime.date.today().isoformat()
    return "\n".join([
        f"Measured {date} on {describe()}, aiobotocore {aiobotocore.__version__}.",
        f"Interleaved rounds: {settings.rounds}; medians of per-round means, each call awaited in one event loop. "
        "Quote ratios, not absolute times.",
        "",
        "### The asyncio wrapper alone (aiobotocore stubbed below both sides)",
        "",
        "| client | median per awaited call | ratio to bare |",
        "| --- | ---: | ---: |",
        f"| {BARE} | {w_bare:.2f} µs | 1.00 |",
        f"| {WRAPPED} | {w_res:.2f} µs | {w_res / w_bare:.2f} |",
        "",
        f"Added by resilient_aws.aio per successful call: **{added:.2f} µs** (median of paired round differences; "
        "target ≤ 2 µs).",
        "",
        "### End to end: DynamoDB GetItem, in-process canned HTTP response",
        "",
        "| client | median per awaited call | added vs plain aiobotocore |",
        "| --- | ---: | ---: |",
        f"| {PLAIN} | {e_plain:.1f} µs | +0.0 µs |",
        f"| {RESILIENT} | {e_res:.1f} µs | {e_res - e_plain:+.1f} µs |",
        "",
        f"resilient_aws.aio / plain aiobotocore, median of paired rounds: **{e_ratio:.3f}** (its retry handler "
        "replaces aiobotocore's rather than adding to it).",
        "",
    ])
