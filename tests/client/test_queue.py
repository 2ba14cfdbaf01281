"""The client's queue on its own: its bound, drop and block, batches, resends and flushes."""

from __future__ import annotations

import threading

import pytest
from analytics_client import ClientClosedError, Event, Stats
from analytics_client.queue import Batch, EventQueue


def event(number: int) -> Event:
    return Event(event_id=f"e{number}", site_id="site-1", event_type="page_view", path="/")


def put(queue: EventQueue, *numbers: int) -> list[bool]:
    return [queue.put(event(n), 10) for n in numbers]


def ids(batch: Batch | None) -> list[str]:
    assert batch is not None
    return [e.event_id for e in batch.events]


def test_a_full_queue_drops_the_event_and_counts_it() -> None:
    queue = EventQueue(capacity=2, batch_size=10)

    assert put(queue, 1, 2, 3) == [True, True, False]
    assert queue.stats() == Stats(queued=2, sent=0, rejected=0, dropped=1, retried=0, abandoned=0)


def test_events_sent_and_unanswered_count_against_the_bound() -> None:
    queue = EventQueue(capacity=2, batch_size=10)
    put(queue, 1, 2)
    queue.take()

    assert put(queue, 3) == [False]


def test_an_answered_batch_makes_room() -> None:
    queue = EventQueue(capacity=2, batch_size=10)
    put(queue, 1, 2)
    batch = queue.take()
    assert batch is not None
    queue.settle(batch, rejected=1)

    assert put(queue, 3) == [True]
    assert queue.stats() == Stats(queued=1, sent=1, rejected=1, dropped=0, retried=0, abandoned=0)


def test_a_blocked_put_goes_in_once_a_batch_is_answered() -> None:
    queue = EventQueue(capacity=1, batch_size=10)
    put(queue, 1)
    batch = queue.take()
    assert batch is not None
    results: list[bool] = []
    blocked = threading.Thread(target=lambda: results.append(queue.put_waiting(event(2), 10, 30)))
    blocked.start()

    queue.settle(batch, rejected=0)
    blocked.join(30)

    assert results == [True]
    assert ids(queue.take()) == ["e2"]


def test_a_blocked_put_gives_up_after_its_timeout_and_counts_a_drop() -> None:
    queue = EventQueue(capacity=1, batch_size=10)
    put(queue, 1)

    assert queue.put_waiting(event(2), 10, timeout=0.05) is False
    assert queue.stats().dropped == 1


def test_closing_wakes_a_blocked_put_with_client_closed() -> None:
    queue = EventQueue(capacity=1, batch_size=10)
    put(queue, 1)
    errors: list[BaseException] = []

    def blocked_put() -> None:
        try:
            queue.put_waiting(event(2), 10, None)
        except ClientClosedError as error:
            errors.append(error)

    blocked = threading.Thread(target=blocked_put)
    blocked.start()
    queue.close()
    blocked.join(30)

    assert [type(error) for error in errors] == [ClientClosedError]


def test_a_closed_queue_refuses_events() -> None:
    queue = EventQueue(capacity=10, batch_size=10)
    queue.close()

    with pytest.raises(ClientClosedError):
        put(queue, 1)


def test_batches_take_at_most_batch_size_events_in_order() -> None:
    queue = EventQueue(capacity=10, batch_size=2)
    put(queue, 1, 2, 3)

    assert [ids(queue.take()), ids(queue.take()), queue.take()] == [["e1", "e2"], ["e3"], None]


def test_a_batch_stops_short_of_the_request_byte_limit() -> None:
    queue = EventQueue(capacity=10, batch_size=10, max_request_bytes=25)
    put(queue, 1, 2, 3)  # 10 bytes each

    assert [ids(queue.take()), ids(queue.take())] == [["e1", "e2"], ["e3"]]


def test_an_event_over_the_byte_limit_goes_alone() -> None:
    queue = EventQueue(capacity=10, batch_size=10, max_request_bytes=25)
    queue.put(event(1), 40)
    put(queue, 2)

    assert [ids(queue.take()), ids(queue.take())] == [["e1"], ["e2"]]


def test_unanswered_batches_go_again_first_in_their_order() -> None:
    queue = EventQueue(capacity=10, batch_size=1)
    put(queue, 1, 2, 3)
    first, second = queue.take(), queue.take()
    assert first is not None
    assert second is not None

    queue.requeue([first, second])

    assert [ids(queue.take()), ids(queue.take()), ids(queue.take())] == [["e1"], ["e2"], ["e3"]]


def test_nothing_is_due_while_nothing_waits() -> None:
    queue = EventQueue(capacity=10, batch_size=2)

    assert queue.due_in(flush_interval=60) is None


def test_a_partial_batch_is_due_after_the_flush_interval() -> None:
    queue = EventQueue(capacity=10, batch_size=2)
    put(queue, 1)

    assert 59 < (queue.due_in(flush_interval=60) or 0) <= 60


def test_a_full_batch_is_due_at_once() -> None:
    queue = EventQueue(capacity=10, batch_size=2)
    put(queue, 1, 2)

    assert queue.due_in(flush_interval=60) == 0


def test_a_flush_makes_what_was_tracked_before_it_due_at_once() -> None:
    queue = EventQueue(capacity=10, batch_size=5)
    put(queue, 1, 2)
    queue.request_flush()
    assert queue.due_in(flush_interval=60) == 0
    queue.take()
    put(queue, 3)

    assert (queue.due_in(flush_interval=60) or 0) > 59


def test_the_sender_is_woken_for_the_first_waiting_event_and_each_full_batch_only() -> None:
    queue = EventQueue(capacity=10, batch_size=3)
    wakes: list[int] = []
    queue.wake = lambda: wakes.append(queue.stats().queued)

    put(queue, 1, 2, 3, 4)

    assert wakes == [1, 3]


def test_a_flush_waits_for_every_event_tracked_before_it() -> None:
    queue = EventQueue(capacity=10, batch_size=1)
    put(queue, 1, 2)
    target = queue.request_flush()
    first = queue.take()
    assert first is not None
    queue.settle(first, rejected=0)
    assert queue.wait_settled(target, timeout=0) is False
    second = queue.take()
    assert second is not None
    queue.settle(second, rejected=0)

    assert queue.wait_settled(target, timeout=0) is True


def test_abandoning_counts_every_event_held_and_empties_the_queue() -> None:
    queue = EventQueue(capacity=10, batch_size=1)
    put(queue, 1, 2, 3)
    sent = queue.take()
    assert sent is not None
    queue.requeue([sent])

    assert queue.abandon() == 3
    assert queue.take() is None
    assert queue.stats() == Stats(queued=0, sent=0, rejected=0, dropped=0, retried=0, abandoned=3)
