"""People in canonical form; one pending request per call (approval links); repeat lookups.

Issue 11, defect 5: people were stored as typed, so ``Alice`` could approve what ``alice``
asked for, and held roles apart from her. Charter now stores people in one canonical form
(``charter.identity.names``: NFKC, trimmed, case-folded); this migration brings what is
already stored to that form, in current-state tables only:

- ``role_grants.user`` and ``granted_by``; grants that become duplicates (``Alice`` and
  ``alice`` holding one role in one tenant) merge into the earliest, which keeps its author;
- ``approval_requests.requested_by`` and ``decided_by``;
- ``runs.user``, ``run_labels.labeled_by``, ``kill_switches.killed_by`` and
  ``deployments.updated_by``.

Records are never rewritten: the audit log (append-only and hash-chained), the governance
changelog, releases and promotions keep the names as they were given; code that compares a
person with one of those canonicalises the stored name first (promotion: a release's author).

Defect 8: ``approval_links`` remembers a filing that waits on an identical pending request
of its run, and two indexes serve the lookups of one call and of one effect.

The canonical form is computed here by a copy frozen with this migration: a later change to
the rules must come with its own migration. Names stored without validation (who decided or
labelled something, before this) may not be valid identities; they are folded the same way
and kept.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import unicodedata
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# (table, column) holding a person, in current-state tables.
_PEOPLE = (
    ("approval_requests", "requested_by"),
    ("approval_requests", "decided_by"),
    ("runs", "user"),
    ("run_labels", "labeled_by"),
    ("kill_switches", "killed_by"),
    ("deployments", "updated_by"),
    ("role_grants", "granted_by"),
)


def _canonical(name: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).strip().casefold())


def upgrade() -> None:
    op.create_table(
        "approval_links",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Text, nullable=False),
        sa.Column("linked_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_approval_requests_call", "approval_requests", ["run_id", "tool", "arguments_sha256"]
    )
    op.create_index(
        "ix_approval_requests_effect", "approval_requests", ["tenant", "tool", "arguments_sha256"]
    )
    connection = op.get_bind()
    _merge_role_grants(connection)
    for table_name, column_name in _PEOPLE:
        _canonicalise(connection, table_name, column_name)


def _canonicalise(connection: Any, table_name: str, column_name: str) -> None:
    """Rewrite each distinct stored spelling once (an UPDATE per spelling, not per row)."""
    column = sa.column(column_name, sa.Text)
    table = sa.table(table_name, column)
    spellings = connection.execute(sa.select(column).distinct().where(column.isnot(None)))
    for (spelling,) in spellings.all():
        canonical = _canonical(spelling)
        if canonical != spelling:
            connection.execute(
                sa.update(table).where(column == spelling).values({column_name: canonical})
            )


def _merge_role_grants(connection: Any) -> None:
    """Give each (tenant, person, role) one grant: the earliest, its author canonicalised."""
    tenant, user, role = (sa.column(name, sa.Text) for name in ("tenant", "user", "role"))
    granted_by = sa.column("granted_by", sa.Text)
    granted_at = sa.column("granted_at", sa.DateTime(timezone=True))
    grants = sa.table("role_grants", tenant, user, role, granted_by, granted_at)
    rows = connection.execute(
        sa.select(tenant, user, role, granted_by, granted_at).order_by(
            granted_at, tenant, user, role
        )
    ).all()
    kept: dict[tuple[str, str, str], Any] = {}
    for row in rows:
        key = (row.tenant, _canonical(row.user), row.role)
        if key in kept:
            continue  # a later grant of a role the person already held: merged away
        kept[key] = row
    for row in rows:
        key = (row.tenant, _canonical(row.user), row.role)
        if kept[key] is row and row.user == key[1]:
            continue  # already canonical and the one kept
        connection.execute(
            sa.delete(grants).where(
                (tenant == row.tenant) & (user == row.user) & (role == row.role)
            )
        )
    for key, row in kept.items():
        if row.user != key[1]:
            connection.execute(
                sa.insert(grants).values(
                    tenant=key[0],
                    user=key[1],
                    role=key[2],
                    granted_by=row.granted_by,
                    granted_at=row.granted_at,
                )
            )


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
