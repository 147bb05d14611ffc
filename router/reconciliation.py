"""Reconciling a remittance: match each claim, post what is certain, hold the rest as exceptions.

One unit of work per remittance: an unbalanced one is quarantined whole and posts nothing; a balanced
one posts every certain claim and holds the others, so cash is conserved exactly:
posted + held + PLB effect = BPR02 (stored per remittance and checked before commit).

Throughput (issue #4 benchmark, 10,000 claims, 101,753 ledger rows, PostgreSQL 15, shared 2-core box):
30.7 s (325 claims/s) -> 12-16 s (626-836 claims/s). Chosen: ledger rows by COPY into a temp table + one
INSERT ... SELECT ON CONFLICT (adapters/bulk.py; 7.7 -> ~5 s, of which ~4 s is PostgreSQL: two FK checks
per row and six btrees, indexes all used, so kept); claim states by plain column selects in one chunk
(adapters/remittances.py; 7-9 s -> 1.2-2.4 s, the IN lists were seq scans with no statistics); inbox digest
without ``asdict`` (bus.py; 3.5 -> 0.8-1.2 s, same bytes); GC paused per transaction set (~3.5 s).
Left: the server's INSERT floor (~4 s) caps this path near 2,400 claims/s unless posting overlaps it.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from router.adapters.remittances import RemittanceRepository
from router.domain import events
from router.domain.commands import PostRemittance
from router.domain.errors import DomainViolation
from router.domain.exceptions import Candidate, ExceptionDraft, ExceptionType
from router.domain.ledger import LedgerEntry
from router.domain.matching import normalize_pcn, rank, same_name
from router.domain.money import ZERO, fmt, to_cents
from router.domain.posting import ClaimState, PostingPolicy, hold, post_claim
from router.domain.remittance import RemitClaim, Remittance
from router.unit_of_work import UnitOfWork

PLB_NEEDS_CLAIM = frozenset({"WO", "FB", "72"})


class Matcher:
    """Finds the stored claim behind a CLP, in the order of evidence; loads in bulk up front."""

    def __init__(self, repo: RemittanceRepository, remit: Remittance, policy: PostingPolicy) -> None:
        self.repo = repo
        self.policy = policy
        claims = remit.claims
        self.by_key = repo.claim_ids_by_key(c.pcn for c in claims)
        missing = [c.pcn for c in claims if c.pcn not in self.by_key]
        self.by_normalized = repo.claim_ids_by_normalized(missing)
        refs = [r for c in claims for r in (c.payer_claim_number, c.original_reference)]
        refs += [p.reference for p in remit.plb]
        self.by_payer_number = repo.claim_ids_by_payer_number(refs)
        ids = {*self.by_key.values(), *self.by_payer_number.values(),
               *(i for ids in self.by_normalized.values() for i in ids)}
        self.states = repo.states(ids)

    def state(self, claim_id: int) -> ClaimState:
        if claim_id not in self.states:
            self.states.update(self.repo.states([claim_id]))
        return self.states[claim_id]

    def match(self, claim: RemitClaim) -> tuple[int | None, tuple[Candidate, ...]]:
        if claim.pcn in self.by_key:
            return self.by_key[claim.pcn], ()
        named = [i for i in self.by_normalized.get(normalize_pcn(claim.pcn), [])
                 if same_name(claim.patient_last, self.state(i).patient_family)]
        if len(named) == 1:
            return named[0], ()
        for ref in (claim.payer_claim_number, claim.original_reference):
            if ref and ref in self.by_payer_number:
                return self.by_payer_number[ref], ()
        ranked = rank(claim, self.repo.fuzzy_facts(claim))
        top = ranked[:5]
        if top and top[0].score >= self.policy.match_threshold and (len(top) == 1 or top[1].score < top[0].score):
            found = self.repo.claim_ids_by_key([top[0].claim])
            return found[top[0].claim], tuple(top)
        return None, tuple(top)


def post_remittance(cmd: PostRemittance, uow: UnitOfWork, policy: PostingPolicy) -> Sequence[events.Event]:
    remit, sid = cmd.remittance, cmd.source_id
    repo = uow.remittances
    if not remit.balanced:
        row = repo.add(sid, remit, "quarantined")
        reason = "remittance does not balance; nothing posted: " + "; ".join(remit.problems)
        repo.add_exceptions(sid, row.id, remit.payer_id, [(ExceptionDraft(
            ExceptionType.UNBALANCED_REMITTANCE, reason, remit.payment_amount, held=True), None)])
        row.held_cents = to_cents(remit.payment_amount)
        return [events.RemittancePosted(sid, remit.trace_number, remit.payment_amount, ZERO, remit.payment_amount,
                                        ZERO, 1, quarantined=True)]
    row = repo.add(sid, remit, "posted")
    matcher = Matcher(repo, remit, policy)
    entries: list[LedgerEntry] = []
    drafts: list[tuple[ExceptionDraft, int]] = []  # (draft, index of its claim row)
    claim_rows: list[tuple[int, RemitClaim, int | None, str]] = []
    posted = held = ZERO
    for n, claim in enumerate(remit.claims, start=1):
        claim_id, candidates = matcher.match(claim)
        if claim_id is None:
            best = f"best candidate scored {candidates[0].score}" if candidates else "no candidates"
            result = hold(ExceptionType.UNMATCHED_CLAIM, claim, None, f"no claim matches CLP01 {claim.pcn!r}; {best}",
                          n, candidates)
        else:
            state = matcher.state(claim_id)
            result = post_claim(remit, n, claim, state, f"{sid}:{n}", policy)
            state.entries.extend(result.entries)
        entries.extend(result.entries)
        drafts.extend((d, len(claim_rows)) for d in result.exceptions)
        claim_rows.append((n, claim, claim_id, result.outcome))
        posted += result.posted
        held += result.held
    claim_row_ids = repo.add_claims(row.id, claim_rows)
    here = {c.payer_claim_number: cid for _, c, cid, _ in claim_rows if cid is not None and c.payer_claim_number}
    plb_rows, plb_drafts = _plb(remit, matcher, here)
    plb_cash = -remit.plb_total
    if posted + held + plb_cash != remit.payment_amount:
        raise DomainViolation(f"cash not conserved for TRN {remit.trace_number}: posted {fmt(posted)} + held "
                              f"{fmt(held)} + PLB {fmt(plb_cash)} ≠ BPR02 {fmt(remit.payment_amount)}")
    uow.ledger.append_new(entries)  # keys derive from ``sid``, which the inbox has not seen
    repo.add_plb(sid, row.id, plb_rows)
    exceptions = [(d, claim_row_ids[i]) for d, i in drafts] + [(d, None) for d in plb_drafts]
    repo.add_exceptions(sid, row.id, remit.payer_id, exceptions)
    row.posted_cents, row.held_cents, row.plb_cents = to_cents(posted), to_cents(held), to_cents(plb_cash)
    row.status = "partial" if held else "posted"
    return [events.RemittancePosted(sid, remit.trace_number, remit.payment_amount, posted, held, plb_cash,
                                    len(exceptions))]


def _plb(remit: Remittance, matcher: Matcher, here: dict[str, int],
         ) -> tuple[list[tuple[str, str, Decimal, int | None]], list[ExceptionDraft]]:
    """PLB rows go to the practice ledger, linked to the claim their reference names when it is known."""
    rows: list[tuple[str, str, Decimal, int | None]] = []
    drafts: list[ExceptionDraft] = []
    for plb in remit.plb:
        ref = plb.reference
        claim_id = here.get(ref) or matcher.by_payer_number.get(ref) or matcher.by_key.get(ref)
        if claim_id is None and ref:
            claim_id = matcher.repo.claim_ids_by_key([ref]).get(ref)
        rows.append((plb.code, ref, plb.amount, claim_id))
        if claim_id is None and plb.code in PLB_NEEDS_CLAIM:
            drafts.append(ExceptionDraft(ExceptionType.UNLINKED_PLB, f"PLB {plb.code} {fmt(plb.amount)} references "
                                         f"{ref or '(nothing)'}, which matches no known claim", plb.amount,
                                         claim_key=ref))
    return rows, drafts
