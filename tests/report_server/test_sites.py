"""The site registry: create, get, list, update; a new time zone counts a site's days again."""

from __future__ import annotations

from datetime import UTC, date, datetime

import asyncpg
import pytest
from analytics.internal.v1.stream_pb2 import EventContext
from analytics.v1.event_pb2 import Event

from core.errors import AlreadyExists, FieldViolation, InvalidArgument, NotFound
from core.migrator import migrate
from report_server.sites import SiteChanges, SiteRegistry
from writer.decoding import row_of
from writer.store import EventStore

RECEIVED = datetime(2025, 11, 14, 12, 0, tzinfo=UTC)


@pytest.fixture
async def registry(pool: asyncpg.Pool) -> SiteRegistry:
    await migrate(pool)
    return SiteRegistry(pool, min_week_views=1)  # every week rolled up, however few its views


async def store_at(
    pool: asyncpg.Pool, site_id: str, *moments: str, user_id: str = "", visitor_id: int = 0
) -> None:
    rows = []
    for number, moment in enumerate(moments):
        event = Event(
            event_id=f"{site_id}-{moment}-{number}",
            site_id=site_id,
            event_type="page_view",
            path="/",
            user_id=user_id,
        )
        event.timestamp.FromJsonString(moment)
        context = EventContext(visitor_id=visitor_id) if visitor_id else None
        rows.append(row_of(event, RECEIVED, context=context))
    await EventStore(pool).store(rows)


async def days(pool: asyncpg.Pool, site_id: str) -> list[tuple[date, int, int]]:
    rows = await pool.fetch(
        "SELECT day, views, users FROM daily_totals WHERE site_id = $1 ORDER BY day", site_id
    )
    return [(row["day"], row["views"], row["users"]) for row in rows]


async def test_a_created_site_has_its_id_as_name_and_utc_by_default(
    registry: SiteRegistry,
) -> None:
    site = await registry.create("example.com")

    assert (site.site_id, site.name, site.time_zone) == ("example.com", "example.com", "UTC")
    assert site.created_at == site.updated_at


async def test_a_site_is_created_with_the_name_and_zone_given(registry: SiteRegistry) -> None:
    await registry.create("shop", "The Shop", "Asia/Kathmandu")

    site = await registry.get("shop")

    assert (site.name, site.time_zone) == ("The Shop", "Asia/Kathmandu")


async def test_creating_a_registered_site_again_is_refused(registry: SiteRegistry) -> None:
    await registry.create("shop")

    with pytest.raises(AlreadyExists, match="site 'shop' exists; change it with an update"):
        await registry.create("shop", time_zone="Europe/Berlin")


async def test_a_site_whose_events_came_first_is_registered_with_the_defaults(
    registry: SiteRegistry, pool: asyncpg.Pool
) -> None:
    await store_at(pool, "early.example", "2025-11-14T10:00:00Z")

    site = await registry.get("early.example")

    assert (site.name, site.time_zone) == ("early.example", "UTC")


async def test_an_unknown_site_is_not_found(registry: SiteRegistry) -> None:
    with pytest.raises(NotFound, match="site 'nope' is not registered"):
        await registry.get("nope")


async def test_bad_fields_are_refused_naming_each(registry: SiteRegistry) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await registry.create("bad site", "x" * 201, "Mars/Olympus_Mons")

    assert caught.value.violations == (
        FieldViolation(
            "site_id",
            "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'",
        ),
        FieldViolation("time_zone", "is not an IANA time zone: 'Mars/Olympus_Mons'"),
    )


async def test_sites_are_listed_by_id_a_page_at_a_time(registry: SiteRegistry) -> None:
    for site_id in ("c", "a", "d", "b", "e"):
        await registry.create(site_id)

    first = await registry.list(page_size=2)
    second = await registry.list(page_size=2, page_token=first.next_page_token)
    last = await registry.list(page_size=2, page_token=second.next_page_token)

    assert [[s.site_id for s in page.sites] for page in (first, second, last)] == [
        ["a", "b"],
        ["c", "d"],
        ["e"],
    ]
    assert last.next_page_token == ""


async def test_a_page_token_the_server_did_not_give_is_refused(registry: SiteRegistry) -> None:
    with pytest.raises(InvalidArgument, match="page_token: is not a token this server gave"):
        await registry.list(page_token="%%%")


async def test_an_update_changes_only_the_fields_given(registry: SiteRegistry) -> None:
    await registry.create("shop", "Shop", "Europe/Berlin")

    site = await registry.update("shop", SiteChanges(name="The Shop"))

    assert (site.name, site.time_zone) == ("The Shop", "Europe/Berlin")
    assert site.updated_at > site.created_at


async def test_updating_an_unknown_site_is_not_found(registry: SiteRegistry) -> None:
    with pytest.raises(NotFound):
        await registry.update("nope", SiteChanges(name="x"))


async def test_a_sites_events_are_counted_on_their_days_in_its_zone(
    registry: SiteRegistry, pool: asyncpg.Pool
) -> None:
    await registry.create("nepal", time_zone="Asia/Kathmandu")  # UTC+5:45

    await store_at(pool, "nepal", "2025-11-14T18:14:59Z", "2025-11-14T18:15:00Z")

    assert await days(pool, "nepal") == [(date(2025, 11, 14), 1, 0), (date(2025, 11, 15), 1, 0)]


async def test_a_new_zone_counts_the_sites_stored_days_again_in_it(
    registry: SiteRegistry, pool: asyncpg.Pool
) -> None:
    await store_at(
        pool,
        "shop",
        "2025-11-14T22:30:00Z",
        "2025-11-14T23:30:00Z",
        "2025-11-15T10:00:00Z",
        user_id="u1",
    )
    assert await days(pool, "shop") == [(date(2025, 11, 14), 2, 1), (date(2025, 11, 15), 1, 1)]

    await registry.update("shop", SiteChanges(time_zone="Europe/Berlin"))  # UTC+1 in November

    assert await days(pool, "shop") == [(date(2025, 11, 14), 1, 1), (date(2025, 11, 15), 2, 1)]
    await store_at(pool, "shop", "2025-11-15T23:30:00Z", user_id="u2")
    assert await days(pool, "shop") == [
        (date(2025, 11, 14), 1, 1),
        (date(2025, 11, 15), 2, 1),
        (date(2025, 11, 16), 1, 1),
    ]


async def test_a_new_zone_counts_the_sites_weeks_again_in_it(
    registry: SiteRegistry, pool: asyncpg.Pool
) -> None:
    # Sunday night in UTC is Monday morning in Berlin: the next week.
    await store_at(pool, "shop", "2025-11-14T10:00:00Z", "2025-11-16T23:30:00Z", user_id="u1")

    await registry.update("shop", SiteChanges(time_zone="Europe/Berlin"))

    rows = await pool.fetch(
        "SELECT week, path, views, (SELECT sum(bit_count(bits)) FROM weekly_user_bitmaps AS u"
        "                           WHERE u.site_id = p.site_id AND u.week = p.week)"
        " FROM weekly_path_views AS p WHERE site_id = 'shop' ORDER BY week"
    )
    assert [tuple(row) for row in rows] == [
        (date(2025, 11, 10), "/", 1, 1),
        (date(2025, 11, 17), "/", 1, 1),
    ]


async def test_a_new_zone_rolls_up_only_the_weeks_with_enough_views(pool: asyncpg.Pool) -> None:
    await migrate(pool)
    registry = SiteRegistry(pool, min_week_views=2)
    await registry.create("shop", time_zone="UTC")
    # In Berlin, Monday the 10th's week gets two views and Monday the 17th's one.
    await store_at(
        pool, "shop", "2025-11-14T10:00:00Z", "2025-11-15T10:00:00Z", "2025-11-16T23:30:00Z"
    )

    await registry.update("shop", SiteChanges(time_zone="Europe/Berlin"))

    rows = await pool.fetch(
        "SELECT week, views FROM weekly_rollups WHERE site_id = 'shop' ORDER BY week"
    )
    weeks = await pool.fetch(
        "SELECT DISTINCT week FROM weekly_path_views WHERE site_id = 'shop' ORDER BY week"
    )
    assert [tuple(row) for row in rows] == [(date(2025, 11, 10), 2)]
    assert [row["week"] for row in weeks] == [date(2025, 11, 10)]


async def test_a_new_zone_counts_the_sites_anonymous_visitors_again_in_it(
    registry: SiteRegistry, pool: asyncpg.Pool
) -> None:
    await store_at(pool, "shop", "2025-11-14T22:30:00Z", "2025-11-14T23:30:00Z", visitor_id=7)

    await registry.update("shop", SiteChanges(time_zone="Europe/Berlin"))  # UTC+1 in November

    rows = await pool.fetch(
        """
        SELECT day, anonymous_visitors,
               (SELECT sum(bit_count(bits)) FROM daily_visitor_bitmaps AS b
                WHERE b.site_id = t.site_id AND b.day = t.day) AS bits
        FROM daily_totals AS t WHERE site_id = 'shop' ORDER BY day
        """
    )
    assert [tuple(row) for row in rows] == [(date(2025, 11, 14), 1, 1), (date(2025, 11, 15), 1, 1)]
