"""Remittances arrive over HTTP and through a watched drop directory; cash totals and exceptions are visible."""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path

from auth_support import system_client
from hl7_factory import Dft, Ft1
from x12_factory import Cas, ClaimSpec, LineSpec, PlbSpec, RemittanceSpec, render_835

from api.bootstrap import Hub
from connectors.dropdir import DropDirectory
from connectors.intake import Status
from router.queries import account_view


def _charges(hub: Hub, uid: str) -> None:
    msg = Dft(f"R{uid}", f"A{uid}", visit=f"V{uid}", payer="ACME", lines=[Ft1("100.00", code="99213")]).er7()
    assert hub.intake.receive_hl7(msg).status is Status.ACCEPTED


def _remit(uid: str, pcn: str) -> bytes:
    line = LineSpec("99213", Decimal("100"), (Cas("CO", "45", Decimal("20")), Cas("PR", "2", Decimal("10"))))
    claim = ClaimSpec(pcn, lines=(line,), payer_claim_number=f"ICN{uid}", interest=Decimal("1.50"))
    spec = RemittanceSpec(claims=(claim,), plbs=(PlbSpec("L6", f"ICN{uid}", Decimal("-1.50")),), trace_number=f"T{uid}")
    return render_835([spec]).encode()


def test_post_remittances_posts_and_lists_cash_conservation(hub: Hub, uid: str) -> None:
    _charges(hub, uid)
    client = system_client(hub, "emr-system", "billing")
    response = client.post("/remittances", content=_remit(uid, f"V{uid}"),
                           headers={"content-type": "application/edi-x12"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 0)
    assert body["ack999"].startswith("ISA") and "AK9*A" in body["ack999"]
    with hub.sessions() as s:
        view = account_view(s, f"A{uid}")
    assert view is not None and (view.balances.insurance, view.balances.patient) == (Decimal("0.00"), Decimal("10.00"))
    remits = {r["trace_number"]: r for r in client.get("/api/v1/remittances").json()}
    r = remits[f"T{uid}"]
    assert (r["payment_amount"], r["posted"], r["held"], r["plb"], r["conserved"]) == (
        "71.50", "70.00", "0.00", "1.50", True)


def test_post_remittances_refuses_what_is_not_x12_with_a_reason(hub: Hub) -> None:
    response = system_client(hub, "emr-system", "billing").post("/remittances", content=b"MSH|^~\\&|nope")
    assert response.status_code == 400
    assert "not an X12 interchange" in response.json()["detail"]


def test_unmatched_claims_appear_in_the_exception_queue_with_the_cash_held(hub: Hub, uid: str) -> None:
    client = system_client(hub, "emr-system", "billing")
    assert client.post("/remittances", content=_remit(uid, f"NOSUCH{uid}")).status_code == 200
    mine = client.get("/api/v1/exceptions", params={"claim": f"NOSUCH{uid}"}).json()
    assert [(x["type"], x["amount"], x["held"]) for x in mine] == [("unmatched_claim", "70.00", True)]


def test_drop_directory_archives_processed_files_with_their_999_and_moves_rejects_with_a_reason(
        hub: Hub, uid: str, tmp_path: Path) -> None:
    _charges(hub, uid)
    drop = DropDirectory(tmp_path, hub.intake, settle_seconds=0)
    (drop.inbox / "good.835").write_bytes(_remit(uid, f"V{uid}"))
    (drop.inbox / "bad.835").write_bytes(b"ISA*00*broken")
    (drop.inbox / "upload.835.part").write_bytes(b"still uploading")
    old = time.time() - 5
    for p in drop.inbox.iterdir():
        os.utime(p, (old, old))
    reports = drop.poll_once()
    assert sorted(r.file for r in reports) == ["bad.835", "good.835"]
    archived = sorted(p.name.split("-", 1)[1] for p in drop.archive.iterdir())
    assert archived == ["good.835", "good.835.999"]
    errors = {p.name.split("-", 1)[1]: p for p in drop.errors.iterdir()}
    assert set(errors) == {"bad.835", "bad.835.reason.json"}
    reason = json.loads(errors["bad.835.reason.json"].read_text())
    assert reason["rejected"] == 1 and reason["errors"][0]["location"]
    assert [p.name for p in drop.inbox.iterdir() if p.is_file()] == ["upload.835.part"]  # still uploading
