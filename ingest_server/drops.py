"""Events dropped rather than stored (a bot's, a page's of an origin its site does not allow),
counted so that nothing vanishes without a trace: a Prometheus counter by reason, and the
per-site, per-day counts that become the filtered-traffic report.

The counts reach PostgreSQL without ingestion touching it: every FILTERED_TRAFFIC_INTERVAL the
server publishes what it dropped since the last window as one FilteredTraffic message on the
events stream, which the writer adds to `filtered_traffic`. A window is published under the
same id until JetStream acknowledges it (the writer adds a window once, however often it
arrives); drops meanwhile go into the next window. Counts of a window not yet acknowledged
when the server stops are lost with it; the metric has them still.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from datetime import date

import nats.errors
from analytics.internal.v1.stream_pb2 import FilteredCount, FilteredTraffic
from nats.js import JetStreamContext
from prometheus_client import Counter as Metric

from core.retry import describe
from core.stream import EventStream, encode_filtered

BOT = "bot"
ORIGIN_NOT_ALLOWED = "origin_not_allowed"
REASONS = (BOT, ORIGIN_NOT_ALLOWED)

DROPPED = Metric(
    "analytics_ingest_events_dropped",
    "Events the ingest server dropped instead of storing, by reason",
    ["reason"],
)
# Every reason is listed from the start, at 0, so that a rate over it is defined.
for _reason in REASONS:
    DROPPED.labels(_reason)

logger = logging.getLogger(__name__)


class Drops:
    """The counts of one ingest process, and their publishing."""

    def __init__(self, js: JetStreamContext, stream: EventStream, interval: float) -> None:
        self._js = js
        self._subject = stream.filtered_subject
        self._interval = interval
        self._process = uuid.uuid4().hex
        self._windows = 0
        self._counts: Counter[tuple[str, date, str]] = Counter()
        self._unsent: FilteredTraffic | None = None

    def count(self, site_id: str, day: date, reason: str, events: int = 1) -> None:
        """`events` of `site_id` dropped for `reason`, on `day` in the site's time zone."""
        DROPPED.labels(reason).inc(events)
        self._counts[site_id, day, reason] += events

    async def run(self) -> None:
        """Publish a window every interval, until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.publish()

    async def publish(self) -> None:
        """Publish the window not yet acknowledged, or else the counts since the last one; a
        failure leaves it for the next call."""
        if self._unsent is None:
            if not self._counts:
                return
            self._unsent = self._window()
        payload, msg_id = encode_filtered(self._unsent)
        try:
            await self._js.publish(self._subject, payload, headers={"Nats-Msg-Id": msg_id})
        except (nats.errors.Error, TimeoutError) as error:
            logger.warning(
                "could not publish the filtered-traffic counts (kept for the next window): %s",
                describe(error),
            )
            return
        self._unsent = None

    def _window(self) -> FilteredTraffic:
        self._windows += 1
        window = FilteredTraffic(window_id=f"{self._process}-{self._windows}")
        for (site_id, day, reason), events in sorted(self._counts.items()):
            window.counts.append(
                FilteredCount(site_id=site_id, day=day.isoformat(), reason=reason, count=events)
            )
        self._counts.clear()
        return window
