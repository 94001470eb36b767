"""Regions of one client: their order, their shared health, their lazily created botocore clients.

``EndpointHealth`` is per endpoint, (service, region, endpoint URL), and shared by every client of a
session that calls that endpoint: two clients of the same session see the same breaker and draw on
the same retry budget, because they load the same servers; a client aimed at another URL of the same
region (a VPC endpoint, a local server) has its own, since one dead endpoint says nothing about
another. One lock guards both, so the success path takes a single lock.

``RegionLane`` is one region of one ``ResilientClient``: the botocore client for that region
(created on first use, once, then reused) and the per-client counters the success path updates
under the health lock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _compat, _fork
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .events import BREAKER_STATE, Emitter, Event
from .policy import Policy
from .timing import REAL, Timing

if TYPE_CHECKING:  # pragma: no cover
    from .fleet import SharedState


def endpoint_key(service: str, region: str, endpoint_url: str | None) -> str:
    """The endpoint's name in shared state: the same in every process of a fleet."""
    return f"{service}|{region}|{endpoint_url or ''}"


class EndpointHealth:
    """Breaker + retry budget of one endpoint, under one lock."""

    __slots__ = ("__weakref__", "breaker", "budget", "endpoint_url", "fleet", "lock", "region", "service")

    def __init__(self, service: str, region: str, policy: Policy, emitter: Emitter,
                 endpoint_url: str | None = None, timing: Timing = REAL,
                 shared_state: SharedState | None = None) -> None:
        self.service = service
        self.region = region
        self.endpoint_url = endpoint_url
        self.lock = threading.Lock()
        now = timing.monotonic()

        def on_change(old: str, new: str, detail: dict[str, Any]) -> None:
            emitter.emit(Event(BREAKER_STATE, service=service, region=region,
                               detail={"from": old, "to": new, "endpoint_url": endpoint_url, **detail}))

        name = f"{service}/{region}" + (f" ({endpoint_url})" if endpoint_url else "")
        self.breaker = CircuitBreaker(policy.breaker, name=name, now=now, lock=self.lock,
                                      on_change=on_change, uniform=timing.uniform)
        self.budget = RetryBudget(policy.budget, lock=self.lock, now=now)
        self.fleet = None if shared_state is None else shared_state.endpoint(
            endpoint_key(service, region, endpoint_url), self.breaker, self.budget)
        _fork.register(self)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()
        self.breaker._lock = self.lock
        self.breaker._probe_in_flight = False
        self.breaker._leased = False  # the parent's probe lease is the parent's
        self.budget._lock = self.lock

    def snapshot(self, now: float) -> dict[str, Any]:
        data = self.breaker.snapshot(now)
        data["budget_tokens"] = round(self.budget.available(now), 3)
        return data


class HealthRegistry:
    """Session-wide map (service, region, endpoint URL or None for AWS's own) -> EndpointHealth."""

    def __init__(self, policy: Policy, emitter: Emitter, timing: Timing = REAL,
                 shared_state: SharedState | None = None) -> None:
        self._policy = policy
        self._emitter = emitter
        self._timing = timing
        self._shared_state = shared_state
        self._items: dict[tuple[str, str, str | None], EndpointHealth] = {}
        self._lock = threading.Lock()
        _fork.register(self)

    def get(self, service: str, region: str, endpoint_url: str | None = None) -> EndpointHealth:
        key = (service, region, endpoint_url)
        item = self._items.get(key)
        if item is None:
            with self._lock:
                item = self._items.get(key)
                if item is None:
                    item = self._items[key] = EndpointHealth(service, region, self._policy, self._emitter,
                                                             endpoint_url, self._timing, self._shared_state)
        return item

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


class RegionLane:
    """One region of one client."""

    __slots__ = ("__weakref__", "_adopt", "_client", "_create_lock", "_factory", "attempts", "failures",
                 "fast_ok", "health", "region")

    def __init__(self, region: str, health: EndpointHealth, factory: Callable[[str], Any],
                 client: Any = None) -> None:
        self.region = region
        self.health = health
        self._factory = factory
        self._client = client
        self._adopt: Callable[[RegionLane, Any], None] | None = None
        self._create_lock = threading.Lock()
        self.fast_ok = 0     # successful first attempts taken by the fast path (guarded by health.lock)
        self.attempts = 0    # attempts made by the slow path (guarded by the client's lock)
        self.failures = 0    # failed attempts (guarded by the client's lock)
        _fork.register(self)

    def adopt(self, callback: Callable[[RegionLane, Any], None]) -> None:
        """Call ``callback(lane, botocore_client)`` once for the client, now if it exists already."""
        with self._create_lock:
            self._adopt = callback
            if self._client is not None:
                callback(self, self._client)

    @property
    def created(self) -> bool:
        return self._client is not None

    def client(self) -> Any:
        c = self._client
        if c is None:
            with self._create_lock:  # botocore's create_client is not safe to race on one session
                c = self._client
                if c is None:
                    c = self._factory(self.region)
                    if self._adopt is not None:
                        self._adopt(self, c)
                    self._client = c
        return c

    def _after_fork(self) -> None:
        self._create_lock = threading.Lock()
        if self._client is not None:
            _compat.reset_connection_pools(self._client)
