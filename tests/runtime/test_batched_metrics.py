"""Metrics counted in memory on the request paths read, once flushed, as prometheus-client's
own would."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from runtime.metrics import BatchedCounter, BatchedHistogram, flush

BOUNDS = (0.001, 0.01, 0.1, 1.0)
AMOUNTS = [0.0005, 0.001, 0.002, 0.01, 0.05, 0.5, 1.0, 3.0, 0.0]


def test_a_flushed_histogram_reads_as_one_observed_directly() -> None:
    registry = CollectorRegistry()
    direct = Histogram("direct_seconds", "d", ["k"], buckets=BOUNDS, registry=registry)
    batched = Histogram("batched_seconds", "b", ["k"], buckets=BOUNDS, registry=registry)
    in_memory = BatchedHistogram(batched.labels("v"))

    for amount in AMOUNTS:
        direct.labels("v").observe(amount)
        in_memory.observe(amount)
    flush()

    assert _samples(registry, "batched") == _samples(registry, "direct")


def test_a_histogram_shows_nothing_new_until_flushed() -> None:
    registry = CollectorRegistry()
    histogram = Histogram("waiting_seconds", "w", buckets=BOUNDS, registry=registry)
    in_memory = BatchedHistogram(histogram)

    in_memory.observe(0.5)

    assert registry.get_sample_value("waiting_seconds_count") == 0
    flush()
    assert registry.get_sample_value("waiting_seconds_count") == 1


@pytest.mark.parametrize("increments", [[1], [1, 1, 1], [2.5, 0.5]])
def test_a_flushed_counter_holds_the_sum_of_its_increments(increments: list[float]) -> None:
    registry = CollectorRegistry()
    counter = Counter("things", "t", registry=registry)
    in_memory = BatchedCounter(counter)

    for amount in increments:
        in_memory.inc(amount)
    flush()
    flush()  # nothing more to add

    assert registry.get_sample_value("things_total") == sum(increments)


def _samples(registry: CollectorRegistry, prefix: str) -> list[str]:
    """The exposition's sample lines of one histogram, its name taken out."""
    lines = generate_latest(registry).decode().splitlines()
    return sorted(
        line.removeprefix(f"{prefix}_seconds")
        for line in lines
        if line.startswith(f"{prefix}_seconds") and "_created" not in line
    )
