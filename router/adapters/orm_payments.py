"""Tables for patient payments, card on file, plans (issue 7).

Rows on the shared ``Base`` from ``orm.py``.
"""

from __future__ import annotations

from router.adapters.orm import Base  # noqa: F401
