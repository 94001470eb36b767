"""The fleet learns together: breakers, retry-budget floors and last-known-good DNS answers shared
between processes through a store (Redis in production, memory in simulations and tests).

``RedisState`` is imported lazily so that ``import resilient_aws`` does not need the ``redis`` package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .shared import DnsLink, EndpointLink, SharedState
from .store import MemoryStore, View

if TYPE_CHECKING:  # pragma: no cover
    from .redis_state import RedisState


def __getattr__(name: str) -> Any:
    if name == "RedisState":
        from .redis_state import RedisState

        return RedisState
    raise AttributeError(name)


__all__ = ["DnsLink", "EndpointLink", "MemoryStore", "RedisState", "SharedState", "View"]
