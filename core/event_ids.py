"""Event ids for events that arrive without one."""

from __future__ import annotations

import os
import time

# RFC 9562 UUIDv7, method 1: the 12 rand_a bits count the ids made in one millisecond, the 62
# rand_b bits are drawn when the millisecond starts (and again after 4096 ids in it). Making an
# id then costs two string joins instead of drawing and formatting 74 random bits, which was a
# tenth of IngestBatch's CPU; ids of one millisecond still differ in their counter, and ids of
# two processes in their random bits.
_COUNTER_VALUES = 4096
_COUNTER_HEX = tuple(f"{n:03x}" for n in range(_COUNTER_VALUES))


class _Tick:
    """The millisecond ids are being made for, its random bits, and how many it has made."""

    __slots__ = ("head", "millis", "tail", "used")

    def __init__(self) -> None:
        self.head = ""  # "tttttttt-tttt-7": the timestamp and the version
        self.tail = ""  # "-vrrr-rrrrrrrrrrrr": the variant and the random bits
        self.forget()

    def forget(self) -> None:
        """Draw new random bits for the next id (a forked child must not repeat its parent's)."""
        self.millis = -1
        self.used = _COUNTER_VALUES

    def advance(self, millis: int) -> None:
        self.millis = millis
        self.used = 0
        timestamp = f"{millis & 0xFFFF_FFFF_FFFF:012x}"
        self.head = f"{timestamp[:8]}-{timestamp[8:]}-7"
        rand = bytearray(os.urandom(8))
        rand[0] = 0x80 | rand[0] & 0x3F  # the variant, 0b10
        text = rand.hex()
        self.tail = f"-{text[:4]}-{text[4:]}"


_tick = _Tick()
os.register_at_fork(after_in_child=_tick.forget)


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): unique, and sorting by it sorts by creation time to the millisecond,
    which keeps the events table's primary key index appending at its right edge."""
    tick = _tick
    millis = time.time_ns() // 1_000_000
    if millis != tick.millis or tick.used == _COUNTER_VALUES:
        # A new millisecond, or more ids in this one than the counter holds: new random bits.
        tick.advance(millis)
    counter = _COUNTER_HEX[tick.used]
    tick.used += 1
    return tick.head + counter + tick.tail


def new_event_ids(count: int) -> list[str]:
    """`count` new event ids, all of the current millisecond in counter order (unless they
    overflow its counter, like `new_event_id`). A batch takes its ids at once: one at a time
    cost four times as much, and a batch being validated spans several milliseconds, each
    drawing new random bits."""
    tick = _tick
    millis = time.time_ns() // 1_000_000
    ids: list[str] = []
    while len(ids) < count:
        if millis != tick.millis or tick.used == _COUNTER_VALUES:
            tick.advance(millis)
        start = tick.used
        tick.used = min(_COUNTER_VALUES, start + count - len(ids))
        head, tail = tick.head, tick.tail
        ids += [head + counter + tail for counter in _COUNTER_HEX[start : tick.used]]
    return ids
