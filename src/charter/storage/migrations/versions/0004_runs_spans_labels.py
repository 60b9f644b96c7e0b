"""Observability: runs as the inspector and SLOs read them, spans, and human labels.

0001 created ``runs`` and ``run_effects`` ahead of use; nothing ever wrote them (durable runs
keep their effects in DBOS step records). They are replaced: ``runs`` gets the columns the run
inspector, cost reports and SLOs read, ``run_effects`` goes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("run_effects")
    op.drop_index("ix_runs_tenant_created", table_name="runs")
    op.drop_table("runs")
    op.create_table(
        "runs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("charter_name", sa.Text, nullable=False),
        sa.Column("charter_sha256", sa.Text, nullable=False),
        sa.Column("tenant", sa.Text, nullable=False),
        sa.Column("user", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Text),
        sa.Column("elapsed_seconds", sa.Float),
        sa.Column("tool_calls", sa.Integer, nullable=False),
        sa.Column("tool_errors", sa.Integer, nullable=False),
        sa.Column("denied_calls", sa.Integer, nullable=False),
        sa.Column("model_calls", sa.Integer, nullable=False),
        sa.Column("total_tokens", sa.Integer, nullable=False),
        sa.Column("cost_usd", sa.Text, nullable=False),
        sa.Column("tool_fees_usd", sa.Text, nullable=False),
        sa.Column("totals", sa.Text),
    )
    op.create_index("ix_runs_charter_started", "runs", ["charter_name", "started_at"])
    op.create_index("ix_runs_tenant_started", "runs", ["tenant", "started_at"])
    op.create_index("ix_runs_started", "runs", ["started_at"])
    op.create_table(
        "spans",
        sa.Column("span_id", sa.Text, primary_key=True),
        sa.Column("trace_id", sa.Text, nullable=False),
        sa.Column("parent_span_id", sa.Text),
        sa.Column("run_id", sa.Text),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("start_ns", sa.BigInteger, nullable=False),
        sa.Column("end_ns", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("status_message", sa.Text, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
    )
    op.create_index("ix_spans_run", "spans", ["run_id"])
    op.create_index("ix_spans_trace", "spans", ["trace_id"])
    op.create_index("ix_spans_start", "spans", ["start_ns"])
    op.create_table(
        "run_labels",
        sa.Column("run_id", sa.Text, primary_key=True),
        sa.Column("label", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("labeled_by", sa.Text, nullable=False),
        sa.Column("labeled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
