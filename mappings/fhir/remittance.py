"""ExplanationOfBenefit and ClaimResponse -> a one-claim ``Remittance`` and ``PostRemittance`` (mappings),
the FHIR twin of mappings/x12/to_domain.py; item amounts and CAS come from adjudication.py's table.

Claim (CLP01): the Claim that EOB.claim / ClaimResponse.request points at in the payload (its claim key,
as charges.py posts it), else that reference's logical identifier.value, else the resource's identifier[0]
(then matching falls to the payer claim number and fuzzy candidates). A literal ``Claim/{id}`` outside the
payload names the sender's server id, not a claim key, and is not used.
Status (CLP02): status must be active; outcome queued/error is refused (nothing adjudicated); use
preauthorization/predetermination -> 25; else the payer order: EOB.precedence, ClaimResponse focal
insurance.sequence (1/2/3). type (claim form) and payment.type (complete/partial) do not change it.
Lines: EOB item[] (sequence, productOrService, modifier, servicedDate, net); ClaimResponse item[] read
code and net from the request Claim's item of the same sequence; without that Claim the items post at
claim level (like a CLP without SVC). Header adjudication[] -> claim-level CAS. addItem is refused.
Payment: payment.amount -> BPR02 (absent: the claim's paid), payment.identifier -> TRN02 (else the
resource identifier), payment.date (else created) -> BPR16, payment.adjustment -> PLB (code from
adjustmentReason, else CS; amount = -adjustment, so a negative adjustment withholds), insurer -> payer.
Balancing, as the 835's rules: each line charge - CAS = paid; claim charge - all CAS = paid; paid - PLB =
payment.amount; and total[submitted]/total[benefit] agree. A failure maps, flagged, and is quarantined.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from fhir.resources.R4B.claim import Claim, ClaimItem
from fhir.resources.R4B.claimresponse import ClaimResponse, ClaimResponsePayment, ClaimResponseTotal
from fhir.resources.R4B.codeableconcept import CodeableConcept
from fhir.resources.R4B.explanationofbenefit import (
    ExplanationOfBenefit,
    ExplanationOfBenefitPayment,
    ExplanationOfBenefitTotal,
)
from fhir.resources.R4B.identifier import Identifier
from fhir.resources.R4B.money import Money
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.quantity import Quantity
from fhir.resources.R4B.reference import Reference

from mappings.fhir.adjudication import Adjudicated, adjudicate, amount_of, total
from mappings.fhir.charges import decode_claim
from mappings.fhir.references import Resolver, first_value, logical_value
from mappings.fhir.wire import Raw, to_date
from router.domain.commands import PostRemittance
from router.domain.errors import MappingError, UnsupportedMessage
from router.domain.money import ZERO, fmt
from router.domain.remittance import Cas, PlbEntry, RemitClaim, RemitLine, Remittance

Payment = ExplanationOfBenefitPayment | ClaimResponsePayment
Total = ExplanationOfBenefitTotal | ClaimResponseTotal
PREDETERMINATION = frozenset({"preauthorization", "predetermination"})
DEFAULT_PLB = "CS"


@dataclass(frozen=True)
class Parsed:
    """What both resources share once read: the claim and the payment around it."""

    prefix: str
    ident: str  # identifier[0].value, else id
    key: str
    status: str
    payer: tuple[str, str]
    payee: tuple[str, str]
    lines: tuple[RemitLine, ...]
    claim_level: Adjudicated  # header CAS, plus item CAS when there are no lines
    problems: tuple[str, ...]
    totals: Sequence[Total]
    payment: Payment | None
    created: object


def _text(value: str, limit: int, location: str) -> str:
    if len(value) > limit:
        raise MappingError(f"{value[:20]!r}… is longer than {limit} characters", location=location)
    return value


def _code(concept: CodeableConcept | None) -> str:
    return next((str(c.code) for c in (concept.coding or []) if c.code), "") if concept else ""


def _party(ref: Reference | None, raw: Raw, resolver: Resolver, location: str) -> tuple[str, str]:
    """(id, name) of an Organization reference: its identifier, else the payload's Organization, else the text."""
    if ref is None:
        return "", ""
    found = resolver.resolve(ref, Organization, raw, location) if ref.reference else None
    if found is not None:
        org = found[1]
        return first_value(org.identifier) or str(org.id or ""), str(org.name or ref.display or "")
    return logical_value(ref) or str(ref.reference or ref.display or ""), str(ref.display or "")


def _claim(ref: Reference | None, raw: Raw, resolver: Resolver, location: str) -> tuple[str, Claim | None]:
    """The claim key and, when it is in the payload, the Claim itself (decoded exactly as charges.py does)."""
    found = resolver.resolve(ref, Claim, raw, location) if ref and ref.reference else None
    if found is not None:
        return decode_claim(found[0], resolver, location).claim_key, found[1]
    return logical_value(ref), None


def _status(prefix: str, status: str, use: str, outcome: str, disposition: str, level: int) -> str:
    """CLP02 for a FHIR remittance; what posts nothing is refused here with the element that says so."""
    if status != "active":
        raise UnsupportedMessage(f"status {status!r}: only an active remittance posts (a cancelled one would "
                                 "reverse a posting; send that as an 835 CLP02=22)", location=f"{prefix}.status")
    said = f" ({disposition})" if disposition else ""
    if outcome == "queued":
        raise MappingError(f"outcome 'queued': not adjudicated yet{said}; nothing to post",
                           location=f"{prefix}.outcome")
    if outcome == "error":
        raise MappingError(f"outcome 'error': the payer could not process the claim{said}; nothing was "
                           "adjudicated, so nothing posts - correct and resubmit the claim",
                           location=f"{prefix}.outcome")
    if use in PREDETERMINATION:
        return "25"
    return str(min(max(level, 1), 3))


def _line(number: int, code: str, modifiers: tuple[str, ...], served: object, read: Adjudicated,
          location: str) -> RemitLine:
    if read.charge is None:
        raise MappingError("the charge is unknown: no 'submitted' adjudication and no net", location=location)
    when = to_date(served, f"{location}.servicedDate") if served else None
    return RemitLine(number=number, code=code, modifiers=modifiers, charge=read.charge, paid=read.paid,
                     adjustments=tuple(read.adjustments), service_date=when, remarks=tuple(read.remarks))


def _net(net: object, unit_price: object, quantity: object, location: str) -> Decimal | None:
    """item.net, else unitPrice x quantity (as charges.py reads a Claim item)."""
    found = amount_of(net if isinstance(net, Money) else None, f"{location}.net")
    price = amount_of(unit_price if isinstance(unit_price, Money) else None, f"{location}.unitPrice")
    if found is None and price is not None:
        units = Decimal(quantity.value) if isinstance(quantity, Quantity) and quantity.value is not None else 1
        return price * units
    return found


def read_eob(raw: Raw, resolver: Resolver, prefix: str = "ExplanationOfBenefit") -> Parsed:
    eob = resolver.model(raw, ExplanationOfBenefit, prefix)
    ident = first_value(eob.identifier) or str(eob.id or "")
    if eob.addItem:
        raise UnsupportedMessage("addItem (payer-added or re-coded items) is not mapped", location=f"{prefix}.addItem")
    key, _ = _claim(eob.claim, raw, resolver, f"{prefix}.claim")
    status = _status(prefix, str(eob.status), str(eob.use), str(eob.outcome), str(eob.disposition or ""),
                     int(eob.precedence or 1))
    lines: list[RemitLine] = []
    problems: list[str] = []
    for i, item in enumerate(eob.item or []):
        loc = f"{prefix}.item[{i}]"
        read = adjudicate(item.adjudication, loc, fallback_charge=_net(item.net, item.unitPrice, item.quantity, loc))
        served = item.servicedDate or (item.servicedPeriod.start if item.servicedPeriod else None)
        lines.append(_line(int(item.sequence or 0), _code(item.productOrService),
                           tuple(_code(m) for m in item.modifier or []), served, read, f"{loc}.adjudication"))
        problems += read.problems
    header = adjudicate(eob.adjudication, prefix, header=True)
    return Parsed(prefix, ident, key or ident, status, _party(eob.insurer, raw, resolver, f"{prefix}.insurer"),
                  _party(eob.provider, raw, resolver, f"{prefix}.provider"), tuple(lines), header, tuple(problems),
                  eob.total or [], eob.payment, eob.created)


def read_claim_response(raw: Raw, resolver: Resolver, prefix: str = "ClaimResponse") -> Parsed:
    res = resolver.model(raw, ClaimResponse, prefix)
    ident = first_value(res.identifier) or str(res.id or "")
    key, billed = _claim(res.request, raw, resolver, f"{prefix}.request")
    focal = next((ins for ins in res.insurance or [] if ins.focal), None)
    status = _status(prefix, str(res.status), str(res.use), str(res.outcome), str(res.disposition or ""),
                     int(focal.sequence or 1) if focal else 1)
    billed_items: dict[int, ClaimItem] = {int(it.sequence or 0): it for it in (billed.item or [])} if billed else {}
    lines: list[RemitLine] = []
    problems: list[str] = []
    claim_level = adjudicate(res.adjudication, prefix, header=True)
    claim_level.paid = -total(claim_level.adjustments)  # items without lines add their paid to this
    for i, item in enumerate(res.item or []):
        loc = f"{prefix}.item[{i}]"
        source = billed_items.get(int(item.itemSequence or 0))
        if billed is not None and source is None:
            raise MappingError(f"the request Claim has no item with sequence {item.itemSequence}",
                               location=f"{loc}.itemSequence")
        net = _net(source.net, source.unitPrice, source.quantity, loc) if source else None
        read = adjudicate(item.adjudication, loc, fallback_charge=net)
        problems += read.problems
        if source is None:  # no codes without the Claim: the item's amounts post at claim level
            if read.charge is None:
                raise MappingError("the charge is unknown: no 'submitted' adjudication, and the request Claim "
                                   "is not in the payload to read its item.net", location=f"{loc}.adjudication")
            claim_level.charge = (claim_level.charge or ZERO) + read.charge
            claim_level.paid += read.paid
            claim_level.adjustments += read.adjustments
            claim_level.remarks += read.remarks
            continue
        served = source.servicedDate or (source.servicedPeriod.start if source.servicedPeriod else None)
        lines.append(_line(int(item.itemSequence or 0), _code(source.productOrService),
                           tuple(_code(m) for m in source.modifier or []), served, read, f"{loc}.adjudication"))
    if res.addItem:
        raise UnsupportedMessage("addItem (payer-added or re-coded items) is not mapped", location=f"{prefix}.addItem")
    return Parsed(prefix, ident, key or ident, status, _party(res.insurer, raw, resolver, f"{prefix}.insurer"),
                  _party(res.requestor, raw, resolver, f"{prefix}.requestor"), tuple(lines), claim_level,
                  tuple(problems), res.total or [], res.payment, res.created)


def _total(prefix: str, totals: Sequence[Total], *categories: str) -> tuple[int, Decimal] | None:
    for code in categories:
        for i, t in enumerate(totals):
            if _code(t.category) == code:
                value = amount_of(t.amount, f"{prefix}.total[{i}].amount")
                return (i, value) if value is not None else None
    return None


def to_remittance(p: Parsed) -> tuple[Remittance, str]:
    """Assemble the one-claim remittance, check the three balancing rules; the note says what failed."""
    problems = list(p.problems)
    level = p.claim_level
    submitted = _total(p.prefix, p.totals, "submitted")
    benefit = _total(p.prefix, p.totals, "paidtoprovider", "benefit")
    if p.lines:
        charge = sum((ln.charge for ln in p.lines), ZERO)
        paid = sum((ln.paid for ln in p.lines), ZERO) - total(level.adjustments)
    elif level.charge is not None or submitted is not None:  # item amounts folded in, else total[] alone
        charge = level.charge if level.charge is not None else submitted[1] if submitted else ZERO
        paid = level.paid if level.charge is not None else benefit[1] if benefit else ZERO
    else:
        raise MappingError("nothing adjudicated: no item and no total 'submitted'", location=f"{p.prefix}.item")
    every: list[Cas] = [*level.adjustments, *(a for ln in p.lines for a in ln.adjustments)]
    if charge - total(every) != paid:
        problems.append(f"{p.prefix}: claim charge {fmt(charge)} - adjustments {fmt(total(every))} ≠ paid {fmt(paid)}")
    for found, name, value in ((submitted, "submitted", charge), (benefit, "benefit", paid)):
        if found is not None and found[1] != value:
            problems.append(f"{p.prefix}.total[{found[0]}] ({name}) {fmt(found[1])} ≠ {fmt(value)} from the items")
    pay = p.payment
    where = f"{p.prefix}.payment"
    plb: tuple[PlbEntry, ...] = ()
    adjustment = amount_of(pay.adjustment, f"{where}.adjustment") if pay else None
    if adjustment:
        plb = (PlbEntry((_code(pay.adjustmentReason) if pay else "") or DEFAULT_PLB, p.ident, -adjustment),)
    plb_total = sum((x.amount for x in plb), ZERO)
    amount = amount_of(pay.amount, f"{where}.amount") if pay else None
    if amount is not None and paid - plb_total != amount:
        problems.append(f"{where}.amount {fmt(amount)} ≠ paid {fmt(paid)} - payment adjustments {fmt(plb_total)}")
    amount = paid - plb_total if amount is None else amount
    trace = _text(_identifier(pay.identifier if pay else None) or p.ident, 80, f"{where}.identifier")
    payer_id = _text(p.payer[0], 80, f"{p.prefix}.insurer")
    if not payer_id or not p.ident:
        raise MappingError("an insurer and an identifier (or id) are needed to post once",
                           location=f"{p.prefix}.insurer" if not payer_id else f"{p.prefix}.identifier")
    when = pay.date if pay and pay.date else p.created
    claim = RemitClaim(
        pcn=_text(p.key, 64, f"{p.prefix}.claim"), status=p.status, charge=charge, paid=paid,
        patient_responsibility=sum((a.amount for a in every if a.group == "PR"), ZERO),
        payer_claim_number=_text(p.ident, 64, f"{p.prefix}.identifier"), adjustments=tuple(level.adjustments),
        lines=p.lines, remarks=tuple(level.remarks),
        service_date=next((ln.service_date for ln in p.lines if ln.service_date), None))
    remit = Remittance(payer_id=payer_id, payer_name=p.payer[1][:200], payee_id=p.payee[0][:80],
                       payee_name=p.payee[1][:200], trace_number=trace, payment_amount=amount,
                       payment_date=to_date(when, f"{where}.date") if when else None,
                       claims=(claim,), plb=plb, balanced=not problems, problems=tuple(problems),
                       control_number=p.ident[:40])
    note = ("does not balance, so it is quarantined (an unbalanced_remittance exception) and nothing posts: "
            + "; ".join(problems)) if problems else ""
    return remit, note


def _identifier(ident: Identifier | None) -> str:
    return str(ident.value) if ident and ident.value else ""


def source_id(remit: Remittance, ident: str) -> str:
    """The payment and the claim it pays: one check often pays several EOBs, so the resource identifier
    joins the trace number; the same EOB sent again (alone or in a Bundle) posts once."""
    ref = ident if remit.trace_number == ident else f"{remit.trace_number}/{ident}"
    return f"fhir-remit:{remit.payer_id}:{ref}:{fmt(remit.payment_amount)}"


def decode_remittance(rtype: str, raw: Raw, resolver: Resolver) -> tuple[PostRemittance, str]:
    """ExplanationOfBenefit or ClaimResponse -> ``PostRemittance`` and a note (why it is quarantined)."""
    parsed = read_eob(raw, resolver) if rtype == "ExplanationOfBenefit" else read_claim_response(raw, resolver)
    remit, note = to_remittance(parsed)
    return PostRemittance(_text(source_id(remit, parsed.ident), 200, f"{rtype}.identifier"), remit), note
