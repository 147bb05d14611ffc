"""Remark codes (RARCs) of an 835 reach the results delivered back to the EMR (SQLite and PostgreSQL): kept
per remittance claim at posting, read back with the claim's result, rendered as DFT NTEs and FHIR notes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from hl7_factory import Dft, Ft1
from sqlalchemy import text
from x12_factory import Cas, ClaimSpec, LineSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.intake import Status
from mappings.fhir.outbound import FhirOptions, fhir_requests
from mappings.hl7v2.dft_out import DftOptions, dft_messages
from router.adapters.results import event_result

D = Decimal


def test_claim_and_line_remarks_are_kept_and_delivered_with_the_entries_they_explain(hub: Hub, uid: str) -> None:
    message = Dft(f"K{uid}", f"K{uid}", visit=f"KV{uid}", payer="ACME",
                  lines=[Ft1("100.00", code="99213"), Ft1("50.00", code="85025")]).er7()
    assert hub.intake.receive_hl7(message).status is Status.ACCEPTED
    lines = (LineSpec("99213", D("100.00"), (Cas("CO", "45", D("20.00")),)),
             LineSpec("85025", D("50.00"), (Cas("CO", "45", D("10.00")),), remarks=("N130", "M15")))
    spec = RemittanceSpec((ClaimSpec(f"KV{uid}", lines, payer_claim_number=f"KI{uid}", remarks=("MA01",)),),
                          trace_number=f"KT{uid}", control_number="0001")
    report = hub.intake.ingest(render_835([spec]).encode(), f"KT{uid}.835")
    assert [r.status for r in report.results] == [Status.ACCEPTED]
    with hub.sessions() as s:
        sid = s.execute(text("SELECT source_id FROM remittances WHERE trace_number = :t"), {"t": f"KT{uid}"}).scalar()
        result = event_result(s, "RemittancePosted", sid)
    assert result.remittance is not None
    [claim] = result.remittance.claims
    assert (claim.remarks, claim.line_remarks) == (("MA01",), ((2, ("N130", "M15")),))

    [dft] = dft_messages(result, DftOptions(), datetime(2024, 4, 13, tzinfo=UTC))
    ft1_codes: list[tuple[str, list[str]]] = []
    for segment in dft.text.strip("\r").split("\r"):
        fields = segment.split("|")
        if fields[0] == "FT1":
            ft1_codes.append((fields[25], []))
        elif fields[0] == "NTE":
            ft1_codes[-1][1].append(fields[3].split(" ")[0])
    # MA01 after the claim's first FT1 (line 1's payment); N130 and M15 after line 2's first FT1.
    assert ft1_codes == [("99213", ["MA01"]), ("99213", []), ("85025", ["N130", "M15"]), ("85025", [])]

    response = json.loads(fhir_requests(result, FhirOptions(), datetime(2024, 4, 13, tzinfo=UTC))[0].body)
    assert [n["text"].split(":")[0] for n in response["processNote"]] == ["MA01", "N130", "M15"]
    assert {i["itemSequence"]: i.get("noteNumber") for i in response["item"]} == {1: None, 2: [2, 3]}
