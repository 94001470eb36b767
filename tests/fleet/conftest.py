"""Shared state: unit tests on the in-memory store, contract and behaviour tests on a real redis-server."""

from __future__ import annotations

import pytest
from support.redis import namespace, own_redis_server, redis_server  # noqa: F401 (fixtures)

_SERVER_FIXTURES = {"redis_server", "own_redis_server"}


def pytest_collection_modifyitems(items):
    """Tests that start a real redis-server are integration tests (``-m "not integration"`` skips them)."""
    for item in items:
        if "tests/fleet/" in item.nodeid and _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
