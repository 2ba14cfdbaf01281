"""One process serving the gRPC services and the HTTP shim of ingest, report, or both.

`analytics-ingest` and `analytics-report` each run one service; `make run` runs both in one
process, so that gRPC (both services) and HTTP (all routes) each have a single address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import grpc
import uvicorn
from analytics.v1 import ingest_pb2, report_pb2

from ingest_server.service import open_ingestor
from ingest_server.servicer import IngestServicer
from report_server.service import open_stats_reader
from report_server.servicer import ReportServicer
from stack.config import Address, Settings
from stack.grpc_services import add_servicer
from stack.http_shim import ASGIApp, create_app
from stack.http_writes import OneWriteHttpToolsProtocol
from stack.lifecycle import (
    Lifecycle,
    configure_logging,
    run_service,
    settings_or_exit,
    until_stopping,
)
from stack.ports import listen_refusal
from stack.workers import run_workers

GRACE_SECONDS = 5.0
# A 1000-event batch of typical events is well under 1 MiB.
MAX_GRPC_MESSAGE_BYTES = 16 * 1024 * 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiServer:
    grpc: Address
    http: Address
    # Done if the HTTP server stopped on its own (gRPC's server has no such failure).
    _stopped: asyncio.Task[None]

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return when `stopping` is set; raise if a server stopped on its own before."""
        await until_stopping(stopping, self._stopped)


@asynccontextmanager
async def serving(settings: Settings, *, ingest: bool, report: bool) -> AsyncIterator[ApiServer]:
    """Serve until the block exits, then stop taking requests, finish those in flight (up to
    GRACE_SECONDS, gRPC and HTTP together) and close the connections. The yielded addresses
    have the real ports where settings asked for port 0."""
    async with AsyncExitStack() as stack:
        ingestor = await stack.enter_async_context(open_ingestor(settings)) if ingest else None
        reader = await stack.enter_async_context(open_stats_reader(settings)) if report else None

        grpc_server = grpc.aio.server(
            options=[
                # Unless asked, a second server must not share the port unnoticed.
                ("grpc.so_reuseport", int(settings.share_ports)),
                ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_BYTES),
                # Keep each stream's flow-control window at gRPC's 64 KiB instead of growing it
                # to the measured bandwidth-delay product: a client streaming faster than we
                # store is then held back at the sender rather than buffered here (it doubled
                # the ingest server's memory under IngestBatchStream).
                ("grpc.http2.bdp_probe", 0),
            ]
        )
        if ingestor is not None:
            add_servicer(
                grpc_server,
                ingest_pb2.DESCRIPTOR.services_by_name["IngestService"],
                IngestServicer(ingestor),
            )
        if reader is not None:
            add_servicer(
                grpc_server,
                report_pb2.DESCRIPTOR.services_by_name["ReportService"],
                ReportServicer(reader),
            )
        grpc_port = grpc_server.add_insecure_port(str(settings.grpc_listen))
        await grpc_server.start()
        http = _HttpServer(
            create_app(
                ingestor=ingestor,
                stats=reader,
                max_body_bytes=settings.max_body_bytes,
                cors_allow_origins=settings.cors_allow_origins,
            ),
            settings.http_listen,
            share_port=settings.share_ports,
        )
        try:
            http_port = await http.start()
        except BaseException:
            await grpc_server.stop(None)
            raise

        async def stop_both() -> None:
            await asyncio.gather(grpc_server.stop(GRACE_SECONDS), http.stop())

        stack.push_async_callback(stop_both)
        stopped = asyncio.create_task(http.finished(), name="the HTTP server")
        stack.callback(stopped.cancel)
        yield ApiServer(
            Address(settings.grpc_listen.host, grpc_port),
            Address(settings.http_listen.host, http_port),
            stopped,
        )


def _listening_socket(listen: Address, *, share_port: bool) -> socket.socket:
    """A TCP socket for uvicorn. Made with proto=IPPROTO_TCP, as asyncio's own are: asyncio
    sets TCP_NODELAY only on connections of such sockets, and without it a keep-alive client
    waits ~40 ms for every response (Nagle's algorithm meeting delayed ACKs)."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if share_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((listen.host, listen.port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


class _UvicornServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # signals belong to stack.lifecycle, which stops us through should_exit


class _HttpServer:
    def __init__(self, app: ASGIApp, listen: Address, *, share_port: bool) -> None:
        self._socket = _listening_socket(listen, share_port=share_port)
        self._server = _UvicornServer(
            uvicorn.Config(
                app,
                http=OneWriteHttpToolsProtocol,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                proxy_headers=False,  # we read no client addresses
                timeout_graceful_shutdown=int(GRACE_SECONDS),
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        """Start serving; the bound port."""
        self._task = task = asyncio.create_task(self._server.serve(sockets=[self._socket]))
        while not self._server.started:
            if task.done():
                self._socket.close()
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.005)
        port: int = self._socket.getsockname()[1]
        return port

    async def finished(self) -> None:
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        self._socket.close()


def main_for(name: str, module: str, *, ingest: bool, report: bool) -> None:
    """The body of `analytics-ingest`, `analytics-report` and `make run`'s API process
    (`python -m <module>`), in one process or, with API_PROCESSES, several."""
    settings = settings_or_exit(name)
    if not settings.share_ports and (refusal := listen_refusal(settings)):
        print(f"{name}: {refusal}", file=sys.stderr)
        sys.exit(1)
    if settings.api_processes > 1:
        configure_logging(settings.log_level)
        sys.exit(run_workers(name, module, settings))

    async def serve(settings: Settings, life: Lifecycle) -> None:
        async with serving(settings, ingest=ingest, report=report) as server:
            life.started()
            logger.info("%s: gRPC on %s, HTTP on http://%s", name, server.grpc, server.http)
            await server.wait(life.stopping)

    run_service(name, serve)


def main() -> None:
    main_for("analytics-api", "stack.serve", ingest=True, report=True)


if __name__ == "__main__":
    main()
