"""Email notices over SMTP (connectors): the standard library's ``smtplib``, STARTTLS and login optional.

Errors are translated here. What is about this message (a refused recipient, a 5xx to its data) is
``NotifyRejected``; what is about the server or our configuration of it (unreachable, a dropped connection, an
untrusted certificate, a refused login, TLS required, any 4xx) is ``DeliveryFailed`` after a few quick retries
(tenacity), so the notice is tried again by the next run once the server is back or fixed.
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
    ca_file: str = ""  # a private CA for the server's certificate; empty: the system's trust store

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
                    smtp.starttls(context=ssl.create_default_context(cafile=self.ca_file or None))
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            if all(500 <= code < 600 for code in codes):
                raise NotifyRejected(f"SMTP refused the recipient ({', '.join(map(str, codes))})") from exc
            raise DeliveryFailed(f"SMTP deferred the recipient ({', '.join(map(str, codes))})") from exc
        except smtplib.SMTPDataError as exc:  # the server's text may quote the address: keep the code only
            if 500 <= exc.smtp_code < 600:
                raise NotifyRejected(f"SMTP rejected the message ({exc.smtp_code})") from exc
            raise DeliveryFailed(f"SMTP temporary failure {exc.smtp_code}") from exc
        except smtplib.SMTPResponseException as exc:  # login refused, TLS required, sender refused: the set-up
            raise DeliveryFailed(f"SMTP server refused the session ({exc.smtp_code})") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise DeliveryFailed(f"SMTP server unavailable: {type(exc).__name__}") from exc
