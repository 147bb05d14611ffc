"""Poison messages at volume: 100 malformed messages of 20 kinds mixed into 10,000 valid charges, consumed by two
competing ``rcmhub worker`` processes on the private RabbitMQ node and PostgreSQL (``private_services.py``).

All 100 are dead-lettered with a reason and no PHI in their headers, each delivered at most delivery-limit + 1
times; every valid charge is posted exactly; the queue never stalls (settlements progress every few seconds).
The workers use group commit (``--batch 50``): a poison message in a batch must fail alone. It is also the
faster setting here (10,000 charges in ~44 s against ~66 s with one worker at ``--batch 1``), which keeps the
test's CI time down; one command per transaction is covered at volume by the crash test and for poison
messages by ``test_rabbitmq_flow``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pika
import pytest
from private_services import PrivatePostgres, PrivateRabbitMQ
from rabbitmq_support import (
    Worker,
    assert_ledger_exact,
    declared,
    depth,
    drain,
    expected_totals,
    processed,
    self_pay_charge,
    test_topology,
    wait_for,
    worker_logs,
)

from api.bootstrap import Hub
from connectors.rabbitmq.bus import RabbitBus
from connectors.rabbitmq.publisher import REASON, Publisher
from connectors.rabbitmq.topology import Topology
from router.domain.commands import PostCharges

pytestmark = pytest.mark.integration
VALID = int(os.environ.get("RCMHUB_POISON_VALID", "10000"))  # the acceptance size; smaller for a quick local run
POISON, ACCOUNTS, PUBLISHERS = 100, 200, 4
SSN, NAME = "123-45-6789", "POISONDOE"  # PHI planted in the poison bodies: must never reach a header


def _line(**over: Any) -> list[dict[str, Any]]:
    return [{"line_no": 1, "service_date": "2024-03-01", "code": "99213", "amount": "10.00", **over}]


def _doc(kind: str, body: Any, v: Any = 1) -> bytes:
    return json.dumps({"type": kind, "v": v, "body": body}).encode()


def _charge(uid: str, n: int, **over: Any) -> bytes:
    body = {"source_id": f"hl7:POISON:{uid}-{n}", "account": f"PX{uid}{n}", "claim_key": f"VPX{uid}{n}",
            "patient": {"mrn": f"M{uid}{n}", "family": NAME, "given": "JANE"}, "charges": _line()}
    return _doc("PostCharges", {**body, **over})


def _payment(uid: str, n: int, **over: Any) -> bytes:
    body = {"source_id": f"hl7:POISON:{uid}-{n}", "account": f"PX{uid}{n}", "amount": "5.00", "method": "cash",
            "received_on": "2024-03-02"}
    return _doc("PostPatientPayment", {**body, **over})


# kind -> (body for poison number n, the first word of the reason it must be parked with)
KINDS: dict[str, tuple[Callable[[str, int], bytes], str]] = {
    "binary garbage": (lambda u, n: b"\x00\xff\xfe" + n.to_bytes(4, "big"), "DecodeError"),
    "invalid utf-8": (lambda u, n: b'{"type":"PostCharges","v":1,"body":{"account":"\xff\xfe' + NAME.encode() + b'"}}',
                      "DecodeError"),
    "empty body": (lambda u, n: b"", "DecodeError"),
    "truncated json": (lambda u, n: _charge(u, n)[:-7], "DecodeError"),
    "json array": (lambda u, n: b"[" + _charge(u, n) + b"]", "DecodeError"),
    "unknown type": (lambda u, n: _doc("DropTables", {"ssn": SSN}), "DecodeError"),
    "future version": (lambda u, n: _doc("PostCharges", {}, v=2), "DecodeError"),
    "event on the command queue": (lambda u, n: _doc("PatientRegistered", {"source_id": f"s{n}", "account": "a",
                                                                           "coverages": 1}), "DecodeError"),
    "null body": (lambda u, n: _doc("PostCharges", None), "DecodeError"),
    "missing field": (lambda u, n: _doc("PostPatientPayment", {"source_id": f"hl7:POISON:{u}-{n}",
                                                               "amount": "1.00"}), "DecodeError"),
    "unknown field": (lambda u, n: _charge(u, n, ssn=SSN), "DecodeError"),
    "float money": (lambda u, n: _payment(u, n, amount=1.5), "DecodeError"),
    "impossible date": (lambda u, n: _payment(u, n, received_on="2024-13-45"), "DecodeError"),
    "wrong type": (lambda u, n: _charge(u, n, charges=_line(line_no="one")), "DecodeError"),
    "deeply nested": (lambda u, n: b'{"type":"PostCharges","v":1,"body":' + b"[" * 50_000 + b"]" * 50_000 + b"}",
                      "DecodeError"),
    "NUL in a text field": (lambda u, n: _charge(u, n, account=f"PX{u}\u0000{n}"), "DomainViolation"),
    "not a finite amount": (lambda u, n: _charge(u, n, charges=_line(amount="NaN")), "MappingError"),
    "value too long to store": (lambda u, n: _charge(u, n, charges=_line(code="9" * 5_000)), "DomainViolation"),
    "negative payment": (lambda u, n: _payment(u, n, amount="-5.00"), "DomainViolation"),
    "reversal of an unknown entry": (lambda u, n: _doc("ReverseEntry", {"source_id": f"hl7:POISON:{u}-{n}",
                                                                        "idempotency_key": f"none:{u}:{n}",
                                                                        "reason": NAME}), "DomainViolation"),
}


def publish_all(url: str, topology: Topology, valid: list[PostCharges], poison: list[tuple[str, bytes]]) -> None:
    """``PUBLISHERS`` threads, each with its own confirmed connection; poison spread evenly through the stream."""
    queue = topology.queue("router")
    every = max(1, len(valid) // len(poison))
    errors: list[BaseException] = []

    def run(part: int) -> None:
        try:
            publisher = Publisher(url)
            bus = RabbitBus(publisher, topology)
            for n in range(part, len(valid), PUBLISHERS):
                bus.handle(valid[n])
                if n % every == every // 2 and n // every < len(poison):
                    message_id, body = poison[n // every]
                    props = pika.BasicProperties(message_id=message_id, type="PostCharges", delivery_mode=2,
                                                 content_type="application/json", headers={})
                    publisher.publish(queue.exchange, queue.routing_key, body, props)
            bus.close()
        except BaseException as exc:  # surfaced below, not lost on the thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(p,), daemon=True) for p in range(PUBLISHERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors


class Progress(threading.Thread):
    """Samples what the workers finished (posted + parked) until ``done``: the longest time without progress."""

    def __init__(self, finished: Callable[[], int]) -> None:
        super().__init__(daemon=True)
        self.finished, self.done, self.longest = finished, threading.Event(), 0.0

    def run(self) -> None:
        last, since = 0, 0.0  # measured from the first settlement (worker start-up is not a stall)
        while not self.done.wait(0.5):
            count = self.finished()
            now = time.monotonic()
            if count != last:
                last, since = count, now
            elif since:
                self.longest = max(self.longest, now - since)


def deliveries_of(logs: str, message_id: str) -> int:
    """The first delivery plus every redelivery the workers logged (message ids are not PHI)."""
    return 1 + logs.count(f"message_id={message_id} delivery_count")


def test_a_hundred_poison_messages_in_ten_thousand_are_parked_and_never_stall_the_queue(
        private_rabbitmq: PrivateRabbitMQ, private_postgres: PrivatePostgres, private_hub: Hub, uid: str,
        tmp_path: Path) -> None:
    url, hub, prefix = private_rabbitmq.url, private_hub, f"hl7:CLINIC:{uid}-"
    topology = test_topology()
    queue = topology.queue("router")
    valid = [self_pay_charge(uid, n, ACCOUNTS, tag="PV") for n in range(VALID)]
    kinds = list(KINDS)
    poison = [(f"poison-{uid}-{n}", KINDS[kinds[n % len(kinds)]][0](uid, n)) for n in range(POISON)]
    expected_reason = {message_id: KINDS[kinds[n % len(kinds)]][1] for n, (message_id, _) in enumerate(poison)}
    with declared(url, topology) as channel:
        # Two competing worker processes with group commit.
        workers = [Worker(f"w{n}-{batch}", url, private_postgres.url, topology, tmp_path, "--role", "router",
                          "--concurrency", "4", "--batch", str(batch)) for n, batch in enumerate((50, 50))]
        try:
            started = time.monotonic()
            progress = Progress(lambda: processed(hub, prefix) + depth(channel, queue.parking))
            progress.start()
            publish_all(url, topology, valid, poison)
            published = time.monotonic() - started
            wait_for(lambda: processed(hub, prefix) == VALID, timeout=600, what="every valid charge posted")
            wait_for(lambda: depth(channel, queue.parking) == POISON, timeout=30, what="every poison message parked")
            elapsed = time.monotonic() - started
            wait_for(lambda: depth(channel, queue.name) == 0, what="the work queue drained")
            progress.done.set()
        finally:
            codes = [w.stop() for w in workers]
        assert codes == [0, 0], "graceful SIGTERM shutdown"
        parked = drain(channel, queue.parking)
        assert all(depth(channel, wait) == 0 for _, wait in queue.waits), "nothing went to a retry tier"

    logs = worker_logs(tmp_path)
    assert len(parked) == POISON
    by_id = {props.message_id: (props, body) for props, body in parked}
    assert set(by_id) == set(expected_reason), "exactly the poison messages are parked"
    bodies = dict(poison)
    for message_id, (props, body) in by_id.items():
        reason = props.headers[REASON]
        assert reason.split(" ")[0] == expected_reason[message_id], (message_id, reason)
        assert body == bodies[message_id], "parked as received, for replay"
        headers = json.dumps(props.headers, default=str)
        assert not any(s in headers for s in (SSN, NAME, "JANE", f"PX{uid}")), headers
    most = max(deliveries_of(logs, m) for m in expected_reason)
    assert most <= topology.delivery_limit + 1, "a poison message kept coming back"
    assert logs.count("parked message_id=") == POISON and "unexpected " not in logs
    assert not any(s in logs for s in (SSN, NAME, "JANE", f"PX{uid}", f"PV{uid}")), "no PHI in the logs"
    assert progress.longest < 5.0, f"the queue stalled for {progress.longest:.1f} s"
    shares = [w.log().count("handled PostCharges") for w in workers]
    assert all(share > VALID // 10 for share in shares), f"both workers shared the load: {shares}"
    assert_ledger_exact(hub, expected_totals(valid), prefix, VALID, 3 * VALID)
    print(f"\npoison: {VALID} valid + {POISON} poison of {len(KINDS)} kinds, published in {published:.1f} s by "
          f"{PUBLISHERS} publishers, all settled in {elapsed:.1f} s ({VALID / elapsed:.0f} msg/s, shares {shares}), "
          f"longest pause {progress.longest:.1f} s, max deliveries of a poison message {most}")
