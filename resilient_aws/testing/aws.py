"""Loopback AWS endpoints with fault injection: the names tests and benchmarks import, in one place.

Why this module is only names: the endpoint used to be one 650-line file; it is now split along its
seams, one job per module, and this module keeps every name importable from where code already
imports it (``from resilient_aws.testing.aws import LoopbackEndpoint``):

- :mod:`~resilient_aws.testing.endpoint`: :class:`LoopbackEndpoint` (listening socket, faults below
  HTTP, life cycle), :func:`start_region_endpoints`, :func:`loopback_endpoints`, :class:`PortInUseError`;
- :mod:`~resilient_aws.testing.faults`: the fault-injecting WSGI middleware (errors, latency);
- :mod:`~resilient_aws.testing.counters`: server-side counts (:class:`EndpointCounts`, :data:`TAG_HEADER`);
- :mod:`~resilient_aws.testing.moto_backend`: moto's ``ThreadedMotoServer`` behind the endpoints;
- :mod:`~resilient_aws.testing.front`: the werkzeug server that listens and tracks connections;
- :mod:`~resilient_aws.testing.tables`: set-up helpers (:func:`plain_client`, :func:`create_table`, ...).

Importing it does not import moto or werkzeug: they are loaded when an endpoint starts, and come with
the ``drill`` extra (``pip install 'resilient-aws[drill]'``).
"""

from __future__ import annotations

from .counters import TAG_HEADER, EndpointCounts
from .counters import TIMELINE_SECONDS as TIMELINE_SECONDS  # module constants here before the split
from .endpoint import LoopbackEndpoint, PortInUseError, loopback_endpoints, start_region_endpoints
from .faults import FAILING as FAILING
from .faults import HEALTHY as HEALTHY
from .faults import MODES as MODES
from .faults import SLOW as SLOW
from .net import check_loopback
from .tables import TEST_CREDENTIALS, create_table, plain_client, put_items, seed_regions

__all__ = [
    "TAG_HEADER",
    "TEST_CREDENTIALS",
    "EndpointCounts",
    "LoopbackEndpoint",
    "PortInUseError",
    "create_table",
    "loopback_endpoints",
    "plain_client",
    "put_items",
    "seed_regions",
    "start_region_endpoints",
]

#: Kept for ``tests/support/fault_proxy.py``, which imports it from here; new code should use
#: :func:`resilient_aws.testing.net.check_loopback`.
_check_loopback = check_loopback
