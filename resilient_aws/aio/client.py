"""AioResilientClient: the resilient client of aiobotocore, ``await``-ed like an aiobotocore client.

It is :class:`~resilient_aws.ResilientClient` with three parts swapped for their asyncio forms: the
operations (``aio.hotpath``, whose failures go to the planner through ``aio.planner``), the retry
handler installed on every region's client (``retry.AioRetryHandler``) and the waiter's operation
adapter. Breakers, budgets, backoff, failover rules, events, ``stats()`` and ``meta.events`` are the
sync client's own code, not copies.

Every region's aiobotocore client is created and entered when the resilient client is entered
(``async with``), not on first need as the thread client does: an aiobotocore client must be entered
before it can send, and creating one reads the service model from disk, which would block the event
loop at the worst moment, the first failover of an outage.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiobotocore.waiter import NormalizedOperationMethod

from ..client import ResilientClient
from ..retry import AioRetryHandler
from .hotpath import build_operation

if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Awaitable, Callable


class AioResilientClient(ResilientClient):
    """Behaves like the aiobotocore client of its primary region: ``await client.get_item(...)``,
    async paginators (``async for page in client.get_paginator(...).paginate(...)``) and waiters
    (``await client.get_waiter(...).wait(...)``). One event loop per client (aiohttp's rule)."""

    _handler_type = AioRetryHandler
    _waiter_method = NormalizedOperationMethod

    #: What ``async with`` / ``close()`` must do besides the regions' clients: created by the session or
    #: ``aio.wrap()``. ``_opener`` creates and enters the clients of regions not created yet.
    _stack: AsyncExitStack | None = None
    _opener: Callable[[AsyncExitStack], Awaitable[None]] | None = None

    def _build_operation(self, py_name: str, op_name: str) -> Any:
        return build_operation(self, py_name, op_name)

    async def __aenter__(self) -> AioResilientClient:
        opener, self._opener = self._opener, None
        if opener is not None:
            stack = self._stack
            if stack is None:
                stack = self._stack = AsyncExitStack()
            await opener(stack)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:  # type: ignore[override]
        """Close the aiobotocore clients this resilient client created (all of them for a session's client;
        the failover regions' for ``aio.wrap()``, whose wrapped client stays the caller's to close)."""
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        owned = self.__dict__.get("_owned")
        if owned is not None:
            owned.close()

    def __enter__(self) -> ResilientClient:
        raise TypeError("an asyncio client: use 'async with', not 'with'")

    def __repr__(self) -> str:
        return super().__repr__().replace("ResilientClient", "aio.AioResilientClient", 1)
