"""Creating the database and applying the numbered `sql/` migrations, safely from many processes.

Each migration runs in its own transaction, under a session advisory lock, and is recorded in
`schema_migrations` with the SHA-256 of the file. A file that was applied and then edited is
refused: the database would otherwise silently differ from what the repository says.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from shared.db import translate_db_error

log = logging.getLogger(__name__)

# Any fixed 64-bit number shared by every woosync process: b"woosync\x01".
MIGRATION_LOCK_KEY = 0x776F6F73796E6301
_MIGRATION_NAME = re.compile(r"^(\d+)_[A-Za-z0-9_.-]+\.sql$")


class MigrationError(Exception):
    """A migration cannot be applied, or the database disagrees with the migration files."""


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    sha256: str


def sql_dir() -> Path:
    """The migrations folder: WOOSYNC_SQL_DIR if set (installed images), else the repository's sql/."""
    override = os.environ.get("WOOSYNC_SQL_DIR")
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "sql"


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """Every NNN_name.sql file of the folder, in numeric order."""
    directory = directory or sql_dir()
    if not directory.is_dir():
        raise MigrationError(f"migrations folder {directory} does not exist (set WOOSYNC_SQL_DIR?)")
    found: list[tuple[int, str, Path]] = []
    for path in directory.iterdir():
        if path.suffix != ".sql":
            continue
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNN_description.sql")
        found.append((int(match.group(1)), path.name, path))
    found.sort()
    numbers = [number for number, _, _ in found]
    if len(set(numbers)) != len(numbers):
        raise MigrationError(f"two migrations in {directory} share a number: {[name for _, name, _ in found]}")
    migrations = []
    for _, name, path in found:
        raw = path.read_bytes()
        migrations.append(Migration(name=name, sql=raw.decode("utf-8"), sha256=hashlib.sha256(raw).hexdigest()))
    return migrations


def _database_name(dsn: str) -> str | None:
    name = urllib.parse.urlsplit(dsn).path.lstrip("/")
    return urllib.parse.unquote(name) or None


def _maintenance_dsn(dsn: str, database: str) -> str:
    parts = urllib.parse.urlsplit(dsn)
    return urllib.parse.urlunsplit(parts._replace(path="/" + urllib.parse.quote(database)))


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def _connect(dsn: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(dsn, timeout=10)
    except Exception as exc:
        translated = translate_db_error(exc)
        if translated is None:
            raise
        raise translated from exc


async def ensure_database(dsn: str) -> bool:
    """CREATE DATABASE for the database named in `dsn` if it does not exist; True if this call
    created it. Connects to the server's `postgres` maintenance database. Losing a race with
    another process creating the same database is not an error.
    """
    name = _database_name(dsn)
    if name is None:
        return False  # libpq's default database (the user's name): nothing we should create.
    try:
        conn = await _connect(_maintenance_dsn(dsn, "postgres"))
    except asyncpg.InvalidCatalogNameError:
        conn = await _connect(_maintenance_dsn(dsn, "template1"))
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        for attempt in range(5):
            try:
                await conn.execute(f"CREATE DATABASE {_quote_ident(name)}")
            except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
                # Another process created it between our check and our CREATE.
                return False
            except asyncpg.ObjectInUseError:
                # "source database template1 is being accessed by other users": wait it out.
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
                continue
            log.info("created database %s", name)
            return True
        return False
    finally:
        await conn.close()


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text PRIMARY KEY,
    sha256      text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


async def apply_migrations(dsn: str, directory: Path | None = None) -> list[str]:
    """Apply, in order, every migration not yet recorded; return the names applied by this call.

    Safe to run from several processes at once (they queue on an advisory lock) and to run
    again (applied files are skipped). Raises MigrationError naming the file when an applied
    file was edited since, or when a migration fails (its transaction is rolled back).
    """
    migrations = load_migrations(directory)
    conn = await _connect(dsn)
    try:
        # Released when the connection closes, whatever happens below.
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_LEDGER)
        applied = {row["name"]: row["sha256"] for row in await conn.fetch("SELECT name, sha256 FROM schema_migrations")}
        for migration in migrations:
            recorded = applied.get(migration.name)
            if recorded is not None and recorded != migration.sha256:
                raise MigrationError(
                    f"migration {migration.name} was edited after it was applied "
                    f"(applied sha256 {recorded[:12]}..., file now {migration.sha256[:12]}...): "
                    "never edit an applied migration; add a new numbered file instead"
                )
        unknown = sorted(set(applied) - {m.name for m in migrations})
        if unknown:
            log.warning("the database has migrations that are not in %s: %s", directory or sql_dir(), unknown)

        done_now: list[str] = []
        for migration in migrations:
            if migration.name in applied:
                continue
            try:
                async with conn.transaction():
                    await conn.execute(migration.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (name, sha256) VALUES ($1, $2)",
                        migration.name,
                        migration.sha256,
                    )
            except asyncpg.PostgresError as exc:
                translated = translate_db_error(exc)
                if translated is not None:
                    raise translated from exc
                raise MigrationError(f"migration {migration.name} failed and was rolled back: {exc}") from exc
            log.info("applied migration %s", migration.name)
            done_now.append(migration.name)
        return done_now
    finally:
        await conn.close()
