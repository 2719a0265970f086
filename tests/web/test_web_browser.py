"""The web app driven in a real headless Chromium, on real faces, against a real server.

An individual enrolls from a photo, sees the face found, confirms and gets
an access code; a scan finds them; a reviewer decides the doubtful item;
the individual comes back with the code, grants a consent and erases
everything. Screenshots of each page, at desktop and phone width, are
written to $CONSENT_MATCHER_SCREENSHOTS when set (to look at them).
"""

import os
import re
import time
from pathlib import Path

import pytest

from helpers import Cli, headless_chromium, running_server, sideways_overflow

PHONE, DESKTOP = (390, 844), (1280, 900)


@pytest.fixture
def server(private_db, tmp_path):
    """The web app on a free local port, in a thread, on a fresh database (its own files)."""
    pytest.importorskip("uvicorn")
    from matcher.policy import load_policy
    from matcher.web import create_app

    with running_server(create_app(str(private_db.target), load_policy(None))) as base:
        yield base, private_db


@pytest.fixture
def browser():
    with headless_chromium(*DESKTOP) as driver:
        yield driver


class Pages:
    """Drives the browser and photographs each page at desktop and phone width."""

    def __init__(self, driver, base: str, shots: Path):
        self.driver, self.base, self.shots = driver, base, shots
        self.count = 0

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def find(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, css)

    def all(self, css: str):
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def act(self, css: str, action) -> None:
        """Find ``css`` and act on it, finding it again when ChromeDriver lost its node.

        After the window is resized for a screenshot, ChromeDriver sometimes hands out
        node ids that "do not belong to the document" for a moment; the page is unchanged.
        """
        from selenium.common.exceptions import WebDriverException

        for attempt in range(5):
            try:
                return action(self.find(css))
            except WebDriverException as exc:
                if "does not belong to the document" not in str(exc) or attempt == 4:
                    raise
                time.sleep(0.3)

    def type(self, css: str, text: str) -> None:
        self.act(css, lambda element: element.send_keys(text))

    def click(self, css: str) -> None:
        """Click and wait for the next page to load (a click that went through is never repeated)."""
        from selenium.webdriver.support.wait import WebDriverWait

        # A mark on this page's window object: gone once the next page has loaded
        # (no element handle involved, so the node-id hiccup cannot fool it).
        self.driver.execute_script("window.__before_click = true")

        def moved_on(driver) -> bool:
            return driver.execute_script(
                "return window.__before_click === undefined && document.readyState === 'complete'")

        self.act(css, lambda element: None if moved_on(self.driver) else element.click())
        WebDriverWait(self.driver, 60).until(moved_on)

    @property
    def text(self) -> str:
        return self.driver.execute_script("return document.body.innerText")

    def shoot(self, name: str) -> None:
        """Screenshots at both widths; the page must not scroll sideways on a phone."""
        self.count += 1
        for label, (width, height) in (("desktop", DESKTOP), ("phone", PHONE)):
            self.driver.set_window_size(width, height)
            full = self.driver.execute_script("return document.documentElement.scrollHeight")
            self.driver.set_window_size(width, min(max(height, full + 140), 4000))
            self.driver.save_screenshot(str(self.shots / f"{self.count:02d}-{name}-{label}.png"))
            if label == "phone":
                overflow = sideways_overflow(self.driver)
                assert overflow <= 0, f"{name}: the page is {overflow} px wider than a phone screen"
        self.driver.set_window_size(*DESKTOP)


def test_individual_and_reviewer_in_a_real_browser(server, browser, demo_folder, tmp_path):
    base, db = server
    shots = Path(os.environ.get("CONSENT_MATCHER_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    pages = Pages(browser, base, shots)
    cli = Cli(db.target)

    # Enroll: upload a photo, see the face found, confirm, get the code once.
    pages.open("/")
    assert "Opt out" in pages.text
    pages.shoot("home")
    pages.click("a[href='/enroll']")
    pages.type("input[type=file]", str(demo_folder["reference"]))
    pages.shoot("enroll")
    pages.click("button[type=submit]")
    assert "Is this your face?" in pages.text
    preview = pages.find("img.photo")
    assert preview.get_attribute("src").startswith("data:image/jpeg;base64,")
    assert preview.size["width"] > 100
    pages.shoot("enroll-preview")
    pages.click("form[action='/enroll/confirm'] button")
    code = pages.find("#access-code").text
    assert re.fullmatch(r"[0-9A-Z]{5}(-[0-9A-Z]{5}){3}", code), code
    assert "shown only this once" in pages.text
    pages.shoot("access-code")
    (person,) = cli.json("people")
    assert person["references"] == 1
    # Only the code's hash is stored; no photo bytes were kept.
    raw = db.stored_bytes()
    assert code.encode() not in raw and code.replace("-", "").encode() not in raw
    assert demo_folder["reference"].read_bytes()[:2000] not in raw

    # A scan finds them. Enrolled on the web without a liveness check, the opt-out is unverified
    # (anyone could have uploaded these photos): every match waits for a person.
    cli("scan", "--quiet", "--manifest", demo_folder["manifest"], demo_folder["media"])
    decisions = {name: (entry["decision"], entry["matches"][0]["rule"] if entry["matches"] else None)
                 for name, entry in cli.report().items()}
    assert decisions["astronaut-mirrored.jpg"] == ("review", "unverified-opt-out")
    # An operator who saw the person's ID verifies the opt-out: removals, and the news photo to review.
    cli("verify", person["name"], "--method", "id-document", "--by", "front desk")
    decisions = {name: entry["decision"] for name, entry in cli.report().items()}
    assert decisions["astronaut-mirrored.jpg"] == "remove"
    assert decisions["astronaut-press-photo.jpg"] == "review"

    # A reviewer signs in with a token from the CLI and removes the news photo, with a note.
    token = cli.json("reviewer", "add", "dana")["token"]
    pages.open("/review")
    assert "Please sign in" in pages.text  # the person's session does not open the review queue
    pages.open("/review/sign-in")
    pages.type("#token", token)
    pages.click("button[type=submit]")
    assert "Review queue" in pages.text and "astronaut-press-photo.jpg" in pages.text
    cards = pages.all("div.card[id^=item-]")
    assert len(cards) == 1
    item = "#" + cards[0].get_attribute("id")
    assert pages.find(f"{item} img.photo").get_attribute("src").startswith("data:image/jpeg")
    pages.shoot("review-queue")
    pages.type(f"{item} input[name=note]", "identifiable bystander, not the story")
    pages.click(f"{item} button[value=remove]")
    assert "Decision recorded" in pages.text and "Nothing is waiting for review" in pages.text
    pages.shoot("review-done")
    assert cli.report()["astronaut-press-photo.jpg"]["decision"] == "remove"
    reviewed = [e for e in cli.json("audit") if e["event"] == "review"]
    assert reviewed[-1]["actor"] == "reviewer:dana" and reviewed[-1]["detail"] == "identifiable bystander, not the story"
    pages.click("header form button")  # sign out

    # The person comes back with the code, grants a consent to one uploader.
    pages.open("/access")
    pages.type("#code", code.lower().replace("-", " "))  # typed loosely: still accepted
    pages.shoot("access")
    pages.click("button[type=submit]")
    assert "Your opt-out is active" in pages.text
    pages.type("#uploader", "user-77")
    pages.click("form[action='/me/consents'] button")
    assert "Consent recorded" in pages.text and "user-77" in pages.text
    pages.shoot("my-opt-out")
    assert cli.report()["astronaut-mirrored.jpg"]["decision"] == "allow"

    # Erase: asks for confirmation first, then nothing about them is left.
    pages.click("a[href='/me/erase']")
    pages.click("button.danger")  # without ticking the box
    assert "Tick the box" in pages.text and cli.json("people")
    pages.shoot("erase-confirm")
    pages.act("input[name=confirm]", lambda box: box.click())  # tick the box
    pages.click("button.danger")
    assert "Everything about you is erased" in pages.text
    pages.shoot("erased")
    assert cli.json("people") == []
    assert all(entry["matches"] == [] for entry in cli.report().values())
    pages.open("/me")
    assert "Please sign in" in pages.text
    pages.open("/access")
    pages.type("#code", code)
    pages.click("button[type=submit]")
    assert "not valid" in pages.text
