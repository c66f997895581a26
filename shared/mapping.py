"""A WooCommerce customer and its orders -> one customer row (docs/contract.md section 5).

Pure: data in, data out, no I/O and no clock (the caller passes `now`). It runs once per customer
line in the consumer's hot path, so it is plain Python over the decoded JSON, not pydantic.

Choices docs/contract.md section 5 leaves open, made here once:

- Money is exact `Decimal`. Order and refund totals are summed unrounded and the sum is rounded to
  cents once, ROUND_HALF_UP (half away from zero, as PHP's `round()` that WooCommerce uses). The
  store always sends two decimals, so rounding only matters for odd data. A refund is subtracted
  by its absolute value: WooCommerce lists refund totals as negative strings, and a plugin that
  sends a positive one still means money returned, never money earned.
- A malformed or non-finite money string, or a malformed date, is bad data: `InvalidCustomer`,
  naming the customer, the order and the value. So is a lifetime value that `numeric(14,2)`
  cannot hold, which the database would otherwise refuse.
- An order listed twice (pages shift when an order is created while the consumer pages) is
  counted once, by order id.
- Dates: WooCommerce's `*_gmt` fields are naive ISO strings in UTC; an explicit offset (the
  simulator, other stores) is honoured and converted to UTC. An order without a
  `date_created_gmt` counts for money but not for dates.
- Text fields are stripped; for `phone` and `company` a blank value counts as missing (null).
  `name` joins the stripped first and last names with one space.
- `address` keeps the five keys always, with "" for a part the billing address lacks (docs/contract.md section 5
  takes the address from billing only, without a shipping fallback).
- `metadata.meta`: one entry per `meta_data` key; for a repeated key the first entry wins, as
  WooCommerce's own `get_meta($key, true)` reads it. Values are passed through as decoded (any
  JSON) and shared with the input, not copied.
- Email: trimmed, lower-cased, and sane: at most 254 characters, exactly one "@", a non-empty local
  part, a domain of at least two non-empty dot-separated labels, and no whitespace or control
  characters anywhere. Stricter RFC 5321 rules are left to the mail server; this only keeps rows
  that could never receive mail out of the table.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from collections.abc import Iterable
from typing import Any

from shared.errors import InvalidCustomer

# The tags this sync computes; any other tag on a row belongs to another system and is kept.
SYNC_OWNED_TAGS: frozenset[str] = frozenset({"woocommerce", "high-value", "prospect", "active"})

PAID_STATUSES: frozenset[str] = frozenset({"completed", "processing"})
# The order keys the order mirror keeps (map_customer reads the first five): ask the store for just these.
ORDER_FIELDS: tuple[str, ...] = ("id", "status", "total", "refunds", "date_created_gmt", "customer_id", "date_modified_gmt")
ACTIVE_WINDOW = timedelta(days=30)

CENT = Decimal("0.01")
_ZERO = Decimal(0)
# numeric(14,2): twelve digits before the point.
_LIFETIME_VALUE_LIMIT = Decimal("1E12")
# The largest single amount the order mirror keeps (numeric holds far more; no order is this big).
_AMOUNT_LIMIT = Decimal("1E100")

_EMAIL_MAX_LENGTH = 254
# One "@", no whitespace or control characters, a domain of >= 2 non-empty labels. Linear: the
# label class excludes the "." that separates labels, so there is no backtracking blow-up.
_EMAIL = re.compile(
    r"[^@\s\x00-\x1f\x7f]+@(?:[^@\s.\x00-\x1f\x7f]+\.)+[^@\s.\x00-\x1f\x7f]+"
)


@dataclass(frozen=True, slots=True)
class CustomerRow:
    """The values of one `customer` row, as docs/contract.md section 5 derives them."""

    email: str
    name: str
    phone: str | None
    company: str | None
    segment: str
    status: str
    lifetime_value: Decimal  # quantized to CENT
    acquisition_date: datetime | None  # tz-aware UTC
    last_interaction_date: datetime | None  # tz-aware UTC
    address: dict
    metadata: dict
    tags: list[str]  # sync-owned tags only, in the order of _TAG_ORDER
    woo_customer_id: int
    store_url: str


@dataclass(frozen=True, slots=True)
class MirroredOrder:
    """One order as the order mirror keeps it: what the mapping reads, parsed once.

    A value the mapping cannot read is kept as the problem it is (without the customer, which the
    order may not know): `money_problem` counts only when the order is paid, `date_problem` always.
    """

    order_id: int
    customer_id: int  # 0: a guest order
    status: str
    total: Decimal | None
    refunded: Decimal  # the refunds' absolute values, summed
    date_created_gmt: datetime | None  # naive UTC (as WooCommerce sends it; replace() is the slow part)
    date_modified_gmt: datetime | None  # naive UTC
    money_problem: str | None = None
    date_problem: str | None = None
    billing_email: str | None = None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """What docs/contract.md section 5 needs of a customer's orders: the order mirror's aggregate
    (shared/repository/orders.py computes it in SQL by exactly these rules, `summarize_orders` in
    Python). `paid_value` is unrounded; `problem` is the first unreadable value that counts."""

    paid_value: Decimal = _ZERO
    completed_orders: int = 0
    total_orders: int = 0
    earliest: datetime | None = None  # tz-aware UTC
    latest: datetime | None = None
    problem: str | None = None


EMPTY_SUMMARY = OrderSummary()


def mirror_order(order: Any, *, customer_id: int | None = None) -> MirroredOrder:
    """An order of the store as the mirror keeps it. `customer_id` is the customer whose listing
    held it (per_customer), else the order's own `customer_id`. Raises InvalidOrder when the order
    cannot be told apart from others (no object, no integer id)."""
    if not isinstance(order, dict):
        raise InvalidOrder(f"an order that is a {type(order).__name__}, not a JSON object")
    order_id = order.get("id")
    if type(order_id) is not int or order_id < 1:
        raise InvalidOrder(f"an order without a valid id: {_show(order_id)}")
    if customer_id is None:
        owner = order.get("customer_id")
        customer_id = owner if type(owner) is int and owner > 0 else 0
    return _mirror(order, order_id, customer_id)


def _mirror(order: dict, order_id: int, customer_id: int) -> MirroredOrder:
    status = order.get("status")
    status = status if isinstance(status, str) else _show(status)
    money_problem = None
    total: Decimal | None = None
    refunded = _ZERO
    try:
        total = _money(order.get("total"), order, "total")
        for refund in order.get("refunds") or ():
            refund_total = refund.get("total") if isinstance(refund, dict) else refund
            refunded += abs(_money(refund_total, order, "refund total"))
    except _OrderProblem as problem:
        total, refunded, money_problem = None, _ZERO, str(problem)
    date_problem = None
    created = modified = None
    try:
        if order.get("date_created_gmt"):
            created = _naive_utc(order.get("date_created_gmt"), order)
    except _OrderProblem as problem:
        date_problem = str(problem)
    try:
        if order.get("date_modified_gmt"):
            modified = _naive_utc(order.get("date_modified_gmt"), order, "date_modified_gmt")
    except _OrderProblem:
        modified = None  # not read by the mapping: an odd one changes nothing
    billing = order.get("billing")
    email = billing.get("email") if isinstance(billing, dict) else None
    return MirroredOrder(
        order_id=order_id, customer_id=customer_id, status=status, total=total, refunded=refunded,
        date_created_gmt=created, date_modified_gmt=modified, money_problem=money_problem,
        date_problem=date_problem, billing_email=email if isinstance(email, str) and email else None,
    )


def summarize_orders(orders: Iterable[MirroredOrder]) -> OrderSummary:
    """The aggregate of a customer's orders (each id once), by docs/contract.md section 5."""
    paid_value = _ZERO
    completed = total_orders = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    problem: str | None = None
    for order in orders:
        total_orders += 1
        if order.status in PAID_STATUSES:
            if order.status == "completed":
                completed += 1
            if order.money_problem is not None:
                problem = problem or order.money_problem
            else:
                paid_value += order.total - order.refunded  # type: ignore[operator]
        if order.date_problem is not None:
            problem = problem or order.date_problem
        when = order.date_created_gmt
        if when is not None:
            if earliest is None or when < earliest:
                earliest = when
            if latest is None or when > latest:
                latest = when
    if earliest is not None and latest is not None:
        earliest, latest = earliest.replace(tzinfo=UTC), latest.replace(tzinfo=UTC)
    return OrderSummary(paid_value, completed, total_orders, earliest, latest, problem)


def map_customer(customer: dict, orders: list[dict], *, store_url: str, now: datetime) -> CustomerRow:
    """Map a WooCommerce customer and all of its orders (every page) to a customer row.

    `now` (tz-aware) decides the `active` tag. Raises `InvalidCustomer` (permanent) with a message
    naming the customer and the problem when the data cannot become a row.
    """
    woo_id = _customer_id(customer)
    mirrored = []
    for order in _distinct_orders(orders, woo_id):
        order_id = order.get("id")
        # An order without an integer id is still counted, as the one copy it is.
        mirrored.append(_mirror(order, order_id if type(order_id) is int else 0, woo_id))
    summary = summarize_orders(mirrored)
    return map_customer_summary(customer, summary, store_url=store_url, now=now)


def map_customer_summary(customer: dict, orders: OrderSummary, *, store_url: str, now: datetime) -> CustomerRow:
    """Map a WooCommerce customer and the summary of its orders (the order mirror's aggregate) to
    a customer row, by the rules of `map_customer`."""
    if now.tzinfo is None:
        raise ValueError("map_customer needs a timezone-aware `now`")
    woo_id = _customer_id(customer)
    email = _normalize_email(customer.get("email"), woo_id)
    billing = _section(customer.get("billing"))
    shipping = _section(customer.get("shipping"))

    name = _join_name(customer.get("first_name"), customer.get("last_name"))
    if not name:
        name = _join_name(billing.get("first_name"), billing.get("last_name")) or email

    if orders.problem is not None:
        raise InvalidCustomer(f"customer {woo_id} {orders.problem}")
    completed_orders = orders.completed_orders
    lifetime_value = orders.paid_value.quantize(CENT, rounding=ROUND_HALF_UP)
    if abs(lifetime_value) >= _LIFETIME_VALUE_LIMIT:
        raise InvalidCustomer(
            f"customer {woo_id} has a lifetime value of {lifetime_value}, more than numeric(14,2) holds"
        )

    earliest, latest = orders.earliest, orders.latest
    if earliest is None or latest is None:
        customer_created = customer.get("date_created_gmt")
        if customer_created:
            try:
                earliest = latest = _naive_utc(customer_created, None).replace(tzinfo=UTC)
            except _OrderProblem as problem:
                raise InvalidCustomer(f"customer {woo_id} {problem}") from None
        has_recent_order = False
    else:
        has_recent_order = now - latest < ACTIVE_WINDOW

    return CustomerRow(
        email=email,
        name=name,
        phone=_first_present(billing.get("phone"), shipping.get("phone")),
        company=_first_present(billing.get("company"), shipping.get("company")),
        segment=segment_for(lifetime_value, completed_orders),
        status="active" if completed_orders > 0 else "prospect",
        lifetime_value=lifetime_value,
        acquisition_date=earliest,
        last_interaction_date=latest,
        address={
            "street": _street(billing.get("address_1"), billing.get("address_2")),
            "city": _text(billing.get("city")),
            "state": _text(billing.get("state")),
            "postal_code": _text(billing.get("postcode")),
            "country": _text(billing.get("country")),
        },
        metadata={
            "woocommerce_id": woo_id,
            "store_url": store_url,
            "username": _optional_text(customer.get("username")),
            "role": _optional_text(customer.get("role")),
            "total_orders": orders.total_orders,
            "completed_orders": completed_orders,
            "meta": _meta(customer.get("meta_data")),
        },
        tags=sync_tags(completed_orders, has_recent_order),
        woo_customer_id=woo_id,
        store_url=store_url,
    )


def _customer_id(customer: Any) -> int:
    if not isinstance(customer, dict):
        raise InvalidCustomer(f"customer data is a {type(customer).__name__}, not a JSON object")
    woo_id = customer.get("id")
    if type(woo_id) is not int or woo_id < 1:
        raise InvalidCustomer(f"customer data has no valid WooCommerce id: {_show(woo_id)}")
    return woo_id


def segment_for(lifetime_value: Decimal, completed_orders: int) -> str:
    """docs/contract.md section 5's segment; every threshold is strict (50000.00 is not enterprise)."""
    if lifetime_value > 50000:
        return "enterprise"
    if lifetime_value > 20000 or completed_orders > 50:
        return "mid_market"
    if lifetime_value > 5000 or completed_orders > 10:
        return "smb"
    if completed_orders > 2:
        return "startup"
    return "individual"


def sync_tags(completed_orders: int, has_recent_order: bool) -> list[str]:
    """The sync-owned tags, always in the order woocommerce, high-value, prospect, active."""
    tags = ["woocommerce"]
    if completed_orders > 10:
        tags.append("high-value")
    if completed_orders == 0:
        tags.append("prospect")
    if has_recent_order:
        tags.append("active")
    return tags


def merge_tags(existing: list[str] | None, synced: list[str]) -> list[str]:
    """The tags to store on update: other systems' tags kept, sync-owned ones recomputed.

    Foreign tags come first in their existing order (duplicates and NULL elements dropped),
    then the freshly synced tags. Only the exact names in SYNC_OWNED_TAGS are owned: "Active" or
    "vip" belong to someone else.
    """
    merged: list[str] = []
    seen: set[str] = set()
    for tag in existing or ():
        if tag is None or tag in SYNC_OWNED_TAGS or tag in seen:
            continue
        seen.add(tag)
        merged.append(tag)
    for tag in synced:
        if tag not in seen:
            seen.add(tag)
            merged.append(tag)
    return merged


# ----------------------------------------------------------------------------------------------


def _normalize_email(raw: Any, woo_id: int) -> str:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        raise InvalidCustomer(f"customer {woo_id} has no email")
    if not isinstance(raw, str):
        raise InvalidCustomer(f"customer {woo_id} has no valid email: {_show(raw)}")
    email = raw.strip().lower()
    if len(email) > _EMAIL_MAX_LENGTH or _EMAIL.fullmatch(email) is None:
        raise InvalidCustomer(f"customer {woo_id} has no valid email: {_show(raw)}")
    return email


def _distinct_orders(orders: list[dict] | None, woo_id: int) -> list[dict]:
    """The orders, each id once (the last copy wins: a later page is the fresher answer)."""
    if not orders:
        return []
    by_id: dict[Any, dict] = {}
    anonymous: list[dict] = []
    for order in orders:
        if not isinstance(order, dict):
            raise InvalidCustomer(
                f"customer {woo_id} has an order that is a {type(order).__name__}, not a JSON object"
            )
        order_id = order.get("id")
        if order_id is None:
            anonymous.append(order)
        else:
            by_id[order_id] = order
    if not anonymous and len(by_id) == len(orders):
        return orders
    return [*by_id.values(), *anonymous]


class InvalidOrder(ValueError):
    """An order that cannot be kept in the mirror: not an object, or without an integer id."""


class _OrderProblem(Exception):
    """A value of an order the mapping cannot read; the message names the order and the value."""


def _money(value: Any, order: dict, field: str) -> Decimal:
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
        if amount is not None and amount.is_finite() and ("e" not in value and "E" not in value or _storable(amount)):
            return amount
    elif type(value) is int and abs(value) < _AMOUNT_LIMIT:
        return Decimal(value)
    elif type(value) is float and math.isfinite(value):
        return Decimal(repr(value))  # the decimal the JSON text said, not the binary float
    raise _OrderProblem(f"order {_show(order.get('id'))} has an invalid {field}: {_show(value)}")


def _storable(amount: Decimal) -> bool:
    """PostgreSQL's numeric holds it (an exponent of thousands is no amount of money anyway)."""
    return abs(amount) < _AMOUNT_LIMIT and amount.as_tuple().exponent >= -1000  # type: ignore[operator]


def _naive_utc(value: Any, order: dict | None, field: str = "date_created_gmt") -> datetime:
    """A `*_gmt` date as a naive datetime in UTC (naive is how WooCommerce sends it)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        where = f"order {_show(order.get('id'))}" if order is not None else "record"
        raise _OrderProblem(f"{where} has an invalid {field}: {_show(value)}") from None
    if when.tzinfo is None:
        return when
    return when.astimezone(UTC).replace(tzinfo=None)


def _section(value: Any) -> dict:
    """billing / shipping: a missing or malformed section reads as an empty one."""
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value.strip()
    if value is None or isinstance(value, (dict, list, bool)):
        return ""
    return str(value).strip()  # a number, e.g. a postcode a plugin stored as an int


def _optional_text(value: Any) -> str | None:
    return _text(value) or None


def _first_present(*values: Any) -> str | None:
    for value in values:
        text = _text(value)
        if text:
            return text
    return None


def _join_name(first: Any, last: Any) -> str:
    first_text, last_text = _text(first), _text(last)
    if first_text and last_text:
        return f"{first_text} {last_text}"
    return first_text or last_text


def _street(address_1: Any, address_2: Any) -> str:
    line_1, line_2 = _text(address_1), _text(address_2)
    if line_1 and line_2:
        return f"{line_1}, {line_2}"
    return line_1 or line_2


def _meta(meta_data: Any) -> dict:
    if not isinstance(meta_data, list):
        return {}
    meta: dict = {}
    for entry in meta_data:
        if isinstance(entry, dict):
            key = entry.get("key")
            if isinstance(key, str) and key not in meta:
                meta[key] = entry.get("value")
    return meta


def _show(value: Any) -> str:
    """A value for an error message: repr, cut short so a huge field cannot flood the logs."""
    shown = repr(value)
    return shown if len(shown) <= 120 else shown[:117] + "..."
