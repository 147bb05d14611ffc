"""Watched drop directory: files placed in it are ingested, then moved to its ``archive/`` folder (with the
999 beside an X12 file) or to ``error/`` with a ``<name>.reason.json`` saying what was wrong and where.

Polling, not inotify: it works on network shares where clearinghouse SFTP clients drop files. Writers
should upload under a temporary name (dot-file or ``.part``/``.tmp``) and rename; files still changing
(modified in the last ``settle_seconds``) are left for the next poll.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from connectors.intake import FileReport, Intake

log = logging.getLogger(__name__)
TEMPORARY = (".part", ".tmp", ".filepart")


class DropDirectory:
    def __init__(self, inbox: Path, intake: Intake, settle_seconds: float = 1.0) -> None:
        self.inbox = inbox
        self.archive = inbox / "archive"
        self.errors = inbox / "error"
        self.intake = intake
        self.settle_seconds = settle_seconds
        for folder in (self.inbox, self.archive, self.errors):
            folder.mkdir(parents=True, exist_ok=True)

    def ready_files(self) -> list[Path]:
        now = time.time()
        return sorted(p for p in self.inbox.iterdir()
                      if p.is_file() and not p.name.startswith(".") and not p.name.endswith(TEMPORARY)
                      and now - p.stat().st_mtime >= self.settle_seconds)

    def poll_once(self) -> list[FileReport]:
        """Process every settled file; a transient error (database down) leaves the file for next time."""
        reports = []
        for path in self.ready_files():
            report = self.intake.ingest(path.read_bytes(), path.name)
            target = self.errors if report.rejected else self.archive
            stamp = time.strftime("%Y%m%dT%H%M%S")
            dest = target / f"{stamp}-{path.name}"
            if report.ack:
                dest.with_name(dest.name + ".999").write_text(report.ack)
            if report.rejected:
                dest.with_name(dest.name + ".reason.json").write_text(json.dumps(report.as_json(), indent=2))
            path.replace(dest)
            log.info("drop file processed: %d messages, %d rejected -> %s", len(report.results), report.rejected,
                     target.name)
            reports.append(report)
        return reports

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        while not stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # keep watching; the file stays in drop/ and is retried next poll
                log.error("drop directory poll failed: %s", type(exc).__name__)  # messages may carry PHI
            stop.wait(interval)
