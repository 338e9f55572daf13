"""DASH MPDs (ISO/IEC 23009-1, live profile) written from the segment model.

One AdaptationSet per kind, one Representation per rendition, SegmentTemplate with `$Number$` and a
SegmentTimeline (exact durations, so uneven GOPs are described as they are). Static for on demand,
dynamic for live with availabilityStartTime, minimumUpdatePeriod, timeShiftBufferDepth and UTCTiming.
Live streams get a new Period whenever the init segment changes (a publisher restart).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import UTC, datetime

from hivecast.media.packaging.model import Presentation, Rendition, Segment

NS = "urn:mpeg:dash:schema:mpd:2011"
PROFILE = "urn:mpeg:dash:profile:isoff-live:2011"
UTC_HTTP_ISO = "urn:mpeg:dash:utc:http-iso:2014"
UTC_DIRECT = "urn:mpeg:dash:utc:direct:2014"


def duration(seconds: float) -> str:
    """xs:duration with millisecond precision, e.g. PT30.033S."""
    seconds = max(0.0, seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    out = "PT"
    if hours >= 1:
        out += f"{int(hours)}H"
    if minutes >= 1:
        out += f"{int(minutes)}M"
    return out + f"{secs:.3f}S"


def iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class LiveTiming:
    """What a dynamic MPD needs beyond the segments; all wall-clock values are Unix seconds."""

    availability_start: float  # wall clock of media time 0
    publish_time: float
    time_shift_buffer: float  # seconds of window
    minimum_update_period: float
    utc_timing_url: str | None = None  # http-iso endpoint; the direct scheme is always added


def _timeline(parent: ET.Element, segments: list[Segment]) -> None:
    tl = ET.SubElement(parent, "SegmentTimeline")
    run: ET.Element | None = None
    repeat = 0
    expected = None
    last_d = None
    for seg in segments:
        if run is not None and seg.duration == last_d and seg.start == expected:
            repeat += 1
            run.set("r", str(repeat))
        else:
            run = ET.SubElement(tl, "S", t=str(seg.start), d=str(seg.duration))
            repeat = 0
        last_d = seg.duration
        expected = seg.start + seg.duration


def _representation(aset: ET.Element, r: Rendition, segments: list[Segment], init_uri: str,
                    pto: int) -> None:
    rep = ET.SubElement(aset, "Representation", id=r.id, bandwidth=str(max(1, r.bandwidth)), codecs=r.codecs)
    if r.kind == "video":
        if r.width and r.height:
            rep.set("width", str(r.width))
            rep.set("height", str(r.height))
        if r.frame_rate:
            rep.set("frameRate", _frame_rate(r.frame_rate))
        rep.set("sar", "1:1")
    else:
        if r.sample_rate:
            rep.set("audioSamplingRate", str(r.sample_rate))
        if r.channels:
            ET.SubElement(rep, "AudioChannelConfiguration",
                          schemeIdUri="urn:mpeg:dash:23003:3:audio_channel_configuration:2011",
                          value=str(r.channels))
    tmpl = ET.SubElement(
        rep, "SegmentTemplate",
        timescale=str(r.timescale),
        initialization=f"{r.id}/{init_uri}",
        media=f"{r.id}/{r.segment_pattern}",
        startNumber=str(segments[0].number if segments else 1),
    )
    if pto:
        tmpl.set("presentationTimeOffset", str(pto))
    _timeline(tmpl, segments)


def _frame_rate(fps: float) -> str:
    for den in (1, 1001):
        num = fps * den
        if abs(num - round(num)) < 0.01:
            return str(round(num)) if den == 1 else f"{round(num)}/{den}"
    return str(round(fps))


def _periods(r: Rendition, complete: list[Segment]) -> list[tuple[str, list[Segment]]]:
    """Consecutive segments sharing an init segment form a period."""
    groups: list[tuple[str, list[Segment]]] = []
    for seg in complete:
        init = seg.init_uri or r.init_uri
        if not groups or groups[-1][0] != init or seg.discontinuity:
            groups.append((init, []))
        groups[-1][1].append(seg)
    return groups


def mpd(p: Presentation, live: LiveTiming | None = None) -> str:
    dynamic = p.live and not p.ended and live is not None
    root = ET.Element("MPD", xmlns=NS, profiles=PROFILE, type="dynamic" if dynamic else "static")
    max_seg = max((r.seconds(s.duration) for r in p.renditions for s in r.segments if s.complete),
                  default=p.target_duration)
    root.set("minBufferTime", duration(max(p.target_duration, 1.0)))
    root.set("maxSegmentDuration", duration(max_seg))
    reference = p.video[0] if p.video else (p.renditions[0] if p.renditions else None)
    if dynamic:
        assert live is not None
        root.set("availabilityStartTime", iso(live.availability_start))
        root.set("publishTime", iso(live.publish_time))
        root.set("minimumUpdatePeriod", duration(live.minimum_update_period))
        root.set("timeShiftBufferDepth", duration(live.time_shift_buffer))
        root.set("suggestedPresentationDelay", duration(2 * p.target_duration))
    else:
        total = reference.seconds(reference.total_duration()) if reference else 0.0
        root.set("mediaPresentationDuration", duration(total))

    # Periods follow the reference rendition's init changes; every rendition is split the same way
    # by time, since a publisher restart changes all tracks together.
    ref_complete = [s for s in reference.segments if s.complete] if reference else []
    ref_periods = _periods(reference, ref_complete) if reference else [("", [])]
    if not ref_periods:
        ref_periods = [(reference.init_uri if reference else "", [])]
    # Static MPDs start the presentation at the first segment (a recording may begin mid-stream);
    # dynamic ones count from availabilityStartTime, which is media time 0.
    origin_s = 0.0
    if not dynamic and ref_periods and ref_periods[0][1] and reference is not None:
        origin_s = reference.seconds(ref_periods[0][1][0].start)
    for index, (_init, ref_segs) in enumerate(ref_periods):
        period = ET.SubElement(root, "Period", id=str(index))
        start_ticks = ref_segs[0].start if ref_segs else 0
        start_s = reference.seconds(start_ticks) if reference else 0.0
        period.set("start", duration(start_s - origin_s))
        end_s = (reference.seconds(ref_segs[-1].start + ref_segs[-1].duration)
                 if ref_segs and reference else None)
        for kind in ("video", "audio"):
            rends = [r for r in p.renditions if r.kind == kind]
            if not rends:
                continue
            aset = ET.SubElement(period, "AdaptationSet", id=str(0 if kind == "video" else 1),
                                 contentType=kind, mimeType=f"{kind}/mp4", segmentAlignment="true",
                                 startWithSAP="1")
            if kind == "video":
                aset.set("maxWidth", str(max(r.width for r in rends)))
                aset.set("maxHeight", str(max(r.height for r in rends)))
            else:
                aset.set("lang", rends[0].language)
            for r in sorted(rends, key=lambda x: x.bandwidth):
                segs = _segments_in(r, start_s if index else None, end_s if index < len(ref_periods) - 1 else None)
                init = (segs[0].init_uri if segs and segs[0].init_uri else r.init_uri)
                # presentationTimeOffset maps the period start onto the track's media timeline.
                pto = round(start_s * r.timescale)
                _representation(aset, r, segs, init, pto)
    if dynamic and live is not None:
        if live.utc_timing_url:
            ET.SubElement(root, "UTCTiming", schemeIdUri=UTC_HTTP_ISO, value=live.utc_timing_url)
        ET.SubElement(root, "UTCTiming", schemeIdUri=UTC_DIRECT, value=iso(live.publish_time))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _segments_in(r: Rendition, start: float | None, end: float | None) -> list[Segment]:
    """Complete segments of `r` whose start lies in [start, end) seconds (None: unbounded)."""
    out = []
    for s in r.segments:
        if not s.complete:
            continue
        t = r.seconds(s.start)
        if start is not None and t < start - 0.2:
            continue
        if end is not None and t >= end - 0.2:
            continue
        out.append(s)
    return out
