"""Helpers for tests that run ``rcmhub serve`` as a process."""

from __future__ import annotations

import subprocess
import time

import httpx


def wait_until_serving(proc: subprocess.Popen[bytes], base: str, timeout: float = 60.0) -> None:
    """Until ``base``/healthz answers 200; fails with serve's output if it exits or never comes up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        output = proc.stdout.read().decode() if proc.stdout and proc.poll() is not None else ""
        assert proc.poll() is None, f"serve exited: {output}"
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.3)
