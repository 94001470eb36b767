"""Policies: every knob of resilient_aws, validated when constructed.

Each policy is a frozen dataclass, so one instance can be shared by many clients and threads
without copying. ``__post_init__`` checks every field and raises ``ConfigError`` naming it
(``"RetryPolicy.max_attempts"``): a mistake is found on the developer's laptop, not during the
outage the policy was written for.

Defaults, and where they come from (the systems they are compared with):

- retry: 3 attempts in all (failover included), full jitter from 50 ms, capped at 2 s — the shape of
  botocore's standard mode and the 2026 SDK defaults, not legacy mode's 10 unjittered attempts;
- budget: retries may be 10 % of first attempts over 10 s, floor 1 retry/s (Google SRE's < 10 %;
  Finagle's design with a smaller floor, because the floor is the part that does not shrink with
  traffic);
- breaker: opens at 50 % failures over 10 s with at least 20 calls, stays open 5 s (jittered ±20 %,
  doubling while probes fail, up to 60 s), one probe at a time (resilience4j / Polly / Envoy mix);
- dns: last-known-good for up to 6 hours, re-checked every 5 s with jitter while the name fails;
- failover: reads only.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .errors import ConfigError

JitterKind = Literal["full", "equal", "none"]


#: Upper bounds of the numeric fields (seconds unless said otherwise). Generous on purpose: they do not
#: judge taste, they refuse values that can only be typos or unit mix-ups (milliseconds for seconds)
#: and keep every computed duration finite and sleepable (``time.sleep(1e300)`` raises OverflowError).
_MAX_SECONDS = 86400.0           # one day: delays, deadline, open times, windows, DNS timers
_MAX_STALE_SECONDS = 30 * 86400.0  # DnsPolicy.max_stale: RFC 8767 suggests 1 to 3 days of stale answers
_MAX_PER_SECOND = 1e6            # BudgetPolicy.min_per_second
_MIN_OPEN_TIME = 0.001           # BreakerPolicy.open_time: keeps the jittered open time positive


def _number(owner: str, name: str, value: object, *, minimum: float | None = None,
            maximum: float | None = None, strict_min: bool = False, allow_none: bool = False) -> None:
    """Validate one numeric field; the error names ``Owner.field`` and the bad value.

    ``bool`` is refused although it is an ``int``. An ``int`` too large for a float (``10**400``) is
    reported as not finite and shown in short (``about 10**400``): converting it raises
    OverflowError, and printing it in full may even be refused (``int`` -> ``str`` digit limit).
    """
    where = f"{owner}.{name}"
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(where, f"must be a number, got {value!r}")
    try:
        as_float = float(value)
    except OverflowError:
        digits = int(math.log10(abs(value)))  # math.log10 takes ints of any size
        raise ConfigError(where, f"must be finite, got about {'-' if value < 0 else ''}10**{digits}") from None
    if not math.isfinite(as_float):
        raise ConfigError(where, f"must be finite, got {value!r}")
    if minimum is not None:
        if strict_min and value <= minimum:
            raise ConfigError(where, f"must be > {minimum}, got {value!r}")
        if not strict_min and value < minimum:
            raise ConfigError(where, f"must be >= {minimum}, got {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(where, f"must be <= {maximum}, got {value!r}")


def _integer(owner: str, name: str, value: object, *, minimum: int) -> None:
    where = f"{owner}.{name}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(where, f"must be an integer, got {value!r}")
    if value < minimum:
        raise ConfigError(where, f"must be >= {minimum}, got {value!r}")


def _boolean(owner: str, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{owner}.{name}", f"must be True or False, got {value!r}")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts one call may make and how long to wait between them.

    ``max_attempts`` bounds *all* attempts of one call, a move to another region included, so the
    worst case per call is known: 3 means at most 3 HTTP requests, never 3 per region.
    ``deadline`` (seconds, per call) bounds the whole call: no backoff sleep overruns it and no
    attempt starts after it. Throttling errors back off from ``throttle_base_delay`` instead of
    ``base_delay``: a throttled service needs air, not a quick retry. A server's
    ``x-amz-retry-after`` header (milliseconds) is honoured when ``honor_retry_after``, but never by
    more than ``max_retry_after_extra`` seconds beyond the computed delay.

    Bounds: ``max_attempts`` 1..100; ``base_delay``, ``throttle_base_delay``, ``max_delay``,
    ``max_retry_after_extra`` within [0, 86400] seconds (one day) and ``deadline`` within
    (0, 86400], so that every delay is finite and can be slept (at most two days with a
    ``retry-after``); ``max_delay >= base_delay``.
    """

    max_attempts: int = 3
    base_delay: float = 0.05
    throttle_base_delay: float = 0.5
    max_delay: float = 2.0
    jitter: JitterKind = "full"
    deadline: float | None = None
    honor_retry_after: bool = True
    max_retry_after_extra: float = 5.0

    def __post_init__(self) -> None:
        o = "RetryPolicy"
        _integer(o, "max_attempts", self.max_attempts, minimum=1)
        if self.max_attempts > 100:
            raise ConfigError(f"{o}.max_attempts", f"must be <= 100, got {self.max_attempts!r}")
        _number(o, "base_delay", self.base_delay, minimum=0, maximum=_MAX_SECONDS)
        _number(o, "throttle_base_delay", self.throttle_base_delay, minimum=0, maximum=_MAX_SECONDS)
        _number(o, "max_delay", self.max_delay, minimum=0, maximum=_MAX_SECONDS)
        if self.max_delay < self.base_delay:
            raise ConfigError(f"{o}.max_delay", f"must be >= base_delay ({self.base_delay}), "
                                                f"got {self.max_delay!r}")
        if self.jitter not in ("full", "equal", "none"):
            raise ConfigError(f"{o}.jitter", f"must be 'full', 'equal' or 'none', got {self.jitter!r}")
        _number(o, "deadline", self.deadline, minimum=0, strict_min=True, maximum=_MAX_SECONDS, allow_none=True)
        _boolean(o, "honor_retry_after", self.honor_retry_after)
        _number(o, "max_retry_after_extra", self.max_retry_after_extra, minimum=0, maximum=_MAX_SECONDS)


@dataclass(frozen=True)
class BudgetPolicy:
    """Token-bucket retry budget, shared per endpoint (service, region, URL) by every client of a session.

    Each first attempt deposits ``ratio`` tokens, each retry withdraws one, and both expire after
    ``window`` seconds; ``min_per_second`` adds a floor of ``min_per_second * window`` tokens so
    that a client with little traffic can still retry at all. The bound holds per endpoint: over any
    window, retries to an endpoint are at most ``ratio * first_attempts + min_per_second * window``
    of that endpoint, so under a total outage of one endpoint, its attempts / calls stay near
    ``1 + ratio`` however many threads call. A move to another region is that region's first attempt
    (no token); a call's attempts across all regions are at most ``RetryPolicy.max_attempts``.

    Bounds: ``ratio`` within [0, 100], ``min_per_second`` within [0, 1e6], ``window`` within
    [0.001, 86400] seconds (one day).
    """

    enabled: bool = True
    ratio: float = 0.1
    min_per_second: float = 1.0
    window: float = 10.0

    def __post_init__(self) -> None:
        o = "BudgetPolicy"
        _boolean(o, "enabled", self.enabled)
        _number(o, "ratio", self.ratio, minimum=0, maximum=100)
        _number(o, "min_per_second", self.min_per_second, minimum=0, maximum=_MAX_PER_SECOND)
        _number(o, "window", self.window, minimum=0.001, maximum=_MAX_SECONDS)


@dataclass(frozen=True)
class BreakerPolicy:
    """Circuit breaker per endpoint (service, region, URL).

    Opens when, over the last ``window`` seconds, at least ``min_calls`` attempts were counted and
    the share of failures reached ``failure_ratio``. Only endpoint-health failures count
    (connection errors, timeouts, DNS failures, 5xx); caller errors never do, and throttling only
    when ``count_throttles``. Open for ``open_time`` seconds, jittered by ±``open_jitter`` so that a
    fleet does not probe in step, doubling after each failed probe up to ``max_open_time``. The cap
    holds after the jitter: once the doubling reaches it, open times spread over
    ``[max_open_time * (1 - open_jitter), max_open_time]``. Then half-open: exactly one probe at a
    time; ``probes`` consecutive successful probes close it.

    Bounds: ``failure_ratio`` within (0, 1]; ``window`` within [0.001, 86400] seconds;
    ``open_time`` within [0.001, 86400] seconds and ``max_open_time`` within [``open_time``, 86400]
    (one day); ``open_jitter`` within [0, 0.9], so an open time is never below
    ``open_time * 0.1``.
    """

    enabled: bool = True
    failure_ratio: float = 0.5
    min_calls: int = 20
    window: float = 10.0
    open_time: float = 5.0
    max_open_time: float = 60.0
    open_jitter: float = 0.2
    probes: int = 1
    count_throttles: bool = False

    def __post_init__(self) -> None:
        o = "BreakerPolicy"
        _boolean(o, "enabled", self.enabled)
        _number(o, "failure_ratio", self.failure_ratio, minimum=0, maximum=1, strict_min=True)
        _integer(o, "min_calls", self.min_calls, minimum=1)
        _number(o, "window", self.window, minimum=0.001, maximum=_MAX_SECONDS)
        _number(o, "open_time", self.open_time, minimum=_MIN_OPEN_TIME, maximum=_MAX_SECONDS)
        _number(o, "max_open_time", self.max_open_time, minimum=_MIN_OPEN_TIME, maximum=_MAX_SECONDS)
        if self.max_open_time < self.open_time:
            raise ConfigError(f"{o}.max_open_time", f"must be >= open_time ({self.open_time}), "
                                                    f"got {self.max_open_time!r}")
        _number(o, "open_jitter", self.open_jitter, minimum=0, maximum=0.9)
        _integer(o, "probes", self.probes, minimum=1)
        _boolean(o, "count_throttles", self.count_throttles)


@dataclass(frozen=True)
class DnsPolicy:
    """Last-known-good DNS for the connections a wrapped client opens.

    ``nameservers``/``port`` default to the system resolver configuration. A name that resolved
    before keeps its last good addresses for up to ``max_stale`` seconds while it answers empty,
    NXDOMAIN, SERVFAIL or times out; during such an episode the name is re-checked at most every
    ``recheck_interval`` seconds (jittered). ``min_ttl`` stops a 0-second TTL from turning every
    new connection into a query. ``persist_path`` keeps good answers on disk across restarts.

    Bounds: ``timeout`` and ``recheck_interval`` within (0, 86400] seconds, ``min_ttl`` within
    [0, 86400] (one day); ``max_stale`` within [0, 2592000] (30 days: RFC 8767 suggests serving
    stale answers for 1 to 3 days); ``refresh_ahead`` within [0, 0.9].
    """

    enabled: bool = True
    nameservers: tuple[str, ...] | None = None
    port: int = 53
    timeout: float = 2.0
    max_stale: float = 6 * 3600.0
    recheck_interval: float = 5.0
    min_ttl: float = 1.0
    refresh_ahead: float = 0.2
    max_names: int = 1024
    persist_path: str | None = None

    def __post_init__(self) -> None:
        o = "DnsPolicy"
        _boolean(o, "enabled", self.enabled)
        if self.nameservers is not None:
            if isinstance(self.nameservers, str) or not isinstance(self.nameservers, Iterable):
                raise ConfigError(f"{o}.nameservers", f"must be a list of IP addresses, got {self.nameservers!r}")
            servers = tuple(self.nameservers)
            if not servers:
                raise ConfigError(f"{o}.nameservers", "must not be empty (use None for the system's)")
            import ipaddress

            for s in servers:
                try:
                    ipaddress.ip_address(s)
                except (ValueError, TypeError):
                    raise ConfigError(f"{o}.nameservers", f"{s!r} is not an IP address") from None
            object.__setattr__(self, "nameservers", servers)
        _integer(o, "port", self.port, minimum=1)
        if self.port > 65535:
            raise ConfigError(f"{o}.port", f"must be <= 65535, got {self.port!r}")
        _number(o, "timeout", self.timeout, minimum=0, strict_min=True, maximum=_MAX_SECONDS)
        _number(o, "max_stale", self.max_stale, minimum=0, maximum=_MAX_STALE_SECONDS)
        _number(o, "recheck_interval", self.recheck_interval, minimum=0, strict_min=True, maximum=_MAX_SECONDS)
        _number(o, "min_ttl", self.min_ttl, minimum=0, maximum=_MAX_SECONDS)
        _number(o, "refresh_ahead", self.refresh_ahead, minimum=0, maximum=0.9)
        _integer(o, "max_names", self.max_names, minimum=1)
        if self.persist_path is not None and not isinstance(self.persist_path, str):
            import os

            if not isinstance(self.persist_path, os.PathLike):
                raise ConfigError(f"{o}.persist_path", f"must be a path, got {self.persist_path!r}")
            object.__setattr__(self, "persist_path", os.fspath(self.persist_path))


#: Operation-name prefixes that only read. DynamoDB's TransactGetItems and BatchGetItem are covered
#: by "TransactGet"/"BatchGet"; PartiQL ExecuteStatement may write, so it is not a read.
DEFAULT_READ_PREFIXES: tuple[str, ...] = (
    "Get", "BatchGet", "TransactGet", "Query", "Scan", "Describe", "List", "Head", "Select",
)


@dataclass(frozen=True)
class FailoverPolicy:
    """Which operations may move to another region within one call.

    By default only reads (``read_prefixes``) move: DynamoDB global tables resolve concurrent
    writes last-writer-wins, so moving a write can silently lose another. ``allow_writes=True``
    lets every operation move; ``operations`` names extra operations (``"PutItem"``) that may move;
    ``deny_operations`` pins operations to the primary even if they look like reads.

    Strongly consistent reads (``ConsistentRead=True``, also per table in ``BatchGetItem``, and
    ``TransactGetItems``) stay in their region unless ``consistent_reads=True``: a replica in another
    region answers from its own copy, which may be older than what the caller asked to see.
    """

    enabled: bool = True
    allow_writes: bool = False
    consistent_reads: bool = False
    read_prefixes: tuple[str, ...] = DEFAULT_READ_PREFIXES
    operations: frozenset[str] = frozenset()
    deny_operations: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        o = "FailoverPolicy"
        _boolean(o, "enabled", self.enabled)
        _boolean(o, "allow_writes", self.allow_writes)
        _boolean(o, "consistent_reads", self.consistent_reads)
        for name in ("read_prefixes", "operations", "deny_operations"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, Iterable):
                raise ConfigError(f"{o}.{name}", f"must be a collection of operation names, got {value!r}")
            items = tuple(value)
            for item in items:
                if not isinstance(item, str) or not item:
                    raise ConfigError(f"{o}.{name}", f"contains {item!r}, not an operation name")
            object.__setattr__(self, name, items if name == "read_prefixes" else frozenset(items))

    def may_fail_over(self, operation_name: str) -> bool:
        """True if ``operation_name`` (the API name, e.g. ``"GetItem"``) may move region."""
        if not self.enabled or operation_name in self.deny_operations:
            return False
        if self.allow_writes or operation_name in self.operations:
            return True
        return operation_name.startswith(self.read_prefixes)


@dataclass(frozen=True)
class Policy:
    """All the policies together; every field has a default, so ``Policy()`` is a sane start."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    budget: BudgetPolicy = field(default_factory=BudgetPolicy)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    dns: DnsPolicy = field(default_factory=DnsPolicy)
    failover: FailoverPolicy = field(default_factory=FailoverPolicy)

    def __post_init__(self) -> None:
        for name, cls in (("retry", RetryPolicy), ("budget", BudgetPolicy), ("breaker", BreakerPolicy),
                          ("dns", DnsPolicy), ("failover", FailoverPolicy)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"Policy.{name}", f"must be a {cls.__name__}, got {getattr(self, name)!r}")


def coerce_policy(policy: Policy | None) -> Policy:
    if policy is None:
        return Policy()
    if not isinstance(policy, Policy):
        raise ConfigError("policy", f"must be a resilient_aws.Policy, got {policy!r}")
    return policy


__all__ = [
    "BreakerPolicy", "BudgetPolicy", "DnsPolicy", "FailoverPolicy", "Policy", "RetryPolicy",
    "coerce_policy",
]
