"""The events a client holds, in the order they were tracked: those waiting to be sent and those
sent but not yet answered, at most `capacity` in all, so that an outage costs bounded memory.

Thread-safe: the sync client's callers put events from their threads while its sender thread
takes and settles them. Every event leaves in the order it came (sent, rejected or abandoned),
since batches are answered in order and a batch sent again goes before any later one; so one
count of events settled tells a flush whether everything it waits for has left.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from analytics_client._proto.event_pb2 import Event

# The most encoded event bytes in one request: gRPC's default limit on a received message is
# 4 MiB, which a server behind a proxy or of another build may keep.
MAX_REQUEST_BYTES = 4 * 1024 * 1024 - 64 * 1024


class ClientClosedError(RuntimeError):
    """The client was closed: it takes no more events."""


@dataclass(frozen=True)
class Stats:
    """What became of the events a client was given, counted since it was made (or since the
    process forked, in a child)."""

    # Held now: waiting to be sent, or sent and not yet answered.
    queued: int
    # Accepted by the server: durably stored, on their way to the database exactly once.
    sent: int
    # Refused by the server (invalid), and not sent again.
    rejected: int
    # Not taken by track() because the queue was full.
    dropped: int
    # Sent again after their stream failed before answering them (each resend counts).
    retried: int
    # Still unanswered when close() ran out of time: never sent, or sent with their fate
    # unknown.
    abandoned: int


@dataclass(eq=False, slots=True)
class Batch:
    """Events that go in one IngestBatchStream request, and stay together when sent again."""

    events: list[Event]
    sends: int = 0


def _nothing() -> None:
    pass


class EventQueue:
    def __init__(
        self, capacity: int, batch_size: int, max_request_bytes: int = MAX_REQUEST_BYTES
    ) -> None:
        self._capacity = capacity
        self._batch_size = batch_size
        self._max_request_bytes = max_request_bytes
        self._lock = threading.Lock()
        # Notified when events leave (room for blocked callers, progress for flushes).
        self._changed = threading.Condition(self._lock)
        # Waiting to be sent for the first time: (event, encoded size, monotonic time put).
        self._waiting: deque[tuple[Event, int, float]] = deque()
        self._waiting_bytes = 0
        self._resend: deque[Batch] = deque()  # sent, unanswered, to be sent again first
        self._held = 0
        self._tracked = 0  # events ever put
        self._taken = 0  # events ever taken out of _waiting into batches
        self._settled = 0  # events ever gone: sent, rejected or abandoned
        self._flush_through = 0  # send at once, without filling batches, until _taken is here
        self._closed = False
        self._sent = self._rejected = self._dropped = self._retried = self._abandoned = 0
        # Tells the sender a batch may have fallen due. Set by the sender when it starts.
        self.wake: Callable[[], None] = _nothing
        # Called after events leave, outside the lock (the async client wakes its waiters).
        self.on_change: Callable[[], None] = _nothing

    # The callers' side.

    def put(self, event: Event, size: int, *, count_drop: bool = True) -> bool:
        """Add the event unless the queue is full (then, with `count_drop`, count it dropped).
        Raises ClientClosedError once closed."""
        with self._lock:
            added, due = self._add(event, size)
            if not added and count_drop:
                self._dropped += 1
        if due:
            self.wake()
        return added

    def put_waiting(self, event: Event, size: int, timeout: float | None) -> bool:
        """Add the event, waiting up to `timeout` seconds (None: as long as it takes) for
        room; False, and counted dropped, if none came. Raises ClientClosedError once closed,
        also while waiting."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while True:
                added, due = self._add(event, size)
                if added:
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    self._dropped += 1
                    return False
                self._changed.wait(remaining)
        if due:
            self.wake()
        return True

    def count_dropped(self) -> None:
        with self._lock:
            self._dropped += 1

    def _add(self, event: Event, size: int) -> tuple[bool, bool]:
        """(added, a batch may have fallen due); the lock is held."""
        if self._closed:
            raise ClientClosedError("the client is closed; it takes no more events")
        if self._held >= self._capacity:
            return False, False
        waiting = self._waiting
        waiting.append((event, size, time.monotonic()))
        self._waiting_bytes += size
        self._held += 1
        self._tracked += 1
        count = len(waiting)
        # The sender sleeps until the oldest waiting event is due: it needs telling when the
        # first one arrives and when a batch is full, not for every event.
        return True, (
            count in (1, self._batch_size) or self._waiting_bytes >= self._max_request_bytes
        )

    def request_flush(self) -> int:
        """Have everything put so far sent without waiting to fill batches; the count of
        events settled that will mean it has all left."""
        with self._lock:
            self._flush_through = self._tracked
            target = self._tracked
        self.wake()
        return target

    def close(self) -> int:
        """Take no more events (callers waiting for room get ClientClosedError) and send
        everything held at once; like request_flush, the settled count to wait for."""
        with self._changed:
            self._closed = True
            self._flush_through = self._tracked
            target = self._tracked
            self._changed.notify_all()
        self.on_change()
        self.wake()
        return target

    @property
    def closed(self) -> bool:
        return self._closed

    def settled_through(self, target: int) -> bool:
        return self._settled >= target

    def wait_settled(self, target: int, timeout: float) -> bool:
        """Wait up to `timeout` seconds until `target` events have left; whether they have."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._settled < target:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def stats(self) -> Stats:
        with self._lock:
            return Stats(
                queued=self._held,
                sent=self._sent,
                rejected=self._rejected,
                dropped=self._dropped,
                retried=self._retried,
                abandoned=self._abandoned,
            )

    # The sender's side.

    def due_in(self, flush_interval: float) -> float | None:
        """Seconds until a batch is due (0: now), or None while nothing waits."""
        with self._lock:
            if self._resend:
                return 0.0
            waiting = self._waiting
            if not waiting:
                return None
            if (
                len(waiting) >= self._batch_size
                or self._waiting_bytes >= self._max_request_bytes
                or self._taken < self._flush_through
            ):
                return 0.0
            return max(0.0, waiting[0][2] + flush_interval - time.monotonic())

    def take(self) -> Batch | None:
        """The next batch to send: one to send again, else up to batch_size waiting events
        within MAX_REQUEST_BYTES; None if nothing waits."""
        with self._lock:
            if self._resend:
                return self._resend.popleft()
            waiting = self._waiting
            events: list[Event] = []
            size = 0
            while waiting and len(events) < self._batch_size:
                event, event_size, _ = waiting[0]
                if events and size + event_size > self._max_request_bytes:
                    break
                waiting.popleft()
                events.append(event)
                size += event_size
            self._waiting_bytes -= size
            self._taken += len(events)
            return Batch(events) if events else None

    def settle(self, batch: Batch, rejected: int) -> None:
        """The server answered the batch: `rejected` of its events refused, the others
        stored."""
        with self._changed:
            count = len(batch.events)
            self._held -= count
            self._settled += count
            self._sent += count - rejected
            self._rejected += rejected
            self._changed.notify_all()
        self.on_change()

    def requeue(self, batches: Sequence[Batch]) -> None:
        """Batches sent and left unanswered, oldest first: they go out again before anything
        else."""
        if batches:
            with self._lock:
                self._resend.extendleft(reversed(batches))

    def count_retried(self, events: int) -> None:
        with self._lock:
            self._retried += events

    def abandon(self) -> int:
        """Give up on every event held (the sender is stopped); how many there were."""
        with self._changed:
            count = self._held
            self._abandoned += count
            self._settled += count
            self._held = 0
            self._waiting.clear()
            self._waiting_bytes = 0
            self._resend.clear()
            self._changed.notify_all()
        self.on_change()
        return count
