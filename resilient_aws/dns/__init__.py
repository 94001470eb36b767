"""Last-known-good DNS for the connections of wrapped botocore clients.

``DnsCache`` (one per session) resolves with dnspython, keeps the last good answer of every name
through empty answers, NXDOMAIN, SERVFAIL and timeouts, and can persist it; ``attach_dns(client,
cache)`` makes one botocore client's new connections use it, without patching anything global.
See ``docs/dns.md`` for why and how.
"""

from .cache import DnsCache, DnsLookupError
from .connection import attach_dns, is_attached
from .persist import AnswerStore
from .resolver import Answer, HostsFile, LookupFailure, Resolver

__all__ = [
    "Answer",
    "AnswerStore",
    "DnsCache",
    "DnsLookupError",
    "HostsFile",
    "LookupFailure",
    "Resolver",
    "attach_dns",
    "is_attached",
]
