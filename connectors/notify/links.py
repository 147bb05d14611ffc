"""Pay-by-link tokens (connectors): itsdangerous-signed, expiring, carrying only an opaque link id.

The clock is injectable so expiry is tested without waiting; tampering fails the HMAC and expiry the
timestamp check, each reported as its own error so the page can tell the patient which one it was.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

from router.domain.errors import MappingError, PermanentError

SALT = "rcmhub.pay-link.v1"


class LinkInvalid(PermanentError):
    """The token was altered, truncated or signed with another key."""


class LinkExpired(PermanentError):
    """The token is genuine but older than the configured time to live."""


class LinkSigner:
    def __init__(self, secret: str, ttl_seconds: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < 32:
            raise MappingError("the pay-link secret must be at least 32 characters", location="pay_link_secret")
        self.ttl_seconds = ttl_seconds

        class _ClockedSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        self._serializer = URLSafeTimedSerializer(secret, salt=SALT, signer=_ClockedSigner)

    def token(self, link_id: str) -> str:
        return str(self._serializer.dumps({"l": link_id}))

    def link_id(self, token: str) -> str:
        """The link id inside a genuine, unexpired token; ``LinkExpired`` or ``LinkInvalid`` otherwise."""
        try:
            payload = self._serializer.loads(token, max_age=self.ttl_seconds)
        except SignatureExpired as exc:
            raise LinkExpired("this payment link has expired") from exc
        except BadSignature as exc:
            raise LinkInvalid("this payment link is not valid") from exc
        if not isinstance(payload, dict) or not isinstance(payload.get("l"), str):
            raise LinkInvalid("this payment link is not valid")
        return str(payload["l"])


def new_link_id() -> str:
    return secrets.token_hex(16)


def load_or_create_secret(path: Path) -> str:
    """The embedded mode's signing key: made once (0600) beside the database, so links survive restarts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # O_EXCL: two processes starting together agree on the one key that was written first
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the other process may still be writing it
            if secret := path.read_text().strip():
                return secret
            time.sleep(0.01)
        raise MappingError(f"the pay-link key file {path} is empty", location="pay_link_secret") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()
