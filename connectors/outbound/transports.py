"""Transports to EMR destinations (connectors): MLLP (waits for the ACK), FHIR over httpx, RabbitMQ.

Each ``send(job)`` returns once the destination accepted the message or raises, classified:
``DeliveryFailed``/``RetryLater`` (transient: timeouts, connection errors, 5xx, 408, 429, MLLP AE unless
configured dead) or ``DeliveryRejected`` (permanent: other 4xx, MLLP AR). Error texts carry status codes and
ACK codes only - never the payload or the peer's free text, which may quote PHI.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Protocol

import httpx
import pika

from connectors.mllp_client import MllpClient
from connectors.outbound.config import Destination, FhirAuth, MllpTransport, secret
from connectors.outbound.errors import DeliveryRejected, RetryLater
from connectors.outbound.store import Job
from connectors.rabbitmq.publisher import Publisher
from mappings.fhir.wire import MEDIA_TYPE as FHIR_MEDIA_TYPE
from mappings.hl7v2.er7 import MEDIA_TYPE as HL7_MEDIA_TYPE
from mappings.hl7v2.er7 import parse
from router.domain.errors import DecodeError, DeliveryFailed, MappingError

FHIR_JSON = FHIR_MEDIA_TYPE


class Transport(Protocol):
    def send(self, job: Job) -> None: ...

    def close(self) -> None: ...


class MllpSender:
    """One connection per destination (reopened after a failure); the ACK must acknowledge our MSH-10."""

    def __init__(self, config: MllpTransport) -> None:
        self.config = config
        context = None
        if config.tls is not None:
            context = ssl.create_default_context(cafile=str(config.tls.ca_file) if config.tls.ca_file else None)
            if config.tls.cert_file:
                context.load_cert_chain(str(config.tls.cert_file),
                                        str(config.tls.key_file) if config.tls.key_file else None)
        self.client = MllpClient(config.host, config.port, ssl_context=context,
                                 server_hostname=config.tls.server_hostname if config.tls else None,
                                 connect_timeout=config.timeout_seconds)

    def send(self, job: Job) -> None:
        where = f"{self.config.host}:{self.config.port}"
        control = parse(job.payload).control_id
        reply = self.client.send(job.payload.encode("utf-8"), timeout=self.config.timeout_seconds)
        try:
            ack = parse(reply)
            msa = ack.one("MSA")
        except (DecodeError, MappingError) as exc:
            self.client.close()
            raise DeliveryFailed("unreadable ACK", location=where) from exc
        code, acked = msa.get(1).upper(), msa.get(2)
        if acked != control:
            self.client.close()  # a reply to something else: the stream is out of step
            raise DeliveryFailed(f"ACK for another message (MSA-2 {acked[:20]!r})", location=where)
        if code in ("AA", "CA"):
            return
        error_code = ""
        err = ack.first("ERR")
        if err is not None:
            error_code = err.get(3) or err.get(1, 4)  # HL7 table 0357 code, never the text
        detail = f"{code}{f' (ERR {error_code[:10]})' if error_code else ''}"
        if code in ("AE", "CE") and self.config.on_ae == "retry":
            raise DeliveryFailed(f"application error {detail}", location=where)
        raise DeliveryRejected(f"rejected {detail}", location=where)

    def close(self) -> None:
        self.client.close()


class FhirSender:
    """Conditional create (POST + If-None-Exist) or conditional update (PUT ?identifier=) per job."""

    def __init__(self, base_url: str, auth: FhirAuth | None, timeout: float,
                 client: httpx.Client | None = None) -> None:
        self.base = base_url.rstrip("/")
        self.auth = auth
        # httpx logs every request URL at INFO, and a conditional update's URL carries the account number (PHI).
        logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLogger("httpx").level))
        self.client = client or httpx.Client(timeout=timeout, headers={"Accept": FHIR_JSON})
        self._token: tuple[str, float] | None = None  # (token, expiry on the monotonic clock)
        self._lock = threading.Lock()

    def send(self, job: Job) -> None:
        response = self._request(job)
        if response.status_code == 401 and self.auth and self.auth.client_credentials:
            self._token = None  # expired early or revoked: one fresh token, then classify
            response = self._request(job)
        classify(response, f"{job.method} {self.base}/{job.path}")

    def _request(self, job: Job) -> httpx.Response:
        headers = {"Content-Type": FHIR_JSON, **self._auth_header()}
        url = f"{self.base}/{job.path}"
        try:
            if job.method == "PUT":
                system_value = job.condition.split("=", 1)[1]
                return self.client.put(url, params={"identifier": system_value}, content=job.payload,
                                       headers=headers)
            return self.client.post(url, content=job.payload, headers={**headers, "If-None-Exist": job.condition})
        except httpx.TimeoutException as exc:
            raise DeliveryFailed(f"timed out: {type(exc).__name__}", location=f"{job.method} {url}") from exc
        except httpx.TransportError as exc:
            raise DeliveryFailed(f"connection failed: {type(exc).__name__}", location=f"{job.method} {url}") from exc

    def _auth_header(self) -> dict[str, str]:
        if self.auth is None:
            return {}
        if self.auth.bearer_token_env:
            return {"Authorization": f"Bearer {secret(self.auth.bearer_token_env, 'FHIR bearer token')}"}
        if self.auth.client_credentials:
            return {"Authorization": f"Bearer {self._client_token()}"}
        return {}

    def _client_token(self) -> str:
        """OAuth2 client credentials (SMART backend services style), cached until shortly before expiry."""
        with self._lock:
            if self._token and self._token[1] > time.monotonic():
                return self._token[0]
            cc = self.auth.client_credentials if self.auth else None
            assert cc is not None
            data = {"grant_type": "client_credentials", "client_id": cc.client_id,
                    "client_secret": secret(cc.client_secret_env, "FHIR client secret")}
            if cc.scope:
                data["scope"] = cc.scope
            try:
                response = self.client.post(cc.token_url, data=data, headers={"Accept": "application/json"})
            except httpx.HTTPError as exc:
                raise DeliveryFailed(f"token request failed: {type(exc).__name__}", location=cc.token_url) from exc
            classify(response, f"POST {cc.token_url}")
            try:
                body = response.json()
                token, expires = str(body["access_token"]), float(body.get("expires_in", 300))
            except (ValueError, KeyError, TypeError) as exc:
                raise DeliveryRejected("token response without access_token", location=cc.token_url) from exc
            self._token = (token, time.monotonic() + max(expires - 30, 1))
            return token

    def close(self) -> None:
        self.client.close()


def classify(response: httpx.Response, where: str) -> None:
    """2xx passes; 408, 429 and 5xx are transient (with Retry-After when given); other codes are permanent."""
    code = response.status_code
    if 200 <= code < 300:
        return
    if code in (408, 429) or code >= 500:
        raise RetryLater(f"HTTP {code}", location=where, retry_after=retry_after(response))
    raise DeliveryRejected(f"HTTP {code}", location=where)


def retry_after(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), if the response gave one."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


class AmqpSender:
    """Publishes the message to the destination's exchange with publisher confirms."""

    def __init__(self, url: str, exchange: str, routing_key: str) -> None:
        self.publisher = Publisher(url)
        self.exchange = exchange
        self.routing_key = routing_key

    def send(self, job: Job) -> None:
        content_type = HL7_MEDIA_TYPE if job.format == "hl7v2-dft" else FHIR_JSON
        properties = pika.BasicProperties(content_type=content_type, delivery_mode=pika.DeliveryMode.Persistent,
                                          message_id=f"delivery-{job.id}", correlation_id=job.trace_id,
                                          headers={"x-rcmhub-format": job.format, "x-rcmhub-method": job.method,
                                                   "x-rcmhub-path": job.path})
        self.publisher.publish(self.exchange, self.routing_key, job.payload.encode("utf-8"), properties)

    def close(self) -> None:
        self.publisher.close()


def transport_for(destination: Destination) -> Transport:
    t = destination.transport
    if t.mllp is not None:
        return MllpSender(t.mllp)
    if t.fhir is not None:
        return FhirSender(t.fhir.base_url, t.fhir.auth, t.fhir.timeout_seconds)
    assert t.amqp is not None
    return AmqpSender(secret(t.amqp.url_env, "AMQP destination URL"), t.amqp.exchange, t.amqp.routing_key)
