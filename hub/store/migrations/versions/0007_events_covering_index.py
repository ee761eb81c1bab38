"""events: the (contact_id, type, at) index also holds amount and currency, so the
categories pass reads a contact's purchases from the index alone

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index(op.f('ix_events_contact_id_type_at'), table_name='events')
    op.create_index(op.f('ix_events_contact_id_type_at_amount_currency'), 'events',
                    ['contact_id', 'type', 'at', 'amount', 'currency'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_events_contact_id_type_at_amount_currency'), table_name='events')
    op.create_index(op.f('ix_events_contact_id_type_at'), 'events', ['contact_id', 'type', 'at'], unique=False)
