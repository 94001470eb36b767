"""resilient_aws for asyncio: aiobotocore clients with the same resilience as the thread clients.

Needs the ``aio`` extra (``pip install 'resilient-aws[aio]'``, the ``aiobotocore`` package). Importing
``resilient_aws`` never imports this package; importing it checks aiobotocore's private names once
(``aio._compat``). See docs/asyncio.md.
"""

from . import _compat  # noqa: F401  (checks aiobotocore's seams at import)
from .client import AioResilientClient
from .session import Session
from .wrap import wrap

__all__ = ["AioResilientClient", "Session", "wrap"]
