"""EMR destinations as configuration (connectors): a YAML file validated with pydantic at start-up.

The file (``RCMHUB_DESTINATIONS``; example and field reference in ``deploy/destinations.example.yaml``)
lists destinations, each with a transport (MLLP host:port with optional TLS, a FHIR base URL with bearer
or client-credentials auth, or a RabbitMQ exchange/routing key), the formats it wants, a filter (event
types, facilities, accounts) and its retry budget. Secrets are never in the file: it names environment
variables that hold them. Any error names the file and the element, e.g. ``destinations[1].transport``.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connectors.outbound.errors import DestinationsInvalid
from router.domain.ledger import EntryKind

HL7_DFT = "hl7v2-dft"
FHIR = "fhir"
FORMATS = (HL7_DFT, FHIR)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Tls(_Strict):
    ca_file: Path | None = None  # trust these CAs (default: the system store)
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    server_hostname: str | None = None


class MllpTransport(_Strict):
    host: str
    port: int = Field(ge=1, le=65535)
    tls: Tls | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)  # wait for the ACK
    on_ae: Literal["retry", "dead"] = "retry"  # AE is an application error at the EMR; AR is always dead


class ClientCredentials(_Strict):
    token_url: str
    client_id: str
    client_secret_env: str  # the environment variable holding the secret
    scope: str = ""


class FhirAuth(_Strict):
    bearer_token_env: str | None = None  # the environment variable holding the token
    client_credentials: ClientCredentials | None = None

    @model_validator(mode="after")
    def _one(self) -> FhirAuth:
        if self.bearer_token_env and self.client_credentials:
            raise ValueError("choose bearer_token_env or client_credentials, not both")
        return self


class FhirTransport(_Strict):
    base_url: str = Field(pattern=r"^https?://")
    auth: FhirAuth | None = None
    timeout_seconds: float = Field(default=10.0, gt=0)


class AmqpTransport(_Strict):
    url_env: str = "RCMHUB_AMQP_URL"  # the environment variable holding the broker URL
    exchange: str
    routing_key: str = ""


class Transport(_Strict):
    mllp: MllpTransport | None = None
    fhir: FhirTransport | None = None
    amqp: AmqpTransport | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Transport:
        if sum(t is not None for t in (self.mllp, self.fhir, self.amqp)) != 1:
            raise ValueError("a transport is exactly one of mllp, fhir or amqp")
        return self


class Hl7Options(_Strict):
    trigger: Literal["P03", "P11"] = "P03"
    sending_application: str = "RCMHUB"
    sending_facility: str = "RCMHUB"
    receiving_application: str = ""
    receiving_facility: str = ""
    types: dict[str, str] = Field(default_factory=dict)  # ledger entry kind -> FT1-6 code (default PY/AJ)
    balances: bool = True  # PV1-46 total balance, PV1-47 charges

    @model_validator(mode="after")
    def _kinds(self) -> Hl7Options:
        unknown = sorted(set(self.types) - {k.value for k in EntryKind})
        if unknown:
            raise ValueError(f"types: unknown ledger entry kind(s) {unknown}; known: {[k.value for k in EntryKind]}")
        if any(not re.match(r"^[A-Z0-9]{1,8}$", v) for v in self.types.values()):
            raise ValueError("types: FT1-6 codes are 1-8 upper-case letters or digits")
        return self


class FhirOptions(_Strict):
    identifier_base: str = "urn:rcmhub"
    claim_resource: Literal["ClaimResponse", "ExplanationOfBenefit"] = "ClaimResponse"
    payment_reconciliation: bool = True
    claims: bool = True
    accounts: bool = True


class Filter(_Strict):
    events: list[str] = Field(default_factory=list)  # empty: every event type that has deliveries
    facilities: list[str] = Field(default_factory=list)  # payee ids (N1*PE); empty: all
    accounts: list[str] = Field(default_factory=list)  # account number patterns (fnmatch); empty: all

    def wants_event(self, event_type: str) -> bool:
        return not self.events or event_type in self.events

    def wants_facility(self, facility: str) -> bool:
        return not self.facilities or facility in self.facilities

    def wants_account(self, account: str) -> bool:
        return not self.accounts or any(fnmatch.fnmatchcase(account, p) for p in self.accounts)


class RetryBudget(_Strict):
    attempts: int = Field(default=8, ge=1, le=1000)  # tries per delivery, the first included
    initial_seconds: float = Field(default=0.5, gt=0)  # first backoff; doubles, with full jitter
    max_wait_seconds: float = Field(default=60.0, gt=0)  # longest single wait (Retry-After is capped here too)
    budget_seconds: float = Field(default=900.0, gt=0)  # give up on a delivery after this long


class Destination(_Strict):
    name: str
    transport: Transport
    formats: list[Literal["hl7v2-dft", "fhir"]] = Field(min_length=1)
    filter: Filter = Field(default_factory=Filter)
    hl7: Hl7Options = Field(default_factory=Hl7Options)
    fhir: FhirOptions = Field(default_factory=FhirOptions)
    retry: RetryBudget = Field(default_factory=RetryBudget)
    enabled: bool = True

    @model_validator(mode="after")
    def _fits(self) -> Destination:
        if not _NAME.match(self.name):
            raise ValueError(f"name {self.name!r}: lower-case letters, digits, '-' and '_' (at most 48)")
        if self.transport.mllp and self.formats != [HL7_DFT]:
            raise ValueError("an mllp transport carries hl7v2-dft only")
        if self.transport.fhir and self.formats != [FHIR]:
            raise ValueError("a fhir transport carries fhir only")
        return self


class Destinations(_Strict):
    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Destinations:
        names = [d.name for d in self.destinations]
        if len(names) != len(set(names)):
            raise ValueError(f"destination names must be unique: {sorted(n for n in names if names.count(n) > 1)}")
        return self

    @property
    def active(self) -> list[Destination]:
        return [d for d in self.destinations if d.enabled]

    def get(self, name: str) -> Destination | None:
        return next((d for d in self.destinations if d.name == name), None)


def load_destinations(path: Path) -> Destinations:
    """Read and validate the file; every problem becomes ``DestinationsInvalid`` naming file and element."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise DestinationsInvalid(f"cannot read the destinations file: {exc.strerror}", location=str(path)) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise DestinationsInvalid(f"not valid YAML: {getattr(exc, 'problem', exc)}", location=where) from exc
    return parse_destinations(data, str(path))


def parse_destinations(data: object, origin: str = "destinations") -> Destinations:
    try:
        return Destinations.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise DestinationsInvalid(f"{first['msg']}{more}", location=f"{origin}: {where or 'top level'}") from exc


def secret(env: str, what: str) -> str:
    value = os.environ.get(env, "")
    if not value:
        raise DestinationsInvalid(f"{what}: environment variable {env} is not set", location=env)
    return value
