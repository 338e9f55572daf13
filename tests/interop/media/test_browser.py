"""hls.js and dash.js play our on-demand and live presentations in headless Chromium (a test page only;
the web UI ships its own player)."""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from hivecast.media.packaging.vod import package_file
from hivecast.node import Node
from tests.conftest import NodeFactory, node_url
from tests.interop.media.conftest import MakeMedia
from tests.interop.media.test_live import publish

pytestmark = [pytest.mark.interop, pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
PLAYERS = Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "hivecast-peers" / "npm" / "node_modules"
HLS_JS = PLAYERS / "hls.js" / "dist" / "hls.min.js"
DASH_JS = PLAYERS / "dashjs" / "dist" / "dash.all.min.js"
ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--autoplay-policy=no-user-gesture-required"]

PAGE = """<!doctype html><meta charset="utf-8"><title>player</title>
<video id="v" muted autoplay playsinline width="320"></video>
<script src="hls.min.js"></script><script src="dash.all.min.js"></script>
<script>
const q = new URLSearchParams(location.search);
const v = document.getElementById("v");
window.errors = [];
if (q.get("kind") === "hls") {
  const h = new Hls({lowLatencyMode: true});
  h.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) window.errors.push(d.type + ":" + d.details); });
  h.loadSource(q.get("src"));
  h.attachMedia(v);
} else {
  const p = dashjs.MediaPlayer().create();
  p.on("error", (e) => window.errors.push(JSON.stringify(e.error || e)));
  p.initialize(v, q.get("src"), true);
}
v.addEventListener("error", () => window.errors.push("video element: " + (v.error && v.error.message)));
</script>"""


def _require() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("no Chromium at /usr/bin/chromium (scripts/provision.sh installs Debian's)")
    if not (HLS_JS.exists() and DASH_JS.exists()):
        pytest.skip(f"hls.js/dash.js not installed in {PLAYERS} (scripts/provision.sh installs them from npm)")
    pytest.importorskip("playwright.async_api", reason="playwright not installed (test extra)")


def install_page(node: Node) -> str:
    root = node.settings.media_dir / "vod" / "_player"
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(HLS_JS, root / "hls.min.js")
    shutil.copyfile(DASH_JS, root / "dash.all.min.js")
    (root / "index.html").write_text(PAGE)
    return node_url(node, "/vod/_player/index.html")


async def play_in_browser(page_url: str, sources: list[tuple[str, str]], seconds: float = 3.0) -> None:
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            for kind, src in sources:
                page = await browser.new_page()
                await page.goto(f"{page_url}?kind={kind}&src={src}")
                try:
                    # Played: frames decoded for `seconds` of 30 fps video, and audio decoded.
                    await page.wait_for_function(
                        "() => { const v = document.getElementById('v'); return window.errors.length > 0 || "
                        f"(v.getVideoPlaybackQuality().totalVideoFrames > {int(seconds * 30)} "
                        "&& v.webkitAudioDecodedByteCount > 0); }",
                        timeout=45_000)
                except Exception as exc:
                    state: Any = await page.evaluate("() => ({t: document.getElementById('v').currentTime, e: window.errors})")
                    raise AssertionError(f"{kind} {src}: did not play: {state}") from exc
                state = await page.evaluate(
                    "() => { const v = document.getElementById('v'); return {errors: window.errors, "
                    "t: v.currentTime, w: v.videoWidth, frames: v.getVideoPlaybackQuality().totalVideoFrames, "
                    "buffered: Array.from({length: v.buffered.length}, (_, i) => [v.buffered.start(i), v.buffered.end(i)]), "
                    "ready: v.readyState, "
                    "audio: v.webkitAudioDecodedByteCount}; }")
                assert state["errors"] == [], (kind, src, state)
                assert state["w"] > 0 and state["frames"] > 0 and state["audio"] > 0, f"{kind} {src} {state}"
                await page.close()
        finally:
            await browser.close()


async def test_on_demand_in_chromium(node_factory: NodeFactory, make_media: MakeMedia) -> None:
    _require()
    node = await node_factory()
    source = make_media("browser.mp4", seconds=6)
    await asyncio.to_thread(package_file, source, node.settings.media_dir / "vod" / "clip", ladder="90p",
                            segment_seconds=2.0, replace=True)
    page = install_page(node)
    await play_in_browser(page, [("hls", "/vod/clip/index.m3u8"), ("dash", "/vod/clip/manifest.mpd")])


async def test_live_in_chromium(node_factory: NodeFactory, ffmpeg_exe: str) -> None:
    _require()
    node = await node_factory(open_publish=True, packaging={"segment_seconds": 1.0, "part_seconds": 0.5})
    page = install_page(node)
    proc = publish(ffmpeg_exe, node, "cam", 60)
    try:
        async with asyncio.timeout(20):
            while not (node.settings.media_dir / "live" / "cam" / "v0" / "seg-3.m4s").exists():
                await asyncio.sleep(0.2)
        await play_in_browser(page, [("hls", "/live/cam/index.m3u8"), ("dash", "/live/cam/manifest.mpd")],
                              seconds=2.0)
    finally:
        proc.kill()
        proc.wait(10)
