"""The JetStream stream that carries events from the ingest servers to the writer.

Each message is one serialized `analytics.v1.EventBatch` of at most MAX_MESSAGE_EVENTS events,
of any sites, on one subject, `<prefix>.all`: events of different sites share messages, so the
JetStream round trips of an ingest server do not multiply with the sites it serves. The stream
takes every subject under the prefix, so messages that earlier versions put on a subject per
site (`<prefix>.<site token>`) are still consumed, and a dead letter replays to the subject it
came from. The stream keeps a message until the writer acknowledges it (work-queue retention),
on file storage, and drops a resend of the same `Nats-Msg-Id` within its duplicate window.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import nats.errors
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError

from stack.backoff import Backoff
from stack.config import Settings

STREAM_NAME_IN_USE = 10058
# "No suitable peers for placement": a cluster that has fewer servers up than the replicas
# asked for, as while it starts or restarts. Waiting helps.
NO_PEERS_FOR_PLACEMENT = 10005
MAX_MESSAGE_EVENTS = 500
# The largest message the event stream takes, headers included: NATS's default max_payload
# (1 MiB) less room for the headers a dead letter adds to the same bytes (a reason of at most
# 1000 characters, the original subject, which NATS keeps under 4 KiB, and three short ones).
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
    """Messages the writer could not store, kept with the reason until replayed or dropped."""

    name: str
    subject: str

    @classmethod
    def from_settings(cls, settings: Settings) -> DeadLetterStream:
        return cls(settings.dead_letter_stream, settings.dead_letter_subject)

    def config(self) -> StreamConfig:
        return StreamConfig(
            name=self.name,
            subjects=[self.subject],
            retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )


async def ensure_stream(js: JetStreamContext, stream: EventStream | DeadLetterStream) -> None:
    """Create the stream, or bring an existing one to our configuration; safe to race. While
    JetStream is not ready (a cluster electing its leader, say) it waits, saying so."""
    config = stream.config()
    backoff = Backoff(maximum=5.0)
    while True:
        try:
            try:
                await js.add_stream(config)
            except BadRequestError as error:
                if error.err_code != STREAM_NAME_IN_USE:
                    raise
                await js.update_stream(config)
        except BadRequestError as error:
            if error.err_code != NO_PEERS_FOR_PLACEMENT:
                raise  # our configuration is wrong: waiting will not help
            problem = error.description
        except (nats.errors.Error, TimeoutError) as error:
            problem = repr(error)
        else:
            break
        delay = backoff.next_delay()
        logger.warning(
            "JetStream cannot set up stream %s yet (%s); retrying in %.1fs",
            config.name,
            problem,
            delay,
        )
        await asyncio.sleep(delay)
    logger.debug("stream %s ready on %s", config.name, config.subjects)
