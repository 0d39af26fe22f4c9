"""`closeout sandbox` in a real browser: Debian's Chromium, driven by Playwright.

The sandbox runs as the README tells a new user to run it (`closeout sandbox
--port P --data DIR`, here `python -m cli`), and the test plays the issue's
story on its page: an inspector logs a finding, the branch secretary is told
and submits it with a photo, the inspector verifies it with the card's button
(the card is edited in place), a working day later an overdue item of the
demo ledger is escalated to a reminder talk (谈话提醒), and a week later the
work chat has the weekly report with its chart and its spreadsheet.

Screenshots of the steps go to $CLOSEOUT_SCREENSHOTS when set (the README's
come from `CLOSEOUT_SCREENSHOTS=docs/screenshots pytest tests/browser`), else
to the test's temporary folder.

Chromium is /usr/bin/chromium (Debian's package `chromium`; .ci/run installs
it); without it, or without Playwright, the test is skipped on a laptop and
fails in CI (CLOSEOUT_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing

#: Debian's Chromium (apt-get install chromium).
CHROMIUM = Path(os.environ.get("CLOSEOUT_CHROMIUM", "/usr/bin/chromium"))
#: How Chromium is started: headless, quiet, nothing fetched from the internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
#: The project's root, where `python -m cli` runs.
ROOT = Path(__file__).resolve().parents[2]
#: The page's size in the screenshots.
VIEWPORT = {"width": 1200, "height": 760}
#: Longest wait for the sandbox to start answering.
START_TIMEOUT = 90.0  # seconds
#: Longest wait for the bot (or the clock) in the page.
WAIT = 30_000  # ms


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def sandbox_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`closeout sandbox` on a free port with a data folder of its own, until the tests end."""
    data = tmp_path_factory.mktemp("sandbox")
    port = _free_port()
    log = (data / "sandbox.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "sandbox", "--port", str(port), "--data", str(data)],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers(f"{url}/api/clock"):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(
                    "closeout sandbox did not start:\n" + (data / "sandbox.log").read_text(),
                    pytrace=False,
                )
            time.sleep(0.3)
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Chromium with a fresh profile, or a skip on a laptop / a failure in CI without it."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        service_missing("Playwright (pip install playwright)", exc)
    if not CHROMIUM.exists():
        service_missing("Chromium", FileNotFoundError(f"{CHROMIUM} (apt-get install chromium)"))
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,  # type: ignore[arg-type]
            locale="zh-CN",
            timezone_id="Asia/Shanghai",
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("CLOSEOUT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Any, path: Path) -> None:
    """A screenshot of the page, kept small: 256 colours are plenty for a chat."""
    from PIL import Image  # Pillow comes with matplotlib

    page.screenshot(path=str(path))
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def photo_png(width: int = 240, height: int = 160) -> bytes:
    """A PNG of a ruled notebook page: something that looks like a photo in the chat."""
    rows = []
    for y in range(height):
        ruled = y % 16 == 0
        row = bytearray([0])
        for x in range(width):
            margin = 28 <= x <= 30
            pixel = (214, 98, 90) if margin else (150, 180, 215) if ruled else (250, 246, 232)
            row += bytes(pixel)
        rows.append(bytes(row))

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )


def test_an_inspector_a_secretary_and_the_clock_play_the_ledger_in_the_web_chat(
    sandbox_url: str, browser: Any, screenshots: Path
) -> None:
    from playwright.sync_api import expect

    page = browser.new_page()
    page.goto(sandbox_url)

    def be(code: str) -> None:
        page.click(f'#people li[data-code="{code}"]')
        expect(page.locator(f'#people li.active[data-code="{code}"]')).to_be_visible()

    def say(text: str) -> None:
        page.fill("#text", text)
        page.press("#text", "Enter")

    def bot_says(*parts: str) -> Any:
        found = page.locator(".msg.bot")
        for part in parts:
            found = found.filter(has_text=part)
        expect(found.last).to_be_visible(timeout=WAIT)
        return found.last

    # The inspector logs a finding in the field.
    be("M003")
    say("/new B01 | 台账缺失 | 5")
    card = bot_says("已登记问题 #", "台账缺失")
    number = re.search(r"已登记问题 #(\d+)", card.inner_text())
    assert number is not None, card.inner_text()
    item = number.group(1)
    expect(card).to_contain_text("🟢")
    expect(card.locator(".keyboard button")).to_contain_text(["详情"])
    shoot(page, screenshots / "1-inspector-logs-a-finding.png")

    # The branch secretary is told by the follow-ups, and submits with a photo.
    be("M005")
    bot_says("新交办事项", f"#{item}", "台账缺失")
    say(f"/submit {item}")
    bot_says(f"#{item}", "/done")
    page.set_input_files(
        "#file", files=[{"name": "整改照片.png", "mimeType": "image/png", "buffer": photo_png()}]
    )
    expect(page.locator(".msg.me img.photo")).to_be_visible(timeout=WAIT)
    bot_says(f"#{item}：已收到 1 件材料")
    say("/done")
    bot_says(f"#{item} 已提交", "待验收")
    shoot(page, screenshots / "2-secretary-submits-with-a-photo.png")

    # The inspector is told, and verifies it with the card's button: the card changes in place.
    be("M003")
    pushed = bot_says("已提交整改，请验收或退回", f"#{item}")
    edited = page.locator(f'.msg.bot[data-id="{pushed.get_attribute("data-id")}"]')
    pushed.locator(".keyboard button", has_text="验收销号").click()
    expect(page.locator(".toast")).to_be_visible(timeout=WAIT)
    expect(edited).to_contain_text("已销号", timeout=WAIT)
    expect(edited.locator(".edited")).to_be_visible()
    expect(edited.locator(".keyboard button", has_text="验收销号")).to_have_count(0)
    shoot(page, screenshots / "3-inspector-verifies-in-place.png")

    # A working day later, the demo's item four working days overdue reaches level 1.
    page.click('#clock button[data-step="workday"]')
    expect(page.locator("#clock-note")).to_contain_text("催办扫描", timeout=WAIT)
    escalated = bot_says("谈话提醒", "#3 ")
    expect(escalated).to_contain_text("🔴")
    expect(escalated).to_contain_text("党费收缴台账不规范")
    shoot(page, screenshots / "4-a-working-day-later-escalation.png")

    # A week later the work chat has the weekly report, its chart shown inline and
    # its spreadsheet to download.
    page.locator("#chats .tab").nth(1).click()
    page.click('#clock button[data-step="week"]')
    expect(page.locator("#clock-note")).to_contain_text("周报", timeout=WAIT)
    report = bot_says("督查情况通报", "🔴", "🟡", "🟢")
    chart = page.locator(".msg.bot img.photo").last
    expect(chart).to_be_visible(timeout=WAIT)
    assert chart.evaluate("image => image.naturalWidth") > 100
    sheet = page.locator('.msg.bot a.file[download$=".xlsx"]').last
    expect(sheet).to_be_visible(timeout=WAIT)
    download = page.request.get(sandbox_url + (sheet.get_attribute("href") or ""))
    assert download.ok and download.body().startswith(b"PK")  # an .xlsx is a zip
    expect(report).to_be_visible()
    chart.evaluate("image => image.closest('.msg').scrollIntoView({block: 'center'})")
    shoot(page, screenshots / "5-weekly-report-in-the-work-chat.png")
    page.close()
