"""RedisState: the fleet's shared state in Redis (extra ``resilient-aws[redis]``).

Two daemon threads per process, started on first use (and again in a forked child):

- the **syncer** runs queued store operations (failure reports, openings, probe results, DNS
  publishes) in order, so the caller that caused them never waits on Redis; while Redis is down it
  drops them (local rules apply) and tries to reconnect every ``reconnect_interval`` seconds (+0 to
  50 % jitter, so a fleet does not reconnect in step);
- the **listener** holds the pub/sub subscription and applies every published change.

Only three operations run in the caller's thread, each on a path that is already failing and each
bounded by ``timeout``: claiming the probe lease (an open breaker whose time is up), taking a token
of the fleet's retry floor (a retry beyond the process's own ratio), and reading the fleet's DNS
answer for a name this process never resolved (a cold start during an outage).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import urllib.parse
from collections.abc import Callable
from typing import Any

from ..errors import ConfigError
from ..timing import Timing
from .shared import SharedState, check_settings

logger = logging.getLogger("resilient_aws.fleet")


def _redacted(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]  # as written: an IPv6 host keeps its brackets
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


class RedisState(SharedState):
    """Breakers, retry-budget floors and last-known-good DNS answers shared through Redis.

    ``RedisState("redis://127.0.0.1:6379/0")``, passed as ``Session(..., shared_state=...)`` or
    ``wrap(..., shared_state=...)``; one instance per process is enough (every session may share it).

    - ``namespace``: key prefix; fleets with different namespaces ignore each other;
    - ``timeout``: the longest any call waits because of Redis, connecting included (seconds);
    - ``fallback_min_per_second``: the retry floor per endpoint while Redis is unreachable (the
      fleet's ``BudgetPolicy.min_per_second`` is shared when it is reachable; alone, each process
      takes this smaller one, so a fleet cut off from Redis does not multiply its floor);
    - ``reconnect_interval``: how often a process tries Redis again while it is down.
    """

    def __init__(self, url: str, namespace: str = "resilient_aws", timeout: float = 0.05, *,
                 fallback_min_per_second: float = 0.1, reconnect_interval: float = 1.0,
                 timing: Timing | None = None) -> None:
        if not isinstance(url, str) or urllib.parse.urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("RedisState.url", f"must be a redis://, rediss:// or unix:// URL, got {url!r}")
        check_settings(namespace, timeout, fallback_min_per_second)
        if isinstance(reconnect_interval, bool) or not isinstance(reconnect_interval, (int, float)) \
                or not 0.01 <= reconnect_interval <= 3600:
            raise ConfigError("RedisState.reconnect_interval",
                              f"must be in [0.01, 3600] seconds, got {reconnect_interval!r}")
        try:
            import redis
        except ImportError:  # pragma: no cover - depends on the installed extras
            raise ConfigError("RedisState",
                              "needs the redis client library: pip install 'resilient-aws[redis]'") from None
        from .redis_store import RedisStore, connection_kwargs

        store = RedisStore(url, namespace=namespace, timeout=timeout)
        super().__init__(store, namespace=namespace, timeout=timeout,
                         fallback_min_per_second=fallback_min_per_second, timing=timing)
        self.url = url
        self.reconnect_interval = float(reconnect_interval)
        self._redis_store = store
        kwargs = connection_kwargs(timeout)
        kwargs["socket_timeout"] = None  # the listener blocks in get_message(timeout=...) instead
        self._listen_client = redis.Redis.from_url(url, **kwargs)
        self._init_threads()

    def _init_threads(self) -> None:
        self._outbox: collections.deque[Callable[[], object]] = collections.deque()
        self._wake = threading.Event()
        self._up_event = threading.Event()
        if self.up:
            self._up_event.set()
        self._started = False
        self._start_lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisState({_redacted(self.url)!r}, namespace={self.namespace!r}, timeout={self.timeout})"

    # -- the driver ----------------------------------------------------------------------------
    def submit(self, op: Callable[[], object]) -> None:
        if self._closed:
            return
        self._outbox.append(op)
        self._ensure_started()
        self._wake.set()

    def _ensure_started(self) -> None:
        if self._started:
            return
        with self._start_lock:
            if self._started:
                return
            self._started = True
            for target, name in ((self._sync_loop, "resilient-fleet-sync"),
                                 (self._listen_loop, "resilient-fleet-listen")):
                try:
                    threading.Thread(target=target, name=name, daemon=True).start()
                except RuntimeError:  # interpreter shutting down
                    return

    def endpoint(self, key: str, breaker: Any, budget: Any) -> Any:
        link = super().endpoint(key, breaker, budget)
        self._ensure_started()  # subscribed from the first endpoint on: openings reach even a healthy process
        return link

    def dns(self, policy: Any) -> Any:
        link = super().dns(policy)
        self._ensure_started()
        return link

    def _on_down(self) -> None:
        self._up_event.clear()
        self._ensure_started()  # the syncer is the one that reconnects
        self._wake.set()

    def mark_up(self) -> None:
        self._up_event.set()
        super().mark_up()

    def _sync_loop(self) -> None:
        while not self._closed:
            if self.up:
                self._wake.wait(1.0)
            else:
                self._wake.wait(self.reconnect_interval * (1.0 + 0.5 * self.timing.random()))
            self._wake.clear()
            if self._closed:
                return
            if not self.up:
                self._outbox.clear()  # local rules apply while Redis is down; resync() catches up after
                try:
                    self._redis_store.ping()
                except Exception:
                    continue
                self.mark_up()
            while self._outbox and self.up:
                op = self._outbox.popleft()
                try:
                    op()
                except Exception:  # pragma: no cover - call() catches what store operations raise
                    logger.exception("shared state operation failed")

    def _listen_loop(self) -> None:
        while not self._closed:
            if not self._up_event.wait(1.0):
                continue
            pubsub = self._listen_client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self._redis_store.channel)
                self.submit(self.resync)  # changes published before we (re)subscribed were missed
                while not self._closed and self.up:
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self.deliver(message.get("data"))
            except Exception as exc:
                if not self._closed:
                    self.mark_down(exc)
            finally:
                with contextlib.suppress(Exception):
                    pubsub.close()

    def close(self) -> None:
        """Stop the background threads and close the connections. Clients keep working, locally."""
        self._closed = True
        self.up = False
        self._wake.set()
        self._up_event.set()
        for client in (self._redis_store.client, self._listen_client):
            with contextlib.suppress(Exception):
                client.close()

    def stats(self) -> dict[str, Any]:
        return {**super().stats(), "queued": len(self._outbox)}

    def _after_fork(self) -> None:
        super()._after_fork()
        self._init_threads()  # the parent's threads do not exist here; they start again on first use
        self._redis_store.client.connection_pool.reset()
        self._listen_client.connection_pool.reset()
