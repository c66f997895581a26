"""Server-side request forgery: the WooCommerce client connects to public addresses only, unless
WOOSYNC_STORE_ALLOWED_NETWORKS allows a range (docs/contract.md section 10, "Store addresses").

The policy is checked on every address a store's host resolves to when the connection is made
(fake resolvers stand in for DNS), and on IP addresses written in the URL. A refusal names the
rule and never what the target would have answered."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult

from shared.errors import NotAWooCommerceStore, PermanentError, StoreAddressRefused, StoreError, StoreUnavailable
from shared.settings import Settings, SettingsError, load_settings
from shared.woocommerce.client import WooCommerceClient
from shared.woocommerce.credentials import StoreCredentials
from shared.woocommerce.store_addresses import StoreAddressPolicy, parse_networks
from shared.woocommerce.transport import AddressRefused, GuardedResolver, StoreTransport

pytestmark = pytest.mark.unit

DEFAULT = StoreAddressPolicy()
VARIABLE_HINT = "set WOOSYNC_STORE_ALLOWED_NETWORKS to allow it"

REFUSED = [
    # address, the rule its refusal names
    ("127.0.0.1", "the loopback network (127.0.0.0/8)"),
    ("127.254.3.9", "the loopback network (127.0.0.0/8)"),
    ("10.1.2.3", "a private network (10.0.0.0/8)"),
    ("172.16.0.1", "a private network (172.16.0.0/12)"),
    ("172.31.255.254", "a private network (172.16.0.0/12)"),
    ("192.168.1.20", "a private network (192.168.0.0/16)"),
    ("169.254.10.1", "a link-local network (169.254.0.0/16)"),
    ("100.64.0.1", "the carrier-grade NAT shared network (100.64.0.0/10)"),
    ("100.127.255.254", "the carrier-grade NAT shared network (100.64.0.0/10)"),
    ("0.0.0.0", "the unspecified (this host) network (0.0.0.0/8)"),
    ("224.0.0.1", "the multicast network (224.0.0.0/4)"),
    ("239.255.255.250", "the multicast network (224.0.0.0/4)"),
    ("240.0.0.1", "a reserved network (240.0.0.0/4)"),
    ("255.255.255.255", "a reserved network (240.0.0.0/4)"),
    ("192.0.2.10", "a documentation network (192.0.2.0/24)"),
    ("198.18.0.1", "the benchmarking network (198.18.0.0/15)"),
    ("::1", "the loopback network (::1/128)"),
    ("::", "the unspecified address (::/128)"),
    ("fc00::1", "a private network (fc00::/7)"),
    ("fd12:3456:789a::1", "a private network (fc00::/7)"),
    ("fe80::1", "a link-local network (fe80::/10)"),
    ("fe80::1%lo", "a link-local network (fe80::/10)"),
    ("ff02::1", "the multicast network (ff00::/8)"),
    ("2001:db8::5", "a documentation network (2001:db8::/32)"),
    # IPv6 forms that reach an IPv4 address are judged by that address.
    ("::ffff:127.0.0.1", "the loopback network (127.0.0.0/8)"),
    ("::ffff:10.1.2.3", "a private network (10.0.0.0/8)"),
    ("::ffff:192.168.0.1", "a private network (192.168.0.0/16)"),
    ("64:ff9b::a01:203", "a private network (10.0.0.0/8)"),  # NAT64 of 10.1.2.3
    ("2002:a01:203::1", "a private network (10.0.0.0/8)"),  # 6to4 of 10.1.2.3
]
METADATA = ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "::ffff:169.254.169.254"]
PUBLIC = ["93.184.216.34", "1.1.1.1", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "64:ff9b::5db8:d822"]


@pytest.mark.parametrize(("address", "rule"), REFUSED)
def test_non_public_addresses_are_refused_naming_the_rule(address: str, rule: str) -> None:
    assert DEFAULT.refusal(address) == f"store address {address} is in {rule}; {VARIABLE_HINT}"


@pytest.mark.parametrize("address", METADATA)
def test_cloud_metadata_endpoints_are_refused_even_when_their_network_is_allowed(address: str) -> None:
    everything = StoreAddressPolicy.allowing(["0.0.0.0/0", "::/0"])
    for policy in (DEFAULT, everything, StoreAddressPolicy.allowing(["169.254.0.0/16", "100.64.0.0/10", "fd00::/8"])):
        assert policy.refusal(address) == (
            f"store address {address} is a cloud metadata endpoint: woosync never connects to one"
        )


@pytest.mark.parametrize("host", ["metadata.google.internal", "METADATA.google.internal.", "metadata.goog", "metadata"])
def test_cloud_metadata_host_names_are_refused_before_any_dns(host: str) -> None:
    assert "cloud metadata endpoint" in (DEFAULT.host_refusal(host) or "")
    assert DEFAULT.host_refusal("shop.example.com") is None


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_stores(address: str) -> None:
    assert DEFAULT.refusal(address) is None


def test_allowed_networks_open_exactly_their_ranges() -> None:
    policy = StoreAddressPolicy.allowing(["127.0.0.0/8", "10.20.0.0/16", "::1/128"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None  # the IPv4 address it reaches is allowed
    assert policy.refusal("10.20.7.1") is None
    assert policy.refusal("::1") is None
    assert "a private network (10.0.0.0/8)" in (policy.refusal("10.21.0.1") or "")
    assert "a private network (192.168.0.0/16)" in (policy.refusal("192.168.0.1") or "")
    assert "a private network (fc00::/7)" in (policy.refusal("fd00::1") or "")


def test_an_allowed_ipv6_range_does_not_open_ipv4_and_back() -> None:
    assert StoreAddressPolicy.allowing(["::1/128"]).refusal("127.0.0.1") is not None
    assert StoreAddressPolicy.allowing(["127.0.0.0/8"]).refusal("::1") is not None


# ---- WOOSYNC_STORE_ALLOWED_NETWORKS -----------------------------------------------------------


def test_the_variable_takes_comma_separated_cidrs_and_bare_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WOOSYNC_STORE_ALLOWED_NETWORKS", " 127.0.0.0/8, ::1/128 ,10.20.0.0/16,192.168.1.7,")
    settings = load_settings(_env_file=None)
    assert settings.store_allowed_networks == tuple(
        ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "10.20.0.0/16", "192.168.1.7/32")
    )
    assert settings.masked()["store_allowed_networks"] == "127.0.0.0/8,::1/128,10.20.0.0/16,192.168.1.7/32"


def test_by_default_no_network_is_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WOOSYNC_STORE_ALLOWED_NETWORKS", raising=False)
    assert Settings(_env_file=None).store_allowed_networks == ()  # type: ignore[call-arg]
    monkeypatch.setenv("WOOSYNC_STORE_ALLOWED_NETWORKS", "")
    assert load_settings(_env_file=None).store_allowed_networks == ()


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("10.1.2.3/8", "'10.1.2.3/8' is not a network in CIDR notation such as 10.20.0.0/16 (10.1.2.3/8 has host bits set)"),
        ("127.0.0.0/8;10.0.0.0/8", "'127.0.0.0/8;10.0.0.0/8' is not a network in CIDR notation"),
        ("localhost", "'localhost' is not a network in CIDR notation"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not a network in CIDR notation"),
    ],
)
def test_a_malformed_network_is_a_start_up_error_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, problem: str
) -> None:
    monkeypatch.setenv("WOOSYNC_STORE_ALLOWED_NETWORKS", value)
    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)
    assert "WOOSYNC_STORE_ALLOWED_NETWORKS" in str(raised.value) and problem in str(raised.value)


def test_the_response_limit_is_a_typed_setting_with_the_clients_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.woocommerce.responses import DEFAULT_MAX_RESPONSE_BYTES

    monkeypatch.delenv("WOOSYNC_STORE_MAX_RESPONSE_BYTES", raising=False)
    assert load_settings(_env_file=None).store_max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    monkeypatch.setenv("WOOSYNC_STORE_MAX_RESPONSE_BYTES", "many")
    with pytest.raises(SettingsError, match="WOOSYNC_STORE_MAX_RESPONSE_BYTES"):
        load_settings(_env_file=None)


def test_parse_networks_skips_blanks() -> None:
    assert parse_networks(" , ") == ()


# ---- at connect time: the resolver and the transport -----------------------------------------


class FakeDns(AbstractResolver):
    """Answers from a table; each name may answer differently on each lookup (DNS rebinding)."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = {name: list(rounds) for name, rounds in answers.items()}
        self.lookups: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        self.lookups.append(host)
        rounds = self.answers[host]
        addresses = rounds.pop(0) if len(rounds) > 1 else rounds[0]
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in addresses
        ]

    async def close(self) -> None:
        pass


async def test_a_name_resolving_to_a_private_address_is_refused_by_the_resolver() -> None:
    resolver = GuardedResolver(DEFAULT, FakeDns({"shop.internal": [["10.1.2.3"]]}))
    with pytest.raises(AddressRefused) as raised:
        await resolver.resolve("shop.internal", 443)
    assert str(raised.value) == (
        f"store address 10.1.2.3 is in a private network (10.0.0.0/8); {VARIABLE_HINT} (shop.internal resolves to it)"
    )


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    resolver = GuardedResolver(DEFAULT, FakeDns({"shop.example": [["93.184.216.34", "fd00::5"]]}))
    with pytest.raises(AddressRefused, match=r"fd00::5 is in a private network \(fc00::/7\)"):
        await resolver.resolve("shop.example", 443)


async def test_every_lookup_is_judged_so_a_rebinding_name_is_refused_when_it_turns_private() -> None:
    dns = FakeDns({"rebind.example": [["93.184.216.34"], ["127.0.0.1"]]})
    resolver = GuardedResolver(DEFAULT, dns)
    assert [r["host"] for r in await resolver.resolve("rebind.example", 80)] == ["93.184.216.34"]
    with pytest.raises(AddressRefused, match="the loopback network"):
        await resolver.resolve("rebind.example", 80)


async def test_a_metadata_host_name_is_refused_without_a_lookup() -> None:
    dns = FakeDns({"metadata.google.internal": [["169.254.169.254"]]})
    with pytest.raises(AddressRefused, match="cloud metadata endpoint"):
        await GuardedResolver(DEFAULT, dns).resolve("metadata.google.internal", 80)
    assert dns.lookups == []


def client_for(url: str, transport: httpx.AsyncBaseTransport | None = None, **options: object) -> WooCommerceClient:
    store = StoreCredentials(url=url, consumer_key="ck_x", consumer_secret="cs_x")
    options = {"max_tries": 3, "backoff_base_s": 0.001, **options}
    return WooCommerceClient(store, transport=transport, **options)  # type: ignore[arg-type]


async def test_the_client_refuses_a_store_whose_name_resolves_to_a_private_address() -> None:
    dns = FakeDns({"shop.internal": [["192.168.7.7"]]})
    async with client_for("https://shop.internal", StoreTransport(DEFAULT, max_connections=4, resolver=dns)) as client:
        with pytest.raises(StoreAddressRefused) as raised:
            await client.test_connection()
    assert str(raised.value) == (
        "store https://shop.internal was not contacted: store address 192.168.7.7 is in a private network "
        f"(192.168.0.0/16); {VARIABLE_HINT} (shop.internal resolves to it)"
    )
    # Permanent: the sync fails at once instead of retrying into someone else's network.
    assert isinstance(raised.value, (StoreError, PermanentError)) and not isinstance(raised.value, StoreUnavailable)
    assert dns.lookups == ["shop.internal"]


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("http://10.1.2.3:8080", "store address 10.1.2.3 is in a private network (10.0.0.0/8)"),
        ("http://169.254.169.254", "store address 169.254.169.254 is a cloud metadata endpoint"),
        ("http://[::1]:8080", "store address ::1 is in the loopback network (::1/128)"),
        ("http://[::ffff:127.0.0.1]:8080", "store address ::ffff:7f00:1 is in the loopback network (127.0.0.0/8)"),
        ("http://[fe80::1]", "store address fe80::1 is in a link-local network (fe80::/10)"),
        ("http://0.0.0.0:5432", "store address 0.0.0.0 is in the unspecified (this host) network (0.0.0.0/8)"),
        ("http://metadata.google.internal", "store host metadata.google.internal is a cloud metadata endpoint"),
    ],
)
async def test_an_address_in_the_url_is_refused_without_any_connection(url: str, rule: str) -> None:
    dns = FakeDns({})  # any lookup would fail the test with a KeyError
    async with client_for(url, StoreTransport(DEFAULT, max_connections=4, resolver=dns)) as client:
        with pytest.raises(StoreAddressRefused) as raised:
            await client.test_connection()
    assert rule in str(raised.value)


@asynccontextmanager
async def loopback_store(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]], host: str = "127.0.0.1"
) -> AsyncIterator[tuple[int, list[str]]]:
    seen: list[str] = []

    async def recording(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        return await handler(request)

    app = web.Application()
    app.router.add_get("/{tail:.*}", recording)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield port, seen
    finally:
        await runner.cleanup()


async def customers(request: web.Request) -> web.Response:
    return web.json_response([], headers={"X-WP-Total": "0", "X-WP-TotalPages": "0"})


async def test_a_store_on_loopback_is_refused_by_default_and_works_once_allowed() -> None:
    async with loopback_store(customers) as (port, seen):
        for url in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            async with client_for(url) as client:
                with pytest.raises(StoreAddressRefused, match=r"the loopback network \(127\.0\.0\.0/8\)|\(::1/128\)"):
                    await client.test_connection()
        assert seen == [], "a refused store got a request"

        allowed = parse_networks("127.0.0.0/8,::1/128")
        async with client_for(f"http://127.0.0.1:{port}", allowed_networks=allowed) as client:
            await client.test_connection()
        async with client_for(f"http://localhost:{port}", allowed_networks=allowed) as client:
            await client.test_connection()
    assert seen == ["/wp-json/wc/v3/customers"] * 2


async def test_a_store_on_ipv6_loopback_needs_its_own_allowed_network() -> None:
    async with loopback_store(customers, host="::1") as (port, seen):
        async with client_for(f"http://[::1]:{port}", allowed_networks=parse_networks("127.0.0.0/8")) as client:
            with pytest.raises(StoreAddressRefused, match=r"the loopback network \(::1/128\)"):
                await client.test_connection()
        async with client_for(f"http://[::1]:{port}", allowed_networks=parse_networks("::1/128")) as client:
            await client.test_connection()
    assert seen == ["/wp-json/wc/v3/customers"]


async def test_a_redirect_to_another_address_is_not_followed() -> None:
    async def redirect(request: web.Request) -> web.Response:
        raise web.HTTPFound("http://10.1.2.3/wp-json/wc/v3/customers")

    async with loopback_store(redirect) as (port, seen):
        async with client_for(f"http://127.0.0.1:{port}", allowed_networks=parse_networks("127.0.0.0/8")) as client:
            with pytest.raises(NotAWooCommerceStore, match="redirect"):
                await client.test_connection()
    assert seen == ["/wp-json/wc/v3/customers"]


# ---- what a refused or failing target may show of itself ---------------------------------------

SECRET_PAGE = "<html><body>internal admin: db_password=hunter2</body></html>"


@pytest.mark.parametrize("status", [200, 400, 401, 404, 418, 500])
async def test_errors_never_quote_a_body_that_is_not_a_woocommerce_error(status: int) -> None:
    def target(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, text=SECRET_PAGE, headers={"Content-Type": "text/html"})

    async with client_for("https://shop.example", httpx.MockTransport(target), max_tries=1) as client:
        with pytest.raises((StoreError, StoreUnavailable)) as raised:
            await client.test_connection()
    assert "hunter2" not in str(raised.value) and "internal admin" not in str(raised.value)


async def test_a_json_error_keeps_only_woocommerces_code_message_and_params_bounded() -> None:
    body = {
        "code": {"leak": "hunter2"},  # not WooCommerce's shape: a string code
        "message": "x" * 5000,
        "data": {"status": 400, "params": {f"p{n}": "bad " + "y" * 500 for n in range(50)}, "dump": "hunter2"},
        "debug": "hunter2",
    }

    def target(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json=body)

    async with client_for("https://shop.example", httpx.MockTransport(target)) as client:
        with pytest.raises(StoreError) as raised:
            await client.test_connection()
    message = str(raised.value)
    assert "hunter2" not in message
    assert len(message) < 4000, len(message)
    assert "p0: bad yyy" in message and "p49" not in message


async def test_a_woocommerce_json_error_is_still_quoted() -> None:
    def target(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"code": "rest_no_route", "message": "No route was found.", "data": {"status": 404}})

    async with client_for("https://shop.example", httpx.MockTransport(target)) as client:
        with pytest.raises(NotAWooCommerceStore) as raised:
            await client.test_connection()
    assert "404: rest_no_route: No route was found." in str(raised.value)
