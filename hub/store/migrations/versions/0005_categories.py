"""categories and segments: purchase amounts on events, one categories row per contact,
segment membership

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events') as batch:
        batch.add_column(sa.Column('amount', sa.Float(), nullable=True))
        batch.add_column(sa.Column('currency', sa.String(length=3), nullable=True))
    op.create_index(op.f('ix_events_contact_id_type_at'), 'events', ['contact_id', 'type', 'at'], unique=False)
    op.create_table('categories',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.String(length=32), nullable=True),
    sa.Column('temperature', sa.String(length=16), nullable=True),
    sa.Column('rfm_r', sa.Integer(), nullable=True),
    sa.Column('rfm_f', sa.Integer(), nullable=True),
    sa.Column('rfm_m', sa.Integer(), nullable=True),
    sa.Column('rfm', sa.String(length=3), nullable=True),
    sa.Column('rfm_segment', sa.String(length=32), nullable=True),
    sa.Column('abc', sa.String(length=1), nullable=True),
    sa.Column('region', sa.Text(), nullable=True),
    sa.Column('activity', sa.Text(), nullable=True),
    sa.Column('orders', sa.Integer(), nullable=False),
    sa.Column('revenue', sa.Float(), nullable=False),
    sa.Column('first_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_order_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('contact_id', name=op.f('pk_categories'))
    )
    op.create_index(op.f('ix_categories_next_at'), 'categories', ['next_at'], unique=False)
    op.create_table('segment_members',
    sa.Column('segment', sa.String(length=64), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('segment', 'contact_id', name=op.f('pk_segment_members'))
    )
    op.create_index(op.f('ix_segment_members_contact_id'), 'segment_members', ['contact_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_segment_members_contact_id'), table_name='segment_members')
    op.drop_table('segment_members')
    op.drop_index(op.f('ix_categories_next_at'), table_name='categories')
    op.drop_table('categories')
    op.drop_index(op.f('ix_events_contact_id_type_at'), table_name='events')
    with op.batch_alter_table('events') as batch:
        batch.drop_column('currency')
        batch.drop_column('amount')
