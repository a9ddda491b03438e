"""Every setting of the service, read from environment variables, with the defaults documented here.

| variable | default | meaning |
| --- | --- | --- |
| DATABASE_URL | (none) | PostgreSQL URL (postgresql://, postgres://); `dev` starts an embedded PostgreSQL when unset |
| KAFKA_BOOTSTRAP_SERVERS | (none) | `host:port,…` of the Kafka brokers; `dev` starts an embedded broker when unset |
| JOBS_HOST | 127.0.0.1 | address the API listens on |
| JOBS_PORT | 8000 | port the API listens on (1 to 65535) |
| JOBS_PUBLIC_URL | http://JOBS_HOST:JOBS_PORT | http(s) base URL others reach the API at (task callback URLs) |
| JOBS_DATA_DIR | .jobs-data | where `dev` keeps the embedded database, the dev API key and its JOBS_SECRET_KEY |
| JOBS_DEV_API_KEY | (generated) | API key of the development environment that `dev` creates |
| JOBS_SECRET_KEY | (none; `dev`: its own) | Fernet keys sealing API keys at rest, comma-separated (see below) |
| JOBS_EXECUTION_TOPIC | job-execution | Kafka topic of run executions (letters, digits, `.`, `_`, `-`; at most 200) |
| JOBS_TOPIC_PARTITIONS | 4 | partitions of that topic when the service creates it |
| JOBS_TOPIC_RING_SECONDS | 0 (embedded broker: 20) | write each topic as a ring of 3, a period each (topic_ring.py) |
| JOBS_CONSUMER_GROUP | jobs-worker | Kafka consumer group of the workers |
| JOBS_KAFKA_SESSION_TIMEOUT_MS | 6000 | consumer-group session timeout, at least 1000 (joining takes about half) |
| JOBS_KAFKA_IDEMPOTENCE | false | idempotent producer (Apache Kafka supports it; embedded Tansu does not) |
| JOBS_KAFKA_LINGER_MS | 0 | producer's wait to fill a batch (the relay sends each claimed batch at once) |
| JOBS_KAFKA_FETCH_MAX_WAIT_MS | 10 | longest a worker's fetch waits; bounds a new message's wait (see below) |
| JOBS_RELAY_BATCH_SIZE | 500 | outbox rows the relay claims per transaction |
| JOBS_RELAY_POLL_SECONDS | 1.0 | relay polling fallback when no NOTIFY arrives |
| JOBS_RELAY_MAX_IN_FLIGHT | 0 (none; `dev`: 1000) | messages published and not handled, at most (more wait) |
| JOBS_WORKER_CONCURRENCY | 256 | messages one worker handles at once (runs executing, each a call in flight) |
| JOBS_LEASE_SECONDS | 60 | lease an attempt holds while its endpoint call is in flight (extended every third) |
| JOBS_RESCUE_INTERVAL_SECONDS | 2 | how often the rescuer looks for expired leases and lost executions |
| JOBS_REDELIVER_AFTER_SECONDS | 30 | a due run with no message at all (no outbox row) for this long is queued again |
| JOBS_SHUTDOWN_SECONDS | 20 | on SIGTERM, how long a worker may finish what it holds before it lets go |
| JOBS_ENDPOINT_TIMEOUT_SECONDS | 300 | time allowed for one call to a user's endpoint |
| JOBS_DB_POOL_SIZE | 20 | database connections per process |
| JOBS_ALLOWED_PRIVATE_NETWORKS | (none; `dev`: loopback) | private networks endpoint and callback URLs may point to |
| JOBS_LOG_LEVEL | INFO | log level: DEBUG, INFO, WARNING, ERROR or CRITICAL |
| JOBS_LOG_FORMAT | text | log lines as `text` or `json` (one object per line, with run, trace and request ids) |
| JOBS_OPS_PORT | 9464 (`dev`: any free) | operations port of each role: /metrics, /healthz, /readyz (0: any free) |
| JOBS_FAULT_RELAY_PAUSE_SECONDS | 0 | fault injection (crash tests): relay pause between publish and delete |
| JOBS_RUN_CHUNK_EXECUTION_LIMIT_MS | 60000 | how long an EXECUTE_JOB may run before the SDK yields (at least 1000) |
| JOBS_CACHED_TASKS_BYTES | 3500000 | completed tasks an EXECUTE_JOB carries, in bytes; the rest the SDK loads lazily |
| JOBS_FETCH_POLL_MIN_INTERVAL_SECONDS | 10 | shortest `interval` io.backgroundPoll may ask for (seconds) |
| JOBS_RETENTION_DAYS | 0 (keep forever) | workers remove runs that ended more days ago than this (docs/operations.md) |
| JOBS_RETENTION_ARCHIVE_DIR | (none) | where those workers archive what they remove first (gzip'd JSON lines) |
| JOBS_REBUILD_NICENESS | 10 | added to the niceness of `projections rebuild` and its local backends (0 to 19) |

JOBS_KAFKA_FETCH_MAX_WAIT_MS: a fetch that finds nothing waits this long (Tansu holds it the whole time), and a
message published meanwhile waits with it. Lower cuts that wait but fetches more often: with the embedded broker an
idle worker and broker used about 14% of a core at 20 ms, 20% at 10 ms, 29% at 5 ms.

Every variable is checked once, at start-up: a bad value stops the command with one line naming the variable
(exit code 2). Counts, ports, timeouts and intervals must be positive (the ones whose default is 0 may be 0);
true/false also take 1/0, yes/no and on/off. An empty variable counts as unset, except
JOBS_ALLOWED_PRIVATE_NETWORKS, where it allows no private network at all (even under `dev`).

Traces: the standard OpenTelemetry variables, read by its SDK, not here. Spans are exported (OTLP over
HTTP/protobuf) when OTEL_TRACES_EXPORTER=otlp or OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
is set, unless OTEL_SDK_DISABLED=true; OTEL_SERVICE_NAME (default jobs-service), OTEL_TRACES_SAMPLER(_ARG) and
OTEL_BSP_* apply as the SDK documents them. Without them, `traceparent` is still carried end to end.

JOBS_SECRET_KEY: `jobs-service secrets generate-key` makes a key; api, relay, worker and all refuse to start
without one. To rotate, give every process `new,old`, run `jobs-service secrets rotate`, then drop `old`.
"""

import base64
import binascii
import ipaddress
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from types import UnionType
from typing import Annotated, Any, Literal, Self, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

import msgspec

Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
PortOrAny = Annotated[int, msgspec.Meta(ge=0, le=65535)]
Count = Annotated[int, msgspec.Meta(ge=1)]
CountOrOff = Annotated[int, msgspec.Meta(ge=0)]
# Heartbeats go every fifth of it, at least every 100 ms (kafka.py): below a second that leaves no margin.
SessionTimeoutMs = Annotated[int, msgspec.Meta(ge=1000)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
ChunkMs = Annotated[int, msgspec.Meta(ge=1000)]
SecondsOrOff = Annotated[float, msgspec.Meta(ge=0)]
MsOrOff = Annotated[int, msgspec.Meta(ge=0, le=60_000)]
FetchWaitMs = Annotated[int, msgspec.Meta(ge=1, le=60_000)]
Niceness = Annotated[int, msgspec.Meta(ge=0, le=19)]
DaysOrOff = Annotated[float, msgspec.Meta(ge=0)]
# 200 leaves room for the suffixes the service appends (`.high`, `.dlq`, a ring slot) within Kafka's 249.
TopicName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9._-]{1,200}$",
        description="a Kafka topic name: at most 200 letters, digits, '.', '_' or '-'",
    ),
]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
LogFormat = Literal["text", "json"]

DEFAULT_OPS_PORT = 9464
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}
_DATABASE_SCHEMES = ("postgresql+asyncpg://", "postgresql://", "postgres://")
_FERNET_KEY_BYTES = 32
_SECRET_KEY_SHAPE = "JOBS_SECRET_KEY must be Fernet keys (32 url-safe base64-encoded bytes each), comma-separated"


class SettingsError(ValueError):
    """A variable holds a value the service cannot use; the message names it, in one line."""


MISSING_SECRET_KEY = (
    "JOBS_SECRET_KEY is not set: make one with `jobs-service secrets generate-key` and give it to every process"
)


def normalize_database_url(url: str) -> str:
    """The URL with the asyncpg driver; the message of a wrong one shows its scheme only (the rest may hold
    a password)."""
    for prefix in _DATABASE_SCHEMES:
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    scheme, separator, _ = url.partition("://")
    found = f"one starting {scheme + separator!r}" if separator else "a value without a scheme"
    raise SettingsError(f"DATABASE_URL must be a postgresql:// (or postgres://) URL, got {found}")


def check_bootstrap_servers(servers: str) -> str:
    for entry in (part.strip() for part in servers.split(",")):
        host, colon, port = entry.rpartition(":")
        if not entry or (colon and not (host and is_port(port))):
            raise SettingsError(f"KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port pairs, got {entry!r}")
    return servers


def is_port(text: str) -> bool:
    return text.isdigit() and 1 <= int(text) <= 65535


def check_public_url(url: str) -> str:
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:  # an unclosed [ of an IPv6 host
        valid = False
    if not valid:
        raise SettingsError(f"JOBS_PUBLIC_URL must be an http:// or https:// URL with a host, got {url!r}")
    return url


def check_networks(networks: str) -> str:
    for entry in (part.strip() for part in networks.split(",")):
        if not entry:
            continue
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise SettingsError(
                "JOBS_ALLOWED_PRIVATE_NETWORKS must be comma-separated networks such as 10.0.0.0/8 or ::1/128, "
                f"got {entry!r}"
            ) from None
    return networks


def check_log_format(value: str) -> str:
    if (format_ := value.strip().lower()) not in get_args(LogFormat):
        raise SettingsError(f"JOBS_LOG_FORMAT must be one of text, json, got {value!r}")
    return format_


def check_secret_keys(keys: str) -> str:
    """Each comma-separated key must decode as Fernet decodes it (never shown: it is a secret)."""
    entries = [entry.strip() for entry in keys.split(",") if entry.strip()]
    if not entries:
        raise SettingsError(f"{_SECRET_KEY_SHAPE}, got only commas")
    for number, entry in enumerate(entries, 1):
        if not _is_fernet_key(entry):
            raise SettingsError(
                f"{_SECRET_KEY_SHAPE}; key #{number} is not one (make one with `jobs-service secrets generate-key`)"
            )
    return keys


def _is_fernet_key(key: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(key)) == _FERNET_KEY_BYTES
    except (binascii.Error, ValueError):
        return False


# Variables whose shape is more than a type and a range: checked (or normalized) by these instead of msgspec.
_PARSERS: dict[str, Callable[[str], str]] = {
    "database_url": normalize_database_url,
    "kafka_bootstrap_servers": check_bootstrap_servers,
    "public_url": check_public_url,
    "allowed_private_networks": check_networks,
    "secret_key": check_secret_keys,
    "log_format": check_log_format,
}
_EMPTY_IS_A_VALUE = frozenset({"allowed_private_networks"})


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    host: str = "127.0.0.1"
    port: Port = 8000
    public_url: str | None = None
    data_dir: str = ".jobs-data"
    dev_api_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)  # never in logs
    execution_topic: TopicName = "job-execution"
    topic_partitions: Count = 4
    topic_ring_seconds: SecondsOrOff = 0.0
    consumer_group: str = "jobs-worker"
    kafka_session_timeout_ms: SessionTimeoutMs = 6000
    kafka_idempotence: bool = False
    kafka_linger_ms: MsOrOff = 0
    kafka_fetch_max_wait_ms: FetchWaitMs = 10
    relay_batch_size: Count = 500
    relay_poll_seconds: Seconds = 1.0
    relay_max_in_flight: CountOrOff = 0
    worker_concurrency: Count = 256
    lease_seconds: Seconds = 60.0
    rescue_interval_seconds: Seconds = 2.0
    redeliver_after_seconds: Seconds = 30.0
    shutdown_seconds: SecondsOrOff = 20.0
    endpoint_timeout_seconds: Seconds = 300.0
    db_pool_size: Count = 20
    log_level: LogLevel = "INFO"
    log_format: LogFormat = "text"
    ops_port: PortOrAny | None = None
    allowed_private_networks: str | None = None
    fault_relay_pause_seconds: SecondsOrOff = 0.0
    run_chunk_execution_limit_ms: ChunkMs = 60000
    cached_tasks_bytes: Count = 3_500_000
    fetch_poll_min_interval_seconds: Seconds = 10.0
    retention_days: DaysOrOff = 0.0
    retention_archive_dir: str | None = None
    rebuild_niceness: Niceness = 10

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The settings of `environ` (the process's environment by default), every variable checked; raises
        SettingsError for the first bad one."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls, include_extras=True)
        values: dict[str, Any] = {}
        for setting in fields(cls):
            raw = environ.get(env_name(setting.name))
            if raw is not None and (raw or setting.name in _EMPTY_IS_A_VALUE):
                values[setting.name] = _parse(setting.name, hints[setting.name], raw)
        return cls(**values)

    def with_services(self, database_url: str, kafka_bootstrap_servers: str) -> Self:
        return replace(self, database_url=database_url, kafka_bootstrap_servers=kafka_bootstrap_servers)

    @property
    def api_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def ops_port_or_default(self) -> int:
        """The operations port roles listen on: JOBS_OPS_PORT, else 9464 (`dev` passes 0, a free port)."""
        return DEFAULT_OPS_PORT if self.ops_port is None else self.ops_port

    @property
    def required_database_url(self) -> str:
        if not self.database_url:
            raise RuntimeError("DATABASE_URL is not set (or run `jobs-service dev` for an embedded database)")
        return self.database_url

    @property
    def required_secret_key(self) -> str:
        if not self.secret_key:
            raise RuntimeError(MISSING_SECRET_KEY)
        return self.secret_key

    @property
    def required_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise RuntimeError("KAFKA_BOOTSTRAP_SERVERS is not set (or run `jobs-service dev` for an embedded broker)")
        return self.kafka_bootstrap_servers


def env_name(setting: str) -> str:
    """The variable that sets a field of Settings."""
    if setting in ("database_url", "kafka_bootstrap_servers"):
        return setting.upper()
    return "JOBS_" + setting.upper()


def _parse(setting: str, hint: Any, raw: str) -> Any:
    parser = _PARSERS.get(setting)
    if parser is not None:
        return parser(raw)
    base, _ = _unwrap(hint)
    text: str | bool = raw.strip() if base is not str else raw
    if base is bool:
        text = _BOOLEANS.get(raw.strip().lower(), raw)
    elif get_origin(base) is Literal:
        text = raw.strip().upper()
    try:
        value = msgspec.convert(text, hint, strict=False)
    except msgspec.ValidationError:
        raise _invalid(setting, hint, raw) from None
    if isinstance(value, float) and not math.isfinite(value):  # msgspec takes "inf" for a float
        raise _invalid(setting, hint, raw)
    return value


def _invalid(setting: str, hint: Any, raw: str) -> SettingsError:
    return SettingsError(f"{env_name(setting)} must be {describe(hint)}, got {raw!r}")


def describe(hint: Any) -> str:
    """What a value of this type must be, as the end of a sentence: "an integer from 1 to 65535"."""
    base, meta = _unwrap(hint)
    if base is bool:
        return "true or false"
    if get_origin(base) is Literal:
        return "one of " + ", ".join(get_args(base))
    if meta.description:
        return meta.description
    noun = "an integer" if base is int else "a number"
    if meta.ge is not None and meta.le is not None:
        return f"{noun} from {meta.ge} to {meta.le}"
    if meta.gt is not None:
        return f"{noun} above {meta.gt}"
    if meta.ge is not None:
        return f"{noun} of at least {meta.ge}"
    return noun


def _unwrap(hint: Any) -> tuple[Any, msgspec.Meta]:
    """The type under Annotated[...] (and under `| None`), and its msgspec.Meta (an empty one if it has none)."""
    if get_origin(hint) in (Union, UnionType):
        hint = next(arg for arg in get_args(hint) if arg is not type(None))
    if get_origin(hint) is not Annotated:
        return hint, msgspec.Meta()
    base, *extras = get_args(hint)
    metas = [extra for extra in extras if isinstance(extra, msgspec.Meta)]
    return base, metas[0] if metas else msgspec.Meta()
