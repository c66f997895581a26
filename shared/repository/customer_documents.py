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
    """The mirrored documents of these customers of the store, by id. Absent: customers never
    seen, and those whose row says the store deleted them (`metadata.woo_deleted`, the webhooks):
    the store is asked for those again, and does not list a deleted customer."""
    if not woo_customer_ids:
        return {}
    rows = await conn.fetch(
        """
        SELECT d.woo_customer_id, d.document
          FROM woo_customer_document d
          JOIN woo_store s ON s.id = d.store_id
         WHERE d.store_id = $1 AND d.woo_customer_id = ANY($2::bigint[])
           AND NOT EXISTS (SELECT 1 FROM customer c
                            WHERE c.org_id = d.org_id AND c.woo_store_url = s.url
                              AND c.woo_customer_id = d.woo_customer_id AND c.metadata ? 'woo_deleted')
        """,
        store_id, list(woo_customer_ids))
    return {row["woo_customer_id"]: row["document"] for row in rows}
