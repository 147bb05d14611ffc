"""Tables for workbench: exception assignment, notes, write-off approvals (issue 8).

Rows on the shared ``Base`` from ``orm.py``.
"""

from __future__ import annotations

from router.adapters.orm import Base  # noqa: F401
