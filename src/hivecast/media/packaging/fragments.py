"""One track's CMAF fragments: PyAV muxes the packets, we place the fragment on the timeline.

Each call to `FragmentMuxer.mux()` opens a fresh fragmented-MP4 muxer for exactly one fragment
(moof + mdat): the caller decides every cut (segment or LL-HLS part), which PyAV's own fragmenting
cannot be told to do. A fresh muxer starts its decode time at 0, so we stamp the real decode time
(`tfdt`) and sequence number (`mfhd`) into the bytes afterwards. The init segment (ftyp + moov) is
taken from the first fragment's muxer, which saw the track's first packets (its edit list accounts
for encoder delay).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

from hivecast.media.packaging.bmff import (
    Fragment,
    TrackInit,
    iter_boxes,
    parse_fragment,
    parse_init,
    stamp_fragment,
)

MOVFLAGS = "frag_custom+empty_moov+default_base_moof+frag_discont+skip_trailer+omit_tfhd_offset"


class _Sink(io.RawIOBase):
    def __init__(self) -> None:
        self.buf = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.buf += b
        return len(b)


@dataclass(slots=True)
class MuxedFragment:
    data: memoryview  # moof + mdat (a view of the muxer's buffer)
    decode_time: int  # tfdt, in the track's timescale
    duration: int
    first_sync: bool
    samples: int


class FragmentMuxer:
    """Fragments for one track whose packets follow `template` (an input stream or a codec context).

    `origin`: the decode time (seconds) that becomes tfdt 0; None takes the first packet's dts.
    """

    def __init__(self, template: Any, *, origin: Fraction | None = None, time_base: Fraction | None = None) -> None:
        self.template = template
        self.time_base = time_base  # the track timescale to ask for (live: the access units' clock)
        self.origin = origin
        self.init: bytes | None = None
        self.track: TrackInit | None = None
        self.sequence = 0

    def mux(self, packets: list[av.Packet[Any]]) -> MuxedFragment:
        if not packets:
            raise ValueError("a fragment needs at least one packet")
        first = packets[0]
        if first.dts is None or first.time_base is None:
            raise ValueError("packets need a dts and a time base")
        first_dts = Fraction(first.dts) * Fraction(first.time_base)
        if self.origin is None:
            self.origin = first_dts
        sink = io.BytesIO()
        out = av.open(sink, "w", format="mp4", options={"movflags": MOVFLAGS})
        try:
            stream = out.add_stream_from_template(self.template)
            if self.time_base is not None:
                stream.time_base = self.time_base
            if stream.codec_context.name in ("hevc", "libx265"):
                # hvc1 (parameter sets in the sample entry) is what Apple's players require.
                stream.codec_context.codec_tag = "hvc1"
            for packet in packets:
                packet.stream = stream
                out.mux(packet)
        finally:
            out.close()
        # Work on the muxer's buffer in place: segments are megabytes, and copies add up.
        data = sink.getbuffer()
        init_end = 0
        frag_start = -1
        for box in iter_boxes(data):
            if box.type in (b"ftyp", b"moov"):
                init_end = box.end
            elif box.type == b"moof" and frag_start < 0:
                frag_start = box.start
        if frag_start < 0:
            raise ValueError("the muxer wrote no fragment")
        if self.init is None:
            self.init = bytes(data[:init_end])
            tracks = parse_init(self.init)
            self.track = tracks[0]
        assert self.track is not None
        body = data[frag_start:]
        frag: Fragment = parse_fragment(body, {self.track.track_id: self.track})
        timescale = self.track.timescale
        decode_time = max(0, round((first_dts - self.origin) * timescale))
        self.sequence += 1
        stamp_fragment(body, frag, self.sequence, {run.track_id: decode_time for run in frag.tracks})
        run = frag.tracks[0]
        return MuxedFragment(body, decode_time, run.duration, run.first_sync, run.samples)
