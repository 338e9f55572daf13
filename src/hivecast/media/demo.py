"""The demo channel: synthetic video with a visible clock and a sine tone, encoded in-process with PyAV.

`hivecast serve --demo` publishes it as stream `demo` so a new user sees a live stream at once.
Drawing and encoding run in a thread (libx264 ultrafast, 640x360@25, AAC 48 kHz); access units
hop to the event loop with `call_soon_threadsafe`, so the loop never waits for the encoder.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Iterator
from fractions import Fraction

import av

from hivecast.media.live import AccessUnit, LiveRegistry, Publisher, TrackInfo

log = logging.getLogger(__name__)

# Seven-segment glyphs: segments a b c d e f g (top, upper right, lower right, bottom, lower left,
# upper left, middle) for each digit.
SEGMENTS = {
    "0": "abcdef", "1": "bc", "2": "abged", "3": "abgcd", "4": "fgbc", "5": "afgcd", "6": "afgedc",
    "7": "abc", "8": "abcdefg", "9": "abcdfg",
}


class ClockPainter:
    """Draws a moving background and an HH:MM:SS.cc clock into I420 planes, in pure Python."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        # One wide gradient row; each frame takes a moving window of it.
        self._ramp = bytes(int(64 + 96 * (0.5 + 0.5 * math.sin(2 * math.pi * x / width))) for x in range(width * 2))
        cw, ch = width // 2, height // 2
        self._u = bytes([90]) * (cw * ch)
        self._v = bytes([150]) * (cw * ch)
        self.digit_w = max(8, width // 16)
        self.digit_h = self.digit_w * 2
        self.thick = max(2, self.digit_w // 6)

    def luma(self, t: float, frame_no: int) -> bytes:
        w, h = self.width, self.height
        shift = frame_no * 4 % w
        row = self._ramp[shift : shift + w]
        y = bytearray(row * h)
        text = time.strftime("%H:%M:%S", time.gmtime(t)) + f".{int(t * 100) % 100:02d}"
        x0 = (w - len(text) * (self.digit_w + self.thick * 2)) // 2
        y0 = (h - self.digit_h) // 2
        self._rect(y, x0 - 8, y0 - 8, len(text) * (self.digit_w + self.thick * 2) + 16, self.digit_h + 16, 16)
        x = x0
        for ch in text:
            if ch in SEGMENTS:
                self._digit(y, x, y0, SEGMENTS[ch])
                x += self.digit_w + self.thick * 2
            else:
                self._rect(y, x + self.thick, y0 + self.digit_h // 3, self.thick, self.thick, 235)
                if ch == ":":
                    self._rect(y, x + self.thick, y0 + 2 * self.digit_h // 3, self.thick, self.thick, 235)
                x += self.thick * 3
        return bytes(y)

    def chroma(self) -> tuple[bytes, bytes]:
        return self._u, self._v

    def _rect(self, buf: bytearray, x: int, y: int, w: int, h: int, value: int) -> None:
        x, y = max(0, x), max(0, y)
        w, h = min(w, self.width - x), min(h, self.height - y)
        if w <= 0 or h <= 0:
            return
        line = bytes([value]) * w
        for row in range(y, y + h):
            start = row * self.width + x
            buf[start : start + w] = line

    def _digit(self, buf: bytearray, x: int, y: int, segs: str) -> None:
        dw, dh, t = self.digit_w, self.digit_h, self.thick
        half = dh // 2
        boxes = {
            "a": (x, y, dw, t), "d": (x, y + dh - t, dw, t), "g": (x, y + half - t // 2, dw, t),
            "f": (x, y, t, half), "b": (x + dw - t, y, t, half),
            "e": (x, y + half, t, half), "c": (x + dw - t, y + half, t, half),
        }
        for s in segs:
            self._rect(buf, *boxes[s], 235)


def sine_block(start_sample: int, samples: int, rate: int, freq: float = 440.0) -> bytes:
    step = 2 * math.pi * freq / rate
    return array.array("f", (0.2 * math.sin(step * (start_sample + i)) for i in range(samples))).tobytes()


class DemoEncoder:
    """Yields access units in real time (blocking; run it in a thread)."""

    def __init__(self, width: int = 640, height: int = 360, fps: int = 25, sample_rate: int = 48000,
                 gop_seconds: float = 2.0, bitrate: int = 800_000) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self.painter = ClockPainter(width, height)
        self.video = av.CodecContext.create("libx264", "w")
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.time_base = Fraction(1, fps)
        self.video.framerate = Fraction(fps, 1)
        self.video.bit_rate = bitrate
        self.video.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(int(fps * gop_seconds)),
                              "bf": "0", "threads": "1", "repeat-headers": "1", "x264-params": "repeat-headers=1"}
        self.video.open()
        self.audio = av.CodecContext.create("aac", "w")
        self.audio.sample_rate = sample_rate
        self.audio.layout = "mono"
        self.audio.format = "fltp"
        self.audio.bit_rate = 64_000
        self.audio.time_base = Fraction(1, sample_rate)
        self.audio.open()
        self.audio_config = bytes(self.audio.extradata or b"")

    def tracks(self, sps: bytes, pps: bytes) -> list[TrackInfo]:
        return [TrackInfo(0, "h264", 90000, sps=sps, pps=pps, width=self.width, height=self.height),
                TrackInfo(1, "aac", self.sample_rate, config=self.audio_config, channels=1)]

    def frames(self, stop: threading.Event) -> Iterator[AccessUnit]:
        start = time.monotonic()
        wall0 = time.time()
        frame_no = 0
        sample_no = 0
        frame_size = 1024
        u, v = self.painter.chroma()
        while not stop.is_set():
            due = start + frame_no / self.fps
            delay = due - time.monotonic()
            if delay > 0:
                stop.wait(delay)
                if stop.is_set():
                    return
            frame = av.VideoFrame(self.width, self.height, "yuv420p")
            frame.planes[0].update(self.painter.luma(wall0 + frame_no / self.fps, frame_no))
            frame.planes[1].update(u)
            frame.planes[2].update(v)
            frame.pts = frame_no
            for packet in self.video.encode(frame):
                pts = int(packet.pts or 0) * 90000 // self.fps
                yield AccessUnit(0, "h264", pts, pts, 90000, bool(packet.is_keyframe), bytes(packet))
            frame_no += 1
            # Audio up to the same media time, in whole AAC frames.
            while sample_no + frame_size <= frame_no * self.sample_rate // self.fps:
                aframe = av.AudioFrame(format="fltp", layout="mono", samples=frame_size)
                aframe.sample_rate = self.sample_rate
                aframe.planes[0].update(sine_block(sample_no, frame_size, self.sample_rate))
                aframe.pts = sample_no
                sample_no += frame_size
                for packet in self.audio.encode(aframe):
                    apts = int(packet.pts or 0)
                    yield AccessUnit(1, "aac", apts, apts, self.sample_rate, True, bytes(packet))


def parameter_sets(annexb: bytes) -> tuple[bytes, bytes]:
    from hivecast.rtp.h264 import NAL_PPS, NAL_SPS, annexb_split, nal_type

    sps = pps = b""
    for nal in annexb_split(annexb):
        if nal_type(nal) == NAL_SPS:
            sps = nal
        elif nal_type(nal) == NAL_PPS:
            pps = nal
    return sps, pps


class DemoChannel:
    """Runs a DemoEncoder in a thread and publishes it into the live registry as `name`."""

    def __init__(self, registry: LiveRegistry, name: str = "demo", **encoder: int) -> None:
        self.registry = registry
        self.name = name
        self._encoder_args = encoder
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.publisher: Publisher | None = None
        self.units = 0

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"demo-{self.name}", daemon=True)
        self._thread.start()

    def _go_live(self, tracks: list[TrackInfo]) -> None:
        try:
            self.publisher = self.registry.publish(self.name, tracks, source="demo")
        except Exception as exc:
            log.warning("demo channel cannot publish %s: %s", self.name, exc)
            self._stop.set()

    def _send(self, au: AccessUnit) -> None:
        if self.publisher is not None:
            self.units += 1
            self.publisher.send(au)

    def _run(self) -> None:
        assert self._loop is not None
        loop = self._loop
        try:
            encoder = DemoEncoder(**self._encoder_args)
            live = False
            for au in encoder.frames(self._stop):
                if not live:
                    if au.codec != "h264" or not au.keyframe:
                        continue
                    sps, pps = parameter_sets(au.data)
                    loop.call_soon_threadsafe(self._go_live, encoder.tracks(sps, pps))
                    live = True
                loop.call_soon_threadsafe(self._send, au)
        except RuntimeError:
            pass  # the loop closed under us: shutting down
        except Exception:
            log.exception("demo channel %s failed", self.name)

    async def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
        if self.publisher is not None:
            with contextlib.suppress(Exception):
                self.publisher.close()
            self.publisher = None
