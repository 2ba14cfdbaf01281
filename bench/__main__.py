"""`python -m bench`: run the benchmark and print the table (see bench/runner.py)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.runner import Plan, run
from bench.stats_load import GROWTHS

PHASES = ("http", "grpc", "writer", "stack", "stats", "limits")


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Start the stack on embedded servers, measure every performance figure "
        "against its reference in the same run, print one table (also written to "
        "bench/results/).",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short runs and a 0.1M/1M-event stats history, for development (about 2 minutes)",
    )
    parser.add_argument("--runs", type=int, help="runs per figure; the table shows the median")
    parser.add_argument(
        "--only",
        choices=PHASES,
        action="append",
        help="run only this phase (repeatable); memory is reported for what ran",
    )
    parser.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="events in the large stats history (default 10,000,000; the small one is N/10)",
    )
    parser.add_argument(
        "--small-events",
        type=int,
        metavar="N",
        help="events in the small stats history, the one the large one's figures are held "
        "against (default: --events / 10), e.g. --events 50000000 --small-events 10000000",
    )
    parser.add_argument(
        "--grow",
        choices=GROWTHS,
        help="what the large stats history has more of than the small one: events on the same "
        "365 days (traffic, the default: every site busier) or days before them at the same "
        "events a day (history: e.g. 2M over 365 days against 10M over 1,825)",
    )
    parser.add_argument("--writer-events", type=int, metavar="N", help="events per writer run")
    parser.add_argument("--seconds", type=float, help="length of each HTTP and gRPC run")
    parser.add_argument(
        "--ingest-processes",
        type=int,
        help="API_PROCESSES of the ingest server (default 2: one per core of this machine)",
    )
    parser.add_argument(
        "--grpc-calls", type=int, metavar="N", help="IngestBatch calls in flight (default 16)"
    )
    parser.add_argument(
        "--http-sites",
        type=int,
        metavar="N",
        help="spread the HTTP bodies evenly over N sites (default: 4 sites of unequal traffic)",
    )
    parser.add_argument(
        "--writer-sites",
        type=int,
        metavar="N",
        help="spread the writer phase's events evenly over N sites (default: 4 sites of "
        "unequal traffic)",
    )
    parser.add_argument(
        "--load-workers", type=int, help="processes loading the stats history (default 2)"
    )
    parser.add_argument(
        "--service-env",
        type=_setting,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for every service process, e.g. WRITER_BATCH_SIZE=2000 (repeatable)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 when a figure misses its target (errors always give 2)",
    )
    parser.add_argument(
        "--reference-path",
        type=Path,
        help="where uvloop, httptools and orjson for the raw ASGI reference are installed "
        "(default .venv/bench-reference, filled by `make bench`)",
    )
    args = parser.parse_args()
    overrides: dict[str, object] = {
        "runs": args.runs,
        "phases": tuple(args.only) if args.only else None,
        "stats_large": args.events,
        "stats_small": args.small_events or (args.events // 10 if args.events else None),
        "stats_growth": args.grow,
        "writer_events": args.writer_events,
        "http_seconds": args.seconds,
        "grpc_seconds": args.seconds,
        "load_workers": args.load_workers,
        "ingest_processes": args.ingest_processes,
        "grpc_calls": args.grpc_calls,
        "http_sites": args.http_sites,
        "writer_sites": args.writer_sites,
        "service_env": dict(args.service_env) or None,
        "reference_path": args.reference_path.resolve() if args.reference_path else None,
        "strict": args.strict or None,
    }
    plan = Plan.quick_plan(**overrides) if args.quick else Plan.full(**overrides)
    sys.exit(run(plan))


if __name__ == "__main__":
    main()
