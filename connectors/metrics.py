"""Process-local Prometheus instruments observed on the hot path (connectors); labels carry no PHI.

Counts that every process shares (messages, postings, exceptions, deliveries) are read from the database at
scrape time by ``api/metrics.py`` instead, so they agree whichever process is scraped.
"""

from __future__ import annotations

from prometheus_client import Histogram

ACK_LATENCY = Histogram(
    "rcmhub_ack_latency_seconds", "Time from an MLLP message's arrival to its ACK (stored, processed, answered)",
    ["channel"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
