"""Every setting of every service, declared once: its environment variable, its default, how
its text is read and checked, and what it means.

From these declarations come the services' `Settings`, the environment that hands settings to
a child process (`Settings.to_env`), and the README's configuration table
(`python -m core.settings` prints it; a test keeps the README's copy equal to it).
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypeVar

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/analytics"

T = TypeVar("T")


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


class Kind(Generic[T]):
    """How a setting's text becomes its value, and back."""

    def parse(self, name: str, raw: str) -> T:
        raise NotImplementedError

    def render(self, value: T) -> str:
        return str(value)


@dataclass(frozen=True)
class Setting:
    env: str
    kind: Kind[Any]
    meaning: str
    # The README's default column where the value alone does not say it all (markdown).
    shown_default: str | None = None


def _setting(
    env: str, default: T, kind: Kind[T], meaning: str, *, shown_default: str | None = None
) -> T:
    """A Settings field declared with everything known about it."""
    return field(default=default, metadata={"setting": Setting(env, kind, meaning, shown_default)})


class _Text(Kind[str | None]):
    def parse(self, name: str, raw: str) -> str | None:
        return raw


class _Integer(Kind[int]):
    def __init__(self, low: int, high: int) -> None:
        self.low, self.high = low, high

    def parse(self, name: str, raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"expected an integer, got {raw!r}") from None
        if not self.low <= value <= self.high:
            raise ConfigError(name, f"must be between {self.low} and {self.high}, got {value}")
        return value


class _Seconds(Kind[float]):
    def __init__(self, *, zero: bool = False) -> None:
        """`zero`: 0 is allowed (it turns something off)."""
        self.zero = zero

    def parse(self, name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number of seconds, got {raw!r}") from None
        if self.zero and not 0 <= value <= 3600:
            raise ConfigError(name, f"must be between 0 and 3600, got {raw}")
        if not self.zero and not 0 < value <= 3600:
            raise ConfigError(name, f"must be more than 0 and at most 3600, got {raw}")
        return value

    def render(self, value: float) -> str:
        return f"{value:g}"


class _Rate(Kind[float]):
    """A number a second, 0 or more (0: no limit)."""

    def parse(self, name: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"expected a number a second, got {raw!r}") from None
        if not 0 <= value <= 1e9:
            raise ConfigError(name, f"must be from 0 to 1000000000, got {raw}")
        return value

    def render(self, value: float) -> str:
        return f"{value:g}"


class _Address(Kind[Address]):
    def parse(self, name: str, raw: str) -> Address:
        host, sep, port = raw.rpartition(":")
        valid_port = port.isascii() and port.isdigit() and 0 <= int(port) <= 65535
        if not sep or not host or not valid_port:
            raise ConfigError(name, f"expected host:port, got {raw!r}")
        return Address(host.strip("[]"), int(port))


class _Token(Kind[str]):
    def parse(self, name: str, raw: str) -> str:
        if not all(c.isascii() and (c.isalnum() or c in "_-") for c in raw):
            raise ConfigError(name, f"only letters, digits, '_' and '-' are allowed, got {raw!r}")
        return raw


class _Subject(Kind[str]):
    def parse(self, name: str, raw: str) -> str:
        tokens = raw.split(".")
        if any(not t or any(c in t for c in "*> \t") for t in tokens):
            raise ConfigError(name, f"expected a NATS subject without wildcards, got {raw!r}")
        return raw


class _Words(Kind[tuple[str, ...]]):
    def parse(self, name: str, raw: str) -> tuple[str, ...]:
        return tuple(w for w in raw.replace(",", " ").split() if w)

    def render(self, value: tuple[str, ...]) -> str:
        return ",".join(value)


class _Flag(Kind[bool]):
    def parse(self, name: str, raw: str) -> bool:
        if raw.lower() not in ("0", "1", "true", "false"):
            raise ConfigError(name, f"expected 1, 0, true or false, got {raw!r}")
        return raw.lower() in ("1", "true")

    def render(self, value: bool) -> str:
        return "1" if value else "0"


class _Choice(Kind[str]):
    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def parse(self, name: str, raw: str) -> str:
        value = raw.upper()
        if value not in self.choices:
            raise ConfigError(name, f"expected one of {', '.join(self.choices)}, got {value!r}")
        return value


class _Path(Kind[Path]):
    def parse(self, name: str, raw: str) -> Path:
        return Path(raw)


class _File(Kind[Path | None]):
    """A file that must exist when the service starts (a certificate, a key)."""

    def parse(self, name: str, raw: str) -> Path:
        path = Path(raw)
        if not path.is_file():
            raise ConfigError(name, f"no such file: {raw}")
        return path


class _OptionalAddress(Kind[Address | None]):
    def parse(self, name: str, raw: str) -> Address:
        return _Address().parse(name, raw)


class _Word(Kind[str]):
    """One of a few lowercase words."""

    def __init__(self, *choices: str) -> None:
        self.choices = choices

    def parse(self, name: str, raw: str) -> str:
        value = raw.lower()
        if value not in self.choices:
            raise ConfigError(name, f"expected one of {', '.join(self.choices)}, got {raw!r}")
        return value


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class _Networks(Kind[tuple[Network, ...]]):
    """CIDR blocks (or single addresses), comma- or space-separated."""

    def parse(self, name: str, raw: str) -> tuple[Network, ...]:
        networks = []
        for word in raw.replace(",", " ").split():
            try:
                networks.append(ipaddress.ip_network(word, strict=False))
            except ValueError:
                problem = f"expected CIDR blocks like 10.0.0.0/8, got {word!r}"
                raise ConfigError(name, problem) from None
        return tuple(networks)

    def render(self, value: tuple[Network, ...]) -> str:
        return ",".join(map(str, value))


@dataclass(frozen=True)
class Settings:
    nats_url: str | None = _setting(
        "NATS_URL",
        None,
        _Text(),
        "NATS server, or a cluster's servers comma-separated",
        shown_default=f"`{DEFAULT_NATS_URL}`; `make run`: embedded",
    )
    database_url: str | None = _setting(
        "DATABASE_URL",
        None,
        _Text(),
        "PostgreSQL",
        shown_default=f"`{DEFAULT_DATABASE_URL}`; `make run`: embedded",
    )
    grpc_listen: Address = _setting(
        "GRPC_LISTEN",
        Address("127.0.0.1", 50051),
        _Address(),
        "gRPC address of the ingest/report server",
    )
    http_listen: Address = _setting(
        "HTTP_LISTEN", Address("127.0.0.1", 8000), _Address(), "HTTP address of the same"
    )
    api_processes: int = _setting(
        "API_PROCESSES",
        1,
        _Integer(1, 64),
        "processes serving those two ports (`analytics-ingest`, `analytics-report`, `make "
        "run`'s API); more than one when one core is the limit, see below",
        shown_default="`1`; `make run`: one per core",
    )
    share_ports: bool = _setting(
        "SHARE_PORTS",
        False,
        _Flag(),
        "`1`: bind the ports with `SO_REUSEPORT`, so that processes started side by side share "
        "them (set for the processes `API_PROCESSES` starts)",
    )
    stream_name: str = _setting(
        "STREAM_NAME", "ANALYTICS_EVENTS", _Token(), "JetStream stream, created if missing"
    )
    subject_prefix: str = _setting(
        "SUBJECT_PREFIX",
        "analytics.events",
        _Subject(),
        "events go to `<prefix>.all`; the stream takes `<prefix>.>`",
    )
    stream_max_bytes: int = _setting(
        "STREAM_MAX_BYTES",
        1024**3,
        _Integer(-1, 2**62),
        "the stream's size limit (the writer's backlog); beyond it ingestion answers 429; `-1`: "
        "none",
    )
    stream_max_msgs: int = _setting(
        "STREAM_MAX_MSGS",
        -1,
        _Integer(-1, 2**62),
        "the stream's message limit, likewise; `-1`: none",
    )
    stream_replicas: int = _setting(
        "STREAM_REPLICAS",
        1,
        _Integer(1, 5),
        "replicas of the streams in a NATS cluster (3 survives the loss of a server)",
    )
    stream_archive_days: int = _setting(
        "STREAM_ARCHIVE_DAYS",
        0,
        _Integer(0, 36_500),
        "keep a copy of every message the stream stores for this many days in the stream "
        "`<STREAM_NAME>_ARCHIVE` (created by the writer), for `analytics-replay consume`; `0`: "
        "keep none",
    )
    writer_durable: str = _setting(
        "WRITER_DURABLE", "writer", _Token(), "the writer's durable consumer"
    )
    # Events per transaction: a bigger batch shares each aggregate row's upsert among more
    # events (docs/benchmarks.md).
    writer_batch_size: int = _setting(
        "WRITER_BATCH_SIZE",
        5000,
        _Integer(1, 100_000),
        "events the writer stores per transaction (about: it fetches whole messages, of 1 to "
        "500 events each)",
    )
    writer_concurrency: int = _setting(
        "WRITER_CONCURRENCY",
        2,
        _Integer(1, 16),
        "batches the writer stores at once, each in its own transaction and acknowledged after "
        "its own commit",
    )
    # A transaction costs PostgreSQL and the writer much the same whether it holds ten events or
    # a thousand (docs/benchmarks.md, "Whole stack").
    writer_linger: float = _setting(
        "WRITER_LINGER",
        0.25,
        _Seconds(zero=True),
        "seconds the writer waits for more events when a fetch brings fewer than "
        "`WRITER_BATCH_SIZE`, so that a steady flow is stored in fewer, larger transactions "
        "(events become visible in reports up to that much later); `0`: store what each fetch "
        "brings at once",
    )
    writer_ack_wait: float = _setting(
        "WRITER_ACK_WAIT",
        30.0,
        _Seconds(),
        "seconds before JetStream redelivers a message a writer holds unacknowledged (after a "
        "crash; a writer still working on it says so in time)",
    )
    writer_max_deliveries: int = _setting(
        "WRITER_MAX_DELIVERIES",
        5,
        _Integer(1, 1000),
        "deliveries of a message the writer cannot store before it becomes a dead letter",
    )
    # Raw storage (writer/storage.py, docs/reliability.md "Storage"): the aggregates keep every
    # day for ever; these bound the raw events and the ids that make storing idempotent.
    raw_event_retention_days: int = _setting(
        "RAW_EVENT_RETENTION_DAYS",
        0,
        _Integer(0, 100_000),
        "raw events are dropped a month (UTC) at a time once the whole month is this many days "
        "old; reports read from the aggregates keep every day, those read from raw events "
        "cover only what is kept (docs/reliability.md); `0`: keep them for ever",
    )
    event_id_window_days: int = _setting(
        "EVENT_ID_WINDOW_DAYS",
        0,
        _Integer(0, 100_000),
        "a resend of an `event_id` is stored once if it comes within this many days of the "
        "first copy's storing; the writer lets older ids go; `0`: keep them for ever",
    )
    dead_letter_stream: str = _setting(
        "DEAD_LETTER_STREAM",
        "ANALYTICS_DEAD_LETTERS",
        _Token(),
        "where such messages, and events PostgreSQL refuses, are kept with the reason",
    )
    dead_letter_subject: str = _setting(
        "DEAD_LETTER_SUBJECT",
        "analytics.dead_letters",
        _Subject(),
        "the dead-letter stream's subject",
    )
    dead_letter_max_bytes: int = _setting(
        "DEAD_LETTER_MAX_BYTES",
        256 * 1024**2,
        _Integer(-1, 2**62),
        "the dead-letter stream's size limit; at it the writer keeps the message that cannot "
        "be stored and logs an error until letters are dropped; `-1`: none",
    )
    dead_letter_max_msgs: int = _setting(
        "DEAD_LETTER_MAX_MSGS",
        100_000,
        _Integer(-1, 2**62),
        "the dead-letter stream's message limit, likewise; `-1`: none",
    )
    publish_timeout: float = _setting(
        "PUBLISH_TIMEOUT",
        5.0,
        _Seconds(),
        "seconds the ingest server waits for PubAcks before answering 503 / `UNAVAILABLE`",
    )
    max_body_bytes: int = _setting(
        "MAX_BODY_BYTES", 1024 * 1024, _Integer(1024, 64 * 1024 * 1024), "largest HTTP request body"
    )
    http_read_timeout: float = _setting(
        "HTTP_READ_TIMEOUT",
        10.0,
        _Seconds(),
        "seconds a client has to send a whole HTTP request, head and body, from connecting (a "
        "connection's first request) or from its first bytes; a request incomplete then is "
        "answered 408 and its connection closed",
    )
    http_max_connections: int = _setting(
        "HTTP_MAX_CONNECTIONS",
        1000,
        _Integer(1, 1_000_000),
        "HTTP connections a process serves at once; a connection opened over it has its "
        "request answered 503 and is closed (keep it below the process's open-file limit)",
    )
    grpc_max_concurrent_rpcs: int = _setting(
        "GRPC_MAX_CONCURRENT_RPCS",
        1000,
        _Integer(1, 1_000_000),
        "gRPC calls a process serves at once, streams included; a call over it fails at once "
        "with `RESOURCE_EXHAUSTED`",
    )
    grpc_max_connection_age: float = _setting(
        "GRPC_MAX_CONNECTION_AGE",
        300.0,
        _Seconds(),
        "seconds after which the server asks a gRPC client to reconnect (GOAWAY; a tenth more "
        "or less), so that load balancers spread clients anew",
    )
    grpc_max_connection_age_grace: float = _setting(
        "GRPC_MAX_CONNECTION_AGE_GRACE",
        90.0,
        _Seconds(),
        "seconds the calls in flight on a connection past its age have to finish before it is "
        "closed under them",
    )
    ingest_stream_max_events: int = _setting(
        "INGEST_STREAM_MAX_EVENTS",
        100_000,
        _Integer(1, 1_000_000_000),
        "events an `IngestStream` may send; the server stores and answers those and ends the "
        "stream at the next, naming the bound in `limit_reached`",
    )
    ingest_stream_max_seconds: float = _setting(
        "INGEST_STREAM_MAX_SECONDS",
        60.0,
        _Seconds(),
        "seconds an `IngestStream` may stay open, likewise, and an `IngestBatchStream`, which "
        "then ends with `RESOURCE_EXHAUSTED` once the requests read are answered (keep "
        "`GRPC_MAX_CONNECTION_AGE_GRACE` above it, so that a stream ends at its bound rather "
        "than with its connection)",
    )
    ingest_rate_per_site: float = _setting(
        "INGEST_RATE_PER_SITE",
        5000.0,
        _Rate(),
        "events a second an ingest process takes for one site, on average (a token bucket; "
        "over it: 429 / `RESOURCE_EXHAUSTED` with the wait); `0`: no limit",
    )
    ingest_burst_per_site: int = _setting(
        "INGEST_BURST_PER_SITE",
        20_000,
        _Integer(1, 1_000_000_000),
        "events it takes for one site at once, above that rate",
    )
    ingest_rate_per_ip: float = _setting(
        "INGEST_RATE_PER_IP",
        1000.0,
        _Rate(),
        "events a second an ingest process takes from one client IP (see `TRUSTED_PROXIES`), "
        "on average; `0`: no limit",
    )
    ingest_burst_per_ip: int = _setting(
        "INGEST_BURST_PER_IP",
        5000,
        _Integer(1, 1_000_000_000),
        "events it takes from one client IP at once (a 1000-event batch passes a full bucket "
        "whatever the burst)",
    )
    report_rate_per_caller: float = _setting(
        "REPORT_RATE_PER_CALLER",
        20.0,
        _Rate(),
        "requests a second a report process answers one caller (one `authorization` "
        "credential, else one client IP), on average; `0`: no limit",
    )
    report_burst_per_caller: int = _setting(
        "REPORT_BURST_PER_CALLER",
        100,
        _Integer(1, 1_000_000_000),
        "requests it answers one caller at once (a dashboard's first load)",
    )
    report_pool_size: int = _setting(
        "REPORT_POOL_SIZE",
        10,
        _Integer(1, 1000),
        "PostgreSQL connections a report server process reads with",
    )
    report_acquire_timeout: float = _setting(
        "REPORT_ACQUIRE_TIMEOUT",
        2.0,
        _Seconds(),
        "seconds a report waits for one of them before answering 503 / `UNAVAILABLE`",
    )
    report_statement_timeout: float = _setting(
        "REPORT_STATEMENT_TIMEOUT",
        10.0,
        _Seconds(),
        "seconds a report's query may run (PostgreSQL's `statement_timeout` on those "
        "connections) before it is cancelled and the report answered 429 / "
        "`RESOURCE_EXHAUSTED`",
    )
    cors_allow_origins: tuple[str, ...] = _setting(
        "CORS_ALLOW_ORIGINS",
        ("*",),
        _Words(),
        "origins allowed to call the HTTP door, comma- or space-separated",
    )
    trusted_proxies: tuple[Network, ...] = _setting(
        "TRUSTED_PROXIES",
        (),
        _Networks(),
        "CIDR blocks of the proxies in front of the ingest and report servers, comma-separated: "
        "only a request from one of them has its client IP read from `X-Forwarded-For` (gRPC: "
        "`x-forwarded-for` metadata); empty: none",
        shown_default="none",
    )
    geoip_database: Path | None = _setting(
        "GEOIP_DATABASE",
        None,
        _File(),
        "a MaxMind-format country database (`.mmdb`) the ingest server reads browsers' "
        "countries from; unset: no countries",
        shown_default="none",
    )
    sites_bucket: str = _setting(
        "SITES_BUCKET",
        "analytics_sites",
        _Token(),
        "NATS KV bucket where the report service publishes site records for the ingest servers",
    )
    sites_reconcile_interval: float = _setting(
        "SITES_RECONCILE_INTERVAL",
        60.0,
        _Seconds(),
        "seconds between the report service's checks that the bucket holds every site record "
        "as PostgreSQL does (healing a lost publish)",
    )
    visitor_keys_bucket: str = _setting(
        "VISITOR_KEYS_BUCKET",
        "analytics_visitor_keys",
        _Token(),
        "NATS KV bucket holding the day's visitor-hash key, shared by every ingest server",
    )
    filtered_traffic_interval: float = _setting(
        "FILTERED_TRAFFIC_INTERVAL",
        10.0,
        _Seconds(),
        "seconds between an ingest server's messages counting the events it dropped",
    )
    ingest_open: bool = _setting(
        "INGEST_OPEN",
        False,
        _Flag(),
        "`1`: events without an ingest key are taken from any caller (servers and scripts too) "
        "for sites whose ingest policy is `browsers`; `0`: only from browsers (requests with "
        "`Origin`), within the site's allowed origins",
        shown_default="`0`; `make run`: `1`",
    )
    reports_open: bool = _setting(
        "REPORTS_OPEN",
        False,
        _Flag(),
        "`1`: every site's reports are readable without a token, as if public; `0`: only the "
        "public sites' reports are",
        shown_default="`0`; `make run`: `1`",
    )
    admin_open: bool = _setting(
        "ADMIN_OPEN",
        False,
        _Flag(),
        "`1`: sites, keys and tokens can be managed without the admin token (for tests on a "
        "machine of your own; never on a network)",
    )
    keyless_backfill_days: int = _setting(
        "KEYLESS_BACKFILL_DAYS",
        2,
        _Integer(0, 36500),
        "how many days before the server's clock an event sent without an ingest key (a "
        "browser's) may be timestamped; with a valid key, back to 2000-01-01",
        shown_default="`2`; `make run`: `36500`",
    )
    credentials_bucket: str = _setting(
        "CREDENTIALS_BUCKET",
        "analytics_credentials",
        _Token(),
        "NATS KV bucket where the report service publishes the SHA-256 of every valid key and "
        "token, which every server watches",
    )
    log_level: str = _setting(
        "LOG_LEVEL",
        "INFO",
        _Choice("DEBUG", "INFO", "WARNING", "ERROR"),
        "`DEBUG`, `INFO`, `WARNING` or `ERROR`",
    )
    log_format: str = _setting(
        "LOG_FORMAT",
        "auto",
        _Word("auto", "json", "text"),
        "`json`: one JSON object per line; `text`: lines for a person; `auto`: text on a "
        "terminal, JSON otherwise",
    )
    metrics: bool = _setting(
        "METRICS",
        True,
        _Flag(),
        "`1`: count requests, events and timings, served at `/metrics`; `0`: neither",
    )
    writer_http_listen: Address | None = _setting(
        "WRITER_HTTP_LISTEN",
        None,
        _OptionalAddress(),
        "HTTP address of the writer's `/metrics`, `/healthz` and `/readyz`; unset: none",
        shown_default="none; `make run`: a free port",
    )
    tls_cert_file: Path | None = _setting(
        "TLS_CERT_FILE",
        None,
        _File(),
        "PEM certificate chain: with `TLS_KEY_FILE`, gRPC and HTTP (the writer's too) serve "
        "TLS only",
        shown_default="none",
    )
    tls_key_file: Path | None = _setting(
        "TLS_KEY_FILE", None, _File(), "PEM private key of that certificate", shown_default="none"
    )
    grpc_tls_client_ca_file: Path | None = _setting(
        "GRPC_TLS_CLIENT_CA_FILE",
        None,
        _File(),
        "PEM certificates of the CAs whose client certificates gRPC accepts: set, every gRPC "
        "client must present one (mutual TLS)",
        shown_default="none",
    )
    nats_tls_ca_file: Path | None = _setting(
        "NATS_TLS_CA_FILE",
        None,
        _File(),
        "PEM certificates of the CAs a NATS server's certificate is checked against, where "
        "the server requires TLS (a `tls://` URL says so); the system's CAs by default",
        shown_default="none",
    )
    nats_tls_cert_file: Path | None = _setting(
        "NATS_TLS_CERT_FILE",
        None,
        _File(),
        "PEM client certificate for NATS (with `NATS_TLS_KEY_FILE`), where NATS asks for one",
        shown_default="none",
    )
    nats_tls_key_file: Path | None = _setting(
        "NATS_TLS_KEY_FILE", None, _File(), "its private key", shown_default="none"
    )
    nats_creds_file: Path | None = _setting(
        "NATS_CREDS_FILE",
        None,
        _File(),
        "NATS credentials file (a user JWT and NKey seed); a user and password, or a token, go "
        "in `NATS_URL` (`nats://user:password@host`, `nats://token@host`)",
        shown_default="none",
    )
    data_dir: Path = _setting(
        "DATA_DIR", Path(".data"), _Path(), "where `make run` keeps the embedded servers' data"
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read settings, failing with a ConfigError that names the variable at fault. An unset
        or blank variable takes the default."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, setting in _declared():
            raw = env.get(setting.env, "").strip()
            if raw:
                values[name] = setting.kind.parse(setting.env, raw)
        settings = cls(**values)
        settings._check_pairs()
        return settings

    def _check_pairs(self) -> None:
        """Settings that mean nothing without another."""
        pairs = (
            ("TLS_CERT_FILE", self.tls_cert_file, "TLS_KEY_FILE", self.tls_key_file),
            ("TLS_KEY_FILE", self.tls_key_file, "TLS_CERT_FILE", self.tls_cert_file),
            (
                "GRPC_TLS_CLIENT_CA_FILE",
                self.grpc_tls_client_ca_file,
                "TLS_CERT_FILE",
                self.tls_cert_file,
            ),
            (
                "NATS_TLS_CERT_FILE",
                self.nats_tls_cert_file,
                "NATS_TLS_KEY_FILE",
                self.nats_tls_key_file,
            ),
            (
                "NATS_TLS_KEY_FILE",
                self.nats_tls_key_file,
                "NATS_TLS_CERT_FILE",
                self.nats_tls_cert_file,
            ),
        )
        for name, value, needed, other in pairs:
            if value is not None and other is None:
                raise ConfigError(name, f"needs {needed} too")

    def to_env(self) -> dict[str, str]:
        """The environment variables under which a process reads these settings (those that
        are None are left out: unset, they read as None)."""
        env: dict[str, str] = {}
        for name, setting in _declared():
            value = getattr(self, name)
            if value is not None:
                env[setting.env] = setting.kind.render(value)
        return env

    @property
    def nats_servers(self) -> list[str]:
        """NATS_URL may list several servers of a cluster, comma-separated."""
        return [url.strip() for url in (self.nats_url or DEFAULT_NATS_URL).split(",")]

    @property
    def database_dsn(self) -> str:
        return self.database_url or DEFAULT_DATABASE_URL


def _declared() -> list[tuple[str, Setting]]:
    """Each Settings field's name and declaration, in order."""
    return [(f.name, f.metadata["setting"]) for f in fields(Settings)]


def markdown_table() -> str:
    """The README's configuration table."""
    lines = ["| variable | default | meaning |", "| --- | --- | --- |"]
    defaults = Settings()
    for name, setting in _declared():
        default = setting.shown_default or f"`{setting.kind.render(getattr(defaults, name))}`"
        lines.append(f"| `{setting.env}` | {default} | {setting.meaning} |")
    return "\n".join(lines) + "\n"


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


if __name__ == "__main__":
    print(markdown_table(), end="")
