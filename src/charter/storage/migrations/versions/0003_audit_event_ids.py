"""Audit event ids: an optional ``event_id`` per record, unique when set.

A durable step that crashes after appending its audit record, but before its checkpoint, runs
again; appending the same ``event_id`` again then returns the stored record instead of writing
a second one. The unique index is partial (``WHERE event_id IS NOT NULL``): records without an
event id, which may repeat, take no index entry, so appending them costs what it did before.
Adding a column is DDL, so the append-only triggers on ``audit_records`` stay as they are.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("audit_records", sa.Column("event_id", sa.Text, nullable=True))
    # Partial: rows without an event id (most of them) cost no index entry at all.
    op.create_index(
        "ux_audit_records_event_id",
        "audit_records",
        ["event_id"],
        unique=True,
        sqlite_where=sa.text("event_id IS NOT NULL"),
        postgresql_where=sa.text("event_id IS NOT NULL"),
    )


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
