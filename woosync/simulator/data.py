"""A deterministic synthetic WooCommerce store: customers and their orders, as the REST API serves them.

Everything derives from `(seed, id)` through hashes and per-customer `random.Random` streams, so a
store of 100,000 customers starts in well under a second and holds almost nothing in memory: a
customer or an order list is generated when asked for (and kept in small LRU caches). The same
seed, customer count and `as_of` day give byte-identical data in any process.

The shapes follow the captured responses of a real WooCommerce 10 store
(tests/fixtures/woocommerce-fixtures): key order, money as two-decimal strings, refunds listed on
the order with negative totals, `_gmt` twins of every date, `_links`.

Low ids form a *showcase* (`SHOWCASE`): customers built on purpose so that even a small store
reaches every segment, status and edge case of the mapping (docs/contract.md section 5). Higher ids are drawn
from a realistic mix: a long tail of order counts (most 0-10, a few 101-150), all eight order
statuses, partial and full refunds, mixed-case and invalid emails, missing billing blocks, unicode
names, several roles (the API's default `role=customer` hides the others).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import lru_cache
from typing import Any, Literal, NamedTuple

from woosync.simulator import catalog

ROLES = ("administrator", "editor", "author", "contributor", "subscriber", "customer", "shop_manager")
ORDER_STATUSES = ("pending", "processing", "on-hold", "completed", "cancelled", "refunded", "failed", "checkout-draft")
PAID_STATUSES = frozenset({"processing", "completed"})
WOOCOMMERCE_VERSION = "10.0.2"

# Every order owns three consecutive post ids: its own and room for up to two refunds.
FIRST_ORDER_ID = 1000
IDS_PER_ORDER = 3
ITEM_IDS_PER_ORDER = 10

_DAY = 86_400
_HISTORY_DAYS = 4 * 365
_RECENT_DAYS = 20

Profile = Literal["retail", "premium", "wholesale"]
EmailStyle = Literal["plain", "upper", "mixed", "missing_at", "no_domain", "empty"]
RefundKind = Literal["none", "partial", "two_partial", "full", "partial_then_rest"]

_ALLOW_ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_INVALID_EMAIL_STYLES = ("missing_at", "no_domain", "empty")


class OrderPlan(NamedTuple):
    """How a showcase customer's orders are drawn (None: the random mix)."""

    count: tuple[int, int] | None = None  # inclusive range
    statuses: tuple[str, ...] | None = None  # chronological; "completed+partial" adds a refund kind
    min_completed: int = 0
    target_cents: tuple[int, int] | None = None  # per-order total, reached within +25%
    partial_refunds: bool = True
    recent: bool | None = None


@dataclass(frozen=True, slots=True)
class Showcase:
    name: str
    role: str = "customer"
    names: tuple[str, str, str] | None = None  # first, last, login stem
    email_style: EmailStyle = "plain"
    has_billing: bool = True
    profile: Profile = "retail"
    plan: OrderPlan = OrderPlan(count=(0, 0))


# Segment thresholds (docs/contract.md section 5) each get a customer built to land inside them with any seed.
SHOWCASE: dict[int, Showcase] = {
    1: Showcase("admin", role="administrator", has_billing=False),
    2: Showcase("shop_manager", role="shop_manager", has_billing=False),
    3: Showcase("heavy_mid_market_by_count", plan=OrderPlan(count=(101, 150), min_completed=55)),
    4: Showcase("enterprise", profile="wholesale",
                plan=OrderPlan(count=(18, 18), min_completed=14, target_cents=(400_000, 700_000), partial_refunds=False)),
    5: Showcase("mid_market_by_value", profile="wholesale",
                plan=OrderPlan(statuses=("completed",) * 10, target_cents=(210_000, 380_000), partial_refunds=False)),
    6: Showcase("smb_by_value", profile="premium",
                plan=OrderPlan(statuses=("completed",) * 4, target_cents=(140_000, 230_000), partial_refunds=False)),
    7: Showcase("smb_by_count", plan=OrderPlan(count=(14, 14), min_completed=12, partial_refunds=False)),
    8: Showcase("startup", plan=OrderPlan(count=(5, 5), min_completed=3)),
    9: Showcase("individual_active", plan=OrderPlan(statuses=("pending", "completed", "cancelled"), recent=True)),
    10: Showcase("prospect_no_orders"),
    11: Showcase("prospect_never_paid",
                 plan=OrderPlan(statuses=("pending", "failed", "cancelled", "checkout-draft", "on-hold"))),
    12: Showcase("processing_only", plan=OrderPlan(statuses=("processing", "processing"))),
    13: Showcase("refunds", plan=OrderPlan(
        statuses=("completed+partial", "refunded+full", "processing+two_partial", "refunded+partial_then_rest", "completed"))),
    14: Showcase("unicode_latin", names=catalog.UNICODE_NAMES[0], plan=OrderPlan(count=(2, 4))),
    15: Showcase("unicode_cjk", names=catalog.UNICODE_NAMES[1], plan=OrderPlan(count=(1, 3))),
    16: Showcase("uppercase_email", email_style="upper", plan=OrderPlan(count=(1, 3))),
    17: Showcase("mixed_case_email", email_style="mixed", plan=OrderPlan(count=(1, 3))),
    18: Showcase("no_billing", has_billing=False, plan=OrderPlan(count=(0, 2))),
    19: Showcase("invalid_email_missing_at", email_style="missing_at", plan=OrderPlan(count=(1, 2))),
    20: Showcase("subscriber_with_orders", role="subscriber", plan=OrderPlan(count=(3, 3))),
    21: Showcase("recent_buyer", plan=OrderPlan(count=(4, 6), recent=True)),
    22: Showcase("empty_email", email_style="empty", plan=OrderPlan(count=(0, 1))),
    23: Showcase("apostrophe_name", names=catalog.UNICODE_NAMES[11], plan=OrderPlan(count=(1, 2))),
}


@dataclass(frozen=True, slots=True)
class CustomerTraits:
    """What a customer *is*, decided from one hash of (seed, id): cheap enough to scan 100k."""

    id: int
    role: str
    first_name: str
    last_name: str
    username: str
    email: str
    has_billing: bool
    profile: Profile
    order_count: int
    recent: bool
    created_ts: int
    place: int
    plan: OrderPlan | None


class PlannedOrder(NamedTuple):
    created_ts: int
    status: str
    refund: RefundKind


def money(cents: int) -> str:
    """WooCommerce money: a string with two decimals, negative for refunds ("-12.50")."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def _unit_price(cents: int) -> int | float:
    # PHP's json_encode writes 24.0 as 24 and 31.75 as 31.75.
    return cents // 100 if cents % 100 == 0 else cents / 100


@lru_cache(maxsize=8192)
def _wp_day(day: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day * 86_400))


@lru_cache(maxsize=1)
def _times_of_day() -> tuple[str, ...]:
    # "T00:00:00" .. "T23:59:59": 86,400 small strings (~5 MB) save a format per date field.
    return tuple(f"T{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60))


def _wp_datetime(ts: int) -> str:
    """"2026-11-22T06:25:09": WordPress dates carry no zone; the _gmt twin says which is UTC."""
    day, seconds = divmod(ts, 86_400)
    return _wp_day(day) + _times_of_day()[seconds]


class Weighted:
    """A weighted choice with its cumulative table built once (`random.choices` rebuilds it per call)."""

    __slots__ = ("_values", "_cumulative", "_total")

    def __init__(self, table: Sequence[tuple[Any, int]]) -> None:
        self._values = [value for value, _ in table]
        self._cumulative = list(itertools.accumulate(weight for _, weight in table))
        self._total = self._cumulative[-1]

    def draw(self, rng: random.Random) -> Any:
        return self._values[bisect.bisect_right(self._cumulative, rng.random() * self._total)]


_STATUS_WEIGHTS = Weighted((
    ("completed", 52), ("processing", 12), ("pending", 8), ("on-hold", 5),
    ("cancelled", 9), ("refunded", 5), ("failed", 5), ("checkout-draft", 4),
))
_CREATED_VIA = Weighted((("checkout", 8), ("admin", 1), ("rest-api", 1)))
_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _between(rng: random.Random, low: int, high: int) -> int:
    """An int in [low, high): one C call (randrange spends several Python steps)."""
    return low + int(rng.random() * (high - low))


def _pick(rng: random.Random, choices: Sequence[Any]) -> Any:
    return choices[int(rng.random() * len(choices))]


def _alnum(rng: random.Random, length: int) -> str:
    # One C call for the randomness (random.choices costs a Python step per character).
    return "".join([_ALNUM[byte % 62] for byte in rng.randbytes(length)])


def _default_as_of() -> datetime:
    today = datetime.now(timezone.utc).date()
    return datetime(today.year, today.month, today.day, tzinfo=timezone.utc)


class SimulatedStore:
    """A WooCommerce store of `customers` users (ids 1..customers, id 1 the administrator).

    `as_of` is the store's "now": every date lies before it. It defaults to today's midnight UTC,
    so recent orders stay recent; pin it for data that is byte-identical across days.
    `gmt_offset_hours` is the site's timezone: `date_created` is local, `date_created_gmt` UTC.
    `base_url` is the site URL that `_links` and `Link` headers use (WordPress' home URL).
    `valid_emails_only` turns the few invalid or empty emails into valid ones (mixed case stays):
    a store whose every customer can be synced.
    """

    def __init__(
        self,
        customers: int = 250,
        seed: int = 1,
        *,
        as_of: date | datetime | None = None,
        gmt_offset_hours: float = 2.0,
        base_url: str = "http://127.0.0.1:8090",
        guest_orders: int | None = None,
        valid_emails_only: bool = False,
    ) -> None:
        if customers < 0:
            raise ValueError(f"customers must be >= 0, not {customers}")
        self.customer_count = customers
        self.seed = seed
        self.valid_emails_only = valid_emails_only
        if as_of is None:
            as_of = _default_as_of()
        elif not isinstance(as_of, datetime):
            as_of = datetime(as_of.year, as_of.month, as_of.day, tzinfo=timezone.utc)
        elif as_of.tzinfo is None:
            as_of = as_of.replace(tzinfo=timezone.utc)
        self.as_of = as_of
        self._as_of_ts = int(as_of.timestamp())
        self._history_start = self._as_of_ts - _HISTORY_DAYS * _DAY
        self.gmt_offset_hours = gmt_offset_hours
        self._offset_s = int(round(gmt_offset_hours * 3600))
        self._base_url = base_url.rstrip("/")
        self.guest_order_count = customers // 25 if guest_orders is None else guest_orders

        # One pass over every id: roles for the role filter, order counts for dense order ids.
        self._role_ids: dict[str, array] = {role: array("i") for role in ROLES}
        self._order_offsets = array("q", [0, 0])  # _order_offsets[c] = orders of customers < c
        running = 0
        logins: list[str] = []
        for customer_id in range(1, customers + 1):
            traits = self._compute_traits(customer_id)
            self._role_ids[traits.role].append(customer_id)
            running += traits.order_count
            self._order_offsets.append(running)
            logins.append(traits.username.lower())
        self.customer_order_total = running
        # Every id in the API's default order (by name), sorted once here, where the names are at
        # hand: sorting later would generate every customer again (a minute at 1,000,000).
        self._name_order = array("i", sorted(range(1, customers + 1), key=lambda cid: (logins[cid - 1], cid)))
        del logins
        self._all_ids = range(1, customers + 1)
        self._sorted_cache: dict[tuple[str, str, str], Sequence[int]] = {}
        self._email_index: dict[str, int] | None = None
        self._global_orders: list[tuple[int, int, int, str]] | None = None
        # Orders changed since the store was generated (change_order): order id -> changed fields.
        self._order_changes: dict[int, dict[str, Any]] = {}
        self._install_caches()

    # ------------------------------------------------------------------ configuration

    @property
    def base_url(self) -> str:
        return self._base_url

    @property
    def gmt_offset_seconds(self) -> int:
        return self._offset_s

    @base_url.setter
    def base_url(self, value: str) -> None:
        """Links embed the site URL, so changing it drops every cached document."""
        self._base_url = value.rstrip("/")
        self._install_caches()

    def _install_caches(self) -> None:
        # Small on purpose: the server caches serialized pages; many live dicts only slow the
        # garbage collector down (it scans them all), which costs more than regenerating.
        self.traits = lru_cache(maxsize=65_536)(self._compute_traits)
        self._plan = lru_cache(maxsize=4_096)(self._compute_plan)
        self._orders_chronological = lru_cache(maxsize=128)(self._compute_orders)
        self._contact = lru_cache(maxsize=1_024)(self._compute_contact)
        self._customer_doc = lru_cache(maxsize=1_024)(self._compute_customer)
        self._guest_order = lru_cache(maxsize=256)(self._compute_guest_order)

    # ------------------------------------------------------------------ public API

    def customer_ids(self, role: str = "all") -> Sequence[int]:
        """Ids in ascending order; `role="customer"` is what the API lists by default."""
        if role == "all":
            return self._all_ids
        return self._role_ids[role]

    def customer(self, customer_id: int) -> dict[str, Any]:
        """The customer exactly as GET /wp-json/wc/v3/customers/{id} serves it (KeyError if absent)."""
        if not 1 <= customer_id <= self.customer_count:
            raise KeyError(customer_id)
        return self._customer_doc(customer_id)

    def has_customer(self, customer_id: int) -> bool:
        return 1 <= customer_id <= self.customer_count

    def orders_for(self, customer_id: int) -> list[dict[str, Any]]:
        """All orders of a customer, newest first, exactly as GET /orders?customer={id} serves them.

        Id 0 gives the guest orders, as the real API does; an unknown id gives [].
        """
        return [document for _, document in self.order_entries(customer_id)]

    def order_entries(self, customer_id: int) -> list[tuple[int, dict[str, Any]]]:
        """(created_ts, order) pairs of a customer, newest first: orders_for() with UTC timestamps."""
        if customer_id == 0:
            guests = sorted(((self._guest_ts(g), g) for g in range(self.guest_order_count)), reverse=True)
            return [(ts, self._guest_order(g)) for ts, g in guests]
        if not self.has_customer(customer_id):
            return []
        plan = self._plan(customer_id)
        documents = self._orders_chronological(customer_id)
        return [(plan[i].created_ts, documents[i]) for i in range(len(documents) - 1, -1, -1)]

    @property
    def order_total(self) -> int:
        """Every order of the store: the customers' and the guests'."""
        return self.customer_order_total + self.guest_order_count

    def order_count(self, customer_id: int) -> int:
        if customer_id == 0:
            return self.guest_order_count
        return self.traits(customer_id).order_count if self.has_customer(customer_id) else 0

    def order(self, order_id: int) -> dict[str, Any] | None:
        """One order by id (None for unknown ids and for refund ids, as /orders/{id} answers 404)."""
        offset = order_id - FIRST_ORDER_ID
        if offset < 0 or offset % IDS_PER_ORDER:
            return None
        index = offset // IDS_PER_ORDER
        if index < self.customer_order_total:
            customer_id = bisect.bisect_right(self._order_offsets, index, 1) - 1
            return self._orders_chronological(customer_id)[index - self._order_offsets[customer_id]]
        guest = index - self.customer_order_total
        if guest < self.guest_order_count:
            return self._guest_order(guest)
        return None

    def showcase_id(self, name: str) -> int:
        """The id of a showcase customer by name (e.g. "enterprise"), whether or not the store is big enough."""
        for customer_id, spec in SHOWCASE.items():
            if spec.name == name:
                return customer_id
        raise KeyError(name)

    # ------------------------------------------------------------------ listings (for the HTTP layer)

    def customers_sorted(self, role: str, orderby: str, order: str) -> Sequence[int]:
        """Ids of one role (or "all") in the API's order: by id, registration date or name (user login)."""
        key = (role, orderby, order)
        cached = self._sorted_cache.get(key)
        if cached is not None:
            return cached
        ids: Sequence[int] = self.customer_ids(role)
        if orderby == "name":
            # WP_User_Query orders by display_name under a case-insensitive collation; ties by id.
            if role == "all":
                ids = self._name_order
            else:
                members = set(ids)
                ids = [cid for cid in self._name_order if cid in members]
        # id and registered_date agree: ids are handed out in registration order.
        if order == "desc":
            ids = list(reversed(ids))
        self._sorted_cache[key] = ids
        return ids

    def find_by_email(self, email: str) -> int | None:
        """Exact, case-insensitive email match (MySQL's collation), as the `email` filter does."""
        if self._email_index is None:
            index: dict[str, int] = {}
            for customer_id in self._all_ids:
                address = self.traits(customer_id).email.lower()
                if address:
                    index.setdefault(address, customer_id)
            self._email_index = index
        return self._email_index.get(email.lower())

    def search_matches(self, customer_id: int, term: str) -> bool:
        """WP_User_Query search: login, email, display name, case-insensitive substring."""
        traits = self.traits(customer_id)
        term = term.lower()
        return (
            term in traits.username.lower()
            or term in traits.email.lower()
            or term in f"{traits.first_name} {traits.last_name}".lower()
        )

    def all_orders_index(self) -> list[tuple[int, int, int, str]]:
        """(created_ts, order_id, customer_id, status) of every order, newest first.

        Built on first use by planning every customer's orders: about a second per 20,000
        customers. Only the unfiltered /orders listing needs it.
        """
        if self._global_orders is None:
            entries: list[tuple[int, int, int, str]] = []
            for customer_id in self._all_ids:
                base = self._order_offsets[customer_id]
                for i, planned in enumerate(self._plan(customer_id)):
                    order_id = self.order_id_at(base + i)
                    status = self._order_changes.get(order_id, {}).get("status", planned.status)
                    entries.append((planned.created_ts, order_id, customer_id, status))
            for guest in range(self.guest_order_count):
                doc = self._guest_order(guest)
                entries.append((self._guest_ts(guest), doc["id"], 0, doc["status"]))
            entries.sort(reverse=True)
            self._global_orders = entries
        return self._global_orders

    # ------------------------------------------------------------------ generation: traits

    def _hash(self, purpose: str, key: int) -> bytes:
        return hashlib.blake2b(f"{self.seed}:{purpose}:{key}".encode(), digest_size=32).digest()

    def _compute_traits(self, customer_id: int) -> CustomerTraits:
        digest = self._hash("customer", customer_id)
        # Sixteen independent uniform draws in [0, 1) from one hash.
        u = [int.from_bytes(digest[i:i + 2], "little") / 65536 for i in range(0, 32, 2)]
        spec = SHOWCASE.get(customer_id)

        role = spec.role if spec else self._draw_role(u[0])
        if spec and spec.names:
            first, last, stem = spec.names
        elif u[1] < 0.04:
            first, last, stem = catalog.UNICODE_NAMES[int(u[2] * len(catalog.UNICODE_NAMES))]
        else:
            first = catalog.FIRST_NAMES[int(u[2] * len(catalog.FIRST_NAMES))]
            last = catalog.LAST_NAMES[int(u[3] * len(catalog.LAST_NAMES))]
            stem = f"{first}.{last}".lower()
        username = f"{stem}.{customer_id:03d}"
        if customer_id == 1:
            first = last = ""
            username = "admin"

        if spec:
            email_style: EmailStyle = spec.email_style
        elif u[4] < 0.005:
            email_style = "missing_at"
        elif u[4] < 0.006:
            email_style = "no_domain"
        elif u[4] < 0.025:
            email_style = "upper"
        elif u[4] < 0.04:
            email_style = "mixed"
        else:
            email_style = "plain"
        if self.valid_emails_only and email_style in _INVALID_EMAIL_STYLES:
            email_style = "plain"
        domain = catalog.EMAIL_DOMAINS[int(u[10] * len(catalog.EMAIL_DOMAINS))]
        email = _styled_email(username, domain, email_style)

        has_billing = spec.has_billing if spec else u[5] >= 0.05
        profile: Profile
        if spec:
            profile = spec.profile
        else:
            profile = "wholesale" if u[6] < 0.03 else "premium" if u[6] < 0.10 else "retail"

        plan = spec.plan if spec else None
        if plan is not None:
            if plan.statuses is not None:
                order_count = len(plan.statuses)
            else:
                low, high = plan.count or (0, 0)
                order_count = low + int(u[8] * (high - low + 1))
        else:
            order_count = _draw_order_count(role, u[7], u[8], u[12])
        recent = plan.recent if plan is not None and plan.recent is not None else u[9] < 0.25

        span = _HISTORY_DAYS * _DAY - _DAY
        slot = span // max(self.customer_count, 1)
        created_ts = self._history_start + (customer_id - 1) * span // max(self.customer_count, 1) + int(u[11] * slot)

        return CustomerTraits(
            id=customer_id,
            role=role,
            first_name=first,
            last_name=last,
            username=username,
            email=email if customer_id != 1 else "admin@example.test",
            has_billing=has_billing,
            profile=profile,
            order_count=order_count,
            recent=recent,
            created_ts=created_ts,
            place=int(u[13] * len(catalog.PLACES)),
            plan=plan,
        )

    @staticmethod
    def _draw_role(u: float) -> str:
        if u < 0.90:
            return "customer"
        if u < 0.97:
            return "subscriber"
        if u < 0.98:
            return "shop_manager"
        if u < 0.985:
            return "editor"
        if u < 0.99:
            return "author"
        if u < 0.995:
            return "contributor"
        return "administrator"

    # ------------------------------------------------------------------ generation: order plans

    def _compute_plan(self, customer_id: int) -> list[PlannedOrder]:
        """Dates, statuses and refund kinds of a customer's orders, oldest first (cheap)."""
        traits = self.traits(customer_id)
        count = traits.order_count
        if count == 0:
            return []
        rng = random.Random(int.from_bytes(self._hash("plan", customer_id)[:8], "little"))
        start = traits.created_ts + 3600
        end = self._as_of_ts - 3600
        if start >= end:
            start = end - _DAY
        times = sorted(_between(rng, start, end) for _ in range(count))
        if traits.recent:
            times[-1] = max(end - _between(rng, 3600, _RECENT_DAYS * _DAY), start)
            times.sort()

        plan = traits.plan or OrderPlan()
        if plan.statuses is not None:
            raw_statuses = list(plan.statuses)
        else:
            raw_statuses = [_STATUS_WEIGHTS.draw(rng) for _ in range(count)]
            missing = plan.min_completed - raw_statuses.count("completed")
            if missing > 0:
                others = [i for i, s in enumerate(raw_statuses) if s != "completed"]
                for i in rng.sample(others, missing):
                    raw_statuses[i] = "completed"

        planned = []
        for created_ts, raw in zip(times, raw_statuses):
            status, _, forced_refund = raw.partition("+")
            refund: RefundKind
            if forced_refund:
                refund = forced_refund  # type: ignore[assignment]
            elif status == "refunded":
                refund = "full" if rng.random() < 0.7 else "partial_then_rest"
            elif status in PAID_STATUSES and plan.partial_refunds:
                draw = rng.random()
                refund = "partial" if draw < 0.07 else "two_partial" if draw < 0.085 else "none"
            else:
                refund = "none"
            planned.append(PlannedOrder(created_ts, status, refund))
        return planned

    # ------------------------------------------------------------------ generation: documents

    def order_id_at(self, global_index: int) -> int:
        """The id of the store's order number `global_index` (0-based, in id order; guests last)."""
        return FIRST_ORDER_ID + IDS_PER_ORDER * global_index

    def _local(self, ts: int | None) -> str | None:
        return None if ts is None else _wp_datetime(ts + self._offset_s)

    def _gmt(self, ts: int | None) -> str | None:
        return None if ts is None else _wp_datetime(ts)

    def _compute_contact(self, customer_id: int) -> tuple[dict[str, str], dict[str, str]]:
        """(billing, shipping) in the customer document's key order; orders reuse them."""
        if customer_id == 1:
            return dict(_EMPTY_BILLING), dict(_EMPTY_SHIPPING)
        traits = self.traits(customer_id)
        rng = random.Random(int.from_bytes(self._hash("contact", customer_id)[:8], "little"))
        place = catalog.PLACES[traits.place]
        wants_company = traits.profile != "retail" or rng.random() < 0.25
        address = {
            "first_name": traits.first_name,
            "last_name": traits.last_name,
            "company": f"{traits.last_name}{_pick(rng, catalog.COMPANY_SUFFIXES)}" if wants_company else "",
            "address_1": f"{100 + customer_id % 900} {catalog.STREETS[customer_id % len(catalog.STREETS)]}",
            "address_2": _pick(rng, catalog.SECOND_LINES) if rng.random() < 0.2 else "",
            "city": place.city,
            "postcode": place.postcode,
            "country": place.country,
            "state": place.state,
        }
        phone = _phone(rng, traits) if rng.random() < 0.85 else ""
        billing = {**address, "email": traits.email, "phone": phone} if traits.has_billing else dict(_EMPTY_BILLING)
        if not traits.has_billing or rng.random() < 0.6:
            shipping = {**address, "company": "", "phone": ""}
        else:
            shipping = dict(_EMPTY_SHIPPING)
        return billing, shipping

    def _compute_customer(self, customer_id: int) -> dict[str, Any]:
        traits = self.traits(customer_id)
        rng = random.Random(int.from_bytes(self._hash("profile", customer_id)[:8], "little"))
        plan = self._plan(customer_id)
        billing, shipping = self._contact(customer_id)

        created = traits.created_ts
        if customer_id == 1:
            modified = None
        elif plan:
            modified = min(plan[-1].created_ts + _between(rng, 1, 600), self._as_of_ts - 1)
        else:
            modified = min(created + _between(rng, 60, 3 * _DAY), self._as_of_ts - 1)

        meta: list[dict[str, Any]] = []
        if customer_id != 1:
            meta_id = customer_id * 10
            if rng.random() < 0.7:
                meta.append({"id": meta_id + 1, "key": "default_password_nag", "value": "1"})
            if rng.random() < 0.3:
                meta.append({"id": meta_id + 2, "key": "loyalty_tier", "value": _pick(rng, catalog.LOYALTY_TIERS)})
            if rng.random() < 0.2:
                meta.append({"id": meta_id + 3, "key": "marketing_opt_in", "value": _pick(rng, ("yes", "no"))})
            if rng.random() < 0.1:
                meta.append({"id": meta_id + 4, "key": "preferred_language", "value": _pick(rng, catalog.LANGUAGES)})
            if rng.random() < 0.05:
                # Plugins store arrays too; the API returns them as JSON objects.
                meta.append({"id": meta_id + 5, "key": "wc_preferences",
                             "value": {"newsletter": rng.random() < 0.5, "sms": rng.random() < 0.2}})

        url = f"{self._base_url}/wp-json/wc/v3/customers"
        return {
            "id": customer_id,
            "date_created": self._local(created),
            "date_created_gmt": self._gmt(created),
            "date_modified": self._local(modified),
            "date_modified_gmt": self._gmt(modified),
            "email": traits.email,
            "first_name": traits.first_name,
            "last_name": traits.last_name,
            "role": traits.role,
            "username": traits.username,
            "billing": billing,
            "shipping": shipping,
            "is_paying_customer": any(p.status in PAID_STATUSES or p.status == "refunded" for p in plan),
            "avatar_url": "https://secure.gravatar.com/avatar/"
            + hashlib.sha256(traits.email.strip().lower().encode()).hexdigest()
            + "?s=96&d=mm&r=g",
            "meta_data": meta,
            "_links": {
                "self": [{"href": f"{url}/{customer_id}", "targetHints": {"allow": _ALLOW_ALL}}],
                "collection": [{"href": url}],
            },
        }

    def _compute_orders(self, customer_id: int) -> list[dict[str, Any]]:
        """Full order documents of one customer, oldest first."""
        plan = self._plan(customer_id)
        if not plan:
            return []
        traits = self.traits(customer_id)
        billing, shipping = self._contact(customer_id)
        if not any(billing.values()):
            # Checkout asks for a billing address even when the account has none.
            billing = {**shipping, "email": traits.email}
        billing = _order_address_order(billing, with_email=True)
        shipping = _order_address_order(shipping, with_email=False)
        rng = random.Random(int.from_bytes(self._hash("orders", customer_id)[:8], "little"))
        base = self._order_offsets[customer_id]
        target = traits.plan.target_cents if traits.plan else None
        documents = [
            self._order_document(base + i, customer_id, planned, traits.profile, target, billing, shipping, rng)
            for i, planned in enumerate(plan)
        ]
        return [self._changed(document) for document in documents] if self._order_changes else documents

    def _changed(self, document: dict[str, Any]) -> dict[str, Any]:
        changes = self._order_changes.get(document["id"])
        return {**document, **changes} if changes else document

    def orders_modifiable_after(self, ts: int) -> set[int] | None:
        """The only orders whose date_modified can lie after `ts` (a UTC timestamp): when `ts` is
        past every generated date, those changed since (change_order); None when any order may.
        Lets a `modified_after` listing of a big store skip generating every order."""
        if ts < self._as_of_ts - 1:  # generated dates are at most as_of - 1 s
            return None
        return set(self._order_changes)

    def change_order(self, order_id: int, changes: dict[str, Any]) -> dict[str, Any] | None:
        """Change an order's fields (e.g. `status`, `refunds`, as a shop manager would) and return
        it as the API now serves it; None when there is no such order."""
        if self.order(order_id) is None:
            return None
        self._order_changes[order_id] = {**self._order_changes.get(order_id, {}), **changes}
        self._global_orders = None
        self._install_caches()
        return self.order(order_id)

    def _guest_ts(self, guest: int) -> int:
        digest = self._hash("guest", guest)
        return self._history_start + int.from_bytes(digest[:8], "little") % (_HISTORY_DAYS * _DAY - _DAY)

    def _compute_guest_order(self, guest: int) -> dict[str, Any]:
        rng = random.Random(int.from_bytes(self._hash("guest-order", guest)[:8], "little"))
        number = 100_000 + int.from_bytes(self._hash("guest", guest)[8:12], "little") % 900_000
        place = _pick(rng, catalog.PLACES)
        billing = {
            "first_name": "Guest", "last_name": f"Buyer{number}", "company": "",
            "address_1": f"{_between(rng, 1, 99)} Side Rd", "address_2": "",
            "city": place.city, "state": place.state, "postcode": place.postcode, "country": place.country,
            "email": f"guest{number}@example.test", "phone": "",
        }
        shipping = _order_address_order(_EMPTY_SHIPPING, with_email=False)
        status = _STATUS_WEIGHTS.draw(rng)
        refund: RefundKind = "full" if status == "refunded" else "none"
        planned = PlannedOrder(self._guest_ts(guest), status, refund)
        return self._changed(
            self._order_document(self.customer_order_total + guest, 0, planned, "retail", None, billing, shipping, rng))

    def _order_document(
        self,
        global_index: int,
        customer_id: int,
        planned: PlannedOrder,
        profile: Profile,
        target_cents: tuple[int, int] | None,
        billing: dict[str, str],
        shipping: dict[str, str],
        rng: random.Random,
    ) -> dict[str, Any]:
        order_id = self.order_id_at(global_index)
        item_id = global_index * ITEM_IDS_PER_ORDER
        status = planned.status

        lines: list[tuple[catalog.Product, int]] = []
        if target_cents is not None:
            # One line sized to land in [target, 1.25 * target): keeps showcase segments certain.
            target = _between(rng, target_cents[0], target_cents[1] + 1)
            candidates = [p for p in _PRODUCTS[profile] if p.price_cents * 4 <= target] or [_PRODUCTS[profile][-1]]
            product = _pick(rng, candidates)
            lines.append((product, -(-target // product.price_cents)))
        else:
            item_count = _ITEM_COUNTS[profile].draw(rng)
            for _ in range(item_count):
                lines.append((_pick(rng, _PRODUCTS[profile]), _QUANTITIES[profile].draw(rng)))

        line_items = []
        subtotal = 0
        for n, (product, quantity) in enumerate(lines, start=1):
            line_total = product.price_cents * quantity
            subtotal += line_total
            line_items.append({
                "id": item_id + n,
                "name": product.name,
                "product_id": product.product_id,
                "variation_id": 0,
                "quantity": quantity,
                "tax_class": "",
                "subtotal": money(line_total),
                "subtotal_tax": "0.00",
                "total": money(line_total),
                "total_tax": "0.00",
                "taxes": [],
                "meta_data": [],
                "sku": product.sku,
                "price": _unit_price(product.price_cents),
                "image": {"id": "", "src": ""},
                "parent_name": None,
            })

        shipping_lines = []
        shipping_cents = 0
        if target_cents is None and rng.random() < 0.55:
            shipping_cents = _SHIPPING_CENTS[profile]
            shipping_lines.append({
                "id": item_id + 9,
                "method_title": "Flat rate",
                "method_id": "flat_rate",
                "instance_id": "",
                "total": money(shipping_cents),
                "total_tax": "0.00",
                "taxes": [],
                "tax_status": "taxable",
                "meta_data": [],
            })
        total = subtotal + shipping_cents

        refunds = []
        if planned.refund == "partial":
            refunds.append((max(1, total * _between(rng, 10, 51) // 100), _pick(rng, catalog.PARTIAL_REFUND_REASONS)))
        elif planned.refund == "two_partial":
            for _ in range(2):
                refunds.append((max(1, total * _between(rng, 5, 26) // 100), _pick(rng, catalog.PARTIAL_REFUND_REASONS)))
        elif planned.refund == "full":
            refunds.append((total, catalog.FULL_REFUND_REASON))
        elif planned.refund == "partial_then_rest":
            first = max(1, total * _between(rng, 30, 71) // 100)
            refunds.append((first, _pick(rng, catalog.PARTIAL_REFUND_REASONS)))
            refunds.append((total - first, catalog.FULL_REFUND_REASON))
        # The API lists refunds newest first.
        refund_docs = [
            {"id": order_id + 1 + n, "reason": reason, "total": money(-amount)}
            for n, (amount, reason) in reversed(list(enumerate(refunds)))
        ]

        created = planned.created_ts
        latest = self._as_of_ts - 1
        paid = min(created + _between(rng, 5, 180), latest) if status in ("processing", "completed", "refunded") else None
        completed = min(paid + _between(rng, 3600, 3 * _DAY), latest) if status == "completed" and paid else None
        modified = min(max(created + _between(rng, 0, 2 * _DAY), completed or 0), latest)

        method, method_title = _pick(rng, catalog.PAYMENT_METHODS)
        created_via = _CREATED_VIA.draw(rng)
        from_checkout = created_via == "checkout"
        order_key = "wc_order_" + _alnum(rng, 13)
        transaction_id = "ch_" + _alnum(rng, 24) if method == "stripe" and paid else ""
        url = f"{self._base_url}/wp-json/wc/v3"
        links: dict[str, Any] = {
            "self": [{"href": f"{url}/orders/{order_id}", "targetHints": {"allow": _ALLOW_ALL}}],
            "collection": [{"href": f"{url}/orders"}],
            "email_templates": [{"embeddable": True, "href": f"{url}/orders/{order_id}/actions/email_templates"}],
        }
        if customer_id:
            links["customer"] = [{"href": f"{url}/customers/{customer_id}"}]

        return {
            "id": order_id,
            "parent_id": 0,
            "status": status,
            "currency": "USD",
            "version": WOOCOMMERCE_VERSION,
            "prices_include_tax": False,
            "date_created": self._local(created),
            "date_modified": self._local(modified),
            "discount_total": "0.00",
            "discount_tax": "0.00",
            "shipping_total": money(shipping_cents),
            "shipping_tax": "0.00",
            "cart_tax": "0.00",
            "total": money(total),
            "total_tax": "0.00",
            "customer_id": customer_id,
            "order_key": order_key,
            "billing": billing,
            "shipping": shipping,
            "payment_method": method,
            "payment_method_title": method_title,
            "transaction_id": transaction_id,
            "customer_ip_address": f"203.0.113.{_between(rng, 1, 255)}" if from_checkout else "",
            "customer_user_agent": _USER_AGENT if from_checkout else "",
            "created_via": created_via,
            "customer_note": "Please leave it with a neighbour." if rng.random() < 0.04 else "",
            "date_completed": self._local(completed),
            "date_paid": self._local(paid),
            "cart_hash": rng.randbytes(16).hex() if from_checkout else "",
            "number": str(order_id),
            "meta_data": [],
            "line_items": line_items,
            "tax_lines": [],
            "shipping_lines": shipping_lines,
            "fee_lines": [],
            "coupon_lines": [],
            "refunds": refund_docs,
            "payment_url": f"{self._base_url}/checkout/order-pay/{order_id}/?pay_for_order=true&key={order_key}",
            "is_editable": status in ("pending", "on-hold", "checkout-draft"),
            "needs_payment": status in ("pending", "failed") and total > 0,
            "needs_processing": True,
            "date_created_gmt": self._gmt(created),
            "date_modified_gmt": self._gmt(modified),
            "date_completed_gmt": self._gmt(completed),
            "date_paid_gmt": self._gmt(paid),
            "currency_symbol": "$",
            "_links": links,
        }


_PRODUCTS = {
    "retail": catalog.RETAIL_PRODUCTS,
    "premium": catalog.PREMIUM_PRODUCTS,
    "wholesale": catalog.WHOLESALE_PRODUCTS,
}
_ITEM_COUNTS = {
    "retail": Weighted(((1, 3), (2, 3), (3, 2), (4, 1))),
    "premium": Weighted(((1, 3), (2, 2), (3, 1))),
    "wholesale": Weighted(((1, 2), (2, 2), (3, 1))),
}
_QUANTITIES = {
    "retail": Weighted(((1, 5), (2, 3), (3, 1), (4, 1))),
    "premium": Weighted(((1, 4), (2, 1))),
    "wholesale": Weighted(((1, 2), (2, 2), (3, 2), (4, 1), (6, 1))),
}
_EMPTY_BILLING = dict.fromkeys(
    ("first_name", "last_name", "company", "address_1", "address_2", "city", "postcode", "country", "state",
     "email", "phone"), "")
_EMPTY_SHIPPING = dict.fromkeys(
    ("first_name", "last_name", "company", "address_1", "address_2", "city", "postcode", "country", "state",
     "phone"), "")
_SHIPPING_CENTS = {"retail": 500, "premium": 1500, "wholesale": 12000}
_USER_AGENT = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"


def _draw_order_count(role: str, bucket: float, within: float, heavy: float) -> int:
    """Long tail: a fifth never order, most order 1-10, a few hundredths 11-100, a few thousandths 101-150."""
    if role == "customer":
        if heavy < 0.004:
            return 101 + int(within * 50)
        if bucket < 0.22:
            return 0
        if bucket < 0.57:
            return 1 + int(within * 3)
        if bucket < 0.87:
            return 4 + int(within * 7)
        if bucket < 0.96:
            return 11 + int(within * 20)
        return 31 + int(within * 70)
    # Staff and subscribers rarely buy.
    return 0 if bucket < 0.75 else 1 + int(within * 5)


def _styled_email(username: str, domain: str, style: EmailStyle) -> str:
    address = f"{username}@{domain}"
    if style == "upper":
        return address.upper()
    if style == "mixed":
        return "".join(part.capitalize() for part in username.split(".")) + "@" + domain.capitalize()
    if style == "missing_at":
        return f"{username}.{domain}"
    if style == "no_domain":
        return f"{username}@"
    if style == "empty":
        return ""
    return address


def _phone(rng: random.Random, traits: CustomerTraits) -> str:
    country = catalog.PLACES[traits.place].country
    n = traits.id % 10_000
    if country == "US" or country == "CA":
        return _pick(rng, (f"+1-555-{n:04d}", f"(555) 0{n:04d}"))
    if country == "GB":
        return f"+44 20 7946 {n:04d}"
    return f"+{_between(rng, 30, 99)} {_between(rng, 100, 999)} {n:04d}"


def _order_address_order(address: dict[str, str], *, with_email: bool) -> dict[str, str]:
    """Orders list address fields in another order than customers do (city, state, postcode, country)."""
    keys = ["first_name", "last_name", "company", "address_1", "address_2", "city", "state", "postcode", "country"]
    if with_email:
        keys.append("email")
    keys.append("phone")
    return {key: address.get(key, "") for key in keys}


def store_summary(store: SimulatedStore) -> dict[str, Any]:
    """Counts a human (or a test) wants to see at start-up."""
    return {
        "customers": store.customer_count,
        "role_customer": len(store.customer_ids("customer")),
        "orders": store.order_total,
        "guest_orders": store.guest_order_count,
        "as_of": store.as_of.isoformat(),
        "seed": store.seed,
    }


__all__ = [
    "FIRST_ORDER_ID",
    "ORDER_STATUSES",
    "PAID_STATUSES",
    "ROLES",
    "SHOWCASE",
    "CustomerTraits",
    "OrderPlan",
    "Showcase",
    "SimulatedStore",
    "money",
    "store_summary",
]
