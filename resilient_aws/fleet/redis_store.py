"""The store's contract on a real Redis server (``redis`` client library, extra ``resilient-aws[redis]``).

Every command is one ``EVALSHA`` of a script in ``scripts.py``, with the connection's timeouts set so
that a call waits at most ``timeout`` in all (half to connect, half for the answer) and is never
retried by the client library: when Redis is slow or gone, the caller wants "unavailable" at once,
not three attempts with backoff. A reply that is not what a script returns raises
:class:`~resilient_aws.fleet.store.Invalid`; anything that says Redis cannot be used raises
:class:`Unavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from . import scripts
from .store import ASK_RATE, MAX_REMAINING, Invalid, Unavailable, View, dns_entry, view_from


def connection_kwargs(timeout: float) -> dict[str, Any]:
    """One attempt per command, bounded by ``timeout`` in all."""
    half = timeout / 2.0
    return {"socket_timeout": half, "socket_connect_timeout": half, "retry": Retry(NoBackoff(), 0),
            "retry_on_timeout": False, "health_check_interval": 0}


class RedisStore:
    """:class:`~resilient_aws.fleet.store.Store` on Redis. ``channel`` receives every change."""

    def __init__(self, url: str, *, namespace: str, timeout: float) -> None:
        self.namespace = namespace
        self.channel = f"{namespace}:events"
        self.client: redis.Redis = redis.Redis.from_url(url, **connection_kwargs(timeout))
        self._scripts = {name: self.client.register_script(getattr(scripts, name))
                         for name in ("REPORT", "OPEN", "CLAIM", "PROBE_DONE", "RELEASE", "READ", "RESERVE",
                                      "DNS_PUT", "DNS_GET")}

    # keys ------------------------------------------------------------------------------------------
    def _record(self, key: str) -> str:
        return f"{self.namespace}:{{{key}}}:b"

    def _window(self, key: str) -> str:
        return f"{self.namespace}:{{{key}}}:w"

    def _reserve(self, key: str) -> str:
        return f"{self.namespace}:{{{key}}}:r"

    def _dns(self, name: str) -> str:
        return f"{self.namespace}:dns:{name}"

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return self._scripts[name](keys=keys, args=args)
        except redis.ResponseError as exc:  # the server ran the script and it failed: not an outage
            if "NOSCRIPT" in str(exc):
                raise Unavailable(str(exc)) from exc
            raise Invalid(f"script {name} failed: {exc}") from exc
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def _head(self, key: str, owner: str) -> list[Any]:
        return [self.namespace, key, self.channel, owner]

    # the contract ------------------------------------------------------------------------------------
    def ping(self) -> None:
        try:
            self.client.ping()
            for script in self._scripts.values():  # after a restart the server's script cache is empty
                script.sha = self.client.script_load(script.script)
        except (redis.RedisError, OSError) as exc:
            raise Unavailable(f"{type(exc).__name__}: {exc}") from exc

    def report(self, key: str, owner: str, successes: int, failures: int, *, min_calls: int,
               failure_ratio: float, window: float, open_time: float) -> tuple[View, int]:
        raw = self._run("REPORT", [self._record(key), self._window(key)],
                        [*self._head(key, owner), successes, failures, min_calls, repr(failure_ratio),
                         _ms(window), _ms(open_time)])
        if not isinstance(raw, list) or len(raw) != 2 or isinstance(raw[1], bool) or not isinstance(raw[1], int) \
                or raw[1] < 0:
            raise Invalid(f"report reply is not [view, reports]: {raw!r:.200}")
        return view_from(raw[0]), raw[1]

    def open(self, key: str, owner: str, *, open_time: float) -> View:
        return view_from(self._run("OPEN", [self._record(key)], [*self._head(key, owner), _ms(open_time)]))

    def claim(self, key: str, owner: str, *, lease: float) -> tuple[bool, View]:
        raw = self._run("CLAIM", [self._record(key)], [*self._head(key, owner), _ms(lease)])
        if not isinstance(raw, list) or len(raw) != 2 or raw[0] not in (0, 1):
            raise Invalid(f"claim reply is not [granted, view]: {raw!r:.200}")
        return bool(raw[0]), view_from(raw[1])

    def probe_done(self, key: str, owner: str, ok: bool, *, open_time: float) -> View:
        return view_from(self._run("PROBE_DONE", [self._record(key), self._window(key)],
                                   [*self._head(key, owner), "1" if ok else "0", _ms(open_time)]))

    def release(self, key: str, owner: str) -> View:
        return view_from(self._run("RELEASE", [self._record(key)], self._head(key, owner)))

    def read(self, key: str) -> View | None:
        raw = self._run("READ", [self._record(key)], [])
        return None if raw is None else view_from(raw)

    def reserve(self, key: str, *, rate: float, capacity: float) -> tuple[bool, float]:
        keep = _ms(min(MAX_REMAINING, (capacity / rate if rate > 0 else 0.0) + 1.0))
        raw = self._run("RESERVE", [self._reserve(key)], [repr(rate), repr(capacity), repr(ASK_RATE), keep,
                                                          self.namespace, key, self.channel])
        if (not isinstance(raw, list) or len(raw) != 2 or raw[0] not in (0, 1)
                or not isinstance(raw[1], int) or raw[1] < 0):
            raise Invalid(f"reserve reply is not [granted, wait_ms]: {raw!r:.200}")
        return bool(raw[0]), min(raw[1] / 1000.0, MAX_REMAINING)

    def dns_put(self, name: str, addresses: Sequence[str], *, max_stale: float) -> None:
        self._run("DNS_PUT", [self._dns(name)], [dns_entry(addresses, self.namespace), _ms(max_stale)])

    def dns_get(self, name: str) -> list[Any] | None:
        raw = self._run("DNS_GET", [self._dns(name)], [])
        return None if raw is None else list(raw)

    def close(self) -> None:
        self.client.close()


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))
