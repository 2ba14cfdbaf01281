"""One process serving the doors of one or more services: their gRPC servicers on one address,
their HTTP routes on another.

A service hands the runtime an opener of its `Doors` (an async context manager that holds the
service's connections while it serves); the runtime knows no service. `analytics-ingest` and
`analytics-report` each serve one; the development stack serves both from one process.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from core.settings import Address, Settings
from runtime.health import Dependent, Health, Readiness, health_servicer
from runtime.http_server import GRACE_SECONDS, HttpServer
from runtime.lifecycle import Lifecycle, run_service, settings_or_exit, until_stopping
from runtime.logs import configure_logging
from runtime.metrics import GrpcObserver, HttpObserver, flushing, metrics_routes
from runtime.ports import listen_refusal
from runtime.tls import grpc_credentials, http_scheme, server_certificate
from runtime.workers import run_workers
from transports.cors import Cors
from transports.grpc_decoding import add_servicer
from transports.grpc_interceptors import CallInterceptor
from transports.http_app import Handler, create_app, create_busy_app

# A 1000-event batch of typical events is well under 1 MiB.
MAX_GRPC_MESSAGE_BYTES = 16 * 1024 * 1024

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Doors:
    """What a service serves: gRPC servicers, each with the service it implements, and HTTP
    routes (path → method → handler); and what it needs to serve them, each dependency by name
    with a probe of whether it is reachable (for /readyz and gRPC's health service)."""

    servicers: Sequence[tuple[ServiceDescriptor, object]] = ()
    routes: Mapping[str, Mapping[str, Handler]] = field(default_factory=dict)
    ready: Readiness = field(default_factory=dict)


# Opens a service's doors for as long as the block runs, closing its connections after.
DoorsOpener = Callable[[Settings], AbstractAsyncContextManager[Doors]]


@dataclass(frozen=True)
class ApiServer:
    grpc: Address
    http: Address
    # Done if the HTTP server stopped on its own (gRPC's server has no such failure).
    _stopped: asyncio.Task[None]
    # Each HTTP route served, as (method, path as declared), for whoever must cover them all
    # (the access matrix test; gRPC's services are listed by reflection).
    http_routes: tuple[tuple[str, str], ...] = ()

    async def wait(self, stopping: asyncio.Event) -> None:
        """Return when `stopping` is set; raise if a server stopped on its own before."""
        await until_stopping(stopping, self._stopped)


@asynccontextmanager
async def serving(settings: Settings, services: Sequence[DoorsOpener]) -> AsyncIterator[ApiServer]:
    """Serve the doors of `services` until the block exits, then stop taking requests, finish
    those in flight (up to GRACE_SECONDS, gRPC and HTTP together) and close the connections.
    The yielded addresses have the real ports where settings asked for port 0."""
    async with AsyncExitStack() as stack:
        doors = [await stack.enter_async_context(opener(settings)) for opener in services]
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
                # A connection closes at an age (gRPC adds a random tenth either way, so that
                # connections made together do not close together), which lets load balancers
                # spread clients anew; its calls in flight then have a grace to finish.
                ("grpc.max_connection_age_ms", round(settings.grpc_max_connection_age * 1000)),
                (
                    "grpc.max_connection_age_grace_ms",
                    round(settings.grpc_max_connection_age_grace * 1000),
                ),
            ],
            # Over it grpc answers RESOURCE_EXHAUSTED at once, rather than queueing the call.
            maximum_concurrent_rpcs=settings.grpc_max_concurrent_rpcs,
            # Every call gets a request id, and is counted and timed.
            interceptors=[CallInterceptor(GrpcObserver() if settings.metrics else None)],
        )
        routes: dict[str, Mapping[str, Handler]] = {}
        dependents: list[Dependent] = []
        for door in doors:
            for service, servicer in door.servicers:
                add_servicer(grpc_server, service, servicer)
            routes.update(door.routes)
            dependents.append(Dependent([s.full_name for s, _ in door.servicers], door.ready))
        health = Health(dependents, health_servicer(grpc_server, dependents))
        await health.check()  # the statuses are true from the first call on
        routes.update(health.routes())
        if settings.metrics:
            routes.update(metrics_routes())
        credentials = grpc_credentials(settings)
        if credentials is None:
            grpc_port = grpc_server.add_insecure_port(str(settings.grpc_listen))
        else:
            grpc_port = grpc_server.add_secure_port(str(settings.grpc_listen), credentials)
        await grpc_server.start()
        cors = Cors(settings.cors_allow_origins)
        http = HttpServer(
            create_app(routes, cors, HttpObserver() if settings.metrics else None),
            create_busy_app(cors),
            settings.http_listen,
            share_port=settings.share_ports,
            read_timeout=settings.http_read_timeout,
            max_connections=settings.http_max_connections,
            certificate=server_certificate(settings),
        )
        try:
            http_port = await http.start()
        except BaseException:
            await grpc_server.stop(None)
            raise

        async def stop_both() -> None:
            await health.stopping()
            await asyncio.gather(grpc_server.stop(GRACE_SECONDS), http.stop())

        stack.push_async_callback(stop_both)
        stopped = asyncio.create_task(http.finished(), name="the HTTP server")
        stack.callback(stopped.cancel)
        watching = asyncio.create_task(health.watch(), name="the health watch")
        stack.callback(watching.cancel)
        if settings.metrics:
            counting = asyncio.create_task(flushing(), name="the metrics' flush")
            stack.callback(counting.cancel)
        yield ApiServer(
            Address(settings.grpc_listen.host, grpc_port),
            Address(settings.http_listen.host, http_port),
            stopped,
            tuple((method, path) for path, methods in routes.items() for method in methods),
        )


def main_for(name: str, module: str, services: Sequence[DoorsOpener]) -> None:
    """The body of a service's console script (also run as `python -m <module>`), serving in
    one process or, with API_PROCESSES, in several."""
    settings = settings_or_exit(name)
    if not settings.share_ports and (refusal := listen_refusal(settings)):
        print(f"{name}: {refusal}", file=sys.stderr)
        sys.exit(1)
    if settings.api_processes > 1:
        configure_logging(settings.log_level, settings.log_format)
        sys.exit(run_workers(name, module, settings))

    async def serve(settings: Settings, life: Lifecycle) -> None:
        async with serving(settings, services) as server:
            life.started()
            scheme = http_scheme(settings)
            logger.info("%s: gRPC on %s, HTTP on %s://%s", name, server.grpc, scheme, server.http)
            await server.wait(life.stopping)

    run_service(name, serve)
