# This module is where the private botocore/urllib3 names live, and botocore-stubs declares public names only:
# mypy: disable-error-code="attr-defined"
"""Every private botocore/urllib3 name resilient_aws relies on, in one place, checked at import.

Why: botocore and urllib3 do not promise to keep these names. If an upgrade moves one, resilient_aws
must fail loudly at import, with a message naming the botocore/urllib3 versions and what moved, never
carry on with a feature silently off (forked children sharing keep-alive sockets, DNS not cached,
paginators bypassing the retry loop, a second retry layer multiplying attempts).

The rest of the package uses the functions below, never the private names themselves.

What is relied on, and for what:

- ``botocore.retries.standard``: the checkers' ``_TRANSIENT_*``/``_THROTTLED_*`` lists, to classify
  errors as botocore does; the unique ids ``retry-config-<svc>``/``seed-max-attempts-<svc>``, to
  replace botocore's retry handler;
- ``BaseClient._exceptions``, ``BaseClient._get_credentials()``, ``Session._credentials``: one set of
  exception classes for every region; the wrapped client's credentials for failover clients;
- ``BaseClient._endpoint.http_session`` (``URLLib3Session``): ``_pool_classes_by_scheme``,
  ``_manager``, ``_proxy_managers``, ``_get_pool_manager_kwargs()``: the DNS hook, fresh pools after
  fork;
- ``Paginator._method``, ``Waiter._operation_method``: pages and polls through the resilient client;
- urllib3: ``HTTPConnection._new_conn`` and its ``host`` property over ``_dns_host``,
  ``urllib3.util.timeout._DEFAULT_TIMEOUT``: the DNS hook.
"""

from __future__ import annotations

import inspect
from typing import Any

import botocore
import botocore.session
import urllib3
from botocore.client import BaseClient
from botocore.httpsession import URLLib3Session
from botocore.paginate import Paginator
from botocore.retries import standard as _standard
from botocore.waiter import Waiter

BOTOCORE_VERSION: str = botocore.__version__
URLLIB3_VERSION: str = urllib3.__version__

#: botocore registers its retry handler on ``needs-retry.<service>`` under this unique id (every mode).
RETRY_HANDLER_ID = "retry-config-{}"
#: standard mode (botocore >= 1.43.100) seeds ``amz-sdk-request``'s ``max`` on ``request-created.<service>``
#: under this id; unregistering it where it does not exist is harmless.
SEED_MAX_ATTEMPTS_ID = "seed-max-attempts-{}"


class IncompatibleBotocore(ImportError):
    """A private botocore/urllib3 name that resilient_aws relies on is not where it was."""


def _moved(what: str, why: str) -> IncompatibleBotocore:
    return IncompatibleBotocore(
        f"resilient_aws cannot work with botocore {BOTOCORE_VERSION} / urllib3 {URLLIB3_VERSION}: {what} "
        f"is missing or moved (it is needed to {why}). Install a botocore/urllib3 within the bounds "
        f"declared by resilient-aws, or report this with both versions.")


def _assigned_in(func: Any, attribute: str) -> bool:
    """Does ``func``'s code assign or read ``self.<attribute>``? (attribute names are in co_names)"""
    code = getattr(func, "__code__", None)
    return code is not None and attribute in code.co_names


def check() -> None:
    """Verify every private name; raise ``IncompatibleBotocore`` naming the first that moved."""
    checkers = (
        (_standard, "TransientRetryableChecker", ("_TRANSIENT_ERROR_CODES", "_TRANSIENT_STATUS_CODES",
                                                  "_TRANSIENT_EXCEPTION_CLS")),
        (_standard, "ThrottledRetryableChecker", ("_THROTTLED_ERROR_CODES",)),
    )
    for module, cls_name, attributes in checkers:
        cls = getattr(module, cls_name, None)
        if cls is None:
            raise _moved(f"botocore.retries.standard.{cls_name}", "classify errors as botocore does")
        for attribute in attributes:
            if not hasattr(cls, attribute):
                raise _moved(f"botocore.retries.standard.{cls_name}.{attribute}", "classify errors as botocore does")
    try:
        source = inspect.getsource(_standard.register_retry_handler)
    except (OSError, TypeError):  # pragma: no cover - no source shipped
        source = ""
    if RETRY_HANDLER_ID.split("{")[0] not in source:
        raise _moved(f"the handler id {RETRY_HANDLER_ID.format('<service>')!r} in "
                     "botocore.retries.standard.register_retry_handler", "replace botocore's retry handler")
    status_checker = getattr(_standard, "ThrottlingStatusCodeChecker", None)
    if status_checker is not None and not hasattr(status_checker, "_THROTTLING_STATUS_CODES"):
        raise _moved("botocore.retries.standard.ThrottlingStatusCodeChecker._THROTTLING_STATUS_CODES",
                     "classify errors as botocore does")
    for owner, attribute, why in (
        (BaseClient, "_exceptions", "share exception classes across regions"),
        (BaseClient, "_endpoint", "reach a client's HTTP session"),
        (Paginator, "_method", "send every page through the resilient client"),
        (Waiter, "_operation_method", "send every waiter poll through the resilient client"),
        (URLLib3Session, "_pool_classes_by_scheme", "route new connections through the DNS cache"),
        (URLLib3Session, "_manager", "give a forked child fresh connection pools"),
        (URLLib3Session, "_proxy_managers", "give a forked child fresh connection pools"),
        (botocore.session.Session, "_credentials", "give failover clients the wrapped client's credentials"),
    ):
        if not _assigned_in(owner.__init__, attribute):
            raise _moved(f"{owner.__module__}.{owner.__qualname__}.{attribute}", why)
    for cls, method, why in (
        (BaseClient, "_get_credentials", "give failover clients the wrapped client's credentials"),
        (URLLib3Session, "_get_pool_manager_kwargs", "give a forked child fresh connection pools"),
        (urllib3.connection.HTTPConnection, "_new_conn", "route new connections through the DNS cache"),
    ):
        if not callable(getattr(cls, method, None)):
            raise _moved(f"{cls.__qualname__}.{method}()", why)
    if not isinstance(getattr(urllib3.connection.HTTPConnection, "host", None), property):
        raise _moved("urllib3.connection.HTTPConnection.host (a property over _dns_host)",
                     "route new connections through the DNS cache")
    timeout = getattr(urllib3.util, "timeout", None)
    if timeout is None or not hasattr(timeout, "_DEFAULT_TIMEOUT"):
        raise _moved("urllib3.util.timeout._DEFAULT_TIMEOUT", "route new connections through the DNS cache")


check()

# -- the names, through which the rest of the package reaches them -------------------------------
TRANSIENT_ERROR_CODES: frozenset[str] = frozenset(_standard.TransientRetryableChecker._TRANSIENT_ERROR_CODES)
TRANSIENT_STATUS_CODES: frozenset[int] = frozenset(_standard.TransientRetryableChecker._TRANSIENT_STATUS_CODES)
TRANSIENT_EXCEPTIONS: tuple[type[BaseException], ...] = tuple(
    _standard.TransientRetryableChecker._TRANSIENT_EXCEPTION_CLS)
THROTTLING_ERROR_CODES: frozenset[str] = frozenset(_standard.ThrottledRetryableChecker._THROTTLED_ERROR_CODES)
#: botocore >= 1.44 lists throttling HTTP statuses (429); older versions have no such checker, and
#: resilient_aws treats 429 as throttling there too (what 1.44 does), not as a caller error.
THROTTLING_STATUS_CODES: frozenset[int] = frozenset(
    _standard.ThrottlingStatusCodeChecker._THROTTLING_STATUS_CODES
    if hasattr(_standard, "ThrottlingStatusCodeChecker") else (429,))
DEFAULT_TIMEOUT: Any = urllib3.util.timeout._DEFAULT_TIMEOUT


def share_exceptions(client: BaseClient, exceptions: Any) -> None:
    """Make ``client.exceptions`` the very object ``exceptions`` (``except`` clauses of one region
    catch the same errors from every region)."""
    client._exceptions = exceptions


def client_credentials(client: BaseClient) -> Any:
    """The credentials object ``client`` signs with (refreshable ones stay refreshable)."""
    return client._get_credentials()


def use_credentials(session: botocore.session.Session, credentials: Any) -> None:
    """Make ``session`` sign with ``credentials`` as they are: ``set_credentials()`` would copy them
    into static ones, and refreshable credentials (SSO, assumed roles) must stay refreshable."""
    session._credentials = credentials


def http_session(client: Any) -> URLLib3Session | None:
    """``client``'s botocore HTTP session, or None when it is not botocore's URLLib3Session."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    return session if isinstance(session, URLLib3Session) else None


def pool_classes(session: URLLib3Session) -> dict[str, Any]:
    """The ``{scheme: pool class}`` dict the session and its managers share."""
    classes: dict[str, Any] = session._pool_classes_by_scheme
    return classes


def pool_managers(session: URLLib3Session) -> list[Any]:
    """The session's pool manager and its proxy managers."""
    return [session._manager, *session._proxy_managers.values()]


def reset_connection_pools(client: Any) -> None:
    """Give ``client`` fresh connection pools (in a forked child: a keep-alive socket shared with
    the parent would interleave two processes' requests on one TCP stream)."""
    session = http_session(client)
    if session is None:
        return
    from urllib3 import PoolManager

    manager = PoolManager(**session._get_pool_manager_kwargs())
    manager.pool_classes_by_scheme = session._pool_classes_by_scheme
    session._manager = manager
    session._proxy_managers = {}


def route_paginator(paginator: Paginator[Any], method: Any) -> Paginator[Any]:
    paginator._method = method
    return paginator


def route_waiter(waiter: Waiter, operation_method: Any) -> Waiter:
    waiter._operation_method = operation_method
    return waiter
