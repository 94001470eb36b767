"""Fault injection as WSGI middleware: count the request, then serve it, delay it, or answer an error.

Why middleware: the faults a drill needs at the HTTP level (an AWS-shaped 503, added latency) must
look to botocore exactly like a real service's, on a real socket, while the request is still counted
by the server. Wrapping the WSGI application that serves moto does that in one place, without
touching moto. Faults below HTTP (refused or cut connections) belong to the listening socket and live
in :mod:`resilient_aws.testing.endpoint`. Standard library only.
"""

from __future__ import annotations

import contextlib
import http
import json
import threading
from collections.abc import Callable, Iterable
from typing import Any

from .counters import RequestCounters, request_facts

__all__ = ["DEFAULT_CODES", "FAILING", "HEALTHY", "MODES", "SLOW", "FaultInjector", "error_response"]

HEALTHY = "healthy"
FAILING = "failing"
SLOW = "slow"
MODES = (HEALTHY, FAILING, SLOW)

#: The AWS error code answered for an HTTP status when ``fail_with()`` is given none.
DEFAULT_CODES = {
    400: "ThrottlingException",
    429: "TooManyRequestsException",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
DEFAULT_MESSAGE = "Service unavailable (loopback fault injection)"

#: A WSGI application (PEP 3333): ``app(environ, start_response)`` -> the body's chunks.
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]


class FaultInjector:
    """WSGI middleware in front of ``app``. Thread-safe: a request reads the fault settings once,
    so switching them while requests are served gives each request one consistent view."""

    def __init__(self, app: WsgiApp, counters: RequestCounters, stopping: threading.Event) -> None:
        self.app = app
        self.counters = counters
        self.stopping = stopping
        self.mode = HEALTHY
        self.latency = 0.0
        self.status = 503
        self.code = "ServiceUnavailable"
        self.message = DEFAULT_MESSAGE

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        mode, latency, status, code, message = self.mode, self.latency, self.status, self.code, self.message
        self.counters.arrived(mode, request_facts(environ))

        def counted_start(status_line: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            with contextlib.suppress(ValueError, IndexError):
                self.counters.answered(int(status_line.split(" ", 1)[0]))
            return start_response(status_line, headers, exc_info) if exc_info else start_response(status_line, headers)

        if latency > 0:
            self.stopping.wait(latency)  # bounded; cut short when the endpoint stops
        if mode == FAILING:
            read_body(environ)  # keep the connection usable, as a real server would
            return error_response(environ, counted_start, status, code, message)
        return self.app(environ, counted_start)


def error_response(environ: dict[str, Any], start_response: Any, status: int, code: str,
                   message: str = DEFAULT_MESSAGE) -> list[bytes]:
    """Answer ``status`` with the error body botocore parses for the request's protocol: JSON (with
    ``__type``) for JSON protocols such as DynamoDB's, the XML ``ErrorResponse`` otherwise."""
    json_protocol = bool(environ.get("HTTP_X_AMZ_TARGET")) or "json" in (environ.get("CONTENT_TYPE") or "")
    if json_protocol:
        body = json.dumps({"__type": f"com.amazonaws.loopback#{code}", "message": message}).encode()
        ctype = environ.get("CONTENT_TYPE") or "application/x-amz-json-1.0"
    else:
        body = (f"<ErrorResponse><Error><Type>Receiver</Type><Code>{code}</Code><Message>{message}"
                f"</Message></Error><RequestId>loopback</RequestId></ErrorResponse>").encode()
        ctype = "text/xml"
    try:
        reason = http.HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    start_response(f"{status} {reason}", [("Content-Type", ctype), ("Content-Length", str(len(body))),
                                          ("x-amzn-RequestId", "loopback"), ("x-amzn-ErrorType", code)])
    return [body]


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body: ``Content-Length`` bytes, or everything when the server has de-chunked it
    (``wsgi.input_terminated``). Empty when it cannot be read."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    try:
        if environ.get("wsgi.input_terminated"):
            data: bytes = stream.read()
            return data
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return stream.read(length) if length > 0 else b""
    except (OSError, ValueError):
        return b""
