"""Outage drills for your own test suite: loopback AWS endpoints and a loopback DNS server.

Why: after 2025-10-20 the advice is to rehearse DNS blackouts and regional failures on purpose. This
package starts, on loopback only and with no AWS account, moto's HTTP server per region and a DNS
server for a test zone, points a ``resilient_aws.Session`` at them, and lets a test break and heal
each piece while it runs:

    from resilient_aws.testing import outage_drill

    with outage_drill(regions=["us-east-1", "us-west-2"]) as drill:
        session = drill.session()                      # a resilient_aws.Session aimed at the drill
        ddb = session.client("dynamodb", endpoint_urls=drill.endpoint_urls("dynamodb"))
        drill.dns_empty("us-east-1")                   # the 2025-10-20 answer: NOERROR, no records
        drill.fail("us-east-1", 503)                   # or drill.unreachable("us-east-1")
        drill.restore()                                # everything healthy again

With pytest, the plugin (installed with the package) provides the fixture ``aws_outage_drill``.

The pieces are importable on their own: :class:`LoopbackEndpoint` (``resilient_aws.testing.aws``,
which gathers the endpoint's modules) and :class:`LoopbackDnsServer` (``resilient_aws.testing.dns_server``).
For shared state, :class:`LoopbackRedisServer` is a real ``redis-server`` and :class:`Fleet`
(``resilient_aws.testing.fleet``) runs N worker processes through a drill, counted at the server.
Imports are lazy so that ``import resilient_aws.testing`` does not pull in moto or werkzeug until
a drill is used; they come with the ``drill`` extra: ``pip install 'resilient-aws[drill]'``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_LAZY = {
    "LoopbackEndpoint": ".endpoint",
    "PortInUseError": ".endpoint",
    "start_region_endpoints": ".endpoint",
    "loopback_endpoints": ".endpoint",
    "EndpointCounts": ".counters",
    "TAG_HEADER": ".counters",
    "TEST_CREDENTIALS": ".tables",
    "create_table": ".tables",
    "plain_client": ".tables",
    "put_items": ".tables",
    "seed_regions": ".tables",
    "LoopbackDnsServer": ".dns_server",
    "LoopbackRedisServer": ".redis_server",
    "RedisServerUnavailable": ".redis_server",
    "OutageDrill": ".drill_env",
    "outage_drill": ".drill_env",
    "EndpointTimeline": ".fleet",
    "FaultPhases": ".fleet",
    "Fleet": ".fleet",
    "FleetError": ".fleet",
    "FleetPlan": ".fleet",
    "FleetResult": ".fleet",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # what type checkers see (``X as X``: re-exported); at run time, imported on first use
    from .counters import TAG_HEADER as TAG_HEADER
    from .counters import EndpointCounts as EndpointCounts
    from .dns_server import LoopbackDnsServer as LoopbackDnsServer
    from .drill_env import OutageDrill as OutageDrill
    from .drill_env import outage_drill as outage_drill
    from .endpoint import LoopbackEndpoint as LoopbackEndpoint
    from .endpoint import PortInUseError as PortInUseError
    from .endpoint import loopback_endpoints as loopback_endpoints
    from .endpoint import start_region_endpoints as start_region_endpoints
    from .fleet import EndpointTimeline as EndpointTimeline
    from .fleet import FaultPhases as FaultPhases
    from .fleet import Fleet as Fleet
    from .fleet import FleetError as FleetError
    from .fleet import FleetPlan as FleetPlan
    from .fleet import FleetResult as FleetResult
    from .redis_server import LoopbackRedisServer as LoopbackRedisServer
    from .redis_server import RedisServerUnavailable as RedisServerUnavailable
    from .tables import TEST_CREDENTIALS as TEST_CREDENTIALS
    from .tables import create_table as create_table
    from .tables import plain_client as plain_client
    from .tables import put_items as put_items
    from .tables import seed_regions as seed_regions


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
