"""Settings read from a mapping like the environment: what each variable takes, and the one-line error for
each kind of bad value."""

import base64
import re
from dataclasses import fields

import pytest
from cryptography.fernet import Fernet

import app.settings
from app.settings import Settings, SettingsError, env_name

KEY = base64.urlsafe_b64encode(bytes(range(32))).decode()


def test_no_variables_give_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_empty_variables_count_as_unset() -> None:
    everything_empty = {env_name(setting.name): "" for setting in fields(Settings)}
    assert Settings.from_env(everything_empty) == Settings(allowed_private_networks="")


def test_values_are_converted_and_normalized() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgres://jobs:secret@db:5432/jobs",
            "KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092,[::1]:9093,kafka-2",
            "JOBS_PORT": " 9000 ",
            "JOBS_PUBLIC_URL": "https://jobs.example.com/",
            "JOBS_SECRET_KEY": f"{KEY}, {KEY}",
            "JOBS_TOPIC_RING_SECONDS": "0.0",
            "JOBS_WORKER_CONCURRENCY": "8",
            "JOBS_LEASE_SECONDS": "2.5",
            "JOBS_KAFKA_LINGER_MS": "0",
            "JOBS_KAFKA_FETCH_MAX_WAIT_MS": "20",
            "JOBS_LOG_LEVEL": "debug",
            "JOBS_ALLOWED_PRIVATE_NETWORKS": "10.0.0.0/8, ::1/128",
        }
    )
    assert settings.database_url == "postgresql+asyncpg://jobs:secret@db:5432/jobs"
    assert settings.kafka_bootstrap_servers == "kafka-1:9092,[::1]:9093,kafka-2"
    assert (settings.port, settings.worker_concurrency, settings.lease_seconds) == (9000, 8, 2.5)
    assert settings.api_url == "https://jobs.example.com"
    assert settings.secret_key == f"{KEY}, {KEY}"
    assert settings.topic_ring_seconds == 0.0
    assert (settings.kafka_linger_ms, settings.kafka_fetch_max_wait_ms) == (0, 20)
    assert settings.log_level == "DEBUG"
    assert settings.allowed_private_networks == "10.0.0.0/8, ::1/128"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("true", True), ("YES", True), ("On", True), ("0", False), ("False", False), ("no", False)],
)
def test_booleans(value: str, expected: bool) -> None:
    assert Settings.from_env({"JOBS_KAFKA_IDEMPOTENCE": value}).kafka_idempotence is expected


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("JOBS_PORT", "abc", "JOBS_PORT must be an integer from 1 to 65535, got 'abc'"),
        ("JOBS_PORT", "0", "JOBS_PORT must be an integer from 1 to 65535, got '0'"),
        ("JOBS_PORT", "65536", "JOBS_PORT must be an integer from 1 to 65535, got '65536'"),
        ("JOBS_WORKER_CONCURRENCY", "0", "JOBS_WORKER_CONCURRENCY must be an integer of at least 1, got '0'"),
        ("JOBS_DB_POOL_SIZE", "1.5", "JOBS_DB_POOL_SIZE must be an integer of at least 1, got '1.5'"),
        ("JOBS_TOPIC_PARTITIONS", "-4", "JOBS_TOPIC_PARTITIONS must be an integer of at least 1, got '-4'"),
        ("JOBS_LEASE_SECONDS", "0", "JOBS_LEASE_SECONDS must be a number above 0, got '0'"),
        ("JOBS_ENDPOINT_TIMEOUT_SECONDS", "5m", "JOBS_ENDPOINT_TIMEOUT_SECONDS must be a number above 0, got '5m'"),
        ("JOBS_RELAY_POLL_SECONDS", "inf", "JOBS_RELAY_POLL_SECONDS must be a number above 0, got 'inf'"),
        ("JOBS_SHUTDOWN_SECONDS", "-1", "JOBS_SHUTDOWN_SECONDS must be a number of at least 0, got '-1'"),
        ("JOBS_TOPIC_RING_SECONDS", "nan", "JOBS_TOPIC_RING_SECONDS must be a number of at least 0, got 'nan'"),
        ("JOBS_KAFKA_IDEMPOTENCE", "maybe", "JOBS_KAFKA_IDEMPOTENCE must be true or false, got 'maybe'"),
        (
            "JOBS_LOG_LEVEL",
            "verbose",
            "JOBS_LOG_LEVEL must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'verbose'",
        ),
        (
            "JOBS_EXECUTION_TOPIC",
            "job execution",
            "JOBS_EXECUTION_TOPIC must be a Kafka topic name: at most 200 letters, digits, '.', '_' or '-', "
            "got 'job execution'",
        ),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            "kafka:9092,kafka:",
            "KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port pairs, got 'kafka:'",
        ),
        (
            "KAFKA_BOOTSTRAP_SERVERS",
            "kafka:90920",
            "KAFKA_BOOTSTRAP_SERVERS must be comma-separated host:port pairs, got 'kafka:90920'",
        ),
        (
            "JOBS_PUBLIC_URL",
            "localhost:8000",
            "JOBS_PUBLIC_URL must be an http:// or https:// URL with a host, got 'localhost:8000'",
        ),
        (
            "JOBS_PUBLIC_URL",
            "http://[::1:8000/",
            "JOBS_PUBLIC_URL must be an http:// or https:// URL with a host, got 'http://[::1:8000/'",
        ),
        (
            "JOBS_KAFKA_SESSION_TIMEOUT_MS",
            "500",
            "JOBS_KAFKA_SESSION_TIMEOUT_MS must be an integer of at least 1000, got '500'",
        ),
        ("JOBS_KAFKA_LINGER_MS", "-1", "JOBS_KAFKA_LINGER_MS must be an integer from 0 to 60000, got '-1'"),
        (
            "JOBS_KAFKA_FETCH_MAX_WAIT_MS",
            "0",  # a fetch that never waits would spin: every poll a round trip
            "JOBS_KAFKA_FETCH_MAX_WAIT_MS must be an integer from 1 to 60000, got '0'",
        ),
        (
            "JOBS_ALLOWED_PRIVATE_NETWORKS",
            "10.0.0.0/8,10.0.0.0/33",
            "JOBS_ALLOWED_PRIVATE_NETWORKS must be comma-separated networks such as 10.0.0.0/8 or ::1/128, "
            "got '10.0.0.0/33'",
        ),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({variable: value})
    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("url", "found"),
    [("mysql://jobs:hunter2@db/jobs", "one starting 'mysql://'"), ("jobs:hunter2@db/jobs", "a value without a scheme")],
)
def test_a_bad_database_url_shows_its_scheme_but_not_its_password(url: str, found: str) -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"DATABASE_URL": url})
    assert str(raised.value) == f"DATABASE_URL must be a postgresql:// (or postgres://) URL, got {found}"


def test_a_bad_secret_key_is_named_by_its_place_never_shown() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({"JOBS_SECRET_KEY": f"{KEY},not-a-key"})
    message = str(raised.value)
    assert message.startswith("JOBS_SECRET_KEY must be Fernet keys") and "key #2 is not one" in message
    assert "not-a-key" not in message and KEY not in message
    with pytest.raises(SettingsError, match="got only commas"):
        Settings.from_env({"JOBS_SECRET_KEY": " , "})


@pytest.mark.parametrize(
    "key",
    [
        KEY,
        KEY.rstrip("="),  # padding missing
        KEY[:-4] + "AAA=",  # 32 bytes again, other value
        base64.urlsafe_b64encode(bytes(31)).decode(),
        base64.urlsafe_b64encode(bytes(33)).decode(),
        base64.b64encode(b"\xfb" * 32).decode(),  # '+' and '/': the standard alphabet, not the url-safe one
        "x" * 44,
    ],
)
def test_a_secret_key_passes_exactly_when_fernet_takes_it(key: str) -> None:
    try:
        Fernet(key)
        fernet_takes_it = True
    except ValueError:
        fernet_takes_it = False
    try:
        Settings.from_env({"JOBS_SECRET_KEY": key})
        settings_take_it = True
    except SettingsError:
        settings_take_it = False
    assert settings_take_it == fernet_takes_it


def test_the_docstring_table_lists_every_variable_once() -> None:
    documented = re.findall(r"^\| ([A-Z_]+) \|", app.settings.__doc__ or "", flags=re.MULTILINE)
    assert sorted(documented) == sorted(env_name(setting.name) for setting in fields(Settings))
