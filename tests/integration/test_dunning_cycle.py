"""The dunning cycle over 150 days with a controlled clock: a set of accounts (unpaid, paid, partly paid, on a
plan, unreachable, opted out, new balance mid-run, paid then billed again, insured, in credit) run daily
through the real runner, real SMTP server and fake SMS provider. The notices and the collections export
must be exactly what the policy says, computed here independently by counting the days the clock runs."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from notify_support import FakeTwilio, sms_provider, smtp_server

from api.bootstrap import Hub
from api.notices import EXPORT_COLUMNS, export_placements
from connectors.notify.links import LinkSigner
from connectors.notify.runner import DunningRunner, NoticeBranding
from connectors.notify.sms import TwilioSms
from connectors.notify.smtp import SmtpSender
from router.adapters import notice_store as store
from router.domain.commands import PostCharges, PostPatientPayment, RegisterPatient
from router.domain.dunning import DunningPolicy
from router.domain.model import ChargeLine, Coverage, Patient

D0 = date(2026, 3, 2)
DAYS = 150
SCHEDULE = [(0, "statement"), (30, "reminder"), (60, "reminder"), (90, "final_notice"), (120, "collections")]


@dataclass
class Spec:
    """One account: money moves on given days (before that day's run), contact and plan days."""

    name: str
    charges: dict[int, str] = field(default_factory=dict)  # day -> amount charged (self-pay: patient owes it)
    payments: dict[int, str] = field(default_factory=dict)  # day -> amount paid
    email: str = ""
    phone: str = ""
    preferred: str = "both"
    sms_opt_out: bool = False
    plan_days: frozenset[int] = frozenset()
    insured: bool = False

    def balance(self, day: int) -> Decimal:
        owed = sum((Decimal(a) for d, a in self.charges.items() if d <= day and not self.insured), Decimal("0"))
        return owed - sum((Decimal(a) for d, a in self.payments.items() if d <= day), Decimal("0"))


SPECS = [
    Spec("A", {0: "200.00"}, email="a", phone="+15550000001"),
    Spec("B", {0: "150.00"}, {45: "150.00"}, email="b", preferred="email"),
    Spec("C", {0: "300.00"}, {20: "100.00", 100: "50.00"}, phone="+15550000003", preferred="sms"),
    Spec("D", {0: "120.00"}, email="d", phone="+15550000004", sms_opt_out=True, plan_days=frozenset(range(10, 30))),
    Spec("E", {0: "80.00"}),
    Spec("F", {20: "95.50"}, email="f", phone="+15550000006"),  # the provider says this phone sent STOP
    Spec("G", {0: "60.00", 70: "45.00"}, {40: "60.00"}, email="g", preferred="email"),
    Spec("H", {0: "500.00"}, email="h", insured=True),
    Spec("I", {}, {0: "50.00"}, email="i"),
    Spec("J", {0: "75.00"}, {100: "75.00"}, email="j", phone="+15550000010"),
]
UNSUBSCRIBED = {"+15550000006"}


def expected_outcome(spec: Spec) -> tuple[list[tuple[int, int, str, str, str, str]], list[tuple[int, str]]]:
    """The policy as stated, day by day: a cycle opens when a balance is owed; its clock runs only on days
    without a current plan (the opening day is day 0 of the clock); a step goes out when the clock reaches its
    day; the cycle stops when nothing is owed; at 120 the account goes to the agency (until paid).
    Returns notices (day, cycle, kind, channel, status, amount) and placements (day, amount)."""
    notices, placements = [], []
    cycle, clock, step, open_, agency = 0, 0, 0, False, False
    sms_out = spec.sms_opt_out
    for day in range(DAYS + 1):
        owed = spec.balance(day)
        if agency:
            agency = owed > 0
            continue
        if not open_:
            if owed <= 0:
                continue
            cycle, clock, step, open_ = cycle + 1, 0, 0, True
        elif owed <= 0:
            open_ = False
            continue
        if day in spec.plan_days:
            continue
        if step < len(SCHEDULE) and clock == SCHEDULE[step][0]:
            kind = SCHEDULE[step][1]
            step += 1
            if kind == "collections":
                placements.append((day, f"{owed:.2f}"))
                open_, agency = False, True
                continue
            wanted = ["email", "sms"] if spec.preferred == "both" else [spec.preferred]
            for channel in wanted:
                if channel == "email" and spec.email:
                    notices.append((day, cycle, kind, "email", "sent", f"{owed:.2f}"))
                elif channel == "sms" and spec.phone and not sms_out:
                    stopped = spec.phone in UNSUBSCRIBED
                    notices.append((day, cycle, kind, "sms", "suppressed" if stopped else "sent", f"{owed:.2f}"))
                    sms_out = sms_out or stopped
            if not spec.email and not spec.phone:
                notices.append((day, cycle, kind, "none", "suppressed", f"{owed:.2f}"))
        clock += 1
    return notices, placements


def _address(uid: str, spec: Spec) -> str:
    return f"{spec.email}.{uid.lower()}@example.test" if spec.email else ""


def _move_money(hub: Hub, uid: str, spec: Spec, day: int) -> None:
    account = f"D{uid}{spec.name}"
    if day in spec.charges:
        hub.bus.handle(PostCharges(f"dun:{uid}:{spec.name}:c{day}", account, f"V{uid}{spec.name}{day}", None,
                                   (ChargeLine(1, D0 + timedelta(days=day), "99213", Decimal(spec.charges[day])),),
                                   coverages=(Coverage(1, "ACME"),) if spec.insured else ()))
    if day in spec.payments:
        hub.bus.handle(PostPatientPayment(f"dun:{uid}:{spec.name}:p{day}", account, Decimal(spec.payments[day]),
                                          "cash", D0 + timedelta(days=day)))


def _plans(uid: str) -> Callable[[str, date], bool]:
    by_account = {f"D{uid}{s.name}": s.plan_days for s in SPECS}
    return lambda account, today: (today - D0).days in by_account.get(account, frozenset())


@pytest.mark.integration
def test_150_days_of_dunning_send_exactly_the_policys_notices_and_export(
        hub: Hub, uid: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    for spec in SPECS:
        account = f"D{uid}{spec.name}"
        patient = Patient(f"M{uid}{spec.name}", "Rivera", "Ana")
        hub.bus.handle(RegisterPatient(f"dun:{uid}:{spec.name}:reg", account, patient, guarantor="Rivera^Ana"))
        if spec.email or spec.phone:
            with hub.sessions.begin() as s:
                store.set_contact(s, account, store.Contact(_address(uid, spec), spec.phone,
                                                            sms_opt_out=spec.sms_opt_out, preferred=spec.preferred))
    signer = LinkSigner("s" * 40, 45 * 86400)
    exports: list[list[dict[str, str]]] = []
    with smtp_server() as (sink, port), sms_provider(FakeTwilio(unsubscribed=UNSUBSCRIBED)) as (fake, url):
        runner = DunningRunner(hub.sessions, DunningPolicy.parse(), signer,
                               email=SmtpSender("127.0.0.1", port, "billing@clinic.test"),
                               sms=TwilioSms(url, fake.account_sid, fake.auth_token, "+15559990000"),
                               plan_is_current=_plans(uid), branding=NoticeBranding("Clinic", "555-0100"))
        for day in range(DAYS + 1):
            for spec in SPECS:
                _move_money(hub, uid, spec, day)
            runner.run_due(D0 + timedelta(days=day), accounts_like=f"D{uid}%")
            if day == 130:
                exports.append(export_placements(hub.sessions, tmp_path, accounts_like=f"D{uid}%",
                                                 today=D0 + timedelta(days=day))[1])
        again = runner.run_due(D0 + timedelta(days=DAYS), accounts_like=f"D{uid}%")  # the same day twice
        exports.append(export_placements(hub.sessions, tmp_path, accounts_like=f"D{uid}%")[1])
        emails = {spec.name: sink.to(_address(uid, spec)) for spec in SPECS if spec.email}
        texts = {spec.name: fake.to(spec.phone) for spec in SPECS if spec.phone}

    assert sum(again.steps.values()) == 0 and sum(again.notices.values()) == 0
    with hub.sessions() as s:
        rows = store.notices_for(s, accounts_like=f"D{uid}%")
    for spec in SPECS:
        want, placed = expected_outcome(spec)
        got = [((date.fromisoformat(str(r["due_on"])) - D0).days, r["cycle"], r["kind"], r["channel"], r["status"],
                r["amount"]) for r in rows if r["account"] == f"D{uid}{spec.name}"]
        assert got == want, spec.name
        assert len(emails.get(spec.name, [])) == sum(1 for n in want if n[3] == "email" and n[4] == "sent")
        assert len(texts.get(spec.name, [])) == sum(1 for n in want if n[3] == "sms" and n[4] == "sent")
        exported = [((date.fromisoformat(r["placed_on"]) - D0).days, r["balance"])
                    for batch in exports for r in batch if r["account"] == f"D{uid}{spec.name}"]
        assert exported == placed, spec.name

    # The figures the scenario was built to show, stated once more in plain numbers.
    assert [(d, b) for d, b in expected_outcome(SPECS[0])[1]] == [(120, "200.00")]
    assert expected_outcome(SPECS[3])[1] == [(140, "120.00")]  # 20 plan days pushed the hand-off back
    assert [n[0] for n in expected_outcome(SPECS[6])[0]] == [0, 30, 70, 100, 130]  # paid, billed again
    first, last = exports
    assert sorted(r["account"][-1] for r in first) == ["A", "C", "E"]  # placed by day 130
    assert sorted(r["account"][-1] for r in last) == ["D", "F"]  # placed after: each exported once
    assert {r["guarantor"] for batch in exports for r in batch} == {"Rivera^Ana"}
    [placed_a] = [r for r in first if r["account"].endswith("A")]
    [placed_e] = [r for r in first if r["account"].endswith("E")]
    assert (placed_a["notices_sent"], placed_e["notices_sent"]) == ("4", "0")
    files = sorted(tmp_path.glob("collections-*.csv"))
    assert len(files) == 2 and all(f.stat().st_mode & 0o077 == 0 for f in files)
    with files[0].open(newline="") as fh:
        assert tuple(csv.DictReader(fh).fieldnames or ()) == EXPORT_COLUMNS

    # The provider's STOP became an opt-out: later notices to F went by email only.
    with hub.sessions() as s:
        f_id = store.account_id(s, f"D{uid}F")
        assert f_id is not None and store.contact(s, f_id).sms_opt_out  # type: ignore[union-attr]
    final = [m for m in emails["A"] if m["Subject"].startswith("Final notice")]
    final_text = final[0].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert len(final) == 1 and "$200.00" in final_text
    assert f"by {(D0 + timedelta(days=120)).isoformat()}" in final_text  # the hand-off day, from the schedule
    assert all("/pay/" in t["Body"] and "Rivera" not in t["Body"] for t in texts["A"])

    # Every notice was logged, and no log line carries an address, a phone number, a name or a link.
    notice_lines = [r.getMessage() for r in caplog.records if r.name.startswith("connectors.notify")]
    assert sum(1 for line in notice_lines if line.startswith("notice ")) >= len(rows)
    text = "\n".join(r.getMessage() for r in caplog.records  # the hub's own loggers (aiosmtpd logs addresses)
                     if r.name.split(".")[0] in ("api", "connectors", "router"))
    assert "dunning run" in text
    for secret in ["example.test", "+1555000", "Rivera", "/pay/", uid.lower() + "@"]:
        assert secret not in text, secret


def test_a_real_payment_plan_suspends_the_cycle_until_an_installment_is_missed(hub: Hub, uid: str) -> None:
    """Part A's plan records through ``api.notices.plan_check``: the cycle waits while the plan is current and
    resumes (shifted by the days it waited) once an installment is past due and unpaid."""
    from datetime import UTC, datetime

    from api.notices import plan_check
    from router.domain.payment_commands import CreatePaymentPlan, RecordConsent, SaveCardOnFile

    account = f"Q{uid}"
    hub.bus.handle(PostCharges(f"plan:{uid}:c", account, f"V{uid}", None, (ChargeLine(1, D0, "99213",
                                                                                      Decimal("90.00")),)))
    at = datetime(2026, 3, 1, tzinfo=UTC)
    for scope in ("card_on_file", "plan_autopay"):
        hub.bus.handle(RecordConsent(f"plan:{uid}:{scope}", account, "guarantor", at, "in_person", scope, "v1"))
    hub.bus.handle(SaveCardOnFile(f"plan:{uid}:card", account, f"cus_{uid}", f"pm_{uid}", "visa", "4242", 12, 2030))
    hub.bus.handle(CreatePaymentPlan(f"plan:{uid}:plan", account, f"plan{uid}", Decimal("90.00"), 3, "monthly",
                                     D0 + timedelta(days=20), f"pm_{uid}"))
    with hub.sessions.begin() as s:
        store.set_contact(s, account, store.Contact(email=f"q{uid.lower()}@example.test", preferred="email"))
    runner = DunningRunner(hub.sessions, DunningPolicy.parse(), LinkSigner("p" * 40, 86400),
                           plan_is_current=plan_check(hub))
    steps = {}
    for day in range(0, 60):
        report = runner.run_due(D0 + timedelta(days=day), accounts_like=f"Q{uid}")
        steps.update({day: dict(report.steps)} if report.steps else {})
    # The plan is current from day 0 until its first installment (due day 20) is unpaid past due on day 21:
    # the statement waits for day 21, the first reminder comes 30 days after it.
    assert steps == {21: {"statement": 1}, 51: {"reminder": 1}}
