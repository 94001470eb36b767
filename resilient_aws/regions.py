"""Regions of one client: their order, their shared health, their lazily created botocore clients.

``EndpointHealth`` is per (service, region) and shared by every client of a session: two clients
of the same session see the same breaker and draw on the same retry budget, because they load the
same endpoint. One lock guards both, so the success path takes a single lock.

``RegionLane`` is one region of one ``ResilientClient``: the botocore client for that region
(created on first use, once, then reused) and the per-client counters the success path updates
under the health lock.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from . import _fork
from .breaker import CircuitBreaker
from .budget import RetryBudget
from .events import BREAKER_STATE, Emitter, Event
from .policy import Policy

_monotonic = time.monotonic


class EndpointHealth:
    """Breaker + retry budget of one (service, region), under one lock."""

    __slots__ = ("__weakref__", "breaker", "budget", "lock", "region", "service")

    def __init__(self, service: str, region: str, policy: Policy, emitter: Emitter) -> None:
        self.service = service
        self.region = region
        self.lock = threading.Lock()
        now = _monotonic()

        def on_change(old: str, new: str, detail: dict) -> None:
            emitter.emit(Event(BREAKER_STATE, service=service, region=region,
                               detail={"from": old, "to": new, **detail}))

        self.breaker = CircuitBreaker(policy.breaker, name=f"{service}/{region}", now=now, lock=self.lock,
                                      on_change=on_change)
        self.budget = RetryBudget(policy.budget, lock=self.lock, now=now)
        _fork.register(self)

    def _after_fork(self) -> None:
        self.lock = threading.Lock()
        self.breaker._lock = self.lock
        self.breaker._probe_in_flight = False
        self.budget._lock = self.lock

    def snapshot(self) -> dict:
        now = _monotonic()
        data = self.breaker.snapshot(now)
        data["budget_tokens"] = round(self.budget.available(now), 3)
        return data


class HealthRegistry:
    """Session-wide map (service, region) -> EndpointHealth."""

    def __init__(self, policy: Policy, emitter: Emitter) -> None:
        self._policy = policy
        self._emitter = emitter
        self._items: dict[tuple[str, str], EndpointHealth] = {}
        self._lock = threading.Lock()
        _fork.register(self)

    def get(self, service: str, region: str) -> EndpointHealth:
        key = (service, region)
        item = self._items.get(key)
        if item is None:
            with self._lock:
                item = self._items.get(key)
                if item is None:
                    item = self._items[key] = EndpointHealth(service, region, self._policy, self._emitter)
        return item

    def _after_fork(self) -> None:
        self._lock = threading.Lock()


class RegionLane:
    """One region of one client."""

    __slots__ = ("__weakref__", "_client", "_create_lock", "_factory", "attempts", "failures", "fast_ok",
                 "health", "region")

    def __init__(self, region: str, health: EndpointHealth, factory: Callable[[str], Any],
                 client: Any = None) -> None:
        self.region = region
        self.health = health
        self._factory = factory
        self._client = client
        self._create_lock = threading.Lock()
        self.fast_ok = 0     # successful first attempts taken by the fast path (guarded by health.lock)
        self.attempts = 0    # attempts made by the slow path (guarded by the client's lock)
        self.failures = 0    # failed attempts (guarded by the client's lock)
        _fork.register(self)

    @property
    def created(self) -> bool:
        return self._client is not None

    def client(self) -> Any:
        c = self._client
        if c is None:
            with self._create_lock:  # botocore's create_client is not safe to race on one session
                c = self._client
                if c is None:
                    c = self._client = self._factory(self.region)
        return c

    def _after_fork(self) -> None:
        self._create_lock = threading.Lock()
        _reset_connection_pools(self._client)


def _reset_connection_pools(client: Any) -> None:
    """In a forked child, give the client fresh connection pools: a keep-alive socket shared with
    the parent would interleave two processes' requests on one TCP stream."""
    if client is None:
        return
    try:
        http_session = client._endpoint.http_session
        from urllib3 import PoolManager

        manager = PoolManager(**http_session._get_pool_manager_kwargs())
        manager.pool_classes_by_scheme = http_session._pool_classes_by_scheme
        http_session._manager = manager
        http_session._proxy_managers = {}
    except Exception:  # pragma: no cover - botocore internals moved; the old pools still work
        pass
