"""Presentation helpers of the billing workbench (api layer): JSON-safe values, CSV, inline SVG charts (no JS
chart library: a few rects and labels rendered on the server), and an 835 claim rendered readably with its
CARC/RARC descriptions.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from html import escape
from typing import Any

from markupsafe import Markup

from mappings.x12.held_claim import remit_claim_from_raw
from router.domain.codes import CARC, CLAIM_STATUS, GROUPS, RARC, describe
from router.domain.errors import HubError
from router.domain.money import fmt
from router.domain.remittance import Cas


def jsonable(value: Any) -> Any:
    """Money as "12.50" strings, dates as ISO text, recursively (the JSON the API documents)."""
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "as_json"):
        return jsonable(value.as_json())
    return value


def to_csv(rows: Iterable[dict[str, Any]], columns: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else jsonable(row.get(c)) for c in columns])
    return out.getvalue()


def _adjustment(a: Cas) -> dict[str, str]:
    return {"group": a.group, "group_text": describe(GROUPS, a.group), "reason": a.reason,
            "reason_text": describe(CARC, a.reason), "amount": fmt(a.amount)}


def readable_claim(raw: str) -> dict[str, Any] | None:
    """The remittance claim as the payer posted it: header, lines, adjustments and remarks, described."""
    if not raw:
        return None
    try:
        c = remit_claim_from_raw(raw)
    except HubError:
        return None  # the raw segments are still shown as they are
    return {
        "pcn": c.pcn, "status": c.status, "status_text": describe(CLAIM_STATUS, c.status), "charge": fmt(c.charge),
        "paid": fmt(c.paid), "patient_responsibility": fmt(c.patient_responsibility or Decimal(0)),
        "payer_claim_number": c.payer_claim_number,
        "patient": ", ".join(p for p in (c.patient_last, c.patient_first) if p),
        "member_id": c.member_id, "service_date": c.service_date,
        "adjustments": [_adjustment(a) for a in c.adjustments],
        "remarks": [{"code": r, "text": describe(RARC, r)} for r in c.remarks],
        "lines": [{"number": ln.number, "code": ln.code + (":" + ":".join(ln.modifiers) if ln.modifiers else ""),
                   "charge": fmt(ln.charge), "paid": fmt(ln.paid), "service_date": ln.service_date,
                   "adjustments": [_adjustment(a) for a in ln.adjustments],
                   "remarks": [{"code": r, "text": describe(RARC, r)} for r in ln.remarks]} for ln in c.lines],
    }


# -- inline SVG -----------------------------------------------------------------------------------------
PALETTE = ("#1b6ac9", "#2f8f5b", "#b7791f", "#c2410c", "#9b1c1c")  # one per aging bucket, AA on white


def _axis_max(values: Iterable[Decimal]) -> Decimal:
    top = max((v for v in values), default=Decimal(0))
    return top if top > 0 else Decimal(1)


def bar_chart(title: str, labels: Sequence[str], values: Sequence[Decimal], *, width: int = 640,
              height: int = 220, colors: Sequence[str] = PALETTE) -> Markup:
    """A vertical bar chart with a text alternative (``role="img"`` + ``<title>``/``<desc>``)."""
    n = max(len(values), 1)
    left, bottom, top_pad = 70, 40, 20
    plot_w, plot_h = width - left - 10, height - bottom - top_pad
    top = _axis_max(values)
    bar_w = plot_w / n * 0.7
    parts = [f'<svg class="chart" role="img" aria-labelledby="t-{id(values)} d-{id(values)}" viewBox="0 0 {width} '
             f'{height}" width="100%" preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">',
             f'<title id="t-{id(values)}">{escape(title)}</title>',
             f'<desc id="d-{id(values)}">' + escape("; ".join(f"{lab}: {fmt(v)}" for lab, v in zip(labels, values,
                                                                                                       strict=True)))
             + "</desc>",
             f'<line x1="{left}" y1="{top_pad + plot_h}" x2="{width - 10}" y2="{top_pad + plot_h}" stroke="#4a5460"/>',
             f'<text x="{left - 6}" y="{top_pad + 4}" text-anchor="end">{escape(fmt(top))}</text>',
             f'<text x="{left - 6}" y="{top_pad + plot_h}" text-anchor="end">0</text>']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        h = float(max(value, Decimal(0)) / top) * plot_h
        x = left + plot_w / n * i + (plot_w / n - bar_w) / 2
        y = top_pad + plot_h - h
        color = colors[i % len(colors)]
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{color}">'
                     f'<title>{escape(label)}: {escape(fmt(value))}</title></rect>')
        parts.append(f'<text x="{x + bar_w / 2:.1f}" y="{top_pad + plot_h + 16}" text-anchor="middle">'
                     f'{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # every interpolated text above is escaped
