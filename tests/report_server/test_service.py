"""The report service reads a schema only the writer migrates."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

import asyncpg
import pytest

from core.migrator import migrate
from core.schema import latest_version, schema_version
from core.settings import Settings
from report_server.service import open_pool
from tests.support.waiting import eventually


async def test_the_report_server_waits_for_the_schema_saying_so_and_migrates_nothing(
    settings: Settings, pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    async with AsyncExitStack() as stack:
        opening = asyncio.create_task(stack.enter_async_context(open_pool(settings)))
        await eventually(lambda: _said_it_waits(caplog), True)

        assert not opening.done()
        assert await schema_version(pool) == 0
        await migrate(pool)
        assert isinstance(await asyncio.wait_for(opening, 10), asyncpg.Pool)


async def _said_it_waits(caplog: pytest.LogCaptureFixture) -> bool:
    return any(
        f"analytics-report needs schema version {latest_version()}; the schema is at version 0"
        in record.getMessage()
        for record in caplog.records
    )
