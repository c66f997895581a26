"""Store rate limits as configuration and as the consumer's decision (docs/contract.md sections 2,
3 and 10): a rate limit that is not a positive number, or is absurdly high, is refused naming it;
a line whose store is held waits as the same attempt, on its last attempt too."""

from __future__ import annotations


import pytest
from pydantic import ValidationError

from services.consumer.decisions import Held, Retry, Work, decide, judge
from shared import topology
from shared.messages import StoreConfig
from shared.settings import SettingsError, load_settings
from shared.woocommerce.budget import StoreHeld, budget_key
from tests.unit.test_consumer_decisions import claim, customer_line
from woosync.simulator.config import ScenarioError, SimulatorConfig

pytestmark = pytest.mark.unit

BAD_RATES = [0, -1, "0", "-2.5", "nan", "inf", float("nan"), 1e9, "1001", "fast", True]


@pytest.mark.parametrize("rate", BAD_RATES)
def test_a_bad_fleet_rate_limit_is_refused_naming_the_variable(rate):
    with pytest.raises(SettingsError, match=r"WOOSYNC_STORE_RATE_LIMIT: .*requests per second"):
        load_settings(store_rate_limit=rate)


def test_the_fleet_rate_limit_is_unset_by_default_and_an_empty_value_unsets_it():
    assert load_settings().store_rate_limit is None
    assert load_settings(store_rate_limit="").store_rate_limit is None
    assert load_settings(store_rate_limit="2.5").store_rate_limit == 2.5


@pytest.mark.parametrize("rate", BAD_RATES)
def test_a_bad_store_rate_limit_in_a_request_is_refused_naming_the_field(rate):
    with pytest.raises(ValidationError) as refused:
        StoreConfig(url="https://shop.example.com", consumer_key="ck", consumer_secret="cs", rate_limit=rate)
    assert refused.value.errors()[0]["loc"] == ("rate_limit",)
    assert "requests per second" in str(refused.value)


def test_a_store_rate_limit_is_optional_and_travels_with_the_request():
    assert StoreConfig(url="https://shop.example.com", consumer_key="ck", consumer_secret="cs").rate_limit is None
    assert StoreConfig(url="https://shop.example.com", consumer_key="ck", consumer_secret="cs", rate_limit=3).rate_limit == 3.0


@pytest.mark.parametrize("attempt", [1, 3])
def test_a_line_whose_store_is_held_comes_back_as_the_same_attempt_after_the_hold(attempt):
    line = customer_line()
    work = Work(claim(line), attempt, 100.0)
    outcome = judge(work, StoreHeld("slow down", retry_after=12.0), max_attempts=3)
    assert outcome == Held(work, "slow down", 12.0)
    assert decide(outcome, retry_delay_ms=2000) == Retry("slow down", attempt, 15_000, held=True)


@pytest.mark.parametrize(("held_for_s", "delay_ms"), [(0, 1_000), (1.0, 1_000), (1.2, 5_000), (59, 60_000), (5000, 300_000)])
def test_hold_delays_come_from_a_small_fixed_set_that_covers_the_hold(held_for_s, delay_ms):
    assert topology.hold_delay_ms(held_for_s) == delay_ms
    queues = {spec.name for spec in topology.build_topology(dead_letter_ttl_ms=1, dead_letter_max_length=1,
                                                            dead_letter_max_bytes=1024, retry_delays_ms=(2000,)).queues}
    assert topology.delay_queue_name(delay_ms) in queues


def test_the_budget_is_keyed_by_the_store_urls_host_and_port():
    assert budget_key("https://Shop.Example.com/wp") == budget_key("https://shop.example.com/other") == "shop.example.com"
    assert budget_key("http://127.0.0.1:8090") != budget_key("http://127.0.0.1:8091")


def test_the_simulators_storm_is_validated():
    assert SimulatorConfig(storm_after=10, storm_s=6).storm_s == 6
    with pytest.raises(ScenarioError, match="storm"):
        SimulatorConfig(storm_after=-1)
    assert SimulatorConfig().with_overrides({"storm-after": "5", "storm-s": "2.5"}).storm_after == 5
