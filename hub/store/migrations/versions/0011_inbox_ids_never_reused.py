"""inbox ids are never given twice on SQLite (AUTOINCREMENT): a webhook connector's cursor
is the last inbox id it read, so a row given the id of a deleted newest row was never read

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return  # a PostgreSQL sequence never gives an id twice
    with op.batch_alter_table('inbox', recreate='always', table_kwargs={'sqlite_autoincrement': True}):
        pass
    # the largest id given so far: the copied rows', or a cursor past them (its newest rows
    # deleted since); only webhook connectors keep a plain number as their cursor
    top = bind.execute(sa.text("SELECT COALESCE(MAX(id), 0) FROM inbox")).scalar_one()
    for (value,) in bind.execute(sa.text("SELECT value FROM cursors WHERE stream = 'records'")):
        if value and value.isdigit() and int(value) < 2**53:
            top = max(top, int(value))
    bind.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'inbox'"))
    if top:
        bind.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('inbox', :top)"), {"top": top})


def downgrade() -> None:
    if op.get_bind().dialect.name != 'sqlite':
        return
    with op.batch_alter_table('inbox', recreate='always', table_kwargs={'sqlite_autoincrement': False}):
        pass
