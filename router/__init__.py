"""rcmhub's domain core: claims, ledger, reconciliation, exceptions; handlers, bus, unit of work.

Bottom layer: knows no wire format and no transport.
"""
