"""Email notices over SMTP (connectors): the standard library's ``smtplib``, STARTTLS and login optional.

Errors are translated here: a refused recipient or a 5xx reply is ``NotifyRejected``; an unreachable server,
a dropped connection or a 4xx reply is ``DeliveryFailed`` after a few quick retries (tenacity).
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.notify import NotifyRejected
from router.domain.errors import DeliveryFailed


@dataclass(frozen=True)
class SmtpSender:
    host: str
    port: int
    sender: str  # the From address
    starttls: bool = False
    username: str = ""
    password: str = ""
    timeout: float = 10.0

    def send(self, to: str, subject: str, text: str, html: str | None = None) -> str:
        """Deliver one message; returns its Message-ID (the provider reference kept with the notice)."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = self.sender, to, subject
        msg["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
        self._deliver(msg)
        return str(msg["Message-ID"])

    @retry(retry=retry_if_exception_type(DeliveryFailed), stop=stop_after_attempt(3),
           wait=wait_exponential(multiplier=0.2, max=2), reraise=True)
    def _deliver(self, msg: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise NotifyRejected(f"SMTP refused the recipient ({', '.join(map(str, codes))})") from exc
        except smtplib.SMTPResponseException as exc:  # the server's text may quote the address: keep the code
            if 400 <= exc.smtp_code < 500:
                raise DeliveryFailed(f"SMTP temporary failure {exc.smtp_code}") from exc
            raise NotifyRejected(f"SMTP rejected the message ({exc.smtp_code})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP server unavailable: {type(exc).__name__}") from exc
