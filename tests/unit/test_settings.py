"""Typed settings (docs/contract.md section 2): defaults, fail-fast errors naming the variable, no secrets shown."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from shared.logs import setup_logging
from shared.settings import SettingsError, load_settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("WOOSYNC_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_specs():
    settings = load_settings()
    assert settings.database_url.get_secret_value() == "postgresql://postgres@127.0.0.1:5432/woosync"
    assert settings.amqp_url.get_secret_value() == "amqp://guest:guest@127.0.0.1:5672/"
    assert settings.max_attempts == 3
    assert (settings.log_level, settings.log_format) == ("INFO", "console")
    assert settings.secret_key is None and settings.metrics_port is None


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("WOOSYNC_SECRET_KEY", "not-a-fernet-key", "Fernet key"),
        ("WOOSYNC_MAX_ATTEMPTS", "zero", "integer"),
        ("WOOSYNC_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("WOOSYNC_DATABASE_URL", "mysql://x", "postgresql://"),
        ("WOOSYNC_AMQP_URL", "http://broker", "amqp://"),
        ("WOOSYNC_LOG_FORMAT", "xml", "console"),
        ("WOOSYNC_METRICS_PORT", "70000", "65535"),
    ],
)
def test_a_malformed_value_is_refused_naming_the_variable(monkeypatch, variable, value, problem):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert variable in str(raised.value) and problem in str(raised.value)


def test_a_service_with_a_malformed_secret_key_stops_at_start_up_with_exit_2():
    env = {k: v for k, v in os.environ.items() if not k.startswith("WOOSYNC_")}
    env["WOOSYNC_SECRET_KEY"] = "short"
    result = subprocess.run([sys.executable, "-m", "woosync", "run", "consumer"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "WOOSYNC_SECRET_KEY" in result.stderr and "Traceback" not in result.stderr
    assert "short" not in result.stderr  # the offending secret is not echoed


def test_masked_settings_hide_passwords_and_the_secret_key(monkeypatch):
    key = Fernet.generate_key().decode()
    monkeypatch.setenv("WOOSYNC_SECRET_KEY", key)
    monkeypatch.setenv("WOOSYNC_AMQP_URL", "amqp://app:hunter2@broker:5672/prod")
    monkeypatch.setenv("WOOSYNC_DATABASE_URL", "postgresql://app:s3cret@db:5432/woosync")
    shown = repr(load_settings().masked()) + repr(load_settings())
    assert "hunter2" not in shown and "s3cret" not in shown and key not in shown
    assert "amqp://app:***@broker:5672/prod" in shown


def test_json_log_lines_carry_the_message_and_extra_fields(capsys):
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        setup_logging("INFO", "json", service="consumer")
        logging.getLogger("woosync.test").info("line %s done", "abc", extra={"queue_id": "q1"})
    finally:
        root.handlers[:], _ = saved[0], root.setLevel(saved[1])
    entry = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert entry["message"] == "line abc done" and entry["queue_id"] == "q1" and entry["level"] == "info"


@pytest.mark.parametrize(
    ("environment", "expected"),
    [
        ({}, (4, 16, 2)),
        ({"WOOSYNC_PRODUCER_CONCURRENCY": "5"}, (5, 20, 3)),
        ({"WOOSYNC_PRODUCER_CONCURRENCY": "1"}, (1, 4, 1)),
        ({"WOOSYNC_PRODUCER_PREFETCH": "4", "WOOSYNC_PRODUCER_ORG_CONCURRENCY": "4"}, (4, 4, 4)),
    ],
)
def test_the_producer_holds_four_times_its_slots_and_gives_one_organisation_half_unless_told(
        monkeypatch, environment, expected):
    for variable, value in environment.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()
    assert (settings.producer_concurrency, settings.producer_prefetch, settings.producer_org_concurrency) == expected
    assert settings.store_connect_test_timeout_s == 10.0


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("WOOSYNC_PRODUCER_PREFETCH", "3", "at least WOOSYNC_PRODUCER_CONCURRENCY (4)"),
        ("WOOSYNC_PRODUCER_ORG_CONCURRENCY", "5", "at most WOOSYNC_PRODUCER_CONCURRENCY (4)"),
        ("WOOSYNC_PRODUCER_ORG_CONCURRENCY", "0", "greater than or equal to 1"),
        ("WOOSYNC_STORE_CONNECT_TEST_TIMEOUT_S", "0", "greater than 0"),
    ],
)
def test_producer_shares_that_cannot_work_are_refused_naming_the_variable(monkeypatch, variable, value, problem):
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert variable in str(raised.value) and problem in str(raised.value)
