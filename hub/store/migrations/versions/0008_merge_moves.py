"""merge_moves: the events, client ids and consents a merge moved, for hub split

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merge_moves',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=False),
    sa.Column('survivor', sa.Integer(), nullable=False),
    sa.Column('loser', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('item', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_merge_moves'))
    )
    op.create_index(op.f('ix_merge_moves_survivor_loser'), 'merge_moves', ['survivor', 'loser'], unique=False)
    op.create_index(op.f('ix_merge_moves_loser'), 'merge_moves', ['loser'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_merge_moves_loser'), table_name='merge_moves')
    op.drop_index(op.f('ix_merge_moves_survivor_loser'), table_name='merge_moves')
    op.drop_table('merge_moves')
