"""The intake worker's side of the MLLP forwarder publishing while it stores (``Hl7Batch`` on the real
PostgreSQL): a forwarded copy can arrive before its row is committed, after the store judged it a resend or
a reused control id, or naming a row whose store failed. Each is handled without posting twice or losing it.
And a message an EMR published itself is stored once, however often a transient error makes the worker
try again (``IntakeConsumer.process_many``, no broker needed)."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pika
import pytest
from hl7_samples import sample
from rabbitmq_support import test_topology
from services import amqp_url

from api.bootstrap import Hub
from connectors import hl7_batch
from connectors.hl7_batch import Hl7Batch, Inbound
from connectors.hl7_intake import to_store
from connectors.intake import Intake
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import STORED_ID
from connectors.rabbitmq.workers import IntakeConsumer
from mappings.hl7v2.ack import read_header
from router.adapters.message_store import MessageStatus, MessageStore
from router.bus import InProcessBus
from router.domain.errors import StoreUnavailable
from router.queries import account_view

pytestmark = pytest.mark.integration


def dft(uid: str, control: str = "", amount: str = "100&USD") -> bytes:
    raw = sample("DFT-P03-01.hl7", control_id=control or f"F{uid}", account=f"FA{uid}", mrn=f"FM{uid}",
                 visit=f"FV{uid}")
    return raw.replace(b"|100&USD|", f"|{amount}|".encode(), 1)


@pytest.fixture
def store(pg_hub: Hub) -> MessageStore:
    assert pg_hub.intake.store is not None
    return pg_hub.intake.store


@pytest.fixture
def batch(pg_hub: Hub, store: MessageStore) -> Hl7Batch:
    assert pg_hub.local_bus is not None
    return Hl7Batch(pg_hub.local_bus, store)


def balance(hub: Hub, uid: str) -> Decimal | None:
    with hub.sessions() as session:
        view = account_view(session, f"FA{uid}")
    return None if view is None else Decimal(str(view.as_json()["total_balance"]))


def forwarded_copy(store: MessageStore, raw: bytes) -> int:
    """What the MLLP forwarder does: reserve the row id, publish, store (here: only reserve)."""
    [row_id] = store.reserve_ids(1) or []
    return row_id


def keep(store: MessageStore, raw: bytes, row_id: int) -> MessageStatus:
    [row] = store.store_many([to_store(raw, read_header(raw), "mllp", "peer")], row_ids=[row_id])
    return row.status


def test_a_row_committed_while_the_worker_waits_is_posted_and_marked_in_place(
        pg_hub: Hub, store: MessageStore, batch: Hl7Batch, uid: str) -> None:
    raw = dft(uid)
    row_id = forwarded_copy(store, raw)
    later = threading.Timer(0.05, keep, (store, raw, row_id))
    later.start()
    [got] = batch.receive([Inbound(raw, row_id, wants_ack=False)])
    later.join()
    assert got.error is None and not got.outcome.duplicate
    [row] = store.search(control_id=f"F{uid}")
    assert (row.id, row.status, row.account) == (row_id, MessageStatus.PROCESSED, f"FA{uid}")
    assert balance(pg_hub, uid) == Decimal("220.00")  # the sample's two FT1 charges


def test_copies_of_a_resend_and_of_a_reused_control_id_are_skipped_and_a_redelivery_posts_nothing(
        pg_hub: Hub, store: MessageStore, batch: Hl7Batch, uid: str) -> None:
    raw = dft(uid)
    first = forwarded_copy(store, raw)
    assert keep(store, raw, first) is MessageStatus.RECEIVED
    [posted] = batch.receive([Inbound(raw, first, wants_ack=False)])
    assert posted.error is None and balance(pg_hub, uid) == Decimal("220.00")
    resend, other = forwarded_copy(store, raw), forwarded_copy(store, dft(uid, amount="999&USD"))
    assert keep(store, raw, resend) is MessageStatus.DUPLICATE
    assert keep(store, dft(uid, amount="999&USD"), other) is MessageStatus.CONFLICT

    got = batch.receive([Inbound(raw, resend, wants_ack=False), Inbound(dft(uid, amount="999&USD"), other),
                         Inbound(raw, first, wants_ack=False)])  # the last: a redelivery once processed
    assert [g.outcome.verdict.name for g in got] == ["ACCEPTED", "CONFLICT", "ACCEPTED"]
    assert got[0].outcome.duplicate and got[2].outcome.duplicate
    assert got[1].ack is not None and b"MSA|AE|" in got[1].ack  # a sender that asked is told why
    assert balance(pg_hub, uid) == Decimal("220.00")  # nothing posted again, the conflict not at all
    statuses = {m.id: m.status for m in store.search(control_id=f"F{uid}")}
    assert statuses == {first: MessageStatus.PROCESSED, resend: MessageStatus.DUPLICATE,
                        other: MessageStatus.CONFLICT}


def test_a_copy_whose_row_never_came_is_kept_by_the_worker_and_the_senders_resend_is_then_a_duplicate(
        pg_hub: Hub, store: MessageStore, batch: Hl7Batch, uid: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(hl7_batch, "ROW_WAITS", (0.01, 0.02))
    raw = dft(uid)
    lost = forwarded_copy(store, raw)  # published, then the store failed: the sender was told "send again"
    [got] = batch.receive([Inbound(raw, lost, wants_ack=False)])
    assert got.error is None and balance(pg_hub, uid) == Decimal("220.00")
    assert "1 forwarded message(s) have no stored row" in caplog.text and f"F{uid}" not in caplog.text
    [kept] = store.search(control_id=f"F{uid}")
    assert kept.id != lost and kept.status is MessageStatus.PROCESSED
    assert store.get(lost) is None
    resend = forwarded_copy(store, raw)  # the sender's resend, through the forwarder
    assert keep(store, raw, resend) is MessageStatus.DUPLICATE
    [again] = batch.receive([Inbound(raw, resend, wants_ack=False)])
    assert again.outcome.duplicate and balance(pg_hub, uid) == Decimal("220.00")


class _Blips:
    """The bus, with the database "away" for the first ``failures`` batches."""

    def __init__(self, bus: InProcessBus, failures: int) -> None:
        self.bus, self.failures = bus, failures

    def handle_many(self, commands: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise StoreUnavailable("database unavailable: a test blip")
        return self.bus.handle_many(commands)


def _consumer(hub: Hub, store: MessageStore, failures: int, hold_seconds: float) -> IntakeConsumer:
    assert hub.local_bus is not None
    return IntakeConsumer(amqp_url(), test_topology(), Intake(hub.local_bus, store),
                          _Blips(hub.local_bus, failures), hold_seconds=hold_seconds)  # type: ignore[arg-type]


def test_a_database_blip_while_posting_retries_without_storing_the_message_twice(
        pg_hub: Hub, store: MessageStore, uid: str) -> None:
    raw, props = dft(uid), pika.BasicProperties(content_type="application/hl7-v2")
    [verdict] = _consumer(pg_hub, store, failures=1, hold_seconds=30).process_many([(raw, props)])
    assert verdict.action is Action.ACK and balance(pg_hub, uid) == Decimal("220.00")
    [row] = store.search(control_id=f"F{uid}")  # one row: before, the first attempt's stayed 'received'
    assert row.status is MessageStatus.PROCESSED


def test_a_retried_copy_names_the_row_its_first_attempt_kept(pg_hub: Hub, store: MessageStore, uid: str) -> None:
    raw, props = dft(uid), pika.BasicProperties(content_type="application/hl7-v2")
    [verdict] = _consumer(pg_hub, store, failures=10**6, hold_seconds=0.3).process_many([(raw, props)])
    [kept] = store.search(control_id=f"F{uid}")
    assert verdict.action is Action.RETRY and verdict.headers == {STORED_ID: kept.id}
    again = pika.BasicProperties(content_type="application/hl7-v2", headers=verdict.headers)  # the retried copy
    [verdict] = _consumer(pg_hub, store, failures=0, hold_seconds=30).process_many([(raw, again)])
    assert verdict.action is Action.ACK and balance(pg_hub, uid) == Decimal("220.00")
    assert [(m.id, m.status) for m in store.search(control_id=f"F{uid}")] == [(kept.id, MessageStatus.PROCESSED)]
