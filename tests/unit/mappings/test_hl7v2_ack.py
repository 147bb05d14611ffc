"""ACK builder: MSH/MSA/ERR content, original and enhanced modes, read back by er7 and by python-hl7."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import hl7
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.hl7v2 import er7
from mappings.hl7v2.ack import (
    AckCode,
    AckError,
    Verdict,
    ack_code,
    build_ack,
    error_of,
    read_header,
    should_send,
)
from router.domain.errors import DecodeError, DomainViolation, MappingError, StoreUnavailable, UnsupportedMessage

MSG = ("MSH|^~\\&|EMRAPP|CLINIC^1.2.3^ISO|RCMHUB|HUB|20240301120000||DFT^P03^DFT_P03|CTL-42|P|2.5.1{extra}\r"
       "PID|1||M1||DOE^JANE||||||||||||A1\rPV1|1|O\rFT1|1|||20240301||CG|99213|||1|12,00&USD\r")
NOW = datetime(2024, 3, 1, 12, 0, 5, tzinfo=UTC)


def header(extra: str = "") -> er7.Segment:
    return er7.parse_header(MSG.format(extra=extra))


def test_aa_swaps_sender_and_receiver_keeps_the_version_and_answers_msh_10() -> None:
    ack = build_ack(header(), AckCode.AA, control_id="ACK1", now=NOW)
    assert ack == (b"MSH|^~\\&|RCMHUB|HUB|EMRAPP|CLINIC^1.2.3^ISO|20240301120005+0000||ACK^P03^ACK|ACK1|P|2.5.1\r"
                   b"MSA|AA|CTL-42\r")
    parsed = hl7.parse(ack.decode())
    assert str(parsed.segment("MSA")[1]) == "AA" and str(parsed.segment("MSA")[2]) == "CTL-42"


def test_every_ack_gets_a_fresh_control_id() -> None:
    first, second = (er7.parse(build_ack(header(), AckCode.AA)).control_id for _ in range(2))
    assert first != second and len(first) <= 20


def test_an_application_error_names_segment_occurrence_field_code_and_escaped_text() -> None:
    msg = er7.parse(MSG.format(extra=""))
    with pytest.raises(MappingError) as caught:
        er7.parse_date("2024|13^01", msg.one("FT1").loc(4))
    ack = build_ack(msg.msh, AckCode.AE, error_of(caught.value, msg))
    back = er7.parse(ack)
    err = back.one("ERR")
    assert (err.get(2, 1), err.get(2, 2), err.get(2, 3)) == ("FT1", "1", "4")  # 1st FT1, though 4th segment
    assert (err.get(3, 1), err.get(3, 2), err.get(3, 3)) == ("102", "Data type error", "HL70357")
    assert err.get(4) == "E"
    assert err.get(8) == "FT1[4]-4: '2024|13^01' is not a date (YYYYMMDD)"  # delimiters escaped, read back
    assert back.one("MSA").get(3) == err.get(8)
    python_hl7 = hl7.parse(ack.decode())
    assert str(python_hl7.segment("ERR")[2]) == "FT1^1^4"


@pytest.mark.parametrize("exc, code", [
    (MappingError("patient account number (PID-18) missing", location="PID[2]-18"), 101),
    (MappingError("transaction type 'ZZ' is not supported (CG, CD)", location="FT1[4]-6"), 103),
    (DecodeError("not an HL7 v2 message: it must start with MSH", location="MSH"), 100),
    (DecodeError("unsupported character set 'KLINGON'", location="MSH-18"), 102),
    (UnsupportedMessage("message type ZZZ^Z01 is not supported", location="MSH-9"), 200),
    (DomainViolation("source id 'x' was already processed with different content"), 205),
    (StoreUnavailable("database unavailable: OperationalError"), 207),
])
def test_errors_carry_their_table_0357_code(exc: Exception, code: int) -> None:
    assert error_of(exc).code == code  # type: ignore[arg-type]


def test_an_unsupported_event_of_a_known_message_code_is_201() -> None:
    msg = er7.parse(MSG.format(extra="").replace("DFT^P03^DFT_P03", "ADT^A40"))
    assert error_of(UnsupportedMessage("no", location="MSH-9"), msg).code == 201


def test_a_transient_error_tells_the_sender_to_send_again() -> None:
    text = error_of(StoreUnavailable("database unavailable: OperationalError")).text
    assert "send again" in text


def test_v23_senders_get_err_1_and_a_two_part_message_type() -> None:
    h = er7.parse_header("MSH|^~\\&|A|F|B|G|2001||ADT^A01|X9|P|2.3")
    ack = er7.parse(build_ack(h, AckCode.AE, AckError("PID[2]-18: missing", 101, "PID", 1, 18)))
    assert ack.msh.raw(9) == "ACK^A01"
    assert ack.one("ERR").repetitions(1) == ["PID^1^18^101&Required field missing&HL70357"]


def test_unreadable_input_gets_a_minimal_ar_with_an_empty_msa_2() -> None:
    assert read_header(b"\x00garbage") is None
    ack = build_ack(None, AckCode.AR, AckError("not an HL7 v2 message", 100))
    parsed = er7.parse(ack)
    assert parsed.one("MSA").fields[1:3] == ["AR", ""]
    assert parsed.msh.get(12) == "2.5.1"
    assert str(hl7.parse(ack.decode()).segment("MSA")[1]) == "AR"


def test_custom_separators_are_answered_in_kind_and_read_back_by_python_hl7() -> None:
    h = er7.parse_header("MSH#!*%$#APP#FAC!X$Y#HUB#H#2024##DFT!P03#C|9#P#2.5")
    ack = build_ack(h, AckCode.AE, AckError("amount # is bad ! really", 102, "FT1", 1, 11))
    assert ack.startswith(b"MSH#!*%$#HUB#H#APP#FAC!X$Y#")
    back = er7.parse(ack)
    assert back.one("MSA").get(2) == "C|9"
    assert back.one("ERR").get(8) == "amount # is bad ! really"
    assert str(hl7.parse(ack.decode()).segment("MSA")[2]) == "C|9"


def test_control_character_separators_fall_back_to_the_standard_ones() -> None:
    h = er7.parse_header("MSH\x1c^~\\&\x1cAPP\x1cFAC\x1cHUB\x1cH\x1c2024\x1c\x1cDFT^P03\x1cC1\x1cP\x1c2.5")
    ack = build_ack(h, AckCode.AA)
    assert ack.startswith(b"MSH|^~\\&|HUB|H|APP|FAC|") and b"\x1c" not in ack
    assert er7.parse(ack).one("MSA").get(2) == "C1"


def test_the_ack_is_written_in_the_senders_charset() -> None:
    raw = "MSH|^~\\&|APP|KLINIK MÜNCHEN|HUB|H|2024||ADT^A08|C1|P|2.5|||||DE|8859/1\r".encode("latin-1")
    ack = build_ack(read_header(raw), AckCode.AA)
    assert "KLINIK MÜNCHEN".encode("latin-1") in ack
    assert er7.parse(ack).msh.get(6) == "KLINIK MÜNCHEN" and er7.parse(ack).msh.get(18) == "8859/1"


@pytest.mark.parametrize("msh_15, verdict, code, sent", [
    ("", Verdict.ACCEPTED, AckCode.AA, True), ("", Verdict.ERROR, AckCode.AE, True),
    ("", Verdict.REJECTED, AckCode.AR, True), ("", Verdict.RETRY, AckCode.AE, True),
    ("AL", Verdict.ACCEPTED, AckCode.CA, True), ("AL", Verdict.REJECTED, AckCode.CR, True),
    ("AL", Verdict.RETRY, AckCode.CE, True), ("AL", Verdict.CONFLICT, AckCode.CE, True),
    ("NE", Verdict.ACCEPTED, AckCode.CA, False), ("NE", Verdict.REJECTED, AckCode.CR, False),
    ("ER", Verdict.ACCEPTED, AckCode.CA, False), ("ER", Verdict.REJECTED, AckCode.CR, True),
    ("SU", Verdict.ACCEPTED, AckCode.CA, True), ("SU", Verdict.RETRY, AckCode.CE, False),
])
def test_msh_15_selects_enhanced_mode_and_when_to_answer(msh_15: str, verdict: Verdict, code: AckCode,
                                                        sent: bool) -> None:
    h = header(f"|||{msh_15}|AL" if msh_15 else "")
    assert ack_code(verdict, h) is code
    assert should_send(code, h) is sent


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80), st.text(st.characters(blacklist_categories=("Cs",)), max_size=300))
def test_any_header_text_and_reason_give_an_ack_without_framing_bytes_that_reads_back(field: str,
                                                                                      reason: str) -> None:
    raw = f"MSH|^~\\&|{field}|{field}|R|R|2024||DFT^P03|{field}|P|2.5".encode("utf-8", "surrogatepass")
    h = read_header(raw)
    ack = build_ack(h, AckCode.AE, AckError(reason, 207, "PID", 1, 3))
    assert b"\x0b" not in ack and b"\x1c" not in ack
    back = er7.parse(ack)
    assert back.one("MSA").get(1) == "AE"
    assert back.one("ERR").get(8) == re.sub(r"[\x00-\x1f\x7f]", " ", reason)[:250]
