"""Static checks of docker/docker-compose.yml (+ the basic-auth override): there is no Docker
engine on the development machines, so the file is parsed and its wiring checked by hand."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
REPO = DOCKER.parent

# Variables the server process reads besides the entrypoint's own: MLflow's and ours.
_PASSED_THROUGH = {
    "MLFLOW_GREEN_POLICY",
    "MLFLOW_AUTH_CONFIG_PATH",
    "MLFLOW_AUTH_ADMIN_USERNAME",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
}


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DOCKER / name).read_text())
    assert isinstance(data, dict), f"{name} must be a YAML mapping"
    return data


def _env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the "KEY=value" list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """``${VAR:-default}`` interpolation as Compose does it when VAR is unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load("docker-compose.yml")


def test_services_and_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow"}
    image = services["postgres"]["image"]
    assert re.fullmatch(r"postgres:\d+\.\d+[-\w.]*", image), f"pin the PostgreSQL image: {image}"
    build = services["mlflow"]["build"]
    assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKER / "Dockerfile.server"


@pytest.mark.parametrize("service", ["postgres", "mlflow"])
def test_every_service_has_a_healthcheck(compose: dict[str, Any], service: str) -> None:
    check = compose["services"][service]["healthcheck"]
    assert check["test"][0] in {"CMD", "CMD-SHELL"}
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{service} healthcheck lacks {key}"


def test_mlflow_waits_for_a_healthy_database(compose: dict[str, Any]) -> None:
    depends = compose["services"]["mlflow"]["depends_on"]
    assert depends == {"postgres": {"condition": "service_healthy"}}


def test_backend_store_points_at_the_postgres_service(compose: dict[str, Any]) -> None:
    env = _env(compose["services"]["mlflow"])
    uri = _default(env["MLFLOW_BACKEND_STORE_URI"])
    pg = _env(compose["services"]["postgres"])
    assert uri == (
        f"postgresql+psycopg2://{pg['POSTGRES_USER']}:{_default(pg['POSTGRES_PASSWORD'])}"
        f"@postgres:5432/{pg['POSTGRES_DB']}"
    )


def test_ports_publish_the_server_port_on_loopback(compose: dict[str, Any]) -> None:
    service = compose["services"]["mlflow"]
    env = _env(service)
    (port,) = service["ports"]
    host_ip, host_port, container_port = _default(port).split(":")
    assert container_port == env["PORT"]
    assert host_ip == "127.0.0.1", "publish on loopback; a reverse proxy exposes it"
    assert host_port.isdigit()
    assert env["PORT"] in " ".join(service["healthcheck"]["test"])


def test_policy_is_mounted_read_only_from_the_host(compose: dict[str, Any]) -> None:
    service = compose["services"]["mlflow"]
    policy_in_container = _env(service)["MLFLOW_GREEN_POLICY"]
    mounts = [v.split(":") for v in service["volumes"]]
    (host, _, mode) = next(m for m in mounts if len(m) == 3 and m[1] == policy_in_container)
    assert mode == "ro"
    assert (DOCKER / host).is_file()


def test_artifacts_and_database_live_on_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    artifacts = _env(compose["services"]["mlflow"])["MLFLOW_ARTIFACTS_DESTINATION"]
    named = {v.split(":")[0]: v.split(":")[1] for v in compose["services"]["mlflow"]["volumes"]}
    assert named.get("mlartifacts") == artifacts and "mlartifacts" in declared
    pg_volumes = [v.split(":") for v in compose["services"]["postgres"]["volumes"]]
    assert ["pgdata", "/var/lib/postgresql/data"] in pg_volumes and "pgdata" in declared


def test_environment_names_are_ones_the_entrypoint_or_server_reads(compose: dict[str, Any]) -> None:
    script = (DOCKER / "entrypoint.sh").read_text()
    for name in _env(compose["services"]["mlflow"]):
        assert name in script or name in _PASSED_THROUGH, f"{name} is read by nobody"
    assert _env(compose["services"]["mlflow"])["MLFLOW_APP_NAME"] == "green-gate"


def test_auth_override_switches_to_green_gate_auth() -> None:
    override = _load("docker-compose.auth.yml")["services"]["mlflow"]
    env = _env(override)
    assert env["MLFLOW_APP_NAME"] == "green-gate-auth"
    # Secrets come from the operator's environment and are required (":?"), never defaulted.
    for secret in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert env[secret].startswith(f"${{{secret}:?"), secret
    ini_host, ini_container, mode = next(
        v.split(":") for v in override["volumes"] if v.endswith(":ro")
    )
    assert ini_container == env["MLFLOW_AUTH_CONFIG_PATH"] and mode == "ro"
    config = configparser.ConfigParser()
    assert config.read(DOCKER / ini_host)
    section = config["mlflow"]
    assert section["default_permission"] == "READ"
    assert section["database_uri"].startswith("sqlite:////data/")
    assert "admin_password" not in section, "the admin password belongs in the environment"


def test_policy_example_is_a_valid_policy() -> None:
    from mlflow_green.registry.policy import load_policy

    policy = load_policy(DOCKER / "policy.example.yaml")
    default = policy.for_model("any-model")
    assert default.alias_gated("champion") and not default.alias_gated("candidate")
    assert {(b.scope, b.key) for b in default.budgets} >= {(None, "total_co2eq_kg"), ("champion", "total_co2eq_kg")}
    assert policy.for_model("llm-7b").include_lineage
    assert not policy.for_model("sandbox-x").alias_gated("champion")
