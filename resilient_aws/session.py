"""Session and wrap(): where resilient clients come from.

``Session`` mirrors ``boto3.Session``: the same credential and profile arguments, a ``client()``
that accepts boto3's arguments, plus ``failover_regions``, ``policy`` and per-region
``endpoint_urls``. Everything that should be shared is per session: one breaker and one retry
budget per endpoint (service, region, URL), one DNS cache, one set of listeners — so two clients
of one session agree about which endpoint is down.

Every per-region botocore client has botocore's retry handler replaced by resilient_aws's (see
``retry.py``): one retry decision-maker, because retries stacked in two layers multiply
(3 x 3 = 9 attempts).

A client whose primary endpoint is not AWS's own (``endpoint_url=``, a VPC endpoint, a local server)
fails over only to regions given in ``endpoint_urls``: moving a call from a private endpoint to a
public one is not a failover the caller asked for, so it is a ``ConfigError`` at ``client()``.
"""

from __future__ import annotations

import difflib
import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import botocore.session
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import InvalidRegionError
from botocore.utils import validate_region_name

from . import _compat, _fork
from .client import ResilientClient
from .errors import ConfigError
from .events import Emitter, Listener
from .policy import Policy, coerce_policy
from .regions import HealthRegistry, RegionLane
from .timing import Timing, coerce_timing

logger = logging.getLogger("resilient_aws")

#: What every per-region client is configured with. Its retry handler is replaced anyway (see
#: ``retry.install_retry_handler``); standard mode with one attempt keeps any handler botocore
#: would add harmless, whatever ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS`` say.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def _check_region(field: str, region: object) -> str:
    if not isinstance(region, str) or not region:
        raise ConfigError(field, f"must be a region name such as 'us-east-1', got {region!r}")
    try:
        validate_region_name(region)
    except InvalidRegionError:
        raise ConfigError(field, f"{region!r} is not a valid region name") from None
    return region


def _check_regions(primary: str, failover_regions: object, field: str = "failover_regions") -> tuple[str, ...]:
    if failover_regions is None:
        return ()
    if isinstance(failover_regions, str) or not isinstance(failover_regions, Iterable):
        raise ConfigError(field, f"must be a list of region names, got {failover_regions!r}")
    regions: list[str] = []
    for region in failover_regions:
        _check_region(field, region)
        if region == primary:
            raise ConfigError(field, f"{region!r} is the primary region; list only other regions")
        if region in regions:
            raise ConfigError(field, f"{region!r} is listed twice")
        regions.append(region)
    return tuple(regions)


def _check_endpoint_urls(endpoint_urls: object, regions: tuple[str, ...]) -> dict[str, str]:
    if endpoint_urls is None:
        return {}
    if not isinstance(endpoint_urls, Mapping):
        raise ConfigError("endpoint_urls", f"must be a mapping {{region: url}}, got {endpoint_urls!r}")
    urls: dict[str, str] = {}
    for region, url in endpoint_urls.items():
        if region not in regions:
            raise ConfigError("endpoint_urls", f"region {region!r} is neither the primary nor a failover "
                                               f"region ({', '.join(regions)})")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ConfigError("endpoint_urls", f"{region}: {url!r} is not an http(s) URL")
        urls[region] = url
    return urls


def _forced_config(config: object) -> Config:
    if config is None:
        return NO_RETRIES
    if not isinstance(config, Config):
        raise ConfigError("config", f"must be a botocore.config.Config, got {config!r}")
    if getattr(config, "retries", None):
        logger.debug("resilient_aws: the config's retries setting is replaced: resilient_aws owns retries")
    return config.merge(NO_RETRIES)


def _check_private_failover(primary: str, custom_url: str | None, fallbacks: tuple[str, ...],
                            urls: Mapping[str, str]) -> None:
    """A custom primary endpoint fails over only to regions whose endpoint the caller gave too."""
    if custom_url is None:
        return
    missing = [r for r in fallbacks if r not in urls]
    if missing:
        raise ConfigError("endpoint_urls", f"the primary region {primary!r} uses its own endpoint ({custom_url}), "
                                           f"so a failover region needs one too: add {', '.join(map(repr, missing))} "
                                           f"to endpoint_urls, or pass failover_regions=[] for this client "
                                           f"(otherwise calls would move to AWS's public endpoint)")


def _default_endpoint(bc_session: botocore.session.Session, client: BaseClient) -> str:
    """The URL botocore would use for ``client``'s service and region with no endpoint_url."""
    probe = bc_session.create_client(client.meta.service_model.service_name, region_name=client.meta.region_name,
                                     config=client.meta.config, aws_access_key_id="probe",
                                     aws_secret_access_key="probe")
    try:
        return probe.meta.endpoint_url
    finally:
        probe.close()


class _Shared:
    """What one Session (or one wrap()) shares between its clients."""

    def __init__(self, policy: Policy, timing: Timing) -> None:
        self.policy = policy
        self.timing = timing
        self.emitter = Emitter()
        self.health = HealthRegistry(policy, self.emitter, timing)
        self.create_lock = threading.Lock()
        self._dns = None
        self._dns_lock = threading.Lock()
        _fork.register(self)

    def _after_fork(self) -> None:
        self.create_lock = threading.Lock()
        self._dns_lock = threading.Lock()

    def dns_cache(self) -> Any:
        if not self.policy.dns.enabled:
            return None
        if self._dns is None:
            with self._dns_lock:
                if self._dns is None:
                    from .dns import DnsCache

                    self._dns = DnsCache(self.policy.dns, self.emitter)
        return self._dns

    def prepare(self, client: BaseClient, primary: BaseClient | None) -> BaseClient:
        """Per-region client set-up: share the primary's exception classes (so ``except
        client.exceptions.X`` catches X from any region) and route its DNS through the cache."""
        if primary is not None and primary is not client:
            _compat.share_exceptions(client, primary.exceptions)
        cache = self.dns_cache()
        if cache is not None:
            from .dns import attach_dns

            attach_dns(client, cache)
        return client


class Session:
    """A drop-in for ``boto3.Session`` whose clients survive regional and DNS failures."""

    def __init__(
        self,
        region_name: str | None = None,
        failover_regions: Iterable[str] | None = None,
        policy: Policy | None = None,
        botocore_session: botocore.session.Session | None = None,
        boto3_session: Any = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        profile_name: str | None = None,
        *,
        timing: Timing | None = None,
    ) -> None:
        """``timing`` replaces the clock, sleep and random source (tests, simulations)."""
        if botocore_session is not None and boto3_session is not None:
            raise ConfigError("boto3_session", "pass either botocore_session or boto3_session, not both")
        if boto3_session is not None:
            inner = getattr(boto3_session, "_session", None)
            if not isinstance(inner, botocore.session.Session):
                raise ConfigError("boto3_session", f"must be a boto3.Session, got {boto3_session!r}")
            botocore_session = inner
            region_name = region_name or boto3_session.region_name
        if botocore_session is None:
            botocore_session = botocore.session.Session(profile=profile_name)
        elif not isinstance(botocore_session, botocore.session.Session):
            raise ConfigError("botocore_session", f"must be a botocore.session.Session, got {botocore_session!r}")
        elif profile_name is not None:
            botocore_session.set_config_variable("profile", profile_name)
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigError("aws_secret_access_key" if aws_access_key_id else "aws_access_key_id",
                              "aws_access_key_id and aws_secret_access_key go together")
        if aws_access_key_id is not None:
            botocore_session.set_credentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
        if region_name is None:
            region_name = botocore_session.get_config_variable("region")
        if region_name is None:
            raise ConfigError("region_name", "no region: pass region_name= or set AWS_DEFAULT_REGION")
        self.region_name: str = _check_region("region_name", region_name)
        self.failover_regions: tuple[str, ...] = _check_regions(self.region_name, failover_regions)
        self.policy: Policy = coerce_policy(policy)
        self.botocore_session = botocore_session
        self._shared = _Shared(self.policy, coerce_timing(timing))

    def __repr__(self) -> str:
        return (f"resilient_aws.Session(region_name={self.region_name!r}, "
                f"failover_regions={list(self.failover_regions)!r})")

    def add_listener(self, listener: Listener) -> None:
        """Receive the events of every client of this session (failure path only)."""
        self._shared.emitter.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._shared.emitter.remove(listener)

    def get_available_services(self) -> list[str]:
        return self.botocore_session.get_available_services()

    def client(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Config | None = None,
        *,
        endpoint_urls: Mapping[str, str] | None = None,
        failover_regions: Iterable[str] | None = None,
    ) -> ResilientClient:
        """Like ``boto3.Session.client``; ``region_name``/``endpoint_url`` are the primary's.

        ``endpoint_urls`` maps regions to URLs (VPC endpoints, local servers, tests);
        ``failover_regions`` overrides the session's for this client.
        """
        services = self.botocore_session.get_available_services()
        if service_name not in services:
            close = difflib.get_close_matches(str(service_name), services, n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError("service_name", f"unknown service {service_name!r}{hint}")
        primary = _check_region("region_name", region_name) if region_name is not None else self.region_name
        if failover_regions is None:
            fallbacks = tuple(r for r in self.failover_regions if r != primary)
        else:
            fallbacks = _check_regions(primary, failover_regions)
        regions = (primary, *fallbacks)
        urls = _check_endpoint_urls(endpoint_urls, regions)
        if endpoint_url is not None:
            if not isinstance(endpoint_url, str) or not endpoint_url.startswith(("http://", "https://")):
                raise ConfigError("endpoint_url", f"{endpoint_url!r} is not an http(s) URL")
            if urls.get(primary, endpoint_url) != endpoint_url:
                raise ConfigError("endpoint_url", f"conflicts with endpoint_urls[{primary!r}]")
            urls[primary] = endpoint_url
        _check_private_failover(primary, urls.get(primary), fallbacks, urls)
        merged = _forced_config(config)
        shared = self._shared
        bc_session = self.botocore_session
        holder: dict[str, BaseClient] = {}

        def factory(region: str) -> BaseClient:
            with shared.create_lock:  # botocore sessions are not safe for concurrent create_client
                client = bc_session.create_client(
                    service_name, region_name=region, api_version=api_version, use_ssl=use_ssl,
                    verify=verify, endpoint_url=urls.get(region), aws_access_key_id=aws_access_key_id,
                    aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
                    config=merged)
            return shared.prepare(client, holder.get("primary"))

        lanes = [RegionLane(r, shared.health.get(service_name, r, urls.get(r)), factory) for r in regions]
        holder["primary"] = lanes[0].client()
        return ResilientClient(service_name, lanes, self.policy, shared.emitter, shared.dns_cache(), shared.timing)


def wrap(
    client: BaseClient,
    failover_regions: Iterable[str] | None = None,
    policy: Policy | None = None,
    *,
    endpoint_urls: Mapping[str, str] | None = None,
    botocore_session: botocore.session.Session | None = None,
    timing: Timing | None = None,
) -> ResilientClient:
    """Harden an existing botocore/boto3 client in place.

    Its own retry handler is replaced by resilient_aws's (one retry decision-maker), its connections
    go through the DNS cache when enabled, and clients for ``failover_regions`` are created on first
    need from ``botocore_session`` — by default a new session carrying the client's own credentials —
    with the client's config. Call the returned client: only it can move a call to another region
    (a call made on the original object still gets resilient_aws's in-region retries and breaker).
    """
    if not isinstance(client, BaseClient):
        raise ConfigError("client", f"must be a botocore/boto3 client, got {client!r}")
    policy = coerce_policy(policy)
    service = client.meta.service_model.service_name
    primary = client.meta.region_name
    fallbacks = _check_regions(primary, failover_regions)
    urls = _check_endpoint_urls(endpoint_urls, (primary, *fallbacks))
    if primary in urls and urls[primary] != client.meta.endpoint_url:
        raise ConfigError("endpoint_urls", f"{primary!r} is the wrapped client's own region; its endpoint "
                                           f"is {client.meta.endpoint_url!r}")
    if botocore_session is not None and not isinstance(botocore_session, botocore.session.Session):
        raise ConfigError("botocore_session", f"must be a botocore.session.Session, got {botocore_session!r}")
    own_url = client.meta.endpoint_url
    custom = None
    if fallbacks and own_url != _default_endpoint(botocore_session or botocore.session.get_session(), client):
        custom = own_url
    _check_private_failover(primary, custom, fallbacks, urls)
    shared = _Shared(policy, coerce_timing(timing))
    shared.prepare(client, None)
    merged = client.meta.config.merge(NO_RETRIES)
    sessions: list[botocore.session.Session] = [botocore_session] if botocore_session else []

    def factory(region: str) -> BaseClient:
        with shared.create_lock:
            if not sessions:
                new = botocore.session.get_session()
                credentials = _compat.client_credentials(client)
                if credentials is not None:
                    _compat.use_credentials(new, credentials)
                sessions.append(new)
            created = sessions[0].create_client(service, region_name=region, endpoint_url=urls.get(region),
                                                config=merged)
        return shared.prepare(created, client)

    lanes = [RegionLane(primary, shared.health.get(service, primary, custom), factory, client=client)]
    lanes += [RegionLane(r, shared.health.get(service, r, urls.get(r)), factory) for r in fallbacks]
    return ResilientClient(service, lanes, policy, shared.emitter, shared.dns_cache(), shared.timing)
