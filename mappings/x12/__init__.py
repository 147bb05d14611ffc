"""X12 (835 remittance, 999 acknowledgement) reading and writing."""
