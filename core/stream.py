"""The JetStream stream that carries events from the ingest servers to the writer: its
configuration, its limits, and the codec of its messages, in one place for both ends.

Each message is one serialized `analytics.internal.v1.EventBatch` of at most MAX_MESSAGE_EVENTS
events, of any sites, on one subject, `<prefix>.all`: events of different sites share messages,
so the JetStream round trips of an ingest server do not multiply with the sites it serves. The
stream takes every subject under the prefix, so messages that earlier versions put on a subject
per site (`<prefix>.<site token>`) are still consumed, and a dead letter replays to the subject
it came from. The stream keeps a message until the writer acknowledges it (work-queue
retention), on file storage, and drops a resend of the same `Nats-Msg-Id` within its duplicate
window.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import nats.errors
from analytics.internal.v1.stream_pb2 import EventBatch, EventContext
from analytics.v1.event_pb2 import Event
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import BadRequestError

from core.retry import retrying
from core.settings import Settings

STREAM_NAME_IN_USE = 10058
# "No suitable peers for placement": a cluster that has fewer servers up than the replicas
# asked for, as while it starts or restarts. Waiting helps.
NO_PEERS_FOR_PLACEMENT = 10005
MAX_MESSAGE_EVENTS = 500
# A message closes at MAX_MESSAGE_EVENTS events; events that serialize to more than this many
# bytes go out in several messages, each filled up to it (an event alone is at most ~170 KB),
# so every NATS message stays well under MAX_STREAM_MESSAGE_BYTES.
MAX_MESSAGE_BYTES = 512 * 1024
# The largest message the event stream takes, headers included: NATS's default max_payload
# (1 MiB) less room for the headers a dead letter adds to the same bytes (a reason of at most
# 1000 characters, the original subject, which NATS keeps under 4 KiB, and four short ones).
# A message the stream took but could not move to the dead letters would stall the writer:
# NATS refuses the oversized publish by closing the connection.
MAX_STREAM_MESSAGE_BYTES = 1024 * 1024 - 16 * 1024
DUPLICATE_WINDOW_SECONDS = 120.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EventStream:
    name: str
    subject_prefix: str
    max_bytes: int = -1
    max_msgs: int = -1
    replicas: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> EventStream:
        return cls(
            settings.stream_name,
            settings.subject_prefix,
            max_bytes=settings.stream_max_bytes,
            max_msgs=settings.stream_max_msgs,
            replicas=settings.stream_replicas,
        )

    @property
    def subject(self) -> str:
        """The subject events are published on."""
        return f"{self.subject_prefix}.all"

    @property
    def subjects(self) -> str:
        """The wildcard the stream and the writer take: every subject under the prefix."""
        return f"{self.subject_prefix}.>"

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=[self.subjects],
            retention=RetentionPolicy.WORK_QUEUE,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_bytes=self.max_bytes,
            max_msgs=self.max_msgs,
            max_msg_size=MAX_STREAM_MESSAGE_BYTES,
            num_replicas=self.replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )


@dataclass(frozen=True)
class DeadLetterStream:
    """Messages and events the writer could not store, kept with the reason until replayed or
    dropped. Bounded like the event stream, and for the same reason it refuses rather than
    forgets: at a limit the writer keeps the letter's message unacknowledged (it is
    redelivered, so nothing is lost) and says so until an operator makes room."""

    name: str
    subject: str
    max_bytes: int = -1
    max_msgs: int = -1
    replicas: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadLetterStream:
        return cls(
            settings.dead_letter_stream,
            settings.dead_letter_subject,
            max_bytes=settings.dead_letter_max_bytes,
            max_msgs=settings.dead_letter_max_msgs,
            replicas=settings.stream_replicas,
        )

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.NEW,
            max_bytes=self.max_bytes,
            max_msgs=self.max_msgs,
            num_replicas=self.replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )


async def ensure_stream(js: JetStreamContext, stream: EventStream | DeadLetterStream) -> None:
    """Create the stream, or bring an existing one to our configuration; safe to race. While
    JetStream is not ready (a cluster electing its leader, say) it waits, saying so."""
    config = stream.config()

    async def create_or_update() -> None:
        try:
            await js.add_stream(config)
        except BadRequestError as error:
            if error.err_code != STREAM_NAME_IN_USE:
                raise
            await js.update_stream(config)

    await retrying(
        create_or_update,
        what=f"setting up JetStream stream {config.name}",
        retryable=_jetstream_not_ready,
        logger=logger,
    )
    logger.debug("stream %s ready on %s", config.name, config.subjects)


def _jetstream_not_ready(error: BaseException) -> bool:
    """Worth waiting for: NATS unreachable or slow, or a cluster short of servers. A request
    JetStream refuses otherwise means our configuration is wrong."""
    if isinstance(error, BadRequestError):
        return error.err_code == NO_PEERS_FOR_PLACEMENT
    return isinstance(error, nats.errors.Error | TimeoutError)


# The codec. Writing: the bytes of EventBatch{events, received_at, contexts} are joined from each
# event's own serialization and its request's context, serialized once per request; building an
# EventBatch would copy every event into it first, twice the cost.


def context_field(request_id: str) -> bytes:
    """One element of EventBatch.contexts on the wire, the context of every event of one
    request: made once per request, then joined to the message once per event."""
    data = request_id.encode()
    if not data:
        return NO_CONTEXT
    if len(data) < 126:  # each length fits in one byte: the bytes protobuf would write
        return b"\x1a%c\x0a%c%s" % (len(data) + 2, len(data), data)
    return _field(3, EventContext(request_id=request_id).SerializeToString())


def encode_messages(
    events: Sequence[Event], received_at: datetime, contexts: Sequence[bytes] | None = None
) -> list[tuple[bytes, str]]:
    """The NATS messages that carry `events`, as (payload, Nats-Msg-Id): one serialized
    EventBatch, or several where one would exceed MAX_MESSAGE_BYTES. `contexts`, parallel to
    `events`, are each one's `context_field`; a message whose contexts are all NO_CONTEXT
    carries none, as before contexts existed."""
    stamp = EventBatch()
    stamp.received_at.FromDatetime(received_at)
    received_at_field = stamp.SerializeToString()
    if contexts is not None and all(context is NO_CONTEXT for context in contexts):
        contexts = None
    parts: list[tuple[bytes, str]] = []
    fields: list[bytes] = []  # each event's field header, then its bytes
    size = first = 0
    headers = _EVENTS_FIELD_HEADERS
    for index, event in enumerate(events):
        data = event.SerializeToString()
        header = headers[len(data)] if len(data) < len(headers) else _events_field_header(len(data))
        grows = len(header) + len(data) + (len(contexts[index]) if contexts else 0)
        if fields and size + grows > MAX_MESSAGE_BYTES:
            chunk = contexts[first:index] if contexts is not None else None
            parts.append(_message(events[first:index], fields, chunk, received_at_field))
            fields, size, first = [], 0, index
        fields += (header, data)
        size += grows
    chunk = contexts[first:] if contexts is not None else None
    parts.append(_message(events[first:], fields, chunk, received_at_field))
    return parts


def _message(
    events: Sequence[Event], fields: list[bytes], contexts: Sequence[bytes] | None, stamp: bytes
) -> tuple[bytes, str]:
    """One message of `events`: their fields, their contexts after them (protobuf reads the
    fields of a message in any order), then the receive time."""
    if contexts is not None:
        fields.extend(contexts)
    return b"".join(fields) + stamp, message_id(events)


def message_id(events: Sequence[Event]) -> str:
    """The message's Nats-Msg-Id, by which JetStream drops a resend of the same message within
    its duplicate window. An event is identified by its site and its event_id (a site id holds
    no '/'), since two sites may use the same event_id. The two kinds of id have prefixes of
    their own, so that no event_id (a client's own text) can be the id of a message of other
    events: JetStream would drop that message as a duplicate, and its events would be
    acknowledged, not stored."""
    if len(events) == 1:
        return f"event-{events[0].site_id}/{events[0].event_id}"
    ids = "\n".join(f"{event.site_id}/{event.event_id}" for event in events)
    return "batch-" + hashlib.blake2b(ids.encode(), digest_size=16).hexdigest()


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited field on the wire: its tag, its length, its bytes."""
    return _length_prefix(bytes([number << 3 | 2]), len(data)) + data


def _events_field_header(size: int) -> bytes:
    """The start of one element of EventBatch.events on the wire: tag (field 1,
    length-delimited), then the length."""
    return _length_prefix(b"\x0a", size)


def _length_prefix(tag: bytes, size: int) -> bytes:
    header = bytearray(tag)
    while size > 0x7F:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header)


_EVENTS_FIELD_HEADERS = tuple(_events_field_header(size) for size in range(4096))
# The context of an event whose request told nothing: an empty EventContext.
NO_CONTEXT = b"\x1a\x00"


class UndecodableMessage(Exception):
    """A message on the stream that is not an EventBatch the writer can read, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedMessage:
    events: Sequence[Event]
    received_at: Timestamp
    # The request id of each event, parallel to `events` ("" where the message tells none).
    request_ids: Sequence[str]


def decode_message(data: bytes) -> DecodedMessage:
    """The events of one message and when they were received; UndecodableMessage if the
    bytes are not an EventBatch with a receive time."""
    try:
        batch = EventBatch.FromString(data)
    except DecodeError as error:
        raise UndecodableMessage(f"not an {EventBatch.DESCRIPTOR.full_name}: {error}") from None
    if not batch.HasField("received_at"):
        raise UndecodableMessage("received_at is not set")
    request_ids = [context.request_id for context in batch.contexts[: len(batch.events)]]
    request_ids += [""] * (len(batch.events) - len(request_ids))
    return DecodedMessage(batch.events, batch.received_at, request_ids)


def encode_batch(
    events: Sequence[Event], received_at: datetime, request_ids: Sequence[str] = ()
) -> bytes:
    """One message's bytes, built the plain way: for the dead letters of single events and for
    tests, where the cost of copying does not matter. `request_ids`, when given, parallel to
    `events`."""
    batch = EventBatch(events=events)
    batch.received_at.FromDatetime(received_at)
    if any(request_ids):
        batch.contexts.extend(EventContext(request_id=request_id) for request_id in request_ids)
    return batch.SerializeToString()
