"""Deleting and opting out in headless Chromium, as a visitor does: "Delete my logged chats"
after Clear and a new image, and "Don't log this chat" ticked while an answer is being written.
Saves screenshots to artifacts/ (privacy_delete.png, privacy_dont_log.png)."""

import os
import sqlite3
from pathlib import Path

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    NO_PROXY="localhost,127.0.0.1",
    no_proxy="localhost,127.0.0.1",
)

import pytest  # noqa: E402
from conftest import GatedEngine, serving  # noqa: E402
from test_app_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, wait_for_turn  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:'future.no_silent_downcasting':Warning",
        "ignore:The copy keyword is deprecated:Warning",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
CAT, COFFEE = ROOT / "assets" / "examples" / "cat.png", ROOT / "assets" / "examples" / "coffee.png"


@pytest.fixture
def served(tiny_engine, tmp_path, monkeypatch):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    from app.settings import AppSettings
    from safevlm.store import Store

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    db = tmp_path / "safevlm.db"
    store = Store(db)
    engine = GatedEngine(tiny_engine)
    settings = AppSettings(max_new_tokens=16)
    try:
        with serving(engine, store, settings) as url:
            yield url, db, engine
    finally:
        store.close()


@pytest.fixture
def page(served):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        try:
            yield page
        finally:
            browser.close()


def send(page, image: Path, prompt: str) -> None:
    from playwright.sync_api import expect

    page.locator("#safevlm-input input[type=file]").set_input_files(str(image))
    expect(page.locator("#safevlm-input img").first).to_be_visible()
    box = page.locator("#safevlm-input textarea")
    box.fill(prompt)
    box.press("Enter")


def table(db, sql: str) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def test_delete_removes_every_chat_of_the_page_after_clear_and_a_new_image(served, page):
    from playwright.sync_api import expect

    url, db, _ = served
    page.goto(url)
    send(page, CAT, "What animal is this?")
    wait_for_turn(page, answers=1)
    page.get_by_role("button", name="Clear chat").click()
    expect(page.locator('[data-testid="bot"]')).to_have_count(0)
    send(page, COFFEE, "What is in the cup?")
    wait_for_turn(page, answers=1)
    assert len(table(db, "SELECT id FROM turns")) == 2
    assert len(table(db, "SELECT id FROM sessions")) == 2

    page.get_by_role("button", name="Delete my logged chats").click()

    expect(page.locator("#safevlm-feedback")).to_contain_text(
        "Deleted 2 logged turn(s) from 2 chat(s)", timeout=10_000
    )
    assert table(db, "SELECT id FROM turns") == [] and table(db, "SELECT id FROM sessions") == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "privacy_delete.png"), full_page=True)


def test_dont_log_ticked_while_the_answer_is_written_keeps_that_turn_out(served, page):
    from playwright.sync_api import expect

    url, db, engine = served
    page.goto(url)
    engine.release.clear()
    send(page, CAT, "What animal is this?")
    assert engine.in_flight.wait(60), "the turn reached the model"
    upload = page.locator("#safevlm-chatbot img").first.get_attribute("src")

    page.get_by_label("Don't log this chat").check()
    expect(page.locator("#safevlm-feedback")).to_contain_text("not logged", timeout=10_000)
    engine.release.set()
    wait_for_turn(page, answers=1)

    assert table(db, "SELECT id FROM turns") == []
    assert table(db, "SELECT client, logging FROM sessions") == [("ui", 0)]
    status = page.request.get(upload if upload.startswith("http") else url.rstrip("/") + upload).status
    assert status in (403, 404), "the upload is no longer served"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "privacy_dont_log.png"), full_page=True)
