"""Live reports: each event of a site as it is accepted, and its visitors of the last minutes,
fed from the event stream itself (JetStream republishes every message it stores; see
core.stream.EventStream.live_subjects), not by polling PostgreSQL.

One subscription per report process serves every watcher, and only while someone watches. A
site's live visitors are the distinct visitors whose events occurred within LIVE_WINDOW of
now: counted from the database once, when the site's first watcher arrives, and kept from the
stream after. Each watcher has a bounded queue: one that falls behind is dropped (its stream
ends with RESOURCE_EXHAUSTED), never holding back the others, the subscription or ingestion.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from analytics.internal.v1.stream_pb2 import EventContext
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from core.errors import InvalidArgument, ResourceExhausted
from core.events import site_id_violations
from core.stream import EventStream, UndecodableMessage, decode_message
from report_server.database import ReportDatabase
from report_server.report_queries import LIVE_VISITORS

LIVE_WINDOW = timedelta(minutes=5)
# Updates a watcher may have waiting; one that lets more pile up is dropped.
WATCHER_QUEUE = 1000
# How often a site's quiet visitors are let go: counting them on every event would cost as
# much as the site has visitors.
PRUNE_EVERY = timedelta(seconds=1)
_LONG_AGO = datetime.min.replace(tzinfo=UTC)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveEvent:
    event_type: str
    path: str
    timestamp: datetime


@dataclass(frozen=True)
class LiveUpdate:
    event: LiveEvent | None  # None in the first update, which only counts
    visitors: int


@dataclass(eq=False)  # each watcher is itself, in a site's set of watchers
class _Watcher:
    queue: asyncio.Queue[LiveUpdate] = field(default_factory=lambda: asyncio.Queue(WATCHER_QUEUE))
    fell_behind: bool = False


@dataclass
class _Site:
    watchers: set[_Watcher] = field(default_factory=set)
    # Each live visitor's latest event (no later than when it was seen), by visitor.
    visitors: dict[str, datetime] = field(default_factory=dict)
    pruned_at: datetime = _LONG_AGO

    def saw(self, visitor: str, at: datetime, now: datetime) -> None:
        at = min(at, now)  # an event a client dates ahead is live now, not for an hour
        latest = self.visitors.get(visitor)
        if at >= now - LIVE_WINDOW and (latest is None or at > latest):
            self.visitors[visitor] = at

    def count(self, now: datetime) -> int:
        """The live visitors; those gone quiet leave the count within PRUNE_EVERY."""
        if now - self.pruned_at >= PRUNE_EVERY:
            since = now - LIVE_WINDOW
            for visitor in [v for v, at in self.visitors.items() if at < since]:
                del self.visitors[visitor]
            self.pruned_at = now
        return len(self.visitors)


def visitor_key(user_id: str, visitor_id: int) -> str | None:
    """Who an event's visitor is, keyed as report_queries.VISITOR keys it, so that those read
    from the database and those seen on the stream are one set."""
    if user_id:
        return user_id
    return f"\x01{visitor_id}" if visitor_id else None


def _now() -> datetime:
    return datetime.now(UTC)


class LiveHub:
    def __init__(
        self,
        nc: NATS,
        stream: EventStream,
        database: ReportDatabase,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._nc = nc
        self._subject = stream.live_subjects
        self._database = database
        self._clock = clock
        self._sites: dict[str, _Site] = {}
        self._subscription: Subscription | None = None
        self._lock = asyncio.Lock()  # subscribing and seeding, one watcher at a time

    async def watch(self, site_id: str) -> AsyncGenerator[LiveUpdate, None]:
        """The site's updates until the caller stops; InvalidArgument for a bad site_id,
        ResourceExhausted once the caller has fallen WATCHER_QUEUE updates behind."""
        if violations := site_id_violations(site_id):
            raise InvalidArgument(violations)
        watcher = _Watcher()
        site = await self._join(site_id, watcher)
        try:
            yield LiveUpdate(None, site.count(self._clock()))
            while True:
                update = await watcher.queue.get()
                if watcher.fell_behind:
                    raise ResourceExhausted(
                        f"the watcher fell more than {WATCHER_QUEUE} updates behind; watch again"
                    )
                yield update
        finally:
            await self._leave(site_id, watcher)

    async def _join(self, site_id: str, watcher: _Watcher) -> _Site:
        async with self._lock:
            if self._subscription is None:
                self._subscription = await self._nc.subscribe(self._subject, cb=self._on_message)
            site = self._sites.get(site_id)
            if site is None:
                since = self._clock() - LIVE_WINDOW
                rows = await self._database.fetch(LIVE_VISITORS, site_id, since)
                site = _Site(visitors={row["visitor"]: row["latest"] for row in rows})
                self._sites[site_id] = site
            site.watchers.add(watcher)
            return site

    async def _leave(self, site_id: str, watcher: _Watcher) -> None:
        async with self._lock:
            site = self._sites[site_id]
            site.watchers.discard(watcher)
            if not site.watchers:
                del self._sites[site_id]
            if not self._sites and self._subscription is not None:
                await self._subscription.unsubscribe()
                self._subscription = None

    async def _on_message(self, message: Msg) -> None:
        try:
            decoded = decode_message(message.data)
        except UndecodableMessage:
            return  # the writer deals with it; nothing to show
        now = self._clock()
        contexts: Sequence[EventContext | None] = decoded.contexts or [None] * len(decoded.events)
        for event, context in zip(decoded.events, contexts, strict=True):
            site = self._sites.get(event.site_id)
            if site is None:
                continue
            timestamp = event.timestamp.ToDatetime(UTC)
            visitor = visitor_key(event.user_id, context.visitor_id if context else 0)
            if visitor is not None:
                site.saw(visitor, timestamp, now)
            update = LiveUpdate(LiveEvent(event.event_type, event.path, timestamp), site.count(now))
            for watcher in site.watchers:
                if watcher.fell_behind:
                    continue
                try:
                    watcher.queue.put_nowait(update)
                except asyncio.QueueFull:
                    watcher.fell_behind = True
