"""The development stack's API process: the ingest and report services in one process, so
that gRPC (both services) and HTTP (all routes) each have a single address."""

from __future__ import annotations

from collections.abc import Sequence

from ingest_server.service import ingest_doors
from report_server.service import report_doors
from runtime.serve import DoorsOpener, main_for

SERVICES: Sequence[DoorsOpener] = (ingest_doors, report_doors)


def main() -> None:
    main_for("analytics-api", "devstack.api", SERVICES)


if __name__ == "__main__":
    main()
