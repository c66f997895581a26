"""Metric names: those the deployment artifacts (Grafana dashboard, Prometheus alerts) query, and
those woosync's code and RabbitMQ's prometheus plugin expose.

`deploy_metric_names()` is the set a live check compares with the /metrics of running services:
every `woosync_*` name must appear on some woosync service, every `rabbitmq_*` name on the
broker's /metrics/per-object.
"""

from __future__ import annotations

import json
import re

import yaml

from tests.deploy_tools import GRAFANA, PROMETHEUS

DASHBOARD_FILES = sorted((GRAFANA / "dashboards").glob("*.json"))
ALERT_RULE_FILES = [PROMETHEUS / "alerts.yml"]

# Names of RabbitMQ's rabbitmq_prometheus plugin (3.8+) that the dashboard and alerts may use:
# per-queue series from /metrics/per-object (labels queue, vhost) and the broker-wide totals.
RABBITMQ_METRIC_NAMES = frozenset(
    {
        "rabbitmq_queue_messages_ready",
        "rabbitmq_queue_messages_unacked",
        "rabbitmq_queue_messages",
        "rabbitmq_queue_consumers",
        "rabbitmq_queue_messages_published_total",
        "rabbitmq_queues",
        "rabbitmq_consumers",
        "rabbitmq_connections",
        "rabbitmq_channels",
    }
)
# Series every Prometheus target has, whatever it exports.
PROMETHEUS_SYNTHETIC_NAMES = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})

_STRING = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
# An identifier not glued to a digit (5m, 1e3) or a dot; PromQL keywords are dropped below.
_IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "inf",
        "nan",
        "atan2",
    }
)
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\(\s*(.*?)\s*(?:,\s*\w+\s*)?\)\s*$", re.S)


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana variables allowed)."""
    text = _GRAFANA_VARIABLE.sub("0", expr)
    text = _STRING.sub('""', text)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        name = match.group(0)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or name.lower() in _KEYWORDS:
            continue  # a function, an aggregation or a keyword
        names.add(name)
    return names


def grafana_query_metric_names(query: str) -> set[str]:
    """Metric names of a Grafana Prometheus query: PromQL or a label_values(...) variable query."""
    label_values = _LABEL_VALUES.match(query)
    if label_values:
        return promql_metric_names(label_values.group(1)) if label_values.group(1) else set()
    return promql_metric_names(query)


def _panels(panels: list[dict]) -> list[dict]:
    found = []
    for panel in panels:
        found.append(panel)
        found.extend(_panels(panel.get("panels", [])))  # collapsed rows hold their panels
    return found


def dashboard_queries(dashboard: dict) -> list[str]:
    """Every Prometheus query of a dashboard: panel targets and template variables."""
    queries = [
        target["expr"]
        for panel in _panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            queries.append(query["query"] if isinstance(query, dict) else query)
    return queries


def alert_rule_queries() -> list[str]:
    queries = []
    for path in ALERT_RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            queries.extend(rule["expr"] for rule in group["rules"])
    return queries


def dashboard_metric_names() -> set[str]:
    names: set[str] = set()
    for path in DASHBOARD_FILES:
        for query in dashboard_queries(json.loads(path.read_text())):
            names |= grafana_query_metric_names(query)
    return names


def alert_metric_names() -> set[str]:
    names: set[str] = set()
    for query in alert_rule_queries():
        names |= promql_metric_names(query)
    return names


def deploy_metric_names() -> set[str]:
    """Every metric name the Grafana dashboards and the Prometheus alert rules query
    (woosync_*, rabbitmq_* and Prometheus' own `up`)."""
    return dashboard_metric_names() | alert_metric_names()


def code_metric_names() -> set[str]:
    """The sample names shared.metrics.Metrics exposes, with prometheus_client's suffixes."""
    from shared.metrics import Metrics

    suffixes = {
        "counter": ("_total", "_created"),
        "gauge": ("",),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names = set()
    for family in Metrics().registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names
