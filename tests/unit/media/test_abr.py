"""ABR client pieces without a network: manifest readers (fuzzed), estimator, rules, pacer, buffer model."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hivecast.media.abr.estimator import ThroughputEstimator
from hivecast.media.abr.fetcher import Pacer
from hivecast.media.abr.manifest import (
    ManifestError,
    Variant,
    parse_dash,
    parse_duration,
    parse_hls_media,
    parse_hls_multivariant,
)
from hivecast.media.abr.player import PlayerError, _Playback, parse_rate
from hivecast.media.abr.rules import BolaParams, bola_choice, choose, throughput_choice
from hivecast.media.packaging import dash, hls
from tests.unit.media.test_writers import live_presentation, vod

BASE = "http://h/vod/x/"


def test_reads_our_own_hls() -> None:
    p = vod()
    variants, audio = parse_hls_multivariant(hls.multivariant(p), BASE + "index.m3u8")
    assert [v.playlist_url for v in variants] == [BASE + "v1/index.m3u8", BASE + "v0/index.m3u8"]
    assert audio == {"audio": BASE + "a0/index.m3u8"}
    v = variants[0]
    live, target = parse_hls_media(hls.media_playlist(p, p.renditions[1]), v.playlist_url, v)
    assert not live and target == 4
    assert v.init_url == BASE + "v1/init.mp4"
    assert [s.number for s in v.segments] == list(range(1, 9))
    assert sum(s.duration for s in v.segments) == pytest.approx(30.0)


def test_reads_our_own_mpd() -> None:
    pres = parse_dash(dash.mpd(vod()), BASE + "manifest.mpd")
    assert [v.id for v in pres.variants] == ["v1", "v0"]
    assert pres.audio is not None and pres.audio.init_url == BASE + "a0/init.mp4"
    assert pres.variants[1].segments[7].url == BASE + "v0/seg-8.m4s"
    live = parse_dash(dash.mpd(live_presentation(ll=False), dash.LiveTiming(0, 1, 24, 2)), BASE + "m.mpd")
    assert live.live and live.variants[0].segments[0].number == 45  # the newest period


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_hls_reader_only_raises_manifest_error(text: str) -> None:
    for doc in (text, "#EXTM3U\n" + text):
        try:
            parse_hls_multivariant(doc, BASE)
            parse_hls_media(doc, BASE, Variant("0", 0))
        except ManifestError:
            pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=-5, max_value=10**6), st.text(max_size=10),
       st.sampled_from(["12", "x", "", "-3", "1e3"]))
def test_dash_reader_only_raises_manifest_error(junk: str, number: int, attr: str, weird: str) -> None:
    from xml.sax.saxutils import quoteattr

    docs = [junk, f'<MPD type="static"><Period><AdaptationSet contentType="video"><Representation id={quoteattr(attr)} '
                  f'bandwidth="{weird}" width={quoteattr(attr)}><SegmentTemplate media="$Number$.m4s" timescale="{number}" '
                  f'startNumber="{number}"><SegmentTimeline><S t="0" d="{number}" r="{number % 7 - 1}"/>'
                  '</SegmentTimeline></SegmentTemplate></Representation></AdaptationSet></Period></MPD>']
    for doc in docs:
        try:
            parse_dash(doc, BASE)
        except ManifestError:
            pass


def test_bounds() -> None:
    with pytest.raises(ManifestError):
        parse_hls_media("#EXTM3U\n" + "#EXTINF:1,\na.ts\n" * 100_001, BASE, Variant("0", 0))
    with pytest.raises(ManifestError):
        parse_duration("PT1X")
    assert parse_duration("PT1H2M3.5S") == 3723.5


def test_estimator_reacts_down_fast_and_up_slowly() -> None:
    est = ThroughputEstimator()
    assert est.estimate() == 1_000_000  # default before any sample
    for _ in range(10):
        est.sample(1_000_000, 1.0)  # 8 Mbit/s
    assert est.estimate() == pytest.approx(8e6, rel=0.01)
    est.sample(125_000, 1.0)  # one second at 1 Mbit/s
    dropped = est.estimate()
    assert dropped < 6e6
    est.sample(1_000, 0.001)  # tiny downloads are latency, not bandwidth
    assert est.estimate() == dropped


def test_rules() -> None:
    rates = [300_000, 1_200_000, 3_000_000]
    params = BolaParams(segment=2.0, buffer_target=12.0, min_buffer=6.0)
    assert throughput_choice(rates, 8e6, 0.9) == 2
    assert throughput_choice(rates, 1e6, 0.9) == 0
    assert bola_choice(rates, 0.5, params) == 0
    assert bola_choice(rates, 12.0, params) == 2
    assert choose(rates, 1.0, 8e6, params, current=None) == 2  # short buffer: throughput decides
    assert choose(rates, 8.0, 1e6, params, current=2) == 0  # a slow link wins over a full buffer
    assert choose(rates, 14.0, 1.0e6, params, current=0) == 1  # full buffer: one step above


def test_pacer_holds_the_rate() -> None:
    pacer = Pacer(lambda t: 8e6, burst_bytes=0)
    now = 0.0
    for _ in range(100):
        now += pacer.delay(10_000, now)
    assert now == pytest.approx(100 * 10_000 * 8 / 8e6, rel=0.02)
    assert Pacer(lambda t: None).delay(10**9, 0.0) == 0.0


def test_buffer_model_counts_stalls() -> None:
    pb = _Playback(startup=2.0, resume=2.0)
    pb.add(2.0, 1.0)  # starts at t=1 with 2 s buffered
    assert pb.started_at == 1.0 and pb.playing
    assert pb.level(2.0) == pytest.approx(1.0)
    pb.add(2.0, 5.0)  # ran dry at t=3, resumed at 5
    assert pb.stalls == [pytest.approx(2.0)]


def test_parse_rate() -> None:
    assert parse_rate("8M") == 8e6 and parse_rate("500k") == 5e5
    with pytest.raises(PlayerError):
        parse_rate("fast")
