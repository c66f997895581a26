"""What every module of the data layer shares: the connection type its functions take, and
reading asyncpg's command tags."""

from __future__ import annotations

import asyncpg

# An asyncpg Connection (possibly inside the caller's transaction) or a Pool.
Executor = asyncpg.Connection | asyncpg.Pool


def rows_affected(status: str) -> int:
    """Rows an UPDATE/DELETE/INSERT touched: asyncpg returns the command tag, e.g. "UPDATE 12"."""
    return int(status.rsplit(" ", 1)[-1])
