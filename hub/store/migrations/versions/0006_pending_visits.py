"""pending_visits: web analytics visits waiting for a contact with their client id

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_visits',
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.Column('external_id', sa.String(length=512), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payload', sa.Text(), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('connector', 'external_id', name=op.f('pk_pending_visits'))
    )
    op.create_index(op.f('ix_pending_visits_kind_value'), 'pending_visits', ['kind', 'value'], unique=False)
    op.create_index(op.f('ix_pending_visits_at'), 'pending_visits', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_pending_visits_at'), table_name='pending_visits')
    op.drop_index(op.f('ix_pending_visits_kind_value'), table_name='pending_visits')
    op.drop_table('pending_visits')
