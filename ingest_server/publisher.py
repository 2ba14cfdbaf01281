"""Puts validated events on the events stream and waits until JetStream has stored them."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Sequence
from datetime import datetime

import nats.errors
from analytics.v1.event_pb2 import Event, EventBatch
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from stack.errors import ResourceExhausted, ServiceError, Unavailable
from stack.stream import EventStream

# JetStream's error code when a stream with discard-new is at one of its limits.
STREAM_LIMIT_REACHED = 10077

logger = logging.getLogger(__name__)


class EventPublisher:
    def __init__(self, nc: NATS, stream: EventStream, timeout: float) -> None:
        self._acks = _AckedPublisher(nc, stream.name)
        self._stream = stream
        self._timeout = timeout

    async def start(self) -> None:
        await self._acks.start()

    async def publish(self, events: Sequence[Event], received_at: datetime) -> None:
        """Return once every event is stored in the stream (its PubAck arrived).

        Each event travels as its own message with `Nats-Msg-Id` set to its event_id, so
        JetStream drops a resend within its duplicate window; the writer's idempotent insert
        absorbs any later one. Raises Unavailable when NATS is unreachable or JetStream does
        not confirm in time, ResourceExhausted when the stream is full; either way some of the
        events may be stored, and a retry with the same event_ids is safe.
        """
        acks: list[asyncio.Future[None]] = []
        try:
            async with asyncio.timeout(self._timeout):
                for event in events:
                    ack = await self._acks.publish(
                        self._stream.subject_for(event.site_id),
                        _message(event, received_at),
                        msg_id=event.event_id,
                    )
                    acks.append(ack)
                await asyncio.gather(*acks)
        except TimeoutError:
            raise Unavailable("the event stream did not confirm the events in time") from None
        finally:
            for ack in acks:
                ack.cancel()


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
        error = _pub_ack_error(msg)
        if error is None:
            future.set_result(None)
        else:
            future.set_exception(error)


def _pub_ack_error(msg: Msg) -> ServiceError | None:
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
    logger.warning("JetStream refused a message: %s", problem)
    if problem.get("err_code") == STREAM_LIMIT_REACHED:
        return ResourceExhausted("the event stream is full; retry later")
    return Unavailable(f"the event stream refused the events: {problem.get('description')}")


def _message(event: Event, received_at: datetime) -> bytes:
    batch = EventBatch(events=[event])
    batch.received_at.FromDatetime(received_at)
    return batch.SerializeToString()
