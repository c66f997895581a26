"""The customer-document mirror (sql/012_customer_documents.sql; docs/contract.md section 10,
"Incremental sweeps"): per store, the latest document of each customer woosync read from it.

`queue_lines.add_lines` writes it in the statement that records a page's lines, so every sync
that reads customers keeps it current at no extra round trip; an incremental sweep reads it for
the customers its changed orders affect, and asks the store only for those it never saw.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID

from shared.repository.sql import Executor


async def documents_of(conn: Executor, store_id: UUID, woo_customer_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The mirrored documents of these customers of the store, by id (customers never seen are absent)."""
    if not woo_customer_ids:
        return {}
    rows = await conn.fetch(
        "SELECT woo_customer_id, document FROM woo_customer_document "
        "WHERE store_id = $1 AND woo_customer_id = ANY($2::bigint[])",
        store_id, list(woo_customer_ids))
    return {row["woo_customer_id"]: row["document"] for row in rows}
