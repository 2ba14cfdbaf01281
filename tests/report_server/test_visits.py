"""Visits: a visitor's events with no gap over 30 minutes, counted in the period and bucket of
their first event, checked exactly against brute force over the events the test stored
(tests/support/report_oracle.py), whatever order the events were stored in."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import count
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from report_server.reports import ReportReader, VisitCounts, parse_breakdown
from report_server.scope import DIMENSIONS, Filter
from tests.support.report_oracle import Report, StoredEvent
from tests.support.report_store import scope, store

DAY = date(2025, 11, 14)
NOON = datetime(2025, 11, 14, 12, tzinfo=UTC)
_ids = count()


def view(at: datetime, path: str = "/", *, user: str = "u1") -> StoredEvent:
    return StoredEvent(f"e{next(_ids)}", "s", "page_view", path, at, user)


async def visits_of_day(reports: ReportReader, day: date = DAY, zone: str = "UTC") -> VisitCounts:
    visits = (await reports.metrics(scope("s", day, day, zone), compare=False)).visits
    assert visits is not None
    return visits


async def test_a_gap_of_31_minutes_starts_a_new_visit_and_one_of_29_does_not(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(
        pool,
        [
            view(NOON, "/a"),
            view(NOON + timedelta(minutes=29), "/b"),
            view(NOON + timedelta(minutes=60), "/c"),  # 31 minutes after /b
        ],
    )

    visits = await visits_of_day(reports)

    assert visits == VisitCounts(visits=2, bounces=1, pages=3, duration_us=29 * 60 * 10**6)
    assert (visits.bounce_rate, visits.views_per_visit, visits.visit_duration) == (
        50.0,
        1.5,
        870.0,
    )


async def test_a_late_event_between_two_visits_joins_them_into_one(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(pool, [view(NOON, "/a"), view(NOON + timedelta(minutes=50), "/c")])
    before = await visits_of_day(reports)

    await store(pool, [view(NOON + timedelta(minutes=25), "/b")])

    assert before == VisitCounts(visits=2, bounces=2, pages=2, duration_us=0)
    assert await visits_of_day(reports) == VisitCounts(
        visits=1, bounces=0, pages=3, duration_us=50 * 60 * 10**6
    )


async def test_a_redelivered_event_changes_nothing(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    events = [view(NOON, "/a"), view(NOON + timedelta(minutes=10), "/b")]
    await store(pool, events)
    before = await reports.metrics(scope("s", DAY, DAY, "UTC"), compare=False)

    await store(pool, events[1:])

    assert await reports.metrics(scope("s", DAY, DAY, "UTC"), compare=False) == before
    assert before.visits == VisitCounts(1, 0, 2, 10 * 60 * 10**6)


async def test_a_visit_across_midnight_counts_on_the_day_of_its_first_event_in_the_zone(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    # 23:50 and 00:10 in New York, the night its clocks went back (2025-11-02).
    late = datetime(2025, 11, 3, 4, 50, tzinfo=UTC)
    await store(pool, [view(late, "/in"), view(late + timedelta(minutes=20), "/out")])
    zone = "America/New_York"

    series = await reports.time_series(
        scope("s", date(2025, 11, 2), date(2025, 11, 3), zone), "day"
    )
    next_day = await reports.breakdown(
        scope("s", date(2025, 11, 3), date(2025, 11, 3), zone),
        parse_breakdown("entry_page", "", 10, 0),
    )

    assert [(p.bucket.label, p.counts.views, p.visits) for p in series.points] == [
        ("2025-11-02", 1, 1),
        ("2025-11-03", 1, 0),
    ]
    # The next day alone sees the visit's second event, outside any visit it counts.
    assert [(r.value, r.views, r.visitors, r.visits) for r in next_day.rows] == [("", 1, 1, 0)]
    assert await visits_of_day(reports, date(2025, 11, 3), zone) == VisitCounts(0, 0, 0, 0)


async def test_a_visit_is_described_as_it_stands_at_the_periods_end(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    late = datetime(2025, 11, 14, 23, 50, tzinfo=UTC)
    await store(pool, [view(late, "/in"), view(late + timedelta(minutes=20), "/out")])

    one_day = await reports.breakdown(
        scope("s", DAY, DAY, "UTC"), parse_breakdown("exit_page", "", 10, 0)
    )
    two_days = await reports.breakdown(
        scope("s", DAY, DAY + timedelta(days=1), "UTC"), parse_breakdown("exit_page", "", 10, 0)
    )

    assert [(r.value, r.views, r.visits) for r in one_day.rows] == [("/in", 1, 1)]
    assert [(r.value, r.views, r.visits) for r in two_days.rows] == [("/out", 2, 1)]


async def test_events_without_a_visitor_belong_to_no_visit(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(pool, [view(NOON, user=""), view(NOON + timedelta(minutes=1), user="")])

    metrics = await reports.metrics(scope("s", DAY, DAY, "UTC"), compare=False)

    assert (metrics.current.views, metrics.visits) == (2, VisitCounts(0, 0, 0, 0))
    assert VisitCounts(0, 0, 0, 0).bounce_rate == 0.0


SOURCES = ("search", "social", "direct", "other")
BROWSERS = ("Chrome", "Firefox")


def browsing(site: str, first: datetime, moments: Sequence[int]) -> list[StoredEvent]:
    """Events `moments` minutes after `first`: page views and signups of users and anonymous
    visitors, with browsers, sources and campaigns, as a browser's events carry them."""
    events = []
    for n, minutes in enumerate(moments):
        anonymous = n % 4 == 0
        events.append(
            StoredEvent(
                event_id=f"{site}-{n}",
                site_id=site,
                event_type="signup" if n % 9 == 4 else "page_view",
                path=("/", "/pricing", "/blog/a", "/docs")[n % 4 if n % 3 else 1],
                at=first + timedelta(minutes=minutes),
                user_id=None if anonymous else f"u{n % 3}",
                visitor_id=n % 2 + 1 if anonymous else 0,
                properties={"plan": "pro"} if n % 5 == 0 else {},
                browser=BROWSERS[n % 2],
                os="Linux" if n % 3 else "",
                device="mobile" if n % 5 else "desktop",
                country=("DE", "US", "")[n % 3],
                referrer_source=SOURCES[n % 4],
                derived_referrer_host="t.co" if n % 4 == 1 else "",
                utm={"utm_source": "news", "utm_campaign": f"c{n % 2}"} if n % 3 == 0 else {},
            )
        )
    return events


@pytest.mark.parametrize("order_by", ["visitors", "views", "visits"])
async def test_every_dimension_breaks_down_views_visitors_and_visits_exactly(
    reports: ReportReader, pool: asyncpg.Pool, order_by: str
) -> None:
    # Around Europe/London's clocks going back: gaps of 5 to 45 minutes, across its midnight.
    first = datetime(2025, 10, 25, 21, tzinfo=UTC)
    events = browsing("s", first, [n * 7 + (n % 4) * 9 for n in range(140)])
    await store(pool, events)
    zone = "Europe/London"
    asked = scope("s", date(2025, 10, 26), date(2025, 10, 26), zone)
    expected = Report.of(events, "s", date(2025, 10, 26), date(2025, 10, 26), ZoneInfo(zone))

    for dimension in (*DIMENSIONS, "property:plan"):
        result = await reports.breakdown(asked, parse_breakdown(dimension, order_by, 1000, 0))
        rows = [(r.value, r.views, r.visitors, r.visits) for r in result.rows]
        assert (dimension, rows) == (dimension, expected.breakdown(dimension, order_by))
    metrics = await reports.metrics(asked, compare=False)
    assert metrics.visits == VisitCounts(*expected.visit_metrics())


@pytest.mark.parametrize(
    "filters",
    [
        [Filter("entry_page", "is", ("/pricing",))],
        [Filter("exit_page", "prefix", ("/blog",)), Filter("browser", "is", ("Chrome",))],
        [Filter("source", "is", ("search", "social"))],
        [Filter("utm_campaign", "is", ("c1",)), Filter("path", "is", ("/docs",))],
        [Filter("country", "is", ("",))],
    ],
)
async def test_filters_on_visits_and_events_narrow_every_report_alike(
    reports: ReportReader, pool: asyncpg.Pool, filters: list[Filter]
) -> None:
    first = datetime(2025, 11, 1, 22, tzinfo=UTC)
    events = browsing("s", first, [n * 6 + (n % 5) * 8 for n in range(120)])
    await store(pool, events)
    zone = "Asia/Kathmandu"
    days = (date(2025, 11, 2), date(2025, 11, 2))
    asked = scope("s", *days, zone, *filters)
    expected = Report.of(events, "s", *days, ZoneInfo(zone), filters)

    metrics = await reports.metrics(asked, compare=False)
    series = await reports.time_series(asked, "hour")
    breakdown = await reports.breakdown(asked, parse_breakdown("exit_page", "visits", 1000, 0))

    assert (metrics.current.views, metrics.current.visitors) == (
        len(expected.events),
        len({e.visitor for e in expected.events if e.visitor}),
    )
    assert metrics.visits == VisitCounts(*expected.visit_metrics())
    assert {p.bucket.label: p.visits for p in series.points if p.visits} == (
        expected.visit_series("hour")
    )
    assert [(r.value, r.views, r.visitors, r.visits) for r in breakdown.rows] == (
        expected.breakdown("exit_page", "visits")
    )


async def test_the_previous_period_has_its_own_visits(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    events = browsing("s", datetime(2025, 11, 12, tzinfo=UTC), [n * 13 for n in range(600)])
    await store(pool, events)
    zone = ZoneInfo("Pacific/Chatham")

    result = await reports.metrics(
        scope("s", date(2025, 11, 14), date(2025, 11, 15), zone.key), compare=True
    )

    previous = Report.of(events, "s", date(2025, 11, 12), date(2025, 11, 13), zone)
    current = Report.of(events, "s", date(2025, 11, 14), date(2025, 11, 15), zone)
    assert result.previous_visits == VisitCounts(*previous.visit_metrics())
    assert result.visits == VisitCounts(*current.visit_metrics())


# Property-based: events a few minutes apart (so that visits form and break) around a clock
# change, any zone, any filters, any dimension, checked against the oracle.
_ZONES = st.sampled_from(["UTC", "America/New_York", "Europe/London", "Asia/Kathmandu"])
_FILTERS = st.lists(
    st.sampled_from(
        [
            Filter("path", "is", ("/pricing",)),
            Filter("event_type", "is", ("page_view",)),
            Filter("entry_page", "is", ("/", "/docs")),
            Filter("exit_page", "prefix", ("/p",)),
            Filter("source", "is", ("direct",)),
            Filter("device", "is", ("mobile",)),
        ]
    ),
    max_size=2,
)
_example = count()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    gaps=st.lists(st.integers(min_value=0, max_value=45), max_size=40),
    order=st.randoms(use_true_random=False),
    zone=_ZONES,
    filters=_FILTERS,
    interval=st.sampled_from(["hour", "day"]),
    dimension=st.sampled_from(["path", "entry_page", "exit_page", "source", "utm_campaign"]),
)
async def test_any_visits_in_any_order_agree_with_brute_force(
    reports: ReportReader,
    pool: asyncpg.Pool,
    gaps: list[int],
    order: random.Random,
    zone: str,
    filters: list[Filter],
    interval: str,
    dimension: str,
) -> None:
    site = f"visits-{next(_example)}"
    moments = [sum(gaps[: n + 1]) for n in range(len(gaps))]
    # From 23:00 in New York the night before its clocks go back (2025-11-02, 02:00 EDT).
    events = browsing(site, datetime(2025, 11, 2, 3, tzinfo=UTC), moments)
    shuffled = list(events)
    order.shuffle(shuffled)
    for half in (shuffled[::2], shuffled[1::2]):
        await store(pool, half)
    days = (date(2025, 11, 2), date(2025, 11, 2))
    asked = scope(site, *days, zone, *filters)
    expected = Report.of(events, site, *days, ZoneInfo(zone), filters)

    metrics = await reports.metrics(asked, compare=False)
    series = await reports.time_series(asked, interval)
    breakdown = await reports.breakdown(asked, parse_breakdown(dimension, "visits", 1000, 0))

    assert metrics.visits == VisitCounts(*expected.visit_metrics())
    assert {p.bucket.label: p.visits for p in series.points if p.visits} == (
        expected.visit_series(interval)
    )
    assert [(r.value, r.views, r.visitors, r.visits) for r in breakdown.rows] == (
        expected.breakdown(dimension, "visits")
    )
