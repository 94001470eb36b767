"""A small authoritative DNS server on loopback, for tests and the outage drill.

Why: the DNS layer must be proven against real packets (UDP with a TCP fallback, real timeouts, real
NXDOMAIN/SERVFAIL rcodes), not against a mocked resolver. This server answers from a table you change
while it runs, so a test can take a name away the way 2025-10-20 did (NOERROR with no records), or make
it NXDOMAIN, SERVFAIL, or silent, and put it back.

    with LoopbackDnsServer() as dns_server:
        dns_server.set("dynamodb.us-east-1.drill.test", a=["127.0.0.1"], ttl=5)
        policy = DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port)
        dns_server.set_mode("dynamodb.us-east-1.drill.test", "empty")     # the 2025-10-20 answer
        dns_server.restore("dynamodb.us-east-1.drill.test")
        dns_server.count("dynamodb.us-east-1.drill.test")                 # queries seen
        dns_server.set_delay("dynamodb.us-east-1.drill.test", 0.3)        # a slow server (answers late)

Names that are not in the table answer NXDOMAIN. Only loopback addresses may be used to listen.
Every thread polls its socket with a short timeout, so ``stop()`` returns within about a second.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset

from .net import check_loopback, free_port

MODES = ("answer", "empty", "nxdomain", "servfail", "drop")
_POLL = 0.2  # seconds; how quickly the server threads notice stop()


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


@dataclass
class _Record:
    a: list[str] = field(default_factory=list)
    aaaa: list[str] = field(default_factory=list)
    ttl: int = 5
    mode: str = "answer"
    delay: float = 0.0


class LoopbackDnsServer:
    """Authoritative-only DNS server for UDP and TCP on one loopback port (``port=0`` picks one).

    Thread-safe: records can be changed and counters read from any thread while it serves.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host, "LoopbackDnsServer")
        host = "127.0.0.1" if host == "localhost" else host  # resolvers take a nameserver's IP address
        self.host = host
        self._requested_port = port
        self.port = 0
        self._lock = threading.Lock()
        self._records: dict[str, _Record] = {}
        self._counts: Counter[str] = Counter()
        self._counts_by_type: Counter[tuple[str, str]] = Counter()
        self._total = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._udp: socket.socket | None = None
        self._tcp: socket.socket | None = None

    # -- records -------------------------------------------------------------------------------
    def set(self, name: str, a: Sequence[str] = (), aaaa: Sequence[str] = (), ttl: int = 5) -> None:
        """Answer ``name`` with these A/AAAA records (``mode`` back to "answer")."""
        for ip in (*a, *aaaa):
            ipaddress.ip_address(ip)
        with self._lock:
            old = self._records.get(_norm(name))
            self._records[_norm(name)] = _Record(list(a), list(aaaa), int(ttl), "answer",
                                                 old.delay if old is not None else 0.0)

    def set_delay(self, name: str, seconds: float) -> None:
        """Answer ``name`` (whatever its mode) ``seconds`` late, as a slow server: a lookup then stays in
        flight that long, so a test can act while it does (unlike "drop", the answer does come)."""
        if not 0.0 <= seconds <= 30.0:
            raise ValueError(f"delay must be within [0, 30] seconds, got {seconds!r}")
        with self._lock:
            self._records.setdefault(_norm(name), _Record()).delay = float(seconds)

    def set_mode(self, name: str, mode: str) -> None:
        """"empty" (NOERROR, no records), "nxdomain", "servfail", "drop" (no reply: a timeout) or
        "answer"; the records are kept, so ``restore()`` brings them back."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        with self._lock:
            self._records.setdefault(_norm(name), _Record()).mode = mode

    def restore(self, name: str) -> None:
        self.set_mode(name, "answer")

    def remove(self, name: str) -> None:
        with self._lock:
            self._records.pop(_norm(name), None)

    # -- counters ------------------------------------------------------------------------------
    def count(self, name: str | None = None, rdtype: str | None = None) -> int:
        """Queries received for ``name`` (optionally of one type), or in all when ``name`` is None."""
        with self._lock:
            if name is None:
                return self._total
            if rdtype is None:
                return self._counts[_norm(name)]
            return self._counts_by_type[(_norm(name), rdtype.upper())]

    def reset_counts(self) -> None:
        with self._lock:
            self._counts.clear()
            self._counts_by_type.clear()
            self._total = 0

    # -- life cycle ----------------------------------------------------------------------------
    def start(self) -> LoopbackDnsServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range(20):  # bounded: the free port may be taken by another program before we bind it
            port = self._requested_port or free_port(self.host, udp=True)
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                udp.bind((self.host, port))
                tcp.bind((self.host, port))
            except OSError:
                udp.close()
                tcp.close()
                if self._requested_port:
                    raise
                continue
            break
        else:  # pragma: no cover - 20 busy ports in a row
            raise OSError("no free port for UDP and TCP")
        tcp.listen(16)
        udp.settimeout(_POLL)
        tcp.settimeout(_POLL)
        self._udp, self._tcp, self.port = udp, tcp, port
        self._stop.clear()
        for target in (self._serve_udp, self._serve_tcp):
            t = threading.Thread(target=target, name=f"dns-{target.__name__}-{port}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2.0)
        self._threads.clear()
        for s in (self._udp, self._tcp):
            if s is not None:
                s.close()
        self._udp = self._tcp = None

    def __enter__(self) -> LoopbackDnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving -------------------------------------------------------------------------------
    def _answer(self, wire: bytes) -> bytes | None:
        return self._reply(wire)[0]

    def _reply(self, wire: bytes) -> tuple[bytes | None, float]:
        """The reply to a query (None: no reply) and how many seconds late to send it."""
        try:
            query = dns.message.from_wire(wire)
        except Exception:
            return None, 0.0
        if not query.question:
            return None, 0.0
        q = query.question[0]
        name = _norm(q.name.to_text())
        rdtype = dns.rdatatype.to_text(q.rdtype)
        with self._lock:
            self._total += 1
            self._counts[name] += 1
            self._counts_by_type[(name, rdtype)] += 1
            rec = self._records.get(name)
            if rec is not None:
                rec = _Record(list(rec.a), list(rec.aaaa), rec.ttl, rec.mode, rec.delay)
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if rec is None or rec.mode == "nxdomain":
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif rec.mode == "drop":
            return None, 0.0
        elif rec.mode == "servfail":
            response.set_rcode(dns.rcode.SERVFAIL)
        elif rec.mode == "answer":
            ips = rec.a if q.rdtype == dns.rdatatype.A else rec.aaaa if q.rdtype == dns.rdatatype.AAAA else []
            if ips:
                response.answer.append(dns.rrset.from_text_list(q.name, rec.ttl, "IN", rdtype, ips))
        return response.to_wire(), rec.delay if rec is not None else 0.0

    def _serve_udp(self) -> None:
        sock = self._udp
        assert sock is not None
        while not self._stop.is_set():
            try:
                wire, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            reply, delay = self._reply(wire)
            if reply is None:
                continue
            if delay:  # late, without holding up the other queries
                timer = threading.Timer(delay, self._send_late, args=(sock, reply, peer))
                timer.daemon = True
                timer.start()
                continue
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)

    def _send_late(self, sock: socket.socket, reply: bytes, peer: tuple[str, int]) -> None:
        if not self._stop.is_set():
            with contextlib.suppress(OSError):
                sock.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        sock = self._tcp
        assert sock is not None
        while not self._stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve_tcp_conn, args=(conn,), daemon=True).start()

    def _serve_tcp_conn(self, conn: socket.socket) -> None:
        conn.settimeout(2.0)
        with conn:
            for _ in range(100):  # bounded: a client may send several queries on one connection
                if self._stop.is_set():
                    return
                head = _recv_exact(conn, 2)
                if head is None:
                    return
                wire = _recv_exact(conn, struct.unpack("!H", head)[0])
                if wire is None:
                    return
                reply, delay = self._reply(wire)
                if reply is None or (delay and self._stop.wait(delay)):
                    return
                try:
                    conn.sendall(struct.pack("!H", len(reply)) + reply)
                except OSError:
                    return


def _recv_exact(conn: socket.socket, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        try:
            chunk = conn.recv(n - len(buf))
        except OSError:
            return None
        if not chunk:
            return None
        buf += chunk
    return buf


__all__ = ["MODES", "LoopbackDnsServer"]
