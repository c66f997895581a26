"""docker-compose.yml, checked without a Docker engine: valid against the Compose specification,
and every image, port, file, service and variable it names exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from shared.settings import Settings
from tests.deploy_tools import (
    COMPOSE_FILE,
    REPO,
    SCHEMAS,
    WOOSYNC_VARIABLE,
    check_woosync_command,
    known_woosync_variables,
    load_yaml,
    walk_strings,
)

pytestmark = pytest.mark.unit

WOOSYNC_IMAGE = "woosync:local"
# Third-party images the stack may use (official Docker Hub repositories); tags must be explicit versions.
THIRD_PARTY_IMAGES = {"postgres", "rabbitmq", "prom/prometheus", "grafana/grafana"}
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)((?::?[-?+])[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)")


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)  # type: ignore[return-value]


@pytest.fixture(scope="module")
def compose_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((SCHEMAS / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def _woosync_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items() if service.get("image") == WOOSYNC_IMAGE}


def _environment(service: dict) -> dict[str, str]:
    """The service's environment with ${VAR:-default} resolved to its default."""
    resolved = {}
    for key, value in (service.get("environment") or {}).items():
        text = "" if value is None else str(value)
        resolved[key] = INTERPOLATION.sub(_default_of, text)
    return resolved


def _default_of(match: re.Match[str]) -> str:
    """${VAR:-default} and ${VAR-default} -> default; anything else -> empty."""
    modifier = (match.group(2) or "").removeprefix(":")
    return modifier[1:] if modifier.startswith("-") else ""


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, f"not a duration: {duration}"
    return sum(float(number) * units[unit] for number, unit in parts)


def test_compose_file_is_valid_against_the_compose_specification(compose: dict, compose_validator) -> None:
    errors = sorted(compose_validator.iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_compose_schema_rejects_a_misspelt_key(compose: dict, compose_validator) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["consumer"]["enviroment"] = {"WOOSYNC_LOG_LEVEL": "INFO"}
    assert not compose_validator.is_valid(broken)


def test_every_interpolated_variable_has_a_default(compose: dict) -> None:
    """`docker compose up` must work without a .env file."""
    for text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text.replace("$$", "")):
            name, modifier = match.group(1) or match.group(3), match.group(2) or ""
            assert modifier.startswith((":-", "-")), f"${{{name}}} has no default: write ${{{name}:-value}}"


def test_every_woosync_variable_is_one_woosync_reads(compose: dict) -> None:
    named = {name for text in walk_strings(compose) for name in WOOSYNC_VARIABLE.findall(text)}
    unknown = named - known_woosync_variables()
    assert not unknown, f"docker-compose.yml sets variables woosync never reads: {sorted(unknown)}"


def test_woosync_service_environments_are_valid_settings(compose: dict) -> None:
    for name, service in _woosync_services(compose).items():
        environment = {k: v for k, v in _environment(service).items() if k.startswith("WOOSYNC_")}
        fields = {key.removeprefix("WOOSYNC_").lower(): value for key, value in environment.items()}
        fields = {key: value for key, value in fields.items() if key in Settings.model_fields}
        try:
            Settings(_env_file=None, **fields)
        except ValueError as exc:
            pytest.fail(f"{name}: its environment is not valid woosync settings: {exc}", pytrace=False)


def test_images_are_built_here_or_pinned_official_images(compose: dict) -> None:
    for name, service in compose["services"].items():
        image = service.get("image")
        assert image, f"{name}: no image"
        if image == WOOSYNC_IMAGE:
            build = service["build"]
            context = REPO / build["context"]
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']} in {context}"
            continue
        repository, _, tag = image.partition(":")
        assert repository in THIRD_PARTY_IMAGES, f"{name}: unexpected image {image}"
        assert tag and tag != "latest" and re.match(r"v?\d", tag), f"{name}: pin {image} to a version tag"
    assert compose["services"]["rabbitmq"]["image"].startswith("rabbitmq:3.13-management")


def test_woosync_services_run_real_woosync_commands(compose: dict) -> None:
    services = _woosync_services(compose)
    assert set(services) == {"migrate", "simulator", "producer", "consumer", "status", "webhooks"}
    for service in services.values():
        check_woosync_command(service["command"])


def test_services_start_after_migrations_and_a_healthy_broker(compose: dict) -> None:
    services = compose["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no", "a one-shot migration must not be restarted"
    for name in ("producer", "consumer", "status", "webhooks"):
        depends_on = services[name]["depends_on"]
        assert depends_on["migrate"]["condition"] == "service_completed_successfully", name
        assert depends_on["rabbitmq"]["condition"] == "service_healthy", name


def test_depends_on_names_existing_services_that_can_satisfy_the_condition(compose: dict) -> None:
    services = compose["services"]
    dockerfile_has_healthcheck = "\nHEALTHCHECK " in (REPO / "Dockerfile").read_text()
    for name, service in services.items():
        depends_on = service.get("depends_on") or {}
        conditions = (
            {dep: "service_started" for dep in depends_on}
            if isinstance(depends_on, list)
            else {dep: spec["condition"] for dep, spec in depends_on.items()}
        )
        for dependency, condition in conditions.items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            if condition == "service_healthy":
                target = services[dependency]
                has_check = "healthcheck" in target or (
                    target.get("image") == WOOSYNC_IMAGE and dockerfile_has_healthcheck
                )
                assert has_check, f"{name} waits for {dependency} to be healthy, but it has no healthcheck"


def test_consumers_run_two_replicas_and_get_time_to_drain(compose: dict) -> None:
    consumer = compose["services"]["consumer"]
    assert consumer["deploy"]["replicas"] == 2
    assert "container_name" not in consumer, "a fixed container name forbids replicas"
    drain = float(
        _environment(consumer).get("WOOSYNC_DRAIN_TIMEOUT_S", Settings.model_fields["drain_timeout_s"].default)
    )
    assert _seconds(consumer["stop_grace_period"]) > drain, "Docker would SIGKILL consumers mid-drain"


def test_bind_mounts_exist_and_named_volumes_are_declared(compose: dict) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith((".", "/")):
                assert (REPO / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_published_ports_are_local_and_served_by_the_container(compose: dict) -> None:
    services = compose["services"]
    serves = {
        "status": services["status"]["command"][services["status"]["command"].index("--port") + 1],
        "webhooks": services["webhooks"]["command"][services["webhooks"]["command"].index("--port") + 1],
        "simulator": services["simulator"]["command"][services["simulator"]["command"].index("--port") + 1],
        "rabbitmq": "15672",  # management UI (rabbitmq_management in the mounted enabled_plugins)
        "prometheus": "9090",
        "grafana": "3000",
    }
    for name, service in services.items():
        for mapping in service.get("ports", []):
            host_ip, _host_port, container_port = str(mapping).split(":")
            assert host_ip == "127.0.0.1", f"{name}: publish on 127.0.0.1 only, not {mapping}"
            assert name in serves and container_port == serves[name], f"{name}: nothing listens on {container_port}"
    plugins = Path(REPO / "deploy" / "rabbitmq" / "enabled_plugins").read_text()
    assert "rabbitmq_management" in plugins
