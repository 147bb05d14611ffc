"""Plan autopay scheduler (connectors): claim due installments, charge them off-session, record the result.

Exactly once, even with two runners at the same moment: an installment is claimed by an atomic status
change in the database (``claim_due``) before any charge; the charge carries the idempotency key
``rcmhub:plan:{plan}:{seq}:{attempt}``, so a retry after a timeout (here, with tenacity) or a takeover of
a dead runner's stale claim gets the gateway's first answer back instead of a second charge; the result is
recorded through the bus under ``plan:{plan}:{seq}:{attempt}`` (the inbox keeps it once) and the payment
posts once per gateway payment id. Runs from ``rcmhub payments run-due`` and as a thread inside ``serve``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.payments.gateway import ChargeResult, GatewayUnavailable, PaymentGateway
from router.adapters.payments import DueCharge, claim_due
from router.bus import MessageBus
from router.domain.errors import HubError
from router.domain.payment_commands import RecordInstallmentCharge

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    claimed: int = 0
    succeeded: int = 0
    failed: int = 0
    pending: int = 0  # processing (ACH) or gateway unreachable: settled later, under the same key
    errors: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {"claimed": self.claimed, "succeeded": self.succeeded, "failed": self.failed,
                "pending": self.pending, "errors": self.errors}


class AutopayScheduler:
    def __init__(self, sessions: sessionmaker[Session], bus: MessageBus, gateway: PaymentGateway, *,
                 retry_days: tuple[int, ...] = (3, 7), stale_after: timedelta = timedelta(minutes=15),
                 gateway_attempts: int = 3, batch: int = 100, accounts: Collection[str] | None = None,
                 today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self.sessions = sessions
        self.bus = bus
        self.gateway = gateway
        self.retry_days = retry_days
        self.stale_after = stale_after
        self.batch = batch
        self.today = today
        self.accounts = accounts
        self._charge = retry(retry=retry_if_exception_type(GatewayUnavailable),
                             stop=stop_after_attempt(gateway_attempts), wait=wait_exponential(multiplier=0.2, max=5),
                             reraise=True)(self._charge_once)

    def run_due(self) -> RunReport:
        report = RunReport()
        while True:
            claimed = claim_due(self.sessions, today=self.today(), now=datetime.now(UTC),
                                stale_after=self.stale_after, limit=self.batch, accounts=self.accounts)
            if not claimed:
                return report
            for due in claimed:
                report.claimed += 1
                self._settle(due, report)
            if len(claimed) < self.batch:
                return report

    def _settle(self, due: DueCharge, report: RunReport) -> None:
        try:
            result = self._charge(due)
        except GatewayUnavailable:
            # Left "charging": a later run takes it over after ``stale_after`` with the same key.
            report.pending += 1
            log.warning("autopay: gateway unavailable for installment %s; will resume", due.installment_id)
            return
        except HubError as exc:
            report.errors.append(f"installment {due.installment_id}: {type(exc).__name__}")
            log.error("autopay: installment %s refused: %s", due.installment_id, type(exc).__name__)
            return
        status = result.status.value
        self.bus.handle(RecordInstallmentCharge(
            f"plan:{due.plan_ref}:{due.seq}:{due.attempt}", due.account, due.plan_ref, due.seq, due.attempt, status,
            result.payment_ref, due.amount, self.today(), decline_code=result.decline_code,
            retry_days=self.retry_days))
        if status == "succeeded":
            report.succeeded += 1
        elif status == "processing":
            report.pending += 1
        else:
            report.failed += 1

    def _charge_once(self, due: DueCharge) -> ChargeResult:
        return charge_installment(self.gateway, due)


def charge_installment(gateway: PaymentGateway, due: DueCharge) -> ChargeResult:
    """One off-session charge of a claimed installment; the same call for the same attempt is the same request."""
    return gateway.charge_off_session(
        customer_ref=due.customer_ref, payment_method_ref=due.payment_method_ref, amount=due.amount,
        idempotency_key=due.idempotency_key,
        metadata={"plan": due.plan_ref, "seq": str(due.seq), "attempt": str(due.attempt)})  # opaque ids only


class AutopayThread(threading.Thread):
    """``run_due`` every ``interval`` seconds inside ``serve`` until ``stop()``."""

    def __init__(self, scheduler: AutopayScheduler, interval: float) -> None:
        super().__init__(name="autopay", daemon=True)
        self.scheduler = scheduler
        self.interval = interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                report = self.scheduler.run_due()
                if report.claimed:
                    log.info("autopay: %s", report.as_json())
            except Exception as exc:  # keep the thread alive; the next tick retries
                log.error("autopay run failed: %s", type(exc).__name__)
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
