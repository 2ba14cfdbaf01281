"""`analytics-ingest`: IngestService over gRPC, and `POST /event(s)` over HTTP."""

from __future__ import annotations

from stack.serve import main_for


def main() -> None:
    main_for("analytics-ingest", "ingest_server", ingest=True, report=False)


if __name__ == "__main__":
    main()
