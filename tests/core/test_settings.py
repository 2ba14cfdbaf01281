from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Address, ConfigError, Settings, markdown_table, redacted


def test_an_empty_environment_gives_the_documented_defaults() -> None:
    settings = Settings.from_env({})

    assert settings == Settings(
        nats_url=None,
        database_url=None,
        grpc_listen=Address("127.0.0.1", 50051),
        http_listen=Address("127.0.0.1", 8000),
        api_processes=1,
        share_ports=False,
        stream_name="ANALYTICS_EVENTS",
        subject_prefix="analytics.events",
        stream_max_bytes=1073741824,
        stream_max_msgs=-1,
        stream_replicas=1,
        dead_letter_stream="ANALYTICS_DEAD_LETTERS",
        dead_letter_subject="analytics.dead_letters",
        dead_letter_max_bytes=268435456,
        dead_letter_max_msgs=100000,
        writer_durable="writer",
        writer_batch_size=5000,
        writer_concurrency=2,
        writer_linger=0.25,
        writer_ack_wait=30.0,
        writer_max_deliveries=5,
        publish_timeout=5.0,
        max_body_bytes=1048576,
        http_read_timeout=10.0,
        http_max_connections=1000,
        grpc_max_concurrent_rpcs=1000,
        grpc_max_connection_age=300.0,
        grpc_max_connection_age_grace=90.0,
        ingest_stream_max_events=100000,
        ingest_stream_max_seconds=60.0,
        report_pool_size=10,
        report_acquire_timeout=2.0,
        report_statement_timeout=10.0,
        cors_allow_origins=("*",),
        log_level="INFO",
        data_dir=Path(".data"),
    )


def test_unset_urls_resolve_to_the_standard_local_servers() -> None:
    settings = Settings.from_env({})

    assert (settings.nats_servers, settings.database_dsn) == (
        ["nats://127.0.0.1:4222"],
        "postgresql://postgres@127.0.0.1:5432/analytics",
    )


def test_every_variable_is_read() -> None:
    settings = Settings.from_env(
        {
            "NATS_URL": "nats://n:4222",
            "DATABASE_URL": "postgresql://p/db",
            "GRPC_LISTEN": "0.0.0.0:6000",
            "HTTP_LISTEN": "[::]:7000",
            "API_PROCESSES": "2",
            "SHARE_PORTS": "true",
            "STREAM_NAME": "S",
            "SUBJECT_PREFIX": "a.b",
            "STREAM_MAX_BYTES": "1000000",
            "STREAM_MAX_MSGS": "500",
            "STREAM_REPLICAS": "3",
            "DEAD_LETTER_STREAM": "DLQ",
            "DEAD_LETTER_SUBJECT": "x.dlq",
            "DEAD_LETTER_MAX_BYTES": "4096",
            "DEAD_LETTER_MAX_MSGS": "-1",
            "WRITER_DURABLE": "w2",
            "WRITER_BATCH_SIZE": "50",
            "WRITER_CONCURRENCY": "3",
            "WRITER_LINGER": "0",
            "WRITER_ACK_WAIT": "2.5",
            "WRITER_MAX_DELIVERIES": "3",
            "PUBLISH_TIMEOUT": "0.5",
            "MAX_BODY_BYTES": "2048",
            "HTTP_READ_TIMEOUT": "30",
            "HTTP_MAX_CONNECTIONS": "64",
            "GRPC_MAX_CONCURRENT_RPCS": "100",
            "GRPC_MAX_CONNECTION_AGE": "600",
            "GRPC_MAX_CONNECTION_AGE_GRACE": "30",
            "INGEST_STREAM_MAX_EVENTS": "5000",
            "INGEST_STREAM_MAX_SECONDS": "20",
            "REPORT_POOL_SIZE": "4",
            "REPORT_ACQUIRE_TIMEOUT": "0.5",
            "REPORT_STATEMENT_TIMEOUT": "30",
            "CORS_ALLOW_ORIGINS": "https://a.example, https://b.example",
            "LOG_LEVEL": "debug",
            "DATA_DIR": "/tmp/d",
        }
    )

    assert settings == Settings(
        nats_url="nats://n:4222",
        database_url="postgresql://p/db",
        grpc_listen=Address("0.0.0.0", 6000),
        http_listen=Address("::", 7000),
        api_processes=2,
        share_ports=True,
        stream_name="S",
        subject_prefix="a.b",
        stream_max_bytes=1000000,
        stream_max_msgs=500,
        stream_replicas=3,
        dead_letter_stream="DLQ",
        dead_letter_subject="x.dlq",
        dead_letter_max_bytes=4096,
        dead_letter_max_msgs=-1,
        writer_durable="w2",
        writer_batch_size=50,
        writer_concurrency=3,
        writer_linger=0.0,
        writer_ack_wait=2.5,
        writer_max_deliveries=3,
        publish_timeout=0.5,
        max_body_bytes=2048,
        http_read_timeout=30.0,
        http_max_connections=64,
        grpc_max_concurrent_rpcs=100,
        grpc_max_connection_age=600.0,
        grpc_max_connection_age_grace=30.0,
        ingest_stream_max_events=5000,
        ingest_stream_max_seconds=20.0,
        report_pool_size=4,
        report_acquire_timeout=0.5,
        report_statement_timeout=30.0,
        cors_allow_origins=("https://a.example", "https://b.example"),
        log_level="DEBUG",
        data_dir=Path("/tmp/d"),
    )


def test_settings_read_back_from_the_environment_they_give_a_child_process() -> None:
    settings = Settings.from_env(
        {
            "NATS_URL": "nats://n:4222",
            "DATABASE_URL": "postgresql://p/db",
            "GRPC_LISTEN": "[::1]:6000",
            "SHARE_PORTS": "1",
            "WRITER_ACK_WAIT": "2.5",
            "CORS_ALLOW_ORIGINS": "https://a.example https://b.example",
            "DATA_DIR": "/tmp/d",
        }
    )

    assert Settings.from_env(settings.to_env()) == settings


def test_the_environment_of_default_settings_leaves_the_urls_unset() -> None:
    env = Settings().to_env()

    assert ("NATS_URL" in env, "DATABASE_URL" in env, env["STREAM_NAME"]) == (
        False,
        False,
        "ANALYTICS_EVENTS",
    )


def test_the_readme_lists_every_setting_as_declared() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    start = readme.index("<!-- settings table: python -m core.settings -->\n")
    table = readme[start:].split("\n", 1)[1]

    assert table.startswith(markdown_table())
    assert table[len(markdown_table()) :].startswith("<!-- end of settings table -->")


def test_nats_url_may_list_the_servers_of_a_cluster() -> None:
    settings = Settings.from_env({"NATS_URL": "nats://a:4222, nats://b:4222,nats://c:4222"})

    assert settings.nats_servers == ["nats://a:4222", "nats://b:4222", "nats://c:4222"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("GRPC_LISTEN", "50051", "GRPC_LISTEN: expected host:port, got '50051'"),
        ("GRPC_LISTEN", "h:\u00b2", "GRPC_LISTEN: expected host:port, got 'h:\u00b2'"),
        ("WRITER_BATCH_SIZE", "many", "WRITER_BATCH_SIZE: expected an integer, got 'many'"),
        ("WRITER_BATCH_SIZE", "0", "WRITER_BATCH_SIZE: must be between 1 and 100000, got 0"),
        ("WRITER_CONCURRENCY", "0", "WRITER_CONCURRENCY: must be between 1 and 16, got 0"),
        ("PUBLISH_TIMEOUT", "-1", "PUBLISH_TIMEOUT: must be more than 0 and at most 3600, got -1"),
        ("WRITER_LINGER", "-0.1", "WRITER_LINGER: must be between 0 and 3600, got -0.1"),
        (
            "STREAM_NAME",
            "a.b",
            "STREAM_NAME: only letters, digits, '_' and '-' are allowed, got 'a.b'",
        ),
        (
            "SUBJECT_PREFIX",
            "a.*",
            "SUBJECT_PREFIX: expected a NATS subject without wildcards, got 'a.*'",
        ),
        ("LOG_LEVEL", "loud", "LOG_LEVEL: expected one of DEBUG, INFO, WARNING, ERROR, got 'LOUD'"),
        ("SHARE_PORTS", "yes", "SHARE_PORTS: expected 1, 0, true or false, got 'yes'"),
        ("API_PROCESSES", "0", "API_PROCESSES: must be between 1 and 64, got 0"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})

    assert str(caught.value) == message


def test_redacted_urls_keep_the_user_and_hide_the_password() -> None:
    urls = "nats://app:s3cret@n1:4222,nats://n2:4222, postgresql://pg:pw@db:5432/analytics"

    assert redacted(urls) == (
        "nats://app:***@n1:4222,nats://n2:4222,postgresql://pg:***@db:5432/analytics"
    )


def test_redacted_urls_hide_a_nats_token() -> None:
    assert redacted("nats://s3cr3tToken@n1:4222,tls://t0k@n2:4222") == (
        "nats://***@n1:4222,tls://***@n2:4222"
    )


def test_redacted_urls_keep_a_user_that_has_no_password() -> None:
    assert redacted("postgresql://postgres@127.0.0.1:5432/analytics") == (
        "postgresql://postgres@127.0.0.1:5432/analytics"
    )
