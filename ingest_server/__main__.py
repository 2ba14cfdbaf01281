"""`analytics-ingest`: IngestService over gRPC, and `POST /event(s)` over HTTP."""

from __future__ import annotations

from ingest_server.service import ingest_doors
from runtime.serve import main_for


def main() -> None:
    main_for("analytics-ingest", "ingest_server", [ingest_doors])


if __name__ == "__main__":
    main()
