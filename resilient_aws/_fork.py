"""Fork hygiene. Locks copied into a child by ``os.fork()`` may be held by a thread that does not
exist there; every lock-owning object registers here and gets fresh locks in the child. State
(breaker states, DNS answers, counters) is kept: what the parent learned about an outage is still
true in the child."""

from __future__ import annotations

import logging
import os
import weakref
from typing import Protocol

logger = logging.getLogger("resilient_aws")


class _ForkAware(Protocol):
    def _after_fork(self) -> None: ...


_objects: weakref.WeakSet[_ForkAware] = weakref.WeakSet()


def register(obj: _ForkAware) -> None:
    """``obj`` must have an ``_after_fork()`` method, called in the child only."""
    _objects.add(obj)


def _reinit_in_child() -> None:
    for obj in list(_objects):
        try:
            obj._after_fork()
        except Exception:  # pragma: no cover - a child must not die on bookkeeping
            logger.exception("re-initialising %r after fork failed", obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_in_child)
