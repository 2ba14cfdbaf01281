"""The ingest service's own metrics: what became of the events each door received, and how the
publisher's messages went (events per message, seconds until JetStream's PubAck)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from core.errors import ServiceError
from core.stream import MAX_MESSAGE_EVENTS
from runtime.metrics import BatchedCounter

EVENTS = Counter(
    "analytics_ingest_events",
    "Events received, by door (http, grpc) and outcome: accepted (stored in the stream), "
    "invalid (refused, naming the field), or refused for the stream's state (unavailable, "
    "resource_exhausted)",
    ["door", "outcome"],
)
MESSAGE_EVENTS = Histogram(
    "analytics_ingest_message_events",
    "Events per message published to the stream (group commit: fuller when busier)",
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 300, 400, MAX_MESSAGE_EVENTS),
)
PUBLISH_SECONDS = Histogram(
    "analytics_ingest_publish_seconds",
    "Seconds from sending a message to the stream to its PubAck, for messages stored",
    buckets=(0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0),
)


class _Uncounted:
    """A counter that counts nothing: what a door counts with when metrics are off."""

    def inc(self, amount: float = 1) -> None:
        pass


class EventCounts:
    """The event counters of one door, labelled once, counted in memory (runtime.metrics)."""

    def __init__(self, door: str | None) -> None:
        """`door`: its label; None: count nothing (METRICS=0)."""
        self.accepted: BatchedCounter | _Uncounted
        self.invalid: BatchedCounter | _Uncounted
        self._other: BatchedCounter | _Uncounted
        self._refused: dict[str, BatchedCounter | _Uncounted] = {}
        if door is None:
            self.accepted = self.invalid = self._other = _Uncounted()
            return
        self.accepted = BatchedCounter(EVENTS.labels(door, "accepted"))
        self.invalid = BatchedCounter(EVENTS.labels(door, "invalid"))
        self._other = BatchedCounter(EVENTS.labels(door, "internal"))
        self._refused = {
            code: BatchedCounter(EVENTS.labels(door, code))
            for code in ("unavailable", "resource_exhausted")
        }

    def refused(self, error: ServiceError, events: int) -> None:
        """`events` valid events not stored because publishing them failed with `error`."""
        self._refused.get(error.code, self._other).inc(events)
