"""The database schema's versions: the migrations that make it (`migrations/NNNN_name.sql`,
applied in version order, each once per database, recorded in `schema_migrations`) and the
version a database is at.

Only the writer applies migrations (core.migrator, run at its start and by `analytics-migrate`);
the other services wait until the schema is at the version their code was written for.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from core.database import POSTGRES_UNAVAILABLE

SELECT_SCHEMA_VERSION = "SELECT coalesce(max(version), 0) FROM schema_migrations"
# The advisory lock the writer's storage upkeep (writer/storage.py) holds for each step, and a
# change of a site's time zone shares: counting a site's days again from its raw events must
# not overlap retention dropping some of them.
STORAGE_UPKEEP_LOCK_KEY = 0x73746F72616765  # "storage"
# How often a service waiting for the schema looks again, and says so in its log.
SCHEMA_POLL_SECONDS = 0.5
SCHEMA_LOG_SECONDS = 10.0

_FILE_NAME = re.compile(r"(\d{4})_(\w+)\.sql")

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def migrations() -> list[Migration]:
    """Every migration this code knows, in version order."""
    found = []
    for entry in (resources.files("core") / "migrations").iterdir():
        match = _FILE_NAME.fullmatch(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


def latest_version() -> int:
    """The version of the schema this code reads and writes."""
    return migrations()[-1].version


async def schema_version(pool: asyncpg.Pool) -> int:
    """The highest migration applied to the database; 0 before the first."""
    try:
        version: int = await pool.fetchval(SELECT_SCHEMA_VERSION)
    except asyncpg.UndefinedTableError:
        return 0
    return version


async def wait_for_schema(pool: asyncpg.Pool, service: str) -> None:
    """Return once the database's schema is at least at `latest_version()`, logging every few
    seconds that `service` waits for the writer to migrate it (or PostgreSQL to answer)."""
    wanted = latest_version()
    loop = asyncio.get_running_loop()
    next_log = loop.time()
    while True:
        try:
            version = await schema_version(pool)
        except POSTGRES_UNAVAILABLE as error:
            problem = f"PostgreSQL is not reachable ({error})"
        else:
            if version >= wanted:
                return
            problem = f"the schema is at version {version}"
        if loop.time() >= next_log:
            logger.warning(
                "%s needs schema version %d; %s: waiting for the writer (or analytics-migrate) "
                "to migrate it",
                service,
                wanted,
                problem,
            )
            next_log = loop.time() + SCHEMA_LOG_SECONDS
        await asyncio.sleep(SCHEMA_POLL_SECONDS)
