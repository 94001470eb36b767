"""The two exceptions resilient_aws adds; everything else a caller sees is botocore's own.

``CircuitOpenError`` subclasses ``BotoCoreError`` so that code which already catches botocore's
errors around an AWS call keeps working when resilient_aws refuses a call locally.
``ConfigError`` subclasses ``ValueError`` and always names the offending field, because a bad
policy found at construction is cheap and a bad policy found during an outage is not.
"""

from __future__ import annotations

from botocore.exceptions import BotoCoreError


class CircuitOpenError(BotoCoreError):
    """Every region this call may use has its circuit breaker open; no request was sent."""

    fmt = "Circuit open for {service} in every allowed region ({regions}); call {operation} was not sent"

    def __init__(self, *, service: str, operation: str, regions: list[str] | tuple[str, ...]) -> None:
        super().__init__(service=service, operation=operation, regions=", ".join(regions))
        self.service = service
        self.operation = operation
        self.regions = tuple(regions)


class ConfigError(ValueError):
    """A configuration value is invalid. ``field`` names it, e.g. ``"RetryPolicy.max_attempts"``."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
