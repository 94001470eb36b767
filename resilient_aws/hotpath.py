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
from .params import operation_shape, prepare, reads_consistently

if TYPE_CHECKING:  # pragma: no cover
    from .client import ResilientClient


def build_operation(client: ResilientClient, py_name: str, op_name: str) -> Callable[..., Any]:
    """The wrapper of one operation: the hot path for a call that needs nothing special."""
    lane = client._lanes[0]
    primary_method = getattr(lane.client(), py_name)
    health = lane.health
    breaker = health.breaker
    deposits = health.budget._counts    # field 0: first attempts
    successes = breaker._counts         # field 0: successes
    monotonic = client._timing.monotonic
    may_move = client._may_fail_over(op_name)
    shape = operation_shape(lane.client().meta.service_model.operation_model(op_name))
    pin_consistent = may_move and shape.may_read_consistently and not client._policy.failover.consistent_reads
    # the hot path's own check: one dict look-up for GetItem/Query/Scan, a scan of RequestItems for
    # BatchGetItem, nothing for operations that cannot read consistently (TransactGetItems never moves)
    pin_top = pin_consistent and shape.consistent_read
    pin_nested = pin_consistent and shape.per_table_consistent_read
    needs_preparing = may_move and shape.needs_preparing

    def slow(kwargs: dict[str, Any], exc: Exception | None, move: bool = may_move) -> Any:
        return planner.run(client, py_name, op_name, kwargs, exc, may_move=move)

    if client._policy.retry.deadline is not None or needs_preparing:
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
                if pin_top:
                    if kwargs.get("ConsistentRead") is True:
                        return slow(kwargs, None, False)
                elif pin_nested and reads_consistently(shape, kwargs):
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
