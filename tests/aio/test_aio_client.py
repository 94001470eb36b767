"""The asyncio client, unit-level: arguments, wrap(), per-task state, cancellation, pages, waiters, events.

Each region's aiobotocore client answers from a script through an ``async`` ``before-send`` handler
(:class:`Wire`): everything above the socket is aiobotocore's own (parameter building, signing, the
endpoint loop that makes in-region retries, parsing), and no socket is opened. Backoffs are slept by
an injected ``Timing.asleep`` that advances a fake clock: nothing here sleeps for real. The same
behaviours against real servers are in ``test_aio_concurrency_live.py``.

A script entry is one attempt's outcome: an ``int`` HTTP status (an AWS error response), a
``(status, code)`` pair, an exception to raise, a dict (a 200 JSON body), or a callable taking the
request (:class:`Sent`) and returning one of those, possibly after awaiting (a request "in flight").
Scripts may be kept per item key (``Key.pk.S``), so that concurrent tasks each get their own answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import botocore.session
import pytest
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from aiobotocore.stub import AioStubber
from botocore.config import Config
from botocore.exceptions import ClientError, EndpointConnectionError
from support.fakes import FakeClock as SyncClock
from support.fakes import make_client as make_sync_client

import resilient_aws
from resilient_aws import (
    BreakerPolicy,
    BudgetPolicy,
    CircuitOpenError,
    ConfigError,
    DnsPolicy,
    FailoverPolicy,
    Policy,
    RetryPolicy,
    Timing,
    aio,
)

pytestmark = pytest.mark.asyncio

EAST, WEST = "us-east-1", "us-west-2"
HOSTS = {EAST: "127.0.0.1", WEST: "127.0.0.2"}
URLS = {region: f"http://{host}:9" for region, host in HOSTS.items()}
CREDS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
NO_DNS = DnsPolicy(enabled=False)
KEY = {"TableName": "t", "Key": {"pk": {"S": "1"}}}
RETRY = RetryPolicy(base_delay=0.05, max_delay=0.05, jitter="none")  # a backoff of exactly 0.05 s
POLICY = Policy(retry=RETRY, dns=NO_DNS)
CODES = {400: "ValidationException", 500: "InternalServerError", 503: "ServiceUnavailable"}
WAIT = 10.0  # the bound of every wait on a task: a hang fails the test


def key(name: str) -> dict[str, Any]:
    return {"TableName": "t", "Key": {"pk": {"S": name}}}


# -- the scripted wire -------------------------------------------------------------------------------
class _Body:
    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read(self) -> bytes:
        return self._data


def response(status: int, body: dict[str, Any]) -> AioAWSResponse:
    return AioAWSResponse("http://127.0.0.1:9/", status, {"content-type": "application/x-amz-json-1.0",
                                                          "x-amzn-requestid": "scripted"},
                          _Body(json.dumps(body).encode()))


def error(status: int, code: str | None = None) -> AioAWSResponse:
    code = code or CODES.get(status, "ServiceUnavailable")
    return response(status, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": code})


@dataclass
class Sent:
    """One request as it left aiobotocore."""

    region: str
    operation: str
    body: dict[str, Any]

    @property
    def key(self) -> str | None:
        return self.body.get("Key", {}).get("pk", {}).get("S")


@dataclass
class Region:
    name: str
    script: list[Any] = field(default_factory=list)
    by_key: dict[str, list[Any]] = field(default_factory=dict)
    sent: list[Sent] = field(default_factory=list)

    def next_outcome(self, sent: Sent) -> Any:
        script = self.by_key.get(sent.key, self.script) if sent.key is not None else self.script
        return script.pop(0) if script else None


class Wire:
    """The ``before-send`` handler of every region: answers each request from its region's script."""

    def __init__(self, regions: dict[str, Region]) -> None:
        self.regions = regions
        self._by_host = {HOSTS[name]: region for name, region in regions.items()}

    async def __call__(self, request: Any, **kwargs: Any) -> AioAWSResponse:
        region = self._by_host[urlsplit(request.url).hostname]
        target = request.headers.get("X-Amz-Target", b"")
        target = target.decode() if isinstance(target, bytes) else target
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        sent = Sent(region.name, target.rsplit(".", 1)[-1], json.loads(body) if body else {})
        region.sent.append(sent)
        outcome = region.next_outcome(sent)
        if callable(outcome):
            outcome = outcome(sent)
            if asyncio.iscoroutine(outcome):
                outcome = await outcome
        await asyncio.sleep(0)  # every answer lets the other tasks run
        if outcome is None:
            return response(200, {"Item": {"region": {"S": region.name}}})
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, int):
            return error(outcome)
        if isinstance(outcome, tuple):
            return error(*outcome)
        return response(200, outcome)


def held(gate: asyncio.Event, then: Any = None, *, arrived: asyncio.Event | None = None) -> Callable[[Sent], Any]:
    """An outcome that stays in flight until ``gate`` is set (``arrived`` is set when it starts), then
    answers ``then``."""
    async def outcome(sent: Sent) -> Any:
        if arrived is not None:
            arrived.set()
        await gate.wait()
        return then
    return outcome


class Clock:
    """An injected clock: ``asleep`` advances it (after letting other tasks run) and records the delay.
    ``park()`` makes the next backoff wait until its task is cancelled (``parked`` is set then)."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.parked = asyncio.Event()
        self._park = False

    def monotonic(self) -> float:
        return self.now

    async def asleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self._park:
            self._park = False
            self.parked.set()
            await asyncio.Event().wait()  # only a cancel ends this sleep
        await asyncio.sleep(0)
        self.now += seconds

    def park(self) -> None:
        self._park = True

    def timing(self) -> Timing:
        return Timing(monotonic=self.monotonic, asleep=self.asleep, random=lambda: 0.5)


_LOADER: Any = None


def _aio_session() -> AioSession:
    """A fresh AioSession sharing one data loader: the service models are parsed once per run."""
    global _LOADER
    session = AioSession()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    return session


def _session(policy: Policy = POLICY, *, regions: tuple[str, ...] = (EAST, WEST), clock: Clock | None = None,
             **kwargs: Any) -> aio.Session:
    return aio.Session(region_name=regions[0], failover_regions=list(regions[1:]), policy=policy,
                       aio_session=_aio_session(), timing=(clock or Clock()).timing(), **CREDS, **kwargs)


@contextlib.asynccontextmanager
async def scripted(policy: Policy = POLICY, scripts: dict[str, list[Any]] | None = None, *,
                   regions: tuple[str, ...] = (EAST, WEST), clock: Clock | None = None,
                   by_key: dict[str, dict[str, list[Any]]] | None = None):
    """An entered resilient client over scripted regions; yields it and the regions by name."""
    session = _session(policy, regions=regions, clock=clock)
    fakes = {r: Region(r, list((scripts or {}).get(r, ())), dict((by_key or {}).get(r, {}))) for r in regions}
    async with session.create_client("dynamodb", endpoint_urls={r: URLS[r] for r in regions}) as client:
        client.meta.events.register("before-send.dynamodb", Wire(fakes))  # fanned out to every region
        yield client, fakes


async def _raw_client(region: str = EAST, url: str = URLS[EAST], **config: Any) -> Any:
    """An entered plain aiobotocore client (the caller exits it)."""
    context = _aio_session().create_client("dynamodb", region_name=region, endpoint_url=url,
                                           config=AioConfig(**config), **CREDS)
    client = await context.__aenter__()
    client._test_context = context
    return client


async def _close_raw(client: Any) -> None:
    await client._test_context.__aexit__(None, None, None)


def _delta(after: dict[str, Any], before: dict[str, Any], *names: str) -> dict[str, int]:
    return {n: after[n] - before[n] for n in names}


async def _cancelled(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)


def _in_daemon_thread(fn: Callable[[], Any], timeout: float = WAIT) -> Any:
    """``fn()`` in a daemon thread, joined with a bound: a lock held by a paused task would make it
    block forever, which must fail the test, not hang it (nor the interpreter's exit)."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"{fn!r} blocked: a lock is held while a task awaits"
    return result[0]


# -- arguments: ConfigError naming the field, at create_client() ------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"region_name": EAST, "failover_regions": [EAST]}, "failover_regions"),
        ({"region_name": EAST, "failover_regions": [WEST, WEST]}, "failover_regions"),
        ({"region_name": EAST, "failover_regions": WEST}, "failover_regions"),
        ({"region_name": "us east 1"}, "region_name"),
        ({"region_name": EAST, "policy": {"retry": 3}}, "policy"),
        ({"region_name": EAST, "aws_secret_access_key": None}, "aws_secret_access_key"),
        ({"region_name": EAST, "aws_access_key_id": None}, "aws_access_key_id"),
        ({"region_name": EAST, "timing": {"sleep": None}}, "timing"),
        ({"region_name": EAST, "aio_session": botocore.session.get_session()}, "aio_session"),
        ({"region_name": EAST, "aio_session": AioSession(), "profile_name": "default"}, "profile_name"),
        ({"region_name": EAST, "shared_state": "redis://127.0.0.1:6379"}, "shared_state"),
    ],
)
async def test_an_invalid_session_argument_raises_config_error_naming_it(kwargs, field):
    arguments = {**CREDS, **kwargs}
    with pytest.raises(ConfigError) as info:
        aio.Session(**arguments)
    assert info.value.field == field


async def test_a_client_without_any_region_names_region_name(monkeypatch):
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    session = aio.Session(**CREDS)  # like AioSession: a session needs no region, a client does
    with pytest.raises(ConfigError) as info:
        session.create_client("dynamodb")
    assert info.value.field == "region_name"


@pytest.mark.parametrize(("kwargs", "field", "suggested"), [
    ({"region_name": "us-esat-1"}, "region_name", "'us-east-1'"),
    ({"region_name": EAST, "failover_regions": ["us-wset-2"]}, "failover_regions", "'us-west-2'"),
])
async def test_a_misspelt_region_is_refused_at_the_session_with_the_close_matches(kwargs, field, suggested):
    with pytest.raises(ConfigError) as info:
        aio.Session(**CREDS, **kwargs)
    assert info.value.field == field
    assert suggested in str(info.value)


async def test_an_unknown_service_is_refused_at_create_client_with_a_suggestion():
    with pytest.raises(ConfigError) as info:
        _session().create_client("dynamodbb")
    assert info.value.field == "service_name"
    assert "'dynamodb'" in str(info.value)


async def test_a_region_the_service_does_not_have_is_refused_at_create_client():
    with pytest.raises(ConfigError) as info:
        _session().create_client("dynamodb", failover_regions=["cn-north-1"])  # another partition
    assert info.value.field == "failover_regions"


async def test_a_region_botocore_does_not_know_is_accepted_with_its_endpoint():
    session = _session(regions=(EAST,))
    with pytest.raises(ConfigError, match="xx-future-1"):
        session.create_client("dynamodb", failover_regions=["xx-future-1"])
    context = session.create_client("dynamodb", failover_regions=["xx-future-1"],
                                    endpoint_urls={"xx-future-1": "http://127.0.0.1:1"})
    async with context as client:
        assert client.regions == (EAST, "xx-future-1")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"endpoint_urls": {"eu-west-1": "http://127.0.0.1:1"}}, "endpoint_urls"),
        ({"endpoint_urls": {EAST: "127.0.0.1:1"}}, "endpoint_urls"),
        ({"endpoint_urls": ["http://127.0.0.1:1"]}, "endpoint_urls"),
        ({"endpoint_url": "ftp://x"}, "endpoint_url"),
        ({"endpoint_url": "http://127.0.0.1:2", "endpoint_urls": {EAST: "http://127.0.0.1:1"}}, "endpoint_url"),
        ({"config": {"retries": 1}}, "config"),
        ({"failover_regions": [EAST]}, "failover_regions"),
        ({"region_name": "us-esat-1"}, "region_name"),
    ],
)
async def test_an_invalid_create_client_argument_raises_config_error_naming_it(kwargs, field):
    with pytest.raises(ConfigError) as info:
        _session().create_client("dynamodb", **kwargs)
    assert info.value.field == field


async def test_a_custom_primary_endpoint_without_failover_endpoints_is_refused_at_create_client():
    session = _session()
    with pytest.raises(ConfigError) as info:
        session.create_client("dynamodb", endpoint_url=URLS[EAST])
    assert info.value.field == "endpoint_urls"
    assert WEST in str(info.value)
    async with session.create_client("dynamodb", endpoint_url=URLS[EAST], failover_regions=[]) as client:
        assert client.regions == (EAST,)  # no failover: fine


async def test_a_misspelt_failover_operation_is_refused_at_create_client():
    session = _session(Policy(dns=NO_DNS, failover=FailoverPolicy(operations=["PutItm"])))
    with pytest.raises(ConfigError) as info:
        session.create_client("dynamodb", endpoint_urls=URLS)
    assert info.value.field == "FailoverPolicy.operations"


@pytest.mark.parametrize("config", [AioConfig(connect_timeout=3), Config(connect_timeout=3), None])
async def test_an_aiobotocore_config_a_botocore_config_or_none_is_accepted(config):
    async with _session().create_client("dynamodb", endpoint_urls=URLS, config=config) as client:
        assert client.meta.config.connect_timeout == (3 if config is not None else 60)
        assert client.meta.config.retries["total_max_attempts"] == 1  # resilient_aws decides retries


async def test_create_client_and_client_are_the_same_method():
    assert aio.Session.client is aio.Session.create_client


# -- aio.wrap() ----------------------------------------------------------------------------------------
async def test_aio_wrap_of_an_entered_client_retries_in_the_resilient_loop():
    raw = await _raw_client(retries={"mode": "legacy"})
    try:
        fakes = {EAST: Region(EAST, [503, 503, 503, 503, 503])}
        clock = Clock()
        async with aio.wrap(raw, policy=POLICY, timing=clock.timing()) as client:
            client.meta.events.register("before-send.dynamodb", Wire(fakes))
            with pytest.raises(ClientError) as info:
                await client.get_item(**KEY)
            assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2
            assert len(fakes[EAST].sent) == 3           # max_attempts, not legacy's ten
            assert clock.sleeps == [0.05, 0.05]           # the policy's backoffs, slept by Timing.asleep
            assert client.stats()["retries"] == 2
    finally:
        await _close_raw(raw)


async def test_aio_wrap_refuses_a_sync_botocore_client_naming_the_client():
    sync = botocore.session.get_session().create_client("dynamodb", region_name=EAST, **CREDS)
    with pytest.raises(ConfigError) as info:
        aio.wrap(sync)
    assert info.value.field == "client"
    assert "aiobotocore" in str(info.value)


async def test_aio_wrap_refuses_something_that_is_not_a_client():
    with pytest.raises(ConfigError) as info:
        aio.wrap(object())
    assert info.value.field == "client"


async def test_sync_wrap_refuses_an_aiobotocore_client_pointing_to_aio_wrap():
    raw = await _raw_client()
    try:
        with pytest.raises(ConfigError) as info:
            resilient_aws.wrap(raw)
        assert info.value.field == "client"
        assert "resilient_aws.aio.wrap" in str(info.value)
    finally:
        await _close_raw(raw)


async def test_aio_wrap_of_a_client_with_a_custom_endpoint_needs_failover_endpoints():
    raw = await _raw_client()
    try:
        with pytest.raises(ConfigError) as info:
            aio.wrap(raw, [WEST], policy=POLICY)
        assert info.value.field == "endpoint_urls"
    finally:
        await _close_raw(raw)


async def test_an_entered_aio_wrap_fails_over_to_its_failover_region():
    raw = await _raw_client()
    try:
        fakes = {EAST: Region(EAST, [503]), WEST: Region(WEST)}
        async with aio.wrap(raw, [WEST], POLICY, endpoint_urls={WEST: URLS[WEST]},
                            timing=Clock().timing()) as client:
            client.meta.events.register("before-send.dynamodb", Wire(fakes))
            result = await client.get_item(**KEY)
            assert result["Item"]["region"] == {"S": WEST}
            assert result["ResponseMetadata"]["RetryAttempts"] == 1
            assert client.stats()["failovers"] == 1
    finally:
        await _close_raw(raw)


async def test_an_aio_wrap_serves_its_own_region_before_it_is_entered():
    raw = await _raw_client()
    try:
        fakes = {EAST: Region(EAST), WEST: Region(WEST)}
        client = aio.wrap(raw, [WEST], POLICY, endpoint_urls={WEST: URLS[WEST]}, timing=Clock().timing())
        client.meta.events.register("before-send.dynamodb", Wire(fakes))
        assert (await client.get_item(**KEY))["Item"]["region"] == {"S": EAST}
    finally:
        await _close_raw(raw)


async def test_a_call_that_needs_a_failover_region_before_the_wrap_is_entered_says_to_enter_it():
    raw = await _raw_client()
    try:
        fakes = {EAST: Region(EAST, [503]), WEST: Region(WEST)}
        client = aio.wrap(raw, [WEST], POLICY, endpoint_urls={WEST: URLS[WEST]}, timing=Clock().timing())
        client.meta.events.register("before-send.dynamodb", Wire(fakes))
        with pytest.raises(RuntimeError, match="async with"):
            await client.get_item(**KEY)
        assert fakes[WEST].sent == []
    finally:
        await _close_raw(raw)


async def test_leaving_an_aio_wrap_leaves_the_wrapped_client_open():
    raw = await _raw_client()
    try:
        fakes = {EAST: Region(EAST), WEST: Region(WEST)}
        async with aio.wrap(raw, [WEST], POLICY, endpoint_urls={WEST: URLS[WEST]},
                            timing=Clock().timing()) as client:
            client.meta.events.register("before-send.dynamodb", Wire(fakes))
            await client.get_item(**KEY)
        assert (await raw.get_item(**KEY))["Item"]["region"] == {"S": EAST}  # still the caller's, still open
    finally:
        await _close_raw(raw)


async def test_an_asyncio_client_refuses_a_plain_with():
    async with scripted() as (client, _):
        with pytest.raises(TypeError, match="async with"), client:
            pass  # pragma: no cover


# -- per-task state (the handoff is context variables) ----------------------------------------------
async def test_a_failure_left_for_the_planner_is_picked_up_by_its_own_task_only():
    # task A's first attempt fails on us-east-1 and its handler leaves the state for A's planner; A is then
    # held (an after-call hook) while task B's whole failing call runs on the same client
    a_held = asyncio.Event()
    release_a = asyncio.Event()
    by_key = {EAST: {"a": [503], "b": [500, 500]}, WEST: {"a": [{"Item": {"from": {"S": WEST}}}], "b": [500]}}
    async with scripted(by_key=by_key) as (client, fakes):
        task_a: asyncio.Task[Any] | None = None

        async def hold_a(**kwargs: Any) -> None:
            if asyncio.current_task() is task_a and not a_held.is_set():
                a_held.set()
                await release_a.wait()

        client.meta.events.register("after-call.dynamodb.GetItem", hold_a)
        task_a = asyncio.create_task(client.get_item(**key("a")))
        await asyncio.wait_for(a_held.wait(), WAIT)
        with pytest.raises(ClientError) as info:
            await client.get_item(**key("b"))
        release_a.set()
        result = await asyncio.wait_for(task_a, WAIT)
    assert result["Item"] == {"from": {"S": WEST}}            # A failed over, as its own state said
    assert result["ResponseMetadata"]["RetryAttempts"] == 1
    assert info.value.response["Error"]["Code"] == "InternalServerError"   # B's own error...
    assert info.value.response["ResponseMetadata"]["RetryAttempts"] == 2   # ...after B's own three attempts
    assert [s.key for s in fakes[EAST].sent] == ["a", "b", "b"]


async def test_fifty_tasks_retrying_at_once_each_get_their_own_retry_count_and_error():
    # task i fails i % 4 times with a status of its own, then succeeds; three failures use up
    # max_attempts, so those tasks end with their own error (no breaker or budget: only the handoff is tested)
    statuses = {0: 500, 1: 502, 2: 503, 3: 504}
    by_key = {EAST: {str(i): [statuses[i % 4]] * (i % 4) for i in range(50)}}
    policy = Policy(retry=RETRY, dns=NO_DNS, breaker=BreakerPolicy(enabled=False), budget=BudgetPolicy(enabled=False))
    async with scripted(policy, by_key=by_key, regions=(EAST,)) as (client, _):
        results = await asyncio.wait_for(asyncio.gather(*(client.get_item(**key(str(i))) for i in range(50)),
                                                        return_exceptions=True), WAIT)
        state = client.stats()
    for i, result in enumerate(results):
        if i % 4 == 3:
            assert isinstance(result, ClientError), i
            assert result.response["ResponseMetadata"]["HTTPStatusCode"] == 504
            assert result.response["ResponseMetadata"]["RetryAttempts"] == 2
        else:
            assert not isinstance(result, BaseException), (i, result)
            assert result["ResponseMetadata"]["RetryAttempts"] == i % 4
    assert state["calls"] == 50
    assert state["failed"] == 12 and state["succeeded"] == 38


async def test_a_task_failing_over_does_not_move_another_task_s_call():
    gate = asyncio.Event()
    arrived = asyncio.Event()
    by_key = {EAST: {"a": [held(gate, 503, arrived=arrived)], "b": []}}
    async with scripted(by_key=by_key) as (client, fakes):
        task_a = asyncio.create_task(client.get_item(**key("a")))
        await asyncio.wait_for(arrived.wait(), WAIT)
        b = await client.get_item(**key("b"))        # while A's attempt is in flight
        gate.set()
        a = await asyncio.wait_for(task_a, WAIT)
    assert b["Item"]["region"] == {"S": EAST} and b["ResponseMetadata"]["RetryAttempts"] == 0
    assert a["Item"]["region"] == {"S": WEST} and a["ResponseMetadata"]["RetryAttempts"] == 1
    assert [s.key for s in fakes[WEST].sent] == ["a"]


# -- cancellation ----------------------------------------------------------------------------------
async def test_a_call_cancelled_during_its_first_attempt_counts_one_call_one_attempt_cancelled():
    gate = asyncio.Event()
    arrived = asyncio.Event()
    async with scripted(scripts={EAST: [held(gate, arrived=arrived)]}) as (client, _):
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(arrived.wait(), WAIT)
        await _cancelled(task)
        state = client.stats()
    assert (state["calls"], state["attempts"], state["cancelled"], state["failed"], state["succeeded"]) == (
        1, 1, 1, 0, 0)
    assert state["regions"][EAST]["window_failures"] == 0   # a cancel says nothing about the endpoint


async def test_a_call_cancelled_in_its_in_region_backoff_counts_once_as_cancelled():
    clock = Clock()
    async with scripted(scripts={EAST: [503]}, regions=(EAST,), clock=clock) as (client, fakes):
        clock.park()
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(clock.parked.wait(), WAIT)
        await _cancelled(task)
        state = client.stats()
    assert len(fakes[EAST].sent) == 1
    assert (state["calls"], state["attempts"], state["retries"], state["cancelled"], state["failed"]) == (1, 1, 0, 1, 0)


async def test_a_call_cancelled_during_an_in_region_retry_counts_both_attempts_once():
    gate = asyncio.Event()
    arrived = asyncio.Event()
    async with scripted(scripts={EAST: [503, held(gate, arrived=arrived)]}, regions=(EAST,)) as (client, _):
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(arrived.wait(), WAIT)
        await _cancelled(task)
        state = client.stats()
    assert (state["calls"], state["attempts"], state["retries"], state["cancelled"], state["failed"]) == (1, 2, 1, 1, 0)


async def test_a_call_cancelled_in_the_planner_s_backoff_counts_once_and_holds_no_probe():
    clock = Clock()
    # us-east-1 fails, us-west-2 fails: the call backs off before going back to us-east-1, and is cancelled there
    async with scripted(scripts={EAST: [503], WEST: [503]}, clock=clock) as (client, fakes):
        clock.park()
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(clock.parked.wait(), WAIT)
        await _cancelled(task)
        state = client.stats()
        assert (await client.get_item(**KEY))["Item"]["region"] == {"S": EAST}   # nothing is held
    assert (len(fakes[EAST].sent), len(fakes[WEST].sent)) == (2, 1)
    assert (state["calls"], state["attempts"], state["cancelled"], state["failed"], state["failovers"]) == (
        1, 2, 1, 0, 1)


async def test_a_probe_cancelled_in_flight_is_released_and_the_next_call_probes():
    clock = Clock()
    gate = asyncio.Event()
    arrived = asyncio.Event()
    breaker = BreakerPolicy(min_calls=2, open_time=1.0, max_open_time=1.0, open_jitter=0.0)
    policy = Policy(retry=RetryPolicy(max_attempts=1), breaker=breaker, dns=NO_DNS)
    async with scripted(policy, {EAST: [503, 503, held(gate, arrived=arrived)]}, regions=(EAST,),
                        clock=clock) as (client, _):
        for _ in range(2):
            with pytest.raises(ClientError):
                await client.get_item(**KEY)
        assert client.stats()["regions"][EAST]["breaker"] == "open"
        with pytest.raises(CircuitOpenError):
            await client.get_item(**KEY)
        clock.now += 1.0                                  # the open time is up
        before = client.stats()
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(arrived.wait(), WAIT)      # the probe is in flight
        with pytest.raises(CircuitOpenError):             # one probe at a time
            await client.get_item(**KEY)
        await _cancelled(task)
        after = client.stats()
        result = await client.get_item(**KEY)             # the next probe is admitted, succeeds, closes it
        assert result["Item"]["region"] == {"S": EAST}
        assert client.stats()["regions"][EAST]["breaker"] == "closed"
    # the probe: one call, one attempt, cancelled; the call refused meanwhile: one call, failed
    assert _delta(after, before, "calls", "cancelled", "failed", "attempts", "circuit_open_rejections") == {
        "calls": 2, "cancelled": 1, "failed": 1, "attempts": 1, "circuit_open_rejections": 1}


async def test_a_task_cancelled_in_the_backoff_before_its_next_probe_leaves_the_probe_to_the_next_call():
    clock = Clock()
    open_time = 1.0
    breaker = BreakerPolicy(min_calls=2, open_time=open_time, max_open_time=open_time, open_jitter=0.0)
    policy = Policy(retry=RETRY, breaker=breaker, dns=NO_DNS)

    def slow_failure(sent: Sent) -> int:  # us-west-2 fails after more than east's open time
        clock.now += open_time * 1.5
        return 503

    async with scripted(policy, {EAST: [503, 503, 503], WEST: [{}, {}, slow_failure]}, clock=clock) as (client, fakes):
        for _ in range(2):
            await client.get_item(**KEY)                  # served by us-west-2 while east's breaker opens
        assert client.stats()["regions"][EAST]["breaker"] == "open"
        clock.now += open_time
        before = client.stats()
        clock.park()
        # east's probe fails (it opens again), us-west-2 fails slowly, then the call backs off before it
        # would take east's next probe: cancelled there
        task = asyncio.create_task(client.get_item(**KEY))
        await asyncio.wait_for(clock.parked.wait(), WAIT)
        assert (len(fakes[EAST].sent), len(fakes[WEST].sent)) == (3, 3)
        await _cancelled(task)
        after = client.stats()
        clock.now += open_time
        result = await client.get_item(**KEY)             # the next call takes the probe, which closes the breaker
        assert result["Item"]["region"] == {"S": EAST}
        assert client.stats()["regions"][EAST]["breaker"] == "closed"
    assert len(fakes[EAST].sent) == 4
    assert _delta(after, before, "calls", "cancelled", "failed", "attempts") == {
        "calls": 1, "cancelled": 1, "failed": 0, "attempts": 2}


@pytest.mark.parametrize("where", ["first attempt", "planner backoff", "failover attempt"])
async def test_a_cancellation_propagates_as_the_caller_s_own_cancelled_error(where):
    clock = Clock()
    gate = asyncio.Event()
    arrived = asyncio.Event()
    scripts = {"first attempt": {EAST: [held(gate, arrived=arrived)]},
               "planner backoff": {EAST: [503], WEST: [503]},
               "failover attempt": {EAST: [503], WEST: [held(gate, arrived=arrived)]}}[where]
    caught: list[BaseException] = []
    async with scripted(scripts=scripts, clock=clock) as (client, _):
        async def call() -> None:
            try:
                await client.get_item(**KEY)
            except BaseException as exc:
                caught.append(exc)
                raise

        if where == "planner backoff":
            clock.park()
        task = asyncio.create_task(call())
        await asyncio.wait_for((clock.parked if where == "planner backoff" else arrived).wait(), WAIT)
        task.cancel("stop, from the test")
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, WAIT)
        state = client.stats()
    assert task.cancelled()
    assert len(caught) == 1 and type(caught[0]) is asyncio.CancelledError
    assert caught[0].args == ("stop, from the test",)
    assert (state["calls"], state["cancelled"], state["failed"]) == (1, 1, 0)


async def test_a_thousand_cancelled_calls_are_counted_once_each_and_never_as_failures():
    gate = asyncio.Event()
    async with scripted(scripts={EAST: [held(gate)] * 1000}) as (client, fakes):
        tasks = [asyncio.create_task(client.get_item(**key(str(i)))) for i in range(1000)]
        for _ in range(100):   # bounded: until every call is in flight
            if len(fakes[EAST].sent) == 1000:
                break
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), WAIT)
        state = client.stats()
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert (state["calls"], state["cancelled"], state["attempts"], state["failed"]) == (1000, 1000, 1000, 0)


# -- paginators and waiters --------------------------------------------------------------------------
def _page(n: int, last: str | None) -> dict[str, Any]:
    page: dict[str, Any] = {"Items": [{"pk": {"S": f"{n}-{i}"}} for i in range(2)], "Count": 2, "ScannedCount": 2}
    if last is not None:
        page["LastEvaluatedKey"] = {"pk": {"S": last}}
    return page


async def test_an_async_paginator_s_failing_page_fails_over_and_the_pages_go_on():
    scripts = {EAST: [_page(1, "a"), 503, _page(3, None)], WEST: [_page(2, "b")]}
    async with scripted(scripts=scripts) as (client, fakes):
        pages = [page async for page in client.get_paginator("scan").paginate(TableName="t")]
        state = client.stats()
    assert [p["Items"][0]["pk"]["S"] for p in pages] == ["1-0", "2-0", "3-0"]
    assert fakes[WEST].sent[0].body["ExclusiveStartKey"] == {"pk": {"S": "a"}}   # page 2, where it stopped
    assert fakes[EAST].sent[2].body["ExclusiveStartKey"] == {"pk": {"S": "b"}}
    assert (state["calls"], state["failovers"], state["failed"]) == (3, 1, 0)


async def test_an_async_paginator_s_page_is_retried_in_its_region_without_failover():
    clock = Clock()
    scripts = {EAST: [_page(1, "a"), 503, _page(2, None)]}
    async with scripted(scripts=scripts, regions=(EAST,), clock=clock) as (client, _):
        pages = [page async for page in client.get_paginator("scan").paginate(TableName="t")]
        state = client.stats()
    assert len(pages) == 2 and pages[1]["ResponseMetadata"]["RetryAttempts"] == 1
    assert clock.sleeps == [0.05]
    assert (state["calls"], state["retries"]) == (2, 1)


async def test_an_async_waiter_s_poll_goes_through_the_resilient_loop():
    clock = Clock()
    active = {"Table": {"TableName": "t", "TableStatus": "ACTIVE"}}
    async with scripted(scripts={EAST: [503, active]}, regions=(EAST,), clock=clock) as (client, fakes):
        await client.get_waiter("table_exists").wait(TableName="t", WaiterConfig={"Delay": 1, "MaxAttempts": 2})
        state = client.stats()
    assert [s.operation for s in fakes[EAST].sent] == ["DescribeTable", "DescribeTable"]
    assert (state["calls"], state["retries"], state["succeeded"]) == (1, 1, 1)  # the 503 never reached the waiter


# -- no lock held across an await -------------------------------------------------------------------
@pytest.mark.parametrize("where", ["first attempt", "failover attempt", "in-region backoff"])
async def test_while_a_call_awaits_others_read_stats_add_listeners_and_call_the_same_client(where):
    clock = Clock()
    gate = asyncio.Event()
    arrived = asyncio.Event()
    by_key = {"first attempt": {EAST: {"a": [held(gate, arrived=arrived)]}},
              "failover attempt": {EAST: {"a": [503]}, WEST: {"a": [held(gate, arrived=arrived)]}},
              "in-region backoff": {EAST: {"a": [503]}}}[where]
    regions = (EAST,) if where == "in-region backoff" else (EAST, WEST)
    async with scripted(by_key=by_key, regions=regions, clock=clock) as (client, _):
        if where == "in-region backoff":
            clock.park()
        task = asyncio.create_task(client.get_item(**key("a")))
        await asyncio.wait_for((clock.parked if where == "in-region backoff" else arrived).wait(), WAIT)
        # from another thread first (bounded), then from this one: a lock held by the paused task would
        # block both, and this one for good
        assert _in_daemon_thread(client.stats)["calls"] == 0
        _in_daemon_thread(lambda: client.add_listener(lambda event: None))
        assert client.stats()["calls"] == 0
        other = await asyncio.wait_for(client.get_item(**key("b")), WAIT)
        assert other["Item"]["region"] == {"S": EAST}
        if where == "in-region backoff":
            await _cancelled(task)
        else:
            gate.set()
            await asyncio.wait_for(task, WAIT)
        assert client.stats()["calls"] == 2


# -- events and stats, as the sync client's ---------------------------------------------------------
def _events(listen: Callable[[Callable[[Any], None]], None]) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    listen(lambda e: seen.append((e.kind, e.region, e.operation, e.detail)))
    return seen


SCENARIOS = {
    "in-region retry": ({EAST: [503, 503]}, (EAST,), Policy(retry=RETRY, dns=NO_DNS)),
    "failover": ({EAST: [503], WEST: [500]}, (EAST, WEST), Policy(retry=RETRY, dns=NO_DNS)),
    "breaker opens, calls go round it": (
        {EAST: [503] * 20}, (EAST, WEST),
        Policy(retry=RETRY, dns=NO_DNS, breaker=BreakerPolicy(min_calls=2, open_time=60.0, open_jitter=0.0))),
    "budget runs out": (
        {EAST: [503] * 20}, (EAST,),
        Policy(retry=RETRY, dns=NO_DNS, budget=BudgetPolicy(ratio=0.1, min_per_second=0.1),
               breaker=BreakerPolicy(enabled=False))),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
async def test_events_are_the_sync_client_s_for_the_same_failures(scenario):
    scripts, regions, policy = SCENARIOS[scenario]
    sync_client, _ = make_sync_client(policy, {r: list(s) for r, s in scripts.items()}, regions, clock=SyncClock())
    sync_events = _events(sync_client.add_listener)
    sync_outcomes = []
    for _ in range(4):
        try:
            sync_outcomes.append(sync_client.get_item(**KEY)["ResponseMetadata"]["RetryAttempts"])
        except (ClientError, CircuitOpenError, EndpointConnectionError) as exc:
            sync_outcomes.append(type(exc).__name__)
    async with scripted(policy, {r: list(s) for r, s in scripts.items()}, regions=regions) as (client, _):
        aio_events = _events(client.add_listener)
        aio_outcomes = []
        for _ in range(4):
            try:
                aio_outcomes.append((await client.get_item(**KEY))["ResponseMetadata"]["RetryAttempts"])
            except (ClientError, CircuitOpenError, EndpointConnectionError) as exc:
                aio_outcomes.append(type(exc).__name__)
        aio_stats = client.stats()
    assert aio_events and aio_events == sync_events
    assert aio_outcomes == sync_outcomes
    sync_stats = sync_client.stats()
    for name in ("calls", "succeeded", "failed", "attempts", "retries", "failovers", "circuit_open_rejections",
                 "retries_denied_by_budget"):
        assert aio_stats[name] == sync_stats[name], name


async def test_session_listeners_hear_the_retries_and_failovers_of_its_clients():
    session = _session()
    heard = _events(session.add_listener)
    async with session.create_client("dynamodb", endpoint_urls=URLS) as client:
        client.meta.events.register("before-send.dynamodb", Wire({EAST: Region(EAST, [503]), WEST: Region(WEST)}))
        await client.get_item(**KEY)
        assert session.clients() == (client,)
    assert [(kind, region) for kind, region, *_ in heard] == [("failover", WEST)]


async def test_a_removed_listener_hears_nothing_more():
    async with scripted(scripts={EAST: [503, None, 503]}, regions=(EAST,)) as (client, _):
        heard: list[Any] = []

        def listener(event: Any) -> None:
            heard.append(event)

        client.add_listener(listener)
        await client.get_item(**KEY)       # one retry, heard
        client.remove_listener(listener)
        await client.get_item(**KEY)       # one retry, not heard
    assert [e.kind for e in heard] == ["retry"]


async def test_a_listener_given_as_a_bound_method_can_be_removed():
    async with scripted(scripts={EAST: [503, None, 503]}, regions=(EAST,)) as (client, _):
        heard: list[Any] = []
        client.add_listener(heard.append)
        await client.get_item(**KEY)
        client.remove_listener(heard.append)
        await client.get_item(**KEY)
    assert [e.kind for e in heard] == ["retry"]


async def test_stats_have_the_sync_client_s_keys_with_cancelled():
    sync_client, _ = make_sync_client(POLICY)
    sync_client.get_item(**KEY)
    async with scripted() as (client, _):
        await client.get_item(**KEY)
        state = client.stats()
    sync_state = sync_client.stats()
    assert set(state) == set(sync_state) | {"cancelled"}
    assert "cancelled" in state and state["cancelled"] == 0
    assert set(state["regions"][EAST]) == set(sync_state["regions"][EAST])
    assert json.loads(json.dumps(state)) == state


# -- meta.events and AioStubber ----------------------------------------------------------------------
async def test_aio_stubber_answers_on_the_resilient_client_and_its_errors_are_final():
    async with scripted() as (client, fakes):
        with AioStubber(client) as stubber:
            stubber.add_response("get_item", {"Item": {"pk": {"S": "stubbed"}}}, KEY)
            stubber.add_client_error("get_item", "ServiceUnavailable", http_status_code=503)
            assert (await client.get_item(**KEY))["Item"] == {"pk": {"S": "stubbed"}}
            with pytest.raises(ClientError):
                await client.get_item(**KEY)
            stubber.assert_no_pending_responses()
        state = client.stats()
    assert fakes[EAST].sent == fakes[WEST].sent == []     # nothing reached the wire
    assert (state["calls"], state["retries"], state["failovers"]) == (2, 0, 0)


async def test_a_handler_registered_on_meta_events_runs_in_every_region():
    regions_seen: list[str] = []
    async with scripted(scripts={EAST: [503]}) as (client, _):
        def tag(request: Any, **kwargs: Any) -> None:
            regions_seen.append(urlsplit(request.url).hostname)

        client.meta.events.register("request-created.dynamodb", tag)
        await client.get_item(**KEY)
    assert regions_seen == [HOSTS[EAST], HOSTS[WEST]]
