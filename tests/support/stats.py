"""Asking a StatsReader directly, as both doors do."""

from __future__ import annotations

from analytics.v1.report_pb2 import Stats

from report_server.stats import StatsQuery, StatsReader


async def site_stats(
    reader: StatsReader,
    site_id: str,
    *,
    date: str = "",
    start_date: str = "",
    end_date: str = "",
    event_type: str = "",
    limit: int | None = None,
) -> Stats:
    query = StatsQuery.parse(
        site_id, date, event_type, limit, start_date=start_date, end_date=end_date
    )
    return await reader.get_stats(query)
