"""The durable pull consumer: fetch a batch, store it, acknowledge it, repeat.

Messages are acknowledged only after their events are committed, so a crash at any point
leaves them to be redelivered; the store's idempotency makes the redelivery harmless.

A message that cannot be stored (it does not decode, an event lacks what makes it storable, or
PostgreSQL refuses it) is handed back for a later delivery, and after `max_deliveries` moved to
the dead-letter stream with the reason; the rest of its batch is stored meanwhile. Failures a
retry can outlive (PostgreSQL or NATS down, a deadlock) are retried with capped backoff, for as
long as they last.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import asyncpg
import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig

from core.database import POSTGRES_UNAVAILABLE
from core.retry import Backoff
from core.stream import MAX_MESSAGE_EVENTS, EventStream, ensure_stream
from writer.dead_letters import DeadLetters
from writer.decoding import Poison, Row, rows_of
from writer.store import REFUSALS, EventStore

FETCH_TIMEOUT_SECONDS = 0.5
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

    def messages(self) -> int:
        return max(1, min(self._events, round(self._events / self._events_per_message)))

    def observe(self, messages: int, events: int) -> None:
        if messages:
            self._events_per_message = max(1.0, events / messages)


class _Stopping(Exception):
    """Asked to stop while waiting to retry: leave the batch unacknowledged."""


@dataclass(frozen=True)
class _Decoded:
    message: Msg
    rows: list[Row]


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
    ) -> None:
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
        self._stopping = asyncio.Event()
        self._fetch_backoff = Backoff(maximum=5.0)
        # Set once the consumer is subscribed and the streams exist.
        self.ready = asyncio.Event()

    async def run(self, stopping: asyncio.Event) -> None:
        """Consume until `stopping` is set, then return after the batches in hand are stored."""
        self._stopping = stopping
        try:
            await self._retrying("subscribing", self._subscribe)
        except _Stopping:
            return
        logger.info(
            "consuming %s as %s, %d batches at a time",
            self._stream.name,
            self._durable,
            self._concurrency,
        )
        self.ready.set()
        # Each loop stores its batches in a transaction of its own, so one's rows are sent and
        # inserted while another's commit is flushed: the writer and PostgreSQL wait less.
        async with asyncio.TaskGroup() as loops:
            for _ in range(self._concurrency):
                loops.create_task(self._consume())

    async def _consume(self) -> None:
        """Fetch, store and acknowledge batches, on a subscription of this loop's own."""
        try:
            subscription = await self._retrying(
                "subscribing",
                lambda: self._js.pull_subscribe_bind(self._durable, self._stream.name),
            )
        except _Stopping:
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
        except _Stopping:
            logger.warning("stopping with a batch unstored; it will be redelivered")
            await self._hand_back(fetching)
        finally:
            # A loop that failed leaves no fetch behind; what it held is redelivered after
            # ack_wait. (A fetch already awaited is done, and this changes nothing.)
            fetching.cancel()
            await asyncio.wait([fetching])
            # A connection already closing need not be told; the others' loops go on.
            await self._ignoring_nats_errors(subscription.unsubscribe())

    async def _fetch(self, subscription: JetStreamContext.PullSubscription) -> list[_Decoded]:
        """The next batch, decoded; empty if none came in time."""
        try:
            messages = await subscription.fetch(
                self._batch.messages(), timeout=FETCH_TIMEOUT_SECONDS
            )
        except TimeoutError:
            return []  # nothing to do
        except _FATAL:
            raise
        except nats.errors.Error as error:
            await self._pause(self._fetch_backoff, f"fetching failed ({error!r})")
            return []
        self._fetch_backoff = Backoff(maximum=5.0)
        batch = await self._decode(messages)
        self._batch.observe(len(batch), sum(len(item.rows) for item in batch))
        return batch

    async def _fetch_delivered(
        self, subscription: JetStreamContext.PullSubscription
    ) -> list[_Decoded]:
        """Messages the server delivered after a fetch had stopped waiting for them."""
        messages: list[Msg] = []
        with contextlib.suppress(TimeoutError, nats.errors.Error):
            while subscription.pending_msgs:
                messages += await subscription.fetch(1, timeout=FETCH_TIMEOUT_SECONDS)
        return await self._decode(messages)

    async def _decode(self, messages: Sequence[Msg]) -> list[_Decoded]:
        """The messages' rows; poison is given back."""
        decoded: list[_Decoded] = []
        for message in messages:
            try:
                decoded.append(_Decoded(message, rows_of(message.data)))
            except Poison as poison:
                await self._give_back(message, poison.reason)
        return decoded

    async def _hand_back(self, fetching: asyncio.Task[list[_Decoded]]) -> None:
        """Stopping unstored: a batch fetched meanwhile goes back for redelivery at once."""
        try:
            batch = await fetching
        except _Stopping:
            return
        for item in batch:
            await self._ignoring_nats_errors(item.message.nak())

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

    async def _store_and_ack(self, batch: list[_Decoded]) -> None:
        """Store the batch and acknowledge it. When PostgreSQL refuses it, halve it until the
        refused messages are found; store and acknowledge the others."""
        rows = [row for item in batch for row in item.rows]
        try:
            if rows:
                stored = await self._retrying(
                    f"storing {len(rows)} events",
                    lambda: self._store.store(rows),
                    messages=[item.message for item in batch],
                )
                logger.debug("stored %d new of %d events", stored, len(rows))
        except REFUSALS as refusal:
            if len(batch) == 1:
                await self._give_back(batch[0].message, f"PostgreSQL refused it: {refusal.message}")
                return
            half = len(batch) // 2
            await self._store_and_ack(batch[:half])
            await self._store_and_ack(batch[half:])
            return
        for item in batch:
            await self._acknowledge(item.message)

    async def _give_back(self, message: Msg, reason: str) -> None:
        """Have a message that cannot be stored delivered again later, or, after its last
        allowed delivery, moved to the dead letters."""
        deliveries = message.metadata.num_delivered
        sequence = message.metadata.sequence.stream
        if deliveries < self._max_deliveries:
            logger.warning(
                "message %s cannot be stored (delivery %d of %d): %s",
                sequence,
                deliveries,
                self._max_deliveries,
                reason,
            )
            await self._ignoring_nats_errors(message.nak(delay=REDELIVERY_DELAY_SECONDS))
            return
        await self._retrying(
            "adding a dead letter", lambda: self._dead_letters.add(message, reason)
        )
        logger.error(
            "message %s moved to the dead letters after %d deliveries: %s",
            sequence,
            deliveries,
            reason,
        )
        await self._acknowledge(message)

    async def _acknowledge(self, message: Msg) -> None:
        # A lost ack means a redelivery, which the idempotent store absorbs.
        await self._ignoring_nats_errors(message.ack())

    async def _retrying(
        self,
        what: str,
        attempt: Callable[[], Awaitable[T]],
        messages: Sequence[Msg] = (),
    ) -> T:
        """Run `attempt` until it succeeds, retrying failures a retry can outlive; raises
        _Stopping if asked to stop meanwhile, and lets every other error through."""
        backoff = Backoff(maximum=10.0)
        while True:
            try:
                return await attempt()
            except (*REFUSALS, *_FATAL):
                raise
            except _RETRYABLE as error:
                await self._pause(backoff, f"{what} failed ({type(error).__name__}: {error})")
                for message in messages:  # still working on them: do not redeliver yet
                    await self._ignoring_nats_errors(message.in_progress())

    async def _pause(self, backoff: Backoff, problem: str) -> None:
        if self._stopping.is_set():
            raise _Stopping
        delay = backoff.next_delay()
        logger.warning("%s; retrying in %.1fs", problem, delay)
        try:
            await asyncio.wait_for(self._stopping.wait(), delay)
        except TimeoutError:
            return
        raise _Stopping

    @staticmethod
    async def _ignoring_nats_errors(operation: Awaitable[None]) -> None:
        try:
            await operation
        except nats.errors.Error as error:
            logger.debug("NATS: %r", error)
