"""`analytics-migrate`: bring the database's schema to this version, then exit.

The writer does the same at its start; run this first when the report server should not wait
for a writer (a deployment that upgrades the schema as a step of its own, say). Configured by
DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import sys

from core.database import create_pool
from core.migrator import migrate
from core.schema import latest_version
from core.settings import Settings
from runtime.lifecycle import settings_or_exit
from runtime.logs import configure_logging


def main() -> None:
    settings = settings_or_exit("analytics-migrate")
    configure_logging(settings.log_level, settings.log_format)
    sys.exit(asyncio.run(_migrate(settings)))


async def _migrate(settings: Settings) -> int:
    pool = await create_pool(settings, max_size=1)
    try:
        applied = await migrate(pool)
    finally:
        await pool.close()
    names = ", ".join(f"{m.version:04d}_{m.name}" for m in applied)
    print(
        f"analytics-migrate: the schema is at version {latest_version()}"
        + (f"; applied {names}" if applied else "; nothing to apply")
    )
    return 0


if __name__ == "__main__":
    main()
