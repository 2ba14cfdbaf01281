"""Several processes serving the same gRPC and HTTP ports, for when one process's core is the
limit: each binds the ports with SO_REUSEPORT and the kernel spreads new connections over them.
They share nothing else; events stay exactly-once because every process publishes to the same
stream with the same idempotency.

The parent reserves the ports first (bound with SO_REUSEPORT, never listening, so the kernel
gives it no connection; port 0 becomes a real port every worker then uses), starts the workers
as `python -m <module>` with API_PROCESSES=1 and SHARE_PORTS=1 (and a directory for their
metrics, see runtime.metrics), and then only watches them:
SIGTERM or SIGINT is passed on to each (each stops gracefully; the parent exits 0 unless one
had to be killed), and a worker that exits on its own stops the others, the parent then
exiting with status 1 so that whatever supervises the service restarts all of it.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from pathlib import Path
from types import FrameType

from core.settings import Address, Settings
from runtime.metrics import MULTIPROCESS_DIR_VARIABLE
from runtime.ports import claimable_port
from runtime.processes import ChildProcess

POLL_SECONDS = 0.2

logger = logging.getLogger(__name__)


def run_workers(name: str, module: str, settings: Settings) -> int:
    """Serve with `settings.api_processes` workers until a signal; the exit status."""
    wanted = (settings.grpc_listen, settings.http_listen)
    reserved: list[socket.socket] = []
    for address in wanted:
        try:
            reserved.append(_reserve(address))
        except OSError as error:
            for sock in reserved:
                sock.close()
            logger.error("%s: cannot listen on %s: %s", name, address, error)
            return 1
    grpc_listen, http_listen = (
        Address(address.host, sock.getsockname()[1])
        for address, sock in zip(wanted, reserved, strict=True)
    )
    metrics_dir = _metrics_dir()
    env = {
        **os.environ,
        "API_PROCESSES": "1",
        "SHARE_PORTS": "1",
        "GRPC_LISTEN": str(grpc_listen),
        "HTTP_LISTEN": str(http_listen),
        # Every worker keeps its metrics there, and /metrics adds up all of them.
        MULTIPROCESS_DIR_VARIABLE: str(metrics_dir),
    }
    stop = threading.Event()

    def on_signal(received: int, frame: FrameType | None) -> None:
        logger.info("%s: %s received, stopping the workers", name, signal.Signals(received).name)
        stop.set()

    for received in (signal.SIGINT, signal.SIGTERM):
        signal.signal(received, on_signal)
    workers = [
        ChildProcess(f"{name} worker {number}", signal.SIGTERM)
        for number in range(1, settings.api_processes + 1)
    ]
    try:
        for worker in workers:
            worker.spawn([sys.executable, "-m", module], env=env)
        logger.info(
            "%s: %d processes on gRPC %s, HTTP http://%s",
            name,
            len(workers),
            grpc_listen,
            http_listen,
        )
        while not stop.wait(POLL_SECONDS):
            if dead := [worker for worker in workers if not worker.running]:
                logger.error("%s exited on its own; stopping the others", dead[0].name)
                return 1
        # A worker still starting may end by the signal itself or with an error; only one that
        # had to be killed (SIGKILL after STOP_TIMEOUT_SECONDS) failed to stop.
        return 1 if -signal.SIGKILL in _stop_all(workers) else 0
    finally:
        _stop_all(workers)
        for sock in reserved:
            sock.close()
        if MULTIPROCESS_DIR_VARIABLE not in os.environ:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _stop_all(workers: list[ChildProcess]) -> list[int | None]:
    """Signal every worker, then wait for each: they stop together, not one after another."""
    for worker in workers:
        worker.ask_to_stop()
    return [worker.wait_stopped() for worker in workers]


def _metrics_dir() -> Path:
    """The directory of the workers' metrics: the operator's PROMETHEUS_MULTIPROC_DIR, emptied
    of an earlier run's files (prometheus-client would add them up with ours), or a new one."""
    given = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if not given:
        return Path(tempfile.mkdtemp(prefix="analytics-metrics-"))
    directory = Path(given)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    return directory


def _reserve(address: Address) -> socket.socket:
    """The port, held for the workers; refused if another server holds it."""
    port = claimable_port(address)
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((address.host, port))
    except OSError:
        sock.close()
        raise
    return sock
