"""How a service's process starts and stops."""

from __future__ import annotations

import gc
import signal
import subprocess
import sys
import textwrap
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


def test_a_signal_during_startup_cancels_at_once() -> None:
    life = Lifecycle()

    assert life.asked_to_stop() is True
    assert life.stopping.is_set()


@pytest.mark.usefixtures("collector_unfrozen")
def test_the_first_signal_once_started_asks_for_a_graceful_stop() -> None:
    life = Lifecycle()
    life.started()

    assert life.asked_to_stop() is False
    assert life.stopping.is_set()


@pytest.mark.usefixtures("collector_unfrozen")
def test_a_second_signal_cancels_at_once() -> None:
    life = Lifecycle()
    life.started()
    life.asked_to_stop()

    assert life.asked_to_stop() is True


# A service whose startup swallows the cancellation a signal sends, as a library call may.
SWALLOWING_SERVICE = textwrap.dedent(
    """
    import asyncio

    from runtime.lifecycle import run_service


    async def main(settings, life):
        print("starting", flush=True)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            pass
        life.started()
        await life.stopping.wait()
        print("stopped gracefully", flush=True)


    run_service("swallowing", main)
    """
)


def test_a_service_that_lost_the_cancellation_of_its_startup_stops_once_started() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SWALLOWING_SERVICE], stdout=subprocess.PIPE, text=True
    ) as service:
        try:
            assert service.stdout is not None
            assert service.stdout.readline() == "starting\n"
            service.send_signal(signal.SIGTERM)

            output, _ = service.communicate(timeout=30)
        finally:
            service.kill()

    assert (service.returncode, output) == (0, "stopped gracefully\n")
