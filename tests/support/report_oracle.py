"""The reports, answered by brute force over the events a test stored: each event's local time
in the zone read directly, nothing shared with the report server but the rules. What a report
says must equal what this says."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from report_server.scope import Filter


@dataclass(frozen=True)
class StoredEvent:
    event_id: str
    site_id: str
    event_type: str
    path: str
    at: datetime  # aware
    user_id: str | None = None
    referrer: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    # The cookie-less visitor the ingest server derived for a browser's event (0: none).
    visitor_id: int = 0
    # What the ingest server derives from a browser's request ('': none, as for other events).
    browser: str = ""
    os: str = ""
    device: str = ""
    country: str = ""
    referrer_source: str = ""
    derived_referrer_host: str = ""
    utm: dict[str, str] = field(default_factory=dict)

    @property
    def visitor(self) -> str | None:
        """Who the event's visitor is: its user, else its anonymous visitor."""
        if self.user_id:
            return self.user_id
        return f"anonymous {self.visitor_id}" if self.visitor_id else None


def referrer_host(referrer: str | None) -> str:
    if not referrer:
        return ""
    parts = urlsplit(referrer)
    if not parts.scheme or not parts.netloc:
        return ""
    return (parts.hostname or "").lower().removeprefix("www.")


VISIT_GAP = timedelta(minutes=30)
VISIT_DIMENSIONS = (
    "entry_page",
    "exit_page",
    "source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
)


@dataclass
class Visit:
    """A visitor's events, in order, with no gap over 30 minutes."""

    events: list[StoredEvent]

    @property
    def started(self) -> datetime:
        return self.events[0].at

    @property
    def pages(self) -> list[str]:
        return [e.path for e in self.events if e.event_type == "page_view"]

    def value(self, dimension: str) -> str:
        if dimension == "entry_page":
            return self.pages[0] if self.pages else ""
        if dimension == "exit_page":
            return self.pages[-1] if self.pages else ""
        if dimension == "source":
            return self.events[0].referrer_source
        return self.events[0].utm.get(dimension, "")


def visits(events: Iterable[StoredEvent], before: datetime) -> list[Visit]:
    """Every visit of the events that occurred before `before`, by brute force: each visitor's
    events in order (ties by event_id), cut where the gap exceeds 30 minutes."""
    by_visitor: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        if event.visitor and event.at < before:
            by_visitor[event.visitor].append(event)
    found = []
    for own in by_visitor.values():
        own.sort(key=lambda e: (e.at, e.event_id.encode()))
        current = [own[0]]
        for event in own[1:]:
            if event.at - current[-1].at > VISIT_GAP:
                found.append(Visit(current))
                current = []
            current.append(event)
        found.append(Visit(current))
    return found


def value_of(event: StoredEvent, dimension: str, visit: Visit | None = None) -> str:
    """The event's value of a dimension; `visit`: the visit it belongs to, if one counted."""
    if dimension.startswith("property:"):
        return event.properties.get(dimension.removeprefix("property:"), "")
    if dimension in VISIT_DIMENSIONS:
        return visit.value(dimension) if visit else ""
    if dimension == "referrer_host":
        if event.referrer_source:
            return event.derived_referrer_host
        return referrer_host(event.referrer)
    value: str = getattr(event, dimension)
    return value


def passes(event: StoredEvent, filters: Sequence[Filter], visit: Visit | None = None) -> bool:
    for each in filters:
        value = value_of(event, each.dimension, visit)
        if each.operator == "is" and value not in each.values:
            return False
        if each.operator == "prefix" and not any(value.startswith(v) for v in each.values):
            return False
    return True


def selected(
    events: Iterable[StoredEvent],
    site_id: str,
    first: date,
    last: date,
    zone: ZoneInfo,
    filters: Sequence[Filter] = (),
) -> list[StoredEvent]:
    """The site's events whose local date in `zone` is from `first` to `last`, passing the
    filters."""
    return [
        e
        for e in events
        if e.site_id == site_id
        and first <= e.at.astimezone(zone).date() <= last
        and passes(e, filters)
    ]


def counts(events: Sequence[StoredEvent]) -> tuple[int, int]:
    """(views, visitors)."""
    return len(events), len({e.visitor for e in events if e.visitor})


def label(event: StoredEvent, zone: ZoneInfo, interval: str) -> str:
    local = event.at.astimezone(zone)
    day = local.date()
    if interval == "day":
        return day.isoformat()
    if interval == "week":
        return (day - timedelta(days=day.weekday())).isoformat()
    if interval == "month":
        return day.replace(day=1).isoformat()
    offset = local.strftime("%z")
    minute = local.minute if interval == "minute" else 0
    return f"{local:%Y-%m-%dT%H}:{minute:02d}:00{offset[:3]}:{offset[3:]}"


def series(
    events: Sequence[StoredEvent], zone: ZoneInfo, interval: str
) -> dict[str, tuple[int, int]]:
    """(views, visitors) by bucket label, for the buckets that have events."""
    grouped: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        grouped[label(event, zone, interval)].append(event)
    return {name: counts(members) for name, members in grouped.items()}


def breakdown(
    events: Sequence[StoredEvent], dimension: str, order_by: str
) -> list[tuple[str, int, int]]:
    """Every row, (value, views, visitors), ranked as the report ranks them."""
    grouped: dict[str, list[StoredEvent]] = defaultdict(list)
    for event in events:
        grouped[value_of(event, dimension)].append(event)
    rows: list[tuple[str, int, int]] = []
    for value, members in grouped.items():
        views, visitors = counts(members)
        rows.append((value, views, visitors))
    # Code point order of the value breaks ties, as PostgreSQL's "C" collation does for UTF-8.
    if order_by == "visitors":
        return sorted(rows, key=lambda row: (-row[2], row[0].encode()))
    return sorted(rows, key=lambda row: (-row[1], row[0].encode()))


@dataclass
class Report:
    """A report's question answered by brute force: the site's events in the period's local
    days that pass the filters, and the visits that start in the period (computed over all the
    site's events before its end) that hold one of them."""

    events: list[StoredEvent]  # that pass
    visit_of: dict[str, Visit]  # event_id: the counted visit of each event in the period
    zone: ZoneInfo

    @classmethod
    def of(
        cls,
        events: Iterable[StoredEvent],
        site_id: str,
        first: date,
        last: date,
        zone: ZoneInfo,
        filters: Sequence[Filter] = (),
    ) -> Report:
        own = [e for e in events if e.site_id == site_id]
        end = min((e.at for e in own if e.at.astimezone(zone).date() > last), default=None)
        in_period = [e for e in own if first <= e.at.astimezone(zone).date() <= last]
        visit_of = {
            event.event_id: visit
            for visit in visits(own, end or datetime.max.replace(tzinfo=UTC))
            if first <= visit.started.astimezone(zone).date() <= last
            for event in visit.events
        }
        chosen = [e for e in in_period if passes(e, filters, visit_of.get(e.event_id))]
        return cls(chosen, visit_of, zone)

    def counted_visits(self) -> list[Visit]:
        seen: dict[int, Visit] = {}
        for event in self.events:
            if (visit := self.visit_of.get(event.event_id)) is not None:
                seen[id(visit)] = visit
        return list(seen.values())

    def visit_metrics(self) -> tuple[int, int, int, int]:
        """(visits, bounces, page views, microseconds from first to last event, summed)."""
        counted = self.counted_visits()
        return (
            len(counted),
            sum(1 for v in counted if len(v.pages) == 1),
            sum(len(v.pages) for v in counted),
            sum((v.events[-1].at - v.started) // timedelta(microseconds=1) for v in counted),
        )

    def visit_series(self, interval: str) -> dict[str, int]:
        """Visits by the label of the bucket of their first event."""
        found: dict[str, int] = defaultdict(int)
        for visit in self.counted_visits():
            found[label(visit.events[0], self.zone, interval)] += 1
        return dict(found)

    def breakdown(self, dimension: str, order_by: str) -> list[tuple[str, int, int, int]]:
        """Every row, (value, views, visitors, visits), ranked as the report ranks them."""
        grouped: dict[str, list[StoredEvent]] = defaultdict(list)
        for event in self.events:
            grouped[value_of(event, dimension, self.visit_of.get(event.event_id))].append(event)
        rows = []
        for value, members in grouped.items():
            views, visitors = counts(members)
            held = {id(v) for e in members if (v := self.visit_of.get(e.event_id)) is not None}
            rows.append((value, views, visitors, len(held)))

        def rank(row: tuple[str, int, int, int]) -> tuple[int, bytes]:
            by = {"views": row[1], "visitors": row[2], "visits": row[3]}[order_by]
            return -by, row[0].encode()

        return sorted(rows, key=rank)
