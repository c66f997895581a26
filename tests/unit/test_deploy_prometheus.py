"""deploy/prometheus: promtool accepts the config and the rules, the rules' own unit tests pass,
and every alert queries metrics that exist and scrapes targets that exist."""

from __future__ import annotations

import pytest

from tests.deploy_metrics import (
    PROMETHEUS_SYNTHETIC_NAMES,
    RABBITMQ_METRIC_NAMES,
    alert_metric_names,
    code_metric_names,
)
from tests.deploy_tools import COMPOSE_FILE, PROMETHEUS, load_yaml, require_tool, run_tool

pytestmark = pytest.mark.unit

CONFIG = PROMETHEUS / "prometheus.yml"
ALERTS = PROMETHEUS / "alerts.yml"
ALERTS_TEST = PROMETHEUS / "alerts_test.yml"


def test_promtool_accepts_the_scrape_config() -> None:
    promtool = require_tool("promtool")
    result = run_tool(promtool, "check", "config", str(CONFIG))
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = require_tool("promtool")
    run_tool(promtool, "check", "rules", str(ALERTS))


def test_alert_rules_pass_their_unit_tests() -> None:
    promtool = require_tool("promtool")
    result = run_tool(promtool, "test", "rules", str(ALERTS_TEST))
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_finds_nothing_to_lint_in_woosyncs_exposition() -> None:
    """Names, units and types as Prometheus expects (counters end in _total, base units, ...)."""
    import subprocess

    from prometheus_client import generate_latest

    from shared.metrics import Metrics

    promtool = require_tool("promtool")
    metrics = Metrics()
    # Give every labelled family a child, so the lint sees each one.
    metrics.observe_woocommerce("customers", 200, 0.3)
    metrics.sync_requests.labels("accepted").inc()
    metrics.queue_lines.labels("draft").set(3)
    metrics.http_requests.labels("/api/v1/sync/queues", "GET", "200").inc()
    metrics.http_request_seconds.labels("/api/v1/sync/queues").observe(0.01)
    exposition = generate_latest(metrics.registry)
    result = subprocess.run([promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=60)
    assert result.returncode == 0 and not result.stdout.strip(), (result.stdout + result.stderr).decode()


def test_every_alert_has_a_test_that_fires_it() -> None:
    """An alert no test ever expects to fire could be dead code (a typo in a metric name)."""
    alerts = {rule["alert"] for group in load_yaml(ALERTS)["groups"] for rule in group["rules"] if "alert" in rule}
    fired = {
        case["alertname"]
        for test in load_yaml(ALERTS_TEST)["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts - fired == set(), f"alerts no test fires: {sorted(alerts - fired)}"


def test_every_alert_has_severity_summary_and_description() -> None:
    for group in load_yaml(ALERTS)["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"].get("severity") in {"critical", "warning", "info"}, rule["alert"]
            assert rule["annotations"].get("summary") and rule["annotations"].get("description"), rule["alert"]


def test_alerts_query_only_metrics_that_exist() -> None:
    known = code_metric_names() | RABBITMQ_METRIC_NAMES | PROMETHEUS_SYNTHETIC_NAMES
    unknown = alert_metric_names() - known
    assert not unknown, f"alerts query metrics nobody exports: {sorted(unknown)}"


def test_scrape_targets_are_compose_services_on_the_ports_they_listen_on() -> None:
    services = load_yaml(COMPOSE_FILE)["services"]
    # The port each compose service serves its metrics on (see docker-compose.yml).
    metrics_ports = {
        "producer": services["producer"]["environment"]["WOOSYNC_METRICS_PORT"],
        "consumer": services["consumer"]["environment"]["WOOSYNC_METRICS_PORT"],
        "status": services["status"]["command"][services["status"]["command"].index("--port") + 1],
        "webhooks": services["webhooks"]["environment"]["WOOSYNC_METRICS_PORT"],
        "rabbitmq": "15692",  # the rabbitmq_prometheus plugin
    }
    seen = set()
    for job in load_yaml(CONFIG)["scrape_configs"]:
        targets = [target for static in job.get("static_configs", []) for target in static["targets"]]
        targets += [f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]]
        for target in targets:
            host, port = target.rsplit(":", 1)
            if host == "localhost":
                assert job["job_name"] == "prometheus" and port == "9090"
                continue
            assert host in services, f"job {job['job_name']}: {host} is not a docker-compose service"
            assert str(metrics_ports[host]) == port, (
                f"job {job['job_name']}: {host} serves metrics on {metrics_ports[host]}, not {port}"
            )
            seen.add(host)
    assert seen == set(metrics_ports), f"not scraped: {sorted(set(metrics_ports) - seen)}"


def test_rabbitmq_is_scraped_per_object_with_its_plugin_enabled() -> None:
    job = next(job for job in load_yaml(CONFIG)["scrape_configs"] if job["job_name"] == "rabbitmq")
    assert job["metrics_path"] == "/metrics/per-object", "per-queue series only exist on /metrics/per-object"
    volumes = load_yaml(COMPOSE_FILE)["services"]["rabbitmq"]["volumes"]
    plugins_file = next(v.split(":")[0] for v in volumes if ":/etc/rabbitmq/enabled_plugins" in v)
    assert "rabbitmq_prometheus" in (COMPOSE_FILE.parent / plugins_file).read_text()


def test_every_scrape_job_of_a_woosync_service_matches_the_target_down_alert() -> None:
    jobs = {job["job_name"] for job in load_yaml(CONFIG)["scrape_configs"]}
    assert {"woosync-producer", "woosync-consumer", "woosync-status", "woosync-webhooks"} <= jobs
