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

import dataclasses
import difflib
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import boto3
import botocore.session
from botocore.client import BaseClient
from botocore.config import Config

from . import _compat, _fork
from .client import ResilientClient
from .errors import ConfigError
from .events import Emitter, Listener
from .policy import Policy, coerce_policy
from .regions import HealthRegistry, RegionLane
from .timing import Timing, coerce_timing
from .validate import (
    check_endpoint_urls,
    check_private_failover,
    check_region,
    check_regions,
    check_regions_known_for,
    check_url,
    known_regions,
    resolve_failover_operations,
)

if TYPE_CHECKING:  # only a type here: the DNS cache (and dnspython) is imported when a policy enables it
    from .dns import DnsCache
    from .fleet import SharedState

logger = logging.getLogger("resilient_aws")

#: What every per-region client is configured with. Its retry handler is replaced anyway (see
#: ``retry.install_retry_handler``); standard mode with one attempt keeps any handler botocore
#: would add harmless, whatever ``AWS_RETRY_MODE``/``AWS_MAX_ATTEMPTS`` say.
NO_RETRIES = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def check_shared_state(shared_state: object) -> SharedState | None:
    if shared_state is None:
        return None
    from .fleet import SharedState

    if not isinstance(shared_state, SharedState):
        raise ConfigError("shared_state", f"must be a resilient_aws.RedisState (a SharedState), got {shared_state!r}")
    return shared_state


def _forced_config(config: object) -> Config:
    if config is None:
        return NO_RETRIES
    if not isinstance(config, Config):
        raise ConfigError("config", f"must be a botocore.config.Config, got {config!r}")
    if getattr(config, "retries", None):
        logger.debug("the config's retries setting is replaced: resilient_aws owns retries")
    return config.merge(NO_RETRIES)


def client_regions(bc_session: botocore.session.Session, service_name: str, primary: str | None,
                   session_fallbacks: tuple[str, ...], failover_regions: Iterable[str] | None,
                   endpoint_url: str | None, endpoint_urls: Mapping[str, str] | None,
                   ) -> tuple[tuple[str, ...], dict[str, str]]:
    """Check a client's service, regions and URLs (a ``ConfigError`` naming the field); return its
    regions, primary first, and the URL of each region that has one. Shared by the thread and the
    asyncio sessions, so both refuse the same mistakes with the same messages."""
    services = bc_session.get_available_services()
    if service_name not in services:
        close = difflib.get_close_matches(str(service_name), services, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError("service_name", f"unknown service {service_name!r}{hint}")
    if primary is None:
        raise ConfigError("region_name", "no region: pass region_name= (to Session or client) or set "
                                         "AWS_DEFAULT_REGION")
    check_region("region_name", primary)
    if failover_regions is None:
        fallbacks = tuple(r for r in session_fallbacks if r != primary)
    else:
        fallbacks = check_regions(primary, failover_regions)
    regions = (primary, *fallbacks)
    urls = check_endpoint_urls(endpoint_urls, regions)
    if endpoint_url is not None:
        check_url("endpoint_url", endpoint_url)
        if urls.get(primary, endpoint_url) != endpoint_url:
            raise ConfigError("endpoint_url", f"conflicts with endpoint_urls[{primary!r}]")
        urls[primary] = endpoint_url
    check_regions_known_for(bc_session, service_name, regions, urls,
                            ("region_name",) + ("failover_regions",) * len(fallbacks))
    check_private_failover(primary, urls.get(primary), fallbacks, urls)
    return regions, urls


class _Shared:
    """What one Session (or one wrap()) shares between its clients."""

    def __init__(self, policy: Policy, timing: Timing, shared_state: SharedState | None = None) -> None:
        self.policy = policy
        self.timing = timing
        self.shared_state = shared_state
        self.emitter = Emitter()
        self.health = HealthRegistry(policy, self.emitter, timing, shared_state)
        self.create_lock = threading.Lock()
        self._dns: DnsCache | None = None
        self._dns_lock = threading.Lock()
        _fork.register(self)

    def _after_fork(self) -> None:
        self.create_lock = threading.Lock()
        self._dns_lock = threading.Lock()

    def dns_cache(self) -> DnsCache | None:
        if not self.policy.dns.enabled:
            return None
        if self._dns is None:
            with self._dns_lock:
                if self._dns is None:
                    from .dns import DnsCache

                    fleet = None if self.shared_state is None else self.shared_state.dns(self.policy.dns)
                    self._dns = DnsCache(self.policy.dns, self.emitter, timing=self.timing, fleet=fleet)
        return self._dns

    def close(self) -> None:
        """Flush and stop the DNS cache (its last answers are persisted when ``persist_path`` is set)."""
        with self._dns_lock:
            dns, self._dns = self._dns, None
        if dns is not None:
            dns.close()

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


class Session(boto3.Session):
    """A drop-in for ``boto3.Session`` whose clients survive regional and DNS failures.

    It *is* a ``boto3.Session``: every boto3 customization, ``resource()`` (whose ``meta.client`` is
    the resilient client, so ``Table.get_item``, ``batch_writer()``, ``Bucket.upload_file`` go through
    the resilient loop), ``profile_name``, ``available_profiles``, ``get_credentials()``,
    ``get_available_regions()``, ``get_partition_for_region()``, ``events``. The positional
    arguments are boto3's; resilient_aws's own are keyword-only.

    Typing: ``resource()`` is boto3's, typed by your boto3 stubs (``DynamoDBServiceResource``...);
    ``client()`` is typed ``Any``, for your annotation to choose (see :meth:`client`).
    """

    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        region_name: str | None = None,
        botocore_session: botocore.session.Session | None = None,
        profile_name: str | None = None,
        aws_account_id: str | None = None,
        *,
        failover_regions: Iterable[str] | None = None,
        policy: Policy | None = None,
        boto3_session: boto3.Session | None = None,
        timing: Timing | None = None,
        shared_state: SharedState | None = None,
    ) -> None:
        """``failover_regions``: ordered fallbacks for every client; ``policy``: resilient_aws's knobs;
        ``boto3_session``: build on an existing boto3 session (its credentials, profile and region);
        ``timing``: replaces the clock, sleep and random source (tests, simulations);
        ``shared_state``: a :class:`~resilient_aws.RedisState` (or other ``SharedState``) through which
        the processes of a fleet share breakers, retry-budget floors and last-known-good DNS answers."""
        if botocore_session is not None and boto3_session is not None:
            raise ConfigError("boto3_session", "pass either botocore_session or boto3_session, not both")
        if boto3_session is not None:
            if not isinstance(boto3_session, boto3.Session):
                raise ConfigError("boto3_session", f"must be a boto3.Session, got {boto3_session!r}")
            botocore_session = boto3_session._session
            region_name = region_name or boto3_session.region_name
        elif botocore_session is not None and not isinstance(botocore_session, botocore.session.Session):
            raise ConfigError("botocore_session", f"must be a botocore.session.Session, got {botocore_session!r}")
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigError("aws_secret_access_key" if aws_access_key_id else "aws_access_key_id",
                              "aws_access_key_id and aws_secret_access_key go together")
        kwargs: dict[str, Any] = {}
        if aws_account_id is not None:
            kwargs["aws_account_id"] = aws_account_id
        super().__init__(aws_access_key_id=aws_access_key_id, aws_secret_access_key=aws_secret_access_key,
                         aws_session_token=aws_session_token, region_name=region_name,
                         botocore_session=botocore_session, profile_name=profile_name, **kwargs)
        region = self.region_name
        known = known_regions(self._session)
        if region is not None:
            check_region("region_name", region, known)
        self.failover_regions: tuple[str, ...] = check_regions(region or "", failover_regions, known=known)
        self.policy: Policy = coerce_policy(policy)
        self._shared = _Shared(self.policy, coerce_timing(timing), check_shared_state(shared_state))
        self._clients: weakref.WeakSet[ResilientClient] = weakref.WeakSet()

    @property
    def botocore_session(self) -> botocore.session.Session:
        """The botocore session underneath (boto3 keeps it as ``_session``)."""
        return self._session

    def __repr__(self) -> str:
        return (f"resilient_aws.Session(region_name={self.region_name!r}, "
                f"failover_regions={list(self.failover_regions)!r})")

    def close(self) -> None:
        """Release what the session holds beyond its clients: the DNS cache (persisting its last
        good answers when ``DnsPolicy.persist_path`` is set). Clients made earlier keep working; a
        client made later starts a new cache."""
        self._shared.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: Listener) -> None:
        """Receive the events of every client of this session (failure path only)."""
        self._shared.emitter.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._shared.emitter.remove(listener)

    def client(
        self,
        service_name: str,
        region_name: str | None = None,
        api_version: str | None = None,
        use_ssl: bool | None = True,
        verify: bool | str | None = None,
        endpoint_url: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        config: Config | None = None,
        aws_account_id: str | None = None,
        *,
        endpoint_urls: Mapping[str, str] | None = None,
        failover_regions: Iterable[str] | None = None,
    ) -> Any:
        """Like ``boto3.Session.client``; ``region_name``/``endpoint_url`` are the primary's.

        ``endpoint_urls`` maps regions to URLs (VPC endpoints, local servers, tests);
        ``failover_regions`` overrides the session's for this client.

        Returns a :class:`ResilientClient`, which behaves like the service's botocore client. The
        return type is ``Any`` so that your own annotation decides how it is checked: a boto3 stubs
        client type (``ddb: DynamoDBClient = session.client("dynamodb")`` with ``types-boto3`` or
        ``boto3-stubs``) checks every operation and its arguments; ``ResilientClient`` gives the
        resilient_aws methods (``stats()``, ``add_listener()``, ``regions``).
        """
        bc_session = self._session
        regions, urls = client_regions(bc_session, service_name,
                                       region_name if region_name is not None else self.region_name,
                                       self.failover_regions, failover_regions, endpoint_url, endpoint_urls)
        merged = _forced_config(config)
        shared = self._shared
        holder: dict[str, BaseClient] = {}
        extra = {"aws_account_id": aws_account_id} if aws_account_id is not None else {}

        def factory(region: str) -> BaseClient:
            with shared.create_lock:  # botocore sessions are not safe for concurrent create_client
                client = bc_session.create_client(
                    service_name, region_name=region, api_version=api_version, use_ssl=use_ssl,
                    verify=verify, endpoint_url=urls.get(region), aws_access_key_id=aws_access_key_id,
                    aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
                    config=merged, **extra)
            return shared.prepare(client, holder.get("primary"))

        lanes = [RegionLane(r, shared.health.get(service_name, r, urls.get(r)), factory) for r in regions]
        holder["primary"] = lanes[0].client()
        policy = self.policy
        failover = resolve_failover_operations(policy.failover, holder["primary"].meta.service_model, bc_session)
        if failover is not policy.failover:
            policy = dataclasses.replace(policy, failover=failover)
        client = ResilientClient(service_name, lanes, policy, shared.emitter, shared.dns_cache(), shared.timing)
        self._clients.add(client)
        return client

    def clients(self) -> tuple[ResilientClient, ...]:
        """The resilient clients of this session that are still alive (for metrics exporters)."""
        return tuple(self._clients)


