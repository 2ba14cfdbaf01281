"""The durable pull consumer: fetch a batch, store it, acknowledge it, repeat.

Messages are acknowledged only after their events are committed, so a crash at any point
leaves them to be redelivered; the store's idempotency makes the redelivery harmless. While
the writer holds messages longer than a third of `ack_wait` (a batch retried through an
outage, and the next batch fetched meanwhile), it tells JetStream it is still working on them,
so that they are not redelivered to another writer.

What cannot be stored is isolated to the smallest part that cannot: a message that does not
decode is given up whole; an event that lacks what makes it storable, or that PostgreSQL
refuses, is given up alone, and the other events of its message and batch are stored. A message
holding such an event is handed back for a later delivery (its stored events are not stored
again), and after `max_deliveries` the event goes to the dead-letter stream with the reason,
as a message of its own, and the message is acknowledged. Failures a retry can outlive
(PostgreSQL or NATS down, a deadlock) are retried with capped backoff, for as long as they
last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from time import perf_counter
from typing import TypeVar

import asyncpg
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from core.database import POSTGRES_UNAVAILABLE
from core.retry import Stopped, describe, retrying
from core.stream import MAX_MESSAGE_EVENTS, EventStream, encode_batch, ensure_stream
from writer.dead_letters import DeadLetters
from writer.decoding import MessageContents, Poison, Row, contents_of, filtered_contents_of
from writer.logged_requests import LoggedRequests
from writer.metrics import BATCH_EVENTS, COMMIT_SECONDS, DEAD_LETTERS, EVENTS
from writer.store import REFUSALS, EventStore

FETCH_TIMEOUT_SECONDS = 0.5
# How long the fetch that tops up a lingering batch waits for its answer: what came during the
# linger is already on the server, so this is a round trip, not a wait for new events.
TOP_UP_TIMEOUT_SECONDS = 0.05
# How long a message that could not be stored waits before its next delivery.
REDELIVERY_DELAY_SECONDS = 1.0

T = TypeVar("T")

# Worth retrying until they pass: PostgreSQL or NATS unreachable, and any other PostgreSQL error
# but a refusal of the data (a deadlock, a missing table a migration will bring).
_RETRYABLE: tuple[type[BaseException], ...] = (
    *POSTGRES_UNAVAILABLE,
    asyncpg.PostgresError,
    nats.errors.Error,
)

# Not worth retrying: a NATS connection closed for good. It reconnects forever otherwise, so
# this means NATS refused something by closing it; retrying would store nothing, for ever,
# while failing ends the writer and lets its supervisor start it with a new connection.
_FATAL: tuple[type[BaseException], ...] = (nats.errors.ConnectionClosedError,)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _RETRYABLE) and not isinstance(error, (*REFUSALS, *_FATAL))


logger = logging.getLogger(__name__)


class BatchSize:
    """How many messages to fetch for a transaction of about `events` events.

    A message holds from one event to MAX_MESSAGE_EVENTS, depending on how busy the ingest
    servers were, so the count follows the last batch's events per message. It starts from
    full messages: a backlog is where they are, and where an overshoot would cost most.
    """

    def __init__(self, events: int) -> None:
        self._events = events
        self._events_per_message = float(MAX_MESSAGE_EVENTS)

    def messages(self, events: int | None = None) -> int:
        """Messages for about `events` events (the batch size's by default)."""
        events = self._events if events is None else events
        return max(1, min(events, round(events / self._events_per_message)))

    def observe(self, messages: int, events: int) -> None:
        if messages:
            self._events_per_message = max(1.0, events / messages)


@dataclass(frozen=True)
class _Fetched:
    message: Msg
    contents: MessageContents


@dataclass(frozen=True)
class _Entry:
    """One storable event of a batch: the message it came from, its position there, its row."""

    fetched: _Fetched
    position: int
    row: Row


class EventConsumer:
    def __init__(
        self,
        js: JetStreamContext,
        store: EventStore,
        stream: EventStream,
        dead_letters: DeadLetters,
        *,
        durable: str,
        batch_size: int,
        concurrency: int,
        ack_wait: float,
        max_deliveries: int,
        linger: float = 0.0,
    ) -> None:
        """`linger`: seconds to wait for more events when a fetch brings fewer than
        `batch_size` (WRITER_LINGER)."""
        self._js = js
        self._store = store
        self._stream = stream
        self._dead_letters = dead_letters
        self._durable = durable
        self._batch_size = batch_size
        self._batch = BatchSize(batch_size)
        self._concurrency = concurrency
        self._ack_wait = ack_wait
        self._max_deliveries = max_deliveries
        self._linger = linger
        self._stopping = asyncio.Event()
        # The messages fetched and not yet acknowledged or handed back, by their reply subject
        # (one per delivery), with when JetStream last heard of them from us.
        self._held: dict[str, tuple[Msg, float]] = {}
        # Set once the consumer is subscribed and the streams exist.
        self.ready = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set, then return after the batches in hand are stored."""
        self._stopping = stopping
        try:
            await self._retrying("subscribing", self._subscribe)
        except Stopped:
            return
        logger.info(
            "consuming %s as %s, %d batches at a time",
            self._stream.name,
            self._durable,
            self._concurrency,
        )
        self.ready.set()
        keeping_alive = asyncio.create_task(self._keep_held_messages_alive())
        try:
            # Each loop stores its batches in a transaction of its own, so one's rows are sent
            # and inserted while another's commit is flushed: the writer and PostgreSQL wait
            # less.
            async with asyncio.TaskGroup() as loops:
                for _ in range(self._concurrency):
                    loops.create_task(self._consume())
        finally:
            keeping_alive.cancel()

    async def _consume(self) -> None:
        """Fetch, store and acknowledge batches, on a subscription of this loop's own."""
        try:
            subscription = await self._retrying(
                "subscribing",
                lambda: self._js.pull_subscribe_bind(self._durable, self._stream.name),
            )
        except Stopped:
            return
        # The next batch is fetched and decoded while the current one is stored: PostgreSQL
        # and NATS each wait less for the other.
        fetching = asyncio.create_task(self._fetch(subscription))
        try:
            while not self._stopping.is_set():
                batch = await fetching
                fetching = asyncio.create_task(self._fetch(subscription))
                await self._store_and_ack(batch)
            # The batch being fetched is in flight too: store it rather than leave it held.
            await self._store_and_ack(await fetching + await self._fetch_delivered(subscription))
        except Stopped:
            logger.warning("stopping with a batch unstored; it will be redelivered")
            await self._hand_back(fetching)
        finally:
            # A loop that failed leaves no fetch behind; what it held is redelivered after
            # ack_wait. (A fetch already awaited is done, and this changes nothing.)
            fetching.cancel()
            await asyncio.wait([fetching])
            # A connection already closing need not be told; the others' loops go on.
            with contextlib.suppress(nats.errors.Error):
                await subscription.unsubscribe()

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> list[_Fetched]:
        """The next batch, decoded; empty if none came in time. A batch of fewer than
        batch_size events waits `linger` and takes what came meanwhile (up to batch_size):
        under a steady flow, the same events go in fewer transactions, each of which costs
        PostgreSQL and the writer about as much with a few events as with hundreds."""
        batch = await self._fetch_decoded(
            subscription, self._batch.messages(), FETCH_TIMEOUT_SECONDS
        )
        events = _events_in(batch)
        self._batch.observe(len(batch), events)
        if batch and events < self._batch_size and self._linger:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self._linger)
            if not self._stopping.is_set():
                more = await self._fetch_decoded(
                    subscription,
                    self._batch.messages(self._batch_size - events),
                    TOP_UP_TIMEOUT_SECONDS,
                )
                batch += more
                self._batch.observe(len(batch), events + _events_in(more))
        return batch

    async def _fetch_decoded(
        self, subscription: JetStreamContext.PullSubscription, messages: int, wait: float
    ) -> list[_Fetched]:
        """Up to `messages` messages, decoded; empty if none came within `wait` seconds."""

        async def fetch() -> list[Msg]:
            try:
                return await subscription.fetch(messages, timeout=wait)
            except TimeoutError:
                return []  # nothing to do

        return await self._decode(await self._retrying("fetching", fetch))

    async def _fetch_delivered(
        self, subscription: JetStreamContext.PullSubscription
    ) -> list[_Fetched]:
        """Messages the server delivered after a fetch had stopped waiting for them."""
        messages: list[Msg] = []
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            while subscription.pending_msgs:
                messages += await subscription.fetch(1, timeout=FETCH_TIMEOUT_SECONDS)
        return await self._decode(messages)

    async def _decode(self, messages: Sequence[Msg]) -> list[_Fetched]:
        """The messages' contents; a message that cannot be read is given back whole."""
        now = asyncio.get_running_loop().time()
        decoded: list[_Fetched] = []
        for message in messages:
            self._held[message.reply] = (message, now)
            try:
                if message.subject == self._stream.filtered_subject:
                    contents = filtered_contents_of(message.data)
                else:
                    contents = contents_of(message.data)
                decoded.append(_Fetched(message, contents))
            except Poison as poison:
                await self._give_back(message, poison.reason)
        return decoded

    async def _hand_back(self, fetching: asyncio.Task[list[_Fetched]]) -> None:
        """Stopping unstored: a batch fetched meanwhile goes back for redelivery at once."""
        try:
            batch = await fetching
        except Stopped:
            return
        for item in batch:
            await self._release(item.message, item.message.nak(), "hand back")

    async def _subscribe(self) -> None:
        await ensure_stream(self._js, self._stream)
        await self._dead_letters.ensure_stream()
        await self._js.add_consumer(
            self._stream.name,
            ConsumerConfig(
                durable_name=self._durable,
                ack_policy=AckPolicy.EXPLICIT,
                ack_wait=self._ack_wait,
                # Each loop holds up to two batches: the one it stores and the next.
                max_ack_pending=max(10_000, 2 * self._concurrency * self._batch_size),
                filter_subject=self._stream.subjects,
            ),
        )

    async def _store_and_ack(self, batch: list[_Fetched]) -> None:
        """Store the batch's events and acknowledge its messages; give back each message
        holding an event that could not be stored, the others stored."""
        entries = [
            _Entry(item, position, row)
            for item in batch
            for position, row in zip(item.contents.positions, item.contents.rows, strict=True)
        ]
        refused = await self._store_isolating(entries)
        for item in batch:
            if item.contents.filtered is not None:
                await self._store_filtered(item)
                continue
            problems = dict(item.contents.unstorable)
            problems.update(refused.get(item.message.reply, {}))
            if problems:
                await self._give_back_events(item, problems)
            else:
                await self._acknowledge(item.message)

    async def _store_isolating(self, entries: list[_Entry]) -> dict[str, dict[int, str]]:
        """Store the entries, halving a part PostgreSQL refuses until each refused event is
        found; the others are stored. The refused events' reasons, by their message's reply
        subject and their position in it."""
        if not entries:
            return {}
        rows = [entry.row for entry in entries]
        requests = LoggedRequests.of(_request_ids(entries))

        async def store() -> int:
            started = perf_counter()
            stored = await self._store.store(rows)
            COMMIT_SECONDS.observe(perf_counter() - started)
            return stored

        try:
            stored = await self._retrying(f"storing {len(rows)} events ({requests})", store)
        except REFUSALS as refusal:
            if len(entries) == 1:
                entry = entries[0]
                reason = f"PostgreSQL refused it: {refusal.message}"
                return {entry.fetched.message.reply: {entry.position: reason}}
            half = len(entries) // 2
            first = await self._store_isolating(entries[:half])
            second = await self._store_isolating(entries[half:])
            return {
                reply: {**first.get(reply, {}), **second.get(reply, {})}
                for reply in first.keys() | second.keys()
            }
        BATCH_EVENTS.observe(len(rows))
        EVENTS.labels("new").inc(stored)
        EVENTS.labels("duplicate").inc(len(rows) - stored)
        logger.debug(
            "stored %d new of %d events (%s)", stored, len(rows), requests, extra=requests.extra
        )
        return {}

    async def _store_filtered(self, item: _Fetched) -> None:
        """Add a FilteredTraffic message's counts (once, whatever the deliveries) and
        acknowledge it; one PostgreSQL refuses is given back like an unreadable message."""
        window = item.contents.filtered
        assert window is not None
        try:
            await self._retrying(
                "storing filtered-traffic counts", lambda: self._store.store_filtered(window)
            )
        except REFUSALS as refusal:
            await self._give_back(item.message, f"PostgreSQL refused it: {refusal.message}")
            return
        await self._acknowledge(item.message)

    async def _give_back_events(self, item: _Fetched, problems: dict[int, str]) -> None:
        """Have a message holding events that cannot be stored delivered again later (its
        other events are stored), or, after its last allowed delivery, move each such event
        to the dead letters alone and acknowledge the message."""
        message = item.message
        deliveries = message.metadata.num_delivered
        sequence = message.metadata.sequence.stream
        reasons = "; ".join(problems.values())
        request_ids = item.contents.request_ids
        requests = LoggedRequests.of(request_ids[position] for position in sorted(problems))
        if deliveries < self._max_deliveries:
            logger.warning(
                "message %s holds %d events that cannot be stored (delivery %d of %d; %s): %s",
                sequence,
                len(problems),
                deliveries,
                self._max_deliveries,
                requests,
                reasons,
                extra=requests.extra,
            )
            await self._release(message, message.nak(delay=REDELIVERY_DELAY_SECONDS), "hand back")
            return
        received_at, events = item.contents.received_at, item.contents.events
        contexts = item.contents.contexts
        for position, reason in sorted(problems.items()):
            letter = encode_batch(
                [events[position]], received_at, [contexts[position]] if contexts else ()
            )
            await self._retrying(
                "adding a dead letter",
                partial(self._dead_letters.add_event, message, position, letter, reason),
            )
            DEAD_LETTERS.labels("event").inc()
        logger.error(
            "message %s: %d events moved to the dead letters after %d deliveries (%s): %s",
            sequence,
            len(problems),
            deliveries,
            requests,
            reasons,
            extra=requests.extra,
        )
        await self._acknowledge(message)

    async def _give_back(self, message: Msg, reason: str) -> None:
        """Have a message that cannot be read delivered again later, or, after its last
        allowed delivery, moved to the dead letters whole."""
        deliveries = message.metadata.num_delivered
        sequence = message.metadata.sequence.stream
        if deliveries < self._max_deliveries:
            logger.warning(
                "message %s cannot be read (delivery %d of %d): %s",
                sequence,
                deliveries,
                self._max_deliveries,
                reason,
            )
            await self._release(message, message.nak(delay=REDELIVERY_DELAY_SECONDS), "hand back")
            return
        await self._retrying(
            "adding a dead letter", lambda: self._dead_letters.add(message, reason)
        )
        DEAD_LETTERS.labels("message").inc()
        logger.error(
            "message %s moved to the dead letters after %d deliveries: %s",
            sequence,
            deliveries,
            reason,
        )
        await self._acknowledge(message)

    async def _acknowledge(self, message: Msg) -> None:
        # A lost ack means a redelivery, which the idempotent store absorbs.
        await self._release(message, message.ack(), "acknowledge")

    async def _release(self, message: Msg, answer: Awaitable[None], what: str) -> None:
        """Answer JetStream about a message we hold, and hold it no more."""
        self._held.pop(message.reply, None)
        await self._ignoring_nats_errors(answer, what, message)

    async def _keep_held_messages_alive(self) -> None:
        """Tell JetStream we are still working on each message held for a third of ack_wait
        (a batch stored through an outage, the batch fetched after it), so that it is not
        redelivered meanwhile; messages stored at once are never touched."""
        interval = self._ack_wait / 3
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval / 2)
            now = loop.time()
            for reply, (message, since) in list(self._held.items()):
                if now - since >= interval and reply in self._held:
                    self._held[reply] = (message, now)
                    await self._ignoring_nats_errors(message.in_progress(), "keep alive", message)

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T:
        """Run `attempt` until it succeeds, retrying failures a retry can outlive; raises
        Stopped if asked to stop meanwhile, and lets every other error through."""
        return await retrying(
            attempt,
            what=what,
            retryable=_retryable,
            logger=logger,
            maximum=10.0,
            stopping=self._stopping,
        )

    @staticmethod
    async def _ignoring_nats_errors(
        operation: Awaitable[None], what: str, message: Msg | None = None
    ) -> None:
        """Tell NATS something it may miss: a lost ack or keep-alive means a redelivery,
        which the idempotent store absorbs; a lost nak, a redelivery after ack_wait instead
        of at once. Worth a warning, not a failure."""
        try:
            await operation
        except nats.errors.Error as error:
            sequence = message.metadata.sequence.stream if message is not None else None
            logger.warning(
                "could not %s%s (%s); JetStream redelivers what it does not hear of",
                what,
                f" message {sequence}" if sequence is not None else "",
                describe(error),
            )


def _events_in(batch: Sequence[_Fetched]) -> int:
    return sum(len(item.contents.rows) for item in batch)


def _request_ids(entries: Sequence[_Entry]) -> Iterator[str]:
    for entry in entries:
        yield entry.fetched.contents.request_ids[entry.position]
