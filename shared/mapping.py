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
from typing import Any

from shared.errors import InvalidCustomer

# The tags this sync computes; any other tag on a row belongs to another system and is kept.
SYNC_OWNED_TAGS: frozenset[str] = frozenset({"woocommerce", "high-value", "prospect", "active"})

PAID_STATUSES: frozenset[str] = frozenset({"completed", "processing"})
# The only order keys map_customer reads: ask the store for just these.
ORDER_FIELDS: tuple[str, ...] = ("id", "status", "total", "refunds", "date_created_gmt")
ACTIVE_WINDOW = timedelta(days=30)

CENT = Decimal("0.01")
_ZERO = Decimal(0)
# numeric(14,2): twelve digits before the point.
_LIFETIME_VALUE_LIMIT = Decimal("1E12")

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


def map_customer(customer: dict, orders: list[dict], *, store_url: str, now: datetime) -> CustomerRow:
    """Map a WooCommerce customer and all of its orders (every page) to a customer row.

    `now` (tz-aware) decides the `active` tag. Raises `InvalidCustomer` (permanent) with a message
    naming the customer and the problem when the data cannot become a row.
    """
    if now.tzinfo is None:
        raise ValueError("map_customer needs a timezone-aware `now`")
    if not isinstance(customer, dict):
        raise InvalidCustomer(f"customer data is a {type(customer).__name__}, not a JSON object")
    woo_id = customer.get("id")
    if type(woo_id) is not int or woo_id < 1:
        raise InvalidCustomer(f"customer data has no valid WooCommerce id: {_show(woo_id)}")

    email = _normalize_email(customer.get("email"), woo_id)
    billing = _section(customer.get("billing"))
    shipping = _section(customer.get("shipping"))

    name = _join_name(customer.get("first_name"), customer.get("last_name"))
    if not name:
        name = _join_name(billing.get("first_name"), billing.get("last_name")) or email

    lifetime_value = _ZERO
    completed_orders = 0
    earliest: datetime | None = None
    latest: datetime | None = None
    distinct_orders = _distinct_orders(orders, woo_id)
    for order in distinct_orders:
        status = order.get("status")
        if status in PAID_STATUSES:
            if status == "completed":
                completed_orders += 1
            lifetime_value += _money(order.get("total"), woo_id, order, "total")
            for refund in order.get("refunds") or ():
                refund_total = refund.get("total") if isinstance(refund, dict) else refund
                lifetime_value -= abs(_money(refund_total, woo_id, order, "refund total"))
        created = order.get("date_created_gmt")
        if created:
            when = _naive_utc(created, woo_id, order)
            if earliest is None or when < earliest:
                earliest = when
            if latest is None or when > latest:
                latest = when
    lifetime_value = lifetime_value.quantize(CENT, rounding=ROUND_HALF_UP)
    if abs(lifetime_value) >= _LIFETIME_VALUE_LIMIT:
        raise InvalidCustomer(
            f"customer {woo_id} has a lifetime value of {lifetime_value}, more than numeric(14,2) holds"
        )

    if earliest is None or latest is None:
        customer_created = customer.get("date_created_gmt")
        if customer_created:
            earliest = latest = _naive_utc(customer_created, woo_id, None).replace(tzinfo=UTC)
        has_recent_order = False
    else:
        # Compared naive (all UTC) in the loop; made aware once here: replace() is the slow part.
        earliest, latest = earliest.replace(tzinfo=UTC), latest.replace(tzinfo=UTC)
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
            "total_orders": len(distinct_orders),
            "completed_orders": completed_orders,
            "meta": _meta(customer.get("meta_data")),
        },
        tags=sync_tags(completed_orders, has_recent_order),
        woo_customer_id=woo_id,
        store_url=store_url,
    )


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


def _money(value: Any, woo_id: int, order: dict, field: str) -> Decimal:
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except InvalidOperation:
            amount = None
        if amount is not None and amount.is_finite():
            return amount
    elif type(value) is int:
        return Decimal(value)
    elif type(value) is float and math.isfinite(value):
        return Decimal(repr(value))  # the decimal the JSON text said, not the binary float
    raise InvalidCustomer(
        f"customer {woo_id} order {_show(order.get('id'))} has an invalid {field}: {_show(value)}"
    )


def _naive_utc(value: Any, woo_id: int, order: dict | None) -> datetime:
    """A `*_gmt` date as a naive datetime in UTC (naive is how WooCommerce sends it)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        where = f"order {_show(order.get('id'))}" if order is not None else "record"
        raise InvalidCustomer(
            f"customer {woo_id} {where} has an invalid date_created_gmt: {_show(value)}"
        ) from None
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
