"""The segment model both playlist writers read: renditions made of (parts of) segments.

Times are integers in the rendition's `timescale` (the fMP4 track's mdhd timescale), so sums are
exact; writers convert to seconds only when printing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["video", "audio"]


@dataclass(slots=True)
class Part:
    """An LL-HLS partial segment (one CMAF chunk)."""

    uri: str
    duration: int
    independent: bool
    size: int = 0


@dataclass(slots=True)
class Segment:
    number: int  # media sequence number; $Number$ in DASH
    start: int  # decode time of the first sample (tfdt)
    duration: int
    uri: str
    size: int = 0
    discontinuity: bool = False  # a publisher restart happened before this segment
    program_date_time: float | None = None  # wall clock (Unix seconds) of the first sample
    parts: list[Part] = field(default_factory=list)
    complete: bool = True  # live: parts are still being added
    init_uri: str | None = None  # live: the init segment of this publisher (None: the rendition's)


@dataclass(slots=True)
class Rendition:
    id: str  # also the directory name of its files
    kind: Kind
    codecs: str  # RFC 6381 string, e.g. avc1.64001f or mp4a.40.2
    timescale: int
    init_uri: str
    segments: list[Segment] = field(default_factory=list)
    width: int = 0
    height: int = 0
    frame_rate: float = 0.0
    sample_rate: int = 0
    channels: int = 0
    bandwidth: int = 0  # peak segment bitrate, bits/s
    average_bandwidth: int = 0
    playlist_uri: str = ""  # HLS media playlist, relative to the multivariant playlist
    # Segment file names relative to the rendition's directory (`id`); DASH uses them as templates.
    segment_pattern: str = "seg-$Number$.m4s"
    language: str = "und"
    discontinuity_sequence: int = 0  # discontinuities that slid out of a live window
    preload_hint: str | None = None  # LL-HLS: the next part's URI, requested before it exists

    def segment_uri(self, number: int) -> str:
        return self.segment_pattern.replace("$Number$", str(number))

    def total_duration(self) -> int:
        return sum(s.duration for s in self.segments)

    def seconds(self, ticks: int) -> float:
        return ticks / self.timescale

    def measure_bandwidth(self) -> None:
        """Peak and average bitrates from the segment sizes we wrote (RFC 8216 4.3.4.2)."""
        total_bytes = sum(s.size for s in self.segments)
        total = self.total_duration()
        self.average_bandwidth = round(total_bytes * 8 * self.timescale / total) if total else 0
        peak = 0
        for seg in self.segments:
            if seg.duration > 0:
                peak = max(peak, round(seg.size * 8 * self.timescale / seg.duration))
        self.bandwidth = peak


@dataclass(slots=True)
class Presentation:
    renditions: list[Rendition]
    live: bool = False
    target_duration: float = 4.0  # seconds, the configured cut target
    part_target: float = 0.0  # seconds; 0 disables LL-HLS
    ended: bool = False  # live stream finished: ENDLIST, static-like manifest

    @property
    def video(self) -> list[Rendition]:
        return [r for r in self.renditions if r.kind == "video"]

    @property
    def audio(self) -> list[Rendition]:
        return [r for r in self.renditions if r.kind == "audio"]
