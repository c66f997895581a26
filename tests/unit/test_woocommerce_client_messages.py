"""Store error messages reach logs and line errors as plain, bounded text."""

from __future__ import annotations

import httpx
import pytest

from shared.errors import StoreUnavailable
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials

pytestmark = pytest.mark.unit

CRITICAL_ERROR = {
    "code": "internal_server_error",
    "message": "<p>There has been a critical error on this website.</p><p><a href=\"https://wordpress.org/"
               "documentation/article/faq-troubleshooting/\">Learn more about troubleshooting WordPress.</a></p>",
    "data": {"status": 500},
}


async def test_wordpress_html_error_pages_become_plain_text_in_the_error():
    def store(request: httpx.Request) -> httpx.Response:
        return httpx.Response(500, json=CRITICAL_ERROR)

    credentials = StoreCredentials(url="https://shop.example", consumer_key="ck_x", consumer_secret="cs_x")
    async with WooCommerceClient(credentials, transport=httpx.MockTransport(store), max_tries=1) as client:
        with pytest.raises(StoreUnavailable) as raised:
            await client.list_orders(13)
    message = str(raised.value)
    assert "There has been a critical error on this website. Learn more about troubleshooting WordPress." in message
    assert "<p>" not in message and "href" not in message
