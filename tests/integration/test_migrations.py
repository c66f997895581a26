"""`woosync migrate` and shared.migrations against a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from shared.migrations import MigrationError, apply_migrations, ensure_database, load_migrations, sql_dir

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
WOOSYNC = str(Path(sys.executable).with_name("woosync"))  # the console script the project installs


def run_woosync(*args: str, database_url: str, sql: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [WOOSYNC, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env=_env(database_url, sql),
    )


def _env(database_url: str, sql: Path | None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("WOOSYNC_")}
    env["WOOSYNC_DATABASE_URL"] = database_url
    env["PYTHONPATH"] = str(REPO)
    if sql is not None:
        env["WOOSYNC_SQL_DIR"] = str(sql)
    return env


async def _fetch(url: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


def _ledger(url: str) -> list[tuple[str, str]]:
    rows = asyncio.run(_fetch(url, "SELECT name, sha256 FROM schema_migrations ORDER BY name"))
    return [(row["name"], row["sha256"]) for row in rows]


def _expected_ledger(directory: Path | None = None) -> list[tuple[str, str]]:
    return [(m.name, m.sha256) for m in load_migrations(directory)]


def test_migrate_creates_the_database_then_twice_in_a_row_is_a_no_op(unborn_database_url: str) -> None:
    first = run_woosync("migrate", database_url=unborn_database_url)
    assert first.returncode == 0, first.stderr
    assert "001_foundation.sql" in first.stdout
    second = run_woosync("migrate", database_url=unborn_database_url)
    assert second.returncode == 0, second.stderr
    assert "up to date" in second.stdout

    assert _ledger(unborn_database_url) == _expected_ledger()
    tables = {row["tablename"] for row in asyncio.run(_fetch(unborn_database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
    assert {"organization", "api_token", "customer", "woo_customer_sync_queue", "woo_customer_sync_queue_line", "woo_sync_activity"} <= tables


def test_three_migrate_processes_at_once_all_succeed_and_apply_the_schema_once(unborn_database_url: str) -> None:
    command = [WOOSYNC, "migrate"]
    env = _env(unborn_database_url, None)
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env)
        for _ in range(3)
    ]
    outputs = [process.communicate(timeout=90) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, f"exit {process.returncode}: {stdout}\n{stderr}"
    # Exactly one process applied each migration; the others found it applied.
    applying = [stdout for stdout, _ in outputs if "applied" in stdout]
    assert len(applying) == 1, outputs
    assert _ledger(unborn_database_url) == _expected_ledger()


def test_migrate_on_an_existing_empty_database_applies_everything(empty_database_url: str) -> None:
    result = run_woosync("migrate", database_url=empty_database_url)
    assert result.returncode == 0, result.stderr
    assert _ledger(empty_database_url) == _expected_ledger()


def test_an_edited_applied_migration_is_refused_naming_the_file(empty_database_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    shutil.copytree(sql_dir(), sql)
    assert run_woosync("migrate", database_url=empty_database_url, sql=sql).returncode == 0

    with (sql / "001_foundation.sql").open("a") as edited:
        edited.write("\n-- an innocent-looking edit\n")
    refused = run_woosync("migrate", database_url=empty_database_url, sql=sql)

    assert refused.returncode != 0
    assert "001_foundation.sql" in refused.stderr
    assert "edited after it was applied" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert _ledger(empty_database_url) == _expected_ledger(), "the ledger must not change"


def test_a_new_migration_file_is_applied_after_the_applied_ones(empty_database_url: str, tmp_path: Path) -> None:
    sql = tmp_path / "sql"
    shutil.copytree(sql_dir(), sql)
    assert asyncio.run(apply_migrations(empty_database_url, sql)) == [m.name for m in load_migrations(sql)]
    (sql / "900_note.sql").write_text("CREATE TABLE migration_note (note text);\n")

    assert asyncio.run(apply_migrations(empty_database_url, sql)) == ["900_note.sql"]
    assert asyncio.run(apply_migrations(empty_database_url, sql)) == []


def test_a_failing_migration_is_rolled_back_and_not_recorded(empty_database_url: str, tmp_path: Path) -> None:
    (tmp_path / "001_good.sql").write_text("CREATE TABLE good (id int);\n")
    (tmp_path / "002_bad.sql").write_text("CREATE TABLE half_done (id int);\nSELECT no_such_column FROM good;\n")

    with pytest.raises(MigrationError, match="002_bad.sql"):
        asyncio.run(apply_migrations(empty_database_url, tmp_path))

    assert [name for name, _ in _ledger(empty_database_url)] == ["001_good.sql"]
    tables = {row["tablename"] for row in asyncio.run(_fetch(empty_database_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))}
    assert "good" in tables and "half_done" not in tables


def test_misnamed_or_duplicate_numbered_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "001_a.sql").write_text("SELECT 1;")
    (tmp_path / "001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="share a number"):
        load_migrations(tmp_path)
    (tmp_path / "001_b.sql").unlink()
    (tmp_path / "later.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="later.sql"):
        load_migrations(tmp_path)


def test_migrations_are_applied_in_numeric_order(tmp_path: Path) -> None:
    for name in ("10_c.sql", "2_b.sql", "001_a.sql"):
        (tmp_path / name).write_text("SELECT 1;")
    assert [m.name for m in load_migrations(tmp_path)] == ["001_a.sql", "2_b.sql", "10_c.sql"]


async def test_ensure_database_creates_once_even_when_racing(unborn_database_url: str) -> None:
    results = await asyncio.gather(*(ensure_database(unborn_database_url) for _ in range(4)))
    assert results.count(True) == 1, results
    assert await ensure_database(unborn_database_url) is False


def test_migrate_against_an_unreachable_server_fails_cleanly() -> None:
    result = run_woosync("migrate", database_url="postgresql://postgres@127.0.0.1:1/woosync")
    assert result.returncode == 2
    assert "cannot reach" in result.stderr
    assert "Traceback" not in result.stderr
