"""notices, pay-by-link, dunning (issue 7)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('notice_contacts',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('email_opt_out', sa.Boolean(), nullable=False),
    sa.Column('sms_opt_out', sa.Boolean(), nullable=False),
    sa.Column('preferred', sa.String(length=8), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notice_contacts_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_notice_contacts'))
    )
    op.create_table('dunning_states',
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('cycle_start', sa.Date(), nullable=False),
    sa.Column('next_step', sa.Integer(), nullable=False),
    sa.Column('last_step_on', sa.Date(), nullable=True),
    sa.Column('suspended_on', sa.Date(), nullable=True),
    sa.Column('last_run_on', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_dunning_states_account_id_accounts')),
    sa.PrimaryKeyConstraint('account_id', name=op.f('pk_dunning_states'))
    )
    with op.batch_alter_table('dunning_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dunning_states_status'), ['status'], unique=False)

    op.create_table('pay_links',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('step_no', sa.Integer(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_pay_links_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_pay_links'))
    )
    with op.batch_alter_table('pay_links', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_pay_links_account_id'), ['account_id'], unique=False)

    op.create_table('notices',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('idempotency_key', sa.String(length=120), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('step_no', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=64), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('link_id', sa.String(length=32), nullable=True),
    sa.Column('provider_ref', sa.String(length=120), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_notices_account_id_accounts')),
    sa.ForeignKeyConstraint(['link_id'], ['pay_links.id'], name=op.f('fk_notices_link_id_pay_links')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_notices')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_notices_idempotency_key'))
    )
    with op.batch_alter_table('notices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notices_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notices_due_on'), ['due_on'], unique=False)
        batch_op.create_index('ix_notices_status_attempts', ['status', 'attempts'], unique=False)

    op.create_table('collection_placements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('cycle', sa.Integer(), nullable=False),
    sa.Column('placed_on', sa.Date(), nullable=False),
    sa.Column('cycle_start', sa.Date(), nullable=False),
    sa.Column('balance_cents', sa.BigInteger(), nullable=False),
    sa.Column('notices_sent', sa.Integer(), nullable=False),
    sa.Column('export_batch', sa.String(length=40), nullable=True),
    sa.Column('exported_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'],
                            name=op.f('fk_collection_placements_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_placements'))
    )
    with op.batch_alter_table('collection_placements', schema=None) as batch_op:
        batch_op.create_index('uq_collection_placements_account_cycle', ['account_id', 'cycle'], unique=True)
        batch_op.create_index(batch_op.f('ix_collection_placements_placed_on'), ['placed_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_collection_placements_export_batch'), ['export_batch'], unique=False)


def downgrade() -> None:
    op.drop_table('collection_placements')
    op.drop_table('notices')
    op.drop_table('pay_links')
    op.drop_table('dunning_states')
    op.drop_table('notice_contacts')
