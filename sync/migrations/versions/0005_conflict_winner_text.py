"""conflicts.winner as text: a column-by-column decision names every column's side

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conflicts") as batch:
        batch.alter_column("winner", type_=sa.Text(), existing_type=sa.String(length=16),
                           existing_nullable=True)
        batch.alter_column("decided_by", type_=sa.Text(), existing_type=sa.String(length=128),
                           existing_nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("conflicts") as batch:
        batch.alter_column("winner", type_=sa.String(length=16), existing_type=sa.Text())
        batch.alter_column("decided_by", type_=sa.String(length=128), existing_type=sa.Text())
