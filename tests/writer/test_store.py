from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime

import asyncpg
import pytest
from analytics.internal.v1.stream_pb2 import EventContext, FilteredCount, FilteredTraffic
from analytics.v1.event_pb2 import Event

from core.events import LIMITS, validate_event
from core.migrator import migrate
from tests.support.text import incompressible
from tests.support.waiting import eventually
from writer.decoding import Row, row_of
from writer.queries import STORE_EVENTS
from writer.store import EventStore

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def store(pool: asyncpg.Pool) -> EventStore:
    await migrate(pool)
    return EventStore(pool)


def received(
    event_id: str,
    *,
    path: str = "/home",
    user_id: str = "",
    when: datetime = datetime(2025, 11, 14, 10, 0, tzinfo=UTC),
    site_id: str = "site-1",
    event_type: str = "page_view",
) -> Row:
    event = Event(
        event_id=event_id, site_id=site_id, event_type=event_type, path=path, user_id=user_id
    )
    event.timestamp.FromDatetime(when)
    return row_of(event, RECEIVED)


def columns_of(rows: Sequence[Row]) -> list[list[object]]:
    """STORE_EVENTS's parameters: one array per column."""
    return [list(column) for column in zip(*rows, strict=True)]


async def totals(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT site_id, event_type, day, views, users FROM daily_totals ORDER BY 1, 2, 3"
    )
    return [tuple(row) for row in rows]


async def path_views(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch("SELECT day, path, views FROM daily_path_views ORDER BY 1, 2")
    return [tuple(row) for row in rows]


async def test_storing_returns_how_many_events_were_new(store: EventStore) -> None:
    assert await store.store([received("a"), received("b")]) == 2


async def test_an_event_is_stored_with_every_field(store: EventStore, pool: asyncpg.Pool) -> None:
    item = received("a", user_id="u1")._replace(
        referrer="https://r.example/", properties='{"plan": "pro"}'
    )

    await store.store([item])

    row = await pool.fetchrow("SELECT * FROM events")
    assert row is not None
    assert dict(row) | {"stored_at": None} == {
        "event_id": "a",
        "site_id": "site-1",
        "event_type": "page_view",
        "path": "/home",
        "user_id": "u1",
        "occurred_at": datetime(2025, 11, 14, 10, 0, tzinfo=UTC),
        "referrer": "https://r.example/",
        "properties": '{"plan": "pro"}',
        "received_at": RECEIVED,
        "stored_at": None,
        **dict.fromkeys(CONTEXT_COLUMNS),
    }


CONTEXT_COLUMNS = (
    "visitor_id",
    "browser",
    "os",
    "device",
    "referrer_host",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "country",
)


async def test_what_ingest_derived_from_a_browser_is_stored_with_the_event(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    event = Event(event_id="a", site_id="site-1", event_type="page_view", path="/")
    event.timestamp.FromDatetime(RECEIVED)
    context = EventContext(
        visitor_id=-42,
        browser="Firefox",
        os="Windows",
        device="desktop",
        referrer_host="news.ycombinator.com",
        referrer_source="social",
        utm_source="hn",
        utm_medium="forum",
        utm_campaign="launch",
        utm_term="analytics",
        utm_content="top",
        country="DE",
    )

    await store.store([row_of(event, RECEIVED, context=context)])

    row = await pool.fetchrow(f"SELECT {', '.join(CONTEXT_COLUMNS)} FROM events")
    assert tuple(row or ()) == (
        -42,
        "Firefox",
        "Windows",
        "desktop",
        "news.ycombinator.com",
        "social",
        "hn",
        "forum",
        "launch",
        "analytics",
        "top",
        "DE",
    )


async def test_anonymous_events_store_no_user_and_no_referrer(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("a")])

    row = await pool.fetchrow("SELECT user_id, referrer FROM events")
    assert tuple(row or ()) == (None, None)


async def test_an_event_at_every_length_limit_validation_allows_is_stored(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    # The longest keys of the per-path aggregates' indexes: site_id, event_type and path
    # each as long as validation lets them be, in UTF-8 bytes.
    event = Event(
        event_id="e" * LIMITS.max_event_id_length,
        site_id="s" * LIMITS.max_site_id_length,
        event_type=incompressible(LIMITS.max_event_type_length, 1),
        path="/" + incompressible(LIMITS.max_path_bytes // 4 - 1, 2) + "ppp",
        user_id=incompressible(LIMITS.max_user_id_length, 3),
    )
    validate_event(event, RECEIVED)

    assert await store.store([row_of(event, RECEIVED)]) == 1
    assert await pool.fetchval("SELECT octet_length(path) FROM all_time_path_views") == 2048


async def test_storing_the_same_batch_again_stores_and_counts_nothing(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    batch = [received("a", user_id="u1"), received("b", user_id="u2")]
    await store.store(batch)

    assert await store.store(batch) == 0
    assert await totals(pool) == [("site-1", "page_view", date(2025, 11, 14), 2, 2)]


async def test_a_resent_event_id_in_a_mixed_batch_counts_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("a", path="/x")])

    assert await store.store([received("a", path="/x"), received("b", path="/x")]) == 1
    assert await path_views(pool) == [(date(2025, 11, 14), "/x", 2)]


async def test_two_sites_using_the_same_event_id_each_store_their_event(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    stored = await store.store([received("order-42:view", site_id="shop-a")])
    stored += await store.store([received("order-42:view", site_id="shop-b")])

    assert stored == 2
    assert await totals(pool) == [
        ("shop-a", "page_view", date(2025, 11, 14), 1, 0),
        ("shop-b", "page_view", date(2025, 11, 14), 1, 0),
    ]


async def test_an_event_id_twice_in_one_batch_counts_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    assert await store.store([received("a", path="/x"), received("a", path="/x")]) == 1
    assert await path_views(pool) == [(date(2025, 11, 14), "/x", 1)]


async def test_of_two_copies_in_one_batch_the_first_is_stored(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("a", path="/first"), received("a", path="/second")])

    assert await pool.fetchval("SELECT path FROM events") == "/first"


async def test_of_two_copies_in_a_batch_out_of_key_order_the_first_is_stored(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("b", path="/first"), received("a"), received("b", path="/second")])

    assert await pool.fetchval("SELECT path FROM events WHERE event_id = 'b'") == "/first"


async def test_views_are_counted_per_site_type_day_and_path(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store(
        [
            received("1", path="/a"),
            received("2", path="/a"),
            received("3", path="/b"),
            received("4", path="/a", when=datetime(2025, 11, 15, 0, 0, tzinfo=UTC)),
            received("5", path="/a", event_type="signup"),
            received("6", path="/a", site_id="site-2"),
        ]
    )

    rows = await pool.fetch(
        "SELECT site_id, event_type, day, path, views FROM daily_path_views ORDER BY 1, 2, 3, 4"
    )
    assert [tuple(r) for r in rows] == [
        ("site-1", "page_view", date(2025, 11, 14), "/a", 2),
        ("site-1", "page_view", date(2025, 11, 14), "/b", 1),
        ("site-1", "page_view", date(2025, 11, 15), "/a", 1),
        ("site-1", "signup", date(2025, 11, 14), "/a", 1),
        ("site-2", "page_view", date(2025, 11, 14), "/a", 1),
    ]


async def test_unique_users_count_distinct_users_across_batches(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("1", user_id="u1"), received("2", user_id="u1")])
    await store.store([received("3", user_id="u1"), received("4", user_id="u2")])
    await store.store([received("5")])

    assert await totals(pool) == [("site-1", "page_view", date(2025, 11, 14), 5, 2)]


async def test_the_day_is_the_utc_day_of_the_event(store: EventStore, pool: asyncpg.Pool) -> None:
    late_evening_west = datetime.fromisoformat("2025-11-14T23:30:00-02:00")

    await store.store([received("a", when=late_evening_west)])

    assert await path_views(pool) == [(date(2025, 11, 15), "/home", 1)]


async def test_injection_shaped_values_are_stored_verbatim(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    hostile = "/'); DROP TABLE events; --"

    await store.store([received("a", path=hostile, user_id="' OR '1'='1")])

    row = await pool.fetchrow("SELECT path, user_id FROM events")
    assert tuple(row or ()) == (hostile, "' OR '1'='1")


async def test_all_time_path_views_add_up_every_day(store: EventStore, pool: asyncpg.Pool) -> None:
    await store.store([received("1", path="/a"), received("2", path="/b")])
    await store.store(
        [
            received("3", path="/a", when=datetime(2024, 1, 1, tzinfo=UTC)),
            received("4", path="/a", event_type="signup"),
        ]
    )

    rows = await pool.fetch(
        "SELECT site_id, event_type, path, views FROM all_time_path_views ORDER BY 1, 2, 3"
    )
    assert [tuple(r) for r in rows] == [
        ("site-1", "page_view", "/a", 2),
        ("site-1", "page_view", "/b", 1),
        ("site-1", "signup", "/a", 1),
    ]


async def user_numbers(pool: asyncpg.Pool) -> list[tuple[object, ...]]:
    rows = await pool.fetch("SELECT site_id, user_id, user_no FROM site_users ORDER BY 1, 3")
    return [tuple(row) for row in rows]


async def test_each_site_numbers_its_users_from_zero_as_it_first_stores_them(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("1", user_id="b"), received("2", user_id="a")])
    await store.store(
        [
            received("3", user_id="a", event_type="signup"),
            received("4", user_id="c"),
            received("5", user_id="a", site_id="site-2"),
            received("6"),
        ]
    )

    assert await user_numbers(pool) == [
        ("site-1", "a", 0),
        ("site-1", "b", 1),
        ("site-1", "c", 2),
        ("site-2", "a", 0),
    ]


async def test_a_days_user_bitmap_holds_each_of_its_users_once(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await store.store([received("1", user_id="a"), received("2", user_id="b")])
    await store.store([received("3", user_id="a"), received("4", user_id="c", event_type="x")])

    rows = await pool.fetch(
        "SELECT event_type, day, chunk, position('1' IN bits::text) - 1 AS first,"
        " bit_count(bits) AS users FROM daily_user_bitmaps ORDER BY 1"
    )
    assert [tuple(r) for r in rows] == [
        ("page_view", date(2025, 11, 14), 0, 0, 2),
        ("x", date(2025, 11, 14), 0, 2, 1),
    ]


async def test_a_user_numbered_by_a_concurrent_writer_keeps_that_number(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    """Two writers store a new user at once: the second, blocked until the first commits,
    still sees the user as new; it takes the first one's number and counts the user once."""
    first, second = (
        [received(event_id, user_id="u1", path=path)]
        for event_id, path in (("1", "/a"), ("2", "/b"))
    )
    async with pool.acquire() as one, pool.acquire() as other:
        transaction = one.transaction()
        await transaction.start()
        await one.fetchval(STORE_EVENTS, *columns_of(first))
        blocked = asyncio.create_task(other.fetchval(STORE_EVENTS, *columns_of(second)))
        await asyncio.sleep(0.2)
        assert not blocked.done()
        await transaction.commit()
        assert await blocked == 1

    assert await user_numbers(pool) == [("site-1", "u1", 0)]
    assert await pool.fetchval("SELECT users FROM site_user_counters") == 2  # 1 went unused
    assert await totals(pool) == [("site-1", "page_view", date(2025, 11, 14), 2, 1)]
    assert await pool.fetchval("SELECT sum(bit_count(bits)) FROM daily_user_bitmaps") == 1


async def waiting_for_a_lock(pool: asyncpg.Pool, backend: int) -> bool:
    wait: str | None = await pool.fetchval(
        "SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1", backend
    )
    return wait == "Lock"


@pytest.mark.parametrize(("first_commits", "second_stores"), [(True, 1), (False, 2)])
async def test_an_event_a_concurrent_store_holds_is_stored_by_whichever_commits(
    store: EventStore, pool: asyncpg.Pool, first_commits: bool, second_stores: int
) -> None:
    """The writer stores batches in concurrent transactions, and a redelivered event may be in
    two of them: the second waits for the first, and stores and counts the event only if the
    first rolled back."""
    first = [received("a", user_id="u1"), received("b", user_id="u2")]
    second = [received("b", user_id="u2"), received("c", user_id="u3")]
    async with pool.acquire() as one, pool.acquire() as other:
        transaction = one.transaction()
        await transaction.start()
        await one.fetchval(STORE_EVENTS, *columns_of(first))
        blocked = asyncio.create_task(other.fetchval(STORE_EVENTS, *columns_of(second)))
        await eventually(lambda: waiting_for_a_lock(pool, other.get_server_pid()), True)
        await (transaction.commit() if first_commits else transaction.rollback())
        assert await blocked == second_stores

    stored = 3 if first_commits else 2
    assert await pool.fetchval("SELECT count(*) FROM events") == stored
    assert await totals(pool) == [("site-1", "page_view", date(2025, 11, 14), stored, stored)]
    assert await path_views(pool) == [(date(2025, 11, 14), "/home", stored)]


async def test_a_filtered_traffic_window_is_added_once_however_often_it_arrives(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    window = FilteredTraffic(
        window_id="process-1",
        counts=[
            FilteredCount(site_id="shop", day="2026-12-06", reason="bot", count=3),
            FilteredCount(site_id="shop", day="2026-12-06", reason="origin_not_allowed", count=1),
        ],
    )
    later = FilteredTraffic(
        window_id="process-2",
        counts=[FilteredCount(site_id="shop", day="2026-12-06", reason="bot", count=2)],
    )

    added = [await store.store_filtered(w) for w in (window, window, later)]

    assert added == [True, False, True]
    rows = await pool.fetch("SELECT reason, count FROM filtered_traffic ORDER BY reason")
    assert [tuple(row) for row in rows] == [("bot", 5), ("origin_not_allowed", 1)]


async def test_the_ids_of_filtered_traffic_windows_added_over_a_day_ago_are_let_go(
    store: EventStore, pool: asyncpg.Pool
) -> None:
    await pool.execute(
        "INSERT INTO filtered_traffic_windows (window_id, added_at) VALUES "
        "('old', now() - interval '25 hours'), ('recent', now() - interval '23 hours')"
    )

    await store.store_filtered(FilteredTraffic(window_id="new"))

    rows = await pool.fetch("SELECT window_id FROM filtered_traffic_windows ORDER BY window_id")
    assert [row["window_id"] for row in rows] == ["new", "recent"]
