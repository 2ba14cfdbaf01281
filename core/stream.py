"""The JetStream stream that carries events from the ingest servers to the writer: its
configuration, its limits, and the codec of its messages, in one place for both ends.

Each message is one serialized `analytics.internal.v1.EventBatch` of at most MAX_MESSAGE_EVENTS
events (and each one's context: its request's id and, for events browsers sent, what the
ingest server derived from their requests), of
any sites, on one subject, `<prefix>.all`: events of different sites share messages,
so the JetStream round trips of an ingest server do not multiply with the sites it serves. The
stream takes every subject under the prefix, so messages that earlier versions put on a subject
per site (`<prefix>.<site token>`) are still consumed, and a dead letter replays to the subject
it came from. The stream keeps a message until the writer acknowledges it (work-queue
retention), on file storage, and drops a resend of the same `Nats-Msg-Id` within its duplicate
window. The counts of events the ingest servers dropped travel on the same stream as a message
kind of their own (`FilteredTraffic`, on `<prefix>.filtered.counts`; a subject of two tokens,
which no per-site subject of earlier versions could be).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import nats.errors
from analytics.internal.v1.stream_pb2 import EventBatch, EventContext, FilteredTraffic
from analytics.v1.event_pb2 import Event
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RePublish, RetentionPolicy, StorageType, StreamConfig
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
    def filtered_subject(self) -> str:
        """The subject of the FilteredTraffic messages."""
        return f"{self.subject_prefix}.filtered.counts"

    @property
    def subjects(self) -> str:
        """The wildcard the stream and the writer take: every subject under the prefix."""
        return f"{self.subject_prefix}.>"

    @property
    def live_subjects(self) -> str:
        """Where JetStream republishes each message it stores, for live reports: a plain
        subscription there sees every accepted event once, as it is stored. (A work-queue
        stream takes no second consumer; republishing costs the stream nothing, and a
        subscriber too slow is cut off by NATS, never slowing ingestion.)"""
        return f"{self.subject_prefix}-live.>"

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
            republish=RePublish(src=self.subjects, dest=self.live_subjects),
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


@dataclass(frozen=True)
class ArchiveStream:
    """A copy of every message the event stream stores, kept for `max_age` seconds whether the
    writer acknowledged it or not (the work-queue stream forgets it then), so that events can
    be stored again from it (`analytics-replay consume`). It takes the event stream's live
    subjects: what JetStream republishes there, once per stored message, in order."""

    name: str
    subjects: str
    max_age: float
    replicas: int = 1

    @classmethod
    def from_settings(cls, settings: Settings) -> ArchiveStream:
        return cls(
            f"{settings.stream_name}_ARCHIVE",
            EventStream.from_settings(settings).live_subjects,
            max_age=settings.stream_archive_days * 86_400.0,
            replicas=settings.stream_replicas,
        )

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=[self.subjects],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            discard=DiscardPolicy.OLD,
            max_age=self.max_age,
            max_msg_size=MAX_STREAM_MESSAGE_BYTES,
            num_replicas=self.replicas,
        )


async def ensure_stream(
    js: JetStreamContext, stream: EventStream | DeadLetterStream | ArchiveStream
) -> None:
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
        retryable=jetstream_not_ready,
        logger=logger,
    )
    logger.debug("stream %s ready on %s", config.name, config.subjects)


def jetstream_not_ready(error: BaseException) -> bool:
    """Worth waiting for: NATS unreachable or slow, or a cluster short of servers. A request
    JetStream refuses otherwise means our configuration is wrong."""
    if isinstance(error, BadRequestError):
        return error.err_code == NO_PEERS_FOR_PLACEMENT
    return isinstance(error, nats.errors.Error | TimeoutError)


# The codec. Writing: the bytes of EventBatch{events, received_at, contexts} are joined from
# each event's own serialization; building an EventBatch would copy every event into it first,
# twice the cost.


def encode_messages(
    events: Sequence[Event],
    received_at: datetime,
    contexts: Sequence[bytes | None] | None = None,
) -> list[tuple[bytes, str]]:
    """The NATS messages that carry `events`, as (payload, Nats-Msg-Id): one serialized
    EventBatch, or several where one would exceed MAX_MESSAGE_BYTES. `contexts`, when given,
    is parallel to `events`: each a serialized EventContext (None or empty: the empty
    context); every message then carries one context per event, unless all are empty."""
    stamp = EventBatch()
    stamp.received_at.FromDatetime(received_at)
    received_at_field = stamp.SerializeToString()
    if contexts is not None and not any(contexts):
        contexts = None
    parts: list[tuple[bytes, str]] = []
    fields: list[bytes] = []  # each event's field header, then its bytes (then its context's)
    size = first = 0
    headers = _EVENTS_FIELD_HEADERS
    for index, event in enumerate(events):
        data = event.SerializeToString()
        header = headers[len(data)] if len(data) < len(headers) else _events_field_header(len(data))
        if contexts is not None:
            context_data = contexts[index] or b""
            length, tags = len(context_data), _CONTEXTS_FIELD_HEADERS
            data += tags[length] if length < len(tags) else _field_header(_CONTEXTS_TAG, length)
            data += context_data
        if fields and size + len(header) + len(data) > MAX_MESSAGE_BYTES:
            parts.append((b"".join(fields) + received_at_field, message_id(events[first:index])))
            fields, size, first = [], 0, index
        fields += (header, data)
        size += len(header) + len(data)
    parts.append((b"".join(fields) + received_at_field, message_id(events[first:])))
    return parts


def request_context(request_id: str) -> bytes:
    """A serialized EventContext holding only the request's id, made once per request. What
    is derived of an event from a browser's request is joined after it: protobuf merges
    concatenated serializations of a message."""
    data = request_id.encode()
    return _field_header(_REQUEST_ID_TAG, len(data)) + data if data else b""


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


def _events_field_header(size: int) -> bytes:
    """The start of one element of EventBatch.events on the wire: tag (field 1,
    length-delimited), then the length."""
    return _field_header(_EVENTS_TAG, size)


_EVENTS_TAG = 0x0A  # field 1, length-delimited
_CONTEXTS_TAG = 0x1A  # field 3, length-delimited
_REQUEST_ID_TAG = 0x0A  # EventContext.request_id: field 1, length-delimited


def _field_header(tag: int, size: int) -> bytes:
    header = bytearray((tag,))
    while size > 0x7F:
        header.append(size & 0x7F | 0x80)
        size >>= 7
    header.append(size)
    return bytes(header)


_EVENTS_FIELD_HEADERS = tuple(_events_field_header(size) for size in range(4096))
# A context is at most a few hundred bytes.
_CONTEXTS_FIELD_HEADERS = tuple(_field_header(_CONTEXTS_TAG, size) for size in range(1024))


class UndecodableMessage(Exception):
    """A message on the stream that is not an EventBatch the writer can read, and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DecodedMessage:
    events: Sequence[Event]
    received_at: Timestamp
    # Parallel to events, or empty: every event's context is the empty one.
    contexts: Sequence[EventContext] = ()

    @property
    def request_ids(self) -> list[str]:
        """The request id of each event, parallel to `events` ("" where none is told)."""
        if not self.contexts:
            return [""] * len(self.events)
        return [context.request_id for context in self.contexts]


def decode_message(data: bytes) -> DecodedMessage:
    """The events of one message, their contexts and when they were received;
    UndecodableMessage if the bytes are not an EventBatch with a receive time and a context
    for every event or none."""
    try:
        batch = EventBatch.FromString(data)
    except DecodeError as error:
        raise UndecodableMessage(f"not an {EventBatch.DESCRIPTOR.full_name}: {error}") from None
    if not batch.HasField("received_at"):
        raise UndecodableMessage("received_at is not set")
    if batch.contexts and len(batch.contexts) != len(batch.events):
        raise UndecodableMessage(
            f"{len(batch.contexts)} contexts for {len(batch.events)} events: one each, or none"
        )
    return DecodedMessage(batch.events, batch.received_at, batch.contexts)


def encode_batch(
    events: Sequence[Event],
    received_at: datetime,
    contexts: Sequence[EventContext] = (),
) -> bytes:
    """One message's bytes, built the plain way: for the dead letters of single events and for
    tests, where the cost of copying does not matter."""
    batch = EventBatch(events=events, contexts=contexts)
    batch.received_at.FromDatetime(received_at)
    return batch.SerializeToString()


def encode_filtered(window: FilteredTraffic) -> tuple[bytes, str]:
    """A FilteredTraffic message, as (payload, Nats-Msg-Id): a resend of the same window
    within the duplicate window is dropped by JetStream, any other by the writer."""
    return window.SerializeToString(), f"filtered-{window.window_id}"


def decode_filtered(data: bytes) -> FilteredTraffic:
    """UndecodableMessage if the bytes are not a FilteredTraffic with a window id."""
    try:
        window = FilteredTraffic.FromString(data)
    except DecodeError as error:
        name = FilteredTraffic.DESCRIPTOR.full_name
        raise UndecodableMessage(f"not an {name}: {error}") from None
    if not window.window_id:
        raise UndecodableMessage("window_id is not set")
    return window
