"""ResilientClient: a botocore client look-alike that owns the one retry loop.

The hot path (``_build_operation``): a successful first attempt costs one breaker-state read, the
botocore call, one clock read and one short lock for four integer updates. No tenacity object, no
classification, no event. Operation wrappers are built on first use and stored in the instance
``__dict__``, so later look-ups never reach ``__getattr__``.

The slow path (``_call_slow``) runs only after a failure or when the primary's breaker is not
closed. It classifies the error, records it on the breaker, decides between failing over (next
region, at once: different endpoint, nothing to wait for), retrying the same region (budget token,
jittered sleep within the deadline) or giving up with the *original* exception.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from botocore.waiter import NormalizedOperationMethod

from . import _fork
from .backoff import Backoff
from .breaker import ADMIT, CLOSED, REJECT
from .classify import Verdict, classify
from .errors import CircuitOpenError
from .events import BUDGET_DENIED, CIRCUIT_OPEN, FAILOVER, RETRY, Emitter, Event, Listener
from .policy import Policy
from .regions import RegionLane

logger = logging.getLogger("resilient_aws")
_monotonic = time.monotonic
_sleep = time.sleep

_COUNTERS = ("slow_calls", "slow_ok", "failed", "attempts", "retries", "retries_denied_by_budget",
             "failovers", "circuit_open_rejections", "deadline_stops", "throttled", "caller_errors")


class ResilientClient:
    """Behaves like the botocore client of its primary region; every operation goes through the
    retry / budget / breaker / failover loop. Thread-safe: share one instance across threads."""

    def __init__(self, service: str, lanes: list[RegionLane], policy: Policy, emitter: Emitter,
                 dns_cache: Any = None) -> None:
        if not lanes:
            raise ValueError("at least one region is required")
        self._service = service
        self._lanes = tuple(lanes)
        self._primary = lanes[0].client()
        self._policy = policy
        self._backoff = Backoff(policy.retry)
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
        paginator = self._primary.get_paginator(operation_name)
        paginator._method = getattr(self, operation_name)
        return paginator

    def get_waiter(self, waiter_name: str) -> Any:
        """botocore's waiter, with every poll made through the resilient loop."""
        waiter = self._primary.get_waiter(waiter_name)
        from botocore import xform_name

        waiter._operation_method = NormalizedOperationMethod(getattr(self, xform_name(waiter.config.operation)))
        return waiter

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
        for lane, fast, (attempts, failures) in zip(self._lanes, fast_by_lane, lane_counts, strict=True):
            health = lane.health.snapshot()
            regions[lane.region] = {
                "attempts": fast + attempts,
                "failed_attempts": failures,
                "breaker": health.pop("state"),
                **health,
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
        slow = self._call_slow
        monotonic = _monotonic

        # The success bookkeeping is inlined (no method calls): one clock read, one lock, three
        # increments. ``health.lock`` is read each time because a forked child replaces it.
        if self._policy.retry.deadline is None:
            def operation(*args: Any, **kwargs: Any) -> Any:
                if args:
                    raise TypeError(f"{py_name}() only accepts keyword arguments.")
                if breaker.state is CLOSED:
                    try:
                        result = primary_method(**kwargs)
                    except Exception as exc:
                        return slow(py_name, op_name, kwargs, exc, None)
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
                return slow(py_name, op_name, kwargs, None, None)
        else:  # a deadline counts from the call's start, so only then is the clock read up front
            def operation(*args: Any, **kwargs: Any) -> Any:
                if args:
                    raise TypeError(f"{py_name}() only accepts keyword arguments.")
                started = monotonic()
                if breaker.state is CLOSED:
                    try:
                        result = primary_method(**kwargs)
                    except Exception as exc:
                        return slow(py_name, op_name, kwargs, exc, started)
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
                return slow(py_name, op_name, kwargs, None, started)

        operation.__name__ = py_name
        operation.__qualname__ = f"ResilientClient.{py_name}"
        operation.__doc__ = getattr(primary_method, "__doc__", None)
        return operation

    # -- the slow path ---------------------------------------------------------------------------
    def _may_fail_over(self, op_name: str) -> bool:
        allowed = self._failover_ops.get(op_name)
        if allowed is None:
            allowed = len(self._lanes) > 1 and self._policy.failover.may_fail_over(op_name)
            self._failover_ops[op_name] = allowed
        return allowed

    def _emit(self, kind: str, region: str | None, op_name: str, **detail: Any) -> None:
        self._emitter.emit(Event(kind, service=self._service, region=region, operation=op_name, detail=detail))

    def _record_result(self, lane: RegionLane, ticket: int, exc: BaseException | None,
                       verdict: Verdict | None) -> None:
        """Tell the breaker what one attempt said about the endpoint's health."""
        breaker = lane.health.breaker
        now = _monotonic()
        if exc is None or verdict is None:
            breaker.on_success(now, ticket)
        elif verdict.endpoint_failure or (verdict.throttle and self._policy.breaker.count_throttles):
            breaker.on_failure(now, ticket)
        elif verdict.throttle:
            breaker.on_neutral(ticket)
        else:  # a caller error is proof the endpoint is alive and answering
            breaker.on_success(now, ticket)

    def _call_slow(self, py_name: str, op_name: str, kwargs: dict, first_exc: Exception | None,
                   started: float | None) -> Any:
        policy = self._policy
        max_attempts = policy.retry.max_attempts
        deadline = policy.retry.deadline
        start = _monotonic()
        deadline_at = (started if started is not None else start) + deadline if deadline is not None else None
        lanes = self._lanes if self._may_fail_over(op_name) else self._lanes[:1]
        n = {k: 0 for k in ("attempts", "retries", "denied", "failovers", "throttled")}
        per_lane = [0] * len(lanes)
        last_exc: BaseException | None = None
        verdict: Verdict | None = None
        index = 0                 # which lane the last attempt used
        used: set[int] = set()    # lanes that already had their first attempt (budget deposit) in this call

        try:
            if first_exc is not None:
                # The fast path already made the first attempt on the primary, admitted as CLOSED.
                lane = lanes[0]
                n["attempts"] = 1
                per_lane[0] = 1
                used.add(0)
                lane.health.budget.deposit(start)
                verdict = classify(first_exc)
                self._record_result(lane, ADMIT, first_exc, verdict)
                self._lane_failed(lane)
                last_exc = first_exc
                if verdict.throttle:
                    n["throttled"] += 1
                if not verdict.retryable and not (verdict.may_fail_over and len(lanes) > 1):
                    raise first_exc

            while True:
                # -- choose where the next attempt goes -------------------------------------------
                target = -1
                ticket = REJECT
                is_retry_same = False
                if last_exc is None:
                    for i, candidate in enumerate(lanes):
                        ticket = candidate.health.breaker.admit(_monotonic())
                        if ticket != REJECT:
                            target = i
                            break
                    if target < 0:
                        n_regions = [lane.region for lane in lanes]
                        with self._lock:
                            self._counts["circuit_open_rejections"] += 1
                        self._emit(CIRCUIT_OPEN, None, op_name, regions=n_regions)
                        raise CircuitOpenError(service=self._service, operation=op_name, regions=n_regions)
                else:
                    assert verdict is not None
                    if n["attempts"] >= max_attempts:
                        raise last_exc
                    if verdict.may_fail_over:
                        for i in range(index + 1, len(lanes)):
                            ticket = lanes[i].health.breaker.admit(_monotonic())
                            if ticket != REJECT:
                                target = i
                                break
                    if target < 0:
                        if not verdict.retryable:
                            raise last_exc
                        ticket = lanes[index].health.breaker.admit(_monotonic())
                        if ticket == REJECT:
                            raise last_exc  # the breaker opened under us: do not pile on
                        target = index
                        is_retry_same = True

                lane = lanes[target]
                # -- pay for it: a retry on the same endpoint needs a budget token and a backoff ----
                if is_retry_same:
                    now = _monotonic()
                    if not lane.health.budget.try_withdraw(now):
                        lane.health.breaker.release(ticket)
                        n["denied"] += 1
                        self._emit(BUDGET_DENIED, lane.region, op_name, attempt=n["attempts"] + 1)
                        raise last_exc
                    n["retries"] += 1
                    delay = self._backoff.delay(n["retries"], verdict.throttle, verdict.retry_after)
                    if deadline_at is not None and now + delay >= deadline_at:
                        lane.health.breaker.release(ticket)
                        with self._lock:
                            self._counts["deadline_stops"] += 1
                        raise last_exc
                    self._emit(RETRY, lane.region, op_name, attempt=n["attempts"] + 1, delay=round(delay, 4),
                               error=_error_name(last_exc))
                    if delay > 0:
                        _sleep(delay)
                else:
                    if deadline_at is not None and last_exc is not None and _monotonic() >= deadline_at:
                        lane.health.breaker.release(ticket)
                        with self._lock:
                            self._counts["deadline_stops"] += 1
                        raise last_exc
                    if target not in used:
                        used.add(target)
                        lane.health.budget.deposit(_monotonic())
                    if last_exc is not None:
                        n["failovers"] += 1
                        self._emit(FAILOVER, lane.region, op_name, from_region=lanes[index].region,
                                   error=_error_name(last_exc))
                        logger.debug("resilient_aws: %s %s moves from %s to %s after %s", self._service,
                                     op_name, lanes[index].region, lane.region, _error_name(last_exc))
                    elif target != 0:
                        n["failovers"] += 1  # the primary's breaker was open: served by a fallback
                        self._emit(FAILOVER, lane.region, op_name, from_region=lanes[0].region,
                                   error="circuit_open")

                # -- the attempt: no lock held ----------------------------------------------------
                index = target
                n["attempts"] += 1
                per_lane[target] += 1
                try:
                    result = getattr(lane.client(), py_name)(**kwargs)
                except Exception as exc:
                    verdict = classify(exc)
                    self._record_result(lane, ticket, exc, verdict)
                    self._lane_failed(lane)
                    last_exc = exc
                    if verdict.throttle:
                        n["throttled"] += 1
                    if verdict.caller_error:
                        raise
                    continue
                except BaseException:
                    lane.health.breaker.release(ticket)
                    raise
                self._record_result(lane, ticket, None, None)
                self._finish(n, per_lane, ok=True, caller_error=False)
                return result
        except BaseException as exc:
            if isinstance(exc, Exception):
                self._finish(n, per_lane, ok=False, caller_error=verdict is not None and verdict.caller_error
                             and exc is last_exc)
            raise

    def _lane_failed(self, lane: RegionLane) -> None:
        with self._lock:
            lane.failures += 1

    def _finish(self, n: dict, per_lane: list[int], *, ok: bool, caller_error: bool) -> None:
        with self._lock:
            for lane, attempts in zip(self._lanes, per_lane, strict=False):
                lane.attempts += attempts
            c = self._counts
            c["slow_calls"] += 1
            if ok:
                c["slow_ok"] += 1
            else:
                c["failed"] += 1
            if caller_error:
                c["caller_errors"] += 1
            c["attempts"] += n["attempts"]
            c["retries"] += n["retries"]
            c["retries_denied_by_budget"] += n["denied"]
            c["failovers"] += n["failovers"]
            c["throttled"] += n["throttled"]


def _error_name(exc: BaseException | None) -> str:
    if exc is None:
        return ""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
    return type(exc).__name__
