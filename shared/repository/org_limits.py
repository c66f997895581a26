"""Rate limits per organisation, kept in PostgreSQL (organization_rate_limit, sql/002_org_limits.sql)
so that every process of every replica shares them: the status API's allowance of sync starts
(WOOSYNC_ORG_SYNC_START_RATE per minute, bursts of WOOSYNC_ORG_SYNC_START_BURST).

The algorithm is GCRA, a token bucket kept as one timestamp per organisation and limit, read and
moved by one atomic statement per request; time is the database's, never a process clock.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

from shared.errors import UnknownOrganization
from shared.repository.sql import Executor

SYNC_START = "sync_start"

# $3: seconds between two requests at the sustained rate; $4: the burst's length in seconds.
_TAKE = """
INSERT INTO organization_rate_limit AS lim (org_id, limit_name, tat, last_allowed)
VALUES ($1, $2, now() + make_interval(secs => $3), true)
ON CONFLICT (org_id, limit_name) DO UPDATE
   SET last_allowed = greatest(lim.tat, now()) + make_interval(secs => $3) <= now() + make_interval(secs => $4),
       tat = CASE WHEN greatest(lim.tat, now()) + make_interval(secs => $3) <= now() + make_interval(secs => $4)
                  THEN greatest(lim.tat, now()) + make_interval(secs => $3)
                  ELSE lim.tat END
RETURNING last_allowed,
          extract(epoch FROM greatest(tat, now()) + make_interval(secs => $3) - now())::float8 - $4 AS wait_s
"""


async def take(conn: Executor, org_id: UUID, limit_name: str, *, per_minute: float, burst: int) -> float | None:
    """Take one place of the organisation's `limit_name` allowance: None when it was free, else
    the seconds until one will be (nothing is taken then)."""
    interval = 60.0 / per_minute
    try:
        row = await conn.fetchrow(_TAKE, org_id, limit_name, interval, interval * burst)
    except asyncpg.ForeignKeyViolationError:
        raise UnknownOrganization(f"organisation {org_id} is not registered") from None
    if row["last_allowed"]:
        return None
    return max(row["wait_s"], 0.001)


async def take_sync_start(conn: Executor, org_id: UUID, *, per_minute: float, burst: int) -> float | None:
    """One sync start (or retry) of the organisation: None when allowed, else the seconds to wait."""
    return await take(conn, org_id, SYNC_START, per_minute=per_minute, burst=burst)
