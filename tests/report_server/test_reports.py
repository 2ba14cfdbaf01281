"""Metrics, time series and breakdowns, each checked exactly against the same question answered
by brute force over the stored events (tests/support/report_oracle.py) and, for days, by
PostgreSQL's own time zone rules: in every zone, across every clock change of 2025."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import FieldViolation, InvalidArgument
from report_server.reports import Counts, ReportReader, SeriesResult, parse_breakdown
from report_server.scope import Filter, parse_scope
from report_server.sites import SiteRegistry
from tests.support import report_oracle as oracle
from tests.support.report_oracle import StoredEvent
from tests.support.report_store import scope, store

# Each zone the issue names, with the days of its 2025 clock changes.
CLOCK_CHANGES = [
    ("America/New_York", date(2025, 3, 9)),
    ("America/New_York", date(2025, 11, 2)),
    ("Europe/London", date(2025, 3, 30)),
    ("Europe/London", date(2025, 10, 26)),
    ("Australia/Lord_Howe", date(2025, 4, 6)),
    ("Australia/Lord_Howe", date(2025, 10, 5)),
    ("Pacific/Chatham", date(2025, 4, 6)),
    ("Pacific/Chatham", date(2025, 9, 28)),
    ("Asia/Kolkata", date(2025, 3, 30)),
    ("Asia/Kathmandu", date(2025, 3, 30)),
]
PATHS = ("/", "/pricing", "/blog/a", "/blog/b", "/docs")
REFERRERS = (None, "https://www.google.com/search?q=x", "https://News.ycombinator.com/", "junk")


def every_ten_minutes(site: str, first: datetime, hours: int) -> list[StoredEvent]:
    """Events every ten minutes from `first`, users and paths cycling so that days differ."""
    return [
        StoredEvent(
            event_id=f"{site}-{n}",
            site_id=site,
            event_type="signup" if n % 11 == 0 else "page_view",
            path=PATHS[n % len(PATHS)],
            at=first + timedelta(minutes=10 * n),
            user_id=None if n % 7 == 0 else f"u{n % 23}",
            visitor_id=n % 5 if n % 7 == 0 else 0,
            referrer=REFERRERS[n % len(REFERRERS)],
            properties={"plan": ("free", "pro")[n % 2]} if n % 3 else {},
        )
        for n in range(hours * 6)
    ]


def nonempty(series: SeriesResult) -> dict[str, tuple[int, int]]:
    """(views, visitors) by label of the buckets that counted something."""
    return {
        p.bucket.label: (p.counts.views, p.counts.visitors)
        for p in series.points
        if p.counts != Counts(0, 0)
    }


@pytest.mark.parametrize(("zone", "day"), CLOCK_CHANGES)
async def test_hours_and_days_around_a_clock_change_count_each_event_once_exactly(
    reports: ReportReader, pool: asyncpg.Pool, zone: str, day: date
) -> None:
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
    events = every_ten_minutes("s", start - timedelta(hours=14), hours=3 * 24 + 28)
    await store(pool, events)
    first, last = day - timedelta(days=1), day + timedelta(days=1)
    asked = scope("s", first, last, zone)
    expected = oracle.selected(events, "s", first, last, ZoneInfo(zone))

    for interval in ("hour", "day"):
        result = await reports.time_series(asked, interval)
        assert nonempty(result) == oracle.series(expected, ZoneInfo(zone), interval)
    metrics = await reports.metrics(asked, compare=False)
    assert (metrics.current.views, metrics.current.visitors) == oracle.counts(expected)


@pytest.mark.parametrize(("zone", "day"), CLOCK_CHANGES)
async def test_days_agree_with_postgresqls_own_time_zone_rules(
    reports: ReportReader, pool: asyncpg.Pool, zone: str, day: date
) -> None:
    start = datetime.combine(day - timedelta(days=2), datetime.min.time(), UTC)
    await store(pool, every_ten_minutes("s", start, hours=4 * 24))
    first, last = day - timedelta(days=1), day + timedelta(days=1)

    result = await reports.time_series(scope("s", first, last, zone), "day")

    rows = await pool.fetch(
        "SELECT (occurred_at AT TIME ZONE $1)::date AS day, count(*) AS views FROM events"
        " WHERE (occurred_at AT TIME ZONE $1)::date BETWEEN $2 AND $3 GROUP BY 1 ORDER BY 1",
        zone,
        first,
        last,
    )
    assert [(p.bucket.label, p.counts.views) for p in result.points] == [
        (row["day"].isoformat(), row["views"]) for row in rows
    ]


async def test_every_bucket_is_present_and_empty_ones_are_zero(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(
        pool, [StoredEvent("e1", "s", "page_view", "/", datetime(2025, 11, 3, 12, tzinfo=UTC))]
    )

    result = await reports.time_series(
        scope("s", date(2025, 11, 1), date(2025, 11, 5), "UTC"),
        "day",
    )

    assert [(p.bucket.label, p.counts.views) for p in result.points] == [
        ("2025-11-01", 0),
        ("2025-11-02", 0),
        ("2025-11-03", 1),
        ("2025-11-04", 0),
        ("2025-11-05", 0),
    ]


async def test_the_previous_period_is_counted_when_asked(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    events = every_ten_minutes("s", datetime(2025, 11, 1, tzinfo=UTC), hours=14 * 24)
    await store(pool, events)
    zone = ZoneInfo("Europe/Berlin")

    result = await reports.metrics(
        scope("s", date(2025, 11, 8), date(2025, 11, 14), "Europe/Berlin"),
        compare=True,
    )

    assert result.previous_period is not None
    assert (result.previous_period.first, result.previous_period.last) == (
        date(2025, 11, 1),
        date(2025, 11, 7),
    )
    assert result.previous == oracle_counts(events, date(2025, 11, 1), date(2025, 11, 7), zone)
    assert result.current == oracle_counts(events, date(2025, 11, 8), date(2025, 11, 14), zone)


def oracle_counts(events: Sequence[StoredEvent], first: date, last: date, zone: ZoneInfo) -> Counts:
    return Counts(*oracle.counts(oracle.selected(events, "s", first, last, zone)))


@pytest.mark.parametrize(
    "dimension", ["path", "event_type", "referrer_host", "property:plan", "property:none"]
)
@pytest.mark.parametrize("order_by", ["visitors", "views"])
async def test_a_breakdown_ranks_every_value_and_its_views_add_up_to_the_total(
    reports: ReportReader, pool: asyncpg.Pool, dimension: str, order_by: str
) -> None:
    events = every_ten_minutes("s", datetime(2025, 11, 1, tzinfo=UTC), hours=48)
    await store(pool, events)
    asked = scope("s", date(2025, 11, 1), date(2025, 11, 2), "Asia/Kathmandu")
    expected = oracle.selected(
        events, "s", date(2025, 11, 1), date(2025, 11, 2), ZoneInfo("Asia/Kathmandu")
    )

    result = await reports.breakdown(
        asked,
        parse_breakdown(dimension, order_by, 1000, 0),
    )
    metrics = await reports.metrics(asked, compare=False)

    rows = [(row.value, row.views, row.visitors) for row in result.rows]
    assert rows == oracle.breakdown(expected, dimension, order_by)
    assert result.total_rows == len(rows)
    assert sum(row.views for row in result.rows) == metrics.current.views


async def test_a_breakdown_pages_with_limit_and_offset_and_counts_all_rows(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    events = every_ten_minutes("s", datetime(2025, 11, 1, tzinfo=UTC), hours=24)
    await store(pool, events)
    asked = scope("s", date(2025, 11, 1), date(2025, 11, 1), "UTC")
    ranked = oracle.breakdown(
        oracle.selected(events, "s", date(2025, 11, 1), date(2025, 11, 1), ZoneInfo("UTC")),
        "path",
        "visitors",
    )

    page = await reports.breakdown(asked, parse_breakdown("path", "", 2, 1))
    beyond = await reports.breakdown(asked, parse_breakdown("path", "", 2, 50))

    assert [(r.value, r.views, r.visitors) for r in page.rows] == ranked[1:3]
    assert (page.total_rows, beyond.rows, beyond.total_rows) == (5, [], 5)


@pytest.mark.parametrize(
    "filters",
    [
        [Filter("path", "is", ("/pricing",))],
        [Filter("path", "is", ("/pricing", "/docs"))],
        [Filter("path", "prefix", ("/blog/",))],
        [Filter("event_type", "is", ("signup",))],
        [Filter("referrer_host", "is", ("news.ycombinator.com",))],
        [Filter("referrer_host", "is", ("",))],
        [Filter("property:plan", "is", ("pro",))],
        [Filter("property:plan", "is", ("",))],
        [Filter("path", "prefix", ("/blog/",)), Filter("property:plan", "is", ("free",))],
    ],
)
async def test_filters_narrow_every_report_alike(
    reports: ReportReader, pool: asyncpg.Pool, filters: list[Filter]
) -> None:
    events = every_ten_minutes("s", datetime(2025, 11, 1, tzinfo=UTC), hours=48)
    await store(pool, events)
    zone = ZoneInfo("America/New_York")
    asked = scope("s", date(2025, 11, 1), date(2025, 11, 2), "America/New_York", *filters)
    expected = oracle.selected(events, "s", date(2025, 11, 1), date(2025, 11, 2), zone, filters)

    metrics = await reports.metrics(asked, compare=False)
    series = await reports.time_series(asked, "hour")
    breakdown = await reports.breakdown(asked, parse_breakdown("path", "views", 1000, 0))

    assert (metrics.current.views, metrics.current.visitors) == oracle.counts(expected)
    assert nonempty(series) == oracle.series(expected, zone, "hour")
    assert [(r.value, r.views, r.visitors) for r in breakdown.rows] == oracle.breakdown(
        expected, "path", "views"
    )


async def test_a_report_counts_only_its_site(reports: ReportReader, pool: asyncpg.Pool) -> None:
    at = datetime(2025, 11, 1, 12, tzinfo=UTC)
    await store(
        pool,
        [
            StoredEvent("1", "mine", "page_view", "/", at, "u1"),
            StoredEvent("1", "other", "page_view", "/", at, "u1"),
        ],
    )

    metrics = await reports.metrics(
        scope("mine", date(2025, 11, 1), date(2025, 11, 1), "UTC"), compare=False
    )

    assert (metrics.current.views, metrics.current.visitors) == (1, 1)


async def test_without_a_zone_a_report_counts_the_days_of_the_sites_zone(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await SiteRegistry(pool).create("nepal", time_zone="Asia/Kathmandu")
    await store(
        pool,
        [StoredEvent("1", "nepal", "page_view", "/", datetime(2025, 11, 14, 18, 30, tzinfo=UTC))],
    )

    result = await reports.time_series(
        parse_scope("nepal", start_date="2025-11-14", end_date="2025-11-15"), "day"
    )

    assert result.period.zone == ZoneInfo("Asia/Kathmandu")
    assert [(p.bucket.label, p.counts.views) for p in result.points] == [
        ("2025-11-14", 0),
        ("2025-11-15", 1),
    ]


async def test_all_time_starts_on_the_day_of_the_sites_first_event(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(
        pool,
        [StoredEvent("1", "s", "page_view", "/", datetime(2025, 11, 17, 23, 30, tzinfo=UTC))],
    )

    result = await reports.metrics(
        parse_scope("s", range_keyword="all", timezone="Asia/Kolkata"), compare=False
    )

    assert (result.period.first, result.period.last) == (date(2025, 11, 18), date(2025, 11, 20))
    assert result.current.views == 1


@pytest.mark.parametrize("filters", [[], [("event_type", "is", ["page_view"])]])
async def test_all_time_in_the_sites_zone_counts_every_stored_day_exactly(
    reports: ReportReader, pool: asyncpg.Pool, filters: list[tuple[str, str, list[str]]]
) -> None:
    events = every_ten_minutes("s", datetime(2025, 11, 10, 5, tzinfo=UTC), hours=5 * 24)
    others = every_ten_minutes("other", datetime(2025, 11, 12, tzinfo=UTC), hours=24)
    await store(pool, events + others)

    asked = parse_scope("s", range_keyword="all", filters=filters)
    result = await reports.metrics(asked, compare=False)

    expected = oracle.selected(
        events, "s", date(2025, 11, 10), date(2025, 11, 20), ZoneInfo("UTC"), asked.filters
    )
    assert (result.current.views, result.current.visitors) == oracle.counts(expected)


async def test_all_time_leaves_out_an_event_stamped_after_today(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    # NOW is 2025-11-20T15:00Z; a client's clock may run minutes ahead, into the next day.
    events = [
        StoredEvent("1", "s", "page_view", "/", datetime(2025, 11, 19, 9, tzinfo=UTC), "u1"),
        StoredEvent("2", "s", "page_view", "/", datetime(2025, 11, 21, 0, 5, tzinfo=UTC), "u2"),
    ]
    await store(pool, events)

    result = await reports.metrics(parse_scope("s", range_keyword="all"), compare=False)

    assert (result.period.first, result.period.last) == (date(2025, 11, 19), date(2025, 11, 20))
    assert result.current == Counts(1, 1)


async def test_a_range_keyword_counts_the_days_ending_today_in_the_zone(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    # NOW is 2025-11-20T15:00Z: already the 21st in Pacific/Kiritimati (UTC+14).
    result = await reports.metrics(
        parse_scope("s", range_keyword="7d", timezone="Pacific/Kiritimati"), compare=False
    )

    assert (result.period.first, result.period.last) == (date(2025, 11, 15), date(2025, 11, 21))


@pytest.mark.parametrize(
    ("arguments", "violation"),
    [
        ({"timezone": "Mars/Base"}, ("timezone", "is not an IANA time zone: 'Mars/Base'")),
        (
            {"range_keyword": "fortnight"},
            (
                "range",
                "must be one of today, yesterday, 7d, 30d, month, last_month, year, all, "
                "got 'fortnight'",
            ),
        ),
        (
            {"filters": [("color", "is", ["red"])]},
            (
                "filters[0].dimension",
                "must be one of event_type, path, referrer_host, browser, os, device, country, "
                "entry_page, exit_page, source, utm_source, utm_medium, utm_campaign, utm_term, "
                "utm_content or property:<key>, got 'color'",
            ),
        ),
        (
            {"filters": [("path", "like", ["/a"])]},
            ("filters[0].operator", "must be one of is, prefix, got 'like'"),
        ),
        ({"filters": [("path", "is", [])]}, ("filters[0].values", "must hold 1 to 100 values")),
        (
            {"start_date": "2025-11-02", "end_date": "2025-11-01"},
            ("end_date", "must not be before start_date"),
        ),
    ],
)
def test_a_bad_scope_is_refused_naming_the_argument(
    arguments: dict[str, Any], violation: tuple[str, str]
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_scope("s", **arguments)

    assert caught.value.violations == (FieldViolation(*violation),)


async def test_a_minute_series_over_more_than_a_day_is_refused(reports: ReportReader) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await reports.time_series(parse_scope("s", range_keyword="7d"), "minute")

    assert caught.value.violations == (
        FieldViolation("interval", "a minute series covers at most 1 day; the range has 7"),
    )


async def test_a_series_of_more_than_1000_buckets_is_refused(
    reports: ReportReader, pool: asyncpg.Pool
) -> None:
    await store(pool, [StoredEvent("1", "s", "page_view", "/", datetime(2022, 1, 1, tzinfo=UTC))])

    with pytest.raises(InvalidArgument) as caught:
        await reports.time_series(parse_scope("s", range_keyword="all"), "day")

    assert caught.value.violations == (
        FieldViolation("interval", "a series has at most 1000 buckets; ask for a longer interval"),
    )


# Property-based: any events, any scope, any report, checked against the oracle. Each example
# stores its events under a site of its own.
_ZONES = st.sampled_from([z for z, _ in CLOCK_CHANGES] + ["UTC", "Pacific/Kiritimati"])
_MOMENTS = st.datetimes(
    min_value=datetime(2025, 3, 28), max_value=datetime(2025, 4, 8), timezones=st.just(UTC)
)
# (at, path, user_id, event_type, referrer, plan, visitor_id)
RawEvent = tuple[datetime, str, str | None, str, str | None, str | None, int]
_EVENTS = st.lists(
    st.tuples(
        _MOMENTS,
        st.sampled_from(PATHS),
        st.sampled_from([None, "u1", "u2", "u3", "ü4"]),
        st.sampled_from(["page_view", "signup"]),
        st.sampled_from(REFERRERS),
        st.sampled_from([None, "free", "pro"]),
        st.sampled_from([0, 1, 2, -3]),
    ),
    max_size=40,
)
_FILTERS = st.lists(
    st.one_of(
        st.builds(
            lambda v: Filter("path", "is", tuple(v)),
            st.lists(st.sampled_from(PATHS), min_size=1, max_size=2),
        ),
        st.just(Filter("path", "prefix", ("/blog",))),
        st.just(Filter("event_type", "is", ("page_view",))),
        st.builds(
            lambda v: Filter("property:plan", "is", (v,)), st.sampled_from(["", "free", "pro"])
        ),
    ),
    max_size=2,
)
_example = iter(range(10**9))


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    raw=_EVENTS,
    zone=_ZONES,
    first_day=st.integers(min_value=0, max_value=8),
    days=st.integers(min_value=1, max_value=4),
    filters=_FILTERS,
    interval=st.sampled_from(["hour", "day", "week"]),
    dimension=st.sampled_from(["path", "referrer_host", "event_type", "property:plan"]),
)
async def test_any_events_and_any_report_agree_with_brute_force(
    reports: ReportReader,
    pool: asyncpg.Pool,
    raw: list[RawEvent],
    zone: str,
    first_day: int,
    days: int,
    filters: list[Filter],
    interval: str,
    dimension: str,
) -> None:
    site = f"site-{next(_example)}"
    events = [
        StoredEvent(
            event_id=f"e{index}",
            site_id=site,
            event_type=kind,
            path=path,
            at=at,
            user_id=user,
            referrer=referrer,
            properties={} if plan is None else {"plan": plan},
            visitor_id=visitor,
        )
        for index, (at, path, user, kind, referrer, plan, visitor) in enumerate(raw)
    ]
    await store(pool, events)
    first = date(2025, 3, 28) + timedelta(days=first_day)
    last = first + timedelta(days=days - 1)
    asked = scope(site, first, last, zone, *filters)
    expected = oracle.selected(events, site, first, last, ZoneInfo(zone), filters)

    metrics = await reports.metrics(asked, compare=False)
    series = await reports.time_series(asked, interval)
    breakdown = await reports.breakdown(asked, parse_breakdown(dimension, "", 1000, 0))

    assert (metrics.current.views, metrics.current.visitors) == oracle.counts(expected)
    assert nonempty(series) == oracle.series(expected, ZoneInfo(zone), interval)
    assert [(r.value, r.views, r.visitors) for r in breakdown.rows] == oracle.breakdown(
        expected, dimension, "visitors"
    )


@pytest.mark.parametrize(("zone", "day"), CLOCK_CHANGES)
@pytest.mark.parametrize("kinds", [(), ("page_view",), ("page_view", "signup")])
async def test_in_the_sites_own_zone_the_aggregates_answer_as_the_events_do(
    reports: ReportReader, pool: asyncpg.Pool, zone: str, day: date, kinds: tuple[str, ...]
) -> None:
    await SiteRegistry(pool).create("own", time_zone=zone)
    start = datetime.combine(day - timedelta(days=9), datetime.min.time(), UTC)
    events = every_ten_minutes("own", start, hours=20 * 24)
    await store(pool, events)
    filters = [Filter("event_type", "is", kinds)] if kinds else []
    first, last = day - timedelta(days=8), day + timedelta(days=8)
    asked = parse_scope(
        "own",
        start_date=first.isoformat(),
        end_date=last.isoformat(),
        filters=[(f.dimension, f.operator, list(f.values)) for f in filters],
    )
    expected = oracle.selected(events, "own", first, last, ZoneInfo(zone), filters)

    metrics = await reports.metrics(asked, compare=True)
    for interval in ("day", "week", "month"):
        series = await reports.time_series(asked, interval)
        assert nonempty(series) == oracle.series(expected, ZoneInfo(zone), interval)
    previous = oracle.selected(
        events,
        "own",
        first - timedelta(days=17),
        first - timedelta(days=1),
        ZoneInfo(zone),
        filters,
    )
    assert metrics.current == Counts(*oracle.counts(expected))
    assert metrics.previous == Counts(*oracle.counts(previous))
