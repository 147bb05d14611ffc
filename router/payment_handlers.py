"""Handlers of patient payments (router): post with oldest-first allocation, refund, consent, card, plans.

Registered in ``handlers.make_handlers``. Every path that reports a gateway payment (webhook, autopay
result) posts it through ``_post`` keyed by the gateway's payment id, so the same money posts once
whichever report arrives first. Free text is masked by the PAN guard, identifiers refuse card numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any, TypeVar

from router.domain import commands, events
from router.domain import payment_commands as pc
from router.domain import payment_events as pe
from router.domain.errors import DomainViolation, MappingError
from router.domain.ledger import EntryKind
from router.domain.money import ZERO, from_cents, money
from router.domain.pan import mask_pans, reject_pan
from router.domain.payments import (
    Channel,
    ConsentScope,
    Frequency,
    PaymentMethod,
    installment_schedule,
    next_retry,
    open_patient_items,
    payment_entries,
    refund_entries,
)
from router.unit_of_work import UnitOfWork

E = TypeVar("E", bound=StrEnum)


def _choice(enum: type[E], value: str, location: str) -> E:
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(str(v) for v in enum)
        raise MappingError(f"{value!r} is not one of: {allowed}", location=location) from None


def post_patient_payment(cmd: commands.PostPatientPayment, uow: UnitOfWork) -> Sequence[events.Event]:
    method = _choice(PaymentMethod, cmd.method, "method")
    _choice(Channel, cmd.channel, "channel")
    if cmd.amount <= 0:
        raise DomainViolation(f"a patient payment must be positive, got {cmd.amount}")
    # Fields people type. Gateway and hub ids (pi_..., pl_<hex>) are generated, not typed: their random
    # characters can hold a Luhn-valid digit run, so they are not scanned.
    for name in ("reference", "check_number", "bank"):
        reject_pan(getattr(cmd, name), location=name)
    if method is PaymentMethod.CHECK and not cmd.check_number:
        raise MappingError("a check payment needs the check number", location="check_number")
    if cmd.gateway_payment_ref and uow.payments.payment_by_ref(cmd.gateway_payment_ref) is not None:
        return []  # the same gateway payment, reported by another path (autopay result vs webhook)
    return [_post(uow, cmd)]


def _post(uow: UnitOfWork, cmd: commands.PostPatientPayment) -> events.PatientPaymentPosted:
    memo = " ".join(filter(None, (cmd.method, cmd.check_number or cmd.reference or cmd.gateway_payment_ref)))
    entries = payment_entries(account=cmd.account, amount=money(cmd.amount), source_id=cmd.source_id,
                              received_on=cmd.received_on, memo=memo,
                              items=open_patient_items(uow.ledger.for_account(cmd.account)))
    uow.ledger.append(entries)
    unapplied = -sum((e.amount for e in entries if e.claim is None), ZERO)
    applied = money(cmd.amount) - unapplied
    receipt = uow.payments.add_payment(
        account=cmd.account, source_id=cmd.source_id, method=cmd.method, channel=cmd.channel, amount=cmd.amount,
        applied=applied, received_on=cmd.received_on, reference=cmd.reference, check_number=cmd.check_number,
        bank=cmd.bank, gateway_payment_ref=cmd.gateway_payment_ref or None, wallet=cmd.wallet,
        note=mask_pans(cmd.note), refunded_cents=0, status="posted", disputed="")
    return events.PatientPaymentPosted(cmd.source_id, cmd.account, money(cmd.amount), method=cmd.method,
                                       received_on=cmd.received_on, applied=applied, unapplied=unapplied,
                                       receipt=receipt, gateway_payment_ref=cmd.gateway_payment_ref)


def refund_patient_payment(cmd: pc.RefundPatientPayment, uow: UnitOfWork) -> Sequence[events.Event]:
    payment = uow.payments.payment(cmd.payment_source_id)
    if payment is None or uow.accounts.number_for(payment.account_id) != cmd.account:
        raise DomainViolation("no such payment on this account", location="payment_source_id")
    if cmd.refund_ref and uow.payments.refund_seen(cmd.refund_ref):
        return []  # reported twice (the refund call's answer and the gateway's webhook)
    already = from_cents(payment.refunded_cents)
    amount = money(cmd.amount) if cmd.amount is not None else from_cents(payment.amount_cents) - already
    paid = [e for e in uow.ledger.for_account(cmd.account)
            if e.source_id == cmd.payment_source_id and e.kind is EntryKind.PATIENT_PAYMENT]
    reason = mask_pans(cmd.reason)
    uow.ledger.append(refund_entries(paid, amount, already=already, source_id=cmd.source_id, on=cmd.refunded_on,
                                     memo=f"refund {reason}".strip()))
    uow.payments.add_refund(payment, source_id=cmd.source_id, refund_ref=cmd.refund_ref, amount=amount,
                            on=cmd.refunded_on, reason=reason)
    return [pe.PatientPaymentRefunded(cmd.source_id, cmd.account, cmd.payment_source_id, amount, cmd.refunded_on,
                                      payment.method, cmd.refund_ref)]


def record_dispute(cmd: pc.RecordDispute, uow: UnitOfWork) -> Sequence[events.Event]:
    """A dispute is flagged on the payment; only a lost one takes the money back out of the ledger."""
    payment = uow.payments.payment_by_ref(cmd.payment_ref)
    if payment is None:
        raise DomainViolation("dispute on a payment the hub never posted", location="payment_intent")
    payment.disputed = cmd.status
    out: list[events.Event] = [pe.PatientPaymentDisputed(cmd.source_id, cmd.account, payment.source_id,
                                                         money(cmd.amount), cmd.status)]
    if cmd.status == "lost":
        out += refund_patient_payment(pc.RefundPatientPayment(
            cmd.source_id, cmd.account, payment.source_id, cmd.amount, cmd.on, "chargeback lost"), uow)
    return out


def link_gateway_customer(cmd: pc.LinkGatewayCustomer, uow: UnitOfWork) -> Sequence[events.Event]:
    uow.payments.link_customer(cmd.account, cmd.customer_ref, cmd.hub_ref)
    return []


def record_consent(cmd: pc.RecordConsent, uow: UnitOfWork) -> Sequence[events.Event]:
    scope = _choice(ConsentScope, cmd.scope, "scope")
    for name in ("granted_by", "channel", "text_version"):
        if not getattr(cmd, name).strip():
            raise MappingError("required", location=name)
        reject_pan(getattr(cmd, name), location=name)
    consent_id = uow.payments.add_consent(cmd.account, cmd.source_id, granted_by=cmd.granted_by,
                                          granted_at=cmd.granted_at, channel=cmd.channel, scope=scope.value,
                                          text_version=cmd.text_version)
    return [pe.ConsentChanged(cmd.source_id, cmd.account, consent_id, scope.value, granted=True)]


def revoke_consent(cmd: pc.RevokeConsent, uow: UnitOfWork) -> Sequence[events.Event]:
    row = uow.payments.consent(cmd.consent_id)
    if row is None or uow.accounts.number_for(row.account_id) != cmd.account:
        raise DomainViolation("no such consent on this account", location="consent_id")
    if row.revoked_at is not None:
        return []
    uow.payments.revoke_consent(row, reject_pan(cmd.revoked_by, location="revoked_by"), cmd.revoked_at)
    return [pe.ConsentChanged(cmd.source_id, cmd.account, row.id, row.scope, granted=False)]


def save_card_on_file(cmd: pc.SaveCardOnFile, uow: UnitOfWork) -> Sequence[events.Event]:
    consent = uow.payments.live_consent(cmd.account, ConsentScope.CARD_ON_FILE.value)
    if consent is None:
        raise DomainViolation("no live card-on-file consent for this account", location="consent")
    if not (len(cmd.last4) == 4 and cmd.last4.isdigit()):
        raise MappingError("last4 must be four digits", location="last4")
    if not uow.payments.save_card(cmd.account, customer_ref=cmd.customer_ref,
                                  payment_method_ref=cmd.payment_method_ref,
                                  brand=cmd.brand[:20], last4=cmd.last4, exp_month=cmd.exp_month,
                                  exp_year=cmd.exp_year, wallet=cmd.wallet, consent_id=consent, active=True):
        return []
    return [pe.CardOnFileSaved(cmd.source_id, cmd.account, cmd.brand, cmd.last4)]


def create_payment_plan(cmd: pc.CreatePaymentPlan, uow: UnitOfWork) -> Sequence[events.Event]:
    frequency = _choice(Frequency, cmd.frequency, "frequency")
    card = uow.payments.card(cmd.payment_method_ref)
    if card is None or not card.active or uow.accounts.number_for(card.account_id) != cmd.account:
        raise DomainViolation("no active card on file with that id for this account", location="payment_method")
    consent = uow.payments.live_consent(cmd.account, ConsentScope.PLAN_AUTOPAY.value)
    if consent is None:
        raise DomainViolation("no live autopay consent for this account", location="consent")
    schedule = installment_schedule(cmd.total, cmd.installments, cmd.first_due, frequency)
    uow.payments.add_plan(cmd.account, schedule, plan_ref=cmd.plan_ref,
                          source_id=cmd.source_id, total_cents=int(money(cmd.total) * 100),
                          installments=cmd.installments, frequency=frequency.value, first_due=cmd.first_due,
                          payment_method_id=card.id, consent_id=consent, status="active")
    return [pe.PaymentPlanCreated(cmd.source_id, cmd.account, cmd.plan_ref, money(cmd.total), cmd.installments,
                                  cmd.first_due)]


def record_installment_charge(cmd: pc.RecordInstallmentCharge, uow: UnitOfWork) -> Sequence[events.Event]:
    """The result of one autopay attempt (from the scheduler, or the gateway's webhook for it)."""
    plan = uow.payments.plan(cmd.plan_ref)
    if plan is None or uow.accounts.number_for(plan.account_id) != cmd.account:
        raise DomainViolation("no such plan on this account", location="plan")
    inst = uow.payments.installment(plan.id, cmd.seq)
    if inst is None:
        raise DomainViolation(f"plan has no installment {cmd.seq}", location="installment")
    if inst.status == "paid":
        return []
    out: list[events.Event] = []
    if cmd.status == "succeeded":
        method = _choice(PaymentMethod, cmd.method, "method").value
        if not cmd.payment_ref or uow.payments.payment_by_ref(cmd.payment_ref) is None:
            out.append(_post(uow, commands.PostPatientPayment(
                cmd.source_id, cmd.account, money(cmd.amount), method, cmd.on,
                channel=Channel.AUTOPAY.value, gateway_payment_ref=cmd.payment_ref,
                reference=f"plan installment {cmd.seq}")))
        inst.status, inst.payment_ref = "paid", cmd.payment_ref
        out.append(pe.PlanInstallmentPaid(cmd.source_id, cmd.account, cmd.plan_ref, cmd.seq, money(cmd.amount),
                                          cmd.source_id))
        if uow.payments.unpaid_installments(plan.id) == 0 and plan.status == "active":
            plan.status = "completed"
            out.append(pe.PaymentPlanChanged(cmd.source_id, cmd.account, cmd.plan_ref, "completed"))
        return out
    if inst.status not in ("charging", "processing") or inst.attempts != cmd.attempt:
        return []  # a late report of an attempt already settled
    if cmd.status == "processing":
        # ACH: settles in days; not claimable meanwhile, the gateway's webhook reports how it ended.
        inst.status, inst.payment_ref = "processing", cmd.payment_ref
        return []
    inst.last_decline = (cmd.decline_code or cmd.status)[:60]
    retry_on = next_retry(cmd.attempt, cmd.retry_days, cmd.on)
    out.append(pe.PlanInstallmentFailed(cmd.source_id, cmd.account, cmd.plan_ref, cmd.seq, cmd.attempt,
                                        inst.last_decline, retry_on))
    if retry_on is not None:
        inst.status, inst.next_attempt_on = "retry", retry_on
    else:
        inst.status, plan.status = "failed", "default"
        out.append(pe.PaymentPlanChanged(cmd.source_id, cmd.account, cmd.plan_ref, "default"))
    return out


HANDLERS: dict[type[commands.Command], Callable[[Any, UnitOfWork], Sequence[events.Event]]] = {
    commands.PostPatientPayment: post_patient_payment,
    pc.RefundPatientPayment: refund_patient_payment,
    pc.RecordDispute: record_dispute,
    pc.LinkGatewayCustomer: link_gateway_customer,
    pc.RecordConsent: record_consent,
    pc.RevokeConsent: revoke_consent,
    pc.SaveCardOnFile: save_card_on_file,
    pc.CreatePaymentPlan: create_payment_plan,
    pc.RecordInstallmentCharge: record_installment_charge,
}
