"""The billing workbench in a real browser (Playwright driving Debian's Chromium) against a running hub (uvicorn
in a thread): a billing user logs in, filters the work queue, opens an unmatched claim, matches it to the
suggested candidate and sees the account balance change; a supervisor approves a large write-off.

Screenshots go to ``$RCMHUB_TEST_ARTIFACTS`` (default: the pytest tmp dir) and their folder is printed.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import uvicorn
from auth_support import PASSWORD, add_user
from workbench_support import balances, denied_case, unmatched_case

from api.app import create_app
from api.bootstrap import Hub, build
from api.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]

sync_api = pytest.importorskip("playwright.sync_api")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[tuple[Hub, str, object]]:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing (.ci/run installs it)")
        pytest.skip(f"{CHROMIUM} is missing")
    hub = build(Settings(database_url=f"sqlite:///{tmp_path / 'hub.db'}", data_dir=tmp_path, amqp_url="",
                         write_off_threshold=Decimal("100.00")))
    app = create_app(hub)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "the hub did not start"
        time.sleep(0.05)
    try:
        yield hub, f"http://127.0.0.1:{port}", app
    finally:
        server.should_exit = True
        thread.join(10)
        hub.close()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = Path(os.environ.get("RCMHUB_TEST_ARTIFACTS", tmp_path / "artifacts")) / "workbench-browser"
    root.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {root}")
    return root


def _login(page: object, base: str, username: str) -> None:
    page.goto(f"{base}/ui/workqueue")  # type: ignore[attr-defined]
    assert "/login" in page.url  # type: ignore[attr-defined]  # anonymous: sent to the login page
    page.get_by_label("User name").fill(username)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(PASSWORD)  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign in").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/ui/workqueue**")  # type: ignore[attr-defined]


@pytest.mark.timeout(120)
def test_billing_user_matches_an_unmatched_claim_and_a_supervisor_approves_a_large_write_off(
        running: tuple[Hub, str, object], artifacts: Path) -> None:
    hub, base, app = running
    uid = uuid.uuid4().hex[:8].upper()
    held = unmatched_case(hub, uid)
    denied = denied_case(hub, uid)
    clerk = add_user(app, "billing")  # type: ignore[arg-type]
    boss = add_user(app, "billing-supervisor")  # type: ignore[arg-type]
    expect = sync_api.expect

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            _login(page, base, clerk)
            page.goto(f"{base}/ui/accounts/{held.account}")
            expect(page.locator("#insurance-balance")).to_have_text("300.00")
            expect(page.locator("#patient-balance")).to_have_text("0.00")
            page.screenshot(path=artifacts / "01-account-before.png", full_page=True)

            # Filter the queue: unmatched claims, then the payer's claim number, by keyboard and by htmx swaps.
            page.goto(f"{base}/ui/workqueue")
            page.get_by_label("Type").select_option("unmatched_claim")
            page.wait_for_url("**type=unmatched_claim**")
            page.get_by_label("Claim or account").fill(f"X{uid}")
            page.get_by_label("Claim or account").press("Enter")
            page.wait_for_url(f"**q=X{uid}**")
            rows = page.locator("#queue tbody tr")
            expect(rows).to_have_count(1)
            expect(rows.first).to_have_attribute("data-type", "unmatched_claim")
            page.screenshot(path=artifacts / "02-queue-filtered.png", full_page=True)

            page.get_by_role("link", name=f"Open exception {held.exception_id}").click()
            expect(page.get_by_role("heading", name="Candidate claims")).to_be_visible()
            expect(page.get_by_label("Claim key")).to_have_value(held.claim)  # the suggested candidate
            page.screenshot(path=artifacts / "03-unmatched-claim.png", full_page=True)
            page.get_by_role("button", name="Match and post").click()
            expect(page.get_by_role("status")).to_have_text("Matched and posted.")
            expect(page.locator("#resolution")).to_contain_text(f"matched to claim {held.claim}")
            page.screenshot(path=artifacts / "04-matched.png", full_page=True)

            page.locator("#account-link").click()
            insurance, patient = balances(hub, held.account)
            assert (insurance, patient) == (Decimal("300.00") - held.paid - held.co - held.pr, held.pr)
            expect(page.locator("#insurance-balance")).to_have_text(f"{insurance:.2f}")
            expect(page.locator("#patient-balance")).to_have_text(f"{patient:.2f}")
            page.screenshot(path=artifacts / "05-account-after.png", full_page=True)

            # A write-off above the threshold (100.00 here) waits for a supervisor.
            page.goto(f"{base}/ui/exceptions/{denied.exception_id}")
            page.get_by_label("Amount", exact=True).first.fill("150.00")
            page.get_by_label("Reason", exact=True).first.fill("timely filing limit passed")
            page.get_by_role("button", name="Write off").click()
            expect(page.get_by_role("status")).to_have_text("Write-off recorded.")
            expect(page.locator("h1 .badge")).to_have_text("pending approval")
            page.screenshot(path=artifacts / "06-write-off-requested.png", full_page=True)
            page.get_by_role("button", name="Sign out").click()
            page.wait_for_url("**/login**")

            _login(page, base, boss)
            expect(page.get_by_role("heading", name="Write-offs waiting for your approval")).to_be_visible()
            page.screenshot(path=artifacts / "07-supervisor-queue.png", full_page=True)
            page.get_by_role("link", name=f"#{denied.exception_id}").first.click()
            page.get_by_role("button", name="Approve write-off").click()
            expect(page.get_by_role("status")).to_have_text("Write-off approved and posted.")
            expect(page.locator("#resolution")).to_contain_text(f"approved by {boss}")
            page.screenshot(path=artifacts / "08-approved.png", full_page=True)

            # On a tablet (768 px portrait) the pages reflow to one column: nothing wider than the screen.
            page.set_viewport_size({"width": 768, "height": 1024})
            for n, path in enumerate((f"/ui/exceptions/{held.exception_id}", "/ui/workqueue?status=all", "/ui/ar")):
                page.goto(base + path)
                assert page.evaluate("document.documentElement.scrollWidth") <= 768, path
                page.screenshot(path=artifacts / f"{9 + n:02d}-tablet.png", full_page=True)
        finally:
            browser.close()
    assert balances(hub, denied.account)[0] == Decimal("300.00") - held.paid - held.co - held.pr - Decimal("150.00")
    assert len(list(artifacts.glob("*.png"))) == 11
