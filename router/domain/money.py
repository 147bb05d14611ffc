"""Money in the domain: ``Decimal`` quantized to cents; integer cents at the storage edge."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from router.domain.errors import MappingError

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def money(value: Decimal | int | str) -> Decimal:
    """Return ``value`` as a Decimal with exactly two places; floats are refused."""
    if isinstance(value, float):  # a float has already lost the cents
        raise TypeError("money must not be built from float")
    if isinstance(value, bool):
        raise TypeError("money must not be built from bool")
    try:
        amount = Decimal(value)
        if not amount.is_finite():
            raise MappingError(f"{value!r} is not a finite amount")
        return amount.quantize(CENT, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError) as exc:  # quantize overflows on absurd magnitudes (1e400)
        raise MappingError(f"{value!r} is not an amount") from exc


def exact_money(value: Decimal, location: str | None = None) -> Decimal:
    """An amount as a sender stated it, exact to the cent or refused (``location`` names it): never rounded,
    since a sub-cent amount means the sender's arithmetic differs from the ledger's and rounding would hide
    it. Computed amounts (unit price x quantity) are rounded by ``money`` instead."""
    amount = money(value)
    if amount != value:
        raise MappingError(f"{value} has more than two decimals", location=location)
    return amount


def to_cents(amount: Decimal) -> int:
    """Decimal dollars -> integer cents (the storage representation)."""
    return int(money(amount) * 100)


def from_cents(cents: int) -> Decimal:
    """Integer cents -> Decimal dollars with two places."""
    return (Decimal(cents) / 100).quantize(CENT)


def fmt(amount: Decimal) -> str:
    """Two-place decimal string, as every JSON output shows money ("12.50")."""
    return f"{money(amount):.2f}"
