"""The process's moto server, and the WSGI application that forwards a loopback endpoint's requests to it.

Why this shape: moto's public way to serve AWS over HTTP is :class:`moto.server.ThreadedMotoServer`
(documented under "Server mode"). It serves one address and takes no middleware, no pre-bound socket
and no hook on connections, while a drill needs several regional addresses on one port, faults
injected in front of moto, connections counted, refused and cut. So every
:class:`~resilient_aws.testing.endpoint.LoopbackEndpoint` is a small server of its own (fault
injection, counters, the listening socket) that forwards each request it lets through, unchanged, to
one ``ThreadedMotoServer`` on 127.0.0.1 — the way a load balancer fronts a service. One is enough:
moto keeps its backends per process anyway and picks a region's data from the request's SigV4 signing
region, which the forwarded request keeps. It starts on first use and serves until the process exits.

moto (``moto[server]``) is imported only here and only when an endpoint starts, so ``import
resilient_aws.testing`` works without the ``drill`` extra.
"""

from __future__ import annotations

import http.client
import logging
import threading
from typing import Any

from .faults import error_response, read_body

__all__ = ["DRILL_EXTRA_HINT", "MotoForwarder", "moto_address"]

#: How to install what the loopback servers need (moto's HTTP server).
DRILL_EXTRA_HINT = "pip install 'resilient-aws[drill]'"

#: WSGI environ key under which the front server leaves the request's header lines as received
#: (werkzeug's environ drops header names with an underscore, which S3 metadata may use).
RAW_HEADERS_ENVIRON = "resilient_aws.raw_headers"

# Hop-by-hop fields (RFC 9110 7.6.1) are not forwarded; Content-Length is set again from the body as
# forwarded, Expect was answered by the front server. Server and Date come from the front server.
_REQUEST_SKIP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                           "upgrade", "expect", "content-length"})
_RESPONSE_SKIP = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer",
                            "upgrade", "content-length", "server", "date"})

_lock = threading.Lock()
_server: Any = None
_address: tuple[str, int] | None = None


def moto_address() -> tuple[str, int]:
    """``(host, port)`` of this process's moto server, started on first use on 127.0.0.1 at a free port."""
    global _server, _address
    with _lock:
        if _address is None:
            try:
                from moto.server import ThreadedMotoServer
            except ImportError as e:  # moto missing, or moto without its [server] extra (flask)
                raise ImportError(f"resilient_aws.testing serves AWS on loopback with moto's HTTP server, which "
                                  f"is not installed ({e}); install it with: {DRILL_EXTRA_HINT}") from e
            _quiet_request_log()
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _server, _address = server, (host, port)
        return _address


def _quiet_request_log() -> None:
    """moto's server logs one INFO line per request through the ``werkzeug`` logger, which werkzeug
    prints to stderr unless the logger was configured: thousands of lines in a drill. When nobody
    has chosen a level for that logger, warnings and errors only."""
    logger = logging.getLogger("werkzeug")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


class MotoForwarder:
    """WSGI application: send the request on to the moto server, unchanged (method, path and query
    as received, every end-to-end header including ``Host`` and ``Authorization``, the body), and
    answer with moto's response. One fresh connection per request, bounded by ``timeout``; an
    unreachable moto server is a 502 in the protocol's error shape."""

    def __init__(self, address: tuple[str, int], timeout: float = 60.0) -> None:
        self.address = address
        self.timeout = timeout

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        body = read_body(environ)
        conn = http.client.HTTPConnection(*self.address, timeout=self.timeout)
        try:
            conn.putrequest(method, _target(environ), skip_host=True, skip_accept_encoding=True)
            for name, value in _headers(environ):
                if name.lower() not in _REQUEST_SKIP:
                    conn.putheader(name, value)
            if body or environ.get("CONTENT_LENGTH") or environ.get("wsgi.input_terminated"):
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body or None)
            response = conn.getresponse()
            data = response.read()
            status = f"{response.status} {response.reason}"
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in _RESPONSE_SKIP]
            length = response.getheader("Content-Length")
        except (OSError, http.client.HTTPException) as e:
            return error_response(environ, start_response, 502, "BadGateway",
                                  f"loopback endpoint could not reach moto: {type(e).__name__}: {e}")
        finally:
            conn.close()
        if method == "HEAD":  # no body, but the length of the one a GET would have
            if length is not None:
                headers.append(("Content-Length", length))
            data = b""
        else:
            headers.append(("Content-Length", str(len(data))))
        start_response(status, headers)
        return [data]


def _target(environ: dict[str, Any]) -> str:
    raw: str | None = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    from urllib.parse import quote

    path = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "/"))
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path


def _headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
    raw = environ.get(RAW_HEADERS_ENVIRON)
    if raw is not None:
        return list(raw)
    headers = [(key[5:].replace("_", "-").title(), value) for key, value in environ.items()
               if key.startswith("HTTP_")]
    for key, name in (("CONTENT_TYPE", "Content-Type"), ("CONTENT_LENGTH", "Content-Length")):
        if environ.get(key):
            headers.append((name, environ[key]))
    return headers
