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
from router.domain.model import ChargeLine
from router.domain.money import ZERO
from router.domain.pan import mask_pans
from router.domain.posting import PostingPolicy
from router.reconciliation import post_remittance
from router.unit_of_work import UnitOfWork


def post_charges(cmd: commands.PostCharges, uow: UnitOfWork) -> Sequence[events.Event]:
    return post_charges_many([cmd], uow)[0]


def post_charges_many(cmds: Sequence[commands.PostCharges], uow: UnitOfWork) -> list[Sequence[events.Event]]:
    """Post encounters' charges set-based: a few statements for the whole batch, not ~12 per command.

    The effect equals handling ``cmds`` one after another: a later command sees the patients, coverages and
    claim lines of earlier ones (self-pay is decided per command against what is on file by then). Any
    rule broken (a claim key under another account) fails them all; the bus then finds the culprit alone.
    """
    insured = uow.accounts.with_coverage(c.account for c in cmds)  # before this batch's coverages
    patients = uow.accounts.upsert_patients([(c.account, c.patient) for c in cmds if c.patient])
    uow.accounts.upsert_coverages([(c.account, cov) for c in cmds for cov in c.coverages])
    claims, created = uow.claims.get_or_create_many(
        [(c.claim_key, c.account, patients[c.patient.mrn] if c.patient else None) for c in cmds])
    last_line = uow.claims.last_line_nos(i for key, i in claims.items() if key not in created)  # new ones: none
    lines: list[tuple[int, ChargeLine, str]] = []
    entries: list[LedgerEntry] = []
    out: list[Sequence[events.Event]] = []
    for cmd in cmds:
        self_pay = not cmd.coverages and cmd.account not in insured
        if cmd.coverages:
            insured.add(cmd.account)
        claim_id = claims[cmd.claim_key]
        first_line = last_line.get(claim_id, 0) + 1
        last_line[claim_id] = first_line + len(cmd.charges) - 1
        numbered = [replace(charge, line_no=first_line + n) for n, charge in enumerate(cmd.charges)]
        lines += [(claim_id, line, f"{cmd.source_id}:charge:{n + 1}") for n, line in enumerate(numbered)]
        entries += _charge_entries(cmd, numbered, self_pay)
        total = sum((line.amount for line in numbered), ZERO)
        out.append([events.ChargesPosted(cmd.source_id, cmd.account, cmd.claim_key, total, len(cmd.charges))])
    uow.claims.add_lines(lines)
    uow.ledger.append_new(entries)  # every key derives from a source id the inbox has not seen
    return out


def _charge_entries(cmd: commands.PostCharges, lines: Sequence[ChargeLine], self_pay: bool) -> list[LedgerEntry]:
    entries: list[LedgerEntry] = []
    for n, line in enumerate(lines):
        key = f"{cmd.source_id}:charge:{n + 1}"
        entries.append(LedgerEntry(cmd.account, EntryKind.CHARGE, Responsibility.INSURANCE, line.amount, key,
                                   cmd.source_id, claim=cmd.claim_key, charge_line=line.line_no,
                                   effective_date=line.service_date))
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
    return entries


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
# Set-based handlers for a batch of commands of one type (group commit); same effect as one by one.
BatchHandler = Callable[[Sequence[Any], UnitOfWork], list[Sequence[events.Event]]]
BATCH_HANDLERS: dict[type[commands.Command], BatchHandler] = {commands.PostCharges: post_charges_many}


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
