"""Hostile input over a real socket: random bytes and mutated samples always get an ACK that reads back,
with AE/AR (or CE/CR in enhanced mode) and a reason; never a crash, a hang or a silent drop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hl7_samples import HL7_SAMPLES, sample
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.bootstrap import Hub
from connectors.hl7_listener import Hl7Listener
from connectors.mllp import MllpClient
from mappings.hl7v2 import er7

pytestmark = pytest.mark.timeout(300)

FRAMING = bytes([0x0B, 0x1C])
HEADER = b"MSH|^~\\&|FUZZ|FUZZFAC|HUB|HUB|20240301||"
# Own accounts and patients: the samples' ids are shared with other tests of the same database.
SAMPLES = [sample(p.name, control_id=f"FZ{n}", account=f"FZA{n}", mrn=f"FZM{n}", appointment=f"FZS{n}",
                  visit=f"FZV{n}")
           for n, p in enumerate(HL7_SAMPLES) if p.stem != "ADT-A40-01"]


@pytest.fixture(scope="module")
def client(session_hub: Hub) -> Iterator[MllpClient]:
    server = Hl7Listener(session_hub.intake).run_in_thread()
    with MllpClient("127.0.0.1", server.port) as mllp:
        yield mllp
    stats = server.server.stats
    server.stop(grace=2)
    assert stats.handler_failures == 0


def check(client: MllpClient, payload: bytes, allowed: set[str]) -> er7.Message:
    payload = bytes(b for b in payload if b not in FRAMING)  # framing bytes cannot be inside a frame
    ack = er7.parse(client.send(payload, timeout=30))
    msa = ack.one("MSA")
    assert msa.get(1) in allowed
    if msa.get(1) not in ("AA", "CA"):
        reason = ack.one("ERR").get(8)
        assert reason and msa.get(3) == reason
        assert "internal error" not in reason
    return ack


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=600))
def test_random_bytes_are_rejected_with_a_reason(client: MllpClient, data: bytes) -> None:
    ack = check(client, data, {"AR", "AE", "CR", "CE"})
    if not data.lstrip(b"\xef\xbb\xbf\r\n\t ").startswith(b"MSH"):
        assert ack.one("MSA").get(2) == ""


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=400), st.sampled_from([b"DFT^P03", b"ADT^A04", b"SIU^S12", b"BAR^P01", b"ZZZ^Z99"]))
def test_a_valid_header_over_random_segments_is_answered_for_its_control_id(client: MllpClient, body: bytes,
                                                                           kind: bytes) -> None:
    ack = check(client, HEADER + kind + b"|FUZZ-1|P|2.5\r" + body, {"AR", "AE", "AA"})
    assert ack.one("MSA").get(2) == "FUZZ-1"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SAMPLES), st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=4)), max_size=6),
       st.integers(0, 2**32))
def test_mutated_samples_are_answered_and_errors_carry_a_reason(client: MllpClient, original: bytes,
                                                               edits: list[tuple[int, bytes]], salt: int) -> None:
    data = bytearray(original.replace(b"|FZ", f"|FZ{salt}-".encode(), 1))
    for at, chunk in edits:
        at %= max(len(data), 1)
        data[at:at + len(chunk)] = chunk
    check(client, bytes(data), {"AA", "AE", "AR", "CA", "CE", "CR"})
