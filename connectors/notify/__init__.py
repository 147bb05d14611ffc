"""Patient notices (connectors): SMTP email, a Twilio-compatible SMS adapter, templates, signed pay links, and
the dunning runner that turns the policy's decisions into notices and collection placements."""

from __future__ import annotations

from router.domain.errors import PermanentError


class NotifyRejected(PermanentError):
    """The provider refused this notice (bad address, unknown number): sending it again will not help."""


class RecipientOptedOut(NotifyRejected):
    """The provider says the recipient unsubscribed (e.g. an SMS STOP): the hub records the opt-out."""
