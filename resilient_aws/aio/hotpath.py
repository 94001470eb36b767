"""The asyncio hot path: one operation's ``async`` wrapper, built once per operation name.

The same decisions as the thread hot path (``resilient_aws.hotpath``, through ``OperationFacts``) and
the same success bookkeeping (one clock read, one short lock that is never held across an ``await``).
Everything else goes to the planner, driven by ``aio.planner.run``. A call cancelled while its first
attempt is awaited is counted once, as a cancelled call with one attempt; nothing else is held (the
hot path runs only while the breaker is closed: no probe ticket).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..breaker import CLOSED
from ..hotpath import OperationFacts
from ..params import reads_consistently
from . import planner

if TYPE_CHECKING:  # pragma: no cover
    from ..client import ResilientClient


def build_operation(client: ResilientClient, py_name: str, op_name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
    """The ``async`` wrapper of one operation."""
    facts = OperationFacts(client, op_name)
    lane = facts.lane
    primary_method = getattr(lane.client(), py_name)
    breaker = lane.health.breaker
    may_move = facts.may_move
    pin_top = facts.pin_top
    pin_nested = facts.pin_nested
    shape = facts.shape
    monotonic = client._timing.monotonic
    counters = client._counters

    async def slow(kwargs: dict[str, Any], exc: Exception | None, move: bool = may_move) -> Any:
        return await planner.run(client, py_name, op_name, kwargs, exc, may_move=move)

    if not facts.takes_hot_path(client):
        async def operation(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{py_name}() only accepts keyword arguments.")
            started = monotonic()
            move, prepared = facts.prepared(kwargs)
            return await planner.run(client, py_name, op_name, kwargs, None, may_move=move, started=started,
                                     prepared=prepared)
    else:
        count_success = facts.count_success(monotonic)

        async def operation(*args: Any, **kwargs: Any) -> Any:
            if args:
                raise TypeError(f"{py_name}() only accepts keyword arguments.")
            if breaker.state is CLOSED:
                if pin_top:
                    if kwargs.get("ConsistentRead") is True:
                        return await slow(kwargs, None, False)
                elif pin_nested and reads_consistently(shape, kwargs):
                    return await slow(kwargs, None, False)
                try:
                    result = await primary_method(**kwargs)
                except Exception as exc:
                    return await slow(kwargs, exc)
                except BaseException:  # cancelled during the first attempt (or its in-region retries)
                    counters.cancelled_on_hot_path(lane)
                    raise
                count_success()
                return result
            return await slow(kwargs, None, facts.may_move_call(kwargs))

    operation.__name__ = py_name
    operation.__qualname__ = f"AioResilientClient.{py_name}"
    operation.__doc__ = getattr(primary_method, "__doc__", None)
    return operation
