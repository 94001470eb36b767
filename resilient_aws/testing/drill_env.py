"""``outage_drill()``: a whole miniature AWS on loopback — regions, DNS, data — that a test can break.

Why: the failures that matter (a DNS record emptied, a region answering 503, a region unreachable)
cannot be rehearsed against real AWS, and mocks cannot show them at all. An :class:`OutageDrill`
starts moto's HTTP server for each region (us-east-1 on 127.0.0.1, us-west-2 on 127.0.0.2, ... all on
one port) and a DNS server for a test zone whose names point at them, and hands out the
``Policy`` and ``endpoint_urls`` that aim a :class:`resilient_aws.Session` at that world. The test
then breaks and heals pieces while its code runs, and reads what the servers really received.

Names: ``{service}.{region}.{zone}``, e.g. ``dynamodb.us-east-1.drill.test``; with ``label=`` a
name of its own per client (``legacy.dynamodb.us-east-1.drill.test``), so the DNS server can count
each client's queries apart. Faults on a region apply to every name of that region.

From asyncio code (the ``aio`` extra: aiobotocore), :meth:`OutageDrill.aio_session` is
:meth:`~OutageDrill.session` for ``resilient_aws.aio``; the drill itself is synchronous (servers in
threads, fault switches that return at once), so an async test calls it directly, with the
``aws_outage_drill`` fixture as with any other (pytest-asyncio or anyio)::

    async def test_reads_survive_an_emptied_dns_record(aws_outage_drill):
        aws_outage_drill.create_table("orders", [{"pk": {"S": "1"}}])
        session = aws_outage_drill.aio_session()
        async with session.create_client("dynamodb", endpoint_urls=aws_outage_drill.endpoint_urls()) as ddb:
            await ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}})   # learn the address
            aws_outage_drill.dns_empty("us-east-1")
            assert (await ddb.get_item(TableName="orders", Key={"pk": {"S": "1"}}))["Item"]
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

from .counters import EndpointCounts
from .endpoint import LoopbackEndpoint, start_region_endpoints
from .tables import TEST_CREDENTIALS, plain_client, seed_regions

if TYPE_CHECKING:
    from ..session import Session

__all__ = ["DEFAULT_REGIONS", "DEFAULT_ZONE", "DnsBackend", "OutageDrill", "outage_drill"]

DEFAULT_REGIONS: tuple[str, ...] = ("us-east-1", "us-west-2")
DEFAULT_ZONE = "drill.test"


class DnsBackend(Protocol):
    """What a drill needs from a DNS server (``LoopbackDnsServer`` has it; so does the drill's BIND 9
    wrapper). ``set_mode`` takes "answer", "empty", "nxdomain", "servfail" or "drop"."""

    host: str
    port: int

    def start(self) -> Any: ...
    def stop(self) -> None: ...
    def set(self, name: str, a: Sequence[str] = (), aaaa: Sequence[str] = (), ttl: int = 5) -> None: ...
    def set_mode(self, name: str, mode: str) -> None: ...
    def count(self, name: str | None = None) -> int: ...


class OutageDrill:
    """Loopback regions + DNS for one drill. Use :func:`outage_drill` (a context manager) or the
    pytest fixture ``aws_outage_drill``; ``start()``/``stop()`` exist for long-lived harnesses.

    Thread-safe for the fault switches: a test may flip them while its workers call.
    """

    def __init__(self, regions: Sequence[str] = DEFAULT_REGIONS, *, port: int = 0, zone: str = DEFAULT_ZONE,
                 ttl: int = 5, dns: DnsBackend | None = None) -> None:
        if not regions:
            raise ValueError("an outage drill needs at least one region")
        if len(set(regions)) != len(regions):
            raise ValueError(f"regions must be distinct, got {list(regions)!r}")
        self.regions: tuple[str, ...] = tuple(regions)
        self.zone = zone.strip(".").lower()
        self.ttl = int(ttl)
        self._port = port
        self._dns_given = dns
        self.dns: DnsBackend | None = None
        self.endpoints: dict[str, LoopbackEndpoint] = {}
        self._lock = threading.Lock()
        self._names: dict[str, set[str]] = {r: set() for r in self.regions}   # region -> names served
        self._dns_modes: dict[str, str] = {}                                  # region -> current DNS mode

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> OutageDrill:
        try:
            self.endpoints = start_region_endpoints(self.regions, self._port)
            if self._dns_given is not None:
                self.dns = self._dns_given
            else:
                from .dns_server import LoopbackDnsServer

                self.dns = LoopbackDnsServer()
            self.dns.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop every server (idempotent, safe after a failed start)."""
        for ep in self.endpoints.values():
            with contextlib.suppress(Exception):
                ep.stop()
        if self.dns is not None:
            with contextlib.suppress(Exception):
                self.dns.stop()

    def __enter__(self) -> OutageDrill:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port every region's endpoint listens on."""
        return next(iter(self.endpoints.values())).port

    @property
    def dns_host(self) -> str:
        """The address the drill's DNS server listens on."""
        return self._dns().host

    @property
    def dns_port(self) -> int:
        return self._dns().port

    # -- names, URLs, policies -----------------------------------------------------------------
    def host_name(self, region: str, service: str = "dynamodb", label: str | None = None) -> str:
        """The DNS name of ``service`` in ``region`` (created on first use, in the region's DNS mode)."""
        self._check_region(region)
        name = ".".join(p for p in (label, service, region, self.zone) if p)
        with self._lock:
            if name not in self._names[region]:
                self._names[region].add(name)
                self._dns().set(name, a=[self.endpoints[region].host], ttl=self.ttl)
                mode = self._dns_modes.get(region, "answer")
                if mode != "answer":
                    self._dns().set_mode(name, mode)
        return name

    def endpoint_urls(self, service: str = "dynamodb", label: str | None = None) -> dict[str, str]:
        """``{region: "http://{service}.{region}.{zone}:PORT"}`` for ``session.client(endpoint_urls=)``."""
        return {r: f"http://{self.host_name(r, service, label)}:{self.port}" for r in self.regions}

    def ip_urls(self) -> dict[str, str]:
        """``{region: "http://127.0.0.N:PORT"}``: the endpoints without DNS (set-up, checks)."""
        return {r: ep.url for r, ep in self.endpoints.items()}

    def dns_policy(self, **overrides: Any) -> Any:
        """A ``DnsPolicy`` that asks this drill's DNS server (``timeout`` 1 s unless overridden)."""
        from ..policy import DnsPolicy

        options: dict[str, Any] = {"nameservers": [self._dns().host], "port": self._dns().port, "timeout": 1.0}
        options.update(overrides)
        return DnsPolicy(**options)

    def policy(self, base: Any = None, **overrides: Any) -> Any:
        """``base`` (default ``Policy()``) with its DNS aimed at the drill; ``overrides`` replace whole
        sub-policies: ``drill.policy(breaker=BreakerPolicy(open_time=1.0))``."""
        from ..policy import Policy

        policy = base if base is not None else Policy()
        dns = overrides.pop("dns", None) or replace(policy.dns, nameservers=(self._dns().host,),
                                                    port=self._dns().port, timeout=min(policy.dns.timeout, 1.0))
        return replace(policy, dns=dns, **overrides)

    def session(self, policy: Any = None, *, primary: str | None = None,
                failover_regions: Iterable[str] | None = None, **kwargs: Any) -> Session:
        """A ``resilient_aws.Session`` with test credentials, primary ``regions[0]``, failing over to
        the others, and :meth:`policy` (``policy`` given here is aimed at the drill's DNS too)."""
        from ..session import Session

        primary = primary or self.regions[0]
        if failover_regions is None:
            failover_regions = [r for r in self.regions if r != primary]
        return Session(region_name=primary, failover_regions=list(failover_regions),
                       policy=self.policy(policy), **{**TEST_CREDENTIALS, **kwargs})

    def aio_session(self, policy: Any = None, *, primary: str | None = None,
                    failover_regions: Iterable[str] | None = None, **kwargs: Any) -> Any:
        """:meth:`session` for asyncio: a ``resilient_aws.aio.Session`` with test credentials, primary
        ``regions[0]``, failing over to the others, and :meth:`policy`. ``kwargs`` go to the session
        (``aio_session=``, ``timing=``, ...). Needs the ``aio`` extra (aiobotocore), imported only here.
        Its clients: ``async with session.create_client("dynamodb", endpoint_urls=drill.endpoint_urls())``.
        """
        import importlib

        # by name: the drill is type-checked (and used) where aiobotocore and aiohttp are not installed
        aio = importlib.import_module("resilient_aws.aio")
        primary = primary or self.regions[0]
        if failover_regions is None:
            failover_regions = [r for r in self.regions if r != primary]
        return aio.Session(region_name=primary, failover_regions=list(failover_regions),
                           policy=self.policy(policy), **{**TEST_CREDENTIALS, **kwargs})

    def client(self, service: str = "dynamodb", *, policy: Any = None, label: str | None = None,
               **kwargs: Any) -> Any:
        """``self.session(policy).client(service, endpoint_urls=self.endpoint_urls(service, label))``."""
        return self.session(policy).client(service, endpoint_urls=self.endpoint_urls(service, label), **kwargs)

    def plain_client(self, region: str, service: str = "dynamodb", **config: Any) -> Any:
        """A plain botocore client on the region's IP URL (no DNS, retries off): set-up and checks."""
        self._check_region(region)
        return plain_client(service, region, self.endpoints[region].url, **config)

    # -- data ----------------------------------------------------------------------------------
    def create_table(self, name: str, items: Iterable[Mapping[str, Any]] = (), *, key: str = "pk") -> None:
        """The same DynamoDB table and items in every region: global-table-like data."""
        seed_regions(self.endpoints, name, items, key=key)

    # -- faults: DNS ---------------------------------------------------------------------------
    def dns_empty(self, region: str | None = None) -> None:
        """NOERROR with no records for the region's names: what ``dynamodb.us-east-1.amazonaws.com``
        answered on 2025-10-20 (``region=None``: every region)."""
        self._dns_mode(region, "empty")

    def dns_nxdomain(self, region: str | None = None) -> None:
        """The names do not exist (a removed record)."""
        self._dns_mode(region, "nxdomain")

    dns_remove = dns_nxdomain

    def dns_servfail(self, region: str | None = None) -> None:
        self._dns_mode(region, "servfail")

    def dns_timeout(self, region: str | None = None) -> None:
        """The DNS server stays silent for the region's names: lookups time out."""
        self._dns_mode(region, "drop")

    def dns_restore(self, region: str | None = None) -> None:
        self._dns_mode(region, "answer")

    # -- faults: endpoints ---------------------------------------------------------------------
    def fail(self, region: str, status: int = 503, code: str | None = None) -> None:
        """The region answers every request with ``status`` (an AWS-shaped error)."""
        self.endpoint(region).fail_with(status, code)

    def slow(self, region: str, seconds: float) -> None:
        self.endpoint(region).slow(seconds)

    def unreachable(self, region: str) -> None:
        """Connections to the region are refused (the port stays reserved)."""
        self.endpoint(region).unreachable()

    def heal(self, region: str) -> None:
        """The region's endpoint serves normally again (its DNS is left as it is)."""
        self.endpoint(region).healthy()

    def restore(self, region: str | None = None) -> None:
        """Undo every fault, DNS and endpoint, for one region or all."""
        for r in self._regions(region):
            self.heal(r)
        self.dns_restore(region)

    # -- what the servers saw ------------------------------------------------------------------
    def endpoint(self, region: str) -> LoopbackEndpoint:
        self._check_region(region)
        return self.endpoints[region]

    def requests(self, region: str | None = None) -> int:
        """HTTP requests received by one region's endpoint, or by all."""
        return sum(self.endpoints[r].requests for r in self._regions(region))

    def counts(self, region: str) -> EndpointCounts:
        return self.endpoint(region).counts()

    def dns_queries(self, region: str | None = None, label: str | None = None) -> int:
        """DNS queries received for the drill's names (of one region / one label), all types."""
        total = 0
        for r in self._regions(region):
            with self._lock:
                names = list(self._names[r])
            for name in names:
                if label is None or name.startswith(f"{label}."):
                    total += self._dns().count(name)
        return total

    def reset_counts(self) -> None:
        """Zero the endpoints' counters (DNS counters are read as differences; see ``dns_queries``)."""
        for ep in self.endpoints.values():
            ep.reset_counts()
        reset = getattr(self.dns, "reset_counts", None)
        if reset is not None:
            reset()

    # -- internals -----------------------------------------------------------------------------
    def _dns(self) -> DnsBackend:
        if self.dns is None:
            raise RuntimeError("the drill is not started; use it as a context manager or call start()")
        return self.dns

    def _check_region(self, region: str) -> None:
        if region not in self.regions:
            raise ValueError(f"{region!r} is not one of this drill's regions {list(self.regions)!r}")

    def _regions(self, region: str | None) -> tuple[str, ...]:
        if region is None:
            return self.regions
        self._check_region(region)
        return (region,)

    def _dns_mode(self, region: str | None, mode: str) -> None:
        for r in self._regions(region):
            with self._lock:
                self._dns_modes[r] = mode
                names = list(self._names[r])
            for name in names:
                self._dns().set_mode(name, mode)


@contextlib.contextmanager
def outage_drill(regions: Sequence[str] = DEFAULT_REGIONS, *, port: int = 0, zone: str = DEFAULT_ZONE,
                 ttl: int = 5, dns: DnsBackend | None = None) -> Iterator[OutageDrill]:
    """Start an :class:`OutageDrill` and stop every server on exit, exceptions included."""
    drill = OutageDrill(regions, port=port, zone=zone, ttl=ttl, dns=dns)
    drill.start()
    try:
        yield drill
    finally:
        drill.stop()
