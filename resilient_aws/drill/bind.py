"""``--dns bind``: the drill's zone served by BIND 9's ``named`` instead of the embedded server.

Why: the embedded dnspython server is ours and could share our misunderstandings. BIND is what runs
in the wild; records are changed with TSIG-signed dynamic updates (``nsupdate``), the way the
automation of 2025-10-20 emptied a record, and queries are counted from BIND's own query log.

Each name also carries a TXT record, so deleting its A records leaves the name in place and BIND
answers NOERROR with no A records (the 2025-10-20 answer), not NXDOMAIN.

Same methods as ``LoopbackDnsServer`` for what the drill uses (``set``, ``set_mode`` with "answer",
"empty" and "nxdomain", ``count``); "servfail" and "drop" are not available with BIND.

The only launcher of ``named`` in the project: the drill and the test suite (``tests/dns/test_dns_bind.py``)
both start BIND through :class:`BindDnsServer`, so a fix to how it starts or is counted reaches both.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ..testing.net import check_loopback, free_port

__all__ = ["BindDnsServer", "BindUnavailable", "bind_available", "named_path", "nsupdate_path"]

KEY_NAME = "drill-ddns"

_CONF = """
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    listen-on port {port} {{ {host}; }};
    listen-on-v6 {{ none; }};
    recursion no;
    allow-query {{ 127.0.0.0/8; }};
    allow-transfer {{ none; }};
    dnssec-validation no;
    notify no;
    querylog yes;
}};
controls {{ }};
logging {{
    channel queries_file {{ file "{dir}/query.log"; print-time yes; severity info; }};
    channel main_file {{ file "{dir}/named.log"; print-time yes; severity info; }};
    category queries {{ queries_file; }};
    category default {{ main_file; }};
}};
zone "{zone}" {{ type primary; file "{dir}/{zone}.db"; allow-update {{ key "{key_name}"; }}; }};
"""

_ZONE = """$TTL 5
@       IN SOA ns.{zone}. admin.{zone}. 1 60 60 3600 1
@       IN NS  ns.{zone}.
ns      IN A   {host}
"""


class BindUnavailable(RuntimeError):
    """``named`` or ``nsupdate`` is not installed, or named would not start."""


def named_path() -> str | None:
    for name, fallback in (("named", "/usr/sbin/named"),):
        found = shutil.which(name) or (fallback if os.path.exists(fallback) else None)
        if found:
            return found
    return None


def nsupdate_path() -> str | None:
    return shutil.which("nsupdate") or ("/usr/bin/nsupdate" if os.path.exists("/usr/bin/nsupdate") else None)


def bind_available() -> bool:
    """Whether ``named`` and ``nsupdate`` are installed (what a test skips on)."""
    return named_path() is not None and nsupdate_path() is not None


class BindDnsServer:
    """``named`` serving one zone on ``host:port`` from a temporary directory."""

    def __init__(self, zone: str = "drill.test", host: str = "127.0.0.1", port: int = 0) -> None:
        check_loopback(host, "BindDnsServer")
        if not bind_available():
            raise BindUnavailable("--dns bind needs BIND 9's named and nsupdate "
                                  "(Debian/Ubuntu: apt-get install bind9 bind9-dnsutils); "
                                  "or use the default --dns embedded")
        self.zone = zone.strip(".").lower()
        self.host = host
        self.port = port
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._secret = base64.b64encode(os.urandom(32)).decode()
        self._records: dict[str, tuple[list[str], int]] = {}
        self._lock = threading.Lock()

    # -- life cycle ----------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> BindDnsServer:
        import dns.exception
        import dns.message
        import dns.query
        import dns.rcode

        if not self.port:
            try:
                self.port = free_port(self.host, udp=True)  # named serves DNS over both
            except OSError as e:
                raise BindUnavailable(f"no free port for named on {self.host}: {e}") from e
        self._dir = tempfile.TemporaryDirectory(prefix="resilient-aws-bind-")
        d = Path(self._dir.name)
        (d / f"{self.zone}.db").write_text(_ZONE.format(zone=self.zone, host=self.host))
        (d / "named.conf").write_text(_CONF.format(key_name=KEY_NAME, secret=self._secret, dir=d, port=self.port,
                                                   zone=self.zone, host=self.host))
        with open(d / "named.stderr", "wb") as err:
            self._proc = subprocess.Popen([str(named_path()), "-f", "-n", "1", "-c", str(d / "named.conf")],
                                          stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # bounded wait for named to answer
            if self._proc.poll() is not None:
                message = f"named exited: {(d / 'named.stderr').read_text()[-1000:]}"
                self.stop()  # removes the temporary directory
                raise BindUnavailable(message)
            try:
                reply = dns.query.udp(dns.message.make_query(self.zone, "SOA"), self.host, port=self.port,
                                      timeout=0.3)
                if reply.rcode() == dns.rcode.NOERROR and reply.answer:
                    return self
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.1)
        self.stop()
        raise BindUnavailable(f"named did not answer on {self.host}:{self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> BindDnsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- records -------------------------------------------------------------------------------
    def set(self, name: str, a: Sequence[str] = (), aaaa: Sequence[str] = (), ttl: int = 5) -> None:
        if aaaa:
            raise ValueError("the BIND drill backend serves A records only")
        name = name.strip(".").lower()
        with self._lock:
            self._records[name] = (list(a), int(ttl))
        self._update([f"delete {name}.", f"add {name}. {ttl} TXT \"drill\"",
                      *(f"add {name}. {ttl} A {ip}" for ip in a)])

    def set_mode(self, name: str, mode: str) -> None:
        name = name.strip(".").lower()
        with self._lock:
            ips, ttl = self._records.get(name, ([], 5))
        if mode == "answer":
            self._update([f"delete {name}. A", f"add {name}. {ttl} TXT \"drill\"",
                          *(f"add {name}. {ttl} A {ip}" for ip in ips)])
        elif mode == "empty":
            self._update([f"delete {name}. A", f"add {name}. {ttl} TXT \"drill\""])
        elif mode == "nxdomain":
            self._update([f"delete {name}."])
        else:
            raise ValueError(f"mode {mode!r} is not available with --dns bind (answer, empty, nxdomain)")

    def restore(self, name: str) -> None:
        self.set_mode(name, "answer")

    def count(self, name: str | None = None) -> int:
        """A and AAAA queries for ``name`` (or for every name) in BIND's query log so far."""
        if self._dir is None:
            return 0
        try:
            text = (Path(self._dir.name) / "query.log").read_text(errors="replace")
        except FileNotFoundError:
            return 0
        target = re.escape(name.strip(".")) if name else r"\S+"
        return len(re.findall(rf"query: {target} IN (?:A|AAAA) ", text, flags=re.IGNORECASE))

    def _update(self, commands: list[str]) -> None:
        lines = [f"server {self.host} {self.port}", f"zone {self.zone}."]
        lines += [f"update {c}" for c in commands]
        lines.append("send")
        try:
            subprocess.run([str(nsupdate_path()), "-t", "5", "-y", f"hmac-sha256:{KEY_NAME}:{self._secret}"],
                           input="\n".join(lines) + "\n", text=True, check=True, timeout=15, capture_output=True)
        except subprocess.CalledProcessError as e:
            raise BindUnavailable(f"nsupdate failed: {e.stderr.strip()[-500:]}") from e
