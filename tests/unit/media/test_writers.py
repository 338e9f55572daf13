"""HLS and DASH writers, checked by parsers written by others (m3u8, mpegdash)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import m3u8
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mpegdash.parser import MPEGDASHParser

from hivecast.media.packaging import dash, hls
from hivecast.media.packaging.model import Part, Presentation, Rendition, Segment


def make_rendition(rid: str, kind: str, durations: list[int], timescale: int = 90000, *, first: int = 1,
                   sizes: int = 100_000) -> Rendition:
    r = Rendition(rid, kind, "avc1.64001f" if kind == "video" else "mp4a.40.2", timescale, "init.mp4",  # type: ignore[arg-type]
                  playlist_uri=f"{rid}/index.m3u8", width=640 if kind == "video" else 0,
                  height=360 if kind == "video" else 0, frame_rate=30.0 if kind == "video" else 0.0,
                  channels=2 if kind == "audio" else 0, sample_rate=48000 if kind == "audio" else 0)
    t = 0
    for i, d in enumerate(durations):
        r.segments.append(Segment(first + i, t, d, r.segment_uri(first + i), sizes))
        t += d
    r.measure_bandwidth()
    return r


def vod() -> Presentation:
    return Presentation([make_rendition("v0", "video", [360000] * 7 + [180000]),
                         make_rendition("v1", "video", [360000] * 7 + [180000], sizes=40_000),
                         make_rendition("a0", "audio", [192000] * 7 + [96000], timescale=48000, sizes=30_000)])


def test_vod_hls_parses_with_m3u8() -> None:
    p = vod()
    master = m3u8.loads(hls.multivariant(p))
    assert master.is_variant
    assert len(master.playlists) == 2
    top = max(master.playlists, key=lambda v: v.stream_info.bandwidth)
    assert top.stream_info.resolution == (640, 360)
    assert top.stream_info.codecs == "avc1.64001f,mp4a.40.2"
    assert top.stream_info.average_bandwidth == p.renditions[0].average_bandwidth + p.renditions[2].average_bandwidth
    assert master.media[0].type == "AUDIO" and master.media[0].uri == "a0/index.m3u8"
    media = m3u8.loads(hls.media_playlist(p, p.renditions[0]))
    assert media.is_endlist and media.playlist_type == "vod"
    assert media.target_duration == 4
    assert sum(s.duration for s in media.segments) == pytest.approx(30.0)
    assert media.segment_map[0].uri == "init.mp4"
    assert media.media_sequence == 1


def test_vod_mpd_parses_with_mpegdash() -> None:
    p = vod()
    text = dash.mpd(p)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "static"
    assert mpd.media_presentation_duration == "PT30.000S"
    sets = mpd.periods[0].adaptation_sets
    assert [a.content_type for a in sets] == ["video", "audio"]
    tmpl = sets[0].representations[0].segment_templates[0]
    assert tmpl.media == f"{sets[0].representations[0].id}/seg-$Number$.m4s"
    s = tmpl.segment_timelines[0].Ss
    assert (s[0].t, s[0].d, s[0].r) == (0, 360000, 6)
    assert s[1].d == 180000


def live_presentation(ll: bool = True) -> Presentation:
    v = make_rendition("v0", "video", [360000] * 10, first=40)
    a = make_rendition("a0", "audio", [192000] * 10, timescale=48000, first=40)
    for r in (v, a):
        for i, seg in enumerate(r.segments):
            seg.program_date_time = 1_700_000_000.0 + 4 * i
        r.segments[5].discontinuity = True
        for seg in r.segments[5:]:
            seg.init_uri = "init-2.mp4"
        r.discontinuity_sequence = 3
        last = r.segments[-1]
        last.complete = False
        step = last.duration // 8
        last.parts = [Part(f"seg-{last.number}.{i}.m4s", step, i == 0) for i in range(3)]
        for seg in r.segments[-3:-1]:
            seg.parts = [Part(f"seg-{seg.number}.{i}.m4s", seg.duration // 8, i == 0) for i in range(8)]
        r.preload_hint = f"seg-{last.number}.3.m4s"
    return Presentation([v, a], live=True, target_duration=4.0, part_target=0.5 if ll else 0.0)


def test_live_ll_hls_tags() -> None:
    p = live_presentation()
    text = hls.media_playlist(p, p.renditions[0])
    pl = m3u8.loads(text)
    assert not pl.is_endlist
    assert pl.media_sequence == 40
    assert pl.discontinuity_sequence == 3
    assert pl.server_control.can_block_reload == "YES"
    assert pl.part_inf.part_target == 0.5
    assert pl.preload_hint.uri == "seg-49.3.m4s"
    # The last segment is still being written: m3u8 shows it as parts without a URI.
    assert len(pl.segments) == 10 and pl.segments[-1].uri is None and len(pl.segments[-1].parts) == 3
    assert pl.segments[5].discontinuity
    assert pl.segments[0].program_date_time is not None
    assert "#EXT-X-MAP:URI=\"init-2.mp4\"" in text
    assert "INDEPENDENT=YES" in text
    assert hls.last_position(p.renditions[0]) == (49, 2)


def test_live_delta_update_skips_old_segments() -> None:
    p = live_presentation()
    r = p.renditions[0]
    r.segments = make_rendition("v0", "video", [360000] * 12, first=1).segments
    text = hls.media_playlist(p, r, skip=True)
    assert "#EXT-X-SKIP:SKIPPED-SEGMENTS=" in text
    pl = m3u8.loads(text)
    assert pl.skip.skipped_segments >= 1
    assert pl.skip.skipped_segments + len(pl.segments) == 12


def test_live_dynamic_mpd() -> None:
    p = live_presentation(ll=False)
    timing = dash.LiveTiming(availability_start=1_700_000_000.0, publish_time=1_700_000_040.0,
                             time_shift_buffer=24.0, minimum_update_period=2.0, utc_timing_url="/live/_time")
    text = dash.mpd(p, timing)
    mpd = MPEGDASHParser.parse(text)
    assert mpd.type == "dynamic"
    assert mpd.availability_start_time.startswith("2023-11-14T22:13:20")
    assert mpd.minimum_update_period == "PT2.000S"
    assert len(mpd.periods) == 2  # the publisher restarted: a new period with the new init segment
    schemes = [u.scheme_id_uri for u in mpd.utc_timings]
    assert dash.UTC_HTTP_ISO in schemes and dash.UTC_DIRECT in schemes
    second = mpd.periods[1].adaptation_sets[0].representations[0].segment_templates[0]
    assert second.initialization == "v0/init-2.mp4"
    assert second.start_number == 45


def test_duration_format() -> None:
    assert dash.duration(30.0333) == "PT30.033S"
    assert dash.duration(3725.5) == "PT1H2M5.500S"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=900_000), min_size=1, max_size=40),
       st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20))
def test_any_model_gives_parseable_output(durations: list[int], name: str) -> None:
    r = make_rendition("v0", "video", durations)
    r.language = name or "und"
    p = Presentation([r, make_rendition("a0", "audio", durations, timescale=90000)])
    pl = m3u8.loads(hls.media_playlist(p, r))
    assert len(pl.segments) == len(durations)
    assert all(round(s.duration) <= pl.target_duration for s in pl.segments)
    m3u8.loads(hls.multivariant(p))
    ET.fromstring(dash.mpd(p))
    mpd = MPEGDASHParser.parse(dash.mpd(p))
    ss = mpd.periods[0].adaptation_sets[0].representations[0].segment_templates[0].segment_timelines[0].Ss
    assert sum(s.d * ((s.r or 0) + 1) for s in ss) == sum(durations)
