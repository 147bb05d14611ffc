"""remittances, remittance claims, practice ledger, exceptions, normalized claim keys

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 02:43:19.477537
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('remittances',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('control_number', sa.String(length=40), nullable=False),
    sa.Column('payer_id', sa.String(length=80), nullable=False),
    sa.Column('payer_name', sa.String(length=200), nullable=False),
    sa.Column('payee_id', sa.String(length=80), nullable=False),
    sa.Column('payee_name', sa.String(length=200), nullable=False),
    sa.Column('trace_number', sa.String(length=80), nullable=False),
    sa.Column('payment_cents', sa.BigInteger(), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('payment_date', sa.Date(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('claim_count', sa.Integer(), nullable=False),
    sa.Column('posted_cents', sa.BigInteger(), nullable=False),
    sa.Column('held_cents', sa.BigInteger(), nullable=False),
    sa.Column('plb_cents', sa.BigInteger(), nullable=False),
    sa.Column('problems', sa.Text(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remittances')),
    sa.UniqueConstraint('source_id', name=op.f('uq_remittances_source_id'))
    )
    with op.batch_alter_table('remittances', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remittances_received_at'), ['received_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_remittances_trace_number'), ['trace_number'], unique=False)

    op.create_table('practice_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('remittance_id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('reference', sa.String(length=80), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_practice_ledger_claim_id_claims')),
    sa.ForeignKeyConstraint(['remittance_id'], ['remittances.id'], name=op.f('fk_practice_ledger_remittance_id_remittances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_practice_ledger')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_practice_ledger_idempotency_key'))
    )
    with op.batch_alter_table('practice_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_practice_ledger_remittance_id'), ['remittance_id'], unique=False)

    op.create_table('remittance_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('remittance_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('pcn', sa.String(length=64), nullable=False),
    sa.Column('status', sa.String(length=4), nullable=False),
    sa.Column('charge_cents', sa.BigInteger(), nullable=False),
    sa.Column('paid_cents', sa.BigInteger(), nullable=False),
    sa.Column('payer_claim_number', sa.String(length=80), nullable=False),
    sa.Column('claim_id', sa.Integer(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['claim_id'], ['claims.id'], name=op.f('fk_remittance_claims_claim_id_claims')),
    sa.ForeignKeyConstraint(['remittance_id'], ['remittances.id'], name=op.f('fk_remittance_claims_remittance_id_remittances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_remittance_claims'))
    )
    with op.batch_alter_table('remittance_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_remittance_claims_claim_id'), ['claim_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_remittance_claims_payer_claim_number'), ['payer_claim_number'], unique=False)
        batch_op.create_index(batch_op.f('ix_remittance_claims_pcn'), ['pcn'], unique=False)
        batch_op.create_index(batch_op.f('ix_remittance_claims_remittance_id'), ['remittance_id'], unique=False)

    op.create_table('exceptions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('remittance_id', sa.Integer(), nullable=True),
    sa.Column('remit_claim_id', sa.Integer(), nullable=True),
    sa.Column('claim_key', sa.String(length=64), nullable=False),
    sa.Column('account', sa.String(length=64), nullable=True),
    sa.Column('payer', sa.String(length=80), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('held', sa.Boolean(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('candidates', sa.Text(), nullable=False),
    sa.Column('assignee', sa.String(length=80), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['remit_claim_id'], ['remittance_claims.id'], name=op.f('fk_exceptions_remit_claim_id_remittance_claims')),
    sa.ForeignKeyConstraint(['remittance_id'], ['remittances.id'], name=op.f('fk_exceptions_remittance_id_remittances')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exceptions')),
    sa.UniqueConstraint('idempotency_key', name=op.f('uq_exceptions_idempotency_key'))
    )
    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_exceptions_account'), ['account'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_claim_key'), ['claim_key'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_remittance_id'), ['remittance_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_exceptions_type'), ['type'], unique=False)

    with op.batch_alter_table('claim_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('normalized', sa.String(length=64), server_default='', nullable=False))
        batch_op.create_index(batch_op.f('ix_claim_keys_normalized'), ['normalized'], unique=False)
    # Backfill with the rule of router.domain.matching.normalize_pcn as it stood at this revision.
    conn = op.get_bind()
    for (key,) in conn.execute(sa.text("SELECT key FROM claim_keys")).all():
        normalized = "".join(ch for ch in key.upper() if ch.isalnum()).lstrip("0")
        conn.execute(sa.text("UPDATE claim_keys SET normalized = :n WHERE key = :k"), {"n": normalized, "k": key})



def downgrade() -> None:
    with op.batch_alter_table('claim_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_keys_normalized'))
        batch_op.drop_column('normalized')

    with op.batch_alter_table('exceptions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_exceptions_type'))
        batch_op.drop_index(batch_op.f('ix_exceptions_status'))
        batch_op.drop_index(batch_op.f('ix_exceptions_remittance_id'))
        batch_op.drop_index(batch_op.f('ix_exceptions_created_at'))
        batch_op.drop_index(batch_op.f('ix_exceptions_claim_key'))
        batch_op.drop_index(batch_op.f('ix_exceptions_account'))

    op.drop_table('exceptions')
    with op.batch_alter_table('remittance_claims', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remittance_claims_remittance_id'))
        batch_op.drop_index(batch_op.f('ix_remittance_claims_pcn'))
        batch_op.drop_index(batch_op.f('ix_remittance_claims_payer_claim_number'))
        batch_op.drop_index(batch_op.f('ix_remittance_claims_claim_id'))

    op.drop_table('remittance_claims')
    with op.batch_alter_table('practice_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_practice_ledger_remittance_id'))

    op.drop_table('practice_ledger')
    with op.batch_alter_table('remittances', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_remittances_trace_number'))
        batch_op.drop_index(batch_op.f('ix_remittances_received_at'))

    op.drop_table('remittances')
