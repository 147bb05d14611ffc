"""The command/event JSON codec: every message type round-trips exactly; hostile bytes raise DecodeError."""

from __future__ import annotations

import contextlib
import dataclasses
import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum
from typing import Any, Union

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router import codec
from router.domain.commands import PostCharges
from router.domain.errors import DecodeError
from router.domain.model import ChargeLine

TEXT = st.text(max_size=12)
TZS = st.sampled_from([None, UTC, timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))])


def strategy(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy for any type the router's dataclasses use, derived from the type hints."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return st.one_of(*(st.none() if t is type(None) else strategy(t) for t in typing.get_args(tp)))
    if origin is tuple:
        return st.lists(strategy(typing.get_args(tp)[0]), max_size=3).map(tuple)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        return st.builds(tp, **{f.name: strategy(hints[f.name]) for f in dataclasses.fields(tp)})
    if isinstance(tp, type) and issubclass(tp, Enum):
        return st.sampled_from(list(tp))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        Decimal: st.decimals(allow_nan=False, allow_infinity=False, places=2, min_value=-10**9, max_value=10**9)
        | st.decimals(allow_nan=False, allow_infinity=False),
        datetime: st.datetimes(timezones=TZS),
        date: st.dates(),
        str: TEXT, int: st.integers(), bool: st.booleans(),
    }
    return simple[tp]


@pytest.mark.parametrize("cls", sorted(codec.TYPES.values(), key=lambda c: c.__name__), ids=lambda c: c.__name__)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_every_message_type_round_trips_exactly(cls: type, data: st.DataObject) -> None:
    message = data.draw(strategy(cls))
    decoded = codec.decode(codec.encode(message))
    assert decoded == message
    assert type(decoded) is type(message)
    # Equality of Decimal ignores the exponent: "100.00" must come back as "100.00", not "1E+2".
    assert codec.encode(decoded) == codec.encode(message)


def test_amounts_keep_their_cents() -> None:
    cmd = PostCharges("hl7:F:1", "A1", "V1", None, (ChargeLine(1, date(2024, 3, 1), "99213", Decimal("100.00")),))
    assert b'"amount":"100.00"' in codec.encode(cmd)
    decoded = codec.decode(codec.encode(cmd))
    assert isinstance(decoded, PostCharges)
    assert str(decoded.charges[0].amount) == "100.00"


@pytest.mark.parametrize("raw", [
    b"", b"not json", b"[]", b'{"type":"Nope","v":1,"body":{}}', b'{"type":"PostCharges","v":9,"body":{}}',
    b'{"type":"PostCharges","v":1,"body":{"source_id":1}}',
    b'{"type":"PostPatientPayment","v":1,"body":{"source_id":"s","account":"a","amount":1.5,'
    b'"method":"cash","received_on":"2024-01-01"}}',
    b'{"type":"ReverseEntry","v":1,"body":{"source_id":"s","idempotency_key":"k","reason":"r","extra":1}}',
    b'{"type":"PostCharges","v":1,"body":{"source_id":"s","account":"a","claim_key":"c","patient":null,'
    b'"charges":"x"}}',
    b"\xff\xfe",
])
def test_hostile_bytes_raise_decode_error(raw: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(raw)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_another_exception(raw: bytes) -> None:
    with contextlib.suppress(DecodeError):
        codec.decode(raw)



def test_nesting_too_deep_for_the_parser_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="nested too deeply"):  # json.loads raises RecursionError inside
        codec.decode(b'{"type":"PostCharges","v":1,"body":' + b"[" * 50_000 + b"]" * 50_000 + b"}")
