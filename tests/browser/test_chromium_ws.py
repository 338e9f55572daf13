"""Chromium's own WebSocket (Debian's chromium driven by Playwright) against our server, with
permessage-deflate: text and binary echo, a large compressible message, and the close code."""

from __future__ import annotations

import shutil
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.interop]

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]

SCRIPT = """
async (url) => {
  const ws = new WebSocket(url);
  ws.binaryType = "arraybuffer";
  const queue = [];
  let waiter = null;
  ws.onmessage = (e) => { queue.push(e.data); if (waiter) { const w = waiter; waiter = null; w(); } };
  const next = async () => { while (!queue.length) { await new Promise((r) => (waiter = r)); } return queue.shift(); };
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const out = { extensions: ws.extensions, results: [] };
  const big = "chromium says hello ".repeat(20000);
  for (const msg of ["hi", "κόσμε", big]) { ws.send(msg); out.results.push((await next()) === msg); }
  const bytes = new Uint8Array(100000).map((_, i) => i % 251);
  ws.send(bytes);
  const back = new Uint8Array(await next());
  out.results.push(back.length === bytes.length && back.every((v, i) => v === bytes[i]));
  const closed = new Promise((r) => (ws.onclose = (e) => r(e.code)));
  ws.close(4000, "bye");
  out.close = await closed;
  return out;
}
"""


async def test_chromium_websocket_with_compression(node_factory: Any, tmp_path: Any) -> None:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("Debian chromium is not installed (scripts/provision.sh installs it)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("playwright is not installed (test extra)")
    node = await node_factory(ws={"echo": True})
    port = node.services["http_port"]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=exe,
                                                              args=CHROMIUM_ARGS, headless=True)
        try:
            page = await browser.new_page()
            await page.goto(f"http://127.0.0.1:{port}/healthz")
            out = await page.evaluate(SCRIPT, f"ws://127.0.0.1:{port}/ws/echo")
        finally:
            await browser.close()
    assert out["extensions"].startswith("permessage-deflate"), out
    assert out["results"] == [True, True, True, True]
    assert out["close"] == 4000
