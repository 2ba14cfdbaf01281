from __future__ import annotations

import itertools
import os
import time
import uuid

import pytest

from core.event_ids import new_event_id, new_event_ids


def test_event_ids_are_rfc_9562_version_7_uuids() -> None:
    parsed = uuid.UUID(new_event_id())

    assert (parsed.version, parsed.variant) == (7, uuid.RFC_4122)


def test_event_ids_carry_their_creation_time_in_milliseconds() -> None:
    before = time.time_ns() // 1_000_000
    parsed = uuid.UUID(new_event_id())
    after = time.time_ns() // 1_000_000

    assert before <= parsed.int >> 80 <= after


def test_event_ids_are_unique() -> None:
    ids = {new_event_id() for _ in range(10_000)}

    assert len(ids) == 10_000


def test_event_ids_are_written_in_the_canonical_lowercase_form() -> None:
    event_id = new_event_id()

    assert str(uuid.UUID(event_id)) == event_id


def _counter(event_id: str) -> int:
    """The 12 bits counting the ids of one millisecond (rand_a)."""
    return uuid.UUID(event_id).int >> 64 & 0xFFF


_FIRST_MILLIS = itertools.count(4_000_000_000_000, 1_000_000)


def _clock_ticking_every(ids: int, monkeypatch: pytest.MonkeyPatch) -> int:
    """time.time_ns() moves on by one millisecond every `ids` calls, from a millisecond in
    2096 that no other test used (so that no ids of it were made before); returns that."""
    calls = itertools.count()
    first_millis = next(_FIRST_MILLIS)
    monkeypatch.setattr(time, "time_ns", lambda: (first_millis + next(calls) // ids) * 1_000_000)
    return first_millis


def test_event_ids_sort_in_the_order_they_were_made(monkeypatch: pytest.MonkeyPatch) -> None:
    _clock_ticking_every(100, monkeypatch)

    ids = [new_event_id() for _ in range(1_000)]

    assert ids == sorted(ids)


def test_more_event_ids_than_a_millisecond_counts_stay_unique(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_millis = _clock_ticking_every(10_000, monkeypatch)

    ids = [new_event_id() for _ in range(10_000)]

    assert len(set(ids)) == 10_000
    assert {uuid.UUID(event_id).int >> 80 for event_id in ids} == {first_millis}


def test_event_ids_made_at_once_sort_after_and_before_those_made_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock_ticking_every(3, monkeypatch)

    ids = [new_event_id(), *new_event_ids(1_000), new_event_id()]

    assert ids == sorted(ids)
    assert [_counter(event_id) for event_id in ids] == list(range(1_002))


def test_event_ids_made_at_once_are_version_7_uuids_of_one_millisecond(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_millis = _clock_ticking_every(1, monkeypatch)

    ids = [uuid.UUID(event_id) for event_id in new_event_ids(3)]

    assert {(parsed.version, parsed.variant) for parsed in ids} == {(7, uuid.RFC_4122)}
    assert {parsed.int >> 80 for parsed in ids} == {first_millis}


def test_more_event_ids_at_once_than_a_millisecond_counts_stay_unique(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first_millis = _clock_ticking_every(1_000, monkeypatch)

    ids = new_event_ids(10_000)

    assert len(set(ids)) == 10_000
    assert [_counter(event_id) for event_id in ids] == [*range(4096), *range(4096), *range(1808)]
    assert {uuid.UUID(event_id).int >> 80 for event_id in ids} == {first_millis}


def test_a_forked_child_does_not_repeat_its_parents_event_ids(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _clock_ticking_every(10_000, monkeypatch)
    new_event_id()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.write(write_end, new_event_id().encode())
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    childs_id = os.read(read_end, 100).decode()

    assert childs_id != new_event_id()
