"""The request ids of the events a writer's log line is about, bounded: a batch may hold the
events of thousands of requests, and a line names a few and counts the rest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_LOGGED_REQUEST_IDS = 5


@dataclass(frozen=True)
class LoggedRequests:
    shown: list[str]  # the first MAX_LOGGED_REQUEST_IDS distinct ids, in order
    more: int  # distinct ids not shown

    @classmethod
    def of(cls, request_ids: Iterable[str]) -> LoggedRequests:
        distinct = list(dict.fromkeys(filter(None, request_ids)))
        return cls(
            distinct[:MAX_LOGGED_REQUEST_IDS], max(0, len(distinct) - MAX_LOGGED_REQUEST_IDS)
        )

    def __str__(self) -> str:
        if not self.shown:
            return "no request ids"
        more = f" and {self.more} more" if self.more else ""
        return f"requests {', '.join(self.shown)}{more}"

    @property
    def extra(self) -> dict[str, object]:
        """For a log call's `extra`: the ids as a field of a JSON log line."""
        return {"request_ids": self.shown}
