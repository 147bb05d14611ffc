"""Patient payments through the bus on SQLite and PostgreSQL: every method posts, oldest-first allocation,
unapplied credit, exact refunds, validation that names the field, and balances that tie out."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import select

from api.bootstrap import Hub
from api.payments import lockbox_commands
from router.adapters.orm_payments import PatientPaymentRow
from router.domain.commands import PostCharges, PostPatientPayment
from router.domain.errors import DomainViolation, MappingError
from router.domain.events import PatientPaymentPosted
from router.domain.ledger import EntryKind, balances
from router.domain.model import ChargeLine
from router.domain.payment_commands import RefundPatientPayment
from router.domain.payment_events import PatientPaymentRefunded
from router.payments_queries import receipt
from router.queries import account_balances

D = Decimal


def self_pay_visits(hub: Hub, account: str, uid: str) -> None:
    """Three self-pay visits (the patient owes every charge), posted newest first on purpose."""
    for n, (day, amounts) in enumerate([(date(2024, 3, 1), ["30.00"]), (date(2024, 1, 5), ["40.00", "10.00"]),
                                        (date(2024, 2, 1), ["25.00"])]):
        lines = tuple(ChargeLine(i + 1, day, "99213", D(a)) for i, a in enumerate(amounts))
        hub.bus.handle(PostCharges(f"visit:{uid}:{n}", account, f"C{uid}-{n}", None, lines))


def allocations(hub: Hub, account: str, source_id: str) -> list[tuple[str | None, int | None, Decimal]]:
    with hub.uow_factory() as uow:
        return [(e.claim, e.charge_line, -e.amount) for e in uow.ledger.for_account(account)
                if e.source_id == source_id and e.kind is EntryKind.PATIENT_PAYMENT]


def tie_out(hub: Hub, account: str) -> Decimal:
    with hub.uow_factory() as uow:
        derived = balances(uow.ledger.for_account(account))
    with hub.sessions() as s:
        assert account_balances(s, account) == derived  # SQL aggregation == the domain's definition
    return derived.patient


METHODS = [
    dict(method="cash"),
    dict(method="check", check_number="1042", bank="First Community Bank"),
    dict(method="credit_card", reference="terminal 7 auth 55A1"),
    dict(method="debit_card", reference="terminal 7 auth 55A2"),
    dict(method="wallet", wallet="apple_pay", gateway_payment_ref="pi_wallet_{uid}"),
    dict(method="ach", gateway_payment_ref="pi_ach_{uid}"),
]


@pytest.mark.parametrize("fields", METHODS, ids=[m["method"] for m in METHODS])
def test_each_payment_method_posts_and_is_allocated_oldest_first(hub: Hub, uid: str, fields: dict[str, str]) -> None:
    account = f"PM{uid}"
    self_pay_visits(hub, account, uid)
    assert tie_out(hub, account) == D("105.00")
    extra = {k: v.format(uid=uid) for k, v in fields.items() if k != "method"}
    outcome = hub.bus.handle(PostPatientPayment(f"pay:{uid}", account, D("60.00"), fields["method"],
                                                date(2024, 4, 2), **extra))
    (event,) = outcome.events
    assert isinstance(event, PatientPaymentPosted)
    assert (event.applied, event.unapplied, event.method) == (D("60.00"), D("0.00"), fields["method"])
    # Oldest first: the January visit (40 + 10), then February's 25 gets the remaining 10.
    assert allocations(hub, account, f"pay:{uid}") == [(f"C{uid}-1", 1, D("40.00")), (f"C{uid}-1", 2, D("10.00")),
                                                       (f"C{uid}-2", 1, D("10.00"))]
    assert tie_out(hub, account) == D("45.00")
    with hub.sessions() as s:
        number = s.scalar(select(PatientPaymentRow.id).where(PatientPaymentRow.source_id == f"pay:{uid}"))
        shown = receipt(s, number)  # type: ignore[arg-type]
    assert shown is not None and shown["receipt"] == event.receipt and shown["amount"] == "60.00"
    assert shown["method"] == fields["method"] and shown["unapplied"] == "0.00"
    assert shown["check_number"] == extra.get("check_number")
    assert [a["amount"] for a in shown["applied"]] == ["40.00", "10.00", "10.00"]  # type: ignore[index]


def test_overpayment_leaves_an_unapplied_credit(hub: Hub, uid: str) -> None:
    account = f"OV{uid}"
    self_pay_visits(hub, account, uid)
    (event,) = hub.bus.handle(PostPatientPayment(f"over:{uid}", account, D("150.00"), "cash", date(2024, 4, 2))).events
    assert isinstance(event, PatientPaymentPosted)
    assert (event.applied, event.unapplied) == (D("105.00"), D("45.00"))
    assert allocations(hub, account, f"over:{uid}")[-1] == (None, None, D("45.00"))
    assert tie_out(hub, account) == D("-45.00")  # a credit on the account
    # Nothing owed at all: the whole payment is a credit.
    (again,) = hub.bus.handle(PostPatientPayment(f"over2:{uid}", account, D("5.00"), "cash", date(2024, 4, 3))).events
    assert isinstance(again, PatientPaymentPosted) and (again.applied, again.unapplied) == (D("0.00"), D("5.00"))
    assert tie_out(hub, account) == D("-50.00")


def test_a_full_refund_reverses_the_payment_exactly_and_a_partial_one_takes_the_credit_first(
        hub: Hub, uid: str) -> None:
    account = f"RF{uid}"
    self_pay_visits(hub, account, uid)
    before = tie_out(hub, account)
    hub.bus.handle(PostPatientPayment(f"p1:{uid}", account, D("80.00"), "check", date(2024, 4, 2), check_number="7"))
    (refunded,) = hub.bus.handle(RefundPatientPayment(f"r1:{uid}", account, f"p1:{uid}", None, date(2024, 4, 9),
                                                      "returned to patient")).events
    assert isinstance(refunded, PatientPaymentRefunded) and refunded.amount == D("80.00")
    assert tie_out(hub, account) == before
    with hub.uow_factory() as uow:
        entries = uow.ledger.for_account(account)
    paid = {e.idempotency_key: e for e in entries if e.source_id == f"p1:{uid}"}
    reversals = [e for e in entries if e.source_id == f"r1:{uid}"]
    assert {r.reverses for r in reversals} == set(paid)  # every entry reversed once...
    assert all(r.amount == -paid[r.reverses].amount and r.claim == paid[r.reverses].claim  # type: ignore[index]
               and r.charge_line == paid[r.reverses].charge_line for r in reversals)  # type: ignore[index]
    with pytest.raises(DomainViolation):  # ... and nothing is left to refund
        hub.bus.handle(RefundPatientPayment(f"r1b:{uid}", account, f"p1:{uid}", D("0.01"), date(2024, 4, 9)))

    # Partial: 120 pays 105 owed + 15 credit; refunding 20 gives back the 15 credit, then 5 of the newest item.
    hub.bus.handle(PostPatientPayment(f"p2:{uid}", account, D("120.00"), "cash", date(2024, 4, 10)))
    hub.bus.handle(RefundPatientPayment(f"r2:{uid}", account, f"p2:{uid}", D("20.00"), date(2024, 4, 11)))
    with hub.uow_factory() as uow:
        parts = [(e.claim, e.amount) for e in uow.ledger.for_account(account) if e.source_id == f"r2:{uid}"]
    assert parts == [(None, D("15.00")), (f"C{uid}-0", D("5.00"))]
    assert tie_out(hub, account) == before - D("120.00") + D("20.00")
    hub.bus.handle(RefundPatientPayment(f"r3:{uid}", account, f"p2:{uid}", None, date(2024, 4, 12)))  # the rest
    assert tie_out(hub, account) == before
    with hub.sessions() as s:
        row = s.scalar(select(PatientPaymentRow).where(PatientPaymentRow.source_id == f"p2:{uid}"))
        assert row is not None and (row.status, row.refunded_cents) == ("refunded", 12000)


def test_bad_payments_are_refused_naming_the_field_and_card_numbers_never_stored(hub: Hub, uid: str) -> None:
    account = f"BD{uid}"
    cases = [(dict(method="bitcoin"), "method"), (dict(method="check"), "check_number"),
             (dict(method="cash", reference="4111 1111 1111 1111"), "reference"),
             (dict(method="check", check_number="5500005555555559"), "check_number")]
    for n, (fields, where) in enumerate(cases):
        method = fields.pop("method")
        with pytest.raises(MappingError) as caught:
            hub.bus.handle(PostPatientPayment(f"bad:{uid}:{n}", account, D("10"), method, date(2024, 1, 1), **fields))
        assert caught.value.location == where
        assert "4111" not in str(caught.value) and "5500" not in str(caught.value)
    hub.bus.handle(PostPatientPayment(f"note:{uid}", account, D("10.00"), "cash", date(2024, 1, 1),
                                      note="patient read out card 4111-1111-1111-1111 exp 12/30, told not to"))
    with hub.sessions() as s:
        row = s.scalar(select(PatientPaymentRow).where(PatientPaymentRow.source_id == f"note:{uid}"))
        assert row is not None and row.note == "patient read out card ****-****-****-1111 exp 12/30, told not to"


def test_the_same_payment_sent_twice_posts_once(hub: Hub, uid: str) -> None:
    account = f"DU{uid}"
    cmd = PostPatientPayment(f"dup:{uid}", account, D("12.00"), "cash", date(2024, 1, 1))
    assert not hub.bus.handle(cmd).duplicate
    assert hub.bus.handle(cmd).duplicate
    # A gateway payment reported under another source id (webhook vs autopay result) also posts once.
    first, second = (PostPatientPayment(f"gw{n}:{uid}", account, D("9.00"), "card", date(2024, 1, 1),
                                        gateway_payment_ref=f"pi_{uid}") for n in (1, 2))
    assert hub.bus.handle(first).events and not hub.bus.handle(second).events
    assert tie_out(hub, account) == D("-21.00")


def test_a_lockbox_file_posts_each_check_once_and_names_a_bad_row(hub: Hub, uid: str) -> None:
    account = f"LB{uid}"
    self_pay_visits(hub, account, uid)
    data = (f"account,amount,check_number,bank,received_on\n{account},50.00,881,Credit Union,2024-04-01\n"
            f"{account},5.00,882,Credit Union,2024-04-01\n").encode()
    commands = lockbox_commands(data, "deposit.csv")
    assert [hub.bus.handle(c).duplicate for c in commands] == [False, False]
    assert [hub.bus.handle(c).duplicate for c in lockbox_commands(data, "again.csv")] == [True, True]
    assert tie_out(hub, account) == D("50.00")
    with pytest.raises(MappingError) as caught:
        lockbox_commands(b"account,amount,check_number,bank,received_on\nA1,12.x,1,B,2024-04-01\n", "bad.csv")
    assert caught.value.location == "bad.csv:2"


def test_a_card_number_in_an_emr_payment_row_is_masked_before_the_ledger_keeps_it(hub: Hub, uid: str) -> None:
    from router.domain.commands import EmrTransaction
    from router.domain.ledger import Responsibility

    account = f"EM{uid}"
    tx = EmrTransaction(1, EntryKind.PATIENT_PAYMENT, Responsibility.PATIENT, D("-20.00"), date(2024, 2, 2),
                        code="COPAY VISA 4111111111111111")
    hub.bus.handle(PostCharges(f"dft:{uid}", account, f"K{uid}", None,
                               (ChargeLine(1, date(2024, 2, 2), "99213", D("20.00")),), transactions=(tx,)))
    with hub.uow_factory() as uow:
        memos = [e.memo for e in uow.ledger.for_account(account) if e.kind is EntryKind.PATIENT_PAYMENT]
    assert memos == ["COPAY VISA ************1111"]


def test_a_dispute_is_flagged_and_only_a_lost_one_takes_the_money_back(hub: Hub, uid: str) -> None:
    from router.domain.payment_commands import RecordDispute

    account = f"DS{uid}"
    self_pay_visits(hub, account, uid)
    hub.bus.handle(PostPatientPayment(f"card:{uid}", account, D("50.00"), "credit_card", date(2024, 4, 2),
                                      channel="online", gateway_payment_ref=f"pi_d_{uid}"))
    assert tie_out(hub, account) == D("55.00")
    hub.bus.handle(RecordDispute(f"dp1:{uid}", account, f"pi_d_{uid}", D("50.00"), "needs_response", date(2024, 5, 1)))
    assert tie_out(hub, account) == D("55.00")
    hub.bus.handle(RecordDispute(f"dp2:{uid}", account, f"pi_d_{uid}", D("50.00"), "lost", date(2024, 6, 1)))
    assert tie_out(hub, account) == D("105.00")
    with hub.sessions() as s:
        row = s.scalar(select(PatientPaymentRow).where(PatientPaymentRow.source_id == f"card:{uid}"))
        assert row is not None and (row.disputed, row.status) == ("lost", "refunded")
