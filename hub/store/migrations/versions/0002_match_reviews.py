"""match reviews: pairs waiting for a decision and decisions taken

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('match_reviews',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('contact_a', sa.Integer(), nullable=False),
    sa.Column('contact_b', sa.Integer(), nullable=False),
    sa.Column('probability', sa.Float(), nullable=True),
    sa.Column('evidence', sa.Text(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('run_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sa.String(length=100), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_match_reviews')),
    sa.UniqueConstraint('contact_a', 'contact_b', name=op.f('uq_match_reviews_contact_a_contact_b'))
    )
    with op.batch_alter_table('match_reviews', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_match_reviews_contact_b'), ['contact_b'], unique=False)
        batch_op.create_index(batch_op.f('ix_match_reviews_status'), ['status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('match_reviews', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_match_reviews_status'))
        batch_op.drop_index(batch_op.f('ix_match_reviews_contact_b'))
    op.drop_table('match_reviews')
