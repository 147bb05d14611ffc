"""workbench: exception actions, notes, write-off approvals; work-queue indexes on exceptions (issue 8)

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-27 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('exception_actions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('exception_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('actor', sa.String(length=120), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['exception_id'], ['exceptions.id'],
                            name=op.f('fk_exception_actions_exception_id_exceptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exception_actions')),
    sa.UniqueConstraint('source_id', name=op.f('uq_exception_actions_source_id'))
    )
    op.create_index(op.f('ix_exception_actions_exception_id'), 'exception_actions', ['exception_id'], unique=False)
    op.create_table('exception_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exception_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('author', sa.String(length=120), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['exception_id'], ['exceptions.id'],
                            name=op.f('fk_exception_notes_exception_id_exceptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exception_notes')),
    sa.UniqueConstraint('source_id', name=op.f('uq_exception_notes_source_id'))
    )
    op.create_index(op.f('ix_exception_notes_exception_id'), 'exception_notes', ['exception_id'], unique=False)
    op.create_table('write_off_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('exception_id', sa.Integer(), nullable=False),
    sa.Column('source_id', sa.String(length=255), nullable=False),
    sa.Column('amount_cents', sa.BigInteger(), nullable=False),
    sa.Column('responsibility', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=120), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=120), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['exception_id'], ['exceptions.id'],
                            name=op.f('fk_write_off_approvals_exception_id_exceptions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_off_approvals')),
    sa.UniqueConstraint('source_id', name=op.f('uq_write_off_approvals_source_id'))
    )
    op.create_index(op.f('ix_write_off_approvals_exception_id'), 'write_off_approvals', ['exception_id'],
                    unique=False)
    op.create_index(op.f('ix_write_off_approvals_status'), 'write_off_approvals', ['status'], unique=False)
    op.create_index('ix_exceptions_status_created_id', 'exceptions', ['status', 'created_at', 'id'], unique=False)
    op.create_index('ix_exceptions_assignee_status', 'exceptions', ['assignee', 'status'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_exceptions_assignee_status', table_name='exceptions')
    op.drop_index('ix_exceptions_status_created_id', table_name='exceptions')
    op.drop_index(op.f('ix_write_off_approvals_status'), table_name='write_off_approvals')
    op.drop_index(op.f('ix_write_off_approvals_exception_id'), table_name='write_off_approvals')
    op.drop_table('write_off_approvals')
    op.drop_index(op.f('ix_exception_notes_exception_id'), table_name='exception_notes')
    op.drop_table('exception_notes')
    op.drop_index(op.f('ix_exception_actions_exception_id'), table_name='exception_actions')
    op.drop_table('exception_actions')
