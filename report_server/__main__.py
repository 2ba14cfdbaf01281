"""`analytics-report`: ReportService over gRPC, and `GET /stats` over HTTP."""

from __future__ import annotations

from stack.serve import main_for


def main() -> None:
    main_for("analytics-report", "report_server", ingest=False, report=True)


if __name__ == "__main__":
    main()
