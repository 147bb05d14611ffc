"""The one exception tree of rcmhub (domain layer).

    HubError
    ├── PermanentError          -> dead-letter now, with the reason; never retried
    │   ├── DecodeError         the bytes are not a well-formed message (HL7, X12, FHIR JSON)
    │   ├── MappingError        well-formed, but a required element is missing or invalid
    │   ├── UnbalancedRemittance an 835 transaction that does not balance (quarantined whole)
    │   ├── UnsupportedMessage  a message type the hub does not take
    │   └── DomainViolation     the command breaks a ledger or claim rule
    └── TransientError          -> retry with backoff (tenacity), then dead-letter
        ├── BrokerUnavailable
        ├── StoreUnavailable
        ├── ConcurrencyConflict another worker committed the same thing first; re-check
        └── DeliveryFailed

Library exceptions are translated where they enter (connectors/, router/adapters/) with
``raise ... from exc``. Every error carries a ``location`` (segment, field, line or element path)
when one is known, so a user is told what was wrong and where.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error rcmhub raises on purpose."""

    def __init__(self, reason: str, *, location: str | None = None) -> None:
        self.reason = reason
        self.location = location
        super().__init__(f"{location}: {reason}" if location else reason)


class PermanentError(HubError):
    """Retrying will not help: reject, dead-letter with the reason, keep for replay."""


class DecodeError(PermanentError):
    """Input is not a well-formed message of the format it claims to be."""


class MappingError(PermanentError):
    """A required element is missing or has an invalid value, e.g. ``FT1[2]-12``."""


class UnsupportedMessage(PermanentError):
    """A message type or event the hub does not accept."""


class UnbalancedRemittance(PermanentError):
    """An 835 transaction that does not balance; it is quarantined, never half-posted."""


class DomainViolation(PermanentError):
    """A command that would break a domain rule (e.g. reversing an unknown entry)."""


class TransientError(HubError):
    """A dependency is unavailable; retry with backoff, then dead-letter."""


class BrokerUnavailable(TransientError):
    pass


class StoreUnavailable(TransientError):
    pass


class ConcurrencyConflict(TransientError):
    pass


class DeliveryFailed(TransientError):
    pass
