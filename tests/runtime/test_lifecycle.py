"""What a service's process does once its startup is over."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from runtime.lifecycle import Lifecycle


@pytest.fixture
def collector_unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


@pytest.mark.usefixtures("collector_unfrozen")
def test_what_startup_allocated_is_left_out_of_garbage_collections() -> None:
    startup_state: dict[str, list[object]] = {"connections": []}
    life = Lifecycle()
    assert gc.is_tracked(startup_state)
    assert any(item is startup_state for item in gc.get_objects())

    life.started()

    assert not any(item is startup_state for item in gc.get_objects())
