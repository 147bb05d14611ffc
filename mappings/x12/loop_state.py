"""The 2100/2110 loop being read (mappings layer): mutable collectors that ``TransactionBuilder`` freezes
into ``Claim``/``ServiceLine`` when the next CLP, SVC, LX, N1 or PLB closes them; CLP03/04/05 fast path.
"""

from __future__ import annotations

from decimal import Decimal

from mappings.x12.elements import fast_amount
from mappings.x12.model835 import Adjustment, DateRef, MonetaryAmount, PersonName, Quantity, Reference, ServiceLine
from mappings.x12.segments import Segment

BLANK = ("",) * 10  # pads a short segment so absent trailing elements read as ""


def clp_amounts(e: tuple[str, ...]) -> tuple[Decimal, Decimal, Decimal | None] | None:
    """CLP03, CLP04 and CLP05 of a well-formed CLP (CLP01/02 present); None sends the caller to the
    checked reads, which raise the exact error."""
    if len(e) < 6 or not (e[1] and e[2]):
        return None
    charge, paid = fast_amount(e[3]), fast_amount(e[4])
    if charge is None or paid is None:
        return None
    if not e[5]:
        return charge, paid, None
    patient = fast_amount(e[5])
    return None if patient is None else (charge, paid, patient)


class OpenService:
    """A 2110 loop being read; its segments' values are collected in lists, frozen at the next SVC."""

    __slots__ = ("amts", "cas", "charge", "dates", "number", "paid", "qtys", "refs", "remarks", "seg")

    def __init__(self, seg: Segment, number: int, charge: Decimal, paid: Decimal) -> None:
        self.seg, self.number, self.charge, self.paid = seg, number, charge, paid
        self.dates: list[DateRef] = []
        self.cas: list[Adjustment] = []
        self.refs: list[Reference] = []
        self.amts: list[MonetaryAmount] = []
        self.qtys: list[Quantity] = []
        self.remarks: list[str] = []


class OpenClaim:
    """A 2100 loop being read; ``raw`` collects its segments as received, CLP first."""

    __slots__ = (
        "amounts",
        "amts",
        "cas",
        "dates",
        "header_number",
        "mia",
        "moa",
        "names",
        "qtys",
        "raw",
        "refs",
        "seg",
        "services",
    )  # fmt: skip

    def __init__(self, seg: Segment, header_number: str | None, amounts: tuple[Decimal, Decimal, Decimal | None]):
        self.seg, self.header_number, self.amounts = seg, header_number, amounts  # CLP03, CLP04, CLP05
        self.raw: list[str] = []
        self.cas: list[Adjustment] = []
        self.names: list[PersonName] = []
        self.mia: tuple[str, ...] | None = None
        self.moa: tuple[str, ...] | None = None
        self.refs: list[Reference] = []
        self.dates: list[DateRef] = []
        self.amts: list[MonetaryAmount] = []
        self.qtys: list[Quantity] = []
        self.services: list[ServiceLine] = []
