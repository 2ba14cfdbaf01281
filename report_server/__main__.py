"""`analytics-report`: ReportService over gRPC, and `GET /stats` over HTTP."""

from __future__ import annotations

from report_server.service import report_doors
from runtime.serve import main_for


def main() -> None:
    main_for("analytics-report", "report_server", [report_doors])


if __name__ == "__main__":
    main()
