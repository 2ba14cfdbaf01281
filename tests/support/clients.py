"""gRPC clients for the tests, and reading google.rpc.BadRequest out of a failed call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import grpc
from analytics.v1 import ingest_pb2_grpc, report_pb2_grpc, site_pb2_grpc
from google.protobuf.message import Message
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from core.settings import Address


@dataclass(frozen=True)
class GrpcClients:
    ingest: ingest_pb2_grpc.IngestServiceAsyncStub
    report: report_pb2_grpc.ReportServiceAsyncStub
    sites: site_pb2_grpc.SiteServiceAsyncStub


@asynccontextmanager
async def grpc_clients(address: Address) -> AsyncIterator[GrpcClients]:
    async with grpc.aio.insecure_channel(str(address)) as channel:
        yield GrpcClients(
            ingest_pb2_grpc.IngestServiceStub(channel),
            report_pb2_grpc.ReportServiceStub(channel),
            site_pb2_grpc.SiteServiceStub(channel),
        )


def field_violations(error: grpc.aio.AioRpcError) -> list[tuple[str, str]]:
    """The (field, description) pairs of the BadRequest detail of a failed call."""
    bad_request = status_detail(error, error_details_pb2.BadRequest)
    return [(v.field, v.description) for v in bad_request.field_violations]


def retry_delay(error: grpc.aio.AioRpcError) -> int:
    """The RetryInfo delay, in seconds, in the details of a failed call."""
    seconds: int = status_detail(error, error_details_pb2.RetryInfo).retry_delay.seconds
    return seconds


M = TypeVar("M", bound=Message)


def status_detail(error: grpc.aio.AioRpcError, kind: type[M]) -> M:
    """The detail of type `kind` in the google.rpc.Status of a failed call, read as a client
    would, with grpcio-status (which also checks that code and message match the call's)."""
    status = rpc_status.from_call(error)
    assert status is not None, f"no google.rpc.Status in {error!r}"
    for detail in status.details:
        found = kind()
        if detail.Unpack(found):
            return found
    raise AssertionError(f"no {kind.DESCRIPTOR.full_name} detail in {error!r}")
