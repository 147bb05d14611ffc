"""Tables for outbound deliveries (issue 6).

Rows on the shared ``Base`` from ``orm.py``.
"""

from __future__ import annotations

from router.adapters.orm import Base  # noqa: F401
