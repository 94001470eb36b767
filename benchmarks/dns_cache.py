"""What the DNS cache costs, and proof that pooled calls do no DNS work.

    .venv/bin/python benchmarks/dns_cache.py [--quick]

1. The median cost of a cache hit (``DnsCache.resolve`` for a name it knows) next to
   ``socket.getaddrinfo`` of the same name (``localhost``, answered from /etc/hosts, so the
   comparison is the cheapest case for getaddrinfo: no DNS packet at all). Target: <= 2 us a hit.
2. N calls of one botocore client (attached to the cache) over one keep-alive connection to a
   loopback HTTP server: how many times the cache was asked, and how many connections the server saw.

Everything runs on loopback (a dnspython DNS server and an HTTP server in this process).
"""

from __future__ import annotations

import argparse
import http.server
import platform
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import botocore.session
from botocore.config import Config

from resilient_aws.dns import DnsCache, attach_dns
from resilient_aws.policy import DnsPolicy
from resilient_aws.testing.dns_server import LoopbackDnsServer

NAME = "dynamodb.us-east-1.bench.test"


def per_call(fn, n: int, repeats: int) -> tuple[float, float]:
    """Median and best of ``repeats`` samples of ``n`` calls each, in microseconds per call."""
    samples = []
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        samples.append((time.perf_counter() - t) / n * 1e6)
    return statistics.median(samples), min(samples)


class KeepAliveServer:
    """HTTP/1.1 keep-alive server answering ListTables; counts connections and requests."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests = 0
        outer = self
        body = b'{"TableNames": []}'

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                outer.connections += 1
                super().setup()

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.requests += 1
                self.send_response(200)
                self.send_header("content-type", "application/x-amz-json-1.0")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (CI smoke run)")
    parser.add_argument("--calls", type=int, default=200, help="calls over one pooled connection")
    args = parser.parse_args()
    n, repeats = (2_000, 7) if args.quick else (20_000, 15)

    with tempfile.TemporaryDirectory() as tmp:
        hosts = Path(tmp) / "hosts"
        hosts.write_text("127.0.0.1 localhost\n")
        cache = DnsCache(DnsPolicy(nameservers=["127.0.0.1"], port=53), hosts_path=str(hosts))
        cache.resolve("localhost", 443)  # warm: from then on, every call is a hit
        hit_med, hit_best = per_call(lambda: cache.resolve("localhost", 443), n, repeats)
        gai_med, gai_best = per_call(lambda: socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM),
                                     max(200, n // 10), repeats)

    with LoopbackDnsServer() as dns_server:
        dns_server.set(NAME, a=["127.0.0.1"], ttl=300)
        cache = DnsCache(DnsPolicy(nameservers=["127.0.0.1"], port=dns_server.port, timeout=1.0))
        asked: list[str] = []
        original = cache.resolve

        def counting(host: str, port: int) -> list[tuple]:
            asked.append(host)
            return original(host, port)

        cache.resolve = counting  # type: ignore[method-assign]  # this instance only
        server = KeepAliveServer()
        try:
            client = botocore.session.get_session().create_client(
                "dynamodb", region_name="us-east-1", endpoint_url=f"http://{NAME}:{server.port}",
                aws_access_key_id="x", aws_secret_access_key="x", config=Config(retries={"total_max_attempts": 1}))
            attach_dns(client, cache)
            client.list_tables()
            first = (len(asked), dns_server.count(NAME))
            for _ in range(args.calls):
                client.list_tables()
            rest = (len(asked) - first[0], dns_server.count(NAME) - first[1])
            connections, requests = server.connections, server.requests
        finally:
            server.close()

    print(f"## DNS cache ({platform.python_implementation()} {platform.python_version()}, "
          f"{platform.machine()}, {n} calls x {repeats} samples)\n")
    print("| what | median us/call | best us/call |")
    print("| --- | --- | --- |")
    print(f"| `DnsCache.resolve('localhost', 443)`, cache hit | {hit_med:.2f} | {hit_best:.2f} |")
    print(f"| `socket.getaddrinfo('localhost', 443)` (/etc/hosts, no DNS packet) | {gai_med:.2f} | {gai_best:.2f} |")
    print()
    print("| pooled keep-alive client | calls | cache lookups | DNS queries | TCP connections |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| first call | 1 | {first[0]} | {first[1]} | 1 |")
    print(f"| next calls, same connection | {args.calls} | {rest[0]} | {rest[1]} | {connections - 1} |")
    print(f"\n(server saw {requests} requests on {connections} connection(s))")
    ok = hit_med <= 2.0 and rest == (0, 0) and connections == 1
    print(f"\ntarget (hit <= 2 us, no DNS work on a pooled connection): {'met' if ok else 'NOT met'}")
    return 0 if rest == (0, 0) else 1


if __name__ == "__main__":
    sys.exit(main())
