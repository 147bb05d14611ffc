"""PAN guard: 1,000 test card numbers in the ways people write them are masked or rejected; 10,000 ordinary
ids (MRNs, claim numbers, phone numbers, NPIs, dates, amounts) pass untouched."""

from __future__ import annotations

import random
import re

import pytest
from stdnum import luhn

from router.domain.errors import MappingError
from router.domain.pan import contains_pan, find_pans, mask_pans, reject_pan

# Issuer prefixes of the major brands, with the lengths they issue.
BRANDS = [("4", 16), ("4", 13), ("4", 19), ("51", 16), ("55", 16), ("2221", 16), ("2720", 16), ("34", 15),
          ("37", 15), ("6011", 16), ("65", 16), ("3528", 16), ("36", 14), ("62", 19)]


def card_number(rng: random.Random) -> str:
    prefix, length = rng.choice(BRANDS)
    body = prefix + "".join(rng.choice("0123456789") for _ in range(length - len(prefix) - 1))
    return body + luhn.calc_check_digit(body)


def written(rng: random.Random, number: str) -> str:
    """How a card number turns up in a note: contiguous, in groups of four, Amex 4-6-5, inside a sentence."""
    style = rng.randrange(4)
    if style == 1 and len(number) in (13, 16, 19):
        sep = rng.choice(" -")
        number = sep.join(number[i:i + 4] for i in range(0, len(number), 4))
    elif style == 2 and len(number) == 15:
        number = f"{number[:4]} {number[4:10]} {number[10:]}"
    return rng.choice(["{}", "card {} exp 11/29", "pt gave cc#{} over phone", "Visa:{}.", "({})"]).format(number)


def ordinary_id(rng: random.Random) -> str:
    kind = rng.randrange(8)
    digits = lambda n: "".join(rng.choice("0123456789") for _ in range(n))  # noqa: E731
    if kind == 0:
        return f"MRN {digits(rng.randint(6, 10))}"
    if kind == 1:
        return f"claim CLM-{rng.randint(2019, 2026)}-{digits(6)}"
    if kind == 2:
        return f"call ({digits(3)}) {digits(3)}-{digits(4)}"
    if kind == 3:
        return rng.choice(["+1 {} {} {}", "{}.{}.{}", "1-{}-{}-{}"]).format(digits(3), digits(3), digits(4))
    if kind == 4:
        return f"NPI {digits(10)} member {rng.choice('ABCDEFGHJKLMNPQRSTUVWXYZ')}{digits(9)}"
    if kind == 5:
        day = f"{rng.randint(1, 12):02d}/{rng.randint(1, 28):02d}/{rng.randint(2019, 2026)}"
        return f"DOS {day} paid ${digits(3)}.{digits(2)}"
    if kind == 6:
        return f"ICN {digits(rng.randint(8, 12))} batch {digits(6)}"
    return f"acct {digits(rng.randint(5, 9))}-{digits(2)} ref {rng.choice(['CHK', 'EFT'])}{digits(8)}"


def test_a_thousand_card_numbers_are_masked_or_rejected() -> None:
    rng = random.Random(20261127)
    for _ in range(1000):
        number = card_number(rng)
        text = written(rng, number)
        masked = mask_pans(text)
        assert contains_pan(text), text
        assert not contains_pan(masked), masked
        assert number not in re.sub(r"[ -]", "", masked)
        assert "*" * (len(number) - 4) + number[-4:] in re.sub(r"[ -]", "", masked)  # last four kept for staff
        with pytest.raises(MappingError) as caught:
            reject_pan(text, location="memo")
        assert caught.value.location == "memo" and number[-4:] not in str(caught.value)


def test_ten_thousand_ordinary_ids_are_left_alone() -> None:
    rng = random.Random(7)
    flagged = [text for text in (ordinary_id(rng) for _ in range(10_000)) if find_pans(text) or mask_pans(text) != text]
    assert flagged == []


def test_a_luhn_invalid_long_number_and_adjacent_digits_are_not_cards() -> None:
    assert not contains_pan("4111111111111112")  # check digit wrong
    assert not contains_pan("24111111111111111")  # 17 digits, Luhn-invalid as a whole
    assert not contains_pan("4111 1111 1111")  # 12 digits
    assert reject_pan("order 12345", location="x") == "order 12345"
