"""`analytics-replay`: count a site's stored events again, or store the stream's events again.

    analytics-replay rebuild SITE_ID [--from DAY] [--to DAY]
    analytics-replay consume (--sequence N | --since TIME)

`rebuild` makes the site's aggregates of the days DAY..DAY (YYYY-MM-DD in the site's time zone;
by default from the day of its first stored event to that of its last) again from the events
it has stored, then its all-time aggregates from its days (writer/rebuild.py). Safe while the
writer runs, and to run again: the numbers come out the same. Days whose raw events are no
longer all stored must not be in the range: they would count only those left (days before the
first stored event are refused). Prints a line
per day. Configured by DATABASE_URL.

`consume` stores the events of the archive stream (`<STREAM_NAME>_ARCHIVE`, kept by the writer
when STREAM_ARCHIVE_DAYS is set) again, from stream sequence N or from TIME (ISO 8601, e.g.
2025-11-14T09:00:00Z) up to its last message when the command starts (writer/reconsume.py).
Events already stored change nothing; those missing are stored and counted. Prints progress
every few seconds. Configured by DATABASE_URL, NATS_URL and STREAM_NAME.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import date, datetime

import nats
import nats.errors
from nats.js.errors import NotFoundError

from core.database import create_pool
from core.nats_connection import nats_options
from core.settings import Settings
from core.stream import ArchiveStream
from runtime.lifecycle import settings_or_exit
from writer.rebuild import DayRebuilt, RawEventsMissing, UnknownSite, rebuild, site_days
from writer.reconsume import Replayed, reconsume
from writer.store import EventStore

PROG = "analytics-replay"


def main(argv: Sequence[str] | None = None) -> None:
    arguments = _parser().parse_args(argv)
    settings = settings_or_exit(PROG)
    command = _rebuild if arguments.command == "rebuild" else _consume
    sys.exit(asyncio.run(command(settings, arguments)))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Count a site's stored events into its aggregates again, or store the "
        "archived stream's events again.",
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
    consuming = commands.add_parser(
        "consume", help="store the archive stream's events again from a sequence or a time"
    )
    start = consuming.add_mutually_exclusive_group(required=True)
    start.add_argument("--sequence", type=int, metavar="N", help="the archive's sequence")
    start.add_argument(
        "--since", type=_instant, metavar="TIME", help="ISO 8601 with a zone, e.g. ...T09:00Z"
    )
    consuming.add_argument(
        "--batch", type=int, default=5000, metavar="N", help="events per transaction"
    )
    return parser


def _instant(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} names no zone (add Z or +HH:MM)")
    return value


async def _consume(settings: Settings, arguments: argparse.Namespace) -> int:
    archive = ArchiveStream.from_settings(settings)
    try:
        nc = await nats.connect(
            settings.nats_servers,
            connect_timeout=2,
            allow_reconnect=False,
            **nats_options(settings),
        )
    except (OSError, TimeoutError, nats.errors.Error) as error:
        print(f"{PROG}: cannot reach NATS: {error}", file=sys.stderr)
        return 1
    pool = await create_pool(settings, max_size=1)
    try:
        start = arguments.since if arguments.since is not None else arguments.sequence
        result = await reconsume(
            nc.jetstream(),
            EventStore(pool),
            archive,
            start,
            batch_events=arguments.batch,
            progress=_print_replayed,
        )
    except NotFoundError:
        print(
            f"{PROG}: no stream {archive.name}: the writer keeps it when STREAM_ARCHIVE_DAYS is "
            "set",
            file=sys.stderr,
        )
        return 1
    finally:
        await pool.close()
        await nc.close()
    for refusal in result.refused:
        print(f"refused by PostgreSQL: {refusal}")
    print(
        f"replayed {archive.name} up to sequence {result.sequence}: {result.messages:,} "
        f"messages, {result.events:,} events, {result.stored:,} stored anew (the others were "
        f"stored already), {result.filtered_skipped:,} filtered-traffic counts skipped, "
        f"{result.unreadable:,} unreadable, {len(result.refused):,} refused, "
        f"in {result.seconds:.1f} s"
    )
    return 0


def _print_replayed(replayed: Replayed) -> None:
    print(
        f"sequence {replayed.sequence:,} of {replayed.last_sequence:,}: {replayed.events:,} "
        f"events, {replayed.stored:,} stored anew ({replayed.seconds:.1f} s)",
        flush=True,
    )


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
    except RawEventsMissing as missing:
        since = (
            f"start on {missing.first_stored}"
            if missing.first_stored
            else "are all gone, or it has none"
        )
        print(
            f"{PROG}: the stored events of {site_id!r} {since}: days before cannot be rebuilt "
            "(their aggregates are all that is left of them)",
            file=sys.stderr,
        )
        return 1
    finally:
        await pool.close()
    print(
        f"rebuilt {site_id}: {result.days} days, {result.events:,} events, "
        f"its weeks' rollups and all-time aggregates made again from its days, in "
        f"{result.seconds:.1f} s"
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
