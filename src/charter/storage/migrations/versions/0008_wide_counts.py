"""Counts that grow without bound are 64-bit integers on Postgres.

Issue 11 (a sibling of defect 2): ``runs.total_tokens`` was a 32-bit INTEGER on Postgres,
and a run with no token limit may use more than 2**31 - 1 tokens; Postgres then refused the
write of its end (``integer out of range``), so the run stayed ``running`` in every listing
and was left out of cost reports and SLOs. Widened to BIGINT:

- ``runs``: ``tool_calls``, ``tool_errors``, ``denied_calls``, ``model_calls``,
  ``total_tokens`` (a run's counts, none bounded when its charter sets no limit);
- ``deployments.generation`` (bumped by every change, for as long as the deployment lives);
- ``governance_events.id`` and the sequence numbering it (every governance action, for as
  long as the database lives).

Left as they are, because they cannot grow past their bound: ``releases.version`` (a
release is named ``vN`` with at most 9 digits) and ``deployments.stage`` (an index into a
rollout plan). Audit positions and span times were 64-bit from the start.

SQLite's INTEGER holds 64 bits already (and an INTEGER PRIMARY KEY must stay spelled so to
be the rowid): nothing changes there but the revision. On Postgres each ALTER rewrites its
table under an exclusive lock; on a large ``runs`` table, run ``charter db upgrade`` in a
quiet moment.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_WIDENED = {
    "runs": ("tool_calls", "tool_errors", "denied_calls", "model_calls", "total_tokens"),
    "deployments": ("generation",),
    "governance_events": ("id",),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, columns in _WIDENED.items():
        with op.batch_alter_table(table) as batch:
            for column in columns:
                batch.alter_column(
                    column,
                    type_=sa.BigInteger(),
                    existing_type=sa.Integer(),
                    existing_nullable=False,
                )
    # A serial column's sequence is an INTEGER sequence: it would stop at 2**31 - 1 even in
    # a BIGINT column.
    op.execute("ALTER SEQUENCE IF EXISTS governance_events_id_seq AS BIGINT")


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
