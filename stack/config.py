"""Every setting of every service, read from environment variables in this one place.

The README's configuration table lists the same variables and defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/analytics"


class ConfigError(ValueError):
    """An environment variable holds a value the services cannot use."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name = name


@dataclass(frozen=True)
class Address:
    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    # None when unset: services then use DEFAULT_NATS_URL / DEFAULT_DATABASE_URL, and
    # `make run` starts embedded servers instead.
    nats_url: str | None = None
    database_url: str | None = None
    grpc_listen: Address = Address("127.0.0.1", 50051)
    http_listen: Address = Address("127.0.0.1", 8000)
    # Processes serving the gRPC and HTTP ports (stack.workers), for more than one core.
    api_processes: int = 1
    # Bind the ports with SO_REUSEPORT, so that several processes serve them; set for the
    # processes API_PROCESSES starts, or for processes started side by side by hand.
    share_ports: bool = False
    stream_name: str = "ANALYTICS_EVENTS"
    subject_prefix: str = "analytics.events"
    # The stream holds the writer's backlog; at either limit ingestion answers 429 /
    # RESOURCE_EXHAUSTED instead of accepting more. -1: no limit.
    stream_max_bytes: int = 1024**3
    stream_max_msgs: int = -1
    stream_replicas: int = 1
    # Where the writer puts messages it cannot store, after WRITER_MAX_DELIVERIES attempts.
    dead_letter_stream: str = "ANALYTICS_DEAD_LETTERS"
    dead_letter_subject: str = "analytics.dead_letters"
    writer_durable: str = "writer"
    # Events per transaction: a bigger batch shares each aggregate row's upsert among more
    # events (docs/benchmarks.md: 2,000 → 5,000 drained about 13 % faster).
    writer_batch_size: int = 5000
    # Batches the writer stores at once, each in a transaction of its own.
    writer_concurrency: int = 2
    # How long JetStream waits for the writer's ack before redelivering a message, e.g. after
    # the writer crashed with it in hand.
    writer_ack_wait: float = 30.0
    writer_max_deliveries: int = 5
    publish_timeout: float = 5.0
    max_body_bytes: int = 1024 * 1024
    cors_allow_origins: tuple[str, ...] = ("*",)
    log_level: str = "INFO"
    data_dir: Path = Path(".data")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings, failing with a ConfigError that names the variable at fault."""
        env = _Env(os.environ if environ is None else environ)
        default = cls()
        return cls(
            nats_url=env.optional("NATS_URL"),
            database_url=env.optional("DATABASE_URL"),
            grpc_listen=env.address("GRPC_LISTEN", default.grpc_listen),
            http_listen=env.address("HTTP_LISTEN", default.http_listen),
            api_processes=env.integer("API_PROCESSES", default.api_processes, low=1, high=64),
            share_ports=env.flag("SHARE_PORTS", default.share_ports),
            stream_name=env.token("STREAM_NAME", default.stream_name),
            subject_prefix=env.subject("SUBJECT_PREFIX", default.subject_prefix),
            stream_max_bytes=env.integer(
                "STREAM_MAX_BYTES", default.stream_max_bytes, low=-1, high=2**62
            ),
            stream_max_msgs=env.integer(
                "STREAM_MAX_MSGS", default.stream_max_msgs, low=-1, high=2**62
            ),
            stream_replicas=env.integer("STREAM_REPLICAS", default.stream_replicas, low=1, high=5),
            dead_letter_stream=env.token("DEAD_LETTER_STREAM", default.dead_letter_stream),
            dead_letter_subject=env.subject("DEAD_LETTER_SUBJECT", default.dead_letter_subject),
            writer_durable=env.token("WRITER_DURABLE", default.writer_durable),
            writer_batch_size=env.integer(
                "WRITER_BATCH_SIZE", default.writer_batch_size, low=1, high=100_000
            ),
            writer_concurrency=env.integer(
                "WRITER_CONCURRENCY", default.writer_concurrency, low=1, high=16
            ),
            writer_ack_wait=env.seconds("WRITER_ACK_WAIT", default.writer_ack_wait),
            writer_max_deliveries=env.integer(
                "WRITER_MAX_DELIVERIES", default.writer_max_deliveries, low=1, high=1000
            ),
            publish_timeout=env.seconds("PUBLISH_TIMEOUT", default.publish_timeout),
            max_body_bytes=env.integer(
                "MAX_BODY_BYTES", default.max_body_bytes, low=1024, high=64 * 1024 * 1024
            ),
            cors_allow_origins=env.words("CORS_ALLOW_ORIGINS", default.cors_allow_origins),
            log_level=env.choice(
                "LOG_LEVEL", default.log_level, ("DEBUG", "INFO", "WARNING", "ERROR")
            ),
            data_dir=Path(env.optional("DATA_DIR") or default.data_dir),
        )

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL may list several servers of a cluster, comma-separated."""
        return [url.strip() for url in (self.nats_url or DEFAULT_NATS_URL).split(",")]

    @property
    def database_dsn(self) -> str:
        return self.database_url or DEFAULT_DATABASE_URL


def redacted(urls: str) -> str:
    """URLs (comma-separated) fit for a log line: passwords and tokens removed."""
    return ",".join(_without_credentials(url.strip()) for url in urls.split(","))


# URL schemes of NATS servers, where a user part without a password is a token.
_TOKEN_SCHEMES = frozenset({"nats", "tls", "ws", "wss"})


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.rpartition("://")
    authority, slash, path = rest.partition("/")
    user_info, at, host = authority.rpartition("@")
    if not at:
        return url
    user, colon, _password = user_info.partition(":")
    if colon:
        user_info = f"{user}:***"
    elif scheme.lower() in _TOKEN_SCHEMES:
        user_info = "***"  # nats://TOKEN@host: the whole user part is the secret
    return f"{scheme}{sep}{user_info}@{host}{slash}{path}"


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def optional(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(name, f"must be between {low} and {high}, got {value}")
        return value

    def seconds(self, name: str, default: float) -> float:
        raw = self.optional(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number of seconds, got {raw!r}") from None
        if not 0 < value <= 3600:
            raise ConfigError(name, f"must be more than 0 and at most 3600, got {raw}")
        return value

    def address(self, name: str, default: Address) -> Address:
        raw = self.optional(name)
        if raw is None:
            return default
        host, sep, port = raw.rpartition(":")
        valid_port = port.isascii() and port.isdigit() and 0 <= int(port) <= 65535
        if not sep or not host or not valid_port:
            raise ConfigError(name, f"expected host:port, got {raw!r}")
        return Address(host.strip("[]"), int(port))

    def token(self, name: str, default: str) -> str:
        raw = self.optional(name) or default
        if not all(c.isascii() and (c.isalnum() or c in "_-") for c in raw):
            raise ConfigError(name, f"only letters, digits, '_' and '-' are allowed, got {raw!r}")
        return raw

    def subject(self, name: str, default: str) -> str:
        raw = self.optional(name) or default
        tokens = raw.split(".")
        if any(not t or any(c in t for c in "*> \t") for t in tokens):
            raise ConfigError(name, f"expected a NATS subject without wildcards, got {raw!r}")
        return raw

    def words(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        raw = self.optional(name)
        if raw is None:
            return default
        return tuple(w for w in raw.replace(",", " ").split() if w)

    def flag(self, name: str, default: bool) -> bool:
        raw = self.optional(name)
        if raw is None:
            return default
        if raw.lower() not in ("0", "1", "true", "false"):
            raise ConfigError(name, f"expected 1, 0, true or false, got {raw!r}")
        return raw.lower() in ("1", "true")

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        raw = (self.optional(name) or default).upper()
        if raw not in choices:
            raise ConfigError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
        return raw
