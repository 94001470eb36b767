"""``client.meta.events`` of a resilient client: one registration, every region's botocore client.

Why: a resilient client is several botocore clients (one per region, created when first needed), but
its users see one ``meta.events``. A handler registered there (a tracing header, custom signing,
botocore's ``Stubber``, s3transfer's progress hooks) must run on whichever region a call goes to,
including a region whose client is created after the registration. So registrations and
unregistrations are applied to every client created so far and remembered for the ones created later;
everything else (``emit``, ...) is the primary's.

resilient_aws's own handlers (the retry handler) are registered on each botocore client directly and
do not go through here.
"""

from __future__ import annotations

import threading
from typing import Any

_CHANGES = ("register", "register_first", "register_last", "unregister")

#: The positional and keyword arguments of one register/unregister call.
_Args = tuple[Any, ...]
_Kwargs = dict[str, Any]


class FanOutEvents:
    """A stand-in for botocore's event emitter that fans registrations out to every region."""

    def __init__(self, primary_events: Any) -> None:
        self._primary = primary_events
        self._others: list[Any] = []
        self._log: list[tuple[str, _Args, _Kwargs]] = []  # registrations to replay on later clients
        self._lock = threading.Lock()

    def add_client_events(self, events: Any) -> None:
        """A region's botocore client was created: it gets every registration made so far."""
        with self._lock:
            if events is self._primary or any(events is e for e in self._others):
                return
            for method, args, kwargs in self._log:
                getattr(events, method)(*args, **kwargs)
            self._others.append(events)

    def _apply(self, method: str, args: _Args, kwargs: _Kwargs) -> Any:
        with self._lock:
            result = getattr(self._primary, method)(*args, **kwargs)
            for events in self._others:
                getattr(events, method)(*args, **kwargs)
            if method == "unregister":  # forget what it undoes, so activate/deactivate cycles do not pile up
                self._log = [entry for entry in self._log if not _undoes(args, kwargs, entry[1], entry[2])]
            else:
                self._log.append((method, args, kwargs))
        return result

    def register(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply("register", args, kwargs)

    def register_first(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply("register_first", args, kwargs)

    def register_last(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply("register_last", args, kwargs)

    def unregister(self, *args: Any, **kwargs: Any) -> Any:
        return self._apply("unregister", args, kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._primary, name)

    def __copy__(self) -> Any:  # botocore copies emitters when it creates clients; a copy is the primary's
        import copy

        return copy.copy(self._primary)


def _parts(args: _Args, kwargs: _Kwargs) -> tuple[Any, Any, Any]:
    """(event_name, handler, unique_id) of a register/unregister call."""
    event = args[0] if args else kwargs.get("event_name")
    handler = args[1] if len(args) > 1 else kwargs.get("handler")
    unique_id = args[2] if len(args) > 2 else kwargs.get("unique_id")
    return event, handler, unique_id


def _undoes(unregister_args: _Args, unregister_kwargs: _Kwargs, args: _Args, kwargs: _Kwargs) -> bool:
    event, handler, unique_id = _parts(unregister_args, unregister_kwargs)
    r_event, r_handler, r_unique_id = _parts(args, kwargs)
    if event != r_event:
        return False
    if unique_id is not None:
        return bool(unique_id == r_unique_id)
    return bool(handler == r_handler)


class ResilientMeta:
    """``client.meta``: the primary's ``ClientMeta`` with fanned-out ``events``."""

    def __init__(self, primary_meta: Any, events: FanOutEvents) -> None:
        self._meta = primary_meta
        self.events = events

    def __getattr__(self, name: str) -> Any:
        return getattr(self._meta, name)

    def __repr__(self) -> str:
        return f"<resilient_aws meta of {self._meta!r}>"


__all__ = ["FanOutEvents", "ResilientMeta"]
