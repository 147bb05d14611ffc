"""Every HL7 v2 sample is either mapped to a command or rejected with a reason naming where (MSH-9, IN1-3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hl7_samples import HL7_SAMPLES

from mappings.hl7v2 import er7
from mappings.hl7v2.inbound import to_commands
from router.domain.commands import PostCharges, RecordAppointment, RegisterPatient
from router.domain.errors import MappingError, UnsupportedMessage

ACCEPTED = {
    **dict.fromkeys(["ADT-A01-01", "ADT-A03-01", "ADT-A04-01", "ADT-A04-02", "ADT-A08-01", "ADT-A08-02",
                     "ADT-A31-01", "ADT01-23", "ADT01-28", "ADT04-251", "ADT04-28", "BAR-P01-01", "BAR-P01-02"],
                    RegisterPatient),
    **dict.fromkeys(["DFT-P03-01", "DFT-P03-02", "DFT-P11-01", "DFT-P11-02"], PostCharges),
    **dict.fromkeys(["SIU-S12-01", "SIU-S12-02", "SIU-S12_1", "SIU-S14-01", "SIU-S15-01", "SIU-S26-01"],
                    RecordAppointment),
}
REJECTED = {
    "ADT-A05-01": (UnsupportedMessage, "MSH-9", "ADT^A05 is not supported"),
    "ADT-A40-01": (UnsupportedMessage, "MSH-9", "ADT^A40 is not supported"),
    "SIU_12": (UnsupportedMessage, "MSH-9", "ADT^A60 is not supported"),  # the file name says SIU
    "BAR-P02-01": (UnsupportedMessage, "MSH-9", "BAR^P02 is not supported"),
    "BAR-P02-02": (UnsupportedMessage, "MSH-9", "BAR^P02 is not supported"),
    "BAR-P12-01": (UnsupportedMessage, "MSH-9", "BAR^P12 is not supported"),
    "BAR-P12-02": (UnsupportedMessage, "MSH-9", "BAR^P12 is not supported"),
    "ADT04-23": (MappingError, "IN1[7]-3", "insurance company id (IN1-3) missing"),
}


def test_every_sample_has_a_declared_outcome() -> None:
    assert {p.stem for p in HL7_SAMPLES} == set(ACCEPTED) | set(REJECTED)


@pytest.mark.parametrize("path", HL7_SAMPLES, ids=lambda p: p.stem)
def test_each_sample_maps_to_its_command_or_is_rejected_with_a_located_reason(path: Path) -> None:
    msg = er7.parse(path.read_bytes())
    if path.stem in ACCEPTED:
        commands = to_commands(msg)
        assert [type(c) for c in commands] == [ACCEPTED[path.stem]]
        assert commands[0].source_id == f"hl7:{msg.sending_facility}:{msg.control_id}"
        return
    error, location, reason = REJECTED[path.stem]
    with pytest.raises(error) as caught:
        to_commands(msg)
    assert caught.value.location == location
    assert reason in caught.value.reason
    if error is UnsupportedMessage:
        assert "accepted: DFT^P03" in caught.value.reason  # the reason says what would be taken


def test_dft_p11_posts_the_same_way_as_p03() -> None:
    p11 = to_commands(er7.parse((HL7_SAMPLES[0].parent / "DFT-P11-01.hl7").read_bytes()))[0]
    assert isinstance(p11, PostCharges)
    assert (p11.account, p11.claim_key) == ("4000776", "40007716")
    assert [(c.code, str(c.amount)) for c in p11.charges] == [("71045", "100.00"), ("92002", "70.00")]
