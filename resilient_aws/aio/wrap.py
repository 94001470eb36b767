"""``resilient_aws.aio.wrap()``: harden an existing aiobotocore client.

The thread ``wrap()``'s checks and decisions (``wrap.plan_wrap``), with the asyncio client's rules:
the failover regions' clients are created and entered when the returned client is entered
(``async with``), and closed when it exits; the wrapped client stays the caller's to close.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

from aiobotocore.client import AioBaseClient
from aiobotocore.session import AioSession, get_session

from .. import _compat as _sync_compat
from ..errors import ConfigError
from ..policy import Policy
from ..session import NO_RETRIES
from ..timing import Timing
from ..wrap import plan_wrap
from . import _compat
from .client import AioResilientClient
from .session import AioShared

if TYPE_CHECKING:  # pragma: no cover
    from ..fleet import SharedState


def wrap(
    client: AioBaseClient,
    failover_regions: Iterable[str] | None = None,
    policy: Policy | None = None,
    *,
    endpoint_urls: Mapping[str, str] | None = None,
    aio_session: AioSession | None = None,
    timing: Timing | None = None,
    shared_state: SharedState | None = None,
) -> Any:
    """Harden an entered aiobotocore client: ``async with aio.wrap(ddb, ["us-west-2"]) as rddb:``.

    Its retry handler is replaced by resilient_aws's, its new connections resolve names through the
    last-known-good DNS cache (when the policy enables it), and the clients of ``failover_regions``
    are created at ``async with`` from ``aio_session`` (by default a new one carrying the client's
    own credentials) with the client's config. Calls on the returned client before it is entered work
    in the client's own region; a call that would need a failover region says it must be entered.
    """
    if not isinstance(client, AioBaseClient):
        raise ConfigError("client", f"must be an aiobotocore client, got {client!r}; resilient_aws.wrap() "
                                    "hardens botocore/boto3's sync clients")
    if aio_session is not None and not isinstance(aio_session, AioSession):
        raise ConfigError("aio_session", f"must be an aiobotocore AioSession, got {aio_session!r}")
    # the checks read endpoint data through a botocore session (AioSession's look-ups are coroutines)
    plan = plan_wrap(client, failover_regions, policy, endpoint_urls, None, timing, shared_state,
                     shared_type=AioShared)
    shared = plan.shared
    assert isinstance(shared, AioShared)
    resolver = shared.resolver()
    if resolver is not None:
        _compat.use_resolver(client, resolver)
    config = shared.config(client.meta.config) if resolver is not None else client.meta.config.merge(NO_RETRIES)
    created: dict[str, Any] = {}

    def factory(region: str) -> Any:
        found = created.get(region)
        if found is None:
            raise RuntimeError(f"{region} is a failover region of this client, whose clients are created when it "
                               "is entered: use 'async with resilient_aws.aio.wrap(...) as client'")
        return found

    async def open_regions(stack: AsyncExitStack) -> None:
        session = aio_session
        if session is None:
            session = get_session()
            credentials = _sync_compat.client_credentials(client)
            if credentials is not None:
                _sync_compat.use_credentials(session, credentials)
        for region in plan.fallbacks:
            other = await stack.enter_async_context(session.create_client(
                plan.service, region_name=region, endpoint_url=plan.urls.get(region), config=config))
            _sync_compat.share_exceptions(other, client.exceptions)
            created[region] = other

    hardened = AioResilientClient(plan.service, plan.lanes(client, factory), plan.policy, shared.emitter,
                                  shared.dns_cache(), shared.timing)
    hardened._owned = shared
    if plan.fallbacks:
        hardened._opener = open_regions
    return hardened
