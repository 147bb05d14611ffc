"""HL7 v2 over MLLP end to end: a real ``MllpServer`` wired to the intake, python-hl7 as the peer,
on SQLite and PostgreSQL. ACKs are only AA once stored; resends answer AA and post once."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from decimal import Decimal

import hl7
import hl7.client
import pytest
from hl7_factory import Dft, Ft1
from hl7_samples import sample, unique
from sqlalchemy import select

from api.bootstrap import Hub
from connectors.hl7_listener import Hl7Listener
from connectors.intake import Intake
from connectors.mllp import MllpClient, encode_frame
from router.adapters.message_store import MessageStatus, MessageStore
from router.adapters.orm import PatientRow
from router.domain.errors import StoreUnavailable
from router.queries import account_view

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def port(session_hub: Hub) -> Iterator[int]:
    server = Hl7Listener(session_hub.intake, max_frame_size=64 * 1024).run_in_thread()
    yield server.port
    server.stop(grace=2)


def send(port: int, payload: bytes) -> hl7.Message:
    """One message through python-hl7's client; its ACK parsed by python-hl7."""
    with hl7.client.MLLPClient("127.0.0.1", port) as client:
        reply = client.send_message(payload)
    return hl7.parse(reply.strip(b"\x0b\x1c\r").decode())


def msa(ack: hl7.Message) -> tuple[str, str]:
    return str(ack.segment("MSA")[1]), str(ack.segment("MSA")[2])


def err_text(ack: hl7.Message) -> str:
    return str(ack.unescape(str(ack.segment("ERR")[8])))


def test_python_hl7_sends_adt_and_dft_samples_and_gets_aa_then_the_ledger_shows_the_charges(
        hub: Hub, port: int, uid: str) -> None:
    for name in ("ADT-A04-01.hl7", "DFT-P03-01.hl7"):
        message = sample(name, control_id=f"{name[:3]}{uid}", account=f"A{uid}", mrn=f"M{uid}", visit=f"V{uid}")
        assert msa(send(port, message)) == ("AA", f"{name[:3]}{uid}")
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None
    assert [(e.kind, e.amount, e.claim) for e in view.entries] == [
        ("charge", Decimal("100.00"), f"V{uid}"), ("charge", Decimal("120.00"), f"V{uid}")]
    assert view.balances.insurance == Decimal("220.00")  # the ADT's coverage is on file
    assert hub.intake.store is not None
    stored = hub.intake.store.search(account=f"A{uid}")
    assert [(m.message_type, m.status, m.channel) for m in stored] == [
        ("DFT^P03", MessageStatus.PROCESSED, "mllp"), ("ADT^A04", MessageStatus.PROCESSED, "mllp")]
    assert stored[0].claim_key == f"V{uid}" and stored[0].peer.startswith("127.0.0.1:")


def test_a_resend_is_answered_aa_again_and_posted_once(hub: Hub, port: int, uid: str) -> None:
    message = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("42.00")]).er7().encode()
    assert msa(send(port, message)) == msa(send(port, message)) == ("AA", f"C{uid}")
    restamped = message.replace(b"|20240301120000||DFT", b"|20240301120500||DFT")  # a new MSH-7 only
    assert msa(send(port, restamped)) == ("AA", f"C{uid}")
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and [e.amount for e in view.entries] == [Decimal("42.00")]
    assert hub.intake.store is not None
    statuses = [m.status for m in hub.intake.store.search(control_id=f"C{uid}")]
    assert statuses == [MessageStatus.DUPLICATE, MessageStatus.DUPLICATE, MessageStatus.PROCESSED]


def test_the_same_control_id_with_other_content_is_flagged_and_answered_ae(hub: Hub, port: int, uid: str) -> None:
    send(port, Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("10.00")]).er7().encode())
    ack = send(port, Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("99.00")]).er7().encode())
    assert msa(ack) == ("AE", f"C{uid}")
    assert str(ack.segment("ERR")[2]) == "MSH^1^10" and str(ack.segment("ERR")[3][0][0]) == "205"
    assert "different content" in err_text(ack)
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and view.balances.charges == Decimal("10.00")
    assert hub.intake.store is not None
    latest = hub.intake.store.search(control_id=f"C{uid}", limit=1)
    assert latest[0].status is MessageStatus.CONFLICT


def test_mapping_errors_are_ae_and_unsupported_types_ar_each_naming_the_field(port: int, uid: str) -> None:
    bad = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("12,OO")]).er7().encode()
    ack = send(port, bad)
    assert msa(ack) == ("AE", f"C{uid}")
    assert str(ack.segment("ERR")[2]) == "FT1^1^11" and "'12,OO' is not a number" in err_text(ack)
    merge = send(port, unique("ADT-A40-01.hl7", uid).replace(b"|NE|NE", b"||"))
    assert msa(merge) == ("AR", f"C{uid}")
    assert "ADT^A40 is not supported" in err_text(merge)


def test_custom_separators_escapes_and_latin_1_travel_the_whole_path(hub: Hub, port: int, uid: str) -> None:
    def seg(name: str, fields: dict[int, str]) -> str:
        return "#".join([name, *(fields.get(n, "") for n in range(1, max(fields) + 1))])

    message = "\r".join([
        f"MSH#!*%$#EMR#FAC#HUB#H#20240301##DFT!P03#C{uid}#P#2.5######8859/1",
        seg("PID", {1: "1", 3: f"M{uid}!!!!MR", 5: "MÜLLER!JOSÉ", 7: "19800101", 18: f"A{uid}"}),
        seg("PV1", {1: "1", 2: "O", 19: f"V%T%1{uid}"}),  # escape %, %T% the escaped sub-component separator
        seg("FT1", {1: "1", 4: "20240301", 6: "CG", 7: "99213", 10: "1", 11: "25.00$USD"}),
        seg("IN1", {1: "1", 2: "PLAN", 3: "BCBS", 4: "Blue Cross %F% Shield"})]).encode("latin-1")
    with hl7.client.MLLPClient("127.0.0.1", port, encoding="latin-1") as client:
        reply = client.send_message(message).strip(b"\x0b\x1c\r")
    assert reply.startswith(b"MSH#!*%$#HUB#H#EMR#FAC#") and b"#8859/1" in reply.split(b"\r")[0]
    ack = hl7.parse(reply.decode("latin-1"))
    assert msa(ack) == ("AA", f"C{uid}")
    with hub.sessions() as s:
        patient = s.scalars(select(PatientRow).where(PatientRow.mrn == f"M{uid}")).one()
        view = account_view(s, f"A{uid}")
    assert (patient.family, patient.given) == ("MÜLLER", "JOSÉ")
    assert view is not None and [(e.claim, e.amount) for e in view.entries] == [(f"V$1{uid}", Decimal("25.00"))]
    with hub.uow_factory() as uow:
        assert uow.accounts.coverages(f"A{uid}")[0].payer_name == "Blue Cross # Shield"


def test_enhanced_mode_answers_ca_at_commit_and_nothing_when_the_sender_asks_for_never(
        hub: Hub, port: int, uid: str) -> None:
    base = Dft(f"C1{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("5.00")]).er7()
    always = base.replace("|P|2.5\r", "|P|2.5|||AL|NE\r").encode()
    assert msa(send(port, always)) == ("CA", f"C1{uid}")
    never = base.replace(f"C1{uid}", f"C2{uid}").replace("|P|2.5\r", "|P|2.5|||NE|NE\r").encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(encode_frame(never))
        sock.settimeout(1.0)
        with pytest.raises(TimeoutError):
            sock.recv(100)
    assert hub.intake.store is not None
    assert [m.status for m in hub.intake.store.search(control_id=f"C2{uid}")] == [MessageStatus.PROCESSED]


def test_an_oversize_frame_gets_an_ar_and_the_connection_carries_on(port: int, uid: str) -> None:
    with MllpClient("127.0.0.1", port) as client:
        refused = hl7.parse(client.send(b"MSH|^~\\&|" + b"X" * 70_000, timeout=10).decode())
        assert msa(refused) == ("AR", "") and "oversize" in err_text(refused)
        ok = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("1.00")]).er7().encode()
        assert msa(hl7.parse(client.send(ok, timeout=10).decode())) == ("AA", f"C{uid}")


class _DownBus:
    def handle(self, command: object) -> object:
        raise StoreUnavailable("database unavailable: OperationalError")


def test_a_database_outage_is_ae_with_retry_text_and_the_message_stays_stored_for_the_resend(
        hub: Hub, uid: str) -> None:
    assert hub.intake.store is not None
    message = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", payer="P", lines=[Ft1("7.00")]).er7().encode()
    down = Intake(_DownBus(), hub.intake.store)  # type: ignore[arg-type]
    ack = hl7.parse(down.receive_mllp(message, "peer").decode())  # type: ignore[union-attr]
    assert msa(ack) == ("AE", f"C{uid}") and "send again" in err_text(ack)
    assert [m.status for m in hub.intake.store.search(control_id=f"C{uid}")] == [MessageStatus.RECEIVED]
    assert msa(hl7.parse(hub.intake.receive_mllp(message, "peer").decode())) == ("AA", f"C{uid}")  # type: ignore[union-attr]
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and view.balances.charges == Decimal("7.00")


def test_when_the_store_itself_is_down_nothing_is_acknowledged_aa(hub: Hub, uid: str) -> None:
    from sqlalchemy.orm import sessionmaker

    from router.adapters.db import make_engine

    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2})
    intake = Intake(hub.bus, MessageStore(sessionmaker(engine)))
    message = Dft(f"C{uid}", f"A{uid}", visit=f"V{uid}", lines=[Ft1("7.00")]).er7().encode()
    ack = hl7.parse(intake.receive_mllp(message, "peer").decode())  # type: ignore[union-attr]
    assert msa(ack) == ("AE", f"C{uid}") and "send again" in err_text(ack)
    with hub.sessions() as s:
        assert account_view(s, f"A{uid}") is None
    engine.dispose()
