"""The node serves the built web UI: index at `/` (revalidated), hashed assets (immutable, JS MIME type)."""

from __future__ import annotations

import re

import httpx

from hivecast.node.web import STATIC
from tests.conftest import NodeFactory, node_url


async def test_index_and_assets(node_factory: NodeFactory) -> None:
    node = await node_factory()
    async with httpx.AsyncClient(timeout=10) as client:
        index = await client.get(node_url(node, "/"))
        assert index.status_code == 200
        assert index.headers["content-type"].startswith("text/html")
        assert index.headers["cache-control"] == "no-cache"
        again = await client.get(node_url(node, "/"), headers={"if-none-match": index.headers["etag"]})
        assert again.status_code == 304
        assert (await client.head(node_url(node, "/"))).status_code == 200
        assert (await client.post(node_url(node, "/"))).status_code == 405
        scripts = re.findall(r'src="(/assets/[^"]+\.js)"', index.text)
        styles = re.findall(r'href="(/assets/[^"]+\.css)"', index.text)
        assert scripts and styles
        js = await client.get(node_url(node, scripts[0]))
        assert js.status_code == 200 and js.headers["content-type"] == "text/javascript"
        assert "immutable" in js.headers["cache-control"]
        css = await client.get(node_url(node, styles[0]))
        assert css.headers["content-type"].startswith("text/css")
        assert (await client.get(node_url(node, "/assets/nope.js"))).status_code == 404


def test_built_ui_is_in_the_package() -> None:
    # `hivecast serve` needs no Node.js: the Vite build output is committed inside the package.
    assert (STATIC / "index.html").is_file()
    assert any(p.suffix == ".js" for p in (STATIC / "assets").iterdir())
