"""The intake worker on the real RabbitMQ and PostgreSQL: raw HL7 v2 (forwarded by the MLLP listener with
its stored row, or published straight by an EMR) and FHIR JSON from the inbound queue, posted in batches,
each stored message marked, each ``reply_to`` sender answered with its ACK or OperationOutcome under its
correlation id; bad messages parked with a reason."""

from __future__ import annotations

import json

import pika
import pytest
from fhir_factory import ClaimBundle
from hl7_samples import sample
from rabbitmq_support import declared, depth, drain, running, test_topology, wait_for
from services import amqp_url

from api.bootstrap import Hub
from connectors.hl7_intake import to_store
from connectors.intake import Intake
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import REASON, STORED_ID
from connectors.rabbitmq.workers import IntakeConsumer
from mappings.hl7v2.ack import read_header
from router.adapters.message_store import MessageStatus, MessageStore
from router.queries import account_view

pytestmark = pytest.mark.integration


def dft(uid: str, n: int, amount: str = "100&USD") -> bytes:
    raw = sample("DFT-P03-01.hl7", control_id=f"I{uid}-{n}", account=f"IA{uid}-{n % 3}", mrn=f"IM{uid}-{n % 3}",
                 visit=f"IV{uid}-{n}")
    return raw.replace(b"|100&USD|", f"|{amount}|".encode(), 1)


def worker(url: str, topology: object, hub: Hub, batch: int) -> IntakeConsumer:
    assert hub.local_bus is not None and hub.intake.store is not None
    return IntakeConsumer(url, topology, Intake(hub.local_bus, hub.intake.store), hub.local_bus,  # type: ignore[arg-type]
                          concurrency=2, batch_size=batch)


def msa(ack: bytes) -> tuple[str, str]:
    fields = next(s for s in ack.decode().split("\r") if s.startswith("MSA")).split("|")
    return fields[1], fields[2]


@pytest.mark.parametrize("batch", [1, 20], ids=["one-by-one", "batches"])
def test_hl7_from_the_inbound_queue_is_posted_marked_answered_and_bad_ones_parked(pg_hub: Hub, uid: str,
                                                                                  batch: int) -> None:
    url, topology = amqp_url(), test_topology()
    store = MessageStore(pg_hub.sessions)
    queue = topology.queue("intake")
    good = [dft(uid, n) for n in range(9)]
    bad_amount = dft(uid, 9, amount="12,OO&USD")
    unsupported = dft(uid, 40).replace(b"|DFT^P03", b"|DFT^P99", 1)
    # The MLLP listener kept the first three already; the rest arrive straight from an EMR.
    forwarded = store.store_many([to_store(raw, read_header(raw), "mllp", "peer") for raw in good[:3]])
    sends = [(raw, forwarded[n].id if n < 3 else None) for n, raw in enumerate(good)]
    sends += [(bad_amount, None), (unsupported, None), (good[5], None)]  # the last: a resend once posted
    with declared(url, topology) as channel:
        replies = channel.queue_declare(f"{topology.prefix}.replies", durable=True).method.queue
        for n, (raw, stored) in enumerate(sends):
            headers = {STORED_ID: stored} if stored is not None else {}
            channel.basic_publish(queue.exchange, queue.routing_key, raw, pika.BasicProperties(
                delivery_mode=2, content_type="application/hl7-v2", reply_to=replies, correlation_id=f"corr-{n}",
                message_id=f"m-{n}", headers=headers))
            if n == len(good) - 1:  # everything before the resend is posted first
                with running(worker(url, topology, pg_hub, batch)) as consumer:
                    wait_for(lambda: sum(consumer.settled.values()) == len(good), what="first wave settled")
        with running(worker(url, topology, pg_hub, batch)) as consumer:
            wait_for(lambda: sum(consumer.settled.values()) == 3, what="second wave settled")
            assert consumer.settled[Action.PARK] == 2
        answers = {props.correlation_id: (props.content_type, body) for props, body in drain(channel, replies)}
        parked = drain(channel, queue.parking)
        assert depth(channel, queue.name) == 0
    assert len(answers) == len(sends)
    assert {ct for ct, _ in answers.values()} == {"application/hl7-v2"}
    codes = {corr: msa(body) for corr, (_, body) in answers.items()}
    for n in range(9):
        assert codes[f"corr-{n}"] == ("AA", f"I{uid}-{n}")
    assert codes["corr-9"] == ("AE", f"I{uid}-9") and b"FT1" in answers["corr-9"][1]
    assert codes["corr-10"][0] == "AR" and b"MSH-9" in answers["corr-10"][1]
    assert codes["corr-11"] == ("AA", f"I{uid}-5")
    assert sorted(p.headers[REASON].split(" ")[0] for p, _ in parked) == ["MappingError", "UnsupportedMessage"]

    # Three accounts, three DFTs each (220.00: two FT1 charges), posted once despite the resend.
    for a in range(3):
        with pg_hub.sessions() as session:
            view = account_view(session, f"IA{uid}-{a}")
        assert view is not None and str(view.as_json()["total_balance"]) == "660.00"
    # The forwarded rows were marked in place (no second row); the others were stored by the worker.
    for n in range(9):
        rows = store.search(control_id=f"I{uid}-{n}")
        expected = 2 if n == 5 else 1  # the resend is a row of its own, a duplicate
        assert len(rows) == expected, n
        first = rows[-1]
        assert first.status is MessageStatus.PROCESSED
        assert (first.account, first.claim_key) == (f"IA{uid}-{n % 3}", f"IV{uid}-{n}")
        assert first.channel == ("mllp" if n < 3 else "amqp")
    assert store.search(control_id=f"I{uid}-5")[0].status is MessageStatus.DUPLICATE
    [rejected] = store.search(control_id=f"I{uid}-9")
    assert rejected.status is MessageStatus.REJECTED and rejected.error_location and "FT1" in rejected.error_location


def test_fhir_from_the_inbound_queue_is_answered_with_its_operation_outcome(pg_hub: Hub, uid: str) -> None:
    url, topology = amqp_url(), test_topology()
    queue = topology.queue("intake")
    patient = ClaimBundle(account=f"FA{uid}").patient()
    broken = {"resourceType": "Patient", "birthDate": "not-a-date"}
    with declared(url, topology) as channel:
        replies = channel.queue_declare(f"{topology.prefix}.replies", durable=True).method.queue
        for n, body in enumerate((patient, broken)):
            channel.basic_publish(queue.exchange, queue.routing_key, json.dumps(body).encode(), pika.BasicProperties(
                delivery_mode=2, content_type="application/fhir+json", reply_to=replies, correlation_id=f"f-{n}"))
        with running(worker(url, topology, pg_hub, 10)) as consumer:
            wait_for(lambda: sum(consumer.settled.values()) == 2, what="settled")
        answers = {props.correlation_id: (props.content_type, json.loads(body))
                   for props, body in drain(channel, replies)}
        parked = drain(channel, queue.parking)
    assert {ct for ct, _ in answers.values()} == {"application/fhir+json"}
    assert answers["f-0"][1]["resourceType"] == "OperationOutcome"
    assert answers["f-0"][1]["issue"][0]["severity"] == "information"
    error = answers["f-1"][1]["issue"][0]
    assert error["severity"] == "error" and "birthDate" in json.dumps(error)
    assert len(parked) == 1
