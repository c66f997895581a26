"""A WooCommerce REST API v3 simulator with synthetic, deterministic data (`woosync simulator`).

    store = SimulatedStore(customers=250, seed=1)
    store.customer(8), store.orders_for(8)          # exactly what the API serves
    async with await serve(store, SimulatorConfig(port=0)) as running:
        ...  # running.url is the store URL; OAuth key ck_test / cs_test

Modules: data (the store), rest (WordPress REST conventions), auth (WooCommerce authentication),
faults (latency, 429/5xx, poison customers), app (aiohttp server), config, cli.
"""

from woosync.simulator.config import ScenarioError, SimulatorConfig
from woosync.simulator.data import SHOWCASE, SimulatedStore

__all__ = ["SHOWCASE", "RunningSimulator", "ScenarioError", "SimulatedStore", "SimulatorConfig", "build_app", "main",
           "serve"]


def __getattr__(name: str):  # the server and CLI pull in aiohttp: import them on first use
    if name in ("serve", "build_app", "RunningSimulator"):
        from woosync.simulator import app

        return getattr(app, name)
    if name == "main":
        from woosync.simulator.cli import main

        return main
    raise AttributeError(name)
