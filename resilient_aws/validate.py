"""Checks of what a caller passes to ``Session``, ``client()`` and ``wrap()``: regions, endpoints.

Why at construction: a misspelt failover region (``us-esat-1``) or a private endpoint that would fail
over to a public one is harmless until the outage it was configured for; then it is the outage. So
every such mistake is a ``ConfigError`` naming the field, with the close matches, when the session or
the client is made.

Known regions come from botocore's endpoint data: any partition's regions for the session, the
service's regions in the primary's partition for a client. A region botocore does not know yet is
accepted where the caller also gives its endpoint (``endpoint_url``/``endpoint_urls``).
"""

from __future__ import annotations

import dataclasses
import difflib
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import botocore
import botocore.session
from botocore.exceptions import InvalidRegionError
from botocore.utils import validate_region_name

from .errors import ConfigError
from .policy import FailoverPolicy

#: Services present in (nearly) every region of every partition: their regions are "all regions".
_UBIQUITOUS = ("ec2", "sts", "dynamodb", "s3", "sqs")


_region_cache: dict[tuple[Any, ...], frozenset[str]] = {}
_region_cache_lock = threading.Lock()


def _data_key(session: botocore.session.Session) -> tuple[Any, ...]:
    """Endpoint data is the same for every session of one botocore with one data path."""
    return (botocore.__version__, session.get_config_variable("data_path"))


def _cached(key: tuple[Any, ...], compute: Callable[[], frozenset[str]]) -> frozenset[str]:
    cached = _region_cache.get(key)
    if cached is None:
        cached = compute()  # loading the endpoint data takes ~0.1 s: once per process, not per Session
        with _region_cache_lock:
            _region_cache[key] = cached
    return cached


def known_regions(session: botocore.session.Session) -> frozenset[str]:
    """Every region of every partition botocore knows."""

    def compute() -> frozenset[str]:
        regions: set[str] = set()
        for partition in session.get_available_partitions():
            for service in _UBIQUITOUS:
                regions.update(session.get_available_regions(service, partition))
        return frozenset(regions)

    return _cached((*_data_key(session), "*"), compute)


def service_regions(session: botocore.session.Session, service: str, region: str) -> frozenset[str]:
    """The regions of ``service`` in ``region``'s partition (empty when botocore has no list)."""

    def compute() -> frozenset[str]:
        try:
            partition = session.get_partition_for_region(region)
        except Exception:  # an unknown region: no partition to look in
            return frozenset()
        return frozenset(session.get_available_regions(service, partition))

    return _cached((*_data_key(session), service, region), compute)


def check_region(field: str, region: object, known: Iterable[str] = ()) -> str:
    """A well-formed region name, and one of ``known`` when ``known`` is not empty."""
    if not isinstance(region, str) or not region:
        raise ConfigError(field, f"must be a region name such as 'us-east-1', got {region!r}")
    try:
        validate_region_name(region)
    except InvalidRegionError:
        raise ConfigError(field, f"{region!r} is not a valid region name") from None
    known = sorted(known)
    if known and region not in known:
        close = difflib.get_close_matches(region, known, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(field, f"{region!r} is not a region botocore knows{hint} (a region newer than this "
                                 f"botocore needs its endpoint: client(..., endpoint_urls={{{region!r}: url}}))")
    return region


def check_regions(primary: str, regions: object, field: str = "failover_regions",
                  known: Iterable[str] = ()) -> tuple[str, ...]:
    if regions is None:
        return ()
    if isinstance(regions, str) or not isinstance(regions, Iterable):
        raise ConfigError(field, f"must be a list of region names, got {regions!r}")
    known = frozenset(known)
    checked: list[str] = []
    for region in regions:
        check_region(field, region, known)
        if region == primary:
            raise ConfigError(field, f"{region!r} is the primary region; list only other regions")
        if region in checked:
            raise ConfigError(field, f"{region!r} is listed twice")
        checked.append(region)
    return tuple(checked)


def check_endpoint_urls(endpoint_urls: object, regions: tuple[str, ...]) -> dict[str, str]:
    if endpoint_urls is None:
        return {}
    if not isinstance(endpoint_urls, Mapping):
        raise ConfigError("endpoint_urls", f"must be a mapping {{region: url}}, got {endpoint_urls!r}")
    urls: dict[str, str] = {}
    for region, url in endpoint_urls.items():
        if region not in regions:
            raise ConfigError("endpoint_urls", f"region {region!r} is neither the primary nor a failover "
                                               f"region ({', '.join(regions)})")
        check_url("endpoint_urls", url, region)
        urls[region] = url
    return urls


def check_url(field: str, url: object, region: str | None = None) -> str:
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        where = f"{region}: " if region else ""
        raise ConfigError(field, f"{where}{url!r} is not an http(s) URL")
    return url


def check_regions_known_for(session: botocore.session.Session, service: str, regions: tuple[str, ...],
                            urls: Mapping[str, str], fields: tuple[str, ...]) -> None:
    """Each region must be one ``service`` has, unless the caller gave its endpoint."""
    known = service_regions(session, service, regions[0]) or known_regions(session)
    for region, field in zip(regions, fields, strict=True):
        if region not in urls:
            check_region(field, region, known)


def check_private_failover(primary: str, custom_url: str | None, fallbacks: tuple[str, ...],
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


_ALL_OPERATIONS: frozenset[str] | None = None


def _all_operation_names(session: botocore.session.Session) -> frozenset[str]:
    """API and Python names of every operation of every service botocore knows (loaded once, only
    when a policy names an operation the client's own service does not have: a few seconds)."""
    global _ALL_OPERATIONS
    if _ALL_OPERATIONS is None:
        from botocore import xform_name

        loader = session.get_component("data_loader")
        names: set[str] = set()
        for service in session.get_available_services():
            for api_name in loader.load_service_model(service, "service-2")["operations"]:
                names.add(api_name)
                names.add(xform_name(api_name))
        _ALL_OPERATIONS = frozenset(names)
    return _ALL_OPERATIONS


def resolve_failover_operations(failover: FailoverPolicy, service_model: Any,
                                session: botocore.session.Session) -> FailoverPolicy:
    """``failover`` with its operation names in this service's API form.

    ``operations``/``deny_operations`` may name API operations (``PutItem``) or Python methods
    (``put_item``). A name this service does not have is kept if another service has it (one policy
    may serve a session's DynamoDB and SQS clients) and refused, with the close matches, otherwise.
    """
    if not failover.operations and not failover.deny_operations:
        return failover
    api_names = set(service_model.operation_names)
    from botocore import xform_name

    by_python = {xform_name(name): name for name in api_names}
    resolved: dict[str, frozenset[str]] = {}
    for field in ("operations", "deny_operations"):
        names: set[str] = set()
        for name in getattr(failover, field):
            if name in api_names:
                names.add(name)
            elif name in by_python:
                names.add(by_python[name])
            elif name in _all_operation_names(session):
                names.add(name)  # another service's: harmless here
            else:
                close = difflib.get_close_matches(name, sorted(api_names | set(by_python)), n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise ConfigError(f"FailoverPolicy.{field}", f"{name!r} is not an operation of "
                                                            f"{service_model.service_name} or any other service{hint}")
        resolved[field] = frozenset(names)
    return dataclasses.replace(failover, operations=resolved["operations"],
                               deny_operations=resolved["deny_operations"])
