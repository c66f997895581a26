"""deploy/grafana: the dashboard queries only metrics that exist, and the provisioning files are
complete and point where docker-compose.yml mounts things."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.deploy_metrics import (
    DASHBOARD_FILES,
    PROMETHEUS_SYNTHETIC_NAMES,
    RABBITMQ_METRIC_NAMES,
    code_metric_names,
    dashboard_metric_names,
    dashboard_queries,
    deploy_metric_names,
    grafana_query_metric_names,
    promql_metric_names,
)
from tests.deploy_tools import COMPOSE_FILE, GRAFANA, REPO, load_yaml

pytestmark = pytest.mark.unit

__all__ = ["deploy_metric_names"]  # re-exported for the live /metrics check

DATASOURCES = GRAFANA / "provisioning" / "datasources"
DASHBOARD_PROVIDERS = GRAFANA / "provisioning" / "dashboards"


def _dashboard() -> dict:
    assert DASHBOARD_FILES, "no dashboard JSON under deploy/grafana/dashboards"
    return json.loads(DASHBOARD_FILES[0].read_text())


def _all_panels(panels: list[dict]) -> list[dict]:
    return [p for panel in panels for p in [panel, *_all_panels(panel.get("panels", []))]]


def test_promql_metric_names_ignores_functions_labels_ranges_and_keywords() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, endpoint) (rate(woosync_woocommerce_request_seconds_bucket{status=~"5..",'
        ' endpoint!="orders"}[$__rate_interval]))) > 1e3 and on (vhost) rabbitmq_queue_consumers offset 5m'
    )
    assert promql_metric_names(expr) == {"woosync_woocommerce_request_seconds_bucket", "rabbitmq_queue_consumers"}


def test_promql_metric_names_finds_a_misspelt_metric() -> None:
    assert promql_metric_names("sum(rate(woosync_lines_processed[5m]))") == {"woosync_lines_processed"}


def test_label_values_variable_queries_yield_their_metric() -> None:
    assert grafana_query_metric_names('label_values(rabbitmq_queue_messages_ready{queue="q"}, vhost)') == {
        "rabbitmq_queue_messages_ready"
    }


def test_every_dashboard_file_is_valid_json_with_a_uid_and_title() -> None:
    for path in DASHBOARD_FILES:
        dashboard = json.loads(path.read_text())
        assert dashboard.get("uid") and dashboard.get("title"), f"{path.name}: uid and title are required"
        assert dashboard.get("id") is None, f"{path.name}: a provisioned dashboard must not carry a database id"
        assert isinstance(dashboard.get("schemaVersion"), int)


def test_every_metric_the_dashboard_queries_exists() -> None:
    known = code_metric_names() | RABBITMQ_METRIC_NAMES | PROMETHEUS_SYNTHETIC_NAMES
    unknown = dashboard_metric_names() - known
    assert not unknown, f"the dashboard queries metrics nobody exports: {sorted(unknown)}"


def test_the_dashboard_covers_what_operators_ask_about() -> None:
    queries = "\n".join(dashboard_queries(_dashboard()))
    for needed in (
        "woosync_lines_processed_total",  # throughput and outcomes
        'outcome="retried"',
        'outcome="dead_lettered"',
        "woosync_line_processing_seconds_bucket",
        "woosync_woocommerce_requests_total",
        "woosync_woocommerce_request_seconds_bucket",
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_consumers",
        "woosync_queue_lines",
    ):
        assert needed in queries, f"no dashboard query uses {needed}"
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le) (rate(woosync_line_processing_seconds_bucket" in queries


def test_histogram_quantiles_aggregate_by_le() -> None:
    """histogram_quantile over buckets summed without `le` returns nothing: a silent empty panel."""
    for query in dashboard_queries(_dashboard()):
        if "histogram_quantile" in query:
            assert "by (le" in query, f"histogram_quantile must keep the le label: {query}"


def test_panels_have_unique_ids_positions_and_targets() -> None:
    panels = _all_panels(_dashboard()["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, f"panel {panel['title']!r} leaves the 24-column grid"
        if panel["type"] == "row":
            continue
        assert panel.get("targets"), f"panel {panel['title']!r} has no query"
        ref_ids = [target["refId"] for target in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids)), f"panel {panel['title']!r} repeats a refId"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", f"panel {panel['title']!r} pins a datasource"


def test_every_variable_the_queries_use_is_declared() -> None:
    variables = {variable["name"]: variable for variable in _dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    used = {
        match.group(1)
        for query in dashboard_queries(_dashboard())
        for match in re.finditer(r"\$\{?(\w+)", query)
        if not match.group(1).startswith("__")  # Grafana's own: $__rate_interval, $__range, ...
    }
    assert used, "expected the queries to filter on a template variable (vhost)"
    assert used <= set(variables), f"queries use undeclared variables: {sorted(used - set(variables))}"


def test_datasource_provisioning_has_the_required_keys_and_reaches_compose_prometheus() -> None:
    files = sorted(DATASOURCES.glob("*.y*ml"))
    assert files, "no datasource provisioning file"
    compose = load_yaml(COMPOSE_FILE)
    for path in files:
        document = load_yaml(path)
        assert document["apiVersion"] == 1, f"{path.name}: apiVersion 1"
        for datasource in document["datasources"]:
            for key in ("name", "type", "access", "url", "uid"):
                assert datasource.get(key), f"{path.name}: datasource needs {key}"
            assert datasource["type"] == "prometheus"
            host_port = datasource["url"].split("://", 1)[1].rstrip("/")
            host, port = host_port.split(":")
            assert host in compose["services"], f"{path.name}: {host} is not a docker-compose service"
            assert port == "9090", f"{path.name}: Prometheus listens on 9090, not {port}"


def test_dashboard_provider_points_at_the_folder_compose_mounts_the_dashboards_in() -> None:
    files = sorted(DASHBOARD_PROVIDERS.glob("*.y*ml"))
    assert files, "no dashboard provider file"
    grafana_volumes = load_yaml(COMPOSE_FILE)["services"]["grafana"]["volumes"]
    mounts = {}
    for volume in grafana_volumes:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    for path in files:
        document = load_yaml(path)
        assert document["apiVersion"] == 1
        for provider in document["providers"]:
            for key in ("name", "type", "options"):
                assert provider.get(key), f"{path.name}: provider needs {key}"
            assert provider["type"] == "file"
            folder = provider["options"]["path"]
            assert folder in mounts, f"{path.name}: {folder} is not mounted into the grafana container"
            mounted = (REPO / mounts[folder]).resolve()
            assert mounted == (GRAFANA / "dashboards").resolve()
            assert any(Path(mounted).glob("*.json")), f"{mounted} holds no dashboard"
    assert mounts.get("/etc/grafana/provisioning") == "./deploy/grafana/provisioning"
