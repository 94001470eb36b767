"""ResilientClient: a botocore client look-alike whose every call goes through resilient_aws.

This module is the facade: botocore's attributes pass through, operations are built on first use
and stored in the instance ``__dict__`` (later look-ups never reach ``__getattr__``), listeners and
``stats()`` (``stats.py``) are here. The work is shared by three modules:

- the hot path (``hotpath.py``): a successful first attempt costs one breaker-state read, the
  botocore call, one clock read and one short lock for four integer updates;
- same-region retries (``retry.py``): decided by resilient_aws inside botocore's own endpoint loop, so a
  retry is the same request (same token, rewound body, re-signed, CRC32 checked, attempts counted);
- failover (``planner.py``): after the primary's attempts failed or when its breaker is not closed,
  which region goes next and what it costs.
"""

from __future__ import annotations

import inspect
import logging
import types
from typing import TYPE_CHECKING, Any

from botocore.waiter import NormalizedOperationMethod

from . import _compat
from .backoff import Backoff
from .events import Emitter, Event, Listener
from .hooks import FanOutEvents, ResilientMeta
from .hotpath import build_operation
from .params import ALWAYS_CONSISTENT
from .policy import Policy
from .regions import RegionLane
from .retry import CallState, RetryHandler, install_retry_handler
from .stats import CallCounters
from .timing import REAL, Timing

if TYPE_CHECKING:
    from .dns import DnsCache
    from .session import _Shared

logger = logging.getLogger("resilient_aws")

class ResilientClient:
    """Behaves like the botocore client of its primary region; every operation goes through the
    retry / budget / breaker / failover loop. Thread-safe: share one instance across threads."""

    #: Set by ``wrap()`` only: what the client owns beyond its botocore clients (the DNS cache), released by
    #: ``close()``. A session's clients have none: the session owns its cache.
    _owned: _Shared
    #: The retry handler installed on every region's client, and the waiter's operation adapter: the
    #: asyncio client (``resilient_aws.aio``) sets its own; everything else is shared.
    _handler_type: type[RetryHandler] = RetryHandler
    _waiter_method: Any = NormalizedOperationMethod

    def __init__(self, service: str, lanes: list[RegionLane], policy: Policy, emitter: Emitter,
                 dns_cache: DnsCache | None = None, timing: Timing = REAL) -> None:
        if not lanes:
            raise ValueError("at least one region is required")
        self._service = service
        self._lanes = tuple(lanes)
        self._policy = policy
        self._timing = timing
        self._backoff = Backoff(policy.retry, random=timing.random)
        for lane in self._lanes:
            lane.adopt(self._adopt)
        self._primary = lanes[0].client()
        self._meta = ResilientMeta(self._primary.meta, FanOutEvents(self._primary.meta.events))
        for lane in self._lanes[1:]:
            if lane.created:
                self._meta.events.add_client_events(lane.client().meta.events)
        self._emitter = Emitter(parent=emitter)
        self._dns_cache = dns_cache
        self._counters = CallCounters()
        self._py_to_op: dict[str, str] = dict(self._primary.meta.method_to_api_mapping)
        self._failover_ops: dict[str, bool] = {}

    # -- botocore pass-through ---------------------------------------------------------------------
    @property
    def meta(self) -> Any:
        """The primary's ``meta``; handlers registered on ``meta.events`` run in every region."""
        return self._meta

    @property
    def exceptions(self) -> Any:
        return self._primary.exceptions

    def __getattr__(self, name: str) -> Any:
        # Only reached for names not found normally: operations (built once, then cached in
        # __dict__) and everything else of the botocore client (waiter_names, can_paginate...).
        if name.startswith("__"):
            raise AttributeError(name)
        py_to_op = self.__dict__.get("_py_to_op")
        if py_to_op is not None and name in py_to_op:
            op = self._build_operation(name, py_to_op[name])
            self.__dict__[name] = op
            return op
        primary = self.__dict__["_primary"]
        method = getattr(type(primary), name, None)
        if inspect.isfunction(method) and (method.__module__ or "").startswith("boto3."):
            # boto3's injected methods (S3 upload_file/download_file/copy..., built on the transfer
            # manager) run on *this* client, so every part they send is retried, budgeted, guarded
            bound = types.MethodType(method, self)
            self.__dict__[name] = bound
            return bound
        return getattr(primary, name)

    def __dir__(self) -> list[str]:
        return sorted(set(super().__dir__()) | set(dir(self._primary)))

    def __repr__(self) -> str:
        regions = ", ".join(lane.region for lane in self._lanes)
        return f"<resilient_aws.ResilientClient {self._service} regions=[{regions}]>"

    def get_paginator(self, operation_name: str) -> Any:
        """botocore's paginator, with every page fetched through the resilient loop."""
        return _compat.route_paginator(self._primary.get_paginator(operation_name), getattr(self, operation_name))

    def get_waiter(self, waiter_name: str) -> Any:
        """botocore's waiter, with every poll made through the resilient loop."""
        waiter = self._primary.get_waiter(waiter_name)
        from botocore import xform_name

        method = self._waiter_method(getattr(self, xform_name(waiter.config.operation)))
        return _compat.route_waiter(waiter, method)

    def close(self) -> None:
        """Close the connection pools of every region client created so far (and the DNS cache when
        this client owns it: a client made by ``wrap()``; a session's cache is the session's)."""
        for lane in self._lanes:
            if lane.created:
                lane.client().close()
        owned = self.__dict__.get("_owned")
        if owned is not None:
            owned.close()

    def __enter__(self) -> ResilientClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- observability ---------------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(Event)`` for this client's retries, failovers, budget denials, open
        circuits (and the session's breaker/DNS events). Called on the failure path only."""
        self._emitter.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._emitter.remove(listener)

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(lane.region for lane in self._lanes)

    def stats(self) -> dict[str, Any]:
        """A JSON-serializable snapshot: calls, attempts, retries, failovers, breakers per region, DNS."""
        return self._counters.snapshot(self._service, self._lanes, self._timing.monotonic(), self._dns_cache)

    def _build_operation(self, py_name: str, op_name: str) -> Any:
        return build_operation(self, py_name, op_name)

    # -- what the retry handler and the planner use --------------------------------------------
    def _may_fail_over(self, op_name: str) -> bool:
        allowed = self._failover_ops.get(op_name)
        if allowed is None:
            failover = self._policy.failover
            allowed = (len(self._lanes) > 1 and failover.may_fail_over(op_name)
                       and (failover.consistent_reads or op_name not in ALWAYS_CONSISTENT))
            self._failover_ops[op_name] = allowed
        return allowed

    def _adopt(self, lane: RegionLane, botocore_client: Any) -> None:
        """A region's botocore client was created: resilient_aws decides its retries."""
        install_retry_handler(botocore_client, self._handler_type(self, lane, self._service),
                              self._policy.retry.max_attempts)
        meta = self.__dict__.get("_meta")
        if meta is not None and lane is not self._lanes[0]:
            meta.events.add_client_events(botocore_client.meta.events)

    def _state_for_hot_path(self, lane: RegionLane, op_name: str) -> CallState:
        """The state of a call that the hot path sent to the primary, made at its first failure."""
        if lane is self._lanes[0] and self._may_fail_over(op_name):
            return CallState(lane, self._lanes, may_move=True, attempts=1)
        return CallState(lane, (lane,), may_move=False, attempts=1)

    def _alternative(self, state: CallState, now: float) -> bool:
        """Could another region of this call take an attempt now?"""
        for j, other in enumerate(state.lanes):
            if other is not state.lane and j not in state.excluded and other.health.breaker.would_admit(now):
                return True
        return False

    def _emit(self, kind: str, region: str | None, op_name: str, **detail: Any) -> None:
        self._emitter.emit(Event(kind, service=self._service, region=region, operation=op_name, detail=detail))
