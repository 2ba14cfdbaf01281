"""TLS on the services' ports: HTTP and gRPC with the configured certificate, and gRPC with
client certificates required (mutual TLS)."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from core.settings import ConfigError, Settings
from report_server.service import report_doors
from runtime.serve import ApiServer, serving
from tests.support.certificates import Certificates, make_certificates


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    return make_certificates(tmp_path)


class TestServerTls:
    @pytest.fixture
    async def api(
        self, settings: Settings, migrated: None, certificates: Certificates
    ) -> AsyncIterator[ApiServer]:
        tls = replace(
            settings,
            tls_cert_file=certificates.server_cert,
            tls_key_file=certificates.server_key,
        )
        async with serving(tls, [report_doors]) as server:
            yield server

    async def test_http_is_served_over_tls(
        self, api: ApiServer, certificates: Certificates
    ) -> None:
        trusted = ssl.create_default_context(cafile=certificates.ca)
        async with httpx.AsyncClient(verify=trusted) as client:
            response = await client.get(f"https://{api.http}/readyz")

        assert response.status_code == 200

    async def test_plain_http_is_not_answered(self, api: ApiServer) -> None:
        async with httpx.AsyncClient() as client:
            with pytest.raises(httpx.HTTPError):
                await client.get(f"http://{api.http}/healthz")

    async def test_grpc_is_served_over_tls(
        self, api: ApiServer, certificates: Certificates
    ) -> None:
        credentials = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
        async with grpc.aio.secure_channel(str(api.grpc), credentials) as channel:
            assert await _serving(channel)

    async def test_plain_grpc_is_refused(self, api: ApiServer) -> None:
        async with grpc.aio.insecure_channel(str(api.grpc)) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await _serving(channel)

        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


class TestMutualTls:
    @pytest.fixture
    async def api(
        self, settings: Settings, migrated: None, certificates: Certificates
    ) -> AsyncIterator[ApiServer]:
        mutual = replace(
            settings,
            tls_cert_file=certificates.server_cert,
            tls_key_file=certificates.server_key,
            grpc_tls_client_ca_file=certificates.ca,
        )
        async with serving(mutual, [report_doors]) as server:
            yield server

    async def test_a_client_with_a_certificate_of_the_ca_is_served(
        self, api: ApiServer, certificates: Certificates
    ) -> None:
        credentials = grpc.ssl_channel_credentials(
            certificates.ca.read_bytes(),
            private_key=certificates.client_key.read_bytes(),
            certificate_chain=certificates.client_cert.read_bytes(),
        )
        async with grpc.aio.secure_channel(str(api.grpc), credentials) as channel:
            assert await _serving(channel)

    async def test_a_client_without_a_certificate_is_refused(
        self, api: ApiServer, certificates: Certificates
    ) -> None:
        credentials = grpc.ssl_channel_credentials(certificates.ca.read_bytes())
        async with grpc.aio.secure_channel(str(api.grpc), credentials) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await _serving(channel)

        assert failure.value.code() == grpc.StatusCode.UNAVAILABLE


def test_a_certificate_without_its_key_is_a_configuration_error(
    certificates: Certificates,
) -> None:
    with pytest.raises(ConfigError, match="TLS_CERT_FILE: needs TLS_KEY_FILE too"):
        Settings.from_env({"TLS_CERT_FILE": str(certificates.server_cert)})


def test_client_certificates_without_a_server_certificate_are_a_configuration_error(
    certificates: Certificates,
) -> None:
    with pytest.raises(ConfigError, match="GRPC_TLS_CLIENT_CA_FILE: needs TLS_CERT_FILE too"):
        Settings.from_env({"GRPC_TLS_CLIENT_CA_FILE": str(certificates.ca)})


def test_a_missing_certificate_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TLS_CERT_FILE: no such file"):
        Settings.from_env({"TLS_CERT_FILE": str(tmp_path / "nowhere.pem")})


async def _serving(channel: grpc.aio.Channel) -> bool:
    stub: Any = health_pb2_grpc.HealthStub(channel)
    answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)
