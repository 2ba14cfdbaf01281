"""Versioned schema migrations, applied at start by every service that uses PostgreSQL.

`migrations/NNNN_name.sql` files run in version order, each once per database; the versions
applied are recorded in `schema_migrations`. An advisory lock makes concurrent starts safe.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

# An arbitrary constant: the advisory lock key serializing migrations.
MIGRATION_LOCK_KEY = 0x616E616C79746963  # "analytic"

CREATE_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
SELECT_APPLIED_VERSIONS = "SELECT version FROM schema_migrations"
RECORD_MIGRATION = "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)"
LOCK_MIGRATIONS = "SELECT pg_advisory_xact_lock($1)"

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    found = []
    for entry in (resources.files("writer") / "migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


async def migrate(pool: asyncpg.Pool, up_to: int | None = None) -> list[Migration]:
    """Apply the migrations this database lacks (those up to version `up_to`, if given), all in
    one transaction; return them."""
    async with pool.acquire() as connection, connection.transaction():
        await connection.execute(LOCK_MIGRATIONS, MIGRATION_LOCK_KEY)
        await connection.execute(CREATE_MIGRATIONS_TABLE)
        applied = {row["version"] for row in await connection.fetch(SELECT_APPLIED_VERSIONS)}
        pending = [
            m
            for m in migrations()
            if m.version not in applied and (up_to is None or m.version <= up_to)
        ]
        for migration in pending:
            logger.info("applying migration %04d_%s", migration.version, migration.name)
            await connection.execute(migration.sql)
            await connection.execute(RECORD_MIGRATION, migration.version, migration.name)
    return pending
