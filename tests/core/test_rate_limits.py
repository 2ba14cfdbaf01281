"""Token buckets, on a clock the tests move by hand."""

from __future__ import annotations

import pytest

from core.errors import RateLimited
from core.rate_limits import TokenBuckets, admit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Tally:
    def __init__(self) -> None:
        self.count = 0.0

    def inc(self, amount: float = 1) -> None:
        self.count += amount


def buckets(clock: Clock, rate: float = 10, burst: float = 5, **options: object) -> TokenBuckets:
    return TokenBuckets(
        "test_limit",
        rate,
        burst,
        clock=clock,
        subject="key:".__add__,
        **options,  # type: ignore[arg-type]
    )


def charge(limit: TokenBuckets, key: str = "a", cost: float = 1) -> None:
    admit(((limit, key, cost),))


def test_a_full_bucket_lets_the_burst_through_then_refuses() -> None:
    limit = buckets(Clock())
    for _ in range(5):
        charge(limit)
    with pytest.raises(RateLimited):
        charge(limit)


def test_the_refusal_names_the_limit_the_subject_and_the_wait_rounded_up() -> None:
    limit = buckets(Clock(), rate=0.5, burst=1)
    charge(limit)
    with pytest.raises(RateLimited) as refused:
        charge(limit)
    assert (refused.value.limit, refused.value.subject) == ("test_limit", "key:a")
    assert refused.value.retry_after == 2
    assert refused.value.message == (
        "rate limit test_limit: key:a may send 0.5 requests a second (1 at once); retry in 2 s"
    )


def test_tokens_come_back_at_the_rate() -> None:
    clock = Clock()
    limit = buckets(clock, rate=4)
    charge(limit, cost=5)
    clock.now += 0.5
    charge(limit, cost=2)
    with pytest.raises(RateLimited):
        charge(limit)


def test_keys_have_buckets_of_their_own() -> None:
    limit = buckets(Clock())
    charge(limit, "a", cost=5)
    charge(limit, "b", cost=5)
    with pytest.raises(RateLimited):
        charge(limit, "a")


def test_a_cost_above_the_burst_passes_a_full_bucket_and_leaves_a_debt() -> None:
    clock = Clock()
    limit = buckets(clock, rate=4)
    charge(limit, cost=25)
    clock.now += 5  # 20 tokens back: the debt repaid, none to spend
    with pytest.raises(RateLimited) as refused:
        charge(limit)
    assert refused.value.retry_after == 1
    clock.now += 0.25
    charge(limit)


def test_a_request_refused_by_one_bucket_takes_from_none() -> None:
    clock = Clock()
    ips, sites = buckets(clock, burst=5), buckets(clock, burst=4)
    charge(sites, "s", cost=2)
    with pytest.raises(RateLimited) as refused:
        admit(((ips, "1", 3), (sites, "s", 3)))
    assert refused.value.subject == "key:s"
    admit(((ips, "1", 5), (sites, "s", 2)))


def test_the_refusal_names_the_bucket_with_the_longest_wait() -> None:
    clock = Clock()
    slow, fast = buckets(clock, rate=1, burst=1), buckets(clock, rate=100, burst=1)
    admit(((slow, "x", 1), (fast, "y", 1)))
    with pytest.raises(RateLimited) as refused:
        admit(((fast, "y", 1), (slow, "x", 1)))
    assert refused.value.subject == "key:x"


def test_refusals_are_counted() -> None:
    tally = Tally()
    limit = buckets(Clock(), burst=1, refused=tally)
    charge(limit)
    for _ in range(3):
        with pytest.raises(RateLimited):
            charge(limit)
    assert tally.count == 3


def test_buckets_full_again_are_dropped_once_the_refill_time_has_passed() -> None:
    clock = Clock()
    limit = buckets(clock, rate=8, burst=4)  # full again 0.5 s after emptied
    charge(limit, "idle", cost=4)
    charge(limit, "busy", cost=4)
    clock.now += 0.5
    charge(limit, "busy", cost=4)
    charge(limit, "new")  # a new key, past the sweep time: the idle bucket goes
    assert len(limit) == 2


def test_past_max_keys_the_oldest_bucket_is_dropped() -> None:
    limit = buckets(Clock(), max_keys=3)
    for key in "abcd":
        charge(limit, key, cost=5)
    assert len(limit) == 3
    charge(limit, "a", cost=5)  # a starts again full
