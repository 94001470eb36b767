"""Event callbacks: how users feed resilient_aws's decisions into their own metrics.

Events are emitted only on the failure path (retry, budget denial, breaker transition, failover,
stale DNS), never for a plain success, so listeners cost nothing on the hot path. A listener that
raises is logged and ignored: observability must never break the call it observes.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import _fork

logger = logging.getLogger("resilient_aws")

#: Event kinds. Kept as plain strings so listeners can filter without importing anything.
RETRY = "retry"
BUDGET_DENIED = "budget_denied"
BREAKER_STATE = "breaker_state"
FAILOVER = "failover"
CIRCUIT_OPEN = "circuit_open"
DNS_STALE = "dns_stale"
DNS_RECOVERED = "dns_recovered"
DNS_FAILURE = "dns_failure"


@dataclass(frozen=True)
class Event:
    """One decision taken by resilient_aws. ``detail`` holds kind-specific, JSON-serializable data."""

    kind: str
    service: str | None = None
    region: str | None = None
    operation: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


Listener = Callable[[Event], None]

_failed_listeners: set[int] = set()
_failed_lock = threading.Lock()


def _first_failure(listener: Listener) -> bool:
    """True the first time ``listener`` raises (per process; listeners are few and long-lived)."""
    key = id(listener)
    with _failed_lock:
        if key in _failed_listeners:
            return False
        _failed_listeners.add(key)
        return True


class Emitter:
    """A list of listeners. Adding is locked; emitting reads a tuple snapshot, so no lock is held
    while user code runs.

    Emitters form a two-level tree: a session's emitter and one child per client. A client's own
    events (retry, failover, budget denial, open circuit) reach its listeners and the session's; the
    session's events (breaker transitions, DNS) reach the session's listeners and every live
    client's, because a client built by ``wrap()`` has no session object a user could listen on.
    """

    __slots__ = ("__weakref__", "_children", "_listeners", "_lock", "_parent")

    def __init__(self, parent: Emitter | None = None) -> None:
        self._listeners: tuple[Listener, ...] = ()
        self._lock = threading.Lock()
        self._parent = parent
        self._children: weakref.WeakSet[Emitter] = weakref.WeakSet()
        _fork.register(self)
        if parent is not None:
            with parent._lock:
                parent._children.add(self)

    def add(self, listener: Listener) -> None:
        if not callable(listener):
            raise TypeError("listener must be callable")
        with self._lock:
            self._listeners = (*self._listeners, listener)

    def remove(self, listener: Listener) -> None:
        with self._lock:
            # ==, not is: ``obj.method`` is a new bound-method object at each access, equal to the one added
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def emit(self, event: Event) -> None:
        self._notify(event)
        if self._parent is not None:
            self._parent._notify(event)
            return
        with self._lock:
            children = tuple(self._children)
        for child in children:
            child._notify(event)

    def _notify(self, event: Event) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # a metrics bug must not fail the AWS call, nor flood the log in an outage
                if _first_failure(listener):
                    logger.exception("event listener %r raised; ignored (later failures of it are logged at DEBUG)",
                                     listener)
                else:
                    logger.debug("event listener %r raised again; ignored", listener, exc_info=True)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
