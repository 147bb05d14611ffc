"""SMS notices through an HTTP provider compatible with Twilio's Messages API (connectors; httpx + tenacity).

``POST {base_url}/2010-04-01/Accounts/{account_sid}/Messages.json`` with form fields To, From and Body and
HTTP basic auth (account SID, auth token); the answer's ``sid`` is kept as the provider reference. Twilio's
error 21610 (recipient replied STOP) becomes ``RecipientOptedOut``; other 4xx ``NotifyRejected``; a transport
error, 429 or 5xx is retried, then ``DeliveryFailed``. The base URL is configurable so tests use a local fake.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.notify import NotifyRejected, RecipientOptedOut
from router.domain.errors import DeliveryFailed

UNSUBSCRIBED = 21610  # Twilio: "Attempt to send to unsubscribed recipient"


@dataclass(frozen=True)
class TwilioSms:
    base_url: str  # https://api.twilio.com in production
    account_sid: str
    auth_token: str
    sender: str  # the From number (E.164) or a Messaging Service SID (MG...)
    timeout: float = 10.0

    def send(self, to: str, body: str) -> str:
        """Send one text; returns the provider's message sid."""
        sender = {"MessagingServiceSid": self.sender} if self.sender.startswith("MG") else {"From": self.sender}
        response = self._post({"To": to, "Body": body, **sender})
        try:
            return str(response.json()["sid"])
        except (ValueError, KeyError) as exc:
            raise DeliveryFailed("SMS provider answered without a message sid") from exc

    @retry(retry=retry_if_exception_type(DeliveryFailed), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def _post(self, data: dict[str, str]) -> httpx.Response:
        url = f"{self.base_url.rstrip('/')}/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        try:
            response = httpx.post(url, data=data, auth=(self.account_sid, self.auth_token), timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"SMS provider unreachable: {type(exc).__name__}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise DeliveryFailed(f"SMS provider answered {response.status_code}")
        if response.status_code >= 400:
            code = _error_code(response)
            if code == UNSUBSCRIBED:
                raise RecipientOptedOut(f"SMS recipient unsubscribed (provider code {code})")
            raise NotifyRejected(f"SMS provider rejected the message ({response.status_code}, code {code})")
        return response


def _error_code(response: httpx.Response) -> int | None:
    try:
        code = response.json().get("code")
    except ValueError:
        return None
    return code if isinstance(code, int) else None
