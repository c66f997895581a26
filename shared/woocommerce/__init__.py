"""The WooCommerce REST API v3 client (async, httpx on aiohttp's transport) and its OAuth signer."""
