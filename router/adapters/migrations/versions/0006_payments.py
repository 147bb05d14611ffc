"""patient payments, card on file, plans (issue 7)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('gateway_events',
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_gateway_events'))
    )
    op.create_table('patient_payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('method', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('applied_cents', sa.BigInteger(), nullable=False),
    sa.Column('received_on', sa.Date(), nullable=False),
    sa.Column('reference', sa.String(length=80), nullable=False),
    sa.Column('check_number', sa.String(length=40), nullable=False),
    sa.Column('bank', sa.String(length=120), nullable=False),
    sa.Column('gateway_payment_ref', sa.String(length=255), nullable=True),
    sa.Column('wallet', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('refunded_cents', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('disputed', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_patient_payments_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patient_payments')),
    sa.UniqueConstraint('gateway_payment_ref', name=op.f('uq_patient_payments_gateway_payment_ref')),
    sa.UniqueConstraint('source_id', name=op.f('uq_patient_payments_source_id'))
    )
    op.create_index(op.f('ix_patient_payments_account_id'), 'patient_payments', ['account_id'], unique=False)
    op.create_table('payment_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('granted_by', sa.String(length=200), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('channel', sa.String(length=20), nullable=False),
    sa.Column('scope', sa.String(length=20), nullable=False),
    sa.Column('text_version', sa.String(length=40), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_by', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_consents_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_consents')),
    sa.UniqueConstraint('source_id', name=op.f('uq_payment_consents_source_id'))
    )
    op.create_index(op.f('ix_payment_consents_account_id'), 'payment_consents', ['account_id'], unique=False)
    op.create_table('payment_customers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('customer_ref', sa.String(length=255), nullable=False),
    sa.Column('hub_ref', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_customers_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_customers')),
    sa.UniqueConstraint('account_id', name=op.f('uq_payment_customers_account_id')),
    sa.UniqueConstraint('customer_ref', name=op.f('uq_payment_customers_customer_ref')),
    sa.UniqueConstraint('hub_ref', name=op.f('uq_payment_customers_hub_ref'))
    )
    op.create_table('payment_methods',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('customer_ref', sa.String(length=255), nullable=False),
    sa.Column('payment_method_ref', sa.String(length=255), nullable=False),
    sa.Column('brand', sa.String(length=20), nullable=False),
    sa.Column('last4', sa.String(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('wallet', sa.String(length=20), nullable=False),
    sa.Column('consent_id', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_methods_account_id_accounts')),
    sa.ForeignKeyConstraint(['consent_id'], ['payment_consents.id'], name=op.f('fk_payment_methods_consent_id_payment_consents')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_methods')),
    sa.UniqueConstraint('payment_method_ref', name=op.f('uq_payment_methods_payment_method_ref'))
    )
    op.create_index(op.f('ix_payment_methods_account_id'), 'payment_methods', ['account_id'], unique=False)
    op.create_table('payment_refunds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('refund_ref', sa.String(length=255), nullable=True),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('refunded_on', sa.Date(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['payment_id'], ['patient_payments.id'], name=op.f('fk_payment_refunds_payment_id_patient_payments')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_refunds')),
    sa.UniqueConstraint('refund_ref', name=op.f('uq_payment_refunds_refund_ref')),
    sa.UniqueConstraint('source_id', name=op.f('uq_payment_refunds_source_id'))
    )
    op.create_index(op.f('ix_payment_refunds_payment_id'), 'payment_refunds', ['payment_id'], unique=False)
    op.create_table('payment_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_ref', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('total_cents', sa.BigInteger(), nullable=False),
    sa.Column('installments', sa.Integer(), nullable=False),
    sa.Column('frequency', sa.String(length=10), nullable=False),
    sa.Column('first_due', sa.Date(), nullable=False),
    sa.Column('payment_method_id', sa.Integer(), nullable=False),
    sa.Column('consent_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_payment_plans_account_id_accounts')),
    sa.ForeignKeyConstraint(['consent_id'], ['payment_consents.id'], name=op.f('fk_payment_plans_consent_id_payment_consents')),
    sa.ForeignKeyConstraint(['payment_method_id'], ['payment_methods.id'], name=op.f('fk_payment_plans_payment_method_id_payment_methods')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_plans')),
    sa.UniqueConstraint('plan_ref', name=op.f('uq_payment_plans_plan_ref')),
    sa.UniqueConstraint('source_id', name=op.f('uq_payment_plans_source_id'))
    )
    op.create_index(op.f('ix_payment_plans_account_id'), 'payment_plans', ['account_id'], unique=False)
    op.create_index(op.f('ix_payment_plans_status'), 'payment_plans', ['status'], unique=False)
    op.create_table('plan_installments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('due_date', sa.Date(), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_on', sa.Date(), nullable=False),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('payment_ref', sa.String(length=255), nullable=False),
    sa.Column('last_decline', sa.String(length=60), nullable=False),
    sa.ForeignKeyConstraint(['plan_id'], ['payment_plans.id'], name=op.f('fk_plan_installments_plan_id_payment_plans')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_installments'))
    )
    op.create_index('ix_plan_installments_status_next', 'plan_installments', ['status', 'next_attempt_on'], unique=False)
    op.create_index('uq_plan_installments_plan_seq', 'plan_installments', ['plan_id', 'seq'], unique=True)


def downgrade() -> None:
    op.drop_index('uq_plan_installments_plan_seq', table_name='plan_installments')
    op.drop_index('ix_plan_installments_status_next', table_name='plan_installments')
    op.drop_table('plan_installments')
    op.drop_index(op.f('ix_payment_plans_status'), table_name='payment_plans')
    op.drop_index(op.f('ix_payment_plans_account_id'), table_name='payment_plans')
    op.drop_table('payment_plans')
    op.drop_index(op.f('ix_payment_refunds_payment_id'), table_name='payment_refunds')
    op.drop_table('payment_refunds')
    op.drop_index(op.f('ix_payment_methods_account_id'), table_name='payment_methods')
    op.drop_table('payment_methods')
    op.drop_table('payment_customers')
    op.drop_index(op.f('ix_payment_consents_account_id'), table_name='payment_consents')
    op.drop_table('payment_consents')
    op.drop_index(op.f('ix_patient_payments_account_id'), table_name='patient_payments')
    op.drop_table('patient_payments')
    op.drop_table('gateway_events')
