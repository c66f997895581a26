"""The WooCommerce REST API v3 client (async, httpx on aiohttp's transport) and its OAuth signer.

`client` holds `WooCommerceClient`; its docstring maps the modules beside it."""
