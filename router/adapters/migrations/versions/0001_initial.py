"""initial schema: accounts, patients, coverages, claims, charge lines, ledger, inbox, outbox

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 02:27:53.281684
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('number', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('number', name=op.f('uq_accounts_number'))
    )
    op.create_table('inbox',
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('source_id', name=op.f('pk_inbox'))
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox'))
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_published_at'), ['published_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_source_id'), ['source_id'], unique=False)

    op.create_table('coverages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('payer_id', sa.String(length=64), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('member_id', sa.String(length=80), nullable=False),
    sa.Column('group_number', sa.String(length=80), nullable=False),
    sa.Column('plan', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_coverages_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coverages'))
    )
    with op.batch_alter_table('coverages', schema=None) as batch_op:
        batch_op.create_index('uq_coverages_account_sequence', ['account_id', 'sequence'], unique=True)

    op.create_table('patients',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('mrn', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('family', sa.String(length=120), nullable=False),
    sa.Column('given', sa.String(length=120), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_patients_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_patients')),
    sa.UniqueConstraint('mrn', name=op.f('uq_patients_mrn'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_patients_account_id'), ['account_id'], unique=False)

    op.create_table('claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('patient_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_claims_account_id_accounts')),
    sa.ForeignKeyConstraint(['patient_id'], ['patients.id'], name=op.f('fk_claims_patient_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_claims')),
    sa.UniqueConstraint('key', name=op.f('uq_claims_key'))
    )
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claims_account_id'), ['account_id'], unique=False)

    op.create_table('charge_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.Column('line_no', sa.Integer(), nullable=False),
    sa.Column('service_date', sa.Date(), nullable=False),
    sa.Column('code', sa.String(length=20), nullable=False),
    sa.Column('modifiers', sa.String(length=40), nullable=False),
    sa.Column('units', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('line_control', sa.String(length=50), nullable=True),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('diagnoses', sa.String(length=200), nullable=False),
    sa.Column('performer', sa.String(length=120), nullable=False),
    sa.Column('entry_key', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_charge_lines_claim_id_claims')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_charge_lines')),
    sa.UniqueConstraint('entry_key', name=op.f('uq_charge_lines_entry_key'))
    )
    with op.batch_alter_table('charge_lines', schema=None) as batch_op:
        batch_op.create_index('uq_charge_lines_claim_line', ['claim_id', 'line_no'], unique=True)

    op.create_table('claim_keys',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_claim_keys_claim_id_claims')),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_claim_keys'))
    )
    with op.batch_alter_table('claim_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_keys_claim_id'), ['claim_id'], unique=False)

    op.create_table('ledger_entries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('line_no', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('responsibility', sa.String(length=16), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('reverses', sa.String(length=255), nullable=True),
    sa.Column('reversed_kind', sa.String(length=32), nullable=True),
    sa.Column('effective_date', sa.Date(), nullable=True),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('payer', sa.String(length=64), nullable=True),
    sa.Column('coverage_seq', sa.Integer(), nullable=True),
    sa.Column('trace_number', sa.String(length=80), nullable=True),
    sa.Column('payer_claim_number', sa.String(length=80), nullable=True),
    sa.Column('group_code', sa.String(length=4), nullable=True),
    sa.Column('reason_code', sa.String(length=8), nullable=True),
    sa.Column('memo', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_ledger_entries_account_id_accounts')),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_ledger_entries_claim_id_claims')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_ledger_entries_idempotency_key')),
    sa.UniqueConstraint('reverses', name=op.f('uq_ledger_entries_reverses'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_claim_id'), ['claim_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_source_id'), ['source_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entries_source_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_claim_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_account_id'))

    op.drop_table('ledger_entries')
    with op.batch_alter_table('claim_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_keys_claim_id'))

    op.drop_table('claim_keys')
    with op.batch_alter_table('charge_lines', schema=None) as batch_op:
        batch_op.drop_index('uq_charge_lines_claim_line')

    op.drop_table('charge_lines')
    with op.batch_alter_table('claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claims_account_id'))

    op.drop_table('claims')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_patients_account_id'))

    op.drop_table('patients')
    with op.batch_alter_table('coverages', schema=None) as batch_op:
        batch_op.drop_index('uq_coverages_account_sequence')

    op.drop_table('coverages')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_source_id'))
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
    op.drop_table('inbox')
    op.drop_table('accounts')
