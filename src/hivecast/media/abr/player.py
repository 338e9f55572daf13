"""The playback loop: fetch on the media clock, keep a buffer model, pick renditions, report QoE.

Nothing is decoded: a segment counts as buffered media once its bytes (video and, if separate, the
matching audio) have arrived. Playback starts when `startup_buffer` seconds are buffered, drains the
buffer in real time, and stalls when it runs dry (resuming after `resume_buffer` seconds).
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from hivecast.media.abr.estimator import ThroughputEstimator
from hivecast.media.abr.fetcher import Fetcher, FetchError, RateSchedule
from hivecast.media.abr.manifest import (
    ManifestError,
    Presentation,
    Variant,
    parse_dash,
    parse_hls_media,
    parse_hls_multivariant,
)
from hivecast.media.abr.rules import BolaParams, choose


class PlayerError(Exception):
    pass


def parse_rate(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:bit/s|bps)?\s*", text)
    if not m:
        raise PlayerError(f"bad rate {text!r}: use e.g. 8M or 500k")
    return float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]


@dataclass(slots=True)
class SegmentLog:
    number: int
    variant: int  # index into the variants, lowest bandwidth first
    bandwidth: int
    requested: float  # player clock (s since start)
    seconds: float  # download time
    bytes: int
    buffer: float  # buffer level when requested


@dataclass(slots=True)
class Report:
    url: str
    startup_time: float = 0.0
    rebuffers: int = 0
    rebuffer_time: float = 0.0
    longest_stall: float = 0.0
    average_bitrate: float = 0.0
    switches: int = 0
    played: float = 0.0
    segments: list[SegmentLog] = field(default_factory=list)
    switch_log: list[tuple[float, int, int]] = field(default_factory=list)  # (time, from, to)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (f"startup {self.startup_time:.2f} s, rebuffers {self.rebuffers} ({self.rebuffer_time:.2f} s, "
                f"longest {self.longest_stall:.2f} s), average bitrate {self.average_bitrate / 1e6:.2f} Mbit/s, "
                f"switches {self.switches}, played {self.played:.1f} s in {len(self.segments)} segments")


class _Playback:
    """The buffer model on the player's clock."""

    def __init__(self, startup: float, resume: float) -> None:
        self.startup = startup
        self.resume = resume
        self.position = 0.0
        self.buffered = 0.0  # media seconds downloaded
        self.playing = False
        self.started_at: float | None = None
        self.stall_since: float | None = None
        self.last = 0.0
        self.stalls: list[float] = []
        self.ended = False

    def advance(self, now: float) -> None:
        if self.playing:
            reach = self.position + (now - self.last)
            if reach >= self.buffered and not self.ended:
                # Ran dry at the moment the position met the buffered end.
                self.stall_since = self.last + (self.buffered - self.position)
                self.position = self.buffered
                self.playing = False
            else:
                self.position = min(reach, self.buffered)
        self.last = now

    def add(self, seconds: float, now: float) -> None:
        self.advance(now)
        self.buffered += seconds
        level = self.buffered - self.position
        if not self.playing:
            if self.started_at is None:
                if level >= self.startup or self.ended:
                    self.started_at = now
                    self.playing = True
            elif level >= self.resume or self.ended:
                assert self.stall_since is not None
                self.stalls.append(now - self.stall_since)
                self.stall_since = None
                self.playing = True

    def level(self, now: float) -> float:
        self.advance(now)
        return self.buffered - self.position


async def load(fetcher: Fetcher, url: str) -> Presentation:
    resp = await fetcher.get(url)
    if resp.status != 200:
        raise PlayerError(f"{url}: HTTP {resp.status}")
    text = resp.body.decode("utf-8", "replace")
    try:
        if text.lstrip().startswith("<"):
            return parse_dash(text, url)
        variants, audio_groups = parse_hls_multivariant(text, url)
        if not variants:  # a media playlist given directly
            v = Variant("0", 0, playlist_url=url)
            live, target = parse_hls_media(text, url, v)
            return Presentation("hls", [v], None, live, target)
        live, target = False, 4.0
        for v in variants:
            r = await fetcher.get(v.playlist_url)
            live, target = parse_hls_media(r.body.decode("utf-8", "replace"), v.playlist_url, v)
        audio = None
        group = variants[0].audio_group
        if group and group in audio_groups:
            audio = Variant("audio", 0, playlist_url=audio_groups[group])
            r = await fetcher.get(audio.playlist_url)
            parse_hls_media(r.body.decode("utf-8", "replace"), audio.playlist_url, audio)
        return Presentation("hls", variants, audio, live, target)
    except ManifestError as exc:
        raise PlayerError(f"{url}: {exc}") from None


async def play(url: str, *, max_media_seconds: float | None = None, rate_bps: float | None = None,
               rate: RateSchedule | None = None, speed: float = 1.0, buffer_target: float = 12.0,
               startup_buffer: float | None = None) -> Report:
    t0 = time.monotonic()

    def clock() -> float:
        return (time.monotonic() - t0) * speed

    schedule = rate if rate is not None else ((lambda _t: rate_bps) if rate_bps else None)
    fetcher = Fetcher(rate=schedule, clock=clock, speed=speed)
    report = Report(url)
    try:
        try:
            pres = await load(fetcher, url)
        except FetchError as exc:
            raise PlayerError(str(exc)) from None
        await _session(fetcher, pres, report, clock, speed, max_media_seconds, buffer_target, startup_buffer)
    finally:
        await fetcher.close()
    return report


async def _session(fetcher: Fetcher, pres: Presentation, report: Report, clock: Any, speed: float,
                   max_media: float | None, buffer_target: float, startup_buffer: float | None) -> None:
    variants = pres.variants
    if not variants or not variants[0].segments:
        raise PlayerError("no segments to play")
    seg_len = max(s.duration for s in variants[0].segments)
    target = max(buffer_target, 2 * seg_len)
    # Throughput decides until half the target is buffered (BOLA alone would start at the bottom).
    params = BolaParams(segment=seg_len, buffer_target=target, min_buffer=max(seg_len, target / 2))
    estimator = ThroughputEstimator()
    pb = _Playback(startup=startup_buffer or seg_len, resume=seg_len)
    inits: dict[str, bytes] = {}
    # Positions are segment numbers (media sequence / $Number$), which survive live playlist reloads.
    numbers = [s.number for s in variants[0].segments]
    next_number = numbers[max(0, len(numbers) - 3)] if pres.live else numbers[0]
    current: int | None = None
    weighted = 0.0
    media = 0.0
    while True:
        if max_media is not None and media >= max_media:
            break
        last_number = min(v.segments[-1].number for v in variants if v.segments) if all(
            v.segments for v in variants) else -1
        if next_number > last_number:
            if not pres.live:
                break
            await asyncio.sleep(max(0.2, pres.target_duration / 4) / speed)
            pres = await _reload(fetcher, report.url)
            variants = pres.variants
            continue
        first_number = max(v.segments[0].number for v in variants)
        if next_number < first_number:
            next_number = first_number  # aged out of the live window: jump ahead
        now = clock()
        level = pb.level(now)
        if level > params.buffer_target:
            await asyncio.sleep((level - params.buffer_target + 0.05) / speed)
            continue
        choice = choose([max(1, v.bandwidth) for v in variants], level, estimator.estimate(), params,
                        current=current)
        if current is not None and choice != current:
            report.switches += 1
            report.switch_log.append((round(now, 3), current, choice))
        current = choice
        v = variants[choice]
        seg = next(s for s in v.segments if s.number == next_number)
        if v.init_url and v.init_url not in inits:
            inits[v.init_url] = (await fetcher.get(v.init_url)).body
        jobs = [fetcher.get(seg.url)]
        audio = pres.audio
        audio_seg = next((s for s in audio.segments if s.number == next_number), None) if audio else None
        if audio is not None and audio_seg is not None:
            if audio.init_url and audio.init_url not in inits:
                inits[audio.init_url] = (await fetcher.get(audio.init_url)).body
            jobs.append(fetcher.get(audio_seg.url))
        started = clock()
        try:
            results = await asyncio.gather(*jobs)
        except FetchError as exc:
            raise PlayerError(str(exc)) from None
        next_number += 1
        if any(r.status != 200 for r in results):
            if pres.live:
                continue  # aged out between reload and request: skip it
            raise PlayerError(f"{seg.url}: HTTP {results[0].status}")
        elapsed = clock() - started
        nbytes = sum(len(r.body) for r in results)
        estimator.sample(nbytes, elapsed)
        report.segments.append(SegmentLog(seg.number, choice, v.bandwidth, round(started, 3), round(elapsed, 3),
                                          nbytes, round(level, 3)))
        if not pres.live and next_number > last_number:
            pb.ended = True
        pb.add(seg.duration, clock())
        weighted += v.bandwidth * seg.duration
        media += seg.duration
    pb.ended = True
    if pb.started_at is None:
        pb.add(0.0, clock())
    # Let playback run out (it cannot stall any more), then total up.
    report.startup_time = round(pb.started_at or 0.0, 3)
    report.rebuffers = len(pb.stalls)
    report.rebuffer_time = round(sum(pb.stalls), 3)
    report.longest_stall = round(max(pb.stalls, default=0.0), 3)
    report.average_bitrate = round(weighted / media) if media else 0.0
    report.played = round(media, 3)


async def _reload(fetcher: Fetcher, url: str) -> Presentation:
    try:
        return await load(fetcher, url)
    except FetchError as exc:
        raise PlayerError(str(exc)) from None
