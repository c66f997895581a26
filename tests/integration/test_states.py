"""shared.states against the database: the line and queue states the code knows are exactly the
ones the tables' CHECK constraints allow (sql/001_foundation.sql), so neither can drift."""

from __future__ import annotations

import re

import asyncpg
import pytest

from shared.states import LINE_STATES, QUEUE_STATES, TERMINAL_LINE_STATES, TERMINAL_QUEUE_STATES

pytestmark = pytest.mark.integration


async def allowed_states(pool: asyncpg.Pool, table: str) -> set[str]:
    definitions = await pool.fetch(
        "SELECT pg_get_constraintdef(oid) AS definition FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'",
        table,
    )
    [state_check] = [row["definition"] for row in definitions if "state" in row["definition"]]
    return set(re.findall(r"'(\w+)'", state_check))


async def test_the_state_sets_are_the_ones_the_tables_allow(db_pool: asyncpg.Pool) -> None:
    assert await allowed_states(db_pool, "woo_customer_sync_queue_line") == set(LINE_STATES)
    assert await allowed_states(db_pool, "woo_customer_sync_queue") == set(QUEUE_STATES)
    assert TERMINAL_LINE_STATES < set(LINE_STATES) and TERMINAL_QUEUE_STATES < set(QUEUE_STATES)
