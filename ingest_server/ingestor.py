"""Ingestion as both doors see it: validate, publish, tell the caller what became of each event.

The gRPC servicer and the HTTP shim call these methods and nothing else; they only translate
their wire formats to `Event`s and the results back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from analytics.v1.event_pb2 import Event

from ingest_server.publisher import EventPublisher
from ingest_server.validation import batch_size_violations, validate_event
from stack.errors import FieldViolation, InvalidArgument


@dataclass(slots=True)
class Outcome:
    """What became of one event of a batch: accepted with its id, or rejected with reasons.

    Not frozen: one is made per event, and a frozen dataclass cost two and a half times as much.
    """

    index: int
    event_id: str = ""
    violations: tuple[FieldViolation, ...] = ()

    @property
    def accepted(self) -> bool:
        return not self.violations


def count_accepted(outcomes: Iterable[Outcome]) -> int:
    return sum(outcome.accepted for outcome in outcomes)


def _now() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    def __init__(self, publisher: EventPublisher, clock: Callable[[], datetime] = _now) -> None:
        self._publisher = publisher
        self._clock = clock

    async def ingest(self, event: Event) -> str:
        """Store one event; its event_id once it is durable. Raises InvalidArgument."""
        received_at = self._clock()
        valid = validate_event(event, received_at)
        await self._publisher.publish([valid], received_at)
        return valid.event_id

    async def ingest_batch(
        self, items: Sequence[Event | InvalidArgument], first_index: int = 0
    ) -> list[Outcome]:
        """Store the valid events of a batch and report on each item, in order.

        An item may arrive already refused (an InvalidArgument from the caller's decoding, such
        as a JSON value of the wrong type); it is reported as rejected with the others.
        Raises InvalidArgument only when the batch itself is too large.
        """
        if violations := batch_size_violations(len(items)):
            raise InvalidArgument(violations)
        received_at = self._clock()
        outcomes: list[Outcome] = []
        accepted: list[Event] = []
        for index, item in enumerate(items, start=first_index):
            try:
                if isinstance(item, InvalidArgument):
                    raise item
                event = validate_event(item, received_at)
            except InvalidArgument as error:
                outcomes.append(Outcome(index, violations=error.violations))
            else:
                accepted.append(event)
                outcomes.append(Outcome(index, event_id=event.event_id))
        if accepted:
            await self._publisher.publish(accepted, received_at)
        return outcomes
