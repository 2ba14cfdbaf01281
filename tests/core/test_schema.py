from __future__ import annotations

import asyncio

import asyncpg

from core.migrator import migrate
from core.schema import migrations


async def test_migrations_are_numbered_from_one_without_gaps() -> None:
    versions = [m.version for m in migrations()]

    assert versions == list(range(1, len(versions) + 1))


async def test_a_fresh_database_gets_every_migration(pool: asyncpg.Pool) -> None:
    applied = await migrate(pool)

    recorded = await pool.fetch("SELECT version, name FROM schema_migrations ORDER BY version")
    assert [(m.version, m.name) for m in applied] == [tuple(r) for r in recorded]
    assert [m.version for m in applied] == [m.version for m in migrations()]


async def test_a_migrated_database_gets_nothing_more(pool: asyncpg.Pool) -> None:
    await migrate(pool)

    assert await migrate(pool) == []


async def test_concurrent_starts_apply_each_migration_once(pool: asyncpg.Pool) -> None:
    results = await asyncio.gather(migrate(pool), migrate(pool), migrate(pool))

    assert sorted(len(applied) for applied in results) == [0, 0, len(migrations())]


async def test_migrating_up_to_a_version_applies_none_after_it(pool: asyncpg.Pool) -> None:
    applied = await migrate(pool, up_to=1)

    assert [m.version for m in applied] == [1]
    assert [m.version for m in await migrate(pool)] == [m.version for m in migrations()][1:]
