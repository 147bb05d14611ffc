"""MLLP store-and-forward (RabbitMQ mode) on the real RabbitMQ and PostgreSQL: a frame is answered AA only
once its raw message is committed and publisher-confirmed on the intake queue; resends, conflicts, unsupported
types, an unreachable broker or database, enhanced mode, many connections, and a stop while a batch is out."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import hl7
import pika
import pytest
from hl7_factory import Dft, Ft1
from hl7_samples import unique
from rabbitmq_support import declared, drain, test_topology
from services import amqp_url, postgres_url
from sqlalchemy.orm import sessionmaker

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors.hl7_forwarder import Hl7Forwarder
from connectors.hl7_listener import Hl7Listener
from connectors.mllp import MllpClient
from connectors.rabbitmq.async_publisher import AsyncPublisher
from connectors.rabbitmq.publisher import ATTEMPT, CONTROL_ID, STORED_ID
from connectors.rabbitmq.topology import Topology
from router.adapters.db import make_engine
from router.adapters.message_store import MessageStatus, MessageStore, StoredMessage
from router.domain.errors import DeliveryFailed

pytestmark = pytest.mark.timeout(120)

CLOSED_PORT = "amqp://guest:guest@127.0.0.1:9/%2F"  # nothing listens there: connection refused


@pytest.fixture(scope="module")
def topology() -> Topology:
    return test_topology()


@pytest.fixture(scope="module")
def channel(topology: Topology) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    with declared(amqp_url(), topology) as channel:
        yield channel


@pytest.fixture
def store(pg_hub: Hub) -> MessageStore:
    assert pg_hub.intake.store is not None
    return pg_hub.intake.store


@contextmanager
def listening(hub: Hub, topology: Topology, store: MessageStore | None = None, url: str = "") -> Iterator[int]:
    store = store or hub.intake.store
    assert store is not None
    forwarder = Hl7Forwarder(store, AsyncPublisher(url or amqp_url(), connect_timeout=2), topology)
    server = Hl7Listener(hub.intake, forwarder=forwarder).run_in_thread()
    try:
        yield server.port
    finally:
        server.stop(grace=5)


@pytest.fixture(scope="module")
def port(pg_hub: Hub, topology: Topology, channel: object) -> Iterator[int]:
    with listening(pg_hub, topology) as port:
        yield port


def send(port: int, payload: bytes) -> hl7.Message:
    with MllpClient("127.0.0.1", port) as client:
        return hl7.parse(client.send(payload, timeout=30).decode())


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


def err_text(ack: hl7.Message) -> str:
    return str(ack.unescape(str(ack.segment("ERR")[8])))


def dft(uid: str, amount: str = "10.00", control: str = "") -> bytes:
    return Dft(control or f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1(amount)]).er7().encode()


def forwarded(channel: pika.adapters.blocking_connection.BlockingChannel, topology: Topology,
              uid: str) -> list[tuple[pika.BasicProperties, bytes]]:
    """This test's messages on the intake queue (control ids carry the test's uid)."""
    return [(p, b) for p, b in drain(channel, topology.queue("intake").name) if uid in str(p.headers[CONTROL_ID])]


def test_an_aa_comes_only_once_the_raw_message_is_stored_and_confirmed_on_the_intake_queue(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    payload = dft(uid)
    assert msa(send(port, payload)) == ("AA", f"C{uid}")
    # At the ACK: the row is committed (another connection sees it) and the message is on the queue.
    other = make_engine(postgres_url())
    [row] = MessageStore(sessionmaker(other)).search(control_id=f"C{uid}")
    other.dispose()
    [(props, body)] = forwarded(channel, topology, uid)
    assert body == payload and (row.status, row.channel, row.message_type) == (
        MessageStatus.RECEIVED, "mllp", "DFT^P03")
    assert (props.content_type, props.type, props.message_id, props.delivery_mode) == (
        "application/hl7-v2", "DFT^P03", row.digest, pika.DeliveryMode.Persistent.value)
    assert props.headers[STORED_ID] == row.id and props.headers[ATTEMPT] == 0
    assert props.headers[CONTROL_ID] == f"C{uid}" and props.timestamp
    assert set(props.headers) <= {STORED_ID, ATTEMPT, CONTROL_ID, "x-delivery-count"}  # no PHI in metadata
    assert store.raw(row.id) == payload


def test_many_connections_at_once_each_get_their_aa_and_every_message_is_forwarded_once(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    def one_connection(k: int) -> list[tuple[str, str]]:
        with MllpClient("127.0.0.1", port) as client:
            return [msa(hl7.parse(client.send(dft(uid, control=f"C{uid}-{k}-{n}"), timeout=30).decode()))
                    for n in range(10)]

    with ThreadPoolExecutor(20) as pool:
        answers = [a for answers in pool.map(one_connection, range(20)) for a in answers]
    assert sorted(answers) == sorted(("AA", f"C{uid}-{k}-{n}") for k in range(20) for n in range(10))
    on_queue = forwarded(channel, topology, uid)
    ids = sorted(int(p.headers[STORED_ID]) for p, _ in on_queue)
    assert len(ids) == len(set(ids)) == 200
    rows = {m.id: m for m in store.search(sender="CLINIC", status=MessageStatus.RECEIVED, limit=100_000)
            if m.control_id.startswith(f"C{uid}-")}
    assert sorted(rows) == ids
    assert all(rows[int(p.headers[STORED_ID])].control_id == p.headers[CONTROL_ID] for p, _ in on_queue)


def test_a_resend_is_forwarded_again_while_received_and_answered_aa_unpublished_once_processed(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    payload = dft(uid)
    assert msa(send(port, payload)) == msa(send(port, payload)) == ("AA", f"C{uid}")
    first, second = forwarded(channel, topology, uid)  # not processed yet: nothing ACKed may be lost
    store.mark_many([int(p.headers[STORED_ID]) for p, _ in (first, second)], MessageStatus.PROCESSED)  # the worker
    restamped = payload.replace(b"|20240301120000||DFT", b"|20240301120500||DFT")  # a new MSH-7 only
    assert msa(send(port, restamped)) == ("AA", f"C{uid}")
    resend = store.search(control_id=f"C{uid}")
    assert [m.status for m in resend] == [MessageStatus.DUPLICATE, MessageStatus.PROCESSED, MessageStatus.PROCESSED]
    # Its copy went out while it was stored, before the store judged it: it names the duplicate row, which
    # the intake worker reads first and skips (test_rabbitmq_intake).
    assert [p.headers[STORED_ID] for p, _ in forwarded(channel, topology, uid)] == [resend[0].id]


def test_other_content_under_a_used_control_id_is_ae_at_msh_10_and_not_forwarded(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    assert msa(send(port, dft(uid, "10.00"))) == ("AA", f"C{uid}")
    ack = send(port, dft(uid, "99.00"))
    assert msa(ack) == ("AE", f"C{uid}")
    assert str(ack.segment("ERR")[2]) == "MSH^1^10" and str(ack.segment("ERR")[3][0][0]) == "205"
    assert "different content" in err_text(ack)
    rows = store.search(control_id=f"C{uid}")
    assert [m.status for m in rows] == [MessageStatus.CONFLICT, MessageStatus.RECEIVED]
    # The conflicting copy went out while it was stored; it names its conflict row, so the worker skips it.
    assert [p.headers[STORED_ID] for p, _ in forwarded(channel, topology, uid)] == [rows[1].id, rows[0].id]


def test_an_unsupported_type_or_an_unreadable_msh_is_ar_and_kept_rejected(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    merge = send(port, unique("ADT-A40-01.hl7", uid).replace(b"|NE|NE", b"||"))
    assert msa(merge) == ("AR", f"C{uid}")
    assert "ADT^A40 is not supported" in err_text(merge) and str(merge.segment("ERR")[3][0][0]) == "201"
    [kept] = store.search(control_id=f"C{uid}")
    assert (kept.status, kept.error_location, kept.message_type) == (MessageStatus.REJECTED, "MSH-9", "ADT^A40")
    klingon = send(port, dft(uid, control=f"K{uid}").replace(b"|P|2.5\r", b"|P|2.5||||||KLINGON\r"))
    assert msa(klingon) == ("AR", f"K{uid}") and "unsupported character set" in err_text(klingon)
    assert [(m.status, m.error_location) for m in store.search(control_id=f"K{uid}")] == [
        (MessageStatus.REJECTED, "MSH-18")]
    unreadable = f"not HL7 at all {uid}".encode()
    assert msa(send(port, unreadable)) == ("AR", "")  # no MSH: nothing to echo in MSA-2
    assert unreadable in [store.raw(m.id) for m in store.search(status=MessageStatus.REJECTED, limit=20)]
    assert forwarded(channel, topology, uid) == []


def test_an_unreachable_broker_is_ae_send_again_and_the_row_stays_received_for_the_resend(
        pg_hub: Hub, store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    payload = dft(uid)
    enhanced = dft(uid, control=f"E{uid}").replace(b"|P|2.5\r", b"|P|2.5|||AL|AL\r")
    with listening(pg_hub, topology, url=CLOSED_PORT) as down:
        ack = send(down, payload)
        assert msa(ack) == ("AE", f"C{uid}") and "send again" in err_text(ack)
        assert msa(send(down, enhanced)) == ("CE", f"E{uid}")
    [kept] = store.search(control_id=f"C{uid}")
    assert kept.status is MessageStatus.RECEIVED and "not forwarded" in (kept.error or "")
    assert msa(send(port, payload)) == ("AA", f"C{uid}")  # the resend, with the broker back, goes through
    assert [int(p.headers[STORED_ID]) for p, _ in forwarded(channel, topology, uid)] == [
        store.search(control_id=f"C{uid}")[0].id]


def test_an_unreachable_database_is_ae_send_again_and_nothing_is_forwarded(
        pg_hub: Hub, channel: pika.adapters.blocking_connection.BlockingChannel, topology: Topology,
        uid: str) -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    with listening(pg_hub, topology, store=MessageStore(sessionmaker(engine))) as down:
        acks = [send(down, dft(uid)) for _ in range(2)]  # the second: the failed batch freed the store
    engine.dispose()
    for ack in acks:
        assert msa(ack) == ("AE", f"C{uid}") and "send again" in err_text(ack)
    assert forwarded(channel, topology, uid) == []  # no row id could be reserved: nothing went out


def test_enhanced_mode_answers_ca_at_store_and_confirm_and_nothing_when_the_sender_asks_for_never(
        store: MessageStore, port: int, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str) -> None:
    always = dft(uid, control=f"C1{uid}").replace(b"|P|2.5\r", b"|P|2.5|||AL|NE\r")
    assert msa(send(port, always)) == ("CA", f"C1{uid}")
    never = dft(uid, control=f"C2{uid}").replace(b"|P|2.5\r", b"|P|2.5|||NE|NE\r")
    with MllpClient("127.0.0.1", port) as client, pytest.raises(DeliveryFailed, match="no MLLP reply"):
        client.send(never, timeout=1.0)
    # Asked for no answer, the message is stored and forwarded all the same.
    assert sorted(p.headers[CONTROL_ID] for p, _ in forwarded(channel, topology, uid)) == [f"C1{uid}", f"C2{uid}"]
    assert [m.status for m in store.search(control_id=f"C2{uid}")] == [MessageStatus.RECEIVED]


class _SlowStore(MessageStore):
    """Holds each batch in the store long enough for the listener to be stopped meanwhile."""

    def __init__(self, store: MessageStore) -> None:
        super().__init__(store.sessions)
        self.entered = threading.Event()

    def store_many(self, items: object, row_ids: object = None) -> list[StoredMessage]:  # type: ignore[override]
        self.entered.set()
        time.sleep(0.5)
        return super().store_many(items, row_ids)  # type: ignore[arg-type]


def test_stopping_the_listener_lets_the_batch_in_flight_finish_and_answer(
        pg_hub: Hub, store: MessageStore, channel: pika.adapters.blocking_connection.BlockingChannel,
        topology: Topology, uid: str, tmp_path: Path) -> None:
    slow = _SlowStore(store)
    forwarder = Hl7Forwarder(slow, AsyncPublisher(amqp_url()), topology)
    server = Hl7Listener(pg_hub.intake, forwarder=forwarder).run_in_thread()
    with ThreadPoolExecutor(1) as pool:
        answer = pool.submit(send, server.port, dft(uid))
        assert slow.entered.wait(10)
        server.stop(grace=10)  # while the batch is being stored
        assert msa(answer.result(timeout=30)) == ("AA", f"C{uid}")
    [(props, _)] = forwarded(channel, topology, uid)
    assert props.headers[STORED_ID] == store.search(control_id=f"C{uid}")[0].id


def test_without_pre_ping_a_dropped_database_connection_costs_one_send_again_then_heals(
        pg_hub: Hub, channel: pika.adapters.blocking_connection.BlockingChannel, topology: Topology,
        uid: str) -> None:
    # serve gives the forwarder a pool without pre-ping (one round trip less per batch): check the price.
    name = f"rcmhub-test-{uid}"
    engine = make_engine(postgres_url(), pool_pre_ping=False, connect_args={"application_name": name})
    with listening(pg_hub, topology, store=MessageStore(sessionmaker(engine))) as port:
        assert msa(send(port, dft(uid, control=f"C1{uid}"))) == ("AA", f"C1{uid}")
        with pg_hub.engine.begin() as conn:  # only this test's own sessions, never the shared server
            conn.exec_driver_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                                 (name,))
        dropped = send(port, dft(uid, control=f"C2{uid}"))
        assert msa(dropped) == ("AE", f"C2{uid}") and "send again" in err_text(dropped)
        assert msa(send(port, dft(uid, control=f"C2{uid}"))) == ("AA", f"C2{uid}")
    engine.dispose()
    # The failed store's copy went out while it was stored: three copies, one naming a row that never came
    # (the intake worker keeps that one itself once it has waited for the row; test_rabbitmq_intake).
    copies = forwarded(channel, topology, uid)
    assert sorted(p.headers[CONTROL_ID] for p, _ in copies) == [f"C1{uid}", f"C2{uid}", f"C2{uid}"]
    kept = pg_hub.intake.store
    assert kept is not None
    assert sorted(kept.get(p.headers[STORED_ID]) is None for p, _ in copies) == [False, False, True]


def test_on_sqlite_which_cannot_reserve_ids_a_batch_is_published_after_its_commit(
        channel: pika.adapters.blocking_connection.BlockingChannel, topology: Topology, uid: str,
        tmp_path: Path) -> None:
    hub = build(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path, amqp_url=""))
    try:
        assert hub.intake.store is not None and hub.intake.store.reserve_ids(1) is None
        with listening(hub, topology) as port:
            assert msa(send(port, dft(uid))) == ("AA", f"C{uid}")
            assert msa(send(port, dft(uid, "99.00")))[0] == "AE"
        rows = hub.intake.store.search(control_id=f"C{uid}")
        assert [m.status for m in rows] == [MessageStatus.CONFLICT, MessageStatus.RECEIVED]
        # Judged before it was published: the conflict never left.
        assert [p.headers[STORED_ID] for p, _ in forwarded(channel, topology, uid)] == [rows[1].id]
    finally:
        hub.close()
