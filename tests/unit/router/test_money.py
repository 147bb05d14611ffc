from __future__ import annotations

from decimal import Decimal

import pytest

from router.domain.errors import MappingError
from router.domain.money import fmt, from_cents, money, to_cents


@pytest.mark.parametrize("text", ["1e400", "-1e999", "NaN", "Infinity", "12,50", ""])
def test_absurd_or_malformed_amounts_raise_the_declared_mapping_error(text: str) -> None:
    with pytest.raises(MappingError):
        money(text)


def test_cents_round_trip_exactly_and_half_cents_round_half_up() -> None:
    assert money("0.125") == Decimal("0.13")
    assert money("-0.125") == Decimal("-0.13")
    assert from_cents(to_cents(Decimal("1234567.89"))) == Decimal("1234567.89")
    assert fmt(Decimal("12.5")) == "12.50"
