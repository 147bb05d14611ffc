"""Command handlers ``verb_noun(cmd, uow) -> events``, registered in ``HANDLERS``.

Handlers never commit: the bus wraps each one with the inbox check and the commit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

from router import payment_handlers
from router.domain import commands, events
from router.domain.errors import DomainViolation
from router.domain.ledger import EntryKind, LedgerEntry, Responsibility, reversal_of, transfer_legs
from router.domain.money import ZERO
from router.domain.pan import mask_pans
from router.domain.posting import PostingPolicy
from router.reconciliation import post_remittance
from router.unit_of_work import UnitOfWork


def post_charges(cmd: commands.PostCharges, uow: UnitOfWork) -> Sequence[events.Event]:
    patient_id = uow.accounts.upsert_patient(cmd.account, cmd.patient) if cmd.patient else None
    for coverage in cmd.coverages:
        uow.accounts.upsert_coverage(cmd.account, coverage)
    self_pay = not cmd.coverages and not uow.accounts.coverages(cmd.account)
    claim_id = uow.claims.get_or_create(cmd.claim_key, cmd.account, patient_id)
    first_line = uow.claims.next_line_no(claim_id)
    entries: list[LedgerEntry] = []
    total = ZERO
    for n, charge in enumerate(cmd.charges):
        key = f"{cmd.source_id}:charge:{n + 1}"
        line = replace(charge, line_no=first_line + n)
        uow.claims.add_line(claim_id, line, key)
        entry = LedgerEntry(cmd.account, EntryKind.CHARGE, Responsibility.INSURANCE, line.amount, key,
                            cmd.source_id, claim=cmd.claim_key, charge_line=line.line_no,
                            effective_date=line.service_date)
        entries.append(entry)
        total += line.amount
        if self_pay:  # no coverage on file: the patient owes the charge from the start
            entries += transfer_legs(LedgerEntry(
                cmd.account, EntryKind.TRANSFER_TO_PATIENT, Responsibility.PATIENT, line.amount,
                f"{key}:self-pay", cmd.source_id, claim=cmd.claim_key, charge_line=line.line_no,
                effective_date=line.service_date, memo="self-pay: no coverage on file"))
    for tx in cmd.transactions:
        responsibility = tx.responsibility
        if tx.kind is EntryKind.CHARGE_CREDIT and self_pay:
            responsibility = Responsibility.PATIENT
        entries.append(LedgerEntry(cmd.account, tx.kind, responsibility, tx.amount,
                                   f"{cmd.source_id}:tx:{tx.line_no}", cmd.source_id, claim=cmd.claim_key,
                                   effective_date=tx.transaction_date, memo=mask_pans(tx.code) or None))
    uow.ledger.append(entries)
    return [events.ChargesPosted(cmd.source_id, cmd.account, cmd.claim_key, total, len(cmd.charges))]


def reverse_entry(cmd: commands.ReverseEntry, uow: UnitOfWork) -> Sequence[events.Event]:
    original = uow.ledger.get(cmd.idempotency_key)
    if original is None:
        raise DomainViolation(f"no ledger entry {cmd.idempotency_key!r} to reverse")
    if uow.ledger.is_reversed(cmd.idempotency_key):
        raise DomainViolation(f"ledger entry {cmd.idempotency_key!r} is already reversed")
    reversal = reversal_of(original, idempotency_key=f"{cmd.source_id}:reversal", source_id=cmd.source_id,
                           memo=cmd.reason)
    uow.ledger.append([reversal])
    return [events.EntryReversed(cmd.source_id, original.account, original.idempotency_key, reversal.amount)]


def register_patient(cmd: commands.RegisterPatient, uow: UnitOfWork) -> Sequence[events.Event]:
    uow.accounts.upsert_patient(cmd.account, cmd.patient)
    if cmd.guarantor:
        uow.accounts.set_guarantor(cmd.account, cmd.guarantor)
    for coverage in cmd.coverages:
        uow.accounts.upsert_coverage(cmd.account, coverage)
    if cmd.replace_coverages:
        uow.accounts.remove_coverages_except(cmd.account, {c.sequence for c in cmd.coverages})
    return [events.PatientRegistered(cmd.source_id, cmd.account, len(cmd.coverages))]


def record_appointment(cmd: commands.RecordAppointment, uow: UnitOfWork) -> Sequence[events.Event]:
    patient_id = uow.accounts.upsert_patient(cmd.account, cmd.patient) if cmd.patient else None
    uow.accounts.upsert_appointment(cmd.appointment_id, cmd.account, patient_id, {
        "start": cmd.start, "duration_minutes": cmd.duration_minutes, "status": cmd.status,
        "reason": cmd.reason, "provider": cmd.provider})
    return [events.AppointmentRecorded(cmd.source_id, cmd.account, cmd.appointment_id, cmd.status)]


Handler = Callable[[Any, UnitOfWork], Sequence[events.Event]]


def make_handlers(policy: PostingPolicy | None = None) -> dict[type[commands.Command], Handler]:
    """The one command -> handler mapping; ``policy`` carries the configurable posting choices."""
    return {
        commands.PostCharges: post_charges,
        commands.ReverseEntry: reverse_entry,
        commands.RegisterPatient: register_patient,
        commands.RecordAppointment: record_appointment,
        commands.PostRemittance: partial(post_remittance, policy=policy or PostingPolicy()),
        **payment_handlers.HANDLERS,  # PostPatientPayment (oldest-first allocation), refunds, cards, plans
    }


HANDLERS = make_handlers()
