"""The writer sizes its fetches so that a transaction holds about WRITER_BATCH_SIZE events."""

from __future__ import annotations

from writer.consumer import BatchSize


def test_the_first_fetch_assumes_full_messages() -> None:
    assert BatchSize(2000).messages() == 4


def test_single_event_messages_are_fetched_up_to_the_batch_size() -> None:
    size = BatchSize(2000)
    size.observe(messages=4, events=4)

    assert size.messages() == 2000


def test_the_count_follows_the_last_batchs_events_per_message() -> None:
    size = BatchSize(2000)
    size.observe(messages=4, events=400)

    assert size.messages() == 20


def test_at_least_one_message_is_fetched_however_full_messages_are() -> None:
    size = BatchSize(100)
    size.observe(messages=1, events=500)

    assert size.messages() == 1


def test_a_batch_of_nothing_decodable_changes_nothing() -> None:
    size = BatchSize(2000)
    size.observe(messages=0, events=0)

    assert size.messages() == 4
