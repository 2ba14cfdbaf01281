"""Running our services as separate processes, as production does."""

from __future__ import annotations

import os

from stack.config import Settings


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
        "WRITER_DURABLE": settings.writer_durable,
        "WRITER_BATCH_SIZE": str(settings.writer_batch_size),
        "WRITER_ACK_WAIT": str(settings.writer_ack_wait),
        "DATA_DIR": str(settings.data_dir),
    }
