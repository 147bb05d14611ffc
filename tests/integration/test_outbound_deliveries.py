"""Results back to EMRs: DFT^P03 to a python-hl7 MLLP peer and FHIR to a local FHIR server, with faults.

Each test feeds the demo practice (charges, patient payments, a two-payer 835 with transfers, a denial,
an unknown claim and PLB interest) under its own tag, runs the embedded engine with destinations
filtered to that tag's accounts, and checks what the peers booked by their own count.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from fhir.resources.R4B.account import Account
from fhir.resources.R4B.claimresponse import ClaimResponse
from fhir.resources.R4B.paymentreconciliation import PaymentReconciliation
from outbound_peers import FhirPeer, Hl7Peer
from sqlalchemy import select

from api.bootstrap import Hub, build
from api.demo import practice_messages, remittance_835
from api.settings import Settings
from connectors.outbound.config import Destinations, parse_destinations
from connectors.outbound.engine import OutboundEngine
from connectors.outbound.store import deliveries_list
from router.adapters.orm import OutboxRow
from router.domain.results import trace_id
from router.queries import account_view

pytestmark = pytest.mark.integration
FAST = {"attempts": 4, "initial_seconds": 0.05, "max_wait_seconds": 2.0, "budget_seconds": 20}


def _destinations(uid: str, *specs: dict[str, Any]) -> Destinations:
    """Names carry the test's tag: the PostgreSQL test database keeps other runs' deliveries."""
    return parse_destinations({"destinations": [
        {"filter": {"accounts": [f"DEMO-{uid}-*"]}, "retry": FAST, **spec, "name": f"{spec['name']}-{uid.lower()}"}
        for spec in specs]})


def mllp(name: str, peer: Hl7Peer, **options: Any) -> dict[str, Any]:
    return {"name": name, "formats": ["hl7v2-dft"],
            "transport": {"mllp": {"host": "127.0.0.1", "port": peer.port, "timeout_seconds": 1.0, **options}}}


def fhir(name: str, url: str, **options: Any) -> dict[str, Any]:
    return {"name": name, "formats": ["fhir"],
            "transport": {"fhir": {"base_url": url, "timeout_seconds": 1.0, **options}}}


def _feed(hub: Hub, uid: str) -> None:
    charges, payments = practice_messages(uid)
    hub.intake.ingest("".join(m for _, m in charges).encode(), "charges")
    hub.intake.ingest("".join(m for _, m in payments).encode(), "payments")
    hub.intake.ingest(remittance_835(uid).encode(), "835")


def _traces(hub: Hub, uid: str) -> set[str]:
    with hub.sessions() as session:
        return {trace_id(s) for s in session.scalars(select(OutboxRow.source_id).where(
            OutboxRow.event_type == "RemittancePosted", OutboxRow.source_id.contains(f"DEMO{uid}")))}


def _rows(hub: Hub, traces: set[str]) -> list[dict[str, object]]:
    with hub.sessions() as session:
        return [r for t in sorted(traces) for r in deliveries_list(session, trace=t)]


def _named(rows: list[dict[str, object]], name: str, uid: str) -> list[dict[str, object]]:
    return [r for r in rows if r["destination"] == f"{name}-{uid.lower()}"]


def _relayed(hub: Hub, uid: str) -> bool:
    """Every outbox row of this test's remittances is relayed (its deliveries, if any, are planned)."""
    with hub.sessions() as session:
        marks = list(session.scalars(select(OutboxRow.published_at).where(
            OutboxRow.event_type == "RemittancePosted", OutboxRow.source_id.contains(f"DEMO{uid}"))))
    return len(marks) == 2 and None not in marks


def _settled(hub: Hub, uid: str, timeout: float = 30.0, destination: str | None = None) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _relayed(hub, uid):
            time.sleep(0.05)
            continue
        rows = [r for r in _rows(hub, _traces(hub, uid))
                if destination in (None, r["destination"]) and str(r["destination"]).endswith(uid.lower())]
        if rows and all(r["status"] != "pending" for r in rows):
            return rows
        time.sleep(0.05)
    raise AssertionError(f"deliveries did not settle: {_rows(hub, _traces(hub, uid))}")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """Behaviour that does not depend on the database (transports, faults, retries) runs once, on SQLite;
    the tie-outs, the relay and the trace run on both backends through ``hub``."""
    folder = tmp_path_factory.mktemp("outbound")
    hub = build(Settings(database_url=f"sqlite:///{folder / 'hub.db'}", data_dir=folder, amqp_url=""))
    yield hub
    hub.close()


@pytest.fixture
def hl7_peer() -> Iterator[Hl7Peer]:
    peer = Hl7Peer().start()
    yield peer
    peer.stop()


@pytest.fixture
def fhir_peer() -> Iterator[FhirPeer]:
    peer = FhirPeer().start()
    yield peer
    peer.stop()


def _run(hub: Hub, uid: str, destinations: Destinations, destination: str | None = None) -> list[dict[str, object]]:
    engine = OutboundEngine(hub.sessions, destinations, idle_seconds=0.05).start()
    try:
        _feed(hub, uid)
        return _settled(hub, uid, destination=destination)
    finally:
        engine.stop()


def _835(uid: str) -> dict[str, Any]:
    """BPR02, TRN02, CLP and SVC amounts read straight from the 835 text (not through the hub's reader)."""
    found: dict[str, Any] = {"payments": {}, "claims": {}}
    trn = ""
    claim = None
    for segment in remittance_835(uid).replace("\n", "").split("~"):
        e = segment.split("*")
        if e[0] == "BPR":
            bpr = Decimal(e[2])
        elif e[0] == "TRN":
            trn = e[2]
            found["payments"][trn] = bpr
        elif e[0] == "CLP":
            claim = found["claims"][e[1]] = {"trn": trn, "charge": Decimal(e[3]), "paid": Decimal(e[4]), "lines": []}
        elif e[0] == "SVC" and claim is not None:
            claim["lines"].append((Decimal(e[2]), Decimal(e[3])))
    return found


def test_mllp_peer_receives_dft_p03_whose_ft1_amounts_sum_to_the_ledger_postings(hub: Hub, uid: str,
                                                                                  hl7_peer: Hl7Peer) -> None:
    rows = _run(hub, uid, _destinations(uid, mllp("emr", hl7_peer)))
    assert rows and all(r["status"] == "delivered" and r["attempts"] == 1 for r in rows)
    assert len(hl7_peer.booked) == len(rows) == len(hl7_peer.arrivals)  # one message each, each ACKed once
    for message in hl7_peer.booked.values():
        assert str(message.segment("MSH")(9)) == "DFT^P03^DFT_P03"
        ids = [str(s(2)) for s in message.segments("FT1")]
        assert len(ids) == len(set(ids))
    with hub.sessions() as session:
        for n in (1, 2, 3):
            account = f"DEMO-{uid}-{n:03d}"
            view = account_view(session, account)
            assert view is not None
            posted = sum((e.amount for e in view.entries if e.source.startswith("835:")), Decimal("0.00"))
            assert hl7_peer.ft1_total(account) == posted
    # RIVERA's visit: payments, CO-45 and PR transfers; the patient leg carries no insurance plan (FT1-14).
    rivera = next(m for m in hl7_peer.booked.values() if str(m.segment("PID")(18)) == f"DEMO-{uid}-001")
    kinds = {(str(s(6)), str(s(7)).split("^")[0]) for s in rivera.segments("FT1")}
    assert {("PY", "INSURANCE_PAYMENT"), ("AJ", "CO-45"), ("AJ", "PR-1"), ("AJ", "PR-3")} <= kinds
    assert all(str(s(30)) == f"DEMO{uid}A" and str(s(31)).startswith("RH") for s in rivera.segments("FT1"))
    assert str(rivera.segment("PV1")(46)) == "60.00"  # the account's balance right after the remittance


def test_fhir_peer_receives_valid_resources_that_tie_out_to_the_835(hub: Hub, uid: str, fhir_peer: FhirPeer) -> None:
    rows = _run(hub, uid, _destinations(uid, {**fhir("emr", fhir_peer.url),
                                              "filter": {"accounts": [], "facilities": ["1234567890"],
                                                         "events": ["RemittancePosted"]}}))
    mine = _named(rows, "emr", uid)
    assert mine and all(r["status"] == "delivered" for r in mine)
    x12 = _835(uid)
    reconciliations = [PaymentReconciliation.model_validate(r) for r in fhir_peer.of("PaymentReconciliation")
                       if r["paymentIdentifier"]["value"].startswith(f"DEMO{uid}")]
    assert {p.paymentIdentifier.value: p.paymentAmount.value for p in reconciliations} == x12["payments"]
    for p in reconciliations:
        assert sum(d.amount.value for d in p.detail) == p.paymentAmount.value  # posted + held + PLB = BPR02
    responses = [ClaimResponse.model_validate(r) for r in fhir_peer.of("ClaimResponse")
                 if r["request"]["identifier"]["value"].startswith(f"V-DEMO-{uid}")]
    assert len(responses) == 2  # RIVERA and CHEN posted; OKAFOR's denial is held, so it has no adjudication
    for response in responses:
        claim = x12["claims"][response.request.identifier.value]
        totals = {t.category.coding[0].code: t.amount.value for t in response.total}
        assert totals == {"submitted": claim["charge"], "benefit": claim["paid"]}
        lines = [({a.category.coding[0].code: a.amount.value for a in item.adjudication}) for item in response.item]
        assert [(line["submitted"], line["benefit"]) for line in lines] == claim["lines"]
    accounts = [Account.model_validate(r) for r in fhir_peer.of("Account")
                if r["identifier"][0]["value"].startswith(f"DEMO-{uid}-")]
    assert len(accounts) == 2


def _retried_once(peer: Hl7Peer, rows: list[dict[str, object]]) -> None:
    assert all(r["status"] == "delivered" for r in rows)
    assert len(peer.booked) == len(rows)  # booked exactly once each, by the peer's own count
    assert sorted(int(str(r["attempts"])) for r in rows) == [1] * (len(rows) - 1) + [2]


@pytest.mark.parametrize("fault", ["AE", "close", "silent"])
def test_mllp_faults_end_delivered_exactly_once(embedded: Hub, uid: str, fault: str) -> None:
    hub = embedded
    peer = Hl7Peer([fault]).start()
    try:
        rows = _run(hub, uid, _destinations(uid, mllp("emr", peer, timeout_seconds=0.5)))
        _retried_once(peer, rows)
        assert len(peer.arrivals) == len(rows) + 1
    finally:
        peer.stop()


@pytest.mark.parametrize(("script", "on_ae"), [(["AR"], "retry"), (["AE"], "dead")])
def test_mllp_rejections_are_dead_lettered_with_the_reason(embedded: Hub, uid: str, script: list[str],
                                                           on_ae: str) -> None:
    hub = embedded
    peer = Hl7Peer(script).start()
    try:
        rows = _run(hub, uid, _destinations(uid, mllp("emr", peer, on_ae=on_ae)))
    finally:
        peer.stop()
    dead = [r for r in rows if r["status"] == "dead"]
    assert len(dead) == 1 and dead[0]["attempts"] == 1
    assert f"rejected {script[0]}" in str(dead[0]["last_error"]) and "DeliveryRejected" in str(dead[0]["last_error"])
    assert len(peer.booked) == len(rows) - 1


@pytest.mark.parametrize("fault", [("500", None), ("503", {"Retry-After": "1"}), ("429", None), ("slow", 1.5)])
def test_fhir_transient_faults_end_delivered_once(embedded: Hub, uid: str, fault: tuple[Any, Any]) -> None:
    hub = embedded
    peer = FhirPeer([fault]).start()
    try:
        rows = _run(hub, uid, _destinations(uid, fhir("emr", peer.url, timeout_seconds=0.5)))
    finally:
        peer.stop()
    assert rows and all(r["status"] == "delivered" for r in rows)
    stored = sum(len(peer.of(kind)) for kind in ("ClaimResponse", "PaymentReconciliation", "Account"))
    assert stored == len(rows)  # If-None-Exist / conditional update: a retry never duplicates
    retried = [r for r in rows if r["attempts"] == 2]
    expected = "timed out: ReadTimeout" if fault[0] == "slow" else f"HTTP {fault[0]}"
    assert len(retried) == 1 and expected in str(retried[0]["last_error"])
    if fault[0] == "503":  # Retry-After honoured: the retry came at least a second later
        first, second = peer.requests[0][0], peer.requests[1][0]
        assert second - first >= 0.95


def test_fhir_permanent_and_exhausted_failures_are_dead_lettered(embedded: Hub, uid: str) -> None:
    hub = embedded
    peer = FhirPeer([("400", None)] + [("503", None)] * 4).start()
    try:
        rows = _run(hub, uid, _destinations(uid, fhir("emr", peer.url)))
    finally:
        peer.stop()
    dead = sorted((r for r in rows if r["status"] == "dead"), key=lambda r: int(str(r["id"])))
    assert [(d["attempts"], str(d["last_error"]).split(":")[0]) for d in dead] == [
        (1, "DeliveryRejected"), (4, "retries exhausted")]
    assert "HTTP 400" in str(dead[0]["last_error"]) and "HTTP 503" in str(dead[1]["last_error"])


def test_a_dead_destination_does_not_delay_a_healthy_one(embedded: Hub, uid: str, hl7_peer: Hl7Peer) -> None:
    hub = embedded
    import socket

    blackhole = socket.socket()  # accepts connections, never answers
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(16)
    slow = {"name": "down", "formats": ["hl7v2-dft"], "retry": {**FAST, "attempts": 10, "initial_seconds": 1.0},
            "transport": {"mllp": {"host": "127.0.0.1", "port": blackhole.getsockname()[1], "timeout_seconds": 2}}}
    engine = OutboundEngine(hub.sessions, _destinations(uid, mllp("up", hl7_peer), slow), idle_seconds=0.05).start()
    try:
        started = time.monotonic()
        _feed(hub, uid)
        rows = _settled(hub, uid, destination=f"up-{uid.lower()}", timeout=10)
        elapsed = time.monotonic() - started
        assert all(r["status"] == "delivered" for r in rows) and len(hl7_peer.booked) == len(rows)
        down = _named(_rows(hub, _traces(hub, uid)), "down", uid)
        assert down and all(r["status"] == "pending" for r in down)  # still retrying meanwhile
        assert elapsed < 5.0
    finally:
        engine.stop()
        blackhole.close()


def test_deliveries_list_json_shows_status_per_event_and_the_trace(embedded: Hub, uid: str, hl7_peer: Hl7Peer,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    hub = embedded
    from typer.testing import CliRunner

    from api.cli import app

    _run(hub, uid, _destinations(uid, mllp("emr", hl7_peer)))
    monkeypatch.setenv("RCMHUB_DATABASE_URL", hub.settings.database_url)
    monkeypatch.setenv("RCMHUB_DATA_DIR", str(hub.settings.data_dir))
    trace = next(t for t in sorted(_traces(hub, uid)) if _rows(hub, {t}))  # MEDICARE's 835 holds all: none
    result = CliRunner().invoke(app, ["deliveries", "list", "--json", "--trace", trace])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert rows and all(set(r) >= {"id", "destination", "format", "event", "status", "attempts", "last_error"}
                        for r in rows)
    assert {(r["destination"], r["format"], r["event"], r["status"], r["trace"]) for r in rows} == {
        (f"emr-{uid.lower()}", "hl7v2-dft", "RemittancePosted", "delivered", trace)}


def test_replay_sends_a_dead_delivery_again(embedded: Hub, uid: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = embedded
    from typer.testing import CliRunner

    from api.cli import app

    peer = Hl7Peer(["AR"]).start()
    try:
        destinations = _destinations(uid, mllp("emr", peer))
        rows = _run(hub, uid, destinations)
        dead = next(r for r in rows if r["status"] == "dead")
        monkeypatch.setenv("RCMHUB_DATABASE_URL", hub.settings.database_url)
        monkeypatch.setenv("RCMHUB_DATA_DIR", str(hub.settings.data_dir))
        result = CliRunner().invoke(app, ["deliveries", "replay", str(dead["id"]), "--actor", "it-ops"])
        assert result.exit_code == 0, result.output
        engine = OutboundEngine(hub.sessions, destinations, idle_seconds=0.05).start()
        try:
            rows = _settled(hub, uid)
        finally:
            engine.stop()
        assert all(r["status"] == "delivered" for r in rows) and len(peer.booked) == len(rows)
    finally:
        peer.stop()


def test_the_trace_id_is_logged_from_relay_to_delivery_without_phi(hub: Hub, uid: str, hl7_peer: Hl7Peer,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO")
    peer = FhirPeer().start()
    try:
        _run(hub, uid, _destinations(uid, mllp("emr", hl7_peer), fhir("ehr", peer.url)))
    finally:
        peer.stop()
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert f"DEMO-{uid}" not in everything and "RIVERA" not in everything  # httpx's URL lines included
    traces = {t for t in _traces(hub, uid) if _rows(hub, {t})}
    assert traces
    logged = [r.getMessage() for r in caplog.records if r.name.startswith(("connectors.outbound", "router.bus"))]
    for trace in traces:  # posting, relay and each delivery carry the same id
        mentions = [line.split()[0] for line in logged if f"trace={trace}" in line]
        assert {"handled", "relayed", "delivered"} <= set(mentions)
    text = "\n".join(logged)
    assert f"DEMO-{uid}" not in text and "RIVERA" not in text and f"DEMO{uid}" not in text


def test_threads_stop_promptly(hub: Hub, uid: str) -> None:
    engine = OutboundEngine(hub.sessions, _destinations(uid, fhir("emr", "http://127.0.0.1:9"))).start()
    started = time.monotonic()
    engine.stop()
    assert time.monotonic() - started < 2 and not any(t.is_alive() for t in engine.threads if t is not
                                                      threading.current_thread())


def test_serve_refuses_to_start_on_an_invalid_destinations_file(hub: Hub, tmp_path: Any,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from api.cli import app

    bad = tmp_path / "destinations.yaml"
    bad.write_text("destinations:\n  - name: emr\n    formats: [hl7v2-dft]\n    transport: {mllp: {host: h}}\n")
    monkeypatch.setenv("RCMHUB_DATABASE_URL", hub.settings.database_url)
    monkeypatch.setenv("RCMHUB_DATA_DIR", str(hub.settings.data_dir))
    monkeypatch.setenv("RCMHUB_DESTINATIONS", str(bad))
    monkeypatch.setenv("RCMHUB_MLLP_PORT", "0")
    result = CliRunner().invoke(app, ["serve"])
    assert result.exit_code == 1
    assert "destinations[0].transport.mllp.port" in " ".join(result.output.split()) and "Field required" in \
        result.output


def test_an_event_that_cannot_be_planned_waits_unpublished_and_blocks_nothing(hub: Hub, uid: str,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.outbound.relay as relay_module
    from connectors.outbound.relay import OutboxRelay

    real = relay_module.plan
    poisoned = f"DEMO{uid}A"

    def plan(session: Any, event_type: str, source_id: str, *args: Any) -> Any:
        if poisoned in source_id:
            raise ValueError("a bug rendering this result")
        return real(session, event_type, source_id, *args)

    monkeypatch.setattr(relay_module, "plan", plan)
    _feed(hub, uid)
    peer = Hl7Peer()
    peer.port = 9  # only planning happens here
    relay = OutboxRelay(hub.sessions, _destinations(uid, mllp("emr", peer)))
    while relay.relay_once():
        pass
    with hub.sessions() as session:
        marks = dict(session.execute(select(OutboxRow.source_id, OutboxRow.published_at).where(
            OutboxRow.event_type == "RemittancePosted", OutboxRow.source_id.contains(f"DEMO{uid}"))).all())
    assert [published is None for source, published in sorted(marks.items())] == [True, False]
    assert len(relay.failed) == 1


def test_mllp_over_tls_verifies_the_emr_certificate(embedded: Hub, uid: str, tmp_path: Any) -> None:
    hub = embedded
    import shutil
    import ssl
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not available")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    peer = Hl7Peer(ssl_context=context).start()
    try:
        trusted = mllp("emr", peer, tls={"ca_file": str(cert), "server_hostname": "localhost"})
        untrusted = {**mllp("stranger", peer, tls={}), "retry": {**FAST, "attempts": 2}}
        rows = _run(hub, uid, _destinations(uid, trusted, untrusted))
    finally:
        peer.stop()
    emr, stranger = _named(rows, "emr", uid), _named(rows, "stranger", uid)
    assert emr and all(r["status"] == "delivered" for r in emr) and len(peer.booked) == len(emr)
    assert stranger and all(r["status"] == "dead" and "TLS handshake failed" in str(r["last_error"])
                            for r in stranger)


class _Flaky:
    """A transport that fails with the given errors in turn, then accepts."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls: list[float] = []

    def send(self, job: Any) -> None:
        self.calls.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)

    def close(self) -> None:
        return


def test_retry_after_is_capped_by_the_budget_and_a_bug_is_dead_lettered_not_looped(embedded: Hub, uid: str) -> None:
    hub = embedded
    from connectors.outbound.errors import RetryLater
    from connectors.outbound.plan import Planned
    from connectors.outbound.store import DeliveryStore, add_planned

    destinations = _destinations(uid, {**mllp("emr", Hl7Peer()), "transport": {"mllp": {"host": "h", "port": 1}},
                                       "retry": {"attempts": 3, "initial_seconds": 0.01, "max_wait_seconds": 0.2}})
    destination = destinations.destinations[0]
    with hub.sessions() as session, session.begin():
        outbox = OutboxRow(event_type="Test", source_id=f"t:{uid}", payload="{}")
        session.add(outbox)
        session.flush()
        ids = [i for i, _ in add_planned(session, outbox.id, "t", "Test", [
            Planned(destination.name, "hl7v2-dft", f"{uid}:{n}", "", "", "", "", "MSH|^~\\&|") for n in range(2)])]
    store = DeliveryStore(hub.sessions)
    from connectors.outbound.engine import DestinationWorker

    slow = _Flaky(*[RetryLater("HTTP 503", retry_after=3600.0)] * 3)
    started = time.monotonic()
    assert DestinationWorker(destination, store, slow).deliver(ids[0]) == "dead"
    assert time.monotonic() - started < 2 and len(slow.calls) == 3  # Retry-After 3600 s capped at 0.2 s
    assert DestinationWorker(destination, store, _Flaky(RuntimeError("boom"))).deliver(ids[1]) == "dead"
    with hub.sessions() as session:
        rows = {int(str(r["id"])): r for r in deliveries_list(session, destination=destination.name)}
    assert rows[ids[0]]["attempts"] == 3 and str(rows[ids[0]]["last_error"]).startswith("retries exhausted")
    assert rows[ids[1]]["last_error"] == "unexpected RuntimeError" and rows[ids[1]]["attempts"] == 1


def test_the_demo_relays_only_its_own_events(tmp_path: Any, uid: str) -> None:
    from api.demo import run_demo

    # A private database: on the shared PostgreSQL another test's relay could take the row meanwhile.
    hub = build(Settings(database_url=f"sqlite:///{tmp_path / 'demo.db'}", data_dir=tmp_path, amqp_url=""))
    try:
        with hub.sessions() as session, session.begin():
            session.add(OutboxRow(event_type="PatientPaymentPosted", source_id=f"real:{uid}", payload="{}"))
        result = run_demo(hub)
        deliveries = result["deliveries"]
        assert isinstance(deliveries, list) and deliveries and all(r["status"] == "delivered" for r in deliveries)
        with hub.sessions() as session:  # a real practice's event is left for the real destinations
            assert session.scalar(select(OutboxRow.published_at).where(OutboxRow.source_id == f"real:{uid}")) is None
    finally:
        hub.close()
