"""pending_names: full names that join on the name alone, decided once a sync has read all sources

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pending_names',
    sa.Column('value', sa.String(length=320), nullable=False),
    sa.Column('connector', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('value', name=op.f('pk_pending_names'))
    )


def downgrade() -> None:
    op.drop_table('pending_names')
