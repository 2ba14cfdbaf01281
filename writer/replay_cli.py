"""`analytics-replay`: count a site's stored events again, or store the stream's events again.

    analytics-replay rebuild SITE_ID [--from DAY] [--to DAY]

`rebuild` makes the site's aggregates of the days DAY..DAY (YYYY-MM-DD in the site's time zone;
by default from the day of its first stored event to that of its last) again from the events
it has stored, then its all-time aggregates from its days (writer/rebuild.py). Safe while the
writer runs, and to run again: the numbers come out the same. Days whose raw events are no
longer all stored must not be in the range: they would count only those left. Prints a line
per day. Configured by DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date

from core.database import create_pool
from core.settings import Settings
from runtime.lifecycle import settings_or_exit
from writer.rebuild import DayRebuilt, UnknownSite, rebuild, site_days

PROG = "analytics-replay"


def main(argv: Sequence[str] | None = None) -> None:
    arguments = _parser().parse_args(argv)
    settings = settings_or_exit(PROG)
    sys.exit(asyncio.run(_rebuild(settings, arguments)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Count a site's stored events into its aggregates again.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    rebuilding = commands.add_parser(
        "rebuild", help="make a site's aggregates of a range of days again from its events"
    )
    rebuilding.add_argument("site_id", metavar="SITE_ID")
    rebuilding.add_argument(
        "--from",
        dest="first",
        type=date.fromisoformat,
        metavar="DAY",
        help="first day, YYYY-MM-DD in the site's time zone (default: its first event's)",
    )
    rebuilding.add_argument(
        "--to",
        dest="last",
        type=date.fromisoformat,
        metavar="DAY",
        help="last day, included (default: the day of its last event)",
    )
    return parser


async def _rebuild(settings: Settings, arguments: argparse.Namespace) -> int:
    site_id: str = arguments.site_id
    pool = await create_pool(settings, max_size=1)
    try:
        first: date | None = arguments.first
        last: date | None = arguments.last
        if first is None or last is None:
            span = await site_days(pool, site_id)
            if span is None:
                print(f"site {site_id!r} has no stored events: nothing to rebuild")
                return 0
            first, last = first or span[0], last or span[1]
        if last < first:
            print(f"{PROG}: --to {last} is before --from {first}", file=sys.stderr)
            return 2
        result = await rebuild(pool, site_id, first, last, _print_day)
    except UnknownSite:
        print(f"{PROG}: site {site_id!r} is not registered", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    print(
        f"rebuilt {site_id}: {result.days} days, {result.events:,} events, "
        f"all-time aggregates made again from its days, in {result.seconds:.1f} s"
    )
    return 0


def _print_day(day: DayRebuilt) -> None:
    print(
        f"{day.day} {day.events:>10,} events  ({day.done}/{day.days} days, "
        f"{day.total_events:,} events, {day.seconds:.1f} s)",
        flush=True,
    )


if __name__ == "__main__":
    main()
