"""StatsReader over events stored by the writer's own store: days, ranges and all time."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

import asyncpg
import pytest
from analytics.v1.event_pb2 import Event
from analytics.v1.report_pb2 import PathViews

from core.errors import FieldViolation, InvalidArgument
from core.migrator import migrate
from report_server.database import ReportDatabase
from report_server.queries import RANGE_STATS
from report_server.stats import DayRange, StatsQuery, StatsReader, whole_weeks
from tests.support.stats import site_stats, summary
from writer.decoding import row_of
from writer.storage import StorageUpkeep
from writer.store import EventStore

_event_ids = count()


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool)
    return EventStore(pool)


@pytest.fixture
def reader(pool: asyncpg.Pool) -> StatsReader:
    return StatsReader(ReportDatabase(pool, acquire_timeout=10, statement_timeout=60))


async def stored(
    store: EventStore,
    day: str,
    *paths_and_users: tuple[str, str],
    site_id: str = "site-1",
    event_type: str = "page_view",
) -> None:
    """Store one event per (path, user_id) pair at noon UTC of `day`; "" is no user."""
    rows = []
    for path, user_id in paths_and_users:
        event = Event(
            event_id=f"e{next(_event_ids)}",
            site_id=site_id,
            event_type=event_type,
            path=path,
            user_id=user_id,
        )
        event.timestamp.FromDatetime(datetime.fromisoformat(f"{day}T12:00:00+00:00"))
        rows.append(row_of(event, datetime.now(UTC)))
    await store.store(rows)


async def test_a_range_counts_the_events_of_its_days_both_included(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-13", ("/before", "u1"))
    await stored(store, "2025-11-14", ("/a", "u1"), ("/b", "u2"))
    await stored(store, "2025-11-15", ("/a", "u3"))
    await stored(store, "2025-11-16", ("/after", "u4"))

    result = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-15")

    assert result == summary(
        "site-1", 3, 3, ("/a", 2), ("/b", 1), start_date="2025-11-14", end_date="2025-11-15"
    )


async def test_a_user_seen_on_several_days_of_a_range_counts_once(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-01", ("/a", "u1"), ("/a", "u2"))
    await stored(store, "2025-11-15", ("/a", "u1"))
    await stored(store, "2025-11-30", ("/a", "u1"), ("/a", "u3"))

    result = await site_stats(reader, "site-1", start_date="2025-11-01", end_date="2025-11-30")

    assert (result.total_views, result.unique_users) == (5, 3)


async def test_each_day_of_a_range_counts_its_own_users(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-14", ("/a", "u1"), ("/a", "u2"))
    await stored(store, "2025-11-15", ("/a", "u1"))

    first = await site_stats(reader, "site-1", date="2025-11-14")
    second = await site_stats(reader, "site-1", date="2025-11-15")

    assert (first.unique_users, second.unique_users) == (2, 1)


async def test_anonymous_events_count_as_views_not_users(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-14", ("/a", ""), ("/a", "u1"))
    await stored(store, "2025-11-15", ("/a", ""))

    result = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-15")

    assert (result.total_views, result.unique_users) == (3, 1)


async def test_a_range_counts_only_its_site_and_event_type(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-14", ("/a", "u1"))
    await stored(store, "2025-11-14", ("/a", "u2"), site_id="site-2")
    await stored(store, "2025-11-15", ("/signup", "u3"), event_type="signup")
    await stored(store, "2025-11-15", ("/signup", "u1"), ("/signup", "u3"), event_type="signup")

    page_views = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-15")
    signups = await site_stats(
        reader, "site-1", event_type="signup", start_date="2025-11-14", end_date="2025-11-15"
    )

    assert (page_views.total_views, page_views.unique_users) == (1, 1)
    assert (signups.total_views, signups.unique_users) == (3, 2)
    assert signups.top_paths == [PathViews(path="/signup", views=3)]


async def test_top_paths_of_a_range_add_up_each_paths_days_and_rank_ties_by_path(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-14", ("/c", ""), ("/b", ""), ("/b", ""), ("/z", ""))
    await stored(store, "2025-11-15", ("/c", ""), ("/a", ""), ("/a", ""), ("/z", ""))

    result = await site_stats(
        reader, "site-1", start_date="2025-11-14", end_date="2025-11-15", limit=3
    )

    assert result.top_paths == [
        PathViews(path="/a", views=2),
        PathViews(path="/b", views=2),
        PathViews(path="/c", views=2),
    ]


async def rolled_up(pool: asyncpg.Pool) -> None:
    """The weeks of November 2025 rolled up, as the writer's storage upkeep does once over
    (however few their views)."""
    upkeep = StorageUpkeep(pool, retention_days=0, event_id_window_days=0, min_week_views=1)
    await upkeep.roll_up_weeks(datetime(2025, 12, 15, tzinfo=UTC), since=date(2025, 11, 1))


@pytest.mark.parametrize("rolled", [False, True], ids=["days", "weeks rolled up"])
async def test_top_paths_of_a_range_add_its_whole_weeks_and_its_days_around_them(
    store: EventStore, reader: StatsReader, pool: asyncpg.Pool, rolled: bool
) -> None:
    # Wednesday the 5th to Wednesday the 19th of November: the week of the 10th is whole.
    await stored(store, "2025-11-04", ("/a", ""))  # the first week's Tuesday: outside
    await stored(store, "2025-11-05", ("/a", ""))
    await stored(store, "2025-11-09", ("/b", ""))
    await stored(store, "2025-11-10", ("/a", ""), ("/b", ""))
    await stored(store, "2025-11-12", ("/b", ""))
    await stored(store, "2025-11-16", ("/b", ""))
    await stored(store, "2025-11-19", ("/a", ""))
    await stored(store, "2025-11-20", ("/a", ""), ("/a", ""))  # the last week's Thursday
    if rolled:
        await rolled_up(pool)

    result = await site_stats(reader, "site-1", start_date="2025-11-05", end_date="2025-11-19")

    assert result == summary(
        "site-1", 7, 0, ("/b", 4), ("/a", 3), start_date="2025-11-05", end_date="2025-11-19"
    )


@pytest.mark.parametrize("rolled", [False, True], ids=["days", "weeks rolled up"])
async def test_a_user_of_several_whole_weeks_and_the_days_around_them_counts_once(
    store: EventStore, reader: StatsReader, pool: asyncpg.Pool, rolled: bool
) -> None:
    await stored(store, "2025-11-08", ("/a", "u1"))  # a Saturday before the whole weeks
    await stored(store, "2025-11-11", ("/a", "u1"), ("/a", "u2"))
    await stored(store, "2025-11-18", ("/a", "u2"), ("/a", "u3"))
    await stored(store, "2025-11-24", ("/a", "u4"))  # the Monday after them
    if rolled:
        await rolled_up(pool)

    result = await site_stats(reader, "site-1", start_date="2025-11-08", end_date="2025-11-24")

    assert (result.total_views, result.unique_users) == (6, 4)


async def test_a_range_reads_a_whole_week_from_its_rollup_while_it_adds_up_to_its_days(
    store: EventStore, reader: StatsReader, pool: asyncpg.Pool
) -> None:
    await stored(store, "2025-11-11", ("/a", "u1"), ("/a", "u2"), ("/b", "u1"))
    await rolled_up(pool)
    # The same total over other paths, and fewer users: only the rollup can say so.
    await pool.execute("UPDATE weekly_path_views SET views = 3 - views")
    await pool.execute("UPDATE weekly_user_bitmaps SET bits = bits & (bits >> 1)")

    result = await site_stats(reader, "site-1", start_date="2025-11-10", end_date="2025-11-16")

    assert result.top_paths == [PathViews(path="/b", views=2), PathViews(path="/a", views=1)]
    assert result.unique_users == 1


async def test_a_whole_week_given_events_after_its_rollup_is_read_from_its_days(
    store: EventStore, reader: StatsReader, pool: asyncpg.Pool
) -> None:
    await stored(store, "2025-11-11", ("/a", "u1"), ("/b", "u1"))
    await rolled_up(pool)
    await stored(store, "2025-11-13", ("/b", "u2"))

    result = await site_stats(reader, "site-1", start_date="2025-11-10", end_date="2025-11-16")

    assert result.top_paths == [PathViews(path="/b", views=2), PathViews(path="/a", views=1)]
    assert result.unique_users == 2


async def test_a_one_day_range_reports_that_date(store: EventStore, reader: StatsReader) -> None:
    await stored(store, "2025-11-14", ("/a", "u1"))

    result = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-14")

    assert result == summary(
        "site-1", 1, 1, ("/a", 1), date="2025-11-14", start_date="2025-11-14", end_date="2025-11-14"
    )


async def test_a_range_without_events_has_zero_stats(
    reader: StatsReader, store: EventStore
) -> None:
    assert await site_stats(
        reader, "site-1", start_date="2025-01-01", end_date="2025-12-31"
    ) == summary("site-1", 0, 0, start_date="2025-01-01", end_date="2025-12-31")


async def test_all_time_counts_every_day_and_each_user_once(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2024-02-29", ("/a", "u1"), ("/b", "u2"))
    await stored(store, "2025-11-14", ("/a", "u1"), ("/a", ""))
    await stored(store, "2025-11-14", ("/a", "u9"), event_type="signup")

    assert await site_stats(reader, "site-1") == summary("site-1", 4, 2, ("/a", 3), ("/b", 1))


async def test_all_time_totals_the_views_of_paths_beyond_the_top_ones(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2024-02-29", ("/a", ""), ("/a", ""), ("/b", ""))
    await stored(store, "2025-11-14", ("/c", ""), ("/a", ""))

    result = await site_stats(reader, "site-1", limit=1)

    assert result == summary("site-1", 5, 0, ("/a", 3))


async def test_users_beyond_one_bitmap_chunk_are_counted_exactly(
    store: EventStore, reader: StatsReader
) -> None:
    users = [f"user-{n}" for n in range(8192 + 100)]  # a chunk holds 8192 users
    await stored(store, "2025-11-14", *[("/a", user) for user in users[:5000]])
    await stored(store, "2025-11-15", *[("/a", user) for user in users[4000:]])

    day = await site_stats(reader, "site-1", date="2025-11-15")
    both = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-15")
    all_time = await site_stats(reader, "site-1")

    assert day.unique_users == len(users) - 4000
    assert both.unique_users == all_time.unique_users == len(users)
    assert both.total_views == all_time.total_views == len(users) + 1000


async def test_storing_a_batch_again_changes_no_report(
    store: EventStore, reader: StatsReader
) -> None:
    event = Event(
        event_id="once", site_id="site-1", event_type="page_view", path="/a", user_id="u1"
    )
    event.timestamp.FromDatetime(datetime(2025, 11, 14, 1, tzinfo=UTC))
    row = row_of(event, datetime.now(UTC))
    await store.store([row])
    before = (
        await site_stats(reader, "site-1"),
        await site_stats(reader, "site-1", date="2025-11-14"),
    )

    await store.store([row])

    assert (
        await site_stats(reader, "site-1"),
        await site_stats(reader, "site-1", date="2025-11-14"),
    ) == before
    assert before[0].total_views == before[0].unique_users == 1


async def test_the_range_of_one_site_ignores_the_same_user_id_on_another_site(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-14", ("/a", "u1"), site_id="site-2")
    await stored(store, "2025-11-14", ("/a", "u2"), site_id="site-2")
    await stored(store, "2025-11-15", ("/a", "u2"))

    result = await site_stats(reader, "site-1", start_date="2025-11-14", end_date="2025-11-15")

    assert (result.total_views, result.unique_users) == (1, 1)


# One day reads its daily_totals row and its daily_path_views rows directly, not the range
# merge of bitmaps: these pin its answers, and that they agree with the merge.


async def test_one_day_counts_its_views_users_and_top_paths_exactly(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-13", ("/a", "u9"))
    await stored(store, "2025-11-14", ("/b", "u1"), ("/a", "u2"), ("/a", ""), ("/c", "u1"))
    await stored(store, "2025-11-14", ("/b", "u3"), ("/a", "u1"), ("/d", "u2"))
    await stored(store, "2025-11-14", ("/a", "u4"), site_id="site-2")
    await stored(store, "2025-11-14", ("/a", "u5"), event_type="signup")
    await stored(store, "2025-11-15", ("/a", "u6"))

    result = await site_stats(reader, "site-1", date="2025-11-14", limit=3)

    assert result == summary(
        "site-1",
        7,
        3,
        ("/a", 3),
        ("/b", 2),
        ("/c", 1),
        date="2025-11-14",
        start_date="2025-11-14",
        end_date="2025-11-14",
    )


async def test_one_day_counts_a_user_of_several_batches_once(
    store: EventStore, reader: StatsReader
) -> None:
    users = [f"user-{n}" for n in range(8192 + 100)]  # beyond one bitmap chunk
    await stored(store, "2025-11-14", *[("/a", user) for user in users[:5000]])
    await stored(store, "2025-11-14", *[("/b", user) for user in users[4000:]])
    await stored(store, "2025-11-14", ("/c", users[0]), ("/c", users[-1]))

    result = await site_stats(reader, "site-1", date="2025-11-14")

    assert (result.total_views, result.unique_users) == (len(users) + 1002, len(users))


async def test_one_day_without_events_has_zero_stats(
    store: EventStore, reader: StatsReader
) -> None:
    await stored(store, "2025-11-13", ("/a", "u1"))

    assert await site_stats(reader, "site-1", date="2025-11-14") == summary(
        "site-1", 0, 0, date="2025-11-14", start_date="2025-11-14", end_date="2025-11-14"
    )


async def test_one_day_agrees_with_the_merge_of_its_bitmaps(
    store: EventStore, reader: StatsReader, pool: asyncpg.Pool
) -> None:
    await stored(store, "2025-11-14", ("/a", "u1"), ("/a", "u2"), ("/b", ""))
    await stored(store, "2025-11-14", ("/a", "u2"), ("/c", "u3"), ("/c", "u1"))
    await stored(store, "2025-11-14", ("/a", "u7"), event_type="signup")

    result = await site_stats(reader, "site-1", date="2025-11-14")
    day = date(2025, 11, 14)
    weeks = whole_weeks(DayRange(day, day))
    merged = await pool.fetch(RANGE_STATS, "site-1", "page_view", day, day, 10, *weeks)

    assert (
        (result.total_views, result.unique_users)
        == (
            merged[0]["total_views"],
            merged[0]["unique_users"],
        )
        == (6, 3)
    )
    assert [(p.path, p.views) for p in result.top_paths] == [
        (row["path"], row["views"]) for row in merged
    ]


@pytest.mark.parametrize(
    "query",
    [
        StatsQuery.parse("site-1", date="2025-11-14"),
        StatsQuery.parse("site-1", start_date="2025-11-01", end_date="2025-11-30"),
        StatsQuery.parse("site-1"),
    ],
    ids=["one day", "a range", "all time"],
)
async def test_an_answers_totals_and_top_paths_are_read_at_one_moment(
    store: EventStore, reader: StatsReader, query: StatsQuery
) -> None:
    stop = asyncio.Event()

    async def keep_storing() -> None:
        while not stop.is_set():
            await stored(store, "2025-11-14", ("/a", ""), ("/b", ""))

    storing = asyncio.create_task(keep_storing())
    try:
        answers = [await reader.get_stats(query) for _ in range(300)]
    finally:
        stop.set()
        await storing

    # Two paths only, so the top paths are all of them: their views add up to the total.
    mismatched = [a for a in answers if sum(p.views for p in a.top_paths) != a.total_views]
    assert mismatched == []


async def stored_at(store: EventStore, *moments: str, site_id: str = "site-1") -> None:
    """One page view of "/" by user u<n> at each moment (an RFC 3339 instant)."""
    rows = []
    for number, moment in enumerate(moments):
        event = Event(
            event_id=f"e{next(_event_ids)}",
            site_id=site_id,
            event_type="page_view",
            path="/",
            user_id=f"u{number}",
        )
        event.timestamp.FromJsonString(moment)
        rows.append(row_of(event, datetime.now(UTC)))
    await store.store(rows)


async def test_a_date_in_another_zone_than_the_sites_counts_that_zones_day(
    store: EventStore, reader: StatsReader
) -> None:
    await stored_at(store, "2025-11-14T14:59:00Z", "2025-11-14T15:00:00Z", "2025-11-15T14:59:00Z")

    tokyo = await site_stats(reader, "site-1", date="2025-11-15", timezone="Asia/Tokyo")
    utc = await site_stats(reader, "site-1", date="2025-11-15")

    day = {"date": "2025-11-15", "start_date": "2025-11-15", "end_date": "2025-11-15"}
    assert tokyo == summary("site-1", 2, 2, ("/", 2), **day)
    assert utc == summary("site-1", 1, 1, ("/", 1), **day)


async def test_the_sites_own_zone_named_reads_as_without_a_zone(
    store: EventStore, reader: StatsReader
) -> None:
    await stored_at(store, "2025-11-14T23:30:00Z", "2025-11-15T00:30:00Z")

    named = await site_stats(reader, "site-1", date="2025-11-15", timezone="UTC")

    assert named == await site_stats(reader, "site-1", date="2025-11-15")


async def test_a_range_keyword_names_days_ending_today_in_the_zone(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await stored_at(store, "2025-11-19T23:00:00Z", "2025-11-20T01:00:00Z")
    reader = StatsReader(
        ReportDatabase(pool, acquire_timeout=10, statement_timeout=60),
        lambda: datetime(2025, 11, 20, 12, tzinfo=UTC),
    )

    today = await site_stats(reader, "site-1", range_keyword="today")
    yesterday_in_kolkata = await site_stats(
        reader, "site-1", range_keyword="yesterday", timezone="Asia/Kolkata"
    )

    assert today == summary(
        "site-1", 1, 1, ("/", 1), date="2025-11-20", start_date="2025-11-20", end_date="2025-11-20"
    )
    assert yesterday_in_kolkata == summary(
        "site-1", 0, 0, date="2025-11-19", start_date="2025-11-19", end_date="2025-11-19"
    )


@pytest.mark.parametrize(
    ("arguments", "violation"),
    [
        ({"timezone": "Mars/Base"}, ("timezone", "is not an IANA time zone: 'Mars/Base'")),
        (
            {"range_keyword": "7d", "date": "2025-11-14"},
            ("range", "must not be given with date, start_date or end_date"),
        ),
        (
            {"range_keyword": "week"},
            (
                "range",
                "must be one of today, yesterday, 7d, 30d, month, last_month, year, all, "
                "got 'week'",
            ),
        ),
    ],
)
def test_a_bad_zone_or_range_keyword_is_refused_naming_it(
    arguments: dict[str, Any], violation: tuple[str, str]
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        StatsQuery.parse("site-1", **arguments)

    assert caught.value.violations == (FieldViolation(*violation),)
