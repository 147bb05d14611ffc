"""Destinations file: validated at start-up, every error names the file and the element."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
import yaml

from connectors.outbound.config import load_destinations, parse_destinations, secret
from connectors.outbound.errors import DeliveryRejected, DestinationsInvalid, RetryLater
from connectors.outbound.plan import DELIVERABLE
from connectors.outbound.transports import classify, retry_after

EXAMPLE = Path(__file__).parents[3] / "deploy" / "destinations.example.yaml"
MLLP = {"name": "emr", "transport": {"mllp": {"host": "h", "port": 2575}}, "formats": ["hl7v2-dft"]}


def test_the_documented_example_validates_and_names_only_deliverable_events() -> None:
    destinations = load_destinations(EXAMPLE)
    assert [d.name for d in destinations.active] == ["clinic-emr-hl7", "clinic-emr-fhir"]
    for d in destinations.destinations:
        assert set(d.filter.events) <= set(DELIVERABLE)
    mentioned = EXAMPLE.read_text().split("filter      events (", 1)[1].split(";", 1)[0]
    assert {e.strip(" #\n") for e in mentioned.split(",")} == set(DELIVERABLE)  # the comment lists them all


@pytest.mark.parametrize(("spec", "where", "what"), [
    ({**MLLP, "formats": ["fhir"]}, "destinations[0]", "mllp transport carries hl7v2-dft only"),
    ({**MLLP, "colour": "red"}, "destinations[0].colour", "Extra inputs"),
    ({**MLLP, "transport": {"mllp": {"host": "h", "port": 2575}, "fhir": {"base_url": "http://x"}}},
     "destinations[0].transport", "exactly one of mllp, fhir or amqp"),
    ({**MLLP, "transport": {"mllp": {"host": "h", "port": 70000}}}, "destinations[0].transport.mllp.port", "65535"),
    ({**MLLP, "name": "Bad Name"}, "destinations[0]", "lower-case"),
    ({**MLLP, "hl7": {"types": {"teleport": "TP"}}}, "destinations[0].hl7", "unknown ledger entry kind"),
    ({**MLLP, "retry": {"attempts": 0}}, "destinations[0].retry.attempts", "greater than or equal to 1"),
])
def test_an_invalid_destination_is_refused_naming_the_element(spec: dict[str, object], where: str, what: str) -> None:
    with pytest.raises(DestinationsInvalid) as caught:
        parse_destinations({"destinations": [spec]}, "d.yaml")
    assert caught.value.location == f"d.yaml: {where}"
    assert what in caught.value.reason


def test_duplicate_names_bad_yaml_and_a_missing_file_are_refused(tmp_path: Path) -> None:
    with pytest.raises(DestinationsInvalid, match="unique"):
        parse_destinations({"destinations": [MLLP, MLLP]})
    bad = tmp_path / "d.yaml"
    bad.write_text("destinations:\n  - name: [unclosed\n")
    with pytest.raises(DestinationsInvalid) as caught:
        load_destinations(bad)
    assert caught.value.location is not None and caught.value.location.startswith(f"{bad}:")
    with pytest.raises(DestinationsInvalid, match="cannot read"):
        load_destinations(tmp_path / "missing.yaml")
    good = tmp_path / "ok.yaml"
    good.write_text(yaml.safe_dump({"destinations": [MLLP]}))
    assert load_destinations(good).get("emr") is not None


def test_secrets_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RCMHUB_TEST_EMR_TOKEN", raising=False)
    with pytest.raises(DestinationsInvalid, match="RCMHUB_TEST_EMR_TOKEN is not set"):
        secret("RCMHUB_TEST_EMR_TOKEN", "FHIR bearer token")
    monkeypatch.setenv("RCMHUB_TEST_EMR_TOKEN", "t0k")
    assert secret("RCMHUB_TEST_EMR_TOKEN", "FHIR bearer token") == "t0k"


@pytest.mark.parametrize(("status", "transient"), [(500, True), (502, True), (503, True), (408, True), (429, True),
                                                    (400, False), (401, False), (404, False), (409, False),
                                                    (422, False)])
def test_http_failures_are_classified(status: int, transient: bool) -> None:
    expected = RetryLater if transient else DeliveryRejected
    with pytest.raises(expected, match=f"HTTP {status}"):
        classify(httpx.Response(status), "POST http://emr/fhir/ClaimResponse")
    classify(httpx.Response(201), "POST")  # passes


def test_retry_after_is_read_as_seconds_or_an_http_date() -> None:
    assert retry_after(httpx.Response(503, headers={"Retry-After": "7"})) == 7.0
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (retry_after(httpx.Response(503, headers={"Retry-After": later})) or 0) <= 31
    assert retry_after(httpx.Response(503)) is None
    assert retry_after(httpx.Response(503, headers={"Retry-After": "soon"})) is None


def test_fhir_client_credentials_token_is_fetched_cached_and_refreshed_once_on_401(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from connectors.outbound.config import FhirAuth
    from connectors.outbound.store import Job
    from connectors.outbound.transports import FhirSender

    monkeypatch.setenv("RCMHUB_TEST_FHIR_SECRET", "s3cret")
    seen: list[tuple[str, str]] = []
    tokens = iter(["tok1", "tok2"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/token":
            assert b"client_secret=s3cret" in request.content and b"grant_type=client_credentials" in request.content
            return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 3600})
        seen.append((request.headers["Authorization"], request.headers.get("If-None-Exist", "")))
        return httpx.Response(401 if len(seen) == 2 else 201)

    auth = FhirAuth.model_validate({"client_credentials": {"token_url": "http://emr/token", "client_id": "hub",
                                                           "client_secret_env": "RCMHUB_TEST_FHIR_SECRET"}})
    sender = FhirSender("http://emr/fhir", auth, 5, client=httpx.Client(transport=httpx.MockTransport(handler)))
    job = Job(1, "emr", "fhir", "t", "POST", "ClaimResponse", "identifier=urn:x|1", "{}", 0, "pending",
              datetime.now(UTC))
    sender.send(job)
    sender.send(job)  # 401: one new token, then accepted
    assert seen == [("Bearer tok1", "identifier=urn:x|1"), ("Bearer tok1", "identifier=urn:x|1"),
                    ("Bearer tok2", "identifier=urn:x|1")]
