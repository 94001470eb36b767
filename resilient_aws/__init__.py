"""resilient_aws: keep botocore/boto3 clients working when AWS itself breaks.

Last-known-good DNS, multi-region failover, a circuit breaker per endpoint, token-bucket
retry budgets and jittered backoff, with one retry loop and a hot path of about a microsecond.
This module only re-exports the public names; see the README and docs/ for the design.
"""

from .breaker import CLOSED, HALF_OPEN, OPEN
from .client import ResilientClient
from .errors import CircuitOpenError, ConfigError
from .events import Event
from .policy import BreakerPolicy, BudgetPolicy, DnsPolicy, FailoverPolicy, Policy, RetryPolicy
from .session import Session
from .timing import Timing
from .wrap import wrap

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # RedisState needs the ``redis`` package (extra ``resilient-aws[redis]``): imported on first use only
    if name in ("RedisState", "SharedState"):
        from . import fleet

        return getattr(fleet, name)
    raise AttributeError(f"module 'resilient_aws' has no attribute {name!r}")

__all__ = [
    "CLOSED",
    "HALF_OPEN",
    "OPEN",
    "BreakerPolicy",
    "BudgetPolicy",
    "CircuitOpenError",
    "ConfigError",
    "DnsPolicy",
    "Event",
    "FailoverPolicy",
    "Policy",
    "RedisState",
    "ResilientClient",
    "RetryPolicy",
    "Session",
    "SharedState",
    "Timing",
    "__version__",
    "wrap",
]
