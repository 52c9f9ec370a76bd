"""dead_letters: ids never reused on SQLite (AUTOINCREMENT)

A letter's id names it in logs, in `cdcsync dlq` and in the audit log of a
requeue or drop. SQLite hands out the highest id + 1, so once the newest letter
was requeued the next letter took its id, and the audit entry of the first read
as if it were about the second (a batch run's foreign-key retry requeues and
re-letters within seconds). SQLite's AUTOINCREMENT never gives an id twice; the
table is rebuilt with it, its letters kept (from then on; PostgreSQL's sequence
never gave an id twice).

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("dead_letters", recreate="always",
                              table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("dead_letters", recreate="always",
                              table_kwargs={"sqlite_autoincrement": False}):
        pass
