"""compose.yaml as Docker Compose would read it (no Docker here: parsed with pyyaml, `${…}` interpolated as compose
does): each role's environment is valid Settings with callback URLs others can reach, the compose network and the
host gateway as allowed private networks, JSON logs, a drain Docker waits for, and the ops port Prometheus
scrapes; the observability services exist only under their profile; every file it mounts exists."""

import ipaddress
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from app.adapters.url_policy import parse_networks, permitted
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent.parent
COMPOSE = ROOT / "compose.yaml"
ROLES = ("api", "relay", "worker")
OBSERVABILITY = {"prometheus", "grafana", "jaeger"}
SECRET_KEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
ENVIRONMENT = {"JOBS_SECRET_KEY": SECRET_KEY}  # the one variable compose insists on

_VARIABLE = re.compile(r"\$(?:\$|\{(?P<name>\w+)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\})")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def interpolate(text: str, environ: Mapping[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?error}`, `${VAR:+other}`; `$$` is `$`."""

    def value(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        if name is None:
            return "$"
        current = environ.get(name)
        present = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in ("-", ":-"):
            return current if present and current is not None else arg
        if op in ("?", ":?"):
            if not present or current is None:
                raise ValueError(f"{name}: {arg}")
            return current
        if op in ("+", ":+"):
            return arg if present else ""
        return current or ""

    return _VARIABLE.sub(value, text)


def resolve(node: Any, environ: Mapping[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, environ)
    if isinstance(node, list):
        return [resolve(item, environ) for item in node]
    if isinstance(node, dict):
        return {key: resolve(item, environ) for key, item in node.items()}
    return node


def compose(environ: Mapping[str, str] = ENVIRONMENT) -> dict[str, Any]:
    return resolve(yaml.safe_load(COMPOSE.read_text()), environ)  # type: ignore[no-any-return]


def role_settings(environ: Mapping[str, str] = ENVIRONMENT) -> dict[str, Settings]:
    services = compose(environ)["services"]
    return {role: Settings.from_env({k: str(v) for k, v in services[role]["environment"].items()}) for role in ROLES}


def seconds(duration: str) -> float:
    parts = _DURATION.findall(duration)
    assert parts and "".join(number + unit for number, unit in parts) == duration, duration
    return sum(float(number) * _SECONDS[unit] for number, unit in parts)


def test_interpolation_reads_variables_as_compose_does() -> None:
    environ = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d} ${EMPTY:-d} ${EMPTY-d} ${UNSET-d} ${UNSET:-d} $$HOME ${SET}", environ) == (
        "x d  d d $HOME x"
    )
    with pytest.raises(ValueError, match="UNSET: needed"):
        interpolate("${UNSET:?needed}", environ)


def test_the_roles_are_the_services_built_from_the_image() -> None:
    built = {name for name, service in compose()["services"].items() if "build" in service}
    assert built == {*ROLES, "migrate"}


def test_compose_refuses_to_start_without_a_secret_key() -> None:
    with pytest.raises(ValueError, match="JOBS_SECRET_KEY"):
        compose({})


def test_callback_urls_name_the_published_api_not_the_bind_address() -> None:
    services = compose()["services"]
    assert "8000:8000" in services["api"]["ports"]
    for role, settings in role_settings().items():
        assert settings.host == "0.0.0.0", role
        assert settings.api_url == "http://localhost:8000", role
    overridden = role_settings({**ENVIRONMENT, "JOBS_PUBLIC_URL": "https://jobs.example.com"})
    assert {settings.api_url for settings in overridden.values()} == {"https://jobs.example.com"}


# Docker's default address pools: the docker0 bridge (172.17.0.1 is the host gateway on Linux), compose networks
# (172.18-31.x.x, then 192.168.x.x in /20 blocks) and Docker Desktop's host.docker.internal.
DOCKER_ADDRESSES = ("172.17.0.1", "172.18.0.5", "172.31.255.254", "192.168.0.2", "192.168.240.7", "192.168.65.254")
STILL_REFUSED = ("127.0.0.1", "10.0.0.1", "169.254.169.254", "100.64.0.1", "::1")


def test_endpoints_on_the_compose_network_and_the_host_are_allowed_and_nothing_else_private() -> None:
    for role, settings in role_settings().items():
        assert settings.allowed_private_networks is not None, role
        allowed = parse_networks(settings.allowed_private_networks)
        for address in DOCKER_ADDRESSES:
            assert permitted(ipaddress.ip_address(address), allowed), (role, address)
        for address in STILL_REFUSED:
            assert not permitted(ipaddress.ip_address(address), allowed), (role, address)


def test_allowed_private_networks_can_be_overridden_or_emptied() -> None:
    narrowed = role_settings({**ENVIRONMENT, "JOBS_ALLOWED_PRIVATE_NETWORKS": "172.30.0.0/16"})
    assert {settings.allowed_private_networks for settings in narrowed.values()} == {"172.30.0.0/16"}
    none = role_settings({**ENVIRONMENT, "JOBS_ALLOWED_PRIVATE_NETWORKS": ""})
    assert {settings.allowed_private_networks for settings in none.values()} == {""}


def test_an_endpoint_on_the_host_is_reachable_by_name() -> None:
    services = compose()["services"]
    for role in ROLES:
        assert "host.docker.internal:host-gateway" in services[role]["extra_hosts"], role


def test_docker_waits_longer_than_a_role_drains() -> None:
    services = compose()["services"]
    for role, settings in role_settings().items():
        assert seconds(services[role]["stop_grace_period"]) > settings.shutdown_seconds >= Settings().shutdown_seconds


def test_roles_log_json() -> None:
    assert {settings.log_format for settings in role_settings().values()} == {"json"}


def scraped_ports() -> dict[str, set[int]]:
    """Service name → the ports deploy/prometheus/prometheus.yml scrapes it on."""
    config = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    ports: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", []):
            for name in discovery["names"]:
                ports.setdefault(name, set()).add(discovery["port"])
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                host, _, port = target.rpartition(":")
                ports.setdefault(host, set()).add(int(port))
    return ports


def test_prometheus_scrapes_each_role_on_its_ops_port() -> None:
    services = compose()["services"]
    ports = scraped_ports()
    for role, settings in role_settings().items():
        assert settings.ops_port is not None, f"{role}: set JOBS_OPS_PORT explicitly"
        assert ports[role] == {settings.ops_port_or_default}, role
        assert str(settings.ops_port) in services[role]["expose"], role


def test_relay_and_worker_health_checks_ask_their_ops_port() -> None:
    services = compose()["services"]
    for role in ("relay", "worker"):
        settings = role_settings()[role]
        assert f"http://127.0.0.1:{settings.ops_port}/healthz" in " ".join(services[role]["healthcheck"]["test"])


def test_observability_services_exist_only_under_their_profile() -> None:
    services = compose()["services"]
    profiled = {name for name, service in services.items() if "profiles" in service}
    assert profiled == OBSERVABILITY
    for name in OBSERVABILITY:
        assert services[name]["profiles"] == ["observability"], name
        assert "depends_on" not in services[name] or set(services[name]["depends_on"]) <= OBSERVABILITY


def test_traces_are_exported_only_when_pointed_at_the_profiles_collector() -> None:
    services = compose()["services"]
    for role in ROLES:
        assert services[role]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "", role
    pointed = compose({**ENVIRONMENT, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318"})["services"]
    for role in ROLES:
        assert pointed[role]["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318", role
    jaeger = services["jaeger"]
    assert "4318" in jaeger["expose"] and jaeger["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"


def test_every_file_compose_mounts_exists() -> None:
    mounted = [
        volume.split(":")[0]
        for service in compose()["services"].values()
        for volume in service.get("volumes", [])
        if volume.startswith("./")
    ]
    assert len(mounted) >= 4
    for source in mounted:
        assert (ROOT / source).exists(), source


def test_the_image_exposes_the_ops_port_and_copies_what_the_roles_import() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    exposed = {port for line in dockerfile.splitlines() if line.startswith("EXPOSE") for port in line.split()[1:]}
    assert exposed == {"8000", str(Settings().ops_port_or_default)}
    for package in ("app", "domain", "projections", "relay", "migrations"):
        assert f"COPY {package}/ {package}/" in dockerfile
    lock = (ROOT / "requirements/base.lock").read_text()
    for requirement in ("prometheus-client==", "opentelemetry-sdk==", "opentelemetry-exporter-otlp-proto-http=="):
        assert requirement in lock
