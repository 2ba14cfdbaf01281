"""What both clients are configured with, checked once, and the gRPC channel it describes."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import grpc

from analytics_client.events import Rejection
from analytics_client.retry import MAX_BACKOFF

MAX_BATCH_SIZE = 1000  # events per request the server takes

logger = logging.getLogger("analytics_client")

WhenFull = Literal["drop", "block"]
RejectionHandler = Callable[[Rejection], None]


@dataclass(frozen=True)
class Options:
    target: str
    max_queue: int = 10_000
    when_full: WhenFull = "drop"
    block_timeout: float | None = None
    batch_size: int = 500
    flush_interval: float = 0.5
    request_timeout: float = 30.0
    exit_timeout: float = 5.0
    tls: bool | grpc.ChannelCredentials = False
    api_key: str | None = None
    metadata: Sequence[tuple[str, str]] = ()
    on_rejected: RejectionHandler | None = None

    def __post_init__(self) -> None:
        if self.max_queue < 1:
            raise ValueError("max_queue must be at least 1")
        if self.when_full not in ("drop", "block"):
            raise ValueError('when_full must be "drop" or "block"')
        if self.block_timeout is not None and self.block_timeout < 0:
            raise ValueError("block_timeout must be None or at least 0")
        if not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be from 1 to {MAX_BATCH_SIZE}")
        for name in ("flush_interval", "request_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be more than 0")
        if self.exit_timeout < 0:
            raise ValueError("exit_timeout must be at least 0")

    def call_metadata(self) -> tuple[tuple[str, str], ...]:
        """The metadata every call carries: the key, as `authorization: Bearer …`, and any
        given."""
        key = () if self.api_key is None else (("authorization", f"Bearer {self.api_key}"),)
        return (*key, *self.metadata)

    def open_channel(self) -> grpc.aio.Channel:
        """A channel to the target, in the running event loop."""
        options = [
            # gRPC waits up to two minutes between attempts to reconnect by default: a client
            # whose server was away for long would stay away that long after it is back.
            ("grpc.max_reconnect_backoff_ms", int(MAX_BACKOFF * 1000)),
            ("grpc.primary_user_agent", "analytics-client/0.1"),
        ]
        if self.tls is False:
            return grpc.aio.insecure_channel(self.target, options=options)
        credentials = grpc.ssl_channel_credentials() if self.tls is True else self.tls
        return grpc.aio.secure_channel(self.target, credentials, options=options)


def report_rejection(handler: RejectionHandler | None, rejection: Rejection) -> None:
    """Hand a rejection to the user's handler, whose errors are logged, never raised into the
    sender."""
    if handler is None:
        return
    try:
        handler(rejection)
    except Exception:
        logger.exception("on_rejected raised for event %s", rejection.event.event_id)
