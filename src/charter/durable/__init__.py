"""Durable runs on DBOS: crash-safe, queued across workers, parked durably for approvals.

- ``engine``: this process's DBOS instance and the ``charter_run`` workflow.
- ``queues``: one queue per charter, partitioned by tenant, with the charter's limits.
- ``control``: enqueue, deliver decisions, wake killed runs, read status, from any process.
- ``system_db``: where DBOS keeps its records, and the JSON-only client.
"""

from charter.durable.control import (
    DurableControl,
    RunStatus,
    enqueue_run,
    notify_decision,
    run_status,
    stop_parked_runs,
)
from charter.durable.engine import WORKFLOW_VERSION, DurableEngine, RunSpec
from charter.durable.system_db import migrate_dbos, system_database

__all__ = [
    "WORKFLOW_VERSION",
    "DurableControl",
    "DurableEngine",
    "RunSpec",
    "RunStatus",
    "enqueue_run",
    "migrate_dbos",
    "notify_decision",
    "run_status",
    "stop_parked_runs",
    "system_database",
]
