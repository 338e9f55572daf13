"""The ISO BMFF (MP4) boxes the packager reads and stamps: init segments and movie fragments.

We let PyAV write the boxes and read back what the playlists need (timescales, codec strings,
fragment decode times and durations, keyframes), then stamp each fragment's `tfdt` and `mfhd` so a
fragment muxed on its own sits at the right place on the track's timeline. Parsing is bounded:
sizes are checked against the buffer, nesting depth and box counts are capped, and every malformed
input raises `BoxError` (never IndexError or struct.error).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

from hivecast.media.packaging.h264 import SpsError
from hivecast.media.packaging.h265 import ptl_from_hvcc

MAX_DEPTH = 12
MAX_BOXES = 100_000
MAX_TRUN_SAMPLES = 1_000_000  # a 10 s PCM segment at 48 kHz is 480,000
CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"edts", b"dinf"}


class BoxError(ValueError):
    """The bytes are not the ISO BMFF we expect."""


@dataclass(frozen=True, slots=True)
class Box:
    type: bytes
    start: int  # offset of the box header
    header: int  # header length (8 or 16)
    size: int  # whole box

    @property
    def body(self) -> int:
        return self.start + self.header

    @property
    def end(self) -> int:
        return self.start + self.size


def iter_boxes(data: bytes | bytearray | memoryview, start: int = 0, end: int | None = None) -> Iterator[Box]:
    end = len(data) if end is None else end
    pos = start
    count = 0
    while pos < end:
        if end - pos < 8:
            raise BoxError(f"truncated box header at {pos}")
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if end - pos < 16:
                raise BoxError(f"truncated large box header at {pos}")
            (size,) = struct.unpack_from(">Q", data, pos + 8)
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise BoxError(f"box {kind!r} at {pos} has size {size} beyond its parent")
        count += 1
        if count > MAX_BOXES:
            raise BoxError("too many boxes")
        yield Box(bytes(kind), pos, header, size)
        pos += size


def find(data: bytes | bytearray | memoryview, path: list[bytes], start: int = 0, end: int | None = None,
         depth: int = 0) -> Box | None:
    """The first box along `path` (types from the outside in)."""
    if depth > MAX_DEPTH:
        raise BoxError("boxes nested too deep")
    for box in iter_boxes(data, start, end):
        if box.type == path[0]:
            if len(path) == 1:
                return box
            return find(data, path[1:], box.body, box.end, depth + 1)
    return None


def children(data: bytes | bytearray | memoryview, parent: Box, kind: bytes) -> list[Box]:
    return [b for b in iter_boxes(data, parent.body, parent.end) if b.type == kind]


def _u(fmt: str, data: bytes | bytearray | memoryview, offset: int, limit: int) -> tuple[int, ...]:
    if offset < 0 or offset + struct.calcsize(fmt) > limit:
        raise BoxError("field beyond the end of its box")
    return struct.unpack_from(fmt, data, offset)


@dataclass(slots=True)
class TrackInit:
    track_id: int
    handler: str  # "vide" | "soun" | ...
    timescale: int
    codecs: str
    width: int = 0
    height: int = 0
    sample_rate: int = 0
    channels: int = 0
    default_duration: int = 0
    default_flags: int = 0


def parse_init(data: bytes | bytearray) -> list[TrackInit]:
    """Tracks of an init segment (ftyp + moov)."""
    moov = find(data, [b"moov"])
    if moov is None:
        raise BoxError("no moov box")
    tracks: list[TrackInit] = []
    trex: dict[int, tuple[int, int]] = {}
    mvex = find(data, [b"mvex"], moov.body, moov.end)
    if mvex is not None:
        for box in children(data, mvex, b"trex"):
            track_id, _desc, dur, _size, flags = _u(">IIIII", data, box.body + 4, box.end)
            trex[track_id] = (dur, flags)
    for trak in children(data, moov, b"trak"):
        tkhd = find(data, [b"tkhd"], trak.body, trak.end)
        mdhd = find(data, [b"mdia", b"mdhd"], trak.body, trak.end)
        hdlr = find(data, [b"mdia", b"hdlr"], trak.body, trak.end)
        stsd = find(data, [b"mdia", b"minf", b"stbl", b"stsd"], trak.body, trak.end)
        if tkhd is None or mdhd is None or hdlr is None or stsd is None:
            raise BoxError("trak without tkhd, mdhd, hdlr or stsd")
        version = data[tkhd.body]
        track_id = _u(">I", data, tkhd.body + (20 if version == 1 else 12), tkhd.end)[0]
        version = data[mdhd.body]
        timescale = _u(">I", data, mdhd.body + (20 if version == 1 else 12), mdhd.end)[0]
        if timescale == 0:
            raise BoxError("mdhd timescale 0")
        handler = bytes(data[hdlr.body + 8:hdlr.body + 12]).decode("latin-1")
        track = TrackInit(track_id, handler, timescale, "")
        track.default_duration, track.default_flags = trex.get(track_id, (0, 0))
        _sample_entry(data, stsd, track)
        tracks.append(track)
    return tracks


def _sample_entry(data: bytes | bytearray, stsd: Box, track: TrackInit) -> None:
    # stsd: full box header (4) + entry_count (4), then the sample entries.
    entries = list(iter_boxes(data, stsd.body + 8, stsd.end))
    if not entries:
        raise BoxError("empty stsd")
    entry = entries[0]
    kind = entry.type.decode("latin-1")
    if kind in ("avc1", "avc3", "hvc1", "hev1", "av01", "vp09"):
        track.width, track.height = _u(">HH", data, entry.body + 24, entry.end)
        child_start = entry.body + 78
        if kind in ("avc1", "avc3"):
            avcc = find(data, [b"avcC"], child_start, entry.end)
            if avcc is None:
                raise BoxError("avc1 without avcC")
            profile, compat, level = _u(">BBB", data, avcc.body + 1, avcc.end)
            track.codecs = f"{kind}.{profile:02x}{compat:02x}{level:02x}"
        elif kind in ("hvc1", "hev1"):
            hvcc = find(data, [b"hvcC"], child_start, entry.end)
            track.codecs = _hevc_codecs(data, hvcc, kind) if hvcc is not None else kind
        else:
            track.codecs = kind
    elif kind in ("mp4a", "Opus"):
        track.channels, _bits = _u(">HH", data, entry.body + 16, entry.end)
        track.sample_rate = _u(">I", data, entry.body + 24, entry.end)[0] >> 16
        if kind == "Opus":
            track.codecs = "opus"  # the codecs parameter of Opus in ISO BMFF (its sample entry is `Opus`)
        else:
            esds = find(data, [b"esds"], entry.body + 28, entry.end)
            track.codecs = _mp4a_codecs(data, esds) if esds is not None else "mp4a.40.2"
    else:
        track.codecs = kind


def _hevc_codecs(data: bytes | bytearray, box: Box, kind: str) -> str:
    try:
        return ptl_from_hvcc(data[box.body:box.end]).codecs(kind)
    except SpsError as exc:
        raise BoxError(str(exc)) from None


def _descriptor(data: bytes | bytearray, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, body offset, body length) of an MPEG-4 descriptor (14496-1 8.3.3)."""
    tag = _u(">B", data, pos, end)[0]
    pos += 1
    length = 0
    for _ in range(4):
        byte = _u(">B", data, pos, end)[0]
        pos += 1
        length = (length << 7) | (byte & 0x7F)
        if not byte & 0x80:
            break
    if pos + length > end:
        raise BoxError("descriptor beyond esds")
    return tag, pos, length


def _mp4a_codecs(data: bytes | bytearray, esds: Box) -> str:
    tag, pos, length = _descriptor(data, esds.body + 4, esds.end)
    if tag != 0x03:
        raise BoxError("esds without ES_Descriptor")
    end = pos + length
    flags = _u(">B", data, pos + 2, end)[0]
    pos += 3
    if flags & 0x80:
        pos += 2
    if flags & 0x40:
        pos += 1 + _u(">B", data, pos, end)[0]
    if flags & 0x20:
        pos += 2
    tag, pos, length = _descriptor(data, pos, end)
    if tag != 0x04:
        raise BoxError("ES_Descriptor without DecoderConfigDescriptor")
    oti = _u(">B", data, pos, end)[0]
    dcd_end = pos + length
    if oti != 0x40:
        return f"mp4a.{oti:02x}"
    tag, pos, length = _descriptor(data, pos + 13, dcd_end)
    if tag != 0x05 or length < 1:
        return "mp4a.40.2"
    aot = _u(">B", data, pos, dcd_end)[0] >> 3
    if aot == 31 and length >= 2:
        aot = 32 + ((_u(">H", data, pos, dcd_end)[0] >> 5) & 0x3F)
    return f"mp4a.40.{aot}"


@dataclass(slots=True)
class TrackRun:
    track_id: int
    decode_time: int  # tfdt
    duration: int  # sum of sample durations
    samples: int
    first_sync: bool  # the fragment starts with a sync sample (a keyframe)
    tfdt_offset: int = -1  # where tfdt's value sits, for stamping
    tfdt_size: int = 0


@dataclass(slots=True)
class Fragment:
    sequence: int
    tracks: list[TrackRun] = field(default_factory=list)
    mfhd_offset: int = -1


def parse_fragment(data: bytes | bytearray | memoryview, defaults: dict[int, TrackInit] | None = None) -> Fragment:
    """What a moof says: per track, its decode time, duration, sample count and first sample's sync flag."""
    moof = find(data, [b"moof"])
    if moof is None:
        raise BoxError("no moof box")
    mfhd = find(data, [b"mfhd"], moof.body, moof.end)
    if mfhd is None:
        raise BoxError("moof without mfhd")
    frag = Fragment(_u(">I", data, mfhd.body + 4, mfhd.end)[0], mfhd_offset=mfhd.body + 4)
    for traf in children(data, moof, b"traf"):
        tfhd = find(data, [b"tfhd"], traf.body, traf.end)
        if tfhd is None:
            raise BoxError("traf without tfhd")
        (vf,) = _u(">I", data, tfhd.body, tfhd.end)
        tf_flags = vf & 0xFFFFFF
        track_id = _u(">I", data, tfhd.body + 4, tfhd.end)[0]
        init = (defaults or {}).get(track_id)
        default_duration = init.default_duration if init else 0
        default_flags = init.default_flags if init else 0
        pos = tfhd.body + 8
        if tf_flags & 0x1:
            pos += 8
        if tf_flags & 0x2:
            pos += 4
        if tf_flags & 0x8:
            default_duration = _u(">I", data, pos, tfhd.end)[0]
            pos += 4
        if tf_flags & 0x10:
            pos += 4
        if tf_flags & 0x20:
            default_flags = _u(">I", data, pos, tfhd.end)[0]
            pos += 4
        run = TrackRun(track_id, 0, 0, 0, True)
        tfdt = find(data, [b"tfdt"], traf.body, traf.end)
        if tfdt is not None:
            version = data[tfdt.body]
            run.tfdt_offset = tfdt.body + 4
            run.tfdt_size = 8 if version == 1 else 4
            run.decode_time = _u(">Q" if version == 1 else ">I", data, run.tfdt_offset, tfdt.end)[0]
        first = True
        for trun in children(data, traf, b"trun"):
            (vf,) = _u(">I", data, trun.body, trun.end)
            flags = vf & 0xFFFFFF
            (count,) = _u(">I", data, trun.body + 4, trun.end)
            pos = trun.body + 8
            first_flags: int | None = None
            if flags & 0x1:
                pos += 4
            if flags & 0x4:
                first_flags = _u(">I", data, pos, trun.end)[0]
                pos += 4
            per = 4 * bin(flags & 0xF00).count("1")
            if count * per > trun.end - pos:
                raise BoxError("trun sample table beyond its box")
            if count > MAX_TRUN_SAMPLES:
                # Without per-sample fields the table takes no bytes, so the box size cannot bound it.
                raise BoxError(f"trun declares {count} samples (limit {MAX_TRUN_SAMPLES})")
            for i in range(count):
                duration = default_duration
                sample_flags = default_flags
                p = pos + i * per
                if flags & 0x100:
                    duration = _u(">I", data, p, trun.end)[0]
                    p += 4
                if flags & 0x200:
                    p += 4
                if flags & 0x400:
                    sample_flags = _u(">I", data, p, trun.end)[0]
                if i == 0 and first_flags is not None:
                    sample_flags = first_flags
                if first and i == 0:
                    run.first_sync = not (sample_flags & 0x10000)
                run.duration += duration
            run.samples += count
            if count:
                first = False
        frag.tracks.append(run)
    return frag


def stamp_fragment(data: bytearray | memoryview, frag: Fragment, sequence: int, decode_times: dict[int, int]) -> None:
    """Rewrite the fragment's sequence number and each track's tfdt in place."""
    struct.pack_into(">I", data, frag.mfhd_offset, sequence & 0xFFFFFFFF)
    for run in frag.tracks:
        if run.track_id not in decode_times:
            continue
        if run.tfdt_offset < 0:
            raise BoxError("fragment without tfdt to stamp")
        value = decode_times[run.track_id]
        if run.tfdt_size == 4 and value > 0xFFFFFFFF:
            raise BoxError("decode time does not fit a version 0 tfdt")
        struct.pack_into(">Q" if run.tfdt_size == 8 else ">I", data, run.tfdt_offset, value)
        run.decode_time = value
    frag.sequence = sequence
