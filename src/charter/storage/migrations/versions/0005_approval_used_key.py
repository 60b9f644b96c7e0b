"""Approvals remember which call used them (``used_key``, the call's idempotency key).

A durable step killed after using an approval and before recording the step runs again; it
must get the same approval back, not find it spent and park the run again.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("approval_requests", sa.Column("used_key", sa.Text, nullable=True))


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
