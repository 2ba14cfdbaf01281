"""TLS on the ports a service serves, from the certificate and key in its settings
(TLS_CERT_FILE, TLS_KEY_FILE): gRPC with, optionally, client certificates required and checked
against GRPC_TLS_CLIENT_CA_FILE (mutual TLS), and HTTP. Without them both serve plain text, as
behind a proxy or load balancer that ends TLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from core.settings import Settings


@dataclass(frozen=True)
class ServerCertificate:
    cert_file: Path
    key_file: Path


def server_certificate(settings: Settings) -> ServerCertificate | None:
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    return ServerCertificate(settings.tls_cert_file, settings.tls_key_file)


def grpc_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """The gRPC server's credentials; None: plain text."""
    certificate = server_certificate(settings)
    if certificate is None:
        return None
    client_ca = settings.grpc_tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(certificate.key_file.read_bytes(), certificate.cert_file.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca is not None else None,
        require_client_auth=client_ca is not None,
    )


def http_scheme(settings: Settings) -> str:
    """How the HTTP ports are addressed: `https` with a certificate, else `http`."""
    return "https" if server_certificate(settings) is not None else "http"
