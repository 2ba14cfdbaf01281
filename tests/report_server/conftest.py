"""The report reader the report tests ask, over a migrated database, its clock at NOW."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from core.migrator import migrate
from report_server.database import ReportDatabase
from report_server.reports import ReportReader

NOW = datetime(2025, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture
async def reports(pool: asyncpg.Pool) -> ReportReader:
    await migrate(pool)
    return ReportReader(ReportDatabase(pool, acquire_timeout=10, statement_timeout=60), lambda: NOW)
