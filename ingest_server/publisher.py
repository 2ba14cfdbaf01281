"""Puts validated events on the events stream and waits until JetStream has stored them.

Group commit: events that arrive while a message awaits its PubAck share the next message,
whatever their sites, so one JetStream round trip stores many events; when no message is
awaiting its PubAck, events go at once (no linger).
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import json
import logging
from collections import deque
from collections.abc import Sequence
from datetime import datetime

import nats.errors
from analytics.v1.event_pb2 import Event
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from core.errors import ResourceExhausted, ServiceError, Unavailable
from core.request_ids import REQUEST_ID
from core.stream import MAX_MESSAGE_EVENTS, EventStream, encode_messages, request_context
from core.throttled_log import ThrottledLog
from ingest_server.metrics import MESSAGE_EVENTS, PUBLISH_SECONDS
from runtime.metrics import BatchedHistogram

# JetStream's error code when a stream with discard-new is at one of its limits.
STREAM_LIMIT_REACHED = 10077

logger = logging.getLogger(__name__)
# Seconds between log lines about refused messages: a full stream refuses every message until
# the writer catches up, and one line says so, not one per message.
REFUSAL_LOG_SECONDS = 10.0


class EventPublisher:
    def __init__(
        self, nc: NATS, stream: EventStream, timeout: float, *, measured: bool = False
    ) -> None:
        """`measured`: observe each stored message's events and PubAck wait (metrics)."""
        self._measures = (
            (BatchedHistogram(MESSAGE_EVENTS), BatchedHistogram(PUBLISH_SECONDS))
            if measured
            else None
        )
        self._acks = _AckedPublisher(nc, stream.name)
        self._subject = stream.subject
        self._timeout = timeout
        self._open: _Message | None = None  # the message new events join
        self._full: deque[_Message] = deque()  # full messages not yet sent
        self._sending: set[asyncio.Task[None]] = set()  # messages awaiting their PubAck
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()  # made in the loop it publishes from

    async def start(self) -> None:
        await self._acks.start()

    async def publish(
        self,
        events: Sequence[Event],
        received_at: datetime,
        contexts: Sequence[bytes | None] | None = None,
    ) -> None:
        """Return once every event is stored in the stream (its message's PubAck arrived).
        `contexts`, parallel to `events`, travel with them (serialized EventContexts, see
        core.stream).

        A message holding one event carries that event's id as `Nats-Msg-Id` (prefixed), a
        message of several a digest of their ids, so JetStream drops a resend of the same
        message within its duplicate window; the writer's idempotent insert absorbs every other
        resend.
        Raises Unavailable when NATS is unreachable or JetStream does not confirm within the
        timeout, ResourceExhausted when the stream is full; either way some of the events may
        be stored, and a retry with the same event_ids is safe.
        """
        if not events:
            return
        if not self._acks.is_connected:
            raise Unavailable("the event stream is unreachable")
        caller = _Caller(self._loop.create_future())
        # Each event travels with the id of the request that brought it (the caller's).
        request = request_context(REQUEST_ID.get())
        if request:
            if contexts is None:
                contexts = [request] * len(events)
            else:
                contexts = [request + (context or b"") for context in contexts]
        taken = 0
        while taken < len(events):
            message = self._open
            if message is None or message.answered:  # answered: expired before it was sent
                deadline = self._loop.time() + self._timeout
                message = self._open = _Message(received_at, self._loop, deadline)
            message.received_at = max(message.received_at, received_at)
            room = MAX_MESSAGE_EVENTS - len(message.events)
            message.add(events[taken : taken + room], contexts, taken)
            message.callers.append(caller)
            caller.messages += 1
            taken += room
            if len(message.events) >= MAX_MESSAGE_EVENTS:
                self._full.append(message)
                self._open = None
        self._schedule_flush()
        # The caller's own future: giving up (a cancelled call) leaves the messages alone, and
        # every message is answered by its deadline, so no timer per caller is needed.
        await caller.stored

    async def flush(self) -> None:
        """Wait until every event handed to `publish` so far has been answered by JetStream."""
        while self._open is not None or self._full or self._sending:
            if self._sending:
                await asyncio.wait(self._sending)
            else:
                await asyncio.sleep(0)

    def _schedule_flush(self) -> None:
        """Send at the end of this turn of the event loop, so that every caller of this turn
        joins the same messages."""
        if not self._flush_scheduled and (self._full or not self._sending):
            self._flush_scheduled = True
            # In a context of no request: the messages it sends carry events of many.
            self._loop.call_soon(self._flush, context=contextvars.Context())

    def _flush(self) -> None:
        """Send the full messages, and the open one unless some message is still awaiting its
        PubAck: then the open one goes when they are all answered, holding the events that
        came meanwhile. A full message gains nothing by waiting."""
        self._flush_scheduled = False
        while self._full:
            self._start(self._full.popleft())
        if not self._sending and self._open is not None:
            message, self._open = self._open, None
            self._start(message)

    def _start(self, message: _Message) -> None:
        if message.answered:
            return  # its deadline passed while it waited: not sent
        task = asyncio.create_task(self._send(message))
        self._sending.add(task)
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        # A done callback, not a `finally`: a task cancelled before it ran is forgotten too.
        self._sending.discard(task)
        if not self._sending and self._open is not None:
            self._schedule_flush()

    async def _send(self, message: _Message) -> None:
        """Publish the message, wait for its PubAcks until its deadline, answer its callers.
        The wait is bounded by `asyncio.wait`, not by cancellation: nats-py's publish swallows
        a cancellation that arrives while it flushes a full buffer."""
        acks: list[asyncio.Future[None]] = []
        started = self._loop.time()
        try:
            async with asyncio.timeout_at(message.deadline):
                for payload, msg_id in message.parts():
                    if message.answered:  # expired, the timeout swallowed by a part before
                        return
                    acks.append(await self._acks.publish(self._subject, payload, msg_id))
            remaining = message.deadline - self._loop.time()
            if acks and remaining > 0:
                await asyncio.wait(acks, timeout=remaining, return_when=asyncio.FIRST_EXCEPTION)
            done = [ack for ack in acks if ack.done()]
            refusal = next(filter(None, map(_refusal, done)), None)
            if refusal is not None or len(done) == len(acks):
                message.answer(refusal)  # otherwise the expiry answers the callers
                if refusal is None and self._measures is not None:
                    events, seconds = self._measures
                    events.observe(len(message.events))
                    seconds.observe(self._loop.time() - started)
        except ServiceError as refused:
            message.answer(refused)
        except TimeoutError:
            pass  # the expiry answers the callers
        finally:
            for ack in acks:
                ack.cancel()


class _Caller:
    """One call of `publish`: stored once every message holding its events is, failed with the
    first of their errors."""

    __slots__ = ("messages", "stored")

    def __init__(self, stored: asyncio.Future[None]) -> None:
        self.stored = stored
        self.messages = 0  # not yet answered

    def answer(self, error: ServiceError | None) -> None:
        if self.stored.done():  # failed by another message, or the caller gave up
            return
        if error is not None:
            self.stored.set_exception(error)
            return
        self.messages -= 1
        if not self.messages:
            self.stored.set_result(None)


class _Message:
    """Events travelling together, and the callers waiting for them, who are answered by the
    message's expiry (PUBLISH_TIMEOUT after it opened) whatever happens."""

    def __init__(
        self, received_at: datetime, loop: asyncio.AbstractEventLoop, deadline: float
    ) -> None:
        # The latest of its callers': never before an event the server stamped with its own.
        self.received_at = received_at
        self.deadline = deadline  # loop time
        self.events: list[Event] = []
        # Parallel to events once some event brought a context (None: the empty one).
        self.contexts: list[bytes | None] | None = None
        self.callers: list[_Caller] = []
        self.answered = False
        self.expiry = loop.call_at(deadline, self.expire)

    def add(
        self,
        events: Sequence[Event],
        contexts: Sequence[bytes | None] | None,
        start: int,
    ) -> None:
        """Add `events`, whose contexts are those of `contexts` from `start` on (if any)."""
        if contexts is not None and self.contexts is None:
            self.contexts = [None] * len(self.events)
        if self.contexts is not None:
            if contexts is None:
                self.contexts.extend([None] * len(events))
            else:
                self.contexts.extend(contexts[start : start + len(events)])
        self.events.extend(events)

    def parts(self) -> list[tuple[bytes, str]]:
        """The NATS messages that carry the events, as (payload, Nats-Msg-Id): one serialized
        EventBatch, or several where one would exceed MAX_MESSAGE_BYTES."""
        return encode_messages(self.events, self.received_at, self.contexts)

    def answer(self, error: ServiceError | None) -> None:
        if self.answered:
            return
        self.answered = True
        self.expiry.cancel()
        for caller in self.callers:
            caller.answer(error)

    def expire(self) -> None:
        self.answer(Unavailable("the event stream did not confirm the events in time"))


def _refusal(ack: asyncio.Future[None]) -> ServiceError | None:
    """What JetStream answered a message that it did not store (see _pub_ack_error)."""
    error = ack.exception()
    if error is None or isinstance(error, ServiceError):
        return error
    raise error


class _AckedPublisher:
    """Many messages in flight to one stream, each answered by its PubAck.

    nats-py's `publish_async` would do, but when JetStream answers with an error (a full
    stream, say) it leaves the future pending forever (nats-io/nats.py#985); this turns every
    answer into a result or one of our errors.
    """

    def __init__(self, nc: NATS, stream_name: str) -> None:
        self._nc = nc
        self._stream_name = stream_name
        self._inbox = ""
        self._tokens = itertools.count()
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._refusals = ThrottledLog(logger, logging.WARNING, REFUSAL_LOG_SECONDS)

    @property
    def is_connected(self) -> bool:
        return self._nc.is_connected

    async def start(self) -> None:
        self._inbox = self._nc.new_inbox() + "."
        await self._nc.subscribe(self._inbox + "*", cb=self._on_reply)

    async def publish(self, subject: str, payload: bytes, msg_id: str) -> asyncio.Future[None]:
        """Send one message; the returned future completes when JetStream has stored it."""
        if not self._nc.is_connected:
            raise Unavailable("the event stream is unreachable")
        token = str(next(self._tokens))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        future.add_done_callback(lambda _: self._pending.pop(token, None))
        try:
            await self._nc.publish(
                subject,
                payload,
                reply=self._inbox + token,
                headers={"Nats-Msg-Id": msg_id, "Nats-Expected-Stream": self._stream_name},
            )
        except nats.errors.Error as error:
            future.cancel()
            raise Unavailable("the event stream is unreachable") from error
        return future

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.get(msg.subject[len(self._inbox) :])
        if future is None or future.done():
            return  # we stopped waiting for it
        error = _pub_ack_error(msg, self._refusals)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _pub_ack_error(msg: Msg, log_refusal: ThrottledLog) -> ServiceError | None:
    """None for a PubAck, else the error a client should see."""
    if msg.headers and msg.headers.get("Status") == "503":
        return Unavailable("no stream is listening for events")
    try:
        answer = json.loads(msg.data)
    except ValueError:
        return Unavailable("the event stream sent an unreadable acknowledgement")
    problem = answer.get("error")
    if problem is None:
        return None
    log_refusal("JetStream refused a message: %s", problem)
    if problem.get("err_code") == STREAM_LIMIT_REACHED:
        return ResourceExhausted("the event stream is full; retry later")
    return Unavailable(f"the event stream refused the events: {problem.get('description')}")
