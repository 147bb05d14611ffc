"""Deliveries/s to a local MLLP peer and a local FHIR peer, beside a bare send loop in the same run.

The bare loop sends the same pre-rendered messages over one connection (MllpClient / httpx), waiting for
each ACK or response: the floor set by the peer and the socket. The engine loop is ``DestinationWorker``
delivering stored rows: load, send, and a committed status update per delivery, with the retry machinery
around each send. Run: ``pytest tests/benchmarks/test_bench_outbound.py -m benchmark -s``.

Measured on the shared 2-core box (load 6-11 from other work, so absolute rates swing ~2x between runs; the
ratios are taken in the same run): engine/bare 0.67-1.04 (SQLite) and 0.54-1.15 (PostgreSQL) for MLLP,
0.50-0.98 and 0.75-1.53 for FHIR, i.e. ~160-690 deliveries/s per destination; before status writes were
grouped (one commit per delivery) PostgreSQL managed 63-78/s (0.13-0.22 of bare). Posted 835 -> relay,
render (FHIR validation ~3 ms a resource) -> delivered to two destinations: 58-180/s.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from decimal import Decimal

import httpx
import pytest
from outbound_peers import FhirPeer, Hl7Peer

from api.bootstrap import Hub
from api.demo import practice_messages, remittance_835
from connectors.mllp_client import MllpClient
from connectors.outbound.config import parse_destinations
from connectors.outbound.engine import DestinationWorker, OutboundEngine
from connectors.outbound.plan import Planned
from connectors.outbound.store import DeliveryStore, add_planned
from connectors.outbound.transports import transport_for
from mappings.fhir.outbound import FhirOptions, fhir_requests
from mappings.hl7v2.dft_out import DftOptions, dft_messages
from router.adapters.orm import OutboxRow
from router.domain.ledger import Balances, EntryKind, Responsibility
from router.domain.results import AccountResult, PostedEntry, Result

pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(600)]
N = 400


def _result(n: int) -> Result:
    entries = tuple(PostedEntry(f"bench:{n}:{i}", kind, Responsibility.INSURANCE, Decimal(amount), claim=f"V{n}",
                                charge_line=1, procedure="99213", line_charge=Decimal("120.00"), payer="ACME",
                                trace_number="EFT1", group_code=group, reason_code=carc)
                    for i, (kind, amount, group, carc) in enumerate([
                        (EntryKind.INSURANCE_PAYMENT, "-75.00", None, None),
                        (EntryKind.CONTRACTUAL_ADJUSTMENT, "-20.00", "CO", "45"),
                        (EntryKind.TRANSFER_TO_PATIENT, "-25.00", "PR", "3")]))
    account = AccountResult(f"BENCH-{n}", "", entries, Balances(Decimal("120.00"), Decimal("0.00"), Decimal("25.00")))
    return Result("Benchmark", f"bench:{n}", "", (account,))


def _stored(hub: Hub, uid: str, destination: str, payloads: list[Planned]) -> list[int]:
    with hub.sessions() as session, session.begin():
        outbox = OutboxRow(event_type="Benchmark", source_id=f"bench:{uid}", payload="{}",
                           published_at=datetime.now(UTC))
        session.add(outbox)
        session.flush()
        return [i for i, _ in add_planned(session, outbox.id, "bench", "Benchmark", payloads)]


def _feed(hub: Hub, tag: str) -> None:
    charges, _ = practice_messages(tag)
    hub.intake.ingest("".join(m for _, m in charges).encode(), "charges")
    hub.intake.ingest(remittance_835(tag).encode(), "835")


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds else float("inf")


def test_delivery_throughput_against_a_bare_send_loop(hub: Hub, uid: str) -> None:
    now = datetime.now(UTC)
    dfts = [m for n in range(N) for m in dft_messages(_result(n), DftOptions(), now)]
    fhirs = [r for n in range(N) for r in fhir_requests(_result(n), FhirOptions(), now)]
    hl7_peer, fhir_peer = Hl7Peer().start(), FhirPeer().start()
    figures: dict[str, float] = {}
    try:
        client = MllpClient("127.0.0.1", hl7_peer.port)
        started = time.perf_counter()
        for m in dfts:
            client.send(m.text.replace("RH", "BA", 1).encode())  # distinct MSH-10s: the peer books each
        figures["mllp bare"] = _rate(len(dfts), time.perf_counter() - started)
        client.close()
        with httpx.Client() as http:
            started = time.perf_counter()
            for r in fhirs:
                http.put(f"{fhir_peer.url}/Account", params={"identifier": r.condition.split("=", 1)[1] + "b"},
                         content=r.body, headers={"Content-Type": "application/fhir+json"})
            figures["fhir bare"] = _rate(len(fhirs), time.perf_counter() - started)

        destinations = parse_destinations({"destinations": [
            {"name": f"bench-hl7-{uid.lower()}", "formats": ["hl7v2-dft"],
             "transport": {"mllp": {"host": "127.0.0.1", "port": hl7_peer.port}}},
            {"name": f"bench-fhir-{uid.lower()}", "formats": ["fhir"],
             "transport": {"fhir": {"base_url": fhir_peer.url}}}]})
        store = DeliveryStore(hub.sessions)
        for destination, payloads in (
                (destinations.destinations[0], [Planned(f"bench-hl7-{uid.lower()}", "hl7v2-dft", m.item, "", "", "", "",
                                                        m.text) for m in dfts]),
                (destinations.destinations[1], [Planned(f"bench-fhir-{uid.lower()}", "fhir", r.item, "", r.method,
                                                        r.resource_type, r.condition, r.body) for r in fhirs])):
            ids = _stored(hub, uid, destination.name, payloads)
            worker = DestinationWorker(destination, store, transport_for(destination))
            started = time.perf_counter()
            for part in range(0, len(ids), 100):  # as the embedded loop takes them
                worker.deliver_batch(ids[part:part + 100])
            elapsed = time.perf_counter() - started
            worker.transport.close()
            assert worker.delivered == len(ids) and not store.next_pending(destination.name, after=0)
            figures[f"{destination.formats[0]} engine"] = _rate(len(ids), elapsed)
        assert len(hl7_peer.booked) == 2 * len(dfts)

        # End to end: 835 posted -> relay plans and renders -> delivered, for a few demo practices.
        engine_destinations = parse_destinations({"destinations": [
            {"name": f"e2e-hl7-{uid.lower()}", "formats": ["hl7v2-dft"], "filter": {"accounts": [f"DEMO-{uid}*"]},
             "transport": {"mllp": {"host": "127.0.0.1", "port": hl7_peer.port}}},
            {"name": f"e2e-fhir-{uid.lower()}", "formats": ["fhir"], "filter": {"accounts": [f"DEMO-{uid}*"]},
             "transport": {"fhir": {"base_url": fhir_peer.url}}}]})
        for i in range(20):
            _feed(hub, f"{uid}{i:02d}")
        # Scoped to this run's events: the shared PostgreSQL test database holds other runs' outbox rows too.
        engine = OutboundEngine(hub.sessions, engine_destinations, idle_seconds=0.02,
                                scope=OutboxRow.source_id.contains(uid))
        started = time.perf_counter()
        engine.start()
        try:
            assert engine.wait_idle(120)
        finally:
            engine.stop()
        elapsed = time.perf_counter() - started
        with hub.sessions() as session:
            from sqlalchemy import func, select

            from router.adapters.orm_outbound import DeliveryRow
            delivered = session.scalar(select(func.count()).select_from(DeliveryRow).where(
                DeliveryRow.destination.in_([d.name for d in engine_destinations.destinations]),
                DeliveryRow.status == "delivered"))
        figures["relay+render+deliver (2 destinations)"] = _rate(int(delivered or 0), elapsed)
    finally:
        hl7_peer.stop()
        fhir_peer.stop()
    backend = hub.engine.dialect.name
    print(f"\noutbound deliveries/s on {backend} (N={N} accounts):")
    for name, value in figures.items():
        print(f"  {name:40s} {value:8.0f}/s")
    print(f"  MLLP engine / bare = {figures['hl7v2-dft engine'] / figures['mllp bare']:.2f}")
    print(f"  FHIR engine / bare = {figures['fhir engine'] / figures['fhir bare']:.2f}")
    assert figures["hl7v2-dft engine"] > 0 and figures["fhir engine"] > 0
