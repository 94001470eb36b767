"""Every private botocore/urllib3 name resilient_aws relies on, in one place, checked at import.

Why: botocore and urllib3 do not promise to keep these names. If an upgrade moves one, resilient_aws
must fail loudly at import with a message naming the botocore version and what moved, never carry
on with a silently disabled feature (keep-alive sockets shared by forked processes, DNS not cached).
"""

from __future__ import annotations

import botocore

#: botocore registers its retry handler on ``needs-retry.<service>`` under this unique id (every mode).
RETRY_HANDLER_ID = "retry-config-{}"
#: standard mode seeds ``amz-sdk-request``'s ``max`` on ``request-created.<service>`` under this id.
SEED_MAX_ATTEMPTS_ID = "seed-max-attempts-{}"

BOTOCORE_VERSION = botocore.__version__
