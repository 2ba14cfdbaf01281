"""The client for threaded code: track() from any thread; one background thread sends.

The thread runs its own asyncio event loop and the same Sender as AsyncClient, so both clients
speak IngestBatchStream one way. (gRPC's blocking API would need a thread to feed each stream
and another to read it, and gives no way to wait on answers, new events and deadlines at once.)
The thread starts with the first event, so a client made before a server forks its workers
opens no connection in the parent.

Fork: gRPC cannot be used in a child forked while its parent has a call or channel open, so
before every os.fork() the client stops its thread and closes its channel (the requests in
flight are sent again afterwards, which their event ids make harmless), and starts them again
in the parent. The child starts with an empty queue: the parent still holds and sends the
events tracked before the fork, and a child sending them too would only send each twice. It
connects afresh with its first event. A child of multiprocessing ends with os._exit, which
skips atexit: there the client also closes among multiprocessing's finalizers.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from types import TracebackType

import grpc

from analytics_client.events import new_event
from analytics_client.options import Options, RejectionHandler, WhenFull
from analytics_client.queue import EventQueue, Stats
from analytics_client.sender import Sender

logger = logging.getLogger("analytics_client")

# Seconds the thread has to stop before a fork: closing a channel takes milliseconds.
FORK_STOP_TIMEOUT = 5.0
# Seconds, beyond close()'s own timeout, the thread has to stop once told to.
STOP_TIMEOUT = 5.0
# multiprocessing's finalizers run by priority, highest first: before the others, which may
# close what the program still sends from.
EXIT_PRIORITY = 100


class Client:
    """Sends events to the analytics backend's IngestService from threaded code.

    `target`: the gRPC address, "host:port". The other options are described in the README.
    """

    def __init__(
        self,
        target: str,
        *,
        max_queue: int = 10_000,
        when_full: WhenFull = "drop",
        block_timeout: float | None = None,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        request_timeout: float = 30.0,
        exit_timeout: float = 5.0,
        tls: bool | grpc.ChannelCredentials = False,
        api_key: str | None = None,
        metadata: Sequence[tuple[str, str]] = (),
        on_rejected: RejectionHandler | None = None,
    ) -> None:
        self._options = Options(
            target,
            max_queue=max_queue,
            when_full=when_full,
            block_timeout=block_timeout,
            batch_size=batch_size,
            flush_interval=flush_interval,
            request_timeout=request_timeout,
            exit_timeout=exit_timeout,
            tls=tls,
            api_key=api_key,
            metadata=tuple(metadata),
            on_rejected=on_rejected,
        )
        self._queue = self._new_queue()
        self._lock = threading.Lock()  # starting and stopping the thread
        self._thread: _SenderThread | None = None
        self._stopped = False  # by close(), for good
        _clients.add(self)

    def _new_queue(self) -> EventQueue:
        return EventQueue(self._options.max_queue, self._options.batch_size)

    def track(
        self,
        site_id: str,
        event_type: str,
        path: str,
        *,
        user_id: str | None = None,
        timestamp: datetime | None = None,
        properties: Mapping[str, str] | None = None,
        referrer: str | None = None,
        event_id: str | None = None,
    ) -> str | None:
        """Queue an event; its event_id (minted here, a UUIDv7, unless given), or None if the
        queue was full and it was dropped. With when_full="block", waits for room first (up
        to block_timeout). Raises ClientClosedError after close(); TypeError or ValueError
        for arguments no event could carry (a naive datetime, a non-string property)."""
        event, size = new_event(
            site_id,
            event_type,
            path,
            user_id=user_id,
            timestamp=timestamp,
            properties=properties,
            referrer=referrer,
            event_id=event_id,
        )
        if self._thread is None:
            self._start()
        if self._options.when_full == "block":
            added = self._queue.put_waiting(event, size, self._options.block_timeout)
        else:
            added = self._queue.put(event, size)
        return event.event_id if added else None

    def flush(self, timeout: float = 10.0) -> bool:
        """Send every event tracked so far without waiting to fill batches, and wait up to
        `timeout` seconds until the server has answered for all of them; whether it has."""
        self._not_on_sender_thread("flush")
        target = self._queue.request_flush()
        return self._queue.wait_settled(target, timeout)

    def close(self, timeout: float = 10.0) -> bool:
        """Take no more events, send those held, and stop, within about `timeout` seconds;
        whether every event was answered. Those that were not are counted `abandoned` and
        logged. Closing again does nothing."""
        self._not_on_sender_thread("close")
        with self._lock:
            if self._queue.closed:
                return self._queue.stats().queued == 0
            target = self._queue.close()
        answered = self._queue.wait_settled(target, timeout)
        with self._lock:
            self._stopped = True
            self._stop_thread(STOP_TIMEOUT)
        _clients.discard(self)
        abandoned = self._queue.abandon()
        if abandoned:
            logger.warning(
                "closed with %d events unanswered after %g s: abandoned (those sent may have "
                "been stored)",
                abandoned,
                timeout,
            )
        return answered and not abandoned

    @property
    def stats(self) -> Stats:
        """What became of the events so far."""
        return self._queue.stats()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None and not self._stopped:
                self._thread = _SenderThread(self._queue, self._options)

    def _stop_thread(self, timeout: float) -> None:
        """Stop the thread and close its channel (the lock is held)."""
        if self._thread is not None:
            if not self._thread.stop(timeout):
                logger.warning("the sender thread did not stop within %g s", timeout)
            self._thread = None

    def _not_on_sender_thread(self, method: str) -> None:
        thread = self._thread
        if thread is not None and thread.is_current():
            raise RuntimeError(f"{method}() would wait on itself on the sender's thread")

    def _close_at_exit(self) -> None:
        held = self._queue.stats().queued
        if held and not self._queue.closed:
            logger.info(
                "sending %d events before exit (up to %g s)", held, self._options.exit_timeout
            )
        self.close(self._options.exit_timeout)

    def _before_fork(self) -> None:
        self._lock.acquire()
        thread = self._thread
        if thread is not None and not thread.is_current():
            self._stop_thread(FORK_STOP_TIMEOUT)

    def _after_fork_in_parent(self) -> None:
        self._lock.release()
        if self._queue.stats().queued:
            self._start()

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        closed = self._queue.closed
        self._queue = self._new_queue()
        if closed:
            self._queue.close()


class _SenderThread:
    """A daemon thread running an event loop on which a Sender sends the queue's events over
    a channel of its own. Daemon: it must not keep the interpreter from exiting, and the exit
    hook, which runs before the interpreter stops daemon threads, sends what is left."""

    def __init__(self, queue: EventQueue, options: Options) -> None:
        self._queue = queue
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[None] | None = None
        running = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(running,), name="analytics-client", daemon=True
        )
        self._thread.start()
        running.wait()

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def stop(self, timeout: float) -> bool:
        """Stop sending (what is unanswered goes back to the queue), close the channel, end
        the thread; whether it ended within `timeout` seconds."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: the thread has ended
            self._loop.call_soon_threadsafe(self._cancel)
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    def _run(self, running: threading.Event) -> None:
        try:
            self._loop.run_until_complete(self._send(running))
        except Exception:
            logger.exception("the sender thread failed; events are no longer sent")
        finally:
            running.set()
            self._end_tasks()
            self._loop.close()

    def _end_tasks(self) -> None:
        """Cancel the tasks gRPC leaves on the loop and let them end. gRPC's asyncio engine
        stops its poller thread only once its last channel is freed, and a task left pending
        on a closed loop keeps its call and channel alive for good: a child forked with the
        poller running inherits an engine bound to a dead loop, and its calls never end."""
        pending = asyncio.all_tasks(self._loop)
        if not pending:
            return
        for task in pending:
            task.cancel()
        self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))

    async def _send(self, running: threading.Event) -> None:
        self._task = asyncio.current_task()
        channel = self._options.open_channel()
        sender = Sender(self._queue, channel, self._options)
        loop = self._loop

        def wake() -> None:
            with contextlib.suppress(RuntimeError):  # the loop is closed: the thread has ended
                loop.call_soon_threadsafe(sender.wake)

        self._queue.wake = wake
        running.set()
        try:
            await sender.run()
        except asyncio.CancelledError:
            pass
        finally:
            self._queue.wake = _nothing
            await channel.close()


def _nothing() -> None:
    pass


# Every client not yet closed. A client lives until it is closed, as the thread sending its
# events does, so that the exit hook finds it.
_clients: set[Client] = set()


def _close_at_exit() -> None:
    for client in list(_clients):
        client._close_at_exit()


def _before_fork() -> None:
    _close_in_multiprocessing_children()
    for client in list(_clients):
        client._before_fork()


def _after_fork_in_parent() -> None:
    for client in list(_clients):
        client._after_fork_in_parent()


def _after_fork_in_child() -> None:
    for client in list(_clients):
        client._after_fork_in_child()


class _MultiprocessingHook:
    """Registered once with multiprocessing, which, in each child it forks, drops the
    finalizers it inherited and then calls the functions registered this way."""

    registered = False

    def __call__(self, _: object) -> None:
        util = sys.modules["multiprocessing.util"]
        util.Finalize(None, _close_at_exit, exitpriority=EXIT_PRIORITY)


_multiprocessing_hook = _MultiprocessingHook()


def _close_in_multiprocessing_children() -> None:
    """Have multiprocessing's children close the clients as they end (they end with
    os._exit, which skips atexit), once the program uses multiprocessing."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None and not _multiprocessing_hook.registered:
        util.register_after_fork(_multiprocessing_hook, _multiprocessing_hook)
        _multiprocessing_hook.registered = True


atexit.register(_close_at_exit)
os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)
