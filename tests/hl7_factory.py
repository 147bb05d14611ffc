"""Builds HL7 v2 DFT^P03 test messages (ER7 text) from plain values."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from mappings.hl7v2.er7 import segment


@dataclass
class Ft1:
    amount: Decimal | str
    code: str = "99213"
    kind: str = "CG"
    units: str = "1"
    when: date = date(2024, 3, 1)
    modifiers: tuple[str, ...] = ()
    insurance_plan: str = ""


@dataclass
class Dft:
    control_id: str
    account: str
    visit: str = ""
    mrn: str = ""
    family: str = "DOE"
    given: str = "JANE"
    birth: str = "19800101"
    facility: str = "CLINIC"
    payer: str = ""  # adds an IN1 when set
    lines: list[Ft1] = field(default_factory=list)

    def er7(self, sep: str = "\r") -> str:
        segs = [f"MSH|^~\\&|EMR|{self.facility}|RCMHUB|HUB|20240301120000||DFT^P03|{self.control_id}|P|2.5",
                "EVN|P03|20240301120000",
                segment("PID", {1: "1", 3: self.mrn or f"MRN{self.account}", 5: f"{self.family}^{self.given}",
                                7: self.birth, 8: "F", 18: self.account}),
                segment("PV1", {1: "1", 2: "O", 19: self.visit})]
        for n, line in enumerate(self.lines, start=1):
            segs.append(segment("FT1", {1: str(n), 4: f"{line.when:%Y%m%d}", 6: line.kind, 7: line.code,
                                        10: line.units, 11: f"{line.amount}&USD", 14: line.insurance_plan,
                                        25: line.code, 26: "~".join(line.modifiers)}))
        if self.payer:
            segs.append(segment("IN1", {1: "1", 2: "PLAN1", 3: self.payer, 4: f"{self.payer} HEALTH", 8: "GRP1",
                                        36: "MEMBER1"}))
        return sep.join(segs) + sep

