"""ADT/BAR -> RegisterPatient and SIU -> RecordAppointment over samples and hand-made edge cases."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hl7_samples import sample

from mappings.hl7v2 import er7
from mappings.hl7v2.adt import decode_registration
from mappings.hl7v2.er7 import segment
from mappings.hl7v2.siu import decode_appointment, parse_timestamp
from router.domain.errors import MappingError
from router.domain.model import Coverage, Patient

MSH = "MSH|^~\\&|EMR|FAC|HUB|HUB|20240101||{type}|C1|P|2.5"
PID = segment("PID", {1: "1", 3: "M1", 5: "DOE", 18: "A1"})


def adt(type_: str, *segments: str) -> er7.Message:
    return er7.parse("\r".join([MSH.format(type=type_), PID, *segments]))


def test_adt_sample_gives_patient_guarantor_and_every_insurance_with_in2_member_fallback() -> None:
    cmd = decode_registration(er7.parse(sample("ADT01-23.hl7")))
    assert cmd.source_id == "hl7:1:599102"
    assert cmd.account == "40007716"
    assert cmd.patient == Patient("10006579", "DUCK", "DONALD", date(1924, 10, 10))
    assert cmd.guarantor == "DUCK, DONALD"
    # The third IN1 is SELF PAY: not insurance, so it is left out.
    assert cmd.coverages == (
        Coverage(1, "3", "MEDICARE", "123121234A", "", "MEDICARE"),
        Coverage(2, "9", "MEDICAL MUTUAL CALIF.", "056269770", "PUBSUMB", "NON-PRIMARY"))
    assert not cmd.replace_coverages


def test_member_id_falls_back_to_in2_when_in1_36_is_empty() -> None:
    cmd = decode_registration(adt("ADT^A04", "IN1|1|PPO|BCBS|Blue Cross", segment("IN2", {6: "HIC", 61: "MB-61"}),
                                  "IN1|2|HMO|AET|Aetna", segment("IN2", {6: "HIC-6", 8: "MCD-8"})))
    assert [c.member_id for c in cmd.coverages] == ["MB-61", "HIC-6"]


def test_mrn_is_the_pid_3_repetition_typed_mr() -> None:
    pid = segment("PID", {3: "123^^^SSA^SS~M77^^^HOSP^MR", 18: "A1"})
    msg = er7.parse("\r".join([MSH.format(type="ADT^A04"), pid]))
    assert decode_registration(msg).patient.mrn == "M77"


@pytest.mark.parametrize("type_, with_in1, replace", [
    ("ADT^A08", True, True), ("ADT^A31", True, True), ("ADT^A08", False, False), ("ADT^A04", True, False),
    ("BAR^P01", True, False)])
def test_only_a08_and_a31_carrying_in1_replace_the_coverage_list(type_: str, with_in1: bool, replace: bool) -> None:
    segments = ["IN1|1|PPO|BCBS"] if with_in1 else []
    assert decode_registration(adt(type_, *segments)).replace_coverages is replace


def test_a_sequence_repeated_with_other_insurance_data_is_an_error_but_an_identical_repeat_is_not() -> None:
    assert len(decode_registration(adt("BAR^P01", "IN1|1|PPO|BCBS", "IN1|1|PPO|BCBS")).coverages) == 1
    with pytest.raises(MappingError) as caught:
        decode_registration(adt("BAR^P01", "IN1|1|PPO|BCBS", "IN1|1|HMO|AETNA"))
    assert caught.value.location == "IN1[4]-1"


def test_registration_without_an_account_is_rejected_at_pid_18() -> None:
    msg = er7.parse(MSH.format(type="ADT^A01") + "\rPID|1||M1||DOE")
    with pytest.raises(MappingError) as caught:
        decode_registration(msg)
    assert caught.value.location == "PID[2]-18"


@pytest.mark.parametrize("name, status", [("SIU-S12-01.hl7", "booked"), ("SIU-S14-01.hl7", "rescheduled"),
                                          ("SIU-S15-01.hl7", "cancelled"), ("SIU-S26-01.hl7", "noshow")])
def test_siu_trigger_and_filler_status_give_the_appointment_status(name: str, status: str) -> None:
    cmd = decode_appointment(er7.parse(sample(name)))
    assert cmd.status == status
    assert cmd.appointment_id == "GHHSFacility:36996"  # SCH-2, the filler's id, under MSH-4
    assert cmd.account == "4000776"
    assert cmd.start == datetime(2021, 9, 24, 9, 30, tzinfo=timezone(timedelta(hours=2, minutes=15)))  # TQ1-7
    assert cmd.reason == "EMERGENCY"


def test_siu_start_falls_back_to_sch_11_then_ais_and_duration_uses_sch_10_units() -> None:
    msh = MSH.format(type="SIU^S12")
    sch = segment("SCH", {1: "P1", 2: "F1", 9: "30", 10: "min", 11: "^^^20240105083000"})
    sch11 = er7.parse("\r".join([msh, sch, PID]))
    ais = er7.parse("\r".join([msh, segment("SCH", {1: "P1", 9: "2", 10: "h"}), PID, "AIS|1||X|20240106"]))
    assert decode_appointment(sch11).start == datetime(2024, 1, 5, 8, 30, tzinfo=UTC)
    assert decode_appointment(sch11).duration_minutes == 30
    assert decode_appointment(ais).start == datetime(2024, 1, 6, tzinfo=UTC)
    assert decode_appointment(ais).appointment_id == "FAC:P1"  # no filler id: the placer's
    assert decode_appointment(ais).duration_minutes == 120


def test_siu_cancelled_filler_status_wins_over_the_trigger_event() -> None:
    msg = er7.parse("\r".join([MSH.format(type="SIU^S14"), segment("SCH", {1: "P1", 2: "F1", 25: "Cancelled"}), PID]))
    assert decode_appointment(msg).status == "cancelled"


@pytest.mark.parametrize("value", ["2024", "20241301", "202401011", "20240101+02", "20240101120000+2x00"])
def test_bad_timestamps_are_mapping_errors_naming_the_field(value: str) -> None:
    with pytest.raises(MappingError) as caught:
        parse_timestamp(value, "TQ1[2]-7")
    assert caught.value.location == "TQ1[2]-7"
