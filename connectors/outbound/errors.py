"""Delivery failures, in the hub's one error tree (connectors layer).

``DeliveryFailed`` (transient: timeouts, 5xx, 408/429, connection errors, MLLP AE by default) is retried
with backoff; ``DeliveryRejected`` (permanent: other 4xx, MLLP AR) is dead-lettered at once with its reason.
"""

from __future__ import annotations

from router.domain.errors import DeliveryFailed, HubError, PermanentError


class DeliveryRejected(PermanentError):
    """The destination refused the message; sending it again cannot succeed."""


class RetryLater(DeliveryFailed):
    """A transient refusal that says when to come back (HTTP ``Retry-After``)."""

    def __init__(self, reason: str, *, location: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(reason, location=location)
        self.retry_after = retry_after


class DestinationsInvalid(HubError):
    """The destinations file cannot be read or does not validate; names the file and the element."""
