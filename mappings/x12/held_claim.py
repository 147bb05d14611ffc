"""A held 835 claim read back from its stored raw segments (mappings layer): CLP ... up to the next CLP.

``remittance_claims.raw`` keeps each claim's segments as the payer sent them (without the envelope). To post
a held claim later (a user matched it by hand) the workbench needs the same ``RemitClaim`` the automatic path
built, so the segments are wrapped in a minimal interchange and read by the one 835 reader (``read_835``):
no second parser. Separators: the element separator is the character after ``CLP``; the component separator
is read from an SVC01 composite (``HC:99213``), else ``:``.
"""

from __future__ import annotations

from mappings.x12.remit835 import read_835
from mappings.x12.to_domain import to_remittance
from router.domain.errors import MappingError
from router.domain.remittance import RemitClaim

_SEGMENT_ENDS = ("~", "\x1c", "|", "!", "\x1e")
_REPETITIONS = ("^", "{", "\x1f", "}")


def remit_claim_from_raw(raw: str) -> RemitClaim:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("CLP") or len(lines[0]) < 4:
        raise MappingError("the held claim's raw segments do not start with CLP", location="remittance_claims.raw")
    element = lines[0][3]
    component = ":"
    for line in lines:
        if line.startswith(f"SVC{element}") and len(line) > 6 and not line[6].isalnum():
            component = line[6]
            break
    text = "".join(lines)
    end = next((c for c in _SEGMENT_ENDS if c not in text and c not in (element, component)), None)
    repetition = next((c for c in _REPETITIONS if c not in text and c not in (element, component, end)), None)
    if end is None or repetition is None:
        raise MappingError("no free separator to re-read the held claim", location="remittance_claims.raw")
    clp = lines[0].split(element)
    paid = clp[4] if len(clp) > 4 else "0"
    e = element
    segments = [
        e.join(["ISA", "00", " " * 10, "00", " " * 10, "ZZ", f"{'RCMHUB':<15}", "ZZ", f"{'RCMHUB':<15}", "000101",
                "0000", repetition, "00501", "000000001", "0", "P", component]),
        e.join(["GS", "HP", "RCMHUB", "RCMHUB", "20000101", "0000", "1", "X", "005010X221A1"]),
        e.join(["ST", "835", "0001", "005010X221A1"]),
        e.join(["BPR", "I", paid, "C", "NON", "", "", "", "", "", "", "", "", "", "", "", "20000101"]),
        e.join(["TRN", "1", "HELD", "1000000000"]),
        e.join(["N1", "PR", "HELD"]),
        e.join(["N1", "PE", "HELD", "XX", "0"]),
        e.join(["LX", "1"]),
        *lines,
    ]
    segments += [e.join(["SE", str(len(segments) - 1), "0001"]), e.join(["GE", "1", "1"]),
                 e.join(["IEA", "1", "000000001"])]
    remittances = list(read_835((end.join(segments) + end).encode()))
    claims = [c for r in remittances for c in to_remittance(r, ()).claims]
    if len(claims) != 1:
        raise MappingError(f"the held claim's raw segments hold {len(claims)} claims, not 1",
                           location="remittance_claims.raw")
    return claims[0]
