"""deploy/k8s, checked offline: `kubectl kustomize` renders it, every object validates against the
Kubernetes schemas (built-in kinds) or the vendored CRD schemas (KEDA, ServiceMonitor), and the
objects agree with each other and with woosync (ports, probes, names, settings, drain time)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from shared.settings import Settings
from shared.topology import CUSTOMER_LINES_QUEUE
from tests.deploy_tools import (
    K8S,
    PROMETHEUS,
    SCHEMAS,
    WOOSYNC_VARIABLE,
    check_woosync_command,
    known_woosync_variables,
    load_yaml,
    load_yaml_documents,
    require_tool,
    run_tool,
    walk_strings,
)

pytestmark = pytest.mark.unit

# The oldest Kubernetes minor still commonly run, and the newest the validator knows.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda.sh" / "scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS / "keda.sh" / "triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SCHEMAS / "monitoring.coreos.com" / "servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): SCHEMAS / "monitoring.coreos.com" / "prometheusrule_v1.json",
}
SECRET_KEYS = {"WOOSYNC_DATABASE_URL", "WOOSYNC_AMQP_URL", "WOOSYNC_SECRET_KEY"}
# Renderings a user can apply: the default (KEDA) and the HPA overlay.
RENDERINGS = {"default": K8S, "hpa": K8S / "overlays" / "hpa"}


def _render(directory: Path) -> list[dict]:
    kubectl = require_tool("kubectl")
    return load_yaml_documents(run_tool(kubectl, "kustomize", str(directory)).stdout)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    return {name: _render(directory) for name, directory in RENDERINGS.items()}


@pytest.fixture(scope="module")
def default(rendered: dict[str, list[dict]]) -> list[dict]:
    return rendered["default"]


def _all(rendered: dict[str, list[dict]]) -> list[tuple[str, dict]]:
    return [(name, obj) for name, objects in rendered.items() for obj in objects]


def _one(objects: list[dict], kind: str, name: str) -> dict:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"expected one {kind}/{name}, found {len(matches)}"
    return matches[0]


def _of_kind(objects: list[dict], kind: str) -> list[dict]:
    return [o for o in objects if o["kind"] == kind]


def _pod_templates(objects: list[dict]) -> list[tuple[dict, dict]]:
    return [(o, o["spec"]["template"]) for o in objects if o["kind"] in ("Deployment", "Job")]


def _selects(selector: dict, labels: dict) -> bool:
    match_labels = selector.get("matchLabels", selector)
    return bool(match_labels) and all(labels.get(key) == value for key, value in match_labels.items())


def _crd_validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(CRD_SCHEMAS[(api_version, kind)].read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_both_renderings_hold_the_expected_objects(rendered: dict[str, list[dict]]) -> None:
    def kinds(objects: list[dict]) -> dict[str, int]:
        counted: dict[str, int] = {}
        for obj in objects:
            counted[obj["kind"]] = counted.get(obj["kind"], 0) + 1
        return counted

    common = {
        "ConfigMap": 1,
        "Secret": 1,
        "Job": 1,
        "Deployment": 4,
        "Service": 4,
        "PodDisruptionBudget": 3,
        "ServiceMonitor": 4,
        "PrometheusRule": 1,
    }
    assert kinds(rendered["default"]) == {**common, "ScaledObject": 1, "TriggerAuthentication": 1}
    assert kinds(rendered["hpa"]) == {**common, "HorizontalPodAutoscaler": 1}


def test_manifests_set_no_namespace(rendered: dict[str, list[dict]]) -> None:
    for rendering, obj in _all(rendered):
        assert "namespace" not in obj["metadata"], (
            f"{rendering}: {obj['kind']}/{obj['metadata']['name']} pins a namespace"
        )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_builtin_objects_validate_against_the_kubernetes_schemas(rendered: dict[str, list[dict]], version: str) -> None:
    for rendering, obj in _all(rendered):
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(part) for part in exc.path)
            pytest.fail(
                f"{rendering}: {obj['kind']}/{obj['metadata']['name']} at {path}: {exc.message} (Kubernetes {version})"
            )


def test_custom_resources_validate_against_the_vendored_crd_schemas(rendered: dict[str, list[dict]]) -> None:
    checked = set()
    for rendering, obj in _all(rendered):
        key = (obj["apiVersion"], obj["kind"])
        if key not in CRD_SCHEMAS:
            continue
        errors = list(_crd_validator(*key).iter_errors(obj))
        assert not errors, f"{rendering}: {obj['kind']}/{obj['metadata']['name']}: " + "; ".join(
            f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors
        )
        checked.add(key)
    assert checked == set(CRD_SCHEMAS), f"no object of {set(CRD_SCHEMAS) - checked} was validated"


def test_every_rendered_kind_has_a_schema(rendered: dict[str, list[dict]]) -> None:
    for rendering, obj in _all(rendered):
        if (obj["apiVersion"], obj["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSIONS[-1], strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            pytest.fail(
                f"{rendering}: no schema for {obj['apiVersion']} {obj['kind']}: "
                "vendor its CRD schema under deploy/schemas"
            )


def test_the_kubernetes_validator_rejects_a_misspelt_field(default: list[dict]) -> None:
    deployment = json.loads(json.dumps(_one(default, "Deployment", "woosync-consumer")))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


@pytest.mark.parametrize(
    ("api_version", "kind", "typo"),
    [
        ("keda.sh/v1alpha1", "ScaledObject", ("spec", "minReplicas")),
        ("keda.sh/v1alpha1", "TriggerAuthentication", ("spec", "secretTargetRefs")),
        ("monitoring.coreos.com/v1", "ServiceMonitor", ("spec", "endpoint")),
        ("monitoring.coreos.com/v1", "PrometheusRule", ("spec", "group")),
    ],
)
def test_the_vendored_crd_schemas_reject_a_misspelt_field(
    default: list[dict], api_version: str, kind: str, typo: tuple[str, str]
) -> None:
    obj = json.loads(json.dumps(next(o for o in default if o["kind"] == kind)))
    obj[typo[0]][typo[1]] = 1
    assert not _crd_validator(api_version, kind).is_valid(obj)


def test_pods_run_unprivileged_on_a_read_only_root(rendered: dict[str, list[dict]]) -> None:
    for rendering, objects in rendered.items():
        for owner, template in _pod_templates(objects):
            where = f"{rendering}: {owner['kind']}/{owner['metadata']['name']}"
            pod = template["spec"]
            assert pod["securityContext"]["runAsNonRoot"] is True, where
            assert pod["securityContext"]["runAsUser"] != 0, where
            assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
            assert pod.get("automountServiceAccountToken") is False, f"{where}: woosync never calls the Kubernetes API"
            volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
            for container in pod["containers"]:
                context = container["securityContext"]
                assert context["allowPrivilegeEscalation"] is False, where
                assert context["readOnlyRootFilesystem"] is True, where
                assert context["capabilities"]["drop"] == ["ALL"], where
                tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
                assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{where}: /tmp must be a writable emptyDir"


def test_containers_have_requests_limits_and_a_pinned_image(rendered: dict[str, list[dict]]) -> None:
    for rendering, objects in rendered.items():
        for owner, template in _pod_templates(objects):
            for container in template["spec"]["containers"]:
                where = f"{rendering}: {owner['metadata']['name']}/{container['name']}"
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][bound]), (
                        f"{where}: {bound} for cpu and memory"
                    )
                image, _, tag = container["image"].rpartition(":")
                assert image == "woosync" and tag and tag != "latest", f"{where}: image {container['image']}"


def test_containers_run_commands_the_woosync_cli_accepts(default: list[dict]) -> None:
    for _, template in _pod_templates(default):
        for container in template["spec"]["containers"]:
            assert "command" not in container, "the image's ENTRYPOINT is woosync: set args only"
            check_woosync_command(container["args"])


def test_deployments_probe_health_and_readiness_on_a_declared_port(default: list[dict]) -> None:
    for deployment in _of_kind(default, "Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            ports = {port["name"]: port["containerPort"] for port in container["ports"]}
            where = f"{deployment['metadata']['name']}/{container['name']}"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", where
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", where
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                assert container[probe]["httpGet"]["port"] in ports, f"{where}: {probe} names an undeclared port"


def test_services_listen_where_the_containers_say(default: list[dict]) -> None:
    producer = _one(default, "Deployment", "woosync-producer")["spec"]["template"]["spec"]["containers"][0]
    consumer = _one(default, "Deployment", "woosync-consumer")["spec"]["template"]["spec"]["containers"][0]
    status = _one(default, "Deployment", "woosync-status")["spec"]["template"]["spec"]["containers"][0]
    for worker in (producer, consumer):
        env = {item["name"]: item["value"] for item in worker["env"]}
        assert int(env["WOOSYNC_METRICS_PORT"]) == worker["ports"][0]["containerPort"], worker["name"]
    args = status["args"]
    assert int(args[args.index("--port") + 1]) == status["ports"][0]["containerPort"]
    assert args[args.index("--host") + 1] == "0.0.0.0", "the status API must listen beyond the pod's loopback"
    webhooks = _one(default, "Deployment", "woosync-webhooks")["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in webhooks["ports"]}
    args = webhooks["args"]
    assert int(args[args.index("--port") + 1]) == ports["http"]
    assert args[args.index("--host") + 1] == "0.0.0.0", "the webhooks service must listen beyond the pod's loopback"
    env = {item["name"]: item["value"] for item in webhooks["env"]}
    assert int(env["WOOSYNC_METRICS_PORT"]) == ports["metrics"] != ports["http"]


def test_the_webhooks_ingress_example_validates_and_exposes_only_deliveries(default: list[dict]) -> None:
    """deploy/k8s/examples/webhooks-ingress.yaml: valid for every Kubernetes version, and it routes
    only the delivery path to the webhooks Service's http port (never metrics or another service)."""
    (ingress,) = load_yaml_documents((K8S / "examples" / "webhooks-ingress.yaml").read_text())
    for version in KUBERNETES_VERSIONS:
        kubernetes_validate.validate(ingress, version, strict=True)
    service = _one(default, "Service", "woosync-webhooks")
    paths = [path for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]]
    assert [(p["path"], p["backend"]["service"]["name"], p["backend"]["service"]["port"]["name"]) for p in paths] == \
        [("/woocommerce/", service["metadata"]["name"], "http")]
    assert "http" in {port["name"] for port in service["spec"]["ports"]}


def test_consumers_get_more_time_to_stop_than_their_drain(default: list[dict]) -> None:
    config = _one(default, "ConfigMap", "woosync-config")["data"]
    drain = float(config.get("WOOSYNC_DRAIN_TIMEOUT_S", Settings.model_fields["drain_timeout_s"].default))
    grace = _one(default, "Deployment", "woosync-consumer")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= drain + 10, f"terminationGracePeriodSeconds {grace} leaves no margin over the {drain} s drain"


def test_config_and_secret_hold_only_settings_woosync_reads(default: list[dict]) -> None:
    config = _one(default, "ConfigMap", "woosync-config")["data"]
    Settings(_env_file=None, **{key.removeprefix("WOOSYNC_").lower(): value for key, value in config.items()})
    assert set(_one(default, "Secret", "woosync-secrets")["stringData"]) == SECRET_KEYS
    named = {name for obj in default for text in walk_strings(obj) for name in WOOSYNC_VARIABLE.findall(text)}
    assert named - known_woosync_variables() == set(), f"unknown variables: {sorted(named - known_woosync_variables())}"


def test_pods_read_the_config_and_secret_that_exist(default: list[dict]) -> None:
    config_maps = {o["metadata"]["name"] for o in _of_kind(default, "ConfigMap")}
    secrets = {o["metadata"]["name"] for o in _of_kind(default, "Secret")}
    for owner, template in _pod_templates(default):
        for container in template["spec"]["containers"]:
            sources = container["envFrom"]
            assert {s["configMapRef"]["name"] for s in sources if "configMapRef" in s} <= config_maps, owner[
                "metadata"
            ]["name"]
            assert {s["secretRef"]["name"] for s in sources if "secretRef" in s} <= secrets, owner["metadata"]["name"]


def test_services_and_disruption_budgets_select_existing_pods(default: list[dict]) -> None:
    deployments = _of_kind(default, "Deployment")
    for service in _of_kind(default, "Service"):
        selected = [
            d for d in deployments if _selects(service["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, f"Service {service['metadata']['name']} selects {len(selected)} Deployments"
        ports = {p["name"] for c in selected[0]["spec"]["template"]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, (
                f"Service {service['metadata']['name']}: no container port {port['targetPort']}"
            )
    for budget in _of_kind(default, "PodDisruptionBudget"):
        selected = [
            d for d in deployments if _selects(budget["spec"]["selector"], d["spec"]["template"]["metadata"]["labels"])
        ]
        assert len(selected) == 1, (
            f"PodDisruptionBudget {budget['metadata']['name']} selects {len(selected)} Deployments"
        )
        assert "maxUnavailable" in budget["spec"], "minAvailable would block drains of a single autoscaled pod"


def test_service_monitors_scrape_a_named_port_of_an_existing_service(default: list[dict]) -> None:
    services = _of_kind(default, "Service")
    for monitor in _of_kind(default, "ServiceMonitor"):
        selected = [s for s in services if _selects(monitor["spec"]["selector"], s["metadata"]["labels"])]
        assert len(selected) == 1, f"ServiceMonitor {monitor['metadata']['name']} selects {len(selected)} Services"
        # The operator's job label is the Service name: the alerts match job=~"woosync-.*".
        assert selected[0]["metadata"]["name"].startswith("woosync-")
        port_names = {port["name"] for port in selected[0]["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            assert endpoint["port"] in port_names and endpoint["path"] == "/metrics"


def test_keda_scales_the_consumer_on_the_customer_lines_queue(default: list[dict]) -> None:
    scaled = _one(default, "ScaledObject", "woosync-consumer")
    target = scaled["spec"]["scaleTargetRef"]
    _one(default, target.get("kind", "Deployment"), target["name"])
    assert target["name"] == "woosync-consumer"
    assert scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == CUSTOMER_LINES_QUEUE
    assert trigger["metadata"]["mode"] == "QueueLength" and int(trigger["metadata"]["value"]) > 0
    assert "host" not in trigger["metadata"], "the broker URL (with its password) belongs in the Secret"
    auth = _one(default, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (reference,) = auth["spec"]["secretTargetRef"]
    assert reference["parameter"] == "host"
    secret = _one(default, "Secret", reference["name"])
    assert reference["key"] in secret["stringData"]


def test_one_autoscaler_per_rendering_and_the_consumer_leaves_replicas_to_it(rendered: dict[str, list[dict]]) -> None:
    for rendering, objects in rendered.items():
        autoscalers = _of_kind(objects, "ScaledObject") + _of_kind(objects, "HorizontalPodAutoscaler")
        assert len(autoscalers) == 1, f"{rendering}: KEDA and an HPA would fight over the consumer"
        assert autoscalers[0]["spec"]["scaleTargetRef"]["name"] == "woosync-consumer"
        assert "replicas" not in _one(objects, "Deployment", "woosync-consumer")["spec"], (
            f"{rendering}: apply would reset the autoscaler"
        )
    hpa = _one(rendered["hpa"], "HorizontalPodAutoscaler", "woosync-consumer")
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


def test_the_migration_job_runs_migrate_once_without_restarting_in_place(default: list[dict]) -> None:
    job = _one(default, "Job", "woosync-migrate")
    pod = job["spec"]["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    assert [c["args"] for c in pod["containers"]] == [["migrate"]]
    assert job["spec"]["backoffLimit"] >= 1 and job["spec"]["activeDeadlineSeconds"] > 0


def test_an_overlay_with_a_name_prefix_keeps_every_reference(tmp_path: Path) -> None:
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy)
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text("resources: [../k8s]\nnamePrefix: shop-\n")
    objects = _render(overlay)
    scaled = _one(objects, "ScaledObject", "shop-woosync-consumer")
    assert scaled["spec"]["scaleTargetRef"]["name"] == "shop-woosync-consumer"
    assert scaled["spec"]["triggers"][0]["authenticationRef"]["name"] == "shop-woosync-rabbitmq"
    auth = _one(objects, "TriggerAuthentication", "shop-woosync-rabbitmq")
    assert auth["spec"]["secretTargetRef"][0]["name"] == "shop-woosync-secrets"
    for _, template in _pod_templates(objects):
        for container in template["spec"]["containers"]:
            names = {s.get("configMapRef", s.get("secretRef"))["name"] for s in container["envFrom"]}
            assert names == {"shop-woosync-config", "shop-woosync-secrets"}


def test_the_prometheus_rule_carries_exactly_the_tested_alerts(default: list[dict]) -> None:
    """alerts.yml is what promtool tests; the PrometheusRule must not drift from it."""
    expected = load_yaml(PROMETHEUS / "alerts.yml")["groups"]
    actual = _one(default, "PrometheusRule", "woosync")["spec"]["groups"]
    assert actual == expected, "deploy/k8s/base/prometheusrule.yaml differs from alerts.yml; its groups should be:\n" + (
        yaml.safe_dump({"groups": expected}, sort_keys=False, width=4096)
    )
