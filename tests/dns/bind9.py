"""BIND 9's ``named`` on a loopback port, with a zone generated in a temporary directory.

Why real BIND: the loopback dnspython server in ``resilient_aws.testing`` is ours, so it could share
our misunderstandings. BIND is what resolvers in the wild run; its dynamic updates (``nsupdate`` with
a TSIG key) delete and restore records the way the 2025-10-20 automation did, and its query log is
an independent count of the queries the client really sent.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode

ZONE = "resilient.test"
KEY_NAME = "resilient-ddns"

_CONF = """
key "{key_name}" {{ algorithm hmac-sha256; secret "{secret}"; }};
options {{
    directory "{dir}";
    pid-file "{dir}/named.pid";
    session-keyfile "{dir}/session.key";
    listen-on port {port} {{ 127.0.0.1; }};
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

_ZONE = """$TTL 1
@       IN SOA ns.{zone}. admin.{zone}. 1 60 60 3600 1
@       IN NS  ns.{zone}.
ns      IN A   127.0.0.1
{records}
"""


def named_path() -> str | None:
    return shutil.which("named") or (os.path.exists("/usr/sbin/named") and "/usr/sbin/named") or None


def nsupdate_path() -> str | None:
    return shutil.which("nsupdate") or (os.path.exists("/usr/bin/nsupdate") and "/usr/bin/nsupdate") or None


def _free_udp_tcp_port(host: str = "127.0.0.1", attempts: int = 20) -> int:
    for _ in range(attempts):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind((host, 0))
        port = udp.getsockname()[1]
        tcp = socket.socket()
        try:
            tcp.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            udp.close()
            tcp.close()
    raise RuntimeError("no free port")


class Bind9:
    """``named`` serving ``ZONE`` from ``workdir`` on 127.0.0.1:``port``. Records: ``{name: [(type, data)]}``
    with names relative to the zone. TTL 1 s for every record."""

    def __init__(self, workdir: Path, records: dict[str, list[tuple[str, str]]]) -> None:
        self.dir = Path(workdir)
        self.port = _free_udp_tcp_port()
        self.secret = base64.b64encode(os.urandom(32)).decode()
        lines = [f"{name} 1 IN {rtype} {data}" for name, items in records.items() for rtype, data in items]
        (self.dir / f"{ZONE}.db").write_text(_ZONE.format(zone=ZONE, records="\n".join(lines)))
        (self.dir / "named.conf").write_text(_CONF.format(
            key_name=KEY_NAME, secret=self.secret, dir=self.dir, port=self.port, zone=ZONE))
        self.query_log = self.dir / "query.log"
        self._proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> Bind9:
        binary = named_path()
        assert binary is not None
        self._proc = subprocess.Popen(
            [binary, "-f", "-n", "1", "-c", str(self.dir / "named.conf")],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "named.stderr", "wb"))  # noqa: SIM115
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"named exited: {(self.dir / 'named.stderr').read_text()[-2000:]}")
            try:
                r = dns.query.udp(dns.message.make_query(ZONE, "SOA"), "127.0.0.1", port=self.port, timeout=0.3)
                if r.rcode() == dns.rcode.NOERROR and r.answer:
                    return self
            except (OSError, dns.exception.Timeout):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("named did not answer in time")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        self._proc = None

    def update(self, *commands: str) -> None:
        """Run ``nsupdate`` (TSIG-signed) with ``update ...`` commands, e.g. ``"delete dynamodb A"``;
        names are relative to the zone."""
        lines = [f"server 127.0.0.1 {self.port}", f"zone {ZONE}"]
        for command in commands:
            verb, name, *rest = command.split()
            lines.append(" ".join(["update", verb, f"{name}.{ZONE}.", *rest]))
        lines.append("send")
        binary = nsupdate_path()
        assert binary is not None
        subprocess.run([binary, "-t", "5", "-y", f"hmac-sha256:{KEY_NAME}:{self.secret}"],
                       input="\n".join(lines) + "\n", text=True, check=True, timeout=15, capture_output=True)

    def queries(self, fqdn: str) -> int:
        """Queries for ``fqdn`` (any type) in BIND's query log so far."""
        try:
            text = self.query_log.read_text(errors="replace")
        except FileNotFoundError:
            return 0
        return len(re.findall(rf"query: {re.escape(fqdn)} IN (?:A|AAAA) ", text, flags=re.IGNORECASE))

    def __enter__(self) -> Bind9:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
