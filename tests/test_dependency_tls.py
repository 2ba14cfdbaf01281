"""Reaching NATS and PostgreSQL over TLS, with credentials, as the settings say: against an
embedded nats-server that requires TLS and a user, and the tests' PostgreSQL behind a TLS end
(its wheel is built without SSL)."""

from __future__ import annotations

import shutil
import ssl
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import nats
import nats.errors
import pytest

from core.database import create_pool
from core.nats_connection import connect_nats, nats_options
from core.settings import Settings
from devstack.embedded import EmbeddedNats, EmbeddedPostgres, ServerTls
from ingest_server.service import ingest_doors
from runtime.serve import ApiServer, serving
from tests.support.certificates import Certificates, make_certificates
from tests.support.jetstream import events_in
from tests.support.tls_proxy import PostgresTlsProxy

EVENT = {"site_id": "site-1", "event_type": "page_view", "path": "/home"}


@pytest.fixture(scope="module")
def certificates() -> Iterator[Certificates]:
    directory = Path(tempfile.mkdtemp(prefix="analytics-certs-"))
    directory.chmod(0o755)  # PostgreSQL's user reads them when we are root
    yield make_certificates(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def other_ca() -> Iterator[Path]:
    """The certificate of a CA that signed nothing of ours."""
    directory = Path(tempfile.mkdtemp(prefix="analytics-certs-"))
    yield make_certificates(directory).ca
    shutil.rmtree(directory, ignore_errors=True)


class TestNats:
    @pytest.fixture
    def tls_nats(self, tmp_path: Path, certificates: Certificates) -> Iterator[EmbeddedNats]:
        tls = ServerTls(certificates.server_cert, certificates.server_key)
        with EmbeddedNats(tmp_path / "nats", tls=tls, user="ingest", password="s3cret") as server:
            yield server

    @pytest.fixture
    def tls_settings(
        self, settings: Settings, tls_nats: EmbeddedNats, certificates: Certificates
    ) -> Settings:
        return replace(settings, nats_url=tls_nats.url, nats_tls_ca_file=certificates.ca)

    @pytest.fixture
    async def api(self, tls_settings: Settings) -> AsyncIterator[ApiServer]:
        async with serving(tls_settings, [ingest_doors]) as server:
            yield server

    async def test_events_are_published_over_tls_with_a_user_and_password(
        self, api: ApiServer, tls_settings: Settings
    ) -> None:
        async with httpx.AsyncClient(base_url=f"http://{api.http}") as http:
            response = await http.post("/event", json=EVENT)

        nc = await connect_nats(tls_settings, "test")
        try:
            stored = await events_in(nc.jetstream(), tls_settings.stream_name)
        finally:
            await nc.close()
        assert response.status_code == 202
        assert [event.path for event in stored] == ["/home"]

    async def test_a_server_certificate_of_another_ca_is_refused(
        self, tls_settings: Settings, other_ca: Path
    ) -> None:
        untrusting = replace(tls_settings, nats_tls_ca_file=other_ca)

        with pytest.raises(ssl.SSLCertVerificationError):
            await nats.connect(
                untrusting.nats_servers, allow_reconnect=False, **nats_options(untrusting)
            )

    async def test_a_wrong_password_is_refused(self, tls_settings: Settings) -> None:
        wrong = replace(tls_settings, nats_url=tls_settings.nats_servers[0].replace("s3cret", "x"))

        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await nats.connect(wrong.nats_servers, allow_reconnect=False, **nats_options(wrong))


async def test_nats_asking_for_a_client_certificate_gets_the_configured_one(
    tmp_path: Path, settings: Settings, certificates: Certificates
) -> None:
    tls = ServerTls(certificates.server_cert, certificates.server_key, certificates.ca)
    with EmbeddedNats(tmp_path / "nats", tls=tls) as server:
        mutual = replace(
            settings,
            nats_url=server.url,
            nats_tls_ca_file=certificates.ca,
            nats_tls_cert_file=certificates.client_cert,
            nats_tls_key_file=certificates.client_key,
        )
        nc = await connect_nats(mutual, "test")
        try:
            assert nc.is_connected
        finally:
            await nc.close()


def test_a_nats_credentials_file_is_handed_to_the_client(tmp_path: Path) -> None:
    creds = tmp_path / "writer.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n...\n")

    options = nats_options(Settings.from_env({"NATS_CREDS_FILE": str(creds)}))

    assert options == {"user_credentials": str(creds)}


@pytest.fixture
async def tls_postgres(
    postgres_server: EmbeddedPostgres, certificates: Certificates
) -> AsyncIterator[PostgresTlsProxy]:
    """The tests' PostgreSQL behind a TLS end with our server certificate."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.server_cert, certificates.server_key)
    async with PostgresTlsProxy(postgres_server.port, context) as proxy:
        yield proxy


class TestPostgres:
    async def test_a_verified_tls_connection_is_made_as_database_url_asks(
        self, tls_postgres: PostgresTlsProxy, certificates: Certificates
    ) -> None:
        url = _url(tls_postgres, f"sslmode=verify-full&sslrootcert={certificates.ca}")

        pool = await create_pool(Settings(database_url=url), max_size=1)
        try:
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()
        assert tls_postgres.tls_sessions == 1

    async def test_a_server_certificate_of_another_ca_is_refused_at_once(
        self, tls_postgres: PostgresTlsProxy, other_ca: Path
    ) -> None:
        url = _url(tls_postgres, f"sslmode=verify-full&sslrootcert={other_ca}")

        with pytest.raises(ssl.SSLCertVerificationError):
            await create_pool(Settings(database_url=url), max_size=1)

    async def test_tls_can_be_asked_for_outside_the_url_by_libpq_variables(
        self,
        tls_postgres: PostgresTlsProxy,
        certificates: Certificates,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("PGSSLMODE", "verify-full")
        monkeypatch.setenv("PGSSLROOTCERT", str(certificates.ca))

        pool = await create_pool(Settings(database_url=_url(tls_postgres, "")), max_size=1)
        try:
            assert await pool.fetchval("SELECT 1") == 1
        finally:
            await pool.close()
        assert tls_postgres.tls_sessions == 1


def _url(proxy: PostgresTlsProxy, query: str) -> str:
    url = f"postgresql://postgres@127.0.0.1:{proxy.port}/postgres"
    return f"{url}?{query}" if query else url
