"""marks: the targets a batch run writes before it saves, in a table of their own

They were outbox rows, which the next save of the key rewrote: a run that died
after its catch-up saved such a key, and before it checked the target, lost the
mark. Each mark names its run: a run's save clears its own marks, never those a
dead run left. Rows left in the outbox by an older version are dropped by the next save
of their key, as before.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "marks",
        sa.Column("pipeline", sa.String(length=128), primary_key=True),
        sa.Column("entity", sa.String(length=128), primary_key=True),
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("endpoint", sa.String(length=128), primary_key=True),
        sa.Column("run_id", sa.Integer(), primary_key=True, autoincrement=False),
    )


def downgrade() -> None:
    op.drop_table("marks")
