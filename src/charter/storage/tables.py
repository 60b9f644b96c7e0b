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
    Float,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "AUDIT_COLUMNS",
    "approval_links",
    "approval_requests",
    "audit_heads",
    "audit_records",
    "deployments",
    "governance_events",
    "kill_switches",
    "metadata",
    "promotions",
    "releases",
    "role_grants",
    "run_labels",
    "runs",
    "spans",
]

metadata = MetaData()

# A count that grows without bound: BIGINT on Postgres (migration 0008); on SQLite INTEGER,
# which holds 64 bits already (and an INTEGER PRIMARY KEY must be spelled so to be the rowid).
_COUNT = BigInteger().with_variant(Integer, "sqlite")

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
    Column("used_key", Text),  # the idempotency key of the call that used the approval
)
Index("ix_approval_requests_tenant_status", approval_requests.c.tenant,
      approval_requests.c.status)  # fmt: skip
# One call of one run (its pending request, its approvals to use) and one effect in a tenant
# (earlier approvals of it: approval_repeats.py).
Index("ix_approval_requests_call", approval_requests.c.run_id, approval_requests.c.tool,
      approval_requests.c.arguments_sha256)  # fmt: skip
Index("ix_approval_requests_effect", approval_requests.c.tenant, approval_requests.c.tool,
      approval_requests.c.arguments_sha256)  # fmt: skip

# A filing of a call that was already pending in its run: it waits on that request instead
# of becoming a second one. Kept so the filing, re-run after a crash, finds the same request.
approval_links = Table(
    "approval_links",
    metadata,
    Column("id", Text, primary_key=True),  # the id the filing was made under
    Column("request_id", Text, nullable=False),  # the pending request it waits on
    Column("linked_at", DateTime(timezone=True), nullable=False),
)

# One row per run: who, what, where, how it ended and what it used (observability/runs.py).
# Written when the run starts and completed when it ends; ``totals`` is what RunFinished
# reported, as JSON. Money is exact decimal text, as everywhere else.
runs = Table(
    "runs",
    metadata,
    Column("id", Text, primary_key=True),
    Column("charter_name", Text, nullable=False),
    Column("charter_sha256", Text, nullable=False),
    Column("tenant", Text, nullable=False),
    Column("user", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("trace_id", Text, nullable=False),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("finished_at", DateTime(timezone=True)),
    Column("outcome", Text, nullable=False),  # "running" until it ends
    Column("reason", Text, nullable=False),
    Column("rule_id", Text),
    Column("elapsed_seconds", Float),  # the run's own clock: approval waits excluded
    # Counts are 64-bit (migration 0008): a run without limits may pass 2**31 tokens.
    Column("tool_calls", _COUNT, nullable=False),
    Column("tool_errors", _COUNT, nullable=False),
    Column("denied_calls", _COUNT, nullable=False),
    Column("model_calls", _COUNT, nullable=False),
    Column("total_tokens", _COUNT, nullable=False),
    Column("cost_usd", Text, nullable=False),  # model cost + tool fees
    Column("tool_fees_usd", Text, nullable=False),
    Column("totals", Text),  # JSON: what RunFinished reported
)
Index("ix_runs_charter_started", runs.c.charter_name, runs.c.started_at)
Index("ix_runs_tenant_started", runs.c.tenant, runs.c.started_at)
Index("ix_runs_started", runs.c.started_at)

# Spans of every run (observability/span_store.py), for the run inspector; prunable.
spans = Table(
    "spans",
    metadata,
    Column("span_id", Text, primary_key=True),
    Column("trace_id", Text, nullable=False),
    Column("parent_span_id", Text),
    Column("run_id", Text),
    Column("name", Text, nullable=False),
    Column("start_ns", BigInteger, nullable=False),
    Column("end_ns", BigInteger, nullable=False),
    Column("status", Text, nullable=False),  # UNSET | OK | ERROR
    Column("status_message", Text, nullable=False),
    Column("attributes", Text, nullable=False),  # JSON object
)
Index("ix_spans_run", spans.c.run_id)
Index("ix_spans_trace", spans.c.trace_id)
Index("ix_spans_start", spans.c.start_ns)

# Human labels on runs, e.g. whether an escalation was right (for escalation accuracy).
run_labels = Table(
    "run_labels",
    metadata,
    Column("run_id", Text, primary_key=True),
    Column("label", Text, primary_key=True),  # e.g. "escalation"
    Column("value", Text, nullable=False),  # e.g. "confirmed" | "overturned"
    Column("labeled_by", Text, nullable=False),
    Column("labeled_at", DateTime(timezone=True), nullable=False),
    Column("note", Text, nullable=False),
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

# Governance (governance/): immutable releases, promotions into environments, what each
# environment serves now, and the history of every governance action.
releases = Table(
    "releases",
    metadata,
    Column("id", Text, primary_key=True),  # the charter's content hash
    Column("charter_name", Text, nullable=False),
    Column("version", Integer, nullable=False),  # v1, v2... per charter, in creation order
    Column("author", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("bundle", Text, nullable=False),  # JSON: the files, to serve and diff it anywhere
    UniqueConstraint("charter_name", "version", name="uq_releases_charter_version"),
)
promotions = Table(
    "promotions",
    metadata,
    Column("id", Text, primary_key=True),
    Column("release_id", Text, nullable=False),
    Column("charter_name", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("promoted_by", Text, nullable=False),
    Column("promoted_at", DateTime(timezone=True), nullable=False),
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON: the eval report that allowed it
    UniqueConstraint("release_id", "environment", name="uq_promotions_release_env"),
)
deployments = Table(
    "deployments",
    metadata,
    Column("charter_name", Text, primary_key=True),
    Column("environment", Text, primary_key=True),
    Column("weights", Text, nullable=False),  # JSON: {release id: percent}, summing to 100
    Column("stable_release", Text, nullable=False),
    Column("candidate_release", Text),
    Column("stage", Integer, nullable=False),  # index into the charter's rollout plan
    Column("generation", _COUNT, nullable=False),  # bumped by every change
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", Text, nullable=False),
)
governance_events = Table(
    "governance_events",
    metadata,
    Column("id", _COUNT, primary_key=True, autoincrement=True),  # 64-bit (0008)
    Column("at", DateTime(timezone=True), nullable=False),
    Column("charter_name", Text, nullable=False),
    Column("environment", Text),
    Column("action", Text, nullable=False),
    Column("actor", Text, nullable=False),
    Column("release_id", Text),
    Column("reason", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON
)
Index("ix_governance_events_charter_at", governance_events.c.charter_name, governance_events.c.at)
