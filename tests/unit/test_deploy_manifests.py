"""deploy/ (compose, Kubernetes, RabbitMQ files) parsed and cross-checked against the code's names and ports."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import typer.main

from api.cli import app
from api.routes import health
from api.settings import Settings
from api.worker_health import PATHS as WORKER_PROBES
from connectors.rabbitmq.topology import DEFINITIONS, Topology
from connectors.rabbitmq.workers import ROLES

try:
    import yaml
except ImportError:  # PyYAML is not a declared test dependency yet
    if os.environ.get("CI", "").lower() == "true":
        raise
    pytest.skip("PyYAML is not installed (add pyyaml to the test extra)", allow_module_level=True)

DEPLOY = Path(__file__).parents[2] / "deploy"
SETTINGS = {f"RCMHUB_{name.upper()}" for name in Settings.model_fields}
SECRET_SETTINGS = {"RCMHUB_DATABASE_URL", "RCMHUB_AMQP_URL"}  # they carry credentials
API_PROBES = {route.path for route in health.router.routes}  # type: ignore[attr-defined]


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def k8s() -> dict[tuple[str, str], dict[str, Any]]:
    found = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            found[doc["kind"], doc["metadata"]["name"]] = doc
    return found


def cli_accepts(args: list[str]) -> None:
    """``args`` names an rcmhub command and only options it declares."""
    command = typer.main.get_command(app).commands[args[0]]  # type: ignore[attr-defined]
    options = {o for p in command.params for o in p.opts}
    assert {a for a in args[1:] if a.startswith("--")} <= options, args
    if "--role" in args:
        assert args[args.index("--role") + 1] in (*ROLES, "all")


def test_compose_services_use_existing_commands_settings_and_probe_paths() -> None:
    doc = compose()
    services = doc["services"]
    assert {"postgres", "rabbitmq", "api", "worker", "migrate"} <= set(services)
    for name in ("api", "worker", "migrate"):
        cli_accepts(services[name]["command"])
        env = services[name]["environment"]
        assert set(env) <= SETTINGS, set(env) - SETTINGS
        assert env["RCMHUB_AMQP_PREFIX"] == Topology().prefix
        assert "@postgres:5432/" in env["RCMHUB_DATABASE_URL"] and "@rabbitmq:5672/" in env["RCMHUB_AMQP_URL"]
        for dep, how in services[name]["depends_on"].items():
            assert how["condition"] in ("service_healthy", "service_completed_successfully")
            assert "healthcheck" in services[dep] if how["condition"] == "service_healthy" else \
                services[dep]["restart"] == "no"
    api = services["api"]
    port = int(api["environment"]["RCMHUB_API_PORT"])
    assert f"{port}:{port}" in api["ports"] and f"{Settings().mllp_port}:" in " ".join(api["ports"])
    assert port == Settings().api_port
    probe = re.search(rf"127\.0\.0\.1:{port}(/\w+)", " ".join(api["healthcheck"]["test"]))
    assert probe and probe.group(1) == "/readyz" and "/readyz" in API_PROBES
    worker = services["worker"]
    health_port = worker["command"][worker["command"].index("--health-port") + 1]
    assert f":{health_port}/readyz" in " ".join(worker["healthcheck"]["test"]) and "/readyz" in WORKER_PROBES
    assert worker["stop_signal"] == "SIGTERM"
    assert all("healthcheck" in services[s] for s in ("postgres", "rabbitmq", "api", "worker"))


def test_compose_has_no_default_secrets() -> None:
    text = (DEPLOY / "compose.yaml").read_text()
    for var in ("POSTGRES_PASSWORD", "RABBITMQ_PASSWORD", "RABBITMQ_ERLANG_COOKIE"):
        uses = re.findall(rf"\$\{{{var}([^}}]*)\}}", text)
        assert uses and all(u.startswith(":?") for u in uses), (var, uses)  # required, never defaulted
    assert "guest" not in text
    rabbit = compose()["services"]["rabbitmq"]["environment"]
    assert rabbit["RABBITMQ_DEFAULT_PASS"].startswith("${RABBITMQ_PASSWORD:?")


def test_compose_rabbitmq_loads_the_definitions_the_code_declares_and_enables_prometheus() -> None:
    services = compose()["services"]
    mounts = services["rabbitmq"]["volumes"] + services["rabbitmq-definitions"]["volumes"]
    local = {m.split(":")[0]: m.split(":")[1] for m in mounts if m.startswith("./")}
    assert (DEPLOY / local["./rabbitmq/definitions.json"].replace("/etc/rabbitmq/", "rabbitmq/")).samefile(DEFINITIONS)
    assert local["./rabbitmq/definitions.json"] in services["rabbitmq-definitions"]["command"]
    assert "import_definitions" in services["rabbitmq-definitions"]["command"]
    assert services["rabbitmq-definitions"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "rabbitmq_prometheus" in (DEPLOY / "rabbitmq" / "enabled_plugins").read_text()
    assert "15692:15692" in services["rabbitmq"]["ports"]
    queues = {q["name"] for q in yaml.safe_load(DEFINITIONS.read_text())["queues"]}  # JSON is YAML
    assert {Topology().queue(role).name for role in ROLES} <= queues
    assert {Topology().queue(role).parking for role in ROLES} <= queues


def test_kubernetes_deployments_probe_registered_paths_on_declared_ports() -> None:
    docs = k8s()
    config = docs["ConfigMap", "rcmhub-config"]["data"]
    assert set(config) <= SETTINGS and not set(config) & SECRET_SETTINGS
    assert config["RCMHUB_AMQP_PREFIX"] == Topology().prefix and config["RCMHUB_API_HOST"] == "0.0.0.0"
    for name, probes in (("rcmhub-api", API_PROBES), ("rcmhub-worker", set(WORKER_PROBES))):
        deployment = docs["Deployment", name]
        pod = deployment["spec"]["template"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        for container in pod["spec"].get("initContainers", []) + pod["spec"]["containers"]:
            cli_accepts(container["args"])
            refs = {next(iter(r.values()))["name"] for r in container["envFrom"]}
            assert refs == {"rcmhub-config", "rcmhub-secrets"}
        (container,) = pod["spec"]["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in probes
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in probes
        for probe in ("readinessProbe", "livenessProbe"):
            assert container[probe]["httpGet"]["port"] in ports
        if name == "rcmhub-api":
            assert ports == {"http": int(config["RCMHUB_API_PORT"]), "mllp": int(config["RCMHUB_MLLP_PORT"])}
            assert ports["http"] == Settings().api_port and ports["mllp"] == Settings().mllp_port
        else:
            assert ports == {"health": int(container["args"][container["args"].index("--health-port") + 1])}
            assert pod["spec"]["terminationGracePeriodSeconds"] > 30  # WorkConsumer.shutdown_seconds


def test_kubernetes_service_and_autoscaler_point_at_the_deployments() -> None:
    docs = k8s()
    service = docs["Service", "rcmhub-api"]
    pod = docs["Deployment", "rcmhub-api"]["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    names = {p["name"] for p in pod["spec"]["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == names
    hpa = docs["HorizontalPodAutoscaler", "rcmhub-worker"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert ("Deployment", target["name"]) in docs and target["kind"] == "Deployment"
    assert 1 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    worker = docs["Deployment", "rcmhub-worker"]["spec"]["template"]["spec"]["containers"][0]
    assert worker["resources"]["requests"]["cpu"]  # a CPU utilization target needs a request
    secret_docs = [d for (kind, _), d in docs.items() if kind == "Secret"]
    assert secret_docs == [], "secrets are created outside the repository, never committed"
