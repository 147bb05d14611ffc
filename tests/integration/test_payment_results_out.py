"""Results out (issue 7 item 7): a patient payment and its refund are planned for the
EMR by the outbound engine's one event -> delivery mapping, as FT1 PY rows (DFT) and FHIR requests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import select

from api.bootstrap import Hub
from connectors.outbound.config import parse_destinations
from connectors.outbound.plan import plan
from router.adapters.orm import OutboxRow
from router.domain.commands import PostCharges, PostPatientPayment
from router.domain.model import ChargeLine
from router.domain.payment_commands import RefundPatientPayment


def test_a_payment_and_its_refund_go_back_to_the_emr_as_ft1_rows_and_fhir(hub: Hub, uid: str) -> None:
    account = f"RO{uid}"
    hub.bus.handle(PostCharges(f"v:{uid}", account, f"K{uid}", None,
                               (ChargeLine(1, date(2024, 2, 1), "99213", Decimal("75.00")),)))
    hub.bus.handle(PostPatientPayment(f"p:{uid}", account, Decimal("75.00"), "check", date(2024, 3, 1),
                                      check_number="501"))
    hub.bus.handle(RefundPatientPayment(f"r:{uid}", account, f"p:{uid}", Decimal("25.00"), date(2024, 3, 5)))
    destinations = parse_destinations({"destinations": [
        {"name": f"emr-hl7-{uid.lower()}", "formats": ["hl7v2-dft"], "filter": {"accounts": [account]},
         "transport": {"mllp": {"host": "127.0.0.1", "port": 9}}},
        {"name": f"emr-fhir-{uid.lower()}", "formats": ["fhir"], "filter": {"accounts": [account]},
         "transport": {"fhir": {"base_url": "http://127.0.0.1:9/fhir"}}}]})
    with hub.sessions() as s:
        events = s.execute(select(OutboxRow.event_type, OutboxRow.source_id).where(
            OutboxRow.source_id.in_([f"p:{uid}", f"r:{uid}"])).order_by(OutboxRow.id)).all()
        assert [e[0] for e in events] == ["PatientPaymentPosted", "PatientPaymentRefunded"]
        planned = {e[0]: plan(s, e[0], e[1], destinations, datetime.now(UTC)) for e in events}
    for event_type, messages in planned.items():
        dft = [m for m in messages if m.format == "hl7v2-dft"]
        assert dft and any(m.format == "fhir" for m in messages), event_type
        ft1 = [seg.split("|") for m in dft for seg in m.payload.split("\r") if seg.startswith("FT1|")]
        assert ft1 and all(f[6] == "PY" for f in ft1), event_type
        assert account not in " ".join(m.summary for m in messages)  # summaries carry no PHI
    def ft1_total(event_type: str) -> Decimal:
        return sum((Decimal(seg.split("|")[11].split("&")[0]) for m in planned[event_type] if m.format == "hl7v2-dft"
                    for seg in m.payload.split("\r") if seg.startswith("FT1|")), Decimal("0.00"))

    # FT1-11 is the signed effect on the balance: the payment lowers it by 75, the refund raises it by 25.
    assert (ft1_total("PatientPaymentPosted"), ft1_total("PatientPaymentRefunded")) == (Decimal("-75.00"),
                                                                                        Decimal("25.00"))
