"""Ingestion as both doors see it: validate, publish, tell the caller what became of each event.

The gRPC servicer and the HTTP shim call these methods and nothing else; they only translate
their wire formats to `Event`s and the results back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from analytics.v1.event_pb2 import Event

from core.access import INGEST_BROWSERS, IngestAccess
from core.errors import FieldViolation, InvalidArgument, ServiceError
from core.event_ids import new_event_ids
from core.events import backfill_violations, batch_size_violations, validate_event
from ingest_server.browsers import BrowserRequest, Browsers
from ingest_server.metrics import EventCounts
from ingest_server.publisher import EventPublisher
from ingest_server.site_watch import SiteRecords


class Dropped(Exception):
    """A valid event that was not stored, on purpose (see ingest_server.browsers), and why:
    a caller answers it like an accepted one, so that a tracker does not send it again."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class Outcome:
    """What became of one event of a batch: accepted with its id, or rejected with reasons.

    Not frozen: a frozen dataclass cost two and a half times as much to make.
    """

    index: int
    event_id: str = ""
    violations: tuple[FieldViolation, ...] = ()
    dropped: str = ""  # the reason a valid event was dropped

    @property
    def accepted(self) -> bool:
        return not self.violations and not self.dropped


@dataclass(slots=True)
class BatchOutcome:
    """What became of each event of a batch, by position: the ids of the accepted ones ("" for
    the rejected) and the reasons of the rejected ones. An Outcome per event cost a twentieth
    of IngestBatch's CPU; `outcomes()` makes them for callers that report event by event."""

    event_ids: list[str]
    rejections: dict[int, tuple[FieldViolation, ...]]  # by position in the batch, in order
    first_index: int = 0  # the index the first event is reported under
    # Valid events dropped, by position: the reason (only a browser's events are dropped).
    drops: dict[int, str] = field(default_factory=dict)

    @property
    def rejected_count(self) -> int:
        return len(self.rejections)

    @property
    def dropped_count(self) -> int:
        return len(self.drops)

    @property
    def accepted_count(self) -> int:
        return len(self.event_ids) - len(self.rejections) - len(self.drops)

    def outcomes(self) -> Iterator[Outcome]:
        rejections, drops = self.rejections, self.drops
        for position, event_id in enumerate(self.event_ids):
            yield Outcome(
                self.first_index + position,
                event_id,
                rejections.get(position, ()),
                drops.get(position, ""),
            )

    def rejected(self) -> Iterator[Outcome]:
        for position, violations in self.rejections.items():
            yield Outcome(self.first_index + position, violations=violations)


def _event_ids_when_asked(count: int) -> Iterator[str]:
    """Up to `count` new event ids, made at once when the first is asked for: a batch whose
    events all bring their own ids makes none."""
    yield from new_event_ids(count)


def authorize(
    access: IngestAccess, items: Iterable[Event | InvalidArgument], sites: SiteRecords | None
) -> None:
    """Raise unless `access` may send an event of each site the items name (by the sites'
    ingest policies; without `sites`, every site lets browsers send): the whole request is
    refused, before anything of it is stored."""
    try:
        site_ids = {item.site_id for item in items}  # type: ignore[union-attr]
    except AttributeError:  # an item refused in decoding: it has no site to check
        site_ids = {item.site_id for item in items if isinstance(item, Event)}
    for site_id in site_ids:
        policy = INGEST_BROWSERS if sites is None else sites.get(site_id).ingest_policy
        access.check(site_id, policy)


def _now() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    def __init__(
        self,
        publisher: EventPublisher,
        clock: Callable[[], datetime] = _now,
        browsers: Browsers | None = None,
        counts: EventCounts | None = None,
        *,
        sites: SiteRecords | None = None,
        keyless_backfill_days: int = 2,
    ) -> None:
        """`browsers`: the rules for a browser's events; without them, a browser's events are
        stored as any others. `counts`: the counters of the door this serves (none by
        default). `sites`: the site records whose ingest policies a request's access is
        checked against (without them, every site lets browsers send);
        `keyless_backfill_days`: how far back an event sent without a key may be."""
        self._publisher = publisher
        self._clock = clock
        self._browsers = browsers
        self._counts = counts or EventCounts(None)
        self._sites = sites
        self._backfill_days = keyless_backfill_days
        self._backfill = timedelta(days=keyless_backfill_days)

    async def ingest(
        self,
        event: Event,
        browser: BrowserRequest | None = None,
        access: IngestAccess | None = None,
    ) -> str:
        """Store one event; its event_id once it is durable. Raises InvalidArgument,
        Unauthenticated and PermissionDenied (when `access` does not allow it: unchecked
        without), and Dropped for a browser's event that is not to be stored."""
        if access is not None:
            authorize(access, (event,), self._sites)
        received_at = self._clock()
        earliest = self._earliest(access, received_at)
        try:
            valid = validate_event(event, received_at)
            if earliest is not None and (late := backfill_violations(valid, *earliest)):
                raise InvalidArgument(late)
        except InvalidArgument:
            self._counts.invalid.inc()
            raise
        if browser is None or self._browsers is None:
            await self._publish([valid], received_at)
            return valid.event_id
        judged = self._browsers.judge(valid, browser, received_at)
        if isinstance(judged, str):
            raise Dropped(judged)
        await self._publish([valid], received_at, [judged])
        return valid.event_id

    def _earliest(
        self, access: IngestAccess | None, received_at: datetime
    ) -> tuple[int, int] | None:
        """For a request without a key: the earliest Unix second its events may claim, and
        the window in days; None when any time back to the earliest allowed is fine."""
        if access is None or access.keyed:
            return None
        return int((received_at - self._backfill).timestamp()), self._backfill_days

    async def _publish(
        self,
        events: list[Event],
        received_at: datetime,
        contexts: list[bytes | None] | None = None,
    ) -> None:
        try:
            await self._publisher.publish(events, received_at, contexts)
        except ServiceError as error:
            self._counts.refused(error, len(events))
            raise
        self._counts.accepted.inc(len(events))

    async def ingest_batch(
        self,
        items: Sequence[Event | InvalidArgument],
        first_index: int = 0,
        browser: BrowserRequest | None = None,
        access: IngestAccess | None = None,
    ) -> BatchOutcome:
        """Store the valid events of a batch and report on each item, in order.

        An item may arrive already refused (an InvalidArgument from the caller's decoding, such
        as a JSON value of the wrong type); it is reported as rejected with the others. A
        browser's valid events may be dropped, each reported with the reason.
        Raises InvalidArgument only when the batch itself is too large; Unauthenticated or
        PermissionDenied when `access` does not allow one of its sites.
        """
        if violations := batch_size_violations(len(items)):
            raise InvalidArgument(violations)
        if access is not None:
            authorize(access, items, self._sites)
        received_at = self._clock()
        earliest = self._earliest(access, received_at)
        new_ids = _event_ids_when_asked(len(items))
        event_ids: list[str] = []
        rejections: dict[int, tuple[FieldViolation, ...]] = {}
        accepted: list[Event] = []
        for item in items:
            try:
                if isinstance(item, InvalidArgument):
                    raise item
                event = validate_event(item, received_at, new_ids)
                if earliest is not None and (late := backfill_violations(event, *earliest)):
                    raise InvalidArgument(late)
            except InvalidArgument as error:
                rejections[len(event_ids)] = error.violations
                event_ids.append("")
            else:
                accepted.append(event)
                event_ids.append(event.event_id)
        if rejections:
            self._counts.invalid.inc(len(rejections))
        if browser is not None and self._browsers is not None:
            return await self._ingest_browsers(
                BatchOutcome(event_ids, rejections, first_index), accepted, browser, received_at
            )
        if accepted:
            await self._publish(accepted, received_at)
        return BatchOutcome(event_ids, rejections, first_index)

    async def _ingest_browsers(
        self,
        outcome: BatchOutcome,
        valid: list[Event],
        browser: BrowserRequest,
        received_at: datetime,
    ) -> BatchOutcome:
        """Store a browser's valid events (in `outcome` by position) that are not dropped."""
        assert self._browsers is not None
        kept: list[Event] = []
        contexts: list[bytes | None] = []
        events = iter(valid)
        for position, event_id in enumerate(outcome.event_ids):
            if not event_id:
                continue  # rejected
            event = next(events)
            judged = self._browsers.judge(event, browser, received_at)
            if isinstance(judged, str):  # the reason it is dropped
                outcome.drops[position] = judged
                outcome.event_ids[position] = ""
            else:
                kept.append(event)
                contexts.append(judged)
        if kept:
            await self._publish(kept, received_at, contexts)
        return outcome
