"""The hot path: one operation's wrapper, built once per operation name and cached on the client.

A successful first attempt costs one breaker-state read, the botocore call, one clock read and one
short lock for four integer updates: no tenacity object, no classification, no event, no lock around
the network call. Everything else (a failure, an open breaker, a deadline, a call that must be
prepared before it may move region, a strongly consistent read) goes to the planner.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import planner
from .breaker import CLOSED
from .params import Prepared, operation_shape, prepare, reads_consistently

if TYPE_CHECKING:  # pragma: no cover
    from .client import ResilientClient


class OperationFacts:
    """What one operation's wrappers (the thread one here, the asyncio one in ``aio.hotpath``) decide
    once, when the operation is first used: read from the policy and the service model."""

    __slots__ = ("lane", "may_move", "needs_preparing", "pin_consistent", "pin_nested", "pin_top", "shape")

    def __init__(self, client: ResilientClient, op_name: str) -> None:
        self.lane = lane = client._lanes[0]
        self.may_move = may_move = client._may_fail_over(op_name)
        self.shape = shape = operation_shape(lane.client().meta.service_model.operation_model(op_name))
        self.pin_consistent = may_move and shape.may_read_consistently and not client._policy.failover.consistent_reads
        # the hot path's own check: one dict look-up for GetItem/Query/Scan, a scan of RequestItems for
        # BatchGetItem, nothing for operations that cannot read consistently (TransactGetItems never moves)
        self.pin_top = self.pin_consistent and shape.consistent_read
        self.pin_nested = self.pin_consistent and shape.per_table_consistent_read
        self.needs_preparing = may_move and shape.needs_preparing

    def may_move_call(self, kwargs: dict[str, Any]) -> bool:
        """May this call (these parameters) move to another region? Not a consistent read the policy pins."""
        return self.may_move and not (self.pin_consistent and reads_consistently(self.shape, kwargs))

    def prepared(self, kwargs: dict[str, Any]) -> tuple[bool, Prepared | None]:
        """For a call that does not take the hot path: may it move, and its prepared parameters."""
        move = self.may_move_call(kwargs)
        prepared = prepare(self.shape, kwargs) if self.needs_preparing else None
        if prepared is not None and not prepared.movable:
            move = False
        return move, prepared

    def takes_hot_path(self, client: ResilientClient) -> bool:
        """No deadline (it counts from the call's start) and nothing to prepare before a first attempt."""
        return client._policy.retry.deadline is None and not self.needs_preparing

    def count_success(self, monotonic: Callable[[], float]) -> Callable[[], None]:
        """The hot path's bookkeeping of a successful first attempt: one clock read, one lock, three
        increments, no method calls on the breaker or the budget. ``health.lock`` is read each time
        because a forked child replaces it."""
        lane = self.lane
        health = lane.health
        breaker = health.breaker
        deposits = health.budget._counts    # field 0: first attempts
        successes = breaker._counts         # field 0: successes

        def count() -> None:
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
        return count


def build_operation(client: ResilientClient, py_name: str, op_name: str) -> Callable[..., Any]:
    """The wrapper of one operation: the hot path for a call that needs nothing special."""
    facts = OperationFacts(client, op_name)
    lane = facts.lane
    primary_method = getattr(lane.client(), py_name)
    breaker = lane.health.breaker
    may_move = facts.may_move
    pin_top = facts.pin_top
    pin_nested = facts.pin_nested
    shape = facts.shape
    monotonic = client._timing.monotonic

    def slow(kwargs: dict[str, Any], exc: Exception | None, move: bool = may_move) -> Any:
        return planner.run(client, py_name, op_name, kwargs, exc, may_move=move)

    if not facts.takes_hot_path(client):
        def operation(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{py_name}() only accepts keyword arguments.")
            started = monotonic()
            move, prepared = facts.prepared(kwargs)
            return planner.run(client, py_name, op_name, kwargs, None, may_move=move, started=started,
                               prepared=prepared)
    else:
        count_success = facts.count_success(monotonic)

        def operation(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{py_name}() only accepts keyword arguments.")
            if breaker.state is CLOSED:
                if pin_top:
                    if kwargs.get("ConsistentRead") is True:
                        return slow(kwargs, None, False)
                elif pin_nested and reads_consistently(shape, kwargs):
                    return slow(kwargs, None, False)
                try:
                    result = primary_method(**kwargs)
                except Exception as exc:
                    return slow(kwargs, exc)
                count_success()
                return result
            return slow(kwargs, None, facts.may_move_call(kwargs))

    operation.__name__ = py_name
    operation.__qualname__ = f"ResilientClient.{py_name}"
    operation.__doc__ = getattr(primary_method, "__doc__", None)
    return operation
