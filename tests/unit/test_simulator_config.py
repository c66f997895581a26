"""Simulator settings: defaults, scenario files, command-line overrides, errors that name the problem."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from woosync.simulator.cli import parse_config
from woosync.simulator.config import ScenarioError, SimulatorConfig, load_scenario, parse_id_list, parse_latency

pytestmark = pytest.mark.unit


def test_defaults_match_the_spec() -> None:
    config = parse_config([])
    assert (config.host, config.port, config.customers, config.seed) == ("127.0.0.1", 8090, 250, 1)
    assert (config.consumer_key, config.consumer_secret) == ("ck_test", "cs_test")
    assert config.workers == 1 and not config.https_auth and config.error_rate == 0


def test_command_line_options_are_converted() -> None:
    config = parse_config([
        "--port", "0", "--customers", "10", "--latency-ms", "20-80", "--error-rate", "0.1",
        "--rate-limit-rate", "0.05", "--fail-orders-for", "3, 7,11", "--fail-orders-every", "97",
        "--refuse-credentials", "--https-auth", "--as-of", "2026-01-31", "--retry-after", "4", "--workers", "2",
    ])
    assert config.latency_ms == (20.0, 80.0)
    assert config.fail_orders_for == frozenset({3, 7, 11}) and config.fail_orders_every == 97
    assert config.refuse_credentials and config.https_auth and config.as_of == date(2026, 1, 31)
    assert config.retry_after_s == 4 and config.workers == 2
    assert config.orders_fail_for(7) and config.orders_fail_for(194) and not config.orders_fail_for(8)


def test_scenario_file_is_overridden_by_the_command_line(tmp_path: Path) -> None:
    scenario = tmp_path / "flaky.json"
    scenario.write_text(json.dumps({"customers": 10, "latency-ms": [5, 9], "error_rate": 0.2,
                                    "fail-orders-for": [4, 5]}))
    config = parse_config(["--scenario", str(scenario), "--customers", "20"])
    assert config.customers == 20
    assert config.latency_ms == (5.0, 9.0) and config.error_rate == 0.2
    assert config.fail_orders_for == frozenset({4, 5})


def test_yaml_scenarios_work(tmp_path: Path) -> None:
    scenario = tmp_path / "slow.yaml"
    scenario.write_text("customers: 1000\nlatency-ms: 250\nrate-limit-rate: 0.1\nhttps-auth: true\n")
    config = parse_config(["--scenario", str(scenario)])
    assert config.customers == 1000 and config.latency_ms == (250.0, 250.0)
    assert config.rate_limit_rate == 0.1 and config.https_auth


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"cutsomers": 5}', "unknown setting 'cutsomers'"),
        ('{"error-rate": 2}', "error-rate must be a fraction in [0, 1]"),
        ('{"error-rate": 0.7, "rate-limit-rate": 0.5}', "must not exceed 1"),
        ('{"latency-ms": "80-20"}', "latency-ms must be N or LOW-HIGH"),
        ('{"fail-orders-for": "3,x"}', "customer ids must be whole numbers"),
        ('{"port": 70000}', "port must be 0..65535"),
        ("[1, 2]", "must be an object of settings"),
        ("{not json", "not valid JSON"),
    ],
)
def test_bad_scenarios_are_refused_naming_the_problem(tmp_path: Path, content: str, message: str) -> None:
    scenario = tmp_path / "bad.json"
    scenario.write_text(content)
    with pytest.raises(ScenarioError, match="bad.json") as raised:
        SimulatorConfig().with_overrides(load_scenario(scenario), source=str(scenario))
    assert message in str(raised.value)


def test_a_bad_option_exits_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as raised:
        parse_config(["--error-rate", "1.5"])
    assert raised.value.code == 2
    assert "error-rate must be a fraction" in capsys.readouterr().err


def test_missing_scenario_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="cannot read scenario .*nowhere.json"):
        load_scenario(tmp_path / "nowhere.json")


def test_small_parsers() -> None:
    assert parse_latency("15") == (15.0, 15.0) and parse_latency(7) == (7.0, 7.0)
    assert parse_id_list("") == frozenset() and parse_id_list([1, "2"]) == frozenset({1, 2})
