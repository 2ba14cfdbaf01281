"""Running our services as separate processes, as production does."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable

from stack.config import Settings
from stack.embedded import ChildProcess


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment under which a service process reads `settings`."""
    assert settings.nats_url
    assert settings.database_url
    return {
        **os.environ,
        "NATS_URL": settings.nats_url,
        "DATABASE_URL": settings.database_url,
        "GRPC_LISTEN": str(settings.grpc_listen),
        "HTTP_LISTEN": str(settings.http_listen),
        "STREAM_NAME": settings.stream_name,
        "SUBJECT_PREFIX": settings.subject_prefix,
        "STREAM_MAX_BYTES": str(settings.stream_max_bytes),
        "STREAM_MAX_MSGS": str(settings.stream_max_msgs),
        "STREAM_REPLICAS": str(settings.stream_replicas),
        "WRITER_DURABLE": settings.writer_durable,
        "WRITER_BATCH_SIZE": str(settings.writer_batch_size),
        "WRITER_CONCURRENCY": str(settings.writer_concurrency),
        "WRITER_ACK_WAIT": str(settings.writer_ack_wait),
        "WRITER_MAX_DELIVERIES": str(settings.writer_max_deliveries),
        "DEAD_LETTER_STREAM": settings.dead_letter_stream,
        "DEAD_LETTER_SUBJECT": settings.dead_letter_subject,
        "PUBLISH_TIMEOUT": str(settings.publish_timeout),
        "DATA_DIR": str(settings.data_dir),
    }


def start_service(module: str, settings: Settings) -> ChildProcess:
    """`python -m <module>` configured by `settings`; SIGTERM stops it."""
    process = ChildProcess(module, signal.SIGTERM)
    process.spawn([sys.executable, "-m", module], env=settings_env(settings))
    return process


ServiceStarter = Callable[[str, Settings], ChildProcess]
