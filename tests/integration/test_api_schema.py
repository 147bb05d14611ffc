"""schemathesis against the app's OpenAPI, in-process (ASGI), once per role and anonymous: no 5xx except a
declared 503, every status code declared, every JSON body matching its schema. Examples per operation are few
(``RCMHUB_SCHEMATHESIS_EXAMPLES``, default 3) to keep the default suite short; raise it for a deeper run."""

from __future__ import annotations

import os
import traceback
from collections import Counter
from collections.abc import Iterator

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from services import postgres_url

from api.app import create_app
from api.bootstrap import build
from api.security import ROLES, security_for
from api.settings import Settings

EXAMPLES = int(os.environ.get("RCMHUB_SCHEMATHESIS_EXAMPLES", "3"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# Routes whose side effects would reach outside the test (a real payment gateway) are exercised elsewhere.
SKIP = {"/api/v1/payments/webhooks/stripe"}
# An X12 body is bytes on the wire, like any octet stream (the 835 route reads the raw body).
schemathesis.serializer.alias("application/edi-x12", "application/octet-stream")


def _summary(exc: BaseException) -> str:
    """The failure titles schemathesis reports (ST101 server error, ST103 undocumented status, ...)."""
    text = "".join(traceback.format_exception_only(exc))
    lines = [line.strip(" |") for line in text.splitlines() if line.strip(" |").startswith(("- ", "["))]
    return "; ".join(lines)[:400] or text[:400]


# SQLite by default (the run stays short); add PostgreSQL for a deeper run, e.g. before a release:
# RCMHUB_SCHEMATHESIS_BACKENDS=sqlite,postgresql RCMHUB_SCHEMATHESIS_EXAMPLES=20
SCHEMA_BACKENDS = os.environ.get("RCMHUB_SCHEMATHESIS_BACKENDS", "sqlite").split(",")


@pytest.fixture(scope="module", params=SCHEMA_BACKENDS)
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    data = tmp_path_factory.mktemp("schemathesis")
    url = postgres_url() if request.param == "postgresql" else f"sqlite:///{data / 'hub.db'}"
    hub = build(Settings(database_url=url, data_dir=data, amqp_url=""))
    yield create_app(hub)
    hub.close()


@pytest.mark.parametrize("role", [*ROLES, "anonymous"])
def test_every_operation_conforms_to_the_openapi_schema_for_each_role(app: FastAPI, role: str, uid: str) -> None:
    headers = {}
    if role != "anonymous":
        _id, secret = security_for(app).create_token(f"schemathesis-{role}-{uid}", {role})
        headers["Authorization"] = f"Bearer {secret}"
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    # 503 is declared where a dependency may be absent (no gateway configured): not a server fault.
    schema.config.checks.not_a_server_error.expected_statuses = ["2xx", "3xx", "4xx", "503"]
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.path in SKIP:
            continue
        operations += 1

        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(), _=st.just(None))
        def run(case: schemathesis.Case, _: None) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as exc:  # collect every operation's failure, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {_summary(exc)}")
    assert operations > 50
    assert failures == [], f"{role}: " + "\n\n".join(failures)
    assert sum(statuses.values()) >= operations
    if role == "anonymous":
        assert statuses[401] > 0 and statuses[200] > 0  # refused where protected, answered where public
