"""Applying the schema migrations (core.schema lists them). Only the writer does this, at its
start, and `analytics-migrate`; an advisory lock makes concurrent runs safe."""

from __future__ import annotations

import logging

import asyncpg

from core.schema import Migration, migrations

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

logger = logging.getLogger(__name__)


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
