"""The writer's storage upkeep (writer.storage): monthly partitions of the raw events made
ahead, raw events dropped by retention while every report read from the aggregates stays as it
was, event ids let go after their window, the weeks that are over rolled up; and an event
stored once whatever happened to the partitions between its copies."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from analytics.internal.v1.stream_pb2 import EventContext
from analytics.v1.event_pb2 import Event

from core.errors import InvalidArgument
from core.migrator import migrate
from core.week_rollups import MIN_WEEK_VIEWS
from report_server.database import ReportDatabase
from report_server.reports import ReportReader, parse_breakdown
from report_server.scope import parse_scope
from report_server.sites import SiteChanges, SiteRegistry
from report_server.stats import StatsQuery, StatsReader
from writer.decoding import Row, row_of
from writer.queries import EVENT_PARTITION_MONTHS
from writer.storage import ROLL_UP_WEEKS, StorageUpkeep, month_of, next_month
from writer.store import EventStore

# The upkeep's clock: with 30 days of retention, raw events before 2025-11-15T12:00Z go, so
# October's partition (it ends 2025-11-01) is dropped and November's is kept.
NOW = datetime(2025, 12, 15, 12, tzinfo=UTC)
RECEIVED = datetime(2025, 12, 1, tzinfo=UTC)


def event(event_id: str, at: datetime, path: str = "/a", user_id: str = "") -> Row:
    stored = Event(
        event_id=event_id, site_id="shop", event_type="page_view", path=path, user_id=user_id
    )
    stored.timestamp.FromDatetime(at)
    context = None if user_id else EventContext(visitor_id=7)
    return row_of(stored, RECEIVED, context=context)


# September's is older than every partition made here, so it is in the default partition.
HISTORY = [
    event("sep", datetime(2025, 9, 20, 9, tzinfo=UTC), "/old", "u0"),
    event("oct-1", datetime(2025, 10, 20, 10, tzinfo=UTC), "/a", "u1"),
    event("oct-2", datetime(2025, 10, 20, 11, tzinfo=UTC), "/b", "u2"),
    event("oct-3", datetime(2025, 10, 21, 10, tzinfo=UTC), "/a"),
    event("nov-1", datetime(2025, 11, 20, 10, tzinfo=UTC), "/a", "u1"),
]


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool)
    return EventStore(pool)


def upkeep(pool: asyncpg.Pool, *, retention_days: int = 0, window_days: int = 0) -> StorageUpkeep:
    """An upkeep that rolls up every week with a view, so that a few events show how."""
    return StorageUpkeep(
        pool, retention_days=retention_days, event_id_window_days=window_days, min_week_views=1
    )


async def months(pool: asyncpg.Pool) -> list[date]:
    return [row["month"] for row in await pool.fetch(EVENT_PARTITION_MONTHS)]


async def where_stored(pool: asyncpg.Pool) -> list[tuple[str, str]]:
    rows = await pool.fetch("SELECT event_id, tableoid::regclass::text FROM events ORDER BY 1")
    return [tuple(row) for row in rows]


def month_span(first: date, last: date) -> list[date]:
    found = [first]
    while found[-1] < last:
        found.append(next_month(found[-1]))
    return found


async def test_the_upkeep_makes_partitions_up_to_two_months_ahead(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    this_month = month_of(datetime.now(UTC))
    made_by_the_migration = await months(pool)
    later = datetime.now(UTC) + timedelta(days=100)

    upkept = await upkeep(pool).run(later)

    expected = month_span(this_month, next_month(next_month(month_of(later))))
    assert made_by_the_migration == expected[:3]
    assert upkept.created == expected[3:]
    assert await months(pool) == expected


async def test_an_event_without_its_months_partition_is_stored_and_moves_in_when_it_is_made(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    first = event("e1", datetime(2025, 10, 20, 10, tzinfo=UTC))
    assert await store.store([first]) == 1
    stored_before = await where_stored(pool)

    await upkeep(pool).create_partitions(NOW, since=date(2025, 10, 1))
    same_time = await store.store([first])
    another_time = await store.store([event("e1", datetime(2025, 11, 20, 10, tzinfo=UTC), "/b")])

    assert stored_before == [("e1", "events_default")]
    assert await where_stored(pool) == [("e1", "events_2025_10")]
    assert (same_time, another_time) == (0, 0)
    views = await pool.fetch("SELECT day, path, views FROM daily_path_views")
    assert [tuple(row) for row in views] == [(date(2025, 10, 20), "/a", 1)]


async def stored_history(
    pool: asyncpg.Pool, store: EventStore, history: list[Row] = HISTORY
) -> None:
    await upkeep(pool).create_partitions(NOW, since=date(2025, 10, 1))
    assert await store.store(history) == len(history)


def readers(pool: asyncpg.Pool) -> tuple[ReportReader, StatsReader]:
    database = ReportDatabase(pool, acquire_timeout=10, statement_timeout=60)
    return ReportReader(database, lambda: NOW), StatsReader(database, lambda: NOW)


async def aggregate_reports(pool: asyncpg.Pool) -> list[object]:
    """What the reports read from the aggregates answer for all time: metrics (with the
    period's first day), a monthly series, GetStats's totals and top paths."""
    reports, stats = readers(pool)
    all_time = parse_scope("shop", range_keyword="all")
    metrics = await reports.metrics(all_time, compare=False)
    series = await reports.time_series(all_time, "month")
    summary = await stats.get_stats(StatsQuery("shop", days=None))
    return [
        metrics.period.first,
        metrics.current,
        [(p.bucket.label, p.counts) for p in series.points],
        summary,
    ]


async def raw_reports(pool: asyncpg.Pool) -> tuple[list[str], list[tuple[str, int]]]:
    """What the reports read from the raw events answer for all time: the export's event ids
    and the views by path of the breakdown."""
    reports, _ = readers(pool)
    all_time = parse_scope("shop", range_keyword="all")
    _, events = await reports.export(all_time)
    exported = [each.event_id async for each in events]
    breakdown = await reports.breakdown(all_time, parse_breakdown("path", "views", None, 0))
    return exported, [(row.value, row.views) for row in breakdown.rows]


async def test_retention_drops_old_raw_events_and_no_aggregate_report_changes(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await stored_history(pool, store)
    aggregated_before = await aggregate_reports(pool)
    raw_before = await raw_reports(pool)

    upkept = await upkeep(pool, retention_days=30).run(NOW)

    assert upkept.dropped == [date(2025, 10, 1)]
    assert await where_stored(pool) == [("nov-1", "events_2025_11")]
    assert await aggregate_reports(pool) == aggregated_before
    assert aggregated_before[0] == date(2025, 9, 20)  # the "all" period's first day
    assert raw_before == (
        ["sep", "oct-1", "oct-2", "oct-3", "nov-1"],
        [("/a", 3), ("/b", 1), ("/old", 1)],
    )
    assert await raw_reports(pool) == (["nov-1"], [("/a", 1)])


async def test_a_resend_after_its_partition_was_dropped_is_stored_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await stored_history(pool, store)
    before = await aggregate_reports(pool)
    await upkeep(pool, retention_days=30).run(NOW)

    resent = await store.store([HISTORY[1], event("oct-2", datetime(2025, 11, 25, tzinfo=UTC))])

    assert resent == 0
    assert await where_stored(pool) == [("nov-1", "events_2025_11")]
    assert await aggregate_reports(pool) == before


async def test_a_site_whose_raw_events_were_dropped_keeps_its_time_zone(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await stored_history(pool, store, HISTORY[1:])  # none in the default partition
    await upkeep(pool, retention_days=30).run(NOW)

    with pytest.raises(InvalidArgument) as refused:
        await SiteRegistry(pool).update("shop", SiteChanges(time_zone="Europe/Paris"))

    [violation] = refused.value.violations
    assert violation.field == "site.time_zone"
    assert "(the first of 2025-10-20T10:00:00+00:00)" in violation.description
    assert (await SiteRegistry(pool).get("shop")).time_zone == "UTC"


async def stored_at(pool: asyncpg.Pool, event_id: str) -> datetime:
    when: datetime = await pool.fetchval(
        "SELECT stored_at FROM event_ids WHERE event_id = $1", event_id
    )
    return when


async def test_a_resend_within_the_id_window_is_stored_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    first = event("e1", datetime(2025, 11, 20, 10, tzinfo=UTC))
    await store.store([first])
    window_end = await stored_at(pool, "e1") + timedelta(days=7)

    forgotten = await upkeep(pool, window_days=7).run(window_end)
    resent = await store.store([event("e1", datetime(2025, 11, 21, 10, tzinfo=UTC))])

    assert (forgotten.forgotten_ids, resent) == (0, 0)


async def test_past_the_id_window_a_resend_is_stored_and_counted_again(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    first = event("e1", datetime(2025, 11, 20, 10, tzinfo=UTC))
    await store.store([first])
    past_window = await stored_at(pool, "e1") + timedelta(days=7, microseconds=1)

    forgotten = await upkeep(pool, window_days=7).run(past_window)
    resent = await store.store([first])

    assert (forgotten.forgotten_ids, resent) == (1, 1)
    assert [tuple(row) for row in await pool.fetch("SELECT day, views FROM daily_totals")] == [
        (date(2025, 11, 20), 2)
    ]


async def weeks(pool: asyncpg.Pool) -> list[tuple[date, str, int]]:
    rows = await pool.fetch("SELECT week, path, views FROM weekly_path_views ORDER BY 1, 2")
    return [tuple(row) for row in rows]


async def test_the_upkeep_rolls_up_the_path_views_of_the_weeks_that_are_over(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # The week from Monday the 1st of December; NOW is Monday the 15th.
    await store.store(
        [
            event("mon", datetime(2025, 12, 1, 10, tzinfo=UTC), "/a"),
            event("wed", datetime(2025, 12, 3, 10, tzinfo=UTC), "/b"),
            event("sun", datetime(2025, 12, 7, 23, tzinfo=UTC), "/a"),
        ]
    )

    upkept = await upkeep(pool).run(NOW)

    assert upkept.rolled_up == [date(2025, 12, 1)]
    assert await weeks(pool) == [(date(2025, 12, 1), "/a", 2), (date(2025, 12, 1), "/b", 1)]


async def test_the_upkeep_rolls_up_the_users_of_a_week_with_its_path_views(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store(
        [
            event("mon", datetime(2025, 12, 1, 10, tzinfo=UTC), user_id="u1"),
            event("wed-1", datetime(2025, 12, 3, 10, tzinfo=UTC), user_id="u1"),
            event("wed-2", datetime(2025, 12, 3, 11, tzinfo=UTC), user_id="u2"),
        ]
    )

    await upkeep(pool).run(NOW)

    users = await pool.fetchval("SELECT sum(bit_count(bits)) FROM weekly_user_bitmaps")
    assert users == 2


async def test_only_the_weeks_with_MIN_WEEK_VIEWS_views_or_more_are_rolled_up(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    busy, quiet = datetime(2025, 11, 24, 10, tzinfo=UTC), datetime(2025, 12, 1, 10, tzinfo=UTC)
    await store.store(
        [event(f"busy-{n}", busy + timedelta(seconds=n)) for n in range(MIN_WEEK_VIEWS)]
        + [event(f"quiet-{n}", quiet + timedelta(seconds=n)) for n in range(MIN_WEEK_VIEWS - 1)]
    )

    upkept = await StorageUpkeep(pool, retention_days=0, event_id_window_days=0).run(NOW)

    assert upkept.rolled_up == [date(2025, 11, 24)]
    assert await weeks(pool) == [(date(2025, 11, 24), "/a", MIN_WEEK_VIEWS)]


async def test_the_rollup_of_a_week_with_fewer_views_is_let_go(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([event("mon", datetime(2025, 12, 1, 10, tzinfo=UTC), user_id="u1")])
    await upkeep(pool).run(NOW)  # as a writer before migration 0011 rolled up every week

    await StorageUpkeep(pool, retention_days=0, event_id_window_days=0).run(NOW)

    left = [
        await pool.fetchval(f"SELECT count(*) FROM {table}")
        for table in ("weekly_rollups", "weekly_path_views", "weekly_user_bitmaps")
    ]
    assert left == [0, 0, 0]


async def test_a_week_is_rolled_up_from_the_tuesday_after_it_when_it_is_over_in_every_zone(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([event("mon", datetime(2025, 12, 8, 10, tzinfo=UTC))])

    on_monday = await upkeep(pool).roll_up_weeks(datetime(2025, 12, 15, 23, 59, tzinfo=UTC))
    on_tuesday = await upkeep(pool).roll_up_weeks(datetime(2025, 12, 16, tzinfo=UTC))

    assert (on_monday, on_tuesday) == ([], [date(2025, 12, 8)])


async def test_a_week_given_events_after_its_rollup_is_rolled_up_again(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([event("first", datetime(2025, 12, 2, 10, tzinfo=UTC), "/a")])
    await upkeep(pool).run(NOW)
    await store.store([event("late", datetime(2025, 12, 4, 10, tzinfo=UTC), "/b")])

    upkept = await upkeep(pool).run(NOW)

    assert upkept.rolled_up == [date(2025, 12, 1)]
    assert await weeks(pool) == [(date(2025, 12, 1), "/a", 1), (date(2025, 12, 1), "/b", 1)]


async def test_a_week_rolled_up_and_given_nothing_since_is_left_as_it_is(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([event("first", datetime(2025, 12, 2, 10, tzinfo=UTC), "/a")])
    await upkeep(pool).run(NOW)

    upkept = await upkeep(pool).run(NOW)

    assert upkept.rolled_up == []


async def test_weeks_before_the_last_few_are_rolled_up_only_when_asked_for(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    old = datetime(2025, 12, 1, 10, tzinfo=UTC) - timedelta(weeks=ROLL_UP_WEEKS)
    await store.store([event("old", old)])

    by_the_upkeep = await upkeep(pool).run(NOW)
    asked_for = await upkeep(pool).roll_up_weeks(NOW, since=old.date())

    assert by_the_upkeep.rolled_up == []
    assert asked_for == [date(2025, 10, 20)]
