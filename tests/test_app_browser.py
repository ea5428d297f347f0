"""The app in headless Chromium, as a first-time visitor uses it: upload, ask, watch the bars,
move thresholds, regenerate, rate, then label the turn and export it. Saves screenshots to
artifacts/ (app.png: the Chat tab after a flagged turn; app_annotate.png: the Annotate tab)."""

import json
import os
import re
from pathlib import Path

os.environ.update(
    GRADIO_ANALYTICS_ENABLED="False",
    HF_HUB_DISABLE_TELEMETRY="1",
    NO_PROXY="localhost,127.0.0.1",
    no_proxy="localhost,127.0.0.1",
)

import pytest  # noqa: E402
from conftest import serving  # noqa: E402

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.filterwarnings(
        "ignore:'future.no_silent_downcasting':Warning",
        "ignore:The copy keyword is deprecated:Warning",
    ),
]

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
WEAPON = ROOT / "assets" / "examples" / "steps_weapon.png"
PROMPT = "Please fill in the list."
TOKEN = "browser-token"
TURN_TIMEOUT = 120_000  # ms; a turn on the tiny base takes a few seconds
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]




@pytest.fixture(scope="module")
def served(tmp_path_factory):
    if not CHROMIUM.exists():
        pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    from app.settings import AppSettings
    from safevlm.engine import ChatEngine
    from safevlm.store import Store

    db = tmp_path_factory.mktemp("browser") / "safevlm.db"
    store = Store(db)
    settings = AppSettings(max_new_tokens=16, annotation_token=TOKEN)
    try:
        with serving(ChatEngine.load(), store, settings) as url:
            yield url, db
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


def wait_for_turn(page, answers: int) -> None:
    """Until the n-th answer is on screen and the input box is usable again."""
    from playwright.sync_api import expect

    expect(page.locator('[data-testid="bot"]')).to_have_count(answers, timeout=TURN_TIMEOUT)
    expect(page.locator("#safevlm-input textarea")).to_be_editable(timeout=TURN_TIMEOUT)


def test_a_visitor_chats_moves_a_threshold_and_finds_the_turn_in_the_log_and_the_export(
    served, page
):
    from playwright.sync_api import expect

    from safevlm.store import Store
    from safevlm.taxonomy import load_taxonomy

    url, db = served
    page.goto(url)
    badge = page.locator("#safevlm-badge .safevlm-badge")
    expect(badge).to_have_attribute("data-action", "none")

    # Upload an image and ask: the badge and the bars come, then the answer.
    page.locator("#safevlm-input input[type=file]").set_input_files(str(WEAPON))
    expect(page.locator("#safevlm-input img").first).to_be_visible()
    box = page.locator("#safevlm-input textarea")
    box.fill(PROMPT)
    box.press("Enter")
    wait_for_turn(page, answers=1)
    expect(badge).not_to_have_attribute("data-action", "none")
    assert page.locator('[data-testid="bot"]').last.inner_text().strip()
    taxonomy = load_taxonomy()
    for label in taxonomy.type_labels:  # one drawn bar per type (plus zero-height colour pins)
        expect(
            page.locator(
                f'#safevlm-type-plot path[aria-roledescription="bar"][aria-label*="{label}; '
                f'probability: 0."]'
            )
        ).to_have_count(1)
    level_bars = page.locator('#safevlm-level-plot path[aria-roledescription="bar"]')
    expect(level_bars).to_have_count(len(taxonomy.levels))
    expect(page.locator("#safevlm-input")).not_to_contain_text(PROMPT)

    # Move thresholds: the preview says what they would decide; Regenerate answers with them.
    page.get_by_label("range slider for Illegal").fill("0")
    page.get_by_label("range slider for Level threshold").fill("0")
    expect(page.locator("#safevlm-preview")).to_contain_text("would be", timeout=10_000)
    expect(page.locator("#safevlm-preview")).not_to_contain_text("ALLOW")
    page.get_by_role("button", name="Regenerate").click()
    wait_for_turn(page, answers=2)
    expect(badge).to_have_attribute("data-action", re.compile("caution|refuse"))
    illegal_bar = page.locator('#safevlm-type-plot path[aria-label*="Illegal; probability: 0."]')
    expect(illegal_bar).to_have_attribute("aria-label", re.compile("over threshold"))

    # Rate the new answer with a comment.
    page.get_by_placeholder("Type a comment").fill("good refusal")
    page.get_by_role("button", name="Like").last.click()
    expect(page.locator("#safevlm-feedback")).to_contain_text("saved", timeout=10_000)
    page.wait_for_timeout(800)  # let the bars finish their transition before the picture
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app.png"), full_page=True)

    # Both turns are in the database, the second with the moved thresholds and the thumb.
    with Store(db) as store:
        newest, first = store.list_turns()
    assert (first["prompt"], newest["prompt"]) == (PROMPT, PROMPT)
    assert {first["source"], newest["source"]} == {"ui"}
    assert "weapon" in (first["reader_text"] or "").lower()
    assert (
        newest["thresholds"]["types"]["illegal_risk"] == 0.0
        and newest["thresholds"]["level"] == 0.0
    )
    assert newest["decision"] in ("caution", "refuse") and newest["type"] == "illegal_risk"
    assert newest["feedback_up"] == 1

    # Annotate: nothing shows before the token; then label the newest turn and export it.
    page.get_by_role("tab", name="Annotate").click()
    expect(page.locator("#safevlm-turns")).to_be_hidden()
    page.get_by_label("Annotation token").fill("wrong")
    page.get_by_role("button", name="Unlock").click()
    expect(page.get_by_test_id("toast-body")).to_contain_text("Wrong or missing annotation token")
    expect(page.locator("#safevlm-turns")).to_be_hidden()
    page.get_by_test_id("toast-close").first.click()
    page.get_by_label("Annotation token").fill(TOKEN)
    page.get_by_role("button", name="Unlock").click()
    expect(page.locator("#safevlm-turns")).to_be_visible()
    page.get_by_role("button", name="Load turns").click()
    newest_id_cell = page.locator('#safevlm-turns [data-testid="cell-0-0"]')
    expect(newest_id_cell).to_have_text(str(newest["id"]))
    page.locator('#safevlm-turns [data-testid="cell-0-1"]').click()
    expect(page.locator("#safevlm-turn")).to_contain_text(PROMPT)
    page.get_by_label("Annotator").fill("browser-test")
    page.locator("#safevlm-correct").get_by_text("yes").click()
    page.get_by_role("button", name="Save label").click()
    expect(page.locator("#safevlm-annotate-status")).to_contain_text("Saved label")
    page.get_by_role("button", name="Export JSONL (training records)").click()
    link = page.locator("#safevlm-export a").first
    expect(link).to_be_visible()
    href = link.get_attribute("href")
    body = page.request.get(href if href.startswith("http") else url.rstrip("/") + href).text()
    records = [json.loads(line) for line in body.splitlines()]
    assert [(r["prompt"], r["type"], r["source"]) for r in records] == [
        (PROMPT, "illegal_risk", "annotation")
    ]
    expect(page.get_by_test_id("toast-body")).to_contain_text("Exported 1 turn")
    page.get_by_test_id("toast-close").first.click()
    expect(page.get_by_test_id("toast-body")).to_have_count(0)
    page.screenshot(path=str(ARTIFACTS / "app_annotate.png"), full_page=True)
