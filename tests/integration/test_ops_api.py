"""IT operations over HTTP: queues (embedded tables, RabbitMQ management API, AMQP fallback), dead letters
(embedded message store and RabbitMQ parking queues: list, inspect, replay, discard, audited, payload only for a
PHI role), message trace, audit search and Prometheus metrics."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import httpx
import pika
import pytest
from auth_support import staff_client
from fastapi.testclient import TestClient
from hl7_factory import Dft, Ft1
from rabbitmq_support import declared, depth, running, test_topology, wait_for
from services import amqp_url, postgres_url
from sqlalchemy import select, update
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub, build
from api.settings import Settings
from connectors import queue_stats
from connectors.rabbitmq.consumer import Action
from connectors.rabbitmq.publisher import ORIGIN_QUEUE, REASON, command_properties
from connectors.rabbitmq.workers import CommandConsumer
from mappings.hl7v2 import er7
from router import codec
from router.adapters.message_store import digest_of
from router.adapters.orm import AuditRow, MessageRow, OutboxRow
from router.adapters.orm_outbound import DeliveryRow
from router.domain.commands import PostCharges
from router.domain.model import ChargeLine, Patient
from router.queries import account_view


def _audit(hub: Hub, action: str, object_id: str) -> list[AuditRow]:
    with hub.sessions() as s:
        return list(s.scalars(select(AuditRow).where(AuditRow.action == action, AuditRow.message_id == object_id)))


def _left_for_replay(hub: Hub, uid: str, family: str) -> str:
    """A DFT stored, then left ``received`` by a transient failure (the database went away) ten minutes ago."""
    raw = Dft(f"LOST{uid}", f"A{uid}", visit=f"V{uid}", family=family, lines=[Ft1("25.00")]).er7().encode()
    assert hub.intake.hl7.store is not None
    stored = hub.intake.hl7.store.store(raw, "mllp", "peer", "hl7v2", "DFT^P03", "CLINIC", f"LOST{uid}",
                                        digest=digest_of(er7.canonical(raw)))
    with hub.sessions.begin() as s:
        s.execute(update(MessageRow).where(MessageRow.id == stored.id)
                  .values(received_at=datetime.now(UTC) - timedelta(minutes=10)))
    return f"msg-{stored.id}"


def test_embedded_dead_letter_metadata_for_it_payload_for_supervisor_replay_posts_and_everything_is_audited(
        hub: Hub, uid: str) -> None:
    phi = f"ZZPHI{uid}"
    letter = _left_for_replay(hub, uid, phi)
    it, supervisor = staff_client(hub, "it-ops"), staff_client(hub, "billing-supervisor")
    # Newest arrivals first: a shared database holds many newer rejections than this backdated one.
    listed = it.get("/api/v1/ops/dead-letters", params={"limit": 10_000}).json()["dead_letters"]
    mine = next(d for d in listed if d["id"] == letter)
    assert (mine["type"], mine["source"], mine["body"]) == ("DFT^P03", "store", None)
    assert phi not in it.get("/api/v1/ops/dead-letters").text
    refused = it.get(f"/api/v1/ops/dead-letters/{letter}", params={"body": True})
    assert refused.status_code == 403 and phi not in refused.text
    assert [r.outcome for r in _audit(hub, "dlq.show_body", letter)] == ["denied"]
    assert phi not in it.get(f"/api/v1/ops/dead-letters/{letter}").text  # metadata only
    shown = supervisor.get(f"/api/v1/ops/dead-letters/{letter}", params={"body": True}).json()
    assert phi in shown["body"] and shown["size"] == len(shown["body"].encode())
    assert [r.outcome for r in _audit(hub, "dlq.show_body", letter)] == ["denied", "ok"]

    replayed = it.post(f"/api/v1/ops/dead-letters/{letter}/replay")
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["outcome"] == "accepted"
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and view.as_json()["charges"] == "25.00"
    assert letter not in {d["id"] for d in it.get("/api/v1/ops/dead-letters", params={"limit": 10_000}).json()[
        "dead_letters"]}
    assert it.post(f"/api/v1/ops/dead-letters/{letter}/replay").status_code == 404  # replayed once only
    (audit,) = _audit(hub, "dlq.replay", letter)
    assert audit.actor.startswith("user-") and audit.object_type == "dead_letter" and phi not in audit.detail
    trace = it.get("/api/v1/ops/trace", params={"q": f"LOST{uid}"}).json()
    assert [m["status"] for m in trace["messages"]] == ["replayed", "processed"]
    assert next(p["kind"] for p in trace["postings"]) == "charge" and phi not in str(trace)


def test_embedded_discard_marks_the_message_and_a_non_phi_role_sees_reasons_without_quoted_values(
        hub: Hub, uid: str) -> None:
    it = staff_client(hub, "it-ops")
    bad = Dft(f"BAD{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("1O.00")]).er7()
    hub.intake.receive_hl7(bad)
    with hub.sessions() as s:
        row_id = s.scalar(select(MessageRow.id).where(MessageRow.control_id == f"BAD{uid}"))
    letter = f"msg-{row_id}"
    (mine,) = [d for d in it.get("/api/v1/ops/dead-letters").json()["dead_letters"] if d["id"] == letter]
    assert mine["reason"].startswith("FT1") and "1O.00" not in mine["reason"] and "'…'" in mine["reason"]
    supervisor = staff_client(hub, "billing-supervisor")
    (full,) = [d for d in supervisor.get("/api/v1/ops/dead-letters").json()["dead_letters"] if d["id"] == letter]
    assert "1O.00" in full["reason"]
    assert it.post(f"/api/v1/ops/dead-letters/{letter}/discard").status_code == 200
    with hub.sessions() as s:
        assert s.scalar(select(MessageRow.status).where(MessageRow.id == row_id)) == "discarded"
    assert len(_audit(hub, "dlq.discard", letter)) == 1
    assert it.post("/api/v1/ops/dead-letters/not-an-id/discard").status_code == 404


def test_embedded_queues_report_the_broker_shape_with_the_oldest_waiting_message(hub: Hub, uid: str) -> None:
    _left_for_replay(hub, uid, "DOE")
    body = staff_client(hub, "it-ops").get("/api/v1/ops/queues").json()
    assert body["mode"] == "embedded" and body["error"] is None
    intake = next(q for q in body["queues"] if q["name"] == "intake")
    assert set(intake) == {"name", "role", "kind", "depth", "ready", "unacked", "consumers", "publish_rate",
                           "deliver_rate", "oldest_age_seconds", "source"}
    assert intake["depth"] >= 1 and intake["oldest_age_seconds"] >= 590 and intake["source"] == "embedded"


def test_the_management_api_is_read_for_the_topology_queues_only() -> None:
    topology = test_topology()
    work = topology.queue("router")
    head = datetime.now(UTC).timestamp() - 42

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.raw_path.split(b"?")[0] == b"/api/queues/%2F"  # the default vhost, encoded
        assert request.headers["authorization"].startswith("Basic ")
        return httpx.Response(200, json=[
            {"name": work.name, "messages": 7, "messages_ready": 5, "messages_unacknowledged": 2, "consumers": 3,
             "message_stats": {"publish_details": {"rate": 12.5}, "deliver_get_details": {"rate": 11.0}},
             "head_message_timestamp": int(head)},
            {"name": work.parking, "messages": 1, "messages_ready": 1, "messages_unacknowledged": 0, "consumers": 0},
            {"name": "someone-elses-queue", "messages": 99}])

    found = queue_stats.from_management("amqp://guest:guest@127.0.0.1:5672/%2F", topology,
                                        transport=httpx.MockTransport(handler))
    assert found is not None
    assert {q.name for q in found} == {work.name, work.parking}
    router_queue = next(q for q in found if q.name == work.name)
    assert (router_queue.depth, router_queue.ready, router_queue.unacked, router_queue.consumers) == (7, 5, 2, 3)
    assert (router_queue.publish_rate, router_queue.deliver_rate, router_queue.source) == (12.5, 11.0, "management")
    assert router_queue.oldest_age_seconds is not None and 41 <= router_queue.oldest_age_seconds < 60
    refused = queue_stats.from_management("amqp://guest:guest@127.0.0.1:5672/%2F", topology,
                                          transport=httpx.MockTransport(lambda r: httpx.Response(401)))
    assert refused is None


@pytest.fixture
def broker_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Hub, str]]:
    topology = test_topology()
    with declared(amqp_url(), topology):
        hub = build(Settings(database_url=postgres_url(), data_dir=tmp_path_factory.mktemp("ops"),
                             amqp_url=amqp_url(), amqp_prefix=topology.prefix), in_process=True)
        yield hub, topology.prefix
        hub.close()


@pytest.mark.integration
def test_rabbitmq_dead_letter_is_replayed_from_the_console_and_posts(broker_hub: tuple[Hub, str], uid: str) -> None:
    hub, prefix = broker_hub
    topology = test_topology()
    topology = type(topology)(prefix=prefix)
    queue = topology.queue("router")
    cmd = PostCharges(f"hl7:CLINIC:{uid}-ops", f"R{uid}", f"VR{uid}", Patient(f"MRN{uid}", f"ZZPHI{uid}", "JANE"),
                      (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("42.10")),))
    properties = command_properties(cmd, attempt=3)
    properties.headers = {**(properties.headers or {}), REASON: "StoreUnavailable", ORIGIN_QUEUE: queue.name}
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url()))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish(topology.dead_letters, queue.name, codec.encode(cmd), properties, mandatory=True)
    it, supervisor = staff_client(hub, "it-ops"), staff_client(hub, "billing-supervisor")
    try:
        queues = it.get("/api/v1/ops/queues").json()
        assert queues["mode"] == "rabbitmq" and queues["error"] is None
        parking = next(q for q in queues["queues"] if q["name"] == queue.parking)
        assert parking["depth"] == 1 and parking["source"] in ("management", "amqp")
        (letter,) = it.get("/api/v1/ops/dead-letters").json()["dead_letters"]
        assert (letter["id"], letter["origin"], letter["reason"]) == (properties.message_id, queue.name,
                                                                      "StoreUnavailable")
        assert f"ZZPHI{uid}" not in it.get(f"/api/v1/ops/dead-letters/{letter['id']}").text
        assert it.get(f"/api/v1/ops/dead-letters/{letter['id']}", params={"body": True}).status_code == 403
        body = supervisor.get(f"/api/v1/ops/dead-letters/{letter['id']}", params={"body": True}).json()["body"]
        assert f"ZZPHI{uid}" in body
        wait_for(lambda: depth(channel, queue.parking) == 1, timeout=10, what="the read message handed back")
        replayed = it.post(f"/api/v1/ops/dead-letters/{letter['id']}/replay")
        assert replayed.status_code == 200 and replayed.json()["outcome"] == "republished"
        assert hub.local_bus is not None
        with running(CommandConsumer(amqp_url(), topology, hub.local_bus)) as consumer:
            wait_for(lambda: consumer.settled[Action.ACK] == 1, what="the replayed message posted")
        trace = it.get("/api/v1/ops/trace", params={"q": f"R{uid}"}).json()
        assert next((p["kind"], p["amount"]) for p in trace["postings"]) == ("charge", "42.10")
        assert [r.action for r in _audit(hub, "dlq.replay", letter["id"])] == ["dlq.replay"]
    finally:
        connection.close()


def test_trace_follows_a_remittance_by_trn02_and_clp01_to_its_postings_and_deliveries(hub: Hub, uid: str) -> None:
    assert hub.intake.receive_hl7(Dft(f"T{uid}", f"A{uid}", visit=f"V{uid}", payer="ACME",
                                      lines=[Ft1("100.00", code="99213")]).er7()).status.value == "accepted"
    line = LineSpec("99213", Decimal("100"), (Cas("CO", "45", Decimal("20")),))
    hub.intake.ingest(render_835([RemittanceSpec(claims=(ClaimSpec(f"V{uid}", lines=(line,)),),
                                                 trace_number=f"TRN{uid}")]).encode(), "remit.835")
    with hub.sessions.begin() as s:
        outbox = s.scalar(select(OutboxRow.id).where(OutboxRow.source_id == f"hl7:CLINIC:T{uid}"))
        assert outbox is not None
        s.add(DeliveryRow(dedupe=f"ops-test-{uid}", outbox_id=outbox, trace_id=uid, event_type="ChargesPosted",
                          destination="emr", format="hl7v2-dft", payload="MSH|...", status="delivered",
                          attempts=1, delivered_at=datetime.now(UTC)))
    client = staff_client(hub, "billing")
    by_trn = client.get("/api/v1/ops/trace", params={"q": f"TRN{uid}"}).json()
    assert [r["trace_number"] for r in by_trn["remittances"]] == [f"TRN{uid}"]
    assert {p["kind"] for p in by_trn["postings"]} >= {"insurance_payment"} or by_trn["postings"]
    by_claim = client.get("/api/v1/ops/trace", params={"q": f"V{uid}"}).json()
    kinds = [p["kind"] for p in by_claim["postings"]]
    assert kinds[0] == "charge" and len(kinds) > 1
    assert [(d["destination"], d["status"]) for d in by_claim["deliveries"]] == [("emr", "delivered")]
    stages = [s["stage"] for s in by_claim["timeline"]]
    assert stages.index("received") < stages.index("posted") < stages.index("delivery")
    assert "MSH|" not in str(by_claim)  # never a payload
    assert [r.actor for r in _audit(hub, "trace.view", f"V{uid}")] != []


def test_auditors_search_the_log_and_others_may_not(hub: Hub, uid: str) -> None:
    it = staff_client(hub, "it-ops")
    it.get("/api/v1/ops/trace", params={"q": f"Q{uid}"})
    auditor = staff_client(hub, "auditor")
    found = auditor.get("/api/v1/audit", params={"object_id": f"Q{uid}"}).json()["entries"]
    # newest first; the auditor's own search is recorded before it runs
    assert [(e["action"], e["object_type"], e["outcome"]) for e in found] == [
        ("audit.search", "audit_log", "ok"), ("trace.view", "trace", "ok")]
    viewer = found[1]["actor"]
    assert found[1]["source"] and viewer.startswith("user-") and found[0]["actor"] != viewer
    logins = auditor.get("/api/v1/audit", params={"action": "auth.*", "actor": viewer}).json()["entries"]
    assert [e["action"] for e in logins] == ["auth.login"]
    assert it.get("/api/v1/audit").status_code == 403
    page = auditor.get("/ops/audit", params={"object_id": f"Q{uid}"})
    assert page.status_code == 200 and "trace.view" in page.text


def test_metrics_expose_flow_latency_and_backlog_without_phi(hub: Hub, uid: str) -> None:
    phi = f"ZZPHI{uid}"
    ack = hub.intake.receive_mllp(Dft(f"M{uid}", f"A{uid}", visit=f"V{uid}", family=phi,
                                      lines=[Ft1("10.00")]).er7().encode(), "peer")
    assert ack is not None and b"MSA|AA" in ack
    text = TestClient(staff_client(hub, "it-ops").app).get("/metrics").text  # open to the scraper
    assert re.search(r'^rcmhub_ack_latency_seconds_count\{channel="mllp"\} [1-9]', text, re.M)
    assert re.search(r'^rcmhub_messages_received_total\{channel="mllp",format="hl7v2"\} [1-9]', text, re.M)
    assert re.search(r'^rcmhub_postings_total\{kind="charge"\} [1-9]', text, re.M)
    assert re.search(r'^rcmhub_queue_depth\{kind="work",queue="intake"\} ', text, re.M)
    assert "rcmhub_database_up 1.0" in text and "rcmhub_exceptions_open" in text
    assert phi not in text and f"A{uid}" not in text  # no person or account in any label
