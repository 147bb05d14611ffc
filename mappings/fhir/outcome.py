"""FHIR responses (mappings): OperationOutcome for errors and notes, transaction/batch-response Bundles,
and the CapabilityStatement built from the same list of resource types the routes serve."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mappings.fhir.inbound import BUNDLE_TYPES, INTAKE_TYPES
from mappings.fhir.wire import InvalidResource
from router.domain.errors import DecodeError, DomainViolation, PermanentError, UnsupportedMessage

Json = dict[str, Any]


def issue_code(exc: PermanentError) -> str:
    """FHIR issue-type code for an error of our tree."""
    if isinstance(exc, DecodeError):
        return "structure"
    if isinstance(exc, UnsupportedMessage):
        return "not-supported"
    if isinstance(exc, DomainViolation):
        return "conflict" if "different content" in exc.reason else "business-rule"
    return "required" if "missing" in exc.reason else "invalid"


def _issue(severity: str, code: str, diagnostics: str, expression: str | None) -> Json:
    issue: Json = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = [expression]
    return issue


def error_outcome(exc: PermanentError, prefix: str = "") -> Json:
    """OperationOutcome naming every problem; ``prefix`` roots paths in a Bundle (``Bundle.entry[3].``)."""
    def where(path: str | None) -> str | None:
        if not path or not prefix:
            return path
        return prefix + (path.split(".", 1)[1] if "." in path and path[0].isupper() else path)
    if isinstance(exc, InvalidResource):
        issues = [_issue("error", "required" if missing else "invalid", problem, where(path))
                  for path, problem, missing in exc.issues]
    else:
        issues = [_issue("error", issue_code(exc), exc.reason, where(exc.location))]
    return {"resourceType": "OperationOutcome", "issue": issues}


def info_outcome(message: str, code: str = "informational") -> Json:
    return {"resourceType": "OperationOutcome", "issue": [_issue("information", code, message, None)]}


def response_bundle(kind: str, entries: Sequence[tuple[str, Json]]) -> Json:
    """A transaction-response (for a transaction) or batch-response (batch and message) Bundle."""
    return {"resourceType": "Bundle", "type": "transaction-response" if kind == "transaction" else "batch-response",
            "entry": [{"response": {"status": status, "outcome": outcome}} for status, outcome in entries]}


def capability_statement(version: str, date: str) -> Json:
    """What the server really does: create on INTAKE_TYPES, Bundle processing, nothing else."""
    return {
        "resourceType": "CapabilityStatement", "status": "active", "date": date, "kind": "instance",
        "software": {"name": "rcmhub", "version": version},
        "implementation": {"description": "rcmhub intake: FHIR R4 resources become ledger postings (EMR charges "
                                          "and registrations; payer ExplanationOfBenefit/ClaimResponse remittances)"},
        "fhirVersion": "4.0.1", "format": ["application/fhir+json", "json"],
        "rest": [{
            "mode": "server",
            "documentation": f"POST [base]/Bundle processes {', '.join(BUNDLE_TYPES)} Bundles (not stored); "
                             "a resource POST posts it and returns an OperationOutcome; an ExplanationOfBenefit or "
                             "ClaimResponse posts as a one-claim remittance, quarantined whole when its amounts "
                             "do not balance. Nothing can be read.",
            "resource": [{"type": t, "interaction": [{"code": "create"}]} for t in (*INTAKE_TYPES, "Bundle")],
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
        }],
    }
