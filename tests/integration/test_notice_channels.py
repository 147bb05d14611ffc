"""Notice channels against real local peers: an aiosmtpd SMTP server and a fake Twilio-compatible provider."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.smtp import AuthResult, LoginPassword
from notify_support import FakeTwilio, free_port, sms_provider, smtp_server

from connectors.notify import NotifyRejected, RecipientOptedOut
from connectors.notify.sms import TwilioSms
from connectors.notify.smtp import SmtpSender
from connectors.notify.templates import Templates
from router.domain.errors import DeliveryFailed

CONTEXT = {"practice": "Lakeside Family Medicine", "phone": "555-0100", "amount": "123.45", "account_tail": "4321",
           "link": "http://hub.test/pay/TOKEN.sig", "link_expires": "2026-03-01", "respond_by": "2026-02-01"}


def test_an_email_notice_is_delivered_to_a_real_smtp_server_with_text_and_html() -> None:
    rendered = Templates().email("final_notice", CONTEXT)
    with smtp_server() as (sink, port):
        ref = SmtpSender("127.0.0.1", port, "billing@lakeside.test").send("pat@example.test", rendered.subject,
                                                                          rendered.text, rendered.html)
    [msg] = sink.to("pat@example.test")
    assert msg["Message-ID"] == ref and msg["From"] == "billing@lakeside.test"
    assert msg["Subject"] == "Final notice from Lakeside Family Medicine"
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "$123.45" in text and "http://hub.test/pay/TOKEN.sig" in text and "2026-02-01" in text
    assert 'href="http://hub.test/pay/TOKEN.sig"' in html and "collections agency" in html


def _self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def test_starttls_and_login_against_a_server_that_requires_them(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    def authenticator(server: object, session: object, envelope: object, mechanism: str,
                      data: object) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"hub", b"s3cret")
        return AuthResult(success=ok, handled=False)  # handled=False: the server sends the 235/535 itself

    with smtp_server(tls_context=server_tls, require_starttls=True, auth_required=True,
                     authenticator=authenticator) as (sink, port):
        # Set-up problems are transient for a notice: it goes out once the configuration is fixed.
        with pytest.raises(DeliveryFailed, match="530"):  # plain text is refused by this server
            SmtpSender("127.0.0.1", port, "billing@clinic.test").send("pat@example.test", "s", "t")
        with pytest.raises(DeliveryFailed, match="SSLCertVerificationError"):  # its CA is not trusted
            SmtpSender("127.0.0.1", port, "billing@clinic.test", starttls=True).send("pat@example.test", "s", "t")
        with pytest.raises(DeliveryFailed, match="535"):
            SmtpSender("127.0.0.1", port, "billing@clinic.test", starttls=True, username="hub", password="wrong",
                       ca_file=str(cert)).send("pat@example.test", "s", "t")
        SmtpSender("127.0.0.1", port, "billing@clinic.test", starttls=True, username="hub", password="s3cret",
                   ca_file=str(cert)).send("pat@example.test", "Statement", "text")
    assert [m["Subject"] for m in sink.to("pat@example.test")] == ["Statement"]


def test_html_notices_escape_what_they_interpolate() -> None:
    rendered = Templates().email("statement", {**CONTEXT, "practice": "<script>x</script>"})
    assert "<script>" not in rendered.html and "&lt;script&gt;" in rendered.html


def test_a_refused_recipient_is_permanent_and_a_missing_server_is_transient() -> None:
    with smtp_server() as (sink, port):
        sink.refuse.add("gone@example.test")
        with pytest.raises(NotifyRejected, match="550"):
            SmtpSender("127.0.0.1", port, "billing@lakeside.test").send("gone@example.test", "s", "t")
    with pytest.raises(DeliveryFailed, match="unavailable"):
        SmtpSender("127.0.0.1", free_port(), "billing@lakeside.test", timeout=1).send("pat@example.test", "s", "t")


def test_an_sms_notice_reaches_the_provider_with_auth_and_no_name() -> None:
    body = Templates().sms("reminder", CONTEXT)
    with sms_provider() as (fake, url):
        sid = TwilioSms(url, fake.account_sid, fake.auth_token, "+15550001111").send("+15557654321", body)
    [sent] = fake.to("+15557654321")
    assert sent["sid"] == sid and sent["From"] == "+15550001111"
    assert sent["Body"] == ("Lakeside Family Medicine: reminder, $123.45 due. Pay: http://hub.test/pay/TOKEN.sig "
                            "Reply STOP to opt out.")


def test_sms_retries_a_provider_outage_then_gives_up_as_transient() -> None:
    with sms_provider(FakeTwilio(fail_next=2)) as (fake, url):
        TwilioSms(url, fake.account_sid, fake.auth_token, "MG" + "1" * 32).send("+15557654321", "hi")
        assert fake.requests == 3 and fake.messages[0]["MessagingServiceSid"] == "MG" + "1" * 32
        fake.fail_next = 5
        with pytest.raises(DeliveryFailed, match="503"):
            TwilioSms(url, fake.account_sid, fake.auth_token, "+15550001111").send("+15557654321", "hi")
        assert fake.requests == 6  # three attempts, then the error


def test_sms_refusals_are_permanent_and_an_unsubscribed_number_is_an_opt_out() -> None:
    with sms_provider(FakeTwilio(unsubscribed={"+15550009999"})) as (fake, url):
        with pytest.raises(RecipientOptedOut, match="21610"):
            TwilioSms(url, fake.account_sid, fake.auth_token, "+15550001111").send("+15550009999", "hi")
        with pytest.raises(NotifyRejected, match="401"):
            TwilioSms(url, fake.account_sid, "wrong", "+15550001111").send("+15557654321", "hi")
        assert fake.requests == 2  # 4xx is not retried
