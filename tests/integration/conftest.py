"""Real servers on loopback for the core's integration tests."""

from __future__ import annotations

import pytest
from moto.server import ThreadedMotoServer
from support.redis import own_redis_server, redis_server  # noqa: F401 (fixtures: a real redis-server)

from resilient_aws.testing.http import CountingHttpServer


@pytest.fixture(scope="session")
def moto_url():
    """One moto HTTP server; moto keeps each region's data apart by the request's signing region."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def counting_server():
    servers = []

    def make(**kw) -> CountingHttpServer:
        servers.append(CountingHttpServer(**kw).start())
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def pytest_collection_modifyitems(items):
    """Everything in tests/integration talks to real servers on loopback: mark it, so that
    ``pytest -m "not integration"`` is the quick, server-free part of the suite."""
    for item in items:
        if "tests/integration/" in item.nodeid:
            item.add_marker(pytest.mark.integration)
