"""What a drill run depends on: its configuration, and the names of the world it runs in.

Why a module of its own: every other part of the drill (clients, workload, phases, metrics, report)
reads these, and the JSON report records the configuration as it was, so it must not depend on any of
them. Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KEYS", "PRIMARY", "SECONDARY", "TABLE", "DrillConfig"]

PRIMARY = "us-east-1"
SECONDARY = "us-west-2"
TABLE = "drill"
KEYS = 200  # items k000..k199, the same in both regions


@dataclass
class DrillConfig:
    """Everything a drill run depends on (also written to the JSON report)."""

    quick: bool = False
    threads: int = 4           # worker threads per client
    rate: float = 5.0          # calls per second per thread (offered load)
    write_ratio: float = 0.2   # share of PutItem calls
    port: int = 0              # HTTP port of both regions (0: a free one)
    dns: str = "embedded"      # "embedded" or "bind"
    seed: int = 1
    live: bool | None = None   # updating status lines; None: when the output is a terminal
    grace: float | None = None  # seconds to wait for calls in flight at the end
    aio: bool | None = None    # the asyncio rows; None: when aiobotocore is installed
    clients: tuple[str, ...] | None = None  # labels of the clients to run (default: all of them)
    loop_debug: bool = False   # asyncio rows: time every callback, report those over 5 ms (drill.aio)

    def __post_init__(self) -> None:
        if self.threads < 1 or self.threads > 64:
            raise ValueError(f"threads must be within 1..64, got {self.threads}")
        if not 0 < self.rate <= 100:
            raise ValueError(f"rate must be within (0, 100] calls/s per thread, got {self.rate}")
        if not 0 <= self.write_ratio <= 1:
            raise ValueError(f"write_ratio must be within [0, 1], got {self.write_ratio}")
        if self.dns not in ("embedded", "bind"):
            raise ValueError(f"dns must be 'embedded' or 'bind', got {self.dns!r}")
        if self.clients is not None:
            known = ("legacy", "standard", "resilient", "aiobotocore", "aio")
            self.clients = tuple(self.clients)
            unknown = [c for c in self.clients if c not in known]
            if unknown or not self.clients:
                raise ValueError(f"clients must be some of {', '.join(known)}, got {list(self.clients)!r}")

    @property
    def grace_seconds(self) -> float:
        """How long calls still in flight after the last phase are waited for."""
        return self.grace if self.grace is not None else (1.5 if self.quick else 3.0)

    @property
    def breaker_open_time(self) -> float:
        """resilient_aws's breaker open time in the drill (shorter than the default so recovery fits)."""
        return 1.0 if self.quick else 2.0
