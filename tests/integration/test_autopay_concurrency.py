"""Autopay exactly once: two schedulers (separate engines, as two processes would have) run at the same moment
over the same due installments; each installment is charged and posted exactly once. A runner that died after
charging is taken over under the same idempotency key. Runs on PostgreSQL (SKIP LOCKED) and SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from fake_stripe import WEBHOOK_SECRET, FakeStripe
from sqlalchemy import select

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.payments.autopay import AutopayScheduler, RunReport, charge_installment
from connectors.payments.stripe_gateway import StripeGateway
from router.adapters.orm import AccountRow
from router.adapters.orm_payments import PaymentPlanRow, PlanInstallmentRow
from router.adapters.payments import claim_due
from router.domain.commands import PostCharges
from router.domain.ledger import EntryKind
from router.domain.model import ChargeLine
from router.domain.payment_commands import CreatePaymentPlan, LinkGatewayCustomer, RecordConsent, SaveCardOnFile
from router.queries import account_balances

D = Decimal
TODAY = date(2024, 6, 1)


def gateway(fake: FakeStripe) -> StripeGateway:
    return StripeGateway("sk_test_fake", webhook_secret=WEBHOOK_SECRET, api_base=fake.url)


def plans_due(hub: Hub, fake: FakeStripe, uid: str, accounts: int, installments: int) -> list[str]:
    """``accounts`` self-pay accounts, each with a card on file and a plan whose installments are all due."""
    names = []
    for n in range(accounts):
        account = f"AC{uid}-{n}"
        names.append(account)
        hub.bus.handle(PostCharges(f"c:{account}", account, f"K{account}", None,
                                   (ChargeLine(1, date(2024, 1, 2), "99213", D("60.00")),)))
        customer = fake._route("POST", "/v1/customers", {"metadata": {"hub_ref": account}}, "")[1]["id"]
        pm = fake._payment_method("ok", customer)
        hub.bus.handle(LinkGatewayCustomer(f"l:{account}", account, customer, f"h{uid}{n}"))
        for scope in ("card_on_file", "plan_autopay"):
            hub.bus.handle(RecordConsent(f"{scope}:{account}", account, "guarantor", datetime.now(UTC), "portal",
                                         scope, "v1"))
        hub.bus.handle(SaveCardOnFile(f"s:{account}", account, customer, pm, "visa", "4242", 12, 2030))
        hub.bus.handle(CreatePaymentPlan(f"p:{account}", account, f"pl{uid}{n}", D("60.00"), installments, "monthly",
                                         TODAY - timedelta(days=31 * installments), pm))
    fake.take_events()
    return names


def test_two_schedulers_at_once_charge_each_installment_exactly_once(hub: Hub, uid: str, tmp_path: Path) -> None:
    accounts, installments = 15, 3
    with FakeStripe() as fake:
        names = plans_due(hub, fake, uid, accounts, installments)
        other = build(Settings(database_url=hub.settings.database_url, data_dir=tmp_path, amqp_url=""), migrate=False)
        try:
            runners = [AutopayScheduler(h.sessions, h.local_bus, gateway(fake), today=lambda: TODAY,  # type: ignore[arg-type]
                                        accounts=names, batch=4) for h in (hub, other)]
            reports: list[RunReport] = []
            start = threading.Barrier(2)

            def run(scheduler: AutopayScheduler) -> None:
                start.wait()
                reports.append(scheduler.run_due())

            threads = [threading.Thread(target=run, args=(r,)) for r in runners]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            again = [r.run_due() for r in runners]  # and run twice more: nothing is due any longer
        finally:
            other.close()
        due = accounts * installments
        assert sorted(r.errors == [] for r in reports) == [True, True]
        assert sum(r.claimed for r in reports) == due and sum(r.succeeded for r in reports) == due
        assert all(r.claimed > 0 for r in reports), [r.as_json() for r in reports]  # both really took part
        assert [a.claimed for a in again] == [0, 0]
        plan_keys = {k: v for k, v in fake.charges_by_key.items() if k.startswith("rcmhub:plan:")}
        assert len(plan_keys) == due and set(plan_keys.values()) == {1}  # one charge per installment
        assert len(fake.intents) == due
    with hub.sessions() as s:
        statuses = s.scalars(select(PlanInstallmentRow.status).join(PaymentPlanRow).join(AccountRow)
                             .where(AccountRow.number.in_(names))).all()
        assert sorted(set(statuses)) == ["paid"] and len(statuses) == due
        for account in names:
            assert account_balances(s, account).patient == D("0.00")  # type: ignore[union-attr]
    with hub.uow_factory() as uow:
        for account in names:
            paid = [e for e in uow.ledger.for_account(account) if e.kind is EntryKind.PATIENT_PAYMENT]
            assert len({e.source_id for e in paid}) == installments


def test_a_stale_claim_is_taken_over_under_the_same_key_and_not_charged_again(hub: Hub, uid: str) -> None:
    with FakeStripe() as fake:
        (account,) = plans_due(hub, fake, uid, 1, 1)
        # A runner claims the installment, charges it, and dies before recording the result.
        (due,) = claim_due(hub.sessions, today=TODAY, now=datetime.now(UTC) - timedelta(hours=1),
                           stale_after=timedelta(minutes=15), accounts=[account])
        first = charge_installment(gateway(fake), due)
        fresh = AutopayScheduler(hub.sessions, hub.local_bus, gateway(fake), today=lambda: TODAY,  # type: ignore[arg-type]
                                 accounts=[account])
        report = fresh.run_due()  # the claim is an hour old: stale, taken over with the same attempt
        assert (report.claimed, report.succeeded) == (1, 1)
        assert fake.charges_by_key[due.idempotency_key] == 1 and len(fake.intents) == 1
    with hub.sessions() as s:
        row = s.scalar(select(PlanInstallmentRow).join(PaymentPlanRow).join(AccountRow)
                       .where(AccountRow.number == account))
        assert row is not None and (row.status, row.attempts, row.payment_ref) == ("paid", 1, first.payment_ref)
        assert account_balances(s, account).patient == D("0.00")  # type: ignore[union-attr]


def test_rcmhub_payments_run_due_charges_through_the_configured_gateway(hub: Hub, uid: str, tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from api.cli import app

    with FakeStripe() as fake:
        (account,) = plans_due(hub, fake, uid, 1, 2)
        env = {"RCMHUB_DATABASE_URL": hub.settings.database_url, "RCMHUB_DATA_DIR": str(tmp_path),
               "RCMHUB_AMQP_URL": "", "RCMHUB_STRIPE_API_KEY": "sk_test_fake", "RCMHUB_STRIPE_API_BASE": fake.url,
               "RCMHUB_STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET}
        args = ["payments", "run-due", "--account", account, "--json"]
        first = CliRunner().invoke(app, args, env=env)
        second = CliRunner().invoke(app, args, env=env)
        missing = CliRunner().invoke(app, args, env={**env, "RCMHUB_STRIPE_API_KEY": ""})
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) == {"claimed": 2, "succeeded": 2, "failed": 0, "pending": 0, "errors": []}
    assert json.loads(second.stdout)["claimed"] == 0
    assert missing.exit_code == 1
    with hub.sessions() as s:
        assert account_balances(s, account).patient == D("0.00")  # type: ignore[union-attr]
