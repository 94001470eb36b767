"""Fixtures of the asyncio suite (``tests/aio``, run in ``.venv-aio``).

The live tests reuse the integration suite's real servers on loopback, unchanged: one moto HTTP server
(``moto_url``) and the counting HTTP server (``counting_server``); the shared-state tests a real redis-server."""

from __future__ import annotations

from integration.conftest import counting_server, moto_url  # noqa: F401 (fixtures: real servers on loopback)
from support.redis import namespace, own_redis_server, redis_server  # noqa: F401 (fixtures: a real redis-server)
