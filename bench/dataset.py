"""Realistic synthetic events: a few sites of unequal traffic, ~1000 paths and ~100k users with
skewed popularity, several event types, optional user ids, referrers and properties.

Every load generator of the harness draws its events from here, so that the HTTP, gRPC, writer
and stats figures all see the same kind of traffic.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

from analytics.v1.event_pb2 import Event
from google.protobuf.timestamp_pb2 import Timestamp


def _zipf_cumulative(count: int, exponent: float) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**exponent) for rank in range(1, count + 1)))


def _paths(count: int) -> list[str]:
    sections = ("products", "blog", "docs", "pricing", "account", "help", "news", "careers")
    paths = ["/", "/pricing", "/signup", "/login", "/about", "/contact"]
    serial = 0
    while len(paths) < count:
        section = sections[serial % len(sections)]
        paths.append(f"/{section}/item-{serial:04d}")
        serial += 1
    return paths


@dataclass(frozen=True)
class TrafficShape:
    """Who visits what. Sites are (site_id, share of traffic) pairs."""

    sites: tuple[tuple[str, float], ...] = (
        ("shop.example.com", 0.55),
        ("blog.example.org", 0.25),
        ("docs.example.net", 0.15),
        ("status.example.io", 0.05),
    )
    path_count: int = 1000
    path_skew: float = 1.1
    user_count: int = 100_000
    user_skew: float = 0.8
    event_types: tuple[tuple[str, float], ...] = (
        ("page_view", 0.85),
        ("click", 0.10),
        ("signup", 0.05),
    )
    anonymous_share: float = 0.15
    referrers: tuple[str, ...] = (
        "https://www.google.com/",
        "https://news.ycombinator.com/",
        "https://duckduckgo.com/",
        "https://t.co/",
    )
    referrer_share: float = 0.3
    properties_share: float = 0.2

    @property
    def busiest_site(self) -> str:
        return max(self.sites, key=lambda site: site[1])[0]

    def spread_over(self, count: int) -> TrafficShape:
        """The same traffic, spread evenly over `count` sites."""
        return replace(
            self, sites=tuple((f"site-{n}.example.com", 1 / count) for n in range(count))
        )


@dataclass
class EventFactory:
    """Draws events of a TrafficShape; deterministic for a given seed."""

    shape: TrafficShape = field(default_factory=TrafficShape)
    seed: int = 1

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)
        self._site_ids = [site for site, _ in self.shape.sites]
        self._site_weights = list(itertools.accumulate(share for _, share in self.shape.sites))
        self._paths = _paths(self.shape.path_count)
        self._path_weights = _zipf_cumulative(self.shape.path_count, self.shape.path_skew)
        self._users = [f"user-{n:06d}" for n in range(self.shape.user_count)]
        self._user_weights = _zipf_cumulative(self.shape.user_count, self.shape.user_skew)
        self._types = [name for name, _ in self.shape.event_types]
        self._type_weights = list(itertools.accumulate(w for _, w in self.shape.event_types))

    def fields(self, count: int) -> list[tuple[str, str, str, str, str, dict[str, str]]]:
        """(site_id, event_type, path, user_id or "", referrer or "", properties) tuples."""
        rnd = self._random
        sites = rnd.choices(self._site_ids, cum_weights=self._site_weights, k=count)
        types = rnd.choices(self._types, cum_weights=self._type_weights, k=count)
        paths = rnd.choices(self._paths, cum_weights=self._path_weights, k=count)
        users = rnd.choices(self._users, cum_weights=self._user_weights, k=count)
        shape = self.shape
        rows = []
        for site, event_type, path, user in zip(sites, types, paths, users, strict=True):
            draw = rnd.random()
            rows.append(
                (
                    site,
                    event_type,
                    path,
                    "" if draw < shape.anonymous_share else user,
                    rnd.choice(shape.referrers) if draw < shape.referrer_share else "",
                    {"plan": "pro" if draw < 0.1 else "free"}
                    if draw < shape.properties_share
                    else {},
                )
            )
        return rows

    def events(
        self, count: int, start: datetime, span: timedelta, event_ids: Sequence[str] = ()
    ) -> list[Event]:
        """`count` events with timestamps spread over [start, start + span), ids from
        `event_ids` (none: left empty for the server to assign)."""
        rnd = self._random
        base = int(start.timestamp() * 1_000_000)
        width = int(span.total_seconds() * 1_000_000)
        events = []
        for index, (site, event_type, path, user, referrer, properties) in enumerate(
            self.fields(count)
        ):
            micros = base + rnd.randrange(width)
            events.append(
                Event(
                    event_id=event_ids[index] if event_ids else "",
                    site_id=site,
                    event_type=event_type,
                    path=path,
                    user_id=user,
                    timestamp=Timestamp(
                        seconds=micros // 1_000_000, nanos=micros % 1_000_000 * 1000
                    ),
                    referrer=referrer,
                    properties=properties,
                )
            )
        return events

    def json_bodies(self, count: int, start: datetime, span: timedelta) -> list[bytes]:
        """`count` single-event JSON bodies for `POST /event`, without event ids."""
        bodies = []
        for event in self.events(count, start, span):
            value: dict[str, object] = {
                "site_id": event.site_id,
                "event_type": event.event_type,
                "path": event.path,
                "timestamp": event.timestamp.ToDatetime(tzinfo=UTC).isoformat(),
            }
            if event.user_id:
                value["user_id"] = event.user_id
            if event.referrer:
                value["referrer"] = event.referrer
            if event.properties:
                value["properties"] = dict(event.properties)
            bodies.append(json.dumps(value, separators=(",", ":")).encode())
        return bodies


def recent_window() -> tuple[datetime, timedelta]:
    """The last six hours: timestamps every ingest server accepts (none in the future)."""
    span = timedelta(hours=6)
    return datetime.now(UTC) - span - timedelta(minutes=1), span


def many_sites(count: int, skew: float = 1.0) -> tuple[tuple[str, float], ...]:
    """`count` sites whose shares of the traffic fall with their rank (Zipf's law): a hosted
    service's few large customers and many small ones."""
    weights = [1.0 / rank**skew for rank in range(1, count + 1)]
    total = sum(weights)
    return tuple((f"site-{rank:04d}.example.com", w / total) for rank, w in enumerate(weights))


# The time zones of the stored history's sites, in turn by rank: the busiest in New York, and
# half-hour and 45-minute offsets among the others.
SITE_ZONES = (
    "America/New_York",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Kathmandu",
    "Australia/Sydney",
    "America/Los_Angeles",
    "UTC",
)


@dataclass(frozen=True)
class DatasetShape:
    """The stored history the stats and report figures read: `days` days ending on
    `last_day`, a little quieter on weekends, over many sites each in a time zone of its own."""

    last_day: date = date(2025, 10, 31)
    days: int = 365
    traffic: TrafficShape = field(default_factory=lambda: TrafficShape(sites=many_sites(1000)))

    @property
    def zones(self) -> dict[str, str]:
        """Each site's time zone, by site."""
        return {
            site: SITE_ZONES[rank % len(SITE_ZONES)]
            for rank, (site, _) in enumerate(self.traffic.sites)
        }

    @property
    def typical_site(self) -> str:
        """A site of the middle of the pack, next to the busiest: the 100th by traffic."""
        return self.traffic.sites[99][0]

    @property
    def all_days(self) -> list[date]:
        return [self.last_day - timedelta(days=n) for n in range(self.days - 1, -1, -1)]

    @property
    def report_day(self) -> date:
        """The day the one-day stats figures ask for: a weekday in the middle."""
        middle = self.all_days[self.days // 2]
        while middle.weekday() >= 5:
            middle -= timedelta(days=1)
        return middle

    def preceding(self, days: int) -> DatasetShape:
        """The `days` days just before this history's first, with the same traffic: what a
        store that has been receiving it for longer holds besides."""
        return replace(self, last_day=self.all_days[0] - timedelta(days=1), days=days)

    def events_per_day(self, total: int) -> dict[date, int]:
        """Split `total` events over the days (weekends at 70 %), summing exactly to it."""
        weights = {day: 0.7 if day.weekday() >= 5 else 1.0 for day in self.all_days}
        scale = total / sum(weights.values())
        counts = {day: int(weight * scale) for day, weight in weights.items()}
        counts[self.last_day] += total - sum(counts.values())
        return counts
