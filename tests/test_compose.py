"""docker-compose.yml, the Dockerfile and deploy/ checked as files.

Docker does not run on the machines the tests run on, so these tests read the
files and check what a user would otherwise only discover at ``docker compose
up``: CDC settings on the databases, health-gated start order, every
variable documented, and an image whose entry point is the console script.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / "deploy" / ".env.example"
PIPELINE = ROOT / "deploy" / "pipeline.yaml"
CDCSYNC_SERVICES = {"daemon": "daemon", "worker": "worker", "review": "review"}
# ${VAR}, ${VAR:-default}, ${VAR:?message}, ${VAR-x}, $VAR; "$$" is a literal dollar.
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:[:]?[-?+][^}]*)?\}|([A-Za-z_]\w*))")


def referenced_variables(text: str) -> set[str]:
    text = text.replace("$$", "")
    return {braced or bare for braced, bare in VARIABLE.findall(text)}


def variables_in_yaml(path: Path) -> set[str]:
    """Variables used by a YAML file's values (comments may mention ${VAR} freely)."""

    def strings(node: object) -> list[str]:
        if isinstance(node, dict):
            return [t for k, v in node.items() for t in (*strings(k), *strings(v))]
        if isinstance(node, list):
            return [t for item in node for t in strings(item)]
        return [node] if isinstance(node, str) else []

    return referenced_variables("\n".join(strings(yaml.safe_load(path.read_text()))))


def documented_variables(text: str) -> set[str]:
    return {
        line.split("=", 1)[0].strip()
        for line in text.splitlines()
        if "=" in line and not line.lstrip().startswith("#")
    }


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = compose["services"]
    assert isinstance(found, dict)
    return found


def command_args(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command]


def server_options(args: list[str]) -> dict[str, str]:
    """``--binlog-format=ROW`` and ``-c wal_level=logical`` as {name: value}, names with _."""
    options: dict[str, str] = {}
    for arg in args:
        name, sep, value = arg.lstrip("-").partition("=")
        if sep:
            options[name.replace("-", "_")] = value
    return options


def test_every_service_is_there(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) >= {"postgres", "mariadb", "redis", *CDCSYNC_SERVICES}


def test_postgres_is_configured_for_logical_decoding(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    assert pg["image"] == "postgres:15"
    args = command_args(pg)
    assert args[0] == "postgres"
    options = server_options(args)
    assert options["wal_level"] == "logical"
    assert int(options["max_replication_slots"]) >= 1
    assert int(options["max_wal_senders"]) >= 1
    # rows written inside savepoints are recognised by commit timestamp (docs/postgres.md)
    assert options["track_commit_timestamp"] == "on"


def test_mariadb_writes_a_full_row_binlog(services: dict[str, dict[str, Any]]) -> None:
    db = services["mariadb"]
    assert db["image"] == "mariadb:10.11"
    options = server_options(command_args(db))
    assert options["binlog_format"] == "ROW"
    assert options["binlog_row_image"] == "FULL"
    assert options["binlog_row_metadata"] == "FULL"
    assert options["log_bin"]
    assert int(options["server_id"]) >= 1


def test_cdcsync_services_run_their_role_on_the_mounted_pipeline(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, role in CDCSYNC_SERVICES.items():
        service = services[name]
        assert service["build"] == "."
        args = command_args(service)
        assert args[:2] == [role, "/config/pipeline.yaml"], name
        mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
        assert (ROOT / mounts["/config/pipeline.yaml"]).resolve() == PIPELINE
    assert command_args(services["review"])[2:] == ["--host", "0.0.0.0", "--port", "8080"]


def test_depends_on_waits_for_healthy_services(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions, not a list"
        for target, how in depends.items():
            assert target in services, f"{name} depends on unknown service {target}"
            assert how == {"condition": "service_healthy"}, f"{name} -> {target}: {how}"
            test = services[target].get("healthcheck", {}).get("test")
            assert test, f"{name} waits for {target}, which has no healthcheck"
            checked += 1
    assert checked >= 3


def test_every_variable_is_documented_in_the_env_example() -> None:
    used = variables_in_yaml(COMPOSE)
    documented = documented_variables(ENV_EXAMPLE.read_text())
    assert used, "the compose file takes its secrets from variables"
    assert used <= documented, f"missing from {ENV_EXAMPLE.name}: {sorted(used - documented)}"


def test_variable_references_are_found() -> None:
    text = "a: ${A}\nb: ${B:-x}\nc: ${C:?set C}\nd: $D\ne: $${NOT_ME}\nf: $$NOR_ME"
    assert referenced_variables(text) == {"A", "B", "C", "D"}


def test_secrets_the_pipeline_reads_reach_every_cdcsync_container(
    services: dict[str, dict[str, Any]],
) -> None:
    needed = variables_in_yaml(PIPELINE)
    assert needed, "the example pipeline takes its passwords from the environment"
    for name in CDCSYNC_SERVICES:
        environment = services[name].get("environment", {})
        assert isinstance(environment, dict)
        assert needed <= set(environment), f"{name} lacks {sorted(needed - set(environment))}"


def test_ports_are_strings(services: dict[str, dict[str, Any]]) -> None:
    ports = [(name, p) for name, s in services.items() for p in s.get("ports", [])]
    assert ports
    for name, port in ports:
        # an unquoted 22:22 is a base-60 number to YAML 1.1
        assert isinstance(port, str), f"{name}: port {port!r} should be a quoted string"


def test_mounted_host_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    return [
        (keyword.upper(), rest.strip())
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
        for keyword, _, rest in [line.strip().partition(" ")]
    ]


def test_dockerfile_entry_point_is_the_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    instructions = _dockerfile_instructions()
    assert ("FROM", "python:3.11-slim") in instructions
    entrypoints = [json.loads(rest) for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    assert entrypoints == [["cdcsync"]]
    assert "cdcsync" in project["scripts"]


def test_dockerfile_copies_everything_pip_install_needs() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {
        part.rstrip("/")
        for keyword, rest in _dockerfile_instructions()
        if keyword == "COPY"
        for part in rest.split()[:-1]
    }
    include = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    assert packages <= copied, f"not copied into the image: {sorted(packages - copied)}"
    assert {"pyproject.toml", pyproject["project"]["readme"]} <= copied


def test_example_pipeline_is_valid_and_points_at_compose_services(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from config import load_pipeline

    for variable in variables_in_yaml(PIPELINE):
        monkeypatch.setenv(variable, "secret")
    cfg = load_pipeline(PIPELINE)
    hosts = set(re.findall(r"@([A-Za-z0-9_-]+):", cfg.state.url))
    hosts |= set(re.findall(r"//([A-Za-z0-9_-]+):", cfg.broker.url))
    for endpoint in cfg.endpoints.values():
        dsn = getattr(endpoint, "dsn", None)
        if dsn:
            hosts |= set(re.findall(r"@([A-Za-z0-9_-]+):", dsn))
        else:
            hosts.add(getattr(endpoint, "host", ""))
    assert hosts == {"postgres", "mariadb", "redis"}
    assert hosts <= set(services)
