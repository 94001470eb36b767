"""wrap(): harden an existing botocore/boto3 client in place."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.client import BaseClient

from . import _compat
from .client import ResilientClient
from .errors import ConfigError
from .policy import Policy, coerce_policy
from .regions import RegionLane
from .session import NO_RETRIES, _Shared, check_shared_state
from .timing import Timing, coerce_timing
from .validate import check_endpoint_urls, check_private_failover, check_regions, resolve_failover_operations

if TYPE_CHECKING:  # pragma: no cover
    from .fleet import SharedState


def _default_endpoint(bc_session: botocore.session.Session, client: BaseClient) -> str:
    """The URL botocore would use for ``client``'s service and region with no endpoint_url."""
    probe = bc_session.create_client(client.meta.service_model.service_name, region_name=client.meta.region_name,
                                     config=client.meta.config, aws_access_key_id="probe",
                                     aws_secret_access_key="probe")
    try:
        return probe.meta.endpoint_url
    finally:
        probe.close()


@dataclasses.dataclass
class WrapPlan:
    """What ``wrap()`` checked and decided about a client, shared by the thread and the asyncio wrap."""

    policy: Policy
    service: str
    primary: str
    fallbacks: tuple[str, ...]
    urls: dict[str, str]
    custom: str | None      # the wrapped client's own URL when it is not AWS's default for its region
    shared: _Shared

    def lanes(self, client: Any, factory: Callable[[str], Any]) -> list[RegionLane]:
        """The wrapped client's region (its client given), then the failover regions (made by ``factory``)."""
        health = self.shared.health
        lanes = [RegionLane(self.primary, health.get(self.service, self.primary, self.custom), factory, client=client)]
        return lanes + [RegionLane(r, health.get(self.service, r, self.urls.get(r)), factory) for r in self.fallbacks]


def plan_wrap(client: BaseClient, failover_regions: Iterable[str] | None, policy: Policy | None,
              endpoint_urls: Mapping[str, str] | None, botocore_session: botocore.session.Session | None,
              timing: Timing | None, shared_state: SharedState | None, *,
              shared_type: type[_Shared] = _Shared) -> WrapPlan:
    """Check ``wrap()``'s arguments against the client (a ``ConfigError`` naming the field)."""
    policy = coerce_policy(policy)
    service = client.meta.service_model.service_name
    primary = client.meta.region_name
    fallbacks = check_regions(primary, failover_regions)
    urls = check_endpoint_urls(endpoint_urls, (primary, *fallbacks))
    if primary in urls and urls[primary] != client.meta.endpoint_url:
        raise ConfigError("endpoint_urls", f"{primary!r} is the wrapped client's own region; its endpoint "
                                           f"is {client.meta.endpoint_url!r}")
    if botocore_session is not None and not isinstance(botocore_session, botocore.session.Session):
        raise ConfigError("botocore_session", f"must be a botocore.session.Session, got {botocore_session!r}")
    own_url = client.meta.endpoint_url
    custom = None
    if fallbacks and own_url != _default_endpoint(botocore_session or botocore.session.get_session(), client):
        custom = own_url
    check_private_failover(primary, custom, fallbacks, urls)
    shared = shared_type(policy, coerce_timing(timing), check_shared_state(shared_state))
    failover = resolve_failover_operations(policy.failover, client.meta.service_model,
                                           botocore_session or botocore.session.get_session())
    if failover is not policy.failover:
        policy = dataclasses.replace(policy, failover=failover)
    return WrapPlan(policy, service, primary, fallbacks, urls, custom, shared)


def wrap(
    client: BaseClient,
    failover_regions: Iterable[str] | None = None,
    policy: Policy | None = None,
    *,
    endpoint_urls: Mapping[str, str] | None = None,
    botocore_session: botocore.session.Session | None = None,
    timing: Timing | None = None,
    shared_state: SharedState | None = None,
) -> Any:
    """Harden an existing botocore/boto3 client in place.

    Its own retry handler is replaced by resilient_aws's (one retry decision-maker), its connections
    go through the DNS cache when enabled, and clients for ``failover_regions`` are created on first
    need from ``botocore_session`` — by default a new session carrying the client's own credentials —
    with the client's config. Call the returned client: only it can move a call to another region
    (a call made on the original object still gets resilient_aws's in-region retries and breaker).

    ``shared_state`` shares breakers, retry-budget floors and DNS answers with the fleet (see
    ``Session``).

    Returns a ``ResilientClient``, typed ``Any`` like ``Session.client()``: annotate it with your boto3
    stubs' client type, or with ``ResilientClient`` for ``stats()``.
    """
    if not isinstance(client, BaseClient):
        raise ConfigError("client", f"must be a botocore/boto3 client, got {client!r}")
    if inspect.iscoroutinefunction(getattr(type(client), "_make_api_call", None)):
        # an aiobotocore client: its operations return coroutines, which no sync wrapper can retry or judge
        raise ConfigError("client", f"{type(client).__name__} is an async (aiobotocore) client; wrap() hardens "
                                    "botocore/boto3's sync clients; use resilient_aws.aio.wrap() for it")
    plan = plan_wrap(client, failover_regions, policy, endpoint_urls, botocore_session, timing, shared_state)
    shared, service, urls = plan.shared, plan.service, plan.urls
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

    hardened = ResilientClient(service, plan.lanes(client, factory), plan.policy, shared.emitter, shared.dns_cache(),
                               shared.timing)
    hardened._owned = shared  # no session to close it: the client's close() releases the DNS cache
    return hardened
