"""Browser scenario (headless Debian Chromium via Playwright) against a running ``rcmhub serve``: an IT user
signs in, finds a dead letter, replays it and sees it processed in the message trace. Screenshots go to
``test-artifacts/browser/`` (``RCMHUB_TEST_ARTIFACTS`` overrides)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hl7_factory import Dft, Ft1
from serve_support import wait_until_serving
from sqlalchemy import update

from api.bootstrap import build
from api.settings import Settings
from mappings.hl7v2 import er7
from router.adapters.message_store import MessageStore, digest_of
from router.adapters.orm import MessageRow

pytestmark = pytest.mark.e2e
RCMHUB = str(Path(sys.executable).parent / "rcmhub")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("RCMHUB_TEST_ARTIFACTS", Path(__file__).parents[2] / "test-artifacts")) / "browser"
PASSWORD = "it ops password 2026"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing (CI=true: browser tests must not skip)")
        pytest.skip("Chromium is not installed")
    port = _free_port()
    env = {**os.environ, "RCMHUB_DATA_DIR": str(tmp_path), "RCMHUB_API_PORT": str(port),
           "RCMHUB_MLLP_PORT": str(_free_port()), "RCMHUB_DATABASE_URL": "", "RCMHUB_AMQP_URL": ""}
    proc = subprocess.Popen([RCMHUB, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, base)
        yield base, env
    finally:
        proc.terminate()
        proc.wait(20)


def _lost_message(data_dir: Path, control: str, account: str) -> int:
    """What a transient failure leaves behind: the DFT stored raw, still 'received' ten minutes later."""
    hub = build(Settings(database_url=f"sqlite:///{data_dir / 'rcmhub.db'}", data_dir=data_dir, amqp_url=""),
                migrate=False)
    try:
        raw = Dft(control, account, visit=f"V-{account}", lines=[Ft1("80.00", code="99213")]).er7().encode()
        stored = MessageStore(hub.sessions).store(raw, "mllp", "emr", "hl7v2", "DFT^P03", "CLINIC", control,
                                                  digest=digest_of(er7.canonical(raw)))
        with hub.sessions.begin() as s:
            s.execute(update(MessageRow).where(MessageRow.id == stored.id)
                      .values(received_at=datetime.now(UTC) - timedelta(minutes=10)))
        return stored.id
    finally:
        hub.close()


@pytest.mark.timeout(180)
def test_an_it_user_replays_a_dead_letter_and_sees_it_processed(served: tuple[str, dict[str, str]],
                                                                 uid: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    base, env = served
    added = subprocess.run([RCMHUB, "users", "add", f"it-{uid}", "--role", "it-ops", "--password-stdin"], env=env,
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    control, account = f"LOST-{uid}", f"BR-{uid}"
    letter = f"msg-{_lost_message(Path(env['RCMHUB_DATA_DIR']), control, account)}"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or CHROMIUM, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/ops/dlq")  # signed out: sent to the login page, and back afterwards
        page.get_by_label("User name").fill(f"it-{uid}")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(f"{base}/ops/dlq")
        row = page.locator(f'tr[data-id="{letter}"]')
        expect(row).to_be_visible()
        expect(row).to_contain_text("DFT^P03")
        page.screenshot(path=str(ARTIFACTS / "ops-dlq-before-replay.png"), full_page=True)
        row.get_by_role("button", name=f"Replay {letter}").click()
        expect(page.get_by_role("status")).to_contain_text(f"Replayed {letter}: accepted")
        expect(page.locator(f'tr[data-id="{letter}"]')).to_have_count(0)
        page.screenshot(path=str(ARTIFACTS / "ops-dlq-after-replay.png"), full_page=True)
        page.get_by_role("link", name="Message trace").click()
        page.get_by_label("Control id, account or claim").fill(control)
        page.get_by_role("button", name="Trace").click()
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text("processed")
        expect(timeline).to_contain_text("replayed")
        expect(timeline).to_contain_text("charge insurance 80.00")
        page.screenshot(path=str(ARTIFACTS / "ops-trace-after-replay.png"), full_page=True)
        browser.close()
    for name in ("ops-dlq-before-replay.png", "ops-dlq-after-replay.png", "ops-trace-after-replay.png"):
        assert (ARTIFACTS / name).stat().st_size > 1000
