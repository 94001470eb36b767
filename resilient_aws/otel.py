"""OpenTelemetry metrics for resilient_aws: ``stats()`` and the events, where operators already look.

Why a module of its own: OpenTelemetry is optional (``pip install 'resilient-aws[otel]'``, which
brings ``opentelemetry-api`` only; the application brings the SDK and its exporters). Importing
``resilient_aws`` never imports OpenTelemetry; only ``import resilient_aws.otel`` does, and it fails
with an ImportError naming the extra when ``opentelemetry-api`` is missing.

Why two kinds of instruments:

- What the events carry the operation for (retries, failovers, retry-budget denials, open-circuit
  rejections, breaker transitions) is counted by *counters* fed by an event listener. Events are
  emitted on the failure path only, so the success path gains nothing: no listener, no counter.
- What is counted on the hot path (calls, attempts) has no event, and must not get one: those
  totals are *observable* instruments that read ``stats()`` when the SDK collects. So do the
  breaker state per endpoint (a gauge) and the DNS cache's stale answers served.

One meter provider gets one set of instruments, however many times ``instrument()`` is called:
OpenTelemetry keeps the first callbacks of an observable instrument and ignores later ones, so the
callbacks read every live ``Instrumentation`` of that provider. The same event delivered to several
instrumented listeners (a client and its session, two clients of one session: breaker events reach
every client of a session) is counted once.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

try:
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
except ImportError as exc:
    raise ImportError("resilient_aws.otel needs the OpenTelemetry API: pip install 'resilient-aws[otel]' "
                      f"(importing it failed: {exc})", name=__name__) from exc

from . import __version__
from .breaker import CLOSED, HALF_OPEN, OPEN
from .client import ResilientClient
from .events import BREAKER_STATE, BUDGET_DENIED, CIRCUIT_OPEN, FAILOVER, RETRY, Event
from .regions import EndpointHealth
from .session import Session

__all__ = ["BREAKER_STATE_VALUES", "METER_NAME", "Instrumentation", "instrument"]

#: The instrumentation scope's name (the meter's name).
METER_NAME = "resilient_aws"

#: The value of ``resilient_aws.breaker.state`` for each breaker state.
BREAKER_STATE_VALUES: dict[str, int] = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}

_Target = Session | ResilientClient


def instrument(target: Session | ResilientClient, meter_provider: MeterProvider | None = None) -> Instrumentation:
    """Publish ``target``'s metrics through OpenTelemetry; returns what ``close()`` undoes.

    ``target``: a ``resilient_aws.Session`` (the events of every client it made or will make, and the
    breaker state of every endpoint of the session) or a ``ResilientClient`` (from a session or
    ``wrap()``). Add more with ``Instrumentation.add``. ``meter_provider``: by default the global one
    (``opentelemetry.metrics.get_meter_provider()``).

    Totals read from ``stats()`` (calls, attempts) are per client: a session's are those of every
    client it made (``Session.clients()``), present and future.
    """
    _check_target(target)
    instrumentation = Instrumentation(_state_for(meter_provider))
    instrumentation.add(target)
    return instrumentation


def _check_target(target: object) -> None:
    if not isinstance(target, (Session, ResilientClient)):
        raise TypeError(f"target must be a resilient_aws.Session or ResilientClient, got {target!r}")


class Instrumentation:
    """The listeners and observed objects set up by ``instrument()``. Targets are held weakly: a
    client that goes away stops being observed. ``close()`` removes the listeners; idempotent."""

    def __init__(self, state: _MeterState) -> None:
        self._state = state
        self._lock = threading.Lock()
        self._sessions: weakref.WeakSet[Session] = weakref.WeakSet()
        self._clients: weakref.WeakSet[ResilientClient] = weakref.WeakSet()
        self._closed = False
        self._listener = self._on_event  # one bound method: remove_listener compares by identity
        state.attach(self)

    @property
    def closed(self) -> bool:
        return self._closed

    def add(self, target: Session | ResilientClient) -> None:
        """Observe another session or client. Adding one twice changes nothing."""
        _check_target(target)
        with self._lock:
            if self._closed:
                raise RuntimeError("this Instrumentation is closed")
            group: weakref.WeakSet[Any] = self._sessions if isinstance(target, Session) else self._clients
            if target in group:
                return
            group.add(target)
            target.add_listener(self._listener)  # under the lock: a close() cannot slip in between

    def close(self) -> None:
        """Remove the listeners and stop reporting this instrumentation's targets."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            targets: list[_Target] = [*self._sessions, *self._clients]
            for target in targets:
                target.remove_listener(self._listener)
        self._state.detach(self)

    def __enter__(self) -> Instrumentation:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _on_event(self, event: Event) -> None:
        if not self._closed:  # an emit may still hold a snapshot of the listeners taken before close()
            self._state.record(event)

    def _targets(self) -> tuple[tuple[Session, ...], tuple[ResilientClient, ...]]:
        with self._lock:
            return tuple(self._sessions), tuple(self._clients)


class _MeterState:
    """The instruments of one meter provider and the live instrumentations they report."""

    def __init__(self, provider: MeterProvider) -> None:
        meter = provider.get_meter(METER_NAME, __version__)
        self._lock = threading.Lock()
        self._live: dict[int, Instrumentation] = {}
        self._last = threading.local()  # the last event counted on this thread (see record)
        counter = meter.create_counter
        self._by_kind = {
            RETRY: counter("resilient_aws.retries", unit="{retry}",
                           description="Retries decided in the same region (RETRY events)"),
            FAILOVER: counter("resilient_aws.failovers", unit="{failover}",
                              description="Calls moved to another region; region is the one moved to"),
            BUDGET_DENIED: counter("resilient_aws.retries_denied_by_budget", unit="{retry}",
                                   description="Retries not made because the endpoint's retry budget was empty"),
            CIRCUIT_OPEN: counter("resilient_aws.circuit_open_rejections", unit="{call}",
                                  description="Calls refused at once because every region's breaker was open"),
            BREAKER_STATE: counter("resilient_aws.breaker.transitions", unit="{transition}",
                                   description="Circuit breaker state changes, by endpoint and from/to state"),
        }
        meter.create_observable_counter("resilient_aws.calls", [self._observe_calls], unit="{call}",
                                        description="Finished calls; region is the client's primary region")
        meter.create_observable_counter("resilient_aws.failed_calls", [self._observe_failed_calls], unit="{call}",
                                        description="Calls that raised; region is the client's primary region")
        meter.create_observable_counter("resilient_aws.attempts", [self._observe_attempts], unit="{attempt}",
                                        description="Attempts sent, by the region they were sent to")
        meter.create_observable_counter("resilient_aws.failed_attempts", [self._observe_failed_attempts],
                                        unit="{attempt}", description="Attempts that failed, by region")
        meter.create_observable_counter("resilient_aws.dns.stale_served", [self._observe_dns_stale],
                                        unit="{answer}",
                                        description="Last-known-good DNS answers served past their TTL")
        meter.create_observable_gauge("resilient_aws.breaker.state", [self._observe_breakers], unit="{state}",
                                      description="Circuit breaker state per endpoint: 0 closed, 1 half-open, 2 open")

    # -- instrumentations ------------------------------------------------------------------------
    def attach(self, instrumentation: Instrumentation) -> None:
        with self._lock:
            self._live[id(instrumentation)] = instrumentation

    def detach(self, instrumentation: Instrumentation) -> None:
        with self._lock:
            self._live.pop(id(instrumentation), None)

    # -- events (the failure path: keep it cheap, never raise) ---------------------------------------
    def record(self, event: Event) -> None:
        counter = self._by_kind.get(event.kind)
        if counter is None:
            return
        # One emit hands the same Event object to every listener, synchronously, on the emitting
        # thread: the client's listeners, then the session's (or the session's, then every
        # client's). Remembering the last one counted on this thread counts it once however many
        # instrumented listeners it reaches. The strong reference keeps its id from being reused.
        last = self._last
        if getattr(last, "event", None) is event:
            return
        last.event = event
        counter.add(1, _event_attributes(event))  # should it raise, the Emitter logs it and the call goes on

    # -- observable instruments (run by the SDK when it collects) ---------------------------------------
    def _collect(self) -> tuple[list[ResilientClient], list[EndpointHealth], list[Any]]:
        """The live clients, endpoints and DNS caches of every instrumentation, each once."""
        with self._lock:
            live = list(self._live.values())
        clients: dict[int, ResilientClient] = {}
        endpoints: dict[int, EndpointHealth] = {}
        caches: dict[int, Any] = {}
        for instrumentation in live:
            sessions, own = instrumentation._targets()
            for session in sessions:
                for health in _session_endpoints(session):
                    endpoints[id(health)] = health
                cache = session._shared._dns  # created with the session's first client, if DNS is on
                if cache is not None:
                    caches[id(cache)] = cache
                for client in _session_clients(session):
                    clients[id(client)] = client
            for client in own:
                clients[id(client)] = client
        for client in clients.values():
            for lane in client._lanes:
                endpoints[id(lane.health)] = lane.health
            if client._dns_cache is not None:
                caches[id(client._dns_cache)] = client._dns_cache
        return list(clients.values()), list(endpoints.values()), list(caches.values())

    def _snapshots(self) -> Iterator[dict[str, Any]]:
        for client in self._collect()[0]:
            yield client.stats()

    def _observe_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return _summed((_primary_attributes(s), s["calls"]) for s in self._snapshots())

    def _observe_failed_calls(self, options: CallbackOptions) -> Iterable[Observation]:
        return _summed((_primary_attributes(s), s["failed"]) for s in self._snapshots())

    def _observe_attempts(self, options: CallbackOptions) -> Iterable[Observation]:
        return _summed((_region_attributes(s, region), r["attempts"])
                       for s in self._snapshots() for region, r in s["regions"].items())

    def _observe_failed_attempts(self, options: CallbackOptions) -> Iterable[Observation]:
        return _summed((_region_attributes(s, region), r["failed_attempts"])
                       for s in self._snapshots() for region, r in s["regions"].items())

    def _observe_dns_stale(self, options: CallbackOptions) -> Iterable[Observation]:
        caches = self._collect()[2]
        if not caches:
            return []
        return [Observation(sum(cache.stats()["stale_served"] for cache in caches))]

    def _observe_breakers(self, options: CallbackOptions) -> Iterable[Observation]:
        worst: dict[tuple[tuple[str, str], ...], int] = {}
        for health in self._collect()[1]:
            key = tuple(_endpoint_attributes(health.service, health.region, health.endpoint_url).items())
            value = BREAKER_STATE_VALUES.get(health.breaker.state, 0)  # a plain attribute read, no lock
            worst[key] = max(value, worst.get(key, 0))  # two sessions, one endpoint: the worse state
        return [Observation(value, dict(key)) for key, value in worst.items()]


def _event_attributes(event: Event) -> dict[str, str]:
    detail = event.detail
    if event.kind == BREAKER_STATE:
        attributes = _endpoint_attributes(event.service, event.region, detail.get("endpoint_url"))
        attributes["from"] = str(detail.get("from"))
        attributes["to"] = str(detail.get("to"))
        return attributes
    attributes = {}
    if event.service is not None:
        attributes["service"] = event.service
    if event.region is not None:  # CIRCUIT_OPEN has none: every region refused the call
        attributes["region"] = event.region
    if event.operation is not None:
        attributes["operation"] = event.operation
    if event.kind == FAILOVER and detail.get("from_region") is not None:
        attributes["from_region"] = str(detail["from_region"])
    return attributes


def _endpoint_attributes(service: str | None, region: str | None, endpoint_url: str | None) -> dict[str, str]:
    attributes = {"service": str(service), "region": str(region)}
    if endpoint_url is not None:  # None: AWS's own endpoint for the service and region
        attributes["endpoint_url"] = endpoint_url
    return attributes


def _primary_attributes(snapshot: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return (("service", snapshot["service"]), ("region", snapshot["primary_region"]))


def _region_attributes(snapshot: dict[str, Any], region: str) -> tuple[tuple[str, str], ...]:
    return (("service", snapshot["service"]), ("region", region))


def _summed(pairs: Iterable[tuple[tuple[tuple[str, str], ...], int]]) -> list[Observation]:
    """One observation per attribute set: two clients of one service and region add up (the SDK
    would keep only the last of two observations with the same attributes)."""
    totals: dict[tuple[tuple[str, str], ...], int] = {}
    for key, value in pairs:
        totals[key] = totals.get(key, 0) + value
    return [Observation(value, dict(key)) for key, value in totals.items()]


def _session_endpoints(session: Session) -> tuple[EndpointHealth, ...]:
    """Every endpoint (breaker + budget) of the session, including those of clients made later."""
    registry = session._shared.health
    with registry._lock:
        return tuple(registry._items.values())


def _session_clients(session: Session) -> tuple[ResilientClient, ...]:
    """The session's live clients (``Session.clients()``)."""
    return session.clients()


# -- one _MeterState per meter provider ------------------------------------------------------------------
_states_lock = threading.Lock()
_states: weakref.WeakKeyDictionary[Any, _MeterState] = weakref.WeakKeyDictionary()
_unweakrefable_states: dict[int, tuple[Any, _MeterState]] = {}
_global: list[tuple[Any, _MeterState]] = []  # (the provider, its state) the first time None was passed


def _state_for(provider: MeterProvider | None) -> _MeterState:
    """The instruments of ``provider``, created on first use.

    ``None`` is the global provider as it was the first time: before the SDK is configured, that is
    the API's proxy, which forwards to the SDK's provider once it is set. Asking again later would
    give the SDK's provider itself, where the proxy's instruments already exist with their callbacks.
    """
    with _states_lock:
        if provider is None:
            if not _global:
                first = metrics.get_meter_provider()
                _global.append((first, _state_of(first)))
            return _global[0][1]
        if _global:
            first, state = _global[0]
            # the proxy's instruments live in the provider it forwards to (a private attribute of
            # opentelemetry-api's proxy; if it is renamed, this check just stops matching)
            if provider is first or provider is getattr(first, "_real_meter_provider", None):
                return state
        return _state_of(provider)


def _state_of(provider: Any) -> _MeterState:
    try:
        state = _states.get(provider)
    except TypeError:  # not weak-referenceable: hold it
        entry = _unweakrefable_states.get(id(provider))
        if entry is None:
            entry = _unweakrefable_states[id(provider)] = (provider, _MeterState(provider))
        return entry[1]
    if state is None:
        state = _states[provider] = _MeterState(provider)
    return state
