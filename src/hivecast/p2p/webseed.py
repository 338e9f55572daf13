"""Web seeds (BEP 19): fetch pieces nobody in the swarm has from plain HTTP URLs with Range requests.

URL rules: a multi-file torrent's file is at URL/NAME/PATH when URL ends with "/" (our node's
`/vod/` seeds resolve to `/vod/ID/...`); a single file at URL/NAME, or at URL itself when URL
names the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from hivecast.p2p.errors import P2PError, TrackerError
from hivecast.p2p.httpclient import http_request
from hivecast.p2p.metainfo import InfoDict, Layout


@dataclass(eq=False)
class WebSeed:
    url: str
    failures: int = 0
    retry_at: float = 0.0

    def file_url(self, info: InfoDict, path: tuple[str, ...]) -> str:
        if info.multi_file:
            base = self.url if self.url.endswith("/") else self.url + "/"
            return base + "/".join(quote(p) for p in (info.name, *path))
        return self.url + quote(info.name) if self.url.endswith("/") else self.url

    async def fetch(self, info: InfoDict, layout: Layout, index: int, begin: int, length: int) -> bytes:
        """One piece range; pad files are zeros and never fetched."""
        out = bytearray()
        for span in layout.spans(index, begin, length):
            f = info.files[span.file_index]
            if f.pad:
                out += bytes(span.length)
                continue
            last = span.file_offset + span.length - 1
            try:
                status, body = await http_request(
                    self.file_url(info, f.path), headers={"Range": f"bytes={span.file_offset}-{last}"},
                    timeout=20.0, max_body=span.length)
            except TrackerError as exc:
                raise P2PError(f"web seed {self.url}: {exc}") from None
            if status == 200 and span.file_offset == 0 and len(body) == span.length:
                pass  # a server without ranges that returned exactly this whole (small) file
            elif status != 206 or len(body) != span.length:
                raise P2PError(f"web seed {self.url}: HTTP {status}, {len(body)} of {span.length} bytes")
            out += body
        return bytes(out)
