"""HLS (RFC 8216) and DASH (SegmentTemplate with $Number$ and SegmentTimeline) read into one model.

Only what an ABR client needs: per variant its bandwidth, size, init segment and media segments
with durations. Bounded: playlists over `MAX_TEXT` characters or with more than `MAX_SEGMENTS`
segments are refused with ManifestError.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from urllib.parse import urljoin

MAX_TEXT = 4 * 1024 * 1024
MAX_SEGMENTS = 100_000
MAX_VARIANTS = 64


class ManifestError(ValueError):
    pass


@dataclass(slots=True)
class SegmentRef:
    url: str
    duration: float
    number: int


@dataclass(slots=True)
class Variant:
    id: str
    bandwidth: int
    width: int = 0
    height: int = 0
    playlist_url: str = ""  # HLS media playlist (reloaded when live)
    init_url: str | None = None
    segments: list[SegmentRef] = field(default_factory=list)
    audio_group: str | None = None


@dataclass(slots=True)
class Presentation:
    kind: str  # "hls" | "dash"
    variants: list[Variant]  # video (or audio-only) variants, lowest bandwidth first
    audio: Variant | None = None  # separate audio rendition, if any
    live: bool = False
    target_duration: float = 4.0


_ATTR = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^",]*)')


def parse_attributes(text: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR.findall(text)}


def _check(text: str) -> None:
    if len(text) > MAX_TEXT:
        raise ManifestError("manifest too large")


def parse_hls_multivariant(text: str, url: str) -> tuple[list[Variant], dict[str, str]]:
    """Variants and audio group URIs (group id -> URL) of a multivariant playlist."""
    _check(text)
    if not text.startswith("#EXTM3U"):
        raise ManifestError("not an HLS playlist (no #EXTM3U)")
    variants: list[Variant] = []
    audio: dict[str, str] = {}
    pending: dict[str, str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-STREAM-INF:"):
            pending = parse_attributes(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = parse_attributes(line.split(":", 1)[1])
            if attrs.get("TYPE") == "AUDIO" and "URI" in attrs and attrs.get("GROUP-ID") not in audio:
                audio[attrs.get("GROUP-ID", "")] = urljoin(url, attrs["URI"])
        elif line and not line.startswith("#") and pending is not None:
            try:
                bandwidth = int(pending.get("BANDWIDTH", "0"))
            except ValueError:
                raise ManifestError("bad BANDWIDTH") from None
            width = height = 0
            if "x" in pending.get("RESOLUTION", ""):
                w, _, h = pending["RESOLUTION"].partition("x")
                if w.isdigit() and h.isdigit():
                    width, height = int(w), int(h)
            variants.append(Variant(str(len(variants)), bandwidth, width, height, urljoin(url, line),
                                    audio_group=pending.get("AUDIO")))
            pending = None
            if len(variants) > MAX_VARIANTS:
                raise ManifestError("too many variants")
    return sorted(variants, key=lambda v: v.bandwidth), audio


def parse_hls_media(text: str, url: str, variant: Variant) -> tuple[bool, float]:
    """Fill `variant` from a media playlist; returns (live, target duration)."""
    _check(text)
    if not text.startswith("#EXTM3U"):
        raise ManifestError("not an HLS playlist (no #EXTM3U)")
    sequence = 0
    duration: float | None = None
    target = 4.0
    ended = False
    segments: list[SegmentRef] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = _int(line.split(":", 1)[1])
        elif line.startswith("#EXT-X-TARGETDURATION:"):
            target = float(_int(line.split(":", 1)[1]))
        elif line.startswith("#EXT-X-MAP:"):
            attrs = parse_attributes(line.split(":", 1)[1])
            if "URI" in attrs:
                variant.init_url = urljoin(url, attrs["URI"])
        elif line.startswith("#EXTINF:"):
            value = line.split(":", 1)[1].split(",", 1)[0]
            try:
                duration = float(value)
            except ValueError:
                raise ManifestError(f"bad EXTINF {value!r}") from None
            if not 0 <= duration <= 3600:
                raise ManifestError("EXTINF out of range")
        elif line.startswith("#EXT-X-ENDLIST"):
            ended = True
        elif line and not line.startswith("#") and duration is not None:
            segments.append(SegmentRef(urljoin(url, line), duration, sequence + len(segments)))
            duration = None
            if len(segments) > MAX_SEGMENTS:
                raise ManifestError("too many segments")
    variant.segments = segments
    return not ended, target


def _int(value: str) -> int:
    try:
        n = int(value.strip())
    except ValueError:
        raise ManifestError(f"bad integer {value!r}") from None
    if n < 0:
        raise ManifestError("negative value")
    return n


_DUR = re.compile(r"^P(?:(\d+(?:\.\d+)?)D)?(?:T(?:(\d+(?:\.\d+)?)H)?(?:(\d+(?:\.\d+)?)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def parse_duration(text: str) -> float:
    m = _DUR.match(text.strip())
    if not m:
        raise ManifestError(f"bad xs:duration {text!r}")
    d, h, mi, s = (float(x) if x else 0.0 for x in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def _attr_int(el: ET.Element, name: str, default: int) -> int:
    value = el.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ManifestError(f"bad integer @{name}={value!r}") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def parse_dash(text: str, url: str) -> Presentation:
    _check(text)
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ManifestError(f"bad MPD XML: {exc}") from None
    if _local(root.tag) != "MPD":
        raise ManifestError("not an MPD")
    live = root.get("type") == "dynamic"
    periods = [p for p in root if _local(p.tag) == "Period"]
    if not periods:
        raise ManifestError("MPD without a Period")
    period = periods[-1] if live else periods[0]
    videos: list[Variant] = []
    audio: Variant | None = None
    target = 0.0
    for aset in period:
        if _local(aset.tag) != "AdaptationSet":
            continue
        kind = aset.get("contentType") or (aset.get("mimeType") or "").split("/")[0]
        for rep in aset:
            if _local(rep.tag) != "Representation":
                continue
            v = Variant(rep.get("id", ""), _attr_int(rep, "bandwidth", 0),
                        _attr_int(rep, "width", 0), _attr_int(rep, "height", 0))
            tmpl = next((c for c in rep if _local(c.tag) == "SegmentTemplate"), None)
            if tmpl is None:
                tmpl = next((c for c in aset if _local(c.tag) == "SegmentTemplate"), None)
            if tmpl is None:
                raise ManifestError("only SegmentTemplate MPDs are supported")
            target = max(target, _fill_template(v, tmpl, url))
            if kind == "audio":
                audio = audio or v
            else:
                videos.append(v)
            if len(videos) > MAX_VARIANTS:
                raise ManifestError("too many representations")
    if not videos and audio is not None:
        videos, audio = [audio], None
    return Presentation("dash", sorted(videos, key=lambda v: v.bandwidth), audio, live, target or 4.0)


def _template_url(template: str, rep_id: str, number: int | None, base: str) -> str:
    out = template.replace("$RepresentationID$", rep_id)
    if number is not None:
        out = re.sub(r"\$Number(%0(\d+)d)?\$", lambda m: str(number).zfill(int(m.group(2) or 0)), out)
    return urljoin(base, out)


def _fill_template(v: Variant, tmpl: ET.Element, base: str) -> float:
    timescale = _attr_int(tmpl, "timescale", 1)
    if timescale <= 0:
        raise ManifestError("bad timescale")
    start = _attr_int(tmpl, "startNumber", 1)
    media = tmpl.get("media")
    if media is None:
        raise ManifestError("SegmentTemplate without @media")
    if tmpl.get("initialization"):
        v.init_url = _template_url(tmpl.get("initialization", ""), v.id, None, base)
    timeline = next((c for c in tmpl if _local(c.tag) == "SegmentTimeline"), None)
    longest = 0.0
    number = start
    if timeline is None:
        raise ManifestError("SegmentTemplate without SegmentTimeline")
    for s in timeline:
        if _local(s.tag) != "S":
            continue
        d = _attr_int(s, "d", 0)
        r = _attr_int(s, "r", 0)
        if d <= 0 or r < 0 or r > MAX_SEGMENTS:
            raise ManifestError("bad S element")
        for _ in range(r + 1):
            v.segments.append(SegmentRef(_template_url(media, v.id, number, base), d / timescale, number))
            number += 1
            if len(v.segments) > MAX_SEGMENTS:
                raise ManifestError("too many segments")
        longest = max(longest, d / timescale)
    return longest
