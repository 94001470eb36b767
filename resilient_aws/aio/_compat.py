"""aiobotocore's private names that resilient_aws.aio relies on, checked once at import.

Why: like ``resilient_aws._compat`` for botocore, a seam that moved must fail loudly at import with
the versions named, not later as a wrong retry or an unguarded connection. The public seams
(``AioConfig(connector_args=...)``, the ``needs-retry`` event, ``async`` handlers being awaited) need
no check; these do.
"""

from __future__ import annotations

import inspect
from typing import Any

import aiobotocore
from aiobotocore.awsrequest import AioAWSResponse
from aiobotocore.httpsession import AIOHTTPSession
from aiobotocore.paginate import AioPageIterator

from .._compat import IncompatibleBotocore, _assigned_in


def _moved(what: str, why: str) -> IncompatibleBotocore:
    return IncompatibleBotocore(
        f"resilient_aws.aio cannot work with aiobotocore {aiobotocore.__version__}: {what} is missing or moved "
        f"(it is needed to {why}). Install an aiobotocore within the bounds declared by resilient-aws[aio].")


def check() -> None:
    for owner, attribute, why in (
        (AIOHTTPSession, "_connector_args", "route an existing client's new connections through the DNS cache"),
        (AIOHTTPSession, "_sessions", "route an existing client's new connections through the DNS cache"),
    ):
        if not _assigned_in(owner.__init__, attribute):
            raise _moved(f"{owner.__module__}.{owner.__qualname__}.{attribute}", why)
    content = inspect.getattr_static(AioAWSResponse, "content", None)
    if not isinstance(content, property) or not inspect.iscoroutinefunction(
            getattr(AioAWSResponse, "_content_prop", None)):
        raise _moved("aiobotocore.awsrequest.AioAWSResponse.content (an awaitable property)",
                     "check DynamoDB's CRC32 before a response is returned")
    if not inspect.iscoroutinefunction(getattr(AioPageIterator, "_make_request", None)):
        raise _moved("aiobotocore.paginate.AioPageIterator._make_request", "send every page through the resilient "
                     "client")


check()


def use_resolver(client: Any, resolver: Any) -> None:
    """Make an existing (possibly entered) client's *new* connections resolve through ``resolver``.

    aiobotocore builds its aiohttp connector lazily from ``_connector_args``; dropping the built
    sessions makes the next request build a new one. The old ones stay in the client's exit stack and
    are closed with it, so requests in flight finish on their connections."""
    from .resolver import connector_args

    http = client._endpoint.http_session
    if not isinstance(http, AIOHTTPSession):
        raise IncompatibleBotocore(f"resilient_aws.aio: {type(http).__name__} has no resolver seam; DNS caching "
                                   "needs aiobotocore's aiohttp session (or DnsPolicy(enabled=False))")
    http._connector_args = connector_args(resolver, http._connector_args)
    if http._sessions:
        http._sessions = {}
