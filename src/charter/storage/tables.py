"""Charter's tables, as SQLAlchemy Core metadata.

The migrations in ``storage/migrations`` create exactly these; a test compares the two so
they cannot drift. Timestamps are timezone-aware; JSON is stored as text (canonical JSON where
it is hashed), so SQLite and Postgres hold byte-identical values.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "AUDIT_COLUMNS",
    "approval_requests",
    "audit_heads",
    "audit_records",
    "kill_switches",
    "metadata",
    "role_grants",
    "run_effects",
    "runs",
]

metadata = MetaData()

# The audit log (see observability/audit.py): one row per record, chained per tenant.
AUDIT_COLUMNS = (
    "kind", "at", "user", "service_principal", "environment", "run_id", "charter_name",
    "charter_sha256", "model", "prompt_sha256", "tool", "arguments_sha256", "verdict",
    "reason", "rule_id", "stage", "outcome", "trace_id", "span_id", "detail",
    "approval_request_id", "event_id",
)  # fmt: skip
_NULLABLE_AUDIT = {"tool", "arguments_sha256", "verdict", "rule_id", "stage",
                   "approval_request_id", "event_id"}  # fmt: skip

audit_records = Table(
    "audit_records",
    metadata,
    Column(
        "row_id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("tenant", Text, nullable=False),
    Column("position", BigInteger, nullable=False),
    *(Column(name, Text, nullable=name in _NULLABLE_AUDIT) for name in AUDIT_COLUMNS),
    Column("payload", Text, nullable=False),
    Column("prev_hash", Text, nullable=False),
    Column("hash", Text, nullable=False),
    UniqueConstraint("tenant", "position", name="uq_audit_records_tenant_position"),
)
Index("ix_audit_records_run_id", audit_records.c.run_id)
# An append retried with the same event id returns the stored record. Partial, so records
# without an event id (which may repeat) take no index entry.
Index(
    "ux_audit_records_event_id",
    audit_records.c.event_id,
    unique=True,
    sqlite_where=audit_records.c.event_id.isnot(None),
    postgresql_where=audit_records.c.event_id.isnot(None),
)

audit_heads = Table(
    "audit_heads",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("position", BigInteger, nullable=False),
    Column("hash", Text, nullable=False),
)

# Kill switches in force; reviving deletes the row (the audit log keeps the history).
kill_switches = Table(
    "kill_switches",
    metadata,
    Column("scope", Text, primary_key=True),
    Column("reason", Text, nullable=False),
    Column("killed_by", Text, nullable=False),
    Column("killed_at", DateTime(timezone=True), nullable=False),
)

# Approval requests and their decisions; a request is decided once.
approval_requests = Table(
    "approval_requests",
    metadata,
    Column("id", Text, primary_key=True),
    Column("run_id", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("requested_by", Text, nullable=False),
    Column("charter_name", Text, nullable=False),
    Column("tool", Text, nullable=False),
    Column("arguments", Text, nullable=False),  # canonical JSON, secrets redacted
    Column("arguments_sha256", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("rule_id", Text, nullable=False),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("status", Text, nullable=False),  # pending | approved | rejected | expired | ...
    Column("decided_by", Text),
    Column("decided_at", DateTime(timezone=True)),
    Column("decision_reason", Text),
)
Index("ix_approval_requests_tenant_status", approval_requests.c.tenant,
      approval_requests.c.status)  # fmt: skip

# One row per run: who, what, where, and how it ended.
runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("charter_name", Text, nullable=False),
    Column("charter_sha256", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("user", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("input_sha256", Text, nullable=False),
    Column("trace_id", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("totals", Text, nullable=False, default="{}"),
)
Index("ix_runs_tenant_created", runs.c.tenant, runs.c.created_at)

# Side effects of a run: deferred (outbox) and executed writes that may need compensating.
run_effects = Table(
    "run_effects",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("seq", Integer, primary_key=True),
    Column("tool", Text, nullable=False),
    Column("effect", Text, nullable=False),  # write | irreversible
    Column("arguments", Text, nullable=False),
    Column("idempotency_key", Text, nullable=False),
    Column("status", Text, nullable=False),  # deferred | executed | discarded | compensated
    Column("compensation", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# Roles users hold per tenant, beyond what a run's caller asserts (e.g. ``approver``).
role_grants = Table(
    "role_grants",
    metadata,
    Column("tenant", Text, primary_key=True),
    Column("user", Text, primary_key=True),
    Column("role", Text, primary_key=True),
    Column("granted_by", Text, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
)
