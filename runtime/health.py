"""Whether a service process is alive and can do its work, for load balancers, orchestrators
and people: `GET /healthz` (the process answers), `GET /readyz` (its dependencies are
reachable: 200, or 503 naming those that are not), and gRPC's standard health service
(grpc.health.v1), SERVING or NOT_SERVING for each gRPC service by its own dependencies and
for "" (the whole server) by all of them, kept current as dependencies come and go.

Each service says what it depends on with a readiness probe (Doors.ready): the runtime knows
no dependency of its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import ClassVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from transports.http_app import Handler, Reply, Request
from transports.openapi import Api, operation, returns

# Whether one dependency is reachable now. A probe that takes longer than
# PROBE_TIMEOUT_SECONDS, or fails, says it is not.
Probe = Callable[[], Awaitable[bool]]
# A service's dependencies, each by name ("nats", "postgresql"), with its probe.
Readiness = Mapping[str, Probe]
PROBE_TIMEOUT_SECONDS = 2.0
# How often gRPC's health statuses are brought up to date.
WATCH_INTERVAL_SECONDS = 1.0

HealthServicer = health_aio.HealthServicer
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
_READINESS = {
    "type": "object",
    "required": ["status", "dependencies"],
    "properties": {
        "status": {"enum": ["ready", "not_ready"]},
        "dependencies": {
            "type": "object",
            "additionalProperties": {"enum": ["reachable", "unreachable"]},
        },
    },
}

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dependent:
    """gRPC services (full names) that are ready when `ready` says all is reachable."""

    services: Sequence[str]
    ready: Readiness


class Health:
    def __init__(
        self,
        dependents: Sequence[Dependent],
        servicer: HealthServicer | None = None,
    ) -> None:
        """`servicer`: gRPC's health service to keep current, if the process serves gRPC."""
        self._dependents = dependents
        self._servicer = servicer
        self._last: dict[str, bool] = {}

    async def check(self) -> dict[str, bool]:
        """Ask every probe now: each dependency, and whether it is reachable. gRPC's statuses
        follow the answer."""
        answers = await asyncio.gather(*(_probe(each.ready) for each in self._dependents))
        merged: dict[str, bool] = {}
        for answer in answers:
            for name, reachable in answer.items():
                merged[name] = merged.get(name, True) and reachable
        self._log_changes(merged)
        if self._servicer is not None:
            for dependent, answer in zip(self._dependents, answers, strict=True):
                status = SERVING if all(answer.values()) else NOT_SERVING
                for service in dependent.services:
                    await self._servicer.set(service, status)
            await self._servicer.set("", SERVING if all(merged.values()) else NOT_SERVING)
        return merged

    async def watch(self) -> None:
        """Keep gRPC's statuses current until cancelled."""
        while True:
            await self.check()
            await asyncio.sleep(WATCH_INTERVAL_SECONDS)

    async def stopping(self) -> None:
        """Every service NOT_SERVING from now on: load balancers stop sending calls while the
        calls in flight finish."""
        if self._servicer is not None:
            await self._servicer.enter_graceful_shutdown()

    def routes(self) -> dict[str, dict[str, Handler]]:
        return {"/healthz": {"GET": _alive}, "/readyz": {"GET": self._ready}}

    # The OpenAPI declaration of those routes (transports.openapi).
    API: ClassVar[Api] = {
        "/healthz": {
            "GET": operation(
                "Whether the process serves HTTP",
                {
                    "200": returns(
                        "alive",
                        {"type": "object", "properties": {"status": {"const": "alive"}}},
                    )
                },
                tag="operations",
            )
        },
        "/readyz": {
            "GET": operation(
                "Whether every dependency (NATS, PostgreSQL) answers",
                {
                    "200": returns("ready", _READINESS),
                    "503": returns("a dependency is unreachable", _READINESS),
                },
                tag="operations",
            )
        },
    }

    async def _ready(self, request: Request) -> Reply:
        dependencies = await self.check()
        ready = all(dependencies.values())
        return Reply(
            HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE,
            {
                "status": "ready" if ready else "not_ready",
                "dependencies": {
                    name: "reachable" if reachable else "unreachable"
                    for name, reachable in dependencies.items()
                },
            },
        )

    def _log_changes(self, dependencies: dict[str, bool]) -> None:
        for name, reachable in dependencies.items():
            if self._last.get(name, True) != reachable:
                logger.warning(
                    "readiness: %s is %s", name, "reachable again" if reachable else "unreachable"
                )
        self._last = dependencies


async def _probe(ready: Readiness) -> dict[str, bool]:
    names = list(ready)
    answers = await asyncio.gather(*(_reachable(ready[name]) for name in names))
    return dict(zip(names, answers, strict=True))


async def _reachable(probe: Probe) -> bool:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            return await probe()
    except Exception as error:  # unreachable, however it failed; the change is logged
        logger.debug("a readiness probe failed: %r", error)
        return False


async def _alive(request: Request) -> Reply:
    return Reply(HTTPStatus.OK, {"status": "alive"})


def health_servicer(server: grpc.aio.Server, dependents: Sequence[Dependent]) -> HealthServicer:
    """gRPC's health service on `server`, and reflection, which lets clients such as grpcurl
    list and call the services without our proto files."""
    servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    names = [service for dependent in dependents for service in dependent.services]
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    return servicer
