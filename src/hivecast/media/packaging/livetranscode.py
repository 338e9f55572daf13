"""A live bitrate ladder: the source (H.264 or HEVC) decoded once and re-encoded per rung with PyAV (libx264).

`LiveLadder.process(au)` is synchronous and CPU-bound; the live packager calls it from a worker
thread (`asyncio.to_thread`) on its own reader of the stream, so a slow ladder never delays the
source rendition: when it falls behind, the registry drops whole GOPs from its queue and the rung
resumes at the next keyframe. Rung keyframes are forced where the source has them, so every rung
cuts its segments at the same instants as the source.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import av

from hivecast.media.live import AccessUnit, TrackInfo
from hivecast.media.packaging.ladder import Rung

LADDER_TRACK_BASE = 1000  # track ids of the transcoded rungs: 1000, 1001, ...


class LiveLadder:
    def __init__(self, rungs: list[Rung], source: TrackInfo, *, fps: float = 30.0) -> None:
        self.source = source
        self.decoder = av.CodecContext.create("hevc" if source.codec == "h265" else "h264", "r")
        self.rungs: list[tuple[Rung, Any, TrackInfo]] = []
        self.fps = fps
        self._rungs = rungs
        self.opened = False

    def tracks(self, width: int, height: int) -> list[TrackInfo]:
        """The rungs below the source height, as tracks (known once the source size is)."""
        if not self.opened:
            for i, rung in enumerate(r for r in self._rungs if not height or r.height < height):
                w, h = rung.size_for(width, height)
                enc = av.CodecContext.create("libx264", "w")
                enc.width, enc.height, enc.pix_fmt = w, h, "yuv420p"
                enc.time_base = Fraction(1, 90000)
                enc.framerate = Fraction(self.fps).limit_denominator(1001)
                enc.bit_rate = rung.bitrate
                enc.options = {
                    "preset": "veryfast", "tune": "zerolatency", "forced-idr": "1",
                    "x264-params": "keyint=600:min-keyint=600:scenecut=0:repeat-headers=1",
                    "maxrate": str(int(rung.bitrate * 1.2)), "bufsize": str(int(rung.bitrate)),
                }
                info = TrackInfo(LADDER_TRACK_BASE + i, "h264", 90000, width=w, height=h)
                self.rungs.append((rung, enc, info))
            self.opened = True
        return [info for _rung, _enc, info in self.rungs]

    def process(self, au: AccessUnit) -> list[AccessUnit]:
        """Decode one source access unit and encode it for every rung (runs in a worker thread)."""
        packet = av.Packet(au.data)
        packet.pts, packet.dts = au.pts, au.dts
        packet.time_base = Fraction(1, au.timebase)
        out: list[AccessUnit] = []
        for frame in self.decoder.decode(packet):
            if not self.opened:
                self.tracks(frame.width, frame.height)
            pts = frame.pts if frame.pts is not None else au.pts
            for _rung, enc, info in self.rungs:
                scaled = frame.reformat(enc.width, enc.height, "yuv420p")
                scaled.pts = round(pts * 90000 / au.timebase)
                scaled.time_base = Fraction(1, 90000)
                if au.keyframe:
                    scaled.pict_type = av.video.frame.PictureType.I
                for p in enc.encode(scaled):
                    if p.pts is None:
                        continue
                    dts = p.dts if p.dts is not None else p.pts
                    out.append(AccessUnit(info.id, "h264", p.pts, dts, 90000, p.is_keyframe, bytes(p), au.arrival))
        return out
