"""entity_columns: what each entity synchronised at its last run (sync/columns.py)

A column taken into an entity by an edit of the pipeline file (out of `exclude:`,
into `include:`) was never copied for the rows not edited since, and nothing said
so. Each run now keeps the columns it synchronises and those its sources' tables
hold, and stops on a column synchronised now that a source's table held before.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "entity_columns",
        sa.Column("pipeline", sa.String(length=128), primary_key=True),
        sa.Column("entity", sa.String(length=128), primary_key=True),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("entity_columns")
