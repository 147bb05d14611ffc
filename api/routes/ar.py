"""A/R reports as JSON and CSV (``/api/v1/ar``): aging by payer and patient, KPIs, cash per week, and the work
queue with its filters as CSV; billing roles only. The rules are in ``router/ar.py``."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import PlainTextResponse

from api.deps import SessionDep
from api.routes.workbench import Billing, Filters
from api.security import AUTH_RESPONSES
from api.workbench_render import jsonable, to_csv
from router.ar import BUCKETS, aging, cash_per_week, kpis
from router.workqueue import work_queue

router = APIRouter(tags=["a/r"])


AsOf = Annotated[date | None, Query(description="default: today (UTC)")]
Days = Annotated[int, Query(ge=1, le=3660)]


def _as_of(value: date | None) -> date:
    if value is not None and not date(1900, 1, 1) <= value <= date(2999, 12, 31):
        raise HTTPException(422, "as_of must be a date between 1900-01-01 and 2999-12-31")
    return value or datetime.now(UTC).date()


@router.get("/api/v1/ar/aging", responses=AUTH_RESPONSES)
def get_aging(session: SessionDep, principal: Billing, as_of: AsOf = None,
              patients: Annotated[int, Query(ge=0, le=1_000_000, description="largest patient accounts shown; "
                                             "totals cover all (the CSV has every row)")] = 500) -> dict[str, Any]:
    """Aging by payer (insurance A/R) and by patient account, buckets from the date of service."""
    return jsonable(aging(session, _as_of(as_of), patients))  # type: ignore[no-any-return]


@router.get("/api/v1/ar/kpis", responses=AUTH_RESPONSES)
def get_kpis(session: SessionDep, principal: Billing, as_of: AsOf = None, days: Days = 90) -> dict[str, Any]:
    """Days in A/R, net collection rate, denial rate (by count and amount) over the last ``days`` days."""
    return jsonable(kpis(session, _as_of(as_of), days))  # type: ignore[no-any-return]


@router.get("/api/v1/ar/cash", responses=AUTH_RESPONSES)
def get_cash(session: SessionDep, principal: Billing, as_of: AsOf = None,
             weeks: Annotated[int, Query(ge=1, le=260)] = 12) -> list[dict[str, Any]]:
    """Cash collected per week (insurance and patient payments)."""
    return jsonable(cash_per_week(session, _as_of(as_of), weeks))  # type: ignore[no-any-return]


CSV_TABLES = ("aging-by-payer", "aging-by-patient", "kpis", "cash", "workqueue")


@router.get("/api/v1/ar/{table}.csv", response_class=PlainTextResponse, responses={
    **AUTH_RESPONSES, 200: {"content": {"text/csv": {}}, "description": "the table as CSV"}})
def get_csv(table: Literal[CSV_TABLES], session: SessionDep, principal: Billing,  # type: ignore[valid-type]
            f: Filters, as_of: AsOf = None, days: Days = 90) -> PlainTextResponse:
    """Every A/R table (and the work queue with its filters) as CSV."""
    when = _as_of(as_of)
    if table in ("aging-by-payer", "aging-by-patient"):
        rows = aging(session, when)["by_payer" if table == "aging-by-payer" else "by_patient"]
        body = to_csv((r.as_json() for r in rows), ["key", "label", *BUCKETS, "credit", "total"])
    elif table == "kpis":
        data = kpis(session, when, days)
        body = to_csv([data], list(data))
    elif table == "cash":
        body = to_csv(cash_per_week(session, when), ["week", "insurance", "patient", "total"])
    else:
        page = work_queue(session, f)
        body = to_csv(page.items, ["id", "type", "status", "payer", "claim", "account", "amount", "age_days",
                                   "assignee", "reason"])
    return PlainTextResponse(body, media_type="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{table}-{when:%Y-%m-%d}.csv"'})
