from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mappings.hl7v2 import er7
from router.domain.errors import DecodeError, MappingError

HL7_SAMPLES = sorted((Path(__file__).parents[2] / "samples" / "hl7v2").rglob("*.hl7"))


@pytest.mark.parametrize("path", HL7_SAMPLES, ids=lambda p: p.name)
def test_every_hl7_sample_parses_with_its_type_and_control_id(path: Path) -> None:
    raw = path.read_bytes()
    messages = er7.split_messages(er7.decode_bytes(raw))
    assert len(messages) >= 1
    msg = er7.parse(messages[0])
    code, event = msg.type
    assert code in {"ADT", "BAR", "DFT", "SIU"} and event
    assert msg.control_id
    assert msg.segments[0].name == "MSH"


def test_segment_endings_cr_lf_and_crlf_give_the_same_segments() -> None:
    body = ["MSH|^~\\&|A|FAC|B|C|20240101||DFT^P03|C1|P|2.5", "PID|1||M1||DOE^JANE", "FT1|1|||20240102||CG"]
    parsed = [er7.parse(sep.join(body)) for sep in ("\r", "\n", "\r\n")]
    assert [[s.fields for s in m.segments] for m in parsed[1:]] == [[s.fields for s in parsed[0].segments]] * 2


def test_custom_separators_from_msh_are_honoured() -> None:
    msg = er7.parse("MSH#!*%$#APP#FAC#X#Y#20240101##DFT!P03#C9#P#2.5\rPID#1##M7##DOE!JOHN*JON#")
    pid = msg.one("PID")
    assert msg.type == ("DFT", "P03")
    assert pid.get(5, 1) == "DOE"
    assert pid.get(5, 2) == "JOHN"
    assert pid.get(5, 1, repetition=2) == "JON"
    assert pid.get(5, 2, repetition=2) == ""
    assert pid.repetitions(5) == ["DOE!JOHN", "JON"]


def test_escape_sequences_are_decoded() -> None:
    msg = er7.parse("MSH|^~\\&|A|F|B|C|1||ADT^A08|C1|P|2.5\r"
                    "NTE|1||a\\F\\b\\S\\c\\T\\d\\R\\e\\E\\f\\X41\\\\.br\\g\\H\\h")
    assert msg.one("NTE").get(3) == "a|b^c&d~e\\fA\ngh"


def test_repetitions_components_and_subcomponents() -> None:
    msg = er7.parse("MSH|^~\\&|A|F|B|C|1||DFT^P03|C1|P|2.5\rFT1|1||||||||||100&USD^DC~5&USD")
    ft1 = msg.one("FT1")
    assert ft1.get(11) == "100"
    assert ft1.get(11, 1, 2) == "USD"
    assert ft1.get(11, 2) == "DC"
    assert ft1.get(11, 1, 1, repetition=2) == "5"


def test_msh_field_numbering_counts_the_field_separator_as_msh_1() -> None:
    msh = er7.parse("MSH|^~\\&|APP|FAC|RAPP|RFAC|20240101||DFT^P03|CTRL|P|2.5").msh
    assert msh.get(1) == "|"
    assert msh.raw(2) == "^~\\&"
    assert (msh.get(3), msh.get(4), msh.get(10), msh.get(12)) == ("APP", "FAC", "CTRL", "2.5")


def test_utf8_bom_and_declared_latin1_and_undeclared_cp1252_bytes_decode() -> None:
    latin1 = "MSH|^~\\&|A|F|B|C|1||ADT^A08|C1|P|2.5||||||8859/1\rPID|1||M||MÜLLER".encode("latin-1")
    assert er7.parse(latin1).one("PID").get(5) == "MÜLLER"
    cp1252 = "MSH|^~\\&|A|F|B|C|1||ADT^A08|C1|P|2.5\rPID|1||M||O\u2019BRIEN".encode("cp1252")
    assert er7.parse(cp1252).one("PID").get(5) == "O\u2019BRIEN"
    bom = b"\xef\xbb\xbf" + "MSH|^~\\&|A|F|B|C|1||ADT^A08|C1|P|2.5\rPID|1||M||ÅSA".encode()
    assert er7.parse(bom).one("PID").get(5) == "ÅSA"


def test_unknown_charset_is_rejected_naming_msh_18() -> None:
    with pytest.raises(DecodeError) as info:
        er7.parse(b"MSH|^~\\&|A|F|B|C|1||ADT^A08|C1|P|2.5||||||KLINGON\r")
    assert info.value.location == "MSH-18"


@pytest.mark.parametrize("text, location", [
    ("hello world", "MSH"),
    ("MSH|^~|A", "MSH-2"),
    ("MSH|^~\\&|A|F|B|C|1||DFT^P03|C1|P|2.5\rpid|1", "segment 2"),
    ("MSH|^~\\&|A|F|B|C|1||DFT^P03|C1|P|2.5\rPID|1||M\x001", "PID-3"),
    ("MSH|^~\\&|A|F|B|C|1||DFT^P03|C\x001|P|2.5", "MSH-10"),
])
def test_malformed_messages_raise_decode_error_with_location(text: str, location: str) -> None:
    with pytest.raises(DecodeError) as info:
        er7.parse(text)
    assert info.value.location == location


def test_split_messages_separates_batches_and_skips_batch_envelopes() -> None:
    text = ("FHS|^~\\&\nBHS|^~\\&\nMSH|^~\\&|A|F|B|C|1||DFT^P03|C1|P|2.5\nPID|1\n"
            "MSH|^~\\&|A|F|B|C|1||DFT^P03|C2|P|2.5\nPID|2\nBTS|2\nFTS|1\n")
    messages = er7.split_messages(text)
    assert [er7.parse(m).control_id for m in messages] == ["C1", "C2"]


def test_parse_date_accepts_timestamps_and_names_the_field_on_error() -> None:
    assert er7.parse_date("198808181126+0215", "PID[3]-7") == date(1988, 8, 18)
    with pytest.raises(MappingError) as info:
        er7.parse_date("2024-13-01", "FT1[1]-4")
    assert info.value.location == "FT1[1]-4"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_only_ever_raise_the_declared_errors(data: bytes) -> None:
    for payload in (data, b"MSH|^~\\&|" + data):
        try:
            msg = er7.parse(payload)
            for seg in msg.segments:
                for n in range(1, 30):
                    seg.get(n, 2, 2, 2)
        except (DecodeError, MappingError):
            pass


@pytest.mark.parametrize("data, single", [
    (b"MSH|^~\\&|A|B|||||DFT^P03|1|P|2.5\rPID|1\r", True),
    (b"\xef\xbb\xbf\r\nMSH|^~\\&|A|B\nPID|1\n", True),  # BOM, a leading blank line, LF endings
    (b"MSH|^~\\&|A|B|||||ADT^A04|1|P|2.5\rMSH|^~\\&|A|B|||||ADT^A04|2|P|2.5\r", False),
    (b"MSH|^~\\&|A|B\r\nPID|1\r\nMSH|^~\\&|A|B\r\n", False),
    (b"FHS|^~\\&\rBHS|^~\\&\rMSH|^~\\&|A|B\rBTS|1\rFTS|1\r", False),  # a batch file
    (b'{"resourceType": "Patient"}', False),
    (b"PID|1|MSH\r", False),
])
def test_is_single_message_tells_one_message_from_files_and_other_formats(data: bytes, single: bool) -> None:
    assert er7.is_single_message(data) is single
