"""ResilientClient: a botocore client look-alike whose every call goes through resilient_aws.

Three parts share the work, each in its own module:

- the hot path (``_build_operation``, here): a successful first attempt costs one breaker-state read,
  the botocore call, one clock read and one short lock for four integer updates. No tenacity object,
  no classification, no event. Operation wrappers are built on first use and stored in the instance
  ``__dict__``, so later look-ups never reach ``__getattr__``;
- same-region retries (``retry.py``): decided by resilient_aws inside botocore's own endpoint loop, so a
  retry is the same request (same token, rewound body, re-signed, CRC32 checked, attempts counted);
- failover (``planner.py``): after the primary's attempts failed or when its breaker is not closed,
  which region goes next and what it costs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from botocore.waiter import NormalizedOperationMethod

from . import _compat, _fork, planner
from .backoff import Backoff
from .breaker import CLOSED
from .classify import Verdict
from .events import Emitter, Event, Listener
from .params import operation_shape, prepare, reads_consistently
from .policy import Policy
from .regions import RegionLane
from .retry import CallState, RetryHandler, install_retry_handler
from .timing import REAL, Timing

logger = logging.getLogger("resilient_aws")

_COUNTERS = ("slow_calls", "slow_ok", "failed", "attempts", "retries", "retries_denied_by_budget",
             "failovers", "circuit_open_rejections", "deadline_stops", "throttled", "caller_errors")


class ResilientClient:
    """Behaves like the botocore client of its primary region; every operation goes through the
    retry / budget / breaker / failover loop. Thread-safe: share one instance across threads."""

    def __init__(self, service: str, lanes: list[RegionLane], policy: Policy, emitter: Emitter,
                 dns_cache: Any = None, timing: Timing = REAL) -> None:
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
        self._emitter = Emitter(parent=emitter)
        self._dns_cache = dns_cache
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(_COUNTERS, 0)
        self._py_to_op: dict[str, str] = dict(self._primary.meta.method_to_api_mapping)
        self._failover_ops: dict[str, bool] = {}
        _fork.register(self)

    # -- botocore pass-through ---------------------------------------------------------------------
    @property
    def meta(self) -> Any:
        return self._primary.meta

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
        return getattr(self.__dict__["_primary"], name)

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

        method = NormalizedOperationMethod(getattr(self, xform_name(waiter.config.operation)))
        return _compat.route_waiter(waiter, method)

    def close(self) -> None:
        """Close the connection pools of every region client created so far."""
        for lane in self._lanes:
            if lane.created:
                lane.client().close()

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
        """A JSON-serializable snapshot. Counts finished calls; a call in flight is not counted yet."""
        fast_ok = 0
        fast_by_lane = []
        for lane in self._lanes:
            with lane.health.lock:
                fast_by_lane.append(lane.fast_ok)
            fast_ok += fast_by_lane[-1]
        with self._lock:
            c = dict(self._counts)
            lane_counts = [(lane.attempts, lane.failures) for lane in self._lanes]
        regions = {}
        now = self._timing.monotonic()
        for lane, fast, (attempts, failures) in zip(self._lanes, fast_by_lane, lane_counts, strict=True):
            health = lane.health.snapshot(now)
            regions[lane.region] = {
                "attempts": fast + attempts,
                "failed_attempts": failures,
                "breaker": health.pop("state"),
                **health,
                "endpoint_url": lane.health.endpoint_url,
                "client_created": lane.created,
            }
        data = {
            "service": self._service,
            "primary_region": self._lanes[0].region,
            "calls": fast_ok + c["slow_calls"],
            "succeeded": fast_ok + c["slow_ok"],
            "failed": c["failed"],
            "attempts": fast_ok + c["attempts"],
            "retries": c["retries"],
            "retries_denied_by_budget": c["retries_denied_by_budget"],
            "failovers": c["failovers"],
            "circuit_open_rejections": c["circuit_open_rejections"],
            "deadline_stops": c["deadline_stops"],
            "throttled_attempts": c["throttled"],
            "caller_errors": c["caller_errors"],
            "regions": regions,
            "dns": self._dns_cache.stats() if self._dns_cache is not None else None,
        }
        return data

    def _after_fork(self) -> None:
        self._lock = threading.Lock()

    # -- the hot path ------------------------------------------------------------------------------
    def _build_operation(self, py_name: str, op_name: str):
        lane = self._lanes[0]
        primary_method = getattr(lane.client(), py_name)
        health = lane.health
        breaker = health.breaker
        deposits = health.budget._counts    # field 0: first attempts
        successes = breaker._counts         # field 0: successes
        monotonic = self._timing.monotonic
        may_move = self._may_fail_over(op_name)
        shape = operation_shape(lane.client().meta.service_model.operation_model(op_name))
        pin_consistent = may_move and shape.may_read_consistently and not self._policy.failover.consistent_reads
        needs_preparing = may_move and shape.needs_preparing
        client = self

        def slow(kwargs: dict, exc: Exception | None, move: bool = may_move) -> Any:
            return planner.run(client, py_name, op_name, kwargs, exc, may_move=move)

        if self._policy.retry.deadline is not None or needs_preparing:
            # Not the hot path: a deadline counts from the call's start, and a call that may move
            # region with a token or a streamed body is prepared before its first attempt.
            def operation(*args: Any, **kwargs: Any) -> Any:
                if args:
                    raise TypeError(f"{py_name}() only accepts keyword arguments.")
                started = monotonic()
                move = may_move and not (pin_consistent and reads_consistently(shape, kwargs))
                prepared = prepare(shape, kwargs) if needs_preparing else None
                if prepared is not None and not prepared.movable:
                    move = False
                return planner.run(client, py_name, op_name, kwargs, None, may_move=move, started=started,
                                   prepared=prepared)
        else:
            # The success bookkeeping is inlined (no method calls): one clock read, one lock, three
            # increments. ``health.lock`` is read each time because a forked child replaces it.
            def operation(*args: Any, **kwargs: Any) -> Any:
                if args:
                    raise TypeError(f"{py_name}() only accepts keyword arguments.")
                if breaker.state is CLOSED:
                    if pin_consistent and reads_consistently(shape, kwargs):
                        return slow(kwargs, None, False)
                    try:
                        result = primary_method(**kwargs)
                    except Exception as exc:
                        return slow(kwargs, exc)
                    now = monotonic()
                    with health.lock:
                        lane.fast_ok += 1
                        if now >= deposits.edge:
                            deposits.roll(now)
                        deposits.cur[0] += 1
                        if breaker.state is CLOSED:
                            if now >= successes.edge:
                                successes.roll(now)
                            successes.cur[0] += 1
                    return result
                return slow(kwargs, None, may_move and not (pin_consistent and reads_consistently(shape, kwargs)))

        operation.__name__ = py_name
        operation.__qualname__ = f"ResilientClient.{py_name}"
        operation.__doc__ = getattr(primary_method, "__doc__", None)
        return operation

    # -- what the retry handler and the planner use --------------------------------------------
    def _may_fail_over(self, op_name: str) -> bool:
        allowed = self._failover_ops.get(op_name)
        if allowed is None:
            allowed = len(self._lanes) > 1 and self._policy.failover.may_fail_over(op_name)
            self._failover_ops[op_name] = allowed
        return allowed

    def _adopt(self, lane: RegionLane, botocore_client: Any) -> None:
        """A region's botocore client was created: resilient_aws decides its retries."""
        install_retry_handler(botocore_client, RetryHandler(self, lane, self._service),
                              self._policy.retry.max_attempts)

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

    def _count(self, **deltas: int) -> None:
        with self._lock:
            c = self._counts
            for key, value in deltas.items():
                c[key] += value

    def _attempt_made(self, lane: RegionLane, *, retry: bool) -> None:
        """One attempt off the hot path (a planner's call, or a retry botocore makes for us)."""
        with self._lock:
            lane.attempts += 1
            self._counts["attempts"] += 1
            if retry:
                self._counts["retries"] += 1

    def _attempt_failed(self, lane: RegionLane, verdict: Verdict) -> None:
        with self._lock:
            lane.failures += 1
            if verdict.throttle:
                self._counts["throttled"] += 1

    def _finish(self, *, ok: bool, caller_error: bool, failovers: int = 0) -> None:
        """A call that left the hot path ended (its attempts were counted as they were made)."""
        with self._lock:
            c = self._counts
            c["slow_calls"] += 1
            if ok:
                c["slow_ok"] += 1
            else:
                c["failed"] += 1
            if caller_error:
                c["caller_errors"] += 1
            c["failovers"] += failovers
