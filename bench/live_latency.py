"""Publish-to-picture latency of one live stream over HTTP-FLV, HLS (whole segments) and LL-HLS, in one run.

`hivecast serve` runs as its own process with its defaults (4 s segments, 0.5 s LL-HLS parts). This
process publishes the pre-encoded clip of bench/rtmp_fanout.py (1280x720 30 fps H.264 at about
4 Mbit/s + AAC, GOP 2 s), looped, over RTMP with our client at its real pace, remembering when each
video tag left (its RTMP timestamp is its identity). Three players read the same stream at once:

- HTTP-FLV: GET /live/NAME.flv; a picture is there when the last byte of its video tag arrived
  (the decoder has everything before it already).
- HLS: a standard player that ignores parts, reloading v0/index.m3u8 every `--poll-ms` (an eager
  player; real ones reload about once per target duration, which adds up to 4 s more). A picture is
  there when the first segment listing it has appeared and has been downloaded.
- LL-HLS: blocking playlist reloads (`_HLS_msn`/`_HLS_part` of the next part), each new part
  downloaded at once; a picture is there when the part carrying it has been downloaded.

Latency = arrival - departure per video frame, in decode order (everything a frame depends on
came before it). Player buffering policy (hls.js holds HLS 3 segments back, LL-HLS about 3 parts)
and encoder delay come on top. After the run every received frame is decoded with PyAV and
compared with the same frame decoded from the clip (hash of the luma plane): the pictures that
count are the published ones, bit for bit. fMP4 times are mapped to RTMP timestamps by that match.

    .venv/bin/python bench/live_latency.py [--seconds 30] [--poll-ms 100]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx

from hivecast.rtmp import flv
from hivecast.rtmp.chunk import AUDIO, DATA_AMF0, VIDEO
from hivecast.rtmp.client import RtmpClient

sys.path.insert(0, str(Path(__file__).parent))
from rtmp_fanout import CLIP, free_port, make_clip, wait_port

NAME = "lat"


@dataclass
class Clip:
    tags: list[flv.Tag]  # audio and video tags, sequence headers included, data tags dropped
    duration: int  # ms; the loop period
    hashes: dict[int, str]  # presentation time (ms, within the clip) -> luma hash


def luma_hash(frame: Any) -> str:
    plane = frame.to_ndarray(format="gray")
    return hashlib.blake2b(plane.tobytes(), digest_size=12).hexdigest()


def load_clip() -> Clip:
    make_clip()
    tags = [t for t in flv.TagReader(max_tag_size=16 << 20).feed(CLIP.read_bytes())
            if t.tag_type != DATA_AMF0 and not (t.tag_type == VIDEO and flv.parse_video(t.payload).end_of_sequence)]
    video = [t.timestamp for t in tags if t.tag_type == VIDEO and not flv.parse_video(t.payload).sequence_header]
    # RTMP times are whole milliseconds (33/34 ms apart at 30 fps): the loop period is the mean step on.
    duration = round(video[-1] + (video[-1] - video[0]) / (len(video) - 1))
    hashes: dict[int, str] = {}
    with av.open(str(CLIP)) as container:
        for frame in container.decode(video=0):
            hashes[round(frame.time * 1000) % duration] = luma_hash(frame)
    if len(set(hashes.values())) != len(hashes):
        raise SystemExit("the clip has repeated pictures; frames cannot be identified by their content")
    return Clip(tags, duration, hashes)


async def publish(url: str, clip: Clip, sent: dict[int, float], stop: asyncio.Event) -> None:
    """Loop the clip at real pace; sequence headers go once, looped tags keep rising timestamps."""
    client = await RtmpClient.open(url)
    await client.publish()
    start = time.monotonic()
    loop = 0
    while not stop.is_set():
        for tag in clip.tags:
            is_header = (tag.tag_type == VIDEO and flv.parse_video(tag.payload).sequence_header) or (
                tag.tag_type == AUDIO and flv.parse_audio(tag.payload).sequence_header)
            if is_header and loop:
                continue
            ts = tag.timestamp + loop * clip.duration
            delay = start + ts / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if stop.is_set():
                break
            client.send_media(tag.tag_type, ts, tag.payload)
            await client.flush()
            if tag.tag_type == VIDEO and not is_header:
                sent.setdefault(ts, time.monotonic())
        loop += 1
    await client.close()


@dataclass
class FlvResult:
    arrivals: dict[int, float] = field(default_factory=dict)  # RTMP dts (ms) -> arrival
    tags: list[flv.Tag] = field(default_factory=list)


async def read_flv(url: str, out: FlvResult, stop: asyncio.Event) -> None:
    reader = flv.TagReader(max_tag_size=16 << 20)
    async with httpx.AsyncClient(timeout=10) as http, http.stream("GET", url) as resp:
        async for chunk in resp.aiter_raw():
            now = time.monotonic()
            for tag in reader.feed(chunk):
                if tag.tag_type == VIDEO:
                    out.tags.append(tag)
                    if not flv.parse_video(tag.payload).sequence_header:
                        out.arrivals.setdefault(tag.timestamp, now)
            if stop.is_set():
                return


@dataclass
class Fetched:
    """fMP4 media downloaded by an HLS player: one segment or one part, and when it was complete."""

    uri: str
    data: bytes
    arrival: float


@dataclass
class HlsResult:
    init: bytes = b""
    pieces: list[Fetched] = field(default_factory=list)


SEGMENT_RE = re.compile(r"#EXTINF:[^\n]*\n(?:#[^\n]*\n)*([^#\n][^\n]*)")
PART_RE = re.compile(r'#EXT-X-PART:[^\n]*URI="([^"]+)"')
MAP_RE = re.compile(r'#EXT-X-MAP:URI="([^"]+)"')


def part_position(uri: str) -> tuple[int, int]:
    m = re.search(r"seg-(\d+)\.(\d+)\.m4s", uri)
    if m is None:
        raise ValueError(f"unexpected part URI {uri}")
    return int(m.group(1)), int(m.group(2))


async def fetch(http: httpx.AsyncClient, base: str, uri: str) -> Fetched:
    r = await http.get(base + uri)
    r.raise_for_status()
    return Fetched(uri, r.content, time.monotonic())


async def ensure_init(http: httpx.AsyncClient, base: str, playlist: str, out: HlsResult) -> None:
    if not out.init:
        m = MAP_RE.search(playlist)
        if m:
            out.init = (await fetch(http, base, m.group(1))).data


async def read_hls(base: str, out: HlsResult, poll: float, stop: asyncio.Event) -> None:
    """A standard HLS player: whole segments, found by reloading the playlist."""
    seen: set[str] | None = None
    async with httpx.AsyncClient(timeout=10) as http:
        while not stop.is_set():
            text = (await http.get(base + "index.m3u8")).text
            await ensure_init(http, base, text, out)
            listed = SEGMENT_RE.findall(text)
            if seen is None:
                seen = set(listed)  # already there before we looked: when they appeared is unknown
            for uri in listed:
                if uri not in seen:
                    seen.add(uri)
                    out.pieces.append(await fetch(http, base, uri))
            await asyncio.sleep(poll)


async def read_llhls(base: str, out: HlsResult, stop: asyncio.Event) -> None:
    """An LL-HLS player: blocking reload for the next part, then that part (and any it missed)."""
    async with httpx.AsyncClient(timeout=20) as http:
        text = (await http.get(base + "index.m3u8")).text
        parts = PART_RE.findall(text)
        seen = set(parts)
        msn, index = part_position(parts[-1])
        while not stop.is_set():
            r = await http.get(base + "index.m3u8", params={"_HLS_msn": msn, "_HLS_part": index + 1})
            if r.status_code != 200:  # 503: the playlist did not advance in time; ask again
                await asyncio.sleep(0.1)
                continue
            await ensure_init(http, base, r.text, out)
            for uri in PART_RE.findall(r.text):
                if uri not in seen:
                    seen.add(uri)
                    out.pieces.append(await fetch(http, base, uri))
                    msn, index = part_position(uri)


# -- after the run: decode, identify, measure --------------------------------------------------------
def fmp4_packets(init: bytes, media: bytes) -> list[tuple[int, bool]]:
    """(dts in ms, keyframe) of the video samples of one fMP4 fragment, without decoding."""
    with av.open(io.BytesIO(init + media), format="mp4") as c:
        s = c.streams.video[0]
        tb = s.time_base or Fraction(1, 90000)
        return [(round(float(p.dts * tb) * 1000), p.is_keyframe) for p in c.demux(s) if p.dts is not None]


def fmp4_frames(init: bytes, media: bytes) -> list[tuple[int, str]]:
    """(pts in ms, luma hash) of every picture decoded from init + the concatenated fragments."""
    with av.open(io.BytesIO(init + media), format="mp4") as c:
        return [(round(f.time * 1000), luma_hash(f)) for f in c.decode(video=0)]


def flv_frames(tags: list[flv.Tag]) -> list[tuple[int, str]]:
    ctx: Any = None
    frames: list[tuple[int, str]] = []
    for tag in tags:
        pkt = flv.parse_video(tag.payload)
        if pkt.sequence_header:
            ctx = av.CodecContext.create("h264", "r")
            ctx.extradata = pkt.data
            continue
        if ctx is None:
            continue
        packet = av.Packet(pkt.data)
        packet.pts, packet.dts = tag.timestamp + pkt.composition_time, tag.timestamp
        packet.time_base = Fraction(1, 1000)
        for frame in ctx.decode(packet):
            frames.append((int(frame.pts), luma_hash(frame)))
    return frames


@dataclass
class Report:
    latencies: list[float]
    frames: int  # pictures decoded
    matched: int  # of which equal the published picture at that time


def check(frames: list[tuple[int, str]], clip: Clip, offset: int) -> int:
    return sum(1 for pts, h in frames if clip.hashes.get((pts + offset) % clip.duration) == h)


def find_offset(frames: list[tuple[int, str]], clip: Clip) -> int:
    """RTMP time minus fMP4 time, from the first decoded picture found in the clip (|offset| < loop/2)."""
    by_hash = {h: pts for pts, h in clip.hashes.items()}
    for pts, h in frames:
        if h in by_hash:
            off = (by_hash[h] - pts) % clip.duration
            return off - clip.duration if off > clip.duration // 2 else off
    raise SystemExit("no received picture matches the clip")


def report_flv(res: FlvResult, sent: dict[int, float], clip: Clip) -> Report:
    frames = flv_frames(res.tags)
    lat = [res.arrivals[ts] - sent[ts] for ts in res.arrivals if ts in sent]
    return Report(lat, len(frames), check(frames, clip, 0))


def report_hls(res: HlsResult, sent: dict[int, float], clip: Clip) -> Report:
    if not res.pieces:
        return Report([], 0, 0)
    # Pieces were fetched in order and are contiguous; decoding starts at the first keyframe.
    frames = fmp4_frames(res.init, b"".join(p.data for p in res.pieces))
    offset = find_offset(frames, clip)
    lat: list[float] = []
    for piece in res.pieces:
        for dts, _ in fmp4_packets(res.init, piece.data):
            if dts + offset in sent:
                lat.append(piece.arrival - sent[dts + offset])
    return Report(lat, len(frames), check(frames, clip, offset))


def stats(values: list[float]) -> tuple[float, float]:
    ms = sorted(v * 1000 for v in values)
    return statistics.median(ms), ms[max(0, int(len(ms) * 0.95) - 1)]


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=30.0, help="measuring window (after a warm-up)")
    ap.add_argument("--warmup", type=float, default=6.0)
    ap.add_argument("--poll-ms", type=float, default=100.0, help="HLS playlist reload interval")
    args = ap.parse_args()
    clip = load_clip()
    http, rtmp = free_port(), free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hivecast-live-latency-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HIVECAST_")}
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hivecast", "serve", "--host", "127.0.0.1", "--http-port", str(http), "--rtsp-port",
        str(free_port()), "--rtmp-port", str(rtmp), "--open-publish", "--log-level", "warning", "--data-dir",
        str(workdir / "data"), env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    sent: dict[int, float] = {}
    flv_res, hls_res, ll_res = FlvResult(), HlsResult(), HlsResult()
    try:
        await wait_port(rtmp)
        stop_pub, stop_read = asyncio.Event(), asyncio.Event()
        pub = asyncio.create_task(publish(f"rtmp://127.0.0.1:{rtmp}/live/{NAME}", clip, sent, stop_pub))
        await asyncio.sleep(args.warmup)  # a segment or two, so both HLS players start on a listed window
        base = f"http://127.0.0.1:{http}/live/{NAME}/v0/"
        readers = [asyncio.create_task(read_flv(f"http://127.0.0.1:{http}/live/{NAME}.flv", flv_res, stop_read)),
                   asyncio.create_task(read_hls(base, hls_res, args.poll_ms / 1000, stop_read)),
                   asyncio.create_task(read_llhls(base, ll_res, stop_read))]
        await asyncio.sleep(args.seconds)
        stop_read.set()
        # Let the players take what was published up to now (the open HLS segment needs its keyframe).
        await asyncio.sleep(5)
        stop_pub.set()
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await pub
    finally:
        server.terminate()
        await server.wait()
    reports = {"HTTP-FLV": report_flv(flv_res, sent, clip), "HLS": report_hls(hls_res, sent, clip),
               "LL-HLS": report_hls(ll_res, sent, clip)}
    print(f"clip {CLIP.name}: 1280x720 30 fps, GOP 2 s; node defaults (4 s segments, 0.5 s parts); "
          f"HLS reload every {args.poll_ms:.0f} ms; {args.seconds:.0f} s window")
    medians: dict[str, float] = {}
    for name, rep in reports.items():
        if not rep.latencies:
            print(f"{name:8}: no samples")
            continue
        med, p95 = stats(rep.latencies)
        medians[name] = med
        print(f"{name:8}: median {med:7.1f} ms, p95 {p95:7.1f} ms, max {max(rep.latencies) * 1000:7.1f} ms "
              f"({len(rep.latencies)} frames; decoded {rep.frames}, {rep.matched} equal to the published picture)")
    if "HTTP-FLV" in medians:
        for name in ("HLS", "LL-HLS"):
            if name in medians:
                print(f"{name} / HTTP-FLV median: {medians[name] / medians['HTTP-FLV']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
