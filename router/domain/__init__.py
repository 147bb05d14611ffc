"""Plain-Python domain model: no I/O library is imported here (checked by import-linter)."""
