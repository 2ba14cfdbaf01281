"""How every service process starts and stops: settings and logging first, then the service's
main coroutine under signal handling.

The first SIGINT or SIGTERM asks a started service to stop gracefully (finish what is in flight);
during startup, or on a second signal, the service is cancelled at once (and, should its startup
lose the cancellation, stops gracefully once started).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Awaitable, Callable

import uvloop

from core.settings import ConfigError, Settings
from runtime.logs import configure_logging

logger = logging.getLogger(__name__)


class Lifecycle:
    """The part of a process's life a service's main coroutine takes part in."""

    def __init__(self) -> None:
        self.stopping = asyncio.Event()
        self.is_started = False

    def started(self) -> None:
        """Startup is over: from now on a signal asks for a graceful stop.

        What startup allocated (modules, connections, servers) lives as long as the process;
        frozen, it is no longer walked by every full garbage collection, which under load
        came every few seconds and stopped the event loop for about 20 ms each time."""
        self.is_started = True
        gc.collect()  # startup's garbage is freed, not frozen
        gc.freeze()

    def asked_to_stop(self) -> bool:
        """A signal came: whether to cancel the service at once (it is still starting, or was
        asked before). Either way `stopping` is set, so that a service whose startup lost the
        cancellation (a library call that swallows CancelledError, as some of nats-py's do)
        stops gracefully as soon as it has started instead of serving on."""
        at_once = not self.is_started or self.stopping.is_set()
        self.stopping.set()
        return at_once


def run_service(name: str, main: Callable[[Settings, Lifecycle], Awaitable[None]]) -> None:
    """The body of a service's console script."""
    settings = settings_or_exit(name)
    configure_logging(settings.log_level, settings.log_format)
    # uvloop: the services spend most of their CPU in the event loop and its sockets.
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_run(name, main, settings))


def settings_or_exit(name: str) -> Settings:
    """The settings from the environment; a bad one ends the process with status 2."""
    try:
        return Settings.from_env()
    except ConfigError as error:
        print(f"{name}: configuration error: {error}", file=sys.stderr)
        sys.exit(2)


async def _run(
    name: str, main: Callable[[Settings, Lifecycle], Awaitable[None]], settings: Settings
) -> None:
    life = Lifecycle()
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()

    def on_signal(received: signal.Signals) -> None:
        if life.asked_to_stop():
            logger.info("%s: %s received, stopping now", name, received.name)
            task.cancel()
        else:
            logger.info("%s: %s received, stopping gracefully", name, received.name)

    for received in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(received, on_signal, received)
    try:
        await main(settings, life)
    except asyncio.CancelledError:
        logger.info("%s: stopped", name)


async def until_stopping(stopping: asyncio.Event, work: asyncio.Task[object]) -> None:
    """Wait for `stopping`; if `work` ends first, raise its exception (it should not end)."""
    stop = asyncio.create_task(stopping.wait())
    try:
        await asyncio.wait({stop, work}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    if work.done():
        work.result()
        raise RuntimeError(f"{work.get_name()} ended unexpectedly")
