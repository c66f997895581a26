"""The limits per organisation that the status API checks before it acts (docs/contract.md
section 7): the allowance of sync starts, kept in PostgreSQL for every status process. (The cap on
open syncs is checked where queues are created, shared/repository/sync_queues.py; the cap on event
streams by the hub's EventStreamSlots, services/status/sse.py.)"""

from __future__ import annotations

import math

from services.status.auth import Caller
from services.status.context import StatusContext
from services.status.errors import SyncStartRateExceeded
from shared.repository import org_limits


async def take_sync_start(ctx: StatusContext, caller: Caller) -> None:
    """Count a sync start (a new sync or a retry, both publish work) against the caller's
    organisation: SyncStartRateExceeded, with the seconds to wait, when its allowance is spent."""
    settings = ctx.settings
    if not settings.org_sync_start_rate:  # 0: unlimited
        return
    wait_s = await org_limits.take_sync_start(ctx.pool, caller.org_id, per_minute=settings.org_sync_start_rate,
                                              burst=settings.org_sync_start_burst)
    if wait_s is not None:
        raise SyncStartRateExceeded(per_minute=settings.org_sync_start_rate, burst=settings.org_sync_start_burst,
                                    retry_after_s=max(1, math.ceil(wait_s)))
