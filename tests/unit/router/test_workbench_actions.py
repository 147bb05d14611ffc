"""Workbench actions are commands on the bus: they post through the automatic posting code, are idempotent by
source id, audited in the same transaction, emit outbox events, and take an optimistic lock on the item."""

from __future__ import annotations

import json
import threading
from decimal import Decimal

import pytest
from sqlalchemy import text
from workbench_support import balances, denied_case, overpaid_case, partly_denied_case, unmatched_case

from api.bootstrap import Hub
from mappings.x12.held_claim import remit_claim_from_raw
from router.bus import InProcessBus
from router.domain.errors import DomainViolation
from router.domain.ledger import Responsibility
from router.domain.remittance import RemitClaim
from router.domain.workbench import (
    AcceptDenial,
    Action,
    AddNote,
    AssignException,
    DecideWriteOff,
    MarkForFollowUp,
    MatchException,
    RefundCredit,
    StaleItem,
    TransferToPatient,
    WriteOff,
)


def _bus(hub: Hub) -> InProcessBus:
    assert hub.local_bus is not None
    return hub.local_bus


def _row(hub: Hub, exception_id: int) -> dict[str, object]:
    with hub.sessions() as s:
        return dict(s.execute(text("SELECT * FROM exceptions WHERE id = :i"), {"i": exception_id}).mappings().one())


def _held_claim(hub: Hub, exception_id: int) -> RemitClaim:
    with hub.sessions() as s:
        raw = s.execute(text("SELECT c.raw FROM remittance_claims c JOIN exceptions x ON x.remit_claim_id = c.id "
                             "WHERE x.id = :i"), {"i": exception_id}).scalar_one()
    return remit_claim_from_raw(raw)


def _count(hub: Hub, sql: str, **params: object) -> int:
    with hub.sessions() as s:
        return int(s.execute(text(sql), params).scalar_one())


def test_matching_a_held_claim_posts_it_by_the_automatic_rules_once_and_conserves_cash(hub: Hub, uid: str) -> None:
    case = unmatched_case(hub, uid)
    assert balances(hub, case.account) == (Decimal("150.00"), Decimal("0.00"))
    command = MatchException(f"wb:{uid}:1", case.exception_id, case.version, "ann", claim_key=case.claim,
                             remit_claim=_held_claim(hub, case.exception_id), origin="10.0.0.1")
    outcome = _bus(hub).handle(command)
    # insurance: 150 - paid - CO - PR (transferred); patient: PR
    assert balances(hub, case.account) == (Decimal("150.00") - case.paid - case.co - case.pr, case.pr)
    assert {type(e).__name__ for e in outcome.events} == {"ExceptionActed", "HeldClaimPosted"}
    row = _row(hub, case.exception_id)
    assert (row["status"], row["account"], row["held"], row["version"]) == ("resolved", case.account, False, 2)
    with hub.sessions() as s:
        payment, posted, held, plb, status = s.execute(text(
            "SELECT payment_cents, posted_cents, held_cents, plb_cents, status FROM remittances "
            "WHERE trace_number = :t"),
            {"t": case.trace}).one()
        outbox = s.execute(text("SELECT event_type, payload FROM outbox WHERE source_id = :s ORDER BY id"),
                           {"s": command.source_id}).all()
        audit = s.execute(text("SELECT actor, action, object_type, source FROM audit_log WHERE message_id = :m"),
                          {"m": str(case.exception_id)}).all()
    assert (posted, held, status) == (int(case.paid * 100), 0, "posted")
    assert posted + held + plb == payment
    assert [t for t, _ in outbox] == ["ExceptionActed", "HeldClaimPosted"]
    assert json.loads(outbox[1][1])["claim_key"] == case.claim
    assert ("ann", "exception.match", "exception", "10.0.0.1") in [tuple(a) for a in audit]
    # The same form submitted again posts nothing more.
    again = _bus(hub).handle(command)
    assert again.duplicate
    assert balances(hub, case.account) == (Decimal("150.00") - case.paid - case.co - case.pr, case.pr)


def test_two_users_cannot_resolve_the_same_item_twice(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    first = TransferToPatient(f"wb:{uid}:a", case.exception_id, case.version, "ann", Decimal("40.00"))
    second = WriteOff(f"wb:{uid}:b", case.exception_id, case.version, "bob", Decimal("150.00"), "timely filing")
    _bus(hub).handle(first)
    with pytest.raises(StaleItem, match="changed since you opened it"):
        _bus(hub).handle(second)
    assert balances(hub, case.account) == (Decimal("110.00"), Decimal("40.00"))
    assert _count(hub, "SELECT count(*) FROM exception_actions WHERE exception_id = :i", i=case.exception_id) == 1


def test_concurrent_resolutions_of_one_item_leave_exactly_one(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    results: list[str] = []
    barrier = threading.Barrier(4)

    def act(n: int) -> None:
        barrier.wait()
        try:
            _bus(hub).handle(WriteOff(f"wb:{uid}:{n}", case.exception_id, case.version, f"user{n}", Decimal("10.00"),
                                      "small balance"))
            results.append("ok")
        except StaleItem:
            results.append("stale")

    threads = [threading.Thread(target=act, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "stale", "stale", "stale"]
    assert balances(hub, case.account)[0] == Decimal("140.00")


def test_a_large_write_off_waits_for_a_second_person_who_is_a_supervisor(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    request = WriteOff(f"wb:{uid}:w", case.exception_id, case.version, "ann", Decimal("150.00"), "timely filing")
    _bus(hub).handle(request)  # 150.00 is below the 500.00 default threshold: posted at once
    assert _row(hub, case.exception_id)["status"] == "resolved"
    assert balances(hub, case.account) == (Decimal("0.00"), Decimal("0.00"))

    other = denied_case(hub, uid, suffix="E")
    from router.domain.workbench import WorkbenchPolicy
    from router.handlers import HANDLERS
    from router.workbench import workbench_handlers
    strict = InProcessBus(hub.uow_factory, {**HANDLERS, **workbench_handlers(policy=WorkbenchPolicy(Decimal("100")))})
    strict.handle(WriteOff(f"wb:{uid}:x", other.exception_id, other.version, "ann", Decimal("150.00"), "bad debt"))
    row = _row(hub, other.exception_id)
    assert row["status"] == "pending_approval"
    assert balances(hub, other.account) == (Decimal("150.00"), Decimal("0.00"))  # nothing posted yet
    with hub.sessions() as s:
        approval_id = s.execute(text("SELECT id FROM write_off_approvals WHERE exception_id = :i"),
                                {"i": other.exception_id}).scalar_one()
    version = int(row["version"])  # type: ignore[call-overload]
    with pytest.raises(DomainViolation, match="second person"):
        strict.handle(DecideWriteOff(f"wb:{uid}:y", other.exception_id, version, "ann", approval_id, True))
    strict.handle(DecideWriteOff(f"wb:{uid}:z", other.exception_id, version, "sue", approval_id, True, "ok"))
    assert balances(hub, other.account) == (Decimal("0.00"), Decimal("0.00"))
    assert _row(hub, other.exception_id)["status"] == "resolved"
    actions = _count(hub, "SELECT count(*) FROM audit_log WHERE message_id = :m AND action LIKE 'exception.write_off%'",
                     m=str(other.exception_id))
    assert actions == 2  # requested, approved


def test_write_offs_and_transfers_cannot_exceed_the_claim_balance(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    with pytest.raises(DomainViolation, match=r"exceeds the claim's insurance balance 150\.00"):
        _bus(hub).handle(TransferToPatient(f"wb:{uid}:t", case.exception_id, case.version, "ann", Decimal("150.01")))
    assert _row(hub, case.exception_id)["version"] == case.version  # the refused action changed nothing


def test_refund_of_a_credit_balance_brings_the_claim_back_to_zero(hub: Hub, uid: str) -> None:
    case = overpaid_case(hub, uid)
    insurance_before, _ = balances(hub, case.account)
    credit = Decimal(int(_row(hub, case.exception_id)["amount_cents"])) / 100  # type: ignore[call-overload]
    assert credit == case.paid + case.co + case.pr  # paid twice: payment and adjustments both repeated
    with pytest.raises(DomainViolation, match="exceeds"):
        _bus(hub).handle(RefundCredit(f"wb:{uid}:r0", case.exception_id, case.version, "ann", credit + 1))
    _bus(hub).handle(RefundCredit(f"wb:{uid}:r", case.exception_id, case.version, "ann", credit))
    assert balances(hub, case.account)[0] == insurance_before + credit
    with hub.sessions() as s:
        claim_balance = s.execute(text(
            "SELECT sum(l.amount_cents) FROM ledger_entries l JOIN claims c ON c.id = l.claim_id "
            "WHERE c.key = :k AND l.responsibility = 'insurance'"), {"k": case.claim}).scalar_one()
    assert claim_balance == 0


def test_appeal_assign_and_notes_post_nothing_and_keep_a_history(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    _bus(hub).handle(AssignException(f"wb:{uid}:as", case.exception_id, case.version, "ann", "ann"))
    _bus(hub).handle(AddNote(f"wb:{uid}:n", case.exception_id, case.version, "ann", "called the payer"))
    _bus(hub).handle(MarkForFollowUp(f"wb:{uid}:ap", case.exception_id, case.version + 1, "ann", Action.APPEAL,
                                     "medical necessity documented"))
    row = _row(hub, case.exception_id)
    assert (row["assignee"], row["status"], row["resolution"]) == ("ann", "resolved",
                                                                    "appeal: medical necessity documented")
    assert balances(hub, case.account) == (Decimal("150.00"), Decimal("0.00"))
    with hub.sessions() as s:
        history = s.execute(text("SELECT action FROM exception_actions WHERE exception_id = :i ORDER BY id"),
                            {"i": case.exception_id}).scalars().all()
    assert history == ["assign", "note", "appeal"]


def test_only_an_unmatched_claim_can_be_matched(hub: Hub, uid: str) -> None:
    case = denied_case(hub, uid)
    held = unmatched_case(hub, uid)
    with pytest.raises(DomainViolation, match="not an unmatched remittance claim"):
        _bus(hub).handle(MatchException(f"wb:{uid}:m", case.exception_id, case.version, "ann", case.claim,
                                        _held_claim(hub, held.exception_id)))
    assert Responsibility.INSURANCE  # the enum the handlers post with


def _cash(hub: Hub, trace: str) -> tuple[int, int, int, int, str]:
    with hub.sessions() as s:
        payment, posted, held, plb, status = s.execute(text(
            "SELECT payment_cents, posted_cents, held_cents, plb_cents, status FROM remittances "
            "WHERE trace_number = :t"),
            {"t": trace}).one()
    return payment, posted, held, plb, status


def test_accepting_a_partly_paid_denial_posts_it_as_adjudicated_and_releases_the_held_cash(hub: Hub,
                                                                                         uid: str) -> None:
    case = partly_denied_case(hub, uid)
    assert _cash(hub, case.trace)[1:3] == (0, 6400)  # all of the payment held with the denial
    # A write-off cannot settle it: the payer's 64.00 would stay held for good.
    with pytest.raises(DomainViolation, match=r"holds 64\.00 of the payer's payment"):
        _bus(hub).handle(WriteOff(f"wb:{uid}:wo", case.exception_id, case.version, "ann", Decimal("150.00"),
                                  "denied"))
    # Nor can any other action that resolves the item (a transfer, an appeal).
    with pytest.raises(DomainViolation, match=r"holds 64\.00 of the payer's payment"):
        _bus(hub).handle(TransferToPatient(f"wb:{uid}:tr", case.exception_id, case.version, "ann", Decimal("10.00")))
    with pytest.raises(DomainViolation, match=r"holds 64\.00 of the payer's payment"):
        _bus(hub).handle(MarkForFollowUp(f"wb:{uid}:fu", case.exception_id, case.version, "ann", Action.APPEAL))
    command = AcceptDenial(f"wb:{uid}:1", case.exception_id, case.version, "ann",
                           remit_claim=_held_claim(hub, case.exception_id))
    outcome = _bus(hub).handle(command)
    # insurance 150 - 64 paid - 70 CO (45 and 50) - 16 PR moved to the patient
    assert balances(hub, case.account) == (Decimal("0.00"), case.pr)
    assert {type(e).__name__ for e in outcome.events} == {"ExceptionActed", "HeldClaimPosted"}
    payment, posted, held, plb, status = _cash(hub, case.trace)
    assert (posted, held, status) == (6400, 0, "posted") and posted + held + plb == payment
    row = _row(hub, case.exception_id)
    assert (row["status"], row["held"]) == ("resolved", False)
    assert _bus(hub).handle(command).duplicate  # the same form again posts nothing more
    assert balances(hub, case.account) == (Decimal("0.00"), case.pr)


def test_only_a_held_denial_can_be_accepted_and_a_zero_paid_one_posts_its_adjustments(hub: Hub, uid: str) -> None:
    unmatched = unmatched_case(hub, uid)
    with pytest.raises(DomainViolation, match="is not a held denial"):
        _bus(hub).handle(AcceptDenial(f"wb:{uid}:u", unmatched.exception_id, unmatched.version, "ann",
                                      remit_claim=_held_claim(hub, unmatched.exception_id)))
    denied = denied_case(hub, uid)
    _bus(hub).handle(AcceptDenial(f"wb:{uid}:d", denied.exception_id, denied.version, "ann",
                                  remit_claim=_held_claim(hub, denied.exception_id)))
    insurance, patient = balances(hub, denied.account)
    assert (insurance, patient) == (Decimal("150.00"), Decimal("0.00"))  # the unmatched case's claim only
