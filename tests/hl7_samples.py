"""Sample HL7 v2 files with their identifiers replaced, so tests sharing a database never collide
(many samples share MSH-4 + MSH-10, PID-3, PID-18, PV1-19 and SCH-2)."""

from __future__ import annotations

from pathlib import Path

HL7_DIR = Path(__file__).parent / "samples/hl7v2/microsoft-fhir-converter"
HL7_SAMPLES = sorted(HL7_DIR.glob("*.hl7"))


def sample(name: str, *, control_id: str | None = None, account: str | None = None, mrn: str | None = None,
           appointment: str | None = None, visit: str | None = None) -> bytes:
    """The sample ``name`` with CR segment endings and the given identifiers put in place."""
    text = (HL7_DIR / name).read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8")
    lines = [line for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n") if line.strip()]
    out = []
    for line in lines:
        fields = line.split("|")
        if fields[0] == "MSH" and control_id is not None:
            fields[9] = control_id
        if fields[0] == "PID":
            fields += [""] * (19 - len(fields))
            if account is not None:
                fields[18] = account
            if mrn is not None:
                fields[3] = f"{mrn}^^^^MR"
        if fields[0] == "PV1" and visit is not None:
            fields += [""] * (20 - len(fields))
            fields[19] = visit  # the claim key: a visit number belongs to one account
        if fields[0] == "SCH" and appointment is not None:
            fields[1], fields[2] = f"P{appointment}", appointment
        out.append("|".join(fields))
    return ("\r".join(out) + "\r").encode("utf-8")


def unique(name: str, uid: str) -> bytes:
    """The sample with every identifier derived from ``uid``."""
    return sample(name, control_id=f"C{uid}", account=f"A{uid}", mrn=f"M{uid}", appointment=f"S{uid}",
                  visit=f"V{uid}")
