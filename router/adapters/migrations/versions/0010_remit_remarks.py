"""remit remarks: the RARCs of each remittance claim (MIA/MOA, and LQ*HE per line) kept for outbound messages

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 11:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('remittance_claims') as batch:
        batch.add_column(sa.Column('remarks', sa.Text(), server_default='', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('remittance_claims') as batch:
        batch.drop_column('remarks')
