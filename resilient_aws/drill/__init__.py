"""The outage drill behind ``python -m resilient_aws drill`` / ``resilient-aws drill`` / ``make demo``.

It replays, on loopback and with no AWS account, the failures that matter — the us-east-1 DynamoDB
DNS record emptied (2025-10-20), the region answering 503, the region unreachable — against three
clients running the same load, and prints what the *servers* saw. See ``docs/drill.md``.
"""

from .runner import CLIENTS, DrillConfig, DrillResult, Phase, phases_for, run_drill

__all__ = ["CLIENTS", "DrillConfig", "DrillResult", "Phase", "phases_for", "run_drill"]
