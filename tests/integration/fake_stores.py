"""Stores for the status service's connection test (StatusContext.store_client), over httpx's
MockTransport: one that accepts any credentials, one that refuses them, one that never answers."""

from __future__ import annotations

from typing import Any

import httpx

from shared.woocommerce.client import StoreCredentials, WooCommerceClient


def _store(handler: Any):
    def build(credentials: StoreCredentials, **options: Any) -> WooCommerceClient:
        options.pop("allowed_networks", None)  # the fake transport is not the network
        return WooCommerceClient(credentials, transport=httpx.MockTransport(handler), **options)

    return build


def _accept(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json=[], headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})


def _refuse(request: httpx.Request) -> httpx.Response:
    return httpx.Response(401, json={"code": "woocommerce_rest_authentication_error", "message": "Invalid signature - provided signature does not match.",
                                     "data": {"status": 401}})


def _unreachable(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("connection refused", request=request)


accepting_store = _store(_accept)
refusing_store = _store(_refuse)
unreachable_store = _store(_unreachable)
