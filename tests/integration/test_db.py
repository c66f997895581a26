"""shared.db: the pool's JSON codecs and the sorting of database errors into retryable or not."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import asyncpg
import pytest

from shared.db import connect, create_pool, translate_db_error
from shared.errors import DatabaseUnavailable, RetryableError

pytestmark = pytest.mark.integration


async def test_jsonb_and_json_travel_as_python_objects_and_numeric_stays_decimal(db_pool: asyncpg.Pool) -> None:
    document = {"email": "ada@example.com", "meta_data": [{"key": "vip", "value": True}], "total": None, "n": 3}
    assert await db_pool.fetchval("SELECT $1::jsonb", document) == document
    assert await db_pool.fetchval("SELECT $1::json", [1, "two"]) == [1, "two"]
    assert await db_pool.fetchval("SELECT jsonb_build_object('a', 1) || $1::jsonb", {"b": 2}) == {"a": 1, "b": 2}
    assert await db_pool.fetchval("SELECT $1::jsonb[]", [{"a": 1}, {"b": [2]}]) == [{"a": 1}, {"b": [2]}]
    # A Decimal inside a document is stored as its exact string.
    assert await db_pool.fetchval("SELECT $1::jsonb ->> 'ltv'", {"ltv": Decimal("1234.50")}) == "1234.50"
    assert await db_pool.fetchval("SELECT 1234.50::numeric(14,2)") == Decimal("1234.50")


async def test_a_single_connection_has_the_same_codecs(database_url: str) -> None:
    conn = await connect(database_url)
    try:
        assert await conn.fetchval("SELECT '{\"a\": [1]}'::jsonb") == {"a": [1]}
    finally:
        await conn.close()


async def test_a_pool_on_a_server_that_does_not_answer_is_database_unavailable() -> None:
    with pytest.raises(DatabaseUnavailable):
        await create_pool("postgresql://postgres@127.0.0.1:1/nothing", min_size=1, max_size=1, timeout=2)


async def test_a_connection_killed_by_the_server_is_retryable(database_url: str, db_pool: asyncpg.Pool) -> None:
    victim = await asyncpg.connect(database_url)
    try:
        await db_pool.execute("SELECT pg_terminate_backend($1)", victim.get_server_pid())
        with pytest.raises(Exception) as raised:
            for _ in range(50):  # the termination arrives asynchronously
                await victim.fetchval("SELECT 1")
                await asyncio.sleep(0.05)
        translated = translate_db_error(raised.value)
        assert isinstance(translated, DatabaseUnavailable) and isinstance(translated, RetryableError)
    finally:
        await victim.close()


async def test_a_deadlock_is_retryable(db_pool: asyncpg.Pool) -> None:
    await db_pool.execute("CREATE TABLE deadlock_probe (id int PRIMARY KEY); INSERT INTO deadlock_probe VALUES (1), (2)")
    first, second = await db_pool.acquire(), await db_pool.acquire()
    try:
        first_tx, second_tx = first.transaction(), second.transaction()
        await first_tx.start()
        await second_tx.start()
        await first.execute("UPDATE deadlock_probe SET id = id WHERE id = 1")
        await second.execute("UPDATE deadlock_probe SET id = id WHERE id = 2")
        outcomes = await asyncio.gather(
            first.execute("UPDATE deadlock_probe SET id = id WHERE id = 2"),
            second.execute("UPDATE deadlock_probe SET id = id WHERE id = 1"),
            return_exceptions=True,
        )
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        assert len(errors) == 1 and isinstance(errors[0], asyncpg.DeadlockDetectedError)
        assert isinstance(translate_db_error(errors[0]), DatabaseUnavailable)
        await first_tx.rollback()
        await second_tx.rollback()
    finally:
        await db_pool.release(first)
        await db_pool.release(second)


async def test_errors_in_the_work_itself_are_not_retryable(db_pool: asyncpg.Pool) -> None:
    with pytest.raises(asyncpg.PostgresError) as syntax:
        await db_pool.execute("SELEC 1")
    assert translate_db_error(syntax.value) is None
    with pytest.raises(asyncpg.UniqueViolationError) as duplicate:
        await db_pool.execute("CREATE TEMP TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1), (1)")
    assert translate_db_error(duplicate.value) is None
    assert translate_db_error(ValueError("not a database error")) is None
