"""Governance: releases, promotions, deployments (traffic per environment), their history.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("charter_name", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("author", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("bundle", sa.Text, nullable=False),
        sa.UniqueConstraint("charter_name", "version", name="uq_releases_charter_version"),
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("release_id", sa.Text, nullable=False),
        sa.Column("charter_name", sa.Text, nullable=False),
        sa.Column("environment", sa.Text, nullable=False),
        sa.Column("promoted_by", sa.Text, nullable=False),
        sa.Column("promoted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.UniqueConstraint("release_id", "environment", name="uq_promotions_release_env"),
    )
    op.create_table(
        "deployments",
        sa.Column("charter_name", sa.Text, primary_key=True),
        sa.Column("environment", sa.Text, primary_key=True),
        sa.Column("weights", sa.Text, nullable=False),
        sa.Column("stable_release", sa.Text, nullable=False),
        sa.Column("candidate_release", sa.Text),
        sa.Column("stage", sa.Integer, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
    )
    op.create_table(
        "governance_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("charter_name", sa.Text, nullable=False),
        sa.Column("environment", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("release_id", sa.Text),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_governance_events_charter_at", "governance_events", ["charter_name", "at"])


def downgrade() -> None:
    raise NotImplementedError("Charter's migrations go forward only; restore a backup instead")
