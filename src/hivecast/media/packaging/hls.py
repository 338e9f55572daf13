"""HLS playlists (RFC 8216bis, with the Low-Latency extensions), written from the segment model.

Pure functions: a `Presentation` or `Rendition` in, playlist text out. The node decides when a
playlist is requested (blocking reload); these functions only decide what it says.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hivecast.media.packaging.model import Part, Presentation, Rendition, Segment

AUDIO_GROUP = "audio"
VERSION = 9  # EXT-X-SKIP and EXT-X-PART need 9; fMP4 with EXT-X-MAP needs 6+


def _q(value: str) -> str:
    # quoted-string (4.2): no CR, LF or double quote inside.
    return '"' + value.replace('"', "'").replace("\r", " ").replace("\n", " ") + '"'


def _dt(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _secs(x: float) -> str:
    return f"{x:.5f}".rstrip("0").rstrip(".") if x else "0"


def multivariant(p: Presentation) -> str:
    """The multivariant playlist: one EXT-X-STREAM-INF per video rendition, audio as a group."""
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    audio = p.audio
    for i, a in enumerate(audio):
        attrs = [
            "TYPE=AUDIO",
            f"GROUP-ID={_q(AUDIO_GROUP)}",
            f"NAME={_q(a.id)}",
            f"LANGUAGE={_q(a.language)}",
            f"DEFAULT={'YES' if i == 0 else 'NO'}",
            "AUTOSELECT=YES",
        ]
        if a.channels:
            attrs.append(f"CHANNELS={_q(str(a.channels))}")
        attrs.append(f"URI={_q(a.playlist_uri)}")
        lines.append("#EXT-X-MEDIA:" + ",".join(attrs))
    # A variant's BANDWIDTH covers everything played with it: its video plus the (largest) audio.
    audio_peak = max((a.bandwidth for a in audio), default=0)
    audio_avg = max((a.average_bandwidth for a in audio), default=0)
    audio_codecs = audio[0].codecs if audio else ""
    variants = p.video or audio
    for v in sorted(variants, key=lambda r: r.bandwidth):
        is_video = v.kind == "video"
        bandwidth = v.bandwidth + (audio_peak if is_video else 0)
        average = v.average_bandwidth + (audio_avg if is_video else 0)
        codecs = ",".join(c for c in (v.codecs, audio_codecs if is_video else "") if c)
        attrs = [f"BANDWIDTH={max(1, bandwidth)}"]
        if average:
            attrs.append(f"AVERAGE-BANDWIDTH={average}")
        if codecs:
            attrs.append(f"CODECS={_q(codecs)}")
        if is_video and v.width and v.height:
            attrs.append(f"RESOLUTION={v.width}x{v.height}")
        if is_video and v.frame_rate:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        if is_video and audio:
            attrs.append(f"AUDIO={_q(AUDIO_GROUP)}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attrs))
        lines.append(v.playlist_uri)
    return "\n".join(lines) + "\n"


def target_duration(r: Rendition, configured: float, *, live: bool = False) -> int:
    """EXT-X-TARGETDURATION: every EXTINF rounded to the nearest integer must fit (4.4.3.1).

    Live playlists never lower it below the configured target, so it stays put between reloads.
    """
    longest = max((r.seconds(s.duration) for s in r.segments), default=configured)
    floor = math.ceil(configured - 1e-9) if live else 1
    return max(1, round(longest), floor)


def media_playlist(p: Presentation, r: Rendition, *, skip: bool = False) -> str:
    """A media playlist; live ones carry the window given in `r.segments` (oldest first).

    `skip=True` answers an `_HLS_skip=YES` delta request: older segments are replaced by EXT-X-SKIP.
    """
    target = target_duration(r, p.target_duration, live=p.live)
    ll = p.live and p.part_target > 0 and not p.ended
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{VERSION}", f"#EXT-X-TARGETDURATION:{target}"]
    first = r.segments[0].number if r.segments else 0
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{first}")
    if p.live:
        if r.discontinuity_sequence:
            lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{r.discontinuity_sequence}")
    else:
        lines.append("#EXT-X-PLAYLIST-TYPE:VOD")
    lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    skip_until = 6 * target
    if ll:
        part_hold = 3 * p.part_target
        lines.append(
            f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL={_secs(skip_until)},"
            f"PART-HOLD-BACK={_secs(part_hold)}"
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={_secs(p.part_target)}")
    elif p.live and not p.ended:
        lines.append(f"#EXT-X-SERVER-CONTROL:CAN-SKIP-UNTIL={_secs(skip_until)},HOLD-BACK={_secs(3 * target)}")

    segments = r.segments
    skipped = 0
    if skip and p.live and not p.ended:
        # Skip whole segments older than CAN-SKIP-UNTIL from the live edge (6.2.5.1), never across
        # a discontinuity or an init change (the client needs those tags).
        edge = sum(r.seconds(s.duration) for s in segments)
        acc = 0.0
        for i, seg in enumerate(segments):
            if edge - acc - r.seconds(seg.duration) < skip_until:
                break
            if seg.discontinuity or (i > 0 and seg.init_uri != segments[i - 1].init_uri):
                break
            acc += r.seconds(seg.duration)
            skipped = i + 1
        if skipped:
            lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}")
    current_map: str | None = None
    if skipped:
        current_map = segments[skipped - 1].init_uri or r.init_uri
        if current_map:
            lines.append(f"#EXT-X-MAP:URI={_q(current_map)}")
    # Parts are listed only for the last few segments (the spec asks for at least the last 3 target
    # durations' worth); older segments appear whole.
    part_horizon = len(segments) - 3
    for idx, seg in enumerate(segments[skipped:], start=skipped):
        if not seg.complete and not (ll and seg.parts):
            continue  # nothing of it can be listed yet
        init = seg.init_uri or r.init_uri
        if seg.discontinuity and idx > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if init != current_map and init:  # MPEG-TS segments have no init segment
            lines.append(f"#EXT-X-MAP:URI={_q(init)}")
            current_map = init
        if seg.program_date_time is not None and (p.live or idx == 0):
            lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_dt(seg.program_date_time)}")
        if ll and idx >= part_horizon:
            lines.extend(_part_line(r, part) for part in seg.parts)
        if seg.complete:
            lines.append(f"#EXTINF:{r.seconds(seg.duration):.5f},")
            lines.append(seg.uri)
    if ll and r.preload_hint:
        lines.append(f"#EXT-X-PRELOAD-HINT:TYPE=PART,URI={_q(r.preload_hint)}")
    if not p.live or p.ended:
        lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"


def _part_line(r: Rendition, part: Part) -> str:
    line = f"#EXT-X-PART:DURATION={r.seconds(part.duration):.5f},URI={_q(part.uri)}"
    if part.independent:
        line += ",INDEPENDENT=YES"
    return line


def last_position(r: Rendition) -> tuple[int, int]:
    """(media sequence number, part index) of the newest thing in the playlist, for blocking reload.

    A complete segment without parts counts as its last part; -1 as the part index means "none yet".
    """
    if not r.segments:
        return -1, -1
    last: Segment = r.segments[-1]
    if last.complete and not last.parts:
        return last.number, 0
    return last.number, len(last.parts) - 1
