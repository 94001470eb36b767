"""Real botocore clients whose HTTP layer is a script, for fast unit tests of retries and failover.

Each region's botocore client answers from a per-region script through a ``before-send`` handler:
everything above the socket is botocore's own (parameter building, idempotency tokens, signing, the
endpoint loop that makes retries, parsing), so what these tests show is what botocore really does with
resilient_aws's decisions. No socket is opened; the claims in the README are proven against real
servers in tests/integration.

A script entry is one attempt's outcome: an ``int`` HTTP status (an AWS error response), a
``(status, code)`` pair, an exception to raise (``refused()``), a dict (a 200 JSON body), or a callable
taking the request and returning one of those. When the script is empty the region answers 200 with
``{"Item": {"region": {"S": <region>}}}``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from typing import Any

import botocore.session
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError

import resilient_aws

CODES = {400: "ValidationException", 500: "InternalServerError", 503: "ServiceUnavailable",
         501: "NotImplemented"}


def refused() -> EndpointConnectionError:
    return EndpointConnectionError(endpoint_url="http://127.0.0.1:9")


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs: Any):
        yield self._body


def response(status: int, body: dict, headers: dict | None = None) -> AWSResponse:
    data = json.dumps(body).encode()
    return AWSResponse("http://127.0.0.1:9/", status,
                       {"content-type": "application/x-amz-json-1.0", "x-amzn-requestid": "fake", **(headers or {})},
                       _Raw(data))


def error(status: int, code: str | None = None, headers: dict | None = None) -> AWSResponse:
    code = code or CODES.get(status, "ServiceUnavailable")
    return response(status, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code}, headers)


@dataclass
class Sent:
    """One request as it left botocore."""

    operation: str
    headers: dict[str, str]
    body: dict

    @property
    def attempt(self) -> str:
        return self.headers.get("amz-sdk-request", "")


@dataclass
class Region:
    name: str
    script: list = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def calls(self) -> list[str]:
        return [s.operation for s in self.sent]

    def before_send(self, request: Any, **kwargs: Any) -> AWSResponse:
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        body = request.body
        body = body.decode() if isinstance(body, bytes) else (body or "")
        headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()}
        sent = Sent(target.rsplit(".", 1)[-1], headers, json.loads(body) if body else {})
        with self.lock:
            self.sent.append(sent)
            outcome = self.script.pop(0) if self.script else None
        if callable(outcome) and not isinstance(outcome, type):
            outcome = outcome(sent)
        if outcome is None:
            return response(200, {"Item": {"region": {"S": self.name}}})
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, int):
            return error(outcome)
        if isinstance(outcome, tuple):
            return error(*outcome)
        if isinstance(outcome, AWSResponse):
            return outcome
        return response(200, outcome)


class FakeClock:
    """An injected clock: ``sleep`` advances it and records how long was slept."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def timing(self, random: Any = None) -> resilient_aws.Timing:
        return resilient_aws.Timing(monotonic=self.monotonic, sleep=self.sleep,
                                    random=random or (lambda: 0.5))


_LOADER: Any = None


def _botocore_session() -> botocore.session.Session:
    """A fresh botocore session (its own events and credentials) sharing one data loader, so the
    service models are parsed once per test run rather than once per test."""
    global _LOADER
    session = botocore.session.Session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    return session


def make_client(policy: resilient_aws.Policy | None = None, scripts: dict | None = None,
                regions: tuple[str, ...] = ("us-east-1", "us-west-2"), *, clock: FakeClock | None = None,
                service: str = "dynamodb") -> tuple[Any, dict[str, Region]]:
    """A resilient client over scripted regions; returns it and the regions by name."""
    policy = policy or resilient_aws.Policy()
    if policy.dns.enabled:
        policy = resilient_aws.Policy(retry=policy.retry, budget=policy.budget, breaker=policy.breaker,
                                      failover=policy.failover, dns=resilient_aws.DnsPolicy(enabled=False))
    clock = clock or FakeClock()
    session = resilient_aws.Session(region_name=regions[0], failover_regions=list(regions[1:]), policy=policy,
                                    botocore_session=_botocore_session(), aws_access_key_id="testing",
                                    aws_secret_access_key="testing", timing=clock.timing())
    urls = {r: f"http://127.0.0.{i + 1}:9" for i, r in enumerate(regions)}
    client = session.client(service, endpoint_urls=urls)
    fakes = {r: Region(r, list((scripts or {}).get(r, ()))) for r in regions}
    for lane in client._lanes:
        lane.client().meta.events.register(f"before-send.{service}", fakes[lane.region].before_send)
    return client, fakes


KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
ITEM = {"TableName": "t", "Item": {"pk": {"S": "1"}}}
