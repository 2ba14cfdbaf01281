"""The dead-letter stream: messages the writer gave up on, each with the reason, until an
operator replays them (after fixing the cause) or drops them.

A dead letter is the original message, byte for byte, published to the dead-letter subject with
headers saying where it came from and why it could not be stored.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from core.stream import DeadLetterStream, ensure_stream

REASON = "Analytics-Reason"
ORIGINAL_SUBJECT = "Analytics-Original-Subject"
ORIGINAL_SEQUENCE = "Analytics-Original-Sequence"
DELIVERIES = "Analytics-Deliveries"
MAX_REASON_CHARACTERS = 1000


@dataclass(frozen=True)
class DeadLetter:
    sequence: int  # in the dead-letter stream
    dead_at: datetime
    original_subject: str
    original_sequence: int
    deliveries: int
    reason: str
    data: bytes


class DeadLetters:
    def __init__(self, js: JetStreamContext, stream: DeadLetterStream) -> None:
        self._js = js
        self._stream = stream

    async def ensure_stream(self) -> None:
        await ensure_stream(self._js, self._stream)

    async def add(self, message: Msg, reason: str) -> None:
        """Keep `message` with `reason`; returns once stored. Adding the same message twice
        (a crash between adding and acknowledging it) keeps it once."""
        metadata = message.metadata
        flat_reason = " ".join(reason.split())[:MAX_REASON_CHARACTERS]
        await self._js.publish(
            self._stream.subject,
            message.data,
            stream=self._stream.name,
            headers={
                REASON: flat_reason,
                ORIGINAL_SUBJECT: message.subject,
                ORIGINAL_SEQUENCE: str(metadata.sequence.stream),
                DELIVERIES: str(metadata.num_delivered),
                "Nats-Msg-Id": f"{metadata.stream}:{metadata.sequence.stream}",
            },
        )

    async def all(self) -> AsyncIterator[DeadLetter]:
        """Every dead letter, oldest first (none if the dead-letter stream does not exist)."""
        sequence = 1
        while True:
            try:
                raw = await self._js.get_msg(
                    self._stream.name, sequence, subject=self._stream.subject, next=True
                )
            except NotFoundError:
                return
            assert raw.seq is not None
            assert raw.time is not None
            headers = raw.headers or {}
            yield DeadLetter(
                sequence=raw.seq,
                dead_at=raw.time,
                original_subject=headers.get(ORIGINAL_SUBJECT, ""),
                original_sequence=int(headers.get(ORIGINAL_SEQUENCE, 0)),
                deliveries=int(headers.get(DELIVERIES, 0)),
                reason=headers.get(REASON, ""),
                data=raw.data or b"",
            )
            sequence = raw.seq + 1

    async def replay(self, letter: DeadLetter) -> None:
        """Put the message back on its original subject for the writer, and drop the letter.
        Events it holds that were stored meanwhile are not counted again."""
        await self._js.publish(letter.original_subject, letter.data)
        await self.drop(letter)

    async def drop(self, letter: DeadLetter) -> None:
        with contextlib.suppress(NotFoundError):  # already dropped
            await self._js.delete_msg(self._stream.name, letter.sequence)
