"""quarantine: changes stopped by the data-quality gate and stewards' decisions

Revision ID: 0004
Revises: 0003

(Planned as 0002; 0003 landed first on 0001, so this one follows it to keep
a single head for ``alembic upgrade head``.)
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("pipeline", sa.String(length=128), nullable=False),
        sa.Column("entity", sa.String(length=128), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("endpoint", sa.String(length=128), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("failures", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("run_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("pipeline", "entity", "key", "endpoint", "position",
                            name="uq_quarantine_change"),
    )
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.create_index("ix_quarantine_key", ["pipeline", "entity", "key"], unique=False)
        batch_op.create_index("ix_quarantine_status", ["pipeline", "status"], unique=False)
        batch_op.create_index("ix_quarantine_open", ["pipeline", "entity", "status"],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table("quarantine", schema=None) as batch_op:
        batch_op.drop_index("ix_quarantine_open")
        batch_op.drop_index("ix_quarantine_status")
        batch_op.drop_index("ix_quarantine_key")
    op.drop_table("quarantine")
