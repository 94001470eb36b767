"""``resilient_aws.aio.Session``: aiobotocore's ``AioSession``, with resilient clients.

``async with session.create_client("dynamodb") as ddb:`` (or ``session.client(...)``) gives a client
that behaves like aiobotocore's, with the thread client's breakers, budgets, failover rules, retry
contract, events and ``stats()``: the same objects, shared with nothing copied. What is per session is
what the thread ``Session`` shares: one breaker and one retry budget per endpoint, one DNS cache (here
served to aiohttp through :class:`~resilient_aws.aio.resolver.CachedResolver`), one set of listeners.

Mistakes in the arguments raise ``ConfigError`` when ``create_client()`` is called, before anything is
awaited (the same checks as the thread session: ``session.client_regions``).
"""

from __future__ import annotations

import dataclasses
import logging
import weakref
from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import botocore.session
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession
from botocore.config import Config

from .. import _compat
from ..errors import ConfigError
from ..events import Listener
from ..policy import Policy, coerce_policy
from ..regions import RegionLane
from ..session import NO_RETRIES, _Shared, check_shared_state, client_regions
from ..timing import Timing, coerce_timing
from ..validate import check_region, check_regions, known_regions, resolve_failover_operations
from .client import AioResilientClient

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import SharedState
    from .resolver import CachedResolver

logger = logging.getLogger("resilient_aws")


class AioShared(_Shared):
    """A session's (or an ``aio.wrap()``'s) shared parts, plus the aiohttp resolver over its DNS cache."""

    _resolver: CachedResolver | None = None

    def resolver(self) -> CachedResolver | None:
        """The resolver every client of this session gives aiohttp (None when DNS caching is off)."""
        cache = self.dns_cache()
        if cache is None:
            return None
        if self._resolver is None or self._resolver.cache is not cache:
            from .resolver import CachedResolver

            self._resolver = CachedResolver(cache)
        return self._resolver

    def config(self, config: object) -> AioConfig:
        """The caller's config with resilient_aws's retries (none: ours decide) and DNS resolver.

        ``AioConfig.merge`` replaces ``connector_args`` wholesale, so the caller's own connector
        arguments (pool limits, keep-alive) are carried over explicitly."""
        if config is None:
            base = AioConfig()
        elif isinstance(config, AioConfig):
            base = config
        elif isinstance(config, Config):
            base = AioConfig().merge(config)
        else:
            raise ConfigError("config", f"must be an aiobotocore AioConfig (or a botocore Config), got {config!r}")
        merged = base.merge(NO_RETRIES)
        resolver = self.resolver()
        if resolver is None:
            return merged
        from aiobotocore.httpsession import AIOHTTPSession

        if getattr(merged, "http_session_cls", AIOHTTPSession) is not AIOHTTPSession:
            logger.warning("resilient_aws: DNS caching needs aiobotocore's aiohttp session; %s has no resolver "
                           "seam, so its connections resolve names without the last-known-good cache",
                           merged.http_session_cls)
            return merged
        from .resolver import connector_args

        user_args = base._user_provided_options.get("connector_args")
        return merged.merge(AioConfig(connector_args=connector_args(resolver, user_args)))

    def close(self) -> None:
        self._resolver = None
        super().close()


class _ClientContext:
    """What ``create_client()`` returns: entering it creates and enters every region's aiobotocore
    client, leaving it closes them (aiobotocore's ``ClientCreatorContext``, for a resilient client)."""

    def __init__(self, session: Session, create: Any) -> None:
        self._session = session
        self._create = create
        self._client: AioResilientClient | None = None

    async def __aenter__(self) -> Any:
        self._client = client = await self._create()
        self._session._clients.add(client)
        return client

    async def __aexit__(self, *exc: object) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()


class Session:
    """aiobotocore's ``AioSession`` whose clients survive regional and DNS failures.

    ``region_name``, ``profile_name`` and the credentials are set on the ``AioSession`` (given as
    ``aio_session``, or a new one); resilient_aws's own arguments are those of the thread
    :class:`resilient_aws.Session`. One client per event loop (aiohttp's rule); the breakers, budgets
    and DNS cache may be shared by clients on several loops and threads.
    """

    def __init__(
        self,
        *,
        region_name: str | None = None,
        profile_name: str | None = None,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        aio_session: AioSession | None = None,
        failover_regions: Iterable[str] | None = None,
        policy: Policy | None = None,
        timing: Timing | None = None,
        shared_state: SharedState | None = None,
    ) -> None:
        if aio_session is not None and not isinstance(aio_session, AioSession):
            raise ConfigError("aio_session", f"must be an aiobotocore AioSession, got {aio_session!r}")
        if aio_session is not None and profile_name is not None:
            raise ConfigError("profile_name", "pass either aio_session or profile_name, not both")
        if (aws_access_key_id is None) != (aws_secret_access_key is None):
            raise ConfigError("aws_secret_access_key" if aws_access_key_id else "aws_access_key_id",
                              "aws_access_key_id and aws_secret_access_key go together")
        session = aio_session if aio_session is not None else AioSession(profile=profile_name)
        if profile_name is not None:
            session.get_scoped_config()  # an unknown profile fails here (ProfileNotFound), not at the first call
        if aws_access_key_id is not None:
            session.set_credentials(aws_access_key_id, aws_secret_access_key, aws_session_token)
        if region_name is not None:
            session.set_config_variable("region", region_name)
        self._session: AioSession = session
        # the endpoint data and service models, read through a botocore session: AioSession's region
        # look-ups are coroutines, and the checks run before anything is awaited
        self._data = botocore.session.get_session()
        region = self.region_name
        known = known_regions(self._data)
        if region is not None:
            check_region("region_name", region, known)
        self.failover_regions: tuple[str, ...] = check_regions(region or "", failover_regions, known=known)
        self.policy: Policy = coerce_policy(policy)
        self._shared = AioShared(self.policy, coerce_timing(timing), check_shared_state(shared_state))
        self._clients: weakref.WeakSet[AioResilientClient] = weakref.WeakSet()

    @property
    def region_name(self) -> str | None:
        region = self._session.get_config_variable("region")
        return str(region) if region else None

    @property
    def aio_session(self) -> AioSession:
        """The aiobotocore session underneath."""
        return self._session

    def __repr__(self) -> str:
        return (f"resilient_aws.aio.Session(region_name={self.region_name!r}, "
                f"failover_regions={list(self.failover_regions)!r})")

    def close(self) -> None:
        """Release the DNS cache (persisting its last good answers when ``persist_path`` is set)."""
        self._shared.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def add_listener(self, listener: Listener) -> None:
        """Receive the events of every client of this session (failure path only)."""
        self._shared.emitter.add(listener)

    def remove_listener(self, listener: Listener) -> None:
        self._shared.emitter.remove(listener)

    def clients(self) -> tuple[AioResilientClient, ...]:
        """The resilient clients of this session that are still alive (for metrics exporters)."""
        return tuple(self._clients)

    def create_client(
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
        """Like ``AioSession.create_client``: ``async with session.create_client("dynamodb") as ddb``.

        ``region_name``/``endpoint_url`` are the primary's; ``endpoint_urls`` maps regions to URLs;
        ``failover_regions`` overrides the session's for this client. The entered client is an
        :class:`~resilient_aws.aio.AioResilientClient` (typed ``Any``: annotate it with your
        types-aiobotocore client type, or ``AioResilientClient`` for ``stats()``).
        """
        session = self._session
        regions, urls = client_regions(self._data, service_name,
                                       region_name if region_name is not None else self.region_name,
                                       self.failover_regions, failover_regions, endpoint_url, endpoint_urls)
        shared = self._shared
        merged = shared.config(config)
        extra: dict[str, Any] = {"aws_account_id": aws_account_id} if aws_account_id is not None else {}
        policy = self.policy
        failover = resolve_failover_operations(policy.failover, self._data.get_service_model(service_name),
                                               self._data)
        used = policy if failover is policy.failover else dataclasses.replace(policy, failover=failover)

        async def create() -> AioResilientClient:
            stack = AsyncExitStack()
            try:
                created: list[Any] = []
                for region in regions:
                    client = await stack.enter_async_context(session.create_client(
                        service_name, region_name=region, api_version=api_version, use_ssl=use_ssl,
                        verify=verify, endpoint_url=urls.get(region), aws_access_key_id=aws_access_key_id,
                        aws_secret_access_key=aws_secret_access_key, aws_session_token=aws_session_token,
                        config=merged, **extra))
                    if created:
                        _compat.share_exceptions(client, created[0].exceptions)
                    created.append(client)
                lanes = [RegionLane(r, shared.health.get(service_name, r, urls.get(r)), _created_at_enter, client=c)
                         for r, c in zip(regions, created, strict=True)]
                resilient = AioResilientClient(service_name, lanes, used, shared.emitter, shared.dns_cache(),
                                               shared.timing)
            except BaseException:
                await stack.aclose()
                raise
            resilient._stack = stack
            return resilient

        return _ClientContext(self, create)

    client = create_client


def _created_at_enter(region: str) -> Any:  # pragma: no cover - every lane is given its client
    raise RuntimeError(f"the client of {region} is created when the resilient client is entered")
