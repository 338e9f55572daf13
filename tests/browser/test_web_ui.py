"""The web UI (web/ built into hivecast/web/static) in Debian's Chromium, driven by Playwright, against a
real `hivecast serve --demo` node: live playback, quality menu, chat and danmaku between two pages,
sign-in → stream → upload → packaged video played to the end, hostile text shown as text."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from tests.conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "web"
STATIC = Path(__file__).resolve().parents[2] / "src" / "hivecast" / "web" / "static" / "index.html"
ADMIN = ("admin", "admin-password-1")
XSS = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def _require() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium (scripts/provision.sh installs Debian's)")
    if not STATIC.exists():
        pytest.skip("web UI not built (npm run build in web/)")
    pytest.importorskip("playwright.sync_api", reason="playwright not installed (test extra)")


class Server:
    def __init__(self, base: str, proc: subprocess.Popen[bytes]) -> None:
        self.base = base
        self.proc = proc

    def api(self, method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + "/api/v1" + path, data=data, method=method)
        req.add_header("content-type", "application/json")
        if token:
            req.add_header("authorization", f"Bearer {token}")
        with urllib.request.urlopen(req, timeout=10) as r:
            raw = r.read()
        return json.loads(raw)["data"] if raw else None

    def token(self) -> str:
        return str(self.api("POST", "/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})["access_token"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    _require()
    data = tmp_path_factory.mktemp("webnode")
    port = free_port()
    env = {**os.environ, "HIVECAST_API__ADMIN_USERNAME": ADMIN[0], "HIVECAST_API__ADMIN_PASSWORD": ADMIN[1]}
    # A live ladder below the demo's 360p source, so the quality menu has two real levels to switch between.
    (data / "hivecast.toml").write_text('[packaging]\nlive_ladder = ["240p"]\n')
    cmd = [sys.executable, "-m", "hivecast", "serve", "--config", str(data / "hivecast.toml"), "--demo", "--host", "127.0.0.1", "--http-port", str(port),
           "--rtsp-port", str(free_port()), "--rtmp-port", "0", "--data-dir", str(data)]
    log = open(data / "node.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=data, env=env)
    srv = Server(f"http://127.0.0.1:{port}", proc)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(srv.base + "/live/demo/index.m3u8", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("node did not start: " + (data / "node.log").read_text()[-3000:])
            time.sleep(0.2)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


@pytest.fixture(scope="module")
def browser(server: Server) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


class Page:
    """A page that records console errors and uncaught exceptions."""

    def __init__(self, browser: Any, server: Server, *, signed_in: bool, width: int = 1200) -> None:
        self.ctx = browser.new_context(viewport={"width": width, "height": 800})
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.set_default_timeout(15_000)
        if signed_in:
            pair = server.api("POST", "/auth/login", {"username": ADMIN[0], "password": ADMIN[1]})
            session = json.dumps({**pair, "username": ADMIN[0]})
            self.ctx.add_init_script(f"localStorage.setItem('hivecast.session', {json.dumps(session)})")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        assert self.errors == [], self.errors
        assert self.page.evaluate("() => window.__pwned") is None
        self.ctx.close()


def test_assets_have_js_mime_and_long_cache(server: Server) -> None:
    html = urllib.request.urlopen(server.base + "/", timeout=5).read().decode()
    start = html.index("/assets/")
    asset = html[start:html.index('"', start)]
    with urllib.request.urlopen(server.base + asset, timeout=5) as r:
        assert r.headers["content-type"].startswith("text/javascript")
        assert "immutable" in r.headers["cache-control"]
    with urllib.request.urlopen(server.base + "/", timeout=5) as r:
        assert r.headers["cache-control"] == "no-cache"


@pytest.fixture(scope="module")
def edge(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A caching edge (`hivecast edge`) in front of the node: the UI must work through it too."""
    data = tmp_path_factory.mktemp("webedge")
    port = free_port()
    cmd = [sys.executable, "-m", "hivecast", "edge", "--origin", server.base, "--host", "127.0.0.1",
           "--http-port", str(port), "--rtsp-port", str(free_port()), "--data-dir", str(data)]
    log = open(data / "edge.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=data)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(base + "/", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("edge did not start: " + (data / "edge.log").read_text()[-3000:])
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()


def test_ui_through_the_edge(edge: str, server: Server, browser: Any) -> None:
    html = urllib.request.urlopen(edge + "/", timeout=5).read().decode()
    start = html.index("/assets/")
    asset = html[start:html.index('"', start)]
    seen = []
    for _ in range(20):  # the edge answers from its cache once the first fill has been stored
        with urllib.request.urlopen(edge + asset, timeout=5) as r:
            assert r.headers["content-type"].startswith("text/javascript")
            assert "immutable" in r.headers["cache-control"]
            seen.append(r.headers.get("x-cache"))
        if seen[-1] == "HIT":
            break
        time.sleep(0.1)
    assert seen[-1] == "HIT", seen
    p = Page(browser, server, signed_in=False)
    p.page.goto(edge + "/#/watch/demo")
    p.page.wait_for_function("() => document.querySelector('video').currentTime > 0.5", timeout=10_000)
    p.page.wait_for_function("() => /viewers: \\d/.test(document.getElementById('viewers').textContent)")
    p.shot("watch-through-edge")
    p.close()


def test_demo_channel_plays_and_quality_menu(server: Server, browser: Any) -> None:
    p = Page(browser, server, signed_in=False)
    p.page.goto(server.base + "/")
    p.page.get_by_role("link", name="Demo channel").click()
    # Playing within 5 s of opening the watch page, and the clock moves.
    p.page.wait_for_function("() => document.querySelector('video').currentTime > 0", timeout=5_000)
    t0 = p.page.evaluate("() => document.querySelector('video').currentTime")
    p.page.wait_for_function(f"() => document.querySelector('video').currentTime > {t0} + 0.5", timeout=10_000)
    # The quality menu lists Auto plus each hls.js level (360p source and the 240p live rung); picking
    # 240p switches the picture to 240 lines, Auto hands control back to ABR.
    options = p.page.locator("#quality option").all_text_contents()
    assert options[0] == "Auto" and "240p" in options and "360p" in options, options
    p.page.select_option("#quality", label="240p")
    p.page.wait_for_function("() => document.querySelector('video').videoHeight === 240", timeout=20_000)
    p.page.select_option("#quality", label="360p")
    p.page.wait_for_function("() => document.querySelector('video').videoHeight === 360", timeout=20_000)
    p.page.select_option("#quality", "-1")
    assert p.page.evaluate("() => window.__player.hls.autoLevelEnabled") is True
    p.page.wait_for_function("() => /latency: \\d/.test(document.getElementById('latency').textContent)")
    assert "bitrate" in p.page.locator("#stats-text").text_content()
    p.shot("watch-demo")
    p.close()


def test_demo_channel_plays_with_dash(server: Server, browser: Any) -> None:
    p = Page(browser, server, signed_in=False)
    p.page.goto(server.base + "/#/watch/demo")
    p.page.get_by_role("link", name="Play with DASH").click()
    p.page.wait_for_function("() => window.__player.dash && document.querySelector('video').currentTime > 0.5",
                             timeout=15_000)
    t0 = p.page.evaluate("() => document.querySelector('video').currentTime")
    p.page.wait_for_function(f"() => document.querySelector('video').currentTime > {t0} + 0.5", timeout=10_000)
    options = p.page.locator("#quality option").all_text_contents()
    assert options[0] == "Auto" and len(options) >= 2, options
    p.shot("watch-demo-dash")
    p.close()


def test_channel_list_and_phone_width(server: Server, browser: Any) -> None:
    p = Page(browser, server, signed_in=False, width=375)
    p.page.goto(server.base + "/")
    p.page.get_by_role("link", name="Demo channel").wait_for()
    p.shot("channels-phone")
    # Keyboard: Tab reaches the skip link first.
    p.page.keyboard.press("Tab")
    assert p.page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    p.close()


def test_chat_between_pages_and_danmaku(server: Server, browser: Any) -> None:
    a = Page(browser, server, signed_in=True)
    b = Page(browser, server, signed_in=True)
    for p in (a, b):
        p.page.goto(server.base + "/#/watch/demo")
        p.page.wait_for_function("() => /viewers: \\d/.test(document.getElementById('viewers').textContent)")
    a.page.fill("#chat-input", "hello from A")
    a.page.press("#chat-input", "Enter")
    # The acceptance budget: in page B within 1 s of pressing Enter in page A.
    b.page.locator("#chat-messages li .text", has_text="hello from A").wait_for(timeout=1_000)
    # Hostile text stays text.
    a.page.fill("#chat-input", XSS)
    a.page.press("#chat-input", "Enter")
    b.page.locator("#chat-messages li .text", has_text="<script>").wait_for()
    assert b.page.locator("#chat-messages img").count() == 0
    # Danmaku: flies over the player in both pages.
    a.page.check("#chat-danmaku")
    a.page.fill("#chat-input", "danmaku from A")
    a.page.press("#chat-input", "Enter")
    b.page.locator(".player .danmaku .danmaku-item", has_text="danmaku from A").wait_for(timeout=2_000)
    b.shot("watch-chat-danmaku")
    a.close()
    b.close()


def test_sign_in_create_stream_upload_and_play_vod(server: Server, browser: Any, tmp_path: Path,
                                                  ffmpeg_exe: str) -> None:
    clip = tmp_path / "clip.mp4"
    subprocess.run([ffmpeg_exe, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=duration=3:size=320x180:rate=30",
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
                    "-c:v", "libx264", "-g", "30", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip)],
                   check=True, timeout=60)
    p = Page(browser, server, signed_in=False, width=390)
    p.page.goto(server.base + "/#/console")
    p.page.get_by_label("Username").fill(ADMIN[0])
    p.page.get_by_label("Password").fill(ADMIN[1])
    p.shot("sign-in")
    p.page.get_by_role("button", name="Sign in").click()
    p.page.get_by_role("heading", name="Console").wait_for()
    # Create a stream with a hostile title: key and ingest URLs shown, title shown as text.
    p.page.get_by_label("Stream name").fill("ui-test")
    p.page.get_by_label("Stream title").fill(XSS)
    p.page.get_by_role("button", name="Create stream").click()
    key = p.page.locator("#stream-key").text_content()
    assert key and key.startswith("sk_")
    assert p.page.locator("#ingest-rtsp").text_content().startswith("rtsp://127.0.0.1:")  # type: ignore[union-attr]
    assert p.page.locator("#ingest-rtmp").text_content().startswith("rtmp://")  # type: ignore[union-attr]
    p.page.locator("#stream-list td", has_text="<script>").wait_for()
    # The channel list shows the new stream's hostile title as text too.
    p.page.get_by_role("link", name="Channels").click()
    p.page.locator("#channels a", has_text="<script>").wait_for()
    assert p.page.locator("#channels img").count() == 0
    p.shot("channels-signed-in")
    p.page.get_by_role("link", name="Console").click()
    p.page.get_by_role("heading", name="Console").wait_for()
    # Upload through tus with the progress bar reaching 100 %.
    p.page.get_by_label("Video title").fill("Clip " + XSS)
    p.page.set_input_files("#upload-file", str(clip))
    p.page.get_by_role("button", name="Upload", exact=True).click()
    p.page.wait_for_function("() => document.getElementById('upload-progress').value === 100")
    p.page.wait_for_function("() => /packag/.test(document.getElementById('upload-status').textContent)")
    # Packaged (the /ws/events progress ends in 'packaged' and the list reloads with a play link).
    p.page.locator("#video-list a", has_text="play").wait_for(timeout=60_000)
    # Purge and API keys, as the admin.
    p.page.get_by_label("Value").fill("/live/demo/")
    p.page.select_option("#purge-kind", "prefix")
    p.page.get_by_role("button", name="Send").click()
    p.page.locator("#purge-status", has_text="purge queued").wait_for()
    p.page.get_by_label("Key name").fill("ci " + XSS)
    p.page.get_by_role("button", name="Create key").click()
    assert p.page.locator("#api-key-secret").text_content()
    p.page.locator("#key-list td", has_text="<script>").wait_for()
    magnet = p.page.locator("#video-list a.magnet").first.get_attribute("href") or ""
    assert magnet.startswith("magnet:?xt=urn:btih:"), magnet
    # The browser's info-hash is the one our BitTorrent code reads from the same .torrent.
    from hivecast.p2p.metainfo import parse_torrent

    torrent_href = p.page.locator("#video-list a", has_text="torrent").first.get_attribute("href") or ""
    raw = urllib.request.urlopen(urljoin(server.base + "/", torrent_href), timeout=5).read()  # relative or absolute
    assert magnet.split("btih:")[1].split("&")[0] == parse_torrent(raw).info.info_hash.hex()
    p.shot("console")
    p.page.locator("#video-list a", has_text="play").first.click()
    p.page.wait_for_function("() => document.querySelector('video') && document.querySelector('video').ended",
                             timeout=30_000)
    assert p.page.locator("#title").text_content() == "Clip " + XSS
    p.shot("watch-vod-ended")
    # The same video through dash.js, to the end as well.
    p.page.get_by_role("link", name="Play with DASH").click()
    p.page.wait_for_function("() => window.__player.dash && document.querySelector('video').ended", timeout=30_000)
    p.close()
