"""The dead-letter stream: what the writer gave up on, each with the reason, until an operator
replays it (after fixing the cause) or drops it.

A dead letter is either a whole message that cannot be read, byte for byte, or one event that
cannot be stored, as a message of its own (the others of its message are stored), published to
the dead-letter subject with headers saying where it came from and why.
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
# The event's position in its original message, for the letter of one event.
ORIGINAL_POSITION = "Analytics-Original-Position"
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
    # The event's position in the original message, for a letter of one event; None for a
    # letter of a whole message.
    original_position: int | None = None


class DeadLetters:
    def __init__(self, js: JetStreamContext, stream: DeadLetterStream) -> None:
        self._js = js
        self._stream = stream

    async def ensure_stream(self) -> None:
        await ensure_stream(self._js, self._stream)

    async def add(self, message: Msg, reason: str) -> None:
        """Keep `message` whole with `reason`; returns once stored. Adding the same message
        twice (a crash between adding and acknowledging it) keeps it once."""
        metadata = message.metadata
        await self._publish(
            message.data, message, reason, f"{metadata.stream}:{metadata.sequence.stream}"
        )

    async def add_event(self, message: Msg, position: int, data: bytes, reason: str) -> None:
        """Keep one event of `message` (the message of that event alone, `data`) with
        `reason`; returns once stored. Adding it twice keeps it once, likewise."""
        metadata = message.metadata
        await self._publish(
            data,
            message,
            reason,
            f"{metadata.stream}:{metadata.sequence.stream}:{position}",
            {ORIGINAL_POSITION: str(position)},
        )

    async def _publish(
        self,
        data: bytes,
        message: Msg,
        reason: str,
        letter_id: str,
        more_headers: dict[str, str] | None = None,
    ) -> None:
        metadata = message.metadata
        await self._js.publish(
            self._stream.subject,
            data,
            stream=self._stream.name,
            headers={
                REASON: " ".join(reason.split())[:MAX_REASON_CHARACTERS],
                ORIGINAL_SUBJECT: message.subject,
                ORIGINAL_SEQUENCE: str(metadata.sequence.stream),
                DELIVERIES: str(metadata.num_delivered),
                "Nats-Msg-Id": letter_id,
                **(more_headers or {}),
            },
        )

    async def all(self) -> AsyncIterator[DeadLetter]:
        """Every dead letter there is when the iteration starts, oldest first (none if the
        dead-letter stream does not exist), read one at a time: however many there are, one
        is in memory. Letters added meanwhile (a replayed letter that failed again) are not
        reached, so replaying them all ends."""
        try:
            last = (await self._js.stream_info(self._stream.name)).state.last_seq
        except NotFoundError:
            return
        sequence = 1
        while (letter := await self._get(sequence, following=True)) is not None:
            if letter.sequence > last:
                return
            yield letter
            sequence = letter.sequence + 1

    async def get(self, sequence: int) -> DeadLetter | None:
        """The dead letter of that sequence, or None if there is none."""
        return await self._get(sequence, following=False)

    async def _get(self, sequence: int, *, following: bool) -> DeadLetter | None:
        """The letter at `sequence`, or with `following` the first at or after it."""
        try:
            if following:
                raw = await self._js.get_msg(
                    self._stream.name, sequence, subject=self._stream.subject, next=True
                )
            else:  # with a subject and no `next`, nats-py would ask for the subject's last
                raw = await self._js.get_msg(self._stream.name, sequence)
        except NotFoundError:
            return None
        assert raw.seq is not None
        assert raw.time is not None
        headers = raw.headers or {}
        position = headers.get(ORIGINAL_POSITION)
        return DeadLetter(
            sequence=raw.seq,
            dead_at=raw.time,
            original_subject=headers.get(ORIGINAL_SUBJECT, ""),
            original_sequence=int(headers.get(ORIGINAL_SEQUENCE, 0)),
            deliveries=int(headers.get(DELIVERIES, 0)),
            reason=headers.get(REASON, ""),
            data=raw.data or b"",
            original_position=None if position is None else int(position),
        )

    async def replay(self, letter: DeadLetter) -> None:
        """Put the message back on its original subject for the writer, and drop the letter.
        Events it holds that were stored meanwhile are not counted again."""
        await self._js.publish(letter.original_subject, letter.data)
        await self.drop(letter)

    async def drop(self, letter: DeadLetter) -> None:
        with contextlib.suppress(NotFoundError):  # already dropped
            await self._js.delete_msg(self._stream.name, letter.sequence)
