"""How the mount's time is split between the primary region and the failover region.

ASCP asks both regions; this provider asks the failover region only when the primary failed as
a region (fetch.py). A primary that hangs, rather than failing fast, would otherwise spend every
attempt's timeout and retry before the failover region is asked, once for STS and once more for
the secrets: with IRSA that outlasted the mount (about 45 s per step at 15 s per attempt). So
while a failover region remains, the primary gets at most ``PRIMARY_SHARE`` of the time left
(common.deadline), and its last error is then reported as regional: the failover region is
asked with the rest.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from agent.providers.common.deadline import portion

# A third: with the default 90 s, a hung primary costs at most ~28 s for STS and ~19 s for the
# secrets, leaving the failover region more than half of the time for both.
PRIMARY_SHARE = 1 / 3


@contextlib.contextmanager
def primary_share(regions: Sequence[str]) -> Iterator[None]:
    """Inside, the deadline is a share of the time left when ``regions[0]`` has a failover
    after it (``regions`` is the primary, then the failover region); unchanged otherwise."""
    if len(regions) < 2:
        yield
        return
    with portion(PRIMARY_SHARE):
        yield
