"""Loopback-only networking helpers shared by the drill, the test servers and the tests.

Why one module: every server this project starts for a test or a drill must listen on loopback only
(127.0.0.0/8, ::1) and on a port that is free on every address it will use; written five times, the
rule drifted (one copy accepted "localhost", another only IPs; some checked UDP, some did not).
"""

from __future__ import annotations

import ipaddress
import socket

__all__ = ["check_loopback", "free_port"]


def check_loopback(host: str, what: str = "a test server") -> None:
    """Raise ``ValueError`` unless ``host`` is a loopback IP address or ``localhost``."""
    if host == "localhost":
        return
    try:
        ok = ipaddress.ip_address(host).is_loopback
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{what} listens on a loopback address only (127.0.0.0/8, ::1, localhost), not {host!r}")


def free_port(*hosts: str, udp: bool = False, attempts: int = 20) -> int:
    """A port free for TCP (and UDP when ``udp``) on every one of ``hosts`` (default 127.0.0.1).

    Bounded: gives up with ``OSError`` after ``attempts`` candidates.
    """
    hosts = hosts or ("127.0.0.1",)
    for host in hosts:
        check_loopback(host)
    for _ in range(attempts):
        probe = socket.socket(socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET)
        try:
            probe.bind((hosts[0], 0))
            port: int = probe.getsockname()[1]
        finally:
            probe.close()
        if all(_bindable(host, port, socket.SOCK_STREAM) and (not udp or _bindable(host, port, socket.SOCK_DGRAM))
               for host in hosts):
            return port
    raise OSError(f"no port free on {', '.join(hosts)} after {attempts} tries")


def _bindable(host: str, port: int, kind: int) -> bool:
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()
