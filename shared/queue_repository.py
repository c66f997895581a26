"""Temporary: the data layer moved to the package shared.repository (one module per concept).
Import from shared.repository.* instead; this module goes away once every importer has moved."""

from shared.repository.activity import ActivityEntry, ActivityRow, append_activity, read_activity  # noqa: F401
from shared.repository.queue_lines import (  # noqa: F401
    ClaimedLine,
    QueueLine,
    RetryLine,
    add_lines,
    cancel_lines_of_cancelled_queues,
    claim_lines,
    draft_lines_of_customers,
    list_lines,
    mark_lines_done,
    mark_lines_failed,
    pending_lines,
    retry_failed_lines,
    return_lines_to_draft,
)
from shared.repository.sql import Executor  # noqa: F401
from shared.repository.stores import StoreCredentialsUnavailable, load_store_credentials, upsert_store  # noqa: F401
from shared.repository.sync_queues import (  # noqa: F401
    QueueStatus,
    cancel_queue,
    delete_finished_queues,
    find_or_create_queue,
    line_counts_by_state_of_unfinished_queues,
    list_queues,
    mark_enumeration_done,
    queue_status,
    record_queue_error,
)
from shared.states import LINE_STATES, QUEUE_STATES, TERMINAL_LINE_STATES, TERMINAL_QUEUE_STATES  # noqa: F401
