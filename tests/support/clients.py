"""gRPC clients for the tests, and reading google.rpc.BadRequest out of a failed call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc
from analytics.v1 import ingest_pb2_grpc, report_pb2_grpc
from google.rpc import error_details_pb2, status_pb2

from stack.config import Address
from stack.grpc_errors import STATUS_DETAILS_KEY


@dataclass(frozen=True)
class GrpcClients:
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub
    report: report_pb2_grpc.ReportServiceAsyncStub


@asynccontextmanager
async def grpc_clients(address: Address) -> AsyncIterator[GrpcClients]:
    async with grpc.aio.insecure_channel(str(address)) as channel:
        yield GrpcClients(
            ingest_pb2_grpc.IngestServiceStub(channel),
            report_pb2_grpc.ReportServiceStub(channel),
        )


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the BadRequest detail of a failed call."""
    for key, value in error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            assert isinstance(value, bytes)
            status = status_pb2.Status.FromString(value)
            assert status.code == error.code().value[0]
            for detail in status.details:
                bad_request = error_details_pb2.BadRequest()
                if detail.Unpack(bad_request):
                    return [(v.field, v.description) for v in bad_request.field_violations]
    raise AssertionError(f"no BadRequest detail in {error!r}")
