"""The outage drill behind ``python -m resilient_aws drill`` / ``resilient-aws drill`` / ``make demo``.

It replays, on loopback and with no AWS account, the failures that matter — the us-east-1 DynamoDB
DNS record emptied (2025-10-20), the region answering 503, the region unreachable — against three
clients running the same load (five where aiobotocore is installed: two asyncio rows), and prints
what the *servers* saw. See ``docs/drill.md``.

Modules: ``config`` (DrillConfig), ``clients`` (the three clients), ``phases`` (what breaks when),
``workload`` (the load generator), ``status`` (live lines), ``metrics`` (the numbers, DrillResult),
``report`` (table, JSON, plot), ``runner`` (run_drill: the order of it all), ``baseline_dns`` (how
the plain botocore clients resolve names), ``bind`` (``--dns bind``), ``aio`` (the asyncio rows, each
client in a process of its own, and the event loop's lag). Importing this package imports
neither moto, werkzeug nor aiobotocore; running a drill needs the ``drill`` extra.
"""

from .clients import CLIENTS
from .config import DrillConfig
from .metrics import DrillResult
from .phases import Phase, phases_for
from .runner import run_drill

__all__ = ["CLIENTS", "DrillConfig", "DrillResult", "Phase", "phases_for", "run_drill"]
