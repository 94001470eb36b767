"""The real redis-server for tests of shared state: started once per session on a loopback port.

Tests that need it skip with the reason when no redis-server can be started, except where
``RESILIENT_AWS_REQUIRE_REDIS=1`` (CI sets it, having installed Debian's package): there a missing
server is a failure, so the proof cannot silently vanish from CI.
"""

from __future__ import annotations

import os
import uuid

import pytest

from resilient_aws.testing.redis_server import LoopbackRedisServer, RedisServerUnavailable


def start_or_skip() -> LoopbackRedisServer:
    try:
        return LoopbackRedisServer().start()
    except RedisServerUnavailable as exc:
        if os.environ.get("RESILIENT_AWS_REQUIRE_REDIS") == "1":
            pytest.fail(f"RESILIENT_AWS_REQUIRE_REDIS=1 but {exc}")
        pytest.skip(f"needs a real redis-server: {exc}")


@pytest.fixture(scope="session")
def redis_server():
    """One real redis-server for the session (tests that kill or stall Redis start their own)."""
    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def own_redis_server():
    """A redis-server of this test's own, to kill, stall and restart."""
    server = start_or_skip()
    yield server
    server.stop()


@pytest.fixture
def namespace() -> str:
    """A namespace of this test's own, so tests sharing one server never see each other's keys."""
    return f"t{uuid.uuid4().hex[:12]}"
