"""Asking a StatsReader directly, as both doors do, and the Stats expected back."""

from __future__ import annotations

from analytics.v1.report_pb2 import PathViews, Stats

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
    timezone: str = "",
    range_keyword: str = "",
) -> Stats:
    query = StatsQuery.parse(
        site_id,
        date,
        event_type,
        limit,
        start_date=start_date,
        end_date=end_date,
        timezone=timezone,
        range_keyword=range_keyword,
    )
    return await reader.get_stats(query)


def summary(
    site_id: str,
    views: int,
    users: int,
    *top_paths: tuple[str, int],
    date: str = "",
    start_date: str = "",
    end_date: str = "",
) -> Stats:
    """Stats of `views` events by `users` users, `top_paths` as (path, views) pairs in order."""
    return Stats(
        site_id=site_id,
        date=date,
        start_date=start_date,
        end_date=end_date,
        total_views=views,
        unique_users=users,
        top_paths=[PathViews(path=path, views=count) for path, count in top_paths],
    )
